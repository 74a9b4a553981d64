"""An encoder-decoder (``export_kind`` "seq2seq", ``lstmkit.models.Seq2Seq``) as two ONNX graphs: the
encoder, and one decoder step, so that any search (greedy, beam) runs around the second in the caller's
own loop (``examples/onnx_translate.py`` does beam search in numpy).

Graphs (S source steps, B rows, L layers, H hidden, V target symbols; every axis but L, H, V symbolic):

- encoder, ``NAME.encoder.onnx``: inputs ``tokens`` (S, B) int64 (0-padded), ``lengths`` (B,) int64
  (each >= 1); outputs ``memory`` (S, B, H), ``h0`` (L, B, H), ``c0`` (L, B, H) the decoder's first
  state, and for attention ``none`` ``context`` (B, H). The first ``feed`` is zeros (B, H).
- decoder step, ``NAME.decoder.onnx``: inputs ``token`` (B,) int64 (``<s>`` = 2 first), ``h``, ``c``
  (L, B, H), ``feed`` (B, H), ``memory`` (S, B, H), ``mask`` (S, B) bool (True at real source steps;
  ``t < lengths``), and ``context`` for ``none``; outputs ``log_probs`` (B, V), ``h_out``, ``c_out``,
  ``feed_out`` and ``attention`` (B, S) (zeros for ``none``).

Both recurrent stacks are ``recurrent.emit_core`` (the ONNX ``LSTM`` operator, or a ``Scan`` for the
LayerNorm variant); the decoder's is called on one step. The rest is the equations of
``lstmkit.models.seq2seq`` node for node. Verified in onnxruntime against ``encode`` and ``decode_step``,
element-wise within twice a float32 rounding bound derived for the model's sizes, weights and inputs
(``encoder_tolerance``, ``decoder_tolerance``; the stacks' part is ``onnx_model.verification_tolerance``,
from ``lstmkit/_rounding.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

import lstmkit
from lstmkit import _rounding
from lstmkit._fileio import atomic_path
from lstmkit.export import _deps
from lstmkit.export.graph import GraphBuilder
from lstmkit.export.recurrent import CoreInputs, emit_core

OPSET = 17
I64 = "int64"


@dataclasses.dataclass(frozen=True)
class Seq2SeqExport:
    """What ``export_seq2seq`` wrote."""

    path: Path  # the encoder graph
    decoder_path: Path
    layers: tuple[str, ...]  # the ONNX operator of each recurrent layer, encoder then decoder
    max_abs_error: float | None

    def describe(self) -> list[str]:
        checked = ("not verified" if self.max_abs_error is None else
                   f"verified in onnxruntime against PyTorch: largest difference {self.max_abs_error:.2g}")  # fmt: skip
        return [f"wrote {self.path} (encoder: tokens, lengths -> memory, h0, c0)",
                f"wrote {self.decoder_path} (one decoder step: token, h, c, feed, memory, mask -> log_probs, h_out, "
                "c_out, feed_out, attention)",
                f"recurrent layers as ONNX operators: {', '.join(self.layers)}", checked,
                "beam search over them in numpy: examples/onnx_translate.py"]  # fmt: skip


def paths(out: Path) -> tuple[Path, Path]:
    """``model.onnx`` -> (``model.encoder.onnx``, ``model.decoder.onnx``)."""
    stem = out.name.removesuffix(".onnx")
    return out.with_name(f"{stem}.encoder.onnx"), out.with_name(f"{stem}.decoder.onnx")


def _linear(gb: GraphBuilder, x: str, layer: nn.Linear, hint: str) -> str:
    y = gb.op("MatMul", [x, gb.const(layer.weight.t(), f"{hint}_wt")], f"{hint}_mm")
    if layer.bias is not None:
        y = gb.op("Add", [y, gb.const(layer.bias, f"{hint}_b")], hint)
    return y


def _zeros(gb: GraphBuilder, like: str, rows: int, size: int, hint: str) -> str:
    """Zeros (rows, B, size), B read from ``like`` (S, B) at run time."""
    onnx = gb.onnx
    B = gb.op("Gather", [gb.op("Shape", [like], f"{hint}_like_shape"), gb.const([1], "idx1_vec", I64)], f"{hint}_B",
              axis=0)  # fmt: skip
    shape = gb.op("Concat", [gb.const([rows], f"{hint}_rows", I64), B, gb.const([size], f"{hint}_size", I64)],
                  f"{hint}_shape", axis=0)  # fmt: skip
    return gb.op("ConstantOfShape", [shape], hint, value=onnx.helper.make_tensor("value", onnx.TensorProto.FLOAT,
                                                                                 [1], [0.0]))  # fmt: skip


def _model(gb: GraphBuilder, name: str, inputs: list, outputs: list, values: list[str], metadata: Mapping[str, str]):
    named = dict(zip([n for n, _, _ in outputs], values, strict=True))
    return gb.finish(name, inputs, outputs, named, opset=OPSET, props=metadata)


def build_encoder(model: nn.Module, metadata: Mapping[str, str] | None = None):
    """The encoder graph; returns (ModelProto, layer operators)."""
    onnx = _deps.onnx()
    gb = GraphBuilder(onnx)
    cfg = model.config
    L, H, D = cfg.num_layers, cfg.hidden_size, 2 if cfg.bidirectional else 1
    none = cfg.attention == "none"
    inputs = [("tokens", I64, ["S", "B"]), ("lengths", I64, ["B"])]
    outputs = [("memory", "float32", ["S", "B", H]), ("h0", "float32", [L, "B", H]), ("c0", "float32", [L, "B", H])]
    if none:
        outputs.append(("context", "float32", ["B", H]))
    for name, _, _ in (*inputs, *outputs):
        gb.name(name)
    x = gb.op("Gather", [gb.const(model.src_embedding.weight, "src_embedding"), "tokens"], "src_embedded", axis=0)
    io = CoreInputs(x=x, h0=_zeros(gb, "tokens", L * D, H, "enc_h0"), c0=_zeros(gb, "tokens", L * D, H, "enc_c0"),
                    lengths="lengths")  # fmt: skip
    y, hn, cn, kinds = emit_core(gb, model.encoder, io)  # y (S, B, D*H); hn, cn (L*D, B, H)
    memory = gb.op("MatMul", [y, gb.const(model.memory.weight.t(), "memory_wt")], "memory_mm")  # (S, B, H)

    def by_layer(state: str, hint: str) -> str:  # (L*D, B, H) -> (L, B, D*H), directions side by side
        s = gb.op("Reshape", [state, gb.const([L, D, -1, H], "shape_ldbh", I64)], f"{hint}_ldbh")
        s = gb.op("Transpose", [s], f"{hint}_lbdh", perm=[0, 2, 1, 3])
        return gb.op("Reshape", [s, gb.const([0, 0, D * H], "shape_lb_dh", I64)], f"{hint}_last")

    h_last, c_last = by_layer(hn, "h"), by_layer(cn, "c")
    h0 = gb.op("Tanh", [_linear(gb, h_last, model.bridge_h, "bridge_h")], "h0_tanh")
    c0 = _linear(gb, c_last, model.bridge_c, "bridge_c")
    values = [memory, h0, c0]
    if none:
        top = gb.op("Gather", [h_last, gb.const(L - 1, "top_layer", I64)], "h_top", axis=0)  # (B, D*H)
        values.append(gb.op("MatMul", [top, gb.const(model.memory.weight.t(), "memory_wt")], "context_mm"))
    return _model(gb, "lstmkit_seq2seq_encoder", inputs, outputs, values, metadata or {}), kinds


def build_decoder_step(model: nn.Module, metadata: Mapping[str, str] | None = None):
    """The one-step decoder graph; returns (ModelProto, layer operators)."""
    onnx = _deps.onnx()
    gb = GraphBuilder(onnx)
    cfg = model.config
    L, H, V = cfg.num_layers, cfg.hidden_size, cfg.output_size
    none = cfg.attention == "none"
    F32 = "float32"
    inputs = [("token", I64, ["B"]), ("h", F32, [L, "B", H]), ("c", F32, [L, "B", H]), ("feed", F32, ["B", H]),
              ("memory", F32, ["S", "B", H]), ("mask", "bool", ["S", "B"])]  # fmt: skip
    if none:
        inputs.append(("context", F32, ["B", H]))
    outputs = [("log_probs", F32, ["B", V]), ("h_out", F32, [L, "B", H]), ("c_out", F32, [L, "B", H]),
               ("feed_out", F32, ["B", H]), ("attention", F32, ["B", "S"])]  # fmt: skip
    for name, _, _ in (*inputs, *outputs):
        gb.name(name)
    emb = gb.op("Gather", [gb.const(model.tgt_embedding.weight, "tgt_embedding"), "token"], "tgt_embedded", axis=0)
    x = gb.op("Concat", [emb, "feed"], "dec_input", axis=1)  # (B, E + H): input feeding
    x = gb.op("Unsqueeze", [x, gb.const([0], "axes_0", I64)], "dec_input_1bx")  # one time step
    y, hn, cn, kinds = emit_core(gb, model.decoder, CoreInputs(x=x, h0="h", c0="c", lengths=None))
    q = gb.op("Squeeze", [y, gb.const([0], "axes_0", I64)], "query")  # (B, H), the top layer
    if none:
        context = "context"
        mask_f = gb.op("Cast", [gb.op("Transpose", ["mask"], "mask_bs", perm=[1, 0])], "mask_bs_f",
                       to=onnx.TensorProto.FLOAT)  # fmt: skip
        attention = gb.op("Mul", [mask_f, gb.const(0.0, "zero_f32", "float32")], "attention_zero")  # (B, S)
    else:
        if cfg.attention == "additive":
            keys = _linear(gb, "memory", model.score_k, "score_k")  # (S, B, H)
            qq = gb.op("MatMul", [q, gb.const(model.score_q.weight.t(), "score_q_wt")], "score_q")
            qq = gb.op("Unsqueeze", [qq, gb.const([0], "axes_0", I64)], "score_q_1bh")
            hidden = gb.op("Tanh", [gb.op("Add", [keys, qq], "score_sum")], "score_hidden")
            scores = gb.op("MatMul", [hidden, gb.const(model.score_v.weight.t(), "score_v_wt")], "scores_sb1")
            scores = gb.op("Squeeze", [scores, gb.const([2], "axes_2", I64)], "scores")  # (S, B)
        else:
            if cfg.attention == "general":
                q = gb.op("MatMul", [q, gb.const(model.score_w.weight.t(), "score_w_wt")], "query_w")
            q1 = gb.op("Unsqueeze", [q, gb.const([0], "axes_0", I64)], "query_1bh")
            scores = gb.op("ReduceSum", [gb.op("Mul", ["memory", q1], "score_terms"), gb.const([2], "axes_2", I64)],
                           "scores", keepdims=0)  # (S, B)  # fmt: skip
        scores = gb.op("Where", ["mask", scores, gb.const(float("-inf"), "minus_inf", "float32")], "scores_masked")
        weights = gb.op("Softmax", [scores], "weights", axis=0)  # (S, B); exp(-inf) = 0 at padding
        w3 = gb.op("Unsqueeze", [weights, gb.const([2], "axes_2", I64)], "weights_sb1")
        context = gb.op("ReduceSum", [gb.op("Mul", [w3, "memory"], "weighted"), gb.const([0], "axes_0", I64)],
                        "context", keepdims=0)  # (B, H)  # fmt: skip
        attention = gb.op("Transpose", [weights], "attention_bs", perm=[1, 0])
    h_top = gb.op("Squeeze", [y, gb.const([0], "axes_0", I64)], "h_top")
    feed = gb.op("Tanh", [gb.op("MatMul", [gb.op("Concat", [context, h_top], "combine_in", axis=1),
                                           gb.const(model.combine.weight.t(), "combine_wt")], "combine_mm")],
                 "feed_new")  # fmt: skip
    logits = _linear(gb, feed, model.out, "out")  # (B, V)
    log_probs = gb.op("LogSoftmax", [logits], "log_probs_v", axis=-1)
    proto = _model(gb, "lstmkit_seq2seq_decoder_step", inputs, outputs, [log_probs, hn, cn, feed, attention],
                   metadata or {})
    return proto, kinds


def _random_source(model: nn.Module, S: int, B: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, S + 1, (B,), generator=g)
    lengths[0] = S
    tokens = torch.randint(4, model.config.vocab_size, (S, B), generator=g)
    tokens[torch.arange(S)[:, None] >= lengths[None, :]] = 0
    return tokens, lengths


# -- the verification's tolerance: twice a float32 rounding bound (lstmkit/_rounding.py) ------------------
# Notation of _rounding: u the unit roundoff, gamma(n) a sum of n terms, ||W|| the largest row sum of |W|,
# F_POINTWISE u one pointwise function. A linear map y = W x + b of inputs carrying an error dx is off by at
# most ||W|| dx + gamma(K + 1) (||W|| max|x| + max|b|) (point 1 of _rounding, and point 5 for dx).
_U = _rounding.unit_roundoff(torch.float32)
_F = _rounding.F_POINTWISE * _U


def _linear_error(layer: nn.Linear | None, dx: float, x_max: float) -> float:
    if layer is None:
        return 0.0
    return _rounding.linear_error(layer.weight, layer.bias, dx, x_max, _U)


def _stack_error(core: nn.Module, x: Tensor, h0: Tensor, c0: Tensor, lengths: Tensor | None) -> float:
    """A rounding bound on h and c of a recurrent stack run on ``x`` from (h0, c0): the single-graph
    export's bound (``onnx_model.verification_tolerance`` of the stack alone), undoing its doubling."""
    from lstmkit.export.onnx_model import verification_tolerance

    inputs = {"input": x, "h0": h0, "c0": c0, **({} if lengths is None else {"lengths": lengths})}
    return verification_tolerance(core, inputs)[0] / _rounding.between(1.0)


def encoder_tolerance(model: nn.Module, tokens: Tensor, lengths: Tensor) -> float:
    """atol = rtol of the encoder graph at ``tokens`` (S, B), ``lengths`` (B,): twice a bound on the
    rounding of memory = W_m out, the bridges h0 = tanh(W_h h_n + b), c0 = W_c c_n + b (|c_n| <= S), and
    ``none``'s context, from the stack's bound on out, h_n and c_n (|h| <= 1)."""
    cfg = model.config
    L, H, D = cfg.num_layers, cfg.hidden_size, 2 if cfg.bidirectional else 1
    x = model.src_embedding(tokens)  # (S, B, E)
    zeros = x.new_zeros(L * D, x.shape[1], H)
    e_out = _stack_error(model.encoder, x, zeros, zeros, lengths)
    err = max(_linear_error(model.memory, e_out, 1.0),  # memory, and none's context
              _linear_error(model.bridge_h, e_out, 1.0) + _F,  # tanh
              _linear_error(model.bridge_c, e_out, float(tokens.shape[0])))  # fmt: skip
    return _rounding.between(err)


def decoder_tolerance(model: nn.Module, token: Tensor, h: Tensor, c: Tensor, feed: Tensor, memory: Tensor) -> float:
    """atol = rtol of one decoder step from these exact inputs: twice a bound on the rounding of h_out and
    c_out (the stack's bound), the attention weights, feed_out and the log-probabilities.

    With a query q carrying dq, a score q.M_s is off by dq ||M|| + gamma(H) max|q| ||M|| (||M|| the largest
    row sum of |M_s|; additive: v.tanh(W_q h + W_k M_s + b), its terms' errors through ||v||); softmax
    moves the weights by sum_s |da_s| <= 2 max|ds| (da_s = a_s (ds_s - sum_j a_j ds_j)), plus its own
    rounding, relative to each a_s; the context sum_s a_s M_s by sum_s |da_s| max|M| + gamma(S) max|M|; then
    h~ = tanh(W_c [ctx; h]) and the logits are linear maps; log-softmax at most doubles the logits' error
    (plus its own rounding)."""
    cfg = model.config
    S = memory.shape[0]
    x = torch.cat([model.tgt_embedding(token), feed], dim=-1)[None]  # (1, B, E + H)
    e_h = _stack_error(model.decoder, x, h, c, None)
    rows = memory.reshape(-1, memory.shape[-1])  # (S*B, H)
    m_max, m_row = _rounding.row_abs_sum(rows.reshape(-1)), _rounding.row_abs_sum(rows)  # max |M|, ||M||
    if cfg.attention == "none":
        e_ctx = e_w = 0.0  # the context is an input; the weights are zeros
        ctx_max = _rounding.row_abs_sum(model.memory.weight)  # bounds |W_m h_n|
    else:
        if cfg.attention == "additive":
            e_hidden = _linear_error(model.score_q, e_h, 1.0) + _linear_error(model.score_k, 0.0, m_max) + _F
            e_s = _linear_error(model.score_v, e_hidden, 1.0)
        else:
            general = cfg.attention == "general"
            e_q = _linear_error(model.score_w, e_h, 1.0) if general else e_h
            q_max = _rounding.row_abs_sum(model.score_w.weight) if general else 1.0
            e_s = e_q * m_row + _rounding.gamma(cfg.hidden_size, _U) * q_max * m_row
        e_w = 2 * e_s + _F + _rounding.gamma(S, _U)  # each weight; also a bound on sum_s |da_s| (sum_s a_s = 1)
        e_ctx = e_w * m_max + _rounding.gamma(S, _U) * m_max
        ctx_max = m_max
    e_feed = _linear_error(model.combine, max(e_ctx, e_h), max(ctx_max, 1.0)) + _F
    e_logits = _linear_error(model.out, e_feed, 1.0)
    e_logp = 2 * e_logits + _F + _rounding.gamma(cfg.output_size, _U)
    return _rounding.between(max(e_h, e_w, e_feed, e_logp))


def _close(name: str, got: np.ndarray, want: Tensor, where: str, tol: float) -> float:
    want = want.detach().numpy()
    if got.shape != want.shape:
        raise _mismatch(f"{where}: output {name!r} has shape {got.shape} in onnxruntime, {want.shape} in PyTorch")
    diff = np.abs(got.astype(np.float64) - want)
    if not np.all(diff <= tol + tol * np.abs(want)):
        raise _mismatch(f"{where}: output {name!r} differs from PyTorch by up to {diff.max():.3g} (allowed "
                        f"{tol:.3g} + {tol:.3g} * |value|, twice the float32 rounding bound)")  # fmt: skip
    return float(diff.max(initial=0.0))


def _mismatch(message: str) -> Exception:
    from lstmkit.export.onnx_model import ExportVerificationError

    return ExportVerificationError(message)


@torch.no_grad()
def verify(model: nn.Module, encoder: Path, decoder: Path, shapes=((7, 3), (1, 1), (4, 2))) -> float:
    """Run both graphs in onnxruntime against ``encode`` and three ``decode_step`` calls at each (S, B).

    Every decoder step starts both from PyTorch's state, so each is checked against its own rounding bound
    (``decoder_tolerance``) rather than one that compounds the steps before."""
    ort = _deps.onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    enc_s = ort.InferenceSession(str(encoder), options, providers=["CPUExecutionProvider"])
    dec_s = ort.InferenceSession(str(decoder), options, providers=["CPUExecutionProvider"])
    model.eval()
    none = model.config.attention == "none"
    worst = 0.0
    for seed, (S, B) in enumerate(shapes):
        tokens, lengths = _random_source(model, S, B, seed)
        enc = model.encode(tokens, lengths)
        got = enc_s.run(None, {"tokens": tokens.numpy(), "lengths": lengths.numpy()})
        want = [enc.memory, enc.state[0], enc.state[1]] + ([enc.context] if none else [])
        tol = encoder_tolerance(model, tokens, lengths)
        for name, g, w in zip(("memory", "h0", "c0", "context"), got, want, strict=False):
            worst = max(worst, _close(name, g, w, f"{encoder} at S={S}, B={B}", tol))
        dec = model.start(enc)
        tok = torch.full((B,), 2, dtype=torch.int64)
        for _ in range(3):
            feeds = {"token": tok, "h": dec.state[0], "c": dec.state[1], "feed": dec.feed, "memory": enc.memory,
                     "mask": enc.mask, **({"context": enc.context} if none else {})}  # fmt: skip
            tol = decoder_tolerance(model, tok, dec.state[0], dec.state[1], dec.feed, enc.memory)
            out = dec_s.run(None, {k: v.numpy() for k, v in feeds.items()})
            logits, dec, weights = model.decode_step(tok, dec, enc)
            want = [logits.log_softmax(-1), dec.state[0], dec.state[1], dec.feed, weights]
            for name, g, w in zip(("log_probs", "h_out", "c_out", "feed_out", "attention"), out, want, strict=True):
                worst = max(worst, _close(name, g, w, f"{decoder} at S={S}, B={B}", tol))
            tok = logits.argmax(-1)
    return worst


def export_seq2seq(model: nn.Module, out: str | Path, *, verify_outputs: bool = True,
                   metadata: Mapping[str, str] | None = None) -> Seq2SeqExport:  # fmt: skip
    """Write ``out``'s ``.encoder.onnx`` and ``.decoder.onnx`` (see the module docstring) and verify them."""
    out = Path(out)
    if not out.parent.is_dir():
        raise ValueError(f"the directory {out.parent} does not exist")
    bad = sorted({str(p.dtype) for p in model.parameters() if p.dtype != torch.float32})
    if bad:
        raise TypeError(f"model must have float32 parameters to export, got {bad}")
    if verify_outputs:
        _deps.onnxruntime()  # fail on a missing runtime before writing anything
    model = model.eval()
    meta = {"lstmkit.version": lstmkit.__version__, **(metadata or {})}
    enc_path, dec_path = paths(out)
    enc, enc_kinds = build_encoder(model, {**meta, "lstmkit.graph": "encoder"})
    dec, dec_kinds = build_decoder_step(model, {**meta, "lstmkit.graph": "decoder_step"})
    for proto, path in ((enc, enc_path), (dec, dec_path)):
        with atomic_path(path) as tmp:
            tmp.write_bytes(proto.SerializeToString())
    err = verify(model, enc_path, dec_path) if verify_outputs else None
    return Seq2SeqExport(enc_path, dec_path, tuple(enc_kinds + dec_kinds), err)
