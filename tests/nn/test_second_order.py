"""Gradients of gradients and torch.func transforms through lstmkit's layers, as torch.nn.LSTM allows them.

A backward run with ``create_graph=True`` through the fused or C++ scan recomputes the scan with its reference
twin from the node's inputs (``_fused.second_order_grads``); under a torch.func transform the layers run their
reference loops. What is held here:

- ``gradgradcheck`` in float64 (numerical second derivatives against the analytical ones) for every kernel, the
  variants, lengths, recurrent dropout (a fixed seed a call) and a given initial state; and at the scan's own
  entry, where the node keeps xg itself (no layer input to rebuild it from);
- second derivatives equal torch.nn.LSTM's (a gradient penalty, as WGAN-GP computes it), and a create_graph
  backward's first derivatives equal the fast backward's;
- the layer's node keeps no extra (T, B, G) tensor for this (it keeps the layer input, which the input
  projection's backward keeps anyway);
- torch.func.grad, jacrev, vmap and jvp give what torch.nn.LSTM gives, the loop over the batch gives, or
  finite differences give (torch.nn.LSTM itself has no vmap or jvp on the CPU);
- ConvLSTM's hand-written backwards (impl='bptt', 'winograd') refuse a second order with a message naming the
  impls that allow it, also where torch's ``once_differentiable`` would have returned constants silently.

Float64 comparisons between two implementations allow 1e-9 of the largest entry: both sides round at
1.1e-16 per operation over sums of at most a few hundred terms per order (about 1e-13), while a missing or
wrong second-order term changes the result at the scale of the entries themselves.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradgradcheck
from torch.func import functional_call, grad, jacrev, jvp, vmap

import lstmkit
from checks import one_thread
from lstmkit.nn import LSTMOptions, LSTMWeights, _cpp
from lstmkit.nn._fused import LSTMScan, lstm_scan

_one_thread = pytest.fixture(autouse=True)(one_thread)

D = torch.float64
T, B, I, H = 3, 2, 3, 3
LENGTHS = torch.tensor([3, 2])
NEEDS_CPP = pytest.mark.skipif(not _cpp.available(), reason="C++ kernel not built here")
KERNELS = ["reference", "fused", pytest.param("cpp", marks=NEEDS_CPP)]
VARIANTS = {
    "plain": {},
    "peephole-coupled": {"peephole": True, "coupled": True},
    "layer_norm-proj": {"layer_norm": True, "proj_size": 2},
    "recurrent_dropout": {"recurrent_dropout": 0.3},
}


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    a, b = a.detach(), b.detach()
    torch.testing.assert_close(a, b, rtol=0, atol=1e-9 * max(float(b.abs().max()), 1.0))


def layer(impl: str, **kw) -> lstmkit.LSTM:
    torch.manual_seed(0)
    return lstmkit.LSTM(I, H, 2, bidirectional=True, dtype=D, impl=impl, **kw).train()


CASES = [pytest.param("reference", {}, id="plain-reference")] + [
    pytest.param(impl, v, id=f"{name}-{impl}", marks=[NEEDS_CPP] if impl == "cpp" else [])
    for impl in ("fused", "cpp") for name, v in VARIANTS.items()
]


@pytest.mark.parametrize(("impl", "variant"), CASES)
def test_gradgradcheck_every_kernel(impl, variant):
    """Second derivatives in x, the initial state and a weight of each layer, with lengths: two layers, so that
    the second rebuilds its input gates from the first's output."""
    m = layer(impl, **variant)
    x = torch.randn(T, B, I, dtype=D, requires_grad=True)
    h0 = torch.randn(4, B, m.output_size, dtype=D, requires_grad=True)
    c0 = torch.randn(4, B, H, dtype=D)

    def f(x, h0, w0, w1):
        torch.manual_seed(1)  # the same recurrent-dropout masks at every call
        y, (h, c) = m(x, (h0, c0), lengths=LENGTHS)
        return y, h, c

    assert gradgradcheck(f, (x, h0, m.weight_hh_l0, m.weight_ih_l1_reverse))
    # the recomputed scan is the forward's function: a create_graph backward's first derivatives are the plain one's
    leaves = [x, h0, *m.parameters()]
    first = [torch.autograd.grad(sum(o.square().sum() for o in f(x, h0, None, None)), leaves, create_graph=graph)
             for graph in (False, True)]  # fmt: skip
    for plain, graph in zip(*first, strict=True):
        close(graph, plain)


@pytest.mark.parametrize(
    "scan", [pytest.param(lstm_scan, id="fused"), pytest.param(_cpp.lstm_scan_cpp, id="cpp", marks=NEEDS_CPP)]
)
def test_gradgradcheck_at_the_scan_entry(scan):
    """Called with xg alone (no layer input), the node keeps xg and differentiates it again."""
    G = 4 * H
    xg, w_hh = torch.randn(T, B, G, dtype=D, requires_grad=True), torch.randn(G, H, dtype=D, requires_grad=True)
    peep = torch.randn(3, H, dtype=D, requires_grad=True)
    mask = torch.arange(T)[:, None] < LENGTHS[None, :]
    h0, c0 = torch.zeros(B, H, dtype=D), torch.randn(B, H, dtype=D, requires_grad=True)

    def f(xg, w_hh, peep, c0):
        w = LSTMWeights(None, w_hh, peep=peep)
        return scan(xg, (h0, c0), w, LSTMOptions(peephole=True), None, mask)

    assert gradgradcheck(f, (xg, w_hh, peep, c0))


@pytest.mark.parametrize("impl", KERNELS)
@pytest.mark.parametrize("kw", [{}, {"bidirectional": True}], ids=["one-direction", "bidirectional"])
def test_gradient_penalty_equals_torch_nn(impl, kw):
    """WGAN-GP's penalty (||d critic / d x|| - 1)^2, differentiated in the weights, as torch.nn.LSTM computes it;
    the create_graph backward's first derivatives equal the fast backward's."""
    torch.manual_seed(0)
    native = torch.nn.LSTM(I, H, 2, dtype=D, **kw)
    ours = lstmkit.LSTM(I, H, 2, dtype=D, impl=impl, **kw)
    ours.load_state_dict(native.state_dict())
    x = torch.randn(T, B, I, dtype=D)
    results = []
    for m in (native, ours):
        xi = x.clone().requires_grad_()
        critic = m(xi)[0].tanh().sum()
        (dx,) = torch.autograd.grad(critic, xi, create_graph=True)
        penalty = (dx.flatten(1).norm(dim=1) - 1).square().mean()
        results.append((dx.detach(), torch.autograd.grad(penalty, list(m.parameters()))))
    (dx_n, g_n), (dx_o, g_o) = results
    close(dx_o, dx_n)
    for a, b in zip(g_o, g_n, strict=True):
        close(a, b)
    xi = x.clone().requires_grad_()
    (fast,) = torch.autograd.grad(ours(xi)[0].tanh().sum(), xi)  # create_graph=False: the hand-written backward
    close(dx_o, fast)


def test_create_graph_where_the_incoming_gradient_is_constant():
    """The layer's output summed: the gradient reaching the scan needs no grad, yet d(dx)/dW is not zero
    (torch's once_differentiable would return constants here)."""
    torch.manual_seed(0)
    native = torch.nn.LSTM(I, H, dtype=D)
    ours = lstmkit.LSTM(I, H, dtype=D)
    ours.load_state_dict(native.state_dict())
    x = torch.randn(T, B, I, dtype=D)
    got = []
    for m in (native, ours):
        xi = x.clone().requires_grad_()
        (dx,) = torch.autograd.grad(m(xi)[0].sum(), xi, create_graph=True)
        got.append(torch.autograd.grad(dx.square().sum(), m.weight_hh_l0)[0])
    assert float(got[0].abs().max()) > 1e-3
    close(got[1], got[0])


def test_the_layer_node_keeps_no_second_copy_of_the_input_gates():
    """Saved (T, B, G) storages of a plain layer: the gate activations only (xg is rebuilt from x when needed);
    the scan called on xg alone keeps xg as well."""
    m = lstmkit.LSTM(I, H)
    x = torch.randn(T, B, I)

    def saved_tbg(fn) -> int:
        seen = set()

        def pack(t):
            if tuple(t.shape) == (T, B, 4 * H):
                seen.add(t.untyped_storage().data_ptr())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
        return len(seen)

    assert saved_tbg(lambda: m(x)) == 1
    w = lstmkit.nn.layer_weights(m)
    xg = torch.nn.functional.linear(x, w.w_ih, w.b_ih + w.b_hh).detach().requires_grad_()
    zeros = (torch.zeros(B, H), torch.zeros(B, H))
    assert saved_tbg(lambda: lstm_scan(xg, zeros, w, LSTMOptions())) == 2


# --- torch.func --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("impl", [*KERNELS, "auto"])
def test_func_grad_and_jacrev_equal_torch_nn(impl):
    torch.manual_seed(0)
    native = torch.nn.LSTM(I, H, 2, bidirectional=True, dtype=D)
    ours = lstmkit.LSTM(I, H, 2, bidirectional=True, dtype=D, impl=impl)
    ours.load_state_dict(native.state_dict())
    x = torch.randn(T, B, I, dtype=D)
    got = []
    for m in (native, ours):
        params = dict(m.named_parameters())

        def loss(p, x, m=m):
            return functional_call(m, p, (x,))[0].square().sum()

        got.append((grad(loss)(params, x), jacrev(lambda x, p=params, f=loss: f(p, x))(x)))
    (g_n, j_n), (g_o, j_o) = got
    assert g_o.keys() == g_n.keys()
    for name in g_n:
        close(g_o[name], g_n[name])
    close(j_o, j_n)


@pytest.mark.parametrize("impl", KERNELS)
def test_vmap_equals_the_loop_and_jvp_equals_finite_differences(impl):
    m = layer(impl, peephole=True).eval()
    xs = torch.randn(3, T, B, I, dtype=D)
    for grad_mode in (True, False):  # without grad the C++ path would be the inference kernel
        with torch.set_grad_enabled(grad_mode):
            batched = vmap(lambda x: m(x, lengths=LENGTHS)[0])(xs)
            looped = torch.stack([m(x, lengths=LENGTHS)[0] for x in xs])
        close(batched, looped)
    x, v = xs[0], torch.randn(T, B, I, dtype=D)
    _, tangent = jvp(lambda x: m(x)[0], (x,), (v,))
    eps = 1e-6  # central differences: error O(eps^2) in the values' scale, far below 1e-6
    fd = (m(x + eps * v)[0] - m(x - eps * v)[0]) / (2 * eps)
    torch.testing.assert_close(tangent, fd, rtol=0, atol=1e-6)


# --- ConvLSTM's hand-written backwards -----------------------------------------------------------------------
CONV_REFUSAL = (
    "ConvLSTM's hand-written backward (impl='bptt' or 'winograd') cannot be differentiated again (gradients "
    "made with create_graph=True were differentiated); impl='auto', 'concat', 'fused' and 'reference' run "
    "torch operations that autograd differentiates to any order"
)


@pytest.mark.parametrize("impl", ["bptt", "concat"])
def test_convlstm_second_order_refused_by_name_or_computed(impl):
    torch.manual_seed(0)
    m = lstmkit.ConvLSTM(2, 3, (3, 3), dtype=D, impl=impl)
    x = torch.randn(3, 2, 2, 5, 5, dtype=D, requires_grad=True)
    out = m(x)[0]
    (dx,) = torch.autograd.grad(out.sum(), x, create_graph=True)  # the incoming gradient is a constant
    first = torch.autograd.grad(m(x)[0].sum(), x)[0]
    close(dx.detach(), first)  # the first order is the hand-written backward's either way
    if impl == "bptt":
        with pytest.raises(RuntimeError) as err:
            dx.square().sum().backward()
        assert str(err.value) == CONV_REFUSAL
    else:
        dx.square().sum().backward()  # second derivatives reach the weights
        assert all(p.grad is not None and float(p.grad.abs().max()) > 0 for p in m.parameters())


def test_convlstm_bptt_under_func_grad_equals_the_reference():
    torch.manual_seed(0)
    bptt = lstmkit.ConvLSTM(2, 3, (3, 3), dtype=D, impl="bptt")
    ref = lstmkit.ConvLSTM(2, 3, (3, 3), dtype=D, impl="reference")
    ref.load_state_dict(bptt.state_dict())
    x = torch.randn(3, 2, 2, 5, 5, dtype=D)
    got = [grad(lambda p, m=m: functional_call(m, p, (x,))[0].square().sum())(dict(m.named_parameters()))
           for m in (bptt, ref)]  # fmt: skip
    for name in got[1]:
        close(got[0][name], got[1][name])


def test_scan_node_takes_a_gate_source_or_none():
    """LSTMScan.apply without a GateSource (tests, benchmarks) is the same node as with an empty one."""
    G = 4 * H
    xg = torch.randn(T, B, G, dtype=D, requires_grad=True)
    args = (xg, torch.zeros(B, H, dtype=D), torch.zeros(B, H, dtype=D), torch.randn(G, H, dtype=D),
            None, None, None, None, None, None, None, False, 1e-5)  # fmt: skip
    a = LSTMScan.apply(*args)
    b = LSTMScan.apply(*args, None, None, None, None, None)
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v)


@pytest.mark.parametrize("cls", [lstmkit.LSTMCell, lstmkit.LSTMStepCell])
def test_cells_under_vmap_and_grad_equal_torch_lstmcell(cls):
    """The plain cell calls torch's lstm_cell operator, which has no vmap rule: under a transform it runs the
    reference step, equal to torch.nn.LSTMCell looped over the vmapped dimension and under torch.func.grad."""
    torch.manual_seed(0)
    native = torch.nn.LSTMCell(I, H, dtype=D)
    ours = cls(I, H, dtype=D)
    ours.load_state_dict(native.state_dict())
    xs = torch.randn(4, B, I, dtype=D)
    state = (torch.randn(B, H, dtype=D), torch.randn(B, H, dtype=D))
    close(vmap(lambda x: ours(x, state)[0])(xs), torch.stack([native(x, state)[0] for x in xs]))
    got = [grad(lambda p, m=m: functional_call(m, p, (xs[0], state))[0].square().sum())(dict(m.named_parameters()))
           for m in (native, ours)]  # fmt: skip
    for name in got[0]:
        close(got[1][name], got[0][name])


@pytest.mark.parametrize("impl", KERNELS)
def test_func_hessian_and_jacfwd_equal_torch_nn(impl):
    """Forward over reverse (hessian) and forward mode (jacfwd), against torch.autograd.functional on torch.nn.LSTM."""
    from torch.autograd.functional import hessian as native_hessian
    from torch.autograd.functional import jacobian as native_jacobian
    from torch.func import hessian, jacfwd

    torch.manual_seed(0)
    native = torch.nn.LSTM(2, H, dtype=D)
    ours = lstmkit.LSTM(2, H, dtype=D, impl=impl)
    ours.load_state_dict(native.state_dict())
    x = torch.randn(T, 1, 2, dtype=D)
    close(hessian(lambda x: ours(x)[0].square().sum())(x), native_hessian(lambda x: native(x)[0].square().sum(), x))
    close(jacfwd(lambda x: ours(x)[0])(x), native_jacobian(lambda x: native(x)[0], x))


@pytest.mark.parametrize("impl", KERNELS)
def test_second_order_through_the_final_state_alone(impl):
    """Only h_n reaches the loss: the output gradients autograd never reached come back as None, in both orders."""
    torch.manual_seed(0)
    native = torch.nn.LSTM(I, H, 2, dtype=D)
    ours = lstmkit.LSTM(I, H, 2, dtype=D, impl=impl)
    ours.load_state_dict(native.state_dict())
    x = torch.randn(T, B, I, dtype=D)
    got = []
    for m in (native, ours):
        xi = x.clone().requires_grad_()
        (dx,) = torch.autograd.grad(m(xi)[1][0].tanh().sum(), xi, create_graph=True)
        got.append(torch.autograd.grad(dx.square().sum(), [*m.parameters(), xi]))
    for a, b in zip(got[1], got[0], strict=True):
        close(a, b)
