"""benchmarks/zoneout.py runs and prints its table (one round, a tiny shape), training and inference: every
candidate timed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scripts import BENCHMARKS


@pytest.mark.parametrize("mode", [[], ["--inference"]], ids=["training", "inference"])
def test_every_candidate_is_timed_against_torch_nn(mode):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "zoneout.py"), "--rounds", "1", "--tiny", *mode],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [r[0] for r in rows[1:]] == ["torch.nn.LSTM (no zoneout)", "lstmkit.LSTM (no zoneout)",
                                        "lstmkit.LSTM zoneout=0.1 (kernel)",
                                        "lstmkit.LSTM zoneout=0.1 (reference loop)",
                                        "torch.nn.LSTMCell loop + zoneout wrapper, 0.1"]  # fmt: skip
    assert all(float(r[1]) > 0 and float(r[2].split()[0]) > 0 for r in rows[1:])
    assert ("eval-mode forward" in done.stdout) == bool(mode)


def test_the_draws_are_timed_against_torch_rand():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "zoneout.py"), "--rounds", "1", "--tiny", "--draws"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [r[0] for r in rows[1:]] == ["torch.rand(5, 16)", "zone_weights((0.1, 0.1), training)"]


def test_the_kernel_alone_is_timed_with_and_without_zoneout_weights():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "zoneout.py"), "--rounds", "1", "--tiny", "--kernel"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [r[0] for r in rows[1:]] == ["kernel, no zoneout", "kernel, zoneout weights"]
    assert all(float(r[1]) > 0 for r in rows[1:])
