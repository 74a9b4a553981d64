"""benchmarks/ntm_onnx.py: on a smoke ntm-copy run, onnxruntime's bits wrong equal PyTorch's at every test size, the
differences are a share of the derived bound below 1, and both runtimes are timed at every size;
benchmarks/handwriting_step.py times both runtimes for both networks."""

from __future__ import annotations

import subprocess
import sys

from scripts import BENCHMARKS
from smoke import train_smoke


def test_every_test_size_has_the_same_bits_wrong_in_both_runtimes(tmp_path):
    train_smoke("ntm-copy", tmp_path)
    done = subprocess.run([sys.executable, str(BENCHMARKS / "ntm_onnx.py"), str(tmp_path / "run"), "--rounds", "1",
                           "--cases", "2"], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ")]
    sizes = [r for r in rows if len(r) == 7 and r[0].strip().isdigit()]
    assert [int(r[0]) for r in sizes] == [2, 5]  # the smoke run's test lengths
    for _, sequences, ort_bits, torch_bits, _, share, largest in sizes:
        assert ort_bits == torch_bits and int(sequences) > 0
        assert 0 <= float(share) < 1, share
        assert float(largest) > 0
    timed = [r for r in rows if len(r) == 4 and r[0].strip()[:1].isdigit()]  # "size (T)" rows
    assert len(timed) == 2 and all(float(r[1]) > 0 and float(r[2]) > 0 for r in timed)


def test_the_handwriting_step_benchmark_times_both_runtimes_for_both_networks():
    for extra in ([], ["--unconditional"]):
        done = subprocess.run([sys.executable, str(BENCHMARKS / "handwriting_step.py"), "--rounds", "1", "--text", "5",
                               *extra], capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr
        rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ")][1:]
        want = ["PyTorch forward", "onnxruntime"] + ([] if extra else ["PyTorch, reference window",
                                                                       "PyTorch, fused window"])
        assert [r[0].strip() for r in rows] == want
        assert all(float(r[1]) > 0 for r in rows)

