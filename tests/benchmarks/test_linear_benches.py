"""benchmarks/linear.py and benchmarks/handwriting_train_step.py run and print their tables (one round each, small
sizes): every candidate timed, every ratio positive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def table_rows(stdout: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("|")[1:-1]] for line in stdout.splitlines() if line.startswith("| ")][1:]


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_products_table_has_every_row_count_and_shape():
    rows = table_rows(run(str(BENCHMARKS / "linear.py"), "--rounds", "1"))
    assert [r[0] for r in rows] == ["1", "4", "16", "32", "64", "128", "256", "1024"]
    for r in rows:
        assert len(r) == 4 and all(float(cell.split()[0]) > 0 for cell in r[1:])


def test_the_wordlm_step_and_the_handwriting_step_time_every_candidate():
    rows = table_rows(run(str(BENCHMARKS / "linear.py"), "--wordlm", "--rounds", "1"))
    assert [r[0] for r in rows] == ["torch.nn.Linear head", "lstmkit.nn.Linear head"]
    rows = table_rows(run(str(BENCHMARKS / "handwriting_train_step.py"), "--rounds", "1", "--points", "20",
                          "--text", "5"))  # fmt: skip
    assert [r[0] for r in rows] == ["session 40", "fused window", "fused window + lstmkit Linear"]
    assert all(float(r[1]) > 0 and float(r[2].split()[0]) > 0 for r in rows)
