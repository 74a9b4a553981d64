"""``forecast``'s data: reading the series, the chronological split, target transform, scaling, windows."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstmkit._fileio import write_versioned_json
from lstmkit.data import SlidingWindowDataset, Standardizer
from lstmkit.data.series import Series, read_series_csv
from lstmkit.tasks.base import ConfigError, DataUnavailable, Prepared
from lstmkit.tasks.bundled import AIRLINE, SUNSPOTS, package_file
from lstmkit.tasks.forecast.config import PRESETS, ForecastData
from lstmkit.train import Config

SCALER = "scaler.json"


DATA = "data.json"


_DATA_FORMAT = "lstmkit.forecast-split"


_DATA_VERSION = 1


SPLITS = ("train", "val", "test")


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
                                   covariates=data.covariate_list(), gaps=data.gaps)
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


SEASONAL_STRENGTH = 0.64  # data.deseason=auto adjusts above this STL seasonal strength (AutoARIMA's rule for D = 1)


@dataclass(frozen=True)
class SeasonalAdjustment:
    """What ``data.deseason`` subtracts from the transformed target: an STL seasonal component (period ``m``)
    fitted on steps ``[0, len(component))``, and for every later step its last cycle repeated."""

    component: np.ndarray  # (fit_end,) STL's seasonal component of the steps it was fitted on
    m: int

    def at(self, steps: np.ndarray | int) -> np.ndarray:
        """The seasonal value of each step index in ``steps`` (any shape, every index >= 0)."""
        steps = np.asarray(steps, dtype=np.int64)
        if steps.size and steps.min() < 0:
            raise ValueError(f"seasonal steps must be >= 0, got {int(steps.min())}")
        n = len(self.component)
        cycle = self.component[n - self.m :]  # (m,) the last fitted season; cycle[0] is step n - m
        later = cycle[(steps - (n - self.m)) % self.m]
        return np.where(steps < n, self.component[np.minimum(steps, n - 1)], later)


def seasonal_adjustment(t: np.ndarray, data: ForecastData, split: Split,
                        labels: list[str] | None = None) -> tuple[SeasonalAdjustment | None, str]:  # fmt: skip
    """The adjustment ``data.deseason`` asks for on the transformed target ``t`` (T,), or None, and a line saying
    which and why. The STL (statsmodels, robust) is fitted on the steps the model trains on (the training part;
    every step before the test with ``data.full_train``), so no validation or test value shapes it; "auto" decides
    on the training part's seasonal strength, the same steps with or without ``data.full_train``, and leaves a
    series with no season or too short a training part for STL as it is (explicit "stl" is an error there)."""
    if data.deseason == "off" or (data.deseason == "auto" and not data.season):  # auto: no season, nothing to do
        return None, ""
    if not data.season:
        raise DataUnavailable("data.deseason=stl needs a season: set data.season (steps per season, >= 2)")
    m = data.season
    fit_end = split.test_lo if data.full_train else split.val_lo
    if split.val_lo < 2 * m + 1:  # STL needs two full seasons and a step
        if data.deseason == "auto":
            return None, (f"not deseasonalised (data.deseason=auto: the training part has {split.val_lo} steps, "
                          f"fewer than the {2 * m + 1} STL needs with data.season {m})")  # fmt: skip
        raise DataUnavailable(f"data.deseason=stl: the training part has {split.val_lo} steps; STL with data.season "
                              f"{m} needs at least {2 * m + 1}")  # fmt: skip
    from statsmodels.tsa.seasonal import STL

    from lstmkit.tasks.baselines import seasonal_strength

    if data.deseason == "auto":
        strength = seasonal_strength(t[: split.val_lo], m)
        if strength <= SEASONAL_STRENGTH:
            return None, (f"not deseasonalised (data.deseason=auto: seasonal strength {strength:.3f} of the "
                          f"training part <= {SEASONAL_STRENGTH})")  # fmt: skip
    component = np.asarray(STL(np.asarray(t[:fit_end], dtype=np.float64), period=m, robust=True).fit().seasonal)
    span = f"{labels[0]} .. {labels[fit_end - 1]}" if labels else f"steps 0 .. {fit_end - 1}"
    line = (f"the LSTM reads the series minus its STL seasonal component (period {m}, fitted on {span}; its last "
            "cycle repeated after), added back to the forecasts")
    return SeasonalAdjustment(component, m), line


def fingerprint(series: Series, split: Split) -> str:
    """SHA-256 of the steps the run uses (values, covariates and labels up to the end of the test)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(series.features()[: split.test_hi]).tobytes())
    h.update("\n".join(series.labels[: split.test_hi]).encode())
    return h.hexdigest()


def describe_source(config: Config) -> str:
    """Where the series comes from, in words (``Task.data_source``)."""
    d = config.data
    if d.csv:
        return f"{d.csv}, column {d.column!r}"
    if d.dataset == "sunspots":
        return "yearly sunspots 1700-2008 (PyPI statsmodels: statsmodels/datasets/sunspots/sunspots.csv)"
    return "monthly airline passengers 1949-1960 (PyPI sktime: sktime/datasets/data/Airline/Airline.csv)"


@dataclass
class ForecastPrepared(Prepared):
    config: Config
    series: Series
    split: Split
    scaler: Standardizer
    # (T, F) the scaled features: transformed target first, then covariates, then with model.base the base's
    # 1 + H columns (base_features, divided by the target's scale)
    z: np.ndarray
    base_name: str = ""  # with model.base: the fitted form, e.g. "ARIMA(2,1,0) with drift"
    season: SeasonalAdjustment | None = None  # with data.deseason: what was subtracted from the target
    season_note: str = ""  # with data.deseason: which adjustment and why, in words

    def to_target(self, z_pred: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """The network's outputs ``z_pred`` (scaled units) as values of the transformed (log) target at the step
        indices ``steps`` (same shape): unscaled, and with ``data.deseason`` the seasonal component added back."""
        t = z_pred * self.scaler.std[0].item() + self.scaler.mean[0].item()
        return t + self.season.at(steps) if self.season is not None else t

    def to_units(self, z_pred: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """:meth:`to_target` in the series' units (``exp`` with ``data.log``)."""
        t = self.to_target(z_pred, steps)
        return np.exp(t) if self.config.data.log else t

    def base_fitted_on(self) -> tuple[str, str]:
        """The first and last step the base model (model.base) is fitted on."""
        return self.series.labels[0], self.series.labels[base_fit_end(self.config.data, self.split) - 1]

    def save(self, run_dir: Path) -> None:
        self.scaler.save(run_dir / SCALER)
        s, lab = self.split, self.series.labels
        write_versioned_json(run_dir / DATA, _DATA_FORMAT, _DATA_VERSION, {
            "source": describe_source(self.config),
            "steps": len(self.series),
            "train": [lab[0], lab[s.val_lo - 1]],
            "val": [lab[s.val_lo], lab[s.test_lo - 1]],
            "test": [lab[s.test_lo], lab[s.test_hi - 1]],
            "sha256": fingerprint(self.series, s),
        })  # fmt: skip


_BASE_CACHE: dict[str, tuple[np.ndarray, str]] = {}  # base fits by content: a run's load refits the same model


def base_features(t: np.ndarray, fit_end: int, kind: str, m: int, horizon: int) -> tuple[np.ndarray, str]:
    """The base model's input columns for every step ``s`` of the transformed target ``t`` (T,), and its name.

    The model (``kind`` "ets" or "arima": ``lstmkit.tasks.baselines.AutoETS`` / ``AutoARIMA`` with season ``m``)
    is fitted on ``t[:fit_end]`` and then only filters. Column 0 is its one-step residual ``t[s] - b_s[0]``;
    column ``k`` (1..H) is ``b_{s+1}[k-1] - t[s]``, its forecast of step ``s + k`` made from ``t[:s + 1]``, as a
    change from step ``s``'s value. ``b_o`` is the forecast from origin ``o``, which reads ``t[:o]`` only, so
    row ``s`` depends on no value after step ``s``. Rows before the model's shortest history are 0 (no
    residual, no change). Returns ((T, 1 + H) in the units of ``t``, e.g. "ARIMA(1,1,0) with drift")."""
    from lstmkit.tasks import baselines as bl

    t = np.asarray(t, dtype=np.float64)
    key = hashlib.sha256(t.tobytes() + f"{fit_end}/{kind}/{m}/{horizon}".encode()).hexdigest()
    if key not in _BASE_CACHE:
        model = bl.AutoETS(m) if kind == "ets" else bl.AutoARIMA(m)
        model.fit(t[:fit_end])
        n, first = len(t), model.min_history
        b = model.predict(t, np.arange(first, n + 1), horizon)  # (n + 1 - first, H): origins first .. n
        cols = np.zeros((n, 1 + horizon))
        cols[first:, 0] = t[first:] - b[:-1, 0]  # steps first .. n - 1: their one-step residuals
        cols[first - 1 :, 1:] = b - t[first - 1 :, None]  # row s holds origin s + 1's forecast
        _BASE_CACHE[key] = (cols, model.name)
    cols, name = _BASE_CACHE[key]
    return cols.copy(), name


def base_fit_end(data: ForecastData, split: Split) -> int:
    """Where the base model is fitted: the LSTM's training part (with data.full_train every step before the test),
    like the AR skip, so that the validation windows stay unseen by it."""
    return split.test_lo if data.full_train else split.val_lo


def target_features(series: Series, data: ForecastData, season: SeasonalAdjustment | None) -> np.ndarray:
    """(T, F) the unscaled features: the transformed target (minus the seasonal component with ``season``), then
    the covariates."""
    feats = series.features()
    feats[:, 0] = transform_target(feats[:, 0], data.log)
    if season is not None:
        feats[:, 0] -= season.at(np.arange(len(feats)))
    return feats


def scaled_features(
    series: Series, data: ForecastData, scaler: Standardizer, split: Split, base: str = "",
    season: SeasonalAdjustment | None = None,
) -> tuple[np.ndarray, str]:  # fmt: skip
    """(T, F) the network's input features (see ``ForecastPrepared.z``) and the base's name ("" without one)."""
    feats = target_features(series, data, season)
    z = scaler.transform(feats)  # (T, F)
    if not base:
        return z, ""
    try:
        cols, name = base_features(feats[:, 0], base_fit_end(data, split), base, data.season, data.horizon)
    except ValueError as e:
        raise DataUnavailable(f"model.base={base}: {e}") from e
    return np.concatenate([z, cols / scaler.std[0].item()], axis=1), name  # (T, F + 1 + H)


def prepare_data(config: Config) -> ForecastPrepared:
    if config.model.base and config.model.ar_skip:
        raise ConfigError(f"model.base={config.model.base} replaces the AR skip: set model.ar_skip=false as well")
    if config.model.base and config.data.deseason != "off":
        raise ConfigError(f"model.base={config.model.base} models the season itself: set data.deseason=off")
    series = load_series(config.data)
    data = resolve(config.data, len(series))
    split = make_split(series, data)
    season, season_note = seasonal_adjustment(transform_target(series.values, data.log), data, split, series.labels)
    feats = target_features(series, data, season)
    try:
        scaler = Standardizer().fit(feats[: split.test_lo])  # the steps before the test only
    except ValueError as e:
        raise DataUnavailable(f"cannot scale the training part: {e}") from e
    z, base_name = scaled_features(series, data, scaler, split, config.model.base, season)
    config = dataclasses.replace(
        config,
        data=data,
        model=dataclasses.replace(config.model, input_size=z.shape[1], output_size=data.horizon, vocab_size=None),
    )
    return ForecastPrepared(config, series, split, scaler, z, base_name, season, season_note)


def window_dataset(z: np.ndarray, lo: int, hi: int, window: int, horizon: int) -> SlidingWindowDataset:
    """Windows whose ``horizon`` targets lie in ``[lo, hi)``, inputs the ``window`` steps before."""
    lo = max(lo, window)
    return SlidingWindowDataset(z[lo - window : hi], window=window, horizon=horizon, target_columns=[0])


def _stack(ds: SlidingWindowDataset) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(ds[i] for i in range(len(ds))), strict=True)
    return torch.stack(xs), torch.stack(ys)[..., 0]  # (N, W, F), (N, H)
