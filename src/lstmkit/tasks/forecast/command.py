"""``lstmkit forecast RUN_DIR --horizon H``: forecast past the end of the series, print and plot it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstmkit.metrics import rmse
from lstmkit.tasks.base import TaskError
from lstmkit.tasks.forecast.plots import plot_forecast
from lstmkit.tasks.forecast.scoring import model_name
from lstmkit.tasks.forecast.task import ForecastTask
from lstmkit.tasks.rundir import open_run


@dataclass
class ForecastResult:
    labels: list[str]  # the forecast steps (dates where they can be continued, else "+1", "+2", ...)
    values: np.ndarray  # (H,) in the series' units
    actual: np.ndarray | None  # (H,) the observed values, when the origin is the test split's start
    strategy: str  # "direct" or "recursive"
    png: Path
    lines: list[str]


def _next_labels(labels: list[str], start: int, horizon: int) -> list[str]:
    """Labels of steps ``start .. start + horizon - 1``: known ones, then continued where the dates allow."""
    out = list(labels[start : start + horizon])
    if len(out) < horizon:
        last = labels[-1]
        parts = last.split("-")
        for k in range(1, horizon - len(out) + 1):
            if last.isdigit() and len(last) == 4:
                out.append(str(int(last) + k))
            elif len(parts) == 2 and all(p.isdigit() for p in parts):
                months = int(parts[0]) * 12 + int(parts[1]) - 1 + k
                out.append(f"{months // 12}-{months % 12 + 1:02d}")
            else:
                out.append(f"+{k}")
    return out


def forecast_run(
    run_dir: str | Path, horizon: int, *, origin: str = "end", out: str | Path | None = None
) -> ForecastResult:
    """Forecast ``horizon`` steps with a trained run and plot them with the history (PNG).

    ``origin="end"`` forecasts the steps after the last one in the data; ``origin="test"`` forecasts
    from the start of the test split and shows the held-out values beside the forecast. Up to the
    trained ``data.horizon`` the forecast is direct; beyond it the model's forecasts are fed back
    as inputs (recursive), which needs a series without covariates.
    """
    if horizon < 1:
        raise TaskError(f"--horizon must be >= 1, got {horizon}")
    if origin not in ("end", "test"):
        raise TaskError(f"origin must be 'end' or 'test', got {origin!r}")
    run = open_run(run_dir)
    if not isinstance(run.task, ForecastTask):
        raise TaskError(f"{run_dir} holds a {run.task.name!r} run; `lstmkit forecast` needs a forecast run")
    model, prepared = run.task.load(run)
    data, series = run.config.data, prepared.series
    start = len(series) if origin == "end" else prepared.split.test_lo
    if data.horizon < horizon and series.covariates.shape[1]:
        raise TaskError(f"--horizon {horizon} is longer than the trained data.horizon {data.horizon}, and a series "
                        "with covariates cannot be forecast recursively (their future values are unknown)")
    if data.horizon < horizon and run.config.model.base:
        raise TaskError(f"--horizon {horizon} is longer than the trained data.horizon {data.horizon}, and a run with "
                        f"model.base={run.config.model.base} cannot be forecast recursively (its base model's "
                        "inputs would need the forecasts filtered as if observed)")
    z = torch.tensor(prepared.z[:start], dtype=torch.float32)  # (start, F)
    if start < data.window:
        raise TaskError(f"the series has {start} steps before the origin, fewer than data.window {data.window}")
    steps: list[float] = []
    with torch.no_grad():
        while len(steps) < horizon:
            pred = model(z[-data.window :, None, :])[0]  # (H_model,)
            steps.extend(pred.tolist())
            if len(steps) < horizon:  # recursive: only a target column here, covariates were refused above
                z = torch.cat([z, pred[:, None]])
    z_steps = np.asarray(steps[:horizon])
    values = prepared.to_units(z_steps, start + np.arange(horizon))  # (horizon,) steps start .. start + horizon - 1
    labels = _next_labels(series.labels, start, horizon)
    known = series.values[start : start + horizon]
    actual = known if origin == "test" and len(known) else None
    strategy = "direct" if horizon <= data.horizon else f"recursive, {data.horizon} step(s) at a time"
    png = Path(out) if out is not None else run.path / f"forecast-{origin}-h{horizon}.png"
    plot_forecast(series, start, labels, values, png, title=f"{series.name}: {model_name(run.config)}, {strategy}")
    lines = [f"{horizon}-step forecast from {labels[0]} ({strategy}), in the series' units:"]
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        seen = f"  (actual {float(actual[i])!r})" if actual is not None and i < len(actual) else ""
        lines.append(f"{label}\t{float(v)!r}{seen}")
    if actual is not None:
        n = len(actual)
        lines.append(f"RMSE over the {n} observed step(s): {rmse(actual, values[:n]):.4g}")
    lines.append(f"plot: {png}")
    return ForecastResult(labels, values, actual, strategy, png, lines)
