"""Knowledge distillation: train a smaller student on a trained teacher's softened outputs.

The loss (Hinton et al. 2015), per token of a language model or per case of a classifier:

.. math::
    \\alpha\\, CE(z_S, y) + (1 - \\alpha)\\, T^2\\, KL(\\mathrm{softmax}(z_T / T) \\,\\|\\, \\mathrm{softmax}(z_S / T))

(``lstmkit.train.distillation_loss``). The student is the teacher's model with a smaller
``hidden_size`` (and optionally fewer layers); it must have fewer parameters than the teacher.
The steps are ``lstmkit.train.distill``'s, chosen by the task (``Task.distill_step``). The
student trains with the task's data and schedule through ``lstmkit.train.fit``; the teacher runs
under ``no_grad`` on the same batches (a language model's teacher carries its own state across
chunks, as the student does). Validation uses the plain task loss, so the best student is the
one with the lowest cross-entropy. ``alpha = 1`` trains the same student without the teacher: the
control with the same budget.
"""

from __future__ import annotations

from torch import nn

# The steps live with training (tasks choose theirs through ``Task.distill_step``); re-exported here.
from lstmkit.train.distill import check_distill_args, classify_distill_step, lm_distill_step


def check_smaller(student: nn.Module, teacher: nn.Module) -> tuple[int, int]:
    """(student, teacher) parameter counts; raises unless the student is smaller."""
    s, t = (sum(p.numel() for p in m.parameters()) for m in (student, teacher))
    if s >= t:
        raise ValueError(f"the student must be smaller than the teacher: it has {s} parameters, the teacher {t}; "
                         "choose a smaller --hidden-size")  # fmt: skip
    return s, t


__all__ = ["check_distill_args", "check_smaller", "classify_distill_step", "lm_distill_step"]
