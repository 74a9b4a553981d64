"""What the ONNX export tests share: a file run at new (T, B) against the PyTorch model, and the text generation
example run with onnxruntime alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from lstmkit.export.onnx_model import random_inputs, run_torch, verification_tolerance


def check_in_onnxruntime(model, path, *, lengths: bool, shapes=((13, 5), (2, 4))):
    """Independently of to_onnx's own check: run the file at new (T, B) and compare every output."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed, (T, B) in enumerate(shapes, start=100):
        inputs = random_inputs(model, T, B, lengths=lengths, seed=seed)
        want = run_torch(model, inputs)
        got = session.run(list(want), {k: v.numpy() for k, v in inputs.items()})
        atol, rtol = verification_tolerance(model, inputs)  # the float32 rounding bound at these sizes
        for (name, ref), out in zip(want.items(), got, strict=True):
            np.testing.assert_allclose(out, ref.numpy(), atol=atol, rtol=rtol, err_msg=f"{name} at T={T}, B={B}")


GENERATE_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "onnx_generate.py"


def generate_with_the_example(run_dir: Path, prompt: str, length: int) -> str:
    """examples/onnx_generate.py's greedy text (its stdout) for an exported run, with torch and lstmkit made
    unimportable: onnxruntime and numpy only."""
    code = (
        "import sys, runpy; sys.modules['torch'] = None; sys.modules['lstmkit'] = None; "
        f"sys.argv = [{str(GENERATE_EXAMPLE)!r}, {str(run_dir)!r}, '--prompt', {prompt!r}, '--length', "
        f"'{length}', '--temperature', '0']; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout
