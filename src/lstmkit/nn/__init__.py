"""Recurrent layers: ``LSTM`` (drop-in ``torch.nn.LSTM`` with variants), cells, GRU and RNN.

``layer_weights`` reads one layer and direction's parameters as a typed ``LSTMWeights`` /
``GRUWeights``; ``LSTMState`` is the (h, c) pair the step cell carries; ``safe_globals()`` lists the
classes to allow for ``torch.load(weights_only=True)`` of a whole model; ``release_buffers()`` drops the free
pooled work buffers of the ConvLSTM layer and of the LSTM's inference input side (``_workspace``); ``scan``
runs any cell of the ``(x_t, state) -> (y_t, state)`` contract over time (the one reference time loop).
``Linear`` / ``linear``: drop-in ``torch.nn.Linear`` / ``F.linear`` on the extension's panels where MKL is the
slower (a model's output head over every step).
"""

from __future__ import annotations

from ._reference import scan
from ._workspace import release as release_buffers
from .convlstm import ConvLSTM, ConvLSTMCell
from .dense import PANEL_MIN_ROWS, Linear, linear
from .gru import GRU, RNN, GRUCell, RNNCell
from .lstm import LSTM, LSTMCell, LSTMStepCell
from .params import convlstm_param_count, param_count
from .serialization import safe_globals
from .weights import GRUWeights, LSTMOptions, LSTMState, LSTMWeights, layer_weights

__all__ = [
    "GRU",
    "LSTM",
    "PANEL_MIN_ROWS",
    "RNN",
    "ConvLSTM",
    "ConvLSTMCell",
    "GRUCell",
    "GRUWeights",
    "LSTMCell",
    "LSTMOptions",
    "LSTMState",
    "LSTMStepCell",
    "LSTMWeights",
    "Linear",
    "RNNCell",
    "convlstm_param_count",
    "layer_weights",
    "linear",
    "param_count",
    "release_buffers",
    "safe_globals",
    "scan",
]
