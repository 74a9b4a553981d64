"""``lstmkit.export.memory``: the NTM (``MemoryLSTM``, an LSTM controller with an external memory) as one ONNX graph
with its reads, head weightings and memory as state, checked in onnxruntime within a float32 bound carried by
autograd."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from lstmkit.export import ExportVerificationError, _spots, export_memory
from lstmkit.export import memory as X
from lstmkit.export.graph import GraphBuilder
from lstmkit.models.memory import MemoryLSTM, MemoryModel, NTMCell
from onnx_checks import check_writer_argument_errors, cpu_session, docs_python_block, perturbed

CONFIGS = {
    "one reader, one writer": dict(),
    "two readers, two writers, shifts of 2": dict(read_heads=2, write_heads=2, shift_range=2),
    "three writers, no shift": dict(write_heads=3, shift_range=0),
    "zoneout and DropConnect on the controller": dict(zoneout=(0.2, 0.4), weight_dropout=0.3),  # eval: the mixes
}


def _model(seed: int = 0, sharp: bool = False, **kw) -> MemoryLSTM:
    """A small NTM, its parameters moved off their initial values; ``sharp``: the heads' beta and gamma logits raised
    by 4, as a trained NTM's are (gamma about 5: sharpened weightings, the underflow-prone case)."""
    torch.manual_seed(seed)
    cfg = MemoryModel(input_size=5, output_size=4, hidden_size=12, memory_slots=10, memory_width=6, **kw)
    model = perturbed(MemoryLSTM(cfg), seed, 0.3)
    with torch.no_grad():
        if sharp:
            W, S, P = cfg.memory_width, cfg.shift_range, model.cell.per_head
            for k in range(cfg.read_heads + cfg.write_heads):
                model.cell.heads.bias[k * P + W] += 4.0  # beta
                model.cell.heads.bias[k * P + W + 2 * S + 3] += 4.0  # gamma
    return model.eval()


@pytest.mark.parametrize("sharp", [False, True], ids=["mild", "sharp"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_graph_matches_torch_in_onnxruntime(name, sharp, tmp_path):
    model = _model(sharp=sharp, **CONFIGS[name])
    result = export_memory(model, tmp_path / "m.onnx")
    assert result.inputs == ("features", "h0", "c0", "read0", "weights0", "memory0")
    assert result.outputs == ("logits", "hn", "cn", "read_n", "weights_n", "memory_n")
    assert result.layers == ("Scan",)
    assert result.loose == ()  # every output's bound is below the output: the check could fail
    assert 0 < result.max_abs_error < 1e-5
    assert len(cpu_session(result.path).get_inputs()) == 6


def test_chunks_with_the_carried_state_are_one_pass(tmp_path):
    """Feeding the five state outputs back runs a sequence chunk by chunk exactly as one call over all of it (the
    same float32 operations on the same values), from the start the file's metadata gives."""
    model = _model(seed=3, **CONFIGS["two readers, two writers, shifts of 2"])
    path = export_memory(model, tmp_path / "m.onnx").path
    session = cpu_session(path)
    start = X.start_inputs(json.loads(session.get_modelmeta().custom_metadata_map[X.START_KEY]), 2)
    x = np.random.default_rng(0).integers(0, 2, (12, 2, 5)).astype(np.float32)
    whole = session.run(list(X.OUTPUTS), {"features": x, **start})
    state, logits = start, []
    for a, b in ((0, 5), (5, 6), (6, 12)):
        out = dict(zip(X.OUTPUTS, session.run(list(X.OUTPUTS), {"features": x[a:b], **state}), strict=True))
        logits.append(out["logits"])
        state = {f"{k}0": out[f"{k}_n" if k not in ("h", "c") else f"{k}n"] for k in X.STATE}
    assert np.array_equal(np.concatenate(logits), whole[0])
    for k, v in zip(X.STATE, whole[1:], strict=True):
        assert np.array_equal(state[f"{k}0"], v), k


def test_the_start_in_the_metadata_is_the_models_start(tmp_path):
    """``start_inputs`` from the file's ``lstmkit.memory_start`` equals ``NTMCell.initial_state`` bit for bit, and the
    graph run from it gives the model's outputs for a sequence started afresh (state None), within the bound."""
    model = _model(seed=4)
    session = cpu_session(export_memory(model, tmp_path / "m.onnx").path)
    start = json.loads(session.get_modelmeta().custom_metadata_map[X.START_KEY])
    assert (start["hidden_size"], start["slots"], start["width"], start["memory"]) == (12, 10, 6, 1e-6)
    feeds = X.start_inputs(start, 3)
    with torch.no_grad():
        want = model.cell.initial_state(3, model.head.weight)
    for k, v in zip(X.STATE, want, strict=True):
        assert np.array_equal(feeds[f"{k}0"], v.detach().numpy()), k
    inputs = X.random_inputs(model, 7, 3, 0, seed=9)
    for k in X.STATE:
        assert np.array_equal(inputs[f"{k}0"].numpy(), feeds[f"{k}0"]), k
    got = session.run(["logits"], {"features": inputs["features"].numpy(), **feeds})[0]
    with torch.no_grad():
        logits, _ = model(inputs["features"])  # state None: the model's own start
    bound = 2 * X.bounds(model, inputs)["logits"].numpy()
    assert (np.abs(got - logits.numpy()) <= bound).all()


@pytest.mark.parametrize("sharp", [False, True], ids=["mild", "sharp"])
def test_bounds_hold_against_float64_and_are_tight_enough_to_check(sharp):
    """Every output of float32 torch within its bound (one evaluation's) of the same model in float64, at the
    verification's shapes, and the bound a small share of the output."""
    for name, kw in CONFIGS.items():
        model = _model(seed=1, sharp=sharp, **kw)
        exact_model = copy.deepcopy(model).double()
        for seed, (T, B, before) in enumerate(X.verify_shapes()):
            inputs = X.random_inputs(model, T, B, before, seed)
            got = X.run_torch(model, inputs)
            exact = X.run_torch(exact_model, {k: v.double() for k, v in inputs.items()})
            bounds = X.bounds(model, inputs)
            for out in X.OUTPUTS:
                err = (got[out].double() - exact[out]).abs()
                assert bool((err <= bounds[out]).all()), (name, out, float((err - bounds[out]).max()))
                assert float(bounds[out].max()) < 1e-3 * float(got[out].abs().max()), (name, out)


@pytest.mark.parametrize("zoneout", [(0.0, 0.0), (0.2, 0.4)], ids=["plain", "zoneout"])
def test_spotted_step_is_the_step(zoneout):
    """The twin the bound differentiates computes the cell itself (zero spots), in float64."""
    cell: NTMCell = _model(seed=2, zoneout=zoneout, **CONFIGS["two readers, two writers, shifts of 2"]).cell.double()
    x = torch.randint(0, 2, (3, 5), dtype=torch.float64)
    with torch.no_grad():
        state = cell.initial_state(3, x)
        for _ in range(4):  # off the start: every field of the state in use
            _, state = cell(torch.rand(3, 5, dtype=torch.float64), state)
        want_y, want = cell(x, state)
    spots = _spots.Spots()
    with torch.enable_grad():
        got_y, got = X.spotted_step(spots, cell, x, state)
    torch.testing.assert_close(got_y.detach(), want_y, rtol=0, atol=1e-14)
    for k, a, b in zip(X.STATE, got, want, strict=True):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=1e-14, msg=k)
    # controller 8 (gates, i, f, o, g, c, tanh c, h: _spots.lstm_cell), heads 1, beta 1, gate 1, shift 1, gamma 2,
    # erase 1, add 1, dots 1, norms 2, denominator 1, ratio 1, content 1, gated 1, shifted 1, sharp 1, sum 1,
    # weights 1, read 1, erased 1, the keep product over the other writer 1, new memory 1; zoneout's two mixes
    assert len(spots.items) == 31 + 2 * (zoneout != (0.0, 0.0))


def _faulty(monkeypatch, fault):
    """Make GraphBuilder.op or .const write one wrong node or constant."""
    op, const = GraphBuilder.op, GraphBuilder.const

    def wrong_op(self, op_type, inputs, hint=None, n_out=1, **attrs):
        if fault == "Relu for Softplus" and op_type == "Softplus":
            op_type = "Relu"
        if fault == "shift softmax over the heads" and hint == "shift":
            attrs = {**attrs, "axis": 1}
        if fault == "1 + w e for 1 - w e" and hint == "erased":
            op_type = "Add"
        if fault == "zoneout's c mix left out" and hint == "ctl_c_zoned":
            return inputs[0]  # the (1 - p) c~ product alone
        return op(self, op_type, inputs, hint, n_out, **attrs)

    def wrong_const(self, value, hint, dtype=None):
        if fault == "rotation reversed" and hint.startswith("roll_"):
            idx = np.asarray(value)
            value = ((2 * np.arange(idx.shape[0]) - idx) % idx.shape[0]).tolist()  # (i - d) mod N -> (i + d)
        return const(self, value, hint, dtype)

    monkeypatch.setattr(GraphBuilder, "op", wrong_op)
    monkeypatch.setattr(GraphBuilder, "const", wrong_const)


@pytest.mark.parametrize("fault", ["Relu for Softplus", "shift softmax over the heads", "rotation reversed",
                                   "1 + w e for 1 - w e", "zoneout's c mix left out"])  # fmt: skip
def test_verification_catches_a_wrong_graph(fault, tmp_path, monkeypatch):
    zoned = {"zoneout": (0.2, 0.4)} if "zoneout" in fault else {}
    model = _model(seed=5, **CONFIGS["two readers, two writers, shifts of 2"], **zoned)
    _faulty(monkeypatch, fault)
    with pytest.raises(ExportVerificationError, match=r"differs from the PyTorch model by .* beyond twice its float32"):
        export_memory(model, tmp_path / "m.onnx")


def test_argument_errors(tmp_path):
    check_writer_argument_errors(export_memory, _model(), "MemoryLSTM", "memory",
                                 r"a MemoryLSTM \(the NTM\) exports with lstmkit.export.export_memory", tmp_path)


def test_the_serving_block_of_the_docs_runs_and_gives_the_models_outputs(tmp_path):
    """docs/deployment.md's block (onnxruntime and numpy only) gives the model's logits from its start, and its state
    outputs are the model's state after the steps, within the bound."""
    model = _model(seed=6)
    path = str(export_memory(model, tmp_path / "m.onnx").path)
    inputs = X.random_inputs(model, 8, 2, 0, seed=3)
    scope = {"path": path, "features": inputs["features"].numpy()}
    block = docs_python_block("tests/export/test_memory_export.py runs this block")
    exec(compile(block, "docs/deployment.md", "exec"), scope)  # our own docs, read from this checkout
    want = X.run_torch(model, inputs)
    allowed = {k: 2 * v.numpy() for k, v in X.bounds(model, inputs).items()}
    for name, got in zip(X.OUTPUTS, (scope["logits"], *scope["after"]), strict=True):
        assert (np.abs(got - want[name].numpy()) <= allowed[name]).all(), name
    assert np.array_equal(scope["bits"], scope["logits"] > 0)


def test_bounds_of_some_outputs_are_those_of_all():
    model = _model(seed=8)
    inputs = X.random_inputs(model, 5, 2, 3, seed=1)
    every = X.bounds(model, inputs)
    some = X.bounds(model, inputs, outputs=("logits", "memory_n"))
    assert set(some) == {"logits", "memory_n"}
    for name in some:
        torch.testing.assert_close(some[name], every[name], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match=r"^outputs must be some of \('logits', "):
        X.bounds(model, inputs, outputs=("memory",))
