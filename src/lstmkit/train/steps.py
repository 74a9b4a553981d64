"""Step functions: how a task plugs its model and its batches into the training loop.

A *step function* ``step(model, batch, state) -> (loss, state, items)`` runs the model on one
batch from the data (starting from the recurrent ``state`` the loop hands it) and returns the
mean loss, the model's final state and the number of items (tokens or samples) the loss
averages over. ``fit`` and ``evaluate`` call it; ``lm_step`` is the one for
``TokenStreamBatcher`` chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

StepFn = Callable[[nn.Module, Any, Any], tuple[Tensor, Any, int]]


def lm_step(model: nn.Module, batch: tuple[Tensor, Tensor], state: Any) -> tuple[Tensor, Any, int]:
    """Language-model step for ``(x, y)`` chunks of shape (k, B): mean cross-entropy per token."""
    x, y = batch
    logits, state = model(x, state)  # (k, B, V)
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())  # (k*B, V) against (k*B,)
    return loss, state, y.numel()


__all__ = ["StepFn", "lm_step"]
