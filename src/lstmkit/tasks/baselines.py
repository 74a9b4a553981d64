"""Classical baselines the time-series tasks compute on their own splits.

Forecasting (``forecast``): every function takes the whole series ``y`` (T,) and ``origins``, the
index of each forecast's first target; the forecast of steps ``t .. t + H - 1`` uses ``y[:t]`` only,
returned as (N, H).

- naive: the last value;
- seasonal naive: the value one season back, ``y[t + h - m * k]`` with ``k = ceil((h + 1) / m)``;
- seasonal naive with growth: the same plus ``k`` times the mean seasonal change of the training
  part (the seasonal random walk with drift; on a log series the growth is a ratio);
- AR(p): a linear autoregression with intercept, fitted by least squares on the training part,
  one coefficient vector per step ahead (direct, like the LSTM).

Classification (``classify``): the 1-nearest-neighbour classifier with Euclidean distance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lstmkit.models.forecaster import least_squares


def _origins(y: np.ndarray, origins: Sequence[int], horizon: int, need: int) -> np.ndarray:
    o = np.asarray(origins, dtype=np.int64)
    if o.ndim != 1 or (o < need).any() or (o > len(y)).any():
        raise ValueError(f"origins must lie in [{need}, {len(y)}] (enough history), got {o.min()}..{o.max()}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    return o


def naive(y: np.ndarray, origins: Sequence[int], horizon: int) -> np.ndarray:
    """(N, H): every step ahead is the last value before the origin."""
    o = _origins(y, origins, horizon, 1)
    return np.repeat(y[o - 1][:, None], horizon, axis=1)


def _season_back(o: np.ndarray, horizon: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    h = np.arange(horizon)  # (H,)
    k = (h + m) // m  # ceil((h + 1) / m): whole seasons back to a known value
    return o[:, None] + h[None, :] - m * k[None, :], k  # (N, H) indices, (H,) seasons back


def seasonal_naive(y: np.ndarray, origins: Sequence[int], horizon: int, m: int) -> np.ndarray:
    """(N, H): the value one (or more) whole seasons of ``m`` steps back."""
    if m < 2:
        raise ValueError(f"seasonal naive needs a season m >= 2, got {m}")
    o = _origins(y, origins, horizon, m)
    idx, _ = _season_back(o, horizon, m)
    return y[idx]


def seasonal_growth(y_train: np.ndarray, m: int) -> float:
    """Mean change over one season, ``mean(y[t] - y[t - m])``, on the training part."""
    if len(y_train) <= m:
        raise ValueError(f"the training part ({len(y_train)} steps) must be longer than one season ({m})")
    return float(np.mean(y_train[m:] - y_train[:-m]))


def seasonal_naive_growth(y: np.ndarray, origins: Sequence[int], horizon: int, m: int, growth: float) -> np.ndarray:
    """(N, H): seasonal naive plus ``k * growth`` for a value ``k`` seasons back."""
    if m < 2:
        raise ValueError(f"seasonal naive needs a season m >= 2, got {m}")
    o = _origins(y, origins, horizon, m)
    idx, k = _season_back(o, horizon, m)
    return y[idx] + k[None, :] * growth


def lag_matrix(y: np.ndarray, origins: Sequence[int], p: int) -> np.ndarray:
    """(N, p): the ``p`` values before each origin, oldest first."""
    o = np.asarray(origins, dtype=np.int64)
    return y[o[:, None] - p + np.arange(p)[None, :]]


class LinearAR:
    """AR(p) with intercept, fitted by least squares; one coefficient vector per step ahead."""

    def __init__(self, p: int, horizon: int = 1) -> None:
        if p < 1 or horizon < 1:
            raise ValueError(f"AR order and horizon must be >= 1, got p={p}, horizon={horizon}")
        self.p, self.horizon = p, horizon
        self.weight: np.ndarray | None = None  # (p, H)
        self.bias: np.ndarray | None = None  # (H,)

    def fit(self, y: np.ndarray) -> LinearAR:
        """Fit on every window of ``y`` (the training part) whose targets lie inside it."""
        origins = np.arange(self.p, len(y) - self.horizon + 1)
        if len(origins) <= self.p:
            raise ValueError(
                f"AR({self.p}) with horizon {self.horizon} needs more than {2 * self.p + self.horizon} training "
                f"steps, got {len(y)}"
            )
        targets = y[origins[:, None] + np.arange(self.horizon)[None, :]]  # (N, H)
        self.weight, self.bias = least_squares(lag_matrix(y, origins, self.p), targets)
        return self

    def predict(self, y: np.ndarray, origins: Sequence[int]) -> np.ndarray:
        """(N, H) forecasts from the ``p`` values before each origin."""
        if self.weight is None:
            raise RuntimeError("LinearAR is not fitted")
        o = _origins(y, origins, self.horizon, self.p)
        return lag_matrix(y, o, self.p) @ self.weight + self.bias


def nearest_neighbour(
    train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, *, exclude_self: bool = False
) -> np.ndarray:
    """1-NN with Euclidean distance: train (N, D), test (M, D) flattened series -> (M,) labels.

    Ties go to the first training case, as in the UCR archive's reference code. ``exclude_self``:
    ``test`` is ``train`` and case i may not be its own neighbour (leave-one-out).
    """
    train, test = np.asarray(train, dtype=np.float64), np.asarray(test, dtype=np.float64)
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise ValueError(f"train and test must be (N, D) and (M, D), got {train.shape} and {test.shape}")
    # (M, N) squared distances, summed exactly (no |a|^2 - 2ab + |b|^2 cancellation), 64 test rows at a time
    d = np.concatenate([((test[i : i + 64, None, :] - train[None]) ** 2).sum(-1) for i in range(0, len(test), 64)])
    if exclude_self:
        if len(test) != len(train):
            raise ValueError("exclude_self needs test to be train itself")
        np.fill_diagonal(d, np.inf)
    return np.asarray(train_labels)[np.argmin(d, axis=1)]
