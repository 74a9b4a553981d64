"""benchmarks/train_loss_windows.py: the mean training loss over windows of steps from a run's metrics.csv, and a bad
window refused by name."""

from __future__ import annotations

import subprocess
import sys

from scripts import BENCHMARKS


def test_train_loss_windows_reads_the_runs_metrics(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    rows = ["step,epoch,split,loss,lr,grad_norm,items_per_s"] + [f"{s},0,train,{s / 10},0.1,1.0,5" for s in
                                                                   range(10, 101, 10)] + ["100,0,val,9.9,0.1,,"]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    (run / "summary.json").write_text('{"perplexity": 84.0, "test_perplexity": 83.0, "steps": 100}')
    done = subprocess.run([sys.executable, str(BENCHMARKS / "train_loss_windows.py"), str(run), "--windows",
                           "10-30,90-100"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"| {run} | 2.000 | 9.500 | perplexity 84.00, test_perplexity 83.00 |"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "train_loss_windows.py"), str(run), "--windows", "9-3"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "a window is FIRST-LAST steps, e.g. 900-1000; got '9-3'" in done.stderr
