"""A task's seconds-long smoke run for tests, skipped where the task's data package is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from lstmkit.tasks import DataUnavailable, get_task, runner


def train_smoke(name: str, root: Path):
    """Train task ``name`` with its smoke config under ``root`` (the run in ``root / "run"``); the
    runner's result. Skips the test when the task's data is unavailable."""
    config = get_task(name).smoke_config(root)
    try:
        get_task(name).check_data(config)
    except DataUnavailable as e:
        pytest.skip(str(e))
    return runner.train(name, config, root / "run")
