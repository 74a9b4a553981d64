"""benchmarks/cells.py: a short run writes a row per dtype, shape and mode, and bad shapes are refused by name."""

from __future__ import annotations

import subprocess
import sys

from scripts import BENCHMARKS


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / "cells.py"), *map(str, args)], capture_output=True,
                          text=True)  # fmt: skip


def rows(path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("| float")]


def assert_two_timed_rows(path) -> None:
    """One shape and dtype: an inference and a training row, each with a positive ratio."""
    found = rows(path)
    assert len(found) == 2 and all(float(row.split("|")[5].split()[0]) > 0 for row in found)


def test_a_short_run_reports_every_dtype_shape_and_mode(tmp_path):
    done = run("--shapes", "2x3,1x4", "--steps", 2, "--rounds", 1, "--out", tmp_path / "cells.md")
    assert done.returncode == 0, done.stderr
    assert [row.split("|")[1:5] for row in rows(tmp_path / "cells.md")] == [
        [f" {dtype} ", f" {B} ", f" {H} ", f" {mode} "]
        for dtype in ("float32", "float64") for B, H in ((2, 3), (1, 4))
        for mode in ("inference", "training (forward + backward)")
    ]  # fmt: skip


def test_zoneout_runs_both_cells_with_it(tmp_path):
    done = run("--shapes", "2x3", "--steps", 2, "--rounds", 1, "--dtypes", "float32", "--zoneout", 0.3,
               "--out", tmp_path / "cells.md")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_two_timed_rows(tmp_path / "cells.md")
    done = run("--zoneout", 1)
    assert done.returncode == 2 and "--zoneout must be in [0, 1), got 1.0" in done.stderr


def test_bad_shapes_and_counts_are_refused():
    done = run("--shapes", "97by51")
    assert done.returncode == 2 and "a shape is BxH (batch x hidden size), e.g. 97x51; got '97by51'" in done.stderr
    done = run("--shapes", "0x5")
    assert done.returncode == 2 and "B and H must be >= 1, got '0x5'" in done.stderr
    done = run("--rounds", 0)
    assert done.returncode == 2 and "--steps, --rounds and --threads must be >= 1" in done.stderr


def test_gru_rnn_and_weight_dropout_runs(tmp_path):
    for extra in (["--cell", "gru", "--weight-dropout", 0.5], ["--cell", "rnn"], ["--weight-dropout", 0.3]):
        done = run("--shapes", "2x3", "--steps", 2, "--rounds", 1, "--dtypes", "float32", *extra,
                   "--out", tmp_path / "cells.md")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert_two_timed_rows(tmp_path / "cells.md")
    done = run("--weight-dropout", 1)
    assert done.returncode == 2 and "--weight-dropout must be in [0, 1), got 1.0" in done.stderr
    done = run("--cell", "gru", "--zoneout", 0.1)
    assert done.returncode == 2 and "--zoneout compares with the LSTM cell's zoneout wrapper" in done.stderr
