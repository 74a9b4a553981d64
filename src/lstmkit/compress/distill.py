"""Knowledge distillation: train a smaller student on a trained teacher's softened outputs.

The loss (Hinton et al. 2015), per token of a language model or per case of a classifier:

.. math::
    \\alpha\\, CE(z_S, y) + (1 - \\alpha)\\, T^2\\, KL(\\mathrm{softmax}(z_T / T) \\,\\|\\, \\mathrm{softmax}(z_S / T))

(``lstmkit.train.distillation_loss``). The student is the teacher's model with a smaller
``hidden_size`` (and optionally fewer layers); it must have fewer parameters than the teacher.
It trains with the task's data and schedule through ``lstmkit.train.fit``; the teacher runs
under ``no_grad`` on the same batches (a language model's teacher carries its own state across
chunks, as the student does). Validation uses the plain task loss, so the best student is the
one with the lowest cross-entropy. ``alpha = 1`` trains the same student without the teacher: the
control with the same budget.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lstmkit.compress.training import Step
from lstmkit.train import distillation_loss


def check_distill_args(alpha: float, temperature: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")


def check_smaller(student: nn.Module, teacher: nn.Module) -> tuple[int, int]:
    """(student, teacher) parameter counts; raises unless the student is smaller."""
    s, t = (sum(p.numel() for p in m.parameters()) for m in (student, teacher))
    if s >= t:
        raise ValueError(f"the student must be smaller than the teacher: it has {s} parameters, the teacher {t}; "
                         "choose a smaller --hidden-size")  # fmt: skip
    return s, t


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
