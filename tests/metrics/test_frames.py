"""Per-frame MSE, MAE (summed over pixels) and SSIM (scikit-image) on hand-built frames."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.metrics import frame_mae, frame_mse, frame_ssim


def test_mse_and_mae_sum_over_pixels_and_average_over_sequences():
    true = np.zeros((2, 3, 4, 4))
    pred = np.zeros((2, 3, 4, 4))
    pred[0, 0, 0, :2] = 0.5  # sequence 0, frame 0: two pixels off by 0.5
    pred[1, 2] = 1.0  # sequence 1, frame 2: all 16 pixels off by 1
    np.testing.assert_allclose(frame_mse(pred, true), [0.25, 0.0, 8.0])  # (2 * 0.25 + 0) / 2, ..., (0 + 16) / 2
    np.testing.assert_allclose(frame_mae(pred, true), [0.5, 0.0, 8.0])


def test_ssim_is_scikit_images_per_frame_mean():
    skimage = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    true = rng.uniform(size=(3, 2, 16, 16))
    pred = np.clip(true + rng.normal(0, 0.2, size=true.shape), 0, 1)
    got = frame_ssim(pred, true)
    want = [np.mean([skimage.structural_similarity(true[i, t], pred[i, t], data_range=1.0) for i in range(3)])
            for t in range(2)]  # fmt: skip
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(frame_ssim(true, true), [1.0, 1.0])


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\(N, T, H, W\)"):
        frame_mse(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
