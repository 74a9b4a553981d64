"""Issue 16, item 2: damaged or non-finite weights are refused by name, with how to recover."""

from __future__ import annotations

import shutil

import pytest
import safetensors.torch
import torch
from typer.testing import CliRunner

from lstmkit.cli import app


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def run(char_run, tmp_path):
    return shutil.copytree(char_run.run_dir, tmp_path / "run")


@pytest.mark.parametrize("command", [["evaluate"], ["generate", "--length", "5"]])
def test_flipped_byte_in_the_weights_is_named(run, command):
    path = run / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    r = invoke(command[0], run, *command[1:])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert f"{path}: corrupt: its SHA-256 does not match" in r.output
    assert f"run the same `lstmkit train --out {run}` again" in r.output


@pytest.mark.parametrize("command", [["evaluate"], ["generate", "--length", "5"]])
def test_nan_weight_is_refused_by_name(run, command):
    path = run / "model.safetensors"
    tensors = safetensors.torch.load_file(str(path))
    name = sorted(tensors)[0]
    tensors[name].view(-1)[0] = float("nan")
    safetensors.torch.save_file(tensors, str(path))  # as a foreign tool would: no lstmkit checksum
    r = invoke(command[0], run, *command[1:])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert f"tensor {name!r} holds 1 non-finite" in r.output and "val loss: nan" not in r.output


def test_truncated_weights_are_not_reported_as_a_config_mismatch(run):
    path = run / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    r = invoke("evaluate", run)
    assert r.exit_code == 1 and f"{path}: truncated" in r.output and "does not match config" not in r.output, r.output


def test_resuming_rewrites_damaged_weights_from_the_checkpoint(run, char_run, small_text, tiny):
    good = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(good[:100])
    r = invoke("train", *[a for o in [*tiny, f"data.text={small_text}"] for a in ("--set", o)], "--out", run)
    assert r.exit_code == 0, r.output
    fresh = safetensors.torch.load_file(str(run / "model.safetensors"))
    assert all(torch.equal(fresh[k], v) for k, v in safetensors.torch.load(good).items())
    assert invoke("evaluate", run).exit_code == 0
