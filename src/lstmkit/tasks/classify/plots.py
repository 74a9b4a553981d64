"""``classify``'s confusion-matrix plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmkit._fileio import save_figure

CONFUSION = "confusion.png"


def plot_confusion(confusion: np.ndarray, classes: list[str], png: Path, *, title: str) -> None:
    """Counts of (true, predicted) classes as an annotated heat map."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    k = len(classes)
    size = 2.5 + 0.45 * k
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=45 if max(map(len, classes)) > 3 else 0, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = confusion.max() if confusion.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center",
                    color="white" if confusion[i, j] > top / 2 else "black", fontsize=9)  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, png, dpi=100)
    plt.close(fig)
