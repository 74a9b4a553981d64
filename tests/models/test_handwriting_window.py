"""The handwriting network's fused window layer (``models/_window_bptt.py``) against its reference twin (the cell and
the window stepped through autograd): values, every gradient, padding, carried state, float32 kernels, the tensor-op
path, gradcheck in float64, and where the reference must run instead (second order, torch.func)."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from checks import ISAS, on_isa, one_thread
from lstmkit import _rounding
from lstmkit.models import _window_bptt, handwriting
from lstmkit.models._window_bptt import window_layer
from lstmkit.models.handwriting import HandwritingModel, HandwritingNet, HandwritingState, mixture_nll

F64 = torch.float64


_one_thread = pytest.fixture(autouse=True)(one_thread)


def make(dtype=F64, *, H=7, A=5, K=3, M=2, L=2, seed=0) -> HandwritingNet:
    torch.manual_seed(seed)
    net = HandwritingNet(HandwritingModel(hidden_size=H, num_layers=L, dropout=0.0, mixtures=M, window_mixtures=K,
                                          alphabet_size=A))  # fmt: skip
    with torch.no_grad():  # a window that moves along the text within the few steps here
        net.window.bias[2 * K :].fill_(-0.5)
    return net.to(dtype)


def use(net: HandwritingNet, impl: str) -> HandwritingNet:
    net.config = dataclasses.replace(net.config, window_impl=impl)
    return net


def batch(dtype, *, T=7, B=3, U=4, A=5, lengths=(7, 4, 6), text_lengths=(4, 2, 3), seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, 3, generator=g, dtype=dtype)
    y = torch.randn(T, B, 3, generator=g, dtype=dtype)
    y[..., 2] = (torch.rand(T, B, generator=g) < 0.3).to(dtype)
    text = torch.randint(0, A, (U, B), generator=g)
    text_lengths = torch.tensor(text_lengths)
    text[torch.arange(U).unsqueeze(1) >= text_lengths] = 99  # padding ids outside the alphabet are never read
    lengths = None if lengths is None else torch.tensor(lengths)
    return x, y, text, text_lengths, lengths


def start_state(net: HandwritingNet, B: int, dtype, seed=2) -> HandwritingState:
    """A state as a previous call leaves it (nonzero everywhere), every part requiring grad."""
    g = torch.Generator().manual_seed(seed)
    H, K, A, L = net.config.hidden_size, net.config.window_mixtures, net.alphabet_size, net.config.num_layers

    def r(*shape, scale=0.5):
        return (scale * torch.randn(*shape, generator=g, dtype=dtype)).requires_grad_()

    return HandwritingState([(r(B, H), r(B, H)) for _ in range(L)], r(B, K).abs().detach().requires_grad_(),
                            r(B, A).abs().detach().requires_grad_())  # fmt: skip


def run(net: HandwritingNet, impl: str, x, y, text, text_lengths, lengths, state=None) -> list[torch.Tensor]:
    """Every value the first layer reaches and every gradient: the mixture, the final state, the window's phi, and
    the gradients of a loss reading all of them with respect to the parameters, x and the start state."""
    use(net, impl)
    net.zero_grad()
    x = x.clone().requires_grad_()
    p, st = net(x, text, text_lengths, state=state, lengths=lengths)
    phi = net.attention(x, text, text_lengths, state=state, lengths=lengths)
    mask = None if lengths is None else torch.arange(x.shape[0]).unsqueeze(1) < lengths
    g = torch.Generator().manual_seed(3)
    weights = [torch.randn(v.shape, generator=g, dtype=x.dtype) for v in (st.kappa, st.w, *st.layers[0], phi)]
    loss = (mixture_nll(p, y, mask).sum() + sum((w * v).sum() for w, v in zip(weights, (st.kappa, st.w,
            *st.layers[0], phi), strict=True)))  # fmt: skip
    starts = [] if state is None else [state.kappa, state.w, *state.layers[0]]
    grads = torch.autograd.grad(loss, [x, *net.parameters(), *starts])
    values = [p.eos_logit, p.log_pi, p.mu, p.log_sigma, p.rho, st.kappa, st.w, *st.layers[0], *st.layers[1], phi]
    return [v.detach() for v in values] + list(grads)


def tolerances(net: HandwritingNet, x: torch.Tensor, ref: list[torch.Tensor]) -> list[float]:
    """A bound for each compared tensor, from the sizes: every value is a chain of T steps, each a gate sum of
    H + A + 3 terms, the window's sum over K and U and its product of U terms, and the head's sum over L H; the
    gradients add the sums over the steps and rows (T B) and over the 4H gates. Relative to each tensor's largest
    entry, at the dtype's unit roundoff, for both sides (``between``)."""
    T, B = x.shape[:2]
    c = net.config
    H, A, K = c.hidden_size, net.alphabet_size, c.window_mixtures
    U = 4
    per_step = H + A + 3 + K * U + U + c.num_layers * H
    n = T * per_step + T * B + 4 * H
    rel = _rounding.between(_rounding.gamma(n, _rounding.unit_roundoff(x.dtype)))
    return [rel * max(float(r.abs().max()), 1.0) for r in ref]


def assert_within(got: list[torch.Tensor], want: list[torch.Tensor], tols: list[float]) -> None:
    assert len(got) == len(want)
    for i, (a, b, tol) in enumerate(zip(got, want, tols, strict=True)):
        assert a.shape == b.shape, i
        err = float((a - b).abs().max())
        assert err <= tol, (i, err, tol)


@pytest.mark.parametrize("lengths", [None, (7, 4, 6)], ids=["unpadded", "padded"])
@pytest.mark.parametrize("carried", [False, True], ids=["zero-state", "carried-state"])
def test_fused_equals_the_reference_in_values_and_every_gradient(lengths, carried):
    net = make()
    x, y, text, text_lengths, lengths = batch(F64, lengths=lengths)
    state = start_state(net, x.shape[1], F64) if carried else None
    want = run(net, "reference", x, y, text, text_lengths, lengths, state)
    got = run(net, "fused", x, y, text, text_lengths, lengths, state)
    assert_within(got, want, tolerances(net, x, want))


isa = pytest.fixture(params=ISAS, name="isa")(on_isa)  # each instruction-set path of the float32 kernels


def test_float32_kernels_equal_the_reference(isa):
    """float32, on each instruction-set path: the C++ loops (the gate kernels, the per-step products on the path
    the fused LSTM takes, the window) against torch's cell and MKL, within the float32 bound."""
    net = make(torch.float32, H=40, A=9, K=4)
    x, y, text, text_lengths, lengths = batch(torch.float32, T=12, B=5, A=9, lengths=(12, 7, 9, 12, 3),
                                              text_lengths=(4, 2, 3, 4, 1))  # fmt: skip
    want = run(net, "reference", x, y, text, text_lengths, lengths)
    got = run(net, "fused", x, y, text, text_lengths, lengths)
    assert_within(got, want, tolerances(net, x, want))


def test_the_tensor_operation_path_equals_the_reference(monkeypatch):
    """Off the C++ kernels (other devices, or no compiler): the gate math as tensor operations, torch.mm products."""
    monkeypatch.setattr(_window_bptt, "gate_kernels", lambda x: False)
    net = make()
    x, y, text, text_lengths, lengths = batch(F64)
    state = start_state(net, x.shape[1], F64)
    want = run(net, "reference", x, y, text, text_lengths, lengths, state)
    got = run(net, "fused", x, y, text, text_lengths, lengths, state)
    assert_within(got, want, tolerances(net, x, want))


@pytest.mark.parametrize("kernels", [True, False], ids=["cpp", "tensor-ops"])
def test_gradcheck_of_the_fused_layer_wrt_every_input(kernels, monkeypatch):
    """torch.autograd.gradcheck of ``window_layer`` itself in float64: x, the four state tensors, the cell's and
    the window's weights, with padded steps, and every output (h, w, phi and the final state) read."""
    if not kernels:
        monkeypatch.setattr(_window_bptt, "gate_kernels", lambda x: False)
    g = torch.Generator().manual_seed(4)
    T, B, H, A, K, U = 5, 2, 3, 4, 2, 3

    def r(*shape, scale=0.5):
        return (scale * torch.randn(*shape, generator=g, dtype=F64)).requires_grad_()

    x = r(T, B, 3)
    state = (r(B, H), r(B, H), r(B, K).abs().detach().requires_grad_(), r(B, A))
    cell = (r(4 * H, 3 + A), r(4 * H, H), r(4 * H), r(4 * H))
    window = (r(3 * K, H), r(3 * K))
    ids = torch.tensor([[0, 3, 1], [2, 2, 0]])  # (B, U)
    in_text = (torch.arange(U) < torch.tensor([[3], [2]])).to(F64)  # (B, U)
    onehot = torch.nn.functional.one_hot(ids, A).to(F64) * in_text.unsqueeze(-1)
    valid = torch.arange(T).unsqueeze(1) < torch.tensor([5, 3])

    def f(x, *rest):
        h, w, phi, final = _window_bptt.window_layer(x, tuple(rest[:4]), tuple(rest[4:8]), tuple(rest[8:]), onehot,
                                                     in_text, valid)  # fmt: skip
        return h, w, phi, *final

    assert torch.autograd.gradcheck(f, (x, *state, *cell, *window), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_second_order_is_refused_by_name_and_the_reference_gives_it():
    net = make()
    x, y, text, text_lengths, lengths = batch(F64)
    mask = torch.arange(x.shape[0]).unsqueeze(1) < lengths
    for impl in ("fused", "reference"):
        use(net, impl)
        p, _ = net(x, text, text_lengths, lengths=lengths)
        grads = torch.autograd.grad(mixture_nll(p, y, mask).sum(), net.cell.weight_hh, create_graph=True)
        penalty = grads[0].square().sum()
        if impl == "fused":
            with pytest.raises(RuntimeError, match=re.escape(_window_bptt.SECOND_ORDER_REFUSAL)):
                penalty.backward()
        else:
            penalty.backward()
            assert net.cell.weight_hh.grad.abs().sum() > 0


def test_torch_func_transforms_run_the_reference_loop():
    """Under torch.func.grad the fused layer's Function (no functorch rule) is not used: the same gradient."""
    net = use(make(), "fused")
    x, y, text, text_lengths, lengths = batch(F64)
    mask = torch.arange(x.shape[0]).unsqueeze(1) < lengths
    params = dict(net.named_parameters())

    def loss(params):
        p, _ = torch.func.functional_call(net, params, (x, text, text_lengths), {"lengths": lengths})
        return mixture_nll(p, y, mask).sum()

    got = torch.func.grad(loss)(params)
    net.zero_grad()
    loss(params).backward()
    for name, p in params.items():
        torch.testing.assert_close(got[name], p.grad, rtol=1e-12, atol=1e-12)


def test_sampling_gives_the_same_line_with_either_layer(monkeypatch):
    """``sample`` reads a prime of 6 points in one call (7 steps: the fused layer), then writes one point a call
    carrying the state (T = 1: below WINDOW_FUSED_MIN_STEPS, the reference step): the same line either way, and
    the fused layer ran exactly once, on the prime."""
    calls = []
    monkeypatch.setattr(handwriting, "window_layer", lambda x, *a: calls.append(x.shape[0]) or window_layer(x, *a))
    net = make().eval()
    text = torch.tensor([1, 3, 0, 2, 4, 1, 0, 3, 2, 2])
    prime = 0.3 * torch.randn(6, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    lines = [use(net, impl).sample(text, max_steps=30, bias=0.5, generator=torch.Generator().manual_seed(5),
                                   prime=prime) for impl in ("fused", "reference")]  # fmt: skip
    assert calls == [7] and handwriting.WINDOW_FUSED_MIN_STEPS == 4
    assert lines[0].shape == lines[1].shape and len(lines[0]) > 5
    # float64 sums in two orders (differences of 1e-15), returned in float32: at most one float32 ulp apart
    ulp = float(lines[1].abs().max()) * torch.finfo(torch.float32).eps
    torch.testing.assert_close(lines[0], lines[1], rtol=0, atol=ulp)
