"""The global forecaster (one LSTM for many series): scaling, windows, weights, no look-ahead, learning."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from lstmkit.tasks.forecast.many import (
    MIN_CONTEXT,
    GlobalSettings,
    SplitSeries,
    fit_global,
    forecast,
    global_step,
    inputs,
    mase_scale,
    origins_between,
    windows,
)


def test_mase_scale_by_hand():
    assert mase_scale(np.array([1.0, 3.0, 2.0, 5.0]), 0) == pytest.approx((2 + 1 + 3) / 3)
    assert mase_scale(np.array([1.0, 3.0, 2.0, 5.0]), 2) == pytest.approx((1 + 2) / 2)  # |2-1|, |5-3|
    assert mase_scale(np.array([1.0, 3.0, 2.0]), 2) == pytest.approx(1.5)  # under two seasons: lag 1
    assert mase_scale(np.array([4.0, 4.0, 4.0]), 0) == 4.0  # constant: its mean absolute value
    assert mase_scale(np.zeros(3), 0) == 1.0
    with pytest.raises(ValueError, match="a training part of 1 values cannot give a lag-1 scale"):
        mase_scale(np.array([1.0]), 0)


def test_inputs_are_scaled_changes_left_padded_with_an_indicator():
    s = SplitSeries("s", np.array([1.0, 2.0, 4.0, 7.0, 11.0, 16.0]), 4, 5, 1, 3)
    x = inputs(s, np.array([4, 2]), length=5, scale=2.0)
    # origin 4: the 3 values before it (2, 4, 7) minus 7, halved; origin 2: only 2 values exist (1, 2)
    np.testing.assert_allclose(x[0, :, 0], [0, 0, -2.5, -1.5, 0])
    np.testing.assert_allclose(x[0, :, 1], [0, 0, 1, 1, 1])
    np.testing.assert_allclose(x[1, :, 0], [0, 0, 0, -0.5, 0])
    np.testing.assert_allclose(x[1, :, 1], [0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="series 's': window 3 exceeds the model's input length 2"):
        inputs(s, np.array([4]), length=2, scale=1.0)


def test_split_series_refuses_bad_splits_and_values():
    with pytest.raises(ValueError, match=r"series 'a': need 0 < val_lo <= test_lo <= 5 \(its length\), got val_lo=4, "
                                         r"test_lo=3"):  # fmt: skip
        SplitSeries("a", np.arange(5.0), 4, 3, 1, 2)
    with pytest.raises(ValueError, match="series 'b': values must be a 1-D array of finite numbers"):
        SplitSeries("b", np.array([1.0, np.nan, 2.0]), 1, 2, 1, 2)
    with pytest.raises(ValueError, match="series 'c': horizon must be >= 1, got 0"):
        SplitSeries("c", np.arange(5.0), 2, 3, 0, 2)


def _collection(rng: np.random.Generator) -> list[SplitSeries]:
    out = []
    for i, (n, h) in enumerate(((30, 1), (50, 3), (80, 2))):
        v = rng.normal(size=n).cumsum() + 10 * i
        out.append(SplitSeries(f"s{i}", v, int(0.6 * n), int(0.8 * n), h, 4 + i))
    return out


def test_windows_weigh_every_series_equally_and_mask_beyond_its_horizon():
    col = _collection(np.random.default_rng(0))
    x, y, mask, w = windows(col, "train", length=8, max_horizon=3)
    counts = [len(origins_between(s, 0, s.val_lo)) for s in col]
    assert len(x) == sum(counts) and x.shape[1:] == (8, 2) and y.shape == mask.shape == (sum(counts), 3)
    starts = np.cumsum([0, *counts])
    totals = [float(w[a:b].sum()) for a, b in itertools.pairwise(starts)]
    np.testing.assert_allclose(totals, totals[0], rtol=1e-6)  # each series the same total weight
    assert float(w.mean()) == pytest.approx(1.0)
    for s, a, b in zip(col, starts[:-1], starts[1:], strict=True):
        assert mask[a:b].sum(1).eq(s.horizon).all() and y[a:b, s.horizon :].eq(0).all()
    # the first training window of s1 by hand: origin MIN_CONTEXT, targets 3 scaled changes from the value before
    s, a = col[1], starts[1]
    q = mase_scale(s.values[: s.val_lo], 0)
    o = MIN_CONTEXT
    np.testing.assert_allclose(y[a].numpy(), (s.values[o : o + 3] - s.values[o - 1]) / q, rtol=1e-5)


def test_training_and_validation_windows_never_read_the_test_part():
    col = _collection(np.random.default_rng(1))
    changed = [SplitSeries(s.name, np.concatenate([s.values[: s.test_lo], s.values[s.test_lo :] * 100 + 7]),
                           s.val_lo, s.test_lo, s.horizon, s.window) for s in col]  # fmt: skip
    for part in ("train", "val"):
        for a, b in zip(windows(col, part, 8, 3), windows(changed, part, 8, 3), strict=True):
            assert torch.equal(a, b)
    # validation targets lie in [val_lo, test_lo): the last one ends exactly at test_lo
    s = col[2]
    assert origins_between(s, s.val_lo, s.test_lo)[-1] + s.horizon == s.test_lo


def test_forecast_reads_only_values_before_each_origin():
    torch.manual_seed(0)
    col = _collection(np.random.default_rng(2))
    model = GlobalSettings(hidden_size=8).config(3, seed=0).model
    from lstmkit.models import ForecastNet

    net = ForecastNet(model, ar_order=0)
    s = col[2]
    origins = np.arange(s.test_lo, len(s.values) - s.horizon + 1)
    base = forecast(net, s, origins, length=8)
    assert base.shape == (len(origins), s.horizon)
    for k, o in enumerate(origins):
        later = s.values.copy()
        later[o:] += 1e3  # the value at the origin and after it
        again = forecast(net, SplitSeries(s.name, later, s.val_lo, s.test_lo, s.horizon, s.window), origins, length=8)
        np.testing.assert_array_equal(again[k], base[k])
    with pytest.raises(ValueError, match="series 's2': origins must be >= 1"):
        forecast(net, s, np.array([0]), length=8)


class _Fixed(nn.Module):
    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out


def test_global_step_is_the_weighted_mean_absolute_error_over_each_horizon():
    pred = torch.tensor([[1.0, 2.0], [0.0, 5.0]])
    y = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # the second window's horizon is 1: its 5 is not scored
    weight = torch.tensor([1.0, 3.0])
    loss, state, items = global_step(_Fixed(pred), (torch.zeros(2, 4, 2), y, mask, weight), None)
    # window 1: (1 + 2) / 2 = 1.5; window 2: 1; weighted (1.5 + 3) / 4
    assert loss.item() == pytest.approx(4.5 / 4) and state is None and items == 2


def test_global_model_learns_trends_shared_across_series(tmp_path):
    """Linear trends of different levels and slopes are one pattern in scaled changes (+1 a step): the global
    model must forecast them far better than the naive, on every series' test part."""
    rng = np.random.default_rng(3)
    col = []
    for i in range(6):
        n = 40
        v = rng.uniform(-50, 50) + rng.uniform(0.5, 5) * np.arange(n) * (1 if i % 2 else -1)
        col.append(SplitSeries(f"t{i}", v, 24, 32, 1, 6))
    model, info = fit_global(col, tmp_path, settings=GlobalSettings(length=6, hidden_size=16, epochs=60, patience=60))
    assert info["train_windows"] == 6 * (24 - MIN_CONTEXT) and info["val_windows"] == 6 * 8
    for s in col:
        origins = np.arange(s.test_lo, len(s.values))
        err = np.abs(forecast(model, s, origins, length=6)[:, 0] - s.values[origins]).mean()
        naive = np.abs(s.values[origins - 1] - s.values[origins]).mean()  # = the slope
        assert err < 0.1 * naive, (s.name, err, naive)


def test_fit_global_refuses_an_empty_collection_or_one_without_windows(tmp_path):
    with pytest.raises(ValueError, match="collection must hold at least one series"):
        fit_global([], tmp_path)
    tiny = SplitSeries("tiny", np.arange(6.0), 2, 4, 1, 2)  # 2 training values: no window has 3 before it
    with pytest.raises(ValueError, match="no series has a train window"):
        fit_global([tiny], tmp_path)
