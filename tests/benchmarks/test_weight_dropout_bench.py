"""benchmarks/weight_dropout.py runs and prints its table (one round, a tiny shape): every candidate timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "weight_dropout.py"


def test_every_candidate_is_timed_against_torch_nn():
    done = subprocess.run([sys.executable, str(BENCHMARK), "--rounds", "1", "--tiny"], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [r[0] for r in rows[1:]] == ["torch.nn.LSTM", "torch.nn.LSTM + weight drop", "lstmkit.LSTM",
                                        "lstmkit.LSTM weight_dropout=0.5"]  # fmt: skip
    assert all(float(r[1]) > 0 and float(r[2].split()[0]) > 0 for r in rows[1:])
    assert rows[1][2].startswith("1.00 ")  # the baseline over itself


def test_the_mask_table_times_both_draws():
    done = subprocess.run([sys.executable, str(BENCHMARK), "--rounds", "1", "--tiny", "--masks"], capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [r[0] for r in rows[1:]] == ["F.dropout", "weight_drop_mask"]
    assert all(float(r[1]) > 0 for r in rows[1:])
