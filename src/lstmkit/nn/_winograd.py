r"""Same-padded 3x3 convolutions by Winograd's F(4x4, 3x3) minimal filtering (Lavin and Gray 2016).

A direct 3x3 convolution spends 144 multiplications per input-output channel pair on each 4 x 4 block of
outputs; F(4x4, 3x3) spends 36: each 6 x 6 input patch d and each filter g are transformed (V = B^T d B,
U = G g G^T), multiplied elementwise and summed over the input channels (36 matrix products, one per
position xi of the 6 x 6 tile), and transformed back (y = A^T M A). On CPUs whose direct convolution
already runs near the FMA peak (the ConvLSTM's case, docs/benchmarks.md) that is the one way to do less
work per step. The tile transforms are C++ (``csrc/winograd_transforms.h``, in the lstmkit extension), the
products in float32 are oneDNN's brgemm micro-kernel on panels of the right operand where the extension runs its
AVX2 kernels and MKL's ``bmm`` where it runs AVX-512 ones (``default_products``: the faster on each in training steps
of the layer, docs/benchmarks.md), in float64 ``torch.bmm``; the filter transform (small)
is done here in float64.

Shapes: x (B, C, H, W), w (K, C, 3, 3), N = B ceil(H/4) ceil(W/4) tiles; V (36, C, N), U (36, K, C),
M (36, K, N). float32 and float64 on the CPU only, and only where the C++ extension builds (``usable``);
callers use ``F.conv2d`` otherwise.

Accuracy: the transforms are exact in real arithmetic but their entries reach 8 (A) and 1/24 (G), so
float32 rounding errors are larger than a direct convolution's: each output is off by at most
gamma_{C+29} = (C + 29) u / (1 - (C + 29) u) times the same computation run with absolute values
(``error_bound`` below, derived there). tests/nn/test_winograd.py holds every path to it, checks the bound
stays below 1% of the outputs' size, and at 65 -> 256 channels that the mean error is below a tenth of the mean
bound. ``conv3x3`` is the
stand-alone convolution (its reference twin is ``F.conv2d``); the ConvLSTM layer uses ``WinogradConv``,
which keeps the filter transform and the buffers across time steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from . import _cpp, _workspace
from ._second_order import refuse_second_order

# The matrices (rows as in the C++ header); G is applied here, in float64.
BT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0),
      (0, 4, 0, -5, 0, 1))  # fmt: skip
G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6), (1 / 24, 1 / 12, 1 / 6),
     (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))  # fmt: skip
AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))


def usable(x: Tensor, weight: Tensor) -> bool:
    """Whether ``conv3x3`` / ``WinogradConv`` can run x by weight: a 3x3 kernel, CPU, float32 or float64, not under
    a tracer (torch.compile, torch.export, fake tensors: the C++ transforms read tensor data), and the C++
    extension available (it is built on first use; ``LSTMKIT_NO_CPP=1`` turns it off)."""
    return (tuple(weight.shape[-2:]) == (3, 3) and x.device.type == "cpu" and weight.device.type == "cpu"
            and x.dtype in _cpp.SUPPORTED_DTYPES and x.dtype == weight.dtype and not _cpp.tracing(x)
            and _cpp.available())  # fmt: skip


PRODUCTS = ("brgemm", "bmm")
_products: str | None = None  # None: by the kernels' instruction set (default_products)


def default_products() -> str:
    """How the float32 channel products run by default: ``"bmm"`` (MKL) where the extension runs its AVX-512
    kernels, ``"brgemm"`` (its own panels for oneDNN's micro-kernel) elsewhere. Each was the faster in interleaved
    training steps of the layer on that kind of CPU (docs/benchmarks.md, sessions 20 and 22)."""
    return "bmm" if _cpp._ext().isa() == "avx512" else "brgemm"


@contextlib.contextmanager
def products_by(name: str) -> Iterator[None]:
    """Run the float32 channel products by ``name`` inside the block, ``"brgemm"`` or ``"bmm"``, whatever
    ``default_products`` says (for benchmarks/convlstm.py's A/B)."""
    global _products
    if name not in PRODUCTS:
        raise ValueError(f"products must be one of {PRODUCTS}, got {name!r}")
    old, _products = _products, name
    try:
        yield
    finally:
        _products = old


def products(A: Tensor, B: Tensor, out: Tensor, *, accumulate: bool = False) -> Tensor:
    """out[p] (+)= A[p] @ B[p] for the 36 planes p: A (36, M, K) and out (36, M, N) with contiguous rows, B (36, K, N)
    with contiguous rows or columns. float32: the extension's ``plane_products`` (brgemm) or ``torch.bmm``, as
    ``products_by`` or else ``default_products`` says; float64: ``torch.bmm``."""
    if A.dtype == torch.float32 and (_products or default_products()) == "brgemm":
        _cpp._ext().plane_products(A, B, out, accumulate)
    elif accumulate:
        out.baddbmm_(A, B)
    else:
        torch.bmm(A, B, out=out)
    return out


def tiles(B: int, H: int, W: int) -> int:
    """N: the 4 x 4 output tiles of B frames of H x W."""
    return B * (-(-H // 4)) * (-(-W // 4))


def filter_transform(w: Tensor) -> Tensor:
    """U (36, K, C) = G w G^T for w (K, C, 3, 3), computed in float64 and returned in w's dtype, contiguous."""
    g = torch.tensor(G, dtype=torch.float64, device=w.device)
    u = torch.einsum("ai,kcij,bj->abkc", g, w.detach().double(), g)  # (6, 6, K, C)
    return u.reshape(36, *w.shape[:2]).to(w.dtype).contiguous()


def filter_transform_adjoint(dU: Tensor) -> Tensor:
    """dw (K, C, 3, 3) = G^T dU G: the gradient of ``filter_transform``'s input, from dU (36, K, C) (float64)."""
    g = torch.tensor(G, dtype=torch.float64, device=dU.device)
    return torch.einsum("ai,abkc,bj->kcij", g, dU.double().reshape(6, 6, *dU.shape[1:]), g).to(dU.dtype)


def input_transform(x: Tensor, out: Tensor | None = None) -> Tensor:
    """V (36, C, N) from x (B, C, H, W); into ``out`` when given (contiguous, that shape)."""
    B, C, H, W = x.shape
    V = x.new_empty(36, C, tiles(B, H, W)) if out is None else out
    _cpp._ext().winograd_input(x.contiguous(), V)
    return V


def input_transform_adjoint(dV: Tensor, shape: tuple[int, ...], out: Tensor | None = None) -> Tensor:
    """dx (B, C, H, W) = the transpose of ``input_transform`` applied to dV (36, C, N)."""
    dx = dV.new_empty(shape) if out is None else out
    _cpp._ext().winograd_input_adjoint(dV.contiguous(), dx)
    return dx


def output_transform(M: Tensor, bias: Tensor | None, out: Tensor) -> Tensor:
    """out (B, K, H, W) = A^T M A (+ bias) from M (36, K, N)."""
    _cpp._ext().winograd_output(M, None if bias is None else bias.detach().contiguous(), out)
    return out


def output_transform_adjoint(dy: Tensor, out: Tensor) -> Tensor:
    """out (36, K, N) = the transpose of ``output_transform`` (without the bias) applied to dy (B, K, H, W)."""
    _cpp._ext().winograd_output_adjoint(dy.contiguous(), out)
    return out


class Conv3x3Fn(torch.autograd.Function):
    """(x, w, b) -> conv2d(x, w, b, padding=1), forward and backward through the Winograd transforms."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        B, _, H, W = x.shape
        U = filter_transform(w)  # (36, K, C)
        V = input_transform(x)  # (36, C, N)
        y = x.new_empty(B, w.shape[0], H, W)
        output_transform(products(U, V, V.new_empty(36, U.shape[1], V.shape[2])), b, y)
        ctx.save_for_backward(U, V)
        ctx.shape, ctx.has_bias = tuple(x.shape), b is not None
        return y

    @staticmethod
    @refuse_second_order(
        "conv3x3's Winograd backward cannot be differentiated again (gradients made with create_graph=True were "
        "differentiated); use torch.nn.functional.conv2d(x, w, b, padding=1) for that"
    )
    def backward(ctx, dy: Tensor):
        U, V = ctx.saved_tensors
        dM = output_transform_adjoint(dy, dy.new_empty(36, U.shape[1], V.shape[2]))  # (36, K, N)
        dx = dw = None
        if ctx.needs_input_grad[0]:
            UT = U.transpose(1, 2).contiguous()  # (36, C, K)
            dx = input_transform_adjoint(products(UT, dM, dM.new_empty(36, UT.shape[1], dM.shape[2])), ctx.shape)
        if ctx.needs_input_grad[1]:
            dw = filter_transform_adjoint(products(dM, V.transpose(1, 2), dM.new_empty(U.shape)))
        db = dy.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


def conv3x3(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """``F.conv2d(x, w, b, padding=1)`` for a 3x3 w (K, C, 3, 3) and x (B, C, H, W), by F(4x4, 3x3); see
    ``usable`` for where it runs."""
    if tuple(w.shape[-2:]) != (3, 3) or x.dim() != 4 or w.dim() != 4 or x.shape[1] != w.shape[1]:
        raise ValueError(f"conv3x3 needs x (B, C, H, W) and w (K, C, 3, 3), got {tuple(x.shape)} and {tuple(w.shape)}")
    return Conv3x3Fn.apply(x, w, b)


def error_bound(x: Tensor, w: Tensor, dy: Tensor | None = None) -> tuple[Tensor, ...]:
    r"""First-order bounds on the rounding errors of ``conv3x3`` in x's dtype, elementwise, in float64.

    Every stage is a sum of products; a computed sum of n products differs from the exact one by at most
    gamma_n = n u / (1 - n u) times the sum of the products' absolute values (u = the unit roundoff;
    Higham, Accuracy and Stability of Numerical Algorithms, 3.1), whatever the summation order (so any
    BLAS blocking). Composed through the stages and kept to first order in u, the error of each output is
    at most gamma_n times the same computation run with the absolute values of every matrix and operand,
    n the longest chain of roundings an output passes through. For the forward: 8 in the input transform
    (two passes over at most four nonzero terms), 6 + 1 in the float64 filter transform and its rounding
    to the dtype, C + 1 in the channel products, 12 in the output transform (two passes of six terms),
    1 for the bias: n = C + 29. For the data gradient (the transposes): 8 + K + 1 + 12 and 4 overlapping
    tiles added (n = K + 25); for the weight gradient: 8 + 8 + N + 1 + 7 (n = N + 24). Returns the bound
    on y, and with ``dy`` also on dx and dw (for the gradients of sum(y dy))."""
    from .. import _rounding  # here: ``import lstmkit`` loads the layers only

    u = _rounding.unit_roundoff(x.dtype)
    C, K, N = w.shape[1], w.shape[0], tiles(x.shape[0], *x.shape[-2:])

    def gamma(n: int) -> float:  # the worst case: _rounding.gamma is the probabilistic bound, not a guarantee
        return n * u / (1 - n * u)

    bt, g, at = (torch.tensor(m, dtype=torch.float64).abs() for m in (BT, G, AT))
    xa = x.detach().double().abs().requires_grad_(dy is not None)
    wa = w.detach().double().abs().requires_grad_(dy is not None)
    B, _, H, W = x.shape
    th, tw = -(-H // 4), -(-W // 4)
    d = torch.nn.functional.pad(xa, (1, 1 + 4 * tw - W, 1, 1 + 4 * th - H)).unfold(2, 6, 4).unfold(3, 6, 4)
    v = torch.einsum("ai,nctwij,bj->abntwc", bt, d, bt)  # |B^T| |d| |B|: (6, 6, B, th, tw, C)
    uu = torch.einsum("ai,kcij,bj->abck", g, wa, g)  # |G| |w| |G^T|: (6, 6, C, K)
    m = torch.einsum("abntwc,abck->abntwk", v, uu)
    y = torch.einsum("pa,abntwk,qb->nktpwq", at, m, at).reshape(B, K, 4 * th, 4 * tw)[:, :, :H, :W]
    out = (gamma(C + 29) * y.detach(),)
    if dy is not None:
        dx, dw = torch.autograd.grad(y, (xa, wa), dy.detach().double().abs())
        out += (gamma(K + 25) * dx, gamma(N + 24) * dw)
    return out


def probable_error(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """A bound on each output's float32 rounding error in ``conv3x3(x, w, b)`` that holds with probability at least
    1 - 2 exp(-LAMBDA^2 / 2) per output (LAMBDA = 6: 3e-8), where ``error_bound`` is the worst case.

    Higham and Mary's probabilistic analysis (SIAM J. Sci. Comput. 41, 2019; ``lstmkit._rounding``): every rounding
    is an independent error delta_j of mean zero with |delta_j| <= u |v_j|, v_j the value it rounds, and an output
    is off by sum_j c_j delta_j, c_j its sensitivity to that value (first order). By Hoeffding's inequality that sum
    is below LAMBDA u sqrt(sum_j c_j^2 v_j^2). The events, stage by stage, each value bounded by the sum of the
    absolute values of its terms (S) and counted twice per term (a product and an addition, conservatively):
    the input transform's two passes (each element a sum of at most four terms of B^T: 2 nnz S^2, with its
    sensitivity through the rest of the computation), the filter transform's rounding to the dtype (U itself),
    the C products and their sums (2 C, S = sum_c |U V|), the output transform's two passes (2 nnz of A^T), and
    the bias. Which pass of a transform runs first is the kernel's choice: both orders' events are counted.
    Where that exceeds the worst case (few terms: LAMBDA sqrt(n) > n), the worst case (``error_bound``, plus u |y|
    for the bias) is returned. Returns (B, K, H, W), float64."""
    from .. import _rounding  # here: ``import lstmkit`` loads the layers only

    u, lam = _rounding.unit_roundoff(x.dtype), _rounding.LAMBDA
    bt, g, at = (torch.tensor(m, dtype=torch.float64) for m in (BT, G, AT))
    n_bt, n_at = 2.0 * (bt != 0).sum(1).double(), 2.0 * (at != 0).sum(1).double()  # events per element of a pass
    X, Wd = x.detach().double(), w.detach().double()
    (B, C, H, W), K = X.shape, Wd.shape[0]
    th, tw = -(-H // 4), -(-W // 4)
    d = torch.nn.functional.pad(X, (1, 1 + 4 * tw - W, 1, 1 + 4 * th - H)).unfold(2, 6, 4).unfold(3, 6, 4)
    d = d.permute(0, 2, 3, 1, 4, 5)  # (B, th, tw, C, 6, 6): tiles, channel, patch rows i, columns j
    U = torch.einsum("ai,kcij,bj->cabk", g, Wd, g)  # (C, 6, 6, K)
    total = torch.zeros(B, th, tw, K, 4, 4, dtype=torch.float64)  # per output: the sum of squared contributions
    V = None  # the exact input transform (rows first), kept from the first order's pass
    for patch, u_c, p_first in ((d, U, False), (d.transpose(-1, -2), U.transpose(1, 2), True)):
        # One order of the input transform's passes (rows first; then the same on the transposed patch, whose
        # transform is V^T: its outputs' positions (p, q) swapped back at the end).
        t = torch.einsum("ai,ntwcij->ntwcaj", bt, patch)  # pass 1
        s1 = torch.einsum("ai,ntwcij->ntwcaj", bt.abs(), patch.abs())
        if V is None:
            V = torch.einsum("ntwcaj,bj->ntwcab", t, bt)  # pass 2: V = B^T d B
        s2 = torch.einsum("ntwcaj,bj->ntwcab", t.abs(), bt.abs())
        coef = torch.einsum("qb,cabk,bj->cajkq", at, u_c, bt)  # dy[p, q, k] / dt[a, j] = at[p, a] coef[a, j, q]
        r = torch.einsum("pa,cajkq,ntwcaj->ntwkpq", at**2 * n_bt, coef**2, s1**2)  # pass 1's events
        r += torch.einsum("pa,qb,cabk,ntwcab->ntwkpq", at**2, at**2 * n_bt, u_c**2, s2**2)  # pass 2's
        if p_first:
            r = r.transpose(-1, -2)
        total += r
    total += torch.einsum("pa,qb,ntwcab,cabk->ntwkpq", at**2, at**2, V**2, U**2)  # U rounded to the dtype
    M = torch.einsum("ntwcab,cabk->ntwkab", V, U)
    s_m = torch.einsum("ntwcab,cabk->ntwkab", V.abs(), U.abs())
    total += torch.einsum("pa,qb,ntwkab->ntwkpq", at**2, at**2, 2 * C * s_m**2)  # the products and their sums
    for m, p_first in ((M, False), (M.transpose(-1, -2), True)):  # the output transform, either pass first
        s5 = torch.einsum("pa,ntwkab->ntwkpb", at.abs(), m.abs())  # pass 1: s = A^T M
        r = torch.einsum("qb,p,ntwkpb->ntwkpq", at**2, n_at, s5**2)
        s6 = torch.einsum("ntwkpb,qb->ntwkpq", torch.einsum("pa,ntwkab->ntwkpb", at, m).abs(), at.abs())
        r += n_at.view(1, 4) * s6**2  # pass 2: y = s A, n_at[q] events
        total += r.transpose(-1, -2) if p_first else r
    y = torch.einsum("pa,ntwkab,qb->ntwkpq", at, M, at)
    if b is not None:
        y = y + b.detach().double().view(1, 1, 1, -1, 1, 1)
        total += y**2  # the bias addition
    def frames(t: Tensor) -> Tensor:  # (B, th, tw, K, 4, 4) -> (B, K, H, W)
        return t.permute(0, 3, 1, 4, 2, 5).reshape(B, K, 4 * th, 4 * tw)[:, :, :H, :W]

    (worst,) = error_bound(x, w)  # where few terms meet, LAMBDA sqrt(n) exceeds n: the worst case is smaller
    if b is not None:
        worst = worst + u * (frames(y).abs() + b.detach().double().abs().view(1, -1, 1, 1))
    return torch.minimum(frames(lam * u * total.sqrt()), worst)


class WinogradConv:
    """The ConvLSTM layer's per-step convolution over [x_t, h_{t-1}] by F(4x4, 3x3), for ``_convlstm_bptt``.

    Made once per layer call with the concatenated weight (G, C + Hc, 3, 3): the filter transform U is
    computed once for all T steps, each step's input transform V_t is kept for its weight gradient, and
    the products' (36, G, N) buffer is reused by every step. The weight gradient is summed in the
    transformed domain over the steps (dU) and transformed back once (``weight_grad``).
    """

    def __init__(self, weight: Tensor, bias: Tensor | None, T: int, B: int, H: int, W: int) -> None:
        self.G, self.Cin = weight.shape[:2]
        self.U = filter_transform(weight)  # (36, G, C + Hc)
        self.UT: Tensor | None = None  # (36, C + Hc, G), made by the backward
        self.bias = bias
        self.shape = (B, H, W)
        self.N = tiles(B, H, W)
        self.V = _workspace.take(weight, T, 36, self.Cin, self.N)  # every step's input transform
        self.M = _workspace.take(weight, 36, self.G, self.N)  # the products, then their gradients, reused
        self.dU: Tensor | None = None
        self.dV: Tensor | None = None  # (36, C + Hc, N), the data gradient's products, made by the backward

    def forward(self, t: int, xh: Tensor, channels: int, out: Tensor) -> Tensor:
        """out (B, G, H, W) = the convolution of step t's xh (B, C + Hc, H, W) by the weight's first ``channels``
        input channels (all, or C alone where h_0 is known to be zero) plus the bias."""
        V = input_transform(xh, self.V[t])
        products(self.U[:, :, :channels], V[:, :channels], self.M)
        return output_transform(self.M, self.bias, out)

    def start_backward(self) -> None:
        """Zero the weight gradient's sum (a graph kept with ``retain_graph`` may be differentiated again)."""
        self.dU = self.U.new_zeros(self.U.shape)

    def backward(self, t: int, da: Tensor, channels: int, dxh: Tensor | None) -> Tensor | None:
        """Add step t's weight gradient for the output gradient da (B, G, H, W) (after ``start_backward``); with
        ``dxh`` (B, channels, H, W) write the gradient of the step's input into it and return it."""
        dM = output_transform_adjoint(da, self.M)
        assert self.dU is not None, "start_backward first"
        products(dM, self.V[t][:, :channels].transpose(1, 2), self.dU[:, :, :channels], accumulate=True)
        if dxh is None:
            return None
        if self.UT is None:
            self.UT = self.U.transpose(1, 2).contiguous()
            self.dV = _workspace.take(self.U, 36, self.Cin, self.N)  # reused: fresh ones per step cost page faults
        dV = self.dV if channels == self.Cin else self.U.new_empty(36, channels, self.N)
        products(self.UT[:, :channels], dM, dV)  # (36, channels, N)
        return input_transform_adjoint(dV, tuple(dxh.shape), dxh)

    def weight_grad(self) -> Tensor:
        """dw (G, C + Hc, 3, 3) summed over the steps' ``backward`` calls."""
        assert self.dU is not None, "start_backward first"
        return filter_transform_adjoint(self.dU)
