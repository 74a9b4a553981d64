"""``forecast-many``: the collection's data, splits and errors; scoring and ranking by hand; the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from lstmkit.cli import app
from lstmkit.export.rundir import export_run
from lstmkit.tasks import bundled, runner
from lstmkit.tasks.base import ConfigError, DataUnavailable, TaskError
from lstmkit.tasks.forecast.many import SplitSeries
from lstmkit.tasks.forecast.many_task import (
    MODEL,
    ManyData,
    ManyPrepared,
    load_collection,
    prepare_collection,
    score_part,
    split_sizes,
    summarise,
    worse_than_naive,
)
from lstmkit.tasks.registry import get_task
from lstmkit.train import set_values

needs_aeon = pytest.mark.skipif(bundled.package_dir("aeon") is None, reason="aeon is not installed")


@needs_aeon
def test_m1_yearly_is_the_default_collection():
    series, notes = load_collection(ManyData())
    assert notes == []
    assert len(series) == 181 and {len(s.values) for s in series} >= {15, 58}
    assert min(len(s.values) for s in series) == 15 and max(len(s.values) for s in series) == 58
    prepared = get_task("forecast-many").prepare(get_task("forecast-many").default_config())
    t13 = next(s for s in prepared.collection if s.name == "T13")
    assert (len(t13.values), t13.val_lo, t13.test_lo) == (58, 37, 46)  # test 20% = 12, val 20% of 46 = 9


def test_split_sizes_by_hand():
    assert split_sizes(15, ManyData()) == (10, 12)  # test max(2, 3) = 3, val max(2, round(2.4)) = 2
    assert split_sizes(50, ManyData(horizon=6)) == (26, 38)  # test max(12, 10) = 12, val max(12, round(7.6)) = 12
    assert split_sizes(50, ManyData(test_size=5, val_size=4)) == (41, 45)


def _csv(tmp_path, columns: dict[str, list[float | None]]):
    n = max(len(v) for v in columns.values())
    rows = [",".join(columns)]
    for i in range(n):
        rows.append(",".join("" if i >= len(v) or v[i] is None else repr(float(v[i])) for v in columns.values()))
    path = tmp_path / "c.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _config(tmp_path, columns, **data):
    path = _csv(tmp_path, columns)
    base = get_task("forecast-many").smoke_config(tmp_path)
    return set_values(base, {"data.csv": str(path), "data.date_column": "", "data.horizon": 1, "data.window": 4,
                             **{f"data.{k}": v for k, v in data.items()}})  # fmt: skip


def test_too_short_series_are_named_or_left_out_by_min_length(tmp_path):
    cols = {"long": list(np.arange(30.0)), "short": list(np.arange(7.0)), "tiny": list(np.arange(5.0))}
    with pytest.raises(DataUnavailable, match=r"2 series are too short for data.horizon=1 and the validation and "
                                              r"test parts \(about 8 values needed\): short \(7\), tiny \(5\); leave "
                                              r"them out with data.min_length=N"):  # fmt: skip
        prepare_collection(_config(tmp_path, cols))
    prepared = prepare_collection(_config(tmp_path, cols, min_length=10))
    assert [s.name for s in prepared.collection] == ["long"]
    assert prepared.dropped == ["short: shorter than data.min_length=10", "tiny: shorter than data.min_length=10"]
    with pytest.raises(DataUnavailable, match=r"no series left: all 3 are shorter than data\.min_length=40"):
        prepare_collection(_config(tmp_path, cols, min_length=40))


def test_bad_settings_are_refused_by_name(tmp_path):
    cols = {"a": list(np.arange(30.0))}
    with pytest.raises(ConfigError, match=r"model\.ar_skip and model\.relative must be false"):
        prepare_collection(set_values(_config(tmp_path, cols), {"model.ar_skip": True}))
    with pytest.raises(ValueError, match=r"set one of data\.csv and data\.tsf, not both"):
        ManyData(csv="a.csv", tsf="b.tsf")
    with pytest.raises(ValueError, match=r"data.test_size must be >= data.horizon \(3\) to hold one origin, got 2"):
        ManyData(horizon=3, test_size=2)
    with pytest.raises(ValueError, match=r"data\.season must be 0 \(none\) or >= 2, got 1"):
        ManyData(season=1)
    with pytest.raises(DataUnavailable, match=r"data\.columns and data\.date_column apply to data\.csv only"):
        load_collection(ManyData(tsf="x.tsf", columns="a"))
    with pytest.raises(DataUnavailable, match="series 'a' has a gap at line 3"):
        load_collection(ManyData(dataset="", csv=str(_csv(tmp_path, {"a": [1.0, None, 2.0]}))))


def test_summarise_ranks_ties_and_geometric_means_by_hand():
    per = {"s1": {"m": {"mase": 0.5, "smape": 1.0}, "naive": {"mase": 1.0, "smape": 3.0},
                  "ETS (auto)": {"mase": 0.5, "smape": 2.0}},
           "s2": {"m": {"mase": 2.0, "smape": 5.0}, "naive": {"mase": 1.0, "smape": 1.0}}}  # fmt: skip
    table = summarise(per)
    assert table["m"] == {"mean_rank": 1.5, "gmean_mase": pytest.approx(1.0), "mean_smape": 3.0, "series": 2,
                          "best_on": 1}  # fmt: skip
    assert table["ETS (auto)"] == {"mean_rank": 1.0, "gmean_mase": 0.5, "mean_smape": 2.0, "series": 1, "best_on": 1}
    assert table["naive"]["mean_rank"] == 2.0 and table["naive"]["best_on"] == 1  # 3rd of 3 on s1, 1st on s2


def test_worse_than_naive_reads_the_seasonal_naive_when_there_is_one():
    per = {"a": {MODEL: {"mase": 1.1}, "naive": {"mase": 2.0}, "seasonal naive (m=4)": {"mase": 1.0}},
           "b": {MODEL: {"mase": 1.1}, "naive": {"mase": 1.0}}, "c": {MODEL: {"mase": 0.9}, "naive": {"mase": 1.0}}}
    assert worse_than_naive(per) == ["a", "b"]


def test_a_model_that_forecasts_no_change_scores_exactly_as_the_naive(tmp_path):
    rng = np.random.default_rng(0)
    collection = [SplitSeries(f"s{i}", rng.normal(size=40).cumsum(), 24, 32, 1, 4) for i in range(3)]
    config = set_values(get_task("forecast-many").smoke_config(tmp_path), {"data.horizon": 1, "data.window": 4})
    config = prepare_collection(config).config  # the model's sizes filled in
    model = get_task("forecast-many").build_model(config)
    with torch.no_grad():
        model.core.head.weight.zero_()
        model.core.head.bias.zero_()
    result = score_part(model, ManyPrepared(config, collection, []), "test")
    assert result["series"] == 3 and result["origins"] == 3 * 8
    for scores in result["per_series"].values():
        assert scores[MODEL] == scores["naive"]
    assert result["methods"][MODEL]["mean_rank"] == 1.0 and result["worse_than_naive"] == []
    # the scaled loss is the mean over series of the naive's absolute change over each series' training scale
    want = np.mean([np.mean(np.abs(np.diff(s.values[31:]))) / np.mean(np.abs(np.diff(s.values[:24])))
                    for s in collection])  # fmt: skip
    assert result["scaled_mae"] == pytest.approx(want, rel=1e-5)


def test_cli_trains_evaluates_and_refuses_changed_data(tmp_path):
    config = get_task("forecast-many").smoke_config(tmp_path)
    r = CliRunner().invoke(app, ["train", "--task", "forecast-many", "--out", str(tmp_path / "run"), "--set",
                                 f"data.csv={config.data.csv}", "--set", "data.date_column=date", "--set",
                                 "data.window=4", "--set", "data.auto_baselines=false", "--set", "train.epochs=2",
                                 "--set", "train.progress=false"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "test: 3 series, " in r.output and "global LSTM" in r.output and "naive" in r.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["test"]["per_series"]) == {"a", "b", "c"}
    rows = (tmp_path / "run" / "forecasts.csv").read_text().splitlines()
    assert rows[0] == "series,step,forecast" and [r.split(",")[:2] for r in rows[1:]] == [
        [name, "1"] for name in "abc"]  # the default horizon: 1
    assert all(np.isfinite(float(r.split(",")[2])) for r in rows[1:])
    metrics, _ = runner.evaluate(tmp_path / "run", "test")
    assert metrics["methods"] == summary["test"]["methods"]
    exported = export_run(tmp_path / "run", out=tmp_path / "m.onnx")
    assert exported.max_abs_error is not None  # verified in onnxruntime
    meta = {p.key: p.value for p in onnx.load(str(exported.path)).metadata_props}
    pre = json.loads(meta["lstmkit.preprocess"])
    scales = json.loads((tmp_path / "run" / "data.json").read_text())["series"]
    assert pre["window"] == 4 and pre["scales"] == {s["name"]: s["scale"] for s in scales}
    path = tmp_path / "many_smoke.csv"
    path.write_text(path.read_text().replace("2029,", "2029,1"))  # one value of series a changes
    with pytest.raises(TaskError, match="are not the ones this run was trained on"):
        runner.evaluate(tmp_path / "run", "test")
    with pytest.raises(TaskError, match=r"split must be one of \('val', 'test'\), got 'train'"):
        get_task("forecast-many").evaluate(__import__("lstmkit.tasks.rundir", fromlist=["open_run"]).open_run(
            tmp_path / "run"), "train")  # fmt: skip


def test_fertility_collection_keeps_rows_with_twenty_contiguous_years():
    series, notes = load_collection(ManyData(dataset="fertility"))
    assert (len(series), len(notes)) == (196, 23) and all(20 <= len(s.values) <= 54 for s in series)
    aruba = next(s for s in series if s.name == "Aruba")
    assert aruba.values[:3] == (4.82, 4.655, 4.471)  # 1960-1962, as in the file
    assert "Bermuda: a gap inside its years" in notes and "American Samoa: no values" in notes
    assert "Andorra: 5 values, fewer than 20" in notes
    assert not {n.split(": ")[0] for n in notes} & {s.name for s in series}


def test_a_damaged_fertility_file_is_an_error_not_a_left_out_row(tmp_path, monkeypatch):
    path = tmp_path / "fertility.csv"
    monkeypatch.setattr(bundled, "package_file", lambda *a: path)
    path.write_text("Country Name,Code,1960,1961\nA,AAA,1.0,x\n")
    with pytest.raises(DataUnavailable, match=r"fertility.csv, line 2 holds 'x', which is not a number"):
        bundled.fertility_series()
    path.write_text("Country Name,Code,1970\nA,AAA,1.0\n")
    with pytest.raises(DataUnavailable, match="has no column 1960"):
        bundled.fertility_series()


def test_forecasts_csv_quotes_names_with_commas(tmp_path):
    import csv

    from lstmkit.tasks.forecast.many_task import write_forecasts

    rng = np.random.default_rng(4)
    collection = [SplitSeries("Egypt, Arab Rep.", rng.normal(size=30).cumsum(), 18, 24, 2, 4),
                  SplitSeries('say "hi"', rng.normal(size=30).cumsum(), 18, 24, 2, 4)]  # fmt: skip
    config = set_values(get_task("forecast-many").smoke_config(tmp_path), {"data.horizon": 2, "data.window": 4})
    config = prepare_collection(config).config
    model = get_task("forecast-many").build_model(config)
    write_forecasts(model, ManyPrepared(config, collection, []), tmp_path / "f.csv")
    with (tmp_path / "f.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert [r[:2] for r in rows] == [["series", "step"], ["Egypt, Arab Rep.", "1"], ["Egypt, Arab Rep.", "2"],
                                     ['say "hi"', "1"], ['say "hi"', "2"]]  # fmt: skip


def test_a_tsf_file_is_a_collection(tmp_path):
    rng = np.random.default_rng(6)
    lines = ["@attribute series_name string", "@data"]
    for name, n in (("x", 25), ("y", 30)):
        lines.append(f"{name}:" + ",".join(f"{v:.3f}" for v in 50 + rng.normal(size=n).cumsum()))
    path = tmp_path / "c.tsf"
    path.write_text("\n".join(lines) + "\n")
    config = set_values(get_task("forecast-many").smoke_config(tmp_path), {"data.csv": "", "data.date_column": "",
                                                                            "data.tsf": str(path)})  # fmt: skip
    prepared = get_task("forecast-many").prepare(config)
    assert [(s.name, len(s.values)) for s in prepared.collection] == [("x", 25), ("y", 30)]
    assert prepared.config.data.tsf == str(path.resolve()) and prepared.config.data.dataset == ""


@pytest.mark.parametrize(("cls", "key", "value", "message"), [
    ("ManyData", "window", 0, "data.window must be >= 1, got 0"),
    ("ManyData", "test_size", 0, "data.test_size must be >= 1, got 0"),
    ("ForecastData", "horizon", 0, "data.horizon must be >= 1, got 0"),
    ("ForecastData", "ar_order", -1, "data.ar_order must be >= 0, got -1"),
])  # fmt: skip
def test_data_sections_name_the_key_below_its_minimum(cls, key, value, message):
    from lstmkit.tasks.forecast.config import ForecastData

    section = {"ManyData": ManyData, "ForecastData": ForecastData}[cls]
    with pytest.raises(ValueError, match=message):
        section(**{key: value})
