"""lstmkit.LSTM against torch.nn.LSTM: values, states and every gradient, weights copied across."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from checks import check_same
from lstmkit.nn import _cpp

IMPLS = [
    "fused",
    "reference",
    pytest.param("cpp", marks=pytest.mark.skipif(not _cpp.available(), reason="C++ kernel not built here")),
]
I, H, B, T = 5, 7, 4, 6

GRID = [
    dict(num_layers=L, bidirectional=bi, proj_size=p, batch_first=bf)
    for L, bi, p, bf in itertools.product([1, 2, 3], [False, True], [0, 3], [False, True])
]


def _pair(impl: str, **kw):
    native = nn.LSTM(I, H, **kw)
    ours = lstmkit.LSTM(I, H, impl=impl, **kw)
    ours.load_state_dict(native.state_dict())
    return native, ours


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kw", GRID, ids=lambda kw: "-".join(f"{k}{int(v)}" for k, v in kw.items()))
@pytest.mark.parametrize("with_hx", [False, True])
def test_parity_grid(impl, kw, with_hx):
    native, ours = _pair(impl, **kw)
    x = torch.randn(B, T, I) if kw["batch_first"] else torch.randn(T, B, I)
    args = [x]
    if with_hx:
        D = 2 if kw["bidirectional"] else 1
        P = kw["proj_size"] or H
        args.append((torch.randn(kw["num_layers"] * D, B, P), torch.randn(kw["num_layers"] * D, B, H)))
    check_same(native, ours, *args)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2, bidirectional=True, proj_size=3)])
@pytest.mark.parametrize("with_hx", [False, True])
def test_parity_unbatched(impl, kw, with_hx):
    native, ours = _pair(impl, **kw)
    args = [torch.randn(T, I)]
    if with_hx:
        LD = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
        args.append((torch.randn(LD, kw.get("proj_size") or H), torch.randn(LD, H)))
    out = check_same(native, ours, *args)
    assert out[0].dim() == 2 and out[1].dim() == 2


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2, bidirectional=True), dict(proj_size=3, num_layers=2)])
@pytest.mark.parametrize("with_hx", [False, True])
def test_parity_packed_unsorted(impl, kw, with_hx):
    native, ours = _pair(impl, **kw)
    lengths = torch.tensor([3, 6, 1, 4])  # unsorted, with a length-1 sequence
    packed = pack_padded_sequence(torch.randn(T, B, I), lengths, enforce_sorted=False)
    args = [packed]
    if with_hx:
        LD = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
        args.append((torch.randn(LD, B, kw.get("proj_size") or H), torch.randn(LD, B, H)))
    out = check_same(native, ours, *args)
    # PackedSequence in gives PackedSequence out, with the input's batch layout.
    y = ours(packed)[0]
    assert isinstance(y, nn.utils.rnn.PackedSequence)
    assert torch.equal(y.batch_sizes, packed.batch_sizes)
    assert torch.equal(y.sorted_indices, packed.sorted_indices)
    assert out[0].shape == y.data.shape


@pytest.mark.parametrize("impl", IMPLS)
def test_parity_no_bias(impl):
    native, ours = _pair(impl, num_layers=2, bias=False)
    check_same(native, ours, torch.randn(T, B, I))


@pytest.mark.parametrize("impl", IMPLS)
def test_parity_inter_layer_dropout(impl):
    """Same seed, same inter-layer dropout masks: nn.LSTM draws them the same way."""
    native, ours = _pair(impl, num_layers=3, dropout=0.4)
    native.train()
    ours.train()
    check_same(native, ours, torch.randn(T, B, I))
    native.eval()
    ours.eval()
    check_same(native, ours, torch.randn(T, B, I))


@pytest.mark.parametrize("kw", GRID[::3], ids=str)
def test_state_dict_both_directions(kw):
    native = nn.LSTM(I, H, **kw)
    ours = lstmkit.LSTM(I, H, **kw)
    assert list(ours.state_dict()) == list(native.state_dict())
    for k, v in native.state_dict().items():
        assert ours.state_dict()[k].shape == v.shape, k
    ours.load_state_dict(native.state_dict())
    back = nn.LSTM(I, H, **kw)
    back.load_state_dict(ours.state_dict())  # strict: same names, same shapes
    x = torch.randn(B, T, I) if kw["batch_first"] else torch.randn(T, B, I)
    torch.testing.assert_close(back(x)[0], native(x)[0], rtol=0, atol=0)


def test_default_init_matches_torch_distribution():
    ours = lstmkit.LSTM(I, 64, num_layers=2, proj_size=16)
    bound = 1 / 64**0.5
    for name, p in ours.named_parameters():
        assert p.abs().max() <= bound, name
        assert p.abs().max() > 0.8 * bound, name  # uniform over the whole range, not zeros
    # same RNG stream as torch.nn.LSTM: same seed gives the same weights
    torch.manual_seed(3)
    a = nn.LSTM(I, H, 2)
    torch.manual_seed(3)
    b = lstmkit.LSTM(I, H, 2)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, rtol=0, atol=0)


def test_float64():
    native = nn.LSTM(I, H, 2, bidirectional=True).double()
    ours = lstmkit.LSTM(I, H, 2, bidirectional=True, dtype=torch.float64)
    ours.load_state_dict(native.state_dict())
    check_same(native, ours, torch.randn(T, B, I, dtype=torch.float64), atol=1e-12, rtol=1e-12)
