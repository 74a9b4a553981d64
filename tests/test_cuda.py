"""The CUDA path: every layer on a GPU against torch.nn (cuDNN) and its own reference twin there, the
fused scan's hand-written backward by gradcheck in float64 on the GPU, and the models, streams and
quantised layers on the GPU against the same module on the CPU.

Skipped where there is no GPU (the CI machines). On a machine with one:

    python -m pytest tests/test_cuda.py

``LSTMKIT_TEST_DEVICE=cpu`` runs the same checks with the CPU as the "device" (a dry run of the
tests themselves; the CPU-against-device comparisons are then trivial). docs/benchmarks.md ("On a GPU")
says where and when they ran on a GPU.

Float32 comparisons run with TF32 off: the derived bounds (tests/tolerances.py) assume float32
rounding, and TF32 keeps 10 mantissa bits in cuDNN's and cuBLAS's products. Float64 comparisons of
the same computation on two devices allow 1e-10 (the sums' order differs; float64 rounding at these
sizes is ~1e-15).
"""

from __future__ import annotations

import copy
import itertools
import os

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from checks import check_same
from lstmkit import _rounding
from lstmkit.nn._fused import LSTMScan
from tolerances import module_tolerance

DEVICE = torch.device(os.environ.get("LSTMKIT_TEST_DEVICE", "cuda"))
pytestmark = pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="no CUDA device here")
d = torch.float64
F64 = dict(atol=1e-10, rtol=1e-10)  # the same float64 computation on two devices
I, H, B, T = 5, 7, 4, 6


@pytest.fixture(autouse=True)
def _ieee_float32():
    """TF32 off for cuBLAS and cuDNN (convolutions and RNNs) while a test runs, restored after. The
    ``allow_tf32`` switches, not the newer ``fp32_precision`` ones: torch.compile reads ``allow_tf32``,
    which refuses to answer once the newer switches have been set one by one (torch 2.11-2.13)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _on(x, device=DEVICE):
    """x (a tensor, a tuple or list of them, or None) on ``device``."""
    if isinstance(x, (tuple, list)):
        return type(x)(_on(v, device) for v in x)
    return None if x is None else x.to(device)


def test_float32_products_are_not_tf32():
    """The fixture's premise: a float32 product on the device is within float32's bound of float64's."""
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    exact = a.double() @ b.double()
    got = (_on(a) @ _on(b)).double().cpu()
    bound = _rounding.gamma(256, _rounding.unit_roundoff(torch.float32)) * float((a.abs() @ b.abs()).max())
    assert float((got - exact).abs().max()) <= bound  # TF32's 2**-11 a product would be far over


# -- lstmkit.LSTM against cuDNN's nn.LSTM -------------------------------------------------------------

GRID = [dict(num_layers=L, bidirectional=bi, proj_size=p, batch_first=bf)
        for L, bi, p, bf in itertools.product([1, 2], [False, True], [0, 3], [False, True])]


def _kw_id(kw: dict) -> str:
    return "-".join(f"{k}{int(v)}" for k, v in kw.items())


@pytest.mark.parametrize("dtype", [torch.float32, d], ids=["float32", "float64"])
@pytest.mark.parametrize("impl", ["auto", "fused", "reference"])
@pytest.mark.parametrize("kw", GRID, ids=_kw_id)
def test_lstm_matches_cudnn(kw, impl, dtype):
    """Values, input and state gradients and every parameter gradient against nn.LSTM on the device."""
    native = nn.LSTM(I, H, device=DEVICE, dtype=dtype, **kw)
    ours = lstmkit.LSTM(I, H, impl=impl, device=DEVICE, dtype=dtype, **kw)
    ours.load_state_dict(native.state_dict())
    x = torch.randn(B, T, I, dtype=dtype) if kw["batch_first"] else torch.randn(T, B, I, dtype=dtype)
    D = 2 if kw["bidirectional"] else 1
    hx = (torch.randn(kw["num_layers"] * D, B, kw["proj_size"] or H, dtype=dtype),
          torch.randn(kw["num_layers"] * D, B, H, dtype=dtype))  # fmt: skip
    tol = module_tolerance(ours.cpu(), x, gradients=True)  # from the weights' sizes, on either device
    ours.to(DEVICE)
    check_same(native, ours, _on(x), atol=tol, rtol=tol)
    check_same(native, ours, _on(x), _on(hx), atol=tol, rtol=tol)


@pytest.mark.parametrize("impl", ["auto", "fused", "reference"])
def test_lstm_packed_and_lengths_on_the_device(impl):
    """A PackedSequence on the device, and ``lengths`` given on the CPU beside a device input."""
    native = nn.LSTM(I, H, 2, bidirectional=True, device=DEVICE, dtype=d)
    ours = lstmkit.LSTM(I, H, 2, bidirectional=True, impl=impl, device=DEVICE, dtype=d)
    ours.load_state_dict(native.state_dict())
    lengths = torch.tensor([3, 6, 1, 4])  # unsorted, one of length 1
    x = torch.randn(T, B, I, dtype=d, device=DEVICE)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    check_same(native, ours, packed, **F64)
    y, (h, c) = ours(x, lengths=lengths)  # lengths on the CPU, x on the device
    y_native, (h_native, c_native) = native(packed)
    mask = (torch.arange(T)[:, None] < lengths[None, :]).to(DEVICE)[..., None]  # (T, B, 1)
    full = nn.utils.rnn.pad_packed_sequence(y_native, total_length=T)[0]
    torch.testing.assert_close(y * mask, full, **F64)
    torch.testing.assert_close(h, h_native, **F64)
    torch.testing.assert_close(c, c_native, **F64)
    assert y.device.type == DEVICE.type and h.device.type == DEVICE.type


# -- the variants (no torch.nn twin): the device against the CPU, and the fused kernel against its reference

VARIANTS = [dict(peephole=p, coupled=c, layer_norm=ln, proj_size=ps)
            for p, c, ln, ps in itertools.product([False, True], [False, True], [False, True], [0, 3])]


def _variant_id(kw: dict) -> str:
    return "+".join(k if v is True else f"{k}={v}" for k, v in kw.items() if v) or "plain"


@pytest.mark.parametrize("kw", VARIANTS, ids=_variant_id)
def test_variants_on_the_device_equal_the_cpu(kw):
    """Two bidirectional layers with lengths, in float64: the device's kernel (the fused PyTorch scan
    on CUDA) against the CPU's default (the C++ kernel where built), values and every gradient."""
    cpu = lstmkit.LSTM(4, 6, 2, bidirectional=True, dtype=d, **kw)
    with torch.no_grad():
        for p in cpu.parameters():  # LayerNorm gains off 1, biases off 0: a mix-up would show
            p.add_(0.1 * torch.randn_like(p))
    dev = copy.deepcopy(cpu).to(DEVICE)
    x = torch.randn(5, 3, 4, dtype=d)
    lengths = torch.tensor([5, 2, 4])
    results = []
    for m, xx in ((cpu, x), (dev, _on(x))):
        xx = xx.clone().requires_grad_()
        y, (h, c) = m(xx, lengths=lengths)
        w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=d).to(y.device)
        ((y * w).sum() + h.sum() + (c * c).sum()).backward()
        results.append([y, h, c, xx.grad, *(p.grad for p in m.parameters())])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(b.cpu(), a, **F64)


@pytest.mark.parametrize("kw", [dict(peephole=True, layer_norm=True, recurrent_dropout=0.3),
                                dict(coupled=True, proj_size=3, recurrent_dropout=0.5), dict(forget_bias=1.0),
                                dict(zoneout=(0.2, 0.5), peephole=True), dict(zoneout=0.3, proj_size=3)],
                         ids=_variant_id)
def test_fused_equals_reference_on_the_device_in_training(kw):
    """Recurrent dropout's masks and zoneout's draws are drawn on the device, the same for both kernels under one
    seed."""
    fused = lstmkit.LSTM(4, 6, 2, bidirectional=True, impl="fused", device=DEVICE, dtype=d, **kw).train()
    ref = lstmkit.LSTM(4, 6, 2, bidirectional=True, impl="reference", device=DEVICE, dtype=d, **kw).train()
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(5, 3, 4, dtype=d, device=DEVICE)
    check_same(fused, ref, x, lengths=torch.tensor([5, 2, 4]), **F64)


EXTRAS = ["peephole", "coupled", "layer_norm", "proj", "drop", "mask"]


@pytest.mark.parametrize("bits", list(itertools.product([False, True], repeat=len(EXTRAS))),
                         ids=lambda bits: "+".join(k for k, b in zip(EXTRAS, bits, strict=True) if b) or "plain")
def test_gradcheck_fused_scan_on_the_device(bits):
    """The hand-written BPTT of the fused scan, every combination of extras, full gradcheck in float64."""
    peephole, coupled, layer_norm, proj, drop, mask = bits
    Tn, Bn, Hn = 4, 3, 5
    G, P = (3 if coupled else 4) * Hn, 3 if proj else Hn

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, dtype=d) * scale).to(DEVICE).requires_grad_()

    xg, h0, c0, w_hh = r(Tn, Bn, G), r(Bn, P), r(Bn, Hn), r(G, P, scale=0.5)
    w_hr = r(P, Hn, scale=0.5) if proj else None
    peep = r(2 if coupled else 3, Hn) if peephole else None
    g_hh, g_c, b_c = (r(G), r(Hn), r(Hn)) if layer_norm else (None, None, None)
    drop_mask = _on((torch.rand(Bn, P, dtype=d) > 0.3).to(d) / 0.7) if drop else None
    step_mask = _on(torch.arange(Tn)[:, None] < torch.tensor([Tn, 2, 0])[None, :]) if mask else None
    tensors = [xg, h0, c0, w_hh, w_hr, peep, g_hh, g_c, b_c]  # LSTMScan's order
    where = [i for i, t in enumerate(tensors) if t is not None]

    def f(*present):
        full = list(tensors)
        for i, t in zip(where, present, strict=True):
            full[i] = t
        return LSTMScan.apply(*full, drop_mask, step_mask, coupled, 1e-5)

    # Fast mode (random projections of the Jacobian) for the 64 combinations, the full Jacobian for all
    # extras at once: the kernel is the same Python code as on the CPU (tests/nn/test_fused.py checks every
    # combination in full there); here it is its device placement that is new.
    assert torch.autograd.gradcheck(f, tuple(tensors[i] for i in where), fast_mode=not all(bits))


# -- cells, GRU and RNN against torch.nn on the device -----------------------------------------------


@pytest.mark.parametrize("kind", ["GRU", "RNN"])
def test_gru_and_rnn_match_cudnn(kind):
    """Float64, two bidirectional layers, an initial state and a packed batch."""
    native = getattr(nn, kind)(I, H, 2, bidirectional=True, device=DEVICE, dtype=d)
    ours = getattr(lstmkit, kind)(I, H, 2, bidirectional=True, device=DEVICE, dtype=d)
    ours.load_state_dict(native.state_dict())
    x = torch.randn(T, B, I, dtype=d, device=DEVICE)
    check_same(native, ours, x, torch.randn(4, B, H, dtype=d, device=DEVICE), **F64)
    check_same(native, ours, pack_padded_sequence(x, torch.tensor([2, 6, 3, 1]), enforce_sorted=False), **F64)


def test_lstm_cell_matches_torch():
    native = nn.LSTMCell(I, H, device=DEVICE, dtype=d)
    ours = lstmkit.LSTMCell(I, H, device=DEVICE, dtype=d)
    ours.load_state_dict(native.state_dict())
    x, h, c = (torch.randn(B, n, dtype=d, device=DEVICE) for n in (I, H, H))
    check_same(native, ours, x, (h, c), **F64)


# -- ConvLSTM ----------------------------------------------------------------------------------------

CONV_IMPLS = {
    "bptt": dict(),
    "winograd": dict(),  # off the CPU: "bptt"'s direct convolutions (the CPU side runs Winograd)
    "concat": dict(peephole=True),
    "fused": dict(peephole=True, layer_norm=True),
    "auto": dict(),
}


@pytest.mark.parametrize("impl", list(CONV_IMPLS))
def test_convlstm_every_impl_equals_its_reference_and_the_cpu(impl):
    """Two layers, lengths and an initial state, float64: each impl on the device against the
    reference twin on the device, and against the same layer on the CPU; values and every gradient."""
    kw = dict(hidden_channels=[3, 2], num_layers=2, **CONV_IMPLS[impl])
    fused = lstmkit.ConvLSTM(2, impl=impl, dtype=d, **kw)
    with torch.no_grad():
        for p in fused.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ref = lstmkit.ConvLSTM(2, impl="reference", dtype=d, **kw)
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(4, 3, 2, 5, 4, dtype=d)
    hx = [(torch.randn(3, hc, 5, 4, dtype=d), torch.randn(3, hc, 5, 4, dtype=d)) for hc in (3, 2)]
    lengths = torch.tensor([4, 2, 0])
    _same_on_device(fused, x, hx, call=lambda m, x, hx: m(x, hx, lengths=lengths))
    fused.to(DEVICE)
    ref.to(DEVICE)
    check_same(fused, ref, _on(x), _on(hx), lengths=lengths, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("kw", [dict(impl="bptt"), dict(impl="fused", peephole=True, layer_norm=True),
                                dict(impl="concat", peephole=True, peephole_frame=(3, 3))], ids=str)
def test_convlstm_gradcheck_on_the_device(kw):
    m = lstmkit.ConvLSTM(1, 2, num_layers=2, dtype=d, device=DEVICE, **kw)
    x = torch.randn(3, 2, 1, 3, 3, dtype=d, device=DEVICE, requires_grad=True)
    h0 = torch.randn(2, 2, 3, 3, dtype=d, device=DEVICE, requires_grad=True)
    names, params = zip(*m.named_parameters(), strict=True)

    def f(x, h0, *ps):
        hx = [(h0, h0 * 0.5), (h0 * -1.0, h0)]
        y, finals = torch.func.functional_call(m, dict(zip(names, ps, strict=True)), (x, hx),
                                               {"lengths": torch.tensor([3, 1])})
        return y, finals[-1][0], finals[-1][1]

    # cuDNN's convolution backward may sum in a different order each call (its algorithms use atomics):
    # the same float64 gradient twice can differ by rounding, which gradcheck's re-entrancy check sees.
    assert torch.autograd.gradcheck(f, (x, h0, *params), fast_mode=True, nondet_tol=1e-12)


# -- models, streams and quantised layers: the device against the CPU --------------------------------


def _flat(out) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return []


def _same_on_device(model: nn.Module, *inputs, call=None):
    """Run ``model`` (float64, eval) on the CPU and a copy on the device; outputs and parameter
    gradients must agree. ``call(model, *inputs)`` instead of ``model(*inputs)`` where given."""
    model = model.double().eval()
    model.zero_grad(set_to_none=True)  # the model may have been through here before
    call = call or (lambda m, *xs: m(*xs))
    results = []
    for m, xs in ((model, inputs), (copy.deepcopy(model).to(DEVICE), _on(list(inputs)))):
        outs = _flat(call(m, *xs))
        loss = sum((o.double() * (1 + torch.arange(o.numel(), dtype=d, device=o.device).reshape(o.shape) % 3)).sum()
                   for o in outs if o.is_floating_point())
        loss.backward()
        results.append((outs, [p.grad for p in m.parameters() if p.grad is not None]))
    (oa, ga), (ob, gb) = results
    assert len(oa) == len(ob) and len(ga) == len(gb) and ga
    for a, b in zip(oa + ga, ob + gb, strict=True):
        assert b.device.type == DEVICE.type
        torch.testing.assert_close(b.cpu(), a, **F64)
    return ob


def test_models_on_the_device():
    from lstmkit.models import (
        ClassifyModel,
        CTCModel,
        CTCRecognizer,
        FCNClassifier,
        ForecastModel,
        ForecastNet,
        SequenceClassifier,
        SequenceModel,
    )
    from lstmkit.train.config import ModelConfig

    tokens = torch.randint(0, 11, (7, 3))
    _same_on_device(SequenceModel(ModelConfig(vocab_size=11, embedding_dim=5, hidden_size=8, num_layers=2)), tokens)
    feats, lengths = torch.randn(9, 3, 4, dtype=d), torch.tensor([9, 4, 6])
    cpu_lengths = dict(call=lambda m, x, _: m(x, lengths))  # the lengths left on the CPU, as torch's packing wants
    for pooling in ("last", "mean", "attention"):
        for model in (SequenceClassifier(ClassifyModel(input_size=4, output_size=3, hidden_size=6, pooling=pooling)),
                      FCNClassifier(ClassifyModel(input_size=4, output_size=3, hidden_size=6, pooling=pooling,
                                                  arch="lstm-fcn", max_length=9, fcn_filters=(4, 5, 3)))):  # fmt: skip
            _same_on_device(model, feats, lengths)
            _same_on_device(model, feats, lengths, **cpu_lengths)
    ctc = CTCRecognizer(CTCModel(input_size=4, output_size=5, hidden_size=8, num_layers=2, dropout=0.0))
    _same_on_device(ctc, feats, lengths)
    _same_on_device(ctc, feats, lengths, **cpu_lengths)
    _same_on_device(ForecastNet(ForecastModel(input_size=1, output_size=1, hidden_size=8), 6),
                    torch.randn(6, 5, 1, dtype=d))  # fmt: skip


def test_seq2seq_training_and_decoding_on_the_device():
    from lstmkit.models import Seq2Seq, Seq2SeqModel, beam_search, greedy

    model = Seq2Seq(Seq2SeqModel(vocab_size=12, output_size=9, hidden_size=8, embedding_dim=4, num_layers=2,
                                 dropout=0.0))  # fmt: skip
    src, src_lengths = torch.randint(4, 12, (6, 3)), torch.tensor([6, 3, 5])
    tgt_in = torch.randint(3, 9, (5, 3))
    _same_on_device(model, src, src_lengths, tgt_in)
    model = model.double().eval()
    dev = copy.deepcopy(model).to(DEVICE)
    want, got = greedy(model, src, src_lengths), greedy(dev, _on(src), _on(src_lengths))
    assert [h.tokens for h in got] == [h.tokens for h in want]
    want = beam_search(model, src, src_lengths, beam_size=3, n_best=2)
    got = beam_search(dev, _on(src), _on(src_lengths), beam_size=3, n_best=2)
    assert [[h.tokens for h in hs] for hs in got] == [[h.tokens for h in hs] for hs in want]
    for hs_got, hs_want in zip(got, want, strict=True):
        for g, w in zip(hs_got, hs_want, strict=True):
            assert abs(g.score - w.score) <= 1e-9 * max(1.0, abs(w.score))


def test_frame_forecasters_on_the_device():
    from lstmkit.models.frames import ConvForecaster, FCForecaster, FramesModel

    x = torch.rand(4, 2, 1, 8, 8, dtype=d)
    for output in ("pixels", "motion"):
        model = ConvForecaster(FramesModel(hidden_size=4, kernel_size=3, patch=2, num_layers=2, horizon=3,
                                           output=output, correlation=output == "motion"),
                               max_shift=2 if output == "motion" else None)  # fmt: skip
        _same_on_device(model, x)
    _same_on_device(FCForecaster((8, 8), 16, 1, 3), x)


def test_stream_on_the_device_equals_the_whole_sequence():
    from lstmkit.stream import Stream

    m = lstmkit.LSTM(I, H, 2, proj_size=3, peephole=True, dtype=d, device=DEVICE).eval()
    x = torch.randn(T, B, I, dtype=d, device=DEVICE)
    with torch.no_grad():
        whole, _ = m(x)
    stream = Stream(m, batch_size=B)
    steps = torch.stack([stream.step(x[t]) for t in range(T)])
    assert steps.device.type == DEVICE.type
    torch.testing.assert_close(steps, whole, **F64)


def test_quantised_layer_on_the_device_runs_the_dequantised_weights():
    """int8 weights moved to the device run the float path with the dequantised weights there (the
    int8 kernels are the CPU's); the same numbers as the CPU's float emulation of them."""
    from lstmkit.formats.quantized import quantize_model
    from lstmkit.nn.int8 import rebuilt_weights

    m = lstmkit.LSTM(20, 24, 2, dtype=d).eval()
    quantize_model(m, 8)
    x = torch.randn(T, B, 20, dtype=d)
    with torch.no_grad(), rebuilt_weights():
        want, _ = m(x)
    dev = copy.deepcopy(m).to(DEVICE)
    with torch.no_grad():
        got, _ = dev(_on(x))
    torch.testing.assert_close(got.cpu(), want, **F64)


@pytest.mark.parametrize("kw", [{}, dict(peephole=True, coupled=True, layer_norm=True, proj_size=3,
                                         bidirectional=True)], ids=["plain", "all-variants"])
def test_compiled_with_inductor_on_the_device_equals_eager(kw):
    """torch.compile (Inductor: Triton kernels on a GPU), one graph, forward and every gradient, float64."""
    torch._dynamo.reset()
    m = lstmkit.LSTM(4, 6, 2, dtype=d, device=DEVICE, **kw)
    compiled = copy.deepcopy(m)
    compiled.compile(fullgraph=True)  # in place: the parameters keep their names
    x = torch.randn(5, 3, 4, dtype=d, device=DEVICE)
    check_same(m, compiled, x, lengths=torch.tensor([5, 3, 1]), **F64)
    exported = torch.export.export(m, (x,), {"lengths": torch.tensor([5, 3, 1], device=DEVICE)})
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x, lengths=torch.tensor([5, 3, 1], device=DEVICE))[0],
                                   m(x, lengths=torch.tensor([5, 3, 1]))[0], **F64)
    torch._dynamo.reset()


def test_gradients_of_gradients_on_the_device():
    """A create_graph backward through the fused scan on the device (recomputed by its reference twin): second
    derivatives by gradgradcheck in float64, and a gradient penalty equal to cuDNN's LSTM's."""
    m = lstmkit.LSTM(3, 3, 2, bidirectional=True, dtype=d, device=DEVICE, peephole=True)
    x = torch.randn(3, 2, 3, dtype=d, device=DEVICE, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, w: m(x)[0], (x, m.weight_hh_l0))
    torch.manual_seed(0)
    native = nn.LSTM(I, H, dtype=d, device=DEVICE)
    ours = lstmkit.LSTM(I, H, dtype=d, device=DEVICE)
    ours.load_state_dict(native.state_dict())
    xs = torch.randn(T, B, I, dtype=d, device=DEVICE)
    got = []
    for mod in (native, ours):
        xi = xs.clone().requires_grad_()
        (dx,) = torch.autograd.grad(mod(xi)[0].tanh().sum(), xi, create_graph=True)
        got.append(torch.autograd.grad(dx.square().sum(), mod.weight_hh_l0)[0])
    torch.testing.assert_close(got[1], got[0], **F64)


def test_autocast_on_the_device_recurs_in_float32():
    """Under autocast (float16 on a GPU) the input projection runs in the low precision and the fused scan in
    float32: the output equals the float32 reference scan over autocast's own projection within the float32 bound
    (tests/nn/test_autocast.py holds the same on the CPU); training runs and every gradient is float32."""
    from lstmkit.nn import layer_weights
    from lstmkit.nn._fused import ScanArgs, scan_reference
    from tolerances import scan_tolerance

    low = torch.float16 if DEVICE.type == "cuda" else torch.bfloat16
    m = lstmkit.LSTM(I, H, device=DEVICE)
    x = torch.randn(T, B, I, device=DEVICE, requires_grad=True)
    with torch.autocast(DEVICE.type, dtype=low):
        y, (h, c) = m(x)
    assert y.dtype == h.dtype == c.dtype == torch.float32
    w = layer_weights(m)
    with torch.no_grad():
        xg = torch.nn.functional.linear(x.to(low), w.w_ih.to(low), (w.b_ih + w.b_hh).to(low)).float()
        zeros = torch.zeros(B, H, device=DEVICE)
        args = ScanArgs(xg, zeros, zeros, w.w_hh, None, None, None, None, None, None, None, False, 1e-5)
        want = scan_reference(args)[0]
    torch.testing.assert_close(y.detach(), want, rtol=0, atol=scan_tolerance(args._asdict(), gradients=False))
    y.square().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in m.parameters())
