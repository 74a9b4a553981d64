"""Each run's mean training loss over windows of optimiser steps, from its ``metrics.csv`` (the rows ``fit`` logs every
``train.log_every`` steps), beside its validation and test figures from ``summary.json``: how runs of different
settings compare along the way, not only at their end.

    python benchmarks/train_loss_windows.py runs/a runs/b --windows 200-300,550-650,700-800,900-1000
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def windows(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        if not (lo.isdigit() and hi.isdigit() and int(lo) <= int(hi)):
            raise argparse.ArgumentTypeError(f"a window is FIRST-LAST steps, e.g. 900-1000; got {part!r}")
        out.append((int(lo), int(hi)))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--windows", type=windows, default=windows("200-300,900-1000"))
    args = parser.parse_args(argv)
    heads = [f"train loss, steps {a}-{b}" for a, b in args.windows]
    print("| run | " + " | ".join(heads) + " | summary (validation, test) |")
    print("|---|" + "---:|" * len(heads) + "---|")
    for run in args.runs:
        with open(run / "metrics.csv", newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
        means = []
        for a, b in args.windows:
            vals = [float(r["loss"]) for r in rows if a <= int(r["step"]) <= b]
            means.append(f"{sum(vals) / len(vals):.3f}" if vals else "-")
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
        scores = {k: v for k, v in summary.items() if isinstance(v, float) and ("perplexity" in k or k == "val_loss")}
        print(f"| {run} | " + " | ".join(means) + " | " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()) + " |")


if __name__ == "__main__":
    main()
