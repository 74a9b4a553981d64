"""Crash-safe file writes and versioned JSON files, shared by data, train and checkpoint code."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and ``os.replace`` it onto ``path``.

    The temporary file lives in the same directory so that ``os.replace`` is a rename on one
    file system, which POSIX makes atomic: a reader (or a kill at any moment) sees either the
    old file or the complete new one, never a torn write.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file's data to disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a directory entry (a rename or a new file) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, allow_nan=True) + "\n", encoding="utf-8")


def write_versioned_json(path: str | os.PathLike[str], kind: str, version: int, payload: dict) -> None:
    """Write ``payload`` with a ``format`` and ``version`` header so that readers can refuse other files."""
    write_json_atomic(path, {"format": kind, "version": version, **payload})


def read_versioned_json(path: str | os.PathLike[str], kind: str, version: int) -> dict:
    """Read a file written by :func:`write_versioned_json`, checking its kind and version.

    Raises:
        ValueError: the file is not JSON, not an object, of another kind, or of another version.
    """
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a valid JSON file ({e})") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    if obj.get("format") != kind:
        raise ValueError(f"{path}: expected format {kind!r}, got {obj.get('format')!r}")
    if obj.get("version") != version:
        raise ValueError(
            f"{path}: unsupported {kind} version {obj.get('version')!r}; this lstmkit reads version {version}"
        )
    return obj
