"""What compression needs from a task: its model class, its training data and step, an example input.

Fine-tuning (after pruning or factorising) and distillation train through ``lstmkit.train.fit``
on the task's own training split with the task's own step, so they see exactly the data the run
was trained on. Supported: the language-model tasks (``charlm``, ``wordlm``), ``classify`` and
``forecast``; the long-range tasks can be quantised and pruned without fine-tuning.
"""

from __future__ import annotations

import dataclasses
import inspect
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lstmkit.models import SequenceModel
from lstmkit.tasks.base import Task, TaskError
from lstmkit.train import Config, fit, set_values

Step = Callable[[nn.Module, Any, Any], tuple[torch.Tensor, Any, int]]


@dataclasses.dataclass
class Training:
    """A task's training and validation batches and its step function."""

    train_data: Iterable
    val_data: Iterable
    step: Step
    kind: str  # "lm", "classify" or "forecast": how a batch is laid out


def _task_kind(task: Task) -> str:
    from lstmkit.tasks.classify import ClassifyTask
    from lstmkit.tasks.forecast import ForecastTask
    from lstmkit.tasks.lm import LanguageModelTask

    if isinstance(task, LanguageModelTask):
        return "lm"
    if isinstance(task, ClassifyTask):
        return "classify"
    if isinstance(task, ForecastTask):
        return "forecast"
    return "other"


def knows(task: Task) -> bool:
    """Whether ``build_model`` can build this task's model."""
    return _task_kind(task) != "other" or callable(getattr(task, "build_model", None))


def build_model(task: Task, config: Config) -> nn.Module:
    """The model the task builds from ``config`` (weights at their initial values)."""
    kind = _task_kind(task)
    if kind == "lm":
        return SequenceModel(config.model)
    if kind == "classify":
        from lstmkit.tasks.classify import SequenceClassifier

        return SequenceClassifier(config.model)
    if kind == "forecast":
        from lstmkit.tasks.forecast import ForecastNet

        return ForecastNet(config.model, config.data.ar_order)
    builder = getattr(task, "build_model", None)
    if builder is None:
        raise TaskError(f"lstmkit compress does not know how task {task.name!r} builds its model")
    return builder(config)


def recurrent_core(model: nn.Module) -> nn.Module:
    """The ``lstmkit.nn`` layer of a task's model."""
    core = getattr(model, "core", model)  # ForecastNet wraps a SequenceModel
    return core.rnn


def training(task: Task, config: Config) -> Training:
    """The task's training data (its training split), validation data and step, for ``config``."""
    kind = _task_kind(task)
    prepared = task.prepare(config)
    data = config.data
    if kind == "lm":
        from lstmkit.data import TokenStreamBatcher
        from lstmkit.tasks.lm import eval_batcher
        from lstmkit.train import lm_step

        train = TokenStreamBatcher(prepared.ids["train"], data.batch_size, data.bptt, drop_last=True)
        return Training(train, eval_batcher(prepared.ids["val"], data.batch_size, data.bptt), lm_step, kind)
    if kind == "classify":
        from lstmkit.tasks.classify import jitter_step, loader

        train = loader(prepared.cases["train"], prepared.targets["train"], data.batch_size, shuffle=True,
                       seed=config.train.seed)  # fmt: skip
        val = loader(prepared.cases["val"], prepared.targets["val"], 256, shuffle=False)
        return Training(train, val, jitter_step(data.jitter), kind)
    if kind == "forecast":
        from torch.utils.data import DataLoader

        from lstmkit.tasks.forecast import forecast_step, window_dataset

        split = prepared.split
        train_ds = window_dataset(prepared.z, 0, split.val_lo, data.window, data.horizon)
        val_ds = window_dataset(prepared.z, split.val_lo, split.test_lo, data.window, data.horizon)
        train = DataLoader(train_ds, batch_size=data.batch_size, shuffle=True)
        return Training(train, DataLoader(val_ds, batch_size=len(val_ds)), forecast_step, kind)
    raise TaskError(
        f"fine-tuning and distillation support the charlm, wordlm, classify and forecast tasks, not {task.name!r}; "
        "compress it without fine-tuning (--finetune-steps 0)"
    )


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
    data: Training,
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
        result = fit(model, data.train_data, step or data.step, config=config, out_dir=tmp, val_data=data.val_data,
                     on_step=on_step, resume=False)  # fmt: skip
        if log_dir is not None and (Path(tmp) / "metrics.csv").is_file():
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / "metrics.csv").write_bytes((Path(tmp) / "metrics.csv").read_bytes())
    return {"steps": result.steps, "best_val_loss": result.best_val_loss, "lr": config.train.lr}


def example_input(model: nn.Module, config: Config, *, length: int = 256) -> tuple:
    """A one-sequence input for timing the model's forward call: token ids (T, 1) for a language
    model, features (T, 1, I) for the others (a window's length for forecasting), and the length
    (1,) when ``forward`` takes ``lengths``."""
    g = torch.Generator().manual_seed(0)
    m = config.model
    if getattr(m, "vocab_size", None):
        return (torch.randint(2, m.vocab_size, (length, 1), generator=g),)
    T = config.data.window if _task_kind_of_model(model) == "forecast" else length
    x = torch.randn(T, 1, m.input_size, generator=g)
    params = inspect.signature(model.forward).parameters
    needs_lengths = "lengths" in params and params["lengths"].default is inspect.Parameter.empty
    return (x, torch.tensor([T])) if needs_lengths else (x,)


def _task_kind_of_model(model: nn.Module) -> str:
    from lstmkit.tasks.forecast import ForecastNet

    return "forecast" if isinstance(model, ForecastNet) else "other"
