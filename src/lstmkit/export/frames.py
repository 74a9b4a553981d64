"""ONNX export of frame forecasters (``export_kind`` "frames": ``lstmkit.models.ConvForecaster``).

onnxruntime has no ConvLSTM operator, so the graph is unrolled: every step of every layer is written
out with ``Conv``, ``Split``, ``Sigmoid``, ``Tanh``, ``Mul`` and ``Add``, over the same weights (stored
once as initializers). The number of given frames is fixed at export (the run's
``data.input_frames``); the batch and the frame size stay symbolic (H and W multiples of the patch).

- input ``frames`` (T_in, B, 1, H, W) float32, intensities in [0, 1];
- output ``predicted_frames`` (horizon, B, 1, H, W): the predicted intensities (the sigmoid of the
  model's logits), as ``torch.sigmoid(model(frames))``. With ``model.condition`` each predicted frame
  (in patches) is the forecaster's next input, and with ``model.skip`` its 3 x 3 copy path is added
  to the logits, as in ``ConvForecaster.forward``. With ``model.output="motion"`` each frame is the
  previous frame moved by the per-patch softmax kernels and mixed by the mask with that frame
  (``_motion``; ``Softmax``, ``Resize`` nearest, ``Pad``, ``Slice``, ``Concat``, ``ReduceSum``, ``Clip``),
  and the output is that clamped probability (PyTorch's is the sigmoid of its logit). With
  ``model.floor`` > 0 each emitted frame's values below it are 0 (``Less`` and ``Where``, as
  ``lstmkit.models.floored``); the frame fed back to the forecaster is the unfloored one, as in PyTorch.

The patches are ``SpaceToDepth`` / ``DepthToSpace`` (mode CRD): with one input channel their channel
order is exactly ``pixel_unshuffle`` / ``pixel_shuffle``'s. Only the plain ConvLSTM (no peephole, no
LayerNorm) is written; the task model uses that.

The verification allows ``frames_tolerance``: twice a float32 rounding bound of the predicted frames
(``lstmkit/_rounding.py``), which grows with the convolutions' fan-in, the steps and the weights. With a
floor, a value within that bound of the floor may land on either side of it in the two runtimes; those
elements are compared before the floor (they cannot differ by more otherwise), every other one after it.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import lstmkit
from lstmkit import _rounding
from lstmkit._fileio import atomic_path
from lstmkit.export import _deps
from lstmkit.export.graph import GraphBuilder
from lstmkit.export.onnx_model import MIN_OPSET, ExportVerificationError, OnnxExport
from lstmkit.models.frames import PROB_EPS, composite, correlation, floored, warp
from lstmkit.nn import ConvLSTM

INPUT, OUTPUT = "frames", "predicted_frames"


def _check(model: nn.Module) -> None:
    for rnn in (model.encoder, model.forecaster):
        if not isinstance(rnn, ConvLSTM) or rnn.peephole or rnn.layer_norm or not rnn.bias:
            raise ValueError("only a plain ConvLSTM (bias, no peephole, no LayerNorm) is exported")


def _cell(gb: GraphBuilder, rnn: ConvLSTM, layer: int, x: str | None, state: tuple[str, str] | None,
          hint: str) -> tuple[str, str]:
    """One ConvLSTM step of ``layer``: x (B, C, h, w) or None (a zero input), state (h, c) or None (zeros)."""
    kh, kw = rnn.kernel_size
    pads = [kh // 2, kw // 2, kh // 2, kw // 2]
    w_hh = gb.const(getattr(rnn, f"weight_hh_l{layer}"), f"{hint}_w_hh")
    b = gb.const(getattr(rnn, f"bias_l{layer}"), f"{hint}_b")
    terms = []
    if x is not None:
        w_ih = gb.const(getattr(rnn, f"weight_ih_l{layer}"), f"{hint}_w_ih")  # each tensor is stored once
        terms.append(gb.op("Conv", [x, w_ih, b], f"{hint}_xw", pads=pads))
    if state is not None:
        terms.append(gb.op("Conv", [state[0], w_hh] + ([] if terms else [b]), f"{hint}_hw", pads=pads))
    a = terms[0] if len(terms) == 1 else gb.op("Add", terms, f"{hint}_a")  # (B, 4Hc, h, w)
    hc = rnn.hidden_channels[layer]
    split = gb.const([hc] * 4, "split4", "int64")
    i, f, g, o = gb.op("Split", [a, split], f"{hint}_gate", n_out=4, axis=1)
    i, f, o = (gb.op("Sigmoid", [v], f"{hint}_{n}") for v, n in ((i, "i"), (f, "f"), (o, "o")))
    ig = gb.op("Mul", [i, gb.op("Tanh", [g], f"{hint}_g")], f"{hint}_ig")
    c = ig if state is None else gb.op("Add", [gb.op("Mul", [f, state[1]], f"{hint}_fc"), ig], f"{hint}_c")
    h = gb.op("Mul", [o, gb.op("Tanh", [c], f"{hint}_tanh_c")], f"{hint}_h")
    return h, c


def _shifted(gb: GraphBuilder, frame: str, s: int, hint: str, step: int = 1) -> str:
    """``lstmkit.models.frames.shifted``: the (2 s + 1)² copies (B, K², H, W) of frame (B, 1, H, W) shifted by
    step (i - s), step (j - s): slices of the zero-padded frame (ends counted from its end: H and W stay
    symbolic)."""
    K, r, end = 2 * s + 1, step * s, np.iinfo(np.int64).max
    padded = gb.op("Pad", [frame, gb.const([0, 0, r, r, 0, 0, r, r], f"pads_{r}", "int64")], f"{hint}_pad")
    copies = []
    for i in range(K):
        for j in range(K):  # padded[:, :, step i : step i + H, step j : step j + W]
            a, b = step * i, step * j
            ends = [a - 2 * r if a < 2 * r else end, b - 2 * r if b < 2 * r else end]
            copies.append(gb.op("Slice", [padded, gb.const([a, b], f"starts_{a}_{b}", "int64"),
                                          gb.const(ends, f"ends_{a}_{b}_{r}", "int64"),
                                          gb.const([2, 3], "axes23", "int64")], f"{hint}_shift"))  # fmt: skip
    return gb.op("Concat", copies, f"{hint}_shifted", axis=1)


def _motion(gb: GraphBuilder, model: nn.Module, top: str, prev: str, before: str | None, generated: str,
            hint: str) -> str:
    """``ConvForecaster``'s "motion" frame (``lstmkit.models.frames.composite``, then the clamp) from the
    forecaster's top output ``top`` (B, Hc, H/p, W/p), the previous frame, the one before it (read by the
    correlation) and the generated one (B, 1, H, W). The warp is the sum of the K² shifted copies of the
    previous frame weighted by the per-patch softmax kernel brought to every pixel of its patch (``Resize``,
    nearest: an exact copy)."""
    p, s = model.config.patch, model.max_shift
    kw, kb = gb.const(model.kernels.weight, "kernels_w"), gb.const(model.kernels.bias, "kernels_b")
    logits = gb.op("Conv", [top, kw, kb], f"{hint}_klogits")
    stack = _shifted(gb, prev, s, f"{hint}_prev")  # (B, K², H, W): the warp's copies, and the correlation's
    if model.evidence is not None:  # the correlation of the last two frames, its 1 x 1 convolution added
        then = _shifted(gb, before, s, f"{hint}_before", step=2)
        diff = gb.op("Sub", [stack, then], f"{hint}_diff")
        both = gb.op("Concat", [gb.op("Mul", [stack, then], f"{hint}_prod"), gb.op("Mul", [diff, diff], f"{hint}_sq")],
                     f"{hint}_pair", axis=1)  # fmt: skip
        corr = gb.op("AveragePool", [both], f"{hint}_corr", kernel_shape=[p, p], strides=[p, p])
        ew = gb.const(model.evidence.weight, "evidence_w")
        logits = gb.op("Add", [logits, gb.op("Conv", [corr, ew], f"{hint}_evidence")], f"{hint}_klogits_e")
    kernels = gb.op("Softmax", [logits], f"{hint}_kpatch", axis=1)
    kernels = gb.op("Resize", [kernels, "", gb.const([1.0, 1.0, float(p), float(p)], "scales_p")], f"{hint}_k",
                    mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")  # fmt: skip
    warped = gb.op("ReduceSum", [gb.op("Mul", [kernels, stack], f"{hint}_kx"), gb.const([1], "axes1", "int64")],
                   f"{hint}_warp", keepdims=1)  # fmt: skip
    mw, mb = gb.const(model.mask.weight, "mask_w"), gb.const(model.mask.bias, "mask_b")
    mask = gb.op("Conv", [top, mw, mb], f"{hint}_mlogits")
    m = gb.op("Sigmoid", [gb.op("DepthToSpace", [mask], f"{hint}_mpix", blocksize=p, mode="CRD")], f"{hint}_m")
    rest = gb.op("Sub", [gb.const(np.float32(1.0), "one"), m], f"{hint}_1m")
    mixed = gb.op("Add", [gb.op("Mul", [m, warped], f"{hint}_mw"), gb.op("Mul", [rest, generated], f"{hint}_mg")],
                  f"{hint}_mix")  # fmt: skip
    return gb.op("Clip", [mixed, gb.const(np.float32(PROB_EPS), "eps"), gb.const(np.float32(1 - PROB_EPS), "1m_eps")],
                 f"{hint}_frame")  # fmt: skip


def _weights_once(gb: GraphBuilder) -> None:
    """Make ``gb.const`` store each weight tensor once: the same tensor object maps to one initializer."""
    cache: dict[int, str] = {}
    const = gb.const

    def cached(value, hint, dtype=None):
        if isinstance(value, torch.Tensor) and value.numel() > 16:
            key = id(value)
            if key not in cache:
                cache[key] = const(value, hint, dtype)
            return cache[key]
        return const(value, hint, dtype)

    gb.const = cached  # type: ignore[method-assign]


def build_frames_onnx(model: nn.Module, input_frames: int, *, opset: int = MIN_OPSET,
                      metadata: Mapping[str, str] | None = None):
    """The ``onnx.ModelProto`` of a ``ConvForecaster`` reading ``input_frames`` frames."""
    onnx = _deps.onnx()
    _check(model)
    gb = GraphBuilder(onnx)
    _weights_once(gb)
    for name in (INPUT, OUTPUT):
        gb.name(name)
    p, horizon = model.config.patch, model.config.horizon
    enc, fore = model.encoder, model.forecaster
    seq = []
    for t in range(input_frames):
        x_t = gb.op("Gather", [INPUT, gb.const(t, f"t{t}", "int64")], f"x{t}", axis=0)  # (B, 1, H, W)
        seq.append(gb.op("SpaceToDepth", [x_t], f"z{t}", blocksize=p))  # (B, p², H/p, W/p)
    prev = seq[-1] if model.config.condition else None  # the forecaster's first input: the last given frame
    finals = []
    for layer in range(enc.num_layers):
        state = None
        out = []
        for t, x_t in enumerate(seq):
            state = _cell(gb, enc, layer, x_t, state, f"enc{layer}_t{t}")
            out.append(state[0])
        finals.append(state)
        seq = out
    states = list(finals)
    frames = []
    prev_frame = gb.op("Gather", [INPUT, gb.const(input_frames - 1, "t_last", "int64")], "prev0", axis=0)
    before_frame = None
    if model.evidence is not None:
        if input_frames < 2:
            raise ValueError(f"model.correlation needs at least 2 given frames, got input_frames={input_frames}")
        before_frame = gb.op("Gather", [INPUT, gb.const(input_frames - 2, "t_before", "int64")], "before0", axis=0)
    for t in range(horizon):
        x = prev  # None: the forecaster reads nothing (a zero frame), so its input convolution is zero
        for layer in range(fore.num_layers):
            states[layer] = _cell(gb, fore, layer, x, states[layer], f"fore{layer}_t{t}")
            x = states[layer][0]
        head = model.head
        logits = gb.op("Conv", [x, gb.const(head.weight, "head_w"), gb.const(head.bias, "head_b")], f"head{t}")
        if model.skip is not None:  # the copy path from the forecaster's input frame
            sk = model.skip
            copy = gb.op("Conv", [prev, gb.const(sk.weight, "skip_w"), gb.const(sk.bias, "skip_b")], f"skip{t}",
                         pads=[1, 1, 1, 1])  # fmt: skip
            logits = gb.op("Add", [logits, copy], f"logits{t}")
        patches = gb.op("Sigmoid", [logits], f"y{t}_patches")  # (B, p², H/p, W/p): the next step's input
        frame = gb.op("DepthToSpace", [patches], f"y{t}", blocksize=p, mode="CRD")  # (B, 1, H, W)
        if model.kernels is not None:  # output "motion": the previous frame moved, composited with that frame
            frame = _motion(gb, model, x, prev_frame, before_frame, frame, f"motion{t}")
            before_frame, prev_frame = prev_frame, frame
            patches = gb.op("SpaceToDepth", [frame], f"y{t}_patches_m", blocksize=p)
        prev = patches if model.config.condition else None  # unfloored, as in ConvForecaster.forward
        if model.config.floor > 0:  # the emitted frame: values below the floor are the background, 0
            low = gb.op("Less", [frame, gb.const(np.float32(model.config.floor), "floor")], f"y{t}_low")
            frame = gb.op("Where", [low, gb.const(np.float32(0.0), "zero_f"), frame], f"y{t}_floored")
        frames.append(gb.op("Unsqueeze", [frame, gb.const([0], "axes0", "int64")], f"y{t}_t"))  # (1, B, 1, H, W)
    gb.nodes.append(onnx.helper.make_node("Concat", frames, [OUTPUT], name=gb.name("n_out"), axis=0))
    meta = {"lstmkit.version": lstmkit.__version__, "lstmkit.model": repr(model), "lstmkit.layers": '"unrolled"'}
    meta.update(metadata or {})
    return gb.finish(f"lstmkit_{type(model).__name__}", [(INPUT, "float32", [input_frames, "B", 1, "H", "W"])],
                     [(OUTPUT, "float32", [horizon, "B", 1, "H", "W"])], None, opset=opset, props=meta)  # fmt: skip


def _propagation_gain(w: torch.Tensor) -> float:
    """How much a convolution with kernel w (G, C, kh, kw) can scale an input error of at most e per
    entry: over one output channel, min(sum |w|, LAMBDA ||w||_2) (the second with probability
    1 - 2 exp(-LAMBDA^2 / 2): the entries' errors are roundings, independent and of mean zero, so
    their weighted sum obeys Hoeffding's bound, as ``_rounding.gamma`` takes of the roundings themselves)."""
    rows = w.detach().double().flatten(1)  # (G, C kh kw)
    return float(torch.minimum(rows.abs().sum(1), _rounding.LAMBDA * rows.norm(dim=1)).max())


def frames_tolerance(model: nn.Module, x: torch.Tensor) -> float:
    """Allowed |onnxruntime - PyTorch| on the predicted frames of a ``ConvForecaster`` for input ``x``
    (T_in, B, 1, H, W).

    Twice (``_rounding.between``) a float32 bound on each side's error, derived step by step as
    ``_rounding.lstm_error`` derives it for the 1-D layers (first order; roundings independent and of
    mean zero; the recurrence does not amplify perturbations through W_hh), with the magnitudes of
    this input's own evaluation (run here in float64) where ``lstm_error`` takes worst cases:

    - a gate pre-activation at one pixel is one sum of K = (C + Hc) kh kw + 2 terms (the input and
      recurrent convolutions' taps, the bias, their Add: the conv fan-in), so its rounding is at most
      gamma(K) S, S = (|W_ih| * |x_t| + |W_hh| * |h_{t-1}| + |b|) at that pixel (point 1; taken at
      its largest over the step); the error e of the layer's input (the layer below) adds
      g(W_ih) e (``_propagation_gain``; point 5);
    - the cell (point 3) with this step's largest |c|: dc = (|c|/4 + 5/4) da + 8u (1 + |c|) and
      dh = da/4 + dc + 8u, and the cell passes earlier errors on with |f| <= 1, so the steps' errors
      add up as a random walk: e_t = sqrt(sum of the steps' dh^2) (point 4). The forecaster carries the
      encoder's state on: one recurrence of T_in + horizon steps per layer;
    - the 1 x 1 head and the 3 x 3 skip are sums of Hc + 1 and 9 p^2 + 1 terms and the sigmoid's
      slope is at most 1/4, so a predicted frame's own error is
      (g(W_head) e + gamma(Hc + 1) S_head + gamma(9 p^2 + 1) S_skip) / 4 + 8u;
    - with ``output="motion"`` that frame g is mixed with the warped previous frame w: the kernel and
      mask logits are 1 x 1 convolutions like the head (dk, and dm after the sigmoid), the kernels'
      plus (``correlation``) the 1 x 1 convolution of patch means of products and squared differences of
      the last two frames (4u + gamma(p²) of its value, through the convolution's gain, plus its own sum
      of 2 K² + 1 terms); the
      softmax's outputs move by ds_i = s_i (da_i - sum_j s_j da_j), so the warp sum_i s_i x_i, a convex
      combination of exact shifted copies, moves by at most dk (max x - min x); the softmax's roundings
      (the subtraction of the max, exp, a sum of K² terms, a division) and the warp's (K² products, a sum
      of K² terms) are relative to its value; with m, w, g in
      [0, 1], m w + (1 - m) g moves by at most dm + dw + dg, plus four roundings; the clamp cannot add
      any. PyTorch's frame goes through the logit and back (``forward`` returns logits): the quotient
      and log's rounding (relative to |logit| <= log((1 - eps) / eps)) through the sigmoid's slope 1/4,
      plus the sigmoid's own 8u. The warp passes the previous frame's error on with gain 1 (a convex
      combination), consistent with the non-amplifying loop below;
    - with ``condition`` each predicted frame is the next step's input (frame -> forecaster and skip
      -> logits -> sigmoid -> frame); that loop is taken not to amplify perturbations, as W_hh is,
      so the frames' errors add up as a random walk too (sqrt(horizon) times the largest). A loop
      that amplifies (a chaotic forecaster) has no useful float32 tolerance, as a chaotic
      recurrence has none.
    """
    u = _rounding.unit_roundoff(torch.float32)
    fp = _rounding.F_POINTWISE * u
    cfg, p = model.config, model.config.patch
    d = torch.float64
    z = F.pixel_unshuffle(x.to(d).flatten(0, 1), p).unflatten(0, x.shape[:2])  # (T_in, B, p², H/p, W/p)
    stacks = []
    for rnn in (model.encoder, model.forecaster):
        layers = []
        for layer in range(rnn.num_layers):
            w_ih, w_hh = (getattr(rnn, f"{n}_l{layer}").detach().to(d) for n in ("weight_ih", "weight_hh"))
            b = getattr(rnn, f"bias_l{layer}").detach().to(d)
            K = w_ih[0].numel() + w_hh[0].numel() + 2
            layers.append((w_ih, w_hh, b, K, _propagation_gain(w_ih)))
        stacks.append(layers)
    pad = (model.encoder.kernel_size[0] // 2, model.encoder.kernel_size[1] // 2)
    B, hw = x.shape[1], z.shape[-2:]
    state = [(z.new_zeros(B, hc, *hw), z.new_zeros(B, hc, *hw)) for hc in model.encoder.hidden_channels]
    sq = [0.0] * len(state)  # per layer: the sum of the steps' squared error bounds (the random walk)

    def step(layers, inp: torch.Tensor) -> tuple[torch.Tensor, float]:
        """One step of every layer on inp (B, C, h, w) in float64; the last layer's h and its error bound."""
        err = 0.0  # the error of layer 0's input: the given frames are exact (fed-back ones: see above)
        for layer, (w_ih, w_hh, b, K, gain) in enumerate(layers):
            h, c_prev = state[layer]
            a = F.conv2d(inp, w_ih, b, padding=pad) + F.conv2d(h, w_hh, padding=pad)  # (B, G, h, w)
            S = F.conv2d(inp.abs(), w_ih.abs(), b.abs(), padding=pad) + F.conv2d(h.abs(), w_hh.abs(), padding=pad)
            i, f, g, o = a.chunk(4, dim=1)
            c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            state[layer] = (h, c)
            c_max = max(float(c.abs().max()), float(c_prev.abs().max()))
            da = _rounding.gamma(K, u) * float(S.max()) + gain * err
            dh = _rounding.cell_step_error(da, c_max, u)
            sq[layer] += dh * dh
            err = math.sqrt(sq[layer])
            inp = h
        return inp, err

    def head(h: torch.Tensor, err: float, prev: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        """Logits (B, p², h, w) of the forecaster's top h, and the frame's own error bound after the sigmoid."""
        w, bias = model.head.weight.detach().to(d), model.head.bias.detach().to(d)
        logits = F.conv2d(h, w, bias)
        S = F.conv2d(h.abs(), w.abs(), bias.abs())
        dl = _propagation_gain(w) * err + _rounding.gamma(w[0].numel() + 1, u) * float(S.max())
        if model.skip is not None and prev is not None:
            ws, bs = model.skip.weight.detach().to(d), model.skip.bias.detach().to(d)
            logits = logits + F.conv2d(prev, ws, bs, padding=1)
            S_skip = F.conv2d(prev.abs(), ws.abs(), bs.abs(), padding=1)
            dl += _rounding.gamma(ws[0].numel() + 1, u) * float(S_skip.max())
        return logits, dl / 4 + fp

    def motion(h: torch.Tensor, err: float, prev: torch.Tensor, before: torch.Tensor, generated: torch.Tensor,
               e_gen: float) -> tuple[torch.Tensor, float]:
        """The "motion" frame (B, p², h, w) (clamped, in patches) and its own error bound."""
        wk, bk = model.kernels.weight.detach().to(d), model.kernels.bias.detach().to(d)
        wm, bm = model.mask.weight.detach().to(d), model.mask.bias.detach().to(d)
        klog, mlog = F.conv2d(h, wk, bk), F.conv2d(h, wm, bm)
        dk = _propagation_gain(wk) * err + _rounding.gamma(wk[0].numel() + 1, u) * float(
            F.conv2d(h.abs(), wk.abs(), bk.abs()).max())
        frame = F.pixel_shuffle(prev, p)
        if model.evidence is not None:
            # the correlation: products or squared differences (3u: the difference, its square), a mean of
            # p² of them (gamma(p²), the division u), all >= 0; its 1 x 1 convolution a sum of 2 K² terms,
            # plus the Add to the kernel logits
            we = model.evidence.weight.detach().to(d)
            corr = correlation(frame, F.pixel_shuffle(before, p), 2 * model.max_shift + 1, p)
            dc = (4 * u + _rounding.gamma(p * p, u)) * float(corr.max())
            klog = klog + F.conv2d(corr, we)
            dk += _propagation_gain(we) * dc + _rounding.gamma(we[0].numel() + 1, u) * float(
                F.conv2d(corr, we.abs()).max())
        dm = (_propagation_gain(wm) * err + _rounding.gamma(wm[0].numel() + 1, u) * float(
            F.conv2d(h.abs(), wm.abs(), bm.abs()).max())) / 4 + fp
        taps = wk.shape[0]
        # the softmax: logits off by da_i (|da_i| <= dk) move its outputs by ds_i = s_i (da_i - sum_j s_j da_j),
        # and the warp sum_i s_i x_i by sum_i s_i (da_i - mean) (x_i - c) for any c: at most dk (max x - min x);
        # its rounding (the subtraction of the max: 2u |a|; exp: fp; the sum of K² terms; the division: u)
        # is relative to each s_i, so relative to the warp's value, as are the warp's K² products and sum
        rel = 4 * u * float(klog.abs().max()) + fp + 2 * _rounding.gamma(taps, u) + 2 * u
        kernels = torch.softmax(klog, dim=1).repeat_interleave(p, dim=2).repeat_interleave(p, dim=3)
        warped = warp(frame, kernels)
        # with m, w, g in [0, 1], the mix m w + (1 - m) g moves by at most dm + dw + dg, and rounds four
        # times (1 - m, two products, the sum)
        dw = dk * float(frame.max() - frame.min()) + rel * float(warped.abs().max())
        mixed = composite(frame, kernels, F.pixel_shuffle(mlog, p), F.pixel_shuffle(generated, p))
        return F.pixel_unshuffle(mixed.clamp(PROB_EPS, 1 - PROB_EPS), p), dm + dw + e_gen + 4 * u

    # PyTorch's frame of "motion" is the sigmoid of the logit of the clamped probability, onnxruntime's the
    # probability: the logit's rounding (the quotient, log's own, relative to |logit| <= L) through the
    # sigmoid's slope 1/4, then the sigmoid's own
    L = math.log((1 - PROB_EPS) / PROB_EPS)
    round_trip = (2 * u + fp * (1 + L)) / 4 + fp

    with torch.no_grad():
        for t in range(z.shape[0]):
            step(stacks[0], z[t])
        prev = z[-1] if cfg.condition else None
        before = z[-2] if z.shape[0] > 1 else z[-1]  # the correlation's earlier frame
        frames = []
        for _ in range(cfg.horizon):
            h, err = step(stacks[1], prev if cfg.condition else z.new_zeros(B, 1, *hw))
            logits, e = head(h, err, prev)
            frame = torch.sigmoid(logits)
            if model.kernels is not None:  # the previous frame moved, mixed with that one
                frame, e = motion(h, err, prev, before, frame, e)
                e += round_trip
            frames.append(e)
            before, prev = prev, frame
    worst = math.sqrt(sum(e * e for e in frames)) if cfg.condition else max(frames)
    return _rounding.between(worst)


@contextlib.contextmanager
def _direct_convolutions(model: nn.Module) -> Iterator[None]:
    """Run the forecaster's ConvLSTM layers by direct convolutions (``impl="auto"``) inside: the tolerance is a
    bound for those (a model trained with ``model.impl="winograd"`` computes the same function, rounded
    differently), and the graph's own convolutions are direct."""
    rnns = [model.encoder, model.forecaster]
    before = [rnn.impl for rnn in rnns]
    try:
        for rnn in rnns:
            rnn.impl = "auto"
        yield
    finally:
        for rnn, impl in zip(rnns, before, strict=True):
            rnn.impl = impl


def verify_frames_onnx(model: nn.Module, path: Path, input_frames: int, frame: tuple[int, int]) -> float:
    """Run the file in onnxruntime against ``model`` at two batch and frame sizes; the largest difference."""
    ort = _deps.onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    p = model.config.patch
    worst = 0.0
    for seed, (B, H, W) in enumerate(((2, *frame), (1, 2 * p, 3 * p))):
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(input_frames, B, 1, H, W, generator=g)
        with torch.no_grad(), _direct_convolutions(model):
            raw = torch.sigmoid(model.eval()(x))
        floor = model.config.floor
        want = floored(raw, floor).numpy()
        (got,) = session.run([OUTPUT], {INPUT: x.numpy()})
        if got.shape != want.shape:
            raise ExportVerificationError(f"{path}: output shape {got.shape} in onnxruntime, {want.shape} in PyTorch")
        allowed = frames_tolerance(model, x)
        raw = raw.numpy()
        # an element within the bound of the floor may fall on either side of it in either runtime: there a 0
        # from onnxruntime stands for the unfloored value, and both are compared unfloored
        edge = (np.abs(raw - floor) <= allowed) & (floor > 0)
        got = np.where(edge & (got == 0), raw, got)
        diff = float(np.abs(got.astype(np.float64) - np.where(edge, raw, want)).max())
        worst = max(worst, diff)
        if diff > allowed:
            raise ExportVerificationError(f"{path}: predicted frames differ from PyTorch's by {diff:.3g} "
                                          f"(allowed {allowed:.3g}, a float32 rounding bound) at B={B}, {H} x {W}; "
                                          f"please report this with the model's repr: {model!r}")  # fmt: skip
    return worst


def frames_to_onnx(model: nn.Module, path: str | os.PathLike[str], input_frames: int, frame: tuple[int, int], *,
                   verify: bool = True, metadata: Mapping[str, str] | None = None) -> OnnxExport:
    """Write a ``ConvForecaster`` as an unrolled ONNX graph and (by default) verify it in onnxruntime."""
    if input_frames < 1:
        raise ValueError(f"input_frames must be >= 1, got {input_frames}")
    path = Path(path)
    if verify:
        _deps.onnxruntime()  # fail on a missing runtime before writing anything
    proto = build_frames_onnx(model, input_frames, metadata=metadata)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    err = verify_frames_onnx(model, path, input_frames, frame) if verify else None
    return OnnxExport(path=path, inputs=(INPUT,), outputs=(OUTPUT,), layers=("unrolled ConvLSTM",),
                      max_abs_error=err)  # fmt: skip
