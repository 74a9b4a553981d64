"""Crash-safe, link-safe file writes and versioned JSON files, shared by every layer that writes.

Every file lstmkit writes goes through :func:`atomic_path` (or :func:`open_no_follow` for the one
streamed file, ``metrics.csv``): a temporary file beside the destination, fsynced, then renamed
onto it. The destination is refused when it is a symbolic link, and, when a ``root`` (the run
directory) is given, when its resolved folder lies outside that root; so a planted link never
makes a command write outside its run directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class UnsafeWrite(OSError):
    """A write refused because it would follow a link (or leave the run directory)."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.message = f"{path}: {problem}"
        self.filename = str(path)

    def __str__(self) -> str:
        return self.message


def check_destination(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Path:
    """``path`` as a Path, after refusing a symbolic link there and (with ``root``) a folder outside ``root``.

    Raises:
        UnsafeWrite: naming the path and why.
    """
    path = Path(path)
    if path.is_symlink():
        raise UnsafeWrite(path, "is a symbolic link; lstmkit never writes through links (remove it and run again)")
    if root is not None:
        folder, top = path.parent.resolve(), Path(root).resolve()
        if not folder.is_relative_to(top):
            raise UnsafeWrite(path, f"its folder resolves to {folder}, outside the run directory {root}; "
                              "lstmkit never writes through links (remove the link and run again)")  # fmt: skip
    return path


def describe_os_error(error: OSError) -> str:
    """One line for the user: the path and the problem (``/x/run: Read-only file system``)."""
    if isinstance(error, UnsafeWrite):
        return str(error)
    problem = error.strerror or str(error)
    paths = [p for p in (error.filename, error.filename2) if p is not None]
    return f"{' -> '.join(map(str, paths))}: {problem}" if paths else problem


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and ``os.replace`` it onto ``path``.

    The temporary file lives in the same directory so that ``os.replace`` is a rename on one
    file system, which POSIX makes atomic: a reader (or a kill at any moment) sees either the
    old file or the complete new one, never a torn write. A destination that is a symbolic link,
    or (given ``root``) whose folder resolves outside ``root``, raises :class:`UnsafeWrite`
    before anything is written; on any error the temporary file is removed.
    """
    path = check_destination(path, root)
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


def write_text_atomic(path: str | os.PathLike[str], text: str, *, root: str | os.PathLike[str] | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, never through a link."""
    with atomic_path(path, root=root) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(
    path: str | os.PathLike[str], data: bytes, *, root: str | os.PathLike[str] | None = None
) -> None:
    """Write ``data`` to ``path`` atomically, never through a link."""
    with atomic_path(path, root=root) as tmp:
        tmp.write_bytes(data)


def save_figure(fig: Any, path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None,
                **kwargs: Any) -> None:
    """``fig.savefig`` (a matplotlib figure) into a temporary file, renamed onto ``path``: never through a
    link. The format comes from ``path``'s suffix, since the temporary name ends in ``.tmp``."""
    path = Path(path)
    with atomic_path(path, root=root) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png", **kwargs)


def open_no_follow(path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None):
    """Open ``path`` for writing text (truncated, created if missing) without following a link, for
    files written as they grow (``metrics.csv``); the caller closes it."""
    path = check_destination(path, root)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as e:
        if path.is_symlink():  # planted between the check and the open
            raise UnsafeWrite(path, "is a symbolic link; lstmkit never writes through links") from e
        raise
    return os.fdopen(fd, "w", newline="", encoding="utf-8")


def read_utf8(path: str | os.PathLike[str], *, bom: bool = False) -> str:
    """The UTF-8 text of ``path`` (with ``bom``, a leading byte-order mark is dropped).

    Raises:
        ValueError: the file is not UTF-8, naming it, the line and the column of the first bad byte.
    """
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig" if bom else "utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ValueError(
            f"{path}: not UTF-8 text: line {line}, column {column} holds the byte 0x{data[e.start]:02x} "
            "(save the file as UTF-8)"
        ) from e


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, root: str | os.PathLike[str] | None = None) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=True) + "\n", root=root)


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
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a valid JSON file (not UTF-8 text at byte {e.start})") from e
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
