"""param_count's formula against the modules' real parameter count, and repr."""

from __future__ import annotations

import itertools

import pytest
from torch import nn

import lstmkit
from lstmkit import param_count

LSTM_GRID = [
    dict(num_layers=L, bidirectional=bi, proj_size=p, bias=b, peephole=pe, coupled=c, layer_norm=ln)
    for L, bi, p, b, pe, c, ln in itertools.product([1, 3], [False, True], [0, 5], [True, False], [False, True],
                                                    [False, True], [False, True])
]


@pytest.mark.parametrize("kw", LSTM_GRID, ids=str)
def test_lstm_param_count_matches_module(kw):
    m = lstmkit.LSTM(13, 11, **kw)
    n = sum(p.numel() for p in m.parameters())
    L = kw.pop("num_layers")
    assert param_count(13, 11, L, **kw) == n
    assert param_count(m) == n


def test_seed_formula_single_bias():
    d_x, d_h = 10, 20
    assert param_count(d_x, d_h, bias_vectors=1) == 4 * ((d_x + d_h) * d_h + d_h)
    # torch.nn keeps two bias vectors: 4 d_h more
    assert param_count(d_x, d_h) == 4 * ((d_x + d_h) * d_h + d_h) + 4 * d_h == sum(
        p.numel() for p in nn.LSTM(d_x, d_h).parameters()
    )


@pytest.mark.parametrize("mode", ["gru", "rnn"])
@pytest.mark.parametrize(("L", "bi", "b"), list(itertools.product([1, 2], [False, True], [True, False])))
def test_gru_rnn_param_count(mode, L, bi, b):
    cls = lstmkit.GRU if mode == "gru" else lstmkit.RNN
    m = cls(7, 9, L, bidirectional=bi, bias=b)
    n = sum(p.numel() for p in m.parameters())
    assert param_count(7, 9, L, mode=mode, bidirectional=bi, bias=b) == n == param_count(m)
    native = getattr(nn, mode.upper())(7, 9, L, bidirectional=bi, bias=b)
    assert param_count(native) == n


@pytest.mark.parametrize("kw", [dict(), dict(proj_size=3, peephole=True), dict(coupled=True, layer_norm=True)], ids=str)
def test_cell_param_count(kw):
    cell = lstmkit.LSTMCell(5, 6, **kw)
    assert param_count(cell) == sum(p.numel() for p in cell.parameters())


def test_param_count_errors():
    with pytest.raises(ValueError, match="mode must be one of"):
        param_count(3, 4, mode="transformer")
    with pytest.raises(ValueError, match="apply to mode='lstm' only"):
        param_count(3, 4, mode="gru", peephole=True)
    with pytest.raises(TypeError, match="needs hidden_size"):
        param_count(3)
    with pytest.raises(TypeError, match="ConvLSTM or ConvLSTMCell modules, got Linear"):
        param_count(nn.Linear(2, 3))


def test_repr_shows_only_non_defaults():
    assert repr(lstmkit.LSTM(3, 4)) == "LSTM(3, 4)"
    assert repr(lstmkit.LSTM(3, 4, 2, peephole=True, recurrent_dropout=0.1)) == (
        "LSTM(3, 4, num_layers=2, recurrent_dropout=0.1, peephole=True)"
    )
    assert repr(lstmkit.GRU(3, 4, bidirectional=True)) == "GRU(3, 4, bidirectional=True)"
    assert repr(lstmkit.LSTMCell(3, 4, layer_norm=True)) == "LSTMCell(3, 4, layer_norm=True)"
