"""Accuracy and precision / recall / F1 for class labels."""

from __future__ import annotations

from typing import Literal

import torch


def _labels(predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None):
    """Flatten to 1-D label tensors; predictions with one more dim than targets are logits (argmax)."""
    if not isinstance(predictions, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise TypeError("predictions and targets must be torch.Tensor")
    if predictions.ndim == targets.ndim + 1:
        predictions = predictions.argmax(dim=-1)
    if predictions.shape != targets.shape:
        raise ValueError(
            f"predictions must be labels shaped like targets {tuple(targets.shape)} or logits "
            f"{(*targets.shape, 'C')}, got {tuple(predictions.shape)}"
        )
    if predictions.is_floating_point() or targets.is_floating_point():
        raise TypeError("labels must be integer tensors (pass logits with a trailing class dimension)")
    if mask is not None:
        if mask.shape != targets.shape or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor of shape {tuple(targets.shape)}, got {mask.dtype} "
                             f"{tuple(mask.shape)}")
        predictions, targets = predictions[mask], targets[mask]
    if targets.numel() == 0:
        raise ValueError("no labels to score (empty input or all-False mask)")
    return predictions.reshape(-1), targets.reshape(-1)


def accuracy(predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Share of positions where the predicted label equals the target.

    Args:
        predictions: labels of any shape (*), or logits (*, C) (argmax is taken).
        targets: integer labels (*).
        mask: bool (*), True at positions to score (e.g. real steps of a padded batch).
    """
    p, t = _labels(predictions, targets, mask)
    return (p == t).double().mean().item()


def precision_recall_f1(
    predictions: torch.Tensor,
    targets: torch.Tensor,
    *,
    average: Literal["binary", "macro", "micro"] = "binary",
    positive: int = 1,
    num_classes: int | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[float, float, float]:
    """Precision, recall and F1.

    A ratio whose denominator is zero (no predicted or no true positives) counts as 0.

    Args:
        predictions: labels (*) or logits (*, C).
        targets: integer labels (*).
        average: ``"binary"`` scores the class ``positive`` only; ``"macro"`` averages the
            per-class scores with equal weight; ``"micro"`` pools the counts of all classes
            (for single-label data micro P = R = F1 = accuracy).
        num_classes: classes for macro averaging; None uses the classes that occur in
            targets or predictions.
        mask: bool (*), True at positions to score.
    """
    if average not in ("binary", "macro", "micro"):
        raise ValueError(f"average must be 'binary', 'macro' or 'micro', got {average!r}")
    p, t = _labels(predictions, targets, mask)
    if average == "binary":
        classes = torch.tensor([positive])
    elif num_classes is not None:
        classes = torch.arange(num_classes)
    else:
        classes = torch.unique(torch.cat([p, t]))
    hit = (p[None, :] == classes[:, None]) & (t[None, :] == classes[:, None])  # (K, N)
    tp = hit.sum(dim=1).double()  # (K,)
    pred_pos = (p[None, :] == classes[:, None]).sum(dim=1).double()
    true_pos = (t[None, :] == classes[:, None]).sum(dim=1).double()
    if average == "micro":
        tp, pred_pos, true_pos = tp.sum(), pred_pos.sum(), true_pos.sum()
    precision = torch.where(pred_pos > 0, tp / pred_pos.clamp(min=1), 0.0)
    recall = torch.where(true_pos > 0, tp / true_pos.clamp(min=1), 0.0)
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-300), 0.0)
    return precision.mean().item(), recall.mean().item(), f1.mean().item()
