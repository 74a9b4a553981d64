"""Training curves from ``metrics.csv`` as a PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import csv
from pathlib import Path

from lstmkit._fileio import save_figure


def read_metrics(path: Path) -> dict[str, list[tuple[int, float, float]]]:
    """``{split: [(step, loss, lr), ...]}`` from the training loop's ``metrics.csv``."""
    rows: dict[str, list[tuple[int, float, float]]] = {"train": [], "val": []}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.setdefault(r["split"], []).append((int(r["step"]), float(r["loss"]), float(r["lr"])))
    return rows


def plot_curves(metrics_csv: Path, out_png: Path, *, loss_label: str = "loss (nats per token)") -> None:
    """Two panels: training and validation loss against the step, and the learning rate."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_csv)
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=(3, 1))
    for split, style in (("train", {"lw": 1.0}), ("val", {"marker": "o", "lw": 1.5})):
        if rows.get(split):
            steps, losses, _ = zip(*rows[split], strict=True)
            ax_loss.plot(steps, losses, label=split, **style)
    ax_loss.set_ylabel(loss_label)
    ax_loss.grid(alpha=0.3)
    if ax_loss.lines:
        ax_loss.legend()
    else:  # a run shorter than train.log_every, with no validation: nothing logged (a refit of a few steps)
        ax_loss.text(0.5, 0.5, "no loss logged (fewer steps than train.log_every)", ha="center", va="center",
                     transform=ax_loss.transAxes)  # fmt: skip
    if rows["train"]:
        steps, _, lrs = zip(*rows["train"], strict=True)
        ax_lr.plot(steps, lrs, color="gray")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("step")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_png, dpi=100)
    plt.close(fig)
