"""classify's fold committee (``data.committee``): member i trained on every fold but fold i with early stopping
on fold i, the members' probabilities averaged; no common validation split; exported as one graph; errors by
name."""

from __future__ import annotations

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
