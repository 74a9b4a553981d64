"""Per-frame metrics of predicted video frames, as the video-prediction literature reports them.

- ``frame_mse``: squared error summed over a frame's pixels, averaged over sequences (the "MSE per
  frame" of Srivastava et al. 2015, Shi et al. 2015 and OpenSTL's Moving MNIST tables);
- ``frame_mae``: absolute error summed over a frame's pixels, the same way;
- ``frame_ssim``: the structural similarity of each predicted frame with the true one, averaged
  over sequences, computed by scikit-image's ``structural_similarity`` (7 x 7 uniform window,
  ``data_range=1``: the frames are intensities in [0, 1]), as OpenSTL computes it.

Inputs are arrays (N, T, H, W) of predicted and true frames; each function returns (T,).
"""

from __future__ import annotations

import numpy as np


def _check(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 4:
        raise ValueError(f"pred and true must both be (N, T, H, W), got {pred.shape} and {true.shape}")
    return pred, true


def frame_mse(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Squared error summed over each frame's pixels, averaged over the N sequences: (T,)."""
    pred, true = _check(pred, true)
    return ((pred - true) ** 2).sum(axis=(2, 3)).mean(axis=0)


def frame_mae(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Absolute error summed over each frame's pixels, averaged over the N sequences: (T,)."""
    pred, true = _check(pred, true)
    return np.abs(pred - true).sum(axis=(2, 3)).mean(axis=0)


def frame_ssim(pred: np.ndarray, true: np.ndarray, *, data_range: float = 1.0) -> np.ndarray:
    """scikit-image's SSIM of each predicted frame against the true one, averaged over sequences: (T,).

    Frames smaller than 7 x 7 use the largest odd window that fits (scikit-image needs one)."""
    from skimage.metrics import structural_similarity  # a second of import time: only when scoring

    pred, true = _check(pred, true)
    N, T, H, W = pred.shape
    win = min(7, H - (H % 2 == 0), W - (W % 2 == 0))
    if win < 3:
        raise ValueError(f"frames must be at least 3 x 3 for SSIM, got {H} x {W}")
    out = np.empty((N, T))
    for i in range(N):
        for t in range(T):
            out[i, t] = structural_similarity(true[i, t], pred[i, t], data_range=data_range, win_size=win)
    return out.mean(axis=0)
