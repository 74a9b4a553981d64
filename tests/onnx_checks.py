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


def check_writer_argument_errors(write, model, name: str, kind: str, to_onnx_hint: str, tmp_path: Path) -> None:
    """A graph writer beside ``to_onnx`` (``export_attention_lm``, ``export_memory``, ``export_handwriting``) refuses
    another model, float64 parameters, a missing directory and an old opset by name, ``to_onnx`` points to it
    (``to_onnx_hint``, a regex), and nothing is written."""
    import copy

    import pytest
    import torch

    from lstmkit.export import to_onnx

    out = tmp_path / "m.onnx"
    with pytest.raises(TypeError, match=rf"^model must be an lstmkit {name} \(export_kind '{kind}'\), got LSTM$"):
        write(torch.nn.LSTM(3, 4), out)
    with pytest.raises(TypeError, match=r"^model must have float32 parameters to export, got \['torch.float64'\]"):
        write(copy.deepcopy(model).double(), out)
    with pytest.raises(ValueError, match=r"^path must be a file name in an existing directory, got "):
        write(model, tmp_path / "missing" / "m.onnx")
    with pytest.raises(ValueError, match=r"^opset must be an integer in \[17, "):
        write(model, out, opset=13)
    with pytest.raises(TypeError, match=to_onnx_hint):
        to_onnx(model, out)
    assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())


def docs_python_block(marker: str) -> str:
    """The python block of docs/deployment.md that contains ``marker`` (exactly one must)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "deployment.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    [block] = [b for b in blocks if marker in b]
    return block


def cpu_session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def perturbed(model, seed: int, scale: float):
    """``model`` with every parameter moved by ``scale`` times a standard normal draw (seeded), in eval mode: off the
    initial values that zero or peak some branches."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model.eval()
