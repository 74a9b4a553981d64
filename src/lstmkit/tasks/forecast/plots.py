"""``forecast``'s plot: the history and the forecast past its end."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmkit._fileio import save_figure
from lstmkit.data.series import Series


def plot_forecast(series: Series, start: int, labels: list[str], values: np.ndarray, png: Path, *, title: str) -> None:
    """The history (up to 4 horizons or 120 steps before the origin, and what follows), and the forecast."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    horizon = len(values)
    lo = max(0, start - max(4 * horizon, 120))
    hi = min(len(series), start + horizon)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(range(lo, start), series.values[lo:start], color="black", lw=1.2, label="history")
    if hi > start:
        ax.plot(range(start - 1, hi), series.values[start - 1 : hi], color="gray", lw=1.2, ls="--", label="held out")
    ax.plot(range(start - 1, start + horizon), np.r_[series.values[start - 1], values], color="tab:red", lw=1.5,
            marker="o", ms=3, markevery=list(range(1, horizon + 1)), label="forecast")  # fmt: skip
    ticks = np.linspace(lo, start + horizon - 1, num=min(8, start + horizon - lo)).astype(int)
    all_labels = series.labels + labels[max(0, len(series) - start) :]
    ax.set_xticks(ticks, [all_labels[i] if i < len(all_labels) else "" for i in ticks], rotation=30)
    ax.set_title(title)
    ax.set_ylabel(series.name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, png, dpi=100)
    plt.close(fig)
