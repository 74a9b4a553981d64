"""lstmkit's layers under ``torch.autocast`` on the CPU (bfloat16), where torch.nn.LSTM runs too.

What autocast does to an ``LSTM``, exactly: its input projection (``F.linear``, an autocast op: ``input_gates``'
one product with the biases, or the reference loop's product without them) runs in bfloat16, the recurrence in the
parameters' float32 (the kernels read float32 or float64; autocast is off around it); the output is float32. In
inference on the CPU the C++ kernel computes the input side itself, in float32. ``ConvLSTM``'s hand-written
layer (``impl="bptt"``, ``"winograd"``) runs with autocast off. Before, training under autocast stopped inside the
C++ kernel ("supports float32 and float64, got torch.bfloat16") and ``impl="bptt"`` inside its gate kernel.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lstmkit
from checks import one_thread
from lstmkit.nn import _cpp, layer_weights
from lstmkit.nn._fused import ScanArgs, scan_reference
from tolerances import scan_tolerance

_one_thread = pytest.fixture(autouse=True)(one_thread)

T, B, I, H = 6, 3, 5, 7
KERNELS = [
    "reference",
    "fused",
    pytest.param("cpp", marks=pytest.mark.skipif(not _cpp.available(), reason="C++ kernel not built here")),
]


def autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("impl", KERNELS)
@pytest.mark.parametrize("peephole", [False, True])
def test_training_projects_in_bfloat16_and_recurs_in_float32(impl, peephole):
    """The layer's output equals the float32 reference scan over autocast's own bfloat16 input projection, within
    the float32 bound of two scans over the same gates; the gradients reach every parameter in float32."""
    torch.manual_seed(0)
    m = lstmkit.LSTM(I, H, impl=impl, peephole=peephole)
    x = torch.randn(T, B, I, requires_grad=True)
    with autocast():
        y, (h, c) = m(x)
    w = layer_weights(m)
    bf16 = torch.bfloat16
    x_, w_ih, b = x.detach().to(bf16), w.w_ih.detach().to(bf16), (w.b_ih + w.b_hh).detach()
    if impl == "reference":  # its input side op by op: W_ih x in bfloat16, then + b_ih + b_hh
        xg = F.linear(x_, w_ih).float() + w.b_ih.detach() + w.b_hh.detach()
    else:  # input_gates: one product with the biases, all in bfloat16
        xg = F.linear(x_, w_ih, b.to(bf16)).float()
    zeros = torch.zeros(B, H)
    args = ScanArgs(xg, zeros, zeros, w.w_hh.detach(), None, None if w.peep is None else w.peep.detach(),
                    None, None, None, None, None, False, 1e-5)  # fmt: skip
    with torch.no_grad():
        want = scan_reference(args)
    assert y.dtype == h.dtype == c.dtype == torch.float32
    tol = scan_tolerance(args._asdict(), gradients=False)
    for got, ref in zip((y, h[0], c[0]), want, strict=True):  # h_n, c_n (1, B, H): one layer and direction
        torch.testing.assert_close(got.detach(), ref, rtol=0, atol=tol)
    y.square().sum().backward()
    assert x.grad.dtype == torch.float32
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32, name
    exact = m(x)[0].detach()  # float32 throughout: autocast's projection differs from it
    assert float((y.detach() - exact).abs().max()) > 0


@pytest.mark.skipif(not _cpp.available(), reason="C++ kernel not built here")
def test_cpu_inference_computes_in_float32():
    m = lstmkit.LSTM(I, H, 2, bidirectional=True).eval()
    x = torch.randn(T, B, I)
    with torch.no_grad():
        want = m(x)[0]
        with autocast():
            got = m(x)[0]
    assert torch.equal(got, want)


@pytest.mark.parametrize("impl", ["bptt", "winograd"])
def test_convlstm_hand_written_layer_runs_with_autocast_off(impl):
    torch.manual_seed(0)
    m = lstmkit.ConvLSTM(2, 3, (3, 3), impl=impl)
    x = torch.randn(3, 2, 2, 8, 8, requires_grad=True)
    want = m(x)[0]
    (want_grad,) = torch.autograd.grad(want.sum(), x)
    with autocast():
        got = m(x)[0]
    (got_grad,) = torch.autograd.grad(got.sum(), x)
    assert torch.equal(got, want)
    assert torch.equal(got_grad, want_grad)

