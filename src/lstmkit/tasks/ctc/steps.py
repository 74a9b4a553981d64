"""The CTC tasks' training step: CTC loss in nats per label."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lstmkit.train import ctc_loss

BLANK = 0


def ctc_step(model: nn.Module, batch: Any, state: Any) -> tuple[torch.Tensor, None, int]:
    """CTC loss in nats per label; batch = (PaddedBatch, targets (sum S_i,), target lengths (B,))."""
    (x, lengths, _), targets, target_lengths = batch
    log_probs = model(x, lengths)  # (T, B, C)
    labels = int(target_lengths.sum())
    # lstmkit's ctc_loss checks every input is long enough for its label before torch's would return inf.
    loss = ctc_loss(log_probs, targets, lengths, target_lengths, blank=BLANK, reduction="sum")
    return loss / labels, None, labels
