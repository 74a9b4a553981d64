"""Knowledge-distillation steps (Hinton et al. 2015): a student trained on a teacher's softened outputs.

Each returns a ``fit`` step: in training, the student's loss is ``distillation_loss`` of its logits
against the teacher's (run under ``no_grad`` on the same batch) and the labels; in evaluation it is
the task's own step ``base``, so validation picks the student with the lowest task loss. Tasks
choose the one that fits their batches through ``Task.distill_step``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from lstmkit.train.losses import distillation_loss

Step = Callable[[nn.Module, Any, Any], tuple[Tensor, Any, int]]


def check_distill_args(alpha: float, temperature: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")


def lm_distill_step(teacher: nn.Module, base: Step, *, alpha: float, temperature: float) -> Step:
    """A step for ``TokenStreamBatcher`` chunks (x, y) (k, B). In training the carried state is the
    pair (student state, teacher state); in evaluation it is ``base`` (the plain cross-entropy)."""
    check_distill_args(alpha, temperature)

    def step(model: nn.Module, batch: Any, state: Any) -> tuple[torch.Tensor, Any, int]:
        if not model.training:
            return base(model, batch, state)
        x, y = batch
        s_state, t_state = state if state is not None else (None, None)
        with torch.no_grad():
            t_logits, t_state = teacher(x, t_state)  # (k, B, V)
        logits, s_state = model(x, s_state)
        loss = distillation_loss(logits, t_logits, y, alpha=alpha, temperature=temperature)
        return loss, (s_state, t_state), y.numel()

    return step


def classify_distill_step(teacher: nn.Module, base: Step, *, alpha: float, temperature: float,
                          jitter: float = 0.0) -> Step:  # fmt: skip
    """A step for classification batches ((x, lengths, mask), y): the student and the teacher see
    the same (jittered) cases in training; evaluation is ``base``."""
    check_distill_args(alpha, temperature)

    def step(model: nn.Module, batch: Any, state: Any) -> tuple[torch.Tensor, None, int]:
        if not model.training:
            return base(model, batch, state)
        (x, lengths, mask), y = batch
        if jitter:
            x = x + jitter * torch.randn_like(x) * mask[..., None]  # (T, B, C); padding stays zero
        with torch.no_grad():
            t_logits = teacher(x, lengths)  # (B, K)
        loss = distillation_loss(model(x, lengths), t_logits, y, alpha=alpha, temperature=temperature)
        return loss, None, len(y)

    return step
