"""How the forward of a plain LSTM scales from one thread to two: lstmkit's C++ kernel against native
``torch.nn.LSTM`` with the same weights, each at 1 and 2 intra-op threads, interleaved.

    python benchmarks/thread_scaling.py --shapes 1x256,4x256,1x512,4x512,1x1024,4x1024,16x256

Shapes are B x H (I = H, T = 100). The four candidates (each layer at 1 and 2 threads, the thread
count set inside the timed call) run round-robin through ``_timing.interleaved``; times are medians over
rounds, ratios the median of the per-round ratios to native at the same thread count (quartiles in
brackets). Use it on a quiet machine: two threads need both cores.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch
from _timing import interleaved, machine_description, median, paired_ratios, quartiles

import lstmkit


def _forward(m: torch.nn.Module, x: torch.Tensor, threads: int) -> Callable[[], None]:
    def run() -> None:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            m(x)

    return run


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
        times = interleaved({f"{name}{threads}": _forward(m, x, threads)
                             for threads in (1, 2) for name, m in (("native", native), ("lstmkit", ours))},
                            args.rounds)  # fmt: skip
        cells = [f"{1e3 * median(times[k]):.2f}" for k in ("native1", "lstmkit1", "native2", "lstmkit2")]
        for threads in (1, 2):
            r = paired_ratios(times[f"lstmkit{threads}"], times[f"native{threads}"])
            q1, q3 = quartiles(r)
            cells.append(f"{median(r):.2f} ({q1:.2f}–{q3:.2f})")
        print(f"| {B} x {H} | " + " | ".join(cells) + " |", flush=True)
    torch.set_num_threads(threads_before)


if __name__ == "__main__":
    main()
