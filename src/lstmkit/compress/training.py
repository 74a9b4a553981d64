"""Training inside compression: fine-tuning (after pruning or factorising) and distillation.

Both train through ``lstmkit.train.fit`` on the task's own training split with the task's own
step (``Task.training_data``), so they see exactly the data the run was trained on. Every task
provides them; nothing here knows which task it holds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from lstmkit._fileio import write_bytes_atomic
from lstmkit.tasks.base import Step, Task, TrainingData
from lstmkit.train import Config, fit, set_values


def training(task: Task, config: Config) -> TrainingData:
    """The task's training batches (its training split), validation batches and step, for ``config``."""
    return task.training_data(task.prepare(config))


def recurrent_core(model: nn.Module) -> nn.Module:
    """The ``lstmkit.nn`` layer of a task's model (every model in ``lstmkit.models`` names it ``rnn``)."""
    return model.rnn


def finetune_config(config: Config, steps: int, lr: float | None, *, progress: bool = True) -> Config:
    """``config`` for a short run of ``steps`` optimiser steps: no clock, a short warm-up, validation
    at least every 10 steps' worth of epochs for epoch-based tasks, no TensorBoard."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    t = config.train
    return set_values(config, {
        "train.max_steps": steps, "train.max_minutes": None, "train.lr": lr if lr is not None else t.lr / 10,
        "train.warmup_steps": min(t.warmup_steps, max(1, steps // 10)), "train.epochs": 100000,
        "train.patience": 10**6, "train.tensorboard": False, "train.progress": progress,
        "train.checkpoint_every": None,
    })  # fmt: skip


def train_model(
    model: nn.Module,
    data: TrainingData,
    config: Config,
    *,
    step: Step | None = None,
    after_step: Callable[[], None] | None = None,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """Train ``model`` with ``fit`` for ``config.train.max_steps`` steps (best weights by validation
    loss restored); ``after_step`` runs after every optimiser step (to re-apply pruning masks).
    Checkpoints go to a temporary directory; ``metrics.csv`` is copied to ``log_dir``."""
    on_step = (lambda _log: after_step()) if after_step is not None else None
    with tempfile.TemporaryDirectory(prefix="lstmkit-compress-") as tmp:
        result = fit(model, data.train, step or data.step, config=config, out_dir=tmp, val_data=data.val or None,
                     on_step=on_step, resume=False)  # fmt: skip  # no validation part: the whole budget
        if log_dir is not None and (Path(tmp) / "metrics.csv").is_file():
            log_dir.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(log_dir / "metrics.csv", (Path(tmp) / "metrics.csv").read_bytes(), root=log_dir)
    return {"steps": result.steps, "best_val_loss": result.best_val_loss, "lr": config.train.lr}
