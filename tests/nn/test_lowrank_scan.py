"""Low-rank weights in the scan: in inference lstmkit.LSTM multiplies by W_hh's factors in turn
(and W_ih's), the same numbers as the rebuilt dense matrix within the derived rounding bound."""

from __future__ import annotations

import pytest
import torch

import lstmkit
from lstmkit.formats.lowrank import lowrank_model
from lstmkit.nn import _cpp
from tolerances import module_tolerance

pytestmark = pytest.mark.skipif(not _cpp.available(), reason="the C++ kernel is not built here")

VARIANTS = {
    "plain": {},
    "peephole": {"peephole": True},
    "coupled": {"coupled": True},
    "layer_norm": {"layer_norm": True},
    "proj": {"proj_size": 12},
    "no_bias": {"bias": False},
    "peephole+zoneout": {"peephole": True, "zoneout": (0.3, 0.6)},
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name", list(VARIANTS))
def test_factors_in_the_scan_equal_the_rebuilt_matrix(name, dtype):
    torch.manual_seed(0)
    m = lstmkit.LSTM(20, 40, 2, bidirectional=True, dtype=dtype, **VARIANTS[name]).eval()
    lowrank_model(m, rank=6)
    x = torch.randn(9, 3, 20, dtype=dtype)
    lengths = torch.tensor([9, 5, 2])
    with torch.no_grad():
        assert m._lowrank_plan(1, 1, x) is not None and m._int8_plan(1, 1, x) is None
        got, (h, c) = m(x, lengths=lengths)
    want, (h_ref, c_ref) = m(x, lengths=lengths)  # grad mode: the rebuilt matrices
    assert m._inference_plan(0, 0, x) is None  # (grad mode: never the factor path)
    tol = module_tolerance(m, x)
    for a, b in ((got, want), (h, h_ref), (c, c_ref)):
        torch.testing.assert_close(a, b.detach(), atol=tol, rtol=0)


def test_dense_input_side_with_a_low_rank_recurrent_matrix():
    """Only W_hh factorised (W_ih kept dense, as when its factors would not be smaller)."""
    torch.manual_seed(1)
    m = lstmkit.LSTM(3, 32).eval()
    lowrank_model(m, rank=4)  # W_ih (128, 3): rank 4 would not be smaller, it stays dense
    with torch.no_grad():
        plan = m._lowrank_plan(0, 0, torch.zeros(1, 1, 3))
        assert plan is not None and plan[0] is None  # no W_ih factors
        x = torch.randn(6, 2, 3)
        got, _ = m(x)
    want, _ = m(x)
    torch.testing.assert_close(got, want.detach(), atol=module_tolerance(m, x), rtol=0)


def test_factors_of_the_wrong_shape_are_refused():
    with pytest.raises(RuntimeError, match=r"left must be \(8, R\) and right \(R, 2\)"):
        _cpp._ext().forward_lowrank(torch.zeros(1, 1, 8), torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(8, 3),
                                    torch.zeros(2, 2), None, None, None, None, None, None, False, 1e-5, None, None,
                                    None, None)
