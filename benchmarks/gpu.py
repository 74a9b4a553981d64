"""GPU benchmark: lstmkit's layers on a CUDA device against cuDNN and the plain per-step loops.

lstmkit has no CUDA kernel of its own: on a GPU ``lstmkit.LSTM`` (impl "auto") runs the fused PyTorch
scan (``lstmkit/nn/_fused.py``: the input projection for all steps in one product, then per step one
recurrent product and the gate math, with the hand-written backward) and ``lstmkit.ConvLSTM`` its
``impl="bptt"`` layer (one convolution a step, the weight gradient once over all T B frames). This
script measures what that costs against ``torch.nn.LSTM`` (cuDNN's persistent or standard RNN kernels)
and, for ConvLSTM, against the naive four-convolutions-a-step layer and the textbook loop of
``benchmarks/convlstm.py`` (docs/benchmarks.md, issue 21's 2x target).

Times the forward (under ``torch.inference_mode``) and one training step (zero grads, forward,
``output.sum()``, backward), every candidate in the same interleaved rounds (``_timing.interleaved``),
each call followed by ``torch.cuda.synchronize()`` so that the wall clock covers the GPU's work; prints a
Markdown report with the median time and the median per-round ratio to the baseline. TF32 is left at
torch's defaults (printed), the same for every candidate.

    python benchmarks/gpu.py --out bench_gpu.md          # on a machine with a CUDA device
    python benchmarks/gpu.py --device cpu --quick        # smoke run of the script itself, measures nothing

Shapes: T time, B batch, I input size, H hidden size; ConvLSTM: C input channels, Hc hidden channels,
H x W the frame, k the kernel.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from _timing import emit_report, interleaved, median, paired_ratios, quartiles
from convlstm import ConcatConvLSTM, NaiveConvLSTM, _forward_fn, _train_fn, layer_flops
from torch import nn

import lstmkit

LSTM_SHAPES = [  # (T, B, I, H): a language-model step, a streaming-size batch, a wide layer
    (35, 20, 650, 650),
    (100, 8, 128, 256),
    (50, 64, 512, 1024),
]
CONV_SHAPE = dict(T=10, B=16, C=1, H=64, W=64, Hc=64, k=3)  # the shape
QUICK_LSTM = [(5, 3, 4, 6)]
QUICK_CONV = dict(T=3, B=2, C=1, H=8, W=8, Hc=4, k=3)


def _synced(fn: Callable[[], object], device: torch.device) -> Callable[[], None]:
    def run() -> None:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return run


def _table(title: str, names: list[str], times: dict[str, list[float]], baseline: str,
           flops: float | None = None) -> list[str]:
    head = "| layer | ms (median) | ×" + baseline + " (quartiles) |" + (" TFLOP/s |" if flops else "")
    lines = [f"**{title}**", "", head, "|---|---:|---:|" + ("---:|" if flops else "")]
    for name in names:
        ms = median(times[name]) * 1e3
        ratios = paired_ratios(times[name], times[baseline])
        q1, q3 = quartiles(ratios)
        row = f"| {name} | {ms:.3f} | {median(ratios):.2f} ({q1:.2f}–{q3:.2f}) |"
        if flops:
            row += f" {flops / (ms * 1e-3) / 1e12:.2f} |"
        lines.append(row)
    return [*lines, ""]


def lstm_block(shape: tuple[int, int, int, int], device: torch.device, repeats: int, min_time: float) -> list[str]:
    T, B, I, H = shape
    torch.manual_seed(0)
    native = nn.LSTM(I, H, device=device)
    layers: dict[str, nn.Module] = {"torch.nn.LSTM (cuDNN)" if device.type == "cuda" else "torch.nn.LSTM": native}
    for impl in ("auto", "reference"):
        m = lstmkit.LSTM(I, H, impl=impl, device=device)
        m.load_state_dict(native.state_dict())
        layers[f"lstmkit impl={impl}"] = m
    x = torch.randn(T, B, I, device=device)
    baseline = next(iter(layers))
    out = []
    for kind, make in (("forward", _forward_fn), ("training step", _train_fn)):
        cands = {name: _synced(make(m, x), device) for name, m in layers.items()}
        times = interleaved(cands, repeats=repeats, min_time=min_time)
        out += _table(f"LSTM {kind}, T={T} B={B} I={I} H={H}", list(cands), times, baseline)
    return out


def conv_block(shape: dict[str, int], device: torch.device, repeats: int, min_time: float) -> list[str]:
    T, B, C, H, W, Hc, k = (shape[n] for n in ("T", "B", "C", "H", "W", "Hc", "k"))
    torch.manual_seed(0)
    layers: dict[str, nn.Module] = {"naive 4 convs": NaiveConvLSTM(C, Hc, k).to(device)}
    layers["nn.Conv2d over [x, h]"] = ConcatConvLSTM(C, Hc, k).to(device)
    for impl in ("auto", "bptt", "concat", "fused"):
        layers[f"lstmkit impl={impl}"] = lstmkit.ConvLSTM(C, Hc, kernel_size=k, impl=impl, device=device)
    x = torch.randn(T, B, C, H, W, device=device)
    flops = layer_flops(T, B, C, H, W, Hc, k)
    out = []
    for kind, make, f in (("forward", _forward_fn, flops), ("training step", _train_fn, 3 * flops)):
        cands = {name: _synced(make(m, x), device) for name, m in layers.items()}
        times = interleaved(cands, repeats=repeats, min_time=min_time)
        out += _table(f"ConvLSTM {kind}, T={T} B={B} C={C} {H}x{W} Hc={Hc} k={k}", list(cands), times,
                      "naive 4 convs", f)  # fmt: skip
    return out


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        what = f"{p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs; CUDA {torch.version.cuda}"
        what += f", cuDNN {torch.backends.cudnn.version()}"
        flags = (f"TF32: matmul {torch.backends.cuda.matmul.fp32_precision}, cuDNN conv "
                 f"{torch.backends.cudnn.conv.fp32_precision}, cuDNN RNN {torch.backends.cudnn.rnn.fp32_precision}")
    else:
        what, flags = "CPU (a smoke run: these figures measure nothing)", "TF32: n/a"
    return f"{what}; torch {torch.__version__}; Python {platform.python_version()}; {flags}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="a torch device (default cuda)")
    ap.add_argument("--repeats", type=int, default=7, help="interleaved rounds (odd: the median is one round)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes, 3 rounds: a smoke run, not a measurement")
    ap.add_argument("--only", choices=["lstm", "convlstm"], default=None, help="run one of the two blocks")
    ap.add_argument("--out", default=None, help="also write the Markdown report to this file")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device here (torch.cuda.is_available() is False); try --device cpu --quick")
    repeats, min_time = (3, 0.0) if args.quick else (args.repeats, 0.2)
    lines = ["# lstmkit on a GPU", "", f"`python benchmarks/gpu.py {shlex.join(argv or sys.argv[1:])}`", "",
             describe(device), ""]  # fmt: skip
    if args.only in (None, "lstm"):
        for shape in QUICK_LSTM if args.quick else LSTM_SHAPES:
            lines += lstm_block(shape, device, repeats, min_time)
            print(f"LSTM {shape} done", file=sys.stderr, flush=True)
    if args.only in (None, "convlstm"):
        lines += conv_block(QUICK_CONV if args.quick else CONV_SHAPE, device, repeats, min_time)
    emit_report(lines, None if args.out is None else Path(args.out))


if __name__ == "__main__":
    main()
