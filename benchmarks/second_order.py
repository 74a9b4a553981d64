"""Gradients of gradients: one WGAN-GP critic step through ``lstmkit.LSTM`` against ``torch.nn.LSTM``.

The step: critic = sum(tanh(LSTM(x))), dx = d critic / d x with ``create_graph=True``, penalty = mean over the batch
of (||dx|| - 1)^2, and the penalty's backward into the weights. lstmkit's create_graph backward recomputes the
recurrence with its reference loop (docs/layers.md, "Gradients of gradients"), so this times that path against
torch's own double backward; the plain training step (forward and backward) is timed beside it. Candidates are
interleaved (``_timing.interleaved``); each ratio is the median over rounds of lstmkit's time over torch.nn's in the
same round, with the quartiles. One thread by default.

    python benchmarks/second_order.py
    python benchmarks/second_order.py --shapes 16x128,64x256 --steps 50 --rounds 7 --out second_order.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
from _timing import bxh_shapes, emit_report, interleaved, machine_description, median, paired_ratios, quartiles

import lstmkit


def penalty_step(model: torch.nn.Module, x: torch.Tensor):
    """One critic step with a gradient penalty: forward, d critic / d x as a graph, the penalty's backward."""

    def run() -> None:
        model.zero_grad(set_to_none=True)
        xi = x.detach().requires_grad_()
        critic = model(xi)[0].tanh().sum()
        (dx,) = torch.autograd.grad(critic, xi, create_graph=True)
        (dx.flatten(1).norm(dim=1) - 1).square().mean().backward()

    return run


def train_step(model: torch.nn.Module, x: torch.Tensor):
    """One plain training step: forward and backward of a loss on the output."""

    def run() -> None:
        model.zero_grad(set_to_none=True)
        model(x)[0].tanh().sum().backward()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", type=bxh_shapes("16x128"),
                        default=[(16, 128), (64, 256)], help="BxH,BxH,... (input size = H)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=50, help="T, the sequence length")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.steps < 1 or args.rounds < 1 or args.threads < 1:
        parser.error("--steps, --rounds and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    lines = [f"`{shlex.join(['python', *sys.argv])}`", "", machine_description(), "",
             "| B | H | T | step | lstmkit / torch.nn (median [quartiles] over rounds) | torch.nn (ms) |",
             "|---:|---:|---:|---|---|---:|"]  # fmt: skip
    for B, H in args.shapes:
        torch.manual_seed(0)
        native = torch.nn.LSTM(H, H)
        ours = lstmkit.LSTM(H, H)
        ours.load_state_dict(native.state_dict())
        x = torch.randn(args.steps, B, H)
        for name, make in (("training (forward + backward)", train_step), ("gradient penalty (create_graph)",
                                                                            penalty_step)):  # fmt: skip
            times = interleaved({"torch.nn": make(native, x), "lstmkit": make(ours, x)}, repeats=args.rounds)
            ratios = paired_ratios(times["lstmkit"], times["torch.nn"])
            q1, q3 = quartiles(ratios)
            lines.append(f"| {B} | {H} | {args.steps} | {name} | {median(ratios):.2f} [{q1:.2f}-{q3:.2f}] | "
                         f"{median(times['torch.nn']) * 1e3:.2f} |")  # fmt: skip
            print(lines[-1], flush=True)
    emit_report(lines, args.out)


if __name__ == "__main__":
    main()
