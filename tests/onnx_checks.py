"""The onnxruntime check the ONNX export tests share: a file run at new (T, B) against the PyTorch model."""

from __future__ import annotations

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
