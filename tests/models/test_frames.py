"""``ConvForecaster``'s "motion" output (Finn et al. 2016's DNA): the warp of the previous frame by
per-pixel softmax kernels, its compositing with the generated frame, and the model around them."""

from __future__ import annotations

import pytest
import torch

from lstmkit.models import ConvForecaster, FramesModel
from lstmkit.models.frames import PROB_EPS, composite, warp

TINY = dict(hidden_size=4, kernel_size=3, patch=2, num_layers=1, horizon=3, output="motion", correlation=True)


def one_hot(K: int, tap: int, shape=(1, 8, 8)) -> torch.Tensor:
    """Kernels (B, K², H, W), all their weight on tap ``tap`` at every pixel."""
    k = torch.zeros(shape[0], K * K, *shape[1:])
    k[:, tap] = 1.0
    return k


def test_a_one_hot_kernel_shifts_the_frame_exactly():
    frame = torch.zeros(1, 1, 8, 8)
    frame[0, 0, 2:4, 3] = torch.tensor([0.25, 0.75])  # a 2-pixel bar in column 3, rows 2-3
    frame[0, 0, 7, 7] = 1.0  # a corner pixel: moved out of the frame, it is lost (zero padding)
    s = 2
    K = 2 * s + 1
    for dy, dx in [(0, 0), (1, 2), (-2, 1), (2, -2)]:  # the frame moved down dy rows and right dx columns
        want = torch.zeros(1, 1, 8, 8)
        want[0, 0, 2 + dy : 4 + dy, 3 + dx] = torch.tensor([0.25, 0.75])
        if (dy, dx) == (0, 0):
            want[0, 0, 7, 7] = 1.0
        elif dy <= 0 and dx <= 0:
            want[0, 0, 7 + dy, 7 + dx] = 1.0
        got = warp(frame, one_hot(K, (s - dy) * K + (s - dx)))
        assert torch.equal(got, want), (dy, dx)


def test_warp_rejects_kernels_that_are_not_an_odd_square():
    with pytest.raises(ValueError, match="K² channels with K odd"):
        warp(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4, 4))  # K = 2
    with pytest.raises(ValueError, match="K² channels with K odd"):
        warp(torch.zeros(1, 1, 4, 4), torch.zeros(1, 8, 4, 4))


def test_composite_mixes_by_the_mask():
    g = torch.Generator().manual_seed(0)
    frame, generated = torch.rand(2, 1, 6, 6, generator=g), torch.rand(2, 1, 6, 6, generator=g)
    centre = one_hot(3, 4, (2, 6, 6))  # the identity kernel
    big = torch.full((2, 1, 6, 6), 40.0)
    assert torch.allclose(composite(frame, centre, big, generated), frame)  # mask 1: the warped frame
    assert torch.allclose(composite(frame, centre, -big, generated), generated)  # mask 0: the generated one
    half = composite(frame, centre, torch.zeros(2, 1, 6, 6), generated)
    assert torch.allclose(half, (frame + generated) / 2)


def test_warp_and_composite_gradcheck():
    g = torch.Generator().manual_seed(1)
    d = torch.float64
    frame = torch.rand(2, 1, 5, 5, generator=g, dtype=d, requires_grad=True)
    kernels = torch.softmax(torch.randn(2, 9, 5, 5, generator=g, dtype=d), 1).requires_grad_()
    mask = torch.randn(2, 1, 5, 5, generator=g, dtype=d, requires_grad=True)
    generated = torch.rand(2, 1, 5, 5, generator=g, dtype=d, requires_grad=True)
    assert torch.autograd.gradcheck(composite, (frame, kernels, mask, generated))
    logits = torch.randn(2, 9, 5, 5, generator=g, dtype=d, requires_grad=True)  # through the softmax too
    assert torch.autograd.gradcheck(lambda f, k: warp(f, torch.softmax(k, 1)), (frame, logits))


def _motion_model(**kw) -> ConvForecaster:
    torch.manual_seed(0)
    return ConvForecaster(FramesModel(**{**TINY, **kw}), max_shift=1)


def test_the_model_kernels_sum_to_one_and_its_frames_are_probabilities():
    model = _motion_model()
    with torch.no_grad():  # large weights: the kernels and the mask far from their start
        model.kernels.weight.normal_(0, 3.0)
        model.mask.weight.normal_(0, 3.0)
    x = torch.rand(4, 2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    seen = []
    model.kernels.register_forward_hook(lambda m, i, out: seen.append(torch.softmax(out, 1)))
    with torch.no_grad():
        frames = torch.sigmoid(model(x))
    assert len(seen) == model.config.horizon and seen[0].shape[1] == 9  # (2 s + 1)² taps, s = 1
    for k in seen:
        assert torch.allclose(k.sum(1), torch.ones(()))
    assert frames.shape == (3, 2, 1, 8, 8)
    assert frames.min() >= PROB_EPS * (1 - 1e-3) and frames.max() <= 1 - PROB_EPS * (1 - 1e-3)
    logits = model(x)
    assert torch.isfinite(logits).all()
    logits.mean().backward()  # gradients reach every head, the kernels and the mask included
    for name in ("kernels.weight", "mask.weight", "head.weight", "encoder.weight_hh_l0"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_motion_is_the_warp_of_the_previous_frame_when_the_mask_is_one():
    model = _motion_model()
    with torch.no_grad():
        model.kernels.weight.zero_()
        model.kernels.bias.fill_(-50.0)
        model.kernels.bias[5] = 50.0  # tap (1, 2) of 3 x 3: every pixel reads its right neighbour
        model.mask.weight.zero_()
        model.mask.bias.fill_(50.0)
    x = torch.rand(4, 1, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        frames = torch.sigmoid(model(x))[:, 0, 0]  # (3, 8, 8)
    want = x[-1, 0, 0]
    for t in range(3):  # each frame is the previous one moved one column left
        want = torch.cat([want[:, 1:], torch.zeros(8, 1)], dim=1).clamp(PROB_EPS, 1 - PROB_EPS)
        assert torch.allclose(frames[t], want, atol=1e-5), t


def test_motion_needs_max_shift_and_condition():
    with pytest.raises(ValueError, match="needs max_shift"):
        ConvForecaster(FramesModel(**TINY))
    with pytest.raises(ValueError, match="needs max_shift"):
        ConvForecaster(FramesModel(**TINY), max_shift=0)
    pixels = {**TINY, "output": "pixels", "correlation": False}
    with pytest.raises(ValueError, match=r"max_shift applies to model\.output=.motion. only"):
        ConvForecaster(FramesModel(**pixels), max_shift=2)
    with pytest.raises(ValueError, match=r"needs model\.condition"):
        FramesModel(**{**TINY, "condition": False, "skip": False})
    with pytest.raises(ValueError, match=r"model\.output must be one of"):
        FramesModel(**{**TINY, "output": "flow"})
    with pytest.raises(ValueError, match=r"model\.correlation needs model\.output='motion'"):
        FramesModel(**{**pixels, "correlation": True})
    with pytest.raises(ValueError, match="at least 2 given frames"):
        _motion_model()(torch.zeros(1, 1, 1, 8, 8))
    pixels = ConvForecaster(FramesModel(**pixels))  # the pixel head alone still builds
    assert pixels.kernels is None and pixels.mask is None


def test_the_ssim_loss_is_scikit_images_ssim():
    """``ssim`` (model.loss="bce+ssim") computes what the task reports (``frame_ssim``, scikit-image)."""
    pytest.importorskip("skimage")
    from lstmkit.metrics import frame_ssim
    from lstmkit.models.frames import ssim

    g = torch.Generator().manual_seed(4)
    truth = (torch.rand(3, 2, 16, 16, generator=g) > 0.7).float()  # (N, T, H, W), near-binary like digits
    pred = (0.8 * truth + 0.2 * torch.rand(3, 2, 16, 16, generator=g)).double()
    want = float(frame_ssim(pred.numpy(), truth.numpy()).mean())
    assert float(ssim(pred, truth.double())) == pytest.approx(want, rel=1e-9)
    assert float(ssim(truth, truth)) == pytest.approx(1.0)


def test_floored_sets_values_below_the_floor_to_the_background():
    from lstmkit.models import floored

    x = torch.tensor([0.0, 0.05, 0.0999, 0.1, 0.5, 1.0])
    assert floored(x, 0.1).tolist() == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.5, 1.0])
    assert floored(x, 0.0) is x  # no floor: the same tensor, untouched
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=rf"model\.floor must be in \[0, 1\), got {bad}"):
            FramesModel(floor=bad)


@pytest.mark.parametrize(("kw", "message"), [
    (dict(impl="cudnn"), "model.impl must be one of ('auto', 'bptt', 'winograd', 'fused', 'concat', 'reference'), "
                         "got 'cudnn'"),
    (dict(impl="winograd", kernel_size=5), "model.impl='winograd' runs 3 x 3 kernels only (F(4x4, 3x3)), got "
                                           "model.kernel_size 5"),
])
def test_impl_errors(kw, message):
    with pytest.raises(ValueError) as e:
        FramesModel(**{**TINY, **kw})
    assert str(e.value) == message


def test_impl_reaches_the_layers_and_computes_the_same_function():
    """model.impl="winograd" builds both stacks with it; in float64 the frames equal the direct layers'."""
    pixels = {**TINY, "output": "pixels", "correlation": False}
    torch.manual_seed(0)
    fast = ConvForecaster(FramesModel(**pixels, impl="winograd")).double()
    direct = ConvForecaster(FramesModel(**pixels)).double()
    direct.load_state_dict(fast.state_dict())
    assert fast.encoder.impl == fast.forecaster.impl == "winograd"
    x = torch.rand(4, 2, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), direct(x), atol=1e-12, rtol=1e-10)
