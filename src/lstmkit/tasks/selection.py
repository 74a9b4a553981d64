"""``lstmkit select``: train each of a task's candidate settings as a run of its own and keep the one with the
lowest validation loss (or as the task's :meth:`Task.choose` says).

The candidates and the measure come from the task (:meth:`Task.candidates`, :meth:`Task.selection_loss`): for
``classify`` the biLSTM, the LSTM-FCN and the ALSTM-FCN (below 100 training cases each a 5-fold committee, judged by
its cross-validation loss, and each again reading first differences too, which must win by a margin:
:meth:`Task.choose`); for ``forecast`` the LSTM with and without the AR skip, each reading the window as it is
or level-free. The choice reads the validation figures only; every candidate run also scores its test split, as
``lstmkit train`` does, and those scores are reported, never compared.

The selection directory holds ``selection.json`` (the base config's task, every candidate's values, run and
validation loss, the choice) and ``candidates/NAME/``, one ordinary run directory per candidate: the chosen one
is what ``lstmkit evaluate``, ``export`` and ``compress`` take. Running the same command again resumes it: finished
candidates are reopened, not retrained, and an interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lstmkit._fileio import read_versioned_json, write_versioned_json
from lstmkit.tasks import runner
from lstmkit.tasks.base import ConfigError, DataUnavailable, TaskError
from lstmkit.tasks.registry import get_task
from lstmkit.tasks.rundir import SELECTION
from lstmkit.train import Config, set_values

CANDIDATES = "candidates"  # the folder of the candidates' run directories
_FORMAT, _VERSION = "lstmkit-selection", 1


@dataclasses.dataclass
class Candidate:
    name: str
    values: dict[str, Any]  # the "section.key" values laid over the base config
    run_dir: Path
    validation_loss: float
    lines: list[str] = dataclasses.field(default_factory=list)  # the task's report of the run
    resumed: bool = False


@dataclasses.dataclass
class SelectResult:
    out: Path
    candidates: list[Candidate]
    chosen: Candidate
    rule: str
    skipped: dict[str, str]  # candidates the data refused before they started, each with the reason


def slug(name: str) -> str:
    """A candidate's folder name: its name in lower case, every run of other characters one hyphen."""
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not s:
        raise TaskError(f"candidate name {name!r} has no letters or digits to name its folder")
    return s


def _plan(task_name: str, values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    runs = {name: {"values": v, "run": f"{CANDIDATES}/{slug(name)}"} for name, v in values.items()}
    return {"task": task_name, "candidates": runs}


def _check_out(out: Path, plan: dict[str, Any]) -> None:
    """Refuse an ``out`` that holds anything but a selection of the same task and candidates."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not out.is_dir():
        raise TaskError(f"--out {out} exists and is not a directory")
    try:
        old = read_versioned_json(out / SELECTION, _FORMAT, _VERSION)
    except FileNotFoundError:
        raise TaskError(f"--out {out} exists and holds no {SELECTION}: choose a new or empty directory") from None
    except (OSError, ValueError) as e:
        raise TaskError(f"{e}; repair the file or choose another directory for --out") from e
    if old.get("task") != plan["task"]:
        raise TaskError(f"--out {out} holds a selection of task {old.get('task')!r}, not {plan['task']!r}; "
                        "choose another directory")  # fmt: skip
    was = {k: v.get("values") for k, v in old.get("candidates", {}).items()}
    if was != {k: v["values"] for k, v in plan["candidates"].items()}:
        raise TaskError(f"--out {out} holds a selection among other candidates ({sorted(was)}); choose another "
                        "directory, or repeat the same settings to resume it")  # fmt: skip


def select(task_name: str, config: Config, out: str | os.PathLike[str] | None = None, *,
           only: Sequence[str] | None = None, progress=lambda line: None) -> SelectResult:  # fmt: skip
    """Train every candidate of ``task_name`` (``only``: those named) over ``config`` into ``out/candidates/``,
    keep the one the task's ``choose`` picks (by default the lowest validation loss, ties the first listed) and
    write ``out/selection.json``; ``progress`` gets a line as each candidate starts and as it ends. Each
    candidate's run is what ``lstmkit train`` with its values would make; a candidate the config or data refuses
    before its run starts (``ConfigError``, ``DataUnavailable``) is skipped and recorded with the reason; when
    every one is, a ``ConfigError`` says why."""
    task = get_task(task_name)
    values = task.candidates(config)  # raises before anything is written when the config cannot be chosen on
    if only:  # the user's subset, in the task's order
        unknown = [n for n in only if n not in values]
        if unknown:
            raise ConfigError(f"--candidates: {unknown} not offered; task {task_name!r} offers {list(values)}")
        values = {k: v for k, v in values.items() if k in only}
    if not values:
        raise TaskError(f"task {task_name!r} offered no candidates for this config")
    names = {}
    for name in values:
        if slug(name) in names:
            raise TaskError(f"candidates {names[slug(name)]!r} and {name!r} would share the folder {slug(name)!r}")
        names[slug(name)] = name
    configs = {}
    for name, v in values.items():
        try:
            configs[name] = set_values(config, v)
        except ValueError as e:
            raise ConfigError(f"candidate {name!r}: {e}") from e
    out = Path(out) if out is not None else runner._default_out(f"select-{task_name}")  # runs/select-TASK-DATE
    plan = _plan(task_name, values)
    _check_out(out, plan)
    out.mkdir(parents=True, exist_ok=True)
    write_versioned_json(out / SELECTION, _FORMAT, _VERSION, {**plan, "status": "running"})
    done: list[Candidate] = []
    skipped: dict[str, str] = {}
    for name, cfg in configs.items():
        run_dir = out / plan["candidates"][name]["run"]
        progress(f"candidate {name}: training into {run_dir}")
        try:
            result = runner.train(task_name, cfg, run_dir)
        except (ConfigError, DataUnavailable) as e:  # raised before the run starts: this setting cannot take the data
            skipped[name] = str(e)
            progress(f"candidate {name}: skipped, {e}")
            continue
        loss = float(task.selection_loss(result.metrics))
        done.append(Candidate(name, dict(values[name]), run_dir, loss, result.lines, result.resumed))
        progress(f"candidate {name}: validation loss {loss:.6g} ({run_dir}{', resumed' if result.resumed else ''})")
    if not done:
        reasons = "; ".join(dict.fromkeys(skipped.values()))  # each reason once: a base config's fault repeats
        write_versioned_json(out / SELECTION, _FORMAT, _VERSION, {**plan, "status": "failed", "skipped": skipped})
        raise ConfigError(f"no candidate could be trained on this config and data ({reasons})")
    name, rule = task.choose({c.name: c.validation_loss for c in done})
    chosen = next(c for c in done if c.name == name)
    record = {**plan, "status": "done", "rule": rule, "chosen": chosen.name,
              "chosen_run": plan["candidates"][chosen.name]["run"]}  # fmt: skip
    for c in done:
        record["candidates"][c.name]["validation_loss"] = c.validation_loss
    for name, why in skipped.items():
        record["candidates"][name]["skipped"] = why
    write_versioned_json(out / SELECTION, _FORMAT, _VERSION, record)
    return SelectResult(out, done, chosen, rule, skipped)
