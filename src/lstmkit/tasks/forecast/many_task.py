"""``forecast-many``: one LSTM for a whole collection of series (a global model), scored per series against the
naive, seasonal naive, ETS and ARIMA fitted on each series alone.

Data: M1's 181 yearly series (bundled in aeon: ``pip install --no-deps aeon==1.6.0``), a Monash ``.tsf`` file
(``--set data.tsf=FILE``) or a wide CSV, one column per series (``--set data.csv=FILE``, optional
``data.columns`` and ``data.date_column``). Each series is cut in time order, its own way::

    | train ....................... | val ..... | test ..... |
    0                             val_lo     test_lo         n

(``data.test_size`` and ``data.val_size`` values each, by default the last 20% of the series, at least two
horizons, and 20% of the rest.) The model is ``lstmkit.tasks.forecast.many``'s: the last ``data.window`` values of
a series before an origin, as changes from the last one over the series' scale (the mean absolute lag-m
difference of its training part), forecast ``data.horizon`` scaled changes at once; the loss is their absolute
error, every series weighing the same. Early stopping reads every series' validation part. Forecasts are scored
from every origin of a split whose targets lie in it, with the observed values before the origin as input (rolling
origins), as MASE and sMAPE per series; the methods are ranked by MASE on each series, and the table gives each
method's mean rank, geometric-mean MASE and mean sMAPE.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lstmkit._fileio import write_text_atomic, write_versioned_json
from lstmkit.data.collection import NamedSeries, read_tsf, read_wide_csv
from lstmkit.models import ForecastModel, ForecastNet
from lstmkit.tasks import baselines as bl
from lstmkit.tasks.base import ConfigError, DataUnavailable, Prepared, Task, TaskError, TrainingData
from lstmkit.tasks.bundled import FERTILITY_MIN_VALUES, M1_YEARLY, fertility_series, package_file
from lstmkit.tasks.forecast.many import (
    MIN_CONTEXT,
    SplitSeries,
    batches,
    forecast,
    global_step,
    mase_scale,
    windows,
)
from lstmkit.tasks.forecast.scoring import score
from lstmkit.tasks.registry import register_task
from lstmkit.tasks.rundir import Run
from lstmkit.train import Config, DataConfig, TrainConfig, evaluate, fit, require_at_least, set_values

DATA = "data.json"
FORECASTS = "forecasts.csv"  # each series' next data.horizon values after its last one
_FORMAT, _VERSION = "lstmkit.forecast-many-split", 1
SPLITS = ("val", "test")
DATASETS = ("m1-yearly", "fertility", "")
MODEL = "global LSTM"


@dataclass(frozen=True)
class ManyData(DataConfig):
    """The collection, each series' split and the windows (``forecast-many``'s ``[data]``)."""

    # "m1-yearly": M1's 181 yearly series (aeon's copy); "fertility": the World Bank's yearly fertility rates of 196
    # countries and aggregates (statsmodels); ignored (set to "") with data.csv or data.tsf
    dataset: str = "m1-yearly"
    csv: str = ""  # a CSV file with a header row and one column per series (empty cells at a series' start or end)
    tsf: str = ""  # a Monash forecasting archive .tsf file
    columns: str = ""  # data.csv: the series columns, comma-separated (default: every column but the date column)
    date_column: str = ""  # data.csv: a column that is not a series (dates or labels)
    window: int = 8  # values read before each origin (left-padded where fewer exist); seasonal data: 2 seasons or more
    horizon: int = 1  # values forecast at once from each origin
    season: int = 0  # steps per season for the seasonal naive and the MASE scale; 0: none (M1 yearly)
    test_size: int | None = None  # test values per series; None: the last 20%, at least two horizons
    val_size: int | None = None  # validation values per series; None: 20% of the rest, at least two horizons
    # Series shorter than this are left out, by name; 0 keeps every series, and one too short to split is an error.
    min_length: int = 0
    # Also fit ETS and ARIMA with automatic selection on each series (statsmodels; seconds a series).
    auto_baselines: bool = True

    def _validate(self) -> None:
        super()._validate()
        if self.dataset not in DATASETS:
            raise ValueError(f"data.dataset must be one of {list(DATASETS)}, got {self.dataset!r}")
        if self.csv and self.tsf:
            raise ValueError("set one of data.csv and data.tsf, not both")
        require_at_least(self, "data", 1, "window", "horizon", "test_size", "val_size")
        for name in ("test_size", "val_size"):
            v = getattr(self, name)
            if v is not None and v < self.horizon:
                raise ValueError(f"data.{name} must be >= data.horizon ({self.horizon}) to hold one origin, got {v}")
        if self.season < 0 or self.season == 1:
            raise ValueError(f"data.season must be 0 (none) or >= 2, got {self.season}")
        if self.min_length < 0:
            raise ValueError(f"data.min_length must be >= 0, got {self.min_length}")


def describe_source(data: ManyData) -> str:
    if data.csv:
        return f"CSV file {data.csv} (one column per series)"
    if data.tsf:
        return f".tsf file {data.tsf}"
    if data.dataset == "fertility":
        return (f"World Bank total fertility rates 1960-2013, the countries and aggregates with "
                f"{FERTILITY_MIN_VALUES}+ contiguous years (statsmodels' fertility dataset)")  # fmt: skip
    return "M1 yearly, 181 series (aeon's copy of the Monash archive file; pip install --no-deps aeon==1.6.0)"


def load_collection(data: ManyData) -> tuple[list[NamedSeries], list[str]]:
    """The series the config names, and notes on the series a bundled collection leaves out by its own rule;
    :class:`DataUnavailable` says what is wrong or missing."""
    try:
        if data.csv:
            columns = [c.strip() for c in data.columns.split(",") if c.strip()] or None
            return read_wide_csv(data.csv, columns=columns, date_column=data.date_column), []
        if data.columns or data.date_column:
            raise DataUnavailable("data.columns and data.date_column apply to data.csv only")
        if data.tsf:
            return read_tsf(data.tsf), []
        if not data.dataset:
            raise DataUnavailable("data.dataset is empty: set data.dataset=m1-yearly, data.csv=FILE or data.tsf=FILE")
        if data.dataset == "fertility":
            return fertility_series()
        return read_tsf(package_file(*M1_YEARLY)), []
    except (OSError, ValueError) as e:
        raise DataUnavailable(str(e)) from e


def split_sizes(n: int, data: ManyData) -> tuple[int, int]:
    """(val_lo, test_lo) of a series of ``n`` values."""
    test = data.test_size or max(2 * data.horizon, round(0.2 * n))
    val = data.val_size or max(2 * data.horizon, round(0.2 * (n - test)))
    return n - test - val, n - test


def shortest(data: ManyData) -> int:
    """The fewest values a series needs: one training window, one validation and one test origin."""
    test = data.test_size or 2 * data.horizon
    val = data.val_size or 2 * data.horizon
    return MIN_CONTEXT + data.horizon + val + test


@dataclasses.dataclass
class ManyPrepared(Prepared):
    config: Config
    collection: list[SplitSeries]
    dropped: list[str]  # series left out: a bundled collection's own rule, then data.min_length

    def save(self, run_dir: Path) -> None:
        write_versioned_json(run_dir / DATA, _FORMAT, _VERSION, {
            "source": describe_source(self.config.data),
            "series": [{"name": s.name, "values": len(s.values), "val_lo": s.val_lo, "test_lo": s.test_lo,
                        "scale": mase_scale(s.values[: s.val_lo], s.season)} for s in self.collection],
            "dropped": self.dropped,
            "sha256": fingerprint(self.collection),
        })  # fmt: skip


def fingerprint(collection: list[SplitSeries]) -> str:
    h = hashlib.sha256()
    for s in collection:
        h.update(f"{s.name}\0{s.val_lo}\0{s.test_lo}\0".encode())
        h.update(np.ascontiguousarray(s.values, dtype=np.float64).tobytes())
    return h.hexdigest()


def prepare_collection(config: Config) -> ManyPrepared:
    data, m = config.data, config.model
    if m.ar_skip or m.relative:
        raise ConfigError("forecast-many reads scaled changes from the last value already: model.ar_skip and "
                          "model.relative must be false")  # fmt: skip
    if m.base:
        raise ConfigError(f"forecast-many has no per-series base model: model.base must be empty, got {m.base!r}")
    if m.ensemble > 1:
        raise ConfigError(f"forecast-many trains one network: model.ensemble must be 1, got {m.ensemble}")
    series, notes = load_collection(data)
    need = max(shortest(data), data.min_length)
    short = [s.name for s in series if data.min_length and len(s.values) < data.min_length]
    kept = [s for s in series if s.name not in short]
    dropped = [*notes, *(f"{name}: shorter than data.min_length={data.min_length}" for name in short)]
    collection, too_short = [], []
    for s in kept:
        val_lo, test_lo = split_sizes(len(s.values), data)
        if val_lo < MIN_CONTEXT + data.horizon:
            too_short.append(f"{s.name} ({len(s.values)})")
            continue
        collection.append(SplitSeries(s.name, np.asarray(s.values), val_lo, test_lo, data.horizon, data.window,
                                      data.season))  # fmt: skip
    if too_short:
        shown = ", ".join(too_short[:10]) + (f" and {len(too_short) - 10} more" if len(too_short) > 10 else "")
        verb = "is" if len(too_short) == 1 else "are"
        raise DataUnavailable(f"{len(too_short)} series {verb} too short for data.horizon={data.horizon} and the "
                              f"validation and test parts (about {need} values needed): {shown}; leave them out "
                              "with data.min_length=N or set data.test_size / data.val_size")  # fmt: skip
    if not collection:
        raise DataUnavailable(f"no series left: all {len(series)} are shorter than data.min_length={data.min_length}")
    config = dataclasses.replace(config, model=dataclasses.replace(m, input_size=2, output_size=data.horizon,
                                                                   vocab_size=None))  # fmt: skip
    return ManyPrepared(config, collection, dropped)


def part_bounds(s: SplitSeries, part: str) -> tuple[int, int]:
    return (s.val_lo, s.test_lo) if part == "val" else (s.test_lo, len(s.values))


def score_part(model: ForecastNet, prepared: ManyPrepared, part: str) -> dict[str, Any]:
    """The model and the baselines on ``part`` ("val": baselines fitted on the training part; "test": on every
    value before it), per series and over the collection."""
    data = prepared.config.data
    per_series: dict[str, dict[str, dict[str, float]]] = {}
    origins_total = 0
    for s in prepared.collection:
        lo, hi = part_bounds(s, part)
        origins = np.arange(max(lo, MIN_CONTEXT), hi - s.horizon + 1)
        origins_total += len(origins)
        actual = s.values[origins[:, None] + np.arange(s.horizon)[None, :]]  # (N, h)
        y_fit = s.values[:lo]
        m = data.season if data.season and len(y_fit) > data.season else 1
        methods = {MODEL: forecast(model, s, origins, length=data.window), "naive": bl.naive(s.values, origins,
                                                                                               s.horizon)}  # fmt: skip
        if m > 1:
            methods[f"seasonal naive (m={m})"] = bl.seasonal_naive(s.values, origins, s.horizon, m)
        if data.auto_baselines:
            season = m if m > 1 else 0
            for base, label in ((bl.AutoETS(season), "ETS (auto)"), (bl.AutoARIMA(season), "ARIMA (auto)")):
                try:
                    base.fit(y_fit)
                except ValueError:  # too short a part for the method: left out on this series
                    continue
                methods[label] = base.predict(s.values, origins, s.horizon)
        per_series[s.name] = {k: {c: float(v) for c, v in score(actual, f, y_fit, m).items() if c in ("mase", "smape")}
                              for k, f in methods.items()}  # fmt: skip
    x, y, mask, weight = windows(prepared.collection, part, data.window, data.horizon)
    scaled = evaluate(model, [(x, y, mask, weight)], global_step)
    return {"split": part, "scaled_mae": scaled, "series": len(per_series), "origins": origins_total,
            "horizon": data.horizon, "methods": summarise(per_series), "per_series": per_series,
            "worse_than_naive": worse_than_naive(per_series)}  # fmt: skip


def write_forecasts(model: ForecastNet, prepared: ManyPrepared, path: Path) -> None:
    """``series,step,forecast`` rows: each series' next ``data.horizon`` values after its last one (step 1 is
    the first value after the data), from the model trained on the training part (the test part is input here,
    as any observed history is)."""
    window = prepared.config.data.window
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")  # quotes names with commas ("Egypt, Arab Rep.")
    writer.writerow(["series", "step", "forecast"])
    for s in prepared.collection:
        f = forecast(model, s, np.array([len(s.values)]), length=window)[0]  # (h,)
        writer.writerows([s.name, k + 1, repr(float(v))] for k, v in enumerate(f))
    write_text_atomic(path, text.getvalue())


def summarise(per_series: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each method's mean rank by MASE (ties share the better rank; each series ranks the methods it has), its
    geometric-mean MASE, mean sMAPE, the series it was scored on and those it was best on."""
    ranks: dict[str, list[int]] = {}
    mases: dict[str, list[float]] = {}
    smapes: dict[str, list[float]] = {}
    best: dict[str, int] = {}
    for scores in per_series.values():
        top = min(v["mase"] for v in scores.values())
        for k, v in scores.items():
            ranks.setdefault(k, []).append(1 + sum(o["mase"] < v["mase"] for o in scores.values()))
            mases.setdefault(k, []).append(v["mase"])
            smapes.setdefault(k, []).append(v["smape"])
            best[k] = best.get(k, 0) + (v["mase"] == top)
    return {k: {"mean_rank": float(np.mean(ranks[k])),
                "gmean_mase": math.exp(float(np.mean(np.log(np.maximum(mases[k], 1e-12))))),
                "mean_smape": float(np.mean(smapes[k])), "series": len(ranks[k]), "best_on": best[k]}
            for k in ranks}  # fmt: skip


def worse_than_naive(per_series: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """The series where the model's MASE is above the seasonal naive's (the naive's without a season)."""
    out = []
    for name, scores in per_series.items():
        naive = next((v for k, v in scores.items() if k.startswith("seasonal naive")), scores["naive"])
        if scores[MODEL]["mase"] > naive["mase"]:
            out.append(name)
    return out


@register_task("forecast-many")
class ForecastManyTask(Task):
    """One LSTM for many series: per-series MASE and sMAPE beside naive, seasonal naive, ETS and ARIMA."""

    summary = ("forecasting many series with one LSTM: M1 yearly (181 series) or --set data.csv=FILE (a column per "
               "series) / data.tsf=FILE; ranked against naive, ETS and ARIMA per series")  # fmt: skip
    state_files = (DATA, FORECASTS)
    unit = "window"
    loss_label = "loss (absolute error of the scaled changes, each series weighted equally)"

    def default_config(self) -> Config:
        # The settings of the global model as fixed before it was first scored (lstmkit.tasks.forecast.many and
        # docs/results.md, session 16), with the LSTM reading exactly data.window steps.
        return Config(
            model=ForecastModel(
                hidden_size=64,  # one model for all the series: larger than forecast's 32 units for one
                num_layers=1,
                dropout=0.0,
                ar_skip=False,  # must be false: the input is already each series' changes from its last value
                relative=False,  # must be false, for the same reason
            ),
            data=ManyData(batch_size=64),
            train=TrainConfig(
                epochs=200,
                lr=3e-3,
                schedule="constant",
                warmup_steps=0,  # as in the runs that fixed these settings: full steps from the start
                patience=20,  # a few thousand windows an epoch: the validation loss settles within tens of epochs
                stateful=False,  # windows are independent
                log_every=50,
            ),
        )

    def smoke_config(self, workdir: Path) -> Config:
        rng = np.random.default_rng(0)
        path = workdir / "many_smoke.csv"
        n = 30
        cols = [np.round(10 * (k + 1) + np.cumsum(rng.normal(0.5, 1.0, n)), 4) for k in range(3)]
        rows = [",".join(["date", "a", "b", "c"])]
        for i in range(n):
            cells = [str(2000 + i)] + ["" if (k == 2 and i < 6) else repr(float(c[i])) for k, c in enumerate(cols)]
            rows.append(",".join(cells))
        path.write_text("\n".join(rows) + "\n")
        return Config(
            model=ForecastModel(hidden_size=8, num_layers=1, dropout=0.0, ar_skip=False),
            data=ManyData(dataset="", csv=str(path), date_column="date", window=4, horizon=2, batch_size=8,
                          auto_baselines=False),
            train=TrainConfig(epochs=3, max_steps=6, schedule="constant", warmup_steps=0, stateful=False,
                              progress=False, tensorboard=False, log_every=2),
        )  # fmt: skip

    def data_source(self, config: Config) -> str:
        return describe_source(config.data)

    def check_data(self, config: Config) -> None:
        load_collection(config.data)

    def prepare(self, config: Config) -> ManyPrepared:
        for key in ("csv", "tsf"):  # the absolute path, so that the run can be evaluated from anywhere
            if getattr(config.data, key):
                path = str(Path(getattr(config.data, key)).expanduser().resolve())
                config = set_values(config, {f"data.{key}": path, "data.dataset": ""})
        return prepare_collection(config)

    def training_data(self, prepared: Prepared) -> TrainingData:
        """Every series' training windows, shuffled; the validation windows in one batch."""
        assert isinstance(prepared, ManyPrepared)
        data = prepared.config.data
        loader, val = batches(prepared.collection, data.window, data.horizon, data.batch_size)
        return TrainingData(loader, val, global_step)

    def build_model(self, config: Config) -> ForecastNet:
        return ForecastNet(config.model, ar_order=0)

    def example_input(self, model: nn.Module, config: Config, *, length: int = 256) -> tuple[torch.Tensor, ...]:
        """One window (``data.window`` steps, 2 channels): what the model reads per forecast."""
        g = torch.Generator().manual_seed(0)
        return (torch.randn(config.data.window, 1, 2, generator=g),)  # (W, B=1, 2)

    def train(self, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
        assert isinstance(prepared, ManyPrepared)
        model = self.build_model(prepared.config)
        data = self.training_data(prepared)
        result = fit(model, data.train, data.step, config=prepared.config, out_dir=run_dir, val_data=data.val)
        write_forecasts(model, prepared, run_dir / FORECASTS)
        return {"split": "val", "scaled_mae": result.best_val_loss, "test": score_part(model, prepared, "test"),
                "steps": result.steps, "epochs": len(result.history), "best_epoch": result.best_epoch,
                "parameters": sum(p.numel() for p in model.parameters()), "train_windows": len(data.train.dataset),
                "val_windows": len(data.val[0][0]), "dropped": prepared.dropped}  # fmt: skip

    def load(self, run: Run) -> tuple[ForecastNet, ManyPrepared]:
        recorded = run.read_record(DATA, _FORMAT, _VERSION)
        prepared = prepare_collection(run.config)
        if recorded.get("sha256") != fingerprint(prepared.collection):
            raise TaskError(f"the series of {self.data_source(run.config)} are not the ones this run was trained on "
                            f"(their SHA-256 differs from {run.file(DATA)})")  # fmt: skip
        return run.load_weights(self.build_model(run.config)), prepared

    def evaluate(self, run: Run, split: str) -> dict[str, Any]:
        if split not in SPLITS:
            raise TaskError(f"split must be one of {SPLITS}, got {split!r}")
        model, prepared = self.load(run)
        return score_part(model, prepared, split)

    def serving_metadata(self, run: Run) -> dict[str, Any]:
        """How a series' last values become the network's input and its output becomes forecasts."""
        recorded = run.read_record(DATA, _FORMAT, _VERSION)
        data = run.config.data
        return {"preprocess": {
            "input": "the last `window` values before the origin minus the last one, divided by the series' scale, "
                     "left-padded with zeros to `window` steps; channel 1 is 1 on real steps, 0 on padding",
            "output": "`horizon` changes from the last value in units of the scale: forecast = last + scale * y",
            "window": data.window, "horizon": data.horizon,
            "scales": {s["name"]: s["scale"] for s in recorded["series"]}}}  # fmt: skip

    def report(self, metrics: dict[str, Any]) -> list[str]:
        if "test" in metrics:  # a training summary
            head = (f"val loss: {metrics['scaled_mae']:.4f} (absolute error of the scaled changes), best epoch "
                    f"{metrics['best_epoch']}")  # fmt: skip
            if metrics.get("dropped"):
                head += f"; {len(metrics['dropped'])} series left out (listed under \"dropped\" in summary.json)"
            return [head, *self.report(metrics["test"])]
        lines = [f"{metrics['split']}: {metrics['series']} series, {metrics['origins']} origins x {metrics['horizon']} "
                 f"step(s) ahead; methods ranked by MASE on each series; the model's loss (absolute error of the "
                 f"scaled changes) {metrics['scaled_mae']:.4f}"]  # fmt: skip
        lines.append(f"{'method':<24}{'mean rank':>10}{'gmean MASE':>12}{'mean sMAPE%':>13}{'best on':>9}{'of':>6}")
        table = metrics["methods"]
        for name in sorted(table, key=lambda k: table[k]["mean_rank"]):
            r = table[name]
            lines.append(f"{name:<24}{r['mean_rank']:>10.3f}{r['gmean_mase']:>12.4f}{r['mean_smape']:>13.3f}"
                         f"{r['best_on']:>9}{r['series']:>6}")  # fmt: skip
        worse = metrics["worse_than_naive"]
        lines.append(f"{MODEL} worse than the (seasonal) naive on {len(worse)} of {metrics['series']} series"
                     + (f": {', '.join(worse[:12])}{' ...' if len(worse) > 12 else ''}" if worse else ""))
        return lines
