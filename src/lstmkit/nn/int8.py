"""Inference paths for compressed LSTM layers: int8 compute for quantised weights (the products
multiply 8-bit integers instead of dequantising the weights on every call), and low-rank weights
used as two thin products (:func:`factors`, at the end).

A weight is int8-capable when a ``torch.nn.utils.parametrize`` parametrization computes it and
offers ``int8_parts() -> (q, scale, zero) | None``: ``q`` (N, K) uint8, one float32 scale and one
zero point in [0, 255] per row, so that the weight is (q - zero) * scale. ``lstmkit.formats.quantized``
gives its 8-bit per-channel weights this method; any other parametrization simply lacks it. The
layer itself never imports the format (lower layers never import upper ones).

The product x (M, K) -> x W^T runs in torch's quantized backend (fbgemm on x86: the kernels of
``torch.ao``'s dynamic quantisation), which quantises x on the fly per call, to 7 bits by default
(``reduce_range``: AVX2's instruction multiplies pairs of 8-bit values into a 16-bit sum, which 8-bit
activations times 8-bit weights can overflow). So the result differs from the dequantised float
product by the activation rounding only: at most ``scale_x * sum_k |w_k|`` per output, scale_x the
step of x's 7-bit grid (tests/nn/test_int8.py checks that bound).
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from . import _cpp
from ._cpp import int8_weight, lstm_scan_int8, lstm_scan_lowrank, lstm_step_int8

__all__ = [
    "factors",
    "inference_runnable",
    "int8_matrix",
    "int8_parts",
    "int8_runnable",
    "int8_weight",
    "lstm_scan_int8",
    "lstm_scan_lowrank",
    "lstm_step_int8",
    "rebuilt_weights",
]

# Packed weights by parametrization module (not stored on the module: the C++ object does not pickle).
_PACKED: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], object]] = weakref.WeakKeyDictionary()


def int8_parts(layer: nn.Module, name: str) -> tuple[Tensor, Tensor, Tensor] | None:
    """``(q, scale, zero)`` of ``layer.<name>`` when an int8-capable parametrization computes it, else None."""
    if not parametrize.is_parametrized(layer, name):
        return None
    plist = layer.parametrizations[name]
    if len(plist) != 1 or not hasattr(plist[0], "int8_parts"):
        return None
    return plist[0].int8_parts()


def int8_matrix(layer: nn.Module, name: str):
    """The packed int8 weight of ``layer.<name>`` (see :func:`lstmkit.nn._cpp.int8_weight`), or None when
    it is not int8-capable. Packed once and reused until the integers change."""
    parts = int8_parts(layer, name)
    if parts is None:
        return None
    owner = layer.parametrizations[name][0]
    q, scale, zero = parts
    key = (q.data_ptr(), q._version, scale.data_ptr(), scale._version, zero.data_ptr(), zero._version)
    hit = _PACKED.get(owner)
    if hit is not None and hit[0] == key:
        return hit[1]
    packed = _cpp.int8_weight(q, scale, zero)
    _PACKED[owner] = (key, packed)
    return packed


def factors(layer: nn.Module, name: str) -> tuple[Tensor, Tensor] | None:
    """``(left (G, R), right (R, n))`` when a parametrization computes ``layer.<name>`` as their product
    and offers ``factors()`` (``lstmkit.formats.lowrank``), else None."""
    if not parametrize.is_parametrized(layer, name):
        return None
    plist = layer.parametrizations[name]
    if len(plist) != 1 or not hasattr(plist[0], "factors"):
        return None
    return plist[0].factors()


def int8_runnable(x: Tensor, impl: str) -> bool:
    """Whether a call may take the int8 path: inference (no autograd), CPU float32, eager, the C++
    kernel built, and ``impl`` "auto" or "cpp"."""
    return x.dtype == torch.float32 and inference_runnable(x, impl)


_REBUILT = contextvars.ContextVar("lstmkit_rebuilt_weights", default=False)


@contextlib.contextmanager
def rebuilt_weights() -> Iterator[None]:
    """Within this block compressed layers multiply by their rebuilt float matrices (no int8 products,
    no factor products): the numbers a float export of the same model computes, which its verification
    compares with."""
    token = _REBUILT.set(True)
    try:
        yield
    finally:
        _REBUILT.reset(token)


def inference_runnable(x: Tensor, impl: str) -> bool:
    """Whether a call may take an inference-only C++ path (int8, low rank): no autograd, CPU float32
    or float64, eager, no torch.func transform, the C++ kernel built, ``impl`` "auto" or "cpp", and not inside
    :func:`rebuilt_weights`."""
    if torch.compiler.is_compiling():  # compiled and exported graphs hold the float path only
        return False
    return (
        not _REBUILT.get()
        and impl in ("auto", "cpp")
        and not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and not _cpp.tracing(x)
        and not _cpp.transformed()
        and _cpp.available()
    )
