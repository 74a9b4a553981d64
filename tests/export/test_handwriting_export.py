"""``lstmkit.export.handwriting``: Graves's handwriting network (``HandwritingNet``, the synthesis network's window
and the prediction network) as one ONNX graph with its state as inputs and outputs, checked in onnxruntime within a
float32 bound carried by autograd; the serving loop of docs/deployment.md."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from lstmkit.export import ExportVerificationError, _spots, export_handwriting
from lstmkit.export import handwriting as X
from lstmkit.export.graph import GraphBuilder
from lstmkit.models.handwriting import HandwritingModel, HandwritingNet
from onnx_checks import check_writer_argument_errors, cpu_session, docs_python_block, perturbed

CONFIGS = {
    "synthesis, three layers": dict(num_layers=3),
    "synthesis, one layer": dict(num_layers=1),
    "prediction, two layers": dict(num_layers=2, conditional=False),
}


def _model(seed: int = 0, **kw) -> HandwritingNet:
    """A small network, its parameters moved off their initial values."""
    torch.manual_seed(seed)
    cfg = {"hidden_size": 12, "mixtures": 4, "window_mixtures": 3, "alphabet_size": 7, **kw}
    if not cfg.get("conditional", True):
        cfg.pop("alphabet_size")
    return perturbed(HandwritingNet(HandwritingModel(**cfg)), seed, 0.2)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_graph_matches_torch_in_onnxruntime(name, tmp_path):
    model = _model(**CONFIGS[name])
    result = export_handwriting(model, tmp_path / "h.onnx")
    inputs, outputs = X.signature(model)
    assert (result.inputs, result.outputs) == (inputs, outputs)
    assert inputs[:3] == ("points", "h0", "c0") and outputs[:5] == X.PARAMS
    kinds = ("Scan",) + ("LSTM",) * (model.config.num_layers - 1) if model.conditional else ("LSTM", "LSTM")
    assert result.layers == kinds
    assert result.loose == ()  # every output's bound is below the output: the check could fail
    assert 0 < result.max_abs_error < 1e-4
    meta = json.loads(cpu_session(result.path).get_modelmeta().custom_metadata_map["lstmkit.handwriting"])
    assert meta["conditional"] == model.conditional and meta["layers"] == model.config.num_layers


def test_chunks_with_the_carried_state_are_one_pass(tmp_path):
    """Feeding the state outputs back runs a sequence chunk by chunk exactly as one call over all of it."""
    model = _model(seed=3)
    session = cpu_session(export_handwriting(model, tmp_path / "h.onnx").path)
    inputs = {k: v.numpy() for k, v in X.random_inputs(model, 10, 2, 5, 0, seed=4).items()}
    names = X.signature(model)[1]
    whole = dict(zip(names, session.run(None, inputs), strict=True))
    feeds, eos = dict(inputs), []
    for a, b in ((0, 4), (4, 5), (5, 10)):
        out = dict(zip(names, session.run(None, {**feeds, "points": inputs["points"][a:b]}), strict=True))
        eos.append(out["eos_logit"])
        feeds.update(h0=out["hn"], c0=out["cn"], kappa0=out["kappa_n"], w0=out["w_n"])
    assert np.array_equal(np.concatenate(eos), whole["eos_logit"])
    for name in ("hn", "cn", "kappa_n", "w_n", "window_log_phi"):
        assert np.array_equal(out[name], whole[name]), name


@pytest.mark.parametrize("name", list(CONFIGS))
def test_bounds_hold_against_float64_and_are_tight_enough_to_check(name):
    """Every output of float32 torch within its bound (one evaluation's) of the same model in float64, at the
    verification's shapes, and the bound a small share of the output."""
    model = _model(seed=1, **CONFIGS[name])
    exact_model = copy.deepcopy(model).double()
    for seed, (T, B, U, before) in enumerate(X.verify_shapes()):
        inputs = X.random_inputs(model, T, B, U, before, seed)
        got = X.run_torch(model, inputs)
        exact = X.run_torch(exact_model, {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()})
        bounds = X.bounds(model, inputs)
        for out in X.signature(model)[1]:
            err = (got[out].double() - exact[out]).abs()
            assert bool((err <= bounds[out]).all()), (out, float((err - bounds[out]).max()))
            assert float(bounds[out].max()) < 1e-3 * float(got[out].abs().max()), out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_spotted_forward_is_the_model(name):
    """The twin the bound differentiates computes the model itself (zero spots), in float64."""
    model = _model(seed=2, **CONFIGS[name]).double()
    inputs = {k: v.double() if v.is_floating_point() else v for k, v in X.random_inputs(model, 6, 3, 5, 4).items()}
    want = X.run_torch(model, inputs)
    twin = copy.deepcopy(model)
    for layer in twin.layers:
        layer.impl = "reference"
    spots = _spots.Spots()
    with torch.enable_grad(), _spots.spotted_cells(spots):
        got = X.spotted_forward(spots, twin, inputs)
    for name_ in X.signature(model)[1]:
        torch.testing.assert_close(got[name_].detach(), want[name_], rtol=0, atol=1e-12, msg=name_)
    assert spots.items


def _faulty(monkeypatch, fault):
    """Make GraphBuilder.op write one wrong node."""
    op = GraphBuilder.op

    def wrong_op(self, op_type, inputs, hint=None, n_out=1, **attrs):
        if fault == "LogSoftmax as Softmax" and op_type == "LogSoftmax":
            op_type = "Softmax"
        if fault == "text mask off by one" and hint == "in_text":
            op_type = "LessOrEqual"
        if fault == "beta as softplus" and hint == "hw_beta":
            op_type = "Softplus"
        if fault == "rho through a sigmoid" and hint == "rho_tbm":
            op_type = "Sigmoid"
        return op(self, op_type, inputs, hint, n_out, **attrs)

    monkeypatch.setattr(GraphBuilder, "op", wrong_op)


@pytest.mark.parametrize("fault", ["LogSoftmax as Softmax", "text mask off by one", "beta as softplus",
                                   "rho through a sigmoid"])  # fmt: skip
def test_verification_catches_a_wrong_graph(fault, tmp_path, monkeypatch):
    model = _model(seed=5)
    _faulty(monkeypatch, fault)
    with pytest.raises(ExportVerificationError, match=r"differs from the PyTorch model by .* beyond twice its float32"):
        export_handwriting(model, tmp_path / "h.onnx")


def test_argument_errors(tmp_path):
    check_writer_argument_errors(export_handwriting, _model(), "HandwritingNet", "handwriting",
                                 r"a HandwritingNet exports with lstmkit.export.export_handwriting", tmp_path)


def test_the_stop_output_is_the_models_stop_rule_at_every_opset(tmp_path):
    """``window_log_phi`` (its max over the Gaussians an attribute before opset 18, an input from 18) gives
    HandwritingNet's stop decision for one sequence."""
    model = _model(seed=7)
    inputs = X.random_inputs(model, 3, 1, 5, 20, seed=8)
    want = X.run_torch(model, inputs)["window_log_phi"]
    for opset in (17, 18):
        session = cpu_session(export_handwriting(model, tmp_path / f"h{opset}.onnx", opset=opset).path)
        got = session.run(["window_log_phi"], {k: v.numpy() for k, v in inputs.items()})[0]
        bound = 2 * X.bounds(model, inputs)["window_log_phi"].numpy()
        assert (np.abs(got - want.numpy()) <= bound).all()
        assert bool(got[0, -1] > got[0, :-1].max()) == bool(want[0, -1] > want[0, :-1].max())


def test_the_writing_loop_of_the_docs_runs_the_model_step_by_step(tmp_path):
    """docs/deployment.md's loop (onnxruntime and numpy only) writes points; fed back through the PyTorch model in one
    pass, [start; points] give the mixture weights the loop read at each step, within the bound."""
    model = _model(seed=6)
    alphabet = "abcdefg"
    result = export_handwriting(model, tmp_path / "h.onnx", metadata={
        "lstmkit.alphabet": alphabet, "lstmkit.start_point": "[0.0, 0.0, 1.0]"})  # fmt: skip
    scope = {"path": str(result.path), "text": "bad cafe", "seed": 0, "max_points": 30, "bias": 0.5}
    loop = compile(docs_python_block("tests/export/test_handwriting_export.py runs this block"), "docs/deployment.md",
                   "exec")  # our own docs, read from this checkout  # fmt: skip
    with pytest.raises(ValueError, match="substring not found"):  # " " is not in this alphabet
        exec(loop, dict(scope))
    scope["text"] = "badcafe"
    exec(loop, scope)
    points = scope["points"]
    assert points.ndim == 2 and points.shape[1] == 3 and 1 <= len(points) <= 30 and np.isfinite(points).all()
    x = torch.cat([torch.tensor([[0.0, 0.0, 1.0]]), torch.from_numpy(points[:-1])]).unsqueeze(1)  # (N, 1, 3)
    ids = torch.tensor([[alphabet.index(ch)] for ch in "badcafe"])
    inputs = {"points": x, **X._state_inputs(model, model._check_state(None, 1, x)), "text": ids,
              "text_lengths": torch.tensor([7])}  # fmt: skip
    want = X.run_torch(model, inputs)["log_pi"][:, 0]  # (N, M)
    bound = 2 * X.bounds(model, inputs)["log_pi"][:, 0]
    assert bool(((torch.from_numpy(np.stack(scope["trace"])) - want).abs() <= bound).all())
