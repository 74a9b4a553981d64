"""classify's fold committee (``data.committee``): member i trained on every fold but fold i with early stopping
on fold i, the members' probabilities averaged; no common validation split; exported as one graph; errors by
name."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lstmkit.export.rundir import export_run
from lstmkit.models import EnsembleClassifier
from lstmkit.tasks import ConfigError, TaskError, get_task, runner
from lstmkit.tasks.classify import loader, prepare_data, stratified_folds
from lstmkit.tasks.classify.scoring import predict_proba
from lstmkit.tasks.classify.steps import classify_step
from lstmkit.tasks.rundir import open_run
from lstmkit.train import evaluate, set_values


@pytest.fixture(scope="module")
def committee(tmp_path_factory):
    root = tmp_path_factory.mktemp("committee")
    base = set_values(get_task("classify").smoke_config(root), {"data.dtw_baseline": False})
    return runner.train("classify", set_values(base, {"data.folds": 3, "data.committee": True}), root / "run")


def test_each_member_is_validated_on_its_own_fold_and_the_committee_averages_them(committee):
    run = open_run(committee.run_dir)
    model = run.load_weights(run.task.build_model(run.config))
    assert isinstance(model, EnsembleClassifier) and len(model.members) == 3
    prepared = prepare_data(run.config)  # every training case in "train": none held out from all members
    assert len(prepared.cases["val"]) == 0 and len(prepared.cases["train"]) == 24
    fold = stratified_folds(prepared.targets["train"], 3, run.config.data.split_seed)
    members = committee.metrics["members"]
    assert [m["fold"] for m in members] == [0, 1, 2]
    for i, member in enumerate(model.members):
        cases = [x for x, f in zip(prepared.cases["train"], fold, strict=True) if f == i]
        loss = evaluate(member.eval(), loader(cases, prepared.targets["train"][fold == i], 256, shuffle=False),
                        classify_step)  # fmt: skip
        assert loss == pytest.approx(members[i]["best_val_loss"], rel=1e-4)  # its best epoch, on fold i's cases
    assert committee.metrics["cv_nats_per_sequence"] == pytest.approx(np.mean([m["best_val_loss"] for m in members]))
    cases = prepared.cases["test"]
    mean = np.mean([predict_proba(m, cases) for m in model.members], axis=0)
    np.testing.assert_allclose(predict_proba(model, cases), mean, rtol=1e-6, atol=1e-7)
    want = float(np.mean(mean.argmax(1) == prepared.targets["test"]))
    assert committee.metrics["test"]["accuracy"] == pytest.approx(want)
    assert committee.lines[1].startswith("committee of 3 fold models: cross-validation loss ")
    assert committee.metrics["nats_per_sequence"] is None and committee.metrics["val"] is None


def test_evaluate_export_and_config_errors_of_the_committee(committee, tmp_path):
    metrics, _ = runner.evaluate(committee.run_dir, "test")
    assert metrics["accuracy"] == committee.metrics["test"]["accuracy"]
    with pytest.raises(TaskError, match=r"no val cases: .* or data\.committee \(each member's own fold validated it"):
        runner.evaluate(committee.run_dir, "val")
    exported = export_run(committee.run_dir, out=tmp_path / "m.onnx")  # one verified graph of the 3 fold models
    assert len(exported.layers) == 3 and exported.max_abs_error is not None
    base = get_task("classify").smoke_config(tmp_path)
    with pytest.raises(ConfigError, match=r"^data\.committee trains one model per fold: it needs data\.folds >= 2 "
                                          r"\(got 0\) and data\.full_train=false$"):  # fmt: skip
        prepare_data(set_values(base, {"data.committee": True}))
    with pytest.raises(ConfigError, match=r"^data\.committee is an ensemble of the fold models already; "
                                          r"model\.ensemble must be 1, got 2$"):  # fmt: skip
        prepare_data(set_values(base, {"data.committee": True, "data.folds": 3, "model.ensemble": 2}))


def test_distill_makes_one_network_of_the_committee(committee, tmp_path):
    """lstmkit compress distill: the student is one network (not a committee of small ones), trained on every
    training case with the committee's scaling, for the budget given; a split the run lacks fails before training
    and leaves nothing behind."""
    from lstmkit.compress.rundir import distill_run
    from lstmkit.models import SequenceClassifier

    with pytest.raises(TaskError, match=r"^the run has no val cases: "):
        distill_run(committee.run_dir, tmp_path / "d0", hidden_size=4, progress=False)
    assert not (tmp_path / "d0").exists()
    report = distill_run(committee.run_dir, tmp_path / "d", hidden_size=4, splits=("test",), steps=4, repeats=2,
                         progress=False)  # fmt: skip
    run = open_run(tmp_path / "d")
    student = run.load_weights(run.task.build_model(run.config))
    assert type(student) is SequenceClassifier and student.config.hidden_size == 4
    assert run.config.data.full_train and not run.config.data.committee and run.config.model.ensemble == 1
    teacher_cases, student_cases = prepare_data(open_run(committee.run_dir).config), prepare_data(run.config)
    assert torch.equal(teacher_cases.scaler.mean, student_cases.scaler.mean)
    assert torch.equal(teacher_cases.scaler.std, student_cases.scaler.std)
    assert len(student_cases.cases["train"]) == 24 and not student_cases.cases["val"]
    assert report["options"]["steps"] == 4 and report["teacher_used"] and "test" in report["after"]["metric"]


def test_dba_cases_come_from_each_members_own_training_folds(tmp_path, monkeypatch):
    """data.dba: one synthetic case per training case, made from the cases the model trains on: a committee
    member's from every fold but its own (its validation fold never enters them); the run trains on both."""
    import lstmkit.tasks.classify.task as task_module

    seen = []
    real = task_module.synthetic_cases

    def spy(cases, targets, per_case, frame, seed):
        seen.append([c.copy() for c in cases])
        return real(cases, targets, per_case, frame, seed)

    monkeypatch.setattr(task_module, "synthetic_cases", spy)
    base = set_values(get_task("classify").smoke_config(tmp_path), {"data.dtw_baseline": False})
    config = set_values(base, {"data.folds": 3, "data.committee": True, "data.dba": 1})
    runner.train("classify", config, tmp_path / "run")
    prepared = prepare_data(open_run(tmp_path / "run").config)
    fold = stratified_folds(prepared.targets["train"], 3, config.data.split_seed)
    assert len(seen) == 4  # the preflight's count of the steps (every training case; nothing trains on it), then
    assert len(seen[0]) == len(prepared.cases["train"])  # each member's
    seen = seen[1:]
    for i, cases in enumerate(seen):
        want = [x for x, f in zip(prepared.cases["train"], fold, strict=True) if f != i]
        assert len(cases) == len(want) and all(np.array_equal(a, b) for a, b in zip(cases, want, strict=True))
    member = dataclasses.replace(prepared, cases={**prepared.cases, "train": seen[0]},
                                 targets={**prepared.targets, "train": prepared.targets["train"][fold != 0]})
    data = get_task("classify").training_data(member)
    assert len(data.train.dataset) == 2 * len(seen[0])  # the real cases, then as many averages of them
    with pytest.raises(ValueError, match=r"^data\.dba must be >= 0 \(synthetic cases per training case\), got -1$"):
        set_values(base, {"data.dba": -1})


def test_synthetic_cases_are_averaged_step_by_step_and_framed_again():
    from lstmkit.data.dba import synthesize
    from lstmkit.tasks.classify import synthetic_cases, to_frames

    rng = np.random.default_rng(0)
    steps = [rng.normal(size=(12, 2)) for _ in range(6)]  # (T, C): frames of 3 divide 12
    labels = np.array([0, 1, 0, 1, 0, 1])
    framed, framed_labels = synthetic_cases([to_frames(x, 3) for x in steps], labels, 1, 3, seed=4)
    plain, plain_labels = synthesize(steps, labels, 1, seed=4)
    assert framed_labels.tolist() == plain_labels.tolist()
    for a, b in zip(framed, plain, strict=True):
        assert a.shape == (4, 6)
        np.testing.assert_array_equal(a, to_frames(b, 3))
