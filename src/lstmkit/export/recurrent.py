"""The recurrent core of an exported graph: ONNX ``LSTM``/``GRU``/``RNN`` operators, or a ``Scan``.

Two ways to write one LSTM layer:

- The ONNX ``LSTM`` operator (plain, peephole, coupled and bidirectional layers). Its gate blocks
  are ordered i, o, f, c where torch's are i, f, g, o, and its peepholes i, o, f where ours are
  i, f, o, so the weights are re-ordered here. Coupled gates use ``input_forget=1``: onnxruntime
  then computes f = 1 - sigmoid(a_i + p_i c_{t-1}) after the input gate's activation, exactly our
  coupled cell, peephole included (its forget block and forget peephole are written as zeros and
  never read). ``sequence_lens`` masks padding; the reverse direction then starts at each
  sequence's own last step, as ours does.
- A ``Scan`` over lstmkit's step (LayerNorm, projection and zoneout, which the operator cannot express, or
  any LSTM with ``recurrence="scan"``): the input side LN_ih(W_ih x) + b for all steps is one
  ``MatMul`` (and ``LayerNormalization``) before the loop, and the body is the equations of
  docs/layers.md node for node. A (T, B, 1) mask carries the state unchanged and zeroes the output
  past each sequence's length; the reverse direction reverses each sequence within its length
  (``ReverseSequence``) around a forward scan.

GRU and RNN layers are the ONNX ``GRU`` (``linear_before_reset=1``, torch's equations; gate blocks
z, r, h where torch's are r, z, n) and ``RNN`` operators.

Shapes: T time, B batch, I input, H hidden, P recurrent output (proj_size or H), D directions,
L layers, G gate rows (3H or 4H).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from lstmkit.export.graph import GraphBuilder
from lstmkit.nn import GRU, LSTM, RNN, layer_weights

RECURRENCES = ("auto", "scan")


def lstm_op_can_express(core: LSTM) -> bool:
    """Whether the ONNX ``LSTM`` operator computes this layer (no LayerNorm, no projection, no zoneout)."""
    return not (core.layer_norm or core.proj_size or core._zoned)


def _lstm_blocks(w: Tensor, H: int, coupled: bool) -> Tensor:
    """Rows (or entries) of torch order i, f, g, o (coupled: i, g, o) -> ONNX order i, o, f, c."""
    if coupled:
        i, g, o = w.split(H)
        f = torch.zeros_like(i)  # input_forget=1: the operator never reads the forget block
    else:
        i, f, g, o = w.split(H)
    return torch.cat([i, o, f, g])


def _lstm_peepholes(peep: Tensor, coupled: bool) -> Tensor:
    """Our (3, H) rows i, f, o (coupled: (2, H) rows i, o) -> ONNX's (3H,) i, o, f."""
    if coupled:
        return torch.cat([peep[0], peep[1], torch.zeros_like(peep[0])])
    return torch.cat([peep[0], peep[2], peep[1]])


def _gru_blocks(w: Tensor, H: int) -> Tensor:
    """torch's r, z, n -> ONNX's z, r, h."""
    r, z, n = w.split(H)
    return torch.cat([z, r, n])


@dataclass
class CoreInputs:
    """Names of the core's inputs in the graph being built."""

    x: str  # (T, B, I), time-major
    h0: str  # (L*D, B, P)
    c0: str | None  # (L*D, B, H), LSTM only
    lengths: str | None  # (B,) int64, or None when the graph takes no lengths
    _cache: dict[str, str] = field(default_factory=dict)


def _shared(gb: GraphBuilder, io: CoreInputs, what: str) -> str:
    """Values every layer uses, built once: lengths as int32, the zero-length and step masks."""
    if what in io._cache:
        return io._cache[what]
    TP = gb.onnx.TensorProto
    if what == "lengths32":  # the LSTM/GRU/RNN operators take int32 sequence_lens
        v = gb.op("Cast", [io.lengths], "lengths_i32", to=TP.INT32)
    elif what == "zero_len":  # (1, B, 1): sequences of length 0, which keep their initial state
        eq = gb.op("Equal", [io.lengths, gb.const(0, "zero_i64", "int64")], "is_empty")
        v = gb.op("Unsqueeze", [eq, gb.const([0, 2], "axes_0_2", "int64")], "zero_len")
    elif what == "step_mask":  # (T, B, 1) bool: step t is inside the sequence
        T = gb.op("Gather", [gb.op("Shape", [io.x], "x_shape"), gb.const(0, "idx0", "int64")], "T", axis=0)
        t = gb.op("Range", [gb.const(0, "zero_i64", "int64"), T, gb.const(1, "one_i64", "int64")], "steps")
        t = gb.op("Unsqueeze", [t, gb.const([1], "axes_1", "int64")], "steps_col")  # (T, 1)
        n = gb.op("Unsqueeze", [io.lengths, gb.const([0], "axes_0", "int64")], "lengths_row")  # (1, B)
        m = gb.op("Less", [t, n], "valid")  # (T, B)
        v = gb.op("Unsqueeze", [m, gb.const([2], "axes_2", "int64")], "step_mask")
    else:  # pragma: no cover - internal
        raise AssertionError(what)
    io._cache[what] = v
    return v


def _state_slice(gb: GraphBuilder, state: str, start: int, stop: int, total: int, hint: str) -> str:
    """state[start:stop] along the layer-and-direction axis (of length ``total``)."""
    if start == 0 and stop == total:
        return state  # a one-layer model takes the whole state: no node, less per-call work when streaming
    i64 = "int64"
    return gb.op("Slice", [state, gb.const([start], "s", i64), gb.const([stop], "e", i64), gb.const([0], "a", i64)],
                 hint)


def _merge_directions(gb: GraphBuilder, y: str, D: int, hint: str) -> str:
    """The operators' Y (T, D, B, H) -> (T, B, D*H), forward features first as torch concatenates."""
    if D == 1:
        return gb.op("Squeeze", [y, gb.const([1], "axes_1", "int64")], hint)
    y = gb.op("Transpose", [y], f"{hint}_tbdh", perm=[0, 2, 1, 3])  # (T, B, D, H)
    return gb.op("Reshape", [y, gb.const([0, 0, -1], "shape_tb_", "int64")], hint)


def _keep_if_empty(gb: GraphBuilder, io: CoreInputs, init: str, final: str, hint: str) -> str:
    """A length-0 sequence's final state is its initial state (onnxruntime's operators give zeros)."""
    if io.lengths is None:
        return final
    return gb.op("Where", [_shared(gb, io, "zero_len"), init, final], hint)


def _operator_inputs(*names: str) -> list[str]:
    """Optional operator inputs are '' in the middle and left out at the end."""
    out = list(names)
    while out and out[-1] == "":
        out.pop()
    return out


# -- ONNX operators ------------------------------------------------------------------------------------
def _lstm_op_layer(gb: GraphBuilder, core: LSTM, k: int, x: str, io: CoreInputs) -> tuple[str, str, str]:
    D, H = core.num_directions, core.hidden_size
    ps = [layer_weights(core, k, d).named() for d in range(D)]
    c = core.coupled
    W = gb.const(torch.stack([_lstm_blocks(p["weight_ih"], H, c) for p in ps]), f"W_l{k}")  # (D, 4H, I)
    R = gb.const(torch.stack([_lstm_blocks(p["weight_hh"], H, c) for p in ps]), f"R_l{k}")  # (D, 4H, H)
    B = ""
    if core.bias:
        B = gb.const(
            torch.stack([torch.cat([_lstm_blocks(p["bias_ih"], H, c), _lstm_blocks(p["bias_hh"], H, c)]) for p in ps]),
            f"B_l{k}",
        )  # (D, 8H)
    P = gb.const(torch.stack([_lstm_peepholes(p["weight_ch"], c) for p in ps]), f"P_l{k}") if core.peephole else ""
    h_init = _state_slice(gb, io.h0, k * D, (k + 1) * D, core.num_layers * D, f"h0_l{k}")
    c_init = _state_slice(gb, io.c0, k * D, (k + 1) * D, core.num_layers * D, f"c0_l{k}")
    seq = _shared(gb, io, "lengths32") if io.lengths is not None else ""
    attrs = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward"}
    if c:
        attrs["input_forget"] = 1
    y, h, cn = gb.op("LSTM", _operator_inputs(x, W, R, B, seq, h_init, c_init, P), f"lstm_l{k}", n_out=3, **attrs)
    h = _keep_if_empty(gb, io, h_init, h, f"hn_l{k}")
    cn = _keep_if_empty(gb, io, c_init, cn, f"cn_l{k}")
    return _merge_directions(gb, y, D, f"y_l{k}"), h, cn


def _gru_rnn_op_layer(gb: GraphBuilder, core: GRU | RNN, k: int, x: str, io: CoreInputs) -> tuple[str, str]:
    D, H = core.num_directions, core.hidden_size
    ps = [layer_weights(core, k, d).named() for d in range(D)]
    is_gru = isinstance(core, GRU)
    order = (lambda w: _gru_blocks(w, H)) if is_gru else (lambda w: w)
    W = gb.const(torch.stack([order(p["weight_ih"]) for p in ps]), f"W_l{k}")
    R = gb.const(torch.stack([order(p["weight_hh"]) for p in ps]), f"R_l{k}")
    B = ""
    if core.bias:
        B = gb.const(torch.stack([torch.cat([order(p["bias_ih"]), order(p["bias_hh"])]) for p in ps]), f"B_l{k}")
    h_init = _state_slice(gb, io.h0, k * D, (k + 1) * D, core.num_layers * D, f"h0_l{k}")
    seq = _shared(gb, io, "lengths32") if io.lengths is not None else ""
    attrs = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward"}
    if is_gru:
        op, attrs["linear_before_reset"] = "GRU", 1  # torch applies r after W_hn h + b_hn
    else:
        op, attrs["activations"] = "RNN", ["Tanh" if core.nonlinearity == "tanh" else "Relu"] * D
    y, h = gb.op(op, _operator_inputs(x, W, R, B, seq, h_init), f"{op.lower()}_l{k}", n_out=2, **attrs)
    h = _keep_if_empty(gb, io, h_init, h, f"hn_l{k}")
    return _merge_directions(gb, y, D, f"y_l{k}"), h


# -- Scan over lstmkit's step --------------------------------------------------------------------------
def _lstm_scan_body(sb: GraphBuilder, core: LSTM, p: dict[str, Tensor], masked: bool, tag: str):
    """The body graph of one step, (h, c, xg_t[, m_t]) -> (h_t, c_t, y_t): docs/layers.md's equations."""
    TP = sb.onnx.TensorProto
    H, P, eps = core.hidden_size, core.output_size, core.layer_norm_eps
    n = 3 if core.coupled else 4
    h, c, xt = sb.name(f"{tag}_h"), sb.name(f"{tag}_c"), sb.name(f"{tag}_xg_t")
    inputs = [sb.value_info(h, TP.FLOAT, ["B", P]), sb.value_info(c, TP.FLOAT, ["B", H]),
              sb.value_info(xt, TP.FLOAT, ["B", n * H])]  # fmt: skip
    if masked:
        m = sb.name(f"{tag}_m_t")
        inputs.append(sb.value_info(m, TP.BOOL, ["B", 1]))
    r = sb.op("MatMul", [h, sb.const(p["weight_hh"].t(), f"{tag}_Whh_t")], f"{tag}_r")  # (B, G)
    if core.layer_norm:
        r = sb.op("LayerNormalization", [r, sb.const(p["weight_ln_hh"], f"{tag}_ln_hh")], f"{tag}_r_ln",
                  axis=-1, epsilon=eps)
    a = sb.op("Add", [xt, r], f"{tag}_a")
    gates = sb.op("Split", [a, sb.const([H] * n, f"split_{n}x{H}", "int64")], f"{tag}_a", n_out=n, axis=1)
    if core.coupled:
        a_i, a_g, a_o = gates
        a_f = None
    else:
        a_i, a_f, a_g, a_o = gates
    if core.peephole:
        peep = p["weight_ch"]
        a_i = sb.op("Add", [a_i, sb.op("Mul", [c, sb.const(peep[0], f"{tag}_p_i")])], f"{tag}_a_i_p")
        if a_f is not None:
            a_f = sb.op("Add", [a_f, sb.op("Mul", [c, sb.const(peep[1], f"{tag}_p_f")])], f"{tag}_a_f_p")
    i = sb.op("Sigmoid", [a_i], f"{tag}_i")
    if a_f is None:
        f = sb.op("Sub", [sb.const(1.0, "one_f32", "float32"), i], f"{tag}_f")  # coupled: f = 1 - i
    else:
        f = sb.op("Sigmoid", [a_f], f"{tag}_f")
    g = sb.op("Tanh", [a_g], f"{tag}_g")
    c_new = sb.op("Add", [sb.op("Mul", [f, c]), sb.op("Mul", [i, g])], f"{tag}_c_new")
    if core.peephole:
        a_o = sb.op("Add", [a_o, sb.op("Mul", [c_new, sb.const(p["weight_ch"][-1], f"{tag}_p_o")])], f"{tag}_a_o_p")
    o = sb.op("Sigmoid", [a_o], f"{tag}_o")
    c_out = c_new
    if core.layer_norm:
        c_out = sb.op("LayerNormalization", [c_new, sb.const(p["weight_ln_c"], f"{tag}_ln_c_w"),
                                             sb.const(p["bias_ln_c"], f"{tag}_ln_c_b")],
                      f"{tag}_c_ln", axis=-1, epsilon=eps)  # fmt: skip
    h_new = sb.op("Mul", [o, sb.op("Tanh", [c_out])], f"{tag}_h_new")
    if core.proj_size:
        h_new = sb.op("MatMul", [h_new, sb.const(p["weight_hr"].t(), f"{tag}_Whr_t")], f"{tag}_h_proj")  # (B, P)
    # Zoneout in eval mode, after h read the new cell: each state moves by the expectation (1 - p) new + p old.
    p_h, p_c = core.zoneout
    if p_c:
        c_new = sb.op("Add", [sb.op("Mul", [c_new, sb.const(1.0 - p_c, f"{tag}_keep_c", "float32")]),
                              sb.op("Mul", [c, sb.const(p_c, f"{tag}_zone_c", "float32")])], f"{tag}_c_zoned")
    if p_h:
        h_new = sb.op("Add", [sb.op("Mul", [h_new, sb.const(1.0 - p_h, f"{tag}_keep_h", "float32")]),
                              sb.op("Mul", [h, sb.const(p_h, f"{tag}_zone_h", "float32")])], f"{tag}_h_zoned")
    if masked:
        h_next = sb.op("Where", [m, h_new, h], f"{tag}_h_next")
        c_next = sb.op("Where", [m, c_new, c], f"{tag}_c_next")
        y = sb.op("Where", [m, h_new, sb.const(0.0, "zero_f32", "float32")], f"{tag}_y")
    else:
        h_next, c_next = h_new, c_new
        y = sb.op("Identity", [h_new], f"{tag}_y")
    outputs = [sb.value_info(h_next, TP.FLOAT, ["B", P]), sb.value_info(c_next, TP.FLOAT, ["B", H]),
               sb.value_info(y, TP.FLOAT, ["B", P])]  # fmt: skip
    return sb.onnx.helper.make_graph(sb.nodes, f"{tag}_step", inputs, outputs)


def _lstm_scan_direction(
    gb: GraphBuilder, core: LSTM, k: int, d: int, x: str, io: CoreInputs
) -> tuple[str, str, str]:
    p = layer_weights(core, k, d).named()
    tag = f"l{k}{'_reverse' if d else ''}"
    eps = core.layer_norm_eps
    xg = gb.op("MatMul", [x, gb.const(p["weight_ih"].t(), f"Wih_t_{tag}")], f"xw_{tag}")  # (T, B, G)
    if core.layer_norm:
        xg = gb.op("LayerNormalization", [xg, gb.const(p["weight_ln_ih"], f"ln_ih_{tag}")], f"xw_ln_{tag}",
                   axis=-1, epsilon=eps)
    if core.bias:
        xg = gb.op("Add", [xg, gb.const(p["bias_ih"] + p["bias_hh"], f"b_{tag}")], f"xg_{tag}")
    masked = io.lengths is not None
    reverse_in_graph = d == 1 and masked  # reverse within each length; padding stays at the end
    if reverse_in_graph:
        xg = gb.op("ReverseSequence", [xg, io.lengths], f"xg_rev_{tag}", batch_axis=1, time_axis=0)
    idx = gb.const(k * core.num_directions + d, f"idx_{tag}", "int64")
    h_init = gb.op("Gather", [io.h0, idx], f"h0_{tag}", axis=0)  # (B, P)
    c_init = gb.op("Gather", [io.c0, idx], f"c0_{tag}", axis=0)  # (B, H)
    scan_in = [xg] + ([_shared(gb, io, "step_mask")] if masked else [])
    attrs = {"body": _lstm_scan_body(gb.sub(), core, p, masked, tag), "num_scan_inputs": len(scan_in)}
    if d == 1 and not masked:
        attrs["scan_input_directions"] = [1] * len(scan_in)
        attrs["scan_output_directions"] = [1]
    h, c, y = gb.op("Scan", [h_init, c_init, *scan_in], f"scan_{tag}", n_out=3, **attrs)
    if reverse_in_graph:
        y = gb.op("ReverseSequence", [y, io.lengths], f"y_{tag}", batch_axis=1, time_axis=0)
    axes0 = gb.const([0], "axes_0", "int64")
    return y, gb.op("Unsqueeze", [h, axes0], f"hn_{tag}"), gb.op("Unsqueeze", [c, axes0], f"cn_{tag}")


# -- the whole core ------------------------------------------------------------------------------------
def emit_core(
    gb: GraphBuilder, core: LSTM | GRU | RNN, io: CoreInputs, recurrence: str = "auto"
) -> tuple[str, str, str | None, list[str]]:
    """Add every layer of ``core``; return (y (T, B, D*P), h_n, c_n or None, the operator of each layer)."""
    L, D = core.num_layers, core.num_directions
    x, hs, cs, kinds = io.x, [], [], []
    for k in range(L):
        if isinstance(core, LSTM) and (recurrence == "scan" or not lstm_op_can_express(core)):
            outs = [_lstm_scan_direction(gb, core, k, d, x, io) for d in range(D)]
            ys = [o[0] for o in outs]
            x = ys[0] if D == 1 else gb.op("Concat", ys, f"y_l{k}", axis=2)
            hs += [o[1] for o in outs]
            cs += [o[2] for o in outs]
            kinds.append("Scan")
        elif isinstance(core, LSTM):
            x, h, c = _lstm_op_layer(gb, core, k, x, io)
            hs.append(h)
            cs.append(c)
            kinds.append("LSTM")
        else:
            x, h = _gru_rnn_op_layer(gb, core, k, x, io)
            hs.append(h)
            kinds.append("GRU" if isinstance(core, GRU) else "RNN")
    hn = hs[0] if len(hs) == 1 else gb.op("Concat", hs, "hn_all", axis=0)
    cn = None
    if cs:
        cn = cs[0] if len(cs) == 1 else gb.op("Concat", cs, "cn_all", axis=0)
    return x, hn, cn, kinds
