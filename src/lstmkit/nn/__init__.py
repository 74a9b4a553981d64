"""Recurrent layers: ``LSTM`` (drop-in ``torch.nn.LSTM`` with variants), cells, GRU and RNN."""

from __future__ import annotations

from .gru import GRU, RNN
from .lstm import LSTM, LSTMCell
from .params import param_count

__all__ = ["GRU", "LSTM", "RNN", "LSTMCell", "param_count"]
