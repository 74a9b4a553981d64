"""Cell benchmark: ``lstmkit.LSTMCell`` against ``torch.nn.LSTMCell``, a user's own time loop over T steps.

The loop of PyTorch's time_sequence_prediction example (and of any model that steps a cell itself): h, c = cell(x_t,
(h, c)) for t = 1..T, then (``--train``) a loss over every h and its backward. Both cells hold the same weights; one
thread by default. Candidates are interleaved (``_timing.interleaved``) and each shape's ratio is the median over
rounds of lstmkit's time over native's in the same round, with the quartiles.

    python benchmarks/cells.py                                  # the default shapes, float32 and float64
    python benchmarks/cells.py --shapes 97x51 --dtypes float64 --rounds 15 --out cells.md

With ``--zoneout P`` both cells zone out at rate P (h and c): lstmkit's ``LSTMCell(..., zoneout=P)`` against
``torch.nn.LSTMCell`` inside the wrapper that fairseq's and ESPnet's Tacotron 2 code write around it (a
``bernoulli_`` mask per state and step in training, the expectation in eval mode), ``ZoneoutWrapper`` below.

    python benchmarks/cells.py --dtypes float32 --zoneout 0.1
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


class ZoneoutWrapper(torch.nn.Module):
    """Zoneout around a torch.nn cell as model code writes it: each state moves to the cell's new value except where
    a Bernoulli(p) draw keeps the old one (training), or by the expectation (eval mode)."""

    def __init__(self, cell: torch.nn.Module, p: float) -> None:
        super().__init__()
        self.cell, self.p = cell, p

    def forward(self, x, state):
        out = []
        for new, old in zip(self.cell(x, state), state, strict=True):
            if self.training:
                keep = torch.empty_like(old).bernoulli_(self.p)
                out.append(keep * old + (1 - keep) * new)
            else:
                out.append(self.p * old + (1 - self.p) * new)
        return tuple(out)


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
    parser.add_argument("--zoneout", type=float, default=0.0, help="both cells zone out at this rate (h and c)")
    args = parser.parse_args()
    if args.steps < 1 or args.rounds < 1 or args.threads < 1:
        parser.error("--steps, --rounds and --threads must be >= 1")
    if not 0 <= args.zoneout < 1:
        parser.error(f"--zoneout must be in [0, 1), got {args.zoneout}")
    torch.set_num_threads(args.threads)
    lines = [f"`{shlex.join(['python', *sys.argv])}`", "", machine_description(), "",
             "| dtype | B | H | mode | lstmkit / torch.nn (median [quartiles] over rounds) | torch.nn per step (µs) |",
             "|---|---:|---:|---|---|---:|"]  # fmt: skip
    for dtype_name in args.dtypes:
        dtype = DTYPES[dtype_name]
        for B, H in args.shapes:
            torch.manual_seed(0)
            native = torch.nn.LSTMCell(H, H, dtype=dtype)
            ours = lstmkit.LSTMCell(H, H, dtype=dtype, zoneout=args.zoneout)
            ours.load_state_dict(native.state_dict())
            if args.zoneout:
                native = ZoneoutWrapper(native, args.zoneout)
            x = torch.randn(args.steps, B, H, dtype=dtype)
            for train in (False, True):
                native.train(train)
                ours.train(train)
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
