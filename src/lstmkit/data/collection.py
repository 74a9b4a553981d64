"""Collections of univariate series: the Monash forecasting archive's ``.tsf`` files and wide CSV files.

A ``.tsf`` file (Godahewa et al. 2021; aeon bundles M1's yearly series in it)::

    # comments
    @relation M1
    @attribute series_name string
    @attribute start_timestamp date
    @frequency yearly
    @horizon 6
    @missing false
    @equallength false
    @data
    T1:1976-01-01 00-00-00:3600,7700,...

One series a line: the attribute values separated by ``:``, then the values separated by ``,``; ``?`` is a missing
value. A wide CSV has a header row, one column per series, and optionally a date column; a series shorter than the
file leaves its first or last cells empty.

Missing values at a series' start or end are trimmed (series of different lengths); a gap inside a series is an
error naming the file, the series and the line, because the forecaster needs contiguous values. Every problem
raises ``ValueError``; reading needs no third-party library.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

from lstmkit.data.series import finite_number


@dataclasses.dataclass(frozen=True)
class NamedSeries:
    """One series of a collection: its name, its values (missing values trimmed off both ends) and, from a
    ``.tsf`` file, its other attribute values in the file's order (e.g. the start timestamp)."""

    name: str
    values: tuple[float, ...]
    attributes: tuple[str, ...] = ()


def _trim(name: str, values: list[float | None], where: str, lines: list[int] | None = None,
          attributes: tuple[str, ...] = ()) -> NamedSeries:  # fmt: skip
    present = [i for i, v in enumerate(values) if v is not None]
    if not present:
        raise ValueError(f"{where}: series {name!r} has no values")
    lo, hi = present[0], present[-1] + 1
    for i in range(lo, hi):
        if values[i] is None:
            at = f"line {lines[i]}" if lines else f"value {i + 1}"
            raise ValueError(f"{where}: series {name!r} has a gap at {at} (a missing value between values); the "
                             "forecaster needs contiguous values: fill or cut the series first")  # fmt: skip
    return NamedSeries(name, tuple(float(v) for v in values[lo:hi]), attributes)  # type: ignore[arg-type]


def _number(text: str, where: str) -> float | None:
    if text.strip() in ("", "?", "NaN", "nan", "NA"):  # missing
        return None
    return finite_number(text, where)


def series_from_cells(name: str, cells: list[str], where: str) -> NamedSeries:
    """One series from its text cells (``""``, ``?``, ``NaN``, ``NA``: missing), missing ends trimmed; a gap inside
    or no value at all is a ``ValueError`` naming ``where`` and the series."""
    return _trim(name, [_number(c, where) for c in cells], where)


def read_tsf(path: str | os.PathLike[str]) -> list[NamedSeries]:
    """Every series of a Monash ``.tsf`` file, named by its first attribute (``series_name``), with its other
    attribute values. Missing values at the start are trimmed too, so the first value kept may lie after the start
    timestamp (M1's file has no missing values)."""
    path = Path(path)
    out, in_data, names = [], False, set()
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            where = f"{path}, line {number}"
            if not line or line.startswith("#"):
                continue
            if not in_data:
                in_data = line.lower() == "@data"
                continue
            *attributes, values = line.split(":")
            if not attributes:
                raise ValueError(f"{where}: expected 'name:...:v1,v2,...', got {line[:60]!r}")
            name = attributes[0]
            if name in names:
                raise ValueError(f"{where}: series {name!r} appears twice")
            names.add(name)
            out.append(_trim(name, [_number(v, where) for v in values.split(",")], where,
                             attributes=tuple(attributes[1:])))
    if not in_data:
        raise ValueError(f"{path}: no @data line: not a .tsf file")
    if not out:
        raise ValueError(f"{path}: no series after @data")
    return out


def read_wide_csv(path: str | os.PathLike[str], *, columns: list[str] | None = None, date_column: str = ""
                  ) -> list[NamedSeries]:  # fmt: skip
    """The series of a CSV file with one column per series (``columns``: those only, in that order; default every
    column but ``date_column``)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: empty file; expected a header row naming the series")
        header = [h.strip() for h in header]
        if len(set(header)) != len(header):
            raise ValueError(f"{path}: the header names a column twice: {header}")
        if date_column and date_column not in header:
            raise ValueError(f"{path}: no date column {date_column!r}; the header has {header}")
        wanted = columns or [h for h in header if h != date_column]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise ValueError(f"{path}: no column(s) {missing}; the header has {header}")
        if not wanted:
            raise ValueError(f"{path}: no series columns besides the date column {date_column!r}")
        index = [header.index(c) for c in wanted]
        cells: list[list[float | None]] = [[] for _ in wanted]
        lines = []
        for number, row in enumerate(reader, 2):
            if not any(c.strip() for c in row):  # a blank line: a missing value of every series (trimmed at the ends)
                row = [""] * len(header)
            if len(row) != len(header):
                raise ValueError(f"{path}, line {number}: {len(row)} cells, the header has {len(header)}")
            lines.append(number)
            for k, i in enumerate(index):
                cells[k].append(_number(row[i], f"{path}, line {number}, column {wanted[k]!r}"))
    return [_trim(name, values, str(path), lines) for name, values in zip(wanted, cells, strict=True)]
