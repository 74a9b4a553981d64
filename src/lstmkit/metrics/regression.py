"""Forecast and regression errors: RMSE, MAE, sMAPE, MASE."""

from __future__ import annotations

import numpy as np
import torch

_ArrayLike = torch.Tensor | np.ndarray


def _pair(y_true: _ArrayLike, y_pred: _ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.as_tensor(y_true).detach().to("cpu", torch.float64)
    f = torch.as_tensor(y_pred).detach().to("cpu", torch.float64)
    if a.shape != f.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {tuple(a.shape)} and {tuple(f.shape)}")
    if a.numel() == 0:
        raise ValueError("y_true is empty")
    return a, f


def rmse(y_true: _ArrayLike, y_pred: _ArrayLike) -> float:
    """Root mean squared error ``sqrt(mean((y - ŷ)^2))``."""
    a, f = _pair(y_true, y_pred)
    return (a - f).square().mean().sqrt().item()


def mae(y_true: _ArrayLike, y_pred: _ArrayLike) -> float:
    """Mean absolute error ``mean(|y - ŷ|)``."""
    a, f = _pair(y_true, y_pred)
    return (a - f).abs().mean().item()


def smape(y_true: _ArrayLike, y_pred: _ArrayLike) -> float:
    """Symmetric MAPE in percent, ``100 * mean(2 |y - ŷ| / (|y| + |ŷ|))``, in [0, 200].

    A term with ``y = ŷ = 0`` is a perfect forecast and counts as 0.
    """
    a, f = _pair(y_true, y_pred)
    denom = a.abs() + f.abs()
    terms = torch.where(denom > 0, 2 * (a - f).abs() / denom.clamp(min=1e-300), 0.0)
    return 100 * terms.mean().item()


def mase(y_true: _ArrayLike, y_pred: _ArrayLike, y_train: _ArrayLike, *, m: int = 1) -> float:
    """Mean absolute scaled error: the forecast's MAE over the in-sample MAE of the seasonal
    naive forecast ``y[t] = y[t - m]`` on the training series.

    Below 1 beats the seasonal naive forecast (Hyndman & Koehler 2006).

    Args:
        y_true, y_pred: the test targets and the forecasts, same shape.
        y_train: the training series, time first: (T,) or (T, F).
        m: seasonal period (1 for the plain naive forecast, 12 for monthly data with a yearly season).
    """
    if not isinstance(m, int) or m < 1:
        raise ValueError(f"m must be an int >= 1, got {m!r}")
    train = torch.as_tensor(y_train).detach().to("cpu", torch.float64)
    if train.ndim == 0 or train.shape[0] <= m:
        raise ValueError(f"y_train needs more than m = {m} steps along dim 0, got shape {tuple(train.shape)}")
    scale = (train[m:] - train[:-m]).abs().mean().item()
    if scale == 0:
        raise ValueError(f"y_train is constant at lag m = {m}; the MASE scale would be 0")
    return mae(y_true, y_pred) / scale
