"""The frames (moving-digits) ONNX export's verification tolerance: derived from the float32 rounding
bound (``frames_tolerance``), growing with the convolutions' fan-in and the steps, and tight enough
on a tiny model to catch one weight moved by a small amount."""

from __future__ import annotations

import pytest
import torch

from lstmkit.export.frames import frames_to_onnx, frames_tolerance, verify_frames_onnx
from lstmkit.export.onnx_model import ExportVerificationError
from lstmkit.models import ConvForecaster, FramesModel

TINY = dict(hidden_size=4, kernel_size=3, patch=2, num_layers=1, horizon=3)
T_IN, FRAME = 4, (8, 8)


def _model(**kw) -> ConvForecaster:
    torch.manual_seed(0)
    return ConvForecaster(FramesModel(**{**TINY, **kw})).eval()


def _frames(T: int = T_IN, frame=FRAME) -> torch.Tensor:
    """The first input ``verify_frames_onnx`` checks (seed 0, B = 2)."""
    return torch.rand(T, 2, 1, *frame, generator=torch.Generator().manual_seed(0))


def test_tolerance_grows_with_the_fan_in_the_steps_and_the_layers():
    x = _frames()
    base = frames_tolerance(_model(), x)
    assert frames_tolerance(_model(kernel_size=5), x) > base  # K = (C + Hc) k^2 + 2 terms per gate
    assert frames_tolerance(_model(hidden_size=8), x) > base
    assert frames_tolerance(_model(), _frames(2 * T_IN)) > base  # T_in + horizon steps add up
    assert frames_tolerance(_model(horizon=6), x) > base
    assert frames_tolerance(_model(num_layers=2), x) > base  # a layer's error enters the next


@pytest.mark.parametrize(("condition", "skip"), [(True, True), (True, False), (False, False)])
def test_the_export_is_within_the_tolerance(condition, skip, tmp_path):
    pytest.importorskip("onnxruntime")
    model = _model(num_layers=2, condition=condition, skip=skip)
    result = frames_to_onnx(model, tmp_path / "m.onnx", T_IN, FRAME)
    assert result.max_abs_error <= frames_tolerance(model, _frames())


@pytest.mark.parametrize(("name", "index", "delta"), [("encoder.weight_ih_l0", (5, 1, 1, 1), 1e-2),
                                                      ("head.bias", (0,), 1e-3)])
def test_catches_a_weight_moved_by_a_small_amount(name, index, delta, tmp_path):
    """The file holds the original weights; the PyTorch model one weight moved by delta. The frames
    then differ by more than the rounding bound, and the verification says so."""
    pytest.importorskip("onnxruntime")
    model = _model()
    frames_to_onnx(model, tmp_path / "m.onnx", T_IN, FRAME)
    moved = _model()
    with torch.no_grad():
        moved.get_parameter(name)[index] += delta
    x = _frames()
    with torch.no_grad():
        effect = float((torch.sigmoid(moved(x)) - torch.sigmoid(model(x))).abs().max())
    assert effect > frames_tolerance(moved, x)
    with pytest.raises(ExportVerificationError, match=r"predicted frames differ from PyTorch's by .* \(allowed "):
        verify_frames_onnx(moved, tmp_path / "m.onnx", T_IN, FRAME)
    verify_frames_onnx(model, tmp_path / "m.onnx", T_IN, FRAME)  # the unmoved model passes
