"""Per-feature z-score normalisation fitted on training data only."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

from lstmkit._fileio import read_versioned_json, write_versioned_json

_FORMAT = "lstmkit.standardizer"
_VERSION = 1

_Array = TypeVar("_Array", torch.Tensor, np.ndarray)


def _as_float64_2d(data: object, name: str) -> torch.Tensor:
    """Stack ``data`` (an array (..., F) or a sequence of them, e.g. variable-length (T_i, F)) to (N, F)."""
    if isinstance(data, (torch.Tensor, np.ndarray)):
        parts = [data]
    elif isinstance(data, Sequence) and data and all(isinstance(d, (torch.Tensor, np.ndarray)) for d in data):
        parts = list(data)
    else:
        raise TypeError(f"{name} must be a tensor, a numpy array or a non-empty list of them")
    rows = []
    for p in parts:
        t = torch.as_tensor(p)
        if t.ndim < 1:
            raise ValueError(f"{name} must have a feature dimension (..., F), got a scalar")
        rows.append(t.detach().to(torch.float64).reshape(-1, t.shape[-1]))  # (N_i, F)
    widths = {r.shape[1] for r in rows}
    if len(widths) != 1:
        raise ValueError(f"{name}: all arrays must have the same number of features, got {sorted(widths)}")
    return torch.cat(rows)  # (N, F)


class Standardizer:
    """Map each feature to zero mean and unit variance: ``(x - mean) / std``.

    Statistics come from :meth:`fit` on the training split only, so that validation and test
    data are scaled by numbers they did not influence. Arrays have features last, (..., F):
    (T, F) series, (T, B, F) batches or a list of variable-length (T_i, F) sequences.
    """

    def __init__(self) -> None:
        self.mean: torch.Tensor | None = None  # (F,) float64
        self.std: torch.Tensor | None = None  # (F,) float64, population std (ddof=0)

    @property
    def num_features(self) -> int | None:
        return None if self.mean is None else self.mean.numel()

    def fit(self, data: torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]) -> Standardizer:
        """Compute per-feature mean and std from ``data`` (..., F).

        Raises:
            ValueError: a feature holds NaN or inf, or is constant (std 0 would divide by zero);
                the message names the feature index.
        """
        x = _as_float64_2d(data, "data")  # (N, F)
        if x.shape[0] == 0:
            raise ValueError("data must hold at least one row to fit on")
        finite = torch.isfinite(x).all(dim=0)  # (F,)
        if not finite.all():
            bad = torch.nonzero(~finite).flatten().tolist()
            raise ValueError(f"data holds NaN or inf in feature index(es) {bad}; clean it before fitting")
        mean = x.mean(dim=0)
        std = x.std(dim=0, correction=0)
        # Relative tolerance: a feature whose spread is rounding noise around a large value is constant.
        constant = std <= 1e-12 * torch.clamp(mean.abs(), min=1.0)
        if constant.any():
            bad = torch.nonzero(constant).flatten().tolist()
            raise ValueError(
                f"feature index(es) {bad} are constant in the training data; drop them before fitting"
            )
        self.mean, self.std = mean, std
        return self

    def _check(self, x: torch.Tensor | np.ndarray, name: str) -> None:
        if self.mean is None:
            raise RuntimeError("Standardizer is not fitted; call fit(train_data) first")
        if not isinstance(x, (torch.Tensor, np.ndarray)):
            raise TypeError(f"{name} must be a tensor or numpy array, got {type(x).__name__}")
        if x.ndim < 1 or x.shape[-1] != self.num_features:
            raise ValueError(
                f"{name} must have {self.num_features} features last (..., F), got shape {tuple(x.shape)}"
            )

    def transform(self, x: _Array) -> _Array:
        """Return ``(x - mean) / std`` with the type, dtype and device of ``x`` (..., F)."""
        self._check(x, "x")
        return self._apply(x, lambda t, m, s: (t - m) / s)

    def inverse_transform(self, z: _Array) -> _Array:
        """Undo :meth:`transform`: ``z * std + mean``."""
        self._check(z, "z")
        return self._apply(z, lambda t, m, s: t * s + m)

    def _apply(self, x, fn):
        if isinstance(x, np.ndarray):
            dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
            m, s = (v.numpy().astype(dtype) for v in (self.mean, self.std))
            return fn(x.astype(dtype, copy=False), m, s)
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        m, s = (v.to(device=x.device, dtype=dtype) for v in (self.mean, self.std))
        return fn(x.to(dtype), m, s)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the statistics as versioned JSON (floats round-trip exactly through ``repr``)."""
        if self.mean is None:
            raise RuntimeError("Standardizer is not fitted; nothing to save")
        write_versioned_json(path, _FORMAT, _VERSION, {"mean": self.mean.tolist(), "std": self.std.tolist()})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Standardizer:
        """Read statistics written by :meth:`save`."""
        obj = read_versioned_json(path, _FORMAT, _VERSION)
        mean, std = obj.get("mean"), obj.get("std")
        ok = (
            isinstance(mean, list)
            and isinstance(std, list)
            and len(mean) == len(std) > 0
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in mean + std)
            and all(v > 0 for v in std)
        )
        if not ok:
            raise ValueError(
                f"{path}: 'mean' and 'std' must be equal-length lists of finite numbers; std > 0"
            )
        out = cls()
        out.mean = torch.tensor(mean, dtype=torch.float64)
        out.std = torch.tensor(std, dtype=torch.float64)
        return out

    def __repr__(self) -> str:
        return f"Standardizer(num_features={self.num_features})"
