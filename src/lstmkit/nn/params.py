"""Parameter counting by formula, so a model's size can be planned before it is built."""

from __future__ import annotations

from torch import nn

_GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def param_count(
    input_size: int | nn.Module,
    hidden_size: int | None = None,
    num_layers: int = 1,
    *,
    mode: str = "lstm",
    bidirectional: bool = False,
    proj_size: int = 0,
    bias: bool = True,
    bias_vectors: int = 2,
    peephole: bool = False,
    coupled: bool = False,
    layer_norm: bool = False,
) -> int:
    """Number of parameters of a recurrent layer, from its configuration.

    For one LSTM layer and direction with a single bias vector this is the textbook
    Params = 4[(d_x + d_h) d_h + d_h]. torch.nn (and lstmkit) keep two bias vectors (b_ih and
    b_hh), so the default ``bias_vectors=2`` adds another 4 d_h. Beyond that, per layer and
    direction: the recurrent input is the projected h, so W_hh is 4H x P and W_hr adds P x H;
    peepholes add 3H (2H when coupled); coupling drops the forget gate (3 gate blocks, not 4);
    LayerNorm adds a gain for each of W_ih x and W_hh h (G each) and a gain and bias on c (2H).
    Layers after the first see D * P inputs.

    Pass an ``LSTM``, ``GRU``, ``RNN``, ``LSTMCell`` or ``LSTMStepCell`` module instead to count from its
    settings.
    """
    if isinstance(input_size, nn.Module):
        return _count_module(input_size)
    if hidden_size is None:
        raise TypeError("param_count needs hidden_size when input_size is a number")
    if mode not in _GATES:
        raise ValueError(f"mode must be one of {sorted(_GATES)}, got {mode!r}")
    if bias_vectors not in (1, 2):
        raise ValueError(f"bias_vectors must be 1 or 2, got {bias_vectors!r}")
    if mode != "lstm" and (proj_size or peephole or coupled or layer_norm):
        raise ValueError("proj_size, peephole, coupled and layer_norm apply to mode='lstm' only")
    H = hidden_size
    P = proj_size or H
    D = 2 if bidirectional else 1
    G = (3 if coupled else _GATES[mode]) * H
    total = 0
    for layer in range(num_layers):
        d_in = input_size if layer == 0 else D * P
        per = G * d_in + G * P  # W_ih, W_hh
        if bias:
            per += bias_vectors * G
        if proj_size:
            per += P * H
        if peephole:
            per += (2 if coupled else 3) * H
        if layer_norm:
            per += 2 * G + 2 * H
        total += D * per
    return total


def _count_module(m: nn.Module) -> int:
    from .gru import GRU, RNN
    from .lstm import LSTM, _LSTMCellBase

    if isinstance(m, _LSTMCellBase):
        o = m._options
        return param_count(m.input_size, m.hidden_size, 1, proj_size=m.proj_size, bias=m.bias,
                           peephole=o.peephole, coupled=o.coupled, layer_norm=o.layer_norm)
    if isinstance(m, (LSTM, GRU, RNN, nn.LSTM, nn.GRU, nn.RNN)):
        mode = "lstm" if isinstance(m, (LSTM, nn.LSTM)) else "gru" if isinstance(m, (GRU, nn.GRU)) else "rnn"
        return param_count(
            m.input_size, m.hidden_size, m.num_layers, mode=mode, bidirectional=m.bidirectional,
            proj_size=getattr(m, "proj_size", 0), bias=m.bias, peephole=getattr(m, "peephole", False),
            coupled=getattr(m, "coupled", False), layer_norm=getattr(m, "layer_norm", False),
        )
    raise TypeError(f"param_count counts LSTM, GRU, RNN or LSTMCell modules, got {type(m).__name__}")
