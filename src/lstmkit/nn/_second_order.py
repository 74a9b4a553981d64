"""Backwards that cannot be differentiated again say so, by name, when someone tries.

torch's ``once_differentiable`` raises a generic message, and only when a gradient flowing into the backward
requires grad: a backward run with ``create_graph=True`` whose incoming gradients do not (the layer's output
summed, say) returns plain tensors, and its second derivatives through the saved inputs are then silently
treated as zero. ``refuse_second_order(message)`` runs the backward without grad like ``once_differentiable``,
but whenever grad mode is on (``create_graph=True``) its gradients carry a node whose backward raises
``RuntimeError(message)``: using them is fine, differentiating them stops with what to do instead.
(The 1-D LSTM's fused kernels do differentiate again: ``_fused.second_order_grads``.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor


class _Refusal(torch.autograd.Function):
    """Identity on tensors; its backward raises the message it was given."""

    @staticmethod
    def forward(ctx, message: str, *tensors: Tensor | None):
        ctx.message = message
        return tuple(None if t is None else t.view_as(t) for t in tensors)

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError(ctx.message)


def refuse_second_order(message: str) -> Callable:
    """Decorate an ``autograd.Function.backward`` (a static method taking ``ctx``) as described above."""

    def decorate(backward: Callable) -> Callable:
        @functools.wraps(backward)
        def wrapper(ctx, *grad_outputs):
            with torch.no_grad():
                grads = backward(ctx, *grad_outputs)
            if not torch.is_grad_enabled():
                return grads
            single = not isinstance(grads, tuple)
            grads = (grads,) if single else grads
            tensors = [g if isinstance(g, Tensor) else None for g in grads]
            marked = _Refusal.apply(message, *(None if t is None else t.detach().requires_grad_() for t in tensors))
            out = tuple(m if isinstance(g, Tensor) else g for g, m in zip(grads, marked, strict=True))
            return out[0] if single else out

        return wrapper

    return decorate
