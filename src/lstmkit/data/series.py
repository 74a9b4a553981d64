"""Reading one time series (and optional covariates) from a CSV file, with errors that name the line.

A forecasting CSV has a header row, one row per time step, a target column, optionally a date
column and covariate columns::

    Date,Passengers,Holidays
    1949-01,112,1
    1949-02,118,0

Every cell of a used column must be a number: an empty cell (a gap) or a word stops the read
with the line and column named, because silently interpolating or dropping a step would shift
every window after it. With a date column the dates must be increasing and evenly spaced (years
``1949``, months ``1949-01``, days ``1949-01-31`` or ISO date-times): a missing step is a gap.
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


def _number(text: str, where: str) -> float:
    if text.strip() == "":
        raise ValueError(f"{where} is empty: the series has a gap there; fill or remove it before forecasting")
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
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return "second", int(moment.timestamp())


def check_regular_dates(dates: Sequence[str], lines: Sequence[int], path: str) -> None:
    """Raise ``ValueError`` when ``dates`` are not increasing and evenly spaced, naming the gap."""
    positions = []
    for date, line in zip(dates, lines, strict=True):
        try:
            positions.append(date_position(date))
        except ValueError as e:
            raise ValueError(f"{path}: line {line}: {e}") from None
    units = {u for u, _ in positions}
    if len(units) > 1:
        raise ValueError(f"{path}: the date column mixes formats ({sorted(units)}); use one format")
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
) -> Series:
    """Read the target ``column`` (and ``covariates``) of a CSV file with a header row.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a named column is missing (the message lists the columns), a cell is empty or
            not a number (naming its line and column), or the dates are not evenly spaced.
    """
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
        values.append(_number(row[index[column]], f"{path}: line {line}, column {column!r}"))
        cov.append([_number(row[index[c]], f"{path}: line {line}, column {c!r}") for c in covariates])
        dates.append(row[index[date_column]].strip() if date_column else str(line))
        lines.append(line)
    if not values:
        raise ValueError(f"{path} has a header but no rows")
    if date_column:
        check_regular_dates(dates, lines, str(path))
    cov_array = np.asarray(cov, dtype=np.float64).reshape(len(values), len(covariates))
    return Series(np.asarray(values), dates, column, cov_array, list(covariates))
