"""Sparse storage of pruned weight matrices: the kept values and a bitmask of where they are.

A pruned matrix W (R, C) of n = R C entries, of which nnz are kept, is stored as two tensors:

- ``NAME.__values``: the kept entries in row-major order, W's dtype, (nnz,);
- ``NAME.__mask``: one bit per entry, packed little-endian into ``uint8``, (ceil(n / 8),),

so it takes ``b nnz + ceil(n / 8)`` bytes against ``b n`` dense (b = 4 for float32). At sparsity s
(nnz = (1 - s) n) the matrix shrinks by ``1 / ((1 - s) + 1 / (8 b))``: 1.88x at s = 0.5, 7.6x at
s = 0.9 (float32). A matrix is stored this way only when that is smaller than dense (s > 1 / 32
in float32); every other tensor (biases, gains, matrices barely pruned) is stored as it is.

Why a bitmask and not CSR (values + a column index per value + R + 1 row pointers): CSR costs
``(b + i) nnz + 4 (R + 1)`` with i-byte indices, so it beats the bitmask only when
``i nnz + 4 (R + 1) < n / 8``, i.e. at densities under 1 / (8 i): 6.25% kept with 16-bit
indices (sparsity above 93.75%), which the pruning this package does (50-90%) does not reach. The
bitmask also needs no index width chosen by C, and decoding it is one scatter.

"Kept" means "not bitwise +0.0": the mask is taken from the bits (``view(int32) != 0``), so a
kept ``-0.0`` keeps its sign and the tensors read back are bitwise equal to the ones written
(tested), NaN payloads included. Tied weights (an embedding shared with the head) are stored once
and restored to every name that shares them, as ``safetensors.torch.save_model`` does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import safetensors
import torch
from torch import Tensor, nn

from lstmkit.formats.integrity import WeightsError, save_tensors_file

FORMAT = "lstmkit.sparse"
_VALUES, _MASK = ".__values", ".__mask"
_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}  # same-width integer, for the bits


def kept_mask(w: Tensor) -> Tensor:
    """Bool mask (same shape) of the entries whose bits are not all zero (so ``-0.0`` counts as kept)."""
    return w.detach().contiguous().view(_INT_VIEW[w.element_size()]) != 0


def sparse_nbytes(numel: int, nnz: int, element_size: int = 4) -> int:
    """Bytes of one matrix stored sparse: its ``nnz`` values and a bitmask of ``numel`` bits."""
    return element_size * nnz + math.ceil(numel / 8)


def encode(w: Tensor) -> tuple[Tensor, Tensor]:
    """(values (nnz,), packed mask (ceil(n / 8),) uint8) of ``w``; see the module docstring."""
    w = w.detach().contiguous()
    mask = kept_mask(w).reshape(-1)
    packed = np.packbits(mask.numpy(), bitorder="little")
    return w.reshape(-1)[mask].clone(), torch.from_numpy(packed)


def decode(values: Tensor, packed: Tensor, shape: tuple[int, ...], *, name: str = "tensor") -> Tensor:
    """The dense tensor of ``shape`` that :func:`encode` stored; raises ``ValueError`` naming ``name``
    when the parts do not fit each other or ``shape``."""
    n = math.prod(shape)
    if packed.dtype != torch.uint8 or packed.ndim != 1 or packed.numel() != math.ceil(n / 8):
        raise ValueError(f"{name}: the mask must be {math.ceil(n / 8)} bytes of uint8 for shape {list(shape)}, "
                         f"got {packed.numel()} of {packed.dtype}")  # fmt: skip
    bits = np.unpackbits(packed.numpy(), bitorder="little")  # (8 ceil(n / 8),)
    if bits[n:].any():
        raise ValueError(f"{name}: the mask has bits set past the tensor's {n} entries")
    mask = torch.from_numpy(bits[:n].astype(bool))
    nnz = int(mask.sum())
    if values.ndim != 1 or values.numel() != nnz:
        raise ValueError(f"{name}: the mask marks {nnz} kept entries, the file holds {values.numel()} values")
    out = values.new_zeros(n)
    out[mask] = values
    return out.view(shape)


def unique_tensors(tensors: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """``tensors`` with those shared under several names (tied weights) once, and for each dropped
    name the name it is stored under."""
    kept: dict[str, Tensor] = {}
    alias: dict[str, str] = {}
    first: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for name, t in tensors.items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if t.numel() and key in first:
            alias[name] = first[key]
        else:
            first.setdefault(key, name)
            kept[name] = t.detach()
    return kept, alias


def _unique_state(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, str]]:
    return unique_tensors(model.state_dict())


def sparse_candidates(model: nn.Module) -> dict[str, int]:
    """Tensors worth storing sparse (two or more dimensions, smaller that way), with their bytes so."""
    state, _ = _unique_state(model)
    out = {}
    for name, t in state.items():
        if t.ndim >= 2 and t.is_floating_point():
            size = sparse_nbytes(t.numel(), int(kept_mask(t).sum()), t.element_size())
            if size < t.numel() * t.element_size():
                out[name] = size
    return out


def save_sparse(model: nn.Module, path: str | Path) -> dict[str, int]:
    """Write ``model`` with every matrix that is smaller sparse stored as values + bitmask (sealed,
    atomic). Returns the bytes of each sparse-stored tensor; raises ``ValueError`` when none is
    (write an ordinary file then)."""
    chosen = sparse_candidates(model)
    if not chosen:
        raise ValueError("no weight matrix of the model is sparse enough to store smaller sparse "
                         "(more than 1/32 of its entries must be zero)")  # fmt: skip
    state, alias = _unique_state(model)
    out: dict[str, Tensor] = {}
    layout = {}
    for name, t in state.items():
        if name in chosen:
            out[name + _VALUES], out[name + _MASK] = encode(t)
            layout[name] = list(t.shape)
        else:
            out[name] = t.contiguous()
    meta = {"format": FORMAT, "tensors": json.dumps(layout), "aliases": json.dumps(alias)}
    save_tensors_file(out, path, metadata=meta)
    return chosen


def read_sparse(path: str | Path) -> dict[str, Tensor]:
    """The dense tensors of a file written by :func:`save_sparse`, by name (aliases included).

    Raises:
        WeightsError: the file is not in this format, or a sparse tensor's parts are missing or do
            not fit each other (naming the tensor).
    """
    with safetensors.safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise WeightsError(path, f"not a sparse lstmkit weights file (metadata format {meta.get('format')!r})")
        stored = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    try:
        layout, alias = json.loads(meta["tensors"]), json.loads(meta.get("aliases", "{}"))
    except (KeyError, json.JSONDecodeError) as e:
        raise WeightsError(path, f"corrupt: its sparse layout metadata is unreadable ({e!r})") from e
    dense: dict[str, Tensor] = {}
    for name, shape in layout.items():
        values, packed = stored.pop(name + _VALUES, None), stored.pop(name + _MASK, None)
        if values is None or packed is None:
            raise WeightsError(path, f"the sparse tensor {name!r} is incomplete (its values or its mask is missing)")
        try:
            dense[name] = decode(values, packed, tuple(shape), name=name)
        except ValueError as e:
            raise WeightsError(path, f"corrupt: {e}") from e
    dense.update(stored)
    for name, target in alias.items():
        if target not in dense:
            raise WeightsError(path, f"{name!r} is stored as {target!r}, which the file does not hold")
        dense[name] = dense[target]
    return dense


def load_sparse(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a file written by :func:`save_sparse` into ``model`` (strictly: the same names and shapes)."""
    dense = read_sparse(path)
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(dense)), sorted(set(dense) - set(own))
    wrong = [f"{n} {list(dense[n].shape)} (the model: {list(own[n].shape)})"
             for n in own if n in dense and dense[n].shape != own[n].shape]  # fmt: skip
    if missing or unexpected or wrong:
        raise ValueError(f"{path} does not match the model: missing {missing}, unexpected {unexpected}, "
                         f"other shapes {wrong}")  # fmt: skip
    model.load_state_dict(dense, strict=True)
    return model


__all__ = ["FORMAT", "decode", "encode", "kept_mask", "load_sparse", "read_sparse", "save_sparse",
           "sparse_candidates", "sparse_nbytes", "unique_tensors"]  # fmt: skip
