"""What the recurrent layers do under ``torch.onnx.export``.

- The TorchScript exporter (``dynamo=False``): a layer torch's own operator computes (``LSTM`` without
  peepholes, coupling, LayerNorm, projection or training-time recurrent dropout; ``GRU``; ``RNN``; no
  ``lengths``, no ``PackedSequence``) runs through that operator while the exporter traces it
  (``torch._VF.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu``, called as ``torch.nn.LSTM`` calls them), so the
  file holds the ONNX ``LSTM`` / ``GRU`` / ``RNN`` operator with symbolic time and batch axes: the graph of the
  same ``torch.nn`` layer. Any other layer is refused by name.
- The dynamo exporter (the default): refused for every layer. In torch 2.13 it keeps the example's length or
  batch size in recurrent layers, ``torch.nn``'s own included (measured: ``nn.LSTM``'s file fails at another
  length, ``nn.RNN``'s is unrolled for the example's, a projected bidirectional ``nn.LSTM``'s does not load in
  onnxruntime), and lstmkit's own time loops would be recorded for the example's length only (the C++ scan is one
  custom operator it cannot translate).

A refusal is a ``RuntimeError`` that names :func:`lstmkit.export.to_onnx`, which writes every variant.

``torch.jit.trace`` of a ``GRU`` or ``RNN`` (whose time loop is Python, always) records torch's operator the same
way, so the trace runs at any length; what the operator cannot compute is refused. (An ``LSTM`` traces its C++
kernel as one operator, and refuses its Python loops: ``lstm.refuse_untraceable``.)
"""

from __future__ import annotations

import sys

import torch

# torch.nn's parameter names of one layer and direction, in the order its flat weight list has them.
NATIVE_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")

TORCHSCRIPT, DYNAMO, JIT_TRACE = 1, 2, 3  # which tracer records the layer (0: none)


def onnx_exporter() -> int:
    """``TORCHSCRIPT`` (``dynamo=False``), ``DYNAMO`` (the default), or 0 when torch.onnx.export is not
    running. Not ``torch.onnx.is_in_onnx_export()``: torch.compile folds that to False, and the dynamo exporter
    traces through torch.compile's tracer."""
    if torch.compiler.is_compiling() and not torch.compiler.is_exporting():
        return 0  # torch.compile, not an export
    if "torch.onnx" not in sys.modules:  # never imported: not exporting (and no import cost here)
        return 0
    return _onnx_exporter()


@torch.compiler.assume_constant_result
def _onnx_exporter() -> int:
    """torch.onnx's own flags. Dynamo refuses to trace into them (a graph break, seen under torch.compile
    on CUDA with torch 2.11), so a tracer calls this once and keeps the answer as a constant."""
    from torch.onnx._internal.exporter import _flags
    from torch.onnx._internal.torchscript_exporter._globals import GLOBALS

    return TORCHSCRIPT if GLOBALS.in_onnx_export else DYNAMO if _flags._is_onnx_exporting else 0


def export_error(layer: str, reason: str) -> str:
    """The refusal of torch.onnx.export; ``reason`` says what stops it (a phrase after "it")."""
    return (
        f"torch.onnx.export cannot write this lstmkit.{layer} correctly: it {reason}. Export with "
        "lstmkit.export.to_onnx(model, path) instead: it writes the ONNX LSTM, GRU or RNN operator (a Scan for "
        "LayerNorm, projection or zoneout) with symbolic time and batch, lengths included, and checks the file in "
        "onnxruntime; it takes an lstmkit LSTM, GRU or RNN, or an lstmkit.models.SequenceModel (embedding, "
        "recurrent core, head). See docs/deployment.md."
    )


def trace_error(layer: str, reason: str) -> str:
    """The refusal of torch.jit.trace for a GRU or RNN; ``reason`` as for :func:`export_error`."""
    return (
        f"torch.jit.trace cannot record this lstmkit.{layer} correctly: it {reason}, and its Python time loop would be "
        "recorded for the example's length only. Use torch.compile instead (it compiles the loop for each length), "
        "or trace the layer without them."
    )


# Why the default exporter is refused for every layer (a reason for export_error).
DYNAMO_REASON = (
    "is being traced by the dynamo exporter (dynamo=True, the default), which in torch 2.13 keeps the example's "
    "length or batch size in recurrent layers (torch.nn's own LSTM, GRU and RNN included: their files fail or "
    "are unrolled at another length), and lstmkit's own time loop would be recorded for the example's length "
    "only; torch.onnx.export(..., dynamo=False) writes a layer without variants through torch's own operator"
)
