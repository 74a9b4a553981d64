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


def test_a_state_of_another_dtype_is_refused_by_name():
    cell = lstmkit.LSTMCell(I, H)
    with pytest.raises(TypeError, match=r"^state c dtype must be the parameters' torch.float32, got torch.float64$"):
        cell(torch.randn(B, I), (torch.randn(B, H), torch.randn(B, H, dtype=torch.float64)))
    with pytest.raises(TypeError, match=r"^state h dtype must be the parameters' torch.float32, got torch.float16$"):
        cell(torch.randn(I), (torch.randn(H, dtype=torch.float16), torch.randn(H)))


def test_cell_recurrent_dropout_needs_a_mask_in_training():
    cell = lstmkit.LSTMCell(I, H, recurrent_dropout=0.2)
    with pytest.raises(ValueError, match=r"drop_mask=cell\.dropout_mask"):
        cell(torch.randn(B, I))
    cell.eval()
    cell(torch.randn(B, I))  # no mask needed in eval


@pytest.mark.parametrize("kw", VARIANTS, ids=str)
def test_cell_weight_dropout_equals_the_layer_with_the_same_masks(kw):
    """DropConnect on the cell: inside holding_masks() the first step draws the recurrent-dropout mask, then W_hh's (the
    layer's order) and every step reads one masked W_hh; from one seed a loop of cells equals LSTM(weight_dropout=p)
    over the sequence, outputs and every gradient (float64)."""
    drops = dict(recurrent_dropout=0.3, weight_dropout=0.4)
    layer = lstmkit.LSTM(I, H, **kw, **drops).double()
    cell = lstmkit.LSTMCell(I, H, **kw, **drops).double()
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x = torch.randn(T, B, I, dtype=torch.float64)
    torch.manual_seed(5)
    y, (h_n, c_n) = layer(x)
    torch.manual_seed(5)
    hx, ys = None, []
    with cell.holding_masks():
        for t in range(T):
            hx = cell(x[t], hx)
            ys.append(hx[0])
        held = dict(cell._held_masks)
    assert cell._held_masks is None  # the block's masks go with it
    assert set(held) == {"drop", "w_hh"} and held["drop"].shape == (B, cell.output_size)
    torch.testing.assert_close(torch.stack(ys), y)
    torch.testing.assert_close(hx, (h_n[0], c_n[0]))
    torch.autograd.backward([y.sum(), c_n.sum()])
    torch.autograd.backward([torch.stack(ys).sum(), hx[1].sum()])
    for name, p in cell.named_parameters():
        torch.testing.assert_close(p.grad, layer.get_parameter(name + "_l0").grad, msg=name)
    # the W_hh mask acts: held as the masked copy (zeros where dropped), and another block draws another
    kept = held["w_hh"].detach() != 0
    assert 0.4 < float(kept.double().mean()) < 0.8
    torch.testing.assert_close(held["w_hh"].detach()[kept], cell.weight_hh.detach()[kept] / 0.6)
    with cell.holding_masks():
        cell(x[0])
        assert not torch.equal(cell._held_masks["w_hh"], held["w_hh"])


def test_cell_weight_dropout_draws_one_mask_a_block_and_needs_a_block_in_training(monkeypatch):
    import lstmkit.nn._base as base

    draws = []
    real = base.weight_drop_mask
    monkeypatch.setattr(base, "weight_drop_mask", lambda w, p: draws.append(p) or real(w, p))
    cell = lstmkit.LSTMCell(I, H, weight_dropout=0.5)
    assert repr(cell) == "LSTMCell(4, 6, weight_dropout=0.5)"
    with cell.holding_masks():
        h = None
        for _ in range(T):
            h = cell(torch.randn(B, I), h)
    assert draws == [0.5]  # one masked copy for the T steps (not one product a step)
    with pytest.raises(ValueError, match=r"^weight_dropout > 0 in training needs the sequence's steps inside "
                                         r"`with cell\.holding_masks\(\):`, which draws W_hh's mask once for "
                                         r"them$"):  # fmt: skip
        cell(torch.randn(B, I))
    with pytest.raises(ValueError, match=r"weight_dropout must be"):
        lstmkit.LSTMCell(I, H, weight_dropout=1.0)
    with cell.holding_masks():
        h, c = cell(torch.randn(I))  # unbatched: the same (G, P) mask
    assert h.shape == c.shape == (H,)
    dropping = lstmkit.LSTMCell(I, H, recurrent_dropout=0.2)
    with pytest.raises(ValueError, match=r"^recurrent_dropout > 0 in training needs drop_mask=cell\.dropout_mask\(B\), "
                                         r"drawn once per sequence, or the sequence's steps inside `with "
                                         r"cell\.holding_masks\(\):`$"):  # fmt: skip
        dropping(torch.randn(B, I))
    with dropping.holding_masks():
        dropping(torch.randn(B, I))
        with pytest.raises(ValueError, match=r"^inside holding_masks\(\) every step must have the first step's batch "
                                             r"size 3 \(its recurrent-dropout mask is held\), got 2$"):  # fmt: skip
            dropping(torch.randn(2, I))
    cell.eval()
    x = torch.randn(B, I)
    reference = lstmkit.LSTMCell(I, H)
    reference.load_state_dict(cell.state_dict())
    torch.testing.assert_close(cell(x), reference(x), rtol=0, atol=0)  # eval: no block needed, W_hh as it is
    step = lstmkit.LSTMStepCell(I, H, weight_dropout=0.5)
    step.load_state_dict(cell.state_dict())
    cell.train()
    torch.manual_seed(1)
    with step.holding_masks():
        want = step(x)[1]
    torch.manual_seed(1)
    with cell.holding_masks():
        got = cell(x)
    torch.testing.assert_close(tuple(want), got, rtol=0, atol=0)


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


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_plain_cell_takes_torchs_operator_and_equals_the_reference_step(monkeypatch, bias, dtype):
    """A cell without variants (and no recurrent-dropout mask) runs torch's own cell operator, as
    torch.nn.LSTMCell does; the reference step (lstm_step) is its twin: equal within the float rounding bound of
    one step, with gradients checked in float64. A variant cell still runs the reference step."""
    from lstmkit.nn import lstm as lstm_module
    from lstmkit.nn.weights import layer_weights
    from tolerances import module_tolerance

    torch.manual_seed(0)
    cell = lstmkit.LSTMCell(I, H, bias=bias, dtype=dtype)
    x, h, c = torch.randn(B, I, dtype=dtype), torch.rand(B, H, dtype=dtype) * 2 - 1, torch.zeros(B, H, dtype=dtype)
    _, want = lstm_module.lstm_step(x, (h, c), layer_weights(cell), cell._options)
    twin = lstmkit.LSTM(I, H, bias=bias, dtype=dtype)
    twin.load_state_dict({f"{key}_l0": value for key, value in cell.state_dict().items()})
    atol = module_tolerance(twin, x[None])  # the bound of this step, zero cell state and |h| <= 1
    reference = lstm_module.lstm_step
    monkeypatch.setattr(lstm_module, "lstm_step", lambda *a, **k: pytest.fail("the plain cell ran lstm_step"))
    got = cell(x, (h, c))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=atol, rtol=0)
    # The quickly checked call and the fully checked ones agree: exactly for the same batch (state as a list, an
    # LSTMState), within the bound for one unbatched row (a product of another shape rounds otherwise).
    for other in (cell(x, [h, c]), cell(x, lstmkit.nn.LSTMState(h, c))):
        torch.testing.assert_close(tuple(other), tuple(got), rtol=0, atol=0)
    row = cell(x[1], (h[1], c[1]))
    torch.testing.assert_close(row, (got[0][1], got[1][1]), rtol=0, atol=atol)
    if dtype == torch.float64:
        params = {name: p.detach().requires_grad_() for name, p in cell.named_parameters()}

        def step(x, h, c, *weights):
            return torch.func.functional_call(cell, dict(zip(params, weights, strict=True)), (x, (h, c)))

        inputs = (x.requires_grad_(), h.requires_grad_(), (torch.rand(B, H, dtype=dtype) - 0.5).requires_grad_())
        assert torch.autograd.gradcheck(step, (*inputs, *params.values()))
    monkeypatch.setattr(lstm_module, "lstm_step", reference)
    peephole = lstmkit.LSTMCell(I, H, bias=bias, peephole=True, dtype=dtype)
    calls = []
    monkeypatch.setattr(lstm_module, "lstm_step", lambda *a, **k: calls.append(1) or reference(*a, **k))
    peephole(x, (h, c))
    assert calls == [1]
