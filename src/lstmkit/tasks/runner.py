"""What the ``lstmkit`` commands do: build a task's config, train into a run directory, evaluate,
generate, list tasks. The CLI only parses arguments and prints what these return."""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from lstmkit.tasks.base import ConfigError, Generated, Task, TaskError
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
    check_schedule,
    describe_keys,
    distributed,
    dump_config,
    format_key_docs,
    load_config,
    planned_steps,
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
        if Path(config_file).is_dir():
            raise ValueError(f"--config {config_file} is a directory; give a TOML file")
        if not Path(config_file).is_file():
            raise ValueError(f"config file {config_file} does not exist")
        config = load_config(config_file, config)  # keys the file leaves out keep the task's defaults
    config = apply_overrides(config, list(overrides))
    if seed is not None:
        config = set_values(config, {"train.seed": seed})
    return config


def task_reasons(task: Task) -> dict[str, str]:
    """``{"section.key": comment}`` for the values a task's ``default_config`` sets with a comment beside them
    (``lr=3e-3,  # 1e-3 sits twice as long on the plateau``) or on the lines right above them."""
    import ast
    import inspect
    import io
    import textwrap
    import tokenize

    try:
        source = textwrap.dedent(inspect.getsource(type(task).default_config))
    except (OSError, TypeError):
        return {}
    comments = {t.start[0]: t.string.lstrip("#").strip()
                for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.COMMENT}
    lines = source.splitlines()
    out: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Config"):
            continue
        for section in node.keywords:
            if not isinstance(section.value, ast.Call):
                continue
            for kw in section.value.keywords:
                if kw.arg is None:
                    continue
                found = [comments[n] for n in range(kw.value.lineno, kw.value.end_lineno + 1) if n in comments
                         and lines[n - 1].count("=") <= 1]  # one key on the line: the comment is this key's
                above, n = [], kw.lineno - 1
                own_line = lines[kw.lineno - 1].strip().startswith(f"{kw.arg}=")  # not after `model=Model(`
                while not found and own_line and n >= 1 and lines[n - 1].strip().startswith("#"):
                    above.insert(0, comments.get(n, ""))
                    n -= 1
                if found or above:
                    out[f"{section.arg}.{kw.arg}"] = " ".join(found or above)
    return out


def describe_config(
    task_name: str,
    config_file: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    seed: int | None = None,
) -> list[str]:
    """Every key of the task's config (after the file, overrides and seed) with its value, type and the reason
    for its default: ``lstmkit config TASK`` and ``lstmkit train --task TASK --show-config``.

    Raises:
        ValueError: a bad override (as :func:`build_config`), or a key without a reason.
    """
    config = build_config(task_name, config_file, overrides, seed)
    return [f"# task {task_name!r}: every key, its value (type) and why", *format_key_docs(
        describe_keys(config), task_reasons(get_task(task_name)))]


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
    try:
        old = load_config(out / CONFIG, section_defaults(config))
    except FileNotFoundError as e:
        raise TaskError(f"{out / CONFIG} is missing, so the run in --out {out} cannot be resumed; "
                        "choose a new directory") from e  # fmt: skip
    except (OSError, ValueError) as e:
        problem = e.strerror if isinstance(e, OSError) and e.strerror else str(e).removeprefix(f"{out / CONFIG}: ")
        raise TaskError(f"{out / CONFIG}: {problem}; the run in --out {out} cannot be resumed: repair the file "
                        "or choose a new directory") from e  # fmt: skip
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


def preflight(task: Task, prepared: Any) -> None:
    """Every check of the config against the data and the machine, before any file is written.

    Raises:
        ConfigError: naming the keys (the CLI exits 2).
    """
    config = prepared.config
    try:
        check_schedule(config.train, planned_steps(task.training_data(prepared).train, config.train))
    except ValueError as e:
        raise ConfigError(str(e)) from e
    check_memory(config)


_GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def memory_estimate(config: Config) -> tuple[int, int]:
    """(parameters, bytes) a training run of ``config`` needs, estimated from the config alone (no
    model is built): the recurrent core, embedding and head in float32, times 5 for the weights, their
    gradients, Adam's two moments and the kept best copy, plus the activations kept for backward
    (about (gates + 2) values per unit, step, layer, direction and sequence), plus what the model config says
    its model adds (``ModelConfig.extra_training_size``: a language model's attention block)."""
    m, d = config.model, config.data
    g, H, L = _GATES.get(m.cell, 4), m.hidden_size, m.num_layers
    D = 2 if getattr(m, "bidirectional", False) else 1
    first_in = (m.embedding_dim or H) if m.vocab_size else (m.input_size or 1)
    per_direction = g * H * (first_in + H + 2) + (L - 1) * g * H * (D * H + H + 2)
    outputs = m.output_size or m.vocab_size or 1
    params = D * per_direction + (m.vocab_size or 0) * (m.embedding_dim or H) + D * H * outputs + outputs
    steps = next((v for v in (getattr(d, k, None) for k in ("bptt", "length", "window")) if isinstance(v, int)), 0)
    activations = d.batch_size * steps * L * D * H * (g + 2)
    more_params, more_activations = m.extra_training_size(d.batch_size, steps)  # what the model adds to the core
    params += more_params
    activations += more_activations
    return params, 4 * (5 * params + activations)


def check_memory(config: Config) -> None:
    """Refuse a model that cannot fit in this machine's memory, naming the estimate, before it is built."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: no check
        return
    params, need = memory_estimate(config)
    if need > ram:
        raise ConfigError(
            f"model.hidden_size={config.model.hidden_size}, model.num_layers={config.model.num_layers} make a model of "
            f"about {params:.3g} parameters that needs about {need / 2**30:.3g} GiB to train (weights, gradients, "
            f"Adam moments, the best copy, activations); this machine has {ram / 2**30:.3g} GiB. Lower "
            "model.hidden_size, model.num_layers or data.batch_size"
        )


def _create_run_dir(run_dir: Path, task: Task, config: Config, prepared: Any) -> None:
    """Write a new run's stamp, config and state files into a temporary folder beside ``run_dir``, then
    rename it into place (onto an absent path or an empty directory): a start that fails half-way
    (a full disk, a bad state file) leaves no half-made run directory."""
    blocked = next((p for p in run_dir.parents if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise TaskError(f"--out {run_dir}: cannot create the run directory: {blocked} is a file, not a directory")
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.tmp-", dir=run_dir.parent))
    except OSError as e:  # a read-only file system, a regular file on the way, no permission
        where = f" ({e.filename})" if e.filename and not str(e.filename).startswith(str(run_dir.parent / ".")) else ""
        raise TaskError(f"--out {run_dir}: cannot create the run directory: {e.strerror or e}{where}") from e
    try:
        write_stamp(tmp, task)
        dump_config(config, tmp / CONFIG)
        prepared.save(tmp)
        os.replace(tmp, run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_unstarted(run_dir: Path, existed: bool) -> None:
    """After a new run failed before its first checkpoint: nothing in ``run_dir`` can be resumed, so it
    goes (back to an empty directory when it existed), and the corrected command can use it again."""
    if (run_dir / "checkpoints" / "index.json").exists() or not (run_dir / STAMP).exists():
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    if existed:
        run_dir.mkdir(exist_ok=True)


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
    if distributed.world_size() == 1:  # with several ranks each checks its own shard, in fit
        preflight(task, prepared)
    run_dir = Path(_on_main(lambda: str(out if out is not None else _default_out(task.name)), "name the run"))
    existed = run_dir.is_dir()

    def make_run_dir() -> bool:
        resumed = _check_out_dir(run_dir, task.name, config)
        if not resumed:
            _create_run_dir(run_dir, task, config, prepared)
        return resumed

    resumed = _on_main(make_run_dir, "set up the run directory")
    seed_everything(config.train.seed)
    try:
        metrics = task.train(prepared, run_dir)
    except BaseException as e:
        if not resumed and distributed.rank() == 0:
            _remove_unstarted(run_dir, existed)
        if isinstance(e, (CheckpointError, FloatingPointError)):  # no intact checkpoint; a run that diverged
            raise TaskError(str(e)) from e
        raise
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
