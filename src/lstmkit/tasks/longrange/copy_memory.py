"""``copy``: the copy-memory task (Hochreiter & Schmidhuber 1997, experiment 2's long-delay
variants; in the form of Arjovsky et al. 2016).

A sequence of T + 2K steps: K symbols drawn from n data symbols, then T - 1 blanks, a delimiter,
and K more blanks. The target is blank for the first T + K steps and then the K symbols, in order:
the network must hold K symbols across a delay of T steps. The loss is the cross-entropy over all
T + 2K steps. A memoryless predictor outputs blank until the delimiter and then guesses uniformly,
scoring K log(n) / (T + 2K) nats per step: the baseline. A sequence is solved when all K symbols
are copied right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.tasks.longrange.common import GeneratedData, GeneratedTask, LongRangeModel, one_hot
from lstmkit.tasks.registry import register_task
from lstmkit.train import Config, TrainConfig

BLANK = 0  # data symbols are 1..n; the delimiter is n + 1 (an input only: never a target)


class CopyBatch(NamedTuple):
    x: Tensor  # (T + 2K, B, n + 2) one-hot: blank, n data symbols, delimiter
    y: Tensor  # (T + 2K, B) targets in 0..n
    lengths: Tensor | None = None  # every sequence has T + 2K steps


def copy_batch(delay: int, copy_length: int, n_symbols: int, n: int, generator: torch.Generator) -> CopyBatch:
    """``n`` copy-memory sequences: ``copy_length`` symbols in 1..``n_symbols``, then a delay of
    ``delay`` steps ending in the delimiter, then ``copy_length`` steps in which to recall them."""
    if delay < 1 or copy_length < 1 or n_symbols < 2:
        raise ValueError(f"need delay >= 1, copy_length >= 1, n_symbols >= 2; got {delay}, {copy_length}, {n_symbols}")
    K, T = copy_length, delay
    data = torch.randint(1, n_symbols + 1, (K, n), generator=generator)  # (K, B)
    inputs = torch.full((T + 2 * K, n), BLANK, dtype=torch.int64)
    inputs[:K] = data
    inputs[K + T - 1] = n_symbols + 1  # the delimiter: recall now
    targets = torch.full((T + 2 * K, n), BLANK, dtype=torch.int64)
    targets[T + K :] = data
    return CopyBatch(one_hot(inputs, n_symbols + 2), targets)


@dataclass(frozen=True)
class CopyData(GeneratedData):
    """``GeneratedData`` and the task's sizes."""

    length: int = 100  # T: the delay between the last symbol shown and the first recalled
    copy_length: int = 10  # K: symbols to remember (Arjovsky et al. 2016)
    n_symbols: int = 8  # data symbols (Arjovsky et al. 2016): 3 bits each, 30 bits to hold

    def _validate(self) -> None:
        super()._validate()
        for name, low in (("length", 1), ("copy_length", 1), ("n_symbols", 2)):
            if getattr(self, name) < low:
                raise ValueError(f"data.{name} must be >= {low}, got {getattr(self, name)}")


@register_task("copy")
class Copy(GeneratedTask):
    """Recall K symbols after a delay of T blank steps; cross-entropy against the memoryless baseline."""

    summary = "copy memory: recall 10 symbols after a delay of T steps (CE vs the memoryless baseline); data.length=T"
    loss_key = "nats_per_symbol"
    criterion = "all K symbols recalled"
    unit = "symbol"

    def default_config(self) -> Config:
        # See docs/results.md for where the LSTM succeeds and fails as T grows. 30 bits to hold: 128 units.
        # With torch's forget-gate init the LSTM recalled 21% of the symbols after 3000 steps at T = 10;
        # with forget bias 3, 94% after 6000.
        return Config(
            model=LongRangeModel(hidden_size=128, num_layers=1, dropout=0.0, forget_bias=3.0),
            data=CopyData(batch_size=64),
            train=TrainConfig(
                epochs=100,  # bounded by max_steps
                max_steps=6000,
                max_minutes=10.0,  # a guard: at T = 100, 6000 steps take about 15 minutes on one thread
                lr=3e-3,
                weight_decay=0.0,  # fresh data: nothing to regularise
                warmup_steps=100,
                patience=1000,  # off: the loss sits on the baseline for long before the memory forms
                stateful=False,
                log_every=50,
            ),
        )

    def smoke_config(self, workdir: Path) -> Config:
        return Config(
            model=LongRangeModel(hidden_size=8, num_layers=1, dropout=0.0),
            data=CopyData(length=5, copy_length=3, n_symbols=4, batch_size=8, train_batches=3, val_size=16,
                          test_size=16),
            train=TrainConfig(epochs=2, max_steps=6, warmup_steps=1, stateful=False, progress=False,
                              tensorboard=False, log_every=2),
        )  # fmt: skip

    def describe(self, data: CopyData) -> str:
        return (
            f"generated copy-memory sequences: {data.copy_length} of {data.n_symbols} symbols, delay T = "
            f"{data.length} (validation and test fixed by data.seed)"
        )

    def sizes(self, data: CopyData) -> tuple[int, int]:
        return data.n_symbols + 2, data.n_symbols + 1

    def generate(self, data: CopyData, n: int, generator: torch.Generator) -> CopyBatch:
        return copy_batch(data.length, data.copy_length, data.n_symbols, n, generator)

    def loss(self, output: Tensor, batch: CopyBatch) -> tuple[Tensor, int]:
        return F.cross_entropy(output.flatten(0, 1), batch.y.flatten()), batch.y.numel()  # (T'*B, n+1) vs (T'*B,)

    def per_sequence(self, output: Tensor, batch: CopyBatch) -> dict[str, Tensor]:
        delimiter = batch.x.shape[-1] - 1
        start = int(batch.x[:, 0, delimiter].argmax()) + 1  # the recall phase: the K steps after the delimiter
        right = output[start:].argmax(-1) == batch.y[start:]  # (K, B)
        return {"success": right.all(0), "symbols_recalled": right.double().mean(0)}

    def baselines(self, data: CopyData) -> dict[str, float]:
        K, T = data.copy_length, data.length
        return {"baseline_nats_per_symbol": K * math.log(data.n_symbols) / (T + 2 * K)}

    def report_split(self, m: dict) -> str:
        return super().report_split(m) + f"; {100 * m['symbols_recalled']:.1f}% of the symbols recalled"

    def diagnostic_batch(self, config: Config, length: int, n: int, generator: torch.Generator) -> CopyBatch:
        data = config.data
        return copy_batch(length, data.copy_length, data.n_symbols, n, generator)

    def last_step_loss(self, last_output: Tensor, batch: CopyBatch) -> Tensor:
        return F.cross_entropy(last_output, batch.y[-1])
