"""LSTMCell and LSTMStepCell (one step) against the layer and torch.nn.LSTMCell; GRU and RNN against torch.nn."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from checks import check_same

I, H, T, B = 4, 6, 5, 3
VARIANTS = [dict(), dict(peephole=True), dict(coupled=True), dict(layer_norm=True), dict(proj_size=3),
            dict(peephole=True, coupled=True, layer_norm=True, proj_size=2)]


@pytest.mark.parametrize("kw", VARIANTS, ids=str)
def test_cell_over_sequence_equals_layer(kw):
    layer = lstmkit.LSTM(I, H, **kw)
    step_cell = lstmkit.LSTMStepCell(I, H, **kw)
    step_cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    cell = lstmkit.LSTMCell(I, H, **kw)
    cell.load_state_dict(step_cell.state_dict())
    x = torch.randn(T, B, I)
    y, (h_n, c_n) = layer(x)
    state, hx, ys, ys_cell = None, None, [], []
    for t in range(T):
        h, state = step_cell(x[t], state)
        ys.append(h)
        hx = cell(x[t], hx)  # torch.nn.LSTMCell's contract: (h_1, c_1)
        ys_cell.append(hx[0])
    torch.testing.assert_close(torch.stack(ys), y)
    torch.testing.assert_close(state.h, h_n[0])
    torch.testing.assert_close(state.c, c_n[0])
    torch.testing.assert_close(torch.stack(ys_cell), torch.stack(ys), rtol=0, atol=0)
    torch.testing.assert_close(hx[1], state.c, rtol=0, atol=0)


def test_cell_matches_torch_lstmcell_and_unbatched():
    native = nn.LSTMCell(I, H)
    cell = lstmkit.LSTMCell(I, H)
    cell.load_state_dict(native.state_dict())
    assert list(cell.state_dict()) == list(native.state_dict())
    x, h0, c0 = torch.randn(B, I), torch.randn(B, H), torch.randn(B, H)
    h, c = cell(x, (h0, c0))
    hn, cn = native(x, (h0, c0))
    torch.testing.assert_close(h, hn)
    torch.testing.assert_close(c, cn)
    hu, cu = cell(x[0], (h0[0], c0[0]))
    assert hu.shape == (H,)
    torch.testing.assert_close(hu, hn[0])
    torch.testing.assert_close(cu, cn[0])


def test_cell_recurrent_dropout_needs_a_mask_in_training():
    cell = lstmkit.LSTMCell(I, H, recurrent_dropout=0.2)
    with pytest.raises(ValueError, match=r"drop_mask=cell\.dropout_mask"):
        cell(torch.randn(B, I))
    cell.eval()
    cell(torch.randn(B, I))  # no mask needed in eval


GRU_GRID = [dict(num_layers=L, bidirectional=bi, batch_first=bf, bias=bias)
            for L, bi, bf, bias in itertools.product([1, 2], [False, True], [False, True], [True, False])]


@pytest.mark.parametrize("kind", ["GRU", "RNN"])
@pytest.mark.parametrize("kw", GRU_GRID, ids=str)
def test_gru_rnn_parity(kind, kw):
    native = getattr(nn, kind)(I, H, **kw)
    ours = getattr(lstmkit, kind)(I, H, **kw)
    ours.load_state_dict(native.state_dict())
    x = torch.randn(B, T, I) if kw["batch_first"] else torch.randn(T, B, I)
    D = 2 if kw["bidirectional"] else 1
    check_same(native, ours, x, torch.randn(kw["num_layers"] * D, B, H))


@pytest.mark.parametrize("kind", ["GRU", "RNN"])
def test_gru_rnn_packed_and_unbatched(kind):
    native = getattr(nn, kind)(I, H, 2, bidirectional=True)
    ours = getattr(lstmkit, kind)(I, H, 2, bidirectional=True)
    ours.load_state_dict(native.state_dict())
    packed = pack_padded_sequence(torch.randn(T, B, I), torch.tensor([2, 5, 3]), enforce_sorted=False)
    check_same(native, ours, packed)
    check_same(native, ours, torch.randn(T, I))


def test_rnn_relu_parity():
    native = nn.RNN(I, H, nonlinearity="relu")
    ours = lstmkit.RNN(I, H, nonlinearity="relu")
    ours.load_state_dict(native.state_dict())
    check_same(native, ours, torch.randn(T, B, I))
