"""``to_onnx``: an lstmkit layer or ``SequenceModel`` as an ONNX file, checked in onnxruntime.

The graph is written node by node with ``onnx.helper`` (see ``recurrent.py`` for the recurrent
core) rather than traced by ``torch.onnx.export``: tracing would unroll our Python time loop for
one fixed length and could not map the fused kernel's custom autograd node to the ONNX ``LSTM``
operator, while writing the graph gives symbolic time and batch axes, the standard ``LSTM``
operator wherever it computes our equations, and no dependency on torch's exporter (or onnxscript).

Graph signature (T and B symbolic; L layers, D directions, P = proj_size or H):

======================  ====================================================================
inputs                  ``input`` (T, B, I) [(B, T, I) for a ``batch_first`` layer], or for a
                        ``SequenceModel`` ``tokens`` (T, B) int64 / ``features`` (T, B, I);
                        ``h0`` (L*D, B, P); ``c0`` (L*D, B, H) for an LSTM;
                        ``lengths`` (B,) int64 with ``lengths=True``
outputs                 ``output`` (T, B, D*P) [``logits`` (T, B, O) for a ``SequenceModel``];
                        ``hn``; ``cn`` for an LSTM
======================  ====================================================================

The model is exported as in eval mode: no dropout, no recurrent dropout.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

import lstmkit
from lstmkit import _rounding
from lstmkit._fileio import atomic_path
from lstmkit.export import _deps, _spots, task_models
from lstmkit.export.graph import GraphBuilder
from lstmkit.export.recurrent import RECURRENCES, CoreInputs, emit_core
from lstmkit.nn import GRU, LSTM, RNN
from lstmkit.nn.int8 import rebuilt_weights

MIN_OPSET = 17  # LayerNormalization (the LayerNorm variant's Scan body) is an ONNX operator from opset 17
# Verified at lengths and batch sizes unlike each other, so that a graph with a fixed axis fails.
VERIFY_SHAPES = ((9, 3), (1, 2), (4, 1))  # (T, B)


class ExportVerificationError(RuntimeError):
    """The exported model's outputs in onnxruntime differ from the PyTorch model's."""


@dataclasses.dataclass(frozen=True)
class OnnxExport:
    """What ``to_onnx`` wrote."""

    path: Path
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    layers: tuple[str, ...]  # the ONNX operator each recurrent layer became: "LSTM", "Scan", "GRU", "RNN"
    max_abs_error: float | None  # largest |onnxruntime - torch| seen by the verification; None when not verified
    loose: tuple[str, ...] = ()  # outputs whose derived bound was as large as the output: that check caught nothing

    def describe(self) -> list[str]:
        """Human-readable lines: the file, its signature, its operators and the verification."""
        checked = (
            f"verified in onnxruntime against PyTorch: largest difference {self.max_abs_error:.2g}"
            if self.max_abs_error is not None
            else "not verified (verify=False)"
        )
        if self.loose:
            checked += (f"; for {' and '.join(self.loose)} the derived float32 bound is as large as the values "
                        "themselves, so that check cannot tell a wrong graph from rounding for this model")
        return [
            f"wrote {self.path}",
            f"inputs: {', '.join(self.inputs)}; outputs: {', '.join(self.outputs)}",
            f"recurrent layers as ONNX operators: {', '.join(self.layers)}",
            checked,
        ]


def _is_sequence(model: nn.Module) -> bool:
    """A whole sequence model (``export_kind`` "sequence", e.g. ``lstmkit.models.SequenceModel``):
    embedding or features, ``rnn``, optional ``proj``, ``head``."""
    return task_models.export_kind(model) == "sequence"


# export kind -> where the models that ``to_onnx`` does not write are written
_OTHER_WRITERS = {
    "attention-lm": "; an AttentionLM exports with lstmkit.export.export_attention_lm (one graph that also carries the "
                    "attention block's keys and values), or `lstmkit export RUN_DIR`",
    "handwriting": "; a HandwritingNet exports with lstmkit.export.export_handwriting (one graph with the window and "
                   "the mixture density output), or `lstmkit export RUN_DIR`",
    "memory": "; a MemoryLSTM (the NTM) exports with lstmkit.export.export_memory (one graph that also carries its "
              "reads, head weightings and memory), or `lstmkit export RUN_DIR`",
}  # fmt: skip


def _core_of(model: nn.Module) -> LSTM | GRU | RNN:
    core = _find_core(model)
    if isinstance(core, (GRU, RNN)) and core.zoneout:  # an LSTM's zoneout is written in its Scan body
        raise ValueError(f"the model's {type(core).__name__} has zoneout={core.zoneout}, which the ONNX GRU and RNN "
                         "operators lack (their eval-mode update, old * p + new * (1 - p) after every step); not "
                         "exported")
    return core


def _find_core(model: nn.Module) -> LSTM | GRU | RNN:
    if task_models.kind(model) is not None:
        return task_models.core_of(model)
    if _is_sequence(model):
        core = model.rnn
        if not isinstance(core, (LSTM, GRU, RNN)):
            raise TypeError(f"model.rnn must be an lstmkit LSTM, GRU or RNN to export, got {type(core).__name__}")
        return core
    if isinstance(model, (LSTM, GRU, RNN)):
        return model
    hint = _OTHER_WRITERS.get(task_models.export_kind(model), "")
    if isinstance(model, (nn.LSTM, nn.GRU, nn.RNN)):
        hint = f"; load its state_dict into lstmkit.{type(model).__name__} (same parameter names) and export that"
    raise TypeError(f"model must be an lstmkit LSTM, GRU or RNN, a SequenceModel, or a classify, forecast or CTC "
                    f"task model, got {type(model).__name__}{hint}")


def _check_args(model: nn.Module, path, lengths, recurrence, opset, verify, metadata) -> Path:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an lstmkit model (nn.Module), got {type(model).__name__}")
    core = _core_of(model)
    bad = sorted({str(p.dtype) for p in model.parameters() if p.dtype != torch.float32})
    if bad:
        raise TypeError(f"model must have float32 parameters to export, got {bad}; call model.float() first")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path must be a file name, got the directory {path}")
    if not path.parent.is_dir():
        raise ValueError(f"path's directory {path.parent} does not exist")
    for name, v in (("lengths", lengths), ("verify", verify)):
        if not isinstance(v, bool):
            raise TypeError(f"{name} must be True or False, got {v!r}")
    if lengths and task_models.kind(model) in task_models.FORECASTER_KINDS:
        raise ValueError("lengths=True does not apply to a forecaster: it reads whole windows")
    if recurrence not in RECURRENCES:
        raise ValueError(f"recurrence must be one of {RECURRENCES}, got {recurrence!r}")
    if recurrence == "scan" and not isinstance(core, LSTM):
        raise ValueError(f"recurrence='scan' applies to LSTM layers; a {type(core).__name__} always exports as "
                         f"the ONNX {type(core).__name__} operator")
    latest = _deps.onnx().defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= latest:
        raise ValueError(f"opset must be an integer in [{MIN_OPSET}, {latest}] (this onnx's newest), got {opset!r}")
    if metadata is not None and not (
        isinstance(metadata, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise TypeError("metadata must be a mapping of str to str")
    return path


def _signature(model: nn.Module, core: LSTM | GRU | RNN, lengths: bool) -> tuple[list, list]:
    """(name, elem type, shape) of the graph's inputs and outputs."""
    if task_models.kind(model) is not None:
        return task_models.signature(model)
    F32, I64 = "float32", "int64"
    LD, P, H = core.num_layers * core.num_directions, core.output_size, core.hidden_size
    if _is_sequence(model):
        if model.embedding is not None:
            inputs = [("tokens", I64, ["T", "B"])]
        else:
            inputs = [("features", F32, ["T", "B", core.input_size])]
        outputs = [("logits", F32, ["T", "B", model.head.out_features])]
    else:
        shape = ["B", "T", core.input_size] if core.batch_first else ["T", "B", core.input_size]
        inputs = [("input", F32, shape)]
        out = core.num_directions * P
        outputs = [("output", F32, ["B", "T", out] if core.batch_first else ["T", "B", out])]
    inputs.append(("h0", F32, [LD, "B", P]))
    outputs.append(("hn", F32, [LD, "B", P]))
    if isinstance(core, LSTM):
        inputs.append(("c0", F32, [LD, "B", H]))
        outputs.append(("cn", F32, [LD, "B", H]))
    if lengths:
        inputs.append(("lengths", I64, ["B"]))
    return inputs, outputs


def build_onnx(model: nn.Module, *, lengths: bool = False, recurrence: str = "auto", opset: int = MIN_OPSET,
               metadata: Mapping[str, str] | None = None):
    """The ``onnx.ModelProto`` of ``model`` (arguments as ``to_onnx``) and the operator of each layer."""
    onnx = _deps.onnx()
    core = _core_of(model)
    gb = GraphBuilder(onnx)
    sig_in, sig_out = _signature(model, core, lengths)
    for name, _, _ in (*sig_in, *sig_out):  # reserve the graph's input and output names
        gb.name(name)
    if task_models.kind(model) is not None:
        values, kinds = task_models.emit(gb, model, recurrence)
    else:
        values, kinds = _emit_layer_or_sequence_model(gb, model, core, sig_in[0][0], lengths, recurrence)
    meta = {"lstmkit.version": lstmkit.__version__, "lstmkit.model": repr(model), "lstmkit.layers": json.dumps(kinds)}
    meta.update(metadata or {})
    values = dict(zip([n for n, _, _ in sig_out], values, strict=True))
    return gb.finish(f"lstmkit_{type(model).__name__}", sig_in, sig_out, values, opset=opset, props=meta), kinds


def _emit_layer_or_sequence_model(gb: GraphBuilder, model: nn.Module, core: LSTM | GRU | RNN, first: str,
                                  lengths: bool, recurrence: str) -> tuple[list[str], list[str]]:
    """Add a layer's or a ``SequenceModel``'s nodes; return (output values (y, hn[, cn]), layer operators)."""
    io = CoreInputs(x=first, h0="h0", c0="c0" if isinstance(core, LSTM) else None,
                    lengths="lengths" if lengths else None)  # fmt: skip
    if _is_sequence(model) and model.embedding is not None:
        emb = gb.const(model.embedding.weight, "embedding")  # (V, E)
        io.x = gb.op("Gather", [emb, "tokens"], "embedded", axis=0)  # (T, B, E)
    elif not _is_sequence(model) and core.batch_first:
        io.x = gb.op("Transpose", [first], "input_tbi", perm=[1, 0, 2])  # (B, T, I) -> (T, B, I)
    y, hn, cn, kinds = emit_core(gb, core, io, recurrence)
    if _is_sequence(model):
        if model.proj is not None:
            y = gb.op("MatMul", [y, gb.const(model.proj.weight.t(), "proj_t")], "projected")  # (T, B, E)
        if model.embedding is not None and model.head.weight is model.embedding.weight:
            # Tied weights: one stored matrix; onnxruntime folds this Transpose of a constant at load.
            w = gb.op("Transpose", [emb], "head_t", perm=[1, 0])  # (E, V)
        else:
            w = gb.const(model.head.weight.t(), "head_t")  # (H or E, O)
        y = gb.op("MatMul", [y, w], "head_mm")
        if model.head.bias is not None:
            y = gb.op("Add", [y, gb.const(model.head.bias, "head_b")], "head_out")
    elif core.batch_first:
        y = gb.op("Transpose", [y], "output_bti", perm=[1, 0, 2])
    return [y, hn] + ([cn] if cn is not None else []), kinds


def to_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    lengths: bool = False,
    recurrence: str = "auto",
    opset: int = MIN_OPSET,
    verify: bool = True,
    metadata: Mapping[str, str] | None = None,
) -> OnnxExport:
    """Write ``model`` (an lstmkit ``LSTM``/``GRU``/``RNN`` or a ``SequenceModel``) as an ONNX file.

    Args:
        model: float32; any LSTM variant, layer count and direction. Exported as in eval mode.
        path: the file to write (its directory must exist); written atomically.
        lengths: add a ``lengths`` (B,) int64 input that masks padding as ``forward(lengths=...)``.
        recurrence: ``"auto"`` uses the ONNX ``LSTM`` operator for every layer it can express (all
            but LayerNorm and projection) and a ``Scan`` over lstmkit's step for the rest;
            ``"scan"`` uses the ``Scan`` for every LSTM layer.
        opset: the ONNX opset (at least 17).
        verify: run the file in onnxruntime at several lengths and batch sizes, with random states
            (and lengths), and raise :class:`ExportVerificationError` unless every output is within
            the float32 rounding bound of ``verification_tolerance`` of the PyTorch model's. Needs
            onnxruntime.
        metadata: extra string entries for the model's ``metadata_props``.

    Returns an :class:`OnnxExport`: the path, input and output names, the operator of each layer
    and the largest difference the verification saw.
    """
    path = _check_args(model, path, lengths, recurrence, opset, verify, metadata)
    ort = _deps.onnxruntime() if verify else None  # fail on a missing runtime before writing anything
    proto, kinds = build_onnx(model, lengths=lengths, recurrence=recurrence, opset=opset, metadata=metadata)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    err, loose = None, ()
    if verify:
        assert ort is not None
        err, loose = verify_onnx(model, path, lengths=lengths)
    inputs = tuple(i.name for i in proto.graph.input)
    outputs = tuple(o.name for o in proto.graph.output)
    return OnnxExport(path=path, inputs=inputs, outputs=outputs, layers=tuple(kinds), max_abs_error=err, loose=loose)


def random_inputs(model: nn.Module, T: int, B: int, *, lengths: bool, seed: int = 0) -> dict[str, Tensor]:
    """Inputs for the exported graph of ``model`` at (T, B), keyed by input name: random features or
    token ids, random initial states and, with ``lengths``, lengths that include T, shorter ones and 0."""
    if task_models.kind(model) is not None:
        return task_models.random_inputs(model, T, B, seed)
    core = _core_of(model)
    g = torch.Generator().manual_seed(seed)
    LD, P, H = core.num_layers * core.num_directions, core.output_size, core.hidden_size
    out: dict[str, Tensor] = {}
    if _is_sequence(model) and model.embedding is not None:
        out["tokens"] = torch.randint(0, model.embedding.num_embeddings, (T, B), generator=g)
    else:
        name = "features" if _is_sequence(model) else "input"
        shape = (B, T, core.input_size) if (name == "input" and core.batch_first) else (T, B, core.input_size)
        out[name] = torch.randn(shape, generator=g)
    out["h0"] = 0.5 * torch.randn(LD, B, P, generator=g)
    if isinstance(core, LSTM):
        out["c0"] = torch.randn(LD, B, H, generator=g)
    if lengths:
        n = torch.randint(0, T + 1, (B,), generator=g)
        n[0] = T  # the longest is the whole input
        if B > 2:
            n[-1] = 0  # an empty sequence keeps its initial state
        out["lengths"] = n
    return out


@torch.no_grad()
def run_torch(model: nn.Module, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The PyTorch model's outputs for graph inputs ``inputs``, keyed by the graph's output names (eval
    mode), computed with the rebuilt weight matrices a float graph holds (``rebuilt_weights``)."""
    with rebuilt_weights():
        return _run_torch(model, inputs)


def _run_torch(model: nn.Module, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    if task_models.kind(model) is not None:
        return task_models.run_torch(model, dict(inputs))
    core = _core_of(model)
    device = next(model.parameters()).device
    x = {k: v.to(device) for k, v in inputs.items()}
    state = (x["h0"], x["c0"]) if isinstance(core, LSTM) else x["h0"]
    lengths = x.get("lengths")
    was_training = model.training
    model.eval()
    try:
        if _is_sequence(model):
            y, state = model(x["tokens"] if "tokens" in x else x["features"], state, lengths)
            names = ("logits", "hn", "cn")
        else:
            y, state = model(x["input"], state, lengths=lengths)
            names = ("output", "hn", "cn")
    finally:
        model.train(was_training)
    values = (y, *state) if isinstance(core, LSTM) else (y, state)
    return {n: v.cpu() for n, v in zip(names, values, strict=False)}


def _core_inputs(model: nn.Module, inputs: Mapping[str, Tensor]) -> tuple[int, float, float, float]:
    """T, and max |x|, |h0| and |c0| as the recurrent core receives them (after embeddings and preprocessing)."""
    core = _core_of(model)
    seen: dict[str, float] = {}

    def largest(t) -> float:
        if isinstance(t, Tensor):
            return float(t.detach().abs().max()) if t.numel() else 0.0
        if isinstance(t, (tuple, list)):
            return max((largest(x) for x in t), default=0.0)
        return float(largest(t.data)) if hasattr(t, "data") else 0.0  # a PackedSequence

    def hook(_module, args, kwargs):
        x = args[0]
        if isinstance(x, Tensor):
            seen["T"] = x.shape[1 if core.batch_first and x.dim() == 3 else 0]
        elif hasattr(x, "batch_sizes"):  # a PackedSequence
            seen["T"] = len(x.batch_sizes)
        seen["x"] = largest(x)
        state = args[1] if len(args) > 1 else kwargs.get("state")
        if isinstance(state, (tuple, list)):
            seen["h"], seen["c"] = largest(state[0]), largest(state[1])
        elif state is not None:
            seen["h"] = seen["c"] = largest(state)

    handle = core.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        run_torch(model, inputs)
    finally:
        handle.remove()
    return int(seen.get("T", 1)), seen.get("x", 1.0), seen.get("h", 0.0), seen.get("c", 0.0)


def _largest(t: Tensor | None) -> float:
    return float(t.detach().abs().max()) if t is not None and t.numel() else 0.0


def verification_tolerance(model: nn.Module, inputs: Mapping[str, Tensor]) -> tuple[float, float]:
    """(atol, rtol) of the verification at graph inputs ``inputs``: twice a float32 rounding bound.

    Two correct float32 evaluations (lstmkit's and onnxruntime's) each lie within a rounding bound
    of the exact result, so within twice it of each other. The bound (``lstmkit/_rounding.py``, and
    docs/deployment.md) grows with the sizes: each gate is a sum of I + P + 2 terms (gamma_K times
    ||W_ih|| max|x| + ||W_hh|| max|h| + |biases|), LayerNorm adds its mean and variance over the
    4H gates and H cells, the cell passes errors on with |f| <= 1 so T steps add up, and a layer's
    input error enters the next through ||W_ih||. Linear heads (a ``SequenceModel``'s or a task
    model's) multiply it by their ||W||. The relative part covers outputs larger than 1 (logits).
    """
    ensemble = task_models.members(model)
    if ensemble:  # each member's bound, then the averaging's (task_models.ensemble_error)
        errs = [verification_tolerance(m, inputs)[0] / _rounding.between(1.0) for m in ensemble]
        tol = _rounding.between(task_models.ensemble_error(model, dict(inputs), errs))
        return tol, tol
    spot_bound = {"forecaster": _spots.forecast_error, "recognizer": _spots.recognizer_error}
    if task_models.kind(model) in spot_bound:  # a plain LSTM core: every rounding carried by autograd
        spotted = spot_bound[task_models.kind(model)](model, dict(inputs))
        if spotted is not None:
            tol = _rounding.between(float(spotted.max()))
            return tol, tol
    core = _core_of(model)
    f32 = torch.float32
    u = _rounding.unit_roundoff(f32)
    T, x_max, h0_max, c0_max = _core_inputs(model, inputs)
    T = max(T, 1)
    state_max = max(1.0, h0_max)
    err = 0.0
    for layer in range(core.num_layers):
        worst = 0.0
        for suffix in ("", "_reverse")[: core.num_directions]:
            def p(name: str, layer=layer, suffix=suffix) -> Tensor | None:
                return getattr(core, f"{name}_l{layer}{suffix}", None)

            w_ih, w_hh, w_hr = p("weight_ih"), p("weight_hh"), p("weight_hr")
            w_in, w_rec = _rounding.row_abs_sum(w_ih), _rounding.row_abs_sum(w_hh)
            proj = _rounding.row_abs_sum(w_hr)
            c_max = c0_max + T
            a_max = (w_in * (x_max if layer == 0 else max(1.0, proj)) + w_rec * max(state_max, proj)
                     + _largest(p("bias_ih")) + _largest(p("bias_hh")) + _largest(p("weight_ch")) * c_max)
            gains = [_largest(p(n)) for n in ("weight_ln_ih", "weight_ln_hh", "weight_ln_c")]
            e = _rounding.lstm_error(
                f32, T=T, K=w_ih.shape[1] + w_hh.shape[1] + 3, a_max=a_max, H=core.hidden_size, G=w_ih.shape[0],
                c0_max=max(c0_max, h0_max), layer_norm=bool(getattr(core, "layer_norm", False)),
                ln_gain=max([*gains, 1.0]), dx=err, w_in=w_in,
            )
            if w_hr is not None:  # h = W_hr m: the projection's own sum of H terms, and its gain on m's error
                e = proj * e + _rounding.gamma(core.hidden_size, u) * proj
            if getattr(core, "zoneout", (0.0, 0.0)) != (0.0, 0.0):  # eval mode's mix with the previous state
                e += _rounding.zoneout_error(T, max(c_max, state_max, proj), u)
            worst = max(worst, e)
        err = worst
    readout = task_models.readout_error(model, dict(inputs), err)  # a classifier's readout, conv branch and head
    if readout is not None:
        err = readout
    else:
        core_ids = {id(m) for m in core.modules()}
        for m in model.modules():  # heads: h -> W h + b (and a log-softmax, within another such error)
            if isinstance(m, nn.Linear) and id(m) not in core_ids:
                w = _rounding.row_abs_sum(m.weight)
                err = 2 * (w * err + _rounding.gamma(m.in_features + 1, u) * (w + _largest(m.bias)))
    tol = _rounding.between(err)
    return tol, tol


def check_path_and_opset(path, opset) -> Path:
    """The file and opset arguments of the graph writers beside ``to_onnx`` (``export_attention_lm``,
    ``export_memory``, ``export_handwriting``): ``path`` a file name in an existing directory, ``opset`` in
    [MIN_OPSET, onnx's newest]."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir() or not path.parent.is_dir():
        raise ValueError(f"path must be a file name in an existing directory, got {path}")
    latest = _deps.onnx().defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= latest:
        raise ValueError(f"opset must be an integer in [{MIN_OPSET}, {latest}] (this onnx's newest), got {opset!r}")
    return path


def write_verified(model: nn.Module, path, opset, verify: bool, build, verify_file) -> OnnxExport:
    """The shared steps of the graph writers beside ``to_onnx``: check ``path`` and ``opset``
    (``check_path_and_opset``), fail early on a missing onnxruntime when verifying, ``build()`` the proto (and each
    recurrent layer's operator), write it atomically, and with ``verify`` run ``verify_file(model, path)``
    (-> (largest difference, loose outputs))."""
    path = check_path_and_opset(path, opset)
    if verify:
        _deps.onnxruntime()  # fail on a missing runtime before writing anything
    proto, kinds = build()
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    err, loose = verify_file(model, path) if verify else (None, ())
    return OnnxExport(path=path, inputs=tuple(i.name for i in proto.graph.input),
                      outputs=tuple(o.name for o in proto.graph.output), layers=tuple(kinds), max_abs_error=err,
                      loose=loose)  # fmt: skip


def compare_within_bounds(path, model: nn.Module, want: Mapping[str, Tensor], got: list[np.ndarray],
                          allowed: Mapping[str, np.ndarray], where: str, loose: list[str]) -> float:
    """Check onnxruntime's outputs ``got`` (in ``want``'s order) against PyTorch's ``want`` element by element within
    ``allowed`` (each output's own bound, twice one evaluation's); returns the largest difference and appends to
    ``loose`` the outputs whose largest bound is as large as their largest value (there an all-zero output would
    have passed). Raises ``ExportVerificationError`` naming the output, the element and ``where`` (the shape)."""
    worst = 0.0
    for (name, ref), out in zip(want.items(), got, strict=True):
        ref = ref.numpy()
        if out.shape != ref.shape:
            raise ExportVerificationError(f"{path}: output {name!r} has shape {out.shape} in onnxruntime, "
                                          f"{ref.shape} in PyTorch ({where})")  # fmt: skip
        diff = np.abs(out.astype(np.float64) - ref)
        worst = max(worst, float(diff.max(initial=0.0)))
        scale = float(np.abs(ref).max(initial=0.0))
        if float(allowed[name].max(initial=0.0)) >= scale > 0 and name not in loose:
            loose.append(name)
        bad = diff > allowed[name]
        if bad.any():
            i = np.unravel_index(np.argmax(np.where(bad, diff - allowed[name], -np.inf)), diff.shape)
            raise ExportVerificationError(
                f"{path}: output {name!r} differs from the PyTorch model by {diff[i]:.3g} at {tuple(map(int, i))} "
                f"({where}), beyond twice its float32 rounding bound there ({allowed[name][i]:.3g}); please report "
                f"this with the model's repr: {model!r}"
            )
    return worst


def verify_onnx(model: nn.Module, path: str | os.PathLike[str], *, lengths: bool = False,
                shapes: tuple[tuple[int, int], ...] | None = None) -> tuple[float, tuple[str, ...]]:
    """Run the ONNX file ``path`` in onnxruntime against ``model`` at each (T, B) in ``shapes``.

    ``shapes`` defaults to ``VERIFY_SHAPES`` (for a forecaster, lengths of at least its AR order).
    Returns the largest absolute difference over all outputs, and the outputs whose bound was at least as
    large as the output itself at some shape (a wrong all-zero output would have passed: worst-case bounds
    through attention, conv and BatchNorm layers can be that loose); raises :class:`ExportVerificationError`
    when an element differs by more than atol + rtol * |torch|, a float32 rounding bound for the model's sizes
    and these inputs (``verification_tolerance``).
    """
    ort = _deps.onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # small inputs: a thread pool would cost more than it saves
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    worst = 0.0
    loose: list[str] = []  # outputs whose bound was as large as the output itself at some shape
    if shapes is None:
        shapes = task_models.verify_shapes(model, VERIFY_SHAPES)
    for seed, (T, B) in enumerate(shapes):
        inputs = random_inputs(model, T, B, lengths=lengths, seed=seed)
        want = run_torch(model, inputs)
        got = session.run(list(want), {k: v.numpy() for k, v in inputs.items()})
        atol, rtol = verification_tolerance(model, inputs)
        for (name, ref), out in zip(want.items(), got, strict=True):
            ref = ref.numpy()
            if out.shape != ref.shape:
                raise ExportVerificationError(
                    f"{path}: output {name!r} has shape {out.shape} in onnxruntime, {ref.shape} in PyTorch "
                    f"(T={T}, B={B})"
                )
            diff = np.abs(out.astype(np.float64) - ref)
            worst = max(worst, float(diff.max(initial=0.0)))
            scale = float(np.abs(ref).max(initial=0.0))
            if atol + rtol * scale >= scale > 0 and name not in loose:
                loose.append(name)  # an all-zero output would pass: the bound cannot catch an error here
            if not np.all(diff <= atol + rtol * np.abs(ref)):
                raise ExportVerificationError(
                    f"{path}: output {name!r} differs from the PyTorch model by up to {diff.max():.3g} at T={T}, B={B} "
                    f"(allowed {atol:.3g} + {rtol:.3g} * |value|); please report this with the model's repr: {model!r}"
                )
    return worst, tuple(loose)


__all__ = ["ExportVerificationError", "OnnxExport", "build_onnx", "random_inputs", "run_torch",
           "to_onnx", "verification_tolerance", "verify_onnx"]
