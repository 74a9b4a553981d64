"""Zoneout on the cells (Krueger et al. 2017) against an independent twin: torch.nn.LSTMCell (or lstmkit's cell
without zoneout, for the variants torch.nn lacks) followed by the zoneout update written out here."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lstmkit
from checks import check_same
from lstmkit.nn import _cpp
from tolerances import module_tolerance

I, H, B, T = 3, 5, 4, 6


def _twin_step(cell: nn.Module, x: torch.Tensor, state: tuple, rates: tuple[float, float], training: bool):
    """One step of ``cell`` (no zoneout) and then zoneout: in training a unit keeps its previous value where a uniform
    draw falls below the rate (h's draws first, then c's); in eval mode prev * p + new * (1 - p)."""
    h_new, c_new = cell(x, state)
    out = []
    for new, prev, p in ((h_new, state[0], rates[0]), (c_new, state[1], rates[1])):
        if p == 0:
            out.append(new)
        elif training:
            keep_prev = torch.rand(new.shape, dtype=new.dtype) < p
            out.append(keep_prev * prev + ~keep_prev * new)
        else:
            out.append(prev * p + new * (1 - p))
    return tuple(out)


def _unroll(step, xs, state):
    ys = []
    for x in xs:
        state = step(x, state)
        ys.append(state[0])
    return torch.stack(ys), state


CASES = {  # (lstmkit options, zoneout, twin is torch.nn.LSTMCell)
    "plain, one rate": (dict(), 0.3, True),
    "plain, h and c": (dict(), (0.05, 0.5), True),
    "c only": (dict(), (0.0, 0.4), True),
    "peephole+layer_norm+proj": (dict(peephole=True, layer_norm=True, proj_size=3), (0.2, 0.6), False),
}


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", CASES)
def test_zoneout_equals_the_twin_outputs_and_gradients(case, training):
    options, rates, native = CASES[case]
    ours = lstmkit.LSTMCell(I, H, zoneout=rates, dtype=torch.float64, **options)
    twin = (nn.LSTMCell(I, H, dtype=torch.float64) if native
            else lstmkit.LSTMCell(I, H, dtype=torch.float64, **options))  # fmt: skip
    twin.load_state_dict(ours.state_dict())
    ours.train(training)
    twin.train(training)
    P = options.get("proj_size") or H
    xs = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, P, dtype=torch.float64)
    c0 = torch.randn(B, H, dtype=torch.float64)
    pair = (rates, rates) if isinstance(rates, float) else rates
    results = []
    runs = ((ours, lambda x, s: ours(x, s)), (twin, lambda x, s: _twin_step(twin, x, s, pair, training)))
    for module, step in runs:
        torch.manual_seed(4)
        ys, (h, c) = _unroll(step, xs, (h0, c0))
        loss = (ys * torch.linspace(-1, 1, ys.numel(), dtype=ys.dtype).view_as(ys)).sum() + c.square().sum()
        results.append(([ys, h, c], torch.autograd.grad(loss, [xs, *module.parameters()])))
    # float64 throughout, the same operations in the same order but for torch.where against the written mix:
    # a few ulps of the values involved.
    for u, w in zip(results[0][0] + list(results[0][1]), results[1][0] + list(results[1][1]), strict=True):
        torch.testing.assert_close(u, w, rtol=1e-12, atol=1e-12)


def test_training_keeps_about_p_of_the_units_and_draws_anew_every_step():
    cell = lstmkit.LSTMCell(I, 64, zoneout=(0.25, 0.6))
    x = torch.randn(512, I)
    h0, c0 = torch.randn(512, 64), torch.randn(512, 64)
    torch.manual_seed(0)
    h1, c1 = cell(x, (h0, c0))
    h2, _ = cell(x, (h0, c0))
    n = h0.numel()
    for new, prev, p in ((h1, h0, 0.25), (c1, c0, 0.6)):
        kept = float((new == prev).float().mean())
        assert abs(kept - p) < 5 * (p * (1 - p) / n) ** 0.5, (kept, p)
    assert not torch.equal(h1 == h0, h2 == h0)  # a new mask every call


def test_step_cell_unbatched_and_arguments():
    step = lstmkit.LSTMStepCell(I, H, zoneout=0.5).eval()
    cell = lstmkit.LSTMCell(I, H, zoneout=0.5).eval()
    cell.load_state_dict(step.state_dict())
    x = torch.randn(I)
    h, state = step(x)
    h2, c2 = cell(x)
    torch.testing.assert_close(h, h2, rtol=0, atol=0)
    torch.testing.assert_close(state.c, c2, rtol=0, atol=0)
    plain = nn.LSTMCell(I, H)
    plain.load_state_dict(cell.state_dict())
    # from the zero state, eval mode moves half way: exactly half of torch.nn's first step
    torch.testing.assert_close(h2, plain(x)[0] * 0.5, rtol=1e-6, atol=1e-7)
    assert repr(cell) == "LSTMCell(3, 5, zoneout=(0.5, 0.5))"
    assert cell.state_dict().keys() == plain.state_dict().keys()
    for bad in (1.0, -0.1, True, (0.1,), (0.1, 1.0), "0.1"):
        with pytest.raises(ValueError, match=r"^zoneout must be a number in \[0, 1\) or a pair \(h, c\) of them, got "):
            lstmkit.LSTMCell(I, H, zoneout=bad)
    old = lstmkit.LSTMCell(I, H)  # pickled before the key existed: no attribute, no zoneout
    old.load_state_dict(plain.state_dict())
    del old.__dict__["zoneout"]
    torch.testing.assert_close(old(x)[0], plain(x)[0], rtol=1e-6, atol=1e-7)


def _cells_over(layer: lstmkit.LSTM, x: torch.Tensor, seed: int) -> tuple:
    """``layer`` (zoneout, two directions) computed by stepping an ``LSTMCell`` with each layer and direction's
    weights over the sequence, the masks drawn from ``seed`` layer by layer, forward before reverse (the layer's
    order). The cells are built first: their initialisation draws from the same generator."""
    cells = {}
    for k in range(layer.num_layers):
        for sfx in ("", "_reverse"):
            size = layer.input_size if k == 0 else 2 * layer.output_size
            cell = lstmkit.LSTMCell(size, layer.hidden_size, zoneout=layer.zoneout, proj_size=layer.proj_size,
                                    peephole=layer.peephole, coupled=layer.coupled, layer_norm=layer.layer_norm,
                                    dtype=x.dtype)  # fmt: skip
            cell.load_state_dict({n: getattr(layer, n + f"_l{k}{sfx}") for n in cell.state_dict()})
            cells[k, sfx] = cell.train(layer.training)
    torch.manual_seed(seed)
    layer_in, hs, cs = x, [], []
    for k in range(layer.num_layers):
        outs = []
        for sfx in ("", "_reverse"):
            cell = cells[k, sfx]
            seq = layer_in if sfx == "" else layer_in.flip(0)
            state = None
            ys = []
            for x_t in seq:
                state = cell(x_t, state)
                ys.append(state[0])
            ys = torch.stack(ys)
            outs.append(ys if sfx == "" else ys.flip(0))
            hs.append(state[0])
            cs.append(state[1])
        layer_in = torch.cat(outs, -1)
    return layer_in, torch.stack(hs), torch.stack(cs)


IMPLS = [
    "reference",
    "fused",
    pytest.param("cpp", marks=pytest.mark.skipif(not _cpp.available(), reason="C++ kernel not built here")),
]
LAYER_OPTIONS = {
    "plain": {},
    "proj+peephole": {"proj_size": 3, "peephole": True},
    "coupled+layer_norm+dropout": {"coupled": True, "layer_norm": True, "recurrent_dropout": 0.3},
}


# (training, options): with recurrent dropout in eval mode only, where nothing is drawn (the cells cannot replay
# the layer's dropout masks, drawn before its zoneout draws)
CELL_CASES = [pytest.param(training, options, id=f"{'train' if training else 'eval'}-{name}")
              for training in (True, False) for name, options in LAYER_OPTIONS.items()
              if not (training and options.get("recurrent_dropout"))]  # fmt: skip


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("training", "options"), CELL_CASES)
def test_the_layer_equals_a_loop_of_cells(training, options, impl):
    """Every kernel with zoneout inside its loop, forward and backward, against LSTMCells stepped one by one with
    their own per-step draws (the same numbers: the layer draws all steps at once in the cells' order), float64."""
    layer = lstmkit.LSTM(I, H, 2, bidirectional=True, zoneout=(0.3, 0.6), dtype=torch.float64, impl=impl,
                         **options).train(training)  # fmt: skip
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(2)
    ours = layer(x)
    theirs = _cells_over(layer, x, seed=2)
    params = list(layer.parameters())
    grads = []
    for y, (h, c) in (ours, (theirs[0], theirs[1:])):
        grads.append(torch.autograd.grad(y.square().sum() + h.sum() + c.sum(), [x, *params], allow_unused=True))
    # float64: the kernels' (1 - z) new + z old against the cells' torch.where (training: exact selections) or
    # torch.lerp (eval), and libm's or torch's gate functions: a few ulps a step, far inside 1e-12 here. The
    # parameter gradients: the cells' come from the layer's own tensors (_cells_over copies them into the cells),
    # so only x's gradient and the outputs are compared against the cells; the parameters against the reference
    # layer below.
    for got, want in zip((ours[0], *ours[1], grads[0][0]), (*theirs, grads[1][0]), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("impl", IMPLS[1:])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("options", LAYER_OPTIONS.values(), ids=LAYER_OPTIONS.keys())
def test_the_kernels_equal_the_reference_loop_with_lengths(options, training, impl, dtype):
    """Outputs, states, input and parameter gradients of the fused and C++ kernels against the reference loop, the
    same draws (one seed), two bidirectional layers with lengths, within the derived bound (zoneout's update is a
    convex mix of two values each within it)."""
    layer = lstmkit.LSTM(I, H, 2, bidirectional=True, zoneout=(0.3, 0.6), dtype=dtype, impl=impl,
                         **options).train(training)  # fmt: skip
    ref = lstmkit.LSTM(I, H, 2, bidirectional=True, zoneout=(0.3, 0.6), dtype=dtype, impl="reference",
                       **options).train(training)  # fmt: skip
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(T, B, I, dtype=dtype)
    tol = module_tolerance(ref, x, gradients=True)
    check_same(layer, ref, x, atol=tol, rtol=tol, lengths=torch.tensor([T, 2, 5, 1]), seed=3)


@pytest.mark.parametrize("impl", IMPLS[1:])
def test_inference_without_autograd_equals_the_recorded_forward(impl):
    """Eval mode without gradients runs the kernels' inference paths (C++: the input side in the kernel), with the
    expectation update from one (1, B, .) row of weights: the same numbers as the forward autograd records."""
    layer = lstmkit.LSTM(I, H, 2, zoneout=(0.2, 0.7), peephole=True, impl=impl).eval()
    x = torch.randn(T, B, I)
    y, (h, c) = layer(x)
    with torch.inference_mode():
        y_inf, (h_inf, c_inf) = layer(x)
    tol = module_tolerance(layer, x)
    for got, want in ((y_inf, y), (h_inf, h), (c_inf, c)):
        torch.testing.assert_close(got, want.detach(), rtol=tol, atol=tol)


def test_the_layer_with_lengths_ends_each_sequence_at_its_own_last_step():
    layer = lstmkit.LSTM(I, H, zoneout=0.4, dtype=torch.float64).eval()
    x = torch.randn(T, B, I, dtype=torch.float64)
    lengths = torch.tensor([T, 2, 4, 1])
    y, (h, c) = layer(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        y_b, (h_b, c_b) = layer(x[:n, b : b + 1])
        torch.testing.assert_close(y[:n, b], y_b[:, 0], rtol=1e-12, atol=1e-12)
        assert not y[n:, b].any()
        torch.testing.assert_close(h[:, b], h_b[:, 0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(c[:, b], c_b[:, 0], rtol=1e-12, atol=1e-12)


def test_every_impl_takes_zoneout_and_a_layer_without_it_is_torch_nn():
    for impl in ("auto", "reference", "fused", *(("cpp",) if _cpp.available() else ())):
        assert lstmkit.LSTM(I, H, zoneout=0.1, impl=impl).zoneout == (0.1, 0.1)
    assert repr(lstmkit.LSTM(I, H, zoneout=(0.0, 0.5))) == "LSTM(3, 5, zoneout=(0.0, 0.5))"
    old = lstmkit.LSTM(I, H)  # pickled before the key existed: the fused kernels, no zoneout
    del old.__dict__["zoneout"]
    native = nn.LSTM(I, H)
    native.load_state_dict(old.state_dict())
    x = torch.randn(T, B, I)
    torch.testing.assert_close(old(x)[0], native(x)[0], rtol=1e-5, atol=1e-6)


# -- GRU and RNN (haste's GRU has zoneout): a loop of torch.nn.GRUCell / RNNCell with the update written out -------
def _baseline_cells_over(layer, x: torch.Tensor, seed: int) -> tuple:
    """``layer`` (GRU or RNN, zoneout on h) stepped as torch.nn cells with each layer and direction's weights, layer
    by layer, forward before reverse, each step's draws ``torch.rand(B, H) < p`` (the layer draws the same numbers
    for all steps at once); eval mode: p old + (1 - p) new."""
    make = {"GRU": lambda n: nn.GRUCell(n, layer.hidden_size, dtype=x.dtype),
            "RNN": lambda n: nn.RNNCell(n, layer.hidden_size, nonlinearity=getattr(layer, "nonlinearity", "tanh"),
                                        dtype=x.dtype)}[type(layer).__name__]  # fmt: skip
    p = layer.zoneout
    cells = {}  # built before the seed: their initialisation draws from the same generator
    for k in range(layer.num_layers):
        for sfx in ("", "_reverse")[: layer.num_directions]:
            cells[k, sfx] = make(getattr(layer, f"weight_ih_l{k}{sfx}").shape[1])
            cells[k, sfx].load_state_dict({n: getattr(layer, n + f"_l{k}{sfx}") for n in cells[k, sfx].state_dict()})
    torch.manual_seed(seed)
    layer_in, hs = x, []
    for k in range(layer.num_layers):
        outs = []
        for sfx in ("", "_reverse")[: layer.num_directions]:
            cell = cells[k, sfx]
            seq = layer_in if sfx == "" else layer_in.flip(0)
            h = torch.zeros(x.shape[1], layer.hidden_size, dtype=x.dtype)
            ys = []
            for x_t in seq:
                new = cell(x_t, h)
                if layer.training:
                    keep = torch.rand(new.shape, dtype=new.dtype) < p
                    h = torch.where(keep, h, new)
                else:
                    h = p * h + (1 - p) * new
                ys.append(h)
            ys = torch.stack(ys)
            outs.append(ys if sfx == "" else ys.flip(0))
            hs.append(h)
        layer_in = torch.cat(outs, -1)
    return layer_in, torch.stack(hs)


@pytest.mark.parametrize("kind", ["GRU", "RNN"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gru_and_rnn_zoneout_equal_a_loop_of_torch_nn_cells(kind, training):
    layer = getattr(lstmkit, kind)(I, H, 2, bidirectional=True, zoneout=0.3, dtype=torch.float64).train(training)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(5)
    y, h = layer(x)
    y_twin, h_twin = _baseline_cells_over(layer, x, seed=5)
    g = torch.autograd.grad(y.square().sum() + h.sum(), x)[0]
    g_twin = torch.autograd.grad(y_twin.square().sum() + h_twin.sum(), x)[0]
    # float64, the same operations but torch.where / p old + (1 - p) new against (1 - z) new + z old: a few ulps
    for got, want in ((y, y_twin), (h, h_twin), (g, g_twin)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_gru_and_rnn_zoneout_arguments_repr_export_and_old_pickles(tmp_path):
    from lstmkit.export import to_onnx
    from lstmkit.stream import Stream

    for kind in ("GRU", "RNN"):
        cls = getattr(lstmkit, kind)
        with pytest.raises(ValueError, match=r"^zoneout must be a number in \[0, 1\), got 1.0$"):
            cls(I, H, zoneout=1.0)
        layer = cls(I, H, 2, zoneout=0.25).eval()
        assert repr(layer) == f"{kind}(3, 5, num_layers=2, zoneout=0.25)"
        with pytest.raises(ValueError, match=rf"^the model's {kind} has zoneout=0.25, which the ONNX GRU and RNN "
                                             r"operators lack \(their eval-mode update, old \* p \+ new \* \(1 - p\) "
                                             r"after every step\); not exported$"):
            to_onnx(layer, tmp_path / "m.onnx")
        x = torch.randn(T, 2, I)
        stream = Stream(layer, batch_size=2)
        got = torch.stack([stream.step(x_t) for x_t in x])
        with torch.no_grad():
            want = layer(x)[0]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)  # the stream's update is the layer's, eval mode
        old = cls(I, H)  # pickled before the key existed: no zoneout
        del old.__dict__["zoneout"]
        native = getattr(nn, kind)(I, H)
        native.load_state_dict(old.state_dict())
        torch.testing.assert_close(old(x)[0], native(x)[0], rtol=1e-5, atol=1e-6)
