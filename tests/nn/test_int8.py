"""int8 compute (lstmkit.nn.int8): 8-bit quantised LSTMs multiply in fbgemm's int8 kernels.

The reference is an independent emulation in float: fbgemm quantises each product's input on the fly
to 7 bits (``reduce_range``), with the scale and zero point ``torch._choose_qparams_per_tensor`` picks,
then multiplies exact integers. Feeding that same rounded input to the dequantised float weights gives
the int8 result up to float32 rounding of the sums, so the comparisons use the derived float32 bounds
of tests/tolerances.py, not the (much larger) quantisation error.
"""

from __future__ import annotations

import copy

import pytest
import torch

import lstmkit
from lstmkit import _rounding
from lstmkit.formats.quantized import quantize_model, quantized_tensors
from lstmkit.nn import _cpp, layer_weights
from lstmkit.nn._reference import zone_weights
from lstmkit.nn.int8 import int8_matrix, int8_runnable
from lstmkit.stream import Stream
from tolerances import scan_tolerance

pytestmark = pytest.mark.skipif(not _cpp.available(), reason="the C++ kernel is not built here")

VARIANTS = {
    "plain": {},
    "peephole": {"peephole": True},
    "coupled": {"coupled": True},
    "layer_norm": {"layer_norm": True},
    "peephole+layer_norm": {"peephole": True, "layer_norm": True},
    "proj": {"proj_size": 12},
    "no_bias": {"bias": False},
    "zoneout": {"zoneout": (0.3, 0.6)},
    "peephole+proj+zoneout": {"peephole": True, "proj_size": 12, "zoneout": (0.2, 0.5)},
}


def fake_quant(x: torch.Tensor) -> torch.Tensor:
    """x rounded as fbgemm's dynamic quantisation rounds it (per tensor, 7 bits)."""
    scale, zero = torch._choose_qparams_per_tensor(x, True)
    return torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 127)


def quantized(kwargs: dict, seed: int = 0, I: int = 20, H: int = 24, **more) -> lstmkit.LSTM:
    torch.manual_seed(seed)
    m = lstmkit.LSTM(I, H, **kwargs, **more).eval()
    quantize_model(m, 8)
    return m


def test_product_equals_the_emulation():
    """One int8 product x W^T against the fake-quantised x times the dequantised W."""
    torch.manual_seed(0)
    m = quantized({}, I=37, H=29)
    q = int8_matrix(m, "weight_ih_l0")
    x = torch.randn(5, 37) * 3 + 0.5
    w = quantized_tensors(m)["weight_ih_l0"].dequantize()  # (G, I)
    xq = fake_quant(x)
    got, want = q.apply(x), xq @ w.t()
    u = _rounding.unit_roundoff(torch.float32)
    bound = _rounding.gamma(37 + 2, u) * float((xq.abs() @ w.abs().t()).max())
    torch.testing.assert_close(got, want, atol=_rounding.between(bound), rtol=0)
    assert q.rows() == 4 * 29 and q.cols() == 37


@pytest.mark.parametrize("name", list(VARIANTS))
def test_one_step_of_every_variant_equals_the_emulation(name):
    """T = 1 from a random state: the layer's int8 path (input projection and recurrent product in
    int8) equals the float kernel run on the rounded inputs with the dequantised weights."""
    kwargs = VARIANTS[name]
    m = quantized(kwargs, seed=1)
    B, P, H = 3, m.output_size, m.hidden_size
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, B, 20, generator=gen)
    h0, c0 = 0.8 * torch.randn(1, B, P, generator=gen), torch.randn(1, B, H, generator=gen)
    with torch.no_grad():
        assert m._int8_plan(0, 0, x) is not None
        y, (_, cn) = m(x, (h0, c0))
        w = layer_weights(m, 0)  # dequantised
        xg = fake_quant(x) @ w.w_ih.t()  # (1, B, G)
        if w.b_ih is not None and not m.layer_norm:
            xg = xg + w.b_ih + w.b_hh
        state = (fake_quant(h0[0]), c0[0])
        # Zoneout (eval mode: the rates): c's update in the emulated scan; h's mixes the step's result with the
        # state before it as given (float: only the product's input is rounded), so it is applied here.
        zone = zone_weights(m.zoneout, False, 1, state) if m._zoned else (None, None)
        want_y, _, want_c = _cpp.lstm_scan_cpp(xg.contiguous(), state, w, m._options, zone=(None, zone[1]),
                                               finish_input=m.layer_norm)  # fmt: skip
        if zone[0] is not None:
            want_y = (1 - zone[0]) * want_y + zone[0] * h0
    args = {"xg": xg, "h0": state[0], "c0": state[1], "w_hh": w.w_hh, "peep": w.peep, "g_hh": w.g_hh,
            "g_c": w.g_c}  # fmt: skip
    tol = scan_tolerance(args, gradients=False)
    torch.testing.assert_close(cn[0], want_c, atol=tol, rtol=0)
    if not m.proj_size:
        torch.testing.assert_close(y, want_y, atol=tol, rtol=0)
    else:
        # The projection's input o * tanh(c), in [-1, 1], is rounded to 7 bits too: a grid of at most
        # 127 steps over [-1, 1], each entry off by at most one step.
        step = 2.0 / 127
        bound = step * _rounding.row_abs_sum(w.w_hr) + tol * (1 + _rounding.row_abs_sum(w.w_hr))
        torch.testing.assert_close(y, want_y, atol=bound, rtol=0)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_stream_step_equals_the_layer(name):
    """Stream.step on an int8 model runs the same int8 step as the layer on a one-step sequence."""
    m = quantized(VARIANTS[name], seed=3, num_layers=2)
    s = Stream(m, batch_size=2)
    x = torch.randn(2, 20)
    got = s.step(x)
    with torch.no_grad():
        want, _ = m(x.unsqueeze(0))
    torch.testing.assert_close(got, want[0], atol=1e-6, rtol=0)


def test_whole_sequences_stay_close_to_float():
    """Over 30 steps, 2 layers, both directions: close to the dequantised float model (the 7-bit
    rounding of every step's input, not a bound: a sanity check that nothing drifts)."""
    m = quantized({"peephole": True}, seed=4, num_layers=2, bidirectional=True)
    x = torch.randn(30, 4, 20)
    with torch.no_grad():
        y8, _ = m(x)
    yf, _ = m(x)  # grad mode on: the float path
    assert m._int8_plan(0, 1, x) is None  # grad mode: never int8
    err = float((y8 - yf.detach()).abs().max())
    assert 0 < err < 0.05, err


def test_int8_only_where_it_applies():
    """Training, grad mode, impl="fused", 4 bits, float64: the dequantised float path, unchanged."""
    x = torch.randn(5, 2, 20)
    with torch.no_grad():
        assert int8_runnable(x, "auto") and not int8_runnable(x, "fused") and not int8_runnable(x.double(), "cpp")
    assert not int8_runnable(x, "auto")  # grad mode
    four = lstmkit.LSTM(20, 24).eval()
    quantize_model(four, 4)
    with torch.no_grad():
        assert four._int8_plan(0, 0, x) is None
    plain = lstmkit.LSTM(20, 24).eval()
    with torch.no_grad():
        assert plain._int8_plan(0, 0, x) is None


def test_packed_weights_follow_the_integers():
    """Loading other integers in place repacks: the cache is keyed by the tensors' versions."""
    a, b = quantized({}, seed=6), quantized({}, seed=7)
    x = torch.randn(4, 2, 20)
    with torch.no_grad():
        before, _ = a(x)
        a.load_state_dict(b.state_dict())
        after, _ = a(x)
        want, _ = b(x)
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, want, atol=0, rtol=0)


def test_bad_weights_are_refused():
    with pytest.raises(ValueError, match="q must be a 2-D uint8 tensor"):
        _cpp.int8_weight(torch.zeros(3, 4, dtype=torch.int8), torch.ones(3), torch.zeros(3, dtype=torch.uint8))


def test_deepcopy_of_an_int8_model_still_works():
    """The packed weights live outside the module, so a packed model deep-copies and the copy runs
    the same int8 products."""
    m = quantized({}, seed=8)
    x = torch.randn(3, 1, 20)
    with torch.no_grad():
        want, _ = m(x)  # packs
        got, _ = copy.deepcopy(m)(x)
    torch.testing.assert_close(got, want, atol=0, rtol=0)
