"""lstmkit: fast, complete LSTMs on PyTorch.

``import lstmkit`` gives the layers (``LSTM``, ``LSTMCell``, ``LSTMStepCell``, ``GRU``, ``GRUCell``, ``RNN``,
``RNNCell``, ``ConvLSTM``, ``ConvLSTMCell``), ``param_count``,
``safe_globals`` (for ``torch.load`` of whole models) and the streaming API (``Stream``), and loads nothing
else. The rest is imported where it is used, from the layer of the design it belongs to (each imports
only from the ones before it):

- ``lstmkit.nn`` (layers), ``lstmkit.stream`` (streaming), ``lstmkit.formats`` (how weights are
  stored), ``lstmkit.data``, ``lstmkit.metrics``;
- ``lstmkit.train`` (the training loop, losses, config);
- ``lstmkit.models`` (models built on the layers);
- ``lstmkit.tasks`` (end-to-end jobs, the run directory, the runner);
- ``lstmkit.compress``, ``lstmkit.export``, ``lstmkit.diagnostics`` and ``lstmkit.cli`` (run-level commands).
"""

from __future__ import annotations

from lstmkit.nn import (
    GRU,
    LSTM,
    RNN,
    ConvLSTM,
    ConvLSTMCell,
    GRUCell,
    LSTMCell,
    LSTMStepCell,
    RNNCell,
    param_count,
    safe_globals,
)
from lstmkit.stream import Stream

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "ConvLSTM",
    "ConvLSTMCell",
    "GRUCell",
    "LSTMCell",
    "LSTMStepCell",
    "RNNCell",
    "Stream",
    "__version__",
    "param_count",
    "safe_globals",
]
