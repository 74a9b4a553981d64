"""Pieces for layers that write their own backpropagation through time around a plain LSTM cell.

The ConvLSTM's hand-written layer (``_convlstm_bptt``) and the windowed first layer of Graves's handwriting network
(``lstmkit.models._window_bptt``) write their own time loops around a plain LSTM cell, with products of their own
(convolutions; a product that also reads an attention window), and share the rest: the gate math of a step each way
(the window layer's C++ loops call the same gate kernels directly, its tensor-operation loops these functions), the
weight gradients after the loop, and the refusal to be differentiated twice.

``gates_forward(a, c_prev, act, c_new, tc, h)``: from the pre-activations a (B, 4 H, ...) (the gate blocks i, f, g, o
along dim 1, each H wide: H hidden units, or hidden channels times a frame) and c_{t-1} (B, H, ...), writes the
activated gates ``act`` (B, 4 H, ...), c_t, tanh(c_t) and h_t::

    i, f, o = sigmoid(a_i, a_f, a_o)    g = tanh(a_g)    c_t = f c_{t-1} + i g    h_t = o tanh(c_t)

``gates_backward(act, tc, c_prev, dh, dc, da)``: with dh and dc the gradients arriving at h_t and c_t, writes the
pre-activation gradients into ``da`` and returns dL/dc_{t-1} (over ``dc``'s storage when the C++ pass ran)::

    do = dh tc                       da_o = do o (1 - o)
    dc = dc + dh o (1 - tc^2)        da_i = dc g i (1 - i),   da_f = dc c_{t-1} f (1 - f)
    dc_{t-1} = dc f                  da_g = dc i (1 - g^2)

On the CPU in float32/float64 (where the extension builds, and not under a tracer) each is one pass of the 1-D
layer's C++ gate kernels (``lstm_scan.cpp``'s ``convlstm_pointwise_*``, per batch row the 1-D layer's gate blocks);
``kernels=False`` (and every other device or dtype) runs tensor operations, one kernel per gate, the twin the tests
hold equal. Every tensor is contiguous but ``dh``, whose rows may be a slice of a wider buffer (rows apart).

``hand_written(x)``: whether such a layer may run its ``autograd.Function`` on ``x`` at all: not under a
``torch.func`` transform (the Functions have no functorch rules) and not traced (torch.compile, torch.export,
torch.jit.trace, fake tensors), where the caller runs its reference loop of plain torch operations instead.
``autocast_off(x)`` turns torch.autocast off around the recurrence, which runs in the parameters' dtype.

``weight_gradient(d, x)``: d^T x, a weight gradient over every step and sequence after a loop, on the C++
extension's panels where MKL's sgemm is the slower (AMD's AVX-512 CPUs), else ``torch.mm``.
``extension()``: the built C++ extension, for layers whose whole time loops are written there (where
``gate_kernels`` says it runs): the handwriting window's ``window_forward`` and ``window_backward``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _cpp
from ._base import autocast_off
from ._cpp import weight_gradient
from ._second_order import refuse_second_order

__all__ = [
    "autocast_off",
    "extension",
    "gate_kernels",
    "gates_backward",
    "gates_forward",
    "hand_written",
    "refuse_second_order",
    "weight_gradient",
]

# d sigmoid / d a and d tanh / d a from the activation's output, written into grad_input: one kernel each.
_sigmoid_grad = torch.ops.aten.sigmoid_backward.grad_input  # grad * y (1 - y)
_tanh_grad = torch.ops.aten.tanh_backward.grad_input  # grad * (1 - y^2)


def hand_written(x: Tensor) -> bool:
    """Whether a hand-written layer's ``autograd.Function`` may run on ``x`` (see the module)."""
    return not (_cpp.transformed() or _cpp.tracing(x))


def extension():
    """The C++ extension's module (built on first use; see ``gate_kernels`` for where it may run)."""
    return _cpp._ext()


def gate_kernels(x: Tensor) -> bool:
    """Whether the gate math of ``x``'s layer can run in the C++ extension's one-pass kernels: CPU float32/float64
    where it builds, not under a tracer (torch.compile, export, fake tensors: the kernels read tensor data)."""
    return (x.device.type == "cpu" and x.dtype in _cpp.SUPPORTED_DTYPES and not _cpp.tracing(x)
            and _cpp.available())  # fmt: skip


def gates_forward(a: Tensor, c_prev: Tensor, act: Tensor, c_new: Tensor, tc: Tensor, h: Tensor, *,
                  kernels: bool) -> None:  # fmt: skip
    """The gates, c_t, tanh(c_t) and h_t of one step into ``act``, ``c_new``, ``tc`` and ``h`` (see the module)."""
    if kernels:
        _cpp._ext().convlstm_pointwise_forward(a, c_prev, act, c_new, tc, h)
        return
    H = c_prev.shape[1]
    torch.sigmoid(a[:, : 2 * H], out=act[:, : 2 * H])  # i, f
    torch.tanh(a[:, 2 * H : 3 * H], out=act[:, 2 * H : 3 * H])  # g
    torch.sigmoid(a[:, 3 * H :], out=act[:, 3 * H :])  # o
    i, f, g, o = act.split(H, dim=1)  # each (B, H, ...)
    torch.mul(f, c_prev, out=c_new)
    c_new.addcmul_(i, g)  # c_t = f c_{t-1} + i g
    torch.mul(o, torch.tanh(c_new, out=tc), out=h)  # h_t


def gates_backward(act: Tensor, tc: Tensor, c_prev: Tensor, dh: Tensor, dc: Tensor, da: Tensor, *,
                   kernels: bool) -> Tensor:  # fmt: skip
    """da for one step, and dL/dc_{t-1} returned (see the module); ``dc`` is overwritten either way."""
    if kernels:  # da and dc_{t-1} (over dc) in one C++ pass
        _cpp._ext().convlstm_pointwise_backward(act, tc, c_prev, dh, dc, da)
        return dc
    H = c_prev.shape[1]
    i, f, g, o = act.split(H, dim=1)
    a_i, a_f, a_g, a_o = da.split(H, dim=1)  # written in place: one kernel each, no copies
    _sigmoid_grad(dh * tc, o, grad_input=a_o)  # da_o = dh tc o (1 - o)
    dho = dh * o
    dc.add_(_tanh_grad(dho, tc, grad_input=dho))  # dc += dh o (1 - tc^2)
    _tanh_grad(dc * i, g, grad_input=a_g)  # da_g = dc i (1 - g^2)
    _sigmoid_grad(dc * c_prev, f, grad_input=a_f)  # da_f = dc c_{t-1} f (1 - f)
    _sigmoid_grad(dc * g, i, grad_input=a_i)  # da_i = dc g i (1 - i)
    return dc * f

