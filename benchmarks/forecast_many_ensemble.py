"""Average the forecasts of several ``forecast-many`` runs on the same collection (e.g. seeds 0, 1, 2) and score the
average per series beside the baselines, on a split, with the task's own scoring.

    OMP_NUM_THREADS=1 python benchmarks/forecast_many_ensemble.py runs/m1-0 runs/m1-1 runs/m1-2 --split test

The runs must hold the same series, splits and settings (their ``data.json`` fingerprints and ``[data]`` sections
are compared); each run's model reads the series as it was trained to, and their outputs (scaled changes from the
last value) are averaged, which averages the forecasts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from lstmkit.tasks.forecast.many_task import ForecastManyTask, score_part
from lstmkit.tasks.rundir import open_run


class MeanOutput(nn.Module):
    """The members' outputs averaged: forward(x) (W, B, 2) -> (B, H)."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--split", choices=["val", "test"], default="test")
    args = parser.parse_args()
    task = ForecastManyTask()
    members, prepared = [], None
    for run_dir in args.runs:
        run = open_run(run_dir)
        if run.task.name != "forecast-many":
            parser.error(f"{run_dir} holds a {run.task.name!r} run, not forecast-many")
        model, p = task.load(run)
        if prepared is not None and (p.config.data != prepared.config.data or
                                     [s.name for s in p.collection] != [s.name for s in prepared.collection]):
            parser.error(f"{run_dir}: its data settings or series differ from {args.runs[0]}'s")
        members.append(model)
        prepared = prepared or p
    metrics = score_part(MeanOutput(members), prepared, args.split)
    print(f"mean of {len(members)} runs' forecasts: {', '.join(str(r) for r in args.runs)}")
    print("\n".join(task.report(metrics)))


if __name__ == "__main__":
    main()
