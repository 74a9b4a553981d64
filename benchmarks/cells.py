"""Cell benchmark: ``lstmkit.LSTMCell`` against ``torch.nn.LSTMCell``, a user's own time loop over T steps.

The loop of PyTorch's time_sequence_prediction example (and of any model that steps a cell itself): h, c = cell(x_t,
(h, c)) for t = 1..T, then (``--train``) a loss over every h and its backward. Both cells hold the same weights; one
thread by default. Candidates are interleaved (``_timing.interleaved``) and each shape's ratio is the median over
rounds of lstmkit's time over native's in the same round, with the quartiles.

    python benchmarks/cells.py                                  # the default shapes, float32 and float64
    python benchmarks/cells.py --shapes 97x51 --dtypes float64 --rounds 15 --out cells.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
from _timing import bxh_shapes, emit_report, interleaved, machine_description, median, paired_ratios, quartiles

import lstmkit

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def cell_loop(cell: torch.nn.Module, x: torch.Tensor, hidden: int, train: bool):
    """One call: the cell over x (T, B, I) from a zero state, and with ``train`` the backward of a loss on every h."""
    T, B = x.shape[0], x.shape[1]

    def run() -> None:
        h = c = x.new_zeros(B, hidden)
        with torch.set_grad_enabled(train):
            hs = []
            for t in range(T):
                h, c = cell(x[t], (h, c))
                hs.append(h)
            if train:
                torch.stack(hs).square().mean().backward()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", type=bxh_shapes("97x51"), help="BxH,BxH,... "
                        "(input size = H)", default=[(1, 128), (16, 128), (97, 51), (64, 256)])  # fmt: skip
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--steps", type=int, default=100, help="T, the loop's length")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.steps < 1 or args.rounds < 1 or args.threads < 1:
        parser.error("--steps, --rounds and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    lines = [f"`{shlex.join(['python', *sys.argv])}`", "", machine_description(), "",
             "| dtype | B | H | mode | lstmkit / torch.nn (median [quartiles] over rounds) | torch.nn per step (µs) |",
             "|---|---:|---:|---|---|---:|"]  # fmt: skip
    for dtype_name in args.dtypes:
        dtype = DTYPES[dtype_name]
        for B, H in args.shapes:
            torch.manual_seed(0)
            native = torch.nn.LSTMCell(H, H, dtype=dtype)
            ours = lstmkit.LSTMCell(H, H, dtype=dtype)
            ours.load_state_dict(native.state_dict())
            x = torch.randn(args.steps, B, H, dtype=dtype)
            for train in (False, True):
                loops = {"torch.nn": cell_loop(native, x, H, train), "lstmkit": cell_loop(ours, x, H, train)}
                times = interleaved(loops, repeats=args.rounds)
                ratios = paired_ratios(times["lstmkit"], times["torch.nn"])
                q1, q3 = quartiles(ratios)
                step = median(times["torch.nn"]) / args.steps * 1e6
                mode = "training (forward + backward)" if train else "inference"
                lines.append(f"| {dtype_name} | {B} | {H} | {mode} | {median(ratios):.2f} [{q1:.2f}-{q3:.2f}] | "
                             f"{step:.1f} |")  # fmt: skip
                print(lines[-1], flush=True)
    emit_report(lines, args.out)


if __name__ == "__main__":
    main()
