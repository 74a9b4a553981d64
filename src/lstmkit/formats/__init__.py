"""How a model's weights are stored, and reading any of them back: the floor under ``tasks`` and ``compress``.

Five formats, told apart by the safetensors file's ``format`` metadata:

- float: a plain ``safetensors.torch.save_model`` file (no ``format``);
- quantised (``lstmkit.quantized``, :mod:`lstmkit.formats.quantized`): packed integers, scales and
  zero-points of every weight matrix, loaded into ``Dequantize`` parametrizations;
- factorised (``lstmkit.lowrank``, :mod:`lstmkit.formats.lowrank`): the two factors of each
  factorised gate matrix, loaded into ``LowRank`` parametrizations;
- sparse (``lstmkit.sparse``, :mod:`lstmkit.formats.sparse`): pruned matrices as their kept values
  and a bitmask, read back into ordinary dense parameters, bitwise equal;
- block-circulant (``lstmkit.circulant``, :mod:`lstmkit.formats.circulant`): one length-K vector per
  K x K block of each circulant matrix, loaded into ``BlockCirculant`` parametrizations.

:func:`load_weights` reads whichever a file holds into a model built from its config. The drivers
that make compressed run directories (``lstmkit compress``) live in ``lstmkit.compress``.
"""

from __future__ import annotations

import os

import safetensors
import safetensors.torch
from torch import nn

from lstmkit.formats import circulant, integrity, lowrank, quantized, sparse

FORMATS = ("float", quantized.FORMAT, lowrank.FORMAT, sparse.FORMAT, circulant.FORMAT)


def file_format(path: str | os.PathLike[str]) -> str:
    """The storage format of a weights file: ``"float"`` or the ``FORMAT`` of one of the modules here."""
    with safetensors.safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("format") or "float"


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load the weights file ``path``, in any of :data:`FORMATS`, into ``model`` (strictly: every
    tensor must match); returns ``model``.

    Raises:
        integrity.WeightsError: the file is truncated, corrupt (its recorded SHA-256 does not match)
            or holds non-finite weights; checked before anything is loaded.
        what safetensors or ``load_state_dict`` raise for an intact file that does not fit ``model``.
    """
    integrity.verify(path)
    fmt = file_format(path)
    if fmt == quantized.FORMAT:
        quantized.load_quantized(model, path)
    elif fmt == lowrank.FORMAT:
        lowrank.load_lowrank(model, path)
    elif fmt == sparse.FORMAT:
        sparse.load_sparse(model, path)
    elif fmt == circulant.FORMAT:
        circulant.load_circulant(model, path)
    else:
        safetensors.torch.load_model(model, str(path), strict=True)
    return model


__all__ = ["FORMATS", "circulant", "file_format", "integrity", "load_weights", "lowrank", "quantized", "sparse"]
