from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmkit.data import SlidingWindowDataset, TokenStreamBatcher


def test_sliding_window_items_hand_computed():
    series = np.arange(20, dtype=np.float64).reshape(10, 2)  # row t = [2t, 2t + 1]
    ds = SlidingWindowDataset(series, window=3, horizon=2, stride=2, target_columns=[1])
    assert len(ds) == 3  # starts 0, 2, 4; start 6 would need rows up to 10
    x, y = ds[1]
    assert x.tolist() == [[4.0, 5.0], [6.0, 7.0], [8.0, 9.0]]
    assert y.tolist() == [[11.0], [13.0]]
    assert x.dtype == torch.float32
    x_last, y_last = ds[-1]
    assert x_last[0, 0].item() == 8.0 and y_last[-1, 0].item() == 17.0  # rows 7, 8 of column 1
    with pytest.raises(IndexError):
        ds[3]


def test_sliding_window_univariate_and_batching():
    ds = SlidingWindowDataset(torch.arange(12.0), window=4)
    assert len(ds) == 8
    x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert x.shape == (5, 4, 1) and y.shape == (5, 1, 1)
    assert y[:, 0, 0].tolist() == [4.0, 5.0, 6.0, 7.0, 8.0]


def test_sliding_window_errors():
    with pytest.raises(ValueError, match="fewer than window \\+ horizon = 6"):
        SlidingWindowDataset(np.zeros((5, 1)), window=4, horizon=2)
    with pytest.raises(ValueError, match="target_columns must be non-empty ints in \\[0, 2\\)"):
        SlidingWindowDataset(np.zeros((9, 2)), window=2, target_columns=[2])
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        SlidingWindowDataset(np.zeros((9, 2)), window=2, stride=0)
    with pytest.raises(ValueError, match="series must be \\(T, F\\)"):
        SlidingWindowDataset(np.zeros((9, 2, 2)), window=2)


def test_token_stream_layout_and_shift():
    corpus = torch.arange(23)  # B=2 streams of 11 tokens, 1 token dropped
    batches = list(TokenStreamBatcher(corpus, batch_size=2, bptt=4))
    # 10 steps have a target: chunks of 4, 4, then the last partial chunk of 2.
    assert [x.shape for x, _ in batches] == [(4, 2), (4, 2), (2, 2)]
    x0, y0 = batches[0]
    assert x0.T.tolist() == [[0, 1, 2, 3], [11, 12, 13, 14]]
    assert torch.equal(y0, x0 + 1)
    # Streams continue across chunks: concatenating x over chunks gives each stream's tokens.
    xs = torch.cat([x for x, _ in batches])  # (10, B)
    ys = torch.cat([y for _, y in batches])
    assert xs[:, 1].tolist() == list(range(11, 21)) and ys[:, 1].tolist() == list(range(12, 22))


def test_token_stream_drop_last_and_len():
    b = TokenStreamBatcher(list(range(23)), 2, 4, drop_last=True)
    assert len(b) == 2 and [x.shape for x, _ in b] == [(4, 2), (4, 2)]
    exact = TokenStreamBatcher(torch.arange(18), 2, 4)  # 9 per stream, 8 steps: no partial chunk
    assert len(exact) == 2 and all(x.shape == (4, 2) for x, _ in exact)


def test_token_stream_errors():
    with pytest.raises(ValueError, match=r"corpus of 9 tokens is shorter than one chunk: .* 10 tokens"):
        TokenStreamBatcher(torch.arange(9), 2, 4)
    assert len(TokenStreamBatcher(torch.arange(10), 2, 4)) == 1
    with pytest.raises(ValueError, match="1-D integer sequence"):
        TokenStreamBatcher(torch.zeros(20), 2, 4)
    with pytest.raises(ValueError, match="bptt must be an int >= 1"):
        TokenStreamBatcher(torch.arange(20), 2, 0)
