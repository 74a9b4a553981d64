"""``lstmkit select`` (``lstmkit.tasks.selection``): every candidate a run of its own, the lowest validation loss
kept, ``selection.json`` written atomically, a second call resumes without retraining; the candidates of
``classify`` (fold committees below 100 training cases) and ``forecast``; errors by exact message."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.data import dba
from lstmkit.tasks import ConfigError, TaskError, get_task, runner
from lstmkit.tasks.classify.data import write_toy_ts
from lstmkit.tasks.classify.select import (
    CANDIDATES,
    DIFFERENCES,
    FOLDS,
    POOL_ABOVE,
    POOL_TO,
    SMALL_DBA,
    SMALL_TRAIN,
    choose_with_variants,
    pooled_name,
    resampled_name,
    select_length,
    select_pool,
)
from lstmkit.tasks.selection import SELECTION, select, slug
from lstmkit.train import set_values


@pytest.fixture(scope="module")
def classify_selection(tmp_path_factory):
    root = tmp_path_factory.mktemp("select-classify")
    base = set_values(get_task("classify").smoke_config(root), {"data.dtw_baseline": False})
    lines = []
    result = select("classify", base, root / "sel", progress=lines.append)
    return base, result, lines


def test_classify_below_100_cases_offers_each_architecture_as_a_fold_committee(tmp_path, monkeypatch):
    base = get_task("classify").smoke_config(tmp_path)
    offered = get_task("classify").candidates(base)  # the toy set has 24 training cases of 6-12 steps
    assert list(CANDIDATES) == ["biLSTM", "LSTM-FCN", "ALSTM-FCN"]
    every = [*CANDIDATES, *(name + " + differences" for name in CANDIDATES)]
    assert list(offered) == [*every, *(resampled_name(name, 10) for name in every)]  # their median: 10 steps
    for name, values in CANDIDATES.items():
        small = {**values, "data.folds": FOLDS, "data.fold": 0, "data.committee": True, "data.dba": SMALL_DBA}
        assert offered[name] == small
        assert offered[name + DIFFERENCES] == {**small, "data.differences": True}
        assert offered[resampled_name(name, 10)] == {**small, "data.length": 10}
    # A config that reads the differences already: nothing to vary but the length.
    assert list(get_task("classify").candidates(set_values(base, {"data.differences": True}))) == [
        *CANDIDATES, *(resampled_name(name, 10) for name in CANDIDATES)]
    # Cases too long to average in reasonable time: the committees without the synthetic cases.
    monkeypatch.setattr("lstmkit.tasks.classify.task.DBA_MAX_CELLS", 10)
    for values in get_task("classify").candidates(base).values():
        assert "data.dba" not in values and values["data.committee"] is True
    # From 100 training cases up: the candidates as they are, early-stopped on the config's own hold-out.
    big = tmp_path / "big"
    big.mkdir()
    train, test = write_toy_ts(big, n_train=SMALL_TRAIN)
    many = set_values(get_task("classify").smoke_config(tmp_path), {"data.train": str(train), "data.test": str(test)})
    assert get_task("classify").candidates(many) == {
        **CANDIDATES, **{resampled_name(name, 9): {**v, "data.length": 9} for name, v in CANDIDATES.items()}}  # 7-12
    few = set_values(many, {"data.train": str(write_toy_ts(tmp_path, n_train=SMALL_TRAIN - 1)[0])})
    assert get_task("classify").candidates(few)["biLSTM"]["data.committee"] is True
    # From 100 cases up with a class of two to four cases: fold committees, as many folds as that class has cases,
    # with no synthetic cases and no differences (PigCVP's 52 pairs: 2 folds).
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    rows = [f"{c}\t" + "\t".join(f"{(c * 7 + i) % 5 + 0.1 * j:.2f}" for j in range(8))
            for c in range(52) for i in (0, 1)]  # fmt: skip
    for name in ("pairs_TRAIN.tsv", "pairs_TEST.tsv"):
        (pairs / name).write_text("\n".join(rows) + "\n")
    paired = set_values(many, {"data.train": str(pairs / "pairs_TRAIN.tsv"),
                               "data.test": str(pairs / "pairs_TEST.tsv")})  # fmt: skip
    committees = {"data.folds": 2, "data.fold": 0, "data.committee": True}
    assert get_task("classify").candidates(paired) == {name: {**v, **committees} for name, v in CANDIDATES.items()}


def test_long_cases_are_offered_pooled_beside_every_step(tmp_path, monkeypatch):
    """Above POOL_ABOVE steps (the training cases' median) every candidate is offered again reading the cases pooled
    to about POOL_TO steps, chosen like the others; a config that sets data.pool keeps it for all; the synthetic
    cases' cost is counted on the steps each candidate reads."""
    assert (POOL_ABOVE, POOL_TO) == (512, 64)
    assert select_pool([2000] * 3) == 31 and select_pool([1460]) == 23  # PigCVP, ACSF1
    assert select_pool([POOL_ABOVE] * 5) == 1 and select_pool([POOL_ABOVE + 1]) == 8  # the line: above it only
    assert select_pool([100, 300, 1344]) == 1 and select_pool([300, 1344]) == 13  # the median decides (PLAID: 300)
    assert pooled_name("LSTM-FCN", 31) == "LSTM-FCN pooled by 31"
    assert pooled_name("biLSTM" + DIFFERENCES, 9) == "biLSTM pooled by 9" + DIFFERENCES  # still a variant
    long = tmp_path / "long"
    long.mkdir()
    rows = [f"{c}\t" + "\t".join(f"{(c * 7 + i + j) % 5:.1f}" for j in range(600)) for c in range(2) for i in range(10)]
    for name in ("long_TRAIN.tsv", "long_TEST.tsv"):
        (long / name).write_text("\n".join(rows) + "\n")
    base = set_values(get_task("classify").smoke_config(tmp_path), {"data.train": str(long / "long_TRAIN.tsv"),
                                                                      "data.test": str(long / "long_TEST.tsv")})
    pooled_cells = dba.cells([-(-600 // 9)] * 20, [c for c in range(2) for _ in range(10)], SMALL_DBA)
    monkeypatch.setattr("lstmkit.tasks.classify.task.DBA_MAX_CELLS", pooled_cells)  # 81 times fewer than unpooled
    offered = get_task("classify").candidates(base)  # 20 cases of 600 steps: pooled by round(600 / 64) = 9
    every = [*CANDIDATES, *(name + DIFFERENCES for name in CANDIDATES)]
    assert list(offered) == [*every, *(pooled_name(name, 9) for name in every)]
    small = {"data.folds": FOLDS, "data.fold": 0, "data.committee": True}
    for name, values in CANDIDATES.items():
        assert offered[name] == {**values, **small}  # every step: too many DTW cells for the synthetic cases
        assert offered[pooled_name(name, 9)] == {**values, **small, "data.pool": 9, "data.dba": SMALL_DBA}
        assert offered[pooled_name(name + DIFFERENCES, 9)] == {**values, **small, "data.pool": 9,
                                                               "data.dba": SMALL_DBA, "data.differences": True}
    own = get_task("classify").candidates(set_values(base, {"data.pool": 3}))
    assert list(own) == every and all("data.pool" not in v for v in own.values())  # the config's data.pool stands
    assert all("data.pool" not in v for v in get_task("classify").candidates(
        get_task("classify").smoke_config(tmp_path)).values())  # 6-12 steps: none pooled
    # The choice: the lowest loss among the plain candidates, pooled or not; a pooled differences variant is a variant.
    losses = {"LSTM-FCN": 3.2, pooled_name("LSTM-FCN", 9): 2.1, pooled_name("LSTM-FCN" + DIFFERENCES, 9): 2.0}
    assert choose_with_variants(losses) == pooled_name("LSTM-FCN", 9)  # 2.0 is not 10% below 2.1


def test_cases_of_different_lengths_are_offered_resampled_to_their_median(tmp_path):
    """Where the training cases' lengths differ, every candidate is offered again reading each case resampled to
    their median length (data.length), beside the others and chosen like them; not where the lengths are equal or
    the config sets data.length; pooled copies are offered from the lengths before resampling."""
    assert select_length([7, 15, 26]) == 15  # JapaneseVowels' shortest, median and longest
    assert select_length([100, 200, 300, 434, 1344]) == 300  # PLAID's quartiles
    assert select_length([24] * 20) == 0 and select_length([5]) == 0  # one length: nothing to resample
    assert select_length([2, 3]) == 2 and select_length([1, 2]) == 2  # the median rounded, never below 2 steps
    assert resampled_name("LSTM-FCN", 300) == "LSTM-FCN resampled to 300"
    assert resampled_name("biLSTM" + DIFFERENCES, 15) == "biLSTM resampled to 15" + DIFFERENCES  # still a variant
    base = get_task("classify").smoke_config(tmp_path)
    own = get_task("classify").candidates(set_values(base, {"data.length": 12}))
    assert all("data.length" not in v for v in own.values()) and len(own) == 2 * len(CANDIDATES)  # the config's stands
    # Long cases of different lengths: the pooled copies come from the lengths as they are (median 700: by 11), the
    # resampled ones read every case at the median length, every step.
    long = tmp_path / "long"
    long.mkdir()
    rows = [f"{c}\t" + "\t".join(f"{(c * 7 + i + j) % 5:.1f}" for j in range(600 + 100 * (i % 3)))
            for c in range(2) for i in range(60)]  # fmt: skip
    for name in ("long_TRAIN.tsv", "long_TEST.tsv"):
        (long / name).write_text("\n".join(rows) + "\n")
    many = set_values(base, {"data.train": str(long / "long_TRAIN.tsv"), "data.test": str(long / "long_TEST.tsv")})
    offered = get_task("classify").candidates(many)  # 120 cases: the hold-out plan, no variants
    assert list(offered) == [*CANDIDATES, *(pooled_name(n, 11) for n in CANDIDATES),
                             *(resampled_name(n, 700) for n in CANDIDATES)]  # fmt: skip
    for name, values in CANDIDATES.items():
        assert offered[resampled_name(name, 700)] == {**values, "data.length": 700}
    # The choice: the lowest loss among the plain candidates, resampled or not.
    losses = {"LSTM-FCN": 0.67, resampled_name("LSTM-FCN", 300): 0.39, "ALSTM-FCN": 0.66}
    assert choose_with_variants(losses) == resampled_name("LSTM-FCN", 300)


def test_the_lowest_validation_loss_is_chosen_and_recorded(classify_selection):
    _, result, lines = classify_selection
    record = json.loads((result.out / SELECTION).read_text())
    assert record["format"] == "lstmkit-selection" and record["status"] == "done" and record["task"] == "classify"
    losses = {}
    for c in result.candidates:
        summary = json.loads((c.run_dir / "summary.json").read_text())
        assert c.validation_loss == summary["cv_nats_per_sequence"]  # the committee's cross-validation loss
        assert record["candidates"][c.name]["validation_loss"] == c.validation_loss
        assert record["candidates"][c.name]["run"] == f"candidates/{slug(c.name)}"
        assert c.run_dir == result.out / "candidates" / slug(c.name)
        losses[c.name] = c.validation_loss
    assert result.chosen.name == choose_with_variants(losses) == record["chosen"]
    assert record["rule"] == ("the lowest validation loss; a candidate with first differences only when its loss is "
                              "lower than every plain one's by 10% and 0.01 nats (the test split is not read for "
                              "the choice)")  # fmt: skip
    assert record["chosen_run"] == f"candidates/{slug(result.chosen.name)}"
    assert lines[0] == f"candidate biLSTM: training into {result.out / 'candidates' / 'bilstm'}"
    assert lines[1].startswith("candidate biLSTM: validation loss ")
    metrics, _ = runner.evaluate(result.chosen.run_dir, "test")  # the chosen run is an ordinary run directory
    summary = json.loads((result.chosen.run_dir / "summary.json").read_text())
    assert metrics["accuracy"] == summary["test"]["accuracy"]


def test_a_selection_directory_given_as_a_run_names_its_chosen_run(classify_selection, tmp_path):
    """evaluate, export and compress take run directories; given the selection's own directory they say which run
    to pass; a selection.json whose chosen_run would leave the directory is not repeated in the message."""
    _, result, _ = classify_selection
    want = (rf"^{result.out} is a selection \(`lstmkit select`\), not a run directory: pass its chosen run, "
            rf"{result.chosen.run_dir}$")  # fmt: skip
    with pytest.raises(TaskError, match=want):
        runner.evaluate(result.out, "test")
    from lstmkit.export.rundir import export_run

    with pytest.raises(TaskError, match=want):
        export_run(result.out, out=tmp_path / "m.onnx")
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / SELECTION).write_text(json.dumps({"chosen_run": "../../elsewhere"}))
    with pytest.raises(TaskError, match=r"its selection\.json names no chosen run yet"):
        runner.evaluate(forged, "test")


def test_a_second_call_resumes_every_candidate_without_retraining(classify_selection):
    base, first, _ = classify_selection
    before = {c.name: (c.run_dir / "model.safetensors").read_bytes() for c in first.candidates}
    again = select("classify", base, first.out)
    assert all(c.resumed for c in again.candidates)
    losses = {c.name: c.validation_loss for c in first.candidates}
    assert {c.name: c.validation_loss for c in again.candidates} == losses
    assert {c.name: (c.run_dir / "model.safetensors").read_bytes() for c in again.candidates} == before
    with pytest.raises(TaskError, match=r"^--out .*bilstm holds a run with a different config \(changed: "
                                        r"\['train\.seed'\]\)"):  # fmt: skip
        select("classify", set_values(base, {"train.seed": 5}), first.out)
    with pytest.raises(TaskError, match=r"^--out .*sel holds a selection of task 'classify', not 'forecast'; choose "
                                        r"another directory$"):  # fmt: skip
        select("forecast", get_task("forecast").smoke_config(first.out.parent), first.out)
    names = sorted(n + s for n in CANDIDATES for s in ("", " resampled to 10") for s in (s, s + DIFFERENCES))
    with pytest.raises(TaskError, match=r"^--out .*sel holds a selection among other candidates "
                                        + re.escape(f"({names}); choose another directory, or repeat the same "
                                                    "settings to resume it") + "$"):  # fmt: skip
        select("classify", base, first.out, only=["biLSTM"])


def test_forecast_offers_the_ar_skip_and_the_level_free_reading(tmp_path):
    base = get_task("forecast").smoke_config(tmp_path)
    offered = get_task("forecast").candidates(base)
    assert offered == {
        "AR skip": {"model.ar_skip": True, "model.relative": False},
        "AR skip, relative": {"model.ar_skip": True, "model.relative": True},
        "no AR skip": {"model.ar_skip": False, "model.relative": False},
        "no AR skip, relative": {"model.ar_skip": False, "model.relative": True},
    }
    on_base = set_values(base, {"model.base": "ets", "model.ar_skip": False})
    assert get_task("forecast").candidates(on_base) == {"ETS base": {"model.relative": False},
                                                       "ETS base, relative": {"model.relative": True}}  # fmt: skip
    result = select("forecast", base, tmp_path / "sel")
    for c in result.candidates:
        assert c.validation_loss == json.loads((c.run_dir / "summary.json").read_text())["mse"]
    assert result.chosen.validation_loss == min(c.validation_loss for c in result.candidates)
    assert json.loads((result.out / SELECTION).read_text())["chosen"] == result.chosen.name


def test_refusals_name_the_problem_before_any_run(tmp_path):
    with pytest.raises(ConfigError, match=r"^lstmkit select chooses on validation cases, and data\.full_train leaves "
                                          r"none: unset it$"):  # fmt: skip
        select("classify", set_values(get_task("classify").smoke_config(tmp_path), {"data.full_train": True}),
               tmp_path / "a")  # fmt: skip
    with pytest.raises(ConfigError, match=r"^lstmkit select chooses on the validation window, and data\.full_train "
                                          r"trains on it: unset it$"):  # fmt: skip
        select("forecast", set_values(get_task("forecast").smoke_config(tmp_path), {"data.full_train": True}),
               tmp_path / "a")  # fmt: skip
    with pytest.raises(TaskError, match=r"^task 'charlm' offers no candidate settings to choose among; train one "
                                        r"with `lstmkit train`$"):  # fmt: skip
        select("charlm", get_task("charlm").smoke_config(tmp_path), tmp_path / "a")
    suffixes = ("", DIFFERENCES, " resampled to 10", " resampled to 10" + DIFFERENCES)
    offered = [n + s for s in suffixes for n in CANDIDATES]
    assert offered[:3] == ["biLSTM", "LSTM-FCN", "ALSTM-FCN"]
    with pytest.raises(ConfigError, match=r"^--candidates: \['BiLSTM'\] not offered; task 'classify' offers "
                                          + re.escape(f"{offered}") + "$"):  # fmt: skip
        select("classify", get_task("classify").smoke_config(tmp_path), tmp_path / "a", only=["BiLSTM"])
    assert not (tmp_path / "a").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(TaskError, match=r"^--out .*busy exists and holds no selection\.json: choose a new or empty "
                                        r"directory$"):  # fmt: skip
        select("forecast", get_task("forecast").smoke_config(tmp_path), tmp_path / "busy")
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"]


def test_a_candidate_the_data_refuses_is_skipped_with_the_reason(tmp_path):
    base = set_values(get_task("classify").smoke_config(tmp_path), {"data.frame": 2, "data.dtw_baseline": False})
    result = select("classify", base, tmp_path / "sel")
    why = "model.arch=lstm-fcn reads every step (its conv branch); data.frame must be 0 or 1, got 2"
    suffixes = ("", DIFFERENCES, " resampled to 10", " resampled to 10" + DIFFERENCES)
    assert [c.name for c in result.candidates] == ["biLSTM" + s for s in suffixes]
    assert result.chosen.name == choose_with_variants({c.name: c.validation_loss for c in result.candidates})
    assert list(result.skipped) == [n + s for s in suffixes for n in ("LSTM-FCN", "ALSTM-FCN")]
    assert all(v.startswith(why) for v in result.skipped.values())
    record = json.loads((tmp_path / "sel" / SELECTION).read_text())
    assert record["candidates"]["LSTM-FCN"]["skipped"] == result.skipped["LSTM-FCN"]
    assert not (tmp_path / "sel" / "candidates" / "lstm-fcn").exists()
    low = set_values(base, {"data.frame": 0, "train.warmup_steps": 500})  # every candidate refuses it alike
    with pytest.raises(ConfigError, match=r"^no candidate could be trained on this config and data \(train\."
                                          r"warmup_steps \(500\) must be below the run's 6 steps; lower "
                                          r"train\.warmup_steps or raise train\.max_steps\)$"):  # fmt: skip
        select("classify", low, tmp_path / "low")
    assert json.loads((tmp_path / "low" / SELECTION).read_text())["status"] == "failed"


def test_a_differences_variant_must_win_by_both_margins():
    """10% and 0.01 nats below the best plain candidate's loss, both, or the plain choice stands."""
    plain = {"biLSTM": 0.50, "LSTM-FCN": 0.60}
    assert choose_with_variants({**plain, "LSTM-FCN + differences": 0.45}) == "LSTM-FCN + differences"  # exactly 10%
    assert choose_with_variants({**plain, "LSTM-FCN + differences": 0.4501}) == "biLSTM"  # 9.98% lower
    assert choose_with_variants({"biLSTM": 0.05, "biLSTM + differences": 0.041}) == "biLSTM"  # 18% but 0.009 nats
    assert choose_with_variants({"biLSTM": 0.05, "biLSTM + differences": 0.04}) == "biLSTM + differences"
    assert choose_with_variants({"biLSTM": 0.002, "biLSTM + differences": 0.0001}) == "biLSTM"  # thousandths: noise
    # the best of each kind is compared; one kind alone: its lowest loss; ties: the first listed
    assert choose_with_variants({**plain, "biLSTM + differences": 0.3, "ALSTM-FCN + differences": 0.2}) == \
           "ALSTM-FCN + differences"  # fmt: skip
    assert choose_with_variants({"biLSTM + differences": 0.3, "LSTM-FCN + differences": 0.2}) == \
           "LSTM-FCN + differences"  # fmt: skip
    assert choose_with_variants({"LSTM-FCN": 0.2, "biLSTM": 0.2}) == "LSTM-FCN"
    with pytest.raises(ValueError, match=r"^no finished candidate to choose among$"):
        choose_with_variants({})
    assert get_task("forecast").choose({"a": 0.2, "b": 0.1})[0] == "b"  # other tasks: the lowest loss


def test_slugs_name_the_candidate_folders():
    assert slug("no AR skip, relative") == "no-ar-skip-relative"
    assert slug("ALSTM-FCN") == "alstm-fcn"
    with pytest.raises(TaskError, match=r"^candidate name '\.\.\.' has no letters or digits to name its folder$"):
        slug("...")


def test_the_command_prints_the_choice_and_exits_2_on_a_bad_key(tmp_path):
    csv = tmp_path / "forecast_smoke.csv"
    get_task("forecast").smoke_config(tmp_path)  # writes the CSV
    keys = ["data.column=y", "data.window=6", "data.horizon=2", "data.season=6", "data.test_size=12",
            "data.val_size=12", "data.batch_size=8", "data.auto_baselines=false", "model.hidden_size=8",
            "train.epochs=2", "train.progress=false", "train.tensorboard=false"]  # fmt: skip
    args = ["select", "--task", "forecast", "--set", f"data.csv={csv}"]
    for k in keys:
        args += ["--set", k]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "sel"), "--candidates", "AR skip, no AR skip"])
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "sel" / SELECTION).read_text())
    assert list(record["candidates"]) == ["AR skip", "no AR skip"]
    assert f"chosen: {record['chosen']}, by the lowest validation loss (the test split is not read for the " \
           "choice)" in r.output  # fmt: skip
    assert f"selection: {tmp_path / 'sel' / SELECTION}" in r.output
    r = CliRunner().invoke(app, ["select", "--task", "forecast", "--set", "model.no_such_key=1", "--out",
                                 str(tmp_path / "never")])  # fmt: skip
    assert r.exit_code == 2 and "model.no_such_key" in r.output and not (tmp_path / "never").exists()
