"""Masking by lengths: padded steps give zero output and leave the state at the last valid step."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from checks import check_same

I, H, T = 3, 5, 7
LENGTHS = torch.tensor([7, 3, 0, 5])
KWS = [dict(), dict(bidirectional=True, num_layers=2), dict(peephole=True, layer_norm=True, proj_size=2),
       dict(coupled=True, bidirectional=True)]


@pytest.mark.parametrize("impl", ["fused", "reference"])
@pytest.mark.parametrize("kw", KWS, ids=str)
def test_lengths_equal_running_each_sequence_alone(impl, kw):
    m = lstmkit.LSTM(I, H, impl=impl, **kw)
    x = torch.randn(T, len(LENGTHS), I)
    LD = m.num_layers * m.num_directions
    h0, c0 = torch.randn(LD, len(LENGTHS), m.output_size), torch.randn(LD, len(LENGTHS), H)
    y, (h, c) = m(x, (h0, c0), lengths=LENGTHS)
    for b, n in enumerate(LENGTHS.tolist()):
        assert torch.all(y[n:, b] == 0)
        if n == 0:  # an empty sequence keeps its initial state
            torch.testing.assert_close(h[:, b], h0[:, b])
            torch.testing.assert_close(c[:, b], c0[:, b])
            continue
        yb, (hb, cb) = m(x[:n, b : b + 1], (h0[:, b : b + 1], c0[:, b : b + 1]))
        torch.testing.assert_close(y[:n, b], yb[:, 0], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(h[:, b], hb[:, 0], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(c[:, b], cb[:, 0], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kw", KWS, ids=str)
def test_lengths_batch_first_equals_time_first(kw):
    tf = lstmkit.LSTM(I, H, **kw)
    bf = lstmkit.LSTM(I, H, batch_first=True, **kw)
    bf.load_state_dict(tf.state_dict())
    x = torch.randn(T, 4, I)
    y_tf, (h_tf, _) = tf(x, lengths=LENGTHS)
    y_bf, (h_bf, _) = bf(x.transpose(0, 1), lengths=LENGTHS)
    torch.testing.assert_close(y_bf.transpose(0, 1), y_tf)
    torch.testing.assert_close(h_bf, h_tf)


@pytest.mark.parametrize("kw", KWS, ids=str)
def test_packed_equals_lengths(kw):
    """For the variants nn.LSTM lacks, packed input must agree with the lengths path."""
    lengths = torch.tensor([7, 3, 1, 5])
    a = lstmkit.LSTM(I, H, **kw)
    x = torch.randn(T, 4, I)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    yp, (hp, cp) = a(packed)
    y, (h, c) = a(x, lengths=lengths)
    padded, out_lengths = torch.nn.utils.rnn.pad_packed_sequence(yp, total_length=T)
    assert torch.equal(out_lengths, lengths)
    torch.testing.assert_close(padded, y)
    torch.testing.assert_close(hp, h)
    torch.testing.assert_close(cp, c)


def test_lengths_gradients_fused_vs_reference():
    a = lstmkit.LSTM(I, H, 2, bidirectional=True, peephole=True, impl="fused", dtype=torch.float64)
    b = lstmkit.LSTM(I, H, 2, bidirectional=True, peephole=True, impl="reference", dtype=torch.float64)
    b.load_state_dict(a.state_dict())
    check_same(a, b, torch.randn(T, 4, I, dtype=torch.float64), lengths=LENGTHS, atol=1e-10, rtol=1e-10)


def test_padding_values_do_not_leak():
    m = lstmkit.LSTM(I, H, bidirectional=True)
    x = torch.randn(T, 4, I)
    noisy = x.clone()
    for b, n in enumerate(LENGTHS.tolist()):
        noisy[n:, b] = 1e3 * torch.randn(T - n, I)
    y1, (h1, _) = m(x, lengths=LENGTHS)
    y2, (h2, _) = m(noisy, lengths=LENGTHS)
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)
    torch.testing.assert_close(h1, h2, rtol=0, atol=0)
