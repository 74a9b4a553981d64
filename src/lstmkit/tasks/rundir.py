"""Run directories: everything one ``lstmkit train`` wrote, and reading it back.

A run directory holds::

    run.json            # the version stamp: run format, lstmkit/torch/Python versions, task, time
    config.toml         # the resolved config (task defaults, --config file, --set overrides)
    model.safetensors   # the best weights (by validation loss)
    <task state>        # e.g. tokenizer.json and data.json (the split and its fingerprints)
    metrics.csv         # training and validation losses, lr, gradient norm, speed
    summary.json        # the final metrics
    curves.png          # training and validation curves, learning rate
    checkpoints/        # for resuming (``lstmkit train --out`` the same directory)

``evaluate`` and ``generate`` read the model and its state from here only, and refuse a
directory that is incomplete or was written in another run format.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

import lstmkit
from lstmkit._fileio import read_versioned_json, write_json_atomic, write_versioned_json
from lstmkit.data import Standardizer
from lstmkit.formats import load_weights
from lstmkit.formats.integrity import WeightsError
from lstmkit.tasks.base import Task, TaskError
from lstmkit.tasks.registry import get_task
from lstmkit.train import Config, load_config, section_defaults, set_values

RUN_FORMAT = "lstmkit.run"
RUN_VERSION = 1  # bump when the layout or the meaning of a file changes; older runs are then refused
STAMP = "run.json"
SELECTION = "selection.json"  # what `lstmkit select` writes in its directory (lstmkit.tasks.selection)
CONFIG = "config.toml"
MODEL = "model.safetensors"
SUMMARY = "summary.json"
METRICS = "metrics.csv"
CURVES = "curves.png"


@dataclasses.dataclass
class Run:
    """A run directory read back: its task, resolved config and stamp."""

    path: Path
    task: Task
    config: Config
    stamp: dict[str, Any]

    def file(self, name: str) -> Path:
        return self.path / name

    def read_record(self, name: str, fmt: str, version: int) -> dict[str, Any]:
        """The task's versioned JSON state file ``name`` (``data.json``, ...), or a ``TaskError`` saying why not."""
        try:
            return read_versioned_json(self.file(name), fmt, version)
        except ValueError as e:
            raise TaskError(str(e)) from e

    def load_weights(self, model: nn.Module) -> nn.Module:
        """Load ``model.safetensors`` (float, or a quantised or factorised file written by ``lstmkit
        compress``: see ``lstmkit.formats``) into ``model`` (built from ``self.config``), in eval mode."""
        try:
            load_weights(model, self.file(MODEL))
        except WeightsError as e:
            raise TaskError(
                f"{e}. The file is damaged: run the same `lstmkit train --out {self.path}` again to rewrite it "
                "from the run's last checkpoint, or train (or compress) the run again"
            ) from e
        except OSError as e:
            raise TaskError(f"{self.file(MODEL)}: cannot be read ({e.strerror or e})") from e
        except Exception as e:  # an intact file of another architecture: safetensors or load_state_dict raise
            raise TaskError(f"{self.file(MODEL)} does not match {self.file(CONFIG)}: {e}") from e
        return model.eval()


def read_scaler(path: Path) -> Standardizer:
    """A run's saved ``Standardizer``, or a ``TaskError`` saying why it cannot be read."""
    try:
        return Standardizer.load(path)
    except ValueError as e:
        raise TaskError(str(e)) from e


def write_stamp(run_dir: Path, task: Task) -> None:
    write_versioned_json(
        run_dir / STAMP,
        RUN_FORMAT,
        RUN_VERSION,
        {
            "task": task.name,
            "lstmkit_version": lstmkit.__version__,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "argv": sys.argv,
        },
    )


def write_summary(run_dir: Path, metrics: dict[str, Any]) -> None:
    write_json_atomic(run_dir / SUMMARY, metrics)


def read_stamp(run_dir: Path) -> dict[str, Any]:
    path = run_dir / STAMP
    if not path.is_file():
        if (run_dir / SELECTION).is_file():  # `lstmkit select`'s directory: name the run to pass instead
            chosen = _chosen_run(run_dir / SELECTION)
            raise TaskError(f"{run_dir} is a selection (`lstmkit select`), not a run directory: "
                            + (f"pass its chosen run, {run_dir / chosen}" if chosen else
                               f"its {SELECTION} names no chosen run yet (run the same `lstmkit select` again)"))
        raise TaskError(f"{run_dir} is not a run directory: it has no {STAMP} (runs are made by `lstmkit train`)")
    try:
        return read_versioned_json(path, RUN_FORMAT, RUN_VERSION)
    except ValueError as e:
        raise TaskError(
            f"{run_dir} cannot be read by this lstmkit ({lstmkit.__version__}, run format {RUN_VERSION}): {e}. "
            "Train it again with this version."
        ) from e


def _chosen_run(path: Path) -> str | None:
    """The chosen candidate's folder as ``selection.json`` records it (only to name it in a message), or None."""
    try:
        chosen = json.loads(path.read_text(encoding="utf-8")).get("chosen_run")
    except (OSError, ValueError, AttributeError):
        return None
    return chosen if isinstance(chosen, str) and chosen and ".." not in Path(chosen).parts else None


def open_run(run_dir: str | Path) -> Run:
    """Read a finished run directory, checking that everything ``evaluate``/``generate`` need is there."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TaskError(f"run directory {run_dir} does not exist")
    stamp = read_stamp(run_dir)
    task = get_task(str(stamp.get("task")))
    missing = [f for f in (CONFIG, MODEL, SUMMARY, *task.state_files) if not (run_dir / f).is_file()]
    if missing:
        unfinished = MODEL in missing or SUMMARY in missing
        hint = "; the training did not finish: run the same `lstmkit train --out` again to resume" if unfinished else ""
        raise TaskError(f"run directory {run_dir} is missing {missing}{hint}")
    try:
        base = set_values(section_defaults(task.default_config()), task.reopen_defaults)  # older runs' values
        config = load_config(run_dir / CONFIG, base)
    except ValueError as e:
        raise TaskError(f"{run_dir / CONFIG}: {e}") from e
    return Run(path=run_dir, task=task, config=config, stamp=stamp)
