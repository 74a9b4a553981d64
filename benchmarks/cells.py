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

``--cell gru`` or ``rnn``: ``lstmkit.GRUCell`` / ``RNNCell`` against ``torch.nn.GRUCell`` / ``RNNCell``. With
``--weight-dropout P`` (DropConnect on W_hh, one mask a sequence) lstmkit's cell steps the sequence inside
``cell.holding_masks()``; the torch.nn cell is stepped the way AWD-LSTM's WeightDrop treats a layer: W_hh * mask made
once a sequence and handed to torch's cell operator at every step (``WeightDropCell`` below).

    python benchmarks/cells.py --dtypes float32 --weight-dropout 0.5
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from pathlib import Path

import torch
from _timing import bxh_shapes, emit_report, interleaved, machine_description, median, paired_ratios, quartiles

import lstmkit

DTYPES = {"float32": torch.float32, "float64": torch.float64}
CELLS = {"lstm": "LSTMCell", "gru": "GRUCell", "rnn": "RNNCell"}
OPERATORS = {"lstm": torch._VF.lstm_cell, "gru": torch._VF.gru_cell, "rnn": torch._VF.rnn_tanh_cell}


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


class WeightDropCell(torch.nn.Module):
    """DropConnect around a torch.nn cell as model code writes it: in training, W_hh * mask / (1 - p) made once per
    sequence (``holding_masks``) and passed with the other weights to torch's cell operator at every step."""

    def __init__(self, cell: torch.nn.Module, kind: str, p: float) -> None:
        super().__init__()
        self.cell, self.op, self.p, self.held = cell, OPERATORS[kind], p, {}

    @contextlib.contextmanager
    def holding_masks(self):
        keep = 1.0 - self.p
        w = self.cell.weight_hh
        self.held["w_hh"] = w * torch.empty_like(w).bernoulli_(keep).div_(keep) if self.training else w
        try:
            yield
        finally:
            self.held.clear()

    def forward(self, x, state):
        c = self.cell
        return self.op(x, state, c.weight_ih, self.held["w_hh"], c.bias_ih, c.bias_hh)


def cell_loop(cell: torch.nn.Module, x: torch.Tensor, hidden: int, train: bool, kind: str = "lstm"):
    """One call: the cell over x (T, B, I) from a zero state (inside its ``holding_masks()`` where it has one: one
    DropConnect mask for the sequence), and with ``train`` the backward of a loss on every h."""
    T, B = x.shape[0], x.shape[1]
    holding = getattr(cell, "holding_masks", contextlib.nullcontext)

    def run() -> None:
        state = (x.new_zeros(B, hidden),) * (2 if kind == "lstm" else 1)
        with torch.set_grad_enabled(train), holding():
            hs = []
            for t in range(T):
                out = cell(x[t], state if kind == "lstm" else state[0])
                state = out if kind == "lstm" else (out,)
                hs.append(state[0])
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
    parser.add_argument("--cell", choices=list(CELLS), default="lstm", help="the LSTM, GRU or (tanh) RNN cell")
    parser.add_argument("--weight-dropout", type=float, default=0.0, help="DropConnect on W_hh at this rate, one "
                        "mask a sequence, in both cells")  # fmt: skip
    args = parser.parse_args()
    if args.steps < 1 or args.rounds < 1 or args.threads < 1:
        parser.error("--steps, --rounds and --threads must be >= 1")
    if not 0 <= args.zoneout < 1:
        parser.error(f"--zoneout must be in [0, 1), got {args.zoneout}")
    if not 0 <= args.weight_dropout < 1:
        parser.error(f"--weight-dropout must be in [0, 1), got {args.weight_dropout}")
    if args.zoneout and args.cell != "lstm":
        parser.error("--zoneout compares with the LSTM cell's zoneout wrapper: use it with --cell lstm")
    torch.set_num_threads(args.threads)
    lines = [f"`{shlex.join(['python', *sys.argv])}`", "", machine_description(), "",
             "| dtype | B | H | mode | lstmkit / torch.nn (median [quartiles] over rounds) | torch.nn per step (µs) |",
             "|---|---:|---:|---|---|---:|"]  # fmt: skip
    for dtype_name in args.dtypes:
        dtype = DTYPES[dtype_name]
        for B, H in args.shapes:
            torch.manual_seed(0)
            native = getattr(torch.nn, CELLS[args.cell])(H, H, dtype=dtype)
            options = {"weight_dropout": args.weight_dropout, **({"zoneout": args.zoneout} if args.zoneout else {})}
            ours = getattr(lstmkit, CELLS[args.cell])(H, H, dtype=dtype, **options)
            ours.load_state_dict(native.state_dict())
            if args.zoneout:
                native = ZoneoutWrapper(native, args.zoneout)
            if args.weight_dropout:
                native = WeightDropCell(native, args.cell, args.weight_dropout)
            x = torch.randn(args.steps, B, H, dtype=dtype)
            for train in (False, True):
                native.train(train)
                ours.train(train)
                loops = {"torch.nn": cell_loop(native, x, H, train, args.cell),
                         "lstmkit": cell_loop(ours, x, H, train, args.cell)}  # fmt: skip
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
