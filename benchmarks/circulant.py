"""Where the FFT product of a block-circulant matrix beats the dense product, one thread.

For a gate-matrix shape (4H, H) and block size K, times ``F.linear(x, W)`` with the dense
(4H, H) matrix against ``lstmkit.formats.circulant.circulant_matmul(x, v)`` with its (4H/K, H/K, K)
vectors, for x (B, H): B = 1 is one recurrent step (what the recurrence multiplies by W_hh), B = 256
the input projection of a 256-step sequence. Interleaved rounds (``_timing.interleaved``); the
ratio is the median over rounds of FFT time / dense time in the same round (below 1: FFT faster).

    python benchmarks/circulant.py            # = --hidden 256,1024,4096 --blocks 4,16,64,256 --batch 1,256
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F
from _timing import interleaved, machine_description, median, paired_ratios, quartiles

from lstmkit.formats.circulant import circulant_matmul, expand


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", default="256,1024,4096")
    p.add_argument("--blocks", default="4,16,64,256")
    p.add_argument("--batch", default="1,256")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(machine_description())
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print("| H | W shape | K | B | dense (us) | FFT (us) | FFT / dense [IQR] |")
    print("|---|---|---|---|---:|---:|---|")
    for H in map(int, a.hidden.split(",")):
        for K in map(int, a.blocks.split(",")):
            if H % K:
                continue
            v = torch.randn(4 * H // K, H // K, K)
            w = expand(v)
            for B in map(int, a.batch.split(",")):
                x = torch.randn(B, H)
                with torch.inference_mode():
                    times = interleaved({"dense": lambda x=x, w=w: F.linear(x, w),
                                         "fft": lambda x=x, v=v: circulant_matmul(x, v)}, a.rounds)  # fmt: skip
                r = paired_ratios(times["fft"], times["dense"])
                lo, hi = quartiles(r)
                print(f"| {H} | {4 * H} x {H} | {K} | {B} | {1e6 * median(times['dense']):.1f} | "
                      f"{1e6 * median(times['fft']):.1f} | {median(r):.2f} [{lo:.2f}, {hi:.2f}] |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
