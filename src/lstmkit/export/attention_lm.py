"""An LSTM language model with SHA-RNN's attention block (``export_kind`` "attention-lm",
``lstmkit.models.AttentionLM``) as one ONNX graph whose state is h, c and the block's cached keys and values.

Graph (T, B and M symbolic; L layers, H hidden, V outputs, M_max the model's ``attention_memory``):

======================  ====================================================================
inputs                  ``tokens`` (T, B) int64; ``h0``, ``c0`` (L, B, H);
                        ``keys``, ``values`` (M, B, H), 0 <= M <= M_max: the block's keys and values
                        of the M steps before this chunk ((0, B, H) each at the start of a text)
outputs                 ``logits`` (T, B, V); ``hn``, ``cn`` (L, B, H);
                        ``keys_out``, ``values_out`` (min(M + T, M_max), B, H): the next call's
======================  ====================================================================

Feeding ``hn``, ``cn``, ``keys_out`` and ``values_out`` back as ``h0``, ``c0``, ``keys`` and ``values`` runs a
text chunk by chunk as the model's ``forward`` with its carried state ``(h, c, memory)`` does; the graph keeps
the memory's keys and values (W_k LN(m) + b_k and W_v LN(m) + b_v, row by row) instead of the memory itself, so a
step computes the new step's key and value only, not the whole memory's again (at batch 1 and a full memory of 64
that is most of the block's work). ``memory_keys_values`` turns a PyTorch state's memory into them.
``examples/onnx_generate.py`` feeds every state output back to its input, so it serves this graph as it serves a
plain language model's. The LSTM layers below and above the block are ``recurrent.emit_core`` (the ONNX ``LSTM``
operator); the block is the equations of ``lstmkit.models.hybrid`` node for node: ``LayerNormalization``, the
query, key and value ``MatMul``s, the scores over [cached; new] keys masked causally (key j is read by query t
when j <= M + t) and ``Softmax``, the residual add, the Boom with torch's exact GELU (x/2 (1 + erf(x / sqrt 2)))
and the last ``LayerNormalization``.

Verified in onnxruntime against the PyTorch model at three chunk lengths, batch sizes and memory lengths (an
empty memory, a full one, and one the chunk overflows), every output element within twice a float32 rounding
bound of its own, derived at these inputs from every rounded value of the model carried by autograd (``bounds``,
the method of ``lstmkit.export._spots``). Shapes: T time, B batch, H hidden, E embedding, V vocabulary, L layers,
M memory steps, S = M + T keys.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import lstmkit
from lstmkit import _rounding
from lstmkit.export import _deps, _spots, task_models
from lstmkit.export.graph import GraphBuilder
from lstmkit.export.onnx_model import MIN_OPSET, OnnxExport, compare_within_bounds, write_verified
from lstmkit.export.recurrent import CoreInputs, emit_core
from lstmkit.models.hybrid import causal_mask

KIND = "attention-lm"
I64, F32 = "int64", "float32"
INT64_MAX = 2**63 - 1
OUTPUTS = ("logits", "hn", "cn", "keys_out", "values_out")
_U = _rounding.unit_roundoff(torch.float32)
_F = _rounding.F_POINTWISE * _U


def check_model(model: nn.Module) -> None:
    """Raise ``TypeError`` unless ``model`` is an ``AttentionLM`` (its ``export_kind``) with float32 parameters."""
    task_models.check_export_model(model, KIND, "AttentionLM")


def _linear(gb: GraphBuilder, x: str, layer: nn.Linear, hint: str) -> str:
    y = gb.op("MatMul", [x, gb.const(layer.weight.t(), f"{hint}_wt")], f"{hint}_mm")
    if layer.bias is not None:
        y = gb.op("Add", [y, gb.const(layer.bias, f"{hint}_b")], hint)
    return y


def _layer_norm(gb: GraphBuilder, x: str, norm: nn.LayerNorm, hint: str) -> str:
    return gb.op("LayerNormalization", [x, gb.const(norm.weight, f"{hint}_w"), gb.const(norm.bias, f"{hint}_b")],
                 hint, axis=-1, epsilon=float(norm.eps))  # fmt: skip


def _first_dim(gb: GraphBuilder, x: str, hint: str) -> str:
    """x's size along axis 0, a scalar int64."""
    return gb.op("Gather", [gb.op("Shape", [x], f"{hint}_shape"), gb.const(0, "idx0", I64)], hint, axis=0)


def _emit_block(gb: GraphBuilder, block: nn.Module, x: str, keys: str, values: str) -> tuple[str, str, str]:
    """``AttentionBlock.forward`` on the chunk x (T, B, H) with the cached keys and values (M, B, H) of the memory:
    (the block's output (T, B, H), all keys and all values (M + T, B, H))."""
    H = block.query.in_features
    kv = _layer_norm(gb, x, block.norm_kv, "ln_kv")  # (T, B, H): the new steps only
    keys_all = gb.op("Concat", [keys, _linear(gb, kv, block.key, "key")], "keys_all", axis=0)  # (S, B, H)
    values_all = gb.op("Concat", [values, _linear(gb, kv, block.value, "value")], "values_all", axis=0)
    q = _linear(gb, _layer_norm(gb, x, block.norm_q, "ln_q"), block.query, "query")  # (T, B, H)
    q_bth = gb.op("Transpose", [q], "query_bth", perm=[1, 0, 2])  # (B, T, H)
    k_bhs = gb.op("Transpose", [keys_all], "key_bhs", perm=[1, 2, 0])  # (B, H, S)
    scores = gb.op("Div", [gb.op("MatMul", [q_bth, k_bhs], "scores_raw"), gb.const(math.sqrt(H), "sqrt_h")],
                   "scores")  # (B, T, S)  # fmt: skip
    # causal: query t (of T) reads key j (of S = M + T) when j <= M + t
    T, M = _first_dim(gb, x, "T"), _first_dim(gb, keys, "M")
    S = gb.op("Add", [M, T], "S")
    zero, one = gb.const(0, "zero_i64", I64), gb.const(1, "one_i64", I64)
    t = gb.op("Unsqueeze", [gb.op("Range", [zero, T, one], "t_steps"), gb.const([1], "axes_1", I64)], "t_col")
    j = gb.op("Unsqueeze", [gb.op("Range", [zero, S, one], "j_steps"), gb.const([0], "axes_0", I64)], "j_row")
    allowed = gb.op("LessOrEqual", [j, gb.op("Add", [t, M], "t_plus_m")], "allowed")  # (T, S)
    scores = gb.op("Where", [allowed, scores, gb.const(float("-inf"), "minus_inf", F32)], "scores_causal")
    alpha = gb.op("Softmax", [scores], "alpha", axis=-1)  # (B, T, S), zero on the keys a query may not read
    v_bsh = gb.op("Transpose", [values_all], "value_bsh", perm=[1, 0, 2])  # (B, S, H)
    ctx = gb.op("Transpose", [gb.op("MatMul", [alpha, v_bsh], "context_bth")], "context", perm=[1, 0, 2])
    y = gb.op("Add", [x, ctx], "attended")  # (T, B, H)
    up = _linear(gb, y, block.boom_up, "boom_up")  # (T, B, 4H)
    erf = gb.op("Erf", [gb.op("Div", [up, gb.const(math.sqrt(2.0), "sqrt_2")], "boom_scaled")], "boom_erf")
    gelu = gb.op("Mul", [gb.op("Mul", [up, gb.const(0.5, "half")], "boom_half"),
                         gb.op("Add", [erf, gb.const(1.0, "one_f32")], "boom_cdf2")], "boom_gelu")  # fmt: skip
    down = _linear(gb, gelu, block.boom_down, "boom_down")  # (T, B, H)
    out = _layer_norm(gb, gb.op("Add", [y, down], "boom_residual"), block.norm_ff, "ln_ff")
    return out, keys_all, values_all


def build_attention_lm(model: nn.Module, *, opset: int = MIN_OPSET, metadata: Mapping[str, str] | None = None):
    """The ``onnx.ModelProto`` of an ``AttentionLM`` (the module docstring's graph) and each LSTM layer's operator."""
    check_model(model)
    onnx = _deps.onnx()
    gb = GraphBuilder(onnx)
    cfg = model.config
    L, H, a, M_max = cfg.num_layers, cfg.hidden_size, model.attention_layer, model.memory_size
    V = model.head.out_features
    inputs = [("tokens", I64, ["T", "B"]), ("h0", F32, [L, "B", H]), ("c0", F32, [L, "B", H]),
              ("keys", F32, ["M", "B", H]), ("values", F32, ["M", "B", H])]  # fmt: skip
    outputs = [("logits", F32, ["T", "B", V]), ("hn", F32, [L, "B", H]), ("cn", F32, [L, "B", H]),
               ("keys_out", F32, ["M_out", "B", H]), ("values_out", F32, ["M_out", "B", H])]  # fmt: skip
    for name, _, _ in (*inputs, *outputs):
        gb.name(name)

    def layers(state: str, start: int, end: int) -> str:  # rows start..end-1 of a (L, B, H) state
        return gb.op("Slice", [state, gb.const([start], f"row_{start}", I64), gb.const([end], f"row_{end}", I64),
                               gb.const([0], "axes_0", I64)], f"{state}_{start}_{end}")  # fmt: skip

    emb = gb.const(model.embedding.weight, "embedding")  # (V, E)
    x = gb.op("Gather", [emb, "tokens"], "embedded", axis=0)  # (T, B, E)
    below = CoreInputs(x=x, h0=layers("h0", 0, a), c0=layers("c0", 0, a), lengths=None)
    y, hn, cn, kinds = emit_core(gb, model.lstm_below, below)  # y (T, B, H)
    y, keys_all, values_all = _emit_block(gb, model.block, y, "keys", "values")

    def last_m(v: str, hint: str) -> str:  # the last M_max rows of (S, B, H)
        return gb.op("Slice", [v, gb.const([-M_max], "minus_m_max", I64), gb.const([INT64_MAX], "end", I64),
                               gb.const([0], "axes_0", I64)], hint)  # fmt: skip

    kept = (last_m(keys_all, "keys_kept"), last_m(values_all, "values_kept"))
    if model.lstm_above is not None:
        above = CoreInputs(x=y, h0=layers("h0", a, L), c0=layers("c0", a, L), lengths=None)
        y, hn_above, cn_above, kinds_above = emit_core(gb, model.lstm_above, above)
        hn = gb.op("Concat", [hn, hn_above], "hn_both", axis=0)
        cn = gb.op("Concat", [cn, cn_above], "cn_both", axis=0)
        kinds += kinds_above
    if model.proj is not None:
        y = gb.op("MatMul", [y, gb.const(model.proj.weight.t(), "proj_t")], "projected")  # (T, B, E)
    if model.head.weight is model.embedding.weight:  # tied: one stored matrix
        w = gb.op("Transpose", [emb], "head_t", perm=[1, 0])  # (E, V)
    else:
        w = gb.const(model.head.weight.t(), "head_t")
    logits = gb.op("MatMul", [y, w], "head_mm")
    if model.head.bias is not None:
        logits = gb.op("Add", [logits, gb.const(model.head.bias, "head_b")], "head_out")
    values = dict(zip(OUTPUTS, (logits, hn, cn, *kept), strict=True))
    meta = {"lstmkit.version": lstmkit.__version__, "lstmkit.model": repr(model), "lstmkit.layers": json.dumps(kinds),
            "lstmkit.attention_memory": str(M_max)}  # fmt: skip
    meta.update(metadata or {})
    return gb.finish("lstmkit_AttentionLM", inputs, outputs, values, opset=opset, props=meta), kinds


def export_attention_lm(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    opset: int = MIN_OPSET,
    verify: bool = True,
    metadata: Mapping[str, str] | None = None,
) -> OnnxExport:
    """Write an ``AttentionLM`` as the module docstring's ONNX graph (atomically) and, with ``verify``, check it
    in onnxruntime (``verify_attention_lm``); raises ``ExportVerificationError`` when an output is beyond its
    bound."""
    check_model(model)
    build = functools.partial(build_attention_lm, model, opset=opset, metadata=metadata)
    return write_verified(model, path, opset, verify, build, verify_attention_lm)


def verify_shapes(model: nn.Module) -> tuple[tuple[int, int, int], ...]:
    """(T, B, M) to verify at: a full memory that the chunk overflows, an empty one, and one partly filled."""
    M_max = model.memory_size
    return ((9, 3, M_max), (1, 2, 0), (4, 1, min(3, M_max)))


def random_inputs(model: nn.Module, T: int, B: int, M: int, seed: int = 0) -> dict[str, Tensor]:
    """The PyTorch state at (T, B) with M memory steps: random ``tokens``, ``h0``, ``c0`` and ``memory`` (M, B, H),
    its values in (-1, 1) as the LSTM outputs it holds (``graph_inputs`` makes the graph's inputs from it)."""
    g = torch.Generator().manual_seed(seed)
    L, H = model.config.num_layers, model.config.hidden_size
    return {"tokens": torch.randint(0, model.embedding.num_embeddings, (T, B), generator=g),
            "h0": 0.5 * torch.randn(L, B, H, generator=g), "c0": torch.randn(L, B, H, generator=g),
            "memory": torch.tanh(torch.randn(M, B, H, generator=g))}  # fmt: skip


@torch.no_grad()
def memory_keys_values(model: nn.Module, memory: Tensor) -> tuple[Tensor, Tensor]:
    """The graph's ``keys`` and ``values`` (M, B, H) for a PyTorch state's ``memory`` (M, B, H): each row's
    W_k LN_kv(m) + b_k and W_v LN_kv(m) + b_v."""
    normed = model.block.norm_kv(memory)
    return model.block.key(normed), model.block.value(normed)


def graph_inputs(model: nn.Module, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The graph's inputs (tokens, h0, c0, keys, values) for a PyTorch state ``inputs`` (``random_inputs``' keys)."""
    keys, values = memory_keys_values(model.eval(), inputs["memory"])
    return {"tokens": inputs["tokens"], "h0": inputs["h0"], "c0": inputs["c0"], "keys": keys, "values": values}


@torch.no_grad()
def run_torch(model: nn.Module, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The model's outputs (eval mode) from a PyTorch state ``inputs``, keyed by the graph's output names (the new
    memory's keys and values for ``keys_out`` and ``values_out``)."""
    was_training = model.training
    model.eval()
    try:
        logits, (hn, cn, memory) = model(inputs["tokens"], (inputs["h0"], inputs["c0"], inputs["memory"]))
        keys, values = memory_keys_values(model, memory)
    finally:
        model.train(was_training)
    return dict(zip(OUTPUTS, (logits, hn, cn, keys, values), strict=True))


def layer_norm_local(norm: nn.LayerNorm, a: Tensor) -> Tensor:
    """Per element, a bound on the rounding LayerNorm adds to its output over rows a (..., n) given exactly, from
    the row's own values (mean m, d = a - m, variance v, r = 1/sqrt(v + eps), z = d r, out = gain z + bias):
    |dm| <= gamma(n + 1) mean|a|; dd <= |dm| + u |d|; the variance, by either formula (mean of d^2, or mean of a^2
    minus m^2), dv <= gamma(n + 3) mean(a^2) + 2 sqrt(v) |dm|; dr / r <= dv / (2 (v + eps)) + 2 u;
    dz <= dd r + |z| dr / r + u |z|; dout <= |gain| dz + u (|gain z| + |out|). No assumption on the row's spread:
    a row nearly constant is ill-conditioned, and its bound says so."""
    n, eps = a.shape[-1], norm.eps
    a = a.detach()
    m = a.mean(-1, keepdim=True)
    d = a - m
    v = d.pow(2).mean(-1, keepdim=True)
    dm = _rounding.gamma(n + 1, _U) * a.abs().mean(-1, keepdim=True)
    dd = dm + _U * d.abs()
    dv = _rounding.gamma(n + 3, _U) * a.pow(2).mean(-1, keepdim=True) + 2 * v.sqrt() * dm
    r = (v + eps).rsqrt()
    z = d * r
    dz = dd * r + z.abs() * (dv / (2 * (v + eps)) + 2 * _U) + _U * z.abs()
    gain, bias = norm.weight.detach(), norm.bias.detach()
    return gain.abs() * dz + _U * ((gain * z).abs() + (gain * z + bias).abs())


def _spotted_layer_norm(spots: _spots.Spots, norm: nn.LayerNorm, a: Tensor) -> Tensor:
    """LayerNorm over the last axis of time-major (T, B, n) rows, spotted (``layer_norm_local``)."""
    return spots.add(norm(a), layer_norm_local(norm, a), batch_dim=1)


def _spotted_linear(spots: _spots.Spots, layer: nn.Linear, x: Tensor) -> Tensor:
    """A Linear on time-major (T, B, n) inputs, spotted: n inputs and a bias, gamma(n + 1) (|W| |x| + |b|)."""
    mags = x.detach().abs() @ layer.weight.detach().abs().T
    if layer.bias is not None:
        mags = mags + layer.bias.detach().abs()
    return spots.add(layer(x), _rounding.gamma(layer.in_features + 1, _U) * mags, batch_dim=1)


def spotted_block(spots: _spots.Spots, block: nn.Module, x: Tensor, memory: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``AttentionBlock.forward`` (eval: no dropout) with a spot on every rounded value (``lstmkit.export._spots``):
    the LayerNorms (``layer_norm_local``) and linear maps; the scores q . k / sqrt H, gamma(H) sum|q||k| / sqrt H
    plus u |score|; each softmax weight, (gamma(S + 2) + F u) times itself (exponentials, their sum, a division);
    the context sum_j alpha_j v_j, gamma(S) sum_j alpha_j |v_j|; each residual add, u times the sum; the exact GELU
    x/2 (1 + erf(x / sqrt 2)), 2 F u |x| (a division, erf, an addition and two products, each within F u of
    |x| or less). Returns the block's output (T, B, H) and the keys and values (S, B, H) of [memory; x].
    ``test_spotted_block_is_the_block`` holds it equal to the block with zero spots."""
    H = x.shape[-1]
    keys_in = torch.cat([memory, x], dim=0)  # (S, B, H)
    S = keys_in.shape[0]
    kv = _spotted_layer_norm(spots, block.norm_kv, keys_in)
    q = _spotted_linear(spots, block.query, _spotted_layer_norm(spots, block.norm_q, x))  # (T, B, H)
    k, v = _spotted_linear(spots, block.key, kv), _spotted_linear(spots, block.value, kv)  # (S, B, H)
    raw = torch.einsum("tbh,sbh->bts", q, k) / math.sqrt(H)  # (B, T, S)
    mags = torch.einsum("tbh,sbh->bts", q.detach().abs(), k.detach().abs()) / math.sqrt(H)
    scores = spots.add(raw, _rounding.gamma(H, _U) * mags + _U * raw.detach().abs())
    alpha = scores.masked_fill(~causal_mask(x.shape[0], memory.shape[0]), -math.inf).softmax(dim=-1)
    alpha = spots.add(alpha, (_rounding.gamma(S + 2, _U) + _F) * alpha.detach())
    ctx = torch.einsum("bts,sbh->tbh", alpha, v)  # (T, B, H)
    ctx = spots.add(ctx, _rounding.gamma(S, _U) * torch.einsum("bts,sbh->tbh", alpha.detach(), v.detach().abs()),
                    batch_dim=1)  # fmt: skip
    y = x + ctx
    y = spots.add(y, _U * y.detach().abs(), batch_dim=1)
    up = _spotted_linear(spots, block.boom_up, y)  # (T, B, 4H)
    g = spots.add(F.gelu(up), 2 * _F * up.detach().abs(), batch_dim=1)
    z_in = y + _spotted_linear(spots, block.boom_down, g)
    z_in = spots.add(z_in, _U * z_in.detach().abs(), batch_dim=1)
    return _spotted_layer_norm(spots, block.norm_ff, z_in), k, v


def bounds(model: nn.Module, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Per element of each output, a bound on its float32 rounding error at the PyTorch state ``inputs``
    (``random_inputs``' keys), carried by autograd (``lstmkit.export._spots``): the model run again in float64 with
    a spot on every rounded value (the LSTM cells, ``spotted_block``, the projection), and LAMBDA
    sqrt(sum g^2 eps^2) for ``hn``, ``cn``, the new steps' keys and values and the head's input. The logits then err
    by at most |W_head| times that, plus the head's own gamma(E + 1) (|W| |z| + |b|); the memory's keys and values,
    W LN(m) + b of exact rows, by their own two roundings: LAMBDA sqrt(eps_k^2 + sum_j W_ij^2 eps_ln,j^2)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # hundreds of small backward passes: a thread pool costs more than it saves
    try:
        return _bounds(model, inputs)
    finally:
        torch.set_num_threads(threads)


def _bounds(model: nn.Module, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    twin = copy.deepcopy(model).double().eval()
    for core in (twin.lstm_below, twin.lstm_above):
        if core is not None:
            core.impl = "reference"  # the layer's own time loop, which calls the spotted step (twin is a copy)
    a = twin.attention_layer
    h0, c0, memory = (inputs[k].detach().double() for k in ("h0", "c0", "memory"))
    spots = _spots.Spots()
    M = memory.shape[0]
    with torch.enable_grad(), _spots.spotted_cells(spots):
        y, (h, c) = twin.lstm_below(twin.embedding(inputs["tokens"]), (h0[:a], c0[:a]))  # (T, B, H)
        z, k, v = spotted_block(spots, twin.block, y, memory)  # (T, B, H), (S, B, H) x 2
        if twin.lstm_above is not None:
            z, (h_above, c_above) = twin.lstm_above(z, (h0[a:], c0[a:]))
            h, c = torch.cat([h, h_above]), torch.cat([c, c_above])
        if twin.proj is not None:
            z = _spotted_linear(spots, twin.proj, z)  # (T, B, E)
        parts = [h, c, z, k[M:], v[M:]]  # each (rows, B, size): the batch is axis 1
        flat = torch.cat([p.movedim(1, 0).flatten(1) for p in parts], dim=1)  # (B, N)
        std = _rounding.LAMBDA * spots.variance_batched(flat).sqrt()  # (B, N)
    B = flat.shape[0]
    pieces = std.split([p[:, 0].numel() for p in parts], dim=1)  # each (B, rows * size)
    e_h, e_c, e_z, e_k, e_v = (e.reshape(B, p.shape[0], *p.shape[2:]).movedim(0, 1)
                               for e, p in zip(pieces, parts, strict=True))  # (rows, B, size) each  # fmt: skip
    head = twin.head
    w = head.weight.detach().abs()  # (V, E)
    local = z.detach().abs() @ w.T + (head.bias.detach().abs() if head.bias is not None else 0.0)
    e_logits = e_z @ w.T + _rounding.gamma(head.in_features + 1, _U) * local  # (T, B, V)
    block = twin.block
    normed = block.norm_kv(memory).detach()  # (M, B, H)
    e_ln = layer_norm_local(block.norm_kv, memory)

    def memory_rows(layer: nn.Linear) -> Tensor:  # (M, B, H): W LN(m) + b of the memory's exact rows
        w = layer.weight.detach()
        eps = _rounding.gamma(layer.in_features + 1, _U) * (normed.abs() @ w.abs().T + layer.bias.detach().abs())
        return _rounding.LAMBDA * (eps.pow(2) / _rounding.LAMBDA**2 + e_ln.pow(2) @ w.pow(2).T).sqrt()

    M_max = twin.memory_size
    return {"logits": e_logits, "hn": e_h, "cn": e_c,
            "keys_out": torch.cat([memory_rows(block.key), e_k])[-M_max:],
            "values_out": torch.cat([memory_rows(block.value), e_v])[-M_max:]}  # fmt: skip


def verify_attention_lm(
    model: nn.Module, path: str | os.PathLike[str], shapes: tuple[tuple[int, int, int], ...] | None = None
) -> tuple[float, tuple[str, ...]]:
    """Run the ONNX file ``path`` in onnxruntime against ``model`` at each (T, B, M) of ``shapes`` (default
    ``verify_shapes``). Returns the largest absolute difference and the outputs whose largest bound was as large
    as their largest value at some shape (there an all-zero output would have passed); raises
    ``ExportVerificationError`` when an element differs by more than twice its rounding bound (``bounds``)."""
    ort = _deps.onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    worst, loose = 0.0, []
    for seed, (T, B, M) in enumerate(shapes or verify_shapes(model)):
        inputs = random_inputs(model, T, B, M, seed)
        want = run_torch(model, inputs)
        got = session.run(list(OUTPUTS), {k: v.numpy() for k, v in graph_inputs(model, inputs).items()})
        allowed = {name: _rounding.between(1.0) * e.numpy() for name, e in bounds(model, inputs).items()}
        worst = max(worst, compare_within_bounds(path, model, want, got, allowed, f"T={T}, B={B}, M={M}", loose))
    return worst, tuple(loose)


__all__ = ["bounds", "build_attention_lm", "export_attention_lm", "graph_inputs", "layer_norm_local",
           "memory_keys_values", "random_inputs", "run_torch", "spotted_block", "verify_attention_lm", "verify_shapes"]
