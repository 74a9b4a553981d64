"""What torch.compile gains or loses on a small word-level LM, forward + backward, on the CPU.

The model is PyTorch's word-language-model example (Embedding -> 2-layer lstmkit.LSTM -> Linear,
its default sizes: 200 units, bptt 35, batch 20, dropout 0.2) with a 10,000-word vocabulary. Eager
and ``torch.compile(model)`` (Inductor, default mode) are timed interleaved: each round runs
``--steps`` training steps (zero grads, forward, cross-entropy, backward) of each, the order
alternating, so load that comes and goes hits both. Reported: the median step time of each over
the rounds, the median of the per-round ratio compiled / eager with its quartiles, the first
compiled call (compilation) and the 1-minute load average before and after.

    python benchmarks/compile.py                  # = --rounds 15 --steps 5 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

import lstmkit


class WordLM(nn.Module):
    def __init__(self, vocab: int, size: int, layers: int, dropout: float, impl: str) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.emb = nn.Embedding(vocab, size)
        self.rnn = lstmkit.LSTM(size, size, layers, dropout=dropout, impl=impl)
        self.out = nn.Linear(size, vocab)

    def forward(self, x):
        y, _ = self.rnn(self.drop(self.emb(x)))  # (T, B, H)
        return self.out(self.drop(y))  # (T, B, V)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--vocab", type=int, default=10_000)
    p.add_argument("--size", type=int, default=200)
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--impl", default="auto")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    load0 = os.getloadavg()[0]
    model = WordLM(a.vocab, a.size, 2, 0.2, a.impl).train()
    compiled = torch.compile(model)
    x = torch.randint(0, a.vocab, (a.bptt, a.batch))
    target = torch.randint(0, a.vocab, (a.bptt * a.batch,))
    loss_fn = nn.CrossEntropyLoss()

    def step(m) -> None:
        model.zero_grad(set_to_none=True)
        loss_fn(m(x).reshape(-1, a.vocab), target).backward()

    t = time.perf_counter()
    step(compiled)
    first = time.perf_counter() - t
    step(model)
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    ratios = []
    for r in range(a.rounds):
        order = [("eager", model), ("compiled", compiled)]
        for name, m in order if r % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            for _ in range(a.steps):
                step(m)
            times[name].append((time.perf_counter() - t) / a.steps * 1e3)
        ratios.append(times["compiled"][-1] / times["eager"][-1])
    q = statistics.quantiles(ratios, n=4)
    print(f"word LM V={a.vocab} E=H={a.size} 2 layers, T={a.bptt} B={a.batch}, impl={a.impl}, "
          f"{a.threads} thread(s), {a.rounds} rounds x {a.steps} steps, torch {torch.__version__}")
    for name, ts in times.items():
        print(f"  {name:9s} train step median {statistics.median(ts):7.2f} ms")
    print(f"  compiled / eager: {statistics.median(ratios):.3f} [{q[0]:.3f}, {q[2]:.3f}]")
    print(f"  first compiled step (compilation): {first:.1f} s")
    print(f"  1-minute load average: {load0:.1f} before, {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
