"""How the forward of a plain LSTM scales from one thread to two: lstmkit's C++ kernel against native
``torch.nn.LSTM`` with the same weights, each at 1 and 2 intra-op threads, interleaved.

    python benchmarks/thread_scaling.py --shapes 1x256,4x256,1x512,4x512,1x1024,4x1024,16x256

Shapes are B x H (I = H, T = 100). Each cell is the median over rounds of the time of 3 calls under
``torch.inference_mode`` (the first round is warm-up and dropped); the ratios compare lstmkit with
native at the same thread count. Use it on a quiet machine: two threads need both cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from _timing import machine_description

import lstmkit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="1x256,4x256,1x512,4x512,1x1024,4x1024,16x256")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    try:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    except ValueError:
        parser.error(f"--shapes must be a comma list of BxH, got {args.shapes!r}")
    if any(len(s) != 2 or min(s) < 1 for s in shapes) or args.rounds < 2:
        parser.error("--shapes must be BxH with sizes >= 1 and --rounds >= 2")
    print(f"Command: `python {' '.join(sys.argv)}`\n\nMachine: {machine_description()}.\n")
    print("| B x H | native 1 thr ms | lstmkit 1 thr ms | native 2 thr ms | lstmkit 2 thr ms "
          "| ×native 1 thr | ×native 2 thr |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    threads_before = torch.get_num_threads()
    for B, H in shapes:
        torch.manual_seed(0)
        native = torch.nn.LSTM(H, H)
        ours = lstmkit.LSTM(H, H)
        ours.load_state_dict(native.state_dict())
        x = torch.randn(100, B, H)
        times: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for threads in (1, 2):
                torch.set_num_threads(threads)
                for name, m in (("native", native), ("lstmkit", ours)):
                    with torch.inference_mode():
                        m(x)
                        t0 = time.perf_counter()
                        for _ in range(3):
                            m(x)
                    times.setdefault(f"{name}{threads}", []).append((time.perf_counter() - t0) / 3)
        ms = {k: statistics.median(v[1:]) * 1e3 for k, v in times.items()}
        print(f"| {B} x {H} | {ms['native1']:.2f} | {ms['lstmkit1']:.2f} | {ms['native2']:.2f} | {ms['lstmkit2']:.2f} "
              f"| {ms['lstmkit1'] / ms['native1']:.2f} | {ms['lstmkit2'] / ms['native2']:.2f} |", flush=True)
    torch.set_num_threads(threads_before)


if __name__ == "__main__":
    main()
