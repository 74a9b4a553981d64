"""``lstmkit.export._spots``: the spotted LSTM cells must be the ones the layer's reference loop runs. Session 36's
refactor of that loop (the input side hoisted out of the step) left the spots patching a step the layer no longer
called, and every classifier's, forecaster's and recognizer's bound silently lost the cells' rounding."""

from __future__ import annotations

import copy

import pytest
import torch

import lstmkit
from lstmkit import _rounding
from lstmkit.export import _spots
from tolerances import module_tolerance

SPOTS_PER_STEP = 8  # the gate sums, i, f, o, g, c_t, tanh(c_t), h_t


@pytest.mark.parametrize("zoneout", [(0.0, 0.0), (0.2, 0.5)], ids=["", "zoneout"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_spotted_cells_spot_the_layer_loop(num_layers, zoneout):
    torch.manual_seed(0)
    layer = lstmkit.LSTM(3, 5, num_layers, zoneout=zoneout).double().eval()
    layer.impl = "reference"
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    want, (h_want, c_want) = layer(x)
    spots = _spots.Spots()
    with _spots.spotted_cells(spots):
        got, (h, c) = layer(x)
    per_step = SPOTS_PER_STEP + (2 if zoneout != (0.0, 0.0) else 0)  # zoneout: h's and c's mix
    assert len(spots.items) == per_step * 7 * num_layers
    # zero spots: the layer. With zoneout a plain layer's loop steps torch's cell operator, which sums the gates in
    # another order than the spotted step (written as the reference step): float64 rounding apart there.
    tol = 0.0 if zoneout == (0.0, 0.0) else module_tolerance(layer, x)
    for u, v in ((got, want), (h, h_want), (c, c_want)):
        torch.testing.assert_close(u, v, rtol=0, atol=tol)


@pytest.mark.parametrize("zoneout", [(0.0, 0.0), (0.2, 0.5)], ids=["", "zoneout"])
@pytest.mark.parametrize("impl", ["auto", "fused", "reference"])
def test_an_lstm_alone_is_within_its_spotted_bound_of_float64(impl, zoneout):
    """The outputs' bound from the cells' spots alone (no head): float32 (every impl) within it of float64, and it
    is a small share of the outputs. With no cell spotted the bound is zero and this fails."""
    torch.manual_seed(1)
    layer = lstmkit.LSTM(6, 16, 2, zoneout=zoneout).eval()
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(0.3 * torch.randn_like(p))
    x = torch.randn(20, 3, 6)
    twin = copy.deepcopy(layer).double()
    twin.impl = "reference"
    spots = _spots.Spots()
    with torch.enable_grad(), _spots.spotted_cells(spots):
        exact, _ = twin(x.double())  # (T, B, H)
        var = spots.variance_batched(exact.movedim(1, 0).flatten(1))  # (B, T * H)
    bound = (_rounding.LAMBDA * var.sqrt()).reshape(3, 20, 16).movedim(0, 1)
    layer.impl = impl
    with torch.no_grad():
        got, _ = layer(x)
    err = (got.double() - exact.detach()).abs()
    assert bound.min() > 0
    assert bool((err <= bound).all()), float((err - bound).max())
    assert float(bound.max()) < 1e-4 * float(exact.detach().abs().max())


def test_variance_batched_is_variance():
    torch.manual_seed(2)
    layer = lstmkit.LSTM(2, 4).double()
    layer.impl = "reference"
    spots = _spots.Spots()
    with torch.enable_grad(), _spots.spotted_cells(spots):
        y, _ = layer(torch.randn(5, 3, 2, dtype=torch.float64))  # (T, B, H)
        one_by_one = spots.variance(y, batch_dim=1)  # (T, B, H)
        batched = spots.variance_batched(y.movedim(1, 0).flatten(1), chunk=7)  # (B, T * H)
    torch.testing.assert_close(batched.reshape(3, 5, 4).movedim(0, 1), one_by_one, rtol=1e-12, atol=0)
