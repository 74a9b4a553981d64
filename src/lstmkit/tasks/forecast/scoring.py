"""``forecast``'s scores: MSE, RMSE, MAE, sMAPE and MASE of the model and of the baselines it computes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lstmkit.metrics import mae, mase, rmse, smape
from lstmkit.models import ForecastNet
from lstmkit.tasks import baselines as bl
from lstmkit.tasks.forecast.config import ForecastData
from lstmkit.tasks.forecast.data import ForecastPrepared, _stack, transform_target, window_dataset
from lstmkit.tasks.forecast.steps import forecast_step
from lstmkit.train import Config, evaluate


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
    """Each baseline's (N, H) forecasts of the transformed target ``t`` from ``origins``; the growth, the AR
    coefficients and the ETS and ARIMA forms and parameters are fitted on ``t[:fit_end]``."""
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
    if data.auto_baselines:
        for model in (bl.AutoETS(m), bl.AutoARIMA(m)):
            try:
                model.fit(train)
            except ValueError:  # too short a training part for the method: it is left out of the table
                continue
            out[model.name] = model.predict(t, origins, H)
    return out


def model_name(config: Config) -> str:
    skip = f" + AR({config.data.ar_order}) skip" if config.model.ar_skip and config.data.ar_order else ""
    if config.model.base:
        skip = f" on an {config.model.base.upper()} base"
    seeds = f", {config.model.ensemble}-seed mean" if config.model.ensemble > 1 else ""
    return f"LSTM {config.model.num_layers}x{config.model.hidden_size}{skip}{seeds}"


def split_origins(prepared: ForecastPrepared, split_name: str) -> np.ndarray:
    """The scored origins of a split: every one whose ``horizon`` targets lie in it and before which every
    method has the history it needs (the window, the AR order, a season)."""
    data = prepared.config.data
    lo, hi = prepared.split.bounds(split_name)
    first = max(lo, data.window, data.ar_order, data.season)
    return np.arange(first, hi - data.horizon + 1)


def model_forecasts(model: ForecastNet, prepared: ForecastPrepared, split_name: str) -> np.ndarray:
    """(N, H) forecasts of the model from :func:`split_origins`, in the series' units (averaging several
    seeds' forecasts of the same split makes a seed ensemble)."""
    data = prepared.config.data
    origins = split_origins(prepared, split_name)
    ds = window_dataset(prepared.z, int(origins[0]), int(origins[-1]) + data.horizon, data.window, data.horizon)
    x, _ = _stack(ds)
    with torch.no_grad():
        z_pred = model.eval()(x.transpose(0, 1)).double().numpy()  # (N, H)
    return prepared.to_units(z_pred, origins[:, None] + np.arange(data.horizon)[None, :])  # (N, H) target steps


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

    steps = origins[:, None] + np.arange(data.horizon)[None, :]  # (N, H) the target steps
    # Baselines see what the model saw: for the test split every step before it (no validation is needed),
    # for the validation and training splits the training part only (in-sample for the training split).
    fit_end = split.test_lo if split_name == "test" else split.val_lo
    forecasts = {model_name(config): prepared.to_target(z_pred, steps), **baseline_forecasts(t, fit_end, data, origins)}
    actual = prepared.series.values[steps]  # (N, H)
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
        # with model.base: its fitted form and the steps it was fitted on (then fixed)
        "base": f"{prepared.base_name} (fitted on {' .. '.join(prepared.base_fitted_on())})"
        if prepared.base_name else "",
        "deseason": prepared.season_note,  # with data.deseason: which seasonal adjustment the LSTM read, and why
        "filled": [lab for lab in prepared.series.filled if lab in set(labels[: split.test_hi])],
        "scores": {name: score(actual, to_units(f), y_train, m) for name, f in forecasts.items()},
    }
