"""Forecasting panel: the LSTM (model selection on the validation window, seed ensemble) against naive,
seasonal naive, AR(p), ETS and ARIMA on real series shipped in statsmodels and sktime; writes Markdown.

Run (one thread, and nice on a shared machine):

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/forecast_panel.py --out runs/panel-forecast --horizon 1

For each series and horizon: every candidate (``--candidates``: with and without the AR skip, and each
``--windows`` multiple of the preset window) is trained with each seed; the candidate with the lowest mean
validation loss (the last ``val_size`` steps before the test, never the test) is chosen, and its seeds'
test forecasts are averaged (the seed ensemble). Baselines are fitted on every step before the test.
MASE (scaled by the in-sample seasonal naive, m = 1 without a season) and sMAPE per series, their geometric
means, and each method's mean rank by MASE over the panel.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmkit.tasks import runner
from lstmkit.tasks.bundled import package_file
from lstmkit.tasks.forecast import ForecastTask, prepare_data
from lstmkit.tasks.forecast.data import transform_target
from lstmkit.tasks.forecast.scoring import baseline_forecasts, model_forecasts, score, split_origins
from lstmkit.tasks.rundir import open_run


@dataclass
class PanelSeries:
    name: str
    source: str  # where it comes from, in words
    frequency: str
    dates: list[str]
    values: list[float]
    season: int
    window: int


def _read(package: str, path: str) -> list[dict[str, str]]:
    with open(package_file(package, path), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def panel_series() -> list[PanelSeries]:
    """The panel: yearly, quarterly and monthly series bundled in statsmodels and sktime (no download)."""
    out = []
    sun = _read("statsmodels", "datasets/sunspots/sunspots.csv")
    out.append(PanelSeries("sunspots", "statsmodels sunspots", "yearly", [r["YEAR"].split(".")[0] for r in sun],
                           [float(r["SUNACTIVITY"]) for r in sun], 0, 9))  # fmt: skip
    nile = _read("statsmodels", "datasets/nile/nile.csv")
    out.append(PanelSeries("nile", "statsmodels nile", "yearly", [r["year"] for r in nile],
                           [float(r["volume"]) for r in nile], 0, 8))  # fmt: skip
    lynx = _read("sktime", "datasets/data/Lynx/Lynx.csv")
    out.append(PanelSeries("lynx", "sktime Lynx", "yearly", [r[""] for r in lynx], [float(r["0"]) for r in lynx], 0,
                           10))  # fmt: skip
    air = _read("sktime", "datasets/data/Airline/Airline.csv")
    out.append(PanelSeries("airline", "sktime Airline", "monthly", [r["Date"] for r in air],
                           [float(r["Passengers"]) for r in air], 12, 24))  # fmt: skip
    sh = _read("sktime", "datasets/data/ShampooSales/ShampooSales.csv")
    out.append(PanelSeries("shampoo", "sktime ShampooSales", "monthly", [r["Time"] for r in sh],
                           [float(r["Sales"]) for r in sh], 0, 6))  # fmt: skip
    nino = _read("statsmodels", "datasets/elnino/elnino.csv")
    months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    out.append(PanelSeries("elnino", "statsmodels elnino (sea surface temperature)", "monthly",
                           [f"{int(float(r['YEAR']))}-{i + 1:02d}" for r in nino for i in range(12)],
                           [float(r[m]) for r in nino for m in months], 12, 24))  # fmt: skip
    macro = _read("statsmodels", "datasets/macrodata/macrodata.csv")
    dates = [f"{int(float(r['year']))}-{3 * int(float(r['quarter'])) - 2:02d}" for r in macro]
    for column in ("realgdp", "realcons", "realinv", "cpi", "unemp", "m1"):
        out.append(PanelSeries(f"macro {column}", f"statsmodels macrodata {column}", "quarterly", dates,
                               [float(r[column]) for r in macro], 4, 8))  # fmt: skip
    return out


def write_csv(s: PanelSeries, folder: Path) -> Path:
    path = folder / f"{s.name.replace(' ', '_')}.csv"
    path.write_text("date,y\n" + "".join(f"{d},{v!r}\n" for d, v in zip(s.dates, s.values, strict=True)))
    return path


def family(name: str) -> str:
    """A baseline's column in the panel table (the chosen ETS form and ARIMA order vary by series)."""
    for prefix, label in (("ETS(", "ETS"), ("ARIMA(", "ARIMA"), ("AR(", "AR(p)"), ("LSTM", "LSTM"),
                          ("seasonal naive with growth", "seasonal naive + growth"),
                          ("seasonal naive", "seasonal naive")):  # fmt: skip
        if name.startswith(prefix):
            return label
    return name


def run_series(s: PanelSeries, horizon: int, seeds: list[int], candidates: dict[str, list[str]], workdir: Path,
               log) -> dict:  # fmt: skip
    path = write_csv(s, workdir)
    n = len(s.values)
    test_size = max(2 * horizon, round(0.2 * n))
    val_size = max(2 * horizon, round(0.2 * (n - test_size)))
    common = [f"data.csv={path}", "data.column=y", "data.date_column=date", f"data.season={s.season}",
              f"data.horizon={horizon}", f"data.test_size={test_size}", f"data.val_size={val_size}",
              "data.auto_baselines=false", "train.progress=false", "train.tensorboard=false", "train.threads=1",
              "train.max_minutes=none"]  # fmt: skip
    chosen, best = None, math.inf
    trials = {}
    for name, extra in candidates.items():
        runs, losses = [], []
        for seed in seeds:
            config = runner.build_config("forecast", overrides=[*common, *extra], seed=seed)
            result = runner.train("forecast", config, workdir / f"{path.stem}-h{horizon}-{name}-s{seed}")
            runs.append(result.run_dir)
            losses.append(result.metrics["mse"])  # the best validation loss: the choice never sees the test
        trials[name] = {"val_mse": float(np.mean(losses)), "runs": [str(r) for r in runs]}
        log(f"  {s.name} h={horizon} {name}: mean val loss {np.mean(losses):.5f}")
        if np.mean(losses) < best:
            chosen, best = name, float(np.mean(losses))
    task = ForecastTask()
    forecasts, prepared = [], None
    for run_dir in trials[chosen]["runs"]:
        model, prepared = task.load(open_run(run_dir))
        forecasts.append(model_forecasts(model, prepared, "test"))
    ensemble = np.mean(forecasts, axis=0)  # (N, H): the seeds' forecasts averaged
    data, split = prepared.config.data, prepared.split
    origins = split_origins(prepared, "test")
    t = transform_target(prepared.series.values, data.log)
    config = runner.build_config("forecast", overrides=[*common, *candidates[chosen], "data.auto_baselines=true"])
    base = baseline_forecasts(t, split.test_lo, prepare_data(config).config.data, origins)
    units = {k: (np.exp(v) if data.log else v) for k, v in base.items()}
    actual = prepared.series.values[origins[:, None] + np.arange(horizon)[None, :]]
    y_train, m = prepared.series.values[: split.test_lo], data.season or 1
    scores = {f"LSTM ({chosen}, {len(seeds)}-seed mean)": score(actual, ensemble, y_train, m)}
    scores.update({k: score(actual, v, y_train, m) for k, v in units.items()})
    return {"series": s.name, "source": s.source, "frequency": s.frequency, "steps": n, "season": s.season,
            "test": f"{prepared.series.labels[origins[0]]} .. {prepared.series.labels[origins[-1] + horizon - 1]}",
            "origins": len(origins), "horizon": horizon, "chosen": chosen, "trials": trials, "scores": scores}


def markdown(results: list[dict], horizon: int) -> list[str]:
    methods = ["LSTM", "naive", "seasonal naive", "seasonal naive + growth", "AR(p)", "ETS", "ARIMA"]
    lines = [f"#### Horizon {horizon}: MASE (sMAPE %) on the test window", "",
             "| series | test (origins) | chosen LSTM | " + " | ".join(methods) + " |",
             "|---|---|---|" + "---:|" * len(methods)]  # fmt: skip
    ranks = {m: [] for m in methods}
    table = {m: {"mase": [], "smape": []} for m in methods}
    for r in results:
        by = {}
        for name, sc in r["scores"].items():
            by[family(name)] = sc
        if "seasonal naive" not in by:
            by["seasonal naive"] = by["naive"]  # no season: the seasonal naive is the naive (m = 1)
        row = [r["series"], f"{r['test']} ({r['origins']})", r["chosen"]]
        present = [m for m in methods if m in by]
        order = sorted(present, key=lambda m: by[m]["mase"])
        for m in methods:
            if m in by:
                best = "**" if m == order[0] else ""
                row.append(f"{best}{by[m]['mase']:.3f}{best} ({by[m]['smape']:.2f})")
                ranks[m].append(1 + sum(by[o]["mase"] < by[m]["mase"] for o in present))
                table[m]["mase"].append(by[m]["mase"])
                table[m]["smape"].append(by[m]["smape"])
            else:
                row.append("—")
        lines.append("| " + " | ".join(row) + " |")
    gm = [f"{math.exp(np.mean(np.log(table[m]['mase']))):.3f} ({math.exp(np.mean(np.log(table[m]['smape']))):.2f})"
          if table[m]["mase"] else "—" for m in methods]  # fmt: skip
    lines.append("| **geometric mean** | | | " + " | ".join(gm) + " |")
    mr = [f"{np.mean(ranks[m]):.2f}" if ranks[m] else "—" for m in methods]
    lines.append("| **mean rank (MASE)** | | | " + " | ".join(mr) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--horizon", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--series", nargs="*", help="names to run (default: the whole panel)")
    parser.add_argument("--windows", type=float, nargs="+", default=[1.0], help="multiples of the preset window")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / f"log-h{args.horizon}.txt"

    def log(line: str) -> None:
        print(line, flush=True)
        with log_path.open("a") as f:
            f.write(line + "\n")

    results_path = args.out / f"results-h{args.horizon}.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else []
    done = {r["series"] for r in results}
    for s in panel_series():
        if (args.series and s.name not in args.series) or s.name in done:
            continue
        started = time.perf_counter()
        candidates = {}
        for mult in args.windows:
            w = max(2, round(mult * s.window))
            candidates[f"AR skip, window {w}"] = ["model.ar_skip=true", f"data.window={w}", f"data.ar_order={w}"]
            candidates[f"no skip, window {w}"] = ["model.ar_skip=false", f"data.window={w}", f"data.ar_order={w}"]
        with tempfile.TemporaryDirectory(dir=args.out) as tmp:
            results.append(run_series(s, args.horizon, args.seeds, candidates, Path(tmp), log))
        log(f"{s.name}: {time.perf_counter() - started:.0f} s")
        results_path.write_text(json.dumps(results, indent=1))
        (args.out / f"panel-h{args.horizon}.md").write_text("\n".join(markdown(results, args.horizon)) + "\n")


if __name__ == "__main__":
    main()
