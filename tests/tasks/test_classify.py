"""The classify task: missing values, frames, the validation split carved from train, padding + masking,
the 1-NN baseline, bundled UCR/UEA files, bad input, and a seconds-long end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lstmkit.data import pad_collate
from lstmkit.data.ts_format import read_ts
from lstmkit.tasks import DataUnavailable, runner
from lstmkit.tasks import baselines as bl
from lstmkit.tasks.bundled import package_dir, ucr_files
from lstmkit.tasks.classify import (
    AUTO_SPAN,
    LEVEL_EPS,
    ClassifyModel,
    SequenceClassifier,
    case_normalized,
    check_levels_vary,
    fill_missing,
    nn1_predict,
    pooled,
    prepare_data,
    resample,
    resolve_normalize,
    scale_span,
    stratified_val,
    to_frames,
    with_differences,
    write_toy_ts,
)
from lstmkit.tasks.rundir import open_run
from lstmkit.train import set_values

FAST = ["model.hidden_size=8", "train.epochs=3", "train.max_steps=6", "train.warmup_steps=1", "train.progress=false",
        "train.tensorboard=false", "train.log_every=2"]  # fmt: skip


def toy_config(tmp_path, *extra):
    train, test = write_toy_ts(tmp_path)
    return runner.build_config("classify", overrides=[f"data.train={train}", f"data.test={test}", *FAST, *extra])


def test_missing_values_are_cut_at_the_ends_and_interpolated_inside():
    nan = np.nan
    case = np.array([[nan, nan], [1, 10], [nan, 20], [3, nan], [4, 40], [nan, nan], [nan, nan]])
    out = fill_missing(case, "case 1")
    np.testing.assert_array_equal(out, [[1, 10], [2, 20], [3, 30], [4, 40]])
    np.testing.assert_array_equal(fill_missing(np.array([[nan, 1.0], [2.0, 2.0]]), "c"), [[2, 1], [2, 2]])
    with pytest.raises(ValueError, match="case 3: channel 2 has no values"):
        fill_missing(np.array([[1.0, nan], [2.0, nan]]), "case 3")
    with pytest.raises(ValueError, match="case 4 has no values"):
        fill_missing(np.full((3, 2), nan), "case 4")


def test_frames_and_differences():
    case = np.arange(10, dtype=np.float64).reshape(5, 2)  # (T=5, C=2)
    framed = to_frames(case, 2)  # 3 frames of 2 steps; the last repeats step 4
    np.testing.assert_array_equal(framed, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 8, 9]])
    assert to_frames(case, 1) is case
    np.testing.assert_array_equal(with_differences(case)[:, 2:], [[0, 0], [2, 2], [2, 2], [2, 2], [2, 2]])


def test_pooling_by_hand():
    case = np.arange(10, dtype=np.float64).reshape(5, 2)  # (T=5, C=2)
    np.testing.assert_array_equal(pooled(case, 2), [[1, 2], [5, 6], [8, 9]])  # the last run is step 4 alone
    np.testing.assert_array_equal(pooled(case, 3), [[2, 3], [7, 8]])  # steps 0-2, then 3-4
    np.testing.assert_array_equal(pooled(case, 7), [[4, 5]])  # one run longer than the case: its mean
    assert pooled(case, 1) is case
    with pytest.raises(ValueError, match="pool must be >= 1, got 0"):
        pooled(case, 0)


def test_the_network_reads_pooled_cases_and_the_baselines_every_step(tmp_path):
    """data.pool: differences, then pooling, then the scaler fitted on the pooled training cases; the 1-NN
    baselines read the same cases as without pooling (every step)."""
    every = prepare_data(toy_config(tmp_path, "data.differences=true"))
    two = prepare_data(toy_config(tmp_path, "data.differences=true", "data.pool=2"))
    assert two.config.data.frame == 1 and two.config.data.pool == 2
    raw = read_ts(two.config.data.test)
    for case, got in zip(raw.series, two.cases["test"], strict=True):
        want = two.scaler.transform(pooled(with_differences(case), 2))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        assert len(got) == -(-len(case) // 2)
    for split in ("train", "val", "test"):
        for a, b in zip(every.baseline_cases[split], two.baseline_cases[split], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"data\.pool must be >= 1 \(steps averaged into one; 1: every step\), got 0"):
        toy_config(tmp_path, "data.pool=0")


def test_resampling_by_hand():
    case = np.array([[0.0, 10.0], [2.0, 30.0], [8.0, 20.0]])  # (T=3, C=2)
    np.testing.assert_allclose(resample(case, 5), [[0, 10], [1, 20], [2, 30], [5, 25], [8, 20]])  # halfway steps added
    np.testing.assert_allclose(resample(case, 2), [[0, 10], [8, 20]])  # the first and last steps kept
    np.testing.assert_array_equal(resample(case[:1], 4), np.repeat(case[:1], 4, axis=0))  # one step: copies of it
    assert resample(case, 3) is case


def test_the_network_reads_resampled_cases_and_the_baselines_every_step(tmp_path):
    """data.length: differences, then every case resampled to that many steps, then pooling and the scaler fitted on
    the resampled training cases; the 1-NN baselines read the cases as long as they are."""
    every = prepare_data(toy_config(tmp_path, "data.differences=true"))
    nine = prepare_data(toy_config(tmp_path, "data.differences=true", "data.length=9", "data.pool=2"))
    assert nine.config.data.frame == 1 and nine.config.data.length == 9
    raw = read_ts(nine.config.data.test)
    assert len({len(case) for case in raw.series}) > 1  # the toy cases differ in length
    for case, got in zip(raw.series, nine.cases["test"], strict=True):
        want = nine.scaler.transform(pooled(resample(with_differences(case), 9), 2))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        assert len(got) == 5
    for split in ("train", "val", "test"):
        for a, b in zip(every.baseline_cases[split], nine.baseline_cases[split], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    for bad in (-1, 1):
        with pytest.raises(ValueError, match=r"^data\.length must be 0 \(each case as long as it is\) or >= 2 steps, "
                                             rf"got {bad}$"):  # fmt: skip
            toy_config(tmp_path, f"data.length={bad}")


BAD_NORMALIZE = r"data\.normalize must be one of \('auto', 'global', 'case', 'case\+level'\), got "


def test_case_normalization_by_hand():
    case = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])  # channel 1: mean 3, std sqrt(8/3); channel 2 constant
    z = np.array([-1.0, 0.0, 1.0]) * np.sqrt(3 / 2)  # (x - 3) / sqrt(8/3)
    np.testing.assert_allclose(case_normalized(case, "case"), np.stack([z, np.zeros(3)], axis=1), atol=1e-15)
    levels = case_normalized(case, "case+level")  # (T, 3C): the shape, then per channel its mean and log(std)
    assert levels.shape == (3, 6)
    np.testing.assert_allclose(levels[:, :2], case_normalized(case, "case"))
    np.testing.assert_allclose(levels[:, 2:], [[3.0, 5.0, np.log(np.sqrt(8 / 3) + LEVEL_EPS), np.log(LEVEL_EPS)]] * 3)
    assert case_normalized(case, "global") is case
    # a case 1000 times as large has the same shape channels, levels shifted by log(1000)
    big = case_normalized(1000 * case, "case+level")
    np.testing.assert_allclose(big[:, :2], levels[:, :2], atol=1e-12)
    np.testing.assert_allclose(big[0, 4], levels[0, 4] + np.log(1000), rtol=1e-9)
    with pytest.raises(ValueError, match=BAD_NORMALIZE + "'z'"):
        case_normalized(case, "z")
    with pytest.raises(ValueError, match=r"^data\.normalize=auto is decided on the training cases first "
                       r"\(resolve_normalize\)$"):
        case_normalized(case, "auto")


def test_scale_span_and_the_auto_rule_by_hand():
    ramp = np.array([[0.0, 1.0], [2.0, 1.0]])  # channel 1: std 1; channel 2 constant (std 0)
    cases = [ramp * s for s in (1, 10, 100)]  # channel 1 stds 1, 10, 100; channel 2 stds 0, 0, 0
    # numpy's linear percentiles of three values: 5th at position 0.1 (1 + 0.1 * 9), 95th at 1.9 (10 + 0.9 * 90);
    # channel 2 has no scale at all: span 1
    assert scale_span(cases) == pytest.approx(91 / 1.9, rel=1e-12)
    flat_then_not = [ramp * s for s in (0, 0, 0, 1)] * 10  # 5th percentile 0, 95th 1
    assert scale_span(flat_then_not) == np.inf
    assert scale_span([np.zeros((3, 2))] * 4) == 1.0
    wide = [ramp * 10.0**k for k in np.linspace(-2, 2, 21)]  # 5th to 95th percentile: 10**3.6, about 4000
    assert scale_span(wide) == pytest.approx(10**3.6, rel=1e-9) and scale_span(wide) > AUTO_SPAN
    assert resolve_normalize("auto", wide) == "case+level"
    assert resolve_normalize("auto", cases) == "global"  # 48 < 1000
    for mode in ("global", "case", "case+level"):
        assert resolve_normalize(mode, wide) == mode


def write_scaled_toy(tmp_path):
    """The toy set with every case times 10**k, k spread over [-2, 2]: scales spanning 10**3.6 (about 4000)."""
    paths = write_toy_ts(tmp_path)
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        head, rows = lines[: lines.index("@data") + 1], lines[lines.index("@data") + 1:]
        out = []
        for k, row in zip(np.linspace(-2, 2, len(rows)), rows, strict=True):
            *channels, label = row.split(":")
            out.append(":".join(",".join(f"{float(v) * 10**k:.6g}" for v in ch.split(",")) for ch in channels)
                       + f":{label}")  # fmt: skip
        path.write_text("\n".join(head + out) + "\n", encoding="utf-8")
    return paths


def test_the_baselines_read_single_steps_whatever_the_networks_frame(tmp_path):
    """The 1-NN baselines never read the LSTM's frames: the same figures at data.frame=1 and data.frame=3 (whose
    last frame would pad the toy cases' odd lengths), for both normalize modes."""
    for normalize in ("global", "case"):
        one = prepare_data(toy_config(tmp_path, "data.frame=1", f"data.normalize={normalize}"))
        three = prepare_data(toy_config(tmp_path, "data.frame=3", f"data.normalize={normalize}"))
        assert three.cases["train"][0].shape[1] == 3 * one.cases["train"][0].shape[1]  # the network reads frames
        for split in ("train", "val", "test"):
            assert len(one.baseline_cases[split]) == len(three.baseline_cases[split]) > 0
            for a, b in zip(one.baseline_cases[split], three.baseline_cases[split], strict=True):
                np.testing.assert_array_equal(a, b)
        assert any(len(c) % 3 for c in one.baseline_cases["train"])  # frames of 3 would have padded these


def test_normalize_auto_decides_on_the_training_cases_and_the_baselines_keep_the_plain_cases(tmp_path):
    plain = prepare_data(toy_config(tmp_path, "data.frame=1"))  # the toy cases share one scale: auto is global
    assert plain.config.data.normalize == "global" and plain.baseline_cases is plain.cases
    globally = prepare_data(toy_config(tmp_path, "data.frame=1", "data.normalize=global"))
    for split in ("train", "val", "test"):
        for a, b in zip(plain.cases[split], globally.cases[split], strict=True):
            np.testing.assert_array_equal(a, b)
    train, test = write_scaled_toy(tmp_path)
    over = [f"data.train={train}", f"data.test={test}", "data.frame=1"]
    auto = prepare_data(runner.build_config("classify", overrides=[*over, *FAST]))
    assert auto.config.data.normalize == "case+level"  # recorded in the run's config.toml as the mode used
    assert auto.config.model.input_size == 6  # 2 shape channels, then their 2 means and 2 log stds
    level = prepare_data(runner.build_config("classify", overrides=[*over, *FAST, "data.normalize=case+level"]))
    unscaled = prepare_data(runner.build_config("classify", overrides=[*over, *FAST, "data.normalize=global"]))
    for split in ("train", "val", "test"):
        for a, b, c, d in zip(auto.cases[split], level.cases[split], auto.baseline_cases[split],
                              unscaled.cases[split], strict=True):  # fmt: skip
            np.testing.assert_array_equal(a, b)  # the network reads the case+level cases
            np.testing.assert_array_equal(c, d)  # the 1-NN baselines the globally scaled ones


def test_auto_run_records_its_mode_and_a_run_older_than_the_key_reopens_scaled_globally(tmp_path):
    train, test = write_scaled_toy(tmp_path)
    over = [f"data.train={train}", f"data.test={test}", *FAST]
    auto = runner.train("classify", runner.build_config("classify", overrides=over), tmp_path / "auto")
    assert 'normalize = "case+level"' in (auto.run_dir / "config.toml").read_text()
    assert runner.evaluate(auto.run_dir, "test")[0]["accuracy"] == auto.metrics["test"]["accuracy"]
    # A run from before data.normalize existed: trained globally scaled, its config.toml without the key. Reopened
    # it must stay global (auto would pick case+level on these cases and feed the 2-input model 6 channels).
    old = runner.train("classify", runner.build_config("classify", overrides=[*over, "data.normalize=global"]),
                       tmp_path / "old")  # fmt: skip
    config = old.run_dir / "config.toml"
    lines = config.read_text().splitlines()
    config.write_text("\n".join(line for line in lines if not line.startswith("normalize")) + "\n")
    assert open_run(old.run_dir).config.data.normalize == "global"
    assert runner.evaluate(old.run_dir, "test")[0]["accuracy"] == old.metrics["test"]["accuracy"]


def test_case_level_refuses_levels_that_do_not_vary():
    rng = np.random.default_rng(0)
    zs = [case_normalized(rng.standard_normal((7, 1)), "case") for _ in range(5)]  # z-normalized each already
    with pytest.raises(DataUnavailable, match=r"^data\.normalize=case\+level: the mean of channel 1 and log std of "
                       r"channel 1 are the same in every training case \(are the cases z-normalized each already\?\); "
                       r"use data\.normalize=case or global$"):
        check_levels_vary([case_normalized(z, "case+level") for z in zs])
    with pytest.raises(DataUnavailable, match=r"^data\.normalize=auto chose case\+level \(the cases' scales "
                       r"vary\): the mean of channel 1 and log std"):
        check_levels_vary([case_normalized(z, "case+level") for z in zs], chosen_by_auto=True)
    # two channels, the second's scale varies but every mean is 0: only that level is named
    cases = [np.concatenate([z, s * z], axis=1) for z, s in zip(zs, [1, 2, 3, 4, 5], strict=True)]
    with pytest.raises(DataUnavailable, match=r"the mean of channel 1 and mean of channel 2 and log std of channel 1 "
                       r"are the same"):
        check_levels_vary([case_normalized(c, "case+level") for c in cases])
    check_levels_vary([case_normalized(rng.standard_normal((7, 2)) * (1 + i) + i, "case+level") for i in range(5)])


def test_normalize_key_is_checked_and_scales_each_case_before_the_global_scaler(tmp_path):
    with pytest.raises(ValueError, match=BAD_NORMALIZE + "'per-case'"):
        toy_config(tmp_path, "data.normalize=per-case")
    p = prepare_data(toy_config(tmp_path, "data.normalize=case", "data.frame=1"))
    raw = read_ts(tmp_path / "toy_TRAIN.ts")
    shapes = [case_normalized(fill_missing(x, "c"), "case") for x in raw.series]
    train_index = np.setdiff1d(np.arange(len(shapes)), p.val_index)
    expected = [(shapes[i] - p.scaler.mean.numpy()) / p.scaler.std.numpy() for i in train_index]
    for got, want in zip(p.cases["train"], expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_stratified_validation_split():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 2 + [3])
    val = stratified_val(labels, 0.2, seed=0)
    counts = np.bincount(labels[val], minlength=4)
    assert counts.tolist() == [2, 1, 1, 0]  # round(0.2 n), at least one of a class of two, none of a lone case
    assert np.array_equal(val, stratified_val(labels, 0.2, seed=0)) and len(set(val.tolist())) == len(val)


def test_stratified_validation_takes_one_of_every_pair():
    """PigCVP's 52 classes of two: one case of each validates and one trains (half the set). A hold-out of 20% would
    leave every validated class one training case, and the choice nothing to go on (session 26, docs/results.md)."""
    labels = np.repeat(np.arange(52), 2)
    val = stratified_val(labels, 0.2, seed=0)
    assert len(val) == 52 and np.bincount(labels[val], minlength=52).tolist() == [1] * 52


def test_validation_is_carved_from_train_and_only_train_is_scaled_on(tmp_path):
    p = prepare_data(toy_config(tmp_path))
    assert len(p.cases["train"]) + len(p.cases["val"]) == 24 and len(p.cases["test"]) == 12
    assert np.bincount(p.targets["val"]).tolist() == [2, 2]  # stratified: 20% of 12 of each class
    raw = read_ts(tmp_path / "toy_TRAIN.ts")
    train_only = [x for i, x in enumerate(raw.series) if i not in set(p.val_index.tolist())]
    stacked = np.concatenate(train_only)
    np.testing.assert_allclose(p.scaler.mean.numpy(), stacked.mean(0))  # neither validation nor test cases
    np.testing.assert_allclose(p.scaler.std.numpy(), stacked.std(0))
    assert p.config.model.input_size == 2 and p.config.model.output_size == 2 and p.config.data.frame == 1
    assert p.classes == ["up", "down"]  # the header's order


def test_padding_and_masking_do_not_change_a_case(tmp_path):
    """A case scores the same alone and padded in a batch beside a longer one: masking, not truncation."""
    for pooling in ("last", "mean"):
        model = SequenceClassifier(ClassifyModel(input_size=3, output_size=4, hidden_size=5, pooling=pooling)).eval()
        short, long = torch.randn(4, 3), torch.randn(9, 3)
        x, lengths, _ = pad_collate([short, long])
        together = model(x, lengths)
        alone = model(short[:, None], torch.tensor([4]))
        torch.testing.assert_close(together[0], alone[0])
        x2, lengths2, _ = pad_collate([short, long], padding_value=7.0)  # what the padding holds does not matter
        torch.testing.assert_close(model(x2, lengths2), together)


def test_one_nearest_neighbour_by_hand():
    train = np.array([[0.0, 0], [10, 10], [0, 1]])
    labels = np.array(["a", "b", "c"])
    assert bl.nearest_neighbour(train, labels, np.array([[1.0, 0], [9, 9], [0, 2]])).tolist() == ["a", "b", "c"]
    assert bl.nearest_neighbour(train, labels, train, exclude_self=True).tolist() == ["c", "c", "a"]
    # Cases of different lengths are resampled to the longest reference length before the distance.
    ref = [np.array([[0.0], [1.0]]), np.array([[5.0], [5.0], [5.0]])]
    assert nn1_predict(ref, np.array([0, 1]), [np.array([[0.0], [0.4], [0.9], [1.1]])]).tolist() == [0]


def test_end_to_end_writes_the_confusion_matrix_and_evaluates_from_the_run(tmp_path):
    result = runner.train("classify", toy_config(tmp_path), tmp_path / "run")
    assert (result.run_dir / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((result.run_dir / "summary.json").read_text())
    test = summary["test"]
    assert test["cases"] == 12 and np.sum(test["confusion"]) == 12
    assert 0 <= test["accuracy"] <= 1 and 0 <= test["macro_f1"] <= 1
    assert set(test["baseline_1nn"]) == {"accuracy", "macro_f1"}
    assert any("1-NN" in line for line in result.lines)
    metrics, _ = runner.evaluate(result.run_dir, "test")
    assert metrics["accuracy"] == test["accuracy"] and metrics["baseline_1nn"] == test["baseline_1nn"]
    train_metrics, _ = runner.evaluate(result.run_dir, "train")  # leave-one-out 1-NN on the training part
    assert train_metrics["cases"] == 24 - 4


def test_the_archive_tables_and_npz_files_give_the_same_prepared_data_as_ts(tmp_path):
    """The toy set's first channel written as a .ts file, as the UCR archive's .tsv and .txt tables and as one
    tslearn-style .npz (cases of different lengths padded with NaN): every form prepares the same cases."""
    sources = [read_ts(p) for p in write_toy_ts(tmp_path)]
    header = "@problemName toy\n@univariate true\n@classLabel true up down\n@data\n"
    files: dict[str, list] = {"ts": [], "tsv": [], "txt": []}
    for split, d in zip(("TRAIN", "TEST"), sources, strict=True):
        rows = [(label, case[:, 0]) for label, case in zip(d.labels, d.series, strict=True)]
        for kind, sep in (("tsv", "\t"), ("txt", "   ")):
            path = tmp_path / f"t_{split}.{kind}"
            path.write_text("".join(f"{label}{sep}{sep.join(repr(float(v)) for v in x)}\n" for label, x in rows))
            files[kind].append(path)
        path = tmp_path / f"t_{split}.ts"
        path.write_text(header + "".join(f"{','.join(repr(float(v)) for v in x)}:{label}\n" for label, x in rows))
        files["ts"].append(path)
    longest = max(len(c) for d in sources for c in d.series)
    arrays = {}
    for split, d in zip(("train", "test"), sources, strict=True):
        x = np.full((len(d.series), longest), np.nan)  # (N, T), padded at the end
        for i, case in enumerate(d.series):
            x[i, : len(case)] = case[:, 0]
        arrays[f"X_{split}"], arrays[f"y_{split}"] = x, np.array(d.labels)
    np.savez(tmp_path / "t.npz", **arrays)
    files["npz"] = [tmp_path / "t.npz"] * 2

    def prepared(kind):
        train, test = files[kind]
        config = runner.build_config("classify", overrides=[f"data.train={train}", f"data.test={test}"])
        return prepare_data(set_values(config, {"data.full_train": True}))  # no hold-out: its draw follows the order

    want = prepared("ts")
    assert len(want.cases["train"]) == 24 and len(want.cases["test"]) == 12
    for kind in ("tsv", "txt", "npz"):
        got = prepared(kind)  # a table declares no class order: its classes are sorted, the .ts file's as declared
        assert got.classes == ["down", "up"] and want.classes == ["up", "down"]
        for split in ("train", "test"):
            assert [got.classes[t] for t in got.targets[split]] == [want.classes[t] for t in want.targets[split]]
            assert len(got.cases[split]) == len(want.cases[split])
            for a, b in zip(got.cases[split], want.cases[split], strict=True):
                np.testing.assert_array_equal(a, b)


def test_bad_input_is_named(tmp_path):
    train, test = write_toy_ts(tmp_path)
    with pytest.raises(DataUnavailable, match=r"set both data\.train=FILE and data\.test=FILE"):
        prepare_data(runner.build_config("classify", overrides=[f"data.train={train}"]))
    bad = tmp_path / "bad.ts"
    bad.write_text(train.read_text().replace("up\n", "up\n1,2:3:up\n", 1))
    with pytest.raises(DataUnavailable, match=r"bad.ts: line 10: the channels|bad.ts: line 10: .*lengths"):
        runner.train("classify", runner.build_config("classify", overrides=[f"data.train={bad}", f"data.test={test}"]),
                     tmp_path / "run")  # fmt: skip
    assert not (tmp_path / "run").exists()
    other = tmp_path / "other.ts"
    other.write_text(test.read_text().replace("@classLabel true up down", "@classLabel true up down left")
                     .replace(":down\n", ":left\n", 1))  # fmt: skip
    with pytest.raises(DataUnavailable, match=r"test labels \['left'\] never occur in the training cases"):
        prepare_data(runner.build_config("classify", overrides=[f"data.train={train}", f"data.test={other}"]))
    with pytest.raises(DataUnavailable, match=r"no bundled UCR/UEA set 'NoSuchSet'; bundled sets: \[.*'GunPoint'"):
        prepare_data(runner.build_config("classify", overrides=["data.dataset=NoSuchSet"]))
    with pytest.raises(ValueError, match=r"model.pooling must be one of"):
        runner.build_config("classify", overrides=["model.pooling=max"])


@pytest.mark.skipif(package_dir("sktime") is None, reason="sktime is not installed")
@pytest.mark.parametrize(
    ("name", "cases", "channels", "lengths", "classes"),
    [
        ("JapaneseVowels", (270, 370), 12, (7, 29), 9),
        ("ItalyPowerDemand", (67, 1029), 1, (24, 24), 2),
        ("BasicMotions", (40, 40), 6, (100, 100), 4),
        ("GunPoint", (50, 150), 1, (150, 150), 2),
    ],
)
def test_bundled_ucr_sets_read_with_their_official_splits(name, cases, channels, lengths, classes):
    train, test = (read_ts(p) for p in ucr_files(name))
    assert (len(train.series), len(test.series)) == cases
    assert train.num_channels == test.num_channels == channels
    all_lengths = train.lengths + test.lengths
    assert (min(all_lengths), max(all_lengths)) == lengths
    assert len(train.class_labels) == classes and set(train.labels) == set(test.labels)


@pytest.mark.slow
def test_japanese_vowels_default_run_beats_one_nearest_neighbour(tmp_path):
    config = runner.build_config("classify", overrides=["train.progress=false"])
    test = runner.train("classify", config, tmp_path / "run").metrics["test"]
    assert test["accuracy"] >= 0.96 and test["accuracy"] > test["baseline_1nn"]["accuracy"]
