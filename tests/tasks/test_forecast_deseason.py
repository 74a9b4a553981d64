"""``data.deseason``: the LSTM reads the series minus an STL seasonal component fitted on its training steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from statsmodels.tsa.seasonal import STL

from forecast_files import config_for, seasonal_series, write_csv
from lstmkit.tasks import ConfigError, DataUnavailable, runner
from lstmkit.tasks import baselines as bl
from lstmkit.tasks.forecast import forecast_run, prepare_data
from lstmkit.tasks.forecast.data import SEASONAL_STRENGTH, SeasonalAdjustment, _stack, window_dataset
from lstmkit.tasks.forecast.scoring import model_forecasts, split_origins
from lstmkit.tasks.rundir import open_run

DATES = [f"{1990 + i // 12}-{i % 12 + 1:02d}" for i in range(60)]


def stl_of(values: np.ndarray, m: int) -> np.ndarray:
    """statsmodels' robust STL seasonal component, called directly (the independent reference)."""
    return np.asarray(STL(np.asarray(values, dtype=np.float64), period=m, robust=True).fit().seasonal)


def repeated(component: np.ndarray, m: int, steps: np.ndarray) -> np.ndarray:
    """The reference extension, written out step by step: a fitted step keeps its value, a later one takes the
    value one or more whole seasons before it within the last fitted season."""
    out = []
    for s in steps:
        while s >= len(component):
            s -= m
        out.append(component[s])
    return np.asarray(out)


def test_the_adjustment_repeats_the_last_fitted_cycle():
    adj = SeasonalAdjustment(np.arange(10.0), 4)
    steps = np.array([0, 5, 9, 10, 11, 12, 13, 14, 25])
    assert adj.at(steps).tolist() == [0, 5, 9, 6, 7, 8, 9, 6, 9]
    assert adj.at(steps).tolist() == repeated(np.arange(10.0), 4, steps).tolist()
    assert adj.at(np.array([[10, 11], [12, 13]])).shape == (2, 2)  # any shape of step indices
    with pytest.raises(ValueError, match=r"^seasonal steps must be >= 0, got -1$"):
        adj.at(np.array([3, -1]))


@pytest.mark.parametrize("full_train", [False, True])
def test_stl_is_fitted_on_the_training_steps_only_and_read_by_the_network(tmp_path, full_train):
    values = seasonal_series(60)
    path = write_csv(tmp_path / "s.csv", values, dates=DATES)
    extra = [
        "data.date_column=date",
        "data.season=6",
        "data.deseason=stl",
        f"data.full_train={str(full_train).lower()}",
    ]
    prepared = prepare_data(config_for(path, *extra))
    split, season = prepared.split, prepared.season
    fit_end = split.test_lo if full_train else split.val_lo  # 60 - 10 - (0 or 8)
    assert len(season.component) == fit_end == (50 if full_train else 42)
    np.testing.assert_allclose(season.component, stl_of(values[:fit_end], 6), rtol=0, atol=1e-12)
    steps = np.arange(60)
    np.testing.assert_allclose(season.at(steps), repeated(season.component, 6, steps), rtol=0, atol=0)
    # The network's target column is the adjusted series, scaled; the scaling was fitted on it.
    adjusted = values - season.at(steps)
    z0 = prepared.z[:, 0] * prepared.scaler.std[0].item() + prepared.scaler.mean[0].item()
    np.testing.assert_allclose(z0, adjusted, rtol=0, atol=1e-9 * np.abs(adjusted).max())
    assert prepared.scaler.mean[0].item() == pytest.approx(adjusted[: split.test_lo].mean(), rel=1e-9)
    assert prepared.season_note == ("the LSTM reads the series minus its STL seasonal component (period 6, fitted on "
                                    f"1990-01 .. {DATES[fit_end - 1]}; its last cycle repeated after), added back "
                                    "to the forecasts")  # fmt: skip
    # No later value shapes it: change every step after the fitted ones.
    changed = values.copy()
    changed[fit_end:] += np.linspace(5, 50, 60 - fit_end)
    again = prepare_data(config_for(write_csv(tmp_path / "c.csv", changed, dates=DATES), *extra))
    np.testing.assert_array_equal(again.season.component, season.component)


def test_auto_adjusts_only_a_seasonal_training_part(tmp_path):
    rng = np.random.default_rng(1)
    noise = np.round(20 + rng.normal(0, 1, 60), 4)
    seasonal = seasonal_series(60)
    for values, expect in ((noise, False), (seasonal, True)):
        path = write_csv(tmp_path / "s.csv", values, dates=DATES)
        prepared = prepare_data(config_for(path, "data.date_column=date", "data.season=6", "data.deseason=auto"))
        strength = bl.seasonal_strength(values[: prepared.split.val_lo], 6)
        assert (strength > SEASONAL_STRENGTH) == expect
        assert (prepared.season is not None) == expect
        if not expect:
            assert prepared.season_note == (f"not deseasonalised (data.deseason=auto: seasonal strength {strength:.3f} "
                                            f"of the training part <= {SEASONAL_STRENGTH})")  # fmt: skip
            off = prepare_data(config_for(path, "data.date_column=date", "data.season=6"))
            np.testing.assert_array_equal(prepared.z, off.z)  # left exactly as it is
            assert off.season is None and off.season_note == ""


def test_deseason_errors_name_the_key(tmp_path):
    path = write_csv(tmp_path / "s.csv", seasonal_series(60), dates=DATES)
    with pytest.raises(DataUnavailable, match=r"^data.deseason=stl needs a season: set data.season \(steps per "
                                              r"season, >= 2\)$"):  # fmt: skip
        prepare_data(config_for(path, "data.deseason=stl"))
    with pytest.raises(DataUnavailable, match=r"^data.deseason=stl: the training part has 42 steps; STL with "
                                              r"data.season 24 needs at least 49$"):  # fmt: skip
        prepare_data(config_for(path, "data.deseason=stl", "data.season=24"))
    # "auto" leaves such series as they are, saying why where there is a season
    short = prepare_data(config_for(path, "data.deseason=auto", "data.season=24"))
    assert short.season is None and short.season_note == ("not deseasonalised (data.deseason=auto: the training part "
                                                          "has 42 steps, fewer than the 49 STL needs with data.season "
                                                          "24)")  # fmt: skip
    none = prepare_data(config_for(path, "data.deseason=auto"))
    assert none.season is None and none.season_note == ""
    with pytest.raises(ConfigError, match=r"^model.base=ets models the season itself: set data.deseason=off$"):
        prepare_data(config_for(path, "data.season=6", "data.deseason=stl", "model.ar_skip=false", "model.base=ets"))
    with pytest.raises(ValueError, match=r"data.deseason must be one of \('off', 'stl', 'auto'\), got 'yes'"):
        config_for(path, "data.deseason=yes")


def test_a_deseasonalised_run_end_to_end_scores_forecasts_and_exports_its_cycle(tmp_path):
    """Trained with data.deseason=stl: the test table's LSTM row is the network's output unscaled plus the STL
    component (computed here from statsmodels directly); evaluate, the forecast command and the serving metadata
    agree with it."""
    values = seasonal_series(60)
    path = write_csv(tmp_path / "s.csv", values, dates=DATES)
    config = config_for(path, "data.date_column=date", "data.season=6", "data.horizon=2", "data.deseason=stl")
    result = runner.train("forecast", config, tmp_path / "run")
    test = result.metrics["test"]
    assert test["deseason"].startswith("the LSTM reads the series minus its STL") and test["deseason"] in result.lines
    model, prepared = open_run(result.run_dir).task.load(open_run(result.run_dir))
    origins = split_origins(prepared, "test")
    x, _ = _stack(window_dataset(prepared.z, int(origins[0]), int(origins[-1]) + 2, 6, 2))
    with torch.no_grad():
        z_pred = model.eval()(x.transpose(0, 1)).double().numpy()  # (N, 2)
    steps = origins[:, None] + np.arange(2)[None, :]
    component = stl_of(values[:42], 6)  # the training part: 60 - 10 - 8 steps
    expected = z_pred * prepared.scaler.std[0].item() + prepared.scaler.mean[0].item()
    expected += repeated(component, 6, steps.ravel()).reshape(steps.shape)
    forecasts = model_forecasts(model, prepared, "test")
    np.testing.assert_allclose(forecasts, expected, rtol=1e-12)
    rmse = float(np.sqrt(np.mean((values[steps] - expected) ** 2)))
    assert test["scores"][test["model"]]["rmse"] == pytest.approx(rmse, rel=1e-9)
    metrics, _ = runner.evaluate(result.run_dir, "test")
    assert metrics["scores"][test["model"]] == pytest.approx(test["scores"][test["model"]], rel=1e-9)
    fc = forecast_run(result.run_dir, 2, origin="test")
    np.testing.assert_allclose(fc.values, forecasts[0], rtol=1e-6)  # the network in float32 on one window
    beyond = forecast_run(result.run_dir, 5)  # recursive past the trained horizon, from the end of the data
    assert beyond.labels[0] == "1995-01" and np.isfinite(beyond.values).all()
    meta = open_run(result.run_dir).task.serving_metadata(open_run(result.run_dir))["preprocess"]["deseason"]
    assert meta["period"] == 6 and meta["cycle_starts_at"] == DATES[42]
    np.testing.assert_allclose(meta["cycle"], component[36:42], rtol=0, atol=0)
    json.dumps(meta)  # plain JSON for the exported model's metadata
