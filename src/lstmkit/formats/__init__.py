"""How a model's weights are stored, and reading any of them back: the floor under ``tasks`` and ``compress``.

Three formats, told apart by the safetensors file's ``format`` metadata:

- float: a plain ``safetensors.torch.save_model`` file (no ``format``);
- quantised (``lstmkit.quantized``, :mod:`lstmkit.formats.quantized`): packed integers, scales and
  zero-points of every weight matrix, loaded into ``Dequantize`` parametrizations;
- factorised (``lstmkit.lowrank``, :mod:`lstmkit.formats.lowrank`): the two factors of each
  factorised gate matrix, loaded into ``LowRank`` parametrizations.

:func:`load_weights` reads whichever a file holds into a model built from its config. The drivers
that make compressed run directories (``lstmkit compress``) live in ``lstmkit.compress``.
"""

from __future__ import annotations

import os

import safetensors
import safetensors.torch
from torch import nn

from lstmkit.formats import integrity, lowrank, quantized

FORMATS = ("float", quantized.FORMAT, lowrank.FORMAT)


def file_format(path: str | os.PathLike[str]) -> str:
    """The storage format of a weights file: ``"float"``, ``quantized.FORMAT`` or ``lowrank.FORMAT``."""
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
    else:
        safetensors.torch.load_model(model, str(path), strict=True)
    return model


__all__ = ["FORMATS", "file_format", "integrity", "load_weights", "lowrank", "quantized"]
