"""``lstmkit.export.attention_lm``: an ``AttentionLM`` (LSTM layers around SHA-RNN's attention block) as one ONNX
graph with the block's memory as state, checked in onnxruntime within a float32 bound carried by autograd."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmkit.export import ExportVerificationError, _spots, export_attention_lm
from lstmkit.export import attention_lm as A
from lstmkit.export.graph import GraphBuilder
from lstmkit.models import AttentionLM, LMModel
from onnx_checks import check_writer_argument_errors, cpu_session, perturbed

CONFIGS = {
    "block between layers": dict(num_layers=2, attention_layer=1),
    "one layer, block on top": dict(num_layers=1),
    "three layers, tied through a projection": dict(num_layers=3, attention_layer=2, tie_weights=True,
                                                    embedding_dim=6),
    "zoneout (its eval-mode update in a Scan)": dict(num_layers=2, attention_layer=1, zoneout=(0.1, 0.4)),
}  # fmt: skip


def _model(seed: int = 0, memory: int = 5, **kw) -> AttentionLM:
    """A small AttentionLM with every parameter drawn at random (the value and Boom branches start at zero, which
    would leave the block's attention out of the check)."""
    torch.manual_seed(seed)
    kw = {"num_layers": 2, "attention_layer": 1, **kw}
    return perturbed(AttentionLM(LMModel(vocab_size=11, hidden_size=8, attention=True, attention_memory=memory, **kw)),
                     seed, 0.3)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_graph_matches_torch_in_onnxruntime(name, tmp_path):
    model = _model(**CONFIGS[name])
    result = export_attention_lm(model, tmp_path / "a.onnx")
    assert result.inputs == ("tokens", "h0", "c0", "keys", "values")
    assert result.outputs == ("logits", "hn", "cn", "keys_out", "values_out")
    op = "Scan" if model.config.zoneout != (0.0, 0.0) else "LSTM"
    assert result.layers == (op,) * model.config.num_layers
    assert result.loose == ()  # every output's bound is below the output: the check could fail
    assert 0 < result.max_abs_error < 1e-5
    meta = cpu_session(result.path).get_modelmeta().custom_metadata_map
    assert meta["lstmkit.attention_memory"] == "5"


def test_the_cache_keeps_the_last_steps_exactly(tmp_path):
    """keys_out and values_out = the last M_max rows of [the cache; the new steps']: the rows that came in are copied
    bit for bit, and a short cache grows by the chunk."""
    model = _model(memory=5)
    path = export_attention_lm(model, tmp_path / "a.onnx").path
    session = cpu_session(path)
    for T, M in [(3, 5), (2, 2), (7, 0)]:
        feeds = {k: v.numpy() for k, v in A.graph_inputs(model, A.random_inputs(model, T, 2, M, seed=T)).items()}
        keys_out, values_out = session.run(["keys_out", "values_out"], feeds)
        assert keys_out.shape == values_out.shape == (min(M + T, 5), 2, 8)
        n_in = max(min(M, 5 - T), 0)  # rows of the input cache still kept: its last ones, first
        np.testing.assert_array_equal(keys_out[:n_in], feeds["keys"][M - n_in :])
        np.testing.assert_array_equal(values_out[:n_in], feeds["values"][M - n_in :])


def test_chunks_with_the_carried_state_are_one_pass(tmp_path):
    """Run in onnxruntime as chunks 4 + 1 + 6 with every state fed back, a text gives the logits of one torch pass
    over it (memory longer than the text: then chunking changes nothing), to the bound of each chunk at torch's
    states (a first-order bound per call, so twice the largest is allowed across the three)."""
    model = _model(memory=16)
    session = cpu_session(export_attention_lm(model, tmp_path / "a.onnx").path)
    tokens = torch.randint(0, 11, (11, 2), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole, _ = model(tokens)
    state = {"h0": np.zeros((2, 2, 8), np.float32), "c0": np.zeros((2, 2, 8), np.float32),
             "keys": np.zeros((0, 2, 8), np.float32), "values": np.zeros((0, 2, 8), np.float32)}  # fmt: skip
    torch_state, start, worst = None, 0, 0.0
    for T in (4, 1, 6):
        chunk = tokens[start : start + T]
        logits, hn, cn, keys, values = session.run(None, {"tokens": chunk.numpy(), **state})
        state = {"h0": hn, "c0": cn, "keys": keys, "values": values}
        h, c, m = torch_state or (torch.zeros(2, 2, 8), torch.zeros(2, 2, 8), torch.zeros(0, 2, 8))
        worst = max(worst, float(A.bounds(model, {"tokens": chunk, "h0": h, "c0": c, "memory": m})["logits"].max()))
        with torch.no_grad():
            _, torch_state = model(chunk, (h, c, m))
        np.testing.assert_allclose(logits, whole[start : start + T].numpy(), rtol=0, atol=4 * worst)
        start += T


def test_bounds_hold_against_float64_and_are_tight_enough_to_check():
    """Every output of float32 torch within its bound (one evaluation's) of the same model in float64, at the
    verification's shapes, and the bound a small share of the output."""
    for name, kw in CONFIGS.items():
        model = _model(seed=1, **kw)
        exact_model = copy.deepcopy(model).double()
        for seed, (T, B, M) in enumerate(A.verify_shapes(model)):
            inputs = A.random_inputs(model, T, B, M, seed)
            got = A.run_torch(model, inputs)
            exact = A.run_torch(exact_model, {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()})
            bounds = A.bounds(model, inputs)
            for out in A.OUTPUTS:
                err = (got[out].double() - exact[out]).abs()
                assert bool((err <= bounds[out]).all()), (name, out, float((err - bounds[out]).max()))
                if got[out].numel():
                    assert float(bounds[out].max()) < 1e-3 * float(got[out].abs().max()), (name, out)


def test_spotted_block_is_the_block():
    """The twin the bound differentiates computes the block itself (zero spots)."""
    block = _model(seed=2).block.double()
    x, memory = torch.randn(6, 3, 8, dtype=torch.float64), torch.tanh(torch.randn(4, 3, 8, dtype=torch.float64))
    spots = _spots.Spots()
    with torch.no_grad():
        want = block(x, memory)
    with torch.enable_grad():
        got, keys, values = A.spotted_block(spots, block, x, memory)
    torch.testing.assert_close(got.detach(), want, rtol=0, atol=1e-14)
    with torch.no_grad():
        want_keys, want_values = A.memory_keys_values(_model(seed=2).double(), torch.cat([memory, x]))
    torch.testing.assert_close(keys.detach(), want_keys, rtol=0, atol=1e-14)
    torch.testing.assert_close(values.detach(), want_values, rtol=0, atol=1e-14)
    assert len(spots.items) == 14  # 3 LayerNorms, 5 linear maps, scores, weights, context, 2 residual sums, GELU


def test_layer_norm_local_bound_covers_float32_rows_far_from_flat():
    """float32 LayerNorm against float64 on the same float32 rows, a row with a mean ten spreads from zero among
    them: within ``layer_norm_local`` everywhere, and the bound grows with that row's conditioning."""
    norm = torch.nn.LayerNorm(64)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1, 1)
    rows = torch.randn(50, 64, generator=torch.Generator().manual_seed(4))
    rows[7] += 10.0
    exact = copy.deepcopy(norm).double()(rows.double())
    bound = A.layer_norm_local(copy.deepcopy(norm).double(), rows.double())
    err = (norm(rows).double() - exact).abs()
    assert bool((err <= bound).all())
    assert float(bound[7].max()) > 3 * float(bound[:7].max())


def _faulty(monkeypatch, fault):
    """Make GraphBuilder.op write one wrong node (``fault(op_type, inputs, attrs) -> (op_type, attrs)``)."""
    original = GraphBuilder.op

    def op(self, op_type, inputs, hint=None, n_out=1, **attrs):
        op_type, attrs = fault(op_type, attrs)
        return original(self, op_type, inputs, hint, n_out, **attrs)

    monkeypatch.setattr(GraphBuilder, "op", op)


@pytest.mark.parametrize("fault", ["query cannot see its own step", "LayerNorm eps 1e-3", "GELU as tanh"])
def test_verification_catches_a_wrong_graph(fault, tmp_path, monkeypatch):
    def wrong(op_type, attrs):
        if fault == "query cannot see its own step" and op_type == "LessOrEqual":
            return "Less", attrs
        if fault == "LayerNorm eps 1e-3" and op_type == "LayerNormalization" and attrs.get("epsilon") == 1e-5:
            return op_type, {**attrs, "epsilon": 1e-3}
        if fault == "GELU as tanh" and op_type == "Erf":
            return "Tanh", attrs
        return op_type, attrs

    model = _model(seed=5)
    _faulty(monkeypatch, wrong)
    with pytest.raises(ExportVerificationError, match=r"differs from the PyTorch model by .* beyond twice its float32"):
        export_attention_lm(model, tmp_path / "a.onnx")


def test_argument_errors(tmp_path):
    check_writer_argument_errors(export_attention_lm, _model(), "AttentionLM", "attention-lm",
                                 r"an AttentionLM exports with lstmkit.export.export_attention_lm", tmp_path)


def test_graph_gelu_is_torch_exact_gelu():
    """The graph writes GELU as x/2 (1 + erf(x / sqrt 2)): torch's default (exact) form, not the tanh one."""
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    torch.testing.assert_close(F.gelu(x), x / 2 * (1 + torch.erf(x / math.sqrt(2))), rtol=0, atol=1e-15)
    assert (F.gelu(x, approximate="tanh") - F.gelu(x)).abs().max() > 1e-4


def test_a_gate_near_zero_passes_in_onnxruntime(tmp_path):
    """onnxruntime's sigmoid is 0.5 plus a rational function: near 0 its error is about u whatever the value, so a
    bound relative to the gate (the spots' first form) failed a trained charlm's export (an output gate of 1e-8 came
    out as 0.0). Output gates at sigmoid(-19) ~ 6e-9 here; the export verifies."""
    model = _model(seed=6)
    H = model.config.hidden_size
    with torch.no_grad():
        model.lstm_below.bias_ih_l0[3 * H :] = -19.0  # the output gate's rows (torch's order i, f, g, o)
        model.lstm_below.bias_hh_l0[3 * H :] = 0.0
        model.lstm_below.weight_ih_l0[3 * H :] = 0.0
        model.lstm_below.weight_hh_l0[3 * H :] = 0.0
    result = export_attention_lm(model, tmp_path / "a.onnx")
    assert result.max_abs_error < 1e-5
