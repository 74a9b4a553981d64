"""The lower bounds pyproject.toml declares are the versions `.ci/lowest` tests: its constraints file pins every
direct dependency (and every one of the `test` and `onnx` extras) at exactly its lower bound."""

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _lower_bounds() -> dict[str, Version]:
    """name -> the version after ">=" of each requirement of the package and its `test` and `onnx` extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [*project["dependencies"], *project["optional-dependencies"]["test"],
            *project["optional-dependencies"]["onnx"]]  # fmt: skip
    out = {}
    for text in reqs:
        req = Requirement(text)
        lows = [Version(s.version) for s in req.specifier if s.operator == ">="]
        pins = [s.version for s in req.specifier if s.operator == "=="]
        assert len(lows) + len(pins) == 1, f"{text}: expected one '>=' lower bound or one '==' pin"
        if lows:
            assert out.setdefault(canonicalize_name(req.name), lows[0]) == lows[0], f"{req.name}: two lower bounds"
    return out


def _constraints() -> dict[str, Version]:
    out = {}
    for line in (ROOT / ".ci" / "lowest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f".ci/lowest.txt: {line!r} is not NAME==VERSION"
            out[canonicalize_name(name.strip())] = Version(version.strip())
    return out


def test_every_lower_bound_is_the_version_the_lowest_run_pins():
    assert _constraints() == _lower_bounds()
