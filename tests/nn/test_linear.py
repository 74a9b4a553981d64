"""``lstmkit.nn.Linear`` / ``linear``: a drop-in ``torch.nn.Linear`` on the extension's panels where they are the
faster; the products themselves are tested in test_cpp_kernel.py (``whole_linear``)."""

from __future__ import annotations

import re

import pytest
import torch

from lstmkit import _rounding
from lstmkit.models.sequence import SequenceModel
from lstmkit.nn import Linear, _cpp, linear
from lstmkit.train.config import ModelConfig


@pytest.fixture(params=["panels", "blas"])
def whole_gemm(request):
    """Every CPU runs both rules: the panels forced (as on AMD's AVX-512 CPUs), and torch's product."""
    ext = _cpp._ext()
    ext.set_whole_gemm(request.param)
    yield request.param
    ext.set_whole_gemm("auto")


def test_a_drop_in_torch_nn_linear():
    torch.manual_seed(0)
    ours = Linear(7, 4, bias=False)
    assert isinstance(ours, torch.nn.Linear) and repr(ours) == "Linear(in_features=7, out_features=4, bias=False)"
    assert ours.bias is None and list(ours.state_dict()) == ["weight"]
    theirs = torch.nn.Linear(7, 4)
    ours = Linear(7, 4)
    ours.load_state_dict(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 7)  # 3 rows: F.linear itself, the very same values
    assert torch.equal(ours(x), theirs(x))
    with pytest.raises(RuntimeError, match=re.escape("torch.jit.script cannot compile lstmkit.Linear")):
        torch.jit.script(ours)


@pytest.mark.parametrize("rows", [(70,), (9, 8), (2, 3)], ids=["70", "9x8", "6"])
def test_values_and_gradients_equal_torch_within_the_bound(rows, whole_gemm):
    """Outputs and the three gradients of ``torch.nn.Linear`` within gamma(K) of the products' absolute values,
    K the terms of each sum (I, O or the rows); the panels run only from PANEL_MIN_ROWS rows and when chosen."""
    torch.manual_seed(1)
    I, O = 33, 45
    theirs = torch.nn.Linear(I, O)
    ours = Linear(I, O)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(*rows, I)
    dy = torch.randn(*rows, O)
    xo, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
    yo, yt = ours(xo), theirs(xt)
    n = x.numel() // I
    panels = whole_gemm == "panels" and n >= _cpp.PANEL_MIN_ROWS
    assert (yo.grad_fn.name() == "_WholeLinearBackward") == panels  # "blas": torch's product at any size
    yo.backward(dy)
    yt.backward(dy)
    u = _rounding.unit_roundoff(torch.float32)
    w = theirs.weight.detach()
    x2, dy2 = x.reshape(n, I), dy.reshape(n, O)
    checks = [
        (yo, yt, _rounding.gamma(I + 1, u) * float((x2.abs() @ w.abs().t()).max() + theirs.bias.detach().abs().max())),
        (xo.grad, xt.grad, _rounding.gamma(O, u) * float((dy2.abs() @ w.abs()).max())),
        (ours.weight.grad, theirs.weight.grad, _rounding.gamma(n, u) * float((dy2.abs().t() @ x2.abs()).max())),
        (ours.bias.grad, theirs.bias.grad, _rounding.gamma(n, u) * float(dy2.abs().sum(0).max())),
    ]
    for got, want, bound in checks:
        torch.testing.assert_close(got, want, atol=2 * bound, rtol=0)
    if not panels:  # torch's product itself: the very same values
        assert torch.equal(linear(x, w), torch.nn.functional.linear(x, w))


def test_tied_weights_stay_one_parameter():
    """The language models tie the head to the embedding: with lstmkit's Linear the two are still one tensor, and
    its gradient sums both uses."""
    m = SequenceModel(ModelConfig(vocab_size=50, hidden_size=8, num_layers=1, tie_weights=True))
    assert isinstance(m.head, Linear) and m.head.weight is m.embedding.weight
    assert sum(p.numel() for p in m.parameters()) == 50 * 8 + 4 * 8 * 8 * 2 + 2 * 32 + 50
