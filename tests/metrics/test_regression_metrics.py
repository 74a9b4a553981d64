from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmkit.metrics import mae, mase, rmse, smape


def test_rmse_mae_hand_computed():
    y, f = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 3.0, 1.0, 4.0])
    assert mae(y, f) == pytest.approx(3 / 4)
    assert rmse(y, f) == pytest.approx((5 / 4) ** 0.5)
    assert rmse(np.array([[0.0, 3.0]]), np.array([[4.0, 0.0]])) == pytest.approx((25 / 2) ** 0.5)


def test_smape_hand_computed():
    # terms: 2*|100-110|/210, 2*|0-0|/0 -> 0, 2*|1-(-1)|/2 = 2
    assert smape([100.0, 0.0, 1.0], [110.0, 0.0, -1.0]) == pytest.approx(100 * (20 / 210 + 0 + 2) / 3)
    assert smape([5.0], [5.0]) == 0.0


def test_mase_naive_and_seasonal():
    train = torch.tensor([1.0, 3.0, 2.0, 4.0, 3.0, 5.0])
    # naive in-sample MAE: |2| + |1| + |2| + |1| + |2| = 8 over 5 steps.
    assert mase([6.0, 7.0], [5.0, 7.0], train) == pytest.approx(0.5 / (8 / 5))
    # m = 2: |2-1| + |4-3| + |3-2| + |5-4| = 4 over 4 steps -> scale 1.
    assert mase([6.0, 7.0], [5.0, 7.0], train, m=2) == pytest.approx(0.5)
    # (T, F) training series: differences along time, pooled over features: (2 + 4) / 2 = 3.
    assert mase([[1.0, 1.0]], [[4.0, 4.0]], [[0.0, 0.0], [2.0, 4.0]]) == pytest.approx(3 / 3)


def test_errors():
    with pytest.raises(ValueError, match="same shape"):
        mae([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="y_train is constant at lag m = 1"):
        mase([1.0], [2.0], [3.0, 3.0, 3.0])
    with pytest.raises(ValueError, match="needs more than m = 4 steps"):
        mase([1.0], [2.0], [1.0, 2.0, 3.0], m=4)
    with pytest.raises(ValueError, match="m must be an int >= 1"):
        mase([1.0], [2.0], [1.0, 2.0], m=0)
