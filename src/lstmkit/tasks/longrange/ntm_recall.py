"""``ntm-recall``: Graves, Wayne & Danihelka's (2014) associative recall, where the network must find an item by
its content and answer with the one stored after it.

An item is ``data.item_length`` (3) random vectors of ``data.width`` (6) bits. A sequence shows k items, each
after a delimiter step (channel ``width``); then a query, a copy of one of the first k - 1 items, between two query
delimiters (channel ``width + 1``); then, with no input, the network must output the item that followed the query
in the list. Training and validation draw k uniformly from ``data.min_items`` .. ``data.max_items`` (2..6, as
Graves et al.); the test scores each k of ``data.test_items`` on its own, up to 12 (Graves et al.'s Fig. 11: their
NTM generalised to 15 items, their LSTM did not beyond 6). Loss and scores: :mod:`.bits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lstmkit.tasks.longrange.bits import BitsBatch, BitsData, BitsTask, MemoryTaskModel, train_config
from lstmkit.tasks.registry import register_task
from lstmkit.train import Config, TrainConfig


def recall_batch(items: Tensor, width: int, item_length: int, generator: torch.Generator) -> BitsBatch:
    """Associative-recall sequences of ``items`` (B,) items each (>= 2), padded to the longest: inputs
    (T, B, width + 2) with T = (item_length + 1) max(k) + 2 item_length + 2; the answer in the last item_length
    steps of each sequence."""
    if items.ndim != 1 or items.numel() < 1 or bool((items < 2).any()) or width < 1 or item_length < 1:
        raise ValueError(f"need items (B,) >= 2, width >= 1 and item_length >= 1; got {items.tolist()}, {width} "
                         f"and {item_length}")  # fmt: skip
    B, k_max, n = items.numel(), int(items.max()), item_length
    lengths = (n + 1) * items + 2 * n + 2  # k items with their delimiters, the query between two, the answer
    T = int(lengths.max())
    bits = torch.randint(0, 2, (k_max, n, B, width), generator=generator).float()  # (k, n, B, width)
    query = (torch.rand(B, generator=generator) * (items - 1)).long()  # (B,) uniform in 0 .. k - 2
    x = torch.zeros(T, B, width + 2)
    y = torch.zeros(T, B, width)
    mask = torch.zeros(T, B, dtype=torch.bool)
    for b in range(B):
        k, q = int(items[b]), int(query[b])
        for i in range(k):
            x[(n + 1) * i, b, width] = 1.0  # the item delimiter
            x[(n + 1) * i + 1 : (n + 1) * (i + 1), b, :width] = bits[i, :, b]
        start = (n + 1) * k
        x[start, b, width + 1] = 1.0  # the query delimiters, either side of the query
        x[start + 1 : start + 1 + n, b, :width] = bits[q, :, b]
        x[start + 1 + n, b, width + 1] = 1.0
        answer = start + n + 2
        y[answer : answer + n, b] = bits[q + 1, :, b]
        mask[answer : answer + n, b] = True
    return BitsBatch(x, y, mask, items.clone(), lengths)


@dataclass(frozen=True)
class NTMRecallData(BitsData):
    """``BitsData`` and the recall's sizes."""

    width: int = 6  # bits per vector (Graves et al.)
    item_length: int = 3  # vectors per item (Graves et al.)
    min_items: int = 2  # training and validation items k: uniform in min_items..max_items (Graves: 2..6)
    max_items: int = 6  # the most trained on (Graves et al.); the test goes beyond it
    test_items: tuple[int, ...] = (3, 6, 9, 12)  # each scored on its own; 9 and 12 were never trained on

    def _validate(self) -> None:
        super()._validate()
        for name in ("width", "item_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if not 2 <= self.min_items <= self.max_items:
            raise ValueError(f"need 2 <= data.min_items <= data.max_items, got {self.min_items} and "
                             f"{self.max_items}")  # fmt: skip
        if not self.test_items or any(k < 2 for k in self.test_items):
            raise ValueError(f"data.test_items must be item counts >= 2, got {list(self.test_items)}")


@register_task("ntm-recall")
class NTMRecall(BitsTask):
    """Find an item by its content and give the next: an LSTM with an external memory against a plain one."""

    summary = ("associative recall (Graves et al. 2014): give the item after the queried one; an LSTM with an "
               "external memory (NTM) vs a plain LSTM; trained on 2-6 items, tested up to 12")  # fmt: skip
    size_name = "items"

    def default_config(self) -> Config:
        # The copy task's NTM and optimiser (Collier & Beel 2018). Seed 0 recalled every test sequence (up to 12
        # items) after 8,000 steps, its validation loss below 0.02 nats per bit from step 3,000 (docs/results.md).
        return Config(model=MemoryTaskModel(), data=NTMRecallData(), train=train_config(8000, 45.0))

    def smoke_config(self, workdir: Path) -> Config:
        return Config(
            model=MemoryTaskModel(hidden_size=8, memory_slots=8, memory_width=4),
            data=NTMRecallData(width=3, item_length=2, max_items=3, test_items=(2, 4), batch_size=4,
                               train_batches=3, val_size=8, test_size=8),
            train=TrainConfig(epochs=2, max_steps=6, warmup_steps=1, stateful=False, progress=False,
                              tensorboard=False, log_every=2),
        )  # fmt: skip

    def describe(self, data: NTMRecallData) -> str:
        return (
            f"generated associative-recall sequences: {data.min_items}-{data.max_items} items of {data.item_length} "
            f"vectors of {data.width} random bits, tested at {', '.join(map(str, data.test_items))} items "
            "(validation and test fixed by data.seed)"
        )

    def sizes(self, data: NTMRecallData) -> tuple[int, int]:
        return data.width + 2, data.width

    def size_range(self, data: NTMRecallData) -> tuple[int, int]:
        return data.min_items, data.max_items

    def test_sizes(self, data: NTMRecallData) -> tuple[int, ...]:
        return data.test_items

    def batch(self, sizes: Tensor, data: NTMRecallData, generator: torch.Generator) -> BitsBatch:
        return recall_batch(sizes, data.width, data.item_length, generator)
