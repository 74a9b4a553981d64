"""The C++ scan (``_cpp.lstm_scan_cpp``) against the Python fused scan (``_fused.lstm_scan``).

One helper (``check_equal``) compares forward values and every gradient; it runs for every
combination of the variants, in float64 and float32, within the derived rounding bound of
tests/tolerances.py, and gradcheck runs on each combination in float64. The float32 tests run once
per instruction-set path this CPU can run (``isa``); float64 always runs the portable kernels.
Skipped where the extension cannot be built.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys

import pytest
import torch

import lstmkit
from checks import ISAS, on_isa
from lstmkit import _rounding
from lstmkit.nn import LSTMOptions, LSTMWeights, _cpp
from lstmkit.nn._cpp import lstm_scan_cpp
from lstmkit.nn._fused import lstm_scan
from tolerances import module_tolerance, scan_tolerance

T, B, H, P_PROJ = 5, 3, 4, 3
LENGTHS = [5, 2, 0]  # a full, a short and an empty sequence
FLAGS = ("peephole", "coupled", "layer_norm", "projection", "drop", "mask")
COMBOS = [dict(zip(FLAGS, bits, strict=True)) for bits in itertools.product((False, True), repeat=len(FLAGS))]
DIFFERENTIABLE = ("xg", "h0", "c0", "w_hh", "w_hr", "peep", "g_hh", "g_c", "b_c")


def combo_id(c: dict[str, bool]) -> str:
    return "-".join(k for k, v in c.items() if v) or "plain"


@pytest.fixture(autouse=True, scope="module")
def _extension():
    if not _cpp.available():
        pytest.skip(f"C++ kernel unavailable: {_cpp._failure}")


ZONES = {  # zoneout's weights (z_h, z_c) of a step: draws (T rows) or eval mode's rate (one row for every step)
    "zone-train": ("draw", 0.4, 0.6),
    "zone-eval": ("rate", 0.3, 0.55),
    "zone-h": ("draw", 0.5, 0.0),
    "zone-c": ("draw", 0.0, 0.5),
}


def zone_weights(zone: str | None, t: int, P: int, gen: torch.Generator, dtype: torch.dtype) -> dict:
    """``ZONES[zone]`` as make_args' "zone_h", "zone_c" entries (None where the rate is 0)."""
    if zone is None:
        return {"zone_h": None, "zone_c": None}
    kind, p_h, p_c = ZONES[zone]
    out = {}
    for name, width, p in (("zone_h", P, p_h), ("zone_c", H, p_c)):
        if p == 0.0:
            out[name] = None
        elif kind == "draw":
            out[name] = (torch.rand(t, B, width, generator=gen) < p).to(dtype)
        else:
            out[name] = torch.full((1, B, width), p, dtype=dtype)
    return out


def make_args(c: dict[str, bool], dtype: torch.dtype, seed: int = 0, t: int = T, zone: str | None = None) -> dict:
    """Random inputs of one variant (with zoneout's weights ``ZONES[zone]``); the differentiable ones require
    grad."""
    gen = torch.Generator().manual_seed(seed)
    G = (3 if c["coupled"] else 4) * H
    P = P_PROJ if c["projection"] else H

    def rand(*shape, scale=1.0, offset=0.0):
        return (torch.randn(*shape, generator=gen, dtype=dtype) * scale + offset).requires_grad_()

    drop = None
    if c["drop"]:
        drop = (torch.rand(B, P, generator=gen) > 0.3).to(dtype) / 0.7
    mask = torch.arange(t).unsqueeze(1) < torch.tensor(LENGTHS).unsqueeze(0) if c["mask"] else None  # (T, B)
    return {
        "xg": rand(t, B, G),
        "h0": rand(B, P, scale=0.5),
        "c0": rand(B, H, scale=0.5),
        "w_hh": rand(G, P, scale=0.5),
        "w_hr": rand(P, H, scale=0.5) if c["projection"] else None,
        "peep": rand(2 if c["coupled"] else 3, H, scale=0.5) if c["peephole"] else None,
        "g_hh": rand(G, scale=0.2, offset=1.0) if c["layer_norm"] else None,
        "g_c": rand(H, scale=0.2, offset=1.0) if c["layer_norm"] else None,
        "b_c": rand(H, scale=0.2) if c["layer_norm"] else None,
        "drop": drop,
        "mask": mask,
        "coupled": c["coupled"],
        "eps": 1e-5,
        **zone_weights(zone, t, P, gen, dtype),
    }


def call(scan, args: dict, **kw):
    """``scan`` on make_args' flat tensors (plus optional g_ih, b_ih, b_hh; the scan reads no w_ih)."""
    a = args
    w = LSTMWeights(None, a["w_hh"], a.get("b_ih"), a.get("b_hh"), a["w_hr"], a["peep"], a.get("g_ih"), a["g_hh"],
                    a["g_c"], a["b_c"])  # fmt: skip
    return scan(a["xg"], (a["h0"], a["c0"]), w, LSTMOptions(coupled=a["coupled"], eps=a["eps"]), a["drop"],
                a["mask"], zone=(a.get("zone_h"), a.get("zone_c")), **kw)  # fmt: skip


def run(scan, args: dict, use=("y", "h", "c")):
    """Outputs and the gradients of a loss on the outputs named in ``use`` (None where unreached)."""
    y, h, c = call(scan, args)
    weights = {"y": torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape), "h": 0.7, "c": -1.3}
    loss = sum((out * weights[name]).sum() for name, out in zip("yhc", (y, h, c), strict=True) if name in use)
    inputs = [args[k] for k in DIFFERENTIABLE if args[k] is not None]
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    return [y, h, c], dict(zip([k for k in DIFFERENTIABLE if args[k] is not None], grads, strict=True))


def check_equal(args: dict, use=("y", "h", "c")) -> None:
    """Forward values and every gradient of the C++ scan equal the Python scan's, within the rounding
    bound of ``tolerances.scan_tolerance`` (gradients: relative to each gradient's largest entry)."""
    outs_ref, grads_ref = run(lstm_scan, args, use)
    outs, grads = run(lstm_scan_cpp, args, use)
    tol, tol_grad = scan_tolerance(args, gradients=False), scan_tolerance(args)
    for name, a, b in zip("yhc", outs, outs_ref, strict=True):
        torch.testing.assert_close(a, b, atol=tol, rtol=0, msg=lambda m, n=name: f"output {n}: {m}")
    for name, g_ref in grads_ref.items():
        g = grads[name]
        if g_ref is None or g is None:
            assert g is None and g_ref is None, f"d{name}: one side is None"
            continue
        atol = tol_grad * float(g_ref.abs().max())
        torch.testing.assert_close(g, g_ref, atol=atol, rtol=0, msg=lambda m, n=name: f"d{n}: {m}")




isa = pytest.fixture(params=ISAS, name="isa")(on_isa)  # each instruction-set path of the float32 kernels


@pytest.mark.parametrize("c", COMBOS, ids=combo_id)
def test_equal_to_python_float64(c):
    check_equal(make_args(c, torch.float64))


@pytest.mark.parametrize("c", COMBOS, ids=combo_id)
def test_equal_to_python_float32(c, isa):
    check_equal(make_args(c, torch.float32))


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("c", COMBOS, ids=combo_id)
def test_zoneout_equal_to_python_float64(c, zone):
    check_equal(make_args(c, torch.float64, zone=zone))


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("c", COMBOS[::3], ids=combo_id)
def test_zoneout_equal_to_python_float32(c, zone, isa):
    check_equal(make_args(c, torch.float32, zone=zone))


# every variant with both zoneout forms, and the one-state forms on a third of them
ZONE_GRADCHECK = [(c, z) for c in COMBOS for z in ("zone-train", "zone-eval")] + [
    (c, z) for c in COMBOS[1::3] for z in ("zone-h", "zone-c")]  # fmt: skip


@pytest.mark.parametrize("c", COMBOS, ids=combo_id)
def test_gradcheck(c):
    _gradcheck(make_args(c, torch.float64))


@pytest.mark.parametrize(("c", "zone"), ZONE_GRADCHECK, ids=[f"{combo_id(c)}-{z}" for c, z in ZONE_GRADCHECK])
def test_gradcheck_zoneout(c, zone):
    _gradcheck(make_args(c, torch.float64, zone=zone))


def _gradcheck(args: dict) -> None:
    names = [k for k in DIFFERENTIABLE if args[k] is not None]

    def f(*xs):
        return call(lstm_scan_cpp, {**args, **dict(zip(names, xs, strict=True))})

    assert torch.autograd.gradcheck(f, [args[k] for k in names])


def test_zoneout_weights_of_the_wrong_shape_are_refused():
    args = make_args(COMBOS[0], torch.float64, zone="zone-train")
    bad = {"zone_h": args["zone_h"][:2], "zone_c": args["zone_c"][:, :, :2]}
    wants = {"zone_h": rf"^lstm_scan_cpp: zone_h must be \({T} or 1, {B}, {H}\), got \[2, {B}, {H}\]",
             "zone_c": rf"^lstm_scan_cpp: zone_c must be \({T} or 1, {B}, {H}\), got \[{T}, {B}, 2\]"}  # fmt: skip
    for name, want in wants.items():
        with pytest.raises(RuntimeError, match=want):
            call(lstm_scan_cpp, {**args, name: bad[name]})


@pytest.mark.parametrize("zone", [None, "zone-train"])
@pytest.mark.parametrize("use", [("y",), ("h",), ("c",), ("h", "c")], ids="+".join)
@pytest.mark.parametrize("c", [COMBOS[0], {k: True for k in FLAGS}], ids=combo_id)
def test_unused_outputs(c, use, zone):
    """Outputs left out of the loss reach the backward as None grads."""
    check_equal(make_args(c, torch.float64, zone=zone), use=use)


@pytest.mark.parametrize("zone", [None, "zone-train", "zone-eval"])
@pytest.mark.parametrize("c", [COMBOS[0], {k: True for k in FLAGS}], ids=combo_id)
def test_no_time_steps(c, zone):
    """T = 0 (LSTM.forward rejects it, the kernel still handles it): the state passes through."""
    args = make_args(c, torch.float64, t=0, zone=zone)
    (y, h, c_n), grads = run(lstm_scan_cpp, args)
    assert y.shape == (0, B, args["h0"].shape[1])
    torch.testing.assert_close(h, args["h0"], atol=0, rtol=0)
    torch.testing.assert_close(c_n, args["c0"], atol=0, rtol=0)
    for name, g in grads.items():
        expected = {"h0": 0.7, "c0": -1.3}.get(name, 0.0)
        torch.testing.assert_close(g, torch.full_like(args[name], expected), atol=0, rtol=0, msg=f"d{name}")


@pytest.mark.parametrize("zone", [None, "zone-train", "zone-eval"])
@pytest.mark.parametrize("c", [COMBOS[0], COMBOS[-1], {**COMBOS[0], "layer_norm": True, "peephole": True}],
                         ids=combo_id)
def test_inference_path_matches_training_path(c, isa, zone):
    args = make_args(c, torch.float32, zone=zone)
    train = call(lstm_scan_cpp, args)
    with torch.inference_mode():
        infer = call(lstm_scan_cpp, args)
    for a, b in zip(infer, train, strict=True):
        assert not a.requires_grad
        torch.testing.assert_close(a, b.detach(), atol=0, rtol=0)


LN_COMBOS = [c for c in COMBOS if c["layer_norm"]]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("c", LN_COMBOS, ids=combo_id)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_inference_normalises_the_input_side_in_the_kernel(c, dtype, bias, isa):
    """finish_input: the kernel's LN_ih(W_ih x) + b, a row at a time, equals LayerNorm done before the loop."""
    args = make_args(c, dtype)
    gen = torch.Generator().manual_seed(7)
    G = args["xg"].shape[-1]
    xw = torch.randn(T, B, G, generator=gen, dtype=dtype) * 3 + 0.5  # W_ih x: scale and offset for LN to remove
    g_ih = torch.randn(G, generator=gen, dtype=dtype) * 0.2 + 1
    b_x = torch.randn(G, generator=gen, dtype=dtype) if bias else None
    args = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    args["xg"] = torch.nn.functional.layer_norm(xw, (G,), g_ih, b_x, 1e-5)  # what input_gates computes
    with torch.no_grad():
        want = call(lstm_scan, args)
        own = xw.clone()
        # b_ih + b_hh = b_x + 0 = b_x exactly
        b = {"b_ih": b_x, "b_hh": torch.zeros_like(b_x)} if bias else {}
        got = call(lstm_scan_cpp, {**args, "xg": own, "g_ih": g_ih, **b}, finish_input=True)
    tol = scan_tolerance(args, gradients=False)
    for name, a, b in zip("yhc", got, want, strict=True):
        torch.testing.assert_close(a, b, atol=tol, rtol=0, msg=lambda m, n=name: f"output {n}: {m}")
    # the buffer now holds the normalised gates: one LayerNorm over G of rows of G values of W_ih x
    tol_ln = 2 * _rounding.layer_norm_error(G, _rounding.unit_roundoff(dtype), float(g_ih.abs().max())) + (
        4 * _rounding.unit_roundoff(dtype) * float(b_x.abs().max()) if b_x is not None else 0.0)
    torch.testing.assert_close(own, args["xg"], atol=tol_ln, rtol=0)


PLAIN_COMBOS = [c for c in COMBOS if not c["layer_norm"]]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("c", PLAIN_COMBOS, ids=combo_id)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_inference_adds_the_biases_in_the_kernel(c, dtype, bias, isa):
    """finish_input without LayerNorm: the kernel's xg + b_ih + b_hh in the gate pass equals the biases added to
    xg before the loop, within the derived bound (the sums' order differs), and xg is left as it was."""
    args = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in make_args(c, dtype).items()}
    gen = torch.Generator().manual_seed(11)
    G = args["xg"].shape[-1]
    b = {"b_ih": torch.randn(G, generator=gen, dtype=dtype), "b_hh": torch.randn(G, generator=gen, dtype=dtype)}
    b = b if bias else {}
    with torch.no_grad():
        want = call(lstm_scan, {**args, "xg": args["xg"] + b["b_ih"] + b["b_hh"]} if bias else args)
        own = args["xg"].clone()
        got = call(lstm_scan_cpp, {**args, "xg": own, **b}, finish_input=True)
        plain = call(lstm_scan_cpp, args)  # finished beforehand, as in training: no biases given, none added
    assert torch.equal(own, args["xg"])
    tol = scan_tolerance(args, gradients=False)
    for name, x, y in zip("yhc", got, want, strict=True):
        torch.testing.assert_close(x, y, atol=tol, rtol=0, msg=lambda m, n=name: f"output {n}: {m}")
    if not bias:  # zeros added: the very values of the kernel without finish_input
        for x, y in zip(got, plain, strict=True):
            torch.testing.assert_close(x, y, atol=0, rtol=0)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("c", COMBOS, ids=combo_id)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_inference_computes_the_input_side_in_the_kernel(c, dtype, bias, isa):
    """lstm_scan_cpp_input (x and W_ih in, W_ih x made a chunk of steps at a time) equals the scan over input_gates'
    xg, for chunks of 1 and 2 of the 5 steps (boundaries inside and at the end) and the automatic size."""
    from lstmkit.nn.lstm import input_gates

    args = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in make_args(c, dtype).items()}
    gen = torch.Generator().manual_seed(13)
    G, I = args["xg"].shape[-1], 3
    x = torch.randn(T, B, I, generator=gen, dtype=dtype)
    extra = {"w_ih": torch.randn(G, I, generator=gen, dtype=dtype) * 0.5}
    if bias:
        extra |= {name: torch.randn(G, generator=gen, dtype=dtype) for name in ("b_ih", "b_hh")}
    if c["layer_norm"]:
        extra["g_ih"] = torch.randn(G, generator=gen, dtype=dtype) * 0.2 + 1
    a = {**args, **extra}
    w = LSTMWeights(a["w_ih"], a["w_hh"], a.get("b_ih"), a.get("b_hh"), a["w_hr"], a["peep"], a.get("g_ih"),
                    a["g_hh"], a["g_c"], a["b_c"])  # fmt: skip
    opt = LSTMOptions(coupled=a["coupled"], layer_norm=c["layer_norm"], eps=a["eps"])
    ext = _cpp._ext()
    with torch.no_grad():
        xg = input_gates(x, w, opt)  # (T, B, G)
        want = lstm_scan(xg, (a["h0"], a["c0"]), w, opt, a["drop"], a["mask"])
        tol = scan_tolerance({**args, "xg": xg}, gradients=False,
                             input_side=(x, extra["w_ih"], extra.get("b_ih"), extra.get("b_hh")))
        for chunk in (1, 2, 0):
            ext.set_input_chunk(chunk)
            try:
                got = _cpp.lstm_scan_cpp_input(x, (a["h0"], a["c0"]), w, opt, a["drop"], a["mask"])
            finally:
                ext.set_input_chunk(0)
            for name, u, v in zip("yhc", got, want, strict=True):
                torch.testing.assert_close(u, v, atol=tol, rtol=0,
                                           msg=lambda m, n=name, k=chunk: f"{n}, chunk {k}: {m}")


def test_input_chunk_rule_and_the_refusals_of_the_input_side_entry():
    ext = _cpp._ext()
    # steps per chunk: about 1 MB of W_ih x (B G 4 bytes a step), at least 512 rows, at most T; on panels of a W_ih
    # of up to 4 MB (the input side's rule: AMD's AVX-512 CPUs) about 256 KB, however few the rows (session 33)
    amd512 = ext.isa() == "avx512" and ext.cpu_vendor() == "amd"
    if ext.gemm() == "auto":
        assert ext.input_chunk(100, 64, 512, 128, 4) == (2 if amd512 else 8)  # 131 KB a step: 8 steps, 512 rows
        assert ext.input_chunk(100, 16, 512, 128, 4) == (8 if amd512 else 32)  # 32 KB a step: 32 steps
        assert ext.input_chunk(100, 64, 4096, 1024, 4) == 8  # 1 MB a step: the 512 rows decide; 16 MB of W_ih
        assert ext.input_chunk(100, 16, 2048, 512, 4) == (2 if amd512 else 32)  # 4 MB of W_ih, 128 KB a step
        assert ext.input_chunk(100, 64, 2048, 512, 4) == (1 if amd512 else 8)  # 512 KB a step: at least one step
        assert ext.input_chunk(100, 1, 512, 128, 4) == 100  # 512 steps' worth, cut to T
        assert ext.input_chunk(100, 1, 512, 128, 8) == 100  # float64: MKL's dgemm, the 1 MB rule
        assert ext.input_chunk(100, 16, 512, 128, 8) == 32  # 64 KB a step: the 512 rows decide
    try:
        ext.set_input_gemm("panels")  # forced panels take the small chunks on every CPU
        assert ext.input_chunk(100, 16, 512, 128, 4) == 8
        ext.set_input_gemm("blas")
        assert ext.input_chunk(100, 16, 512, 128, 4) == 32
    finally:
        ext.set_input_gemm("auto")
    with pytest.raises(RuntimeError, match="set_input_chunk: steps must be >= 0"):
        ext.set_input_chunk(-1)
    args = make_args(COMBOS[0], torch.float64)
    G = args["xg"].shape[-1]
    x = torch.randn(T, B, 3, dtype=torch.float64)
    w = LSTMWeights(torch.randn(G, 3, dtype=torch.float64, requires_grad=True), args["w_hh"].detach())
    with pytest.raises(ValueError, match="lstm_scan_cpp_input is for inference only"):
        _cpp.lstm_scan_cpp_input(x, (args["h0"].detach(), args["c0"].detach()), w, LSTMOptions())
    with torch.no_grad(), pytest.raises(RuntimeError, match=r"x must be \(T, B, I\) and w_ih \(G, I\)"):
        _cpp.lstm_scan_cpp_input(x[..., :2], (args["h0"].detach(), args["c0"].detach()), w, LSTMOptions())


def test_in_kernel_input_finish_is_refused_where_it_cannot_apply():
    args = make_args({**COMBOS[0], "layer_norm": True}, torch.float64)
    G = args["xg"].shape[-1]
    ones = torch.ones(G, dtype=torch.float64)
    with pytest.raises(ValueError, match="finish_input is for inference only"):
        call(lstm_scan_cpp, {**args, "g_ih": ones}, finish_input=True)
    with pytest.raises(ValueError, match="finish_input is for inference only"):  # without LayerNorm too
        call(lstm_scan_cpp, {**make_args(COMBOS[0], torch.float64), "b_ih": ones, "b_hh": ones}, finish_input=True)
    detached = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    with torch.no_grad(), pytest.raises(ValueError, match=r"finish_input with layer_norm needs the input side's "
                                                          r"LayerNorm gain w\.g_ih"):
        call(lstm_scan_cpp, detached, finish_input=True)
    plain = {k: v.detach() if isinstance(v, torch.Tensor) else v
             for k, v in make_args(COMBOS[0], torch.float64).items()}
    with torch.no_grad(), pytest.raises(RuntimeError, match="g_ih is for inference with layer_norm"):
        call(lstm_scan_cpp, {**plain, "g_ih": torch.ones(4 * H, dtype=torch.float64)}, finish_input=True)
    ext = _cpp._ext()
    a = detached
    with pytest.raises(RuntimeError, match="b_x is for inference, and with layer_norm it comes with g_ih"):
        ext.forward(a["xg"], a["h0"], a["c0"], a["w_hh"], None, None, a["g_hh"], a["g_c"], a["b_c"], None, None,
                    False, 1e-5, None, None, False, None, ones)  # layer_norm, b_x without g_ih
    with pytest.raises(RuntimeError, match="b_x is for inference, and with layer_norm it comes with g_ih"):
        ext.forward(plain["xg"], plain["h0"], plain["c0"], plain["w_hh"], None, None, None, None, None, None,
                    None, False, 1e-5, None, None, True, None, ones)  # train
    ln = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    with torch.no_grad(), pytest.raises(RuntimeError, match="may overwrite"):  # a view it would copy, not own
        call(lstm_scan_cpp, {**ln, "xg": ln["xg"].transpose(0, 1).contiguous().transpose(0, 1), "g_ih": ones},
             finish_input=True)


@pytest.mark.parametrize("layer_norm", [True, False], ids=["layer_norm", "plain"])
def test_lstm_inference_finishes_the_input_side_in_the_kernel(monkeypatch, layer_norm):
    """LSTM hands W_ih x, LN_ih (with layer_norm) and the biases to the kernel in inference only, with the same
    results."""
    import lstmkit

    calls = []
    kernel, inference = _cpp.lstm_scan_cpp, _cpp.lstm_scan_cpp_input

    def spy(*a, **k):
        calls.append(False)  # the input side before the loop
        return kernel(*a, **k)

    def spy_input(*a, **k):
        calls.append(True)  # the input side in the kernel
        return inference(*a, **k)

    monkeypatch.setattr(_cpp, "lstm_scan_cpp", spy)
    monkeypatch.setattr(_cpp, "lstm_scan_cpp_input", spy_input)
    torch.manual_seed(0)
    m = lstmkit.LSTM(5, 6, 2, layer_norm=layer_norm, peephole=True, bidirectional=True, dtype=torch.float64,
                     impl="cpp")
    x = torch.randn(7, 3, 5, dtype=torch.float64)
    lengths = torch.tensor([7, 4, 1])
    with torch.no_grad():
        got = m(x, lengths=lengths)
    assert calls == [True] * 4  # 2 layers x 2 directions
    y, _ = m(x, lengths=lengths)  # grad mode with parameters requiring grad: finished before the loop
    assert calls[4:] == [False] * 4
    m.impl = "reference"
    with torch.no_grad():
        want = m(x, lengths=lengths)
    tol = module_tolerance(m, x)
    for a, b in ((got[0], want[0]), (got[1][0], want[1][0]), (got[1][1], want[1][1]), (y.detach(), want[0])):
        torch.testing.assert_close(a, b, atol=tol, rtol=0)


@pytest.mark.parametrize("gemm", ["blas", "aten"])
@pytest.mark.parametrize("c", [COMBOS[0], COMBOS[-1]], ids=combo_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_portable_kernels_and_other_matmuls(c, dtype, gemm):
    """The portable (no AVX) kernels with the BLAS / at::mm_out products give the same results."""
    ext = _cpp._module
    isa, mode = ext.isa(), ext.gemm()
    try:
        ext.set_isa("generic")
        ext.set_gemm(gemm)
        check_equal(make_args(c, dtype))
    finally:
        ext.set_isa(isa)
        ext.set_gemm(mode)


# The per-step matrix-product paths (see the .cpp); gemv applies to one batch row (else panels).
GEMMS = ("auto", "brgemm", "panels", "packed", "blas", "aten", "gemv")


@pytest.fixture(params=GEMMS)
def gemm(request):
    """Runs the test with every per-step product forced onto one path; skipped where torch lacks it."""
    ext = _cpp._module
    before = ext.gemm()
    try:
        ext.set_gemm(request.param)
    except RuntimeError as e:
        pytest.skip(str(e))
    yield request.param
    ext.set_gemm(before)


@pytest.mark.parametrize("c", COMBOS, ids=combo_id)
def test_every_matmul_path_float32(c, gemm):
    """Every variant, float32, with each per-step product path (packed weights reused over the steps,
    brgemm, BLAS, ATen): the same results as the Python scan within the rounding bound."""
    check_equal(make_args(c, torch.float32, t=6))


@pytest.mark.parametrize("c", COMBOS, ids=combo_id)
def test_batch_of_one_every_matmul_path(c, gemm, isa):
    """Batch 1 (streaming, serving: gemv_rows on AVX2), every variant and product path, both ways."""
    args = make_args(c, torch.float32, t=6)
    for k in ("xg", "h0", "c0", "drop", "mask"):
        t = args[k]
        if t is not None:
            one = t[:, :1] if k in ("xg", "mask") else t[:1]
            args[k] = one.detach().clone().requires_grad_(t.requires_grad)
    check_equal(args)


@pytest.mark.parametrize("m, k, n", [(1, 64, 48), (3, 300, 100), (17, 1500, 96), (64, 2048, 64), (5, 4100, 40)])
def test_step_product_every_path(m, k, n, gemm, isa):
    """The per-step product alone, each path (panels with K above 1024 in blocks of 512 rows, the last
    block partial): within the elementwise bound gamma_K |A| |W| of the exact product, float32."""
    ext = _cpp._module
    gen = torch.Generator().manual_seed(k)
    a, w = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
    c, secs = ext.step_product(a, w, 3)
    exact = a.double() @ w.double()
    bound = _rounding.gamma(k + 1, _rounding.unit_roundoff(torch.float32)) * (a.double().abs() @ w.double().abs())
    assert c.shape == (m, n) and secs >= 0
    assert bool(((c.double() - exact).abs() <= bound).all()), float((c.double() - exact).abs().max())
    with pytest.raises(RuntimeError, match=r"step_product: A \(M, K\) and W \(K, N\)"):
        ext.step_product(a, w.t(), 1)


def test_auto_matmul_choice():
    """The automatic path (measured, docs/benchmarks.md): gemv_rows for one batch row; for several, on AVX-512
    brgemm in place up to K = 256 (512 on AMD below 16 rows or for a few steps; 128 on Zen 5), above it brgemm on
    panels once there are enough steps to pay for copying W, else BLAS; on AVX2 brgemm on panels once there are
    enough steps, else brgemm in place up to K = 128 and BLAS above."""
    ext = _cpp._module
    if ext.gemm() != "auto":
        pytest.skip("a forced gemm mode is active")
    if ext.isa() == "avx512" and ext.cpu_vendor() == "amd" and ext.cpu_family() >= 26:
        # Zen 5 (session 39): in place up to K = 128, panels above at every row count once steps pay for them
        assert ext.gemm_for(1, 64, 100) == "gemv" and ext.gemm_for(1, 1024, 4) == "gemv"
        assert ext.gemm_for(4, 128, 100) == "brgemm" and ext.gemm_for(64, 128, 100) == "brgemm"
        assert ext.gemm_for(2, 129, 100) == "panels" and ext.gemm_for(64, 256, 100) == "panels"
        assert ext.gemm_for(16, 257, 1) == "brgemm" and ext.gemm_for(16, 512, 3) == "brgemm"
        assert ext.gemm_for(16, 513, 3) == "blas"
    elif ext.isa() == "avx512":
        assert ext.gemm_for(4, 256, 100) == "brgemm" and ext.gemm_for(1, 64, 100) == "gemv"
        assert ext.gemm_for(1, 1024, 4) == "gemv" and ext.gemm_for(4, 1024, 100) == "panels"
        assert ext.gemm_for(64, 4096, 3) == "blas" and ext.gemm_for(16, 513, 100) == "panels"
        # AMD: in place up to K = 512 below 16 rows (session 32's EPYC), from 16 rows panels above K = 256 (session
        # 33), in place to K = 512 for a few steps; elsewhere above K = 256 panels, or BLAS for a few steps (session
        # 22's Xeon)
        amd = ext.cpu_vendor() == "amd"
        assert ext.gemm_for(4, 512, 100) == ("brgemm" if amd else "panels")
        assert ext.gemm_for(15, 512, 100) == ("brgemm" if amd else "panels")
        assert ext.gemm_for(16, 257, 100) == "panels" and ext.gemm_for(16, 256, 100) == "brgemm"
        assert ext.gemm_for(16, 257, 1) == ("brgemm" if amd else "blas")
        assert ext.gemm_for(16, 512, 3) == ("brgemm" if amd else "blas")
        assert ext.gemm_for(16, 513, 3) == "blas"
    elif ext.isa() == "avx2":
        assert ext.gemm_for(1, 64, 100) == "gemv" and ext.gemm_for(1, 1024, 1) == "gemv"
        assert ext.gemm_for(4, 256, 4) == "panels" and ext.gemm_for(64, 128, 100) == "panels"
        assert ext.gemm_for(16, 256, 3) == "blas" and ext.gemm_for(4, 128, 1) == "brgemm"
    with pytest.raises(RuntimeError, match="unknown gemm mode fast"):
        ext.set_gemm("fast")


@pytest.mark.parametrize("threads", [1, 2])
def test_training_one_row_split_by_units_against_torch(isa, threads):
    """Training at one batch row over two threads (B = 1, H = 256, T = 9: the forward's per-thread gate blocks packed
    side by side): outputs and every gradient equal torch.nn.LSTM's within the derived bound."""
    torch.manual_seed(5)
    ref = torch.nn.LSTM(40, 256)
    ours = lstmkit.nn.LSTM(40, 256)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(9, 1, 40)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
        outs = [m(v) for m, v in zip((ours, ref), xs, strict=True)]
        for y, (h, c) in outs:
            (y.square().sum() + h.sum() + c.sum()).backward()
        tol = module_tolerance(ours, x)
        for u, v in zip((outs[0][0], *outs[0][1]), (outs[1][0], *outs[1][1]), strict=True):
            torch.testing.assert_close(u, v, atol=tol, rtol=0)
        gtol = module_tolerance(ours, x, gradients=True)
        grads = [(xs[0].grad, xs[1].grad)] + [(p.grad, q.grad) for p, q in zip(ours.parameters(), ref.parameters(),
                                                                                 strict=True)]  # fmt: skip
        for u, v in grads:
            torch.testing.assert_close(u, v, atol=gtol * max(1.0, float(v.abs().max())), rtol=0)
    finally:
        torch.set_num_threads(before)


def test_one_row_packed_gate_blocks_give_the_very_values_of_the_blocks_in_place(isa):
    """One batch row split by units over two threads (B = 1, H = 256, T = 9): with each thread's gate blocks packed
    side by side (the automatic path) gemv_rows makes the same sums in the same order as on W_hh^T in place (forced
    gemv), so outputs and gradients are bitwise equal, in inference and in training. (The bound against torch is
    too loose at this size to see a swapped gate block; this is not.)"""
    ext = _cpp._module
    torch.manual_seed(7)
    m = lstmkit.nn.LSTM(40, 256)
    x = torch.randn(9, 1, 40)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    runs = []
    try:
        for mode in ("auto", "gemv"):
            ext.set_gemm(mode)
            with torch.inference_mode():
                y_inf = m(x)[0]
            m.zero_grad()
            v = x.clone().requires_grad_()
            y, (h, c) = m(v)
            (y.square().sum() + h.sum() + c.sum()).backward()
            runs.append([y_inf, y.detach(), v.grad, *(p.grad.clone() for p in m.parameters())])
    finally:
        ext.set_gemm("auto")
        torch.set_num_threads(before)
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


def test_panel_width_rule_and_its_hook():
    """Panels hold 16 columns for up to 16 rows and 32 above, except on AMD's AVX-512 CPUs, 32 at every row count
    (session 33's EPYC); the hook forces 16 or 32 and refuses anything else."""
    ext = _cpp._module
    amd512 = ext.isa() == "avx512" and ext.cpu_vendor() == "amd"
    assert ext.panel_width(16) == (32 if amd512 else 16) and ext.panel_width(1) == (32 if amd512 else 16)
    assert ext.panel_width(17) == 32 and ext.panel_width(512) == 32
    try:
        for width in (16, 32):
            ext.set_panel_width(width)
            assert ext.panel_width(1) == width and ext.panel_width(600) == width
        with pytest.raises(RuntimeError, match="set_panel_width: 0 \\(the rule\\), 16 or 32, got 24"):
            ext.set_panel_width(24)
    finally:
        ext.set_panel_width(0)
    assert ext.panel_width(17) == 32


@pytest.mark.parametrize("width", [16, 32])
@pytest.mark.parametrize("m, k, n", [(1, 64, 48), (5, 300, 100), (16, 512, 72), (17, 1500, 96), (40, 33, 40)])
def test_panels_of_either_width(m, k, n, width, isa):
    """The per-step product on panels 16 or 32 wide (the last panel partial where N is no multiple; K above 1024 in
    blocks): within the elementwise bound gamma_K |A| |W| of the exact product, float32."""
    ext = _cpp._module
    gen = torch.Generator().manual_seed(k + width)
    a, w = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
    try:
        ext.set_panel_width(width)
        ext.set_gemm("panels")
        c, _ = ext.step_product(a, w, 2)
    finally:
        ext.set_gemm("auto")
        ext.set_panel_width(0)
    exact = a.double() @ w.double()
    bound = _rounding.gamma(k + 1, _rounding.unit_roundoff(torch.float32)) * (a.double().abs() @ w.double().abs())
    assert bool(((c.double() - exact).abs() <= bound).all()), float((c.double() - exact).abs().max())


def test_cpu_vendor_and_family_read_from_the_cpu():
    """The kernel's vendor check and CPU family (AMD's CPUs get their own rules, Zen 5 its own thresholds) agree with
    the kernel's /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        pytest.skip("no /proc/cpuinfo to compare with")
    if "vendor_id" not in info:
        pytest.skip("/proc/cpuinfo names no x86 vendor")
    assert _cpp._module.cpu_vendor() == ("amd" if "AuthenticAMD" in info else "other")
    family = re.search(r"^cpu family\s*:\s*(\d+)", info, re.M)
    if family is not None:
        assert _cpp._module.cpu_family() == int(family.group(1))


def test_input_side_matmul_choice_and_its_hook():
    """The input side in inference (T B rows x I @ W_ih^T): MKL's sgemm, except on AMD's AVX-512 CPUs from 128 rows
    where W_ih fits 1 MB, 256 where it fits 4 MB, else 512 (on Zen 5, family 26 and later: 16 up to 4 MB, 32 to 16 MB),
    where brgemm on panels of W_ih runs; the hook forces one path, names checked."""
    ext = _cpp._module
    if ext.gemm() != "auto":
        pytest.skip("a forced gemm mode is active")
    amd512 = ext.isa() == "avx512" and ext.cpu_vendor() == "amd"
    want = "panels" if amd512 else "blas"
    if amd512 and ext.cpu_family() >= 26:  # Zen 5: full-width AVX-512, the panels pay from few rows
        assert ext.input_gemm(16, 2048, 512) == "panels" and ext.input_gemm(15, 2048, 512) == "blas"  # 4 MB
        assert ext.input_gemm(32, 2048, 513) == "panels" and ext.input_gemm(31, 2048, 513) == "blas"  # over 4 MB
        assert ext.input_gemm(32, 4096, 1024) == "panels" and ext.input_gemm(31, 4096, 1024) == "blas"  # 16 MB
        assert ext.input_gemm(512, 4096, 1025) == "panels" and ext.input_gemm(511, 4096, 1025) == "blas"  # over
    else:
        assert ext.input_gemm(128, 1024, 256) == want and ext.input_gemm(127, 1024, 256) == "blas"  # 1 MB
        assert ext.input_gemm(256, 2048, 512) == want and ext.input_gemm(255, 2048, 512) == "blas"  # 4 MB
        assert ext.input_gemm(200, 1024, 257) == "blas"  # just over 1 MB: 256 rows needed
        assert ext.input_gemm(512, 4096, 1024) == want and ext.input_gemm(511, 4096, 1024) == "blas"  # 16 MB
    try:
        for mode in ("panels", "blas", "aten"):
            ext.set_input_gemm(mode)
            assert ext.input_gemm(1, 4, 1) == mode
        with pytest.raises(RuntimeError, match=r"unknown input-side gemm mode brgemm \(auto, panels, blas or aten\)"):
            ext.set_input_gemm("brgemm")
    finally:
        ext.set_input_gemm("auto")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("proj_size", [0, 17])
@pytest.mark.parametrize("size", [(12, 13, 37, 20), (3, 50, 272, 256), (9, 1, 40, 256)], ids=["small", "large", "row"])
def test_inference_every_input_side_and_step_path_against_torch(isa, proj_size, threads, size):
    """Inference at sizes that reach the 16 x 16 transposing tiles and their edges (T, B, I, H = 12, 13, 37, 20:
    G = 80; P = 17) and many rows (T B = 156), at sizes whose copies are split across two threads (I = 272,
    H = 256: W_ih and W_hh of 2^18 elements and more), and one batch row split by units over two threads (B = 1,
    H = 256, T = 9: each thread's gate blocks packed side by side, on the automatic path), each input-side path
    (the W_ih panels are cut from W_ih itself) and each per-step path (W_hh^T and W_hr^T made by the tiled
    transpose; the panels forced 16 and 32 wide), one and two threads: torch.nn.LSTM's values."""
    ext = _cpp._module
    T_, B_, I_, H_ = size
    torch.manual_seed(3)
    ref = torch.nn.LSTM(I_, H_, num_layers=2, proj_size=proj_size)
    ours = lstmkit.nn.LSTM(I_, H_, num_layers=2, proj_size=proj_size)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(T_, B_, I_)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            want = ref(x)
            tol = module_tolerance(ours, x)
            # per-step paths: (mode, panel width; 0 = the rule), the forced width applying to the input side too
            steps = (("auto", 0), ("brgemm", 0), ("panels", 16), ("panels", 32))
            for in_mode, (step_mode, width) in itertools.product(("auto", "panels", "blas", "aten"), steps):
                ext.set_input_gemm(in_mode)
                ext.set_gemm(step_mode)
                ext.set_panel_width(width)
                got = ours(x)
                for name, u, v in zip(("y", "h", "c"), (got[0], *got[1]), (want[0], *want[1]), strict=True):
                    torch.testing.assert_close(u, v, atol=tol, rtol=0, msg=lambda m, n=name, a=in_mode, b=step_mode,
                                               w=width: f"{n}, {a}/{b} {w}: {m}")  # fmt: skip
    finally:
        ext.set_input_gemm("auto")
        ext.set_gemm("auto")
        ext.set_panel_width(0)
        torch.set_num_threads(before)


@pytest.mark.parametrize("zoneout", [False, True], ids=["", "zoneout"])
@pytest.mark.parametrize("projection", [False, True], ids=["", "projection"])
@pytest.mark.parametrize("layer_norm", [False, True], ids=["", "layer_norm"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_steps_split_over_threads(dtype, layer_norm, projection, zoneout, isa, gemm):
    """Steps big enough to be split over threads (by units, or by rows with LayerNorm): same numbers."""
    gen = torch.Generator().manual_seed(1)
    Tn, Bn, Hn = 3, 64, 256
    Pn = 128 if projection else Hn
    coupled = projection  # covers both gate layouts without doubling the cases
    G = (3 if coupled else 4) * Hn

    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen, dtype=dtype)).requires_grad_()

    args = {
        "xg": rand(Tn, Bn, G),
        "h0": rand(Bn, Pn),
        "c0": rand(Bn, Hn),
        "w_hh": rand(G, Pn, scale=0.1),
        "w_hr": rand(Pn, Hn, scale=0.1) if projection else None,
        "peep": rand(2 if coupled else 3, Hn),
        "g_hh": rand(G, scale=0.1) if layer_norm else None,
        "g_c": rand(Hn, scale=0.1) if layer_norm else None,
        "b_c": rand(Hn, scale=0.1) if layer_norm else None,
        "drop": torch.full((Bn, Pn), 1.25, dtype=dtype),
        "mask": torch.arange(Tn).unsqueeze(1) < torch.arange(Bn).remainder(Tn + 1).unsqueeze(0),
        "coupled": coupled,
        "eps": 1e-5,
        "zone_h": (torch.rand(Tn, Bn, Pn, generator=gen) < 0.3).to(dtype) if zoneout else None,
        "zone_c": (torch.rand(Tn, Bn, Hn, generator=gen) < 0.5).to(dtype) if zoneout else None,
    }
    check_equal(args)
    args.update(drop=None, mask=None)  # the paths where the products write y and dh directly (without zoneout)
    check_equal(args)


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
def test_float32_gate_functions_over_a_wide_range(isa):
    """The vectorised float32 sigmoid/tanh are as accurate as torch's, far into saturation and at +-inf."""
    ext = _cpp._module
    best = ext.isa()
    try:
        ext.set_isa(isa)
    except RuntimeError:
        pytest.skip(f"this CPU has no {isa}")
    try:
        special = [-1e-30, 0.0, 1e-30, 1e-8, -1e-5, 0.6249, 0.625, -0.625, 50.0, float("inf"), -float("inf")]
        v = torch.cat([torch.linspace(-100, 100, 20000), torch.tensor(special)])
        v = torch.cat([v, torch.zeros(-v.numel() % 16)])
        Bn, Hn = v.numel() // 16, 16
        pre = torch.stack([v, v.flip(0), v, v.roll(7)]).reshape(4, Bn, Hn)  # gates i, f, g, o
        xg = pre.permute(1, 0, 2).reshape(1, Bn, 4 * Hn)
        c0 = torch.linspace(-3, 3, Bn * Hn).reshape(Bn, Hn)
        with torch.no_grad():
            w = LSTMWeights(None, torch.zeros(4 * Hn, Hn))
            _, h, c = lstm_scan_cpp(xg, (torch.zeros(Bn, Hn), c0), w, LSTMOptions())
    finally:
        ext.set_isa(best)
    a = pre.double()
    c_ref = a[1].sigmoid() * c0.double() + a[0].sigmoid() * a[2].tanh()
    h_ref = a[3].sigmoid() * c_ref.tanh()
    tol = _rounding.F_POINTWISE * _rounding.unit_roundoff(torch.float32)  # what the bounds assume per function
    torch.testing.assert_close(c.double(), c_ref, atol=tol, rtol=tol)
    torch.testing.assert_close(h.double(), h_ref, atol=tol, rtol=tol)


def test_rejects_other_devices_and_dtypes():
    args = make_args(COMBOS[0], torch.float32)
    with pytest.raises(ValueError, match="CPU tensors only"):
        call(lstm_scan_cpp, {**args, "xg": torch.empty(T, B, 4 * H, device="meta")})
    with pytest.raises(TypeError, match="float32 and float64"):
        call(lstm_scan_cpp, {**args, "xg": args["xg"].detach().half()})
    with pytest.raises(TypeError, match="h0 has dtype"):
        call(lstm_scan_cpp, {**args, "h0": args["h0"].detach().double()})


def _in_subprocess(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )


# Prints: available, whether this process compiled, the build folder, a small forward's sum, the ISA path.
PROBE = """
import torch
from lstmkit.nn import LSTMOptions, LSTMWeights, _cpp
ok = _cpp.available()
x = torch.linspace(-1, 1, 2 * 3 * 16).reshape(2, 3, 16)
w = LSTMWeights(None, torch.full((16, 4), 0.1), None, None, None, None, None, None, None, None)
y = _cpp.lstm_scan_cpp(x, (torch.zeros(3, 4), torch.zeros(3, 4)), w, LSTMOptions())[0]
print(ok, _cpp.built_here, _cpp.build_directory(), repr(y.sum().item()), _cpp._module.isa())
"""
BUILD_MESSAGE = "lstmkit: compiling the C++ LSTM kernel"


def test_env_var_disables():
    out = _in_subprocess("from lstmkit.nn import _cpp; print(_cpp.available(), _cpp._failure)", LSTMKIT_NO_CPP="1")
    assert out.stdout.strip() == "False disabled by LSTMKIT_NO_CPP"


def test_second_process_reuses_the_build_silently():
    out = _in_subprocess(PROBE)
    assert out.returncode == 0, out.stderr
    ok, built, where, *_ = out.stdout.split()
    assert (ok, built, where) == ("True", "False", str(_cpp.build_directory()))  # loaded, not compiled
    assert BUILD_MESSAGE not in out.stderr


def test_concurrent_first_builds_agree_and_the_next_process_reuses(tmp_path):
    """Two processes starting on an empty cache: one compiles (and says so once), the other waits on
    the lock and loads that build; both give the same numbers. A third compiles nothing, says nothing."""
    env = {**os.environ, "LSTMKIT_CACHE_DIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", PROBE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    lines = [out.split() for out, _ in outs]
    assert sorted(line[1] for line in lines) == ["False", "True"]  # exactly one compiled
    assert lines[0][2:] == lines[1][2:]  # same folder, same result, same ISA path
    assert sum(err.count(BUILD_MESSAGE) for _, err in outs) == 1
    builder_err = next(err for out, err in outs if out.split()[1] == "True")
    assert lines[0][2] in builder_err  # the message names the folder
    assert not list((tmp_path / "cpp").glob(".*.tmp-*"))  # no half-built folder left
    third = _in_subprocess(PROBE, LSTMKIT_CACHE_DIR=str(tmp_path))
    assert third.returncode == 0, third.stderr
    assert third.stdout.split()[1] == "False" and third.stdout.split()[2:] == lines[0][2:]
    assert BUILD_MESSAGE not in third.stderr


def test_build_directory_is_keyed_by_what_changes_the_binary():
    key = _cpp.build_key()
    assert _cpp.build_directory(key) == _cpp.build_directory()
    assert {"torch", "torch_path", "python", "compiler", "compiler_version", "sources"} <= key.keys()
    for name in ("torch_path", "compiler", "compiler_version", "python"):  # e.g. a second virtual environment
        assert _cpp.build_directory({**key, name: key[name] + "-other"}) != _cpp.build_directory(key), name


def test_isa_env_var_forces_a_path_and_refuses_what_the_cpu_lacks():
    supported = _cpp.supported_isas()
    assert supported[0] == "generic" and _cpp._best_isa == supported[-1]
    results = {}
    for isa in supported:
        out = _in_subprocess(PROBE, LSTMKIT_CPU_ISA=isa)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[-1] == isa
        results[isa] = float(out.stdout.split()[3])
    # the paths agree within rounding: 2 steps, sums of 4 recurrent terms, 24 outputs summed
    tol = 24 * _rounding.between(_rounding.lstm_error(torch.float32, T=2, K=6, a_max=1.4, H=4, c0_max=0.0))
    assert max(results.values()) - min(results.values()) <= tol
    for bad in [isa for isa in _cpp.ISAS if isa not in supported] + ["sse9"]:
        out = _in_subprocess(PROBE, LSTMKIT_CPU_ISA=bad)
        assert out.returncode != 0 and f"LSTMKIT_CPU_ISA={bad!r}" in out.stderr, out.stderr


def test_whole_product_choice_and_its_hook():
    """The whole-sequence products of training (the input side, its gradients, dW_hh, dW_hr): brgemm on panels on
    AMD's AVX-512 CPUs, BLAS elsewhere; the hook forces either on any CPU, names checked."""
    ext = _cpp._module
    amd512 = ext.isa() == "avx512" and ext.cpu_vendor() == "amd"
    assert ext.whole_gemm() == ("panels" if amd512 else "blas")
    try:
        for mode in ("panels", "blas"):
            ext.set_whole_gemm(mode)
            assert ext.whole_gemm() == mode
        with pytest.raises(RuntimeError, match=r"unknown whole-product gemm mode aten \(auto, panels or blas\)"):
            ext.set_whole_gemm("aten")
    finally:
        ext.set_whole_gemm("auto")


WHOLE_VARIANTS = {"plain": {}, "projection": {"proj_size": 11}, "layer_norm": {"layer_norm": True},
                  "peephole+coupled": {"peephole": True, "coupled": True}}  # fmt: skip


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("variant", list(WHOLE_VARIANTS))
@pytest.mark.parametrize("size", [(12, 13, 37, 20), (3, 50, 272, 256)], ids=["edges", "large"])
def test_training_every_whole_product_path_against_the_reference(isa, variant, threads, size):
    """A training step (two layers, the input requiring grad) with the whole-sequence products on panels and on
    BLAS, one and two threads, at sizes whose transposes reach the 16 x 16 tiles' edges (T, B, I, H = 12, 13, 37,
    20) and whose copies split across threads (3, 50, 272, 256): outputs and every gradient (x, W_ih, W_hh, W_hr,
    the biases, peepholes, LayerNorm gains) equal the reference loop's (``impl="reference"``: torch operations,
    F.linear for the input side) within the derived float32 bound."""
    ext = _cpp._module
    T_, B_, I_, H_ = size
    torch.manual_seed(4)
    ref = lstmkit.nn.LSTM(I_, H_, num_layers=2, impl="reference", **WHOLE_VARIANTS[variant])
    ours = lstmkit.nn.LSTM(I_, H_, num_layers=2, impl="cpp", **WHOLE_VARIANTS[variant])
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(T_, B_, I_)
    xr = x.clone().requires_grad_()
    y_ref, (h_ref, c_ref) = ref(xr)
    (y_ref.square().sum() + h_ref.sum() + c_ref.sum()).backward()
    want = [y_ref, h_ref, c_ref]
    want_grads = [xr.grad, *(p.grad for p in ref.parameters())]
    tol, gtol = module_tolerance(ours, x), module_tolerance(ours, x, gradients=True)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for mode in ("panels", "blas"):
            ext.set_whole_gemm(mode)
            ours.zero_grad()
            xo = x.clone().requires_grad_()
            y, (h, c) = ours(xo)
            (y.square().sum() + h.sum() + c.sum()).backward()
            for name, u, v in zip(("y", "h", "c"), (y, h, c), want, strict=True):
                torch.testing.assert_close(u, v, atol=tol, rtol=0, msg=lambda m, n=name, k=mode: f"{n}, {k}: {m}")
            names = ["x", *(n for n, _ in ours.named_parameters())]
            for name, u, v in zip(names, [xo.grad, *(p.grad for p in ours.parameters())], want_grads, strict=True):
                torch.testing.assert_close(u, v, atol=gtol * max(1.0, float(v.abs().max())), rtol=0,
                                           msg=lambda m, n=name, k=mode: f"d{n}, {k}: {m}")  # fmt: skip
    finally:
        ext.set_whole_gemm("auto")
        torch.set_num_threads(before)


def test_whole_linear_on_panels_against_f_linear_and_its_second_order():
    """``_cpp.whole_linear`` on panels: the values and the three gradients of ``F.linear`` (leading dimensions
    (T, B), a bias, none) within gamma(K) |x| |W| (K = I terms, or T B for the weight gradient), the panels' sums in
    another order; with ``create_graph=True`` its gradients are differentiable and their own gradients equal
    ``F.linear``'s (the backward then runs torch operations); float64 goes to ``F.linear`` itself."""
    ext = _cpp._module
    u = _rounding.unit_roundoff(torch.float32)
    torch.manual_seed(6)
    x, w, b = torch.randn(13, 5, 33), torch.randn(40, 33), torch.randn(40)  # 65 rows: PANEL_MIN_ROWS and more
    dy = torch.randn(13, 5, 40)
    try:
        ext.set_whole_gemm("panels")
        for bias in (b, None):
            args = [t.clone().requires_grad_() for t in (x, w)] + ([b.clone().requires_grad_()] if bias is not None
                                                                     else [])  # fmt: skip
            ref = [t.detach().clone().requires_grad_() for t in args]
            got = _cpp.whole_linear(*args)
            want = torch.nn.functional.linear(*ref)
            assert got.grad_fn.name() == "_WholeLinearBackward"  # the panels ran
            tol = _rounding.gamma(33 + 1, u) * float((x.abs() @ w.abs().t()).max() + b.abs().max())
            torch.testing.assert_close(got, want, atol=tol, rtol=0)
            got.backward(dy)
            want.backward(dy)
            bounds = (_rounding.gamma(40, u) * float((dy.abs() @ w.abs()).max()),
                      _rounding.gamma(65, u) * float((dy.abs().flatten(0, 1).t() @ x.abs().flatten(0, 1)).max()),
                      _rounding.gamma(65, u) * float(dy.abs().sum((0, 1)).max()))  # fmt: skip
            for g, r, bound in zip(args, ref, bounds, strict=False):
                torch.testing.assert_close(g.grad, r.grad, atol=bound, rtol=0)
        # second order: d/dw of sum((d out / d x) . v)
        xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
        (gx,) = torch.autograd.grad(_cpp.whole_linear(xs, ws, b), xs, dy, create_graph=True)
        (gw,) = torch.autograd.grad(gx.square().sum(), ws)
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
        (gxr,) = torch.autograd.grad(torch.nn.functional.linear(xr, wr, b), xr, dy, create_graph=True)
        (gwr,) = torch.autograd.grad(gxr.square().sum(), wr)
        torch.testing.assert_close(gx, gxr, atol=0, rtol=0)  # the same torch operations
        torch.testing.assert_close(gw, gwr, atol=0, rtol=0)
        x64 = x.double().requires_grad_()
        assert _cpp.whole_linear(x64, w.double()).grad_fn.name() != "_WholeLinearBackward"
        few = x[:12].clone().requires_grad_()  # 60 rows: below PANEL_MIN_ROWS, F.linear itself
        assert _cpp.PANEL_MIN_ROWS == 64
        assert torch.equal(_cpp.whole_linear(few, w, b), torch.nn.functional.linear(few, w, b))
    finally:
        ext.set_whole_gemm("auto")

