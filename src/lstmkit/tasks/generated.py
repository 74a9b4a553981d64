"""What the tasks on generated, cached data share (the CTC tasks, ``handwriting-gen``): training with both held-out
splits scored at the end, and reopening a run on the very data it was trained on.

Such a task has ``score_split(model, prepared, split)`` (its metrics of one split) and a ``Prepared`` whose
``record`` holds the cache file (``cache``), its SHA-256 and ``generation_seconds``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstmkit.tasks.base import Prepared, Task, TaskError
from lstmkit.tasks.rundir import Run
from lstmkit.train import fit

SPLITS = ("train", "val", "test")


def fit_and_score(task: Task, prepared: Prepared, run_dir: Path, loss_key: str) -> dict[str, Any]:
    """Train ``task``'s model on ``prepared`` into ``run_dir``; the summary: the best validation loss under
    ``loss_key`` (what ``lstmkit evaluate --split val`` gives back), both held-out splits' metrics, the counts."""
    config = prepared.config
    model = task.build_model(config)
    data = task.training_data(prepared)
    result = fit(model, data.train, data.step, config=config, out_dir=run_dir, val_data=data.val)
    return {
        "split": "val",
        loss_key: result.best_val_loss,
        "val": task.score_split(model, prepared, "val"),
        "test": task.score_split(model, prepared, "test"),
        "steps": result.steps,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "generation_seconds": prepared.record.get("generation_seconds"),
    }


def reopen_and_score(task: Task, run: Run, split: str, recorded: dict[str, Any], record_file: Path) -> dict[str, Any]:
    """``split``'s metrics of the run's model, after checking that the cache holds the data the run was trained on
    (``recorded``, read from ``record_file``, names its SHA-256)."""
    if split not in SPLITS:
        raise TaskError(f"split must be one of {SPLITS}, got {split!r}")
    prepared = task.prepare(run.config)
    if recorded.get("sha256") != prepared.record["sha256"]:
        raise TaskError(f"the data in {prepared.record['cache']} is not the data this run was trained on "
                        f"(its SHA-256 differs from {record_file})")  # fmt: skip
    model = run.load_weights(task.build_model(prepared.config))
    return task.score_split(model, prepared, split)


__all__ = ["fit_and_score", "reopen_and_score"]
