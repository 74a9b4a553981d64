"""The input side of an inference forward: MKL's sgemm or brgemm on panels of W_ih, whole forwards timed.

In inference the C++ kernel computes W_ih x itself, a chunk of steps at a time, as one (k B, I) @ (I, 4H)
product per chunk (``choose_input_gemm`` in ``lstm_scan.cpp``): MKL's ``sgemm_`` reading W_ih as it is, or
oneDNN's brgemm micro-kernel on W_ih cut once per call into panels (session 32: MKL runs its AVX2 code on AMD
CPUs). This times a whole ``lstmkit.nn.LSTM`` forward (``torch.inference_mode``, I = H) with each input-side
path forced (``set_input_gemm``; the per-step products on their automatic paths), interleaved with
``torch.nn.LSTM`` of the same weights, and reports each as a ratio to native's time in the same round
(median over rounds, quartiles in brackets) and which path ``auto`` takes there:

    python benchmarks/input_side.py --shapes 16x512x100,4x256x100,1x1024x100 --threads 1

With ``--step`` the per-step recurrent products are forced instead (the input side on its automatic path): brgemm
reading W_hh^T in place, or brgemm on panels 16 or 32 columns wide (``set_gemm``, ``set_panel_width``; forced panels
apply to the input side too, which takes 32-wide panels from 17 rows), beside ``auto`` (session 33):

    python benchmarks/input_side.py --shapes 16x512x100,4x512x100 --threads 1 --step

With ``--chunks 0,2,32`` the input side's chunk of steps is forced instead (``set_input_chunk``; 0 = the rule, whose
count "auto takes" then names), all paths automatic (session 33):

    python benchmarks/input_side.py --shapes 16x512x100,64x512x100 --threads 1 --chunks 0,1,2,8,32
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import torch
from _timing import interleaved, machine_description, median, paired_ratios, quartiles

import lstmkit
from lstmkit.nn import _cpp

PATHS = ("auto", "blas", "panels")
# --step: (column, per-step gemm mode, panel width; 0 = the kernel's rule)
STEP_PATHS = (("auto", "auto", 0), ("in place", "brgemm", 0), ("panels 16", "panels", 16), ("panels 32", "panels", 32))


def shape(text: str) -> tuple[int, int, int, int]:
    """'BxHxT' (I = H) or 'BxHxTxI' -> (B, H, T, I)."""
    try:
        values = [int(v) for v in text.lower().split("x")]
    except ValueError:
        values = []
    if len(values) not in (3, 4) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"a shape is BxHxT or BxHxTxI (positive integers), got {text!r}")
    b, h, t, i = values if len(values) == 4 else [*values, values[1]]
    return b, h, t, i


def chunk_list(text: str) -> list[int]:
    """'0,2,32' -> [0, 2, 32] (steps per input-side chunk; 0 = the kernel's rule)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"--chunks is a comma list of integers >= 0, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", type=lambda s: [shape(v) for v in s.split(",")],
                    default=[shape(v) for v in ("1x512x100", "4x256x100", "4x512x100", "16x512x100", "1x1024x100")],
                    help="comma list of BxHxT (I = H) or BxHxTxI")  # fmt: skip
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15, help="interleaved rounds (default 15)")
    ap.add_argument("--step", action="store_true",
                    help="force the per-step products' paths instead of the input side's")  # fmt: skip
    ap.add_argument("--chunks", type=chunk_list, default=None,
                    help="comma list of input-side chunk steps to force instead (0: the rule)")  # fmt: skip
    args = ap.parse_args(argv)
    if args.step and args.chunks:
        ap.error("--step and --chunks each choose what to force: give one")
    if args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    run_with_kernel(args.threads, lambda ext: table(ext, args, sys.argv[1:] if argv is None else argv))


def run_with_kernel(threads: int, body: Callable[[Any], None]) -> None:
    """``body(ext)`` with the C++ kernel loaded and torch on ``threads`` threads (restored after); exits naming why
    where the kernel is unavailable."""
    if not _cpp.available():
        sys.exit(f"the C++ kernel is unavailable: {_cpp._failure}")
    ext = _cpp._ext()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        body(ext)
    finally:
        torch.set_num_threads(before)


def table(ext, args: argparse.Namespace, argv: list[str]) -> None:
    """Prints the machine, then one row a shape."""
    torch.manual_seed(0)
    print(f"Command: `python benchmarks/input_side.py {' '.join(argv)}`\n")
    print(f"Machine: {machine_description()}. {args.threads} thread(s); kernel instruction set {ext.isa()}, "
          f"CPU vendor check: {ext.cpu_vendor()}.\n")  # fmt: skip
    if args.step or args.chunks:
        heads = [p[0] for p in STEP_PATHS] if args.step else [f"chunk {c or 'rule'}" for c in args.chunks]
        print("| B x H x T (x I, else I = H) | auto takes | " + " | ".join(f"{h} ×native" for h in heads)
              + " | native ms |")  # fmt: skip
        print("|---|---|" + "---|" * len(heads) + "---:|")
    else:
        print("| B x H x T (x I, else I = H) | auto takes | auto ×native | BLAS (sgemm) ×native | panels ×native "
              "| native ms |")
        print("|---|---|---|---|---|---:|")
    for B, H, T, I in args.shapes:
        native = torch.nn.LSTM(I, H)
        ours = lstmkit.nn.LSTM(I, H)
        ours.load_state_dict(native.state_dict())
        x = torch.randn(T, B, I)

        def forward(module: torch.nn.Module, path: str | None = None, x: torch.Tensor = x):
            def run() -> None:
                if path is not None and args.step:
                    _, mode, width = next(p for p in STEP_PATHS if p[0] == path)
                    ext.set_gemm(mode)
                    ext.set_panel_width(width)
                elif path is not None and args.chunks:
                    ext.set_input_chunk(int(path))
                elif path is not None:
                    ext.set_input_gemm(path)
                try:
                    with torch.inference_mode():
                        module(x)
                finally:
                    ext.set_input_gemm("auto")
                    ext.set_gemm("auto")
                    ext.set_panel_width(0)
                    ext.set_input_chunk(0)
            return run

        names = list(PATHS)
        if args.step or args.chunks:
            names = [p[0] for p in STEP_PATHS] if args.step else [str(c) for c in args.chunks]
        times = interleaved({"native": forward(native), **{p: forward(ours, p) for p in names}}, args.repeats)
        cells = []
        for p in names:
            r = paired_ratios(times[p], times["native"])
            lo, hi = quartiles(r)
            cells.append(f"{median(r):.3f} ({lo:.2f}-{hi:.2f})")
        if args.step:
            takes = f"{ext.gemm_for(B, H, T)}, {ext.panel_width(B)} wide"
        elif args.chunks:
            takes = f"{ext.input_chunk(T, B, 4 * H, I, 4)} steps a chunk"
        else:
            takes = ext.input_gemm(T * B, 4 * H, I)
        name = f"{B} x {H} x {T}" + (f" x {I}" if I != H else "")
        print(f"| {name} | {takes} | {' | '.join(cells)} | {median(times['native']) * 1e3:.2f} |", flush=True)


if __name__ == "__main__":
    main()
