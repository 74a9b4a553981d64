"""How tight the attention language model's export bound is: onnxruntime and float32 PyTorch against float64.

For a run trained with ``model.attention = true``, at each of the export's verification shapes (T, B, M), and per
output: the largest bound (one evaluation's, ``lstmkit.export.attention_lm.bounds``; the verification allows
twice it), the largest |output|, and the largest share of its own bound that float32 PyTorch's and onnxruntime's
differences from the same model in float64 take, element by element (above 1: the bound was broken there).

    python benchmarks/attention_lm_bounds.py runs/att
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from lstmkit.export import attention_lm as A
from lstmkit.tasks.rundir import open_run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a charlm or wordlm run directory trained with model.attention = true")
    args = parser.parse_args(argv)
    run = open_run(args.run)
    model = run.load_weights(run.task.build_model(run.config)).eval()
    exact_model = copy.deepcopy(model).double()
    path = Path(tempfile.mkdtemp()) / "model.onnx"
    A.export_attention_lm(model, path, verify=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    print("| T, B, M | output | largest bound | largest output | float32 torch / bound | onnxruntime / bound |")
    print("|---|---|---:|---:|---:|---:|")
    for seed, (T, B, M) in enumerate(A.verify_shapes(model)):
        inputs = A.random_inputs(model, T, B, M, seed)
        got = A.run_torch(model, inputs)
        exact = A.run_torch(exact_model, {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()})
        ours = session.run(list(A.OUTPUTS), {k: v.numpy() for k, v in A.graph_inputs(model, inputs).items()})
        bounds = A.bounds(model, inputs)
        for name, out in zip(A.OUTPUTS, ours, strict=True):
            b = bounds[name].numpy()
            if not b.size:
                continue
            ref = exact[name].numpy()
            share_torch = float(np.max(np.abs(got[name].double().numpy() - ref) / b))
            share_ort = float(np.max(np.abs(out.astype(np.float64) - ref) / b))
            print(f"| {T}, {B}, {M} | {name} | {b.max():.3g} | {np.abs(ref).max():.3g} | {share_torch:.3f} | "
                  f"{share_ort:.3f} |")  # fmt: skip


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
