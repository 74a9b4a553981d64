"""Losses for padded sequence batches: masked cross-entropy and MSE, CTC, distillation."""

from __future__ import annotations

import itertools
from typing import Literal

import torch
import torch.nn.functional as F


def _check_mask(mask: torch.Tensor, shape: torch.Size, what: str) -> None:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got {getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.shape != shape:
        raise ValueError(f"mask must have the shape of {what} {tuple(shape)}, got {tuple(mask.shape)}")


def masked_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    reduction: Literal["token", "sequence"] = "token",
) -> torch.Tensor:
    """Cross-entropy over the real (unmasked) steps of a padded batch.

    Works for either layout as long as ``logits``, ``targets`` and ``mask`` share their
    leading dims: time-major (T, B, C) / (T, B) is assumed for ``reduction="sequence"``.

    Args:
        logits: (T, B, C) unnormalised scores.
        targets: (T, B) class ids; values at padded steps are ignored.
        mask: (T, B) bool, True at real steps.
        reduction: ``"token"``: mean over all real tokens (long sequences weigh more; the
            number behind perplexity); ``"sequence"``: mean over steps within each sequence,
            then over sequences (every sequence weighs the same).
    """
    if logits.ndim != targets.ndim + 1 or logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits must be (T, B, C) over targets (T, B), got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    _check_mask(mask, targets.shape, "targets")
    if reduction not in ("token", "sequence"):
        raise ValueError(f"reduction must be 'token' or 'sequence', got {reduction!r}")
    # Select the real steps before computing anything: padded logits may hold any value (even
    # NaN) and must reach neither the loss nor, through 0 * NaN, the gradients.
    nll = F.cross_entropy(logits[mask], targets[mask], reduction="none")  # (N,) over real tokens
    if nll.numel() == 0:
        raise ValueError("mask selects no tokens")
    if reduction == "token":
        return nll.mean()
    if targets.ndim != 2:
        raise ValueError(f"reduction='sequence' needs (T, B) targets, got {tuple(targets.shape)}")
    lengths = mask.sum(dim=0)  # (B,)
    if (lengths == 0).any():
        empty = torch.nonzero(lengths == 0).flatten().tolist()
        raise ValueError(f"sequences {empty} have no unmasked step; their mean loss is undefined")
    seq_of_token = mask.nonzero()[:, 1]  # (N,) batch index, in the same row-major order as logits[mask]
    per_seq = nll.new_zeros(lengths.shape).index_add(0, seq_of_token, nll)  # (B,) summed loss
    return (per_seq / lengths).mean()


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the real steps, averaged over every real element.

    Args:
        prediction, target: (T, B, *) same shape.
        mask: (T, B) bool, True at real steps (broadcast over trailing dims).
    """
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction and target must have the same shape, got {tuple(prediction.shape)} and "
            f"{tuple(target.shape)}"
        )
    _check_mask(mask, prediction.shape[: mask.ndim], "prediction's leading dims")
    if not mask.any():
        raise ValueError("mask selects no steps")
    # Select, not multiply: a non-finite value at a padded step must not turn the loss into NaN.
    return (prediction[mask] - target[mask]).square().mean()  # (N, *) real steps


def _required_input_length(target: list[int]) -> int:
    """CTC needs one step per label plus one blank between each pair of equal neighbours."""
    return len(target) + sum(a == b for a, b in itertools.pairwise(target))


def ctc_loss(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    *,
    blank: int = 0,
    reduction: Literal["mean", "sum", "none"] = "mean",
    zero_infinity: bool = False,
) -> torch.Tensor:
    """``torch.nn.CTCLoss`` with the inputs checked first.

    A sample whose input is too short for its target has probability 0; ``CTCLoss`` turns that
    into an inf loss (or a silent 0 with ``zero_infinity``). This checks up front and names the
    sample instead.

    Args:
        log_probs: (T, B, C) time-major log-probabilities (``log_softmax`` over C).
        targets: (B, S) padded or (sum(target_lengths),) concatenated label ids, no blanks.
        input_lengths: (B,) valid steps per sample, each <= T.
        target_lengths: (B,) labels per sample.
        reduction: as ``CTCLoss``: ``"mean"`` divides each loss by its target length, then
            averages over the batch.
    """
    if log_probs.ndim != 3:
        raise ValueError(f"log_probs must be time-major (T, B, C), got shape {tuple(log_probs.shape)}")
    T, B, C = log_probs.shape
    input_lengths = torch.as_tensor(input_lengths, dtype=torch.int64)
    target_lengths = torch.as_tensor(target_lengths, dtype=torch.int64)
    for name, lengths in (("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        if lengths.shape != (B,):
            raise ValueError(f"{name} must have shape ({B},), got {tuple(lengths.shape)}")
    if (input_lengths > T).any() or (input_lengths < 0).any():
        raise ValueError(f"input_lengths must be in [0, T={T}], got {input_lengths.tolist()}")
    if targets.ndim == 2:
        if targets.shape[0] != B or (target_lengths > targets.shape[1]).any():
            raise ValueError(f"padded targets must be (B={B}, S >= max target length), got {tuple(targets.shape)}")
        rows = [targets[b, : int(n)].tolist() for b, n in enumerate(target_lengths)]
    elif targets.ndim == 1:
        if targets.numel() != int(target_lengths.sum()):
            raise ValueError(
                f"concatenated targets must hold sum(target_lengths) = {int(target_lengths.sum())} labels, "
                f"got {targets.numel()}"
            )
        rows = [r.tolist() for r in torch.split(targets, target_lengths.tolist())]
    else:
        raise ValueError(f"targets must be (B, S) or 1-D, got shape {tuple(targets.shape)}")
    for b, row in enumerate(rows):
        if any(not 0 <= c < C or c == blank for c in row):
            raise ValueError(f"sample {b}: targets must be in [0, {C}) and not the blank {blank}, got {row}")
        need = _required_input_length(row)
        if int(input_lengths[b]) < need:
            raise ValueError(
                f"sample {b}: input length {int(input_lengths[b])} is too short for its target of "
                f"{len(row)} labels, which needs {need} steps (one per label plus a blank between repeats)"
            )
    return F.ctc_loss(
        log_probs, targets, input_lengths, target_lengths,
        blank=blank, reduction=reduction, zero_infinity=zero_infinity,
    )


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float = 0.5,
    temperature: float = 2.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Knowledge distillation (Hinton et al. 2015):

    .. math::
        \\alpha \\, CE(z_s, y) + (1 - \\alpha) \\, T^2 \\, KL(softmax(z_t / T) \\| softmax(z_s / T))

    The :math:`T^2` keeps the soft term's gradients on the scale of the hard term's as T grows.
    Both terms are means over the real tokens.

    Args:
        student_logits, teacher_logits: (T, B, C) or (N, C).
        targets: (T, B) or (N,) class ids.
        alpha: weight of the hard-label cross-entropy, in [0, 1].
        temperature: softening temperature, > 0.
        mask: (T, B) or (N,) bool, True at real tokens; None scores every token.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits and teacher_logits must have the same shape, got {tuple(student_logits.shape)} "
            f"and {tuple(teacher_logits.shape)}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if mask is None:
        mask = torch.ones(targets.shape, dtype=torch.bool, device=targets.device)
    hard = masked_cross_entropy(student_logits, targets, mask)
    log_p_student = F.log_softmax(student_logits[mask] / temperature, dim=-1)  # (N, C) real tokens
    log_p_teacher = F.log_softmax(teacher_logits[mask].detach() / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)  # (N,) KL per token
    return alpha * hard + (1 - alpha) * temperature**2 * kl.mean()
