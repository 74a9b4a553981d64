"""Plain reference ConvLSTM: the readable textbook cell, one step at a time, through autograd.

The textbook ConvLSTM (Shi et al. 2015) computes all four gates of one step with one convolution
over the channel concatenation [x_t, h_{t-1}]; this module writes exactly that, so that it can be
checked by eye against the equations. The fused layer in ``convlstm.py`` is held equal to it by
the tests (float64, values and every gradient); ``ConvLSTMCell`` runs this step directly, and
``ConvLSTM(impl="reference")`` runs it under ``_reference.scan``, the one reference time loop.

Shapes: T time, B batch, C input channels, Hc hidden channels, G = 4 Hc gate channels, H and W
the frame's height and width (kept by the convolutions' same padding), kh and kw the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._reference import State


@dataclass(frozen=True)
class ConvLSTMOptions:
    """The switches that change the ConvLSTM's equations (not its sizes)."""

    peephole: bool = False
    layer_norm: bool = False
    eps: float = 1e-5


class ConvLSTMWeights(NamedTuple):
    """The tensors of one ConvLSTM layer; absent ones are None. Gate order i, f, g, o as torch.nn.

    ``peep`` is (3, Hc, 1, 1) (one weight per channel) or (3, Hc, H, W) (Shi et al.'s full maps),
    rows i, f, o; either broadcasts against the cell map (B, Hc, H, W).
    """

    w_ih: Tensor  # (G, C, kh, kw)
    w_hh: Tensor  # (G, Hc, kh, kw)
    b: Tensor | None  # (G,)
    peep: Tensor | None  # (3, Hc, 1, 1) or (3, Hc, H, W)
    g_ih: Tensor | None  # (G,) LayerNorm gain on W_ih * x
    g_hh: Tensor | None  # (G,) LayerNorm gain on W_hh * h
    g_c: Tensor | None  # (Hc,) LayerNorm gain on c
    b_c: Tensor | None  # (Hc,) LayerNorm bias on c


def same_padding(w: Tensor) -> tuple[int, int]:
    """Padding that keeps the frame size for a convolution with odd kernel w (.., .., kh, kw)."""
    return w.shape[-2] // 2, w.shape[-1] // 2


def map_layer_norm_reference(x: Tensor, gain: Tensor, bias: Tensor | None, eps: float) -> Tensor:
    """LayerNorm of each sample over all of (channels, H, W), with one gain (and bias) per channel.

    x is (B, K, H, W), gain and bias (K,). This is ``F.group_norm(x, 1, gain, bias)``, written out
    (biased variance, as torch does).
    """
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    var = ((x - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    y = (x - mean) / torch.sqrt(var + eps) * gain[:, None, None]  # gain (K,) -> (K, 1, 1)
    return y if bias is None else y + bias[:, None, None]


def convlstm_step(x: Tensor, state: State, w: ConvLSTMWeights, opt: ConvLSTMOptions) -> tuple[Tensor, State]:
    """One ConvLSTM step ``(x_t, (h, c)) -> (h_t, (h_t, c_t))``; * is convolution, ∘ the Hadamard product.

    .. math::
        a &= W * [x_t, h_{t-1}] + b \\qquad (\\text{layer\\_norm: }
             a = \\mathrm{LN}_{ih}(W_{ih} * x_t) + \\mathrm{LN}_{hh}(W_{hh} * h_{t-1}) + b) \\\\
        i &= \\sigma(a_i + p_i \\circ c_{t-1}),\\quad f = \\sigma(a_f + p_f \\circ c_{t-1}),\\quad
             g = \\tanh(a_g) \\\\
        c_t &= f \\circ c_{t-1} + i \\circ g,\\quad o = \\sigma(a_o + p_o \\circ c_t),\\quad
             h_t = o \\circ \\tanh(\\mathrm{LN}_c(c_t))

    x (B, C, H, W), h (B, Hc, H, W), c (B, Hc, H, W). W = [W_ih, W_hh] along the input channels:
    without ``layer_norm`` the step is the textbook one convolution over the concatenation; with it
    the two sides are normalised separately, so they are two convolutions. LN (each over a sample's
    whole (G, H, W) or (Hc, H, W) map, per-channel gains) only with ``layer_norm``, p only with
    ``peephole``.
    """
    h, c = state
    hidden = c.shape[1]
    if opt.layer_norm:
        a = map_layer_norm_reference(F.conv2d(x, w.w_ih, padding=same_padding(w.w_ih)), w.g_ih, None, opt.eps)
        r = map_layer_norm_reference(F.conv2d(h, w.w_hh, padding=same_padding(w.w_hh)), w.g_hh, None, opt.eps)
        a = a + r  # (B, G, H, W)
        if w.b is not None:
            a = a + w.b[:, None, None]
    else:
        xh = torch.cat([x, h], dim=1)  # (B, C + Hc, H, W)
        weight = torch.cat([w.w_ih, w.w_hh], dim=1)  # (G, C + Hc, kh, kw)
        a = F.conv2d(xh, weight, w.b, padding=same_padding(weight))  # (B, G, H, W)
    a_i, a_f, a_g, a_o = a.split(hidden, dim=1)  # each (B, Hc, H, W)
    if opt.peephole:
        a_i = a_i + w.peep[0] * c
        a_f = a_f + w.peep[1] * c
    i = torch.sigmoid(a_i)
    f = torch.sigmoid(a_f)
    g = torch.tanh(a_g)
    c_new = f * c + i * g
    if opt.peephole:
        a_o = a_o + w.peep[2] * c_new
    o = torch.sigmoid(a_o)
    c_out = map_layer_norm_reference(c_new, w.g_c, w.b_c, opt.eps) if opt.layer_norm else c_new
    h_new = o * torch.tanh(c_out)
    return h_new, (h_new, c_new)
