"""One training step of Graves's handwriting network (forward and backward through the mixture NLL) at
``handwriting-gen``'s default sizes: 3 LSTM layers of 200, a window of 10 Gaussians over texts of ``--text`` of 75
symbols, 20 mixtures, batches of 16 lines of about ``--points`` pen points (the task's mean is 253; lengths drawn
within 15% of it and padded, as its length-bucketed batches are). Random weights and data: the timing does not
depend on the values.

Candidates, the same weights each:

- ``session 40``: the first layer stepped through autograd (``model.window_impl = "reference"``) and the mixture
  head on ``torch.nn.Linear``, as the task ran before session 41 (the baseline of every ratio);
- ``fused window``: the first layer as one Function with its hand-written BPTT in C++ (``window_impl = "fused"``),
  the head still on ``torch.nn.Linear``;
- ``fused window + lstmkit Linear``: the default since session 41: also the head on ``lstmkit.nn.Linear`` (the
  extension's panels on AMD's AVX-512 CPUs, ``torch.nn.Linear``'s product elsewhere).

One thread (the task's ``train.threads``); the candidates interleaved (``_timing.interleaved``), each reported as
the median over rounds of its time over the baseline's in the same round.

    python benchmarks/handwriting_train_step.py               # about 2 minutes
"""

from __future__ import annotations

import argparse
import copy
import dataclasses

import torch
from _timing import interleaved, ratio_table

from lstmkit.models.handwriting import HandwritingModel, HandwritingNet, mixture_nll

BASELINE = "session 40"


def models() -> dict[str, HandwritingNet]:
    """The three candidates' models, one set of weights."""
    torch.manual_seed(0)
    fused = HandwritingNet(HandwritingModel(hidden_size=200, num_layers=3, dropout=0.0, alphabet_size=75))
    torch_head = copy.deepcopy(fused)
    plain = torch.nn.Linear(torch_head.head.linear.in_features, torch_head.head.linear.out_features)
    plain.load_state_dict(torch_head.head.linear.state_dict())
    torch_head.head.linear = plain
    reference = copy.deepcopy(torch_head)
    reference.config = dataclasses.replace(reference.config, window_impl="reference")
    return {BASELINE: reference, "fused window": torch_head, "fused window + lstmkit Linear": fused}


def batch(points: int, text: int, B: int = 16) -> tuple[torch.Tensor, ...]:
    """(inputs, targets, lengths, mask, text, text_lengths) like the task's collate."""
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(int(points * 0.85), int(points * 1.15) + 1, (B,), generator=g)
    T = int(lengths.max())
    y = 0.3 * torch.randn(T, B, 3, generator=g)
    y[..., 2] = (torch.rand(T, B, generator=g) < 0.08).float()
    x = torch.cat([torch.tensor([[[0.0, 0.0, 1.0]]]).expand(1, B, 3), y[:-1]])
    mask = torch.arange(T).unsqueeze(1) < lengths
    text_lengths = torch.randint(max(1, int(text * 0.7)), text + 1, (B,), generator=g)
    ids = torch.randint(0, 75, (text, B), generator=g)
    return x, y, lengths, mask, ids, text_lengths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=253, help="mean pen points a line (the task's data: 253)")
    parser.add_argument("--text", type=int, default=24, help="the longest text's symbols in a batch")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    x, y, lengths, mask, ids, text_lengths = batch(args.points, args.text)
    points = int(lengths.sum())

    def step(model: HandwritingNet):
        def run() -> None:
            model.zero_grad(set_to_none=True)
            params, _ = model(x, ids, text_lengths, lengths=lengths)
            (mixture_nll(params, y, mask).sum() / points).backward()

        return run

    times = interleaved({name: step(m) for name, m in models().items()}, args.rounds)
    note = f"a training step, 16 lines of {args.points} points on average, texts of up to {args.text}; one thread"
    for line in ratio_table(times, BASELINE, note, digits=1):
        print(line)


if __name__ == "__main__":
    main()
