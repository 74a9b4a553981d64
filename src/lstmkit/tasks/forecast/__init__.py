"""``forecast``: an LSTM forecaster on one series, scored beside classical baselines on the same split.

Data: yearly sunspots (statsmodels), monthly airline passengers (sktime), or a user CSV
(``--set data.csv=FILE data.column=NAME``, optional ``data.date_column`` and
``data.covariates="a,b"``). The series is cut in time order into a training part, a validation
part (its last ``data.val_size`` steps, for early stopping) and a test part::

    | train ........................ | val ...... | test ...... | (unused)
    0                              val_lo       test_lo      test_hi

Preprocessing (optional log of the target, then a per-feature z-score) is fitted on the steps
before ``test_lo`` only, so no test value reaches the scaling, the training or the early stopping.
``data.full_train`` trains on every window before ``test_lo`` (training and validation parts) for
``train.epochs``, with no early stopping: the refit once the validation part has chosen a setting.

Model: ``SequenceModel`` reads a window of ``data.window`` steps (target and covariates) and its last
output gives the change of the next ``data.horizon`` values from the last one, all at once (the
*direct* strategy; ``lstmkit forecast --horizon`` longer than that feeds forecasts back, the
*recursive* strategy). With ``model.ar_skip`` (the default) a linear autoregressive skip is added
to the output, as in LSTNet's highway (Lai et al. 2018): its coefficients are fitted by least
squares on the training windows and kept fixed, and the LSTM's head starts at zero, so training
starts from the AR forecast and the LSTM learns what the linear model misses (the ARIMA + network
hybrid of Zhang 2003). ``--set model.ar_skip=false`` trains the LSTM alone; with it, ``model.base``
(``ets`` or ``arima``) makes the task's automatic ETS or ARIMA, fitted on the training part, the base
instead: its one-step residuals and its forecasts (as changes) become input columns of every step
(``data.base_features``) and its forecast from the last step is added to the output.

Forecasts are scored on the test split from rolling origins: every origin whose ``horizon``
targets lie in the split, with the observed values before it as input. The baselines (naive,
seasonal naive and seasonal naive with growth where a season exists, AR(p) by least squares) are
scored on the same targets, in the original units.

Modules: ``config`` (the ``[data]`` section), ``data``, ``steps``, ``scoring``, ``plots``, ``task``
(the registered ``ForecastTask``) and ``command`` (``lstmkit forecast``); the model is
``lstmkit.models.ForecastNet``.
"""

from __future__ import annotations

from lstmkit.models import ForecastModel, ForecastNet
from lstmkit.tasks.forecast.command import ForecastResult, forecast_run
from lstmkit.tasks.forecast.config import DATASETS, PRESETS, ForecastData, Preset
from lstmkit.tasks.forecast.data import (
    _DATA_FORMAT,
    _DATA_VERSION,
    DATA,
    SCALER,
    SPLITS,
    ForecastPrepared,
    Split,
    _stack,
    fingerprint,
    load_series,
    make_split,
    prepare_data,
    resolve,
    scaled_features,
    transform_target,
    window_dataset,
)
from lstmkit.tasks.forecast.many_task import ForecastManyTask  # registers forecast-many
from lstmkit.tasks.forecast.plots import plot_forecast
from lstmkit.tasks.forecast.scoring import baseline_forecasts, model_name, score, score_split
from lstmkit.tasks.forecast.steps import forecast_step
from lstmkit.tasks.forecast.task import ForecastTask

__all__ = [
    "DATA",
    "DATASETS",
    "PRESETS",
    "SCALER",
    "SPLITS",
    "_DATA_FORMAT",
    "_DATA_VERSION",
    "ForecastData",
    "ForecastManyTask",
    "ForecastModel",
    "ForecastNet",
    "ForecastPrepared",
    "ForecastResult",
    "ForecastTask",
    "Preset",
    "Split",
    "_stack",
    "baseline_forecasts",
    "fingerprint",
    "forecast_run",
    "forecast_step",
    "load_series",
    "make_split",
    "model_name",
    "plot_forecast",
    "prepare_data",
    "resolve",
    "scaled_features",
    "score",
    "score_split",
    "transform_target",
    "window_dataset",
]
