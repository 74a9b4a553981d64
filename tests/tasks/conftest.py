"""Shared fixtures: a small text file and a tiny trained charlm run directory."""

from __future__ import annotations

import pytest

from lstmkit.tasks import runner
from texts import SMALL_TEXT


@pytest.fixture(scope="session")
def small_text(tmp_path_factory):
    """About 4 KB of text: enough for a few TBPTT chunks of 4 x 16 characters."""
    path = tmp_path_factory.mktemp("text") / "small.txt"
    path.write_text(SMALL_TEXT * 20, encoding="utf-8")
    return path


TINY = [
    "model.hidden_size=16",
    "model.num_layers=1",
    "model.embedding_dim=8",
    "data.batch_size=4",
    "data.bptt=16",
    "train.max_steps=8",
    "train.warmup_steps=1",
    "train.progress=false",
    "train.tensorboard=false",
    "train.log_every=2",
]


@pytest.fixture(scope="session")
def tiny():
    """Overrides that make any language-model run take about a second."""
    return list(TINY)


@pytest.fixture(scope="session")
def char_run(tmp_path_factory, small_text):
    """A finished tiny charlm run directory (trained once per session, in about a second)."""
    out = tmp_path_factory.mktemp("runs") / "charlm"
    config = runner.build_config("charlm", overrides=[*TINY, f"data.text={small_text}"])
    result = runner.train("charlm", config, out)
    return result
