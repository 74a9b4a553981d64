"""A task's seconds-long smoke run for tests, skipped where the task's data package is missing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from lstmkit.tasks import DataUnavailable, get_task, runner
from lstmkit.train import set_values


def train_smoke(name: str, root: Path, overrides: Mapping[str, Any] | None = None):
    """Train task ``name`` with its smoke config (and ``{"section.key": value}`` ``overrides``) under ``root``
    (the run in ``root / "run"``); the runner's result. Skips the test when the task's data is unavailable."""
    config = set_values(get_task(name).smoke_config(root), overrides or {})
    try:
        get_task(name).check_data(config)
    except DataUnavailable as e:
        pytest.skip(str(e))
    return runner.train(name, config, root / "run")
