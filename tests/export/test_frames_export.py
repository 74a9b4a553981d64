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
PIXELS = dict(output="pixels", correlation=False)
MOTION = dict(output="motion", correlation=True)


def _model(max_shift: int = 1, **kw) -> ConvForecaster:
    """The tiny forecaster; with model.output="motion" (the default) its kernels span max_shift pixels."""
    torch.manual_seed(0)
    config = FramesModel(**{**TINY, **kw})
    model = ConvForecaster(config, max_shift=max_shift if config.output == "motion" else None).eval()
    if model.kernels is not None:  # as after training: the kernels and the mask read the state (they start at 0)
        with torch.no_grad():
            model.kernels.weight.normal_(0, 1.0)
            model.mask.weight.normal_(0, 1.0)
            model.mask.bias.zero_()
    return model


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
    motion = frames_tolerance(_model(**MOTION), x)
    assert motion > base  # the kernels, the mask, the correlation and the logit round trip
    assert frames_tolerance(_model(max_shift=2, **MOTION), x) > motion  # the softmax and the warp sum K² terms


def test_motion_tolerance_covers_a_perturbation_of_the_frame_by_the_roundings():
    """The "motion" frame's own float32 error stays inside its bound: the model run in float32 against
    the same model in float64 (one side's error, half of ``frames_tolerance``)."""
    model = _model(num_layers=2, max_shift=2, **MOTION)
    x = _frames()
    with torch.no_grad():
        low = torch.sigmoid(model(x)).double()
        high = torch.sigmoid(model.double()(x.double()))
    assert float((low - high).abs().max()) <= frames_tolerance(model.float(), x) / 2


@pytest.mark.parametrize(("condition", "skip", "output", "correlation"), [
    (True, True, "motion", True), (True, False, "motion", True), (True, True, "motion", False),
    (True, True, "pixels", False), (True, False, "pixels", False), (False, False, "pixels", False)])
def test_the_export_is_within_the_tolerance(condition, skip, output, correlation, tmp_path):
    pytest.importorskip("onnxruntime")
    model = _model(num_layers=2, condition=condition, skip=skip, output=output, correlation=correlation)
    result = frames_to_onnx(model, tmp_path / "m.onnx", T_IN, FRAME)
    assert result.max_abs_error <= frames_tolerance(model, _frames())


@pytest.mark.parametrize(("name", "index", "delta", "kw"), [
    ("encoder.weight_ih_l0", (5, 1, 1, 1), 1e-2, PIXELS), ("head.bias", (0,), 1e-3, PIXELS),
    # "motion": its bound is looser (the kernels' and the correlation's gains), and the warp, not the state,
    # carries most of a frame; these moves change the frames by 2-6x the bound
    ("encoder.weight_ih_l0", (5, 1, 1, 1), 0.1, MOTION), ("kernels.bias", (3,), 3e-2, MOTION),
    ("mask.bias", (1,), 1e-2, MOTION), ("evidence.weight", (4, 4, 0, 0), 3e-2, MOTION)])
def test_catches_a_weight_moved_by_a_small_amount(name, index, delta, kw, tmp_path):
    """The file holds the original weights; the PyTorch model one weight moved by delta. The frames
    then differ by more than the rounding bound, and the verification says so."""
    pytest.importorskip("onnxruntime")
    model = _model(**kw)
    frames_to_onnx(model, tmp_path / "m.onnx", T_IN, FRAME)
    moved = _model(**kw)
    with torch.no_grad():
        moved.get_parameter(name)[index] += delta
    x = _frames()
    with torch.no_grad():
        effect = float((torch.sigmoid(moved(x)) - torch.sigmoid(model(x))).abs().max())
    assert effect > frames_tolerance(moved, x)
    with pytest.raises(ExportVerificationError, match=r"predicted frames differ from PyTorch's by .* \(allowed "):
        verify_frames_onnx(moved, tmp_path / "m.onnx", T_IN, FRAME)
    verify_frames_onnx(model, tmp_path / "m.onnx", T_IN, FRAME)  # the unmoved model passes


def test_the_floor_is_applied_in_the_graph_and_a_moved_weight_is_still_caught(tmp_path):
    """model.floor: the exported frames hold no value in (0, floor) beyond the rounding bound, match PyTorch's
    floored frames, and the verification still catches a moved weight. The floor sits at the median
    raw value, so hundreds of elements lie within the bound of it (the ones either runtime may floor)."""
    ort = pytest.importorskip("onnxruntime")
    import dataclasses

    model, x = _model(**PIXELS), _frames()
    with torch.no_grad():
        raw = torch.sigmoid(model(x))
    floor = float(raw.median())
    model.config = dataclasses.replace(model.config, floor=floor)
    result = frames_to_onnx(model, tmp_path / "m.onnx", T_IN, FRAME)
    allowed = frames_tolerance(model, x)
    assert result.max_abs_error <= allowed
    (got,) = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"frames": x.numpy()})
    assert not ((got > 0) & (got < floor - allowed)).any()
    clear = (raw - floor).abs().numpy() > allowed  # away from the floor both runtimes agree on the side
    assert ((got == 0) == (raw.numpy() < floor))[clear].all() and (got == 0).mean() > 0.3
    moved = _model(**PIXELS)
    moved.config = model.config
    with torch.no_grad():
        moved.head.bias[0] += 1e-2
    with pytest.raises(ExportVerificationError, match=r"predicted frames differ from PyTorch's by "):
        verify_frames_onnx(moved, tmp_path / "m.onnx", T_IN, FRAME)


def test_a_winograd_model_exports_and_verifies(tmp_path, monkeypatch):
    """model.impl="winograd": the same function rounded differently; the graph (direct convolutions) is verified
    against the direct arrangement (no Winograd convolution runs during the export), so it passes with the direct
    convolutions' bound, and the layers get their impl back after."""
    pytest.importorskip("onnxruntime")
    from lstmkit.nn import _convlstm_bptt

    model = _model(num_layers=2, impl="winograd", **PIXELS)
    assert model.encoder.impl == model.forecaster.impl == "winograd"

    def refuse(*args, **kwargs):
        raise AssertionError("the export's verification ran a Winograd convolution")

    monkeypatch.setattr(_convlstm_bptt.WinogradStepConv, "__init__", refuse)
    result = frames_to_onnx(model, tmp_path / "m.onnx", T_IN, FRAME)
    assert result.max_abs_error <= frames_tolerance(model, _frames())
    assert model.encoder.impl == model.forecaster.impl == "winograd"
