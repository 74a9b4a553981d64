"""``lstmkit compress`` on a tiny moving-digits run (a ConvLSTM model), through the Task interface alone:
quantize and unstructured prune (with fine-tuning) work, are scored and load back; the methods the task
declares its model cannot take are refused with the reason before anything is written."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn.utils import parametrize

from lstmkit.compress import distill_run, lowrank_run, prune_run, quantize_run
from lstmkit.compress.prune import prunable
from lstmkit.compress.rundir import circulant_run, load_model
from lstmkit.formats.quantized import Dequantize
from lstmkit.tasks import TaskError, get_task, runner
from smoke import train_smoke

TASK = "moving-digits"


# The smoke config's "motion" output (its longest path), and the default "pixels" output
OUTPUTS = {"motion": {}, "pixels": {"model.correlation": False, "model.output": "pixels"}}


@pytest.fixture(scope="module", params=sorted(OUTPUTS))
def digits_run(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"compress-digits-{request.param}")
    return train_smoke(TASK, root, OUTPUTS[request.param]).run_dir


def _frames(run_dir):
    run, _ = load_model(run_dir)
    d = run.config.data
    return torch.rand(d.input_frames, 2, 1, d.canvas, d.canvas, generator=torch.Generator().manual_seed(1))


def test_quantize_runs_the_convlstm_from_its_integers(digits_run, tmp_path):
    report = quantize_run(digits_run, tmp_path / "q", bits=8, repeats=1)
    assert report["complete"] and report["task"] == TASK
    assert report["after"]["metric"]["val"]["name"] == "mse"  # the ConvLSTM's MSE per frame, scored
    assert report["after"]["tensor_bytes"] < report["before"]["tensor_bytes"]
    assert json.loads((tmp_path / "q" / "compression.json").read_text())["complete"]
    _, float_model = load_model(digits_run)
    _, qmodel = load_model(tmp_path / "q")  # what every command runs: the integers read back
    kernels = {n for n in prunable(float_model) if ".weight_ih_l" in n or ".weight_hh_l" in n}
    assert len(kernels) == 4  # encoder and forecaster (one layer each in the smoke config): W_ih and W_hh
    for name in kernels:  # every ConvLSTM kernel is a Dequantize parametrization, within Delta / 2 of the float
        module_name, _, attr = name.rpartition(".")
        module = qmodel.get_submodule(module_name)
        assert parametrize.is_parametrized(module, attr)
        dq = module.parametrizations[attr][0]
        assert isinstance(dq, Dequantize)
        w, wq = float_model.get_parameter(name), getattr(module, attr)
        assert not torch.equal(w, wq)
        assert torch.all((w - wq).abs().flatten(1) <= dq.scale[:, None] / 2 * (1 + 1e-6))
    # The quantised model computes exactly the float model with the dequantised weights put in.
    rebuilt = load_model(digits_run)[1]
    with torch.no_grad():
        for name, _ in rebuilt.named_parameters():
            module_name, _, attr = name.rpartition(".")
            rebuilt.get_parameter(name).copy_(getattr(qmodel.get_submodule(module_name), attr))
        x = _frames(digits_run)
        assert torch.equal(qmodel(x), rebuilt(x))
        assert not torch.equal(qmodel(x), float_model(x))
    metrics, _ = runner.evaluate(tmp_path / "q", "test")
    assert metrics["scores"]["ConvLSTM"]["mse"] > 0


def test_prune_with_finetuning_keeps_the_zeros_and_loads_back(digits_run, tmp_path):
    report = prune_run(digits_run, tmp_path / "p", sparsity=0.5, steps=2, finetune_steps=2, repeats=1,
                       progress=False)  # fmt: skip
    assert [f["steps"] for f in report["finetune"]] == [2, 2]  # the task's own batches and step
    assert report["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert report["after"]["metric"]["val"]["name"] == "mse"
    _, pruned = load_model(tmp_path / "p")
    names = prunable(pruned)
    assert any(".weight_hh_l" in n for n in names)  # the ConvLSTM kernels are among the pruned tensors
    for name in names:  # each tensor lost its share (scope "layer"), fine-tuning did not regrow them
        p = pruned.get_parameter(name)
        assert (p == 0).float().mean().item() == pytest.approx(0.5, abs=0.5 / p.numel() + 1e-9), name
    metrics, _ = runner.evaluate(tmp_path / "p", "val")
    assert metrics["scores"]["ConvLSTM"]["mse"] > 0


@pytest.mark.parametrize("method", ["prune --structured", "lowrank", "circulant", "distill"])
def test_methods_the_task_declares_unsupported_are_refused_before_any_work(digits_run, tmp_path, method):
    why = get_task(TASK).compression_limits[method]
    calls = {
        "prune --structured": lambda out: prune_run(digits_run, out, sparsity=0.5, structured=True, repeats=1),
        "lowrank": lambda out: lowrank_run(digits_run, out, rank=1, repeats=1),
        "circulant": lambda out: circulant_run(digits_run, out, block=2, repeats=1),
        "distill": lambda out: distill_run(digits_run, out, hidden_size=2, steps=1, repeats=1),
    }
    with pytest.raises(TaskError) as info:
        calls[method](tmp_path / "out")
    assert str(info.value) == f"lstmkit compress {method} does not handle the {TASK} task's model: {why}"
    assert not (tmp_path / "out").exists()
