"""Reading collections of series: Monash .tsf files and wide CSV files (trimmed ends, refused gaps)."""

from __future__ import annotations

import pytest

from lstmkit.data.collection import NamedSeries, read_tsf, read_wide_csv

TSF = """# a comment
@relation demo
@attribute series_name string
@attribute start_timestamp date
@frequency yearly
@missing true
@data
A:1990-01-01 00-00-00:1,2,3.5
B:1991-01-01 00-00-00:?,4,5,6,?
"""


def test_read_tsf_trims_missing_ends_and_keeps_the_attributes(tmp_path):
    path = tmp_path / "demo.tsf"
    path.write_text(TSF)
    assert read_tsf(path) == [NamedSeries("A", (1.0, 2.0, 3.5), ("1990-01-01 00-00-00",)),
                              NamedSeries("B", (4.0, 5.0, 6.0), ("1991-01-01 00-00-00",))]  # fmt: skip


@pytest.mark.parametrize(("data", "message"), [
    ("A:x:1,?,3", r"demo.tsf, line 3: series 'A' has a gap at value 2 \(a missing value between values\)"),
    ("A:x:1,oops", r"demo.tsf, line 3 holds 'oops', which is not a number"),
    ("A:x:1,inf", r"demo.tsf, line 3 holds 'inf'; values must be finite numbers"),
    ("A:x:?,?", r"demo.tsf, line 3: series 'A' has no values"),
    ("A:x:1\nA:x:2", r"demo.tsf, line 4: series 'A' appears twice"),
    ("1,2,3", r"demo.tsf, line 3: expected 'name:...:v1,v2,...'"),
])  # fmt: skip
def test_read_tsf_errors_name_the_file_line_and_series(tmp_path, data, message):
    path = tmp_path / "demo.tsf"
    path.write_text(f"@attribute series_name string\n@data\n{data}\n")
    with pytest.raises(ValueError, match=message):
        read_tsf(path)


def test_read_tsf_refuses_a_file_without_data(tmp_path):
    path = tmp_path / "x.tsf"
    path.write_text("@relation x\n")
    with pytest.raises(ValueError, match=r"x.tsf: no @data line: not a .tsf file"):
        read_tsf(path)
    path.write_text("@data\n\n")
    with pytest.raises(ValueError, match=r"x.tsf: no series after @data"):
        read_tsf(path)


def test_read_wide_csv_one_series_a_column(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("date,a,b,c\n2000,1,,7\n2001,2,5,8\n2002,3,6,\n\n")
    assert read_wide_csv(path, date_column="date") == [NamedSeries("a", (1.0, 2.0, 3.0)),
                                                       NamedSeries("b", (5.0, 6.0)), NamedSeries("c", (7.0, 8.0))]
    assert [s.name for s in read_wide_csv(path, columns=["c", "a"], date_column="date")] == ["c", "a"]
    path.write_text("a,b\n1,2\n,3\n4,5\n")
    with pytest.raises(ValueError, match=r"w.csv: series 'a' has a gap at line 3 \(a missing value between values\)"):
        read_wide_csv(path)


@pytest.mark.parametrize(("text", "kwargs", "message"), [
    ("", {}, r"w.csv: empty file; expected a header row naming the series"),
    ("a,a\n1,2\n", {}, r"w.csv: the header names a column twice: \['a', 'a'\]"),
    ("a,b\n1,2\n", {"date_column": "d"}, r"w.csv: no date column 'd'; the header has \['a', 'b'\]"),
    ("a,b\n1,2\n", {"columns": ["z"]}, r"w.csv: no column\(s\) \['z'\]; the header has \['a', 'b'\]"),
    ("d\n2000\n", {"date_column": "d"}, r"w.csv: no series columns besides the date column 'd'"),
    ("a,b\n1,2,3\n", {}, r"w.csv, line 2: 3 cells, the header has 2"),
    ("a,b\n1,x\n", {}, r"w.csv, line 2, column 'b' holds 'x', which is not a number"),
])  # fmt: skip
def test_read_wide_csv_errors(tmp_path, text, kwargs, message):
    path = tmp_path / "w.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_wide_csv(path, **kwargs)
