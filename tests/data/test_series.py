"""Reading a forecasting series from CSV: values, dates, covariates, and errors that name the line."""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.data.series import check_regular_dates, date_position, read_series_csv


def write(tmp_path, text: str):
    path = tmp_path / "s.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_target_dates_and_covariates(tmp_path):
    path = write(tmp_path, "month,y,x,unused\n1949-11,1.5,0,a\n1949-12,2,1,b\n\n1950-01,3e1,0,c\n")
    s = read_series_csv(path, "y", date_column="month", covariates=["x"])
    np.testing.assert_array_equal(s.values, [1.5, 2.0, 30.0])
    assert s.labels == ["1949-11", "1949-12", "1950-01"] and s.name == "y" and len(s) == 3
    np.testing.assert_array_equal(s.features(), [[1.5, 0], [2, 1], [30, 0]])
    plain = read_series_csv(path, "y")  # no date column: labels are the line numbers
    assert plain.labels == ["2", "3", "5"] and plain.covariates.shape == (3, 0)


def test_date_formats_and_spacing():
    assert date_position("1700") == ("year", 1700)
    assert date_position("1950-01")[1] - date_position("1949-12")[1] == 1
    assert date_position("2020-03-01")[1] - date_position("2020-02-28")[1] == 2  # a leap year
    check_regular_dates(["2020-01-01T00:00", "2020-01-01T01:00", "2020-01-01T02:00"], [2, 3, 4], "f")
    with pytest.raises(ValueError, match=r"f: a gap between '1950-02' \(line 3\) and '1950-04' \(line 4\)"):
        check_regular_dates(["1950-01", "1950-02", "1950-04", "1950-05", "1950-06"], [2, 3, 4, 5, 6], "f")
    with pytest.raises(ValueError, match=r"out of order or repeated"):
        check_regular_dates(["1950", "1951", "1951", "1952", "1953"], [2, 3, 4, 5, 6], "f")
    with pytest.raises(ValueError, match=r"f: line 3: 'soon' is not a date"):
        check_regular_dates(["1950", "soon"], [2, 3], "f")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("t,y\n1,1\n2,abc\n", r"line 3, column 'y' holds 'abc', which is not a number"),
        ("t,y\n1,1\n2,\n3,4\n", r"line 3, column 'y' is empty: the series has a gap there"),
        ("t,y\n1,1\n2,inf\n", r"line 3, column 'y' holds 'inf'; values must be finite"),
        ("t,z\n1,1\n", r"no column\(s\) \['y'\]; the header has \['t', 'z'\]"),
        ("t,y\n1,1\n2,2,3\n", r"line 3 has 3 fields, the header 2"),
        ("t,y\n", r"has a header but no rows"),
        ("", r"is empty"),
    ],
)
def test_bad_csv_is_named(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_series_csv(write(tmp_path, text), "y")


def test_a_gap_in_the_dates_is_an_error(tmp_path):
    path = write(tmp_path, "year,y\n1990,1\n1991,2\n1993,3\n")
    with pytest.raises(ValueError, match=r"a gap between '1991' \(line 3\) and '1993' \(line 4\)"):
        read_series_csv(path, "y", date_column="year")
