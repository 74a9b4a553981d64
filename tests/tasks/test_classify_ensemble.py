"""classify's seed ensemble (``model.ensemble``): members trained as single runs would be, probabilities averaged,
saved, reloaded and evaluated as one model, and exported as one ONNX graph."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from lstmkit.data import pad_collate
from lstmkit.export.onnx_model import verification_tolerance
from lstmkit.export.rundir import export_run
from lstmkit.models import ClassifyModel, EnsembleClassifier
from lstmkit.tasks import get_task, runner
from lstmkit.tasks.classify import prepare_data
from lstmkit.tasks.classify.scoring import predict_proba
from lstmkit.tasks.rundir import open_run
from lstmkit.train import set_values


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An ensemble of 2 (seeds 0 and 1) and the two single runs it should be made of."""
    root = tmp_path_factory.mktemp("ensemble")
    base = set_values(get_task("classify").smoke_config(root), {"data.dtw_baseline": False})
    ensemble = runner.train("classify", set_values(base, {"model.ensemble": 2}), root / "ens")
    singles = [runner.train("classify", set_values(base, {"train.seed": s}), root / f"s{s}") for s in (0, 1)]
    return ensemble, singles


def test_members_are_the_single_runs_and_the_probabilities_their_mean(runs):
    ensemble, singles = runs
    run = open_run(ensemble.run_dir)
    model = run.load_weights(run.task.build_model(run.config))
    assert isinstance(model, EnsembleClassifier) and len(model.members) == 2
    prepared = prepare_data(run.config)
    cases = prepared.cases["test"]
    single_probs = []
    for member, single in zip(model.members, singles, strict=True):
        s = open_run(single.run_dir)
        alone = s.load_weights(s.task.build_model(s.config))
        for (name, a), b in zip(member.state_dict().items(), alone.state_dict().values(), strict=True):
            assert torch.equal(a, b), name  # trained exactly as the single run of that seed
        single_probs.append(predict_proba(alone, cases))
    mean = np.mean(single_probs, axis=0)
    assert not np.allclose(single_probs[0], single_probs[1])  # two different members, or the mean proves nothing
    np.testing.assert_allclose(predict_proba(model, cases), mean, rtol=1e-6, atol=1e-7)
    want = float(np.mean(mean.argmax(1) == prepared.targets["test"]))
    assert ensemble.metrics["test"]["accuracy"] == pytest.approx(want)
    assert [m["seed"] for m in ensemble.metrics["members"]] == [0, 1]
    assert all((ensemble.run_dir / "members" / str(i) / "model.safetensors").is_file() for i in (0, 1))
    assert "ensemble of 2" in ensemble.lines[1]


def test_evaluate_reloads_the_ensemble(runs):
    ensemble, _ = runs
    metrics, _ = runner.evaluate(ensemble.run_dir, "test")
    assert metrics["accuracy"] == ensemble.metrics["test"]["accuracy"]
    assert metrics["nats_per_sequence"] == pytest.approx(ensemble.metrics["test"]["nats_per_sequence"], rel=1e-6)


def test_export_writes_the_ensemble_as_one_graph(runs, tmp_path):
    """lstmkit export: one verified graph; on the test cases, preprocessed as the task does, its probabilities are
    the ensemble's (within the derived float32 bound); --int8 refused by name before anything is written."""
    ensemble, _ = runs
    result = export_run(ensemble.run_dir, out=tmp_path / "e.onnx")
    assert result.outputs == ("logits", "probabilities") and len(result.layers) == 2
    run = open_run(ensemble.run_dir)
    model = run.load_weights(run.task.build_model(run.config))
    cases = prepare_data(run.config).cases["test"]
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x, lengths, _ = pad_collate([torch.from_numpy(c) for c in cases])
    inputs = {"features": x, "lengths": lengths}
    (probs,) = session.run(["probabilities"], {k: v.numpy() for k, v in inputs.items()})
    atol, rtol = verification_tolerance(model, inputs)
    np.testing.assert_allclose(probs, predict_proba(model, cases), atol=atol, rtol=rtol)
    with pytest.raises(ValueError, match=r"^--int8 does not cover this model \(EnsembleClassifier\): the int8 check "
                                         r"bounds one classifier's graph, not an average of several"):  # fmt: skip
        export_run(ensemble.run_dir, out=tmp_path / "q.onnx", int8=True)
    assert not (tmp_path / "q.onnx").exists() and not (tmp_path / "q.int8.onnx").exists()


def test_distill_makes_one_network_of_the_ensemble(runs, tmp_path):
    """The student of a seed ensemble is one network on the ensemble's own split (its validation part too)."""
    from lstmkit.compress.rundir import distill_run
    from lstmkit.models import SequenceClassifier

    ensemble, _ = runs
    distill_run(ensemble.run_dir, tmp_path / "d", hidden_size=4, steps=4, repeats=2, progress=False)
    run = open_run(tmp_path / "d")
    assert type(run.load_weights(run.task.build_model(run.config))) is SequenceClassifier
    assert run.config.model.ensemble == 1
    teacher, student = prepare_data(open_run(ensemble.run_dir).config), prepare_data(run.config)
    assert len(student.cases["val"]) == len(teacher.cases["val"]) > 0
    assert torch.equal(teacher.scaler.mean, student.scaler.mean)


@pytest.mark.parametrize(("bad", "says"), [(0, "must be >= 1"), (-1, "must be >= 1"), (True, "expected int"),
                                           (1.5, "expected int")])  # fmt: skip
def test_ensemble_size_is_checked(bad, says):
    with pytest.raises(ValueError, match=rf"model\.ensemble:? {says}"):
        ClassifyModel(ensemble=bad)
    with pytest.raises(ValueError, match="at least 2 members"):
        EnsembleClassifier([])
