"""ETS and ARIMA with automatic selection, gap filling in forecasting CSVs, and the full-precision table,
on series whose right answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.data.series import read_series_csv
from lstmkit.tasks import baselines as bl
from lstmkit.tasks import get_task, runner
from lstmkit.tasks.forecast import prepare_data
from lstmkit.tasks.forecast.scoring import baseline_forecasts

pytest.importorskip("statsmodels")


def test_kpss_and_seasonal_strength_on_series_of_known_kind():
    rng = np.random.default_rng(0)
    assert bl.kpss_differences(rng.standard_normal(200)) == 0  # white noise is stationary
    assert bl.kpss_differences(np.cumsum(rng.standard_normal(200))) == 1  # a random walk needs one difference
    sine = np.sin(np.arange(120) * 2 * np.pi / 12) + 0.01 * rng.standard_normal(120)
    assert bl.seasonal_strength(sine, 12) > 0.99
    assert bl.seasonal_strength(rng.standard_normal(120), 12) < 0.3


def test_ets_continues_a_line():
    rng = np.random.default_rng(1)
    line = 2 * np.arange(60.0) + 1 + 0.01 * rng.standard_normal(60)
    model = bl.AutoETS().fit(line[:50])
    assert model.name.startswith("ETS(A,A")  # a trend was chosen
    # The line's continuation, 2(t + h) + 1, from each origin: (50, 51, 52) and (55, 56, 57).
    np.testing.assert_allclose(model.predict(line, [50, 55], 3), [[101, 103, 105], [111, 113, 115]], atol=0.1)


@pytest.mark.slow  # about a minute: ARIMA's optimiser is slow on near-noiseless series
def test_ets_and_arima_continue_a_line_and_a_repeating_season():
    rng = np.random.default_rng(1)
    line = 2 * np.arange(60.0) + 1 + 0.01 * rng.standard_normal(60)
    pred = bl.AutoARIMA(max_p=2).fit(line[:50]).predict(line, [50, 55], 3)
    np.testing.assert_allclose(pred, [[101, 103, 105], [111, 113, 115]], atol=0.1)
    pattern = np.tile([1.0, 5.0, 3.0, 7.0], 20) + 0.01 * rng.standard_normal(80)
    for model in (bl.AutoETS(4), bl.AutoARIMA(4, max_p=1, max_q=1)):
        pred = model.fit(pattern[:60]).predict(pattern, [60, 61], 4)
        np.testing.assert_allclose(pred, [[1, 5, 3, 7], [5, 3, 7, 1]], atol=0.1)
    arima = bl.AutoARIMA(4, max_p=1, max_q=1).fit(pattern[:60])
    assert arima.seasonal_order[1] == 1 and arima.name.startswith("ARIMA(")  # D = 1 for a strong season


def test_arima_forecast_is_the_fitted_ar1_formula_and_uses_only_the_past():
    rng = np.random.default_rng(2)
    x = np.zeros(300)
    for i in range(1, 300):
        x[i] = 0.6 * x[i - 1] + rng.standard_normal()
    model = bl.AutoARIMA(max_p=1, max_q=0).fit(x[:200])
    assert model.order == (1, 0, 0) and model.trend == "c"
    mu, phi = model.result.params[:2]  # statsmodels' constant is the process mean
    assert 0.45 < phi < 0.75
    pred = model.predict(x, [200, 250], 2)
    for row, origin in zip(pred, (200, 250), strict=True):
        one = mu + phi * (x[origin - 1] - mu)  # the AR(1) forecast by hand
        np.testing.assert_allclose(row, [one, mu + phi * (one - mu)], rtol=1e-6)
    future = x.copy()
    future[200:] += 100.0  # values at and after the origin change nothing
    np.testing.assert_array_equal(model.predict(future, [200], 2), pred[:1])


def test_task_scores_ets_and_arima_on_the_same_targets(tmp_path, monkeypatch):
    import functools

    from lstmkit.tasks.forecast import scoring

    monkeypatch.setattr(scoring.bl, "AutoARIMA", functools.partial(bl.AutoARIMA, max_p=1, max_q=1))  # seconds
    t = np.arange(48)
    values = 50 + 0.5 * t + np.random.default_rng(3).standard_normal(48)  # a noisy line: both continue the trend
    path = tmp_path / "s.csv"
    path.write_text("y\n" + "".join(f"{float(v)!r}\n" for v in values))
    config = runner.build_config("forecast", overrides=[
        f"data.csv={path}", "data.column=y", "data.window=6", "data.test_size=8", "data.val_size=8"])  # fmt: skip
    p = prepare_data(config)
    origins = np.arange(p.split.test_lo, p.split.test_hi)
    out = baseline_forecasts(p.series.values, p.split.test_lo, p.config.data, origins)
    names = [k for k in out if k.startswith(("ETS(", "ARIMA("))]
    assert len(names) == 2 and out[names[0]].shape == out[names[1]].shape == (8, 1)
    truth = 50 + 0.5 * origins[:, None]  # the line without the noise
    naive_error = np.abs(out["naive"] - truth).mean()
    for name in names:  # both track the line: within the noise (std 1), and no worse than the naive forecast
        assert np.abs(out[name] - truth).mean() < min(1.0, naive_error), name


def write(path, text):
    path.write_text(text)
    return path


def test_gaps_are_refused_by_default_naming_the_date_and_filled_on_request(tmp_path):
    csv = write(tmp_path / "g.csv", "year,y\n2000,1\n2001,\n2002,3\n2004,5\n")
    with pytest.raises(ValueError, match=r"year '2001' \(line 3\), column 'y' is empty.*data.gaps=linear"):
        read_series_csv(csv, "y", date_column="year")
    s = read_series_csv(csv, "y", date_column="year", gaps="linear")
    assert s.labels == ["2000", "2001", "2002", "2003", "2004"]  # the missing year became a step
    np.testing.assert_array_equal(s.values, [1, 2, 3, 4, 5])
    assert s.filled == ["2001", "2003"]
    s = read_series_csv(csv, "y", date_column="year", gaps="previous")
    np.testing.assert_array_equal(s.values, [1, 1, 3, 3, 5])
    months = write(tmp_path / "m.csv", "d,y\n1990-11,,\n1990-12,4\n1991-02,8\n".replace(",,\n", ",\n"))
    s = read_series_csv(months, "y", date_column="d", gaps="linear")
    assert s.labels == ["1990-11", "1990-12", "1991-01", "1991-02"]
    np.testing.assert_array_equal(s.values, [4, 4, 6, 8])  # the leading gap holds the first value
    with pytest.raises(ValueError, match="gaps must be one of"):
        read_series_csv(csv, "y", gaps="zero")
    with pytest.raises(ValueError, match=r"data.gaps must be one of"):
        runner.build_config("forecast", overrides=["data.gaps=zero"])
    no_dates = write(tmp_path / "n.csv", "x,y\n1,1\n\n2,2\n3,\n")
    with pytest.raises(ValueError, match=r"line 5, column 'y' is empty"):
        read_series_csv(no_dates, "y")


def test_the_report_prints_full_precision_and_the_filled_steps():
    metrics = {"split": "test", "targets": "2001 .. 2004", "origins": 4, "horizon": 1, "filled": ["2003"],
               "scores": {"naive": {"mse": 1 / 3, "rmse": 0.1234567890123, "mae": 2.0, "smape": 12.5, "mase": 1e-7}}}
    lines = get_task("forecast").report(metrics)
    assert "gaps filled (data.gaps): 1 step(s): 2003" in lines[1]
    assert "0.3333333333333333" in lines[-1] and "0.1234567890123" in lines[-1] and "1e-07" in lines[-1]


def test_one_step_forecasts_are_the_per_origin_forecasts():
    """At horizon 1 ETS and ARIMA take one filtering pass instead of one per origin; the first column of the
    per-origin path (horizon 2) must be the same numbers, including the origin past the last value."""
    rng = np.random.default_rng(4)
    t = np.arange(90)
    y = 10 + 0.05 * t + np.sin(2 * np.pi * t / 4) + 0.3 * rng.standard_normal(90)
    for model in (bl.AutoETS(4), bl.AutoARIMA(4, max_p=1, max_q=1)):
        model.fit(y[:60])
        origins = [model.min_history, 30, 61, 89, 90]
        one = model.predict(y, origins, 1)
        assert one.shape == (5, 1)
        np.testing.assert_allclose(one[:, 0], model.predict(y, origins, 2)[:, 0], rtol=1e-9, atol=1e-9)
        with pytest.raises(ValueError, match=r"origins must lie in \[" + str(model.min_history)):
            model.predict(y, [model.min_history - 1], 1)


def test_base_features_by_hand_and_no_later_value_reaches_a_row():
    """forecast's model.base columns: the one-step residual and the forecast of the next H values (as changes
    from the step's value) of an ETS fitted on the training part, row s reading steps up to s only."""
    from lstmkit.tasks.forecast.data import base_features

    rng = np.random.default_rng(5)
    y = np.cumsum(rng.standard_normal(70)) + 50
    cols, name = base_features(y, 40, "ets", 0, 2)
    model = bl.AutoETS(0).fit(y[:40])
    assert name == model.name and cols.shape == (70, 3)
    first = model.min_history
    b = model.predict(y, np.arange(first, 71), 2)  # origins first .. 70
    for s in (first, 39, 55, 69):
        assert cols[s, 0] == pytest.approx(y[s] - b[s - first, 0], abs=1e-9)  # origin s's one-step error
        np.testing.assert_allclose(cols[s, 1:], b[s + 1 - first] - y[s], atol=1e-9)  # origin s + 1's forecast
    assert (cols[: first - 1] == 0).all() and cols[first - 1, 0] == 0
    later = y.copy()
    later[56:] += 100  # steps after 55 change; the fit (steps 0 .. 39) does not
    moved, _ = base_features(later, 40, "ets", 0, 2)
    np.testing.assert_array_equal(moved[:56], cols[:56])
    assert np.abs(moved[56:] - cols[56:]).max() > 1


def test_the_untrained_model_on_a_base_is_exactly_that_base(tmp_path):
    """model.base: the head starts at zero, so before training the network's forecasts are the base model's
    (fitted on the training part) from the same origins; errors for a wrong value and the AR skip left on."""
    from lstmkit.tasks import ConfigError
    from lstmkit.tasks.forecast import ForecastTask
    from lstmkit.tasks.forecast.scoring import model_forecasts, split_origins

    rng = np.random.default_rng(6)
    values = np.round(30 + np.cumsum(rng.standard_normal(80)), 4)
    path = tmp_path / "s.csv"
    path.write_text("y\n" + "\n".join(map(str, values)) + "\n")
    common = [f"data.csv={path}", "data.column=y", "data.window=6", "data.test_size=12", "data.val_size=12",
              "data.horizon=2", "data.auto_baselines=false", "model.hidden_size=8"]  # fmt: skip
    overrides = [*common, "model.ar_skip=false"]
    for kind, model in (("ets", bl.AutoETS(0)), ("arima", bl.AutoARIMA(0, max_p=5, max_q=2))):
        p = prepare_data(runner.build_config("forecast", overrides=[*overrides, f"model.base={kind}"]))
        assert p.config.model.input_size == 1 + 1 + 2 and p.base_name == model.fit(values[:56]).name
        net = ForecastTask().build_model(p.config)
        for split in ("val", "test"):
            origins = split_origins(p, split)
            np.testing.assert_allclose(model_forecasts(net, p, split), model.predict(values, origins, 2),
                                       rtol=1e-5, atol=1e-4)  # float32 network, values about 30  # fmt: skip
    with pytest.raises(ConfigError, match=r"^model.base=arima replaces the AR skip: set model.ar_skip=false as well"):
        prepare_data(runner.build_config("forecast", overrides=[*common, "model.base=arima"]))
    with pytest.raises(ValueError, match=r"model.base must be one of \['', 'ets', 'arima'\], got 'theta'"):
        runner.build_config("forecast", overrides=["model.base=theta"])
