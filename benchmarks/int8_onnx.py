"""Size and onnxruntime latency of a run's float and int8 ONNX files (``lstmkit export RUN --int8``), one thread.

Exports the run into a temporary folder (both files verified), then times ``session.run`` of each
on the task's example input (``Task.example_input``: 256 steps, batch 1) and, for language models, on
one step (T = 1, the streaming case), interleaved (``_timing.interleaved``); the ratio is the median
over rounds of int8 time / float time in the same round.

    python benchmarks/int8_onnx.py RUN_DIR [--rounds 20] [--per-tensor] [--full-range]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import onnxruntime as ort
import torch
from _timing import interleaved, machine_description, median, paired_ratios, quartiles

from lstmkit.export.onnx_model import random_inputs
from lstmkit.export.rundir import export_run
from lstmkit.tasks.rundir import open_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--per-tensor", action="store_true")
    p.add_argument("--full-range", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    print(machine_description())
    with tempfile.TemporaryDirectory() as tmp:
        result = export_run(a.run_dir, out=Path(tmp) / "model.onnx", int8=True, per_channel=not a.per_tensor,
                            reduce_range=not a.full_range)  # fmt: skip
        for line in result.describe():
            print(line)
        run = open_run(a.run_dir)
        model = run.load_weights(run.task.build_model(run.config))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        sessions = {name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                    for name, path in (("float", Path(tmp) / "model.onnx"), ("int8", result.path))}  # fmt: skip
        names = [i.name for i in sessions["float"].get_inputs()]
        (T, B) = (256, 1)
        cases = {f"T={T}, B={B}": random_inputs(model, T, B, lengths=False)}
        if "h0" in names:
            cases["T=1, B=1 (one step)"] = random_inputs(model, 1, 1, lengths=False)
        print("\n| input | float file | int8 file | float (ms) | int8 (ms) | int8 / float [IQR] |")
        print("|---|---:|---:|---:|---:|---|")
        for label, inputs in cases.items():
            if "lengths" in inputs:
                inputs["lengths"] = torch.full_like(inputs["lengths"], next(iter(inputs.values())).shape[0])
            feed = {n: inputs[n].numpy() for n in names}
            times = interleaved({k: (lambda s=s, f=feed: s.run(None, f)) for k, s in sessions.items()}, a.rounds)
            r = paired_ratios(times["int8"], times["float"])
            lo, hi = quartiles(r)
            print(f"| {label} | {result.float_bytes:,} B | {result.int8_bytes:,} B | "
                  f"{1e3 * median(times['float']):.3f} | {1e3 * median(times['int8']):.3f} | "
                  f"{median(r):.2f} [{lo:.2f}, {hi:.2f}] |")
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
