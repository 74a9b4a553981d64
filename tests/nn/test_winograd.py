"""Winograd F(4x4, 3x3) convolutions (lstmkit.nn._winograd) and ConvLSTM(impl="winograd"): the transforms'
adjoints, the convolution against F.conv2d within the derived float32 bound on every instruction-set path,
gradcheck in float64, the layer against its reference twin, the fallback, and the errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import lstmkit
from checks import ISAS, check_same, on_isa, one_thread
from lstmkit import _rounding
from lstmkit.nn import _cpp, _winograd

pytestmark = pytest.mark.skipif(not _cpp.available(), reason=f"C++ extension unavailable: {_cpp._failure}")

SHAPES = [  # (B, C, K, H, W): frames not multiples of 4 (cropped tiles), one row or column, one tile, wider
    (2, 3, 5, 9, 11), (1, 2, 3, 4, 4), (3, 4, 2, 17, 5), (2, 5, 7, 1, 3), (1, 1, 1, 2, 1), (2, 6, 4, 8, 40),
]
# Rows of 18 tiles (a full and a partial chunk of AVX-512's 16 lanes); 360 tiles a frame, so the transforms' pieces
# (at most 1024 tiles of one channel) hold 2 frames, then 1.
WIDE = [(1, 2, 3, 6, 70), (3, 2, 3, 78, 70)]


_one_thread = pytest.fixture(autouse=True)(one_thread)


isa = pytest.fixture(params=ISAS, name="isa")(on_isa)  # each instruction-set path of the float32 kernels


@pytest.fixture(params=_winograd.PRODUCTS)
def products(request):
    """Runs the test with the float32 channel products by each route (brgemm and MKL's bmm; default_products picks
    one)."""
    with _winograd.products_by(request.param):
        yield request.param


@pytest.mark.parametrize("shape", SHAPES + WIDE, ids=str)
def test_transforms_are_each_others_adjoints(shape, isa):
    """<T x, v> = <x, T* v> for the input and the output transform, in float64 (the backward relies on it)."""
    B, C, K, H, W = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, C, H, W, dtype=torch.float64, generator=g)
    N = _winograd.tiles(B, H, W)
    V = _winograd.input_transform(x)
    dV = torch.randn(V.shape, dtype=torch.float64, generator=g)
    dx = _winograd.input_transform_adjoint(dV, tuple(x.shape))
    assert abs(float((V * dV).sum() - (x * dx).sum())) <= 1e-12 * float((V.abs() * dV.abs()).sum())
    M = torch.randn(36, K, N, dtype=torch.float64, generator=g)
    y = _winograd.output_transform(M, None, x.new_empty(B, K, H, W))
    dy = torch.randn(y.shape, dtype=torch.float64, generator=g)
    dM = _winograd.output_transform_adjoint(dy, torch.empty_like(M))
    assert abs(float((y * dy).sum() - (M * dM).sum())) <= 1e-12 * float((y.abs() * dy.abs()).sum())


def test_input_transform_by_hand():
    """One tile of a 4x4 frame with a single 1 at (0, 0): the padded patch has it at (1, 1), so V = B^T e B with
    e the unit matrix at (1, 1): the outer product of B^T's column 1 with itself."""
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    x[0, 0, 0, 0] = 1.0
    col = torch.tensor([0.0, -4, 4, -2, 2, 4], dtype=torch.float64)
    torch.testing.assert_close(_winograd.input_transform(x).reshape(6, 6), torch.outer(col, col), rtol=0, atol=0)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", SHAPES + WIDE, ids=str)
def test_float32_within_the_derived_bound(shape, bias, isa, products):
    """Output, data, weight and bias gradients in float32 against the exact convolution (F.conv2d in float64 of
    the same float32 inputs): every element within ``error_bound``, which is itself small (not vacuous) at the
    small shapes (the weight gradient's worst case grows with the tiles, N + 24 roundings: at WIDE's 1080 tiles it
    is a third of the gradient, as a worst case is)."""
    B, C, K, H, W = shape
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, C, H, W, generator=g).requires_grad_()
    w = (torch.randn(K, C, 3, 3, generator=g) / (3 * C**0.5)).requires_grad_()
    b = torch.randn(K, generator=g).requires_grad_() if bias else None
    dy = torch.randn(B, K, H, W, generator=g)
    y = _winograd.conv3x3(x, w, b)
    y.backward(dy)
    x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    b64 = b.detach().double().requires_grad_() if bias else None
    y64 = F.conv2d(x64, w64, b64, padding=1)
    y64.backward(dy.double())
    by, bx, bw = _winograd.error_bound(x, w, dy)
    if bias:
        by = by + torch.finfo(torch.float32).eps * (y64.detach().abs() + b64.detach().abs().view(1, K, 1, 1))
    for name, got, want, bound in [("y", y, y64.detach(), by), ("dx", x.grad, x64.grad, bx),
                                   ("dw", w.grad, w64.grad, bw)]:
        err = (got.detach().double() - want).abs()
        assert bool((err <= bound).all()), f"{name}: largest error/bound {float((err / bound).max()):.3g}"
        # Not vacuous: a wrong transform entry or a lost term is off by O(1); the bound stays below 1% of the
        # outputs (it is larger than a direct convolution's: the transforms' absolute values add up where their
        # signed sums cancel).
        if shape in SHAPES:
            assert float(bound.max()) < 1e-2 * (float(want.abs().max()) + 1), f"{name}: the bound says nothing"
    if bias:
        torch.testing.assert_close(b.grad.double(), b64.grad, atol=0, rtol=B * H * W * torch.finfo(torch.float32).eps)


def test_float32_at_the_layer_shape(products):
    """At the ConvLSTM benchmark's channel counts (65 -> 256) on a smaller frame: within the bound, and far closer
    to the exact result than the bound requires on average."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 65, 12, 12, generator=g)
    w = torch.randn(256, 65, 3, 3, generator=g) / (3 * 65**0.5)
    y = _winograd.conv3x3(x, w)
    exact = F.conv2d(x.double(), w.double(), padding=1)
    (bound,) = _winograd.error_bound(x, w)
    err = (y.double() - exact).abs()
    assert bool((err <= bound).all())
    assert float(err.mean()) < 0.1 * float(bound.mean())


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", SHAPES + WIDE, ids=str)
def test_float32_within_the_probable_bound(shape, bias, isa, products):
    """The output in float32 against the exact convolution: every element within ``probable_error`` (the
    probabilistic bound: fails with probability below 3e-8 per element if the analysis is right), which is never
    above the worst case."""
    B, C, K, H, W = shape
    g = torch.Generator().manual_seed(5)
    x = torch.randn(B, C, H, W, generator=g)
    w = torch.randn(K, C, 3, 3, generator=g) / (3 * C**0.5)
    b = torch.randn(K, generator=g) if bias else None
    y = _winograd.conv3x3(x, w, b)
    exact = F.conv2d(x.double(), w.double(), None if b is None else b.double(), padding=1)
    bound = _winograd.probable_error(x, w, b)
    (worst,) = _winograd.error_bound(x, w)
    err = (y.double() - exact).abs()
    assert bool((err <= bound).all()), float((err / bound).max())
    if not bias:
        assert bool((bound <= worst).all())


def test_probable_bound_at_the_layer_shape():
    """At 65 -> 256 channels: far below the worst case (the roundings' square sum, not their sum), still above
    every error, and not vacuous (below 0.2% of the outputs' size; the errors seen are ~1/30 of it)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 65, 12, 12, generator=g)
    w = torch.randn(256, 65, 3, 3, generator=g) / (3 * 65**0.5)
    y = _winograd.conv3x3(x, w)
    exact = F.conv2d(x.double(), w.double(), padding=1)
    bound = _winograd.probable_error(x, w)
    (worst,) = _winograd.error_bound(x, w)
    assert bool(((y.double() - exact).abs() <= bound).all())
    assert float(bound.max()) < 0.1 * float(worst.max())
    assert float(bound.max()) < 2e-3 * float(exact.abs().max())


# --- the channel products by brgemm (the extension's plane_products) ---------------------------------------------
def _gamma(n: int) -> float:
    u = _rounding.unit_roundoff(torch.float32)
    return n * u / (1 - n * u)


PRODUCT_CASES = [  # (P, M, K, N, B column-major, A and C slices of wider planes, accumulate)
    (36, 16, 65, 300, False, False, False),  # the forward's shape, smaller: columns in blocks of 64 and a rest
    (36, 9, 300, 70, False, True, False),  # the data gradient's: rows in blocks of 128; A and C slices
    (36, 16, 500, 65, True, True, True),  # the weight gradient's: B = V^T (column-major), summed into a slice of C
    (3, 1, 1, 1, False, False, False),  # one row, one column, one inner term
    (2, 5, 1, 130, True, False, True),
    (4, 3, 129, 128, False, False, True),  # 128 columns: one block
]


def _product_operands(P, M, K, N, bt, sliced, accumulate, g):
    A = torch.randn(P, M, K + 3 if sliced else K, generator=g)[:, :, :K]
    B = torch.randn(P, N, K, generator=g).transpose(1, 2) if bt else torch.randn(P, K, N, generator=g)
    C = torch.randn(P, M, N + 5 if sliced else N, generator=g)[:, :, :N]
    return A, B, C


@pytest.mark.parametrize("case", PRODUCT_CASES, ids=str)
def test_plane_products_within_the_float32_bound(case):
    """Every element of C (+)= A @ B, plane by plane, within gamma_n |A| |B| (+ |C|) of the exact float64 result
    (n = K, or K + 1 with the sum into C: any order of summation), for row- and column-major B, A and C slices of
    wider planes, and blocks of rows and columns with their rests; C outside the slice is left as it was."""
    P, M, K, N, bt, sliced, accumulate = case
    g = torch.Generator().manual_seed(7)
    A, B, C = _product_operands(P, M, K, N, bt, sliced, accumulate, g)
    C0, whole0 = C.double().clone(), C._base.clone() if C._base is not None else None
    _cpp._ext().plane_products(A, B, C, accumulate)
    exact = torch.bmm(A.double(), B.double()) + (C0 if accumulate else 0)
    bound = _gamma(K + accumulate) * (torch.bmm(A.double().abs(), B.double().abs()) + (C0.abs() if accumulate else 0))
    err = (C.double() - exact).abs()
    assert bool((err <= bound).all()), float((err / bound).max())
    assert float(bound.max()) < 1e-2 * float(exact.abs().max())  # not vacuous: a lost term is off by O(1)
    if whole0 is not None:  # the columns beside the slice are untouched
        assert torch.equal(C._base[:, :, N:], whole0[:, :, N:])


def test_plane_products_do_not_depend_on_the_threads():
    """The same bits with one thread and with two: each element is summed in one order whatever the split."""
    g = torch.Generator().manual_seed(8)
    A, B, _ = _product_operands(36, 16, 300, 200, False, False, False, g)
    out = []
    for threads in (1, 2):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            C = torch.empty(36, 16, 200)
            _cpp._ext().plane_products(A, B, C, False)
        finally:
            torch.set_num_threads(before)
        out.append(C)
    assert torch.equal(out[0], out[1])


def test_plane_products_no_inner_terms():
    """K = 0: C = 0, or C unchanged with accumulate."""
    A, B = torch.empty(2, 3, 0), torch.empty(2, 0, 4)
    C = torch.ones(2, 3, 4)
    _cpp._ext().plane_products(A, B, C, True)
    assert torch.equal(C, torch.ones(2, 3, 4))
    _cpp._ext().plane_products(A, B, C, False)
    assert torch.equal(C, torch.zeros(2, 3, 4))


def test_plane_products_errors():
    ext = _cpp._ext()
    with pytest.raises(RuntimeError, match=r"plane_products: A, B and C must be 3-dimensional float32 CPU tensors"):
        ext.plane_products(torch.zeros(2, 3, 4, dtype=torch.float64), torch.zeros(2, 4, 5, dtype=torch.float64),
                           torch.zeros(2, 3, 5, dtype=torch.float64), False)  # fmt: skip
    with pytest.raises(RuntimeError, match=r"plane_products: shapes \[2, 3, 4\] @ \[2, 5, 5\] -> \[2, 3, 5\] do "
                                           r"not match"):  # fmt: skip
        ext.plane_products(torch.zeros(2, 3, 4), torch.zeros(2, 5, 5), torch.zeros(2, 3, 5), False)
    with pytest.raises(RuntimeError, match=r"plane_products: A and C need contiguous rows, B contiguous rows or "
                                           r"columns"):  # fmt: skip
        ext.plane_products(torch.zeros(2, 4, 3).transpose(1, 2), torch.zeros(2, 4, 5), torch.zeros(2, 3, 5), False)
    with pytest.raises(ValueError, match=r"^products must be one of \('brgemm', 'bmm'\), got 'mkl'$"):
        _winograd.products_by("mkl").__enter__()


@pytest.mark.parametrize("route", _winograd.PRODUCTS)
def test_products_by_selects_the_route(monkeypatch, route):
    """products_by decides what the float32 products run (float64 always bmm), and restores the default after."""
    calls = []
    ext = _cpp._ext()
    monkeypatch.setattr(_cpp, "_ext", lambda: type("E", (), {
        "plane_products": staticmethod(lambda *a: calls.append("brgemm") or ext.plane_products(*a))})())  # fmt: skip
    A, B = torch.randn(36, 2, 3), torch.randn(36, 3, 4)
    with _winograd.products_by(route):
        got = _winograd.products(A, B, torch.empty(36, 2, 4))
        _winograd.products(A.double(), B.double(), torch.empty(36, 2, 4, dtype=torch.float64))
    assert calls == (["brgemm"] if route == "brgemm" else [])
    torch.testing.assert_close(got, torch.bmm(A, B))
    assert _winograd._products is None  # back to default_products


@pytest.mark.parametrize(("isa", "route"), [("avx512", "bmm"), ("avx2", "brgemm"), ("generic", "brgemm")])
def test_default_products_by_instruction_set(monkeypatch, isa, route):
    """Outside products_by, the float32 products run as default_products says for the extension's kernels: bmm on
    AVX-512, brgemm elsewhere."""
    calls = []
    ext = _cpp._ext()
    monkeypatch.setattr(_cpp, "_ext", lambda: type("E", (), {
        "isa": staticmethod(lambda: isa),
        "plane_products": staticmethod(lambda *a: calls.append("brgemm") or ext.plane_products(*a))})())  # fmt: skip
    A, B = torch.randn(36, 2, 3), torch.randn(36, 3, 4)
    assert _winograd.default_products() == route
    torch.testing.assert_close(_winograd.products(A, B, torch.empty(36, 2, 4)), torch.bmm(A, B))
    assert calls == (["brgemm"] if route == "brgemm" else [])


@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_float64(bias):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    assert torch.autograd.gradcheck(_winograd.conv3x3, (x, w, b))


def test_conv3x3_errors():
    with pytest.raises(ValueError, match=r"^conv3x3 needs x \(B, C, H, W\) and w \(K, C, 3, 3\), got "
                                         r"\(1, 2, 4, 4\) and \(3, 2, 5, 5\)$"):
        _winograd.conv3x3(torch.zeros(1, 2, 4, 4), torch.zeros(3, 2, 5, 5))


# --- the ConvLSTM layer -----------------------------------------------------------------------------------------
d = torch.float64


@pytest.mark.parametrize("init", [False, True])
@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
def test_layer_equals_reference(layers, lengths, init):
    """Values, input and state gradients and every parameter gradient, in float64 (as test_convlstm's twins)."""
    kw = dict(hidden_channels=[3, 2] if layers == 2 else 3, num_layers=layers)
    m = lstmkit.ConvLSTM(2, dtype=d, impl="winograd", **kw)
    ref = lstmkit.ConvLSTM(2, dtype=d, impl="reference", **kw)
    ref.load_state_dict(m.state_dict())
    x = torch.randn(4, 3, 2, 5, 7, dtype=d)
    inputs = (x, [(torch.randn(3, hc, 5, 7, dtype=d), torch.randn(3, hc, 5, 7, dtype=d))
                  for hc in m.hidden_channels]) if init else (x,)  # fmt: skip
    check_same(m, ref, *inputs, atol=1e-12, rtol=1e-10, **({"lengths": torch.tensor([4, 2, 0])} if lengths else {}))


def test_layer_zero_state_gradcheck():
    """hx=None: step 0 convolves x_0 alone (the transform of C channels, the gradient into W_ih only)."""
    m = lstmkit.ConvLSTM(2, 2, dtype=d, impl="winograd")
    x = torch.randn(3, 2, 2, 4, 6, dtype=d, requires_grad=True)
    names, params = zip(*m.named_parameters(), strict=True)

    def f(x, *ps):
        return torch.func.functional_call(m, dict(zip(names, ps, strict=True)), (x,))[0]

    assert torch.autograd.gradcheck(f, (x, *params))


def _layer_bound(m: lstmkit.ConvLSTM, x: torch.Tensor, impl: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The float64 outputs (T, B, Hc, H, W) of the plain ConvLSTM stack ``m`` for x, and per step a bound on the
    float32 error of ``impl``'s outputs, derived step by step as ``export.frames.frames_tolerance`` derives the
    frame forecaster's (``_rounding``'s points 3-5: the cell with this step's largest |c|, the steps' errors adding
    as a random walk, the layer below's error through the input kernel's gain), with each step's gate
    pre-activations' own rounding: for ``"winograd"`` the convolution's probabilistic bound
    (``_winograd.probable_error`` on this step's [x_t, h_{t-1}]), for ``"bptt"`` gamma(K) times the sum of |terms|,
    K = 9 (C + Hc) + 2 (both as ``_rounding`` takes roundings: independent, of mean zero)."""
    from lstmkit.export.frames import _propagation_gain

    u = _rounding.unit_roundoff(torch.float32)
    inp = x.double()
    err_in = [0.0] * x.shape[0]  # the given frames are exact
    for layer in range(m.num_layers):
        w_ih, w_hh, b = (getattr(m, f"{n}_l{layer}").detach().double() for n in ("weight_ih", "weight_hh", "bias"))
        w = torch.cat([w_ih, w_hh], 1)  # (G, C + Hc, 3, 3): one convolution over [x_t, h_{t-1}]
        gain, K = _propagation_gain(w_ih), w[0].numel() + 2
        h = c = inp.new_zeros(inp.shape[1], w_hh.shape[1], *inp.shape[-2:])
        sq, outs, errs = 0.0, [], []
        for t in range(inp.shape[0]):
            xh = torch.cat([inp[t], h], 1)
            a = F.conv2d(xh, w, b, padding=1)
            if impl == "winograd":
                own = float(_winograd.probable_error(xh.float(), w.float(), b.float()).max())
            else:
                own = _rounding.gamma(K, u) * float(F.conv2d(xh.abs(), w.abs(), b.abs(), padding=1).max())
            i, f, g, o = a.chunk(4, dim=1)
            c_prev, c = c, torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            c_max = max(float(c.abs().max()), float(c_prev.abs().max()))
            da = own + gain * err_in[t]
            dh = _rounding.cell_step_error(da, c_max, u)
            sq += dh * dh
            errs.append(math.sqrt(sq))
            outs.append(h)
        inp, err_in = torch.stack(outs), errs
    return inp, torch.tensor(err_in, dtype=torch.float64)


def test_layer_float32_within_its_derived_bound(isa, products):
    """float32 at a moderate size, on each instruction-set copy of the transforms and the gate kernels and each
    route of the products: the Winograd layer and the direct-convolution one (impl="bptt") each within its own
    derived bound of the float64 result (``_layer_bound``, its model checked against the float64 reference layer),
    and each bound says something: below 1% of the outputs' size for the direct layer, 5% for the Winograd one (its
    transforms' entries reach 8 and 1/24; here 3.7%). Both are ~1e4 times the errors seen: the layer analysis (as
    for the 1-D layers) takes every step's largest pre-activation error at every pixel and adds the steps up."""
    torch.manual_seed(4)
    m = lstmkit.ConvLSTM(4, 16, num_layers=2, impl="winograd")
    x = torch.randn(5, 2, 4, 12, 12)
    m64 = lstmkit.ConvLSTM(4, 16, num_layers=2, impl="reference", dtype=d)
    m64.load_state_dict({k: v.double() for k, v in m.state_dict().items()})
    with torch.no_grad():
        exact = m64(x.double())[0]  # (T, B, Hc, H, W)
    for impl in ("winograd", "bptt"):
        m.impl = impl
        with torch.no_grad():
            y = m(x)[0]
        replica, bound = _layer_bound(m, x, impl)
        torch.testing.assert_close(replica, exact, rtol=1e-12, atol=1e-12)  # the bound follows the same model
        err = (y.double() - exact).abs().flatten(1).max(1).values  # (T,) the largest error of each step
        assert bool((err <= bound).all()), (impl, err.tolist(), bound.tolist())
        says = {"winograd": 5e-2, "bptt": 1e-2}[impl]
        assert float(bound.max()) < says * float(exact.abs().max()), (impl, "the bound says nothing")


@pytest.mark.parametrize("impl", ["bptt", "winograd"])
def test_layer_gate_math_without_the_cpp_kernels(monkeypatch, impl):
    """Where the C++ gate kernels cannot run (off the CPU), the tensor-operation twin of the same backward: equal to
    the reference in float64, and to the C++ kernels' run."""
    from lstmkit.nn import _convlstm_bptt

    m = lstmkit.ConvLSTM(2, 3, num_layers=2, dtype=d, impl=impl)
    ref = lstmkit.ConvLSTM(2, 3, num_layers=2, dtype=d, impl="reference")
    ref.load_state_dict(m.state_dict())
    x = torch.randn(4, 3, 2, 5, 6, dtype=d)
    kw = {"lengths": torch.tensor([4, 2, 1])}
    check_same(m, ref, x, atol=1e-12, rtol=1e-10, **kw)
    with_kernels = m(x, **kw)[0]
    monkeypatch.setattr(_convlstm_bptt, "_cpp_pointwise", lambda x: False)
    check_same(m, ref, x, atol=1e-12, rtol=1e-10, **kw)
    torch.testing.assert_close(m(x, **kw)[0], with_kernels, atol=1e-13, rtol=1e-12)


@pytest.mark.parametrize("impl", ["bptt", "winograd"])
def test_layer_under_fake_tensors(impl):
    """Under a tracer's fake tensors (what torch.compile and torch.export run first) the C++ kernels, which read
    tensor data, are left out: the layer runs its tensor operations and direct convolutions, shapes right."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    m = lstmkit.ConvLSTM(2, 3, num_layers=2, impl=impl)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        x = mode.from_tensor(torch.randn(3, 2, 2, 5, 5, requires_grad=True))
        y, finals = m(x)
        y.sum().backward()
    assert tuple(y.shape) == (3, 2, 3, 5, 5) and tuple(finals[1][0].shape) == (2, 3, 5, 5)


def test_layer_falls_back_to_direct_convolutions(monkeypatch):
    """Where ``_winograd.usable`` says no (off the CPU, no C++ extension), impl="winograd" runs "bptt" exactly."""
    monkeypatch.setattr(_winograd, "usable", lambda x, w: False)
    m = lstmkit.ConvLSTM(2, 3, impl="winograd")
    x = torch.randn(3, 2, 2, 5, 5)
    y = m(x)[0]
    m.impl = "bptt"
    assert torch.equal(y, m(x)[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [(dict(kernel_size=5), "impl='winograd' (F(4x4, 3x3)) runs 3x3 kernels only, got kernel_size (5, 5); "
                           "use impl='bptt' or 'auto'"),
     (dict(peephole=True), "impl='winograd' (the hand-written backward) runs the plain cell only, not peephole or "
                           "layer_norm; use impl='fused' or 'auto'")],
    ids=["kernel", "peephole"],
)
def test_layer_errors(kwargs, message):
    with pytest.raises(ValueError) as e:
        lstmkit.ConvLSTM(2, 3, impl="winograd", **kwargs)
    assert str(e.value) == message
