"""The optimiser and the learning-rate schedule: AdamW with decoupled weight decay on weights
only, and a warm-up + cosine (or constant, or plateau) schedule."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lstmkit.train.config import TrainConfig

_NORM_MODULES = (
    nn.LayerNorm, nn.GroupNorm, nn.RMSNorm,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
)  # fmt: skip


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: decayed weights, and undecayed biases and normalisation gains.

    A parameter is not decayed when its name starts with ``bias``, when its module is a torch
    normalisation layer, or when a ``_``-separated part of its name is ``ln`` or contains
    ``norm`` (``lstmkit.nn.LSTM``'s ``weight_ln_ih_l0``). Decay pulls gains towards 0 and biases
    (such as a forget-gate bias of 1) away from the values they were set to for a reason.
    """
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:  # tied weights appear under two modules
                continue
            seen.add(id(p))
            parts = name.lower().split("_")
            is_norm = isinstance(module, _NORM_MODULES) or "ln" in parts or any("norm" in s for s in parts)
            (no_decay if name.startswith("bias") or is_norm else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr, betas=config.betas)


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """lr multiplier: linear from 1/(warmup+1) to 1 over ``warmup_steps``, then cosine to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def check_schedule(config: TrainConfig, total_steps: int | None) -> None:
    """The checks of ``train`` keys against the run's length; the task runner calls it before any
    file is written, :func:`make_scheduler` again.

    Raises:
        ValueError: naming the keys.
    """
    if config.schedule != "cosine":
        return
    if total_steps is None:
        raise ValueError("schedule 'cosine' needs the run's length: set train.max_steps or use data with len()")
    if config.warmup_steps >= total_steps:
        hint = "lower train.warmup_steps" + (" or raise train.max_steps" if config.max_steps is not None else "")
        raise ValueError(
            f"train.warmup_steps ({config.warmup_steps}) must be below the run's {total_steps} steps; {hint}"
        )


def planned_steps(train_data: object, config: TrainConfig) -> int | None:
    """The optimiser steps a run of ``config`` takes on ``train_data`` (None when its length is unknown):
    ``train.max_steps``, else the epochs' steps (a last, shorter accumulation group counts as one)."""
    batches = len(train_data) if hasattr(train_data, "__len__") else None
    per_epoch = -(-batches // config.accumulate) if batches is not None else None
    return config.max_steps or (per_epoch * config.epochs if per_epoch else None)


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    total_steps: int | None,
    time_used: Callable[[], float] | None = None,
):
    """``LambdaLR`` stepped per optimiser step ("cosine", "constant" with warm-up), or
    ``ReduceLROnPlateau`` stepped per epoch on the validation loss ("plateau").

    ``time_used() -> float`` (the share of ``train.max_minutes`` spent) makes the cosine follow
    whichever of the step count and the clock is further along, so that a run the clock ends
    early still finishes its decay. While the steps are ahead (a machine fast enough for the
    budget), the schedule, and so the run, stays exactly reproducible.
    """
    check_schedule(config, total_steps)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=config.plateau_factor, patience=config.plateau_patience
        )
    if config.schedule == "constant":
        total_steps, min_ratio = config.warmup_steps, 1.0  # warm up, then hold
    else:
        min_ratio = config.min_lr_ratio

    def factor(step: int) -> float:
        if time_used is not None and config.schedule == "cosine":
            step = max(step, int(time_used() * total_steps))
        return warmup_cosine(step, warmup_steps=config.warmup_steps, total_steps=total_steps, min_ratio=min_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


__all__ = ["check_schedule", "make_optimizer", "make_scheduler", "param_groups", "planned_steps", "warmup_cosine"]
