"""int8 ONNX files: onnxruntime's dynamic quantisation of the float file ``to_onnx`` writes, verified.

``onnxruntime.quantization.quantize_dynamic`` rewrites the float graph: the ``LSTM`` operator
becomes ``DynamicQuantizeLSTM`` (int8 W and R, symmetric, one scale per gate row with
``per_channel``; the input and h quantised to uint8 on the fly), ``MatMul`` by a constant
becomes ``DynamicQuantizeLinear`` + ``MatMulInteger`` (heads, and the input projection of the
``Scan`` path), and an embedding ``Gather`` reads int8 rows (one scale). What it cannot quantise
stays float: the recurrent ``MatMul`` inside a ``Scan`` body (LayerNorm, projection), and the
``GRU`` and ``RNN`` operators (onnxruntime has no int8 kernels for them); :class:`Int8Export` names them.

**7-bit weights by default** (``reduce_range=True``: int8 values in [-64, 64], step max|w| / 64).
On CPUs without AVX-512 VNNI / AVX-VNNI, onnxruntime's u8 x s8 kernels (``vpmaddubsw``) add pairs
of products in int16, which saturates with full-range weights: on the AVX2 machine these docs were
measured on, a one-layer LSTM(8, 16) with full-range weights was off by 0.39 in c after one step,
beyond the bound below, and by 0.006 with 7-bit weights. onnxruntime's documentation recommends
``reduce_range`` for such machines; ``reduce_range=False`` (``--full-range``) keeps 8 bits for
VNNI machines (the bound then uses max|w| / 127).

**Verification.** The int8 file is run in onnxruntime against the float lstmkit model at one step
(T = 1) from random states and inputs, and every output must lie within :func:`int8_tolerance`,
a first-order bound derived from the int8 step sizes and the sizes (see docs/deployment.md):

- a weight row r with int8 step Delta_r = max_k |W_rk| / 64 (per channel; max |W| / 64 per
  tensor; 127 in place of 64 at full range) is off by at most Delta_r / 2 per entry, and an
  activation vector quantised to uint8 over its range [min(x, 0), max(x, 0)] has step
  Delta_x <= 2 max|x| / 255, so off by Delta_x / 2;
- a gate sum_k W_rk x_k then changes by sum_k (e_rk x_k + W_rk d_k + e_rk d_k); the roundings
  are independent, mean-zero and bounded, so by Hoeffding's inequality each sum is within
  lambda (Delta_r / 2) ||x||_2, lambda (Delta_x / 2) ||W_r||_2 and lambda (Delta_r Delta_x / 4) sqrt(n)
  except with probability 2 exp(-lambda^2 / 2) (lambda = 6, as ``lstmkit._rounding``);
  ||x||_2 <= sqrt(n) max|x|; the recurrent product likewise with n = P, Delta_R and h;
- the cell turns a gate error da into |dc| <= (|c_0| / 4 + 5/4) da and |dh| <= da / 4 + |dc|
  (sigmoid' <= 1/4, tanh' <= 1, gates at most 1); a layer's output error enters the next layer's
  gates through ||W_ih||_inf; a head (W h + b, quantised alike) multiplies it by ||W||_inf and
  adds its own two terms; log-softmax or softmax outputs at most double it;
- the float rounding bound of the float export (``verification_tolerance``) is added.

At one step the bound is tight enough to catch a wrong file (a gate block in the wrong place
changes outputs by O(1)); over T steps it would grow like T (the weights' errors are the same at
every step) and say little, so longer sequences are checked by the float file's verification
(the quantiser changes the weights and the products, not the loop) and by the task metric
(docs/deployment.md reports both). The largest difference seen and its share of the bound are
returned.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lstmkit import _rounding
from lstmkit._fileio import atomic_path
from lstmkit.export import _deps, task_models
from lstmkit.export.onnx_model import (
    ExportVerificationError,
    OnnxExport,
    _core_inputs,
    _core_of,
    random_inputs,
    run_torch,
    to_onnx,
    verification_tolerance,
)
from lstmkit.nn import LSTM

OPS = ("LSTM", "MatMul", "Gather")  # the operators handed to quantize_dynamic
INT8_VERIFY_SHAPES = ((1, 3), (1, 2), (1, 1))  # (T, B): one step, several batch sizes and random states
LAMBDA = _rounding.LAMBDA
# Export kinds whose int8 file is written and verified; the others are refused with the reason.
UNSUPPORTED = {
    "forecaster": "the int8 check does not bound a forecaster's graph yet (its fixed AR skip, when it has one, is "
                  "a MatMul that quantize_dynamic would quantise too); export it in float",
    "seq2seq": "it exports as two graphs (encoder, decoder step) for your own search loop, and the int8 "
               "check covers single graphs; export it in float",
    "frames": "its ConvLSTM graph is unrolled Conv nodes, which the int8 check does not cover; export it in float",
    "lstm-fcn": "its conv branch holds most of the weights and stays float (quantize_dynamic leaves Conv alone), so "
                "the int8 file would be no smaller, and its LSTM reads the channels as steps, which the one-step int8 "
                "check does not cover; export it in float",
    "classifier-ensemble": "the int8 check bounds one classifier's graph, not an average of several; export it in "
                           "float, or a member's run with --int8",
    "forecaster-ensemble": "the int8 check does not bound a forecaster's graph yet; export it in float",
    "handwriting": "the int8 check bounds LSTM stacks and linear heads, not the attention window and the mixture "
                   "density output; export it in float",
    "memory": "the int8 check bounds LSTM stacks and linear heads, not the NTM's addressing and memory; export it "
              "in float",
    "attention-lm": "the int8 check bounds LSTM stacks and linear heads, not the attention block between them "
                    "(its scores, softmax and LayerNorms); export it in float, or quantise it for PyTorch with "
                    "lstmkit compress quantize",
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Int8Export:
    """What ``to_int8_onnx`` wrote: the int8 file beside the verified float one."""

    path: Path
    float_export: OnnxExport
    float_bytes: int
    int8_bytes: int
    quantized_ops: dict[str, int]  # operator type in the int8 graph -> count (DynamicQuantizeLSTM, MatMulInteger, ...)
    float_layers: tuple[str, ...]  # recurrent layers (or parts) that stay float, with the reason
    max_abs_error: float | None  # largest |int8 - float lstmkit| seen by the verification
    bound_share: float | None  # the largest difference over its bound (below 1 when verified)

    def describe(self) -> list[str]:
        lines = [*self.float_export.describe(),
                 f"wrote {self.path} (int8, onnxruntime quantize_dynamic): {self.int8_bytes} bytes, "
                 f"{self.float_bytes / self.int8_bytes:.2f}x smaller than the float file's {self.float_bytes}",
                 "int8 operators: " + (", ".join(f"{k} x{v}" for k, v in self.quantized_ops.items()) or "none")]
        lines += [f"stays float: {f}" for f in self.float_layers]
        if self.max_abs_error is not None:
            lines.append(f"int8 file verified in onnxruntime against the float model at one step: largest "
                         f"difference {self.max_abs_error:.3g}, {self.bound_share:.2g} of the derived bound")
        else:
            lines.append("int8 file not verified (verify=False)")
        return lines


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """quantize_dynamic logs a suggestion to pre-process the model through the root logger on every call."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def check_supported(model: nn.Module) -> None:
    """Raise ``ValueError`` saying why for a model whose int8 file is not written (see ``UNSUPPORTED``)."""
    kind = task_models.export_kind(model)
    if kind in UNSUPPORTED:
        raise ValueError(f"--int8 does not cover this model ({type(model).__name__}): {UNSUPPORTED[kind]}")
    if getattr(_core_of(model), "layer_norm", False):
        raise ValueError("--int8 does not cover LayerNorm LSTMs: LayerNorm divides W_ih x by its own spread, "
                         "so int8 errors grow by gain / std of each row, which no bound from the int8 steps "
                         "limits, and the recurrent product (inside a Scan) would stay float anyway; export "
                         "it in float")  # fmt: skip


def float_layers(kinds: tuple[str, ...]) -> tuple[str, ...]:
    """What stays float in the int8 file, from the ONNX operator each recurrent layer became."""
    out = []
    for i, k in enumerate(kinds):
        if k in ("GRU", "RNN"):
            out.append(f"layer {i} ({k} operator): onnxruntime has no int8 {k} kernel, so its weights stay float32")
        elif k == "Scan":
            out.append(f"layer {i} (Scan, for LayerNorm, projection or zoneout): its recurrent MatMul inside the Scan "
                       "body stays float32 (quantize_dynamic does not enter subgraphs); W_ih x is int8")
    return tuple(out)


def quantize_onnx(float_path: str | os.PathLike[str], path: str | os.PathLike[str], *, per_channel: bool = True,
                  reduce_range: bool = True, metadata: Mapping[str, str] | None = None) -> dict[str, int]:
    """Write the int8 version of the ONNX file ``float_path`` to ``path`` (atomically) with
    ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, ``OPS``; ``reduce_range``: 7-bit
    weight values in [-64, 64], see the module docstring), keeping its metadata and adding
    ``metadata``. Returns the int8 operators' counts."""
    onnx = _deps.onnx()
    _deps.require("onnxruntime", "int8 export (onnxruntime.quantization)")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic_path(path) as tmp, _quiet_quantizer():
        quantize_dynamic(str(float_path), str(tmp), op_types_to_quantize=list(OPS), per_channel=per_channel,
                         reduce_range=reduce_range, weight_type=QuantType.QInt8)  # fmt: skip
        proto = onnx.load(str(tmp))
        props = {p.key: p.value for p in onnx.load(str(float_path)).metadata_props}
        scales = ("per channel" if per_channel else "per tensor") + (", 7-bit range" if reduce_range else "")
        props.update({"lstmkit.int8": f"onnxruntime.quantization.quantize_dynamic, QInt8 weights, {scales}"},
                     **(metadata or {}))
        onnx.helper.set_model_props(proto, props)
        tmp.write_bytes(proto.SerializeToString())
    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        if node.op_type in ("DynamicQuantizeLSTM", "MatMulInteger", "DequantizeLinear", "ConvInteger"):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _step(w: Tensor, per_channel: bool, levels: int) -> Tensor:
    """Delta per row of a weight (rows, n): max |w_r| / levels per channel, max |w| / levels per tensor
    (levels = 127, or 64 with ``reduce_range``: onnxruntime's symmetric int8 steps)."""
    a = w.detach().double().abs()
    return a.amax(1) / levels if per_channel else a.max().expand(a.shape[0]) / levels


def _product_error(w: Tensor, step: Tensor, n: int, x_max: float, act_step: float) -> Tensor:
    """Per row: the change of sum_k w_rk x_k when w is int8 (step per row) and x uint8 (act_step), see above."""
    w = w.detach().double()
    return LAMBDA * (step / 2 * math.sqrt(n) * x_max + act_step / 2 * w.norm(dim=1)
                     + step * act_step / 4 * math.sqrt(n))  # fmt: skip


def int8_tolerance(model: nn.Module, inputs: Mapping[str, Tensor], kinds: tuple[str, ...], *,
                   per_channel: bool = True, reduce_range: bool = True) -> float:
    """A bound on |int8 onnxruntime - float lstmkit| at graph inputs ``inputs`` of ONE step (T = 1):
    see the module docstring. ``kinds``: the ONNX operator of each recurrent layer (what is int8)."""
    core = _core_of(model)
    T, x_max, h0_max, c0_max = _core_inputs(model, inputs)
    if T != 1:
        raise ValueError(f"int8_tolerance bounds one step (T = 1), got T = {T}")
    levels = 64 if reduce_range else 127
    emb = getattr(model, "embedding", None)
    dx = 0.0  # the error the layer's input already carries
    if isinstance(emb, nn.Embedding):  # int8 rows, one step per tensor: independent roundings of Delta / 2
        dx = float(emb.weight.detach().abs().max()) / levels / 2
    x_scale = x_max
    for layer in range(core.num_layers):
        kind = kinds[layer] if layer < len(kinds) else "LSTM"
        worst, out_max = 0.0, 1.0
        for suffix in ("", "_reverse")[: core.num_directions]:
            w_ih = getattr(core, f"weight_ih_l{layer}{suffix}")
            w_hh = getattr(core, f"weight_hh_l{layer}{suffix}")
            n_in, P = w_ih.shape[1], w_hh.shape[1]
            da = torch.zeros(w_ih.shape[0], dtype=torch.float64)
            if kind in ("LSTM", "Scan"):
                da += _product_error(w_ih, _step(w_ih, per_channel, levels), n_in, x_scale, 2 * x_scale / 255)
            if kind == "LSTM":
                da += _product_error(w_hh, _step(w_hh, per_channel, levels), P, h0_max, 2 * h0_max / 255)
            # The input's own error: independent roundings (embedding rows) through ||W_r||_2, else the worst case.
            rows = w_ih.detach().double()
            da += LAMBDA * dx * rows.norm(dim=1) if layer == 0 else dx * rows.abs().sum(1)
            a = float(da.max())
            dc = (c0_max / 4 + 1.25) * a if isinstance(core, LSTM) else 1.25 * a  # GRU/RNN: h' from tanh/sigmoid
            w_hr = getattr(core, f"weight_hr_l{layer}{suffix}", None)  # float projection h = W_hr m
            gain = float(w_hr.detach().abs().sum(1).max()) if w_hr is not None else 1.0
            worst, out_max = max(worst, gain * (a / 4 + dc)), max(out_max, gain)
        dx, x_scale = worst, out_max  # the next layer reads h: |h| <= 1, or ||W_hr||_inf with a projection
    core_ids = {id(m) for m in core.modules()}
    err = dx
    for m in model.modules():  # heads: h -> W h + b, MatMul quantised like the rest
        if isinstance(m, nn.Linear) and id(m) not in core_ids:
            w = m.weight.detach().double()
            quantized = _product_error(w, _step(w, per_channel, levels), w.shape[1], 1.0, 2 / 255)
            err = 2 * (float(w.abs().sum(1).max()) * err + float(quantized.max()))
    return err + verification_tolerance(model, inputs)[0]


def verify_int8(model: nn.Module, path: str | os.PathLike[str], kinds: tuple[str, ...], *, per_channel: bool = True,
                reduce_range: bool = True,
                shapes: tuple[tuple[int, int], ...] = INT8_VERIFY_SHAPES) -> tuple[float, float]:
    """Run the int8 file ``path`` in onnxruntime against the float ``model`` at each (T = 1, B) of
    ``shapes``; returns (largest difference, largest difference / bound). Raises
    :class:`ExportVerificationError` when an output differs by more than :func:`int8_tolerance`."""
    ort = _deps.onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    worst, share = 0.0, 0.0
    for seed, (T, B) in enumerate(shapes):
        inputs = random_inputs(model, T, B, lengths=False, seed=seed)
        if "lengths" in inputs:
            inputs["lengths"] = torch.full_like(inputs["lengths"], T)
        want = run_torch(model, inputs)
        feed = {i.name: inputs[i.name].numpy() for i in session.get_inputs()}
        got = session.run(list(want), feed)
        bound = int8_tolerance(model, inputs, kinds, per_channel=per_channel, reduce_range=reduce_range)
        for (name, ref), out in zip(want.items(), got, strict=True):
            diff = float(np.abs(out.astype(np.float64) - ref.numpy()).max(initial=0.0))
            worst, share = max(worst, diff), max(share, diff / bound)
            if diff > bound:
                raise ExportVerificationError(
                    f"{path}: int8 output {name!r} differs from the float model by {diff:.3g} at T={T}, B={B}, "
                    f"more than the bound {bound:.3g} the int8 steps allow; please report this with the model's "
                    f"repr: {model!r}"
                )
    return worst, share


def to_int8_onnx(model: nn.Module, path: str | os.PathLike[str], *, float_path: str | os.PathLike[str],
                 per_channel: bool = True, reduce_range: bool = True, verify: bool = True,
                 metadata: Mapping[str, str] | None = None) -> Int8Export:
    """Write ``model`` as a float ONNX file (``to_onnx``, verified) at ``float_path`` and its int8
    version at ``path``, verified against the float model (see the module docstring)."""
    check_supported(model)
    if Path(path).resolve() == Path(float_path).resolve():
        raise ValueError(f"the int8 file must differ from the float file, got {path} for both")
    float_export = to_onnx(model, float_path, verify=verify, metadata=metadata)
    counts = quantize_onnx(float_path, path, per_channel=per_channel, reduce_range=reduce_range)
    err = share = None
    if verify:
        err, share = verify_int8(model, path, float_export.layers, per_channel=per_channel, reduce_range=reduce_range)
    return Int8Export(path=Path(path), float_export=float_export, float_bytes=Path(float_path).stat().st_size,
                      int8_bytes=Path(path).stat().st_size, quantized_ops=counts,
                      float_layers=float_layers(float_export.layers), max_abs_error=err, bound_share=share)  # fmt: skip


__all__ = ["INT8_VERIFY_SHAPES", "OPS", "Int8Export", "check_supported", "int8_tolerance", "quantize_onnx",
           "to_int8_onnx", "verify_int8"]  # fmt: skip
