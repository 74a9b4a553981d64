"""``CTCRecognizer``: a stacked (bi)LSTM emitting per-step log-probabilities for CTC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from lstmkit.models.sequence import LSTMReader
from lstmkit.train.config import ModelConfig


@dataclass(frozen=True)
class CTCModel(ModelConfig):
    """``ModelConfig`` plus the direction and the decoder's beam."""

    bidirectional: bool = True  # a label is easier to place when the frames after it are known too
    beam_width: int = 8  # prefix beam search; 1 keeps only the likeliest prefix

    def _validate(self) -> None:
        super()._validate()
        if self.cell != "lstm":
            raise ValueError(f"the CTC tasks use an LSTM core; model.cell must be 'lstm', got {self.cell!r}")
        if self.beam_width < 1:
            raise ValueError(f"model.beam_width must be >= 1, got {self.beam_width}")


class CTCRecognizer(LSTMReader):
    """Stacked (bi)LSTM, dropout and a linear layer to the blank and the symbols, as log-probabilities.

    ``forward(x, lengths)``: x (T, B, I), lengths (B,) -> log-probabilities (T, B, C), C = symbols + 1.
    """

    export_kind: ClassVar[str] = "recognizer"  # lstmkit.export: features, lengths -> log_probs

    def __init__(self, config: CTCModel) -> None:
        super().__init__(config, config.bidirectional)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x, lengths=lengths)  # (T, B, D*H); padded steps are zero and never scored
        return self.head(self.drop(out)).log_softmax(dim=-1)  # (T, B, C)
