"""``Linear``: a drop-in ``torch.nn.Linear`` whose product runs on lstmkit's panels where MKL is the slower.

MKL picks its kernels by CPU vendor, and on AMD's AVX-512 CPUs its sgemm runs at about half the speed of the
C++ extension's brgemm panels (docs/benchmarks.md). The LSTM layers already put their whole-sequence products
there; a model's output head over every step (a language model's softmax layer: T B rows times a 10,000-word
vocabulary) is the other large product of a training step. ``linear(x, w, b)`` is ``F.linear`` on those panels
(the product and both gradients) for float32 CPU tensors of at least ``PANEL_MIN_ROWS`` rows on such CPUs in eager
mode without autocast, and ``F.linear`` itself everywhere else (other CPUs, devices, dtypes, fewer rows, tracers,
``torch.func``); the values are ``F.linear``'s up to float32 rounding (another summation order), and gradients
made with ``create_graph=True`` are differentiable again.

``Linear`` has ``torch.nn.Linear``'s arguments, parameters, initialisation, state dict and repr, and is one
(``isinstance(m, torch.nn.Linear)``), so either loads the other's weights and code that looks for linear layers
finds it.
"""

from __future__ import annotations

from torch import Tensor, nn

from ._base import NotScriptable
from ._cpp import PANEL_MIN_ROWS, whole_linear

__all__ = ["PANEL_MIN_ROWS", "Linear", "linear"]


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """``F.linear(x, w, b)``: x (..., I), w (O, I), b (O,) or None -> (..., O), on the panels where they are the
    faster (see the module)."""
    return whole_linear(x, w, b)


class Linear(NotScriptable, nn.Linear):
    """Drop-in ``torch.nn.Linear`` (see the module): ``Linear(in_features, out_features, bias=True, device=None,
    dtype=None)``, input (..., in_features) -> (..., out_features)."""

    def forward(self, input: Tensor) -> Tensor:
        return linear(input, self.weight, self.bias)
