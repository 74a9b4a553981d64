"""ConvLSTM benchmark: lstmkit.ConvLSTM against plain per-step implementations, and the convolutions alone.

Candidates, all one layer with the same sizes and the same math (plain cell, gate order i, f, g, o):

- ``lstmkit impl=bptt``: one ``autograd.Function`` with a hand-written backward through time
  (``lstmkit/nn/_convlstm_bptt.py``): per step one convolution over [x_t, h_{t-1}] read from one
  preallocated buffer (no ``cat``), the gate math in the C++ kernels, one ``convolution_backward`` per step;
- ``lstmkit impl=winograd``: the same backward with the 3x3 convolutions by Winograd's F(4x4, 3x3)
  (``lstmkit/nn/_winograd.py``: C++ tile transforms, 36 products per step, by ``_winograd.default_products``:
  oneDNN's brgemm where the extension runs AVX2 kernels, MKL's ``bmm`` where it runs AVX-512 ones);
- ``lstmkit impl=winograd, products by bmm`` and ``..., products by brgemm``: the same layer with the 36
  products by MKL's batched ``bmm`` or by brgemm whatever the CPU (``_winograd.products_by``), for an A/B of the
  two on any CPU;
- ``lstmkit impl=winograd, no buffer pool``: the same layer with ``LSTMKIT_BUFFER_CACHE_MB=0`` during its calls, so
  its work buffers are allocated (and page-faulted in) anew each call, as before session 22
  (``lstmkit/nn/_workspace.py``);
- ``lstmkit impl=auto``: the default, ``"concat"`` below;
- ``lstmkit impl=concat``: per step one convolution over ``torch.cat([x_t, h_{t-1}])`` with W_ih and
  W_hh concatenated once, differentiated by autograd;
- ``lstmkit impl=fused``: the input convolution for all T steps at once, then per step one
  convolution over h_{t-1} for all four gates (autograd);
- ``nn.Conv2d over [x, h]``: the textbook loop, per step one ``nn.Conv2d(C + Hc, 4 Hc)`` over the
  concatenation [x_t, h_{t-1}]; ``..., channels_last`` the same loop with the weights, the input and
  the state in ``torch.channels_last`` memory format;
- ``naive 4 convs``: per step four ``nn.Conv2d(C + Hc, Hc)``, one per gate, each over [x_t, h_{t-1}]
  (the baseline every ratio divides by).

Times the forward (under ``torch.inference_mode``) and one training step (zero grads, forward,
``output.sum()``, backward), interleaved in the same rounds (see ``_timing.interleaved``); prints a
Markdown report with the median time, the median per-round ratio to the naive layer and GFLOP/s.

In the same rounds it times the convolutions of one step alone, each part on its own
(``torch.ops.aten.convolution_backward`` with one output): forward, data gradient and weight
gradient of one (B, C+Hc, H, W) -> (B, 4Hc, H, W) convolution in NCHW and in channels_last, of the
naive layer's four (B, C+Hc) -> (B, Hc) ones, and the weight gradient over all T B frames at once
(what ``impl="bptt"`` runs); and one ``torch.mm`` (2048 x 2048 x 2048), beside the CPU's peak
(2 FMA units x the vector width x 2 FLOP per cycle at the clock /proc/cpuinfo reports).

    python benchmarks/convlstm.py                      # T=10, B=16, C=1, 64x64, Hc=64, 3x3
    python benchmarks/convlstm.py --threads 1 --repeats 3 --out bench_convlstm.md
    python benchmarks/convlstm.py --quick              # smoke run at a small shape, measures nothing
    python benchmarks/convlstm.py --threads 1 --layers winograd,auto --train-only --no-parts --shape 10,8,16,16,16,16
    python benchmarks/convlstm.py --profile auto       # where one training step of ConvLSTM(impl=...) spends its time

Shapes: T time, B batch, C input channels, Hc hidden channels, H x W the frame, k the kernel.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import re
import shlex
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _timing import interleaved, machine_description, median, paired_ratios, quartiles
from torch import Tensor, nn

import lstmkit
from lstmkit.nn import _winograd

FULL = dict(T=10, B=16, C=1, H=64, W=64, Hc=64, k=3)  # the shape (moving-digits-like frames)
QUICK = dict(T=4, B=4, C=1, H=16, W=16, Hc=8, k=3)
FULL_REPEATS = 5  # odd, so the median is one measured round
QUICK_REPEATS = 3
TIME_LIMIT = 600.0  # seconds before rounds stop (after 3); one round took ~1.5 min on 2 shared cores (load 4-8)
NAIVE = "naive 4 convs"  # the baseline every ratio divides by
WINOGRAD_BMM = "lstmkit impl=winograd, products by bmm"
WINOGRAD_BRGEMM = "lstmkit impl=winograd, products by brgemm"
WINOGRAD_NOPOOL = "lstmkit impl=winograd, no buffer pool"
CONV = "conv2d"
MM = "torch.mm"
LAYERS = ("bptt", "winograd", "winograd-bmm", "winograd-brgemm", "winograd-nopool", "auto", "fused", "textbook",
          "channels_last", "naive")  # --layers


class ConcatConvLSTM(nn.Module):
    """The textbook loop: per step one ``nn.Conv2d(C + Hc, 4 Hc)`` over [x_t, h_{t-1}]."""

    def __init__(self, C: int, Hc: int, k: int) -> None:
        super().__init__()
        self.Hc = Hc
        self.conv = nn.Conv2d(C + Hc, 4 * Hc, k, padding=k // 2)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        T, B, _, H, W = x.shape
        h = c = x.new_zeros(B, self.Hc, H, W)
        ys = []
        for t in range(T):
            a = self.conv(torch.cat([x[t], h], dim=1))  # (B, 4 Hc, H, W)
            a_i, a_f, a_g, a_o = a.split(self.Hc, dim=1)
            c = torch.sigmoid(a_f) * c + torch.sigmoid(a_i) * torch.tanh(a_g)
            h = torch.sigmoid(a_o) * torch.tanh(c)
            ys.append(h)
        return torch.stack(ys), (h, c)  # (T, B, Hc, H, W)


class ChannelsLastConvLSTM(ConcatConvLSTM):
    """The textbook loop with weights, input and state in ``torch.channels_last`` (NHWC) memory format."""

    def __init__(self, C: int, Hc: int, k: int) -> None:
        super().__init__(C, Hc, k)
        self.conv.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        T, B, _, H, W = x.shape
        cl = torch.channels_last
        h = c = x.new_zeros(B, self.Hc, H, W).contiguous(memory_format=cl)
        ys = []
        for t in range(T):
            xh = torch.cat([x[t].contiguous(memory_format=cl), h], dim=1)  # (B, C + Hc, H, W), NHWC
            a = self.conv(xh)  # (B, 4 Hc, H, W), NHWC
            a_i, a_f, a_g, a_o = a.split(self.Hc, dim=1)
            c = torch.sigmoid(a_f) * c + torch.sigmoid(a_i) * torch.tanh(a_g)
            h = torch.sigmoid(a_o) * torch.tanh(c)
            ys.append(h)
        return torch.stack(ys), (h, c)


class NaiveConvLSTM(nn.Module):
    """Per step four ``nn.Conv2d(C + Hc, Hc)``, one per gate, each over [x_t, h_{t-1}]."""

    def __init__(self, C: int, Hc: int, k: int) -> None:
        super().__init__()
        self.Hc = Hc
        self.gates = nn.ModuleList(nn.Conv2d(C + Hc, Hc, k, padding=k // 2) for _ in range(4))  # i, f, g, o

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        T, B, _, H, W = x.shape
        h = c = x.new_zeros(B, self.Hc, H, W)
        ys = []
        for t in range(T):
            xh = torch.cat([x[t], h], dim=1)  # (B, C + Hc, H, W)
            a_i, a_f, a_g, a_o = (conv(xh) for conv in self.gates)  # each (B, Hc, H, W)
            c = torch.sigmoid(a_f) * c + torch.sigmoid(a_i) * torch.tanh(a_g)
            h = torch.sigmoid(a_o) * torch.tanh(c)
            ys.append(h)
        return torch.stack(ys), (h, c)


def layer_flops(T: int, B: int, C: int, H: int, W: int, Hc: int, k: int) -> float:
    """Convolution FLOPs of one forward: 2 T B H W 4Hc (C + Hc) k^2 (the same for all three layers).

    The pointwise gate math, O(T B Hc H W), is not counted. A training step counts 3x this.
    """
    return 2.0 * T * B * H * W * 4 * Hc * (C + Hc) * k * k


def cpu_flags() -> str:
    """The vector extensions the convolutions can use (avx2, avx512*, amx*), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            found = re.search(r"^flags\s*:\s*(.+)$", f.read(), re.M)
    except OSError:
        return "unknown"
    if found is None:
        return "unknown"
    flags = sorted({f for f in found.group(1).split() if f == "avx2" or f.startswith(("avx512", "amx"))})
    return ", ".join(flags) or "none of avx2/avx512/amx"


def cpu_peak_gflops(threads: int) -> tuple[float, str]:
    """The single-precision FMA peak: 2 FMA units x (8 lanes with avx2, 16 with avx512f) x 2 FLOP per
    cycle at the clock /proc/cpuinfo reports, times ``threads``; and how it was computed."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        mhz = float(re.search(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M).group(1))
    except (OSError, AttributeError):
        return math.nan, "unknown clock"
    lanes = 16 if "avx512f" in cpu_flags() else 8
    peak = 2 * lanes * 2 * mhz / 1e3 * threads
    return peak, f"2 FMA x {lanes} lanes x 2 FLOP x {mhz / 1e3:.2f} GHz x {threads} thread(s)"


def conv_parts(T: int, B: int, C: int, H: int, W: int, Hc: int, k: int) -> dict[str, tuple[Callable[[], None], float]]:
    """The convolutions of one step, each part alone, and their FLOPs: {name: (fn, flops)}."""
    parts: dict[str, tuple[Callable[[], None], float]] = {}
    one, four = f"{C + Hc}->{4 * Hc}", f"4x {C + Hc}->{Hc}"
    for label, fmt, n, cout, N in ((one, "NCHW", 1, 4 * Hc, B), (one, "channels_last", 1, 4 * Hc, B),
                                   (four, "NCHW", 4, Hc, B)):  # fmt: skip
        mf = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
        x = torch.randn(N, C + Hc, H, W).contiguous(memory_format=mf)
        w = torch.randn(cout, C + Hc, k, k).contiguous(memory_format=mf)
        gy = F.conv2d(x, w, padding=k // 2).contiguous(memory_format=mf)  # a gradient of the output's shape
        flops = n * 2.0 * N * H * W * cout * (C + Hc) * k * k
        name = f"{label} {fmt}"

        def fwd(x=x, w=w, n=n) -> None:
            with torch.inference_mode():
                for _ in range(n):
                    F.conv2d(x, w, padding=k // 2)

        def grad(x=x, w=w, gy=gy, n=n, mask=(True, False, False)) -> None:
            for _ in range(n):
                torch.ops.aten.convolution_backward(gy, x, w, None, [1, 1], [k // 2] * 2, [1, 1], False, [0, 0], 1,
                                                    list(mask))  # fmt: skip

        parts[f"{name}|fwd"] = (fwd, flops)
        parts[f"{name}|dgrad"] = (grad, flops)
        parts[f"{name}|wgrad"] = (functools.partial(grad, mask=(False, True, False)), flops)
    # The weight gradient over all T B frames in one call (impl="bptt"), per step's worth of FLOPs.
    x = torch.randn(T * B, C + Hc, H, W)
    w = torch.randn(4 * Hc, C + Hc, k, k)
    gy = torch.randn(T * B, 4 * Hc, H, W)

    def wgrad_all() -> None:
        torch.ops.aten.convolution_backward(gy, x, w, None, [1, 1], [k // 2] * 2, [1, 1], False, [0, 0], 1,
                                            [False, True, False])  # fmt: skip

    parts[f"{C + Hc}->{4 * Hc} NCHW, T·B={T * B} frames at once|wgrad"] = (wgrad_all, 2.0 * T * B * H * W * 4 * Hc
                                                                             * (C + Hc) * k * k)  # fmt: skip
    return parts


def per_round(calls: list[float], rounds: int) -> list[float]:
    """The mean time per call in each of ``rounds`` rounds, from every call of a candidate in order.

    ``_timing.interleaved`` first calls a candidate once or twice to calibrate (twice when the first
    call took under 0.5 s), then ``rounds`` samples of n calls each: so len(calls) - 1 or - 2 is a
    multiple of ``rounds`` (never both, for rounds >= 2), and the rounds' calls are the last ones.
    """
    first = next((c for c in (1, 2) if (len(calls) - c) % rounds == 0 and len(calls) > c), None)
    if first is None:
        raise RuntimeError(f"{len(calls)} calls do not split into 1-2 calibration calls and {rounds} rounds")
    n = (len(calls) - first) // rounds
    timed = calls[first:]
    return [sum(timed[r * n : (r + 1) * n]) / n for r in range(rounds)]


def _forward_fn(module: nn.Module, x: Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            module(x)

    return run


def _products_by(products: str, fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        with _winograd.products_by(products):
            fn()

    return run


def _without_pool(fn: Callable[[], None]) -> Callable[[], None]:
    """fn with the layer's buffer pool off (``LSTMKIT_BUFFER_CACHE_MB=0``) during the call, restored after."""

    def run() -> None:
        old = os.environ.get("LSTMKIT_BUFFER_CACHE_MB")
        os.environ["LSTMKIT_BUFFER_CACHE_MB"] = "0"
        try:
            fn()
        finally:
            if old is None:
                del os.environ["LSTMKIT_BUFFER_CACHE_MB"]
            else:
                os.environ["LSTMKIT_BUFFER_CACHE_MB"] = old

    return run


def _train_fn(module: nn.Module, x: Tensor) -> Callable[[], None]:
    def run() -> None:
        module.zero_grad(set_to_none=True)
        y, _ = module(x)  # (T, B, Hc, H, W)
        y.sum().backward()

    return run


def profile_step(impl: str, x: Tensor, C: int, Hc: int, k: int) -> str:
    """One training step of ``ConvLSTM(impl=...)`` (after a warm-up step) under ``torch.profiler``:
    the share of its CPU time in the convolutions' forward and backward, and the top operators."""
    from torch.profiler import ProfilerActivity, profile

    module = lstmkit.ConvLSTM(C, Hc, k, impl=impl)
    step = _train_fn(module, x)
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        step()
        wall = time.perf_counter() - t0
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mkldnn_convolution",
                                                                  "aten::convolution_backward"))
    return (f"impl={impl}: one training step took {wall:.1f} s under the profiler; "
            f"{100 * conv / total:.0f}% of its self CPU time is in aten::mkldnn_convolution and "
            f"aten::convolution_backward.\n\n" + events.table(sort_by="self_cpu_time_total", row_limit=12))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: all)")
    ap.add_argument("--repeats", type=int, default=None,
                    help=f"timed rounds (default {FULL_REPEATS}, {QUICK_REPEATS} with --quick)")
    ap.add_argument("--time-limit", type=float, default=TIME_LIMIT, metavar="SECONDS",
                    help=f"stop the rounds once this long and 3 are done (default {TIME_LIMIT:.0f}; 0: no limit)")
    ap.add_argument("--quick", action="store_true", help=f"a small shape {QUICK}: a smoke run, not a measurement")
    ap.add_argument("--shape", type=str, default=None, metavar="T,B,C,H,W,Hc",
                    help="another shape to measure (3x3 kernel), e.g. 10,8,16,16,16,16: the moving-digits layers")
    ap.add_argument("--out", type=str, default=None, help="also write the Markdown report to this file")
    ap.add_argument("--layers", type=lambda v: v.split(","), default=list(LAYERS),
                    help=f"comma-separated layers to time, of {','.join(LAYERS)} (default all; naive always)")
    ap.add_argument("--train-only", action="store_true", help="time the training step only, not the forward")
    ap.add_argument("--no-parts", action="store_true", help="do not time the convolutions' parts alone")
    ap.add_argument("--profile", choices=["auto", "bptt", "winograd", "fused", "concat"], default=None,
                    help="instead of timing, profile one training step of ConvLSTM(impl=...)")
    args = ap.parse_args(argv)
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else FULL_REPEATS
    unknown = sorted(set(args.layers) - set(LAYERS))
    if unknown:
        ap.error(f"--layers: unknown {', '.join(unknown)}; choose from {','.join(LAYERS)}")
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.threads is not None and args.threads < 1:
        ap.error(f"--threads must be positive, got {args.threads}")
    if args.shape is not None:
        try:
            values = [int(v) for v in args.shape.split(",")]
        except ValueError:
            values = []
        if len(values) != 6 or min(values) < 1:
            ap.error(f"--shape must be six positive integers T,B,C,H,W,Hc, got {args.shape!r}")
        if args.quick:
            ap.error("--shape and --quick both set the shape; give one")
        args.shape = dict(zip(("T", "B", "C", "H", "W", "Hc"), values, strict=True), k=3)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = "python " + shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    s = args.shape or (QUICK if args.quick else FULL)
    T, B, C, H, W, Hc, k = (s[n] for n in ("T", "B", "C", "H", "W", "Hc", "k"))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    torch.manual_seed(0)
    x = torch.randn(T, B, C, H, W)  # (T, B, C, H, W)
    if args.profile is not None:
        print(f"T={T}, B={B}, C={C}, {H}x{W}, Hc={Hc}, {k}x{k}; torch threads {torch.get_num_threads()}; "
              f"load average {os.getloadavg()[0]:.1f} before")
        print(profile_step(args.profile, x, C, Hc, k))
        print(f"load average {os.getloadavg()[0]:.1f} after")
        return
    builders = {
        "bptt": ("lstmkit impl=bptt", lambda: lstmkit.ConvLSTM(C, Hc, k, impl="bptt")),
        "winograd": ("lstmkit impl=winograd", lambda: lstmkit.ConvLSTM(C, Hc, k, impl="winograd")),
        "winograd-bmm": (WINOGRAD_BMM, lambda: lstmkit.ConvLSTM(C, Hc, k, impl="winograd")),
        "winograd-brgemm": (WINOGRAD_BRGEMM, lambda: lstmkit.ConvLSTM(C, Hc, k, impl="winograd")),
        "winograd-nopool": (WINOGRAD_NOPOOL, lambda: lstmkit.ConvLSTM(C, Hc, k, impl="winograd")),
        "auto": ("lstmkit impl=auto (concat)", lambda: lstmkit.ConvLSTM(C, Hc, k)),
        "fused": ("lstmkit impl=fused", lambda: lstmkit.ConvLSTM(C, Hc, k, impl="fused")),
        "textbook": ("nn.Conv2d over [x, h]", lambda: ConcatConvLSTM(C, Hc, k)),
        "channels_last": ("nn.Conv2d over [x, h], channels_last", lambda: ChannelsLastConvLSTM(C, Hc, k)),
        "naive": (NAIVE, lambda: NaiveConvLSTM(C, Hc, k)),
    }
    layers = {label: build() for key, (label, build) in builders.items() if key in args.layers or key == "naive"}
    modes = (("train", 3.0),) if args.train_only else (("fwd", 1.0), ("train", 3.0))
    fns: dict[str, Callable[[], None]] = {}
    for name, module in layers.items():
        if not args.train_only:
            fns[f"{name}|fwd"] = _forward_fn(module, x)
        fns[f"{name}|train"] = _train_fn(module, x)
        for label, route in ((WINOGRAD_BMM, "bmm"), (WINOGRAD_BRGEMM, "brgemm")):  # the same layer, products forced
            if name == label:
                fns.update({key: _products_by(route, fn) for key, fn in fns.items() if key.startswith(f"{name}|")})
        if name == WINOGRAD_NOPOOL:
            fns.update({key: _without_pool(fn) for key, fn in fns.items() if key.startswith(f"{name}|")})
    xh = torch.randn(B, C + Hc, H, W)  # the textbook step's convolution, alone
    w = torch.randn(4 * Hc, C + Hc, k, k)

    def conv() -> None:
        with torch.inference_mode():
            F.conv2d(xh, w, padding=k // 2)

    fns[CONV] = conv
    parts = {} if args.no_parts else conv_parts(T, B, C, H, W, Hc, k)
    fns.update({f"part|{name}": fn for name, (fn, _) in parts.items()})
    mm_n = 512 if args.quick else 2048
    if parts:
        a, b2, out_mm = torch.randn(mm_n, mm_n), torch.randn(mm_n, mm_n), torch.empty(mm_n, mm_n)
        fns[MM] = lambda: torch.mm(a, b2, out=out_mm)
    conv_flops = layer_flops(1, B, C, H, W, Hc, k)
    flops = layer_flops(T, B, C, H, W, Hc, k)

    # Besides the wall time of each sample (interleaved), the process CPU time of every call: on a
    # shared machine a niced one-thread run is descheduled for long stretches, which wall time counts
    # and CPU time does not (it still sees the other jobs' pressure on caches and memory).
    cpu_calls: dict[str, list[float]] = {name: [] for name in fns}

    def cpu_timed(name: str, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            t0 = time.process_time()
            fn()
            cpu_calls[name].append(time.process_time() - t0)

        return run

    load_before = os.getloadavg()
    start = time.perf_counter()
    wall = interleaved({name: cpu_timed(name, fn) for name, fn in fns.items()}, args.repeats, warmup=1,
                       min_time=0.05, progress=log, time_limit=args.time_limit or None)  # fmt: skip
    elapsed = time.perf_counter() - start
    load_after = os.getloadavg()
    rounds = len(wall[CONV])
    times = {name: per_round(calls, rounds) for name, calls in cpu_calls.items()}
    conv_gflops = conv_flops / median(times[CONV]) / 1e9

    def time_and_ratio(samples: dict[str, list[float]], name: str, mode: str) -> tuple[list[float], float, list[str]]:
        """A layer's times in one mode, its median ratio to the naive layer, and the two cells for them."""
        t = samples[f"{name}|{mode}"]
        ratios = paired_ratios(t, samples[f"{NAIVE}|{mode}"])
        q1, q3 = quartiles(ratios)
        return t, median(ratios), [f"{1e3 * median(t):.0f}", f"{median(ratios):.2f} ({q1:.2f}–{q3:.2f})"]

    rows, wall_rows = [], []
    for name in layers:
        cells, wall_cells = [], []
        for mode, mult in modes:
            t, ratio, two = time_and_ratio(times, name, mode)
            gflops = mult * flops / median(t) / 1e9
            cells += [*two, f"{1.0 / ratio:.2f}×", f"{gflops:.1f} ({100 * gflops / conv_gflops:.0f}%)"]
            wall_cells += time_and_ratio(wall, name, mode)[2]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
        wall_rows.append(f"| {name} | " + " | ".join(wall_cells) + " |")
    heads = [{"fwd": "forward", "train": "train step"}[m] for m, _ in modes]
    peak, peak_how = cpu_peak_gflops(torch.get_num_threads())
    mm_gflops = 2.0 * mm_n**3 / median(times[MM]) / 1e9 if MM in times else math.nan
    part_rows = []
    for name, (_, fl) in parts.items():
        label, kind = name.split("|")
        t = median(times[f"part|{name}"])
        gf = fl / t / 1e9
        part_rows.append(f"| {label} | {kind} | {1e3 * t:.0f} | {gf:.1f} | {100 * gf / peak:.0f}% |")

    out = [
        "# lstmkit ConvLSTM benchmark",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine_description()}. CPU vector flags: {cpu_flags()}. "
        f"torch threads in this run: {torch.get_num_threads()}. "
        f"Load average (1, 5, 15 min) {', '.join(f'{v:.1f}' for v in load_before)} at the start and "
        f"{', '.join(f'{v:.1f}' for v in load_after)} at the end. Run took {elapsed / 60:.1f} min"
        f"{' (--quick: a smoke run, not a measurement)' if args.quick else ''}.",
        "",
        f"Shape: T={T}, B={B}, C={C}, {H}x{W} frames, Hc={Hc} hidden channels, {k}x{k} kernel, one layer. "
        f"{rounds} interleaved rounds after a warm-up round. Times are **process CPU time** per call (a "
        "niced run on a shared machine waits for long stretches, which CPU time does not count; the wall "
        f"times follow). **×naive** is the median over rounds of the time divided by `{NAIVE}`'s time in "
        "the same round (first–third quartile in brackets; lower is faster); **speed-up** is its inverse. "
        "GFLOP/s counts the convolutions only, "
        f"2·T·B·H·W·4Hc·(C+Hc)·k² = {flops / 1e9:.1f} GFLOP per forward, 3× that per training step; the % "
        f"compares with one plain `F.conv2d` (B, C+Hc, H, W) -> (B, 4Hc, H, W) timed in the same rounds: "
        f"**{conv_gflops:.1f} GFLOP/s**.",
        "",
        "| layer |" + "".join(f" {m} ms | {m} ×naive | {m} speed-up | {m} GFLOP/s (% conv2d) |" for m in heads),
        "|---|" + "---:|" * (4 * len(heads)),
        *rows,
        "",
        "Wall time of the same rounds (median ms, and ×naive as above):",
        "",
        "| layer |" + "".join(f" {m} ms (wall) | {m} ×naive (wall) |" for m in heads),
        "|---|" + "---:|" * (2 * len(heads)),
        *wall_rows,
        "",
    ]
    if parts:
        out += [
        f"The convolutions of one step alone, in the same rounds (median CPU time). CPU peak {peak:.0f} GFLOP/s "
        f"({peak_how}); `torch.mm` {mm_n}³ reached {mm_gflops:.1f} GFLOP/s ({100 * mm_gflops / peak:.0f}% of peak).",
        "",
        "| convolution | part | ms | GFLOP/s | % of peak |",
        "|---|---|---:|---:|---:|",
        *part_rows,
        "",
        ]  # fmt: skip
    text = "\n".join(out)
    print(text)
    if args.out is not None:
        with open(args.out, "w") as f:
            f.write(text + "\n")
        log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
