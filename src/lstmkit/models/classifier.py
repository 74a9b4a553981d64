"""Sequence classifiers: ``SequenceClassifier``, a (bi)LSTM over padded cases read out once per case
(last state, masked mean or attention pooling), and ``FCNClassifier``, the LSTM-FCN / ALSTM-FCN hybrid
of Karim et al. (2017): an LSTM branch beside a 1-D fully convolutional branch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from lstmkit.models.sequence import LSTMReader, last_valid
from lstmkit.nn import LSTM
from lstmkit.train.config import ModelConfig

POOLINGS = ("mean", "last", "attention")
ARCHS = ("lstm", "lstm-fcn")


@dataclass(frozen=True)
class ClassifyModel(ModelConfig):
    """``ModelConfig`` plus the direction, the readout and the architecture."""

    bidirectional: bool = True  # a class may hinge on the start of a case as much as on its end
    # "last": each direction's state after reading the whole case (forward: at its last valid step);
    # "mean": the masked mean of the outputs over real steps; "attention": a learnt softmax weighting of the
    # real steps' outputs (additive attention pooling; ALSTM-FCN's with arch="lstm-fcn"). "last" reached a lower
    # validation loss on all four first reported sets (docs/results.md).
    pooling: str = "last"
    # "lstm": the (bi)LSTM alone; "lstm-fcn": Karim et al.'s (2017) hybrid, an LSTM branch over the dimension-
    # shuffled case (the C channels as steps, the max_length values as features) beside three conv blocks,
    # concatenated before the head. The conv branch reads every step (data.frame is 1).
    arch: str = "lstm"
    fcn_filters: tuple[int, int, int] = (128, 256, 128)  # Karim et al.'s (and Wang et al. 2017's FCN) filters
    fcn_kernels: tuple[int, int, int] = (8, 5, 3)  # their kernel sizes
    max_length: int | None = None  # lstm-fcn: the LSTM branch's features; set from the longest training case
    # Members of a seed ensemble: this many models of the architecture above, trained one after another in the
    # run with seeds train.seed, train.seed + 1, ..., each with its own early stopping; the run's model averages
    # their class probabilities. 1: one model. Small training sets vary a lot from seed to seed (docs/results.md).
    ensemble: int = 1

    def _validate(self) -> None:
        super()._validate()
        if self.pooling not in POOLINGS:
            raise ValueError(f"model.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.arch not in ARCHS:
            raise ValueError(f"model.arch must be one of {ARCHS}, got {self.arch!r}")
        if self.cell != "lstm":
            raise ValueError(f"classify uses an LSTM core; model.cell must be 'lstm', got {self.cell!r}")
        if self.ensemble < 1:  # its type is checked by ModelConfig
            raise ValueError(f"model.ensemble must be >= 1 (members; 1: one model), got {self.ensemble}")
        if min(self.fcn_filters) < 1 or min(self.fcn_kernels) < 1:
            raise ValueError(f"model.fcn_filters and model.fcn_kernels must be >= 1, got {list(self.fcn_filters)} "
                             f"and {list(self.fcn_kernels)}")  # fmt: skip


class AttentionPool(nn.Module):
    """Additive attention pooling: ``a_t = softmax_t(v . tanh(W y_t + b))`` over real steps, ``sum_t a_t y_t``.

    ``forward(y, lengths)``: y (T, B, F), lengths (B,) -> (B, F).
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.proj = nn.Linear(features, features)
        self.score = nn.Linear(features, 1, bias=False)

    def forward(self, y: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        T = y.shape[0]
        scores = self.score(torch.tanh(self.proj(y)))[..., 0]  # (T, B)
        pad = torch.arange(T, device=y.device)[:, None] >= lengths.to(y.device)[None, :]  # (T, B)
        weights = scores.masked_fill(pad, float("-inf")).softmax(dim=0)  # (T, B), zero on padded steps
        return (weights[..., None] * y).sum(dim=0)  # (B, F)


def _pool(config: ClassifyModel, out: torch.Tensor, h: torch.Tensor, lengths: torch.Tensor, attention) -> torch.Tensor:
    """The readout of ``config.pooling`` from the LSTM's outputs (T, B, D*H) and final states -> (B, D*H)."""
    if config.pooling == "mean":
        return out.sum(dim=0) / lengths.to(out.device, out.dtype)[:, None]  # padded steps are zero
    if config.pooling == "attention":
        return attention(out, lengths)
    if config.bidirectional:
        # The forward direction's state at the last valid step; the backward one's after reading back to t=0.
        return torch.cat([last_valid(out[..., : config.hidden_size], lengths), h[-1]], dim=-1)
    return last_valid(out, lengths)  # (B, H)


class SequenceClassifier(LSTMReader):
    """(bi)LSTM over a padded batch, a last-state, masked-mean or attention readout, dropout, linear.

    ``forward(x, lengths)``: x (T, B, C), lengths (B,) -> logits (B, K).
    """

    export_kind: ClassVar[str] = "classifier"  # lstmkit.export: features, lengths -> logits, probabilities

    def __init__(self, config: ClassifyModel) -> None:
        super().__init__(config, config.bidirectional)
        D = 2 if config.bidirectional else 1
        self.attention = AttentionPool(D * config.hidden_size) if config.pooling == "attention" else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, (h, _) = self.rnn(x, lengths=lengths)  # (T, B, D*H); padded steps are zero
        return self.head(self.drop(_pool(self.config, out, h, lengths, self.attention)))  # (B, K)


class FCNClassifier(nn.Module):
    """LSTM-FCN (``pooling`` last or mean) and ALSTM-FCN (``pooling="attention"``), Karim et al. (2017).

    - Conv branch: three blocks of Conv1d (zero "same" padding), BatchNorm and ReLU with ``fcn_filters`` filters and
      ``fcn_kernels`` kernels over the case's steps, then global average pooling over its real steps.
    - LSTM branch: the dimension shuffle: the case, zero-padded (or cut) to ``max_length`` steps, is read as
      C steps of ``max_length`` features (one step for a univariate case), pooled as ``pooling`` says.
    - The two are concatenated, dropped out and classified by a linear layer.

    ``forward(x, lengths)``: x (T, B, C), lengths (B,) -> logits (B, K).
    """

    export_kind: ClassVar[str] = "lstm-fcn"  # lstmkit.export: features, lengths -> logits, probabilities

    def __init__(self, config: ClassifyModel) -> None:
        super().__init__()
        if config.max_length is None or config.input_size is None or config.output_size is None:
            raise ValueError("model.max_length, model.input_size and model.output_size must be set (by the task)")
        self.config = config
        D = 2 if config.bidirectional else 1
        self.rnn = LSTM(config.max_length, config.hidden_size, config.num_layers,
                        dropout=config.dropout if config.num_layers > 1 else 0.0, bidirectional=config.bidirectional,
                        weight_dropout=config.weight_dropout, zoneout=config.zoneout)
        self.attention = AttentionPool(D * config.hidden_size) if config.pooling == "attention" else None
        blocks, channels = [], config.input_size
        for filters, kernel in zip(config.fcn_filters, config.fcn_kernels, strict=True):
            # "same" padding, spelt out: torch's padding="same" warns (and copies) for the even kernel 8
            blocks += [nn.ConstantPad1d(((kernel - 1) // 2, kernel // 2), 0.0), nn.Conv1d(channels, filters, kernel),
                       nn.BatchNorm1d(filters), nn.ReLU()]  # fmt: skip
            channels = filters
        self.fcn = nn.Sequential(*blocks)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(D * config.hidden_size + channels, config.output_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        T, B, C = x.shape
        L = self.config.max_length
        lengths = lengths.to(x.device)  # given on the CPU or beside x
        real = (torch.arange(T, device=x.device)[None, :] < lengths[:, None]).to(x.dtype)  # (B, T)
        conv = x.permute(1, 2, 0)  # (T, B, C) -> (B, C, T)
        for layer in self.fcn:
            conv = layer(conv)
            if isinstance(layer, nn.ReLU):
                # Padded steps back to zero after each block (BatchNorm's shift made them nonzero), so the next
                # conv reads them as its own zero padding: a case scores the same alone or padded in a batch.
                conv = conv * real[:, None, :]  # (B, F, T)
        gap = conv.sum(-1) / lengths.to(conv.dtype)[:, None]  # (B, F): the mean over real steps
        fixed = x[:L] if T >= L else torch.cat([x, x.new_zeros(L - T, B, C)])  # (L, B, C); padding is zero
        shuffled = fixed.permute(2, 1, 0)  # (C, B, L): channels as steps, time as features
        steps = torch.full((B,), C, dtype=torch.int64, device=x.device)
        out, (h, _) = self.rnn(shuffled, lengths=steps)  # (C, B, D*H)
        pooled = _pool(self.config, out, h, steps, self.attention)  # (B, D*H)
        return self.head(self.drop(torch.cat([pooled, gap], dim=-1)))  # (B, K)


class EnsembleClassifier(nn.Module):
    """``model.ensemble`` classifiers of one architecture (or ``data.committee``'s fold models) whose class
    probabilities are averaged.

    ``forward(x, lengths)``: x (T, B, C), lengths (B,) -> (B, K), the log of the members' mean probabilities, so
    that softmax gives the mean probabilities and cross-entropy scores the ensemble as one model. Computed as
    ``logsumexp`` over the members' log-softmax minus log N, not as the log of the mean: the same value, without the
    underflow to -inf where every member gives a class a probability below float32's smallest.
    """

    export_kind: ClassVar[str] = "classifier-ensemble"  # lstmkit.export: one graph, each member's beside the others

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([m(x, lengths).log_softmax(dim=-1) for m in self.members])  # (N, B, K)
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))  # (B, K)
