"""``forecast``: an LSTM forecaster on one series, scored beside classical baselines on the same split.

Data: yearly sunspots (statsmodels), monthly airline passengers (sktime), or a user CSV
(``--set data.csv=FILE data.column=NAME``, optional ``data.date_column`` and
``data.covariates="a,b"``). The series is cut in time order into a training part, a validation
part (its last ``data.val_size`` steps, for early stopping) and a test part::

    | train ........................ | val ...... | test ...... | (unused)
    0                              val_lo       test_lo      test_hi

Preprocessing (optional log of the target, then a per-feature z-score) is fitted on the steps
before ``test_lo`` only, so no test value reaches the scaling, the training or the early stopping.

Model: ``SequenceModel`` reads a window of ``data.window`` steps (target and covariates) and its last
output gives the change of the next ``data.horizon`` values from the last one, all at once (the
*direct* strategy; ``lstmkit forecast --horizon`` longer than that feeds forecasts back, the
*recursive* strategy). With ``model.ar_skip`` (the default) a linear autoregressive skip is added
to the output, as in LSTNet's highway (Lai et al. 2018): its coefficients are fitted by least
squares on the training windows and kept fixed, and the LSTM's head starts at zero, so training
starts from the AR forecast and the LSTM learns what the linear model misses (the ARIMA + network
hybrid of Zhang 2003). ``--set model.ar_skip=false`` trains the LSTM alone.

Forecasts are scored on the test split from rolling origins: every origin whose ``horizon``
targets lie in the split, with the observed values before it as input. The baselines (naive,
seasonal naive and seasonal naive with growth where a season exists, AR(p) by least squares) are
scored on the same targets, in the original units.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from lstmkit._fileio import read_versioned_json, write_versioned_json
from lstmkit.data import SlidingWindowDataset, Standardizer
from lstmkit.data.series import Series, read_series_csv
from lstmkit.metrics import mae, mase, rmse, smape
from lstmkit.models import SequenceModel
from lstmkit.tasks import baselines as bl
from lstmkit.tasks.base import DataUnavailable, Prepared, Task, TaskError
from lstmkit.tasks.bundled import AIRLINE, SUNSPOTS, package_file
from lstmkit.tasks.registry import register_task
from lstmkit.tasks.rundir import Run, open_run
from lstmkit.train import Config, DataConfig, ModelConfig, TrainConfig, evaluate, fit, set_values

SCALER = "scaler.json"
DATA = "data.json"
_DATA_FORMAT = "lstmkit.forecast-split"
_DATA_VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Preset:
    """What a bundled series needs; a CSV takes the generic values."""

    window: int
    ar_order: int
    log: bool
    season: int
    test_start: str
    test_size: int
    val_size: int


PRESETS = {
    # Train 1700-1920, one-step forecasts of 1921-1987 (Zhang 2003, and many papers since). AR(9) is the
    # order of the literature's ARIMA on this split; 35 validation years hold three solar cycles.
    "sunspots": Preset(window=9, ar_order=9, log=False, season=0, test_start="1921", test_size=67, val_size=35),
    # The last 24 months held out. Log: the seasonal swing grows with the level. Two years of input,
    # and the last two years of the training part for early stopping.
    "airline": Preset(window=24, ar_order=24, log=True, season=12, test_start="", test_size=24, val_size=24),
}
DATASETS = (*PRESETS, "")


@dataclass(frozen=True)
class ForecastData(DataConfig):
    """The series, the split and the windows (``forecast``'s ``[data]``); None takes the dataset's preset."""

    dataset: str = "sunspots"  # "sunspots" or "airline"; ignored (set to "") when data.csv is given
    csv: str = ""  # a CSV file with a header row, read instead of the dataset
    column: str = ""  # the target column of data.csv
    date_column: str = ""  # optional: its dates must be evenly spaced (a missing step is an error)
    covariates: str = ""  # optional extra input columns of data.csv, comma-separated
    window: int | None = None  # input steps per forecast; sunspots 9, airline 24, CSV 12
    horizon: int = 1  # steps predicted at once from each origin (direct strategy)
    ar_order: int | None = None  # p of the AR baseline and of the skip; sunspots 9, airline 24, CSV: the window
    log: bool | None = None  # model log(target); airline yes (its seasonal swing grows with the level)
    season: int | None = None  # steps per season for the seasonal baselines and MASE; 0: none; airline 12
    test_start: str = ""  # the label (date) of the first test step; "" = the last data.test_size steps
    test_size: int | None = None  # test steps; sunspots 67 (1921-1987), airline 24, CSV 20% of the rows
    val_size: int | None = None  # validation steps before the test; sunspots 35, airline 24, CSV 20% of the rest

    def __post_init__(self) -> None:
        if isinstance(self.test_start, int) and not isinstance(self.test_start, bool):
            object.__setattr__(self, "test_start", str(self.test_start))  # `--set data.test_start=1921` is a year
        super().__post_init__()

    def _validate(self) -> None:
        super()._validate()
        if self.dataset not in DATASETS:
            raise ValueError(f"data.dataset must be one of {list(DATASETS)}, got {self.dataset!r}")
        for name in ("window", "horizon", "test_size", "val_size"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"data.{name} must be >= 1, got {v}")
        for name in ("ar_order", "season"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"data.{name} must be >= 0, got {v}")
        if self.season == 1:
            raise ValueError("data.season must be 0 (none) or >= 2, got 1")

    def covariate_list(self) -> list[str]:
        return [c.strip() for c in self.covariates.split(",") if c.strip()]


@dataclass(frozen=True)
class ForecastModel(ModelConfig):
    """``ModelConfig`` plus the linear autoregressive skip."""

    ar_skip: bool = True  # add a fixed least-squares AR(data.ar_order) to the output; the LSTM learns the residual


# -- data -------------------------------------------------------------------------------------------
def load_series(data: ForecastData) -> Series:
    """The series named by the config; :class:`DataUnavailable` says what is wrong or missing."""
    if data.csv and not data.column:
        raise DataUnavailable(f"data.csv={data.csv}: name the target column with data.column=NAME")
    if not data.csv and not data.dataset:
        raise DataUnavailable(
            "data.dataset is empty: set data.dataset=sunspots|airline, or data.csv=FILE data.column=NAME"
        )
    try:
        if data.csv:
            return read_series_csv(data.csv, data.column, date_column=data.date_column,
                                   covariates=data.covariate_list())
        if data.dataset == "sunspots":
            return read_series_csv(package_file(*SUNSPOTS), "SUNACTIVITY", date_column="YEAR")
        return read_series_csv(package_file(*AIRLINE), "Passengers", date_column="Date")
    except (OSError, ValueError) as e:
        raise DataUnavailable(str(e)) from e


def resolve(data: ForecastData, n_steps: int) -> ForecastData:
    """Fill the None keys from the dataset's preset (or the CSV rules)."""
    p = None if data.csv else PRESETS.get(data.dataset)
    window = data.window or (p.window if p else 12)
    test_size = data.test_size or (p.test_size if p else max(data.horizon, round(0.2 * n_steps)))
    values = {
        "window": window,
        "ar_order": data.ar_order if data.ar_order is not None else (p.ar_order if p else window),
        "log": data.log if data.log is not None else (p.log if p else False),
        "season": data.season if data.season is not None else (p.season if p else 0),
        "test_start": data.test_start or (p.test_start if p and data.test_size is None else ""),
        "test_size": test_size,
        "val_size": data.val_size or (p.val_size if p else max(data.horizon, round(0.2 * (n_steps - test_size)))),
    }
    return dataclasses.replace(data, **values)


@dataclass
class Split:
    """Step indices of the split (see the module docstring)."""

    val_lo: int
    test_lo: int
    test_hi: int

    def bounds(self, split: str) -> tuple[int, int]:
        """The target steps ``[lo, hi)`` of a split."""
        return {"train": (0, self.val_lo), "val": (self.val_lo, self.test_lo), "test": (self.test_lo, self.test_hi)}[
            split
        ]


def make_split(series: Series, data: ForecastData) -> Split:
    """Check that the resolved ``data`` fits ``series``; errors name the key to change."""
    n, W, H = len(series), data.window, data.horizon
    if data.test_start:
        if data.test_start not in series.labels:
            raise DataUnavailable(f"data.test_start {data.test_start!r} is not a step of the series "
                                  f"({series.labels[0]} .. {series.labels[-1]})")
        test_lo = series.labels.index(data.test_start)
    else:
        test_lo = n - data.test_size
    test_hi = test_lo + data.test_size
    if test_hi > n or test_lo < 0:
        raise DataUnavailable(f"data.test_size {data.test_size} from step {max(test_lo, 0)} runs past the series' "
                              f"{n} steps")
    if data.test_size < H:
        raise DataUnavailable(f"data.horizon {H} is longer than the test split ({data.test_size} steps); "
                              "shorten the horizon or hold out more steps (data.test_size)")
    if data.val_size < H:
        raise DataUnavailable(f"data.horizon {H} is longer than the validation split ({data.val_size} steps); "
                              "raise data.val_size")
    val_lo = test_lo - data.val_size
    if data.ar_order > W:
        raise DataUnavailable(f"data.ar_order {data.ar_order} must not exceed data.window {W}")
    n_train = val_lo - W - H + 1  # windows whose targets lie in the training part
    if n_train < 1:
        raise DataUnavailable(
            f"too few rows for one training window: the training part has {max(val_lo, 0)} steps, one window needs "
            f"data.window + data.horizon = {W + H} (the series has {n} rows; {data.val_size} validation and "
            f"{data.test_size} test steps are held out)"
        )
    if data.ar_order and n_train <= data.ar_order + 1:
        raise DataUnavailable(f"{n_train} training windows cannot fit an AR({data.ar_order}); lower data.ar_order")
    if data.log:
        bad = np.flatnonzero(series.values[:test_hi] <= 0)
        if bad.size:
            raise DataUnavailable(f"data.log needs positive values, but step {series.labels[bad[0]]!r} holds "
                                  f"{series.values[bad[0]]}; set data.log=false")
    return Split(val_lo, test_lo, test_hi)


def transform_target(values: np.ndarray, log: bool) -> np.ndarray:
    return np.log(values) if log else values.astype(np.float64)


def fingerprint(series: Series, split: Split) -> str:
    """SHA-256 of the steps the run uses (values, covariates and labels up to the end of the test)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(series.features()[: split.test_hi]).tobytes())
    h.update("\n".join(series.labels[: split.test_hi]).encode())
    return h.hexdigest()


@dataclass
class ForecastPrepared(Prepared):
    config: Config
    series: Series
    split: Split
    scaler: Standardizer
    z: np.ndarray  # (T, F) the scaled features: transformed target first, then covariates

    def save(self, run_dir: Path) -> None:
        self.scaler.save(run_dir / SCALER)
        s, lab = self.split, self.series.labels
        write_versioned_json(run_dir / DATA, _DATA_FORMAT, _DATA_VERSION, {
            "source": ForecastTask().data_source(self.config),
            "steps": len(self.series),
            "train": [lab[0], lab[s.val_lo - 1]],
            "val": [lab[s.val_lo], lab[s.test_lo - 1]],
            "test": [lab[s.test_lo], lab[s.test_hi - 1]],
            "sha256": fingerprint(self.series, s),
        })  # fmt: skip


def scaled_features(series: Series, data: ForecastData, scaler: Standardizer) -> np.ndarray:
    feats = series.features()
    feats[:, 0] = transform_target(feats[:, 0], data.log)
    return scaler.transform(feats)  # (T, F)


def prepare_data(config: Config) -> ForecastPrepared:
    series = load_series(config.data)
    data = resolve(config.data, len(series))
    split = make_split(series, data)
    feats = series.features()
    feats[:, 0] = transform_target(feats[:, 0], data.log)
    try:
        scaler = Standardizer().fit(feats[: split.test_lo])  # the steps before the test only
    except ValueError as e:
        raise DataUnavailable(f"cannot scale the training part: {e}") from e
    config = dataclasses.replace(
        config,
        data=data,
        model=dataclasses.replace(config.model, input_size=feats.shape[1], output_size=data.horizon, vocab_size=None),
    )
    return ForecastPrepared(config, series, split, scaler, scaler.transform(feats))


def window_dataset(z: np.ndarray, lo: int, hi: int, window: int, horizon: int) -> SlidingWindowDataset:
    """Windows whose ``horizon`` targets lie in ``[lo, hi)``, inputs the ``window`` steps before."""
    lo = max(lo, window)
    return SlidingWindowDataset(z[lo - window : hi], window=window, horizon=horizon, target_columns=[0])


# -- the model ----------------------------------------------------------------------------------------
class ForecastNet(nn.Module):
    """``SequenceModel`` over a window, read at its last step, plus an optional fixed linear AR skip.

    ``forward(x)``: x (T, B, F) scaled features, the target in column 0 -> (B, H) scaled forecasts of
    the next H target values: the last value, plus the LSTM's change, plus the AR skip's change.
    """

    def __init__(self, model: ForecastModel, ar_order: int) -> None:
        super().__init__()
        self.core = SequenceModel(model)
        self.ar_order = ar_order if model.ar_skip else 0
        self.ar: nn.Linear | None = None
        if self.ar_order:
            self.ar = nn.Linear(self.ar_order, model.output_size)
            self.ar.requires_grad_(False)  # fitted by least squares, then fixed
            # The head starts at zero, so the untrained model is exactly the AR forecast.
            nn.init.zeros_(self.core.head.weight)
            nn.init.zeros_(self.core.head.bias)

    def fit_ar(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Least squares of the targets' change on the last ``ar_order`` values: x (B, W, F), y (B, H)."""
        lags = x[:, -self.ar_order :, 0].double().numpy()  # (B, p)
        change = (y - x[:, -1:, 0]).double().numpy()  # (B, H)
        weight, bias = bl.least_squares(lags, change)
        with torch.no_grad():
            self.ar.weight.copy_(torch.from_numpy(weight.T))  # (H, p)
            self.ar.bias.copy_(torch.from_numpy(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.core(x)  # (T, B, H)
        y = x[-1, :, :1] + out[-1]  # (B, H): a change from the last value
        if self.ar is not None:
            y = y + self.ar(x[-self.ar_order :, :, 0].T)  # (p, B) -> (B, p) -> (B, H)
        return y


def forecast_step(
    model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], state: Any
) -> tuple[torch.Tensor, None, int]:
    """MSE of the scaled forecasts; batch = x (B, W, F), y (B, H, 1)."""
    x, y = batch
    pred = model(x.transpose(0, 1))  # (W, B, F) -> (B, H)
    return F.mse_loss(pred, y[..., 0]), None, x.shape[0]


def _stack(ds: SlidingWindowDataset) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(ds[i] for i in range(len(ds))), strict=True)
    return torch.stack(xs), torch.stack(ys)[..., 0]  # (N, W, F), (N, H)


# -- scoring -------------------------------------------------------------------------------------------
def score(actual: np.ndarray, pred: np.ndarray, y_train: np.ndarray, m: int) -> dict[str, float]:
    """MSE, RMSE, MAE, sMAPE (%) and MASE of (N, H) forecasts, in the series' units."""
    return {
        "mse": rmse(actual, pred) ** 2,
        "rmse": rmse(actual, pred),
        "mae": mae(actual, pred),
        "smape": smape(actual, pred),
        "mase": mase(actual, pred, y_train, m=m),
    }


def baseline_forecasts(t: np.ndarray, fit_end: int, data: ForecastData, origins: np.ndarray) -> dict[str, np.ndarray]:
    """Each baseline's (N, H) forecasts of the transformed target ``t`` from ``origins``; the growth and
    the AR coefficients are fitted on ``t[:fit_end]``."""
    H, m, train = data.horizon, data.season, t[:fit_end]
    out = {"naive": bl.naive(t, origins, H)}
    if m:
        out[f"seasonal naive (m={m})"] = bl.seasonal_naive(t, origins, H, m)
        growth = "ratio" if data.log else "drift"
        out[f"seasonal naive with growth ({growth})"] = bl.seasonal_naive_growth(
            t, origins, H, m, bl.seasonal_growth(train, m)
        )
    if data.ar_order:
        out[f"AR({data.ar_order})"] = bl.LinearAR(data.ar_order, H).fit(train).predict(t, origins)
    return out


def model_name(config: Config) -> str:
    skip = f" + AR({config.data.ar_order}) skip" if config.model.ar_skip and config.data.ar_order else ""
    return f"LSTM {config.model.num_layers}x{config.model.hidden_size}{skip}"


def score_split(model: ForecastNet, prepared: ForecastPrepared, split_name: str) -> dict[str, Any]:
    """The model's and every baseline's metrics on one split, in the original units."""
    config, data, split = prepared.config, prepared.config.data, prepared.split
    lo, hi = split.bounds(split_name)
    first = max(lo, data.window, data.ar_order, data.season)  # every method has the history it needs
    ds = window_dataset(prepared.z, first, hi, data.window, data.horizon)
    origins = np.arange(max(first, data.window), hi - data.horizon + 1)
    x, y = _stack(ds)
    with torch.no_grad():
        z_pred = model.eval()(x.transpose(0, 1)).double().numpy()  # (N, H)
    t = transform_target(prepared.series.values, data.log)

    def to_units(values_t: np.ndarray) -> np.ndarray:
        return np.exp(values_t) if data.log else values_t

    mean, std = prepared.scaler.mean[0].item(), prepared.scaler.std[0].item()
    # Baselines see what the model saw: for the test split every step before it (no validation is needed),
    # for the validation and training splits the training part only (in-sample for the training split).
    fit_end = split.test_lo if split_name == "test" else split.val_lo
    forecasts = {model_name(config): z_pred * std + mean, **baseline_forecasts(t, fit_end, data, origins)}
    actual = prepared.series.values[origins[:, None] + np.arange(data.horizon)[None, :]]  # (N, H)
    y_train = prepared.series.values[:fit_end]  # the MASE scale
    m = data.season or 1
    labels = prepared.series.labels
    return {
        "split": split_name,
        "targets": f"{labels[origins[0]]} .. {labels[origins[-1] + data.horizon - 1]}",
        "origins": len(origins),
        "horizon": data.horizon,
        "mse": evaluate(model, [(x, y[..., None])], forecast_step),  # the training loss: MSE of the scaled series
        "model": model_name(config),
        "scores": {name: score(actual, to_units(f), y_train, m) for name, f in forecasts.items()},
    }


# -- the task ---------------------------------------------------------------------------------------
@register_task("forecast")
class ForecastTask(Task):
    """One-series forecasting: RMSE, MAE, sMAPE and MASE of the LSTM beside naive, seasonal and AR baselines."""

    summary = (
        "forecasting: sunspots, airline passengers (data.dataset=airline) or --set data.csv=FILE data.column=NAME; "
        "LSTM vs naive, seasonal and AR baselines"
    )
    state_files = (SCALER, DATA)
    loss_label = "loss (MSE of the z-scored series)"

    def default_config(self) -> Config:
        # Tuned on sunspots' validation years (docs/results.md): a small net, because 177 training
        # windows overfit a large one within a few epochs; a constant rate and patient early stopping,
        # because the validation loss of 35 one-step targets is noisy.
        return Config(
            model=ForecastModel(hidden_size=32, num_layers=1, dropout=0.0),
            data=ForecastData(batch_size=16),  # about 11 updates per epoch on sunspots
            train=TrainConfig(
                epochs=300,
                lr=3e-3,
                schedule="constant",
                warmup_steps=0,  # the AR skip already gives a sensible start
                patience=100,
                stateful=False,  # windows are independent
                log_every=10,
                max_minutes=4.5,  # a guard for the 5-minute budget on a busy machine
            ),
        )

    def smoke_config(self, workdir: Path) -> Config:
        path = workdir / "forecast_smoke.csv"
        t = np.arange(80)
        values = 10 + np.sin(t * 2 * np.pi / 6) + 0.05 * t
        path.write_text("step,y\n" + "".join(f"{i},{v:.4f}\n" for i, v in zip(t, values, strict=True)))
        return Config(
            model=ForecastModel(hidden_size=8, num_layers=1, dropout=0.0),
            data=ForecastData(csv=str(path), column="y", window=6, horizon=2, season=6,
                              test_size=12, val_size=12, batch_size=8),
            train=TrainConfig(epochs=3, max_steps=6, schedule="constant", warmup_steps=0, stateful=False,
                              progress=False, tensorboard=False, log_every=2),
        )  # fmt: skip

    def data_source(self, config: Config) -> str:
        d = config.data
        if d.csv:
            return f"{d.csv}, column {d.column!r}"
        if d.dataset == "sunspots":
            return "yearly sunspots 1700-2008 (PyPI statsmodels: statsmodels/datasets/sunspots/sunspots.csv)"
        return "monthly airline passengers 1949-1960 (PyPI sktime: sktime/datasets/data/Airline/Airline.csv)"

    def check_data(self, config: Config) -> None:
        load_series(config.data)

    def prepare(self, config: Config) -> ForecastPrepared:
        if config.data.csv:  # record the absolute path, so that the run can be evaluated from anywhere
            path = str(Path(config.data.csv).expanduser().resolve())
            config = set_values(config, {"data.csv": path, "data.dataset": ""})
        return prepare_data(config)

    def train(self, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
        assert isinstance(prepared, ForecastPrepared)
        config, data, split = prepared.config, prepared.config.data, prepared.split
        model = ForecastNet(config.model, data.ar_order)
        train_ds = window_dataset(prepared.z, 0, split.val_lo, data.window, data.horizon)
        val_ds = window_dataset(prepared.z, split.val_lo, split.test_lo, data.window, data.horizon)
        if model.ar is not None:
            model.fit_ar(*_stack(train_ds))  # on the training windows only: validation stays unseen
        loader = DataLoader(train_ds, batch_size=config.data.batch_size, shuffle=True)
        val_loader = DataLoader(val_ds, batch_size=len(val_ds))
        result = fit(model, loader, forecast_step, config=config, out_dir=run_dir, val_data=val_loader)
        # The summary leads with the validation loss (what `lstmkit evaluate --split val` gives back) and
        # holds the test split's table, the result of the run.
        test = score_split(model, prepared, "test")
        metrics: dict[str, Any] = {"split": "val", "mse": result.best_val_loss, "test": test}
        metrics.update(
            steps=result.steps,
            epochs=len(result.history),
            best_epoch=result.best_epoch,
            parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
            train_windows=len(train_ds),
            val_windows=len(val_ds),
        )
        return metrics

    def load(self, run: Run) -> tuple[ForecastNet, ForecastPrepared]:
        """The run's model and data, checking that the series is the one it was trained on."""
        try:
            recorded = read_versioned_json(run.file(DATA), _DATA_FORMAT, _DATA_VERSION)
            scaler = Standardizer.load(run.file(SCALER))
        except ValueError as e:
            raise TaskError(str(e)) from e
        prepared = prepare_data(run.config)
        if recorded.get("sha256") != fingerprint(prepared.series, prepared.split):
            raise TaskError(f"the series of {self.data_source(run.config)} is not the one this run was trained on "
                            f"(its SHA-256 differs from {run.file(DATA)})")
        prepared.scaler, prepared.z = scaler, scaled_features(prepared.series, run.config.data, scaler)
        model = run.load_weights(self.build_model(run.config))
        return model, prepared

    def build_model(self, config: Config) -> ForecastNet:
        return ForecastNet(config.model, config.data.ar_order)

    def serving_metadata(self, run: Run) -> dict[str, Any]:
        """How a window of raw values becomes the network's input and its output becomes forecasts: the
        target (column 0) is logged when ``log``, every column scaled by ``(x - mean) / std``; the output
        (B, horizon) is in scaled units: ``y * std[0] + mean[0]``, then ``exp`` when ``log``."""
        try:
            scaler = Standardizer.load(run.file(SCALER))
        except ValueError as e:
            raise TaskError(str(e)) from e
        data = run.config.data
        return {
            "preprocess": {"columns": [data.column or "value", *data.covariate_list()], "log": bool(data.log),
                           "mean": scaler.mean.tolist(), "std": scaler.std.tolist(), "window": data.window,
                           "horizon": data.horizon},
        }

    def evaluate(self, run: Run, split: str) -> dict[str, Any]:
        if split not in SPLITS:
            raise TaskError(f"split must be one of {SPLITS}, got {split!r}")
        model, prepared = self.load(run)
        return score_split(model, prepared, split)

    def report(self, metrics: dict[str, Any]) -> list[str]:
        if "test" in metrics:  # a training summary: the validation loss, then the test table
            head = f"val loss: {metrics['mse']:.4f} (MSE of the z-scored series), best epoch {metrics['best_epoch']}"
            return [head, *self.report(metrics["test"])]
        lines = [
            f"{metrics['split']} targets {metrics['targets']}: {metrics['origins']} origins x {metrics['horizon']} "
            f"step(s) ahead, in the series' units",
            f"{'method':<40} {'MSE':>10} {'RMSE':>9} {'MAE':>9} {'sMAPE%':>8} {'MASE':>7}",
        ]
        for name, s in metrics["scores"].items():
            lines.append(
                f"{name:<40} {s['mse']:>10.2f} {s['rmse']:>9.3f} {s['mae']:>9.3f} {s['smape']:>8.2f} {s['mase']:>7.3f}"
            )
        return lines


# -- `lstmkit forecast RUN_DIR --horizon H` -----------------------------------------------------------
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
    t = z_steps * prepared.scaler.std[0].item() + prepared.scaler.mean[0].item()
    values = np.exp(t) if data.log else t
    labels = _next_labels(series.labels, start, horizon)
    known = series.values[start : start + horizon]
    actual = known if origin == "test" and len(known) else None
    strategy = "direct" if horizon <= data.horizon else f"recursive, {data.horizon} step(s) at a time"
    png = Path(out) if out is not None else run.path / f"forecast-{origin}-h{horizon}.png"
    plot_forecast(series, start, labels, values, png, title=f"{series.name}: {model_name(run.config)}, {strategy}")
    lines = [f"{horizon}-step forecast from {labels[0]} ({strategy}), in the series' units:"]
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        seen = f"  (actual {actual[i]:.4g})" if actual is not None and i < len(actual) else ""
        lines.append(f"{label}\t{v:.4g}{seen}")
    if actual is not None:
        n = len(actual)
        lines.append(f"RMSE over the {n} observed step(s): {rmse(actual, values[:n]):.4g}")
    lines.append(f"plot: {png}")
    return ForecastResult(labels, values, actual, strategy, png, lines)


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
    fig.savefig(png, dpi=100)
    plt.close(fig)


__all__ = ["ForecastData", "ForecastModel", "ForecastNet", "ForecastTask", "forecast_run", "load_series"]
