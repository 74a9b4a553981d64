"""``forecast``'s training step: MSE of the scaled forecasts."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def forecast_step(
    model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], state: Any
) -> tuple[torch.Tensor, None, int]:
    """MSE of the scaled forecasts; batch = x (B, W, F), y (B, H, 1)."""
    x, y = batch
    pred = model(x.transpose(0, 1))  # (W, B, F) -> (B, H)
    return F.mse_loss(pred, y[..., 0]), None, x.shape[0]
