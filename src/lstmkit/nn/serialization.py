"""Whole-model ``torch.save`` / ``torch.load`` with torch's default ``weights_only=True``.

``torch.load`` then unpickles only classes it has been told are safe. A model holding lstmkit layers
pickles these classes (the layers and the options dataclass they keep); allow them once::

    torch.serialization.add_safe_globals(lstmkit.safe_globals())
    model = torch.load("model.pt", weights_only=True)  # plus your own classes and torch.nn's, as for any model

(or ``with torch.serialization.safe_globals(lstmkit.safe_globals() + [...]):`` for one load).
A ``state_dict`` needs none of this: it holds tensors only.
"""

from __future__ import annotations

from ._convlstm_reference import ConvLSTMOptions
from .convlstm import ConvLSTM, ConvLSTMCell
from .gru import GRU, RNN, GRUCell, RNNCell
from .lstm import LSTM, LSTMCell, LSTMStepCell
from .weights import LSTMOptions

__all__ = ["safe_globals"]


def safe_globals() -> list[type]:
    """The lstmkit classes a pickled model can refer to, for ``torch.serialization.add_safe_globals``."""
    return [LSTM, LSTMCell, LSTMStepCell, GRU, GRUCell, RNN, RNNCell, LSTMOptions, ConvLSTM, ConvLSTMCell,
            ConvLSTMOptions]
