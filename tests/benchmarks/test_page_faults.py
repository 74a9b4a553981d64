"""benchmarks/page_faults.py: its shape argument and one tiny run (the counts themselves are the machine's)."""

from __future__ import annotations

import pytest

from scripts import load_benchmark as _load


def test_shapes_parse_and_bad_ones_are_refused():
    pf = _load("page_faults")
    assert pf.parse_shapes("B64H512, B1H8") == [(64, 512), (1, 8)]
    with pytest.raises(SystemExit, match=r"--shapes: 'B64' is not of the form BxHy, e.g. B64H512"):
        pf.parse_shapes("B64H512,B64")


def test_tiny_run_reports_both_layers(tmp_path):
    pf = _load("page_faults")
    out = tmp_path / "faults.md"
    pf.main(["--shapes", "B2H8", "--steps", "3", "--calls", "2", "--out", str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| B2H8 |")]
    assert len(rows) == 1 and len(rows[0].split("|")) == 6  # shape, MB and two counts
    with pytest.raises(SystemExit, match="--steps and --calls must be >= 1"):
        pf.main(["--steps", "0"])
