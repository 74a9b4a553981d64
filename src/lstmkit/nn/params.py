"""Parameter counting by formula, so a model's size can be planned before it is built."""

from __future__ import annotations

from collections.abc import Sequence

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

    Pass an ``LSTM``, ``GRU``, ``RNN``, ``LSTMCell``, ``LSTMStepCell``, ``GRUCell``, ``RNNCell``, ``ConvLSTM`` or
    ``ConvLSTMCell`` module (or torch.nn's LSTM, GRU, RNN, GRUCell or RNNCell) instead to count from its settings
    (``convlstm_param_count`` is the ConvLSTM formula).
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


def convlstm_param_count(
    input_channels: int,
    hidden_channels: int | Sequence[int],
    kernel_size: int | Sequence[int] = 3,
    num_layers: int = 1,
    *,
    bias: bool = True,
    peephole: bool = False,
    peephole_frame: Sequence[int] | None = None,
    layer_norm: bool = False,
) -> int:
    """Number of parameters of a ``ConvLSTM`` (or, with num_layers=1, a ``ConvLSTMCell``).

    Per layer k, with C_k input channels (C for the first layer, Hc_{k-1} after), Hc_k hidden
    channels, G = 4 Hc_k and a kh x kw kernel: the convolutions W_ih (G, C_k, kh, kw) and
    W_hh (G, Hc_k, kh, kw), so G (C_k + Hc_k) kh kw, the textbook 4 Hc (C + Hc) k^2; one bias of G;
    peepholes 3 Hc_k, times H W with full maps (``peephole_frame=(H, W)``); LayerNorm a gain for
    each of W_ih * x and W_hh * h (G each) and a gain and bias on c (2 Hc_k).
    """
    hidden = [hidden_channels] * num_layers if isinstance(hidden_channels, int) else list(hidden_channels)
    if len(hidden) != num_layers:
        raise ValueError(f"hidden_channels must be one integer or one per layer ({num_layers}), got {len(hidden)}")
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    frame_area = 1 if peephole_frame is None else peephole_frame[0] * peephole_frame[1]
    total = 0
    for layer, hc in enumerate(hidden):
        c_in = input_channels if layer == 0 else hidden[layer - 1]
        G = 4 * hc
        per = G * (c_in + hc) * kh * kw  # W_ih, W_hh
        if bias:
            per += G
        if peephole:
            per += 3 * hc * frame_area
        if layer_norm:
            per += 2 * G + 2 * hc
        total += per
    return total


def _count_module(m: nn.Module) -> int:
    from .convlstm import ConvLSTM, ConvLSTMCell
    from .gru import GRU, RNN, GRUCell, RNNCell
    from .lstm import LSTM, _LSTMCellBase

    if isinstance(m, (ConvLSTM, ConvLSTMCell)):
        is_layer = isinstance(m, ConvLSTM)
        return convlstm_param_count(
            m.input_channels, m.hidden_channels, m.kernel_size, m.num_layers if is_layer else 1,
            bias=m.bias if is_layer else m.bias is not None,  # the cell's bias is its parameter (or None)
            peephole=m._options.peephole, peephole_frame=m.peephole_frame, layer_norm=m._options.layer_norm,
        )
    if isinstance(m, _LSTMCellBase):
        o = m._options
        return param_count(m.input_size, m.hidden_size, 1, proj_size=m.proj_size, bias=m.bias,
                           peephole=o.peephole, coupled=o.coupled, layer_norm=o.layer_norm)
    if isinstance(m, (GRUCell, RNNCell, nn.GRUCell, nn.RNNCell)):
        mode = "gru" if isinstance(m, (GRUCell, nn.GRUCell)) else "rnn"
        return param_count(m.input_size, m.hidden_size, 1, mode=mode, bias=m.bias)
    if isinstance(m, (LSTM, GRU, RNN, nn.LSTM, nn.GRU, nn.RNN)):
        mode = "lstm" if isinstance(m, (LSTM, nn.LSTM)) else "gru" if isinstance(m, (GRU, nn.GRU)) else "rnn"
        return param_count(
            m.input_size, m.hidden_size, m.num_layers, mode=mode, bidirectional=m.bidirectional,
            proj_size=getattr(m, "proj_size", 0), bias=m.bias, peephole=getattr(m, "peephole", False),
            coupled=getattr(m, "coupled", False), layer_norm=getattr(m, "layer_norm", False),
        )
    raise TypeError(
        f"param_count counts LSTM, GRU, RNN, LSTMCell, GRUCell, RNNCell, ConvLSTM or ConvLSTMCell modules, got "
        f"{type(m).__name__}"
    )
