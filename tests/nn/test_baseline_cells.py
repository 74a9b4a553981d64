"""GRUCell and RNNCell: drop-in torch.nn.GRUCell / RNNCell (same numbers, names, shapes, messages); the reference
step their options take equals torch's operator within a derived float64 bound; with recurrent dropout, DropConnect
and zoneout a loop of cells equals the GRU / RNN layer from one seed."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

import lstmkit
from lstmkit.nn import layer_weights
from tolerances import baseline_step_tolerance

I, H, T, B = 4, 6, 5, 3
KINDS = [("GRU", {}), ("RNN", {}), ("RNN", {"nonlinearity": "relu"})]
IDS = ["gru", "rnn-tanh", "rnn-relu"]


def pair(kind, kw, bias=True, dtype=torch.float32, **options):
    native = getattr(nn, kind + "Cell")(I, H, bias=bias, dtype=dtype, **kw)
    cell = getattr(lstmkit, kind + "Cell")(I, H, bias=bias, dtype=dtype, **kw, **options)
    cell.load_state_dict(native.state_dict())
    return native, cell


@pytest.mark.parametrize(("kind", "kw"), KINDS, ids=IDS)
@pytest.mark.parametrize("bias", [True, False])
def test_same_numbers_names_and_shapes_as_torch(kind, kw, bias):
    native, cell = pair(kind, kw, bias)
    assert list(cell.state_dict()) == list(native.state_dict())
    assert [(n, p.shape) for n, p in cell.named_parameters()] == [(n, p.shape) for n, p in native.named_parameters()]
    assert repr(cell) == repr(native)
    assert (cell.bias_ih is None) == (not bias)
    x, h = torch.randn(B, I), torch.randn(B, H)
    torch.testing.assert_close(cell(x, h), native(x, h), rtol=0, atol=0)  # torch's own operator
    torch.testing.assert_close(cell(x), native(x), rtol=0, atol=0)  # hx None: zeros
    torch.testing.assert_close(cell(x[0], h[0]), native(x[0], h[0]), rtol=0, atol=0)  # unbatched
    assert cell(x[0]).shape == (H,)
    cell(x, h).sum().backward()
    native(x, h).sum().backward()
    for (name, p), q in zip(cell.named_parameters(), native.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0, msg=name)
    # torch.nn's own initialisation (uniform in +-1/sqrt(H), parameter by parameter): the same numbers from one seed
    torch.manual_seed(11)
    fresh = getattr(lstmkit, kind + "Cell")(I, H, bias=bias, **kw)
    torch.manual_seed(11)
    torch.testing.assert_close(fresh.state_dict(), getattr(nn, kind + "Cell")(I, H, bias=bias, **kw).state_dict(),
                               rtol=0, atol=0)  # fmt: skip


@pytest.mark.parametrize(("kind", "kw"), KINDS, ids=IDS)
def test_the_reference_step_equals_torchs_operator(kind, kw):
    """With a recurrent-dropout mask of ones the step runs the reference cell (gru_step / rnn_step): the same values
    as torch's operator within the bound, gradients included; gradcheck in float64."""
    native, cell = pair(kind, kw, dtype=torch.float64, recurrent_dropout=0.5)
    x = torch.randn(B, I, dtype=torch.float64, requires_grad=True)
    h = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    ones = torch.ones(B, H, dtype=torch.float64)
    got, want = cell(x, h, drop_mask=ones), native(x, h)
    torch.testing.assert_close(got, want, rtol=0, atol=baseline_step_tolerance(cell, x, h))
    assert not torch.equal(cell(x, h, drop_mask=cell.dropout_mask(B)), want)  # a real mask changes the step
    mask = torch.rand(B, H, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x, h: cell(x, h, drop_mask=mask), (x, h))


@pytest.mark.parametrize(("kind", "kw"), KINDS, ids=IDS)
@pytest.mark.parametrize("options", [dict(recurrent_dropout=0.3, weight_dropout=0.4, zoneout=0.2), dict(zoneout=0.3),
                                     dict(weight_dropout=0.5)], ids=str)  # fmt: skip
def test_a_loop_of_cells_equals_the_layer_from_one_seed(kind, kw, options):
    """The layer draws its masks per call in this order: recurrent dropout's (B, H), then W_hh's (G, H), then
    zoneout's units for every step; a loop of cells inside holding_masks() (its first step draws the two masks), with
    zoneout step by step, reads the same numbers: outputs and every gradient equal (float64), and in eval mode too."""
    layer = getattr(lstmkit, kind)(I, H, **kw, **options).double()
    cell = getattr(lstmkit, kind + "Cell")(I, H, **kw, **options).double()
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x = torch.randn(T, B, I, dtype=torch.float64)
    for training in (True, False):
        layer.train(training)
        cell.train(training)
        layer.zero_grad()
        cell.zero_grad()
        torch.manual_seed(7)
        y, h_n = layer(x)
        torch.manual_seed(7)
        h, ys = None, []
        with cell.holding_masks():
            for t in range(T):
                h = cell(x[t], h)
                ys.append(h)
        torch.testing.assert_close(torch.stack(ys), y)
        torch.testing.assert_close(h, h_n[0])
        y.sum().backward()
        torch.stack(ys).sum().backward()
        for name, p in cell.named_parameters():
            torch.testing.assert_close(p.grad, layer.get_parameter(name + "_l0").grad, msg=name)
    # the options act: without them the eval-mode numbers differ (zoneout mixes) or training's do (the masks)
    plain = getattr(lstmkit, kind + "Cell")(I, H, **kw).double()
    plain.load_state_dict(cell.state_dict())
    cell.train()
    torch.manual_seed(3)
    h0 = torch.randn(B, H, dtype=torch.float64)
    with cell.holding_masks():
        assert not torch.allclose(cell(x[0], h0), plain(x[0], h0))


def test_zoneout_keeps_units_in_training_and_mixes_by_the_rate_in_eval():
    cell = lstmkit.GRUCell(I, H, zoneout=0.4).double()
    plain = lstmkit.GRUCell(I, H).double()
    plain.load_state_dict(cell.state_dict())
    x, h0 = torch.randn(64, I, dtype=torch.float64), torch.randn(64, H, dtype=torch.float64)
    new = plain(x, h0)
    got = cell(x, h0)
    kept = got == h0
    assert torch.equal(got, torch.where(kept, h0, new))  # every unit is either its previous value or the new one
    assert 0.3 < float(kept.double().mean()) < 0.5  # 384 units at p = 0.4
    cell.eval()
    torch.testing.assert_close(cell(x, h0), 0.4 * h0 + 0.6 * new)


def test_refusals_name_the_argument():
    gru = lstmkit.GRUCell(I, H)
    bad = torch.randn(2, 3, I)
    with pytest.raises(ValueError) as ours:
        gru(bad)
    with pytest.raises(ValueError) as theirs:
        nn.GRUCell(I, H)(bad)
    assert str(ours.value) == str(theirs.value) == "GRUCell: Expected input to be 1D or 2D, got 3D instead"
    with pytest.raises(ValueError, match=r"^RNNCell: Expected hidden to be 1D or 2D, got 3D instead$"):
        lstmkit.RNNCell(I, H)(torch.randn(B, I), torch.randn(1, B, H))
    with pytest.raises(ValueError, match=r"^hx must have shape \(3, 6\), got \(3, 5\)$"):
        gru(torch.randn(B, I), torch.randn(B, 5))
    with pytest.raises(ValueError, match=r"^hx must have shape \(6,\), got \(5,\)$"):
        gru(torch.randn(I), torch.randn(5))
    with pytest.raises(ValueError, match=r"^input must have shape \(B, 4\) or \(4,\), got \(3, 5\)$"):
        gru(torch.randn(B, 5))
    with pytest.raises(TypeError, match=r"^input dtype must be the parameters' torch.float32, got torch.float64$"):
        gru(torch.randn(B, I, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"^hx dtype must be the parameters' torch.float32, got torch.float64$"):
        gru(torch.randn(B, I), torch.randn(B, H, dtype=torch.float64))  # torch: "mat1 and mat2 must have the same ..."
    with pytest.raises(TypeError, match=r"^hx dtype must be the parameters' torch.float32, got torch.int64$"):
        lstmkit.RNNCell(I, H)(torch.randn(I), torch.zeros(H, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^nonlinearity must be 'tanh' or 'relu', got 'gelu'$"):
        lstmkit.RNNCell(I, H, nonlinearity="gelu")
    with pytest.raises(ValueError, match=r"^zoneout must be"):
        lstmkit.GRUCell(I, H, zoneout=1.0)
    cell = lstmkit.GRUCell(I, H, recurrent_dropout=0.2, weight_dropout=0.3)
    assert repr(cell) == "GRUCell(4, 6, recurrent_dropout=0.2, weight_dropout=0.3)"
    with pytest.raises(ValueError, match=r"^recurrent_dropout > 0 in training needs drop_mask=cell\.dropout_mask\(B\), "
                                         r"drawn once per sequence, or the sequence's steps inside `with "
                                         r"cell\.holding_masks\(\):`$"):  # fmt: skip
        lstmkit.GRUCell(I, H, recurrent_dropout=0.2)(torch.randn(B, I))
    with cell.holding_masks(), pytest.raises(ValueError, match=r"^drop_mask must have shape \(3, 6\), got \(2, 6\)$"):
        cell(torch.randn(B, I), drop_mask=torch.ones(2, H))
    with pytest.raises(ValueError, match=r"^weight_dropout > 0 in training needs the sequence's steps inside "
                                         r"`with cell\.holding_masks\(\):`, which draws W_hh's mask once for "
                                         r"them$"):  # fmt: skip
        cell(torch.randn(B, I), drop_mask=cell.dropout_mask(B))
    with cell.holding_masks():  # the given drop_mask is used; W_hh's mask drawn and held
        cell(torch.randn(B, I), drop_mask=cell.dropout_mask(B))
        assert set(cell._held_masks) == {"w_hh"}
    cell.eval()
    assert cell(torch.randn(B, I)).shape == (B, H)  # eval: no masks needed


@pytest.mark.parametrize(("kind", "kw"), KINDS, ids=IDS)
@pytest.mark.parametrize("bias", [True, False])
def test_param_count_and_layer_weights_read_the_cells(kind, kw, bias):
    native, cell = pair(kind, kw, bias)
    w = layer_weights(cell)  # the Parameters themselves, as for torch.nn's cells
    assert all(a is b for a, b in zip(w.tensors(), (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
                                      strict=True))  # fmt: skip
    assert type(w) is type(layer_weights(native)) and list(w.named()) == list(layer_weights(native).named())
    want = sum(p.numel() for p in native.parameters())
    assert lstmkit.param_count(cell) == lstmkit.param_count(native) == want
    assert lstmkit.param_count(I, H, mode=kind.lower(), bias=bias) == want


def test_pickles_and_old_pickles_load():
    cell = lstmkit.RNNCell(I, H, nonlinearity="relu", zoneout=0.1)
    again = pickle.loads(pickle.dumps(cell))
    assert repr(again) == repr(cell) and again.zoneout == 0.1
    for name in ("zoneout", "weight_dropout", "recurrent_dropout"):  # a cell pickled before an option existed
        del again.__dict__[name]
    again.eval()
    assert again.zoneout == 0.0 and repr(again) == "RNNCell(4, 6, nonlinearity=relu)"
    x = torch.randn(B, I)
    assert again(x).shape == (B, H)


@pytest.mark.parametrize(("kind", "kw"), KINDS, ids=IDS)
def test_torch_compile_and_export_take_the_cells(kind, kw):
    """fullgraph torch.compile (no graph break in the checks) and torch.export, eval mode with zoneout's mix."""
    cell = getattr(lstmkit, kind + "Cell")(I, H, **kw, zoneout=0.25).eval()
    x, h = torch.randn(B, I), torch.randn(B, H)
    want, atol = cell(x, h), baseline_step_tolerance(cell, x, h)  # inductor fuses the step: other roundings
    torch.testing.assert_close(torch.compile(cell, fullgraph=True)(x, h), want, rtol=0, atol=atol)
    torch.testing.assert_close(torch.export.export(cell, (x, h)).module()(x, h), want, rtol=0, atol=atol)


@pytest.mark.parametrize(("kind", "kw"), KINDS, ids=IDS)
def test_torch_func_vmap_and_grad_run_the_reference_step(kind, kw):
    """Under torch.func the step runs the reference cell (torch's cell operators have no batching rule: torch.nn's
    cell warns and falls back to a loop there), equal to a loop over the vmapped axis within the step bound."""
    from torch.func import functional_call, grad, vmap

    cell = getattr(lstmkit, kind + "Cell")(I, H, **kw)
    x, h = torch.randn(5, B, I), torch.randn(5, B, H)
    got = vmap(cell)(x, h)
    for n in range(5):
        torch.testing.assert_close(got[n], cell(x[n], h[n]), rtol=0, atol=baseline_step_tolerance(cell, x[n], h[n]))
    cell, x, h = cell.double(), x.double(), h.double()  # the gradients in float64: two orders of sums, same values
    params = {k: v.detach() for k, v in cell.named_parameters()}
    grads = grad(lambda p: functional_call(cell, p, (x[0], h[0])).sum())(params)
    cell(x[0], h[0]).sum().backward()
    for name, p in cell.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, msg=name)
