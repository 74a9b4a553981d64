r"""An LSTM controller with an external memory (``export_kind`` "memory", ``lstmkit.models.MemoryLSTM``: the Neural
Turing Machine) as one ONNX graph whose state is the controller's h and c, the vectors read, every head's weighting
and the memory itself.

Graph (T and B symbolic; I inputs, H controller units, N slots of W numbers, R read and V write heads, K = R + V,
O outputs):

======================  ====================================================================
inputs                  ``features`` (T, B, I) float32; ``h0``, ``c0`` (B, H); ``read0`` (B, R W);
                        ``weights0`` (B, K, N); ``memory0`` (B, N, W)
outputs                 ``logits`` (T, B, O); ``hn``, ``cn``, ``read_n``, ``weights_n``, ``memory_n``:
                        the state after the T steps, the next call's inputs
======================  ====================================================================

A sequence starts from the model's own start (``NTMCell.initial_state``): h and c zero, the learned read vectors
and head weightings, every memory entry 1e-6. The file carries it in its metadata (``lstmkit.memory_start``: JSON
``{"read": [R W numbers], "weights": [K rows of N], "memory": 1e-06, "hidden_size": H, "slots": N, "width": W}``)
so that a server needs onnxruntime alone:
``start_inputs`` builds the five state inputs for B sequences from it. Feeding the five state outputs back as the
next call's inputs runs a sequence chunk by chunk as one call over all of it.

The time loop is a ``Scan`` whose body is ``NTMCell.forward`` node for node (lstmkit/models/memory.py): the
controller's gates W_ih [x; r] + W_hh h + b and its cell; the heads' linear map, split into each head's key, beta
(``Softplus``), gate (``Sigmoid``), shift (``Softmax`` over the 2S + 1 offsets) and gamma (1 + ``Softplus``), and
the writers' erase (``Sigmoid``) and add (``Tanh``); the addressing of eqs 5-9 (cosine similarity of keys and
slots as ``MatMul`` over the ``Sqrt`` of ``ReduceSum`` of squares, ``Softmax``, interpolation, the rotation as one
``Gather`` of the slots per offset, sharpening by ``Pow``); the reads (``MatMul``) and the writes (every erase,
then every add). The output layer reads [h; r] of every step after the loop.

Verified in onnxruntime against the PyTorch model at three (T, B) and from the model's start and from states it
reaches after some steps of random bits (the inputs of the bit tasks), every output element within twice a float32
rounding bound of its own, derived at these inputs from every rounded value of the step carried by autograd
(``bounds``, the method of ``lstmkit.export._spots``). Shapes: T time, B batch, and the sizes above.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import lstmkit
from lstmkit import _rounding
from lstmkit.export import _deps, _spots, task_models
from lstmkit.export.graph import GraphBuilder
from lstmkit.export.onnx_model import MIN_OPSET, OnnxExport, compare_within_bounds, write_verified
from lstmkit.models.memory import COSINE_EPS, MEMORY_INIT, SHARPEN_EPS, NTMCell, NTMState

KIND = "memory"
I64, F32 = "int64", "float32"
STATE = ("h", "c", "read", "weights", "memory")  # NTMState's fields, in the graph's order
INPUTS = ("features", "h0", "c0", "read0", "weights0", "memory0")
OUTPUTS = ("logits", "hn", "cn", "read_n", "weights_n", "memory_n")
START_KEY = "lstmkit.memory_start"
_U = _rounding.unit_roundoff(torch.float32)
_FU = _rounding.F_POINTWISE * _U
# Values below float32's smallest normal number may be flushed to zero (or kept as subnormals) by either runtime:
# an absolute error up to this on every value that can underflow (the sharpened weightings and what they divide)
_TINY = torch.finfo(torch.float32).tiny


def check_model(model: nn.Module) -> None:
    """Raise ``TypeError`` unless ``model`` is a ``MemoryLSTM`` (its ``export_kind``) with float32 parameters."""
    task_models.check_export_model(model, KIND, "MemoryLSTM")


# -- the graph ---------------------------------------------------------------------------------------------------
def _linear(gb: GraphBuilder, x: str, weight: Tensor, bias: Tensor | None, hint: str) -> str:
    y = gb.op("MatMul", [x, gb.const(weight.t(), f"{hint}_wt")], f"{hint}_mm")
    return gb.op("Add", [y, gb.const(bias, f"{hint}_b")], hint) if bias is not None else y


def _slice(gb: GraphBuilder, x: str, start: int, end: int, axis: int, hint: str) -> str:
    return gb.op("Slice", [x, gb.const([start], f"at_{start}", I64), gb.const([end], f"at_{end}", I64),
                           gb.const([axis], f"axis_{axis}", I64)], hint)  # fmt: skip


def _sum_last(gb: GraphBuilder, x: str, hint: str, keepdims: int = 1) -> str:
    return gb.op("ReduceSum", [x, gb.const([-1], "axes_last", I64)], hint, keepdims=keepdims)


def _softplus(gb: GraphBuilder, x: str, hint: str) -> str:
    """torch's softplus, log(1 + e^x), which returns x itself above 20 (where they agree within rounding)."""
    return gb.op("Softplus", [x], hint)


def _step_body(sb: GraphBuilder, cell: NTMCell):
    """The ``Scan`` body: (h, c, read, weights, memory, x_t) -> (the same state after the step, y_t = [h; r])."""
    TP = sb.onnx.TensorProto
    N, W, R, V, S = cell.sizes
    K, H, P = R + V, cell.controller.hidden_size, cell.per_head
    I = cell.controller.input_size - R * W
    names = {k: sb.name(f"step_{k}") for k in (*STATE, "x")}
    shapes = {"h": ["B", H], "c": ["B", H], "read": ["B", R * W], "weights": ["B", K, N], "memory": ["B", N, W],
              "x": ["B", I]}  # fmt: skip
    inputs = [sb.value_info(names[k], TP.FLOAT, shapes[k]) for k in (*STATE, "x")]
    h, c, read, prev, memory, x = (names[k] for k in (*STATE, "x"))
    ctl = cell.controller
    # the controller: a = W_ih [x; r] + b_ih + W_hh h + b_hh, gates i, f, g, o (torch's order)
    a = sb.op("Add", [sb.op("MatMul", [sb.op("Concat", [x, read], "ctl_in", axis=1),
                                        sb.const(ctl.weight_ih.t(), "ctl_Wih_t")], "ctl_xw"),
                      sb.op("MatMul", [h, sb.const(ctl.weight_hh.t(), "ctl_Whh_t")], "ctl_hw")], "ctl_a0")  # fmt: skip
    a = sb.op("Add", [a, sb.const(ctl.bias_ih + ctl.bias_hh, "ctl_b")], "ctl_a")
    a_i, a_f, a_g, a_o = sb.op("Split", [a, sb.const([H] * 4, f"split_4x{H}", I64)], "ctl_gate", n_out=4, axis=1)
    i, f, o = (sb.op("Sigmoid", [z], f"ctl_{n}") for z, n in ((a_i, "i"), (a_f, "f"), (a_o, "o")))
    c_new = sb.op("Add", [sb.op("Mul", [f, c], "ctl_fc"), sb.op("Mul", [i, sb.op("Tanh", [a_g], "ctl_g")], "ctl_ig")],
                  "ctl_c")  # fmt: skip
    h_new = sb.op("Mul", [o, sb.op("Tanh", [c_new], "ctl_tanh_c")], "ctl_h")
    # zoneout in eval mode (the controller's), after h read the new cell: (1 - p) new + p old, h and c each
    for name, rate in zip(("h", "c"), ctl.zoneout, strict=True):
        if rate:
            new, old = (h_new, h) if name == "h" else (c_new, c)
            mixed = sb.op("Add", [sb.op("Mul", [new, sb.const(1.0 - rate, f"ctl_keep_{name}", F32)]),
                                  sb.op("Mul", [old, sb.const(rate, f"ctl_zone_{name}", F32)])], f"ctl_{name}_zoned")
            h_new, c_new = (mixed, c_new) if name == "h" else (h_new, mixed)
    # the heads: K addressing blocks of P = W + 2S + 4 numbers, then the writers' erase and add (2W each)
    out = _linear(sb, h_new, cell.heads.weight, cell.heads.bias, "heads")  # (B, K P + 2 V W)
    per = sb.op("Reshape", [_slice(sb, out, 0, K * P, 1, "heads_addr"), sb.const([0, K, P], "shape_bkp", I64)],
                "heads_bkp")  # (B, K, P)  # fmt: skip
    key, beta, gate, shift, gamma = sb.op("Split", [per, sb.const([W, 1, 1, 2 * S + 1, 1], "split_head", I64)],
                                          "head", n_out=5, axis=2)  # fmt: skip
    beta = _softplus(sb, beta, "beta")
    gate = sb.op("Sigmoid", [gate], "gate")
    shift = sb.op("Softmax", [shift], "shift", axis=-1)
    gamma = sb.op("Add", [_softplus(sb, gamma, "gamma_sp"), sb.const(1.0, "one_f32", F32)], "gamma")
    ea = sb.op("Reshape", [_slice(sb, out, K * P, K * P + 2 * V * W, 1, "heads_ea"),
                           sb.const([0, V, 2 * W], "shape_bv2w", I64)], "heads_bv2w")  # fmt: skip
    erase, add = sb.op("Split", [ea, sb.const([W, W], "split_ww", I64)], "ea", n_out=2, axis=2)
    erase, add = sb.op("Sigmoid", [erase], "erase"), sb.op("Tanh", [add], "add")
    # addressing (eqs 5-9), every head on the memory the step started with
    dots = sb.op("MatMul", [key, sb.op("Transpose", [memory], "memory_t", perm=[0, 2, 1])], "dots")  # (B, K, N)
    k_norm = sb.op("Sqrt", [_sum_last(sb, sb.op("Mul", [key, key], "key_sq"), "key_sq_sum")], "key_norm")  # (B,K,1)
    m_norm = sb.op("Sqrt", [_sum_last(sb, sb.op("Mul", [memory, memory], "mem_sq"), "mem_sq_sum", 0)], "mem_norm")
    m_norm = sb.op("Unsqueeze", [m_norm, sb.const([1], "axes_1", I64)], "mem_norm_row")  # (B, 1, N)
    denom = sb.op("Add", [sb.op("Mul", [k_norm, m_norm], "norms"), sb.const(COSINE_EPS, "cos_eps", F32)], "denom")
    content = sb.op("Softmax", [sb.op("Div", [sb.op("Mul", [beta, dots], "beta_dots"), denom], "cos_beta")],
                    "content", axis=-1)  # fmt: skip
    gated = sb.op("Add", [sb.op("Mul", [gate, content], "gate_content"),
                          sb.op("Mul", [sb.op("Sub", [sb.const(1.0, "one_f32", F32), gate], "one_minus_gate"), prev],
                                "gate_prev")], "gated")  # fmt: skip
    shifted = None
    for d in range(-S, S + 1):  # torch.roll(w, d)[i] = w[(i - d) mod N]
        rolled = sb.op("Gather", [gated, sb.const([(i - d) % N for i in range(N)], f"roll_{d % N}", I64)],
                       f"rolled_{d % N}", axis=2)  # fmt: skip
        term = sb.op("Mul", [_slice(sb, shift, d + S, d + S + 1, 2, f"shift_{d + S}"), rolled], f"shift_term_{d + S}")
        shifted = term if shifted is None else sb.op("Add", [shifted, term], f"shifted_{d + S}")
    sharp = sb.op("Pow", [sb.op("Add", [shifted, sb.const(SHARPEN_EPS, "sharpen_eps", F32)], "shifted_eps"), gamma],
                  "sharp")  # fmt: skip
    weights = sb.op("Div", [sharp, _sum_last(sb, sharp, "sharp_sum")], "weights")  # (B, K, N)
    # reads, then writes: every erase, then every add
    read_new = sb.op("Reshape", [sb.op("MatMul", [_slice(sb, weights, 0, R, 1, "w_read"), memory], "read_rw"),
                                 sb.const([0, R * W], "shape_b_rw", I64)], "read")  # (B, R W)  # fmt: skip
    w = _slice(sb, weights, R, K, 1, "w_write")  # (B, V, N)
    erased = sb.op("Sub", [sb.const(1.0, "one_f32", F32),
                           sb.op("Mul", [sb.op("Unsqueeze", [w, sb.const([3], "axes_3", I64)], "w_col"),
                                         sb.op("Unsqueeze", [erase, sb.const([2], "axes_2", I64)], "erase_row")],
                                 "w_erase")], "erased")  # (B, V, N, W)  # fmt: skip
    keep = None
    for v in range(V):
        e_v = sb.op("Gather", [erased, sb.const(v, f"idx_{v}", I64)], f"erased_{v}", axis=1)  # (B, N, W)
        keep = e_v if keep is None else sb.op("Mul", [keep, e_v], f"keep_{v}")
    added = sb.op("MatMul", [sb.op("Transpose", [w], "w_t", perm=[0, 2, 1]), add], "added")  # (B, N, W)
    memory_new = sb.op("Add", [sb.op("Mul", [memory, keep], "memory_kept"), added], "memory_new")
    y = sb.op("Concat", [h_new, read_new], "step_y", axis=1)  # (B, H + R W)
    outs = [(h_new, shapes["h"]), (c_new, shapes["c"]), (read_new, shapes["read"]), (weights, shapes["weights"]),
            (memory_new, shapes["memory"]), (y, ["B", H + R * W])]  # fmt: skip
    outputs = [sb.value_info(n, TP.FLOAT, s) for n, s in outs]
    return sb.onnx.helper.make_graph(sb.nodes, "ntm_step", inputs, outputs)


def build_memory_onnx(model: nn.Module, *, opset: int = MIN_OPSET, metadata: Mapping[str, str] | None = None):
    """The ``onnx.ModelProto`` of a ``MemoryLSTM`` (the module docstring's graph) and its recurrence's operator."""
    check_model(model)
    onnx = _deps.onnx()
    gb = GraphBuilder(onnx)
    cell = model.cell
    N, W, R, V, _ = cell.sizes
    K, H, I, O = R + V, cell.controller.hidden_size, model.config.input_size, model.head.out_features
    shapes = (["T", "B", I], ["B", H], ["B", H], ["B", R * W], ["B", K, N], ["B", N, W])
    out_shapes = (["T", "B", O], *shapes[1:])
    for name in (*INPUTS, *OUTPUTS):
        gb.name(name)
    h, c, read, weights, memory, y = gb.op("Scan", [*INPUTS[1:], "features"], "scan", n_out=6,
                                           body=_step_body(gb.sub(), cell), num_scan_inputs=1)  # fmt: skip
    logits = _linear(gb, y, model.head.weight, model.head.bias, "head")  # (T, B, O)
    values = dict(zip(OUTPUTS, (logits, h, c, read, weights, memory), strict=True))
    meta = {"lstmkit.version": lstmkit.__version__, "lstmkit.model": repr(model), "lstmkit.layers": '["Scan"]',
            START_KEY: json.dumps(start_metadata(model))}  # fmt: skip
    meta.update(metadata or {})
    proto = gb.finish("lstmkit_MemoryLSTM", [(n, F32, s) for n, s in zip(INPUTS, shapes, strict=True)],
                      [(n, F32, s) for n, s in zip(OUTPUTS, out_shapes, strict=True)], values, opset=opset,
                      props=meta)  # fmt: skip
    return proto, ["Scan"]


def export_memory(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    opset: int = MIN_OPSET,
    verify: bool = True,
    metadata: Mapping[str, str] | None = None,
) -> OnnxExport:
    """Write a ``MemoryLSTM`` as the module docstring's ONNX graph (atomically) and, with ``verify``, check it in
    onnxruntime (``verify_memory``); raises ``ExportVerificationError`` when an output is beyond its bound."""
    check_model(model)
    build = functools.partial(build_memory_onnx, model, opset=opset, metadata=metadata)
    return write_verified(model, path, opset, verify, build, verify_memory)


# -- the start, for servers ----------------------------------------------------------------------------------------
@torch.no_grad()
def start_metadata(model: nn.Module) -> dict:
    """``lstmkit.memory_start``: the learned read vectors (R W numbers), the head weightings (K rows of N, after their
    softmax), the memory's constant start, and the sizes a server needs besides (H, N, W)."""
    cell = model.cell
    state = cell.initial_state(1, model.head.weight)
    N, W = cell.sizes[:2]
    return {"read": state.read[0].tolist(), "weights": state.weights[0].tolist(), "memory": MEMORY_INIT,
            "hidden_size": cell.controller.hidden_size, "slots": N, "width": W}  # fmt: skip


def start_inputs(start: Mapping, batch: int) -> dict[str, np.ndarray]:
    """The graph's five state inputs for ``batch`` sequences at their start, from the file's ``lstmkit.memory_start``
    (parsed JSON): numpy only, for a server without torch."""
    H, N, W = start["hidden_size"], start["slots"], start["width"]
    read, weights = np.asarray(start["read"], np.float32), np.asarray(start["weights"], np.float32)
    return {"h0": np.zeros((batch, H), np.float32), "c0": np.zeros((batch, H), np.float32),
            "read0": np.tile(read, (batch, 1)), "weights0": np.tile(weights, (batch, 1, 1)),
            "memory0": np.full((batch, N, W), start["memory"], np.float32)}  # fmt: skip


# -- PyTorch's side: inputs, outputs, bounds -----------------------------------------------------------------------
def verify_shapes() -> tuple[tuple[int, int, int], ...]:
    """(T, B, steps before): from the model's start, and from the states it reaches after some steps."""
    return ((9, 3, 0), (1, 2, 5), (4, 1, 12))


@torch.no_grad()
def random_inputs(model: nn.Module, T: int, B: int, before: int = 0, seed: int = 0) -> dict[str, Tensor]:
    """The graph's inputs: ``features`` (T, B, I) random bits (the bit tasks' inputs), and the state the model
    reaches from its start after ``before`` steps of random bits (0: its start), the state a server would feed."""
    g = torch.Generator().manual_seed(seed)
    I = model.config.input_size
    state = model.cell.initial_state(B, model.head.weight)
    if before:
        was_training = model.training
        model.eval()
        try:
            _, state = model(torch.randint(0, 2, (before, B, I), generator=g).float(), state)
        finally:
            model.train(was_training)
    features = torch.randint(0, 2, (T, B, I), generator=g).float()
    return {"features": features, **{f"{k}0": v.contiguous() for k, v in zip(STATE, state, strict=True)}}


def _state(inputs: Mapping[str, Tensor], dtype: torch.dtype | None = None) -> NTMState:
    return NTMState(*(inputs[f"{k}0"].detach().to(dtype or inputs[f"{k}0"].dtype) for k in STATE))


@torch.no_grad()
def run_torch(model: nn.Module, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The model's outputs (eval mode) from the graph's ``inputs``, keyed by the graph's output names."""
    was_training = model.training
    model.eval()
    try:
        logits, state = model(inputs["features"], _state(inputs))
    finally:
        model.train(was_training)
    return dict(zip(OUTPUTS, (logits, *state), strict=True))


def _spotted_linear(spots: _spots.Spots, layer: nn.Linear, x: Tensor) -> Tensor:
    """A Linear on (B, n) or (T, B, n) inputs, spotted: n inputs and a bias, gamma(n + 1) (|W| |x| + |b|)."""
    mags = x.detach().abs() @ layer.weight.detach().abs().T + layer.bias.detach().abs()
    return spots.add(layer(x), _rounding.gamma(layer.in_features + 1, _U) * mags, batch_dim=x.dim() - 2)


def _spotted_softplus(spots: _spots.Spots, z: Tensor) -> Tensor:
    """log(1 + e^z): the sum 1 + e^z rounded (relative u, an absolute u of its log), e^z and the log within F u of
    their values: F u (1 + |value|)."""
    v = F.softplus(z)
    return spots.add(v, _FU * (1.0 + v.detach().abs()))


def _spotted_softmax(spots: _spots.Spots, z: Tensor) -> Tensor:
    """A softmax over the last axis of n values: each weight within (gamma(n + 2) + F u) of itself (exponentials,
    their sum, a division)."""
    p = torch.softmax(z, dim=-1)
    return spots.add(p, (_rounding.gamma(z.shape[-1] + 2, _U) + _FU) * p.detach())


def spotted_step(spots: _spots.Spots, cell: NTMCell, x: Tensor, state: NTMState) -> tuple[Tensor, NTMState]:
    """``NTMCell.forward`` with a spot on every rounded value (``lstmkit.export._spots``): the controller
    (``_spots.lstm_cell``, one sum of I + R W + H + 2 terms a gate); the heads' linear map; softplus, sigmoid
    (F u absolute), softmax; the cosine's dot products (gamma(W) sum |k| |M|), norms (sqrt of a sum of W squares:
    (gamma(W) / 2 + F u) times the norm), their product and the eps (2 u), the ratio beta dots / denominator (2 u);
    the interpolation g w^c + (1 - g) w (3 u times the sum of |terms|); the rotation, 2S + 1 products summed
    (gamma(2S + 2)); the sharpening (w + eps)^gamma (F u times itself), its sum over N (gamma(N)) and the division
    (u), both also within float32's smallest normal number of zero (underflow); the reads (gamma(N) sum w |M|); the
    erase 1 - w e (u |w e| + u |1 - w e|), its product over the writers (u each), the new memory M keep + sum_v w a
    (gamma(V + 1) (|M keep| + sum_v |w a|)). ``test_spotted_step_is_the_step`` holds it equal to the cell with zero
    spots."""
    N, W, R, V, S = cell.sizes
    K = R + V
    ctl = cell.controller
    inp = torch.cat([x, state.read], dim=-1)  # (B, I + R W)
    a = F.linear(inp, ctl.weight_ih, ctl.bias_ih) + F.linear(state.h, ctl.weight_hh, ctl.bias_hh)
    mags = (F.linear(inp.detach().abs(), ctl.weight_ih.detach().abs(), ctl.bias_ih.detach().abs())
            + F.linear(state.h.detach().abs(), ctl.weight_hh.detach().abs(), ctl.bias_hh.detach().abs()))  # fmt: skip
    h, c = _spots.lstm_cell(spots, a, mags, state.c, inp.shape[-1] + ctl.hidden_size + 2)
    p_h, p_c = ctl.zoneout  # eval mode's mix (the graph's)
    h = _spots.zone_mix(spots, h, state.h, p_h) if p_h else h
    c = _spots.zone_mix(spots, c, state.c, p_c) if p_c else c
    out = _spotted_linear(spots, cell.heads, h)  # (B, K P + 2 V W)
    B = out.shape[0]
    p = out[:, : K * cell.per_head].view(B, K, cell.per_head)
    key, beta, gate, shift, gamma = p.split([W, 1, 1, 2 * S + 1, 1], dim=-1)
    beta = _spotted_softplus(spots, beta)
    gate = spots.add(torch.sigmoid(gate), torch.full_like(gate, _FU))
    shift = _spotted_softmax(spots, shift)
    gamma_sp = _spotted_softplus(spots, gamma)
    gamma = spots.add(1.0 + gamma_sp, _U * (1.0 + gamma_sp.detach()))
    erase, add = out[:, K * cell.per_head :].view(B, V, 2 * W).split([W, W], dim=-1)
    erase = spots.add(torch.sigmoid(erase), torch.full_like(erase, _FU))
    add = spots.add(torch.tanh(add), torch.full_like(add, _FU))
    memory, prev = state.memory, state.weights
    # addressing
    dots = key @ memory.transpose(1, 2)  # (B, K, N)
    dots = spots.add(dots, _rounding.gamma(W, _U) * (key.detach().abs() @ memory.detach().abs().transpose(1, 2)))
    k_norm, m_norm = key.norm(dim=-1, keepdim=True), memory.norm(dim=-1).unsqueeze(1)  # (B, K, 1), (B, 1, N)
    k_norm = spots.add(k_norm, (_rounding.gamma(W, _U) / 2 + _FU) * k_norm.detach())
    m_norm = spots.add(m_norm, (_rounding.gamma(W, _U) / 2 + _FU) * m_norm.detach())
    denom = k_norm * m_norm + COSINE_EPS
    denom = spots.add(denom, 2 * _U * denom.detach())
    ratio = beta * dots / denom
    ratio = spots.add(ratio, 2 * _U * ratio.detach().abs())
    content = _spotted_softmax(spots, ratio)
    gated = gate * content + (1.0 - gate) * prev
    gated = spots.add(gated, 3 * _U * ((gate * content).detach().abs() + ((1.0 - gate) * prev).detach().abs()))
    terms = [shift[..., d + S : d + S + 1] * torch.roll(gated, d, dims=-1) for d in range(-S, S + 1)]
    shifted = sum(terms)
    shifted = spots.add(shifted, _rounding.gamma(2 * S + 2, _U) * sum(t.detach().abs() for t in terms))
    sharp = (shifted + SHARPEN_EPS) ** gamma  # (B, K, N)
    sharp = spots.add(sharp, _FU * sharp.detach() + _TINY)
    total = sharp.sum(dim=-1, keepdim=True)
    total = spots.add(total, _rounding.gamma(N, _U) * total.detach() + _TINY)
    weights = sharp / total
    weights = spots.add(weights, _U * weights.detach() + _TINY)
    # reads, then writes
    read = weights[:, :R] @ memory  # (B, R, W)
    read = spots.add(read, _rounding.gamma(N, _U) * (weights[:, :R].detach() @ memory.detach().abs())).flatten(1)
    w = weights[:, R:]  # (B, V, N)
    we = w.unsqueeze(-1) * erase.unsqueeze(2)  # (B, V, N, W)
    erased = spots.add(1.0 - we, _U * (we.detach().abs() + (1.0 - we).detach().abs()))
    keep = erased[:, 0]
    for v in range(1, V):
        keep = keep * erased[:, v]
        keep = spots.add(keep, _U * keep.detach().abs())
    kept = memory * keep
    added = w.transpose(1, 2) @ add  # (B, N, W)
    adds = w.detach().abs().transpose(1, 2) @ add.detach().abs()
    memory_new = kept + added
    memory_new = spots.add(memory_new, _U * kept.detach().abs()
                           + _rounding.gamma(V + 1, _U) * (kept.detach().abs() + adds))  # fmt: skip
    return torch.cat([h, read], dim=-1), NTMState(h, c, read, weights, memory_new)


def bounds(model: nn.Module, inputs: Mapping[str, Tensor], outputs: tuple[str, ...] = OUTPUTS) -> dict[str, Tensor]:
    """Per element of each of ``outputs`` (default all), a bound on its float32 rounding error at the graph's
    ``inputs``, carried by autograd (``lstmkit.export._spots``): the model run again in float64 with a spot on every
    rounded value (``spotted_step`` at each step, the output layer), and LAMBDA sqrt(sum g^2 eps^2) for every output
    element (a backward pass per 64 output positions of a sequence: the memory's N W dominate all but long runs)."""
    bad = sorted(set(outputs) - set(OUTPUTS))
    if bad or not outputs:
        raise ValueError(f"outputs must be some of {OUTPUTS}, got {outputs!r}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small backward passes: a thread pool costs more than it saves
    try:
        return _bounds(model, inputs, outputs)
    finally:
        torch.set_num_threads(threads)


def _bounds(model: nn.Module, inputs: Mapping[str, Tensor], names: tuple[str, ...]) -> dict[str, Tensor]:
    twin = copy.deepcopy(model).double().eval()
    spots = _spots.Spots()
    with torch.enable_grad():
        state = _state(inputs, torch.float64)
        ys = []
        for x in inputs["features"].double():  # (B, I) a step
            y, state = spotted_step(spots, twin.cell, x, state)
            ys.append(y)
        logits = _spotted_linear(spots, twin.head, torch.stack(ys))  # (T, B, O)
        every = dict(zip(OUTPUTS, (logits.movedim(1, 0), *state), strict=True))  # each with the batch first
        parts = [every[n] for n in names]
        flat = torch.cat([p.flatten(1) for p in parts], dim=1)  # (B, total)
        std = _rounding.LAMBDA * spots.variance_batched(flat, chunk=64).sqrt()  # (B, total)
    pieces = std.split([p[0].numel() for p in parts], dim=1)
    shaped = {n: e.reshape(p.shape) for n, e, p in zip(names, pieces, parts, strict=True)}
    if "logits" in shaped:
        shaped["logits"] = shaped["logits"].movedim(0, 1)  # back to (T, B, O)
    return shaped


def verify_memory(
    model: nn.Module, path: str | os.PathLike[str], shapes: tuple[tuple[int, int, int], ...] | None = None
) -> tuple[float, tuple[str, ...]]:
    """Run the ONNX file ``path`` in onnxruntime against ``model`` at each (T, B, steps before) of ``shapes``
    (default ``verify_shapes``). Returns the largest absolute difference and the outputs whose largest bound was as
    large as their largest value at some shape (there an all-zero output would have passed); raises
    ``ExportVerificationError`` when an element differs by more than twice its rounding bound (``bounds``)."""
    ort = _deps.onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    worst, loose = 0.0, []
    for seed, (T, B, before) in enumerate(shapes or verify_shapes()):
        inputs = random_inputs(model, T, B, before, seed)
        want = run_torch(model, inputs)
        got = session.run(list(OUTPUTS), {k: v.numpy() for k, v in inputs.items()})
        allowed = {name: _rounding.between(1.0) * e.numpy() for name, e in bounds(model, inputs).items()}
        where = f"T={T}, B={B}, after {before} steps"
        worst = max(worst, compare_within_bounds(path, model, want, got, allowed, where, loose))
    return worst, tuple(loose)


__all__ = ["bounds", "build_memory_onnx", "export_memory", "random_inputs", "run_torch", "spotted_step",
           "start_inputs", "start_metadata", "verify_memory", "verify_shapes"]
