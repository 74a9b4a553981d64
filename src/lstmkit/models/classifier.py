"""``SequenceClassifier``: a (bi)LSTM over padded cases, read out once per case, to class logits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from lstmkit.models.sequence import LSTMReader, last_valid
from lstmkit.train.config import ModelConfig

POOLINGS = ("mean", "last")


@dataclass(frozen=True)
class ClassifyModel(ModelConfig):
    """``ModelConfig`` plus the direction and the readout."""

    bidirectional: bool = True  # a class may hinge on the start of a case as much as on its end
    # "last": each direction's state after reading the whole case (forward: at its last valid step);
    # "mean": the masked mean of the outputs over real steps. "last" reached a lower validation loss
    # on all four reported sets (docs/results.md).
    pooling: str = "last"

    def _validate(self) -> None:
        super()._validate()
        if self.pooling not in POOLINGS:
            raise ValueError(f"model.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.cell != "lstm":
            raise ValueError(f"classify uses an LSTM core; model.cell must be 'lstm', got {self.cell!r}")


class SequenceClassifier(LSTMReader):
    """(bi)LSTM over a padded batch, a last-state or masked-mean readout, dropout, linear.

    ``forward(x, lengths)``: x (T, B, C), lengths (B,) -> logits (B, K).
    """

    export_kind: ClassVar[str] = "classifier"  # lstmkit.export: features, lengths -> logits, probabilities

    def __init__(self, config: ClassifyModel) -> None:
        super().__init__(config, config.bidirectional)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, (h, _) = self.rnn(x, lengths=lengths)  # (T, B, D*H); padded steps are zero
        if self.config.pooling == "mean":
            pooled = out.sum(dim=0) / lengths.to(out.dtype)[:, None]  # (B, D*H) over real steps only
        elif self.config.bidirectional:
            # The forward direction's state at the last valid step; the backward one's after reading back to t=0.
            pooled = torch.cat([last_valid(out[..., : self.config.hidden_size], lengths), h[-1]], dim=-1)
        else:
            pooled = last_valid(out, lengths)  # (B, H)
        return self.head(self.drop(pooled))  # (B, K)
