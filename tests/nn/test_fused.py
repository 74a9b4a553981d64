"""The fused scan (hand-written BPTT) against autograd: gradcheck in float64 and the reference twin."""

from __future__ import annotations

import itertools

import pytest
import torch

import lstmkit
from checks import check_same
from lstmkit.nn import LSTMOptions, LSTMWeights, _cpp
from lstmkit.nn._fused import LSTMScan, lstm_scan
from tolerances import module_tolerance, scan_tolerance

EXTRAS = ["peephole", "coupled", "layer_norm", "proj", "drop", "mask"]
COMBOS = [dict(zip(EXTRAS, bits, strict=True)) for bits in itertools.product([False, True], repeat=len(EXTRAS))]


def _ids(c):
    return "+".join(k for k, v in c.items() if v) or "plain"


def _scan_inputs(peephole, coupled, layer_norm, proj, drop, mask, T=4, B=3, H=5):
    d = torch.float64
    G = (3 if coupled else 4) * H
    P = 3 if proj else H

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, dtype=d) * scale).requires_grad_()

    tensors = (
        r(T, B, G),
        r(B, P),
        r(B, H),
        r(G, P, scale=0.5),
        r(P, H, scale=0.5) if proj else None,
        r(2 if coupled else 3, H) if peephole else None,
        r(G) if layer_norm else None,
        r(H) if layer_norm else None,
        r(H) if layer_norm else None,
    )
    drop_mask = (torch.rand(B, P, dtype=d) > 0.3).to(d) / 0.7 if drop else None
    # lengths 4, 2, 0: a full, a short and an empty sequence
    step_mask = torch.arange(T)[:, None] < torch.tensor([T, 2, 0])[None, :] if mask else None
    return tensors, drop_mask, step_mask


def _lstm_scan(tensors, drop_mask, step_mask, coupled):
    """lstm_scan on _scan_inputs' tensors (in ScanArgs order; the scan reads no w_ih)."""
    xg, h0, c0, w_hh, w_hr, peep, g_hh, g_c, b_c = tensors
    w = LSTMWeights(None, w_hh, w_hr=w_hr, peep=peep, g_hh=g_hh, g_c=g_c, b_c=b_c)
    return lstm_scan(xg, (h0, c0), w, LSTMOptions(coupled=coupled), drop_mask, step_mask)


@pytest.mark.parametrize("combo", COMBOS, ids=_ids)
def test_gradcheck_fused_function(combo):
    tensors, drop_mask, step_mask = _scan_inputs(**combo)
    present = [t for t in tensors if t is not None]
    where = [i for i, t in enumerate(tensors) if t is not None]

    def f(*xs):
        full = list(tensors)
        for i, x in zip(where, xs, strict=True):
            full[i] = x
        return LSTMScan.apply(*full, drop_mask, step_mask, combo["coupled"], 1e-5)

    assert torch.autograd.gradcheck(f, present)


def _zone(kind: str, T: int, B: int, P: int, H: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zoneout's weights (z_h, z_c): 0/1 draws for every step ("train") or the rates in one row ("eval")."""
    d = torch.float64
    if kind == "train":
        return (torch.rand(T, B, P, dtype=d) < 0.4).to(d), (torch.rand(T, B, H, dtype=d) < 0.6).to(d)
    return torch.full((1, B, P), 0.3, dtype=d), torch.full((1, B, H), 0.55, dtype=d)


@pytest.mark.parametrize("zone", ["train", "eval"])
@pytest.mark.parametrize("combo", COMBOS[::3], ids=_ids)
def test_gradcheck_fused_function_with_zoneout(combo, zone):
    """The hand-written BPTT through zoneout's update, (1 - z) new + z old on h and c at every step."""
    tensors, drop_mask, step_mask = _scan_inputs(**combo)
    present = [t for t in tensors if t is not None]
    where = [i for i, t in enumerate(tensors) if t is not None]
    T, B = tensors[0].shape[:2]
    zone_h, zone_c = _zone(zone, T, B, tensors[1].shape[1], tensors[2].shape[1])

    def f(*xs):
        full = list(tensors)
        for i, x in zip(where, xs, strict=True):
            full[i] = x
        return LSTMScan.apply(*full, drop_mask, step_mask, combo["coupled"], 1e-5, zone_h, zone_c)

    assert torch.autograd.gradcheck(f, present)


@pytest.mark.parametrize("combo", COMBOS[::7], ids=_ids)
def test_unused_outputs_get_zero_gradients(combo):
    """A loss on h_n alone (or y alone) leaves autograd's other output gradients as None."""
    tensors, drop_mask, step_mask = _scan_inputs(**combo)
    for pick in (0, 1, 2):
        out = _lstm_scan(tensors, drop_mask, step_mask, combo["coupled"])
        g_fused = torch.autograd.grad(out[pick].sum(), tensors[0])[0]
        again = _lstm_scan(tensors, drop_mask, step_mask, combo["coupled"])
        full = [again[i] * 0 if i != pick else again[i] for i in range(3)]
        g_all = torch.autograd.grad(sum(o.sum() for o in full), tensors[0])[0]
        names = ("xg", "h0", "c0", "w_hh", "w_hr", "peep", "g_hh", "g_c", "b_c")
        tol = scan_tolerance(dict(zip(names, tensors, strict=True)) | {"drop": drop_mask}) * float(g_all.abs().max())
        torch.testing.assert_close(g_fused, g_all, rtol=0, atol=tol)


MODULE_COMBOS = [
    dict(peephole=p, coupled=c, layer_norm=ln, proj_size=ps, recurrent_dropout=rd)
    for p, c, ln, ps, rd in itertools.product([False, True], [False, True], [False, True], [0, 3], [0.0, 0.3])
]


KERNELS = [
    "fused",
    pytest.param("cpp", marks=pytest.mark.skipif(not _cpp.available(), reason="C++ kernel not built here")),
]


@pytest.mark.parametrize("impl", KERNELS)
@pytest.mark.parametrize("kw", MODULE_COMBOS, ids=lambda kw: _ids({k: bool(v) for k, v in kw.items()}))
def test_fused_equals_reference_module(kw, impl):
    """Every combination of extras, two bidirectional layers, with lengths, in training mode."""
    I, H, T, B = 4, 6, 5, 3
    fused = lstmkit.LSTM(I, H, 2, bidirectional=True, dtype=torch.float64, impl=impl, **kw)
    ref = lstmkit.LSTM(I, H, 2, bidirectional=True, dtype=torch.float64, impl="reference", **kw)
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(T, B, I, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 4])
    tol = module_tolerance(ref, x, gradients=True)  # outputs; gradients relative to their largest entry
    check_same(fused, ref, x, atol=tol, rtol=tol, lengths=lengths)


@pytest.mark.parametrize(
    "kw",
    [dict(peephole=True, layer_norm=True), dict(coupled=True, proj_size=2, peephole=True), dict(layer_norm=True,
     proj_size=3, bidirectional=True)],
    ids=str,
)
def test_gradcheck_whole_layer(kw):
    """The whole layer (input projection, LayerNorm on W_ih x, the fused scan, reversal) in float64."""
    m = lstmkit.LSTM(3, 4, 2, dtype=torch.float64, **kw)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    names, params = zip(*m.named_parameters(), strict=True)

    def f(x, *ps):
        out, (h, c) = torch.func.functional_call(m, dict(zip(names, ps, strict=True)), (x,),
                                                 {"lengths": torch.tensor([4, 2])})
        return out, h, c

    assert torch.autograd.gradcheck(f, (x, *params))


@pytest.mark.parametrize("layer_norm", [False, True], ids=["peephole", "peephole+layer_norm"])
@pytest.mark.parametrize("impl", KERNELS)
def test_inference_mode_matches_training_forward(impl, layer_norm):
    m = lstmkit.LSTM(4, 6, 2, peephole=True, layer_norm=layer_norm, impl=impl)
    x = torch.randn(7, 3, 4)
    y_train, (h_train, _) = m(x)
    with torch.inference_mode():
        y_inf, (h_inf, _) = m(x)
    # Bit for bit, except where the C++ kernel's inference finishes W_ih x itself (the biases added in the gate
    # pass, LayerNorm a row at a time: sums in another order): float32 rounding there, within the derived bound.
    tol = module_tolerance(m, x) if impl == "cpp" else 0.0
    torch.testing.assert_close(y_inf, y_train.detach(), rtol=tol, atol=tol)
    torch.testing.assert_close(h_inf, h_train.detach(), rtol=tol, atol=tol)


def test_recurrent_dropout_mask_is_per_sequence_and_train_only():
    m = lstmkit.LSTM(3, 5, recurrent_dropout=0.5)
    x = torch.randn(6, 4, 3)
    m.eval()
    y_eval = m(x)[0]
    ref = lstmkit.LSTM(3, 5)
    ref.load_state_dict(m.state_dict())
    torch.testing.assert_close(y_eval, ref(x)[0], rtol=0, atol=0)  # eval: no dropout at all
    m.train()
    torch.manual_seed(7)
    y_train = m(x)[0]
    assert not torch.allclose(y_train, y_eval)
    # One (B, P) mask for the whole sequence: rebuild it from the same seed and step a cell with it.
    torch.manual_seed(7)
    mask = torch.empty(4, 5).bernoulli_(0.5).div_(0.5)
    cell = lstmkit.LSTMStepCell(3, 5, recurrent_dropout=0.5)
    cell.load_state_dict({k[:-3]: v for k, v in m.state_dict().items()})
    state, ys = None, []
    for t in range(6):
        h, state = cell(x[t], state, drop_mask=mask)
        ys.append(h)
    tol = module_tolerance(m, x)  # the cell's step and the fused scan sum in different orders
    torch.testing.assert_close(torch.stack(ys), y_train, rtol=0, atol=tol)


def test_forget_bias_initialisation():
    m = lstmkit.LSTM(3, 5, 2, bidirectional=True, forget_bias=1.0)
    for name, p in m.named_parameters():
        if name.startswith("bias_ih"):
            assert torch.all(p[5:10] == 1.0), name
        if name.startswith("bias_hh"):
            assert torch.all(p[5:10] == 0.0), name
    ln = lstmkit.LSTM(3, 5, layer_norm=True)
    assert torch.all(ln.weight_ln_ih_l0 == 1) and torch.all(ln.weight_ln_c_l0 == 1)
    assert torch.all(ln.bias_ln_c_l0 == 0)
