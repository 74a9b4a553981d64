"""``lstmkit.nn.Linear`` against ``torch.nn.Linear``: the products alone by row count, and a ``wordlm`` training step.

Products (``--products``, the default): ``F.linear`` and ``lstmkit.nn.linear`` forward and backward (the input and
weight gradients) of (M, I) x (I, O) for M from 1 to 1,024 at three shapes: ``wordlm``'s softmax layer (128 ->
10,000), ``handwriting-gen``'s mixture head (600 -> 121) and a square 200 x 200. The lstmkit product here is the
extension's panels at every M (its rule forced to "panels", ``PANEL_MIN_ROWS`` ignored), so that the table shows
where packing W pays: the row count ``lstmkit.nn.linear`` starts using them from.

Model (``--wordlm``): one training step (forward, the cross-entropy over every word, backward) of ``wordlm``'s
default model (an LSTM of 256 over 128-wide tied embeddings of 10,000 words, batches of 32 x 35 tokens) with its
head on ``torch.nn.Linear`` (as before session 41) and on ``lstmkit.nn.Linear`` (the default now).

One thread; candidates interleaved (``_timing.interleaved``), each the median over rounds of its time over the
baseline's in the same round.

    python benchmarks/linear.py               # the products, about 2 minutes
    python benchmarks/linear.py --wordlm      # the training step, about a minute
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _timing import interleaved, machine_description, median, paired_ratios, quartiles, ratio_table

from lstmkit.models.sequence import SequenceModel
from lstmkit.nn import Linear, _cpp
from lstmkit.train.config import ModelConfig

SHAPES = {"wordlm softmax 128 -> 10,000": (128, 10_000), "handwriting head 600 -> 121": (600, 121),
          "square 200 -> 200": (200, 200)}  # fmt: skip
ROWS = (1, 4, 16, 32, 64, 128, 256, 1024)


def products(rounds: int) -> None:
    import sys

    print(f"# {' '.join(['python', *sys.argv])}")
    print(f"# {machine_description()}")
    print("# forward + backward (dx, dW, db), one thread; time of the panels over F.linear's [IQR]")
    print("| M | " + " | ".join(SHAPES) + " |")
    print("|---:|" + "---|" * len(SHAPES))
    ext = _cpp._ext()
    for M in ROWS:
        cells = []
        for I, O in SHAPES.values():
            g = torch.Generator().manual_seed(M)
            x = torch.randn(M, I, generator=g).requires_grad_()
            w = torch.randn(O, I, generator=g).requires_grad_()
            b = torch.randn(O, generator=g).requires_grad_()
            dy = torch.randn(M, O, generator=g)

            def run(fn, x=x, w=w, b=b, dy=dy):
                def call() -> None:
                    fn(x, w, b).backward(dy)

                return call

            def panels(x, w, b):
                return _cpp._WholeLinear.apply(x, w, b)

            times = interleaved({"F.linear": run(F.linear), "panels": run(panels)}, rounds)
            ratios = paired_ratios(times["panels"], times["F.linear"])
            lo, hi = quartiles(ratios)
            cells.append(f"{median(ratios):.2f} [{lo:.2f}, {hi:.2f}] ({1e3 * median(times['F.linear']):.3f} ms)")
        print(f"| {M} | " + " | ".join(cells) + " |")
    print(f"# lstmkit.nn.linear uses the panels from PANEL_MIN_ROWS = {_cpp.PANEL_MIN_ROWS} rows where the rule picks "
          f"them (here: {ext.whole_gemm()})")  # fmt: skip


def wordlm(rounds: int) -> None:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=10_000, hidden_size=256, num_layers=1, embedding_dim=128, dropout=0.5,
                         tie_weights=True)  # fmt: skip
    ours = SequenceModel(config)
    theirs = SequenceModel(config)
    theirs.load_state_dict(ours.state_dict())
    for m in (theirs,):  # the head and its projection back on torch.nn.Linear, the weights still tied
        head = torch.nn.Linear(m.head.in_features, m.head.out_features)
        head.bias = m.head.bias
        head.weight = m.embedding.weight
        m.head = head
        proj = torch.nn.Linear(m.proj.in_features, m.proj.out_features, bias=False)
        proj.weight = m.proj.weight
        m.proj = proj
    assert isinstance(ours.head, Linear) and not isinstance(theirs.head, Linear)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 10_000, (35, 32), generator=g)
    y = torch.randint(0, 10_000, (35, 32), generator=g)

    def step(m: SequenceModel):
        def run() -> None:
            m.zero_grad(set_to_none=True)
            logits, _ = m(x)
            F.cross_entropy(logits.flatten(0, 1), y.flatten()).backward()

        return run

    times = interleaved({"torch.nn.Linear head": step(theirs), "lstmkit.nn.Linear head": step(ours)}, rounds)
    note = "wordlm's default model, a training step on 32 x 35 tokens, one thread"
    for line in ratio_table(times, "torch.nn.Linear head", note, digits=1):
        print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wordlm", action="store_true", help="the wordlm training step instead of the products")
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.wordlm:
        wordlm(args.rounds)
    else:
        products(args.rounds)


if __name__ == "__main__":
    main()
