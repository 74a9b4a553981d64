"""``GRU`` and ``RNN``: baselines with ``torch.nn.GRU`` / ``torch.nn.RNN``'s interface and parameters.

They share ``LSTM``'s base (layers, directions, batch_first, unbatched, PackedSequence, lengths,
dropout, recurrent dropout, weight dropout) and run the reference cell steps under the reference time loop: they
are controls for experiments, so clarity beats speed here. The plain RNN is the
vanishing-gradient control the long-range experiments compare against. ``zoneout=p`` (haste's GRU has it): after
each step every unit of h keeps its previous value with probability p (a new draw per unit and step) in training,
and moves by the expectation, h_t = p h_{t-1} + (1 - p) h_t, in eval mode; the output is the zoned h.

``GRUCell`` and ``RNNCell``: drop-in ``torch.nn.GRUCell`` / ``torch.nn.RNNCell`` (arguments, parameter names,
initialisation, return value, unbatched handling, error messages), with the layers' ``recurrent_dropout``,
``weight_dropout`` and ``zoneout`` as keyword-only options (the masks held per ``holding_masks()`` block, as
``LSTMCell``'s); a plain step is torch's own cell operator.
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod

import torch
from torch import Tensor, nn

from . import _cpp
from ._base import (
    HoldsMasks,
    NotScriptable,
    RecurrentBase,
    _check_positive_int,
    _check_prob,
    cell_input,
    cell_masks,
)
from ._fused import zone_rows
from ._reference import gru_step, rnn_step, scan, zone_out, zone_step, zone_weights
from .weights import GRUWeights


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


class _BaselineCell(HoldsMasks, NotScriptable, nn.Module, metaclass=ABCMeta):
    """What ``GRUCell`` and ``RNNCell`` share: torch.nn's arguments, parameters and checks, one step of the
    reference cell (``gru_step`` / ``rnn_step``, the layers' own), recurrent dropout, DropConnect and zoneout."""

    _gates_per_unit = 1
    _weights_type = GRUWeights  # what layer_weights returns
    # the class's values stand in for a cell pickled before an option existed
    recurrent_dropout: float = 0.0
    weight_dropout: float = 0.0
    zoneout: float = 0.0

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool, device, dtype, recurrent_dropout: float,
        weight_dropout: float, zoneout: float,
    ) -> None:
        super().__init__()
        self.input_size = _check_positive_int("input_size", input_size)
        self.hidden_size = _check_positive_int("hidden_size", hidden_size)
        self.bias = bool(bias)
        self.recurrent_dropout = _check_prob("recurrent_dropout", recurrent_dropout)
        self.weight_dropout = _check_prob("weight_dropout", weight_dropout)
        self.zoneout = _check_prob("zoneout", zoneout)
        factory = {"device": device, "dtype": dtype}
        G = self._gates_per_unit * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G, input_size, **factory))  # (G, I)
        self.weight_hh = nn.Parameter(torch.empty(G, hidden_size, **factory))  # (G, H)
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(G, **factory))
            self.bias_hh = nn.Parameter(torch.empty(G, **factory))
        else:  # as torch.nn: the attributes exist and are None, and the state dict has no such keys
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn's initialisation: uniform in +-1/sqrt(hidden_size)."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -stdv, stdv)

    def dropout_mask(self, batch_size: int) -> Tensor:
        """A (B, H) recurrent-dropout mask, scaled by 1/(1-p); draw one per sequence."""
        keep = 1.0 - self.recurrent_dropout
        return self.weight_hh.new_empty(batch_size, self.hidden_size).bernoulli_(keep).div_(keep)

    @abstractmethod
    def _native_step(self, x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor) -> Tensor:
        """One step by torch's cell operator: x (B, I), h (B, H) -> h' (B, H)."""

    @abstractmethod
    def _reference_step(self, x: Tensor, h: Tensor, w: GRUWeights, drop: Tensor | None) -> Tensor:
        """One step by the layers' reference cell, with the recurrent-dropout mask ``drop`` (B, H) or None."""

    def forward(self, input: Tensor, hx: Tensor | None = None, drop_mask: Tensor | None = None) -> Tensor:
        """One step: ``input`` (B, I) or (I,), ``hx`` (B, H) or (H,) (None: zeros) -> h' of hx's shape. In training
        with ``recurrent_dropout`` pass ``drop_mask=cell.dropout_mask(B)`` (drawn once per sequence) or step the
        sequence inside ``with cell.holding_masks():``; with ``weight_dropout`` the steps must run inside one."""
        w_ih = self.weight_ih  # read once: a Module attribute costs half a microsecond, a tenth of a batch-1 step
        if (isinstance(input, Tensor) and isinstance(hx, Tensor) and input.dim() == 2 and hx.dim() == 2
                and not (self.training and (self.recurrent_dropout > 0 or self.weight_dropout > 0))
                and input.dtype == w_ih.dtype and input.is_floating_point()
                and input.shape[1] == self.input_size and hx.shape == (input.shape[0], self.hidden_size)
                and hx.dtype == input.dtype and not _cpp.transformed()):  # fmt: skip
            # The common call, checked in a few comparisons (at batch 1 the full checks below cost a tenth of the
            # step), as LSTMCell's: torch's operator; anything else takes the checks that name what is wrong.
            h = self._native_step(input, hx, w_ih, self.weight_hh)
            return zone_out((h,), (hx,), (self.zoneout,), self.training)[0] if self.zoneout else h
        x = cell_input(self, input)  # (B, I)
        if hx is not None and (not isinstance(hx, Tensor) or hx.dim() not in (1, 2)):  # torch.nn's words
            got = f"{hx.dim()}D" if isinstance(hx, Tensor) else type(hx).__name__
            raise ValueError(f"{type(self).__name__}: Expected hidden to be 1D or 2D, got {got} instead")
        batched = input.dim() == 2
        B = x.shape[0]
        if hx is None:
            h0 = x.new_zeros(B, self.hidden_size)
        else:
            h0 = hx if batched else hx.unsqueeze(0)
            if tuple(h0.shape) != (B, self.hidden_size):
                want = (B, self.hidden_size) if batched else (self.hidden_size,)
                raise ValueError(f"hx must have shape {want}, got {tuple(hx.shape)}")
            if hx.dtype != x.dtype:
                raise TypeError(f"hx dtype must be the parameters' {x.dtype}, got {hx.dtype}")
        drop, w_hh = cell_masks(self, B, self.hidden_size, drop_mask)
        if drop is None and not _cpp.transformed():  # torch's own cell operator (torch.func: no vmap rule for it)
            h = self._native_step(x, h0, w_ih, w_hh)
        else:
            h = self._reference_step(x, h0, GRUWeights(w_ih, w_hh, self.bias_ih, self.bias_hh), drop)
        if self.zoneout:
            (h,) = zone_out((h,), (h0,), (self.zoneout,), self.training)
        return h if batched else h.squeeze(0)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for key, value, default in (("bias", self.bias, True), ("nonlinearity", getattr(self, "nonlinearity", "tanh"),
                                    "tanh"), ("recurrent_dropout", self.recurrent_dropout, 0.0),
                                    ("weight_dropout", self.weight_dropout, 0.0), ("zoneout", self.zoneout, 0.0)):
            if value != default:
                s += f", {key}={value}"
        return s


class GRUCell(_BaselineCell):
    r"""Drop-in ``torch.nn.GRUCell``: ``(input, h) -> h'`` with ``GRU``'s equations (gate order r, z, n), plus
    keyword-only ``recurrent_dropout``, ``weight_dropout`` and ``zoneout`` (the layers' meanings; the masks: see
    ``forward``). Parameters ``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih``,
    ``bias_hh`` (3H,): either loads the other's state dict."""

    _gates_per_unit = 3

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device: torch.device | str | None = None,
        dtype: torch.dtype | None = None, *, recurrent_dropout: float = 0.0, weight_dropout: float = 0.0,
        zoneout: float = 0.0,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, device, dtype, recurrent_dropout, weight_dropout, zoneout)

    def _native_step(self, x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor) -> Tensor:
        return torch._VF.gru_cell(x, h, w_ih, w_hh, self.bias_ih, self.bias_hh)

    def _reference_step(self, x: Tensor, h: Tensor, w: GRUWeights, drop: Tensor | None) -> Tensor:
        return gru_step(x, (h,), w, drop)[0]


class RNNCell(_BaselineCell):
    r"""Drop-in ``torch.nn.RNNCell``: ``(input, h) -> h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (or ReLU), plus
    ``GRUCell``'s keyword-only options. Parameters ``weight_ih`` (H, I), ``weight_hh`` (H, H), ``bias_ih``,
    ``bias_hh`` (H,)."""

    nonlinearity: str = "tanh"

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
        device: torch.device | str | None = None, dtype: torch.dtype | None = None, *, recurrent_dropout: float = 0.0,
        weight_dropout: float = 0.0, zoneout: float = 0.0,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype, recurrent_dropout, weight_dropout, zoneout)

    def _native_step(self, x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor) -> Tensor:
        op = torch._VF.rnn_tanh_cell if self.nonlinearity == "tanh" else torch._VF.rnn_relu_cell
        return op(x, h, w_ih, w_hh, self.bias_ih, self.bias_hh)

    def _reference_step(self, x: Tensor, h: Tensor, w: GRUWeights, drop: Tensor | None) -> Tensor:
        return rnn_step(x, (h,), w, self.nonlinearity, drop)[0]
