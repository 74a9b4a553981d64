"""Recurrent layers: ``LSTM`` (drop-in ``torch.nn.LSTM`` with variants), cells, GRU and RNN."""

from __future__ import annotations

from .convlstm import ConvLSTM, ConvLSTMCell
from .gru import GRU, RNN
from .lstm import LSTM, LSTMCell
from .params import convlstm_param_count, param_count

__all__ = ["GRU", "LSTM", "RNN", "ConvLSTM", "ConvLSTMCell", "LSTMCell", "convlstm_param_count", "param_count"]
