"""``GRU`` and ``RNN``: baselines with ``torch.nn.GRU`` / ``torch.nn.RNN``'s interface and parameters.

They share ``LSTM``'s base (layers, directions, batch_first, unbatched, PackedSequence, lengths,
dropout, recurrent dropout, weight dropout) and run the reference cell steps under the reference time loop: they
are controls for experiments, so clarity beats speed here. The plain RNN is the
vanishing-gradient control the long-range experiments compare against.
"""

from __future__ import annotations

import torch

from ._base import RecurrentBase
from ._reference import gru_step, rnn_step, scan


class GRU(RecurrentBase):
    r"""Multi-layer GRU, gate order r, z, n as ``torch.nn.GRU``.

    .. math::
        r &= \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \quad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n &= \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})), \quad h' = (1 - z) \odot n + z \odot h

    Shapes as ``torch.nn.GRU``: input (T, B, I), h_0/h_n (L*D, B, H), output (T, B, D*H).
    """

    _gates_per_unit = 3
    _python_loop_only = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        recurrent_dropout: float = 0.0,
        weight_dropout: float = 0.0,
    ) -> None:
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype,
            recurrent_dropout=recurrent_dropout, weight_dropout=weight_dropout, impl="reference",
        )

    def _run_direction(self, x, state, w, mask, drop):
        return scan(lambda x_t, s: gru_step(x_t, s, w, drop), x, state, mask)

    def _native_op(self):
        return torch._VF.gru

    def _extra_defaults(self) -> dict[str, object]:
        return {"impl": "reference"}


class RNN(RecurrentBase):
    r"""Multi-layer Elman RNN, :math:`h' = \tanh(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})` (or ReLU),
    with ``torch.nn.RNN``'s interface and parameters. Shapes as ``GRU``.
    """

    _python_loop_only = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        recurrent_dropout: float = 0.0,
        weight_dropout: float = 0.0,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype,
            recurrent_dropout=recurrent_dropout, weight_dropout=weight_dropout, impl="reference",
        )

    def _run_direction(self, x, state, w, mask, drop):
        return scan(lambda x_t, s: rnn_step(x_t, s, w, self.nonlinearity, drop), x, state, mask)

    def _native_op(self):
        return torch._VF.rnn_tanh if self.nonlinearity == "tanh" else torch._VF.rnn_relu

    def _extra_defaults(self) -> dict[str, object]:
        return {"impl": "reference", "nonlinearity": "tanh"}
