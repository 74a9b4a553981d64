"""``reber``: next-symbol prediction on the embedded Reber grammar (Hochreiter & Schmidhuber 1997,
experiment 1; Fahlman 1991; Cleeremans et al. 1989).

A Reber string walks this graph from node 0, each way out taken with probability 1/2::

    B -> 0;  0: T -> 1, P -> 2;  1: S -> 1, X -> 3;  2: T -> 2, V -> 4;
    3: X -> 2, S -> 5;  4: P -> 3, V -> 5;  5: E

An embedded Reber string is B, then T or P, then a Reber string, then the same T or P again, then
E: the second-to-last symbol repeats the second, across the whole inner string. The network reads
one symbol a step and predicts the next (cross-entropy on the symbol that comes). A string is
solved, as in the original, when at every step the outputs of the possible next symbols are the
most active ones: with k possible symbols, the k largest outputs are exactly those.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.tasks.longrange.common import GeneratedData, GeneratedTask, LongRangeModel, one_hot
from lstmkit.tasks.registry import register_task
from lstmkit.train import Config, TrainConfig

SYMBOLS = "BTPSXVE"
# node: ((symbol, next node), (symbol, next node)); node 5 only emits E.
GRAPH: dict[int, tuple[tuple[str, int], ...]] = {
    0: (("T", 1), ("P", 2)),
    1: (("S", 1), ("X", 3)),
    2: (("T", 2), ("V", 4)),
    3: (("X", 2), ("S", 5)),
    4: (("P", 3), ("V", 5)),
}
_END = 5


def reber_string(rng: random.Random) -> tuple[str, list[str]]:
    """A Reber string and, for each of its symbols, the set of symbols that may follow it (as a
    string of the possible symbols; empty after the final E)."""
    out, legal, node = ["B"], [], 0
    while node != _END:
        legal.append("".join(s for s, _ in GRAPH[node]))
        symbol, node = GRAPH[node][rng.randrange(2)]
        out.append(symbol)
    legal += ["E", ""]  # node 5 leads to E, and nothing follows E
    return "".join([*out, "E"]), legal


def embedded_reber_string(rng: random.Random) -> tuple[str, list[str]]:
    """An embedded Reber string and the possible next symbols after each of its symbols."""
    outer = rng.choice("TP")
    inner, inner_legal = reber_string(rng)
    legal = ["TP", "B", *inner_legal[:-1], outer, "E", ""]  # the inner E is followed by the outer T/P
    return f"B{outer}{inner}{outer}E", legal


class ReberBatch(NamedTuple):
    x: Tensor  # (T, B, 7) one-hot of every symbol but the last; zero past each string's end
    y: Tensor  # (T, B) the next symbol, -1 past the end
    lengths: Tensor  # (B,) predictions per string: its length - 1
    legal: Tensor  # (T, B, 7) bool: the symbols that may come next


def reber_batch(n: int, generator: torch.Generator) -> ReberBatch:
    """``n`` embedded Reber strings, padded to the longest."""
    rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))
    strings = [embedded_reber_string(rng) for _ in range(n)]
    T = max(len(s) for s, _ in strings) - 1
    ids = torch.full((T + 1, n), -1, dtype=torch.int64)
    legal = torch.zeros(T, n, len(SYMBOLS), dtype=torch.bool)
    for b, (s, allowed) in enumerate(strings):
        ids[: len(s), b] = torch.tensor([SYMBOLS.index(c) for c in s])
        for t, symbols in enumerate(allowed[:-1]):
            legal[t, b, [SYMBOLS.index(c) for c in symbols]] = True
    lengths = torch.tensor([len(s) - 1 for s, _ in strings])
    inputs = ids[:-1].masked_fill(torch.arange(T).unsqueeze(1) >= lengths, -1)  # (T, B): the final E is no input
    x = one_hot(inputs.clamp(min=0), len(SYMBOLS)) * (inputs >= 0).unsqueeze(-1)
    return ReberBatch(x, ids[1:], lengths, legal)


def steps_right(logits: Tensor, legal: Tensor) -> Tensor:
    """(T, B) bool: the k possible next symbols have the k largest outputs (ties count as wrong)."""
    lowest_legal = logits.masked_fill(~legal, torch.inf).amin(-1)
    highest_illegal = logits.masked_fill(legal, -torch.inf).amax(-1)
    return lowest_legal > highest_illegal


@register_task("reber")
class Reber(GeneratedTask):
    """Predict the next symbol of embedded Reber strings; solved when every possible symbol is predicted."""

    summary = "embedded Reber grammar: predict the next symbol; solved when all possible next symbols rank first"
    loss_key = "nats_per_symbol"
    criterion = "possible next symbols ranked first at every step"
    unit = "symbol"

    def default_config(self) -> Config:
        # See docs/results.md. The strings are short (9 to ~30 symbols); a small LSTM suffices.
        return Config(
            model=LongRangeModel(hidden_size=32, num_layers=1, dropout=0.0, forget_bias=3.0),  # as the other tasks
            data=GeneratedData(batch_size=32),
            train=TrainConfig(
                epochs=100,  # bounded by max_steps
                max_steps=3000,
                max_minutes=9.0,
                lr=3e-3,
                weight_decay=0.0,  # fresh data: nothing to regularise
                warmup_steps=100,
                patience=1000,  # off: the long-range step is learnt late, after a plateau
                stateful=False,
                log_every=50,
            ),
        )

    def smoke_config(self, workdir: Path) -> Config:
        return Config(
            model=LongRangeModel(hidden_size=8, num_layers=1, dropout=0.0),
            data=GeneratedData(batch_size=8, train_batches=3, val_size=16, test_size=16),
            train=TrainConfig(epochs=2, max_steps=6, warmup_steps=1, stateful=False, progress=False,
                              tensorboard=False, log_every=2),
        )  # fmt: skip

    def describe(self, data: GeneratedData) -> str:
        return "generated embedded Reber strings (validation and test fixed by data.seed)"

    def sizes(self, data: GeneratedData) -> tuple[int, int]:
        return len(SYMBOLS), len(SYMBOLS)

    def generate(self, data: GeneratedData, n: int, generator: torch.Generator) -> ReberBatch:
        return reber_batch(n, generator)

    def loss(self, output: Tensor, batch: ReberBatch) -> tuple[Tensor, int]:
        loss = F.cross_entropy(output.flatten(0, 1), batch.y.flatten(), ignore_index=-1)  # (T*B, 7) vs (T*B,)
        return loss, int((batch.y >= 0).sum())

    def per_sequence(self, output: Tensor, batch: ReberBatch) -> dict[str, Tensor]:
        right = steps_right(output, batch.legal)  # (T, B)
        valid = batch.y >= 0
        B = torch.arange(batch.y.shape[1])
        return {
            "success": (right | ~valid).all(0),
            # The long-range step: after the inner E, predict the T or P that the second symbol was.
            "long_range_accuracy": right[batch.lengths - 2, B],
        }

    def report_split(self, m: dict) -> str:
        return super().report_split(m) + f"; the long-range step right in {100 * m['long_range_accuracy']:.1f}%"
