"""Issue 16, item 1: no command writes outside its run directory through a planted symbolic link.

For every file name a command writes into a run directory, a link to a file outside is planted
under that name; the command must refuse (one line naming the path, exit 1) and leave the target
as it was. `export` and every JSON file already went through the atomic writer; the plots, the
JSON of `diagnose`, ``config.toml`` and ``metrics.csv`` now do too (or open without following).
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.tasks import runner
from lstmkit.tasks.registry import get_task

# Files `lstmkit train --out RUN` writes again when it resumes (or finishes) a run.
TRAIN_REWRITES = ["metrics.csv", "summary.json", "curves.png", "model.safetensors"]
# Files a fresh `lstmkit train` writes: planted in a fresh --out, they make it refuse the directory.
TRAIN_WRITES = [*TRAIN_REWRITES, "run.json", "config.toml", "tokenizer.json", "data.json"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("precious\n")
    return path


def plant(run_dir, name, victim):
    target = run_dir / name
    if target.exists():
        target.unlink()
    target.symlink_to(victim)
    return target


@pytest.mark.parametrize("name", TRAIN_REWRITES)
def test_train_resuming_a_run_never_writes_through_a_link(char_run, small_text, tiny, tmp_path, victim, name):
    run = shutil.copytree(char_run.run_dir, tmp_path / "run")
    plant(run, name, victim)
    r = invoke("train", *[a for o in [*tiny, f"data.text={small_text}"] for a in ("--set", o)], "--out", run)
    assert r.exit_code == 1, r.output
    assert f"{run / name}: is a symbolic link" in r.output and "Traceback" not in r.output
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("name", TRAIN_WRITES)
def test_train_into_a_fresh_directory_holding_a_link_is_refused(small_text, tiny, tmp_path, victim, name):
    run = tmp_path / "run"
    run.mkdir()
    plant(run, name, victim)
    r = invoke("train", *[a for o in [*tiny, f"data.text={small_text}"] for a in ("--set", o)], "--out", run)
    assert r.exit_code == 1 and victim.read_text() == "precious\n", r.output


def test_forecast_never_writes_through_a_link(tmp_path, victim):
    t = np.arange(60)
    (tmp_path / "s.csv").write_text("y\n" + "\n".join(f"{20 + 5 * np.sin(2 * np.pi * i / 6):.4f}" for i in t) + "\n")
    config = runner.build_config("forecast", overrides=[
        f"data.csv={tmp_path / 's.csv'}", "data.column=y", "data.window=6", "data.test_size=10", "data.val_size=8",
        "model.hidden_size=8", "train.max_steps=3", "train.warmup_steps=1", "train.progress=false",
        "train.tensorboard=false"])  # fmt: skip
    run = runner.train("forecast", config, tmp_path / "run").run_dir
    plant(run, "forecast-end-h12.png", victim)
    r = invoke("forecast", run, "--horizon", "12")
    assert r.exit_code == 1 and "forecast-end-h12.png: is a symbolic link" in r.output, r.output
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("name", ["gradient_flow.png", "gradient_flow.json"])
def test_diagnose_never_writes_through_a_link(tmp_path, victim, name):
    smoke = get_task("adding").smoke_config(tmp_path)
    smoke = dataclasses.replace(smoke, train=dataclasses.replace(smoke.train, max_steps=2, progress=False))
    run = runner.train("adding", smoke, tmp_path / "run").run_dir
    plant(run, name, victim)
    r = invoke("diagnose", run, "--batch", "2")
    assert r.exit_code == 1 and f"{name}: is a symbolic link" in r.output, r.output
    assert victim.read_text() == "precious\n"
