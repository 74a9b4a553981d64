"""``classify``'s training steps: cross-entropy per case, optionally with input jitter."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def classify_step(model: nn.Module, batch: Any, state: Any) -> tuple[torch.Tensor, None, int]:
    """Mean cross-entropy per case; batch = (PaddedBatch, targets (B,))."""
    (x, lengths, _), y = batch
    return F.cross_entropy(model(x, lengths), y), None, len(y)


def jitter_step(std: float):
    """``classify_step`` with Gaussian noise of ``std`` added to the real steps of training batches."""
    if std == 0:
        return classify_step

    def step(model: nn.Module, batch: Any, state: Any) -> tuple[torch.Tensor, None, int]:
        (x, lengths, mask), y = batch
        if model.training:
            x = x + std * torch.randn_like(x) * mask[..., None]  # (T, B, C); padding stays zero
        return classify_step(model, ((x, lengths, mask), y), state)

    return step
