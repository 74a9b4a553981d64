"""``weight_dropout``: DropConnect on W_hh (one mask a call, shared by every step and sequence) against an
independent twin: torch.nn's layer, or lstmkit's reference loop for the variants torch.nn lacks, called through
``torch.func.functional_call`` with every W_hh masked (``_dropconnect``) in the order lstmkit draws the masks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lstmkit
from checks import one_thread
from lstmkit.nn import _cpp
from tolerances import module_tolerance

_one_thread = pytest.fixture(autouse=True)(one_thread)

IMPLS = ["reference", "fused",
         pytest.param("cpp", marks=pytest.mark.skipif(not _cpp.available(), reason="C++ kernel not built here"))]
VARIANTS = {  # torch.nn's LSTM is the twin where it has the variant, lstmkit's reference loop elsewhere
    "plain": dict(),
    "proj+bidirectional": dict(proj_size=3, bidirectional=True),
    "peephole+layer_norm": dict(peephole=True, layer_norm=True),
    "coupled": dict(coupled=True),
}
P = 0.4  # the weight dropout of every test


def _dropconnect(w: torch.Tensor, p: float) -> torch.Tensor:
    """W with each entry kept with probability 1 - p, scaled by 1/(1 - p), else zeroed: the draw lstmkit makes
    (one uniform number per entry, kept below 1 - p)."""
    kept = torch.rand(w.shape, dtype=w.dtype) < 1 - p
    return torch.where(kept, w / (1 - p), torch.zeros((), dtype=w.dtype))


def _twin(layer: nn.Module, p: float, x: torch.Tensor) -> tuple:
    """``layer`` (no weight dropout of its own) with every W_hh replaced by ``_dropconnect(W_hh, p)``, layer by layer
    and forward before reverse, the order lstmkit draws its masks in."""
    params = dict(layer.named_parameters())
    for k in range(layer.num_layers):
        for sfx in ("", "_reverse")[: 2 if layer.bidirectional else 1]:
            params[f"weight_hh_l{k}{sfx}"] = _dropconnect(params[f"weight_hh_l{k}{sfx}"], p)
    return torch.func.functional_call(layer, params, (x,))


def _compare(ours: nn.Module, twin_layer: nn.Module, x: torch.Tensor, seed: int = 3) -> None:
    """Outputs, final states, and the gradients of x and every parameter of a loss reading all three, within the
    derived rounding bound of ``ours`` in its dtype (its W_hh scaled by 1/(1 - p) included); the twin's parameters
    are ``ours``'s."""
    results = []
    for run in (lambda v: ours(v), lambda v: _twin(twin_layer, P, v)):
        v = x.clone().requires_grad_()
        torch.manual_seed(seed)
        y, (h, c) = run(v)
        (y.square().sum() + h.sum() + c.sum() / 2).backward()
        results.append(((y, h, c), v.grad))
    tol, gtol = module_tolerance(ours, x), module_tolerance(ours, x, gradients=True)
    for u, w in zip(results[0][0], results[1][0], strict=True):
        torch.testing.assert_close(u, w, atol=tol, rtol=0)
    grads = [(results[0][1], results[1][1])]
    grads += [(p.grad, q.grad) for p, q in zip(ours.parameters(), twin_layer.parameters(), strict=True)]
    for u, w in grads:
        torch.testing.assert_close(u, w, atol=gtol * max(1.0, float(w.abs().max())), rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_weight_dropout_equals_the_twin_with_masked_w_hh(impl, variant, dtype):
    kw = dict(VARIANTS[variant], dtype=dtype)
    ours = lstmkit.LSTM(5, 6, 2, weight_dropout=P, impl=impl, **kw)
    native = variant in ("plain", "proj+bidirectional")
    twin = (nn.LSTM(5, 6, 2, **kw) if native else lstmkit.LSTM(5, 6, 2, impl="reference", **kw))
    twin.load_state_dict(ours.state_dict())
    ours.train()
    twin.train()
    _compare(ours, twin, torch.randn(7, 3, 5, dtype=dtype))


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_gru_and_rnn_weight_dropout_equal_torch_nn_with_masked_w_hh(cell):
    ours_cls, twin_cls = {"gru": (lstmkit.GRU, nn.GRU), "rnn": (lstmkit.RNN, nn.RNN)}[cell]
    ours = ours_cls(4, 5, 2, bidirectional=True, weight_dropout=P)
    twin = twin_cls(4, 5, 2, bidirectional=True)
    twin.load_state_dict(ours.state_dict())
    x = torch.randn(6, 2, 4)
    torch.manual_seed(1)
    y, h = ours(x)
    torch.manual_seed(1)
    y2, h2 = _twin(twin, P, x)
    torch.testing.assert_close(y, y2, atol=1e-5, rtol=1e-5)  # a few steps of 5 units: float32 rounding only
    torch.testing.assert_close(h, h2, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["fused", pytest.param("cpp", marks=IMPLS[2].marks)])
def test_with_recurrent_dropout_the_kernels_equal_the_reference_loop(impl):
    """Both dropouts at once: each direction draws its recurrent mask, then W_hh's; every impl draws alike."""
    kw = dict(recurrent_dropout=0.3, weight_dropout=P, bidirectional=True, peephole=True, dtype=torch.float64)
    ours = lstmkit.LSTM(4, 5, 2, impl=impl, **kw)
    ref = lstmkit.LSTM(4, 5, 2, impl="reference", **kw)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    outs = []
    for m in (ours, ref):
        torch.manual_seed(5)
        y, (h, c) = m(x)
        (y.sum() + h.sum() + c.sum()).backward()
        outs.append([y.detach(), h.detach(), c.detach()] + [p.grad for p in m.parameters()])
    tol = module_tolerance(ref, x, gradients=True)
    for u, w in zip(*outs, strict=True):
        torch.testing.assert_close(u, w, atol=tol * max(1.0, float(w.abs().max())), rtol=0)


@pytest.mark.parametrize("impl", ["fused", pytest.param("cpp", marks=IMPLS[2].marks)])
def test_gradcheck_through_the_mask(impl):
    """float64 gradcheck of the layer's output in x and W_hh with one fixed mask (the seed reset at every call)."""
    m = lstmkit.LSTM(3, 4, 1, weight_dropout=0.5, impl=impl, layer_norm=True, dtype=torch.float64)
    names = [n for n, _ in m.named_parameters()]
    base = dict(m.named_parameters())
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    w_hh = base["weight_hh_l0"].detach().clone().requires_grad_()

    def f(x, w_hh):
        torch.manual_seed(11)
        params = {n: (w_hh if n == "weight_hh_l0" else base[n]) for n in names}
        y, (h, c) = torch.func.functional_call(m, params, (x,))
        return y, h, c

    assert torch.autograd.gradcheck(f, (x, w_hh))


def test_one_fresh_mask_a_call_in_training_and_none_in_eval():
    m = lstmkit.LSTM(3, 8, weight_dropout=0.5)
    x = torch.randn(5, 2, 3)
    plain = lstmkit.LSTM(3, 8)
    plain.load_state_dict(m.state_dict())
    m.eval()
    torch.testing.assert_close(m(x)[0], plain(x)[0], rtol=0, atol=0)  # eval: W_hh as it is, bit for bit
    m.train()
    torch.manual_seed(0)
    first = m(x)[0]
    second = m(x)[0]
    assert not torch.allclose(first, second)  # a new mask each call
    assert not torch.allclose(first, plain(x)[0])
    # A gradient only where the mask kept W_hh's entry: about half of them with p = 0.5.
    m.zero_grad()
    torch.manual_seed(0)
    m(x)[0].sum().backward()
    kept = float((m.weight_hh_l0.grad != 0).float().mean())
    assert 0.3 < kept < 0.7
    assert m.weight_ih_l0.grad.ne(0).float().mean() > 0.9  # W_ih is not masked


def test_arguments_repr_and_state_dict():
    for bad in (1.0, -0.1, True, "0.5"):
        with pytest.raises(ValueError, match=r"^weight_dropout must be a number in \[0, 1\), got "):
            lstmkit.LSTM(3, 4, weight_dropout=bad)
        with pytest.raises(ValueError, match=r"^weight_dropout must be a number in \[0, 1\), got "):
            lstmkit.GRU(3, 4, weight_dropout=bad)
    m = lstmkit.LSTM(3, 4, weight_dropout=0.25)
    assert repr(m) == "LSTM(3, 4, weight_dropout=0.25)"
    assert m.state_dict().keys() == nn.LSTM(3, 4).state_dict().keys()  # no new parameters or buffers
    # A layer pickled before the key existed has no such attribute: it runs as without DropConnect.
    old = lstmkit.LSTM(3, 4)
    del old.__dict__["weight_dropout"]
    plain = lstmkit.LSTM(3, 4)
    plain.load_state_dict(old.state_dict())
    x = torch.randn(2, 1, 3)
    torch.testing.assert_close(old.train()(x)[0], plain.train()(x)[0], rtol=0, atol=0)
    assert repr(old) == "LSTM(3, 4)"
    # Refused by torch.onnx.export in training mode (torch's LSTM operator has no DropConnect):
    # tests/export/test_torch_onnx_export.py's REFUSED table; in eval mode the layer is torch.nn.LSTM's.


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_holding_masks_makes_one_step_calls_a_whole_sequence_call(kind):
    """Inside ``holding_masks()`` a layer called one step at a time (a decoder) reuses the first call's
    recurrent-dropout and DropConnect masks: the same outputs and final state as one call over the sequence from the
    same seed, and different masks again after the block."""
    torch.manual_seed(0)
    layer = getattr(lstmkit, kind)(3, 5, 2, recurrent_dropout=0.3, weight_dropout=0.4).train()
    x = torch.randn(4, 2, 3)
    torch.manual_seed(1)
    want, want_state = layer(x)
    torch.manual_seed(1)
    with layer.holding_masks():
        state, ys = None, []
        for t in range(4):
            y, state = layer(x[t : t + 1], state)
            ys.append(y)
    # The LSTM's kernels compute W_ih x over T rows or one: float32 rounding apart, within the derived bound. The
    # GRU's reference loop runs the same operations either way: exactly equal.
    tol = module_tolerance(layer, x) if kind == "LSTM" else 0.0
    torch.testing.assert_close(torch.cat(ys), want, rtol=0, atol=tol)
    for got, ref in zip(state if kind == "LSTM" else (state,), want_state if kind == "LSTM" else (want_state,),
                        strict=True):  # fmt: skip
        torch.testing.assert_close(got, ref, rtol=0, atol=tol)
    torch.manual_seed(1)
    stepped = [layer(x[t : t + 1])[0] for t in range(2)]  # outside: a new draw every call
    assert layer._held_masks is None
    assert not torch.allclose(stepped[1], want[1:2])
