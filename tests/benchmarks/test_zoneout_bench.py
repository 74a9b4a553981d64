"""benchmarks/zoneout.py runs and prints its tables (one round, a tiny shape): the layer's training step and
eval-mode forward, the draws alone, the kernel alone; every candidate timed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scripts import BENCHMARKS


def _rows(*flags: str) -> tuple[list[list[str]], str]:
    """The table rows (cells stripped, header first) and the whole output of one tiny run with ``flags``."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / "zoneout.py"), "--rounds", "1", "--tiny", *flags],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in done.stdout.splitlines() if line.startswith("| ")]
    assert all(float(r[2].split()[0]) > 0 for r in rows[1:])  # every candidate timed: a ratio (tiny times print 0.00)
    return rows, done.stdout


@pytest.mark.parametrize("mode", [[], ["--inference"]], ids=["training", "inference"])
def test_every_candidate_is_timed_against_torch_nn(mode):
    rows, out = _rows(*mode)
    assert [r[0] for r in rows[1:]] == ["torch.nn.LSTM (no zoneout)", "lstmkit.LSTM (no zoneout)",
                                        "lstmkit.LSTM zoneout=0.1 (kernel)",
                                        "lstmkit.LSTM zoneout=0.1 (reference loop)",
                                        "torch.nn.LSTMCell loop + zoneout wrapper, 0.1"]  # fmt: skip
    assert all(float(r[1]) > 0 for r in rows[1:])
    assert ("eval-mode forward" in out) == bool(mode)


def test_the_draws_are_timed_against_torch_rand():
    rows, _ = _rows("--draws")
    assert [r[0] for r in rows[1:]] == ["torch.rand(5, 16)", "zone_weights((0.1, 0.1), training)"]


def test_the_kernel_alone_is_timed_with_and_without_zoneout_weights():
    rows, _ = _rows("--kernel")
    assert [r[0] for r in rows[1:]] == ["kernel, no zoneout", "kernel, zoneout weights"]
