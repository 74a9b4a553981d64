"""benchmarks/second_order.py: a short run writes a row per shape and step, and bad shapes are refused by name."""

from __future__ import annotations

import subprocess
import sys

from scripts import BENCHMARKS


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / "second_order.py"), *map(str, args)], capture_output=True,
                          text=True)  # fmt: skip


def test_a_short_run_reports_every_shape_and_step(tmp_path):
    done = run("--shapes", "2x3,1x4", "--steps", 2, "--rounds", 1, "--out", tmp_path / "second_order.md")
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "second_order.md").read_text().splitlines()
    rows = [line for line in lines if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert [row.split("|")[1:5] for row in rows] == [
        [f" {B} ", f" {H} ", " 2 ", f" {step} "]
        for B, H in ((2, 3), (1, 4))
        for step in ("training (forward + backward)", "gradient penalty (create_graph)")
    ]  # fmt: skip


def test_bad_shapes_and_counts_are_refused():
    done = run("--shapes", "16by128")
    assert done.returncode == 2 and "a shape is BxH (batch x hidden size), e.g. 16x128; got '16by128'" in done.stderr
    done = run("--steps", 0)
    assert done.returncode == 2 and "--steps, --rounds and --threads must be >= 1" in done.stderr
