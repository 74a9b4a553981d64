"""One plain ConvLSTM layer as one ``autograd.Function``: a hand-written backpropagation through time.

What it changes against the autograd arrangements of ``convlstm.py`` (same convolutions, same FLOPs):

- No ``torch.cat([x_t, h_{t-1}])`` per step: one buffer xh (T, B, C + Hc, H, W) is allocated before
  the loop with the input in its first C channels, and each step writes h_t straight into the next
  step's slot. It is also what the weight gradient reads.
- The gate activations write the convolution's output into one saved buffer of gates
  (T, B, G, H, W); per step the backward writes the pre-activation gradients into one (B, G, H, W)
  buffer (not over the gates: a graph kept with ``retain_graph`` may be differentiated again). On the
  CPU the gate math of a step is one pass of the 1-D layer's C++ kernels each way (``bptt``: per batch
  row the pre-activations are the 1-D layer's gate blocks with H := Hc H W); elsewhere tensor operations,
  one kernel per gate gradient, the twin the tests hold equal.
- The step convolution is one strategy object: ``DirectConv`` (one oneDNN call per step gives the
  data, weight and bias gradients; one weight gradient over all T B frames after the loop measured
  slower than T per-step ones: 42.5 against 55.3 GFLOP/s, docs/benchmarks.md) or, for 3x3 kernels
  (``impl="winograd"``), ``WinogradStepConv``: Winograd F(4x4, 3x3) (``_winograd``), 4x fewer
  multiplications, its weight gradient summed over the steps in the transformed domain.
- The large buffers (xh, the states, gates, tanh(c_t), the step buffers) come from ``_workspace``'s pool, kept across
  calls: allocated anew, glibc maps and unmaps them each call and every page faults in again (docs/benchmarks.md,
  session 22).

Plain cell only (no peephole, no LayerNorm); ``lengths`` masking as ``_reference.scan``: past a
sequence's end its state is carried and its output is zero. Shapes: T time, B batch, C input
channels, Hc hidden channels, G = 4 Hc, H x W the frame. Held equal to the reference twin and
checked with ``torch.autograd.gradcheck`` in float64 by tests/nn/test_convlstm.py and
tests/nn/test_winograd.py.

The gate math of a step, each way, is ``bptt.gates_forward`` and ``bptt.gates_backward`` (the equations there);
the data gradient of the step convolution gives [dx_t, dh_{t-1}] from the pre-activation gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _winograd, _workspace
from ._base import autocast_off
from .bptt import gate_kernels as _cpp_pointwise
from .bptt import gates_backward, gates_forward, refuse_second_order

SECOND_ORDER_REFUSAL = (
    "ConvLSTM's hand-written backward (impl='bptt' or 'winograd') cannot be differentiated again (gradients "
    "made with create_graph=True were differentiated); impl='auto', 'concat', 'fused' and 'reference' run "
    "torch operations that autograd differentiates to any order"
)

def _conv_grads(grad: Tensor, inp: Tensor, weight: Tensor, pad: tuple[int, int], data: bool,
                bias: bool) -> tuple[Tensor | None, Tensor, Tensor | None]:  # fmt: skip
    """The gradients of conv2d(inp, weight, b, padding=pad) for the output gradient ``grad``: of inp
    (when ``data``), of weight, of b (when ``bias``); one oneDNN call."""
    return torch.ops.aten.convolution_backward(grad, inp, weight, [weight.shape[0]] if bias else None, [1, 1],
                                               list(pad), [1, 1], False, [0, 0], 1, [data, True, bias])  # fmt: skip


class DirectConv:
    """The step convolution by oneDNN's direct ``F.conv2d``: step t's output from xh_t = [x_t, h_{t-1}], and its
    gradients (``convolution_backward``: data, weight and bias in one call), the weight and bias ones summed
    over the steps. ``channels``: the leading input channels the step reads (all, or C where h_0 = 0)."""

    def __init__(self, weight: Tensor, bias: Tensor | None, pad: tuple[int, int]) -> None:
        self.weight, self.bias, self.pad = weight, bias, pad

    def start_backward(self) -> None:
        """Zero the sums (a graph kept with ``retain_graph`` may be differentiated again)."""
        self.dw = torch.zeros_like(self.weight)  # (G, C + Hc, kh, kw)
        self.db = None if self.bias is None else torch.zeros_like(self.bias)

    def forward(self, t: int, xh: Tensor, channels: int, out: Tensor) -> Tensor:
        full = channels == xh.shape[1]
        return F.conv2d(xh if full else xh[:, :channels], self.weight if full else self.weight[:, :channels],
                        self.bias, padding=self.pad)  # fmt: skip

    def backward(self, t: int, da: Tensor, channels: int, dxh: Tensor | None) -> Tensor | None:
        full = channels == self.weight.shape[1]
        inp = self.xh[t] if full else self.xh[t, :, :channels].contiguous()
        d, dw_t, db_t = _conv_grads(da, inp, self.weight if full else self.weight[:, :channels], self.pad,
                                    dxh is not None, self.db is not None)  # fmt: skip
        self.dw[:, :channels] += dw_t
        if self.db is not None:
            self.db += db_t
        return d

    def weight_grad(self) -> Tensor:
        return self.dw

    def bias_grad(self) -> Tensor | None:
        return self.db


class WinogradStepConv(_winograd.WinogradConv):
    """``_winograd.WinogradConv`` with ``DirectConv``'s bias gradient: the output gradients' sums."""

    def start_backward(self) -> None:
        super().start_backward()
        self.db = None if self.bias is None else torch.zeros_like(self.bias)

    def backward(self, t: int, da: Tensor, channels: int, dxh: Tensor | None) -> Tensor | None:
        out = super().backward(t, da, channels, dxh)
        if self.db is not None:
            # Column 1 of A^T is all ones, so position xi = 7 of dM = A dY A^T holds each tile's sum of dY: the
            # bias gradient from the (G, N) plane instead of another pass over da (B, G, H, W), 16x the data.
            self.db += self.M[7].sum(1)
        return out

    def bias_grad(self) -> Tensor | None:
        return self.db


class ConvLSTMLayerFn(torch.autograd.Function):
    """(x, h0, c0, w_ih, w_hh, b, mask, zero_state, winograd) -> (y, h_T, c_T) of one plain ConvLSTM layer; b and
    mask may be None; ``zero_state``: h0 is zeros made by the caller (no gradient), so step 0 convolves x_0 alone;
    ``winograd``: the step convolutions by ``_winograd`` (3x3 kernels; the caller checks ``_winograd.usable``),
    else by ``F.conv2d``."""

    @staticmethod
    def forward(ctx, x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b: Tensor | None,
                mask: Tensor | None, zero_state: bool = False,
                winograd: bool = False) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        T, B, C, H, W = x.shape
        Hc = w_hh.shape[1]
        pad = (w_hh.shape[-2] // 2, w_hh.shape[-1] // 2)
        weight = torch.cat([w_ih, w_hh], dim=1)  # (G, C + Hc, kh, kw): one convolution over [x_t, h_{t-1}]
        conv = WinogradStepConv(weight, b, T, B, H, W) if winograd else DirectConv(weight, b, pad)
        xh = _workspace.take(x, T + 1, B, C + Hc, H, W)  # slot t holds [x_t, h_{t-1}]; slot T only h_T
        xh[:T, :, :C] = x
        xh[0, :, C:] = h0
        cs = _workspace.take(x, T + 1, B, Hc, H, W)  # c_0 .. c_T
        cs[0] = c0
        ys = x.new_empty(T, B, Hc, H, W)
        gates = _workspace.take(x, T, B, 4 * Hc, H, W)  # the activated gates, saved for the backward
        pre = _workspace.take(x, B, 4 * Hc, H, W)  # one step's pre-activations (Winograd writes them here)
        tcs = _workspace.take(x, T, B, Hc, H, W)  # tanh(c_t), saved for the backward
        kernels = _cpp_pointwise(x)
        for t in range(T):
            # W_hh * h_0 = 0 under zero_state: step 0 convolves the input side alone (C channels, not C + Hc)
            a = conv.forward(t, xh[t], C if zero_state and t == 0 else C + Hc, pre)  # (B, G, H, W)
            gates_forward(a, cs[t], gates[t], cs[t + 1], tcs[t], ys[t], kernels=kernels)  # h_t into ys[t]
            if mask is None:
                xh[t + 1, :, C:] = ys[t]  # h_t is the next step's input
            else:
                m = mask[t].view(B, 1, 1, 1)
                torch.where(m, ys[t], xh[t, :, C:], out=xh[t + 1, :, C:])  # past the end: the state is carried
                torch.where(m, cs[t + 1], cs[t], out=cs[t + 1])
                ys[t].mul_(m)  # and the output is zero
        # The direct convolution's gradients read xh; Winograd's read the input transforms it kept instead.
        ctx.save_for_backward(cs, tcs, gates, *([] if winograd else [xh]), *([] if mask is None else [mask]))
        ctx.conv = conv
        ctx.sizes = (C, Hc, mask is not None, zero_state, winograd, kernels)
        return ys, xh[T, :, C:].clone(), cs[T].clone()

    @staticmethod
    @refuse_second_order(SECOND_ORDER_REFUSAL)
    def backward(ctx, dy: Tensor | None, dh_T: Tensor | None, dc_T: Tensor | None):
        C, Hc, has_mask, zero_state, winograd, kernels = ctx.sizes
        cs, tcs, gates, *rest = ctx.saved_tensors  # gates (T, B, G, H, W)
        conv = ctx.conv
        conv.start_backward()
        if not winograd:
            conv.xh = rest.pop(0)
        mask = rest[0] if has_mask else None
        T, B = gates.shape[:2]
        frame = tuple(cs.shape[-2:])
        dh = torch.zeros_like(cs[0]) if dh_T is None else dh_T.clone()
        dc = torch.zeros_like(cs[0]) if dc_T is None else dc_T.clone(memory_format=torch.contiguous_format)
        need_x, need_h0, need_c0 = ctx.needs_input_grad[:3]
        dx = cs.new_empty(T, B, C, *frame) if need_x else None
        da = _workspace.take(gates, *gates.shape[1:])  # (B, G, H, W): one step's pre-activation gradients
        for t in range(T - 1, -1, -1):
            if dy is not None:
                dh += dy[t] if mask is None else dy[t] * mask[t].view(B, 1, 1, 1)
            carry_h = carry_c = None
            if mask is not None:  # past the end the step passed h and c through: their gradients go straight back
                m = mask[t].view(B, 1, 1, 1)
                carry_h, carry_c = dh * ~m, dc * ~m
                dh, dc = dh * m, dc * m
            a = da
            dc_prev = gates_backward(gates[t], tcs[t], cs[t], dh, dc, a, kernels=kernels)
            if zero_state and t == 0:  # step 0 convolved x_0 alone: its gradients reach W_ih, b and x_0 only
                dx0 = conv.backward(0, a, C, cs.new_empty(B, C, *frame) if need_x else None)
                if dx is not None:
                    dx[0] = dx0
                break  # nothing flows into the caller's zeros (h0 and c0 need no gradient)
            data = t > 0 or need_x or need_h0
            dxh = conv.backward(t, a, C + Hc, cs.new_empty(B, C + Hc, *frame) if data else None)
            if data:
                if dx is not None:
                    dx[t] = dxh[:, :C]
                dh = dxh[:, C:]
            dc = dc_prev
            if carry_h is not None:
                dh = dh + carry_h
                dc = dc + carry_c
        dw, db = conv.weight_grad(), conv.bias_grad()
        if zero_state:
            return (dx, None, None, dw[:, :C], dw[:, C:], db, None, None, None)
        return (dx, dh if need_h0 else None, dc if need_c0 else None, dw[:, :C], dw[:, C:], db, None, None, None)


def convlstm_layer_bptt(x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor, b: Tensor | None,
                        mask: Tensor | None = None, zero_state: bool = False,
                        winograd: bool = False) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One plain ConvLSTM layer over x (T, B, C, H, W) from state (h_0, c_0) each (B, Hc, H, W); mask (T, B)
    bool or None; ``zero_state``: (h_0, c_0) are zeros made by the caller, needing no gradient (step 0 then
    skips W_hh * h_0); ``winograd``: the step convolutions by ``_winograd`` (3x3 kernels, where
    ``_winograd.usable``). Returns y (T, B, Hc, H, W) and (h_T, c_T), through the hand-written backward above."""
    if zero_state and (state[0].requires_grad or state[1].requires_grad):
        raise ValueError("zero_state=True: the initial state must be the caller's zeros, needing no gradient")
    # Under torch.autocast the step convolutions would come back in the lower precision, which the gate kernels do
    # not read: the hand-written layer runs in the parameters' precision (autocast's other impls convolve in it).
    with autocast_off(x):
        y, h, c = ConvLSTMLayerFn.apply(x, state[0], state[1], w_ih, w_hh, b, mask, zero_state, winograd)
    return y, (h, c)
