r"""Graves's handwriting network (``export_kind`` "handwriting", ``lstmkit.models.HandwritingNet``: the
``handwriting-gen`` task's model) as one ONNX graph that scores or writes pen offsets, its whole state (every layer's
h and c, and for the synthesis network the window's position and last output) carried as inputs and outputs.

Graph (T, B and U symbolic; L layers of H units, M mixtures, K window Gaussians, A symbols):

======================  ====================================================================
inputs                  ``points`` (T, B, 3): the previous offsets (dx, dy, eos), the start token
                        (0, 0, 1) first; ``h0``, ``c0`` (L, B, H); conditional (synthesis) only:
                        ``text`` (U, B) int64 symbol ids, ``text_lengths`` (B,) int64,
                        ``kappa0`` (B, K), ``w0`` (B, A)
outputs                 ``eos_logit`` (T, B), ``log_pi`` (T, B, M), ``mu`` (T, B, M, 2),
                        ``log_sigma`` (T, B, M, 2), ``rho`` (T, B, M): the mixture density of each next
                        offset (``MixtureParams``); ``hn``, ``cn`` (L, B, H); conditional only:
                        ``kappa_n`` (B, K), ``w_n`` (B, A) and ``window_log_phi`` (B, U + 1), log phi of
                        the last step's window at u = 0 .. U, which Graves's stop rule reads
======================  ====================================================================

Every state starts at zero (``HandwritingNet``'s ``state=None``). Writing is a loop of the caller's: feed one point
(T = 1) and the state outputs back, draw the next offset from the mixture (``examples``-style code in
docs/deployment.md), and for the synthesis network stop when ``window_log_phi`` at u = U (one past the text) exceeds
every u < U (``HandwritingNet.sample``'s rule, for one sequence).

The first layer of the synthesis network is a ``Scan`` over ``HandwritingNet._first_layer``'s step node for node (the
cell on [x_t; w_{t-1}], the window's alpha_hat, beta = e^beta_hat and kappa_t = kappa_{t-1} + e^kappa_hat, phi over
the text's positions as one ``Exp`` of alpha_hat - beta (kappa - u)^2 summed over the K Gaussians and masked past the
text's length, and w_t = phi times the one-hot text); the other layers are the ONNX ``LSTM`` operator over the whole
sequence (``recurrent.emit_core``) on [x_t, the layer below, w_t]; the head is the ``Linear`` split into the mixture
with ``LogSoftmax`` and ``Tanh``. The unconditional (prediction) network is its LSTM layers and the head.

Verified in onnxruntime against the PyTorch model at three (T, B, U), from the zero state and from states reached
after some steps of random offsets, every output element within twice a float32 rounding bound of its own carried
by autograd (``bounds``, the method of ``lstmkit.export._spots``). Padding of ``points`` (``lengths``) is not in the
graph: every sequence in a call has T steps.
"""

from __future__ import annotations

import copy
import functools
import json
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
from lstmkit.models.handwriting import HandwritingNet, HandwritingState

KIND = "handwriting"
I64, F32 = "int64", "float32"
PARAMS = ("eos_logit", "log_pi", "mu", "log_sigma", "rho")
_U = _rounding.unit_roundoff(torch.float32)
_FU = _rounding.F_POINTWISE * _U
_TINY = torch.finfo(torch.float32).tiny  # a window weight far from kappa may underflow to zero (or a subnormal)


def check_model(model: nn.Module) -> None:
    """Raise ``TypeError`` unless ``model`` is a ``HandwritingNet`` (its ``export_kind``) with float32 parameters."""
    task_models.check_export_model(model, KIND, "HandwritingNet")


def signature(model: HandwritingNet) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The graph's input and output names."""
    if model.conditional:
        return (("points", "h0", "c0", "text", "text_lengths", "kappa0", "w0"),
                (*PARAMS, "hn", "cn", "kappa_n", "w_n", "window_log_phi"))  # fmt: skip
    return ("points", "h0", "c0"), (*PARAMS, "hn", "cn")


# -- the graph ---------------------------------------------------------------------------------------------------
def _linear(gb: GraphBuilder, x: str, layer: nn.Linear, hint: str) -> str:
    y = gb.op("MatMul", [x, gb.const(layer.weight.t(), f"{hint}_wt")], f"{hint}_mm")
    return gb.op("Add", [y, gb.const(layer.bias, f"{hint}_b")], hint)


def _window_terms(gb: GraphBuilder, model: HandwritingNet, h1: str, hint: str) -> tuple[str, str, str]:
    """(alpha_hat, beta, kappa increment), each (B, K, 1), from the first layer's output h1 (B, H)."""
    K = model.config.window_mixtures
    win = gb.op("Reshape", [_linear(gb, h1, model.window, f"{hint}_win"), gb.const([0, 3, K], "shape_b3k", I64)],
                f"{hint}_win_b3k")  # fmt: skip
    win = gb.op("Transpose", [win], f"{hint}_win_bk3", perm=[0, 2, 1])  # (B, K, 3)
    a_hat, b_hat, k_hat = gb.op("Split", [win, gb.const([1, 1, 1], "split_111", I64)], f"{hint}_w", n_out=3, axis=2)
    return a_hat, gb.op("Exp", [b_hat], f"{hint}_beta"), gb.op("Exp", [k_hat], f"{hint}_kappa_step")


def _exponent(gb: GraphBuilder, a_hat: str, beta: str, kappa: str, positions: str, hint: str) -> str:
    """alpha_hat - beta (kappa - u)^2, (B, K, P) from (B, K, 1) each and positions (P,)."""
    d = gb.op("Sub", [kappa, positions], f"{hint}_dist")  # (B, K, P)
    return gb.op("Sub", [a_hat, gb.op("Mul", [beta, gb.op("Mul", [d, d], f"{hint}_dist2")], f"{hint}_scaled")],
                 f"{hint}_exponent")  # fmt: skip


def _window_body(sb: GraphBuilder, model: HandwritingNet, onehot: str, in_text: str, positions: str):
    """The Scan body of the synthesis network's first layer: (h, c, kappa, w, x_t) -> (h, c, kappa, w; h_t, w_t).
    ``onehot`` (B, U, A), ``in_text`` (B, U) bool and ``positions`` (U,) are read from the outer graph."""
    TP = sb.onnx.TensorProto
    H, K, A = model.config.hidden_size, model.config.window_mixtures, model.alphabet_size
    names = {k: sb.name(f"hw_{k}") for k in ("h", "c", "kappa", "w", "x")}
    shapes = {"h": ["B", H], "c": ["B", H], "kappa": ["B", K], "w": ["B", A], "x": ["B", 3]}
    inputs = [sb.value_info(names[k], TP.FLOAT, shapes[k]) for k in names]
    h, c, kappa, w, x = names.values()
    cell = model.cell
    xw = sb.op("MatMul", [sb.op("Concat", [x, w], "hw_in", axis=1), sb.const(cell.weight_ih.t(), "hw_Wih_t")], "hw_xw")
    a = sb.op("Add", [xw, sb.op("MatMul", [h, sb.const(cell.weight_hh.t(), "hw_Whh_t")], "hw_hw")], "hw_a0")
    a = sb.op("Add", [a, sb.const(cell.bias_ih + cell.bias_hh, "hw_b")], "hw_a")
    a_i, a_f, a_g, a_o = sb.op("Split", [a, sb.const([H] * 4, f"split_4x{H}", I64)], "hw_gate", n_out=4, axis=1)
    i, f, o = (sb.op("Sigmoid", [z], f"hw_{n}") for z, n in ((a_i, "i"), (a_f, "f"), (a_o, "o")))
    c_new = sb.op("Add", [sb.op("Mul", [f, c], "hw_fc"), sb.op("Mul", [i, sb.op("Tanh", [a_g], "hw_g")], "hw_ig")],
                  "hw_c")  # fmt: skip
    h_new = sb.op("Mul", [o, sb.op("Tanh", [c_new], "hw_tanh_c")], "hw_h")
    a_hat, beta, step = _window_terms(sb, model, h_new, "hw")
    kappa_new = sb.op("Add", [kappa, sb.op("Squeeze", [step, sb.const([2], "axes_2", I64)], "hw_step_bk")], "hw_kappa")
    kappa_col = sb.op("Unsqueeze", [kappa_new, sb.const([2], "axes_2", I64)], "hw_kappa_col")  # (B, K, 1)
    g = sb.op("Exp", [_exponent(sb, a_hat, beta, kappa_col, positions, "hw")], "hw_gauss")  # (B, K, U)
    phi = sb.op("ReduceSum", [g, sb.const([1], "axes_1", I64)], "hw_phi_all", keepdims=0)  # (B, U)
    phi = sb.op("Where", [in_text, phi, sb.const(0.0, "zero_f32", F32)], "hw_phi")
    w_new = sb.op("Squeeze", [sb.op("MatMul", [sb.op("Unsqueeze", [phi, sb.const([1], "axes_1", I64)], "hw_phi_row"),
                                               onehot], "hw_w_b1a"), sb.const([1], "axes_1", I64)], "hw_w")  # fmt: skip
    outs = [(h_new, shapes["h"]), (c_new, shapes["c"]), (kappa_new, shapes["kappa"]), (w_new, shapes["w"]),
            (sb.op("Identity", [h_new], "hw_h_out"), ["B", H]), (sb.op("Identity", [w_new], "hw_w_out"), ["B", A])]
    return sb.onnx.helper.make_graph(sb.nodes, "handwriting_window_step", inputs,
                                     [sb.value_info(n, TP.FLOAT, s) for n, s in outs])  # fmt: skip


def _reduce(gb: GraphBuilder, op: str, x: str, axis: int, opset: int, hint: str) -> str:
    """A reduction ``op`` (ReduceMax here) over one axis, keepdims: its axes an attribute before opset 18 and an input
    from 18 (ReduceSum took them as an input from 13)."""
    if opset < 18:
        return gb.op(op, [x], hint, axes=[axis], keepdims=1)
    return gb.op(op, [x, gb.const([axis], f"axes_{axis}", I64)], hint, keepdims=1)


def build_handwriting_onnx(model: nn.Module, *, opset: int = MIN_OPSET, metadata: Mapping[str, str] | None = None):
    """The ``onnx.ModelProto`` of a ``HandwritingNet`` (the module docstring's graph) and its layers' operators."""
    check_model(model)
    onnx = _deps.onnx()
    TP = onnx.TensorProto
    gb = GraphBuilder(onnx)
    cfg = model.config
    L, H, M, K, A = cfg.num_layers, cfg.hidden_size, cfg.mixtures, cfg.window_mixtures, model.alphabet_size
    in_names, out_names = signature(model)
    for name in (*in_names, *out_names):
        gb.name(name)
    kinds, outs, hs, cs, window = [], [], [], [], []

    def rows(state: str, k: int) -> str:  # rows k..k+1 of a (L, B, H) state
        return gb.op("Slice", [state, gb.const([k], f"row_{k}", I64), gb.const([k + 1], f"row_{k + 1}", I64),
                               gb.const([0], "axes_0", I64)], f"{state}_{k}")  # fmt: skip

    if model.conditional:
        U = gb.op("Gather", [gb.op("Shape", ["text"], "text_shape"), gb.const(0, "idx0", I64)], "U", axis=0)
        u = gb.op("Range", [gb.const(0, "zero_i64", I64), U, gb.const(1, "one_i64", I64)], "u_ids")  # (U,)
        positions = gb.op("Cast", [u], "positions", to=TP.FLOAT)
        in_text = gb.op("Less", [gb.op("Unsqueeze", [u, gb.const([0], "axes_0", I64)], "u_row"),
                                 gb.op("Unsqueeze", ["text_lengths", gb.const([1], "axes_1", I64)], "len_col")],
                        "in_text")  # (B, U)  # fmt: skip
        zero = gb.const(0, "zero_i64", I64)
        ids = gb.op("Where", [in_text, gb.op("Transpose", ["text"], "text_bu", perm=[1, 0]), zero], "text_ids")
        # (B, U): padded ids read as 0, and their rows of the one-hot zeroed
        off_on = gb.const([0.0, 1.0], "off_on", F32)
        onehot = gb.op("OneHot", [ids, gb.const(A, "alphabet", I64), off_on], "onehot_raw", axis=-1)  # (B, U, A)
        onehot = gb.op("Mul", [onehot, gb.op("Cast", [gb.op("Unsqueeze", [in_text, gb.const([2], "axes_2", I64)],
                                                              "in_text_col")], "in_text_f", to=TP.FLOAT)],
                       "onehot")  # fmt: skip
        h0, c0 = (gb.op("Squeeze", [rows(s, 0), gb.const([0], "axes_0", I64)], f"{s}_first") for s in ("h0", "c0"))
        h, c, kappa, w, h1, ws = gb.op("Scan", [h0, c0, "kappa0", "w0", "points"], "window_scan", n_out=6,
                                       body=_window_body(gb.sub(), model, onehot, in_text, positions),
                                       num_scan_inputs=1)  # fmt: skip
        axes0 = gb.const([0], "axes_0", I64)
        hs.append(gb.op("Unsqueeze", [h, axes0], "hn_l0"))
        cs.append(gb.op("Unsqueeze", [c, axes0], "cn_l0"))
        outs.append(h1)
        window.append(ws)
        kinds.append("Scan")
        # the stop rule's log phi at u = 0 .. U: the last step's window (from its h) at kappa_n, in log space
        a_hat, beta, _ = _window_terms(gb, model, h, "stop")
        one = gb.const(1, "one_i64", I64)
        u_all = gb.op("Range", [zero, gb.op("Add", [U, one], "U_plus_1"), one], "u_all_ids")  # 0 .. U
        all_u = gb.op("Cast", [u_all], "u_all", to=TP.FLOAT)
        z = _exponent(gb, a_hat, beta, gb.op("Unsqueeze", [kappa, gb.const([2], "axes_2", I64)], "stop_kappa"), all_u,
                      "stop")  # (B, K, U + 1)  # fmt: skip
        peak = _reduce(gb, "ReduceMax", z, 1, opset, "stop_peak")  # (B, 1, U + 1)
        e = gb.op("Exp", [gb.op("Sub", [z, peak], "stop_z0")], "stop_e")
        total = gb.op("ReduceSum", [e, gb.const([1], "axes_1", I64)], "stop_sum", keepdims=1)
        lse = gb.op("Add", [gb.op("Log", [total], "stop_log"), peak], "stop_lse")  # (B, 1, U + 1)
        log_phi = gb.op("Squeeze", [lse, gb.const([1], "axes_1", I64)], "stop_log_phi")  # (B, U + 1)
        extra = {"kappa_n": kappa, "w_n": w, "window_log_phi": log_phi}
    else:
        extra = {}
    for layer in model.layers:
        index = len(outs)
        x = gb.op("Concat", ["points", outs[-1], *window], f"in_l{index}", axis=2) if outs else "points"
        y, hn, cn, layer_kinds = emit_core(gb, layer, CoreInputs(x=x, h0=rows("h0", index), c0=rows("c0", index),
                                                                 lengths=None))  # fmt: skip
        outs.append(y)
        hs.append(hn)
        cs.append(cn)
        kinds += layer_kinds
    top = gb.op("Concat", outs, "head_in", axis=2) if len(outs) > 1 else outs[0]  # (T, B, L H)
    out = _linear(gb, top, model.head.linear, "head")  # (T, B, 1 + 6M)
    eos, pi_hat, mu, log_sigma, rho_hat = gb.op("Split", [out, gb.const([1, M, 2 * M, 2 * M, M], "split_mdn", I64)],
                                                "mdn", n_out=5, axis=2)  # fmt: skip
    shape_m2 = gb.const([0, 0, M, 2], "shape_tbm2", I64)
    values = {"eos_logit": gb.op("Squeeze", [eos, gb.const([2], "axes_2", I64)], "eos_tb"),
              "log_pi": gb.op("LogSoftmax", [pi_hat], "log_pi_tbm", axis=-1),
              "mu": gb.op("Reshape", [mu, shape_m2], "mu_tbm2"),
              "log_sigma": gb.op("Reshape", [log_sigma, shape_m2], "log_sigma_tbm2"),
              "rho": gb.op("Tanh", [rho_hat], "rho_tbm"),
              "hn": gb.op("Concat", hs, "hn_all", axis=0) if len(hs) > 1 else hs[0],
              "cn": gb.op("Concat", cs, "cn_all", axis=0) if len(cs) > 1 else cs[0], **extra}  # fmt: skip
    shapes = {"points": ["T", "B", 3], "h0": [L, "B", H], "c0": [L, "B", H], "text": ["U", "B"], "text_lengths": ["B"],
              "kappa0": ["B", K], "w0": ["B", A], "eos_logit": ["T", "B"], "log_pi": ["T", "B", M],
              "mu": ["T", "B", M, 2], "log_sigma": ["T", "B", M, 2], "rho": ["T", "B", M], "hn": [L, "B", H],
              "cn": [L, "B", H], "kappa_n": ["B", K], "w_n": ["B", A], "window_log_phi": ["B", "U_plus_1"]}  # fmt: skip
    elem = {n: I64 if n in ("text", "text_lengths") else F32 for n in shapes}
    meta = {"lstmkit.version": lstmkit.__version__, "lstmkit.model": repr(model), "lstmkit.layers": json.dumps(kinds),
            "lstmkit.handwriting": json.dumps({"conditional": model.conditional, "layers": L, "hidden_size": H,
                                               "window_mixtures": K, "alphabet_size": A, "mixtures": M})}  # fmt: skip
    meta.update(metadata or {})
    proto = gb.finish("lstmkit_HandwritingNet", [(n, elem[n], shapes[n]) for n in in_names],
                      [(n, elem[n], shapes[n]) for n in out_names], values, opset=opset, props=meta)  # fmt: skip
    return proto, kinds


def export_handwriting(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    opset: int = MIN_OPSET,
    verify: bool = True,
    metadata: Mapping[str, str] | None = None,
) -> OnnxExport:
    """Write a ``HandwritingNet`` as the module docstring's ONNX graph (atomically) and, with ``verify``, check it in
    onnxruntime (``verify_handwriting``); raises ``ExportVerificationError`` when an output is beyond its bound."""
    check_model(model)
    build = functools.partial(build_handwriting_onnx, model, opset=opset, metadata=metadata)
    return write_verified(model, path, opset, verify, build, verify_handwriting)


# -- PyTorch's side: inputs, outputs, bounds -----------------------------------------------------------------------
def verify_shapes() -> tuple[tuple[int, int, int, int], ...]:
    """(T, B, U, steps before): from the zero state, and from states reached after some steps."""
    return ((9, 3, 6, 0), (1, 2, 4, 5), (4, 1, 8, 12))


def _offsets(T: int, B: int, g: torch.Generator) -> Tensor:
    """Random offsets (T, B, 3): dx, dy about the data's scale (the task standardises them), eos about 1 in 8."""
    xy = torch.randn(T, B, 2, generator=g)
    eos = (torch.rand(T, B, 1, generator=g) < 0.125).float()
    return torch.cat([xy, eos], dim=-1)


def _state_inputs(model: HandwritingNet, state: HandwritingState) -> dict[str, Tensor]:
    out = {"h0": torch.stack([h for h, _ in state.layers]), "c0": torch.stack([c for _, c in state.layers])}
    if model.conditional:
        out.update(kappa0=state.kappa, w0=state.w)
    return {k: v.detach().contiguous() for k, v in out.items()}


@torch.no_grad()
def random_inputs(model: nn.Module, T: int, B: int, U: int, before: int = 0, seed: int = 0) -> dict[str, Tensor]:
    """The graph's inputs: random offsets (T, B, 3), and for the synthesis network a random text of U symbols with
    random lengths (the longest U); the state the model reaches after ``before`` steps of random offsets over that text
    (0: the zero state)."""
    g = torch.Generator().manual_seed(seed)
    dtype = model.head.linear.weight.dtype
    inputs: dict[str, Tensor] = {"points": _offsets(T, B, g).to(dtype)}
    text = {}
    if model.conditional:
        lengths = torch.randint(1, U + 1, (B,), generator=g)
        lengths[0] = U
        text = {"text": torch.randint(0, model.alphabet_size, (U, B), generator=g), "text_lengths": lengths}
    state = None
    if before:
        was_training = model.training
        model.eval()
        try:
            _, state = model(_offsets(before, B, g).to(dtype), text.get("text"), text.get("text_lengths"))
        finally:
            model.train(was_training)
    else:
        state = model._check_state(None, B, inputs["points"])
    return {**inputs, **_state_inputs(model, state), **text}


def _state(model: HandwritingNet, inputs: Mapping[str, Tensor], dtype: torch.dtype) -> HandwritingState:
    h0, c0 = inputs["h0"].to(dtype), inputs["c0"].to(dtype)
    layers = [(h0[k], c0[k]) for k in range(h0.shape[0])]
    if model.conditional:
        return HandwritingState(layers, inputs["kappa0"].to(dtype), inputs["w0"].to(dtype))
    return HandwritingState(layers)


def _log_phi(model: HandwritingNet, h1: Tensor, kappa: Tensor, U: int) -> Tensor:
    """log phi (B, U + 1) of the window at u = 0 .. U from the last step's first-layer output h1 and kappa."""
    a_hat, beta, _ = model._window_logits(h1)
    positions = torch.arange(U + 1, dtype=h1.dtype)
    return model._log_window(a_hat, beta, kappa, positions)


@torch.no_grad()
def run_torch(model: nn.Module, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The model's outputs (eval mode) from the graph's ``inputs``, keyed by the graph's output names."""
    was_training = model.training
    model.eval()
    try:
        dtype = model.head.linear.weight.dtype
        params, state = model(inputs["points"].to(dtype), inputs.get("text"), inputs.get("text_lengths"),
                              _state(model, inputs, dtype))  # fmt: skip
        out = {name: getattr(params, name) for name in PARAMS}
        out["hn"] = torch.stack([h for h, _ in state.layers])
        out["cn"] = torch.stack([c for _, c in state.layers])
        if model.conditional:
            out.update(kappa_n=state.kappa, w_n=state.w,
                       window_log_phi=_log_phi(model, state.layers[0][0], state.kappa, inputs["text"].shape[0]))
    finally:
        model.train(was_training)
    return out


def _spotted_linear(spots: _spots.Spots, layer: nn.Linear, x: Tensor) -> Tensor:
    """A Linear on (..., B, n) inputs, spotted: n inputs and a bias, gamma(n + 1) (|W| |x| + |b|)."""
    mags = x.detach().abs() @ layer.weight.detach().abs().T + layer.bias.detach().abs()
    return spots.add(layer(x), _rounding.gamma(layer.in_features + 1, _U) * mags, batch_dim=x.dim() - 2)


def _spotted_window(spots: _spots.Spots, model: HandwritingNet, h1: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(alpha_hat, beta, kappa increment), each (B, K), spotted: the window's map, and e^x within F u of itself."""
    B, K = h1.shape[0], model.config.window_mixtures
    a_hat, b_hat, k_hat = _spotted_linear(spots, model.window, h1).view(B, 3, K).unbind(1)
    beta, step = b_hat.exp(), k_hat.exp()
    return a_hat, spots.add(beta, _FU * beta.detach()), spots.add(step, _FU * step.detach())


def _spotted_exponent(spots: _spots.Spots, a_hat: Tensor, beta: Tensor, kappa: Tensor, positions: Tensor) -> Tensor:
    """alpha_hat - beta (kappa - u)^2 (B, K, P), spotted: the difference (u times itself), then the square, the
    product and the subtraction (3 u (|alpha_hat| + beta d^2))."""
    d = kappa.unsqueeze(-1) - positions  # (B, K, P)
    d = spots.add(d, _U * d.detach().abs())
    scaled = beta.unsqueeze(-1) * d.square()
    z = a_hat.unsqueeze(-1) - scaled
    return spots.add(z, 3 * _U * (a_hat.detach().abs().unsqueeze(-1) + scaled.detach().abs()))


def spotted_forward(spots: _spots.Spots, model: HandwritingNet, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``HandwritingNet.forward`` (eval: no dropout) and the stop rule's log phi, with a spot on every rounded value
    (``lstmkit.export._spots``), keyed by the graph's output names. The first layer of the synthesis network: the cell
    (``_spots.lstm_cell``), the window's map and exponentials, kappa's sum (u), the exponent alpha_hat - beta (kappa -
    u)^2 (``_spotted_exponent``), each Gaussian e^z (F u times itself, and float32's smallest normal number: it may
    underflow), phi their sum over K (gamma(K) phi), w = phi times the one-hot text (gamma(U) (phi @ onehot)); the other
    layers by ``_spots.spotted_cells`` (the model a float64 copy whose layers run the reference loop); the head's map;
    log_softmax (``_rounding.log_softmax_error``) and tanh (F u). The stop rule's logsumexp over K of the exponents:
    (gamma(K + 2) + F u) + u |value|. ``test_spotted_forward_is_the_model`` holds it equal to the model with zero
    spots."""
    x = inputs["points"]
    T, B = x.shape[:2]
    state = _state(model, inputs, x.dtype)
    H, M = model.config.hidden_size, model.config.mixtures
    outs, hs, cs, window, extra = [], [], [], [], {}
    if model.conditional:
        text, lengths = inputs["text"], inputs["text_lengths"]
        U = text.shape[0]
        positions = torch.arange(U, dtype=x.dtype)
        in_text = positions < lengths.unsqueeze(1)  # (B, U)
        ids = torch.where(in_text.T, text, torch.zeros((), dtype=text.dtype))
        onehot = F.one_hot(ids.T, model.alphabet_size).to(x.dtype) * in_text.unsqueeze(-1)  # (B, U, A)
        (h, c), kappa, w = state.layers[0], state.kappa, state.w
        cell = model.cell
        h1s, ws = [], []
        for t in range(T):
            inp = torch.cat([x[t], w], dim=-1)
            a = F.linear(inp, cell.weight_ih, cell.bias_ih) + F.linear(h, cell.weight_hh, cell.bias_hh)
            mags = (F.linear(inp.detach().abs(), cell.weight_ih.abs(), cell.bias_ih.abs())
                    + F.linear(h.detach().abs(), cell.weight_hh.abs(), cell.bias_hh.abs())).detach()  # fmt: skip
            h, c = _spots.lstm_cell(spots, a, mags, c, inp.shape[-1] + H + 2)
            a_hat, beta, step = _spotted_window(spots, model, h)
            kappa = kappa + step
            kappa = spots.add(kappa, _U * kappa.detach().abs())
            g = _spotted_exponent(spots, a_hat, beta, kappa, positions).exp()  # (B, K, U)
            g = spots.add(g, _FU * g.detach() + _TINY)
            phi = g.sum(1)
            phi = torch.where(in_text, spots.add(phi, _rounding.gamma(g.shape[1], _U) * phi.detach()), 0.0)
            w = torch.bmm(phi.unsqueeze(1), onehot).squeeze(1)  # (B, A)
            w = spots.add(w, _rounding.gamma(U, _U) * w.detach())
            h1s.append(h)
            ws.append(w)
        outs.append(torch.stack(h1s))
        window.append(torch.stack(ws))
        hs.append(h)
        cs.append(c)
        a_hat, beta, _ = _spotted_window(spots, model, h)
        z = _spotted_exponent(spots, a_hat, beta, kappa, torch.arange(U + 1, dtype=x.dtype))  # (B, K, U + 1)
        lse = torch.logsumexp(z, dim=1)
        K = z.shape[1]
        extra = {"kappa_n": kappa, "w_n": w,
                 "window_log_phi": spots.add(lse, _rounding.gamma(K + 2, _U) + _FU + _U * lse.detach().abs())}
    for layer in model.layers:
        index = len(outs)
        inp = torch.cat([x, outs[-1], *window], dim=-1) if outs else x
        y, (hn, cn) = layer(inp, (state.layers[index][0].unsqueeze(0), state.layers[index][1].unsqueeze(0)))
        outs.append(y)
        hs.append(hn[0])
        cs.append(cn[0])
    out = _spotted_linear(spots, model.head.linear, torch.cat(outs, dim=-1))  # (T, B, 1 + 6M)
    eos, pi_hat, mu, log_sigma, rho_hat = out.split([1, M, 2 * M, 2 * M, M], dim=-1)
    log_pi = pi_hat.log_softmax(dim=-1)
    v = pi_hat.detach().abs().amax(-1, keepdim=True)
    rho = torch.tanh(rho_hat)
    return {"eos_logit": eos.squeeze(-1),
            "log_pi": spots.add(log_pi, _rounding.log_softmax_error(M, v, _U).expand_as(log_pi), batch_dim=1),
            "mu": mu.reshape(T, B, M, 2), "log_sigma": log_sigma.reshape(T, B, M, 2),
            "rho": spots.add(rho, torch.full_like(rho, _FU), batch_dim=1),
            "hn": torch.stack(hs), "cn": torch.stack(cs), **extra}  # fmt: skip


def bounds(model: nn.Module, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Per element of each output, a bound on its float32 rounding error at the graph's ``inputs``, carried by
    autograd (``lstmkit.export._spots``): the model run again in float64 with a spot on every rounded value
    (``spotted_forward``), and LAMBDA sqrt(sum g^2 eps^2) for every output element."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small backward passes: a thread pool costs more than it saves
    try:
        return _bounds(model, inputs)
    finally:
        torch.set_num_threads(threads)


def _bounds(model: nn.Module, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    twin = copy.deepcopy(model).double().eval()
    for layer in twin.layers:
        layer.impl = "reference"  # the layer's own time loop, which calls the spotted step (twin is a copy)
    spots = _spots.Spots()
    exact = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
    _, names = signature(model)
    with torch.enable_grad(), _spots.spotted_cells(spots):
        out = spotted_forward(spots, twin, exact)
        batch_first = {n: out[n].movedim(1, 0) if n in PARAMS or n in ("hn", "cn") else out[n] for n in names}
        flat = torch.cat([batch_first[n].flatten(1) for n in names], dim=1)  # (B, total)
        std = _rounding.LAMBDA * spots.variance_batched(flat, chunk=64).sqrt()
    pieces = std.split([batch_first[n][0].numel() for n in names], dim=1)
    shaped = {n: e.reshape(batch_first[n].shape) for n, e in zip(names, pieces, strict=True)}
    return {n: shaped[n].movedim(0, 1) if n in PARAMS or n in ("hn", "cn") else shaped[n] for n in names}


def verify_handwriting(
    model: nn.Module, path: str | os.PathLike[str], shapes: tuple[tuple[int, int, int, int], ...] | None = None
) -> tuple[float, tuple[str, ...]]:
    """Run the ONNX file ``path`` in onnxruntime against ``model`` at each (T, B, U, steps before) of ``shapes``
    (default ``verify_shapes``). Returns the largest absolute difference and the outputs whose largest bound was as
    large as their largest value at some shape (there an all-zero output would have passed); raises
    ``ExportVerificationError`` when an element differs by more than twice its rounding bound (``bounds``)."""
    ort = _deps.onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = signature(model)[1]
    worst, loose = 0.0, []
    for seed, (T, B, U, before) in enumerate(shapes or verify_shapes()):
        inputs = random_inputs(model, T, B, U, before, seed)
        want = run_torch(model, inputs)
        got = session.run(list(names), {k: v.numpy() for k, v in inputs.items()})
        allowed = {name: _rounding.between(1.0) * e.numpy() for name, e in bounds(model, inputs).items()}
        where = f"T={T}, B={B}, U={U}, after {before} steps"
        worst = max(worst, compare_within_bounds(path, model, {n: want[n] for n in names}, got, allowed, where,
                                                 loose))  # fmt: skip
    return worst, tuple(loose)


__all__ = ["bounds", "build_handwriting_onnx", "export_handwriting", "random_inputs", "run_torch", "signature",
           "spotted_forward", "verify_handwriting", "verify_shapes"]
