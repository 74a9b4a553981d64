"""Plain reference implementations: one readable cell step per cell type, and one time loop.

Everything here runs through autograd, one operation at a time, so it is slow but easy to check
by eye against the equations in the docstrings. The fused kernels in ``_fused.py`` are held equal
to these functions by the tests; the cells (``LSTMCell``, ``LSTMStepCell``) use these steps directly.

Shapes: T time, B batch, I input features, H hidden units, P recurrent output size (P = H without
projection), G = gates * H.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .weights import GRUWeights, LSTMOptions, LSTMWeights

State = tuple[Tensor, ...]
Step = Callable[[Tensor, State], tuple[Tensor, State]]


def layer_norm_reference(x: Tensor, gain: Tensor, bias: Tensor | None, eps: float) -> Tensor:
    """LayerNorm over the last dimension, written out (biased variance, as torch does)."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps) * gain
    return y if bias is None else y + bias


def lstm_input_side(x: Tensor, w: LSTMWeights, opt: LSTMOptions) -> Tensor:
    """The input side of a step, (..., I) -> (..., G): LN_ih(W_ih x) + b_ih + b_hh (for one step or all T at once)."""
    a = F.linear(x, w.w_ih)
    if opt.layer_norm:
        a = layer_norm_reference(a, w.g_ih, None, opt.eps)
    return a if w.b_ih is None else a + w.b_ih + w.b_hh


def lstm_step(
    x: Tensor, state: State, w: LSTMWeights, opt: LSTMOptions, drop: Tensor | None = None
) -> tuple[Tensor, State]:
    """One LSTM step ``(x_t, (h, c)) -> (h_t, (h_t, c_t))``.

    .. math::
        a &= \\mathrm{LN}_{ih}(W_{ih} x_t) + b_{ih} + b_{hh} + \\mathrm{LN}_{hh}(W_{hh} (h_{t-1} \\odot m)) \\\\
        i &= \\sigma(a_i + p_i \\odot c_{t-1}),\\quad f = \\sigma(a_f + p_f \\odot c_{t-1})
             \\;(\\text{coupled: } f = 1 - i),\\quad g = \\tanh(a_g) \\\\
        c_t &= f \\odot c_{t-1} + i \\odot g,\\quad o = \\sigma(a_o + p_o \\odot c_t) \\\\
        h_t &= W_{hr}\\,(o \\odot \\tanh(\\mathrm{LN}_c(c_t)))

    LN terms appear only with ``layer_norm``, p only with ``peephole``, W_hr only with projection,
    m (the recurrent-dropout mask, (B, P)) only in training with ``recurrent_dropout``. The input side
    (``lstm_input_side``) and the rest (``lstm_recurrent_step``, what the fused scans compute) are
    separate functions, so that the scans' reference twin reads the same step.
    """
    return lstm_recurrent_step(lstm_input_side(x, w, opt), state, w, opt, drop)


def lstm_recurrent_step(
    a_x: Tensor, state: State, w: LSTMWeights, opt: LSTMOptions, drop: Tensor | None = None
) -> tuple[Tensor, State]:
    """The step after its input side: ``(a_x_t, (h, c)) -> (h_t, (h_t, c_t))``, a_x_t (B, G) from
    ``lstm_input_side``; reads w.w_hh, w_hr, peep, g_hh, g_c, b_c only (see ``lstm_step``)."""
    h, c = state
    hidden = c.shape[-1]
    r = F.linear(h if drop is None else h * drop, w.w_hh)  # (B, G)
    if opt.layer_norm:
        r = layer_norm_reference(r, w.g_hh, None, opt.eps)
    a = a_x + r
    if opt.coupled:
        a_i, a_g, a_o = a.split(hidden, -1)
        a_f = None
    else:
        a_i, a_f, a_g, a_o = a.split(hidden, -1)
    if opt.peephole:
        a_i = a_i + w.peep[0] * c
        if not opt.coupled:
            a_f = a_f + w.peep[1] * c
    i = torch.sigmoid(a_i)
    f = 1.0 - i if opt.coupled else torch.sigmoid(a_f)
    g = torch.tanh(a_g)
    c_new = f * c + i * g
    if opt.peephole:
        a_o = a_o + w.peep[-1] * c_new
    o = torch.sigmoid(a_o)
    c_out = layer_norm_reference(c_new, w.g_c, w.b_c, opt.eps) if opt.layer_norm else c_new
    h_new = o * torch.tanh(c_out)
    if w.w_hr is not None:
        h_new = F.linear(h_new, w.w_hr)  # (B, P)
    return h_new, (h_new, c_new)


def zone_out(new: State, prev: State, rates: tuple[float, ...], training: bool) -> State:
    """Zoneout (Krueger et al. 2017) of a step's new state (LSTM: h (B, P), c (B, H); GRU/RNN: h (B, H)) against the
    state before it, a rate each (p_h, p_c): in training each unit keeps its previous value where
    ``torch.rand(...) < p`` (h's draw first, then c's, new draws every step); in eval mode it moves by the
    expectation, p * previous + (1 - p) * new."""
    out = []
    for n, q, p in zip(new, prev, rates, strict=True):
        if p == 0.0:
            out.append(n)
        elif training:
            out.append(torch.where(torch.rand(n.shape, dtype=n.dtype, device=n.device) < p, q, n))
        else:
            out.append(torch.lerp(n, q, p))  # n + p (q - n)
    return tuple(out)


def zone_step(new: State, prev: State, weights: tuple[Tensor | None, ...]) -> State:
    """Zoneout with given weights z (the layers' form, drawn for all steps at once; the kernels' twin): each state
    (LSTM: h, c; GRU/RNN: h) becomes (1 - z) new + z prev, exactly prev or new where z is 0 or 1 (training's
    draws), the expectation where z = p (eval mode); a None weight leaves new as it is."""
    return tuple(n if z is None else (1.0 - z) * n + z * q for n, q, z in zip(new, prev, weights, strict=True))


def zone_weights(rates: tuple[float, ...], training: bool, T: int, state: State) -> tuple[Tensor | None, ...]:
    """A layer's zoneout weights for T steps from its state (LSTM: h (B, P), c (B, H); GRU/RNN: h (B, H)), a rate
    each: a weight each, None at rate 0, else in training (T, B, .) of 0/1, 1 where the unit keeps its previous
    value (``torch.rand(...) < p``), and in eval mode (1, B, .) filled with p. The training draws are one
    ``torch.rand`` of (T, sum of the states' sizes) read step by step state by state (h's draws, then c's): the
    same numbers as ``zone_out`` or a zoneout wrapper drawing them step by step (the CPU generator fills a tensor
    in order; tests/nn/test_zoneout.py holds each layer equal to such a loop of cells)."""
    if not training:
        return tuple(None if p == 0.0 else s.new_full((1, *s.shape), p) for s, p in zip(state, rates, strict=True))
    parts = [(s, p) for s, p in zip(state, rates, strict=True) if p != 0.0]
    first = state[0]
    u = torch.rand(T, sum(s.numel() for s, _ in parts), dtype=first.dtype, device=first.device)  # (T, B P + B H)
    if len({p for _, p in parts}) > 1:
        u.lt_(torch.cat([u.new_full((s.numel(),), p) for s, p in parts]))  # 1.0 where kept, in place: one pass
    elif parts:
        u.lt_(parts[0][1])
    out, at = [], 0
    for s, p in zip(state, rates, strict=True):
        if p == 0.0:
            out.append(None)
            continue
        out.append(u[:, at : at + s.numel()].view(T, *s.shape))  # (T, B, P) or (T, B, H), a view: no copy
        at += s.numel()
    return tuple(out)


def gru_step(x: Tensor, state: State, w: GRUWeights, drop: Tensor | None = None) -> tuple[Tensor, State]:
    """One GRU step, exactly torch.nn.GRU's equations (reset gate applied after W_hn h)."""
    (h,) = state
    gi = F.linear(x, w.w_ih, w.b_ih)  # (B, 3H)
    gh = F.linear(h if drop is None else h * drop, w.w_hh, w.b_hh)  # (B, 3H)
    i_r, i_z, i_n = gi.chunk(3, -1)
    h_r, h_z, h_n = gh.chunk(3, -1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    h_new = (1.0 - z) * n + z * h
    return h_new, (h_new,)


def rnn_step(
    x: Tensor, state: State, w: GRUWeights, nonlinearity: str = "tanh", drop: Tensor | None = None
) -> tuple[Tensor, State]:
    """One plain (Elman) RNN step: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""
    (h,) = state
    a = F.linear(x, w.w_ih, w.b_ih) + F.linear(h if drop is None else h * drop, w.w_hh, w.b_hh)
    h_new = torch.tanh(a) if nonlinearity == "tanh" else torch.relu(a)
    return h_new, (h_new,)


def scan(
    step: Step, xs: Tensor | tuple[Tensor | None, ...], state: State, mask: Tensor | None = None
) -> tuple[Tensor, State]:
    """Run ``step`` over time: the one reference time loop.

    xs is (T, B, I) (or (T, B, C, H, W) for ConvLSTM), or a tuple of such tensors (None entries passed as None),
    read together one step at a time; mask, if given, is (T, B) bool with False past each sequence's end: there
    the state is carried unchanged and the output is zero, so the final state is the state at the last valid step.
    """
    ys = []
    several = isinstance(xs, tuple)
    T = next(x for x in xs if x is not None).shape[0] if several else xs.shape[0]
    for t in range(T):
        x_t = tuple(None if x is None else x[t] for x in xs) if several else xs[t]
        y, new_state = step(x_t, state)
        if mask is not None:
            m = mask[t].reshape(-1, *(1,) * (y.dim() - 1))  # (B, 1), or (B, 1, 1, 1) for ConvLSTM maps
            new_state = tuple(torch.where(m, n, s) for n, s in zip(new_state, state, strict=True))
            y = y * m
        state = new_state
        ys.append(y)
    return torch.stack(ys), state
