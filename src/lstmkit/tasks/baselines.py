"""Classical baselines the time-series tasks compute on their own splits.

Forecasting (``forecast``): every function takes the whole series ``y`` (T,) and ``origins``, the
index of each forecast's first target; the forecast of steps ``t .. t + H - 1`` uses ``y[:t]`` only,
returned as (N, H).

- naive: the last value;
- seasonal naive: the value one season back, ``y[t + h - m * k]`` with ``k = ceil((h + 1) / m)``;
- seasonal naive with growth: the same plus ``k`` times the mean seasonal change of the training
  part (the seasonal random walk with drift; on a log series the growth is a ratio);
- AR(p): a linear autoregression with intercept, fitted by least squares on the training part,
  one coefficient vector per step ahead (direct, like the LSTM);
- ETS: the exponential-smoothing state-space model (statsmodels ``ETSModel``) whose error, trend
  (none, additive, damped) and season (none, additive, multiplicative) minimise AICc on the training
  part (Hyndman et al. 2008's automatic ETS, on a fixed grid);
- ARIMA: (p, d, q)(P, D, Q)_m by statsmodels, with D from the seasonal strength of an STL
  decomposition (> 0.64, as R's ``auto.arima``), d from repeated KPSS tests (5%), then (p, q) and
  (P, Q) by AICc over a small grid (see :func:`auto_arima`).

ETS and ARIMA are fitted once, on the training part; each origin's forecast filters the history
``y[:t]`` with those fixed parameters (no refit), so no value at or after ``t`` reaches it. One step
ahead that is the one-step prediction of a single filtering pass over the series (equal to the
per-origin forecasts, which the tests check, and hundreds of times faster).

Classification (``classify``): the 1-nearest-neighbour classifier with Euclidean distance and with
dynamic time warping (DTW; squared point costs summed over channels, the "dependent" multivariate
DTW, optionally in a Sakoe-Chiba band), computed by dtaidistance's C implementation (Meert et al.,
DTAI KU Leuven; sktime's own DTW needs numba, which lstmkit does not install). The tests hold it equal to a
plain numpy dynamic programme and to hand-worked cases.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

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


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """statsmodels warns on every non-converged or boundary fit; the selection by AICc handles those."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _finite_aicc(result) -> float:
    aicc = float(result.aicc)
    return aicc if np.isfinite(aicc) else np.inf


class AutoETS:
    """Exponential smoothing (statsmodels ``ETSModel``), the form chosen by AICc on the training part.

    Candidates: additive or (for positive series) multiplicative errors; no, additive or damped
    additive trend; with a season ``m`` >= 2 no, additive or (positive series) multiplicative season.
    """

    def __init__(self, m: int = 0) -> None:
        if m == 1 or m < 0:
            raise ValueError(f"season m must be 0 (none) or >= 2, got {m}")
        self.m = m
        self.spec: dict | None = None  # ETSModel keywords of the chosen form
        self.params: np.ndarray | None = None
        self.aicc: float = np.inf

    def candidates(self, y: np.ndarray) -> list[dict]:
        positive = bool((y > 0).all())
        errors = ["add", "mul"] if positive else ["add"]
        trends = [(None, False), ("add", False), ("add", True)]
        seasons = [None]
        if self.m and len(y) >= 2 * self.m + 2:  # two full seasons to initialise one
            seasons += ["add", "mul"] if positive else ["add"]
        return [dict(error=e, trend=t, damped_trend=d, seasonal=s, seasonal_periods=self.m if s else None)
                for e in errors for t, d in trends for s in seasons]  # fmt: skip

    def fit(self, y: np.ndarray) -> AutoETS:
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        y = np.asarray(y, dtype=np.float64)
        if len(y) < 8:
            raise ValueError(f"ETS needs at least 8 training steps, got {len(y)}")
        with _quiet():
            for spec in self.candidates(y):
                try:
                    res = ETSModel(y, **spec).fit(disp=False)
                except (ValueError, np.linalg.LinAlgError):
                    continue
                if _finite_aicc(res) < self.aicc:
                    self.spec, self.params, self.aicc = spec, np.asarray(res.params), _finite_aicc(res)
        if self.spec is None:
            raise ValueError("no ETS form could be fitted to the training part")
        return self

    @property
    def name(self) -> str:
        s = self.spec
        trend = {None: "N", "add": "A"}[s["trend"]] + ("d" if s["damped_trend"] else "")
        return f"ETS({s['error'][0].upper()},{trend},{'N' if s['seasonal'] is None else s['seasonal'][0].upper()})"

    @property
    def min_history(self) -> int:
        """The fewest steps before an origin that :meth:`predict` accepts (two seasons and two with a season)."""
        if self.spec is None:
            raise RuntimeError("AutoETS is not fitted")
        return 2 * self.m + 2 if self.spec["seasonal"] else 2

    def predict(self, y: np.ndarray, origins: Sequence[int], horizon: int) -> np.ndarray:
        """(N, H): the fixed model run over ``y[:t]`` for each origin ``t``, then forecast ``horizon`` steps."""
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        o = _origins(y, origins, horizon, self.min_history)
        with _quiet():
            if horizon == 1:  # one pass: the smoothed model's one-step predictions are each origin's forecast
                run = ETSModel(np.asarray(y[: o.max()], dtype=np.float64), **self.spec).smooth(self.params)
                path = np.concatenate([np.asarray(run.fittedvalues), np.asarray(run.forecast(1))])  # (max(o) + 1,)
                return path[o][:, None]
            return np.stack([np.asarray(ETSModel(np.asarray(y[:t], dtype=np.float64), **self.spec)
                                        .smooth(self.params).forecast(horizon)) for t in o])  # fmt: skip


def seasonal_strength(y: np.ndarray, m: int) -> float:
    """Hyndman & Athanasopoulos' F_S = max(0, 1 - var(remainder) / var(season + remainder)) of an STL fit."""
    from statsmodels.tsa.seasonal import STL

    res = STL(np.asarray(y, dtype=np.float64), period=m, robust=True).fit()
    denom = np.var(res.seasonal + res.resid)
    return float(max(0.0, 1.0 - np.var(res.resid) / denom)) if denom > 0 else 0.0


def kpss_differences(y: np.ndarray, max_d: int = 2, alpha: float = 0.05) -> int:
    """How many first differences make ``y`` level-stationary by the KPSS test at ``alpha`` (auto.arima's rule)."""
    from statsmodels.tsa.stattools import kpss

    d, x = 0, np.asarray(y, dtype=np.float64)
    with _quiet():
        while d < max_d and len(x) > 8 and np.ptp(x) > 0 and kpss(x, regression="c", nlags="auto")[1] < alpha:
            x, d = np.diff(x), d + 1
    return d


class AutoARIMA:
    """ARIMA(p, d, q)(P, D, Q)_m (statsmodels), its orders chosen on the training part.

    D = 1 when ``m`` >= 2 and the STL seasonal strength exceeds 0.64, else 0; d from KPSS tests on the
    (seasonally differenced) series; then (p, q) in ``0..max_p`` x ``0..max_q`` with P = Q = 0 by AICc,
    and with a season (P, Q) in {0, 1}^2 for that (p, q). A constant when d + D = 0, a drift when 1.
    """

    def __init__(self, m: int = 0, *, max_p: int = 5, max_q: int = 2) -> None:
        if m == 1 or m < 0:
            raise ValueError(f"season m must be 0 (none) or >= 2, got {m}")
        self.m, self.max_p, self.max_q = m, max_p, max_q
        self.order: tuple[int, int, int] | None = None
        self.seasonal_order: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.trend = "n"
        self.result = None
        self.aicc = np.inf

    def _try(self, y: np.ndarray, order, seasonal_order, trend) -> None:
        from statsmodels.tsa.arima.model import ARIMA

        try:
            res = ARIMA(y, order=order, seasonal_order=seasonal_order, trend=trend).fit()
        except (ValueError, np.linalg.LinAlgError):
            return
        if _finite_aicc(res) < self.aicc:
            self.order, self.seasonal_order, self.trend = order, seasonal_order, trend
            self.result, self.aicc = res, _finite_aicc(res)

    def fit(self, y: np.ndarray) -> AutoARIMA:
        y = np.asarray(y, dtype=np.float64)
        if len(y) < 10:
            raise ValueError(f"ARIMA needs at least 10 training steps, got {len(y)}")
        seasonal = self.m >= 2 and len(y) >= 3 * self.m
        D = int(seasonal and seasonal_strength(y, self.m) > 0.64)
        d = kpss_differences(y[self.m :] - y[: -self.m] if D else y)
        trend = {0: "c", 1: "t"}.get(d + D, "n")
        with _quiet():
            for p in range(self.max_p + 1):
                for q in range(self.max_q + 1):
                    self._try(y, (p, d, q), (0, D, 0, self.m) if D else (0, 0, 0, 0), trend)
            if self.order is None:
                raise ValueError("no ARIMA order could be fitted to the training part")
            if seasonal:
                p, _, q = self.order
                for P, Q in ((0, 1), (1, 0), (1, 1)):
                    self._try(y, (p, d, q), (P, D, Q, self.m), trend)
        return self

    @property
    def name(self) -> str:
        P, D, Q, m = self.seasonal_order
        season = f"({P},{D},{Q})[{m}]" if (P, D, Q) != (0, 0, 0) else ""
        drift = {"c": " with constant", "t": " with drift"}.get(self.trend, "")
        p, d, q = self.order
        return f"ARIMA({p},{d},{q}){season}{drift}"

    @property
    def min_history(self) -> int:
        """The fewest steps before an origin that :meth:`predict` accepts."""
        if self.result is None:
            raise RuntimeError("AutoARIMA is not fitted")
        return 1

    def predict(self, y: np.ndarray, origins: Sequence[int], horizon: int) -> np.ndarray:
        """(N, H): the fitted parameters filtered over ``y[:t]`` for each origin ``t`` (no refit), then forecast."""
        o = _origins(y, origins, horizon, self.min_history)
        with _quiet():
            if horizon == 1:  # one pass: the filter's one-step predictions are each origin's forecast
                run = self.result.apply(np.asarray(y[: o.max()], dtype=np.float64))
                return np.asarray(run.predict(start=0, end=int(o.max())))[o][:, None]  # (N, 1)
            return np.stack([np.asarray(self.result.apply(np.asarray(y[:t], dtype=np.float64)).forecast(horizon))
                             for t in o])  # fmt: skip


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


def dtw_distances(a: np.ndarray, b: np.ndarray, *, window: int | None = None) -> np.ndarray:
    """Squared DTW distances between every case of ``a`` (M, T, C) and of ``b`` (N, T, C): (M, N).

    The cost of a path is the sum of ``||a_i - b_j||^2`` over its cells, steps (1, 0), (0, 1), (1, 1);
    ``window``: the Sakoe-Chiba band ``|i - j| <= window`` (None: full warping; 0: the Euclidean distance).
    Equal lengths T only (resample first). dtaidistance returns the square root of that cost and takes
    its band as ``|i - j| < window``, hence the square and the + 1.
    """
    from dtaidistance import dtw, dtw_ndim

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"a and b must be (M, T, C) and (N, T, C) with the same T and C, got {a.shape} and {b.shape}")
    if window is not None and window < 0:
        raise ValueError(f"window must be >= 0 or None, got {window}")
    # use_pruning=False: the univariate routine prunes by default with the Euclidean distance as its bound, and a
    # path that costs exactly that bound (every path in a band of 0) comes back as inf (dtaidistance 2.5.1)
    kw = {"use_pruning": False} if window is None else {"window": window + 1, "use_pruning": False}
    if a.shape[2] == 1:  # the univariate routine: the same cost, faster
        pairs, xs, ys = dtw.distance_fast, np.ascontiguousarray(a[..., 0]), np.ascontiguousarray(b[..., 0])
    else:
        pairs, xs, ys = dtw_ndim.distance_fast, np.ascontiguousarray(a), np.ascontiguousarray(b)
    out = np.array([[pairs(x, y, **kw) for y in ys] for x in xs]).reshape(len(a), len(b))
    return out * out


def nearest_neighbour_dtw(
    train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, *, window: int | None = None
) -> np.ndarray:
    """1-NN with DTW: train (N, T, C), test (M, T, C) -> (M,) labels; ties go to the first training case."""
    return np.asarray(train_labels)[np.argmin(dtw_distances(test, train, window=window), axis=1)]
