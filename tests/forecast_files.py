"""Small CSV series and configs shared by the ``forecast`` tests."""

from __future__ import annotations

import numpy as np

from lstmkit.tasks import runner

FAST = [
    "model.hidden_size=8",
    "train.epochs=3",
    "train.max_steps=6",
    "train.progress=false",
    "train.tensorboard=false",
    "train.log_every=2",
    "data.auto_baselines=false",  # ETS and ARIMA have their own tests (tests/tasks/test_forecast_baselines.py)
]


def write_csv(path, values, *, dates=None, covariate=None):
    header = ("date," if dates else "") + "y" + (",x" if covariate is not None else "")
    rows = []
    for i, v in enumerate(values):
        cells = ([dates[i]] if dates else []) + [str(v)] + ([str(covariate[i])] if covariate is not None else [])
        rows.append(",".join(cells))
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def seasonal_series(n=60, seed=0):
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return np.round(20 + 5 * np.sin(2 * np.pi * t / 6) + 0.1 * t + rng.normal(0, 0.3, n), 4)


def config_for(path, *extra):
    return runner.build_config(
        "forecast",
        overrides=[f"data.csv={path}", "data.column=y", "data.window=6", "data.test_size=10", "data.val_size=8",
                   *FAST, *extra],
    )  # fmt: skip
