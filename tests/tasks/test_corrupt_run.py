"""Issue 16: every file of a run directory corrupted in turn (a flipped byte, a truncation); every
command either works or names the damaged file: never a traceback, never a silent wrong answer from
damaged weights (their checksum catches that)."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from lstmkit.cli import app

COMMANDS = [["evaluate"], ["generate", "--length", "5"]]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _files(run):
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def run_files(char_run):
    return _files(char_run.run_dir)


def test_the_run_has_the_files_this_test_expects(run_files):
    for name in ("model.safetensors", "config.toml", "run.json", "tokenizer.json", "data.json", "summary.json"):
        assert name in run_files


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_each_file_damaged_in_turn(char_run, tmp_path, run_files, damage):
    for i, name in enumerate(run_files):
        run = shutil.copytree(char_run.run_dir, tmp_path / f"run{i}")
        path = run / name
        data = bytearray(path.read_bytes())
        if damage == "flip":
            data[len(data) // 2] ^= 0x5A
        else:
            data = data[: len(data) // 2]
        path.write_bytes(bytes(data))
        for command in COMMANDS:
            r = invoke(command[0], run, *command[1:])
            assert r.exception is None or isinstance(r.exception, SystemExit), (name, command, r.output)
            if r.exit_code != 0:
                assert r.exit_code == 1 and path.name in r.output.splitlines()[0], (name, command, r.output)
            elif name == "model.safetensors":
                pytest.fail(f"damaged weights were used: {r.output}")
