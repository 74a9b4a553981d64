"""classify: k-fold validation and model selection on the training cases, the LSTM-FCN and attention readouts,
and the 1-NN DTW baseline, on cases whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmkit.models import AttentionPool, ClassifyModel, FCNClassifier, SequenceClassifier
from lstmkit.tasks import get_task, runner
from lstmkit.tasks.baselines import dtw_distances, nearest_neighbour_dtw
from lstmkit.tasks.classify import (
    ClassifyData,
    select,
    stratified_folds,
    validation_index,
    validation_plan,
)
from lstmkit.tasks.classify.select import smallest_class
from lstmkit.tasks.rundir import open_run
from lstmkit.train import set_values


def test_stratified_folds_deal_each_class_evenly_and_every_case_validates_once():
    labels = np.array([0] * 10 + [1] * 5)
    fold = stratified_folds(labels, 5, seed=3)
    for k in range(5):
        members = labels[fold == k]
        assert (members == 0).sum() == 2 and (members == 1).sum() == 1  # 10 / 5 and 5 / 5 per fold
    assert np.array_equal(fold, stratified_folds(labels, 5, seed=3))  # the split seed fixes it
    assert not np.array_equal(fold, stratified_folds(labels, 5, seed=4))
    index = [validation_index(labels, ClassifyData(folds=5, fold=k, split_seed=3)) for k in range(5)]
    assert sorted(np.concatenate(index).tolist()) == list(range(15))  # the folds partition the cases
    assert len(validation_index(labels, ClassifyData(full_train=True))) == 0
    assert validation_plan(99) == 5 and validation_plan(100) == 0  # the line: 100 training cases
    # ... and from there the rarest class: 2-4 cases make as many folds (one of its cases a fold); 1 or 5+ do not
    assert [validation_plan(100, c) for c in (1, 2, 3, 4, 5, 40)] == [0, 2, 3, 4, 0, 0]
    assert validation_plan(99, 2) == 5 and validation_plan(10_000, 3) == 3
    assert smallest_class(["a", "b", "a", "c", "c", "c"]) == 1 and smallest_class(np.repeat(np.arange(52), 2)) == 2
    fold = stratified_folds(np.repeat(np.arange(52), 2), validation_plan(104, 2), seed=0)
    for k in range(2):  # PigCVP's shape: each fold holds exactly one case of every class
        assert np.bincount(np.repeat(np.arange(52), 2)[fold == k], minlength=52).tolist() == [1] * 52
    with pytest.raises(ValueError, match=r"data\.folds must be 0 \(hold-out\) or >= 2"):
        ClassifyData(folds=1)
    with pytest.raises(ValueError, match=r"0 <= data\.fold < data\.folds"):
        ClassifyData(folds=3, fold=3)


def test_dtw_by_hand_and_where_it_beats_euclidean():
    a = np.array([0.0, 1, 2, 3])[None, :, None]
    b = np.array([0.0, 0, 1, 2])[None, :, None]
    # Warping pairs a0-b0, a0-b1, a1-b2, a2-b3, a3-b3: only the last costs (3 - 2)^2 = 1.
    # dtaidistance returns square roots, squared back: equal to the hand-worked costs up to rounding
    assert dtw_distances(a, b)[0, 0] == pytest.approx(1.0, rel=1e-12)
    assert dtw_distances(a, b, window=0)[0, 0] == pytest.approx(3.0, rel=1e-12)  # no warping: 0+1+1+1
    a2, b2 = np.concatenate([a, a], axis=2), np.concatenate([b, b], axis=2)  # each channel twice
    assert dtw_distances(a2, b2)[0, 0] == pytest.approx(2.0, rel=1e-12)  # channels add along one shared path
    spike, flat = [0.0, 0, 0, 5, 0, 0], [1.0] * 6
    train = np.array([spike, flat])[:, :, None]
    test = np.array([[0.0, 5, 0, 0, 0, 0]])[:, :, None]  # the spike, earlier
    # Euclidean: 25 + 25 = 50 to the late spike, 1 + 16 + 4 * 1 = 21 to the flat line; DTW aligns the spikes: 0.
    assert dtw_distances(test, train)[0].tolist() == pytest.approx([0.0, 21.0], rel=1e-12)
    assert nearest_neighbour_dtw(train, np.array(["spike", "flat"]), test).tolist() == ["spike"]
    assert nearest_neighbour_dtw(train, np.array(["spike", "flat"]), test, window=0).tolist() == ["flat"]


def reference_dtw(x: np.ndarray, y: np.ndarray, window: int | None) -> float:
    """The textbook dynamic programme: D[i, j] = ||x_i - y_j||^2 + min(D[i-1, j], D[i, j-1], D[i-1, j-1]),
    cells with |i - j| > window left at infinity."""
    T = len(x)
    D = np.full((T + 1, T + 1), np.inf)
    D[0, 0] = 0.0
    for i in range(1, T + 1):
        for j in range(1, T + 1):
            if window is None or abs(i - j) <= window:
                D[i, j] = ((x[i - 1] - y[j - 1]) ** 2).sum() + min(D[i - 1, j], D[i, j - 1], D[i - 1, j - 1])
    return float(D[T, T])


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("window", [None, 0, 1, 4])
def test_dtw_equals_the_textbook_dynamic_programme(channels, window):
    """dtaidistance's C DTW (univariate and multivariate routines) against a plain double loop, every pair
    of random cases, in and out of a Sakoe-Chiba band; a tolerance of a few float64 roundings of the sum."""
    rng = np.random.default_rng(channels * 10 + (window or 9))
    a, b = rng.normal(size=(4, 17, channels)), rng.normal(size=(3, 17, channels))
    got = dtw_distances(a, b, window=window)
    want = np.array([[reference_dtw(x, y, window) for y in b] for x in a])
    assert got.shape == (4, 3)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(ValueError, match=r"window must be >= 0 or None, got -1"):
        dtw_distances(a, b, window=-1)


def test_attention_pool_weights_only_real_steps():
    pool = AttentionPool(3)
    with torch.no_grad():
        pool.score.weight.zero_()  # equal scores: the plain mean over the real steps
    y = torch.arange(24.0).reshape(4, 2, 3)  # (T, B, F)
    out = pool(y, torch.tensor([4, 2]))
    assert torch.allclose(out[0], y[:, 0].mean(0)) and torch.allclose(out[1], y[:2, 1].mean(0))


@pytest.mark.parametrize("arch", ["lstm", "lstm-fcn"])
def test_a_case_scores_the_same_alone_and_padded_in_a_batch(arch):
    torch.manual_seed(0)
    config = ClassifyModel(input_size=2, output_size=3, hidden_size=8, num_layers=1, dropout=0.0, arch=arch,
                           pooling="attention", max_length=12)  # fmt: skip
    model = (FCNClassifier if arch == "lstm-fcn" else SequenceClassifier)(config).eval()
    long, short = torch.randn(12, 1, 2), torch.randn(7, 1, 2)
    batch = torch.cat([long, torch.cat([short, torch.zeros(5, 1, 2)])], dim=1)  # (12, 2, 2), short zero-padded
    together = model(batch, torch.tensor([12, 7]))
    assert torch.allclose(together[1], model(short, torch.tensor([7]))[0], atol=1e-5)
    if arch == "lstm-fcn":
        assert model.rnn.input_size == 12  # the dimension shuffle: time steps are the LSTM's features
        assert [m.out_channels for m in model.fcn if isinstance(m, torch.nn.Conv1d)] == [128, 256, 128]
        assert [m.kernel_size[0] for m in model.fcn if isinstance(m, torch.nn.Conv1d)] == [8, 5, 3]


def smoke(tmp_path, *values: str):
    task = get_task("classify")
    config = task.smoke_config(tmp_path)
    return set_values(config, dict(v.split("=", 1) for v in values)) if values else config


def test_lstm_fcn_trains_with_folds_scores_dtw_and_serves_every_step(tmp_path):
    config = runner.build_config("classify", overrides=[])  # a check that the keys exist on the task's config
    assert config.model.arch == "lstm" and config.data.folds == 0
    base = get_task("classify").smoke_config(tmp_path)
    config = set_values(base, {"model.arch": "lstm-fcn", "model.pooling": "attention", "model.fcn_filters": (4, 8, 4),
                               "data.folds": 3, "data.fold": 1})  # fmt: skip
    result = runner.train("classify", config, tmp_path / "run")
    test = result.metrics["test"]
    assert test["cases"] == 12 and 0 <= test["baseline_1nn_dtw"]["accuracy"] <= 1
    assert result.metrics["cases"]["val"] == 8 and result.metrics["cases"]["train"] == 16  # fold 1 of 3 of 24
    assert any("1-NN DTW baseline" in line for line in result.lines)
    run = open_run(tmp_path / "run")
    assert run.task.serving_metadata(run)["preprocess"]["frame"] == 1  # the conv branch reads every step


def test_selection_uses_folds_below_the_line_then_trains_on_every_case(tmp_path):
    base = get_task("classify").smoke_config(tmp_path)  # 24 training cases: below SMALL_TRAIN
    candidates = {"last": {"model.pooling": "last"}, "mean": {"model.pooling": "mean"}}
    selection = select(base, candidates, seeds=(0,), folds=None)
    assert selection.plan == "5-fold"
    assert [len(s.best_epochs) for s in selection.scores] == [5, 5]  # every fold, one seed
    chosen = selection.chosen
    assert chosen is min(selection.scores, key=lambda s: (s.val_loss, -s.val_accuracy))
    final = selection.final
    assert final.data.full_train and final.model.pooling == chosen.values["model.pooling"]
    assert final.train.epochs == round(float(np.median(chosen.best_epochs))) + 1  # best_epoch counts from 0
    result = runner.train("classify", set_values(final, {"data.dtw_baseline": False}), tmp_path / "final")
    assert result.metrics["cases"] == {"train": 24, "val": 0, "test": 12} and result.metrics["val"] is None
    assert "trained on every training case" in result.lines[1]


def test_a_fold_committee_is_one_early_stopped_model_per_fold_that_validates_it(tmp_path):
    """committee_configs: the chosen values on each fold (seed as given), early stopping on that fold's cases;
    the members' validation cases partition the training cases and their test cases are the same."""
    from lstmkit.tasks.classify.select import CandidateScore, committee_configs

    base = get_task("classify").smoke_config(tmp_path)  # 24 training cases
    chosen = CandidateScore("mean", {"model.pooling": "mean"}, 0.5, 0.8, [1, 2, 3, 4, 5])
    configs = committee_configs(base, chosen, 4, seed=7)
    assert [c.data.fold for c in configs] == [0, 1, 2, 3] and {c.data.folds for c in configs} == {4}
    assert all(c.model.pooling == "mean" and c.train.seed == 7 and not c.data.full_train for c in configs)
    task = get_task("classify")
    prepared = [task.prepare(c) for c in configs]
    assert sum(len(p.targets["val"]) for p in prepared) == 24  # each training case validates one member
    assert all(len(p.targets["train"]) + len(p.targets["val"]) == 24 for p in prepared)
    assert all(np.array_equal(p.targets["test"], prepared[0].targets["test"]) for p in prepared)
    with pytest.raises(ValueError, match=r"a fold committee needs k-fold selection \(folds >= 2\), got folds=0"):
        committee_configs(base, chosen, 0, seed=0)


def test_clearly_better_is_the_one_standard_error_rule_on_paired_case_losses():
    from lstmkit.tasks.classify.select import CandidateScore, clearly_better

    def score(name, losses, errors=(0.0, 0.0, 0.0, 0.0)):
        return CandidateScore(name, {}, float(np.mean(losses)), 1.0, [0], losses, list(errors))

    plain = score("plain", [0.5, 0.4, 0.6, 0.5])
    # d = 0.1, 0.05, 0.1, 0.05: mean 0.075, sd 0.0288675 (ddof 1), se 0.0144338: clearly better
    better, mean, se = clearly_better(plain, score("steady", [0.4, 0.35, 0.5, 0.45]))
    assert better and mean == pytest.approx(0.075) and se == pytest.approx(0.05 / np.sqrt(3) / 2)
    # d = 0.3, -0.25, 0.2, -0.15: a lower mean loss (by 0.025) that one standard error swamps: deviations
    # +-0.275 and +-0.175, sd = sqrt(0.2125 / 3) = 0.266145, se = sd / 2 = 0.133073
    better, mean, se = clearly_better(plain, score("noisy", [0.2, 0.65, 0.4, 0.65]))
    assert not better and mean == pytest.approx(0.025) and se == pytest.approx(0.1330727, rel=1e-6)
    with pytest.raises(ValueError) as info:
        clearly_better(plain, score("other split", [0.1, 0.2]))
    assert str(info.value) == "paired per-case loss needed for 'plain' and 'other split', got 4 and 2 cases"
    # accuracy: every case right under both (a lower loss is only confidence): never clearly better
    assert clearly_better(plain, score("steady", [0.4, 0.35, 0.5, 0.45]), "accuracy") == (False, 0.0, 0.0)
    # one case of four fixed, none broken: d = 1, 0, 0, 0, mean 0.25, se 0.25: not more than one se
    fixed_one = clearly_better(score("p", [0.5] * 4, [1, 0, 0, 0]), score("v", [0.5] * 4), "accuracy")
    assert fixed_one == (False, 0.25, pytest.approx(0.25))
    assert clearly_better(score("p", [0.5] * 4, [1, 1, 1, 0]), score("v", [0.5] * 4), "accuracy")[0]
    for n in (4, 67, 100):  # one case fixed of n: mean = se = 1/n, whatever the rounding: not clearly better
        one = [1.0] + [0.0] * (n - 1)
        better, mean, se = clearly_better(score("p", [0.5] * n, one), score("v", [0.5] * n, [0.0] * n), "accuracy")
        assert not better and mean == pytest.approx(1 / n) and se == pytest.approx(1 / n)
    with pytest.raises(ValueError, match=r"measure must be one of \('accuracy', 'loss'\), got 'auc'"):
        clearly_better(plain, plain, "auc")
    with pytest.raises(ValueError, match=r"measure must be one of \('accuracy', 'loss'\), got 'auc'"):
        select(None, {"plain": {}}, measure="auc")  # before any training


def test_variants_are_scored_case_by_case_and_adopted_by_the_rule(tmp_path):
    from lstmkit.tasks.classify.select import clearly_better, score_candidate

    base = get_task("classify").smoke_config(tmp_path)
    held = score_candidate(base, "last", {"model.pooling": "last"}, folds=0, seeds=(0,))
    # the per-case losses are the best epoch's: their mean is the hold-out's best validation loss
    assert len(held.case_losses) == 4 and np.mean(held.case_losses) == pytest.approx(held.val_loss, rel=1e-5)
    selection = select(base, {"last": {"model.pooling": "last"}}, seeds=(0,), folds=3,
                       variants={"mean": {"model.pooling": "mean"}, "attention": {"model.pooling": "attention"}})
    last, *tried = selection.scores
    assert [len(s.case_losses) for s in selection.scores] == [24, 24, 24]  # every training case validates once
    assert [len(s.case_errors) for s in selection.scores] == [24, 24, 24]
    for s in selection.scores:
        assert 1 - np.mean(s.case_errors) == pytest.approx(s.val_accuracy)  # equal folds of 8: the same mean
    best = min(tried, key=lambda s: (s.val_loss, -s.val_accuracy))
    better, mean, se = clearly_better(last, best)
    assert selection.chosen is (best if better else last)
    assert selection.rule == (f"{best.name} {'replaces' if better else 'does not replace'} last: lower loss by "
                              f"{mean:.4f} nats a case, standard error {se:.4f} (one-standard-error rule)")
    assert selection.final.model.pooling == selection.chosen.values["model.pooling"]


def test_dtw_warps_single_steps_where_frames_of_two_cannot_align():
    from lstmkit.tasks.classify import nn1_dtw_predict

    spike, flat, early = ([np.array(c)[:, None] for c in ([0.0, 0, 0, 0, 5, 0], [1.0] * 6, [0.0, 5, 0, 0, 0, 0])])
    # Step by step the early spike warps onto the late one (DTW 0 against 16 + 5 = 21 to the flat line). In blocks of
    # two steps (rows [0, 5] and [5, 0]) they could not align: 25 or more to the spike, 21 to the flat line.
    assert nn1_dtw_predict([spike, flat], np.array([0, 1]), [early], 1.0).tolist() == [0]
    framed = [c.reshape(3, 2) for c in (spike, flat, early)]
    assert nn1_dtw_predict(framed[:2], np.array([0, 1]), framed[2:], 1.0).tolist() == [1]



def test_dtw_predictions_are_kept_for_the_same_cases_labels_and_band(monkeypatch):
    """`select` scores each candidate as a run on the same test cases: DTW fills its cells once a process."""
    from lstmkit.tasks.classify import scoring

    calls = []
    real = scoring.bl.nearest_neighbour_dtw

    def counted(*args, **kwargs):
        calls.append(kwargs["window"])
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring.bl, "nearest_neighbour_dtw", counted)
    monkeypatch.setattr(scoring, "_DTW_MEMO", {})
    rng = np.random.default_rng(0)
    ref, cases = [rng.normal(size=(20, 1)) for _ in range(6)], [rng.normal(size=(20, 1)) for _ in range(4)]
    y = np.array([0, 1, 0, 1, 0, 1])
    first = scoring.nn1_dtw_predict(ref, y, cases, 1.0)
    first[:] = -1  # the caller's copy: changing it leaves the kept predictions alone
    again = scoring.nn1_dtw_predict([c.copy() for c in ref], y.copy(), [c.copy() for c in cases], 1.0)
    assert calls == [None] and np.array_equal(again, real(np.stack(ref), y, np.stack(cases), window=None))
    scoring.nn1_dtw_predict(ref, y, cases, 0.1)  # another band: computed (2 steps of 20)
    scoring.nn1_dtw_predict(ref, y[::-1].copy(), cases, 1.0)  # other labels
    scoring.nn1_dtw_predict(ref, y, [c + 1e-9 for c in cases], 1.0)  # other cases
    assert calls == [None, 2, None, None]
    for shift in range(1, 4):  # four more distinct case sets: the memo keeps DTW_MEMO_SIZE, the oldest dropped first
        scoring.nn1_dtw_predict(ref, y, [c + shift for c in cases], 1.0)
    assert len(scoring._DTW_MEMO) == scoring.DTW_MEMO_SIZE
    scoring.nn1_dtw_predict(ref, y, cases, 1.0)  # the first entry was dropped: computed again
    assert len(calls) == 8
