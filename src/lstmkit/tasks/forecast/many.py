"""One LSTM for many series (a *global* model): trained on the windows of every series at once, each series
scaled by its own in-sample MASE scale, then forecasting each series from its own past.

A per-series LSTM sees a few dozen to a few hundred windows; on 20-60-step series it loses to ETS and the naive
(docs/results.md, the M1 panel). The M-competition answer is to learn one model across series (Smyl's ES-RNN, the
M4 winner; N-BEATS; Montero-Manso and Hyndman 2021 show global models can fit groups of unrelated series as well as
local ones, given a long enough input). Here, per series ``s`` with training part ``y[:val_lo]``:

- scale ``q_s``: the mean absolute seasonal difference of the training part (MASE's denominator; m = 1 when
  the series has no season or the training part is shorter than two seasons), so a series' loss is its MASE;
- an origin ``o`` (the first forecast step) gives the input window of the last ``window_s`` values before ``o``,
  as changes from the last one, ``(y[o - k] - y[o - 1]) / q_s``, left-padded with zeros to ``length`` steps, and
  a second channel 1 on real steps, 0 on padding; the targets are ``(y[o + j] - y[o - 1]) / q_s``, j < h_s;
- the loss is the absolute error of those scaled changes (so, per series, MASE), averaged over each series'
  horizon and weighted so that every series weighs the same in total, however many windows it has;
- forecasts go back as ``y[o - 1] + q_s * output``.

The network is ``lstmkit.models.ForecastNet`` without the AR skip (its forecast is the last value plus the LSTM's
change; the input's last value is 0 here by construction), trained by ``lstmkit.train.fit`` with early stopping
on every series' validation part (weighted the same way). Nothing here reads a test part: callers pass the
split points and ask for forecasts at the origins they score.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from lstmkit.models import ForecastModel, ForecastNet
from lstmkit.train import Config, DataConfig, TrainConfig, fit, seed_everything

MIN_CONTEXT = 3  # real values an input window must hold (fewer: no window at that origin)


@dataclasses.dataclass(frozen=True)
class SplitSeries:
    """One series of the collection and its split: training ``[0, val_lo)``, validation ``[val_lo, test_lo)``,
    test ``[test_lo, len(values))``; ``horizon`` steps are forecast from each origin, from the last ``window``
    values; ``season`` is the MASE scale's period (0: none)."""

    name: str
    values: np.ndarray  # (T,)
    val_lo: int
    test_lo: int
    horizon: int
    window: int
    season: int = 0

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=np.float64)
        object.__setattr__(self, "values", v)
        if v.ndim != 1 or not np.all(np.isfinite(v)):
            raise ValueError(f"series {self.name!r}: values must be a 1-D array of finite numbers, got shape {v.shape}")
        if not 0 < self.val_lo <= self.test_lo <= len(v):
            raise ValueError(f"series {self.name!r}: need 0 < val_lo <= test_lo <= {len(v)} (its length), got "
                             f"val_lo={self.val_lo}, test_lo={self.test_lo}")  # fmt: skip
        for key in ("horizon", "window"):
            if getattr(self, key) < 1:
                raise ValueError(f"series {self.name!r}: {key} must be >= 1, got {getattr(self, key)}")
        if self.season < 0:
            raise ValueError(f"series {self.name!r}: season must be >= 0, got {self.season}")


def mase_scale(train: np.ndarray, season: int) -> float:
    """Mean absolute difference at lag m of ``train`` (m = ``season``, or 1 without one or when the series holds
    fewer than two seasons); a constant series falls back to its mean absolute value, then to 1."""
    m = season if season >= 2 and len(train) >= 2 * season else 1
    if len(train) <= m:
        raise ValueError(f"a training part of {len(train)} values cannot give a lag-{m} scale")
    q = float(np.mean(np.abs(train[m:] - train[:-m])))
    if q > 0:
        return q
    q = float(np.mean(np.abs(train)))
    return q if q > 0 else 1.0


def origins_between(s: SplitSeries, lo: int, hi: int) -> np.ndarray:
    """Origins whose ``s.horizon`` targets lie in ``[lo, hi)`` and before which at least :data:`MIN_CONTEXT`
    values lie."""
    return np.arange(max(lo, MIN_CONTEXT), hi - s.horizon + 1)


def inputs(s: SplitSeries, origins: np.ndarray, length: int, scale: float) -> np.ndarray:
    """(N, length, 2) windows before ``origins``: the scaled changes from the last value, zero-padded on the
    left, and the real-step indicator."""
    if s.window > length:
        raise ValueError(f"series {s.name!r}: window {s.window} exceeds the model's input length {length}")
    x = np.zeros((len(origins), length, 2))
    for i, o in enumerate(origins):
        past = s.values[max(0, o - s.window) : o]  # (w,), w <= window
        x[i, length - len(past) :, 0] = (past - past[-1]) / scale
        x[i, length - len(past) :, 1] = 1.0
    return x


def windows(
    collection: Sequence[SplitSeries], part: str, length: int, max_horizon: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every series' ``part`` ("train", "val" or "test") windows: inputs (N, length, 2), targets (N, max_horizon)
    (scaled changes, 0 beyond the series' horizon), the target mask (N, max_horizon) and per-window weights (N,)
    that give each series the same total weight."""
    xs, ys, masks, weights = [], [], [], []
    present = []
    for s in collection:
        scale = mase_scale(s.values[: s.val_lo], s.season)
        lo, hi = {"train": (0, s.val_lo), "val": (s.val_lo, s.test_lo), "test": (s.test_lo, len(s.values))}[part]
        o = origins_between(s, lo, hi)
        if len(o) == 0:
            continue
        present.append(s.name)
        xs.append(inputs(s, o, length, scale))
        y = np.zeros((len(o), max_horizon))
        steps = o[:, None] + np.arange(s.horizon)[None, :]  # (N, h)
        y[:, : s.horizon] = (s.values[steps] - s.values[o - 1][:, None]) / scale
        m = np.zeros((len(o), max_horizon))
        m[:, : s.horizon] = 1.0
        ys.append(y)
        masks.append(m)
        weights.append(np.full(len(o), 1.0 / len(o)))
    if not present:
        raise ValueError(f"no series has a {part} window (each needs {MIN_CONTEXT} values before its first target)")
    as_t = [torch.from_numpy(np.concatenate(a)).float() for a in (xs, ys, masks, weights)]
    as_t[3] = as_t[3] / as_t[3].sum() * len(as_t[3])  # mean weight 1
    return as_t[0], as_t[1], as_t[2], as_t[3]


def global_step(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], state: Any) -> tuple[torch.Tensor, None, int]:
    """Weighted absolute error of the scaled changes over each window's own horizon; batch = x (B, L, 2),
    y (B, H), mask (B, H), weight (B,)."""
    x, y, mask, weight = batch
    pred = model(x.transpose(0, 1))  # (L, B, 2) -> (B, H)
    per_window = ((pred - y).abs() * mask).sum(1) / mask.sum(1)  # (B,)
    return (weight * per_window).sum() / weight.sum(), None, x.shape[0]


def batches(collection: Sequence[SplitSeries], length: int, max_horizon: int, batch_size: int,
            generator: torch.Generator | None = None) -> tuple[DataLoader, list[tuple[torch.Tensor, ...]]]:  # fmt: skip
    """The training windows of :func:`windows`, shuffled in batches, and the validation windows as one batch: what
    ``lstmkit.train.fit`` takes with :func:`global_step`."""
    train = windows(collection, "train", length, max_horizon)
    val = windows(collection, "val", length, max_horizon)
    loader = DataLoader(TensorDataset(*train), batch_size=batch_size, shuffle=True, generator=generator)
    return loader, [val]


@dataclasses.dataclass(frozen=True)
class GlobalSettings:
    """The global model's settings (fixed before any panel's test window was scored; docs/results.md)."""

    length: int = 24  # input steps (the longest per-series window of the panels: monthly, two years)
    hidden_size: int = 64
    num_layers: int = 1
    batch_size: int = 64
    lr: float = 3e-3
    epochs: int = 200
    patience: int = 20  # epochs without a better validation loss before stopping

    def config(self, max_horizon: int, seed: int, threads: int = 1) -> Config:
        model = ForecastModel(hidden_size=self.hidden_size, num_layers=self.num_layers, dropout=0.0, ar_skip=False,
                              input_size=2, output_size=max_horizon)  # fmt: skip
        train = TrainConfig(epochs=self.epochs, lr=self.lr, schedule="constant", warmup_steps=0, patience=self.patience,
                            stateful=False, seed=seed, threads=threads, progress=False, tensorboard=False,
                            max_minutes=None, log_every=50)  # fmt: skip
        return Config(model=model, data=DataConfig(batch_size=self.batch_size), train=train)


def fit_global(
    collection: Sequence[SplitSeries], out_dir: str | Path, *, seed: int = 0,
    settings: GlobalSettings | None = None,
) -> tuple[ForecastNet, dict[str, Any]]:
    """Train one model on every series' training windows, early-stopped on their validation windows; returns
    it (best validation weights) and the run's summary (best epoch, its validation loss: mean scaled absolute
    error, each series weighted equally); ``settings`` defaults to ``GlobalSettings()``."""
    settings = GlobalSettings() if settings is None else settings
    if not collection:
        raise ValueError("collection must hold at least one series")
    max_h = max(s.horizon for s in collection)
    config = settings.config(max_h, seed)
    loader, val = batches(collection, settings.length, max_h, settings.batch_size,
                          torch.Generator().manual_seed(seed))  # fmt: skip
    seed_everything(seed)
    model = ForecastNet(config.model, ar_order=0)
    result = fit(model, loader, global_step, config=config, out_dir=out_dir, val_data=val)
    return model, {"best_epoch": result.best_epoch, "val_loss": result.best_val_loss,
                   "train_windows": len(loader.dataset), "val_windows": len(val[0][0])}  # fmt: skip


@torch.no_grad()
def forecast(model: ForecastNet, s: SplitSeries, origins: np.ndarray, length: int = GlobalSettings.length
             ) -> np.ndarray:  # fmt: skip
    """(N, s.horizon) forecasts from ``origins`` in the series' units; each reads only values before its origin."""
    origins = np.asarray(origins)
    if len(origins) and origins.min() < 1:
        raise ValueError(f"series {s.name!r}: origins must be >= 1 (a value to start from), got {origins.min()}")
    scale = mase_scale(s.values[: s.val_lo], s.season)
    model.eval()
    x = torch.from_numpy(inputs(s, origins, length, scale)).float()  # (N, L, 2)
    out = model(x.transpose(0, 1)).double().numpy()[:, : s.horizon]  # (N, h)
    return s.values[origins - 1][:, None] + scale * out
