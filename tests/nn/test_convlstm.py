"""ConvLSTM: the fused layer against its reference twin, gradcheck in float64, masking, the cell,
param_count by formula, and the errors (exact messages)."""

from __future__ import annotations

import itertools

import pytest
import torch

import lstmkit
from checks import check_same, one_thread
from lstmkit.nn import convlstm_param_count

d = torch.float64
C, T, B, FRAME = 2, 4, 3, (5, 4)  # tiny: input channels, steps, batch, (H, W)

PEEPHOLES = {"none": {}, "channel": {"peephole": True}, "map": {"peephole": True, "peephole_frame": FRAME}}
COMBOS = [
    dict(peep=p, layer_norm=ln, layers=L, lengths=n, init=i)
    for p, ln, L, n, i in itertools.product(PEEPHOLES, [False, True], [1, 2], [False, True], [False, True])
]


_one_thread = pytest.fixture(autouse=True)(one_thread)  # tiny sizes: a second thread only synchronises


def _ids(c):
    shown = [k if v is True else f"{k}={v}" for k, v in c.items() if v is not False and v != "none"
             and not (k == "layers" and v == 1)]
    return "+".join(shown) or "plain"


def _layer_kw(c) -> dict:
    hidden = [3, 2] if c["layers"] == 2 else 3  # different widths per layer, so hx is a list of pairs
    return dict(hidden_channels=hidden, num_layers=c["layers"], layer_norm=c["layer_norm"], **PEEPHOLES[c["peep"]])


def _init_state(m: lstmkit.ConvLSTM, B: int, frame=FRAME):
    return tuple((torch.randn(B, hc, *frame, dtype=d), torch.randn(B, hc, *frame, dtype=d))
                 for hc in m.hidden_channels)


def _randomise(m: torch.nn.Module) -> None:
    """Move LayerNorm gains and biases off 1 and 0, so that a gain or bias mixed up shows."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "_ln_" in name:
                p.copy_(1.0 + 0.3 * torch.randn_like(p))


def _impls(combo) -> list[str]:
    if combo["layer_norm"]:
        return ["fused"]  # concat cannot normalise the two sides
    # bptt and winograd (its convolutions by F(4x4, 3x3)): the plain cell only
    return ["fused", "concat"] + (["bptt", "winograd"] if combo["peep"] == "none" else [])


@pytest.mark.parametrize(("combo", "impl"), [(c, i) for c in COMBOS for i in _impls(c)],
                         ids=lambda v: _ids(v) if isinstance(v, dict) else v)
def test_fused_equals_reference(combo, impl):
    """Values, input and state gradients and every parameter gradient, in float64, in training mode."""
    fused = lstmkit.ConvLSTM(C, dtype=d, impl=impl, **_layer_kw(combo))
    _randomise(fused)
    ref = lstmkit.ConvLSTM(C, dtype=d, impl="reference", **_layer_kw(combo))
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(T, B, C, *FRAME, dtype=d)
    inputs = (x, _init_state(fused, B)) if combo["init"] else (x,)
    kw = {"lengths": torch.tensor([4, 2, 0])} if combo["lengths"] else {}
    check_same(fused, ref, *inputs, atol=1e-12, rtol=1e-10, **kw)


@pytest.mark.parametrize(
    "kw",
    [dict(num_layers=2, hidden_channels=[3, 2], dropout=0.4, batch_first=True),
     dict(kernel_size=(3, 1), bias=False, peephole=True), dict(kernel_size=5, forget_bias=1.0, layer_norm=True)],
    ids=str,
)
@pytest.mark.parametrize("impl", ["fused", "auto"])
def test_fused_equals_reference_other_arguments(kw, impl):
    kw = {"hidden_channels": 3, **kw}
    fused = lstmkit.ConvLSTM(C, dtype=d, impl=impl, **kw).train()
    ref = lstmkit.ConvLSTM(C, dtype=d, impl="reference", **kw).train()
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(B, T, C, *FRAME, dtype=d) if kw.get("batch_first") else torch.randn(T, B, C, *FRAME, dtype=d)
    check_same(fused, ref, x, atol=1e-12, rtol=1e-10)  # check_same seeds both alike: same dropout masks


@pytest.mark.parametrize(("combo", "impl"), [(c, i) for c in COMBOS for i in _impls(c)],
                         ids=lambda v: _ids(v) if isinstance(v, dict) else v)
def test_gradcheck_every_combination(combo, impl):
    """gradcheck (float64, fast mode: random projections of the Jacobian) through the whole fused layer."""
    frame = (3, 3)
    kw = {**_layer_kw(combo), "hidden_channels": 2, "impl": impl}
    if combo["peep"] == "map":
        kw["peephole_frame"] = frame
    m = lstmkit.ConvLSTM(1, dtype=d, **kw)
    _randomise(m)
    x = torch.randn(3, 2, 1, *frame, dtype=d, requires_grad=True)
    init = [t.requires_grad_() for pair in _init_state(m, 2, frame) for t in pair] if combo["init"] else []
    lengths = torch.tensor([3, 1]) if combo["lengths"] else None
    names, params = zip(*m.named_parameters(), strict=True)

    def f(x, *rest):
        states, ps = rest[: len(init)], rest[len(init):]
        hx = [(states[2 * k], states[2 * k + 1]) for k in range(len(states) // 2)] or None
        y, finals = torch.func.functional_call(m, dict(zip(names, ps, strict=True)), (x, hx), {"lengths": lengths})
        return y, *(s for pair in finals for s in pair)

    assert torch.autograd.gradcheck(f, (x, *init, *params), fast_mode=True)


@pytest.mark.parametrize("kw", [dict(peephole=True, layer_norm=True), dict(peephole=True, peephole_frame=(3, 3)),
                                dict(peephole=True, impl="concat"), dict(impl="bptt"), dict(impl="winograd")],
                         ids=str)
def test_gradcheck_full_jacobian(kw):
    """The full (slow-mode) gradcheck at the smallest size, two layers, lengths and an initial state."""
    m = lstmkit.ConvLSTM(1, 2, num_layers=2, dtype=d, **kw)
    _randomise(m)
    x = torch.randn(2, 2, 1, 3, 3, dtype=d, requires_grad=True)
    h0 = torch.randn(2, 2, 3, 3, dtype=d, requires_grad=True)
    names, params = zip(*m.named_parameters(), strict=True)

    def f(x, h0, *ps):
        hx = [(h0, h0 * 0.5), (h0 * -1.0, h0)]
        y, finals = torch.func.functional_call(m, dict(zip(names, ps, strict=True)), (x, hx),
                                               {"lengths": torch.tensor([2, 1])})
        return y, finals[-1][0], finals[-1][1]

    assert torch.autograd.gradcheck(f, (x, h0, *params))


@pytest.mark.parametrize("impl", ["fused", "concat", "bptt", "winograd", "reference"])
@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2, peephole=True, layer_norm=True)], ids=str)
def test_lengths_equal_running_each_sequence_alone(impl, kw):
    if impl == "concat" and kw.get("layer_norm"):
        kw = {**kw, "layer_norm": False}
    if impl in ("bptt", "winograd") and kw.get("peephole"):
        kw = {**kw, "peephole": False, "layer_norm": False}
    m = lstmkit.ConvLSTM(C, 3, dtype=d, impl=impl, **kw)
    lengths = torch.tensor([4, 1, 0])
    x = torch.randn(T, B, C, *FRAME, dtype=d)
    hx = _init_state(m, B)
    y, finals = m(x, hx, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        assert torch.all(y[n:, b] == 0)
        one = [(h[b : b + 1], c[b : b + 1]) for h, c in hx]
        if n == 0:  # an empty sequence keeps its initial state
            for (h, c), (h0, c0) in zip(finals, one, strict=True):
                assert torch.equal(h[b : b + 1], h0) and torch.equal(c[b : b + 1], c0)
            continue
        yb, fb = m(x[:n, b : b + 1], one)
        torch.testing.assert_close(y[:n, b : b + 1], yb)
        for (h, c), (hb, cb) in zip(finals, fb, strict=True):
            torch.testing.assert_close(h[b : b + 1], hb)
            torch.testing.assert_close(c[b : b + 1], cb)


def test_shapes_batch_first_and_any_frame_size():
    m = lstmkit.ConvLSTM(C, [4, 3], kernel_size=(3, 5), num_layers=2, peephole=True)
    x = torch.randn(T, B, C, 6, 7)
    y, finals = m(x)
    assert y.shape == (T, B, 3, 6, 7)  # same padding: the frame size is kept
    assert [tuple(h.shape) for h, _ in finals] == [(B, 4, 6, 7), (B, 3, 6, 7)]
    assert m(torch.randn(T, B, C, 3, 9))[0].shape == (T, B, 3, 3, 9)  # per-channel peepholes: any frame size
    bf = lstmkit.ConvLSTM(C, [4, 3], kernel_size=(3, 5), num_layers=2, peephole=True, batch_first=True)
    bf.load_state_dict(m.state_dict())
    y_bf, finals_bf = bf(x.transpose(0, 1), lengths=torch.tensor([4, 2, 3]))
    y_tf, finals_tf = m(x, lengths=torch.tensor([4, 2, 3]))
    torch.testing.assert_close(y_bf.transpose(0, 1), y_tf)
    torch.testing.assert_close(finals_bf, finals_tf)


@pytest.mark.parametrize("kw", [dict(), dict(peephole=True, layer_norm=True, forget_bias=1.0),
                                dict(peephole=True, peephole_frame=FRAME, kernel_size=(1, 3))], ids=str)
def test_cell_over_sequence_equals_layer(kw):
    layer = lstmkit.ConvLSTM(C, 3, dtype=d, **kw)
    _randomise(layer)
    cell = lstmkit.ConvLSTMCell(C, 3, dtype=d, **kw)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x = torch.randn(T, B, C, *FRAME, dtype=d)
    y, [(h_n, c_n)] = layer(x)
    state, ys = None, []
    for t in range(T):
        h, state = cell(x[t], state)
        ys.append(h)
    torch.testing.assert_close(torch.stack(ys), y)
    torch.testing.assert_close(state, (h_n, c_n))


def test_bptt_backward_twice_and_parameters_only():
    """The hand-written backward keeps its saved tensors intact: a second backward through a retained
    graph doubles the gradients; with a frozen input and state it returns the parameter gradients
    alone, equal to the reference's."""
    m = lstmkit.ConvLSTM(C, 3, dtype=d, impl="bptt")
    ref = lstmkit.ConvLSTM(C, 3, dtype=d, impl="reference")
    ref.load_state_dict(m.state_dict())
    x = torch.randn(T, B, C, *FRAME, dtype=d)
    y, _ = m(x)
    y.sum().backward(retain_graph=True)
    once = [p.grad.clone() for p in m.parameters()]
    y.sum().backward()
    for g1, p in zip(once, m.parameters(), strict=True):
        torch.testing.assert_close(p.grad, 2 * g1, atol=1e-12, rtol=1e-10)
    m.zero_grad()
    m(x)[0].pow(2).sum().backward()
    ref(x)[0].pow(2).sum().backward()
    for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-12, rtol=1e-10, msg=name)


@pytest.mark.parametrize("impl", ["bptt", "concat", "fused", "auto"])
def test_zero_initial_state_skips_the_first_recurrent_convolution(impl, monkeypatch):
    """hx=None: step 0 convolves x_0 alone (W_hh * 0 = 0 is not computed), and the result and every gradient
    equal those of the same zeros passed as hx (the full path, which convolves them)."""
    m = lstmkit.ConvLSTM(C, 3, num_layers=2, dtype=d, impl=impl)
    x = torch.randn(T, B, C, *FRAME, dtype=d, requires_grad=True)
    zeros = [(torch.zeros(B, 3, *FRAME, dtype=d), torch.zeros(B, 3, *FRAME, dtype=d)) for _ in range(2)]
    inputs_seen = []
    conv2d = torch.nn.functional.conv2d
    monkeypatch.setattr(torch.nn.functional, "conv2d", lambda inp, *a, **k: inputs_seen.append(inp.shape[1])
                        or conv2d(inp, *a, **k))  # fmt: skip
    y, finals = m(x)
    monkeypatch.undo()
    y_full, finals_full = m(x, zeros)
    torch.testing.assert_close(y, y_full, atol=1e-13, rtol=1e-12)
    torch.testing.assert_close(finals, finals_full, atol=1e-13, rtol=1e-12)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, *m.parameters()), g)
    grads_full = torch.autograd.grad(y_full, (x, *m.parameters()), g)
    for a, b in zip(grads, grads_full, strict=True):
        torch.testing.assert_close(a, b, atol=1e-13, rtol=1e-12)
    if impl == "fused":  # per layer: the hoisted input convolution, then T - 1 recurrent ones over h (3 channels)
        assert inputs_seen == [C] + [3] * (T - 1) + [3] + [3] * (T - 1)
    else:  # per layer: x_0 alone, then [x_t, h_{t-1}] for t >= 1
        assert inputs_seen == [C] + [C + 3] * (T - 1) + [3] + [3 + 3] * (T - 1)


def test_zero_state_promise_is_checked():
    from lstmkit.nn._convlstm_bptt import convlstm_layer_bptt

    w_ih, w_hh = torch.randn(8, 1, 3, 3), torch.randn(8, 2, 3, 3)
    h0 = torch.zeros(1, 2, 4, 4, requires_grad=True)
    with pytest.raises(ValueError, match=r"^zero_state=True: the initial state must be the caller's zeros, "
                       r"needing no gradient$"):
        convlstm_layer_bptt(torch.randn(2, 1, 1, 4, 4), (h0, torch.zeros(1, 2, 4, 4)), w_ih, w_hh, None,
                            zero_state=True)


def test_bptt_runs_only_when_asked_for():
    assert lstmkit.ConvLSTM(C, 3, impl="bptt")._runs_bptt()
    assert not lstmkit.ConvLSTM(C, 3)._runs_bptt()  # auto: concat measured faster (docs/benchmarks.md)
    assert not lstmkit.ConvLSTM(C, 3, impl="concat")._runs_bptt()


def test_initialisation():
    m = lstmkit.ConvLSTM(C, 4, kernel_size=3, layer_norm=True, forget_bias=1.0)
    bound = 1.0 / (9 * (C + 4)) ** 0.5  # fan-in of the textbook convolution over [x, h]
    assert m.weight_ih_l0.abs().max() <= bound and m.weight_hh_l0.abs().max() <= bound
    assert torch.all(m.bias_l0[4:8] == 1.0)
    assert torch.all(m.weight_ln_ih_l0 == 1.0) and torch.all(m.bias_ln_c_l0 == 0.0)


def test_repr():
    assert repr(lstmkit.ConvLSTM(1, 8)) == "ConvLSTM(1, 8)"
    assert repr(lstmkit.ConvLSTM(1, [8, 4], 5, num_layers=2, peephole=True, peephole_frame=(6, 6))) == (
        "ConvLSTM(1, [8, 4], kernel_size=(5, 5), num_layers=2, peephole=True, peephole_frame=(6, 6))"
    )
    assert repr(lstmkit.ConvLSTMCell(2, 3, (3, 1), layer_norm=True)) == (
        "ConvLSTMCell(2, 3, kernel_size=(3, 1), layer_norm=True)"
    )


# --- param_count ------------------------------------------------------------------------------------
GRID = [
    dict(hidden_channels=h, kernel_size=k, num_layers=len(h), bias=b, peephole=p, peephole_frame=f, layer_norm=ln)
    for h, k, b, (p, f), ln in itertools.product([[5], [4, 6]], [3, (5, 1)], [True, False],
                                                 [(False, None), (True, None), (True, (7, 9))], [False, True])
]


@pytest.mark.parametrize("kw", GRID, ids=str)
def test_param_count_matches_module(kw):
    m = lstmkit.ConvLSTM(3, **kw)
    n = sum(p.numel() for p in m.parameters())
    assert convlstm_param_count(3, **kw) == n
    assert lstmkit.param_count(m) == n
    if kw["num_layers"] == 1:
        cell = lstmkit.ConvLSTMCell(3, kw["hidden_channels"][0], **{k: v for k, v in kw.items()
                                                                    if k not in ("hidden_channels", "num_layers")})
        assert lstmkit.param_count(cell) == sum(p.numel() for p in cell.parameters()) == n


def test_param_count_textbook_formula():
    C_in, Hc, k = 1, 64, 3
    assert convlstm_param_count(C_in, Hc, k) == 4 * Hc * (C_in + Hc) * k * k + 4 * Hc


# --- errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        (dict(kernel_size=4), ValueError,
         "kernel_size must be odd: same padding keeps the frame size only for odd kernels, got 4"),
        (dict(kernel_size=(3, 2)), ValueError,
         "kernel_size must be odd: same padding keeps the frame size only for odd kernels, got (3, 2)"),
        (dict(kernel_size=(3, 3, 3)), ValueError,
         "kernel_size must be a positive integer or a pair of them, got (3, 3, 3)"),
        (dict(kernel_size=0), ValueError, "kernel_size must be a positive integer or a pair of them, got 0"),
        (dict(hidden_channels=[4, 4, 4], num_layers=2), ValueError,
         "hidden_channels must be one integer or one per layer (num_layers=2), got 3 values"),
        (dict(hidden_channels=0), ValueError, "hidden_channels must be a positive integer, got 0"),
        (dict(dropout=1.0), ValueError, "dropout must be a number in [0, 1), got 1.0"),
        (dict(peephole_frame=(4, 4)), ValueError, "peephole_frame needs peephole=True"),
        (dict(peephole=True, peephole_frame=(4,)), ValueError,
         "peephole_frame must be a pair (H, W) of positive integers, got (4,)"),
        (dict(bias=False, forget_bias=1.0), ValueError, "forget_bias needs bias=True"),
        (dict(impl="cpp"), ValueError,
         "impl must be one of ('auto', 'bptt', 'winograd', 'fused', 'concat', 'reference'), got 'cpp'"),
        (dict(impl="bptt", peephole=True), ValueError,
         "impl='bptt' (the hand-written backward) runs the plain cell only, not peephole or layer_norm; "
         "use impl='fused' or 'auto'"),
        (dict(impl="concat", layer_norm=True), ValueError,
         "impl='concat' cannot be used with layer_norm=True: LayerNorm normalises W_ih * x and W_hh * h separately, "
         "so they cannot share one convolution; use impl='fused' or 'auto'"),
        (dict(layer_norm_eps=0), ValueError, "layer_norm_eps must be a positive number, got 0"),
    ],
)
def test_constructor_errors(kwargs, exc, message):
    kwargs = {"hidden_channels": 4, **kwargs}
    with pytest.raises(exc) as info:
        lstmkit.ConvLSTM(C, **kwargs)
    assert str(info.value) == message


def _message(fn) -> str:
    with pytest.raises((ValueError, TypeError)) as info:
        fn()
    return str(info.value)


def test_forward_errors():
    m = lstmkit.ConvLSTM(C, [3, 2], num_layers=2)
    x = torch.randn(T, B, C, *FRAME)
    assert _message(lambda: m(torch.randn(T, C, *FRAME))) == (
        "input must be 5-D (T, B, C, H, W), got shape (4, 2, 5, 4)"
    )
    assert _message(lambda: lstmkit.ConvLSTM(C, 3, batch_first=True)(torch.randn(B, C, 5))) == (
        "input must be 5-D (B, T, C, H, W), got shape (3, 2, 5)"
    )
    assert _message(lambda: m(torch.randn(T, B, 3, *FRAME))) == (
        "input must have 2 channels (input_channels) in dimension 2 (T, B, C, H, W), got 3"
    )
    assert _message(lambda: m(x.double())) == (
        "input dtype torch.float64 does not match the parameters' dtype torch.float32"
    )
    assert _message(lambda: m(torch.randn(0, B, C, *FRAME))) == "input must have at least one time step, got T = 0"
    # Initial states sized for another frame (the frame cannot change inside one input tensor).
    bad = [(torch.zeros(B, 3, 5, 4), torch.zeros(B, 3, 5, 4)), (torch.zeros(B, 2, 6, 6), torch.zeros(B, 2, 5, 4))]
    assert _message(lambda: m(x, bad)) == (
        "hx[1] h_0 must have shape (B, Hc, H, W) = (3, 2, 5, 4) (the input's batch and 5x4 frames), got (3, 2, 6, 6)"
    )
    assert _message(lambda: m(x, bad[:1])) == (
        "hx must be a list of one (h_0, c_0) pair per layer (2), got list of length 1"
    )
    assert _message(lambda: m(x, [bad[0], torch.zeros(1)])) == "hx[1] must be a pair (h_0, c_0) of Tensors"
    with pytest.raises(RuntimeError) as info:  # meta stands in for a GPU
        m(x, [bad[0], (torch.zeros(B, 2, 5, 4), torch.zeros(B, 2, 5, 4, device="meta"))])
    assert str(info.value) == "hx[1] c_0 is on meta but the input on cpu: move it with .to('cpu')"
    with pytest.raises(RuntimeError) as info:
        m(x.to("meta"))
    assert str(info.value) == ("input is on meta but the parameters on cpu: move it with .to('cpu') or the module "
                               "with .to('meta')")
    full = lstmkit.ConvLSTM(C, 3, peephole=True, peephole_frame=(8, 8))
    assert _message(lambda: full(x)) == (
        "input frames must be 8x8 (peephole_frame: the peephole maps have that size), got 5x4"
    )


def test_lengths_errors():
    m = lstmkit.ConvLSTM(C, 3)
    x = torch.randn(T, B, C, *FRAME)
    assert _message(lambda: m(x, lengths=torch.tensor([4, 2]))) == (
        "lengths must have shape (3,) (one per sequence), got (2,)"
    )
    assert _message(lambda: m(x, lengths=torch.tensor([5, 2, 1]))) == (
        "lengths must not exceed the input's 4 time steps, got max 5"
    )
    assert _message(lambda: m(x, lengths=torch.tensor([4, -1, 1]))) == "lengths must be >= 0, got [4, -1, 1]"
    assert _message(lambda: m(x, lengths=torch.tensor([4.0, 2.0, 1.0]))) == (
        "lengths must be an integer tensor, got dtype torch.float32"
    )


def test_cell_errors():
    cell = lstmkit.ConvLSTMCell(C, 3)
    assert _message(lambda: cell(torch.randn(B, C, 5))) == "input must be 4-D (B, C, H, W), got shape (3, 2, 5)"
    assert _message(lambda: cell(torch.randn(B, 1, *FRAME))) == (
        "input must have 2 channels (input_channels) in dimension 1 (B, C, H, W), got 1"
    )
    state = (torch.zeros(B, 3, 5, 4), torch.zeros(B, 3, 4, 4))
    assert _message(lambda: cell(torch.randn(B, C, *FRAME), state)) == (
        "state c must have shape (B, Hc, H, W) = (3, 3, 5, 4), got (3, 3, 4, 4)"
    )
