"""What the ``lstmkit`` commands do: build a task's config, train into a run directory, evaluate,
generate, list tasks. The CLI only parses arguments and prints what these return."""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from lstmkit.tasks.base import Generated, Task, TaskError
from lstmkit.tasks.plots import plot_curves
from lstmkit.tasks.registry import TASKS, get_task
from lstmkit.tasks.rundir import (
    CONFIG,
    CURVES,
    METRICS,
    STAMP,
    open_run,
    read_stamp,
    write_stamp,
    write_summary,
)
from lstmkit.train import (
    CheckpointError,
    Config,
    apply_overrides,
    distributed,
    dump_config,
    load_config,
    section_defaults,
    seed_everything,
    set_values,
)


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, Any]
    lines: list[str]  # the task's report of the metrics
    resumed: bool


def build_config(
    task_name: str,
    config_file: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    seed: int | None = None,
) -> Config:
    """The task's defaults, then the TOML file's keys, then the ``section.key=value`` overrides, then
    the seed. Unknown keys and bad values raise ``ValueError`` naming them; nothing runs."""
    task = get_task(task_name)
    config = task.default_config()
    if config_file is not None:
        if not Path(config_file).is_file():
            raise ValueError(f"config file {config_file} does not exist")
        config = load_config(config_file, config)  # keys the file leaves out keep the task's defaults
    config = apply_overrides(config, list(overrides))
    if seed is not None:
        config = set_values(config, {"train.seed": seed})
    return config


def set_threads(config: Config) -> None:
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)


def _default_out(task_name: str) -> Path:
    return Path("runs") / f"{task_name}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _check_out_dir(out: Path, task_name: str, config: Config) -> bool:
    """True when ``out`` holds an unfinished or finished run of the same config (resume it); raise
    when it holds anything else."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return False
    if not out.is_dir():
        raise TaskError(f"--out {out} exists and is not a directory")
    if not (out / STAMP).exists():
        raise TaskError(f"--out {out} exists and is not a run directory; choose a new or empty directory")
    stamp = read_stamp(out)
    if stamp.get("task") != task_name:
        raise TaskError(f"--out {out} holds a {stamp.get('task')!r} run, not {task_name!r}; choose another directory")
    old = load_config(out / CONFIG, section_defaults(config))
    if old != config:
        changed = [
            f"{section}.{key}"
            for section in ("model", "data", "train")
            for key, value in dataclasses.asdict(getattr(config, section)).items()
            if dataclasses.asdict(getattr(old, section)).get(key) != value
        ]
        raise TaskError(
            f"--out {out} holds a run with a different config (changed: {changed}); choose another directory, "
            "or repeat the same settings to resume it"
        )
    return True


def train(task_name: str, config: Config, out: str | os.PathLike[str] | None = None) -> TrainResult:
    """Train ``task_name`` with ``config`` into a run directory (a new one under ``runs/`` by default).

    The data is read and checked before anything is written. Repeating the call with the same
    ``out`` and config resumes from the newest checkpoint.

    Launched by ``torchrun`` (see docs/distributed.md), every process calls this: all join the
    process group and read the data, rank 0 alone writes the run directory, and ``fit`` trains
    data-parallel. An error on one rank (bad data, a bad run directory) stops every rank.
    """
    started = time.perf_counter()
    task = get_task(task_name)
    launched = _join_launch(config)
    try:
        result = _train(task, config, out, started)
    except BaseException:
        if launched:
            distributed.teardown(barrier=False)  # the other ranks stop on their own error
        raise
    if launched:
        distributed.teardown()
    return result


def _join_launch(config: Config) -> bool:
    """Join the other processes when launched by torchrun; False when training alone."""
    try:
        env = distributed.detect()
        if env is None:
            return False
        # Before the rendezvous: every rank stops at once on a batch the world size cannot split.
        distributed.check_batch_size(config.data.batch_size, env.world_size)
        distributed.setup()
    except (ValueError, distributed.DistributedError) as e:
        raise TaskError(str(e)) from e
    return True


def _on_main(fn: Callable[[], Any], what: str) -> Any:
    """``fn`` on rank 0 only (all of it when alone); its errors become every rank's TaskError."""
    try:
        return distributed.on_main(fn, what)
    except distributed.DistributedError as e:
        raise TaskError(str(e)) from e


def _train(task: Task, config: Config, out: str | os.PathLike[str] | None, started: float) -> TrainResult:
    set_threads(config)
    error, prepared = None, None
    try:
        prepared = task.prepare(config)  # reads and checks the data; raises before any file is written
    except Exception as e:
        error = e
    try:
        distributed.agree(error, "read the data")  # one rank without the data stops them all
    except distributed.DistributedError as e:
        raise TaskError(str(e)) from e
    config = prepared.config
    run_dir = Path(_on_main(lambda: str(out if out is not None else _default_out(task.name)), "name the run"))

    def make_run_dir() -> bool:
        resumed = _check_out_dir(run_dir, task.name, config)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resumed:
            write_stamp(run_dir, task)
            dump_config(config, run_dir / CONFIG)
            prepared.save(run_dir)
        return resumed

    resumed = _on_main(make_run_dir, "set up the run directory")
    seed_everything(config.train.seed)
    try:
        metrics = task.train(prepared, run_dir)
    except (CheckpointError, FloatingPointError) as e:  # no intact checkpoint; a run that diverged
        raise TaskError(str(e)) from e
    metrics["data"] = task.data_source(config)
    metrics["wall_seconds"] = round(time.perf_counter() - started, 1)  # data preparation included
    metrics["threads"] = torch.get_num_threads()
    metrics["processes"] = distributed.world_size()

    def finish() -> None:
        write_summary(run_dir, metrics)
        if (run_dir / METRICS).exists():
            plot_curves(run_dir / METRICS, run_dir / CURVES, loss_label=task.loss_label)

    _on_main(finish, "write the summary")
    lines = [f"data: {metrics['data']}", *task.report(metrics)]
    return TrainResult(run_dir=run_dir, metrics=metrics, lines=lines, resumed=resumed)


def evaluate(run_dir: str | os.PathLike[str], split: str = "val") -> tuple[dict[str, Any], list[str]]:
    """The run's metrics on ``split``, from the run directory alone; returns the metrics and the report."""
    run = open_run(run_dir)
    set_threads(run.config)
    metrics = run.task.evaluate(run, split)
    return metrics, run.task.report(metrics)


def generate(
    run_dir: str | os.PathLike[str], *, prompt: str, length: int, temperature: float, top_k: int, seed: int = 0
) -> Generated:
    """Sample from the run's model; the tokenizer and weights come from the run directory alone."""
    run = open_run(run_dir)
    set_threads(run.config)
    return run.task.generate(run, prompt=prompt, length=length, temperature=temperature, top_k=top_k, seed=seed)


@dataclasses.dataclass
class TaskInfo:
    name: str
    summary: str
    source: str
    available: bool
    note: str  # why the data is not available, and how to get it


def list_tasks() -> list[TaskInfo]:
    """Every registered task, its default data source and whether that data can be read here."""
    out = []
    for name in sorted(TASKS):
        task = get_task(name)
        config = task.default_config()
        try:
            task.check_data(config)
            available, note = True, ""
        except TaskError as e:
            available, note = False, str(e)
        out.append(TaskInfo(name, task.summary, task.data_source(config), available, note))
    return out
