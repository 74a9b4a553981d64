"""What ``weight_dropout`` (DropConnect on W_hh) costs a training step, against the way it is written today.

One training step (forward, a loss reading every output, backward) of a one-layer LSTM at three shapes, the
candidates interleaved (``_timing.interleaved``), each the median over rounds of its time over native
``torch.nn.LSTM``'s (no weight drop) in the same round:

- ``torch.nn.LSTM``: the baseline, no DropConnect;
- ``torch.nn.LSTM + weight drop``: AWD-LSTM's weight drop as users write it on torch.nn (Merity et al.'s
  ``WeightDrop``, here as ``torch.func.functional_call`` with ``F.dropout(weight_hh_l0, p)``), p = 0.5;
- ``lstmkit.LSTM``: no DropConnect;
- ``lstmkit.LSTM weight_dropout=0.5``: the layer's own key.

Then the mask alone (``--masks``): forward and backward of W_hh * mask for the three W_hh shapes, the mask drawn by
``F.dropout`` (``bernoulli_``) and by lstmkit's ``weight_drop_mask`` (``torch.rand(...) < 1 - p``).

    python benchmarks/weight_dropout.py            # about 2 minutes, one thread
    python benchmarks/weight_dropout.py --masks    # seconds
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _timing import interleaved, ratio_table

import lstmkit
from lstmkit.nn._base import weight_drop_mask

SHAPES = {"S2 (T=100, B=32, I=128, H=256)": (100, 32, 128, 256), "S1 (T=100, B=64, I=512, H=512)": (100, 64, 512, 512),
          "wordlm-like (T=35, B=32, I=128, H=256)": (35, 32, 128, 256)}  # fmt: skip
P = 0.5


def step(layer: torch.nn.Module, x: torch.Tensor, dy: torch.Tensor, weight_drop: bool = False):
    params = dict(layer.named_parameters())

    def run() -> None:
        layer.zero_grad(set_to_none=True)
        if weight_drop:
            masked = dict(params, weight_hh_l0=F.dropout(params["weight_hh_l0"], P, training=True))
            y, _ = torch.func.functional_call(layer, masked, (x,))
        else:
            y, _ = layer(x)
        y.backward(dy)

    return run


def masks(rounds: int, shapes: dict[str, tuple[int, int, int, int]]) -> None:
    for name, (_, _, _, H) in shapes.items():
        w = torch.randn(4 * H, H, requires_grad=True)
        g = torch.randn(4 * H, H)

        def by_dropout(w=w, g=g) -> None:
            F.dropout(w, P, training=True).backward(g)

        def by_rand(w=w, g=g) -> None:
            (w * weight_drop_mask(w, P)).backward(g)

        times = interleaved({"F.dropout": by_dropout, "weight_drop_mask": by_rand}, rounds)
        note = f"{name}: W_hh ({4 * H}, {H}) masked, forward and backward, one thread"
        for line in ratio_table(times, "F.dropout", note, digits=3):
            print(line)
        print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--tiny", action="store_true", help="one tiny shape (the test's smoke run)")
    parser.add_argument("--masks", action="store_true", help="the mask alone: F.dropout against weight_drop_mask")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    shapes = {"tiny (T=5, B=2, I=3, H=4)": (5, 2, 3, 4)} if args.tiny else SHAPES
    if args.masks:
        masks(args.rounds, shapes)
        return
    for name, (T, B, I, H) in shapes.items():
        torch.manual_seed(0)
        native = torch.nn.LSTM(I, H).train()
        ours = lstmkit.LSTM(I, H).train()
        dropped = lstmkit.LSTM(I, H, weight_dropout=P).train()
        for m in (ours, dropped):
            m.load_state_dict(native.state_dict())
        x = torch.randn(T, B, I).requires_grad_()
        dy = torch.randn(T, B, H)
        candidates = {"torch.nn.LSTM": step(native, x, dy), "torch.nn.LSTM + weight drop": step(native, x, dy, True),
                      "lstmkit.LSTM": step(ours, x, dy), f"lstmkit.LSTM weight_dropout={P}": step(dropped, x, dy)}
        times = interleaved(candidates, args.rounds)
        for line in ratio_table(times, "torch.nn.LSTM", f"{name}: a training step, one thread", digits=2):
            print(line)
        print()


if __name__ == "__main__":
    main()
