"""Reading one time series (and optional covariates) from a CSV file, with errors that name the line.

A forecasting CSV has a header row, one row per time step, a target column, optionally a date
column and covariate columns::

    Date,Passengers,Holidays
    1949-01,112,1
    1949-02,118,0

Every cell of a used column must be a number or empty: a word stops the read with the line and
column named. An empty cell is a gap; with a date column the dates must be increasing and evenly
spaced (years ``1949``, months ``1949-01``, days ``1949-01-31`` or ISO date-times), and a missing
date is a gap too. ``gaps="refuse"`` (the default) stops at the first gap, naming its date (or its
line, without a date column), because silently interpolating or dropping a step would shift every
window after it; ``gaps="linear"`` fills each gap by linear interpolation in time (a gap at the start
or the end takes the nearest observed value), ``gaps="previous"`` repeats the last observed value
(the first observed one at the start). A missing date becomes a step with a date label of its own.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import itertools
import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lstmkit._fileio import read_utf8


@dataclasses.dataclass
class Series:
    """One series: the target ``values`` (T,), ``covariates`` (T, K) and a label per step."""

    values: np.ndarray  # (T,) float64
    labels: list[str]  # (T,) the date of each step, or its row number when there is no date column
    name: str  # the target column's name
    covariates: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))  # (T, K) float64
    covariate_names: list[str] = dataclasses.field(default_factory=list)
    filled: list[str] = dataclasses.field(default_factory=list)  # labels of the steps a gap option filled

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim != 1:
            raise ValueError(f"values must be 1-D (T,), got shape {self.values.shape}")
        if len(self.labels) != len(self.values):
            raise ValueError(f"{len(self.labels)} labels for {len(self.values)} values")
        if self.covariates.size == 0:
            self.covariates = np.zeros((len(self.values), 0))
        if self.covariates.shape != (len(self.values), len(self.covariate_names)):
            raise ValueError(
                f"covariates must be (T, K) = ({len(self.values)}, {len(self.covariate_names)}), "
                f"got {self.covariates.shape}"
            )

    def __len__(self) -> int:
        return len(self.values)

    def features(self) -> np.ndarray:
        """(T, 1 + K): the target first, then the covariates."""
        return np.concatenate([self.values[:, None], self.covariates], axis=1)


GAPS = ("refuse", "linear", "previous")


def _number(text: str, where: str, gaps: str = "refuse") -> float:
    if text.strip() == "":
        if gaps != "refuse":
            return math.nan
        raise ValueError(f"{where} is empty: the series has a gap there; fill or remove it before forecasting, "
                         "or fill it here with data.gaps=linear|previous")  # fmt: skip
    return finite_number(text, where)


def finite_number(text: str, where: str) -> float:
    """``text`` as a finite float; ``ValueError`` naming ``where`` (file, line, column) and the text otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where} holds {text.strip()!r}, which is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where} holds {text.strip()!r}; values must be finite numbers")
    return value


def date_position(text: str) -> tuple[str, int]:
    """A date as (unit, integer position) so that consecutive steps differ by a constant.

    ``1949`` -> ("year", 1949); ``1949-03`` -> ("month", 1949 * 12 + 2); ``1949-03-31`` ->
    ("day", ordinal); an ISO date-time -> ("second", POSIX seconds).
    """
    s = text.strip()
    if s.isdigit() and len(s) == 4:
        return "year", int(s)
    parts = s.split("-")
    if len(parts) == 2 and all(p.isdigit() for p in parts) and 1 <= int(parts[1]) <= 12:
        return "month", int(parts[0]) * 12 + int(parts[1]) - 1
    try:
        if len(s) == 10:
            return "day", datetime.date.fromisoformat(s).toordinal()
        moment = datetime.datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"{s!r} is not a date (YYYY, YYYY-MM, YYYY-MM-DD or an ISO date-time)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return "second", int(moment.timestamp())


def date_label(unit: str, position: int) -> str:
    """The inverse of :func:`date_position`: the label of a step (used for steps a gap option inserts)."""
    if unit == "year":
        return str(position)
    if unit == "month":
        return f"{position // 12}-{position % 12 + 1:02d}"
    if unit == "day":
        return datetime.date.fromordinal(position).isoformat()
    return datetime.datetime.fromtimestamp(position, tz=datetime.UTC).isoformat()


def _fill(column: np.ndarray, how: str) -> np.ndarray:
    """NaN gaps of one column filled ``linear``-ly in time or by the ``previous`` value."""
    gaps = np.isnan(column)
    if not gaps.any():
        return column
    if gaps.all():
        raise ValueError("the column has no values")
    t, out = np.arange(len(column)), column.copy()
    if how == "linear":
        out[gaps] = np.interp(t[gaps], t[~gaps], column[~gaps])  # ends hold the nearest observed value
    else:
        last = np.maximum.accumulate(np.where(gaps, 0, t))  # index of the last observed value at or before t
        first = int(np.flatnonzero(~gaps)[0])
        last[:first] = first  # before the first observation: the first observed value
        out = column[last]
    return out


def _date_positions(dates: Sequence[str], lines: Sequence[int], path: str) -> list:
    """``date_position`` of every date (one format for the whole column), errors naming the CSV line."""
    positions = []
    for date, line in zip(dates, lines, strict=True):
        try:
            positions.append(date_position(date))
        except ValueError as e:
            raise ValueError(f"{path}: line {line}: {e}") from None
    units = {u for u, _ in positions}
    if len(units) > 1:
        raise ValueError(f"{path}: the date column mixes formats ({sorted(units)}); use one format")
    return positions


def check_regular_dates(dates: Sequence[str], lines: Sequence[int], path: str) -> None:
    """Raise ``ValueError`` when ``dates`` are not increasing and evenly spaced, naming the gap."""
    positions = _date_positions(dates, lines, path)
    steps = [b[1] - a[1] for a, b in itertools.pairwise(positions)]
    if not steps:
        return
    step = Counter(steps).most_common(1)[0][0]
    if step <= 0:
        raise ValueError(f"{path}: the dates must be increasing")
    for i, d in enumerate(steps):
        if d != step:
            what = "a gap" if d > step else "dates out of order or repeated"
            raise ValueError(
                f"{path}: {what} between {dates[i]!r} (line {lines[i]}) and {dates[i + 1]!r} (line {lines[i + 1]}); "
                "the steps must be evenly spaced"
            )


def read_series_csv(
    path: str | os.PathLike[str],
    column: str,
    *,
    date_column: str = "",
    covariates: Sequence[str] = (),
    gaps: str = "refuse",
) -> Series:
    """Read the target ``column`` (and ``covariates``) of a CSV file with a header row.

    ``gaps``: "refuse" (an empty cell or a missing date is an error naming it), "linear" or
    "previous" (filled; see the module docstring). ``Series.filled`` lists the filled steps' labels.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a named column is missing (the message lists the columns), a cell is not a number
            (naming its date, or its line without a date column), a gap under "refuse", or dates
            out of order.
    """
    if gaps not in GAPS:
        raise ValueError(f"gaps must be one of {GAPS}, got {gaps!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    rows = list(csv.reader(io.StringIO(read_utf8(path, bom=True), newline="")))
    rows = [(i + 1, r) for i, r in enumerate(rows) if r]  # 1-based line numbers; blank lines are skipped
    if not rows:
        raise ValueError(f"{path} is empty")
    (_, header), body = rows[0], rows[1:]
    header = [h.strip() for h in header]
    wanted = [column, *covariates] + ([date_column] if date_column else [])
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ValueError(f"{path}: no column(s) {missing}; the header has {header}")
    index = {c: header.index(c) for c in wanted}
    values, cov, dates, lines = [], [], [], []
    for line, row in body:
        if len(row) != len(header):
            raise ValueError(f"{path}: line {line} has {len(row)} fields, the header {len(header)}")
        date = row[index[date_column]].strip() if date_column else ""
        at = f"{path}: {date_column} {date!r} (line {line})" if date_column else f"{path}: line {line}"
        values.append(_number(row[index[column]], f"{at}, column {column!r}", gaps))
        cov.append([_number(row[index[c]], f"{at}, column {c!r}", gaps) for c in covariates])
        dates.append(date if date_column else str(line))
        lines.append(line)
    if not values:
        raise ValueError(f"{path} has a header but no rows")
    features = np.concatenate([np.asarray(values)[:, None], np.asarray(cov, dtype=np.float64).reshape(len(values), -1)],
                              axis=1)  # (T, 1 + K)  # fmt: skip
    if date_column and gaps == "refuse":
        check_regular_dates(dates, lines, str(path))
    elif date_column:
        features, dates = _insert_missing_dates(features, dates, lines, str(path))
    filled = [dates[i] for i in np.flatnonzero(np.isnan(features).any(axis=1))]
    if filled:
        try:
            features = np.stack([_fill(features[:, k], gaps) for k in range(features.shape[1])], axis=1)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    return Series(features[:, 0], dates, column, features[:, 1:], list(covariates), filled)


def _insert_missing_dates(
    features: np.ndarray, dates: list[str], lines: list[int], path: str
) -> tuple[np.ndarray, list[str]]:
    """Rows of NaN (and their date labels) for the dates missing from an evenly spaced date column."""
    positions = _date_positions(dates, lines, path)
    if len(positions) < 2:
        return features, dates
    unit, pos = positions[0][0], np.array([p for _, p in positions])
    steps = np.diff(pos)
    step = int(Counter(steps.tolist()).most_common(1)[0][0])
    bad = np.flatnonzero((steps <= 0) | (steps % step != 0)) if step > 0 else np.arange(len(steps))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{path}: dates out of order, repeated or off the {step}-{unit} grid between {dates[i]!r} "
                         f"(line {lines[i]}) and {dates[i + 1]!r} (line {lines[i + 1]})")  # fmt: skip
    k = (pos - pos[0]) // step  # each row's step index
    full = np.full((int(k[-1]) + 1, features.shape[1]), np.nan)
    full[k] = features
    labels = [date_label(unit, int(pos[0]) + j * step) for j in range(len(full))]
    for j, date in zip(k, dates, strict=True):
        labels[j] = date  # observed rows keep their own spelling
    return full, labels
