"""``moving-digits``' training step: the per-pixel loss of the predicted frames."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lstmkit.models import frame_loss

Step = Callable[[nn.Module, torch.Tensor, Any], tuple[torch.Tensor, None, int]]


def frames_step(input_frames: int, loss: str) -> Step:
    """A step reading ``input_frames`` frames of a batch (T, B, 1, H, W) and scoring the rest."""

    def step(model: nn.Module, batch: torch.Tensor, state: Any) -> tuple[torch.Tensor, None, int]:
        logits = model(batch[:input_frames])  # (T_out, B, 1, H, W)
        return frame_loss(logits, batch[input_frames:], loss), None, batch.shape[1]

    return step
