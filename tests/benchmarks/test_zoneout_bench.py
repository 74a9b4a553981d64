"""benchmarks/zoneout.py runs and prints its table (one round, a tiny shape): every candidate timed."""

from __future__ import annotations

import subprocess
import sys

from scripts import BENCHMARKS


def test_every_candidate_is_timed_against_torch_nn():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "zoneout.py"), "--rounds", "1", "--tiny"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [r[0] for r in rows[1:]] == ["torch.nn.LSTM (no zoneout)", "lstmkit.LSTM (no zoneout, fused)",
                                        "lstmkit.LSTM zoneout=0.1 (reference loop)",
                                        "torch.nn.LSTMCell loop + zoneout wrapper, 0.1"]  # fmt: skip
    assert all(float(r[1]) > 0 and float(r[2].split()[0]) > 0 for r in rows[1:])
