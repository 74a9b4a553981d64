"""lstmkit: fast, complete LSTMs on PyTorch."""

from __future__ import annotations

from .nn import GRU, LSTM, RNN, LSTMCell, param_count

__version__ = "0.1.0"

__all__ = ["GRU", "LSTM", "RNN", "LSTMCell", "__version__", "param_count"]
