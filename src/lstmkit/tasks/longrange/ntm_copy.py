"""``ntm-copy``: Graves, Wayne & Danihelka's (2014) copy task, where an LSTM with an external memory (a Neural
Turing Machine, :mod:`lstmkit.models.memory`) learns an algorithm that a plain LSTM does not.

A sequence shows L random vectors of ``data.width`` bits, then a delimiter on its own channel; then, with no
input, the network must write the L vectors back in order. Training lengths are uniform in ``data.min_length``
.. ``data.max_length`` (1..20, as Graves et al.); validation uses the same range and picks the best weights. The
test scores each length in ``data.test_lengths`` separately, most of them longer than any trained on: a copy
learnt as an algorithm (write each vector to the next slot, then walk the slots back) holds at any length the
memory has slots for; one learnt as a fixed-size code degrades past the trained lengths (Graves et al.'s
Figures 4-5: their LSTM failed beyond 20, their NTM copied 120).

Loss: binary cross-entropy in nats per target bit (a memoryless guess scores log 2). Scores per sequence, as
Graves et al. report them: ``bit_errors`` (bits wrong after rounding the outputs), ``cost_bits`` (the
cross-entropy summed over the sequence's target bits, in bits) and ``success`` (every bit right).
``model.kind=lstm`` trains the baseline: a plain LSTM with the NTM's parameter budget (``model.equal_params``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.models.memory import MemoryLSTM, MemoryModel, memory_param_count
from lstmkit.tasks.longrange.common import (
    GeneratedData,
    GeneratedTask,
    LongRangeModel,
    build_model,
    model_param_count,
)
from lstmkit.tasks.registry import register_task
from lstmkit.train import Config, ModelConfig, TrainConfig
from lstmkit.train.seed import generator_for

_EVAL_CHUNK = 250  # sequences per evaluation batch: bounds memory at L = 120 (B x N x W per step is small)


class BitsBatch(NamedTuple):
    x: Tensor  # (T, B, width + 1): the vectors, then the delimiter on its own channel; zeros while recalling
    y: Tensor  # (T, B, width) the vectors to recall, at the steps where mask is true (zeros elsewhere)
    mask: Tensor  # (T, B) bool: the L recall steps of each sequence
    copy_lengths: Tensor  # (B,) L of each sequence
    lengths: Tensor  # (B,) 2L + 1 valid steps; T = 2 max(L) + 1


def copy_bits_batch(lengths: Tensor, width: int, generator: torch.Generator) -> BitsBatch:
    """Copy sequences of ``lengths`` (B,) random ``width``-bit vectors, padded to the longest."""
    if lengths.ndim != 1 or lengths.numel() < 1 or bool((lengths < 1).any()) or width < 1:
        raise ValueError(f"need lengths (B,) >= 1 and width >= 1; got {lengths.tolist()} and {width}")
    B, L_max = lengths.numel(), int(lengths.max())
    T = 2 * L_max + 1
    bits = torch.randint(0, 2, (L_max, B, width), generator=generator).float()  # (L_max, B, width)
    steps = torch.arange(T).unsqueeze(1)  # (T, 1)
    shown = steps < lengths  # (T, B): the vectors' steps
    x = torch.zeros(T, B, width + 1)
    x[:L_max, :, :width] = bits * shown[:L_max].unsqueeze(-1)
    x[lengths, torch.arange(B), width] = 1.0  # the delimiter at step L
    mask = (steps > lengths) & (steps <= 2 * lengths)  # (T, B): steps L + 1 .. 2L
    y = torch.zeros(T, B, width)
    for b in range(B):  # the recall steps of each sequence take its own L vectors
        L = int(lengths[b])
        y[L + 1 : 2 * L + 1, b] = bits[:L, b]
    return BitsBatch(x, y, mask, lengths.clone(), 2 * lengths + 1)


@dataclass(frozen=True)
class NTMCopyModel(MemoryModel, LongRangeModel):
    """``MemoryModel`` (``kind``: ntm or lstm) and ``LongRangeModel``'s budgets: with ``kind = "lstm"`` and
    ``equal_params`` the LSTM gets the largest hidden size within the NTM's parameter count."""

    hidden_size: int = 100  # the controller's units (Collier & Beel 2018); the LSTM baseline's are sized by budget
    num_layers: int = 1  # one controller layer (Graves et al.); the memory, not depth, holds the sequence
    dropout: float = 0.0  # fresh data every step: nothing to regularise

    def _validate(self) -> None:
        super()._validate()
        if self.kind == "ntm":
            if self.cell != "lstm" or self.num_layers != 1:
                raise ValueError(f"model.kind='ntm' has one LSTM controller layer: set model.cell='lstm' and "
                                 f"model.num_layers=1, got {self.cell!r} and {self.num_layers}")  # fmt: skip
            if self.forget_bias is not None or self.chrono_tmax is not None:
                raise ValueError("model.forget_bias and model.chrono_tmax apply to model.kind='lstm' only")


@dataclass(frozen=True)
class NTMCopyData(GeneratedData):
    """``GeneratedData`` and the copy's sizes."""

    width: int = 8  # bits per vector (Graves et al.)
    min_length: int = 1  # training and validation lengths L: uniform in min_length..max_length (Graves: 1..20)
    max_length: int = 20  # the longest trained on (Graves et al.); the test goes beyond it
    # Each scored on its own: 10 and 20 were trained on, the others are longer (Graves et al.'s Fig. 4: 10, 20,
    # 30, 50, 120). Up to memory_slots the NTM has a slot per vector.
    test_lengths: tuple[int, ...] = (10, 20, 30, 50, 120)
    batch_size: int = 32  # Collier & Beel 2018
    val_size: int = 500  # sequences of every trained length: picks the best weights
    test_size: int = 500  # sequences per test length: a success rate to 0.2%

    def _validate(self) -> None:
        super()._validate()
        if self.width < 1:
            raise ValueError(f"data.width must be >= 1, got {self.width}")
        if not 1 <= self.min_length <= self.max_length:
            raise ValueError(f"need 1 <= data.min_length <= data.max_length, got {self.min_length} and "
                             f"{self.max_length}")  # fmt: skip
        if not self.test_lengths or any(L < 1 for L in self.test_lengths):
            raise ValueError(f"data.test_lengths must be lengths >= 1, got {list(self.test_lengths)}")


def _bits(metric: Tensor) -> Tensor:
    return metric / math.log(2.0)


@register_task("ntm-copy")
class NTMCopy(GeneratedTask):
    """Copy up to 20 random bit vectors, tested up to 120: an LSTM with an external memory against a plain one."""

    summary = ("copy bit vectors (Graves et al. 2014): an LSTM with an external memory (NTM) vs a plain LSTM; "
               "trained on lengths 1-20, tested up to 120")  # fmt: skip
    loss_key = "nats_per_bit"
    criterion = "every bit recalled"
    diagnosable = False  # the gradient-flow diagnostic reads a SequenceModel's core; the NTM steps its own cell

    def default_config(self) -> Config:
        # Collier & Beel's (2018) setting: controller 100 units, 128 x 20 memory, one read and one write head,
        # batch 32, Adam at 1e-3, gradients clipped. A probe here learnt to copy (0.02 bits wrong at L = 20)
        # after about 2,500 steps; 6,000 leave room for slower seeds (docs/results.md).
        return Config(
            model=NTMCopyModel(),
            data=NTMCopyData(),
            train=TrainConfig(
                epochs=100,  # bounded by max_steps
                max_steps=6000,
                max_minutes=30.0,  # a guard: 6000 steps take about 10 minutes on one thread
                lr=1e-3,
                weight_decay=0.0,  # fresh data: nothing to regularise
                clip_norm=10.0,
                schedule="constant",
                warmup_steps=100,
                patience=1000,  # off: the loss sits near the baseline for long before the copy forms
                stateful=False,
                log_every=50,
            ),
        )

    def smoke_config(self, workdir: Path) -> Config:
        return Config(
            model=NTMCopyModel(hidden_size=8, memory_slots=8, memory_width=4),
            data=NTMCopyData(width=3, max_length=3, test_lengths=(2, 5), batch_size=4, train_batches=3, val_size=8,
                             test_size=8),
            train=TrainConfig(epochs=2, max_steps=6, warmup_steps=1, stateful=False, progress=False,
                              tensorboard=False, log_every=2),
        )  # fmt: skip

    def describe(self, data: NTMCopyData) -> str:
        return (
            f"generated copy sequences: {data.min_length}-{data.max_length} vectors of {data.width} random bits, "
            f"tested at lengths {', '.join(map(str, data.test_lengths))} (validation and test fixed by data.seed)"
        )

    def sizes(self, data: NTMCopyData) -> tuple[int, int]:
        return data.width + 1, data.width

    def generate(self, data: NTMCopyData, n: int, generator: torch.Generator) -> BitsBatch:
        lengths = torch.randint(data.min_length, data.max_length + 1, (n,), generator=generator)
        return copy_bits_batch(lengths, data.width, generator)

    def eval_batches(self, config: Config, split: str) -> list[BitsBatch]:
        """"val" (and "train") as every long-range task; "test": ``data.test_size`` sequences of each length in
        ``data.test_lengths``, in chunks of one length."""
        if split != "test":
            return super().eval_batches(config, split)
        data = config.data
        out = []
        for L in data.test_lengths:
            for i, start in enumerate(range(0, data.test_size, _EVAL_CHUNK)):
                n = min(_EVAL_CHUNK, data.test_size - start)
                g = generator_for(data.seed, "test", L, i)
                out.append(copy_bits_batch(torch.full((n,), L), data.width, g))
        return out

    # -- the model --------------------------------------------------------------------------------------
    def build_model(self, config: Config) -> nn.Module:
        if config.model.kind == "ntm":
            return MemoryLSTM(config.model)
        return build_model(dataclasses.replace(config, model=dataclasses.replace(
            config.model, hidden_size=self.hidden_size(config.model), equal_params=False)))  # fmt: skip

    def model_name(self, model: ModelConfig) -> str:
        return "NTM (LSTM controller)" if model.kind == "ntm" else model.cell

    def hidden_size(self, model: ModelConfig) -> int:
        """The NTM's controller units; for ``kind = "lstm"`` with ``equal_params``, the largest LSTM within the
        NTM's parameter count."""
        H = model.hidden_size
        if model.kind == "ntm" or not model.equal_params:
            return H
        budget = memory_param_count(dataclasses.replace(model, kind="ntm"))
        while model_param_count(model, H + 1) <= budget:
            H += 1
        while H > 1 and model_param_count(model, H) > budget:
            H -= 1
        return H

    # -- loss and scores --------------------------------------------------------------------------------
    def loss(self, output: Tensor, batch: BitsBatch) -> tuple[Tensor, int]:
        ce = F.binary_cross_entropy_with_logits(output, batch.y, reduction="none")  # (T, B, width)
        m = batch.mask.unsqueeze(-1).to(ce.dtype)  # (T, B, 1)
        items = int(batch.mask.sum()) * batch.y.shape[-1]
        return (ce * m).sum() / items, items

    def per_sequence(self, output: Tensor, batch: BitsBatch) -> dict[str, Tensor]:
        m = batch.mask.unsqueeze(-1)  # (T, B, 1)
        wrong = ((output > 0).to(batch.y.dtype) != batch.y) & m  # (T, B, width)
        ce = F.binary_cross_entropy_with_logits(output, batch.y, reduction="none") * m  # (T, B, width)
        errors = wrong.sum(dim=(0, 2))  # (B,)
        return {"bit_errors": errors.double(), "cost_bits": _bits(ce.sum(dim=(0, 2))).double(),
                "success": (errors == 0).double()}  # fmt: skip

    def baselines(self, data: NTMCopyData) -> dict[str, float]:
        return {"baseline_nats_per_bit": math.log(2.0)}  # a memoryless guess: each bit at 1/2

    def score(self, model: nn.Module, batches: list[BitsBatch], split: str, config: Config) -> dict[str, Any]:
        """``GeneratedTask.score`` and, per copy length in the split, the mean bit errors and success rate."""
        out = super().score(model, batches, split, config)
        was_training = model.training
        model.eval()
        by: dict[int, list[Tensor]] = {}
        with torch.no_grad():
            for batch in batches:
                scores = self.per_sequence(model(batch.x, None, batch.lengths)[0], batch)
                for L in batch.copy_lengths.unique().tolist():
                    sel = batch.copy_lengths == L
                    by.setdefault(int(L), []).append(torch.stack([scores["bit_errors"][sel],
                                                                  scores["success"][sel]], dim=1))  # fmt: skip
        model.train(was_training)
        if split == "test":
            out["by_length"] = {
                str(L): {"bit_errors": float(v[:, 0].mean()), "success": float(v[:, 1].mean()), "sequences": len(v)}
                for L, parts in sorted(by.items())
                for v in [torch.cat(parts)]
            }
        return out

    def report_split(self, m: dict[str, Any]) -> str:
        line = (
            f"{m['split']}: {m['nats_per_bit']:.4f} nats per bit (memoryless {m['baseline_nats_per_bit']:.4f}); "
            f"{m['bit_errors']:.2f} bits wrong a sequence; {100 * m['success']:.1f}% of {m['sequences']} sequences "
            "copied whole"
        )
        if "by_length" in m:
            per = "; ".join(
                f"L={L}: {v['bit_errors']:.2f} bits wrong, {100 * v['success']:.1f}% whole"
                for L, v in m["by_length"].items()
            )
            line += f"\n  by length: {per}"
        return line
