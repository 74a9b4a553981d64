"""benchmarks/page_faults.py: its shape argument and one tiny run (the counts themselves are the machine's)."""

from __future__ import annotations

import os

import pytest

from scripts import load_benchmark as _load


def test_shapes_parse_and_bad_ones_are_refused():
    pf = _load("page_faults")
    assert pf.parse_shapes("B64H512, B1H8") == [(64, 512), (1, 8)]
    with pytest.raises(SystemExit, match=r"--shapes: 'B64' is not of the form BxHy, e.g. B64H512"):
        pf.parse_shapes("B64H512,B64")


def test_tiny_run_reports_every_candidate_and_restores_the_pool_setting(tmp_path, monkeypatch):
    pf = _load("page_faults")
    monkeypatch.setenv("LSTMKIT_BUFFER_CACHE_MB", "123")
    out = tmp_path / "faults.md"
    pf.main(["--shapes", "B2H8", "--steps", "3", "--calls", "2", "--out", str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| B2H8 |")]
    assert len(rows) == 1 and len(rows[0].split("|")) == 7  # shape, MB and three counts
    assert os.environ["LSTMKIT_BUFFER_CACHE_MB"] == "123"
    with pytest.raises(SystemExit, match="--steps and --calls must be >= 1"):
        pf.main(["--steps", "0"])
