"""The forecast task: windows and splits without leakage, the baselines on hand-checked series, the AR
skip, bad input, and a seconds-long end-to-end run with `lstmkit forecast`."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import safetensors.torch
import torch
from typer.testing import CliRunner

from forecast_files import config_for, seasonal_series, write_csv
from lstmkit import _rounding
from lstmkit.cli import app
from lstmkit.tasks import DataUnavailable, TaskError, get_task, runner
from lstmkit.tasks import baselines as bl
from lstmkit.tasks.bundled import package_dir
from lstmkit.tasks.forecast import (
    ForecastModel,
    ForecastNet,
    baseline_forecasts,
    forecast_run,
    prepare_data,
    window_dataset,
)


# -- windows and the split ------------------------------------------------------------------------------
def test_windows_have_their_targets_inside_the_split():
    z = np.arange(30, dtype=np.float64)[:, None]  # the value is the step index
    ds = window_dataset(z, 10, 20, window=4, horizon=2)
    assert len(ds) == 20 - 10 - 2 + 1
    x, y = ds[0]
    assert x[:, 0].tolist() == [6, 7, 8, 9] and y[:, 0].tolist() == [10, 11]  # inputs end where targets start
    x, y = ds[len(ds) - 1]
    assert y[:, 0].tolist() == [18, 19]  # the last target is the split's last step
    assert len(window_dataset(z, 0, 10, window=4, horizon=1)) == 6  # targets start once a window fits


def test_no_test_value_reaches_the_scaling_or_the_training(tmp_path):
    values = seasonal_series()
    changed = values.copy()
    changed[-10:] *= 100  # only the 10 test steps differ
    a = prepare_data(config_for(write_csv(tmp_path / "a.csv", values)))
    b = prepare_data(config_for(write_csv(tmp_path / "b.csv", changed)))
    assert (a.split.val_lo, a.split.test_lo, a.split.test_hi) == (42, 50, 60)
    assert torch.equal(a.scaler.mean, b.scaler.mean) and torch.equal(a.scaler.std, b.scaler.std)
    np.testing.assert_array_equal(a.scaler.mean.numpy(), [values[:50].mean()])  # fitted on the steps before the test
    np.testing.assert_array_equal(a.z[:50], b.z[:50])
    # Train both: identical weights, so no test value influenced training or early stopping.
    ra = runner.train("forecast", config_for(tmp_path / "a.csv"), tmp_path / "ra")
    rb = runner.train("forecast", config_for(tmp_path / "b.csv"), tmp_path / "rb")
    wa = safetensors.torch.load_file(str(ra.run_dir / "model.safetensors"))
    wb = safetensors.torch.load_file(str(rb.run_dir / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert ra.metrics["mse"] == rb.metrics["mse"]  # the validation loss
    assert ra.metrics["test"]["scores"] != rb.metrics["test"]["scores"]  # while the test scores do see the change


def test_presets_fill_the_unset_keys_and_the_sunspots_split_is_the_literatures():
    if package_dir("statsmodels") is None:
        pytest.skip("statsmodels is not installed")
    p = prepare_data(runner.build_config("forecast"))
    d, s = p.config.data, p.series
    assert (d.window, d.ar_order, d.log, d.season, d.test_start, d.test_size) == (9, 9, False, 0, "1921", 67)
    assert s.labels[0] == "1700" and s.labels[p.split.test_lo - 1] == "1920"
    assert s.labels[p.split.test_lo] == "1921" and s.labels[p.split.test_hi - 1] == "1987"
    # AR(9) by least squares on 1700-1920, one-step forecasts of 1921-1987: the ARIMA level of Zhang (2003).
    origins = np.arange(p.split.test_lo, p.split.test_hi)
    ar = baseline_forecasts(s.values, p.split.test_lo, dataclasses.replace(d, auto_baselines=False), origins)["AR(9)"]
    mse = float(np.mean((ar[:, 0] - s.values[origins]) ** 2))
    assert mse == pytest.approx(305.25, abs=0.01)


# -- baselines -----------------------------------------------------------------------------------------
def test_naive_and_seasonal_baselines_by_hand():
    y = np.array([1.0, 2, 3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(bl.naive(y, [5, 7], 3), [[5, 5, 5], [7, 7, 7]])
    # m = 3: steps 5, 6, 7, 8 from origin 5 take steps 2, 3, 4, then 2 again (two seasons back)
    np.testing.assert_array_equal(bl.seasonal_naive(y, [5], 4, 3), [[3, 4, 5, 3]])
    assert bl.seasonal_growth(y, 3) == 3.0  # y[t] - y[t - 3] is 3 everywhere
    np.testing.assert_array_equal(bl.seasonal_naive_growth(y, [5], 4, 3, 3.0), [[6, 7, 8, 9]])  # the trend goes on
    with pytest.raises(ValueError, match="origins must lie in"):
        bl.naive(y, [0], 1)
    with pytest.raises(ValueError, match="season m >= 2"):
        bl.seasonal_naive(y, [5], 1, 1)


def test_ar_recovers_a_noiseless_process_and_forecasts_it_exactly():
    y = np.zeros(40)
    y[:2] = [1.0, 0.5]
    for t in range(2, 40):
        y[t] = 0.6 * y[t - 1] - 0.3 * y[t - 2] + 2.0
    ar = bl.LinearAR(2, horizon=2).fit(y[:30])
    np.testing.assert_allclose(ar.weight[:, 0], [-0.3, 0.6], atol=1e-9)  # oldest lag first
    np.testing.assert_allclose(ar.bias[0], 2.0, atol=1e-9)
    np.testing.assert_allclose(ar.predict(y, [30, 35]), [[y[30], y[31]], [y[35], y[36]]], atol=1e-9)


def test_least_squares_and_its_guard():
    x = np.array([[0.0], [1], [2], [3]])
    w, b = bl.least_squares(x, 2 * x + 1)
    np.testing.assert_allclose([w[0, 0], b[0]], [2, 1], atol=1e-12)
    with pytest.raises(ValueError, match="cannot fit"):
        bl.least_squares(x[:1], x[:1])


def test_the_untrained_model_is_exactly_the_ar_skip(tmp_path):
    p = prepare_data(config_for(write_csv(tmp_path / "s.csv", seasonal_series())))
    net = ForecastNet(p.config.model, p.config.data.ar_order)
    x = torch.randn(5, 6, 1)  # (B, W, F)
    y = torch.randn(5, 1)
    net.fit_ar(x.repeat(3, 1, 1) + torch.randn(15, 6, 1) * 0.1, torch.randn(15, 1))
    out = net(x.transpose(0, 1))
    expected = x[:, -1, :1] + x[:, :, 0] @ net.ar.weight.T + net.ar.bias  # last value + linear AR change
    torch.testing.assert_close(out, expected)
    assert not net.ar.weight.requires_grad and y.shape == out.shape
    no_skip = ForecastNet(ForecastModel(input_size=1, output_size=1, hidden_size=8, ar_skip=False), 6)
    assert no_skip.ar is None


def test_relative_inputs_make_the_forecast_shift_with_the_level():
    """model.relative: the LSTM reads the target minus its last value, covariates untouched. So (without the AR
    skip, whose intercept is not level-free) adding c to a window's target adds exactly c to the forecast, while
    the same model reading levels changes by more than c; a covariate's level still matters."""
    torch.manual_seed(0)
    x = torch.randn(7, 5, 2, dtype=torch.float64)  # (T, B, F): target, one covariate
    shift = torch.tensor([3.0, 0.0], dtype=torch.float64)
    for relative in (True, False):
        net = ForecastNet(ForecastModel(input_size=2, output_size=2, hidden_size=8, ar_skip=False,
                                        relative=relative), 0).double().eval()  # fmt: skip
        torch.nn.init.normal_(net.core.head.weight)  # the head starts at 0: give the LSTM a say
        with torch.no_grad():
            moved = net(x + shift) - net(x)
            inp = net.lstm_input(x)
        if relative:
            torch.testing.assert_close(moved, torch.full_like(moved, 3.0), rtol=0, atol=1e-12)
            torch.testing.assert_close(inp[..., 0], x[..., 0] - x[-1:, :, 0])
            torch.testing.assert_close(inp[..., 1], x[..., 1])  # the covariate as it is
            cov = net(x + torch.tensor([0.0, 3.0], dtype=torch.float64)) - net(x)
            assert cov.abs().max() > 1e-3
        else:
            assert (moved - 3.0).abs().max() > 1e-3 and torch.equal(inp, x)


def test_full_train_fits_on_every_window_before_the_test_and_never_on_it(tmp_path):
    values = seasonal_series()
    changed = values.copy()
    changed[-10:] *= 100  # only the 10 test steps differ
    runs = [runner.train("forecast", config_for(write_csv(tmp_path / f"{n}.csv", v), "data.full_train=true",
                                                "train.epochs=2", "train.max_steps=100"), tmp_path / f"r{n}")
            for n, v in (("a", values), ("b", changed))]  # fmt: skip
    ra, rb = runs
    assert ra.metrics["mse"] is None and ra.metrics["val_windows"] == 0
    assert ra.metrics["train_windows"] == 50 - 6 and ra.metrics["epochs"] == 2  # targets at steps 6 .. 49
    assert "trained on every window before the test for 2 epochs" in ra.lines[1]
    wa = safetensors.torch.load_file(str(ra.run_dir / "model.safetensors"))
    wb = safetensors.torch.load_file(str(rb.run_dir / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # no test value reached the training
    # The AR skip is the least-squares fit over the training and validation windows (not the training ones only).
    p = prepare_data(config_for(tmp_path / "a.csv"))
    z = torch.from_numpy(p.z[:50, 0]).float()  # the windows hold float32 values; the change is taken in float32
    x = z.unfold(0, 6, 1)[:-1]  # (44, 6): the windows before targets 6 .. 49
    change, x = (z[6:50] - x[:, -1]).double(), x.double()
    design = torch.cat([x, torch.ones(44, 1, dtype=torch.float64)], dim=1)
    coef = torch.linalg.lstsq(design, change[:, None]).solution[:, 0]
    # Both fits are float64 (to ~1e-13 here); the file holds them rounded once to float32.
    rtol = _rounding.between(_rounding.unit_roundoff(torch.float32))
    torch.testing.assert_close(wa["ar.weight"][0].double(), coef[:6], rtol=rtol, atol=0.0)
    torch.testing.assert_close(wa["ar.bias"].double(), coef[6:], rtol=rtol, atol=0.0)
    with_val = runner.train("forecast", config_for(tmp_path / "a.csv"), tmp_path / "rv")
    w_val = safetensors.torch.load_file(str(with_val.run_dir / "model.safetensors"))
    assert not torch.equal(w_val["ar.weight"], wa["ar.weight"])  # fitted on the training windows only


# -- bad input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        ("y\n1\n2\nx3\n", [], r"line 4, column 'y' holds 'x3', which is not a number"),
        ("t,y\n1,1\n\n2,\n3,4\n", [], r"line 4, column 'y' is empty: the series has a gap"),
        ("date,y\n2000,1\n2001,2\n2003,3\n", ["data.date_column=date"], r"a gap between '2001' \(line 3\)"),
        ("y\n" + "1\n2\n" * 6, [], r"too few rows for one training window: the training part has 0 steps"),
    ],
)
def test_bad_csv_gets_a_clear_error(tmp_path, text, extra, message):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataUnavailable, match=message):
        runner.train("forecast", config_for(path, *extra), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing is written before the data is checked


def test_split_and_window_errors_name_the_key(tmp_path):
    path = write_csv(tmp_path / "s.csv", seasonal_series(30))
    with pytest.raises(DataUnavailable, match=r"data.horizon 12 is longer than the test split \(10 steps\)"):
        prepare_data(config_for(path, "data.horizon=12"))
    with pytest.raises(DataUnavailable, match=r"too few rows for one training window: the training part has 12 "
                       r"steps, one window needs data.window \+ data.horizon = 16"):  # fmt: skip
        prepare_data(config_for(path, "data.window=15"))
    with pytest.raises(DataUnavailable, match=r"data.test_start '1999' is not a step"):
        prepare_data(config_for(path, "data.test_start=1999"))  # a bare year is read as the label "1999"
    longer = write_csv(tmp_path / "l.csv", seasonal_series(60))
    assert prepare_data(config_for(longer, "data.test_start=41")).split.test_lo == 39  # labels are line numbers
    with pytest.raises(DataUnavailable, match=r"data.log needs positive values"):
        prepare_data(config_for(write_csv(tmp_path / "n.csv", seasonal_series(60) - 25), "data.log=true"))
    with pytest.raises(DataUnavailable, match=r"name the target column with data.column=NAME"):
        prepare_data(runner.build_config("forecast", overrides=[f"data.csv={path}"]))
    with pytest.raises(ValueError, match=r"data.season must be 0 \(none\) or >= 2"):
        runner.build_config("forecast", overrides=["data.season=1"])


# -- end to end ---------------------------------------------------------------------------------------
def test_end_to_end_with_covariates_dates_evaluate_and_the_forecast_command(tmp_path):
    values = seasonal_series(60)
    dates = [f"{1990 + i // 12}-{i % 12 + 1:02d}" for i in range(60)]
    path = write_csv(tmp_path / "s.csv", values, dates=dates, covariate=np.arange(60) % 6)
    config = config_for(path, "data.date_column=date", "data.season=6", "data.horizon=3", "data.covariates=x")
    result = runner.train("forecast", config, tmp_path / "run")
    summary = json.loads((result.run_dir / "summary.json").read_text())
    test = summary["test"]
    assert test["origins"] == 10 - 3 + 1 and test["horizon"] == 3 and test["targets"] == "1994-03 .. 1994-12"
    assert set(test["scores"]) == {test["model"], "naive", "seasonal naive (m=6)",
                                   "seasonal naive with growth (drift)", "AR(6)"}  # fmt: skip
    for s in test["scores"].values():
        assert set(s) == {"mse", "rmse", "mae", "smape", "mase"} and all(np.isfinite(list(s.values())))
    assert any("RMSE" in line for line in result.lines)
    metrics, _ = runner.evaluate(result.run_dir, "test")
    for name, scores in test["scores"].items():  # the run directory alone gives the same scores
        assert metrics["scores"][name] == pytest.approx(scores, rel=1e-9)
    # Direct within the trained horizon; a longer one would need future covariates.
    fc = forecast_run(result.run_dir, 3, origin="test")
    assert fc.strategy == "direct" and fc.labels == ["1994-03", "1994-04", "1994-05"] and fc.actual is not None
    assert fc.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(TaskError, match="cannot be forecast recursively"):
        forecast_run(result.run_dir, 5)


def test_the_forecast_command_recursive_beyond_the_trained_horizon(tmp_path):
    path = write_csv(tmp_path / "s.csv", seasonal_series(60), dates=[str(1900 + i) for i in range(60)])
    run = runner.train("forecast", config_for(path, "data.date_column=date"), tmp_path / "run").run_dir
    out = CliRunner().invoke(app, ["forecast", str(run), "--horizon", "4"])
    assert out.exit_code == 0, out.output
    assert "4-step forecast from 1960 (recursive, 1 step(s) at a time)" in out.output
    assert "1963\t" in out.output and (run / "forecast-end-h4.png").is_file()
    bad = CliRunner().invoke(app, ["forecast", str(tmp_path), "--horizon", "2"])
    assert bad.exit_code == 1 and "not a run directory" in bad.output


def test_a_run_on_an_ets_base_end_to_end_evaluate_forecast_and_export(tmp_path):
    """model.base=ets: trained, scored beside the baselines, evaluated from the run directory alone, forecast
    directly (recursion refused by name) and exported with the base's columns described in the metadata."""
    pytest.importorskip("onnxruntime")
    import onnx

    from lstmkit.export.rundir import export_run

    path = write_csv(tmp_path / "s.csv", seasonal_series(60), dates=[str(1900 + i) for i in range(60)])
    config = config_for(path, "data.date_column=date", "data.horizon=2", "model.ar_skip=false", "model.base=ets")
    result = runner.train("forecast", config, tmp_path / "run")
    test = result.metrics["test"]
    assert test["model"] == "LSTM 1x8 on an ETS base" and test["base"].startswith("ETS(")
    assert test["base"].endswith(" (fitted on 1900 .. 1941)")  # the training part: 60 - 10 - 8 steps
    assert f"the LSTM's base: {test['base']}, then fixed" in result.lines
    metrics, _ = runner.evaluate(result.run_dir, "test")
    assert metrics["scores"][test["model"]] == pytest.approx(test["scores"][test["model"]], rel=1e-9)
    fc = forecast_run(result.run_dir, 2)
    assert fc.strategy == "direct" and fc.labels == ["1960", "1961"] and np.isfinite(fc.values).all()
    with pytest.raises(TaskError, match=r"a run with model.base=ets cannot be forecast recursively"):
        forecast_run(result.run_dir, 3)
    exported = export_run(result.run_dir)
    meta = {p.key: p.value for p in onnx.load(str(exported.path)).metadata_props}
    base = json.loads(meta["lstmkit.preprocess"])["base"]
    assert test["base"].startswith(base["model"] + " (") and base["fitted_on"] == ["1900", "1941"]
    assert base["columns"] == ["base residual", "base change +1", "base change +2"]


def test_the_task_is_registered_with_its_data_source():
    task = get_task("forecast")
    assert "statsmodels" in task.data_source(task.default_config())


@pytest.mark.slow
def test_sunspots_default_run_is_at_the_arima_level(tmp_path):
    test = runner.train("forecast", runner.build_config("forecast", overrides=["train.progress=false"]),
                        tmp_path / "run").metrics["test"]  # fmt: skip
    scores = test["scores"]
    assert scores[test["model"]]["mse"] <= 306 and scores[test["model"]]["mse"] < scores["AR(9)"]["mse"]
