"""The charlm model in eval, lstmkit against the same weights in torch.nn modules (issue 17's target).

charlm's default shape: an 84-symbol embedding of 64, one LSTM layer of 256, a linear head back to
84 symbols; one sequence of 256 tokens at batch 1 under ``torch.inference_mode``, one thread.
``lstmkit`` is Embedding + ``lstmkit.LSTM`` + Linear; ``torch.nn`` is Embedding + ``torch.nn.LSTM`` +
Linear holding the same state dict. Interleaved rounds; the ratio is the median over rounds of
lstmkit's time / torch.nn's (below 1: lstmkit is faster).

    python benchmarks/charlm_eval.py
"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch
from _timing import interleaved, machine_description, median, paired_ratios, quartiles
from torch import nn

import lstmkit

V, E, H, T = 84, 64, 256, 256


class LM(nn.Module):
    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.embedding, self.rnn, self.head = nn.Embedding(V, E), rnn, nn.Linear(H, V)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # ids (T, B) -> logits (T, B, V)
        out, _ = self.rnn(self.embedding(ids))
        return self.head(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ours = LM(lstmkit.LSTM(E, H)).eval()
    native = LM(nn.LSTM(E, H)).eval()
    native.load_state_dict(ours.state_dict())
    ids = torch.randint(0, V, (T, 1))
    with torch.inference_mode():
        torch.testing.assert_close(ours(ids), native(ids), atol=1e-4, rtol=0)  # the same model

    def run(m: nn.Module):
        def go() -> None:
            with torch.inference_mode():
                m(ids)

        return go

    fns = {"lstmkit": run(ours), "torch.nn": run(native)}
    t = interleaved(fns, args.rounds, warmup=1, min_time=0.05)
    ratios = paired_ratios(t["lstmkit"], t["torch.nn"])
    lo, hi = quartiles(ratios)
    print(f"Command: `python {shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])}`\n")
    print(f"Machine: {machine_description()}.\n")
    print("| model (T=256, B=1, one thread) | ms | x torch.nn |")
    print("|---|---:|---:|")
    print(f"| lstmkit | {1e3 * median(t['lstmkit']):.2f} | {median(ratios):.2f} ({lo:.2f}-{hi:.2f}) |")
    print(f"| torch.nn | {1e3 * median(t['torch.nn']):.2f} | 1.00 |")


if __name__ == "__main__":
    main()
