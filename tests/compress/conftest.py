"""Tiny trained runs to compress: a two-layer charlm and a bidirectional classify run (a second each)."""

from __future__ import annotations

import pytest

from lstmkit.tasks import runner
from lstmkit.tasks.classify import write_toy_ts
from texts import SMALL_TEXT

QUIET = ["train.progress=false", "train.tensorboard=false", "train.log_every=2", "train.warmup_steps=1"]


@pytest.fixture(scope="session")
def char_run(tmp_path_factory):
    """charlm: 2 layers of 16 units, embedding 8, 8 steps on 4 KB of text."""
    root = tmp_path_factory.mktemp("compress-char")
    text = root / "small.txt"
    text.write_text(SMALL_TEXT * 20, encoding="utf-8")
    overrides = ["model.hidden_size=16", "model.num_layers=2", "model.embedding_dim=8", "model.dropout=0.0",
                 "data.batch_size=4", "data.bptt=16", "train.max_steps=8", "train.max_minutes=none",
                 f"data.text={text}", *QUIET]  # fmt: skip
    return runner.train("charlm", runner.build_config("charlm", overrides=overrides), root / "run").run_dir


@pytest.fixture(scope="session")
def classify_run(tmp_path_factory):
    """classify: a bidirectional 2-layer LSTM of 8 units on a toy two-class .ts problem, 6 steps."""
    root = tmp_path_factory.mktemp("compress-classify")
    train, test = write_toy_ts(root)
    overrides = ["model.hidden_size=8", "model.num_layers=2", "model.dropout=0.0", f"data.train={train}",
                 f"data.test={test}", "data.batch_size=8", "train.epochs=3", "train.max_steps=6", *QUIET]  # fmt: skip
    return runner.train("classify", runner.build_config("classify", overrides=overrides), root / "run").run_dir
