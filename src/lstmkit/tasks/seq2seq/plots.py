"""The attention matrix of one output as a heat map, with the symbols on the axes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_attention(weights: np.ndarray, source: Sequence[str], output: Sequence[str], png: str | Path, *,
                   title: str = "") -> None:  # fmt: skip
    """weights (len(output), len(source)): row t is where output symbol t looked."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    weights = np.asarray(weights)
    if weights.shape != (len(output), len(source)):
        raise ValueError(f"weights must be ({len(output)}, {len(source)}), got {weights.shape}")
    fig, ax = plt.subplots(figsize=(1.5 + 0.32 * len(source), 1.2 + 0.32 * len(output)))
    ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), [s if s.strip() else "␣" for s in source], fontsize=8)
    ax.set_yticks(range(len(output)), list(output), fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
