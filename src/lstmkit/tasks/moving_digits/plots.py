"""``moving-digits``' pictures: strips of test sequences and the per-frame metric curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lstmkit._fileio import save_figure

STRIPS = "strips.png"
CURVES = "frame_metrics.png"


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_strips(frames: np.ndarray, predictions: dict[str, np.ndarray], input_frames: int, png: Path) -> None:
    """Per sequence: a row of the given frames, a row of the true future, a row per method's prediction.

    frames (N, T, H, W) for the N sequences drawn; predictions: name -> (N, T_out, H, W)."""
    plt = _plt()
    N, T = frames.shape[:2]
    rows = [("input", frames[:, :input_frames]), ("truth", frames[:, input_frames:])]
    rows += list(predictions.items())
    cols = max(input_frames, T - input_frames)
    fig, axes = plt.subplots(N * len(rows), cols, figsize=(cols * 0.8, N * len(rows) * 0.85), squeeze=False)
    for n in range(N):
        for r, (label, x) in enumerate(rows):
            for c in range(cols):
                ax = axes[n * len(rows) + r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                if c < x.shape[1]:
                    ax.imshow(x[n, c], cmap="gray", vmin=0, vmax=1)
                else:
                    ax.axis("off")
                if c == 0:
                    ax.set_ylabel(label if r else f"#{n} {label}", fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout(pad=0.2)
    save_figure(fig, png, dpi=80)
    plt.close(fig)


def plot_frame_metrics(scores: dict[str, dict[str, Any]], png: Path, *, title: str) -> None:
    """MSE per frame and SSIM per frame of each method, against the predicted frame's index."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, s in scores.items():
        mse, ssim = s["per_frame"]["mse"], s["per_frame"]["ssim"]
        steps = range(1, len(mse) + 1)
        a.plot(steps, mse, marker="o", label=name)
        b.plot(steps, ssim, marker="o", label=name)
    a.set(xlabel="predicted frame", ylabel="MSE per frame (summed over pixels)")
    b.set(xlabel="predicted frame", ylabel="SSIM")
    a.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, png, dpi=100)
    plt.close(fig)
