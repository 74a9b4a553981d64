"""The ``[data]`` and ``[train]`` sections of the sequence-to-sequence tasks (``g2p``, ``seq2seq``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lstmkit.train import DataConfig, TrainConfig

TOKENS = ("char", "word")
SCHEDULES = ("constant", "linear", "inverse_sigmoid")


@dataclass(frozen=True)
class Seq2SeqData(DataConfig):
    """What the pairs are and how they split (both tasks' ``[data]``; each key says which task reads it)."""

    batch_size: int = 64  # short pairs: bigger batches keep the per-step decoder calls busy
    # seq2seq: your parallel data, SOURCE<TAB>TARGET a line (UTF-8); empty: the bundled dates demo
    tsv: str = ""
    source_tokens: str = "char"  # seq2seq with data.tsv: "char" or "word" (whitespace) symbols
    target_tokens: str = "char"  # seq2seq with data.tsv: the target side's symbols, "char" or "word"
    val_fraction: float = 0.05  # seq2seq with data.tsv: shares of the pairs held out, drawn with split_seed
    test_fraction: float = 0.05  # seq2seq with data.tsv: 5% is thousands of pairs for a typical corpus
    split_seed: int = 0  # fixed apart from train.seed, so seeds share one split
    limit: int = 0  # keep only the first N pairs of each split (0: all); for smoke tests and quick looks
    # seq2seq without data.tsv: how many date pairs to generate per split (train, val, test)
    dates: tuple[int, int, int] = (30000, 1000, 2000)
    stress: bool = False  # g2p: keep the stress digits of the vowels (AH0, EY1); stripped by default

    def _validate(self) -> None:
        super()._validate()
        for key in ("source_tokens", "target_tokens"):
            if getattr(self, key) not in TOKENS:
                raise ValueError(f"data.{key} must be one of {TOKENS}, got {getattr(self, key)!r}")
        if not (0 < self.val_fraction < 0.5 and 0 < self.test_fraction < 0.5):
            raise ValueError(f"data.val_fraction and data.test_fraction must be in (0, 0.5), got "
                             f"{self.val_fraction} and {self.test_fraction}")  # fmt: skip
        if self.limit < 0 or self.split_seed < 0:
            raise ValueError(f"data.limit and data.split_seed must be >= 0, got {self.limit} and {self.split_seed}")
        if any(n < 1 for n in self.dates):
            raise ValueError(f"data.dates must be three counts >= 1 (train, val, test), got {list(self.dates)}")


@dataclass(frozen=True)
class Seq2SeqTrain(TrainConfig):
    """``TrainConfig`` plus teacher forcing and label smoothing."""

    stateful: bool = False  # pairs are independent
    patience: int = 3
    # The chance that a decoder step reads the true previous symbol (1: plain teacher forcing). With a
    # schedule it is where the ratio ends: "linear" falls from 1 to it over sampling_steps training
    # batches, "inverse_sigmoid" follows k / (k + exp(i / k)) with k = sampling_steps / 10 (Bengio et al. 2015).
    teacher_forcing: float = 1.0
    sampling_schedule: str = "constant"  # "constant" (teacher_forcing throughout), "linear" or "inverse_sigmoid"
    sampling_steps: int = 10000  # batches over which a schedule falls: a few epochs of the bundled data
    label_smoothing: float = 0.1  # Szegedy et al. 2016; in training only: validation reports plain cross-entropy

    def _validate(self) -> None:
        super()._validate()
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise ValueError(f"train.teacher_forcing must be in [0, 1], got {self.teacher_forcing}")
        if self.sampling_schedule not in SCHEDULES:
            raise ValueError(f"train.sampling_schedule must be one of {SCHEDULES}, got {self.sampling_schedule!r}")
        if self.sampling_steps < 1:
            raise ValueError(f"train.sampling_steps must be >= 1, got {self.sampling_steps}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"train.label_smoothing must be in [0, 1), got {self.label_smoothing}")

    def teacher_forcing_at(self, batch: int) -> float:
        """The teacher-forcing ratio of training batch ``batch`` (counted from 0)."""
        end = self.teacher_forcing
        if self.sampling_schedule == "constant":
            return end
        if self.sampling_schedule == "linear":
            return 1.0 - (1.0 - end) * min(1.0, batch / self.sampling_steps)
        k = max(self.sampling_steps / 10.0, 1.0)
        return end + (1.0 - end) * k / (k + math.exp(min(batch / k, 700.0)))
