"""`lstmkit compress` end to end on tiny runs: every subcommand writes a run directory that the other
commands accept, with compression.json; bad input fails with a clear message."""

from __future__ import annotations

import json
import shutil

import pytest
import safetensors
import torch
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.compress import load_model
from lstmkit.formats.quantized import Dequantize
from lstmkit.tasks import runner


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def report(out):
    return json.loads((out / "compression.json").read_text(encoding="utf-8"))


def test_quantize_writes_integers_that_evaluate_generate_and_export_run_from(char_run, tmp_path):
    out = tmp_path / "q8"
    r = invoke("compress", "quantize", char_run, "--out", out, "--repeats", 3, "--compare-torch", "--split", "val",
               "--split", "test")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "smaller" in r.stdout and "torch_ao_dynamic_int8" in r.stdout
    rep = report(out)
    assert rep["method"] == "quantize" and rep["complete"] and rep["options"] == {"bits": 8, "per_channel": True}
    assert rep["after"]["model_bytes"] < rep["before"]["model_bytes"] / 2
    assert set(rep["after"]["metrics"]) == {"val", "test"}
    assert rep["after"]["latency_ms"]["min"] > 0 and rep["torch_ao"]["models"]["torch_ao_dynamic_int8"]["bytes"] > 0
    with safetensors.safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert f.get_tensor("rnn.weight_hh_l0.__q").dtype == torch.uint8
    _, model = load_model(out)
    assert any(isinstance(m, Dequantize) for m in model.modules())
    metrics, _ = runner.evaluate(out, "val")  # `lstmkit evaluate` runs the integer model
    assert metrics["nats_per_char"] == pytest.approx(rep["after"]["metrics"]["val"]["nats_per_char"])
    assert invoke("generate", out, "--length", 20).exit_code == 0
    pytest.importorskip("onnxruntime")
    e = invoke("export", out, "--out", tmp_path / "q.onnx")
    assert e.exit_code == 0, e.output


def test_four_bits_per_tensor(classify_run, tmp_path):
    out = tmp_path / "q4"
    r = invoke("compress", "quantize", classify_run, "--out", out, "--bits", 4, "--per-tensor", "--repeats", 2)
    assert r.exit_code == 0, r.output
    rep = report(out)
    assert rep["options"] == {"bits": 4, "per_channel": False} and rep["change"]["tensor_size_ratio"] > 2
    assert invoke("evaluate", out, "--split", "test").exit_code == 0


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_unstructured_pruning_with_fine_tuning(char_run, tmp_path, scope):
    out = tmp_path / f"p-{scope}"
    r = invoke("compress", "prune", char_run, "--out", out, "--sparsity", 0.5, "--scope", scope, "--steps", 2,
               "--finetune-steps", 3, "--repeats", 2)  # fmt: skip
    assert r.exit_code == 0, r.output
    rep = report(out)
    assert rep["sparsity"] == pytest.approx(rep["pruned_weights"] / rep["weights"])
    if scope == "layer":
        assert rep["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert len(rep["finetune"]) == 2 and rep["finetune"][0]["steps"] == 3
    _, model = load_model(out)
    weights = [p for p in model.parameters() if p.ndim >= 2]
    zeros = sum(int((p == 0).sum()) for p in weights)
    assert zeros == rep["pruned_weights"]  # fine-tuning did not revive any pruned weight
    assert invoke("evaluate", out).exit_code == 0


@pytest.mark.parametrize("fixture", ["char_run", "classify_run"])
def test_structured_pruning_halves_the_hidden_size(fixture, request, tmp_path):
    src = request.getfixturevalue(fixture)
    out = tmp_path / "s50"
    r = invoke("compress", "prune", src, "--out", out, "--sparsity", 0.5, "--structured", "--finetune-steps", 2,
               "--repeats", 2)  # fmt: skip
    assert r.exit_code == 0, r.output
    rep = report(out)
    H = rep["hidden_size"]["before"]
    assert rep["hidden_size"]["after"] == H // 2 and rep["change"]["parameter_ratio"] > 2
    run, model = load_model(out)
    assert run.config.model.hidden_size == H // 2 and model.rnn.hidden_size == H // 2
    assert invoke("evaluate", out).exit_code == 0


def test_lowrank_with_fine_tuning(char_run, tmp_path):
    out = tmp_path / "lr"
    r = invoke("compress", "lowrank", char_run, "--out", out, "--rank", 4, "--finetune-steps", 2, "--repeats", 2)
    assert r.exit_code == 0, r.output
    rep = report(out)
    assert set(rep["ranks"].values()) == {4} and rep["change"]["parameter_ratio"] > 1
    assert invoke("evaluate", out).exit_code == 0 and invoke("generate", out, "--length", 5).exit_code == 0


@pytest.mark.parametrize("fixture", ["char_run", "classify_run"])
def test_distill_a_half_size_student(fixture, request, tmp_path):
    src = request.getfixturevalue(fixture)
    out = tmp_path / "student"
    r = invoke("compress", "distill", src, "--out", out, "--hidden-size", 4, "--steps", 3, "--alpha", 0.5,
               "--temperature", 2, "--repeats", 2, "--set", "train.lr=0.01")  # fmt: skip
    assert r.exit_code == 0, r.output
    rep = report(out)
    assert rep["student_parameters"] < rep["teacher_parameters"] and rep["options"]["steps"] == 3
    run, _ = load_model(out)
    assert run.config.model.hidden_size == 4 and run.config.train.lr == 0.01
    assert invoke("evaluate", out).exit_code == 0


def test_bad_input_is_refused_with_a_message(char_run, tmp_path):
    cases = [
        (["quantize", char_run, "--bits", 9], 2, "bits must be an integer from 2 to 8"),
        (["quantize", char_run, "--bits", 1], 2, "bits must be an integer from 2 to 8"),
        (["prune", char_run, "--sparsity", 1.0], 2, "sparsity must be a number in [0, 1)"),
        (["prune", char_run, "--sparsity", -0.5], 2, "sparsity must be a number in [0, 1)"),
        (["distill", char_run, "--hidden-size", 16], 2, "student must be smaller than the teacher"),
        (["distill", char_run, "--hidden-size", 64], 2, "student must be smaller than the teacher"),
        (["lowrank", char_run], 2, "exactly one of --rank and --energy"),
    ]
    for i, (args, code, message) in enumerate(cases):
        r = invoke("compress", *args, "--out", tmp_path / f"bad{i}")
        assert r.exit_code == code and message in r.stderr, (args, r.output)
        assert "Try 'lstmkit compress" in r.stderr
    no_model = tmp_path / "no-model"
    shutil.copytree(char_run, no_model)
    (no_model / "model.safetensors").unlink()
    r = invoke("compress", "quantize", no_model, "--out", tmp_path / "x")
    assert r.exit_code == 1 and "missing ['model.safetensors']" in r.stderr
    r = invoke("compress", "quantize", tmp_path / "nothing", "--out", tmp_path / "y")
    assert r.exit_code == 1 and "does not exist" in r.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    r = invoke("compress", "quantize", char_run, "--out", tmp_path / "full")
    assert r.exit_code == 2 and "not an empty directory" in r.stderr


def test_a_quantised_run_is_not_quantised_again(char_run, tmp_path):
    assert invoke("compress", "quantize", char_run, "--out", tmp_path / "a", "--repeats", 2).exit_code == 0
    r = invoke("compress", "prune", tmp_path / "a", "--out", tmp_path / "b", "--sparsity", 0.5)
    assert r.exit_code == 1 and "is quantized already" in r.stderr


def test_a_failure_leaves_no_half_written_directory(classify_run, tmp_path):
    r = invoke("compress", "quantize", classify_run, "--out", tmp_path / "q", "--compare-torch")
    assert r.exit_code == 1 and "--compare-torch needs a language-model run" in r.stderr
    assert not (tmp_path / "q").exists()
    (tmp_path / "empty").mkdir()
    r = invoke("compress", "distill", classify_run, "--out", tmp_path / "empty", "--hidden-size", 100)
    assert r.exit_code == 2 and (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())
