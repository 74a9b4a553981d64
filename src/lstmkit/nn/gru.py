"""``GRU`` and ``RNN``: baselines with ``torch.nn.GRU`` / ``torch.nn.RNN``'s interface and parameters.

They share ``LSTM``'s base (layers, directions, batch_first, unbatched, PackedSequence, lengths,
dropout, recurrent dropout, weight dropout) and run the reference cell steps under the reference time loop: they
are controls for experiments, so clarity beats speed here. The plain RNN is the
vanishing-gradient control the long-range experiments compare against. ``zoneout=p`` (haste's GRU has it): after
each step every unit of h keeps its previous value with probability p (a new draw per unit and step) in training,
and moves by the expectation, h_t = p h_{t-1} + (1 - p) h_t, in eval mode; the output is the zoned h.
"""

from __future__ import annotations

import torch

from ._base import RecurrentBase, _check_prob
from ._fused import zone_rows
from ._reference import gru_step, rnn_step, scan, zone_step, zone_weights


class _Baseline(RecurrentBase):
    """What GRU and RNN share beyond the base: one state h, its zoneout, the reference loop."""

    zoneout: float = 0.0  # the class's stands in for a layer pickled before the key existed

    def _scan(self, step, x, state, mask):
        """The reference loop of ``step`` ((x_t, (h,)) -> (h_t, (h_t,))), zoneout on h when set."""
        if self.zoneout == 0.0:
            return scan(step, x, state, mask)
        (z,) = zone_weights((self.zoneout,), self.training, x.shape[0], state)  # (T or 1, B, H)

        def zoned(inputs, s):
            x_t, z_t = inputs
            _, new = step(x_t, s)
            h = zone_step(new, s, (z_t,))
            return h[0], h

        return scan(zoned, (x, zone_rows(z, x.shape[0])), state, mask)

    def _native_blocker(self) -> str | None:
        if self.zoneout:
            return f"has zoneout={self.zoneout}, which torch's {type(self).__name__} operator lacks"
        return super()._native_blocker()


class GRU(_Baseline):
    r"""Multi-layer GRU, gate order r, z, n as ``torch.nn.GRU``.

    .. math::
        r &= \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \quad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n &= \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})), \quad h' = (1 - z) \odot n + z \odot h

    Shapes as ``torch.nn.GRU``: input (T, B, I), h_0/h_n (L*D, B, H), output (T, B, D*H). ``zoneout``: see the
    module docstring.
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
        zoneout: float = 0.0,
    ) -> None:
        self.zoneout = _check_prob("zoneout", zoneout)
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype,
            recurrent_dropout=recurrent_dropout, weight_dropout=weight_dropout, impl="reference",
        )

    def _run_direction(self, x, state, w, mask, drop):
        return self._scan(lambda x_t, s: gru_step(x_t, s, w, drop), x, state, mask)

    def _native_op(self):
        return torch._VF.gru

    def _extra_defaults(self) -> dict[str, object]:
        return {"impl": "reference", "zoneout": 0.0}


class RNN(_Baseline):
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
        zoneout: float = 0.0,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.zoneout = _check_prob("zoneout", zoneout)
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype,
            recurrent_dropout=recurrent_dropout, weight_dropout=weight_dropout, impl="reference",
        )

    def _run_direction(self, x, state, w, mask, drop):
        return self._scan(lambda x_t, s: rnn_step(x_t, s, w, self.nonlinearity, drop), x, state, mask)

    def _native_op(self):
        return torch._VF.rnn_tanh if self.nonlinearity == "tanh" else torch._VF.rnn_relu

    def _extra_defaults(self) -> dict[str, object]:
        return {"impl": "reference", "nonlinearity": "tanh", "zoneout": 0.0}
