"""Summarise moving-digits runs (one per seed): the markdown tables of docs/results.md and a PNG of the
per-frame MSE and SSIM (mean over the runs, with the range as a band).

    python examples/moving_digits_table.py runs/digits-s0 runs/digits-s1 runs/digits-s2 --png docs/img/moving_digits.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lstmkit._fileio import save_figure


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--png", type=Path)
    args = ap.parse_args()
    summaries = [json.loads((r / "summary.json").read_text()) for r in args.runs]
    methods = list(summaries[0]["test"]["scores"])

    def per_frame(method: str, metric: str) -> np.ndarray:  # (runs, frames)
        return np.array([s["test"]["scores"][method]["per_frame"][metric] for s in summaries])

    print("| method | MSE / frame | MAE / frame | SSIM | runs |")
    print("|---|---|---|---|---|")
    for m in methods:
        cells = []
        for metric, fmt in (("mse", "{:.1f}"), ("mae", "{:.1f}"), ("ssim", "{:.3f}")):
            v = per_frame(m, metric).mean(axis=1)
            sd = v.std(ddof=1) if len(v) > 1 else 0.0
            cells.append(f"{fmt.format(v.mean())} ± {fmt.format(sd)}")
        print(f"| {m} | {' | '.join(cells)} | {len(summaries)} |")
    frames = per_frame(methods[0], "mse").shape[1]
    for metric, fmt in (("mse", "{:.1f}"), ("ssim", "{:.3f}")):
        print(f"\n{metric.upper()} per predicted frame (mean over the runs; ConvLSTM: the worst run in brackets)\n")
        print("| method | " + " | ".join(str(t + 1) for t in range(frames)) + " |")
        print("|---|" + "---|" * frames)
        for m in methods:
            v = per_frame(m, metric)
            worst = v.max(axis=0) if metric == "mse" else v.min(axis=0)
            cells = [fmt.format(a) + (f" ({fmt.format(w)})" if m == methods[0] and len(v) > 1 else "")
                     for a, w in zip(v.mean(axis=0), worst, strict=True)]  # fmt: skip
            print(f"| {m} | " + " | ".join(cells) + " |")
    for s, r in zip(summaries, args.runs, strict=True):
        beats = s["test"]["beats_every_frame"]
        wall = s.get("wall_seconds", float("nan"))
        print(f"\n{r}: steps {s['steps']}, wall {wall:.0f} s, beats every frame: {beats}")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        t = np.arange(1, frames + 1)
        for ax, metric, label in ((axes[0], "mse", "MSE per frame (summed over pixels)"), (axes[1], "ssim", "SSIM")):
            for m in methods:
                v = per_frame(m, metric)
                ax.plot(t, v.mean(axis=0), marker="o", label=m)
                ax.fill_between(t, v.min(axis=0), v.max(axis=0), alpha=0.25)
            ax.set(xlabel="predicted frame", ylabel=label)
        axes[0].legend()
        fig.suptitle(f"moving-digits test, unseen handwriting: {len(summaries)} seed(s), band = range")
        fig.tight_layout()
        save_figure(fig, args.png, dpi=100)
        plt.close(fig)


if __name__ == "__main__":
    main()
