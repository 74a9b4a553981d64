"""The Winograd ConvLSTM layer's 36 channel products alone: the extension's ``plane_products`` (oneDNN's brgemm on
panels of the right operand) against ``torch.bmm`` / ``baddbmm_`` (MKL), interleaved in the same rounds.

The three products of a training step at issue 21's shape (B=16, 64x64 frames: N = 4096 tiles; C + Hc = 65 input
channels, 4 Hc = 256 gate channels), each 36 planes:

- forward: M (256, 4096) = U (256, 65) @ V (65, 4096);
- data gradient: dV (65, 4096) = U^T (65, 256) @ dM (256, 4096);
- weight gradient: dU (256, 65) += dM (256, 4096) @ V^T (4096, 65), V^T a column-major view.

    OMP_NUM_THREADS=1 python benchmarks/winograd_products.py --threads 1

Prints GFLOP/s (median over rounds) and the median per-round ratio, with the machine's instruction sets.
"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch
from _timing import interleaved, machine_description, median, paired_ratios

from lstmkit.nn import _cpp

PRODUCTS = {  # name: (P, M, K, N, B column-major, accumulate)
    "forward (256 x 65) @ (65 x 4096)": (36, 256, 65, 4096, False, False),
    "data gradient (65 x 256) @ (256 x 4096)": (36, 65, 256, 4096, False, False),
    "weight gradient (256 x 4096) @ (4096 x 65), += ": (36, 256, 4096, 65, True, True),
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: all)")
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    args = ap.parse_args(argv)
    if not _cpp.available():
        raise SystemExit(f"the lstmkit C++ extension is unavailable here: {_cpp._failure}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    ext = _cpp._ext()
    g = torch.Generator().manual_seed(0)
    fns, flops = {}, {}
    for name, (P, M, K, N, bt, acc) in PRODUCTS.items():
        A = torch.randn(P, M, K, generator=g)
        B = torch.randn(P, N, K, generator=g).transpose(1, 2) if bt else torch.randn(P, K, N, generator=g)
        C = torch.zeros(P, M, N)
        flops[name] = 2.0 * P * M * K * N
        fns[f"{name}|brgemm"] = lambda A=A, B=B, C=C, acc=acc: ext.plane_products(A, B, C, acc)
        fns[f"{name}|bmm"] = (lambda A=A, B=B, C=C: C.baddbmm_(A, B)) if acc else \
            (lambda A=A, B=B, C=C: torch.bmm(A, B, out=C))  # fmt: skip
    times = interleaved(fns, args.repeats, warmup=1, min_time=0.05)
    command = "python " + shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    print(f"Command: `{command}`\n\nMachine: {machine_description()}; torch threads {torch.get_num_threads()}; "
          f"{len(times[next(iter(times))])} interleaved rounds after a warm-up round.\n")  # fmt: skip
    print("| product (36 planes) | brgemm GFLOP/s | bmm GFLOP/s | brgemm time / bmm time |")
    print("|---|---:|---:|---:|")
    for name in PRODUCTS:
        tb, tm = times[f"{name}|brgemm"], times[f"{name}|bmm"]
        print(f"| {name} | {flops[name] / median(tb) / 1e9:.1f} | {flops[name] / median(tm) / 1e9:.1f} | "
              f"{median(paired_ratios(tb, tm)):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
