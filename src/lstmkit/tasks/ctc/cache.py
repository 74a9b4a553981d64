"""The CTC tasks' data cache: generated arrays kept as ``.npz`` files keyed by what made them, checked by SHA-256."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit._fileio import atomic_path, read_versioned_json, write_versioned_json
from lstmkit.tasks.base import DataUnavailable

_CACHE_FORMAT = "lstmkit.ctc-cache"


_CACHE_VERSION = 1


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Cached:
    arrays: dict[str, np.ndarray]
    path: Path  # the .npz file
    sha256: str
    generated_seconds: float | None  # None when read from the cache


def cached_arrays(
    root: Path, name: str, params: dict[str, Any], build: Callable[[], dict[str, np.ndarray]]
) -> Cached:
    """The arrays ``build()`` makes for ``params``, generated once into
    ``root/NAME-HASH/data.npz`` (with ``params.json`` beside it) and read back on later calls.

    The folder's HASH is of ``params``; a folder whose ``params.json`` differs (or an unreadable one) is
    rebuilt. Writes are atomic, so a killed generation leaves nothing half-written behind.
    """
    text = json.dumps(params, sort_keys=True)
    folder = root / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    path, meta = folder / "data.npz", folder / "params.json"
    if path.is_file() and meta.is_file():
        try:
            stored = read_versioned_json(meta, _CACHE_FORMAT, _CACHE_VERSION)
            if stored.get("params") == json.loads(text):
                with np.load(path, allow_pickle=False) as f:
                    arrays = {k: f[k] for k in f.files}
                return Cached(arrays, path, file_sha256(path), None)
        except (OSError, ValueError, KeyError):
            pass  # damaged: generate it again below
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataUnavailable(f"cannot create the data directory {folder}: {e}; set data.dir=DIR") from e
    started = time.perf_counter()
    arrays = build()
    with atomic_path(path) as tmp:
        write_npz(tmp, arrays)
    write_versioned_json(meta, _CACHE_FORMAT, _CACHE_VERSION, {"params": json.loads(text)})
    return Cached(arrays, path, file_sha256(path), time.perf_counter() - started)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` with fixed entry timestamps and order, so that the same arrays give the same bytes
    (and SHA-256) whenever they are generated again; ``np.load`` reads it as usual."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with z.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arrays[name]), allow_pickle=False)


def ragged(items: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length arrays (T_i, *) -> their concatenation (sum T_i, *) and offsets (N + 1,)."""
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in items])
    return np.concatenate(items), offsets


def unragged(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[a:b] for a, b in itertools.pairwise(offsets.tolist())]
