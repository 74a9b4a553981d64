"""Checksums of weights files: a SHA-256 recorded in the file when it is written, checked when it is read.

A safetensors file is ``n`` (8 bytes, little-endian) + a JSON header of ``n`` bytes + the tensor
bytes. :func:`seal` adds ``"lstmkit.sha256"`` to the header's ``__metadata__``: the SHA-256 of the
header's tensor entries and other metadata (canonical JSON: names, dtypes, shapes, offsets) and
of every byte after the header. So a flipped byte anywhere, a truncated file or an edited
header is caught by :func:`verify`, which also refuses non-finite (NaN or infinite) weights,
naming the tensor. The checksum lives inside the file, so the file and its checksum are always
renamed into place together.

Files written before checksums were recorded (no ``lstmkit.sha256``) are still read: they are
checked for readability and finite values only.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import Tensor, nn

from lstmkit._fileio import atomic_path

KEY = "lstmkit.sha256"
_ALIGN = 8  # safetensors pads its header to 8 bytes so that the tensor data stays aligned


class WeightsError(ValueError):
    """A weights file that is unreadable, corrupt (checksum mismatch) or holds non-finite values."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


def _split(path: Path, data: bytes) -> tuple[dict[str, Any], bytes]:
    """The parsed header and the tensor bytes of a safetensors file's contents."""
    if len(data) < 8:
        raise WeightsError(path, f"truncated: {len(data)} bytes, shorter than a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise WeightsError(path, f"truncated: its header announces {n} bytes, the file has {len(data) - 8}")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(path, f"corrupt: its safetensors header is not valid JSON ({e})") from e
    if not isinstance(header, dict):
        raise WeightsError(path, "corrupt: its safetensors header is not a JSON object")
    return header, data[8 + n :]


def _digest(header: dict[str, Any], body: bytes) -> str:
    meta = {k: v for k, v in (header.get("__metadata__") or {}).items() if k != KEY}
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    h = hashlib.sha256(json.dumps({"tensors": entries, "metadata": meta}, sort_keys=True).encode())
    h.update(body)
    return h.hexdigest()


def seal(path: str | os.PathLike[str]) -> str:
    """Record the checksum in the safetensors file ``path`` (rewritten in place: call it on a
    temporary file, as :func:`save_model_file` does). Returns the hex digest."""
    path = Path(path)
    header, body = _split(path, path.read_bytes())
    digest = _digest(header, body)
    header["__metadata__"] = {**(header.get("__metadata__") or {}), KEY: digest}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % _ALIGN)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(body)
    return digest


def verify(path: str | os.PathLike[str], *, finite: bool = True) -> dict[str, Tensor]:
    """Check the weights file ``path`` and return its tensors.

    Raises:
        FileNotFoundError: there is no such file.
        WeightsError: it is truncated or unreadable, its checksum does not match its contents, or
            (with ``finite``) a floating-point tensor holds NaN or infinity (named).
    """
    path = Path(path)
    data = path.read_bytes()
    header, body = _split(path, data)
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError) as e:
        raise WeightsError(path, f"corrupt: its safetensors header has a bad tensor entry ({e!r})") from e
    if len(body) < end:
        raise WeightsError(path, f"truncated: it holds {len(body)} of its {end} bytes of tensor data")
    recorded = (header.get("__metadata__") or {}).get(KEY)
    if recorded is not None and recorded != _digest(header, body):
        raise WeightsError(path, "corrupt: its SHA-256 does not match the one recorded when it was written")
    try:
        tensors = safetensors.torch.load(data)
    except Exception as e:  # safetensors raises its own SafetensorError
        raise WeightsError(path, f"corrupt or truncated: safetensors cannot read it ({e})") from e
    if finite:
        for name, t in tensors.items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad = int((~torch.isfinite(t)).sum())
                raise WeightsError(path, f"tensor {name!r} holds {bad} non-finite (NaN or infinite) values")
    return tensors


def save_model_file(
    model: nn.Module, path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None
) -> None:
    """``safetensors.torch.save_model`` (tied duplicates dropped) into ``path``, sealed, atomically
    and never through a link."""
    with atomic_path(path, root=root) as tmp:
        safetensors.torch.save_model(model, str(tmp))
        seal(tmp)


def save_tensors_file(
    tensors: dict[str, Tensor],
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, str] | None = None,
    root: str | os.PathLike[str] | None = None,
) -> None:
    """``safetensors.torch.save_file`` into ``path``, sealed, atomically and never through a link."""
    with atomic_path(path, root=root) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)
        seal(tmp)


__all__ = ["KEY", "WeightsError", "save_model_file", "save_tensors_file", "seal", "verify"]


def copy_matching(own: dict[str, Tensor], stored: dict[str, Tensor], path: str | Path) -> None:
    """Copy ``stored`` into the model's tensors ``own`` (same names, same shapes, else a ValueError that
    lists what is missing, unexpected or differently shaped): the plain tensors a compressed model file
    holds beside its compressed ones."""
    missing, unexpected = sorted(set(own) - set(stored)), sorted(set(stored) - set(own))
    if missing or unexpected:
        raise ValueError(f"{path} does not match the model: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for name, t in own.items():
            if tuple(t.shape) != tuple(stored[name].shape):
                raise ValueError(f"{path}: {name} has shape {tuple(stored[name].shape)}, the model {tuple(t.shape)}")
            t.copy_(stored[name])
