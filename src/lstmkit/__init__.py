"""lstmkit: fast, complete LSTMs on PyTorch.

The layers and ``Stream`` are re-exported here; the workflow lives in the subpackages
``lstmkit.data``, ``lstmkit.train``, ``lstmkit.metrics``, ``lstmkit.models``, compression in
``lstmkit.compress``, and deployment in ``lstmkit.stream`` and ``lstmkit.export``.
"""

from __future__ import annotations

from . import compress, data, export, metrics, models, nn, stream, train
from .nn import GRU, LSTM, RNN, ConvLSTM, ConvLSTMCell, LSTMCell, param_count
from .stream import Stream

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "ConvLSTM",
    "ConvLSTMCell",
    "LSTMCell",
    "Stream",
    "__version__",
    "compress",
    "data",
    "export",
    "metrics",
    "models",
    "nn",
    "param_count",
    "stream",
    "train",
]
