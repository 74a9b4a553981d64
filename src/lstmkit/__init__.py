"""lstmkit: fast, complete LSTMs on PyTorch.

The layers are re-exported here; the workflow lives in the subpackages ``lstmkit.data``,
``lstmkit.train``, ``lstmkit.metrics`` and ``lstmkit.models``.
"""

from __future__ import annotations

from . import data, metrics, models, nn, train
from .nn import GRU, LSTM, RNN, LSTMCell, param_count

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "LSTMCell",
    "__version__",
    "data",
    "metrics",
    "models",
    "nn",
    "param_count",
    "train",
]
