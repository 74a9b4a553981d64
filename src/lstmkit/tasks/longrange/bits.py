"""What Graves, Wayne & Danihelka's (2014) bit-vector tasks share (``ntm-copy``, ``ntm-recall``): the model choice
(an LSTM controller with an external memory, :mod:`lstmkit.models.memory`, or a plain LSTM of the same parameter
count), the loss on the steps that must answer, and scores per sequence and per size.

Each sequence has a size (vectors to copy, items to search) drawn uniformly from the trained range for training and
validation; the test scores each of a list of sizes on its own, most of them beyond the trained range. Loss: binary
cross-entropy in nats per target bit (a memoryless guess scores log 2). Scores per sequence, as Graves et al. report
them: ``bit_errors`` (bits wrong after rounding the outputs), ``cost_bits`` (the cross-entropy summed over the
sequence's target bits, in bits) and ``success`` (every bit right).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.models.memory import MemoryLSTM, MemoryModel, memory_param_count
from lstmkit.tasks.longrange.common import GeneratedData, GeneratedTask, LongRangeModel, build_model, model_param_count
from lstmkit.train import Config, ModelConfig, TrainConfig
from lstmkit.train.seed import generator_for

_EVAL_CHUNK = 250  # sequences per evaluation batch at one test size


class BitsBatch(NamedTuple):
    x: Tensor  # (T, B, I) inputs: bit vectors and delimiter channels; zeros while answering and in the padding
    y: Tensor  # (T, B, W) the bits to output, at the steps where mask is true (zeros elsewhere)
    mask: Tensor  # (T, B) bool: the steps that answer
    sizes: Tensor  # (B,) each sequence's size (vectors to copy, items to search): what the test groups by
    lengths: Tensor  # (B,) valid steps of each sequence; T is the longest


@dataclass(frozen=True)
class MemoryTaskModel(MemoryModel, LongRangeModel):
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
class BitsData(GeneratedData):
    """``GeneratedData`` and the evaluation sizes every bit-vector task has."""

    batch_size: int = 32  # Collier & Beel 2018; a step costs about the same at 1 and 32 on the CPU
    val_size: int = 500  # sequences of every trained size: picks the best weights
    test_size: int = 500  # sequences per test size: a success rate to 0.2%


def _bits(metric: Tensor) -> Tensor:
    return metric / math.log(2.0)


def train_config(max_steps: int, minutes: float) -> TrainConfig:
    """Collier & Beel's (2018) optimiser for every bit-vector task: Adam at 1e-3, batch 32, gradients clipped."""
    return TrainConfig(
        epochs=100,  # bounded by max_steps
        max_steps=max_steps,
        max_minutes=minutes,  # a guard
        lr=1e-3,
        weight_decay=0.0,  # fresh data: nothing to regularise
        clip_norm=10.0,
        schedule="constant",
        warmup_steps=100,
        patience=1000,  # off: the loss sits near the baseline for long before the memory is used
        stateful=False,
        log_every=50,
    )


class BitsTask(GeneratedTask):
    """Base of the bit-vector tasks; each says how a sequence of a given size is drawn."""

    loss_key = "nats_per_bit"
    criterion = "every bit right"
    diagnosable = False  # the gradient-flow diagnostic reads a SequenceModel's core; the NTM steps its own cell
    size_name: ClassVar[str]  # what the report calls a size: "L" (vectors), "items"

    @abc.abstractmethod
    def size_range(self, data: BitsData) -> tuple[int, int]:
        """The trained sizes, inclusive."""

    @abc.abstractmethod
    def test_sizes(self, data: BitsData) -> tuple[int, ...]:
        """The sizes the test scores one by one."""

    @abc.abstractmethod
    def batch(self, sizes: Tensor, data: BitsData, generator: torch.Generator) -> BitsBatch:
        """Sequences of ``sizes`` (B,), drawn with ``generator`` only, padded to the longest."""

    def generate(self, data: BitsData, n: int, generator: torch.Generator) -> BitsBatch:
        low, high = self.size_range(data)
        return self.batch(torch.randint(low, high + 1, (n,), generator=generator), data, generator)

    def eval_batches(self, config: Config, split: str) -> list[BitsBatch]:
        """"val" (and "train") as every long-range task; "test": ``data.test_size`` sequences of each test size, in
        chunks of one size, each keyed by ``data.seed``, the size and the chunk."""
        if split != "test":
            return super().eval_batches(config, split)
        data = config.data
        out = []
        for size in self.test_sizes(data):
            for i, start in enumerate(range(0, data.test_size, _EVAL_CHUNK)):
                n = min(_EVAL_CHUNK, data.test_size - start)
                out.append(self.batch(torch.full((n,), size), data, generator_for(data.seed, "test", size, i)))
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
        ce = F.binary_cross_entropy_with_logits(output, batch.y, reduction="none")  # (T, B, W)
        m = batch.mask.unsqueeze(-1).to(ce.dtype)  # (T, B, 1)
        items = int(batch.mask.sum()) * batch.y.shape[-1]
        return (ce * m).sum() / items, items

    def per_sequence(self, output: Tensor, batch: BitsBatch) -> dict[str, Tensor]:
        m = batch.mask.unsqueeze(-1)  # (T, B, 1)
        wrong = ((output > 0).to(batch.y.dtype) != batch.y) & m  # (T, B, W)
        ce = F.binary_cross_entropy_with_logits(output, batch.y, reduction="none") * m  # (T, B, W)
        errors = wrong.sum(dim=(0, 2))  # (B,)
        return {"bit_errors": errors.double(), "cost_bits": _bits(ce.sum(dim=(0, 2))).double(),
                "success": (errors == 0).double()}  # fmt: skip

    def baselines(self, data: BitsData) -> dict[str, float]:
        return {"baseline_nats_per_bit": math.log(2.0)}  # a memoryless guess: each bit at 1/2

    def split_details(self, split: str, scores: dict[str, Tensor], batches: list[BitsBatch]) -> dict[str, Any]:
        """On the test split, the mean bit errors and success rate of each size."""
        if split != "test":
            return {}
        sizes = torch.cat([b.sizes for b in batches])  # (N,)
        by_size = {}
        for size in sizes.unique().tolist():
            sel = sizes == size
            by_size[str(size)] = {
                "bit_errors": float(scores["bit_errors"][sel].mean()),
                "success": float(scores["success"][sel].mean()),
                "sequences": int(sel.sum()),
            }
        return {"by_size": by_size}

    def report_split(self, m: dict[str, Any]) -> str:
        line = (
            f"{m['split']}: {m['nats_per_bit']:.4f} nats per bit (memoryless {m['baseline_nats_per_bit']:.4f}); "
            f"{m['bit_errors']:.2f} bits wrong a sequence; {100 * m['success']:.1f}% of {m['sequences']} sequences "
            "all right"
        )
        if "by_size" in m:
            per = "; ".join(
                f"{self.size_name}={size}: {v['bit_errors']:.2f} bits wrong, {100 * v['success']:.1f}% all right"
                for size, v in m["by_size"].items()
            )
            line += f"\n  by size: {per}"
        return line
