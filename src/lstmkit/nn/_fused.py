"""Fused LSTM recurrence: one autograd node per layer and direction, with a hand-written BPTT.

The caller computes the input side for all time steps at once (one matrix product, LayerNorm and
biases included) and passes it in as ``xg``; this kernel runs only what must be sequential. Per
step the forward does one recurrent matrix product and the pointwise gate math into preallocated
buffers. The backward walks time in reverse carrying dL/dh and dL/dc,

    dL/dc_t = dL/dh_t * o_t * (1 - tanh^2 c_t) + dL/dc_{t+1} * f_{t+1},

and computes the weight gradients once, after the loop, as whole-sequence matrix products.
Its reference twin is ``scan_reference`` (``_reference.lstm_recurrent_step`` under ``_reference.scan``);
tests hold them equal.

Gradients of gradients: a backward called with grad mode on (``create_graph=True``) does not run the
hand-written loop; it recomputes the scan with its reference twin from the node's inputs and lets autograd
differentiate that, so the gradients it returns are a graph that can be differentiated again, to any
order (``second_order_grads``). For that the node keeps its inputs; the input gates are recomputed from
the layer's input x and W_ih (``input_gates``; kept by the input projection's own backward anyway) when the
layer passes them, else the node keeps xg itself.

Shapes: T time, B batch, H hidden, P recurrent output (P = H without projection), G = 3H or 4H.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._reference import lstm_recurrent_step, scan, zone_step
from .weights import LSTMOptions, LSTMWeights


def _ln_forward(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Normalise the last dimension; return (x_hat, 1/std) for the backward."""
    var, mean = torch.var_mean(x, -1, correction=0, keepdim=True)
    rstd = torch.rsqrt(var + eps)
    return (x - mean) * rstd, rstd


def _ln_backward(dxhat: Tensor, xhat: Tensor, rstd: Tensor) -> Tensor:
    """Gradient through x_hat = (x - mean) / std, given dL/dx_hat (gain already applied)."""
    mean_d = dxhat.mean(-1, keepdim=True)
    mean_dx = (dxhat * xhat).mean(-1, keepdim=True)
    return (dxhat - mean_d - xhat * mean_dx) * rstd


class ScanArgs(NamedTuple):
    """Everything the recurrence reads, in the order the kernels take it.

    Autograd functions and the C++ extension take their inputs positionally, so this order is the
    one place it is written: ``scan_args`` builds it from the typed weights, and every kernel call
    is ``Kernel.apply(*args)``. The first ``N_DIFFERENTIABLE`` entries can receive gradients.
    """

    xg: Tensor  # (T, B, G) input side of every step, biases included
    h0: Tensor  # (B, P)
    c0: Tensor  # (B, H)
    w_hh: Tensor  # (G, P)
    w_hr: Tensor | None  # (P, H)
    peep: Tensor | None  # (2 or 3, H)
    g_hh: Tensor | None  # (G,)
    g_c: Tensor | None  # (H,)
    b_c: Tensor | None  # (H,)
    drop: Tensor | None  # (B, P) recurrent-dropout mask, scaled by 1/(1-p)
    mask: Tensor | None  # (T, B) bool, False past a sequence's end
    coupled: bool
    eps: float
    # Zoneout, as weights z of the state before the step: h_t = (1 - z_h) h~_t + z_h h_{t-1} (likewise c), h~_t and
    # c~_t the step's own result. (T, B, P) and (T, B, H), or (1, B, .) for one row every step: 0/1 draws in
    # training, the rate p in eval mode. Last, with defaults, so that the positional constructions stay valid.
    zone_h: Tensor | None = None
    zone_c: Tensor | None = None


N_DIFFERENTIABLE = 9  # xg ... b_c
N_SCAN_ARGS = len(ScanArgs._fields)


class GateSource(NamedTuple):
    """Where a layer's input gates xg came from (``input_gates(x, w, opt)``), passed to a scan node after its
    ScanArgs so that a backward with ``create_graph=True`` can rebuild xg as a function of them; all None
    when the caller has only xg (the node then keeps xg itself)."""

    x: Tensor | None = None  # (T, B, I) the layer's input
    w_ih: Tensor | None = None  # (G, I)
    b_ih: Tensor | None = None  # (G,)
    b_hh: Tensor | None = None  # (G,)
    g_ih: Tensor | None = None  # (G,)

    @classmethod
    def of(cls, x: Tensor | None, w: LSTMWeights) -> GateSource:
        return cls() if x is None else cls(x, w.w_ih, w.b_ih, w.b_hh, w.g_ih)


def input_gates(x: Tensor, w: LSTMWeights, opt: LSTMOptions, linear=F.linear) -> Tensor:
    """Input side of every step at once: LN_ih(W_ih x) + b_ih + b_hh, (T, B, I) -> (T, B, G). ``linear`` runs the
    product (``F.linear``'s contract; the C++ kernel's layers pass ``_cpp.whole_linear``)."""
    if opt.layer_norm:
        # The biases ride in LayerNorm's own bias slot: the same sum, without another pass over (T, B, G).
        bias = None if w.b_ih is None else w.b_ih + w.b_hh
        return F.layer_norm(linear(x, w.w_ih), (w.w_ih.shape[0],), w.g_ih, bias, opt.eps)
    return linear(x, w.w_ih, None if w.b_ih is None else w.b_ih + w.b_hh)


def zone_rows(z: Tensor | None, T: int) -> Tensor | None:
    """A zoneout weight (T or 1, B, .) as (T, B, .) rows, one a step (a view: nothing copied); None stays None."""
    return None if z is None else z.expand(T, *z.shape[1:])


def scan_reference(args: ScanArgs) -> tuple[Tensor, Tensor, Tensor]:
    """The scan through autograd, op by op: the one reference loop (``_reference.scan``) over the reference
    step after its input side (``lstm_recurrent_step``), then zoneout (``zone_step``). Same contract as
    ``lstm_scan``: y (T, B, P), h_n (B, P), c_n (B, H)."""
    xg, h0, c0, w_hh, w_hr, peep, g_hh, g_c, b_c, drop, mask, coupled, eps, zone_h, zone_c = args
    w = LSTMWeights(None, w_hh, w_hr=w_hr, peep=peep, g_hh=g_hh, g_c=g_c, b_c=b_c)
    opt = LSTMOptions(peephole=peep is not None, coupled=coupled, layer_norm=g_hh is not None, eps=eps)
    if zone_h is None and zone_c is None:
        ys, (hn, cn) = scan(lambda a_x, s: lstm_recurrent_step(a_x, s, w, opt, drop), xg, (h0, c0), mask)
        return ys, hn, cn
    T = xg.shape[0]
    zh, zc = zone_rows(zone_h, T), zone_rows(zone_c, T)

    def step(inputs, s):
        a_x, z_h, z_c = inputs
        _, new = lstm_recurrent_step(a_x, s, w, opt, drop)
        h, c = zone_step(new, s, (z_h, z_c))
        return h, (h, c)

    ys, (hn, cn) = scan(step, (xg, zh, zc), (h0, c0), mask)
    return ys, hn, cn


N_RECURRENT = 9  # what recurrent_of returns


def recurrent_of(args: ScanArgs) -> tuple[Tensor | None, ...]:
    """What a scan node's backward reads of its inputs, beside what the forward saved: w_hh, w_hr, peep, g_hh,
    g_c, drop, mask, zone_h, zone_c (in this order in every kernel's backward and ``second_order_grads``)."""
    return (args.w_hh, args.w_hr, args.peep, args.g_hh, args.g_c, args.drop, args.mask, args.zone_h, args.zone_c)


def keep_for_second_order(args: ScanArgs, source: GateSource) -> tuple[Tensor | None, ...]:
    """What a scan node saves, beside what its own backward reads, so that ``second_order_grads`` can rebuild
    the scan: xg (only without a source), h0, c0, b_c and the source. References to tensors that exist
    anyway (the layer input is saved by the input projection's backward when W_ih is trained), not copies."""
    return (args.xg if source.x is None else None, args.h0, args.c0, args.b_c, *source)


def second_order_grads(
    kept: tuple[Tensor | None, ...],
    recurrent: tuple[Tensor | None, ...],
    coupled: bool,
    eps: float,
    grads: tuple[Tensor | None, ...],
    needs: tuple[bool, ...],
) -> tuple[Tensor | None, ...]:
    """A scan node's input gradients as a differentiable graph, for a backward run with grad mode on
    (``create_graph=True``): the scan recomputed by ``scan_reference`` from the node's inputs (``kept``, from
    ``keep_for_second_order``, and ``recurrent`` = ``recurrent_of``'s) and differentiated
    by autograd against ``grads`` (dy, dh_n, dc_n; None for an output autograd never reached). Returns one entry
    per ScanArgs field and GateSource field (None where no gradient is needed)."""
    xg, h0, c0, b_c, *source = kept
    w_hh, w_hr, peep, g_hh, g_c, drop, mask, zone_h, zone_c = recurrent
    src = GateSource(*source)
    if xg is None:  # rebuilt from the layer input: its graph reaches x and W_ih for the next order
        opt = LSTMOptions(peephole=peep is not None, coupled=coupled, layer_norm=g_hh is not None, eps=eps)
        xg = input_gates(src.x, LSTMWeights(src.w_ih, w_hh, src.b_ih, src.b_hh, g_ih=src.g_ih), opt).to(w_hh.dtype)
    args = ScanArgs(xg, h0, c0, w_hh, w_hr, peep, g_hh, g_c, b_c, drop, mask, coupled, eps, zone_h, zone_c)
    out: list[Tensor | None] = [None] * (N_SCAN_ARGS + len(GateSource._fields))
    wrt = [i for i in range(N_DIFFERENTIABLE) if needs[i] and args[i] is not None and args[i].requires_grad]
    pairs = [(y, g) for y, g in zip(scan_reference(args), grads, strict=True) if g is not None]
    if not wrt or not pairs:
        return tuple(out)
    got = torch.autograd.grad(
        [y for y, _ in pairs], [args[i] for i in wrt], [g for _, g in pairs], create_graph=True, allow_unused=True
    )
    for i, g in zip(wrt, got, strict=True):
        out[i] = torch.zeros_like(args[i]) if g is None else g
    return tuple(out)


def scan_args(
    xg: Tensor,
    state: tuple[Tensor, Tensor],
    w: LSTMWeights,
    opt: LSTMOptions,
    drop: Tensor | None = None,
    mask: Tensor | None = None,
    zone: tuple[Tensor | None, Tensor | None] = (None, None),
) -> ScanArgs:
    """The scan's inputs from the state (h0, c0), one layer and direction's weights, the options and the zoneout
    weights (z_h, z_c) (``_reference.zone_weights``).

    The input side (w_ih, b_ih, b_hh, g_ih) is already in ``xg``; the scan reads the rest.
    """
    h0, c0 = state
    return ScanArgs(xg, h0, c0, w.w_hh, w.w_hr, w.peep, w.g_hh, w.g_c, w.b_c, drop, mask, opt.coupled, opt.eps,
                    *zone)  # fmt: skip


def lstm_scan_forward(args: ScanArgs) -> tuple[Tensor, Tensor, Tensor, tuple]:
    """Run the recurrence; return (y (T, B, P), h_n (B, P), c_n (B, H), saved-for-backward)."""
    xg, h0, c0, w_hh, w_hr, peep, g_hh, g_c, b_c, drop, mask, coupled, eps, zone_h, zone_c = args
    T, B, G = xg.shape
    zh, zc = zone_rows(zone_h, T), zone_rows(zone_c, T)
    H = c0.shape[1]
    P = h0.shape[1]
    ln = g_hh is not None
    hs = xg.new_empty(T + 1, B, P)  # state h_t, hs[0] = h0
    cs = xg.new_empty(T + 1, B, H)  # state c_t
    hs[0] = h0
    cs[0] = c0
    acts = torch.empty_like(xg)  # (T, B, G) gate activations i, [f,] g, o
    tcs = xg.new_empty(T, B, H)  # tanh of the (normalised) cell
    ys = xg.new_empty(T, B, P) if (mask is not None or w_hr is not None or zh is not None) else hs[1:]
    # The cell before zoneout, c~_t, where the backward reads it: the output gate's peephole saw it.
    craw = xg.new_empty(T, B, H) if (zc is not None and peep is not None) else None
    hraw = xg.new_empty(T, B, H) if w_hr is not None else None  # o * tanh(c) before projection
    rhat = xg.new_empty(T, B, G) if ln else None
    rrstd = xg.new_empty(T, B, 1) if ln else None
    chat = xg.new_empty(T, B, H) if ln else None
    crstd = xg.new_empty(T, B, 1) if ln else None
    w_hh_t = w_hh.t()  # (P, G), transposed once, not per step
    n_sig_front = H if coupled else 2 * H  # i (and f) sit before g
    p_i = peep[0] if peep is not None else None
    p_f = peep[1] if (peep is not None and not coupled) else None
    p_o = peep[-1] if peep is not None else None

    for t in range(T):
        h_prev = hs[t] if drop is None else hs[t] * drop
        a = acts[t]  # (B, G), filled in place
        if ln:
            r, rrstd[t] = _ln_forward(h_prev @ w_hh_t, eps)  # (B, G)
            rhat[t] = r
            torch.addcmul(xg[t], r, g_hh, out=a)
        else:
            torch.addmm(xg[t], h_prev, w_hh_t, out=a)
        c_prev = cs[t]
        if p_i is not None:
            a[:, :H].addcmul_(c_prev, p_i)
            if p_f is not None:
                a[:, H : 2 * H].addcmul_(c_prev, p_f)
        front = a[:, :n_sig_front]
        front.sigmoid_()
        g = a[:, n_sig_front : n_sig_front + H].tanh_()
        i = a[:, :H]
        c = cs[t + 1]
        if coupled:
            # f = 1 - i, so c = c_prev + i * (g - c_prev)
            torch.addcmul(c_prev, i, g - c_prev, out=c)
        else:
            torch.mul(a[:, H : 2 * H], c_prev, out=c).addcmul_(i, g)
        o = a[:, n_sig_front + H :]
        if p_o is not None:
            o.addcmul_(c, p_o)
        o.sigmoid_()
        if ln:
            cn, crstd[t] = _ln_forward(c, eps)
            chat[t] = cn
            torch.tanh(torch.addcmul(b_c, cn, g_c), out=tcs[t])
        else:
            torch.tanh(c, out=tcs[t])
        if w_hr is not None:
            torch.mul(o, tcs[t], out=hraw[t])
            torch.mm(hraw[t], w_hr.t(), out=ys[t])
        elif mask is not None or zh is not None:
            torch.mul(o, tcs[t], out=ys[t])
        else:
            torch.mul(o, tcs[t], out=hs[t + 1])
        if zc is not None:  # c_t = (1 - z) c~_t + z c_{t-1}
            if craw is not None:
                craw[t] = c
            z = zc[t]
            c.mul_(1.0 - z).addcmul_(z, c_prev)
        if zh is not None:  # the output is the zoned h: y_t = h_t
            z = zh[t]
            ys[t].mul_(1.0 - z).addcmul_(z, hs[t])
        if mask is not None:
            m = mask[t].unsqueeze(-1)  # (B, 1)
            torch.where(m, ys[t], hs[t], out=hs[t + 1])
            torch.where(m, c, cs[t], out=c)
            ys[t].mul_(m)
        elif w_hr is not None or zh is not None:
            hs[t + 1] = ys[t]

    saved = (acts, hs, cs, tcs, hraw, rhat, rrstd, chat, crstd, craw)
    return ys, hs[T], cs[T], saved


def lstm_scan_backward(
    dy: Tensor,
    dhn: Tensor,
    dcn: Tensor,
    saved: tuple,
    w_hh: Tensor,
    w_hr: Tensor | None,
    peep: Tensor | None,
    g_hh: Tensor | None,
    g_c: Tensor | None,
    drop: Tensor | None,
    mask: Tensor | None,
    coupled: bool,
    zone_h: Tensor | None = None,
    zone_c: Tensor | None = None,
) -> tuple[Tensor, ...]:
    """BPTT by hand. Returns dxg, dh0, dc0, dw_hh, dw_hr, dpeep, dg_hh, dg_c, db_c (None if absent).

    With zoneout h_t = (1 - z) h~_t + z h_{t-1}: dL/dh~_t = (1 - z) dL/dh_t, and z dL/dh_t passes straight to
    h_{t-1} beside the cell's own path (likewise c)."""
    acts, hs, cs, tcs, hraw, rhat, rrstd, chat, crstd, craw = saved
    T, B, G = acts.shape
    zh, zc = zone_rows(zone_h, T), zone_rows(zone_c, T)
    H = cs.shape[2]
    ln = g_hh is not None
    nf = H if coupled else 2 * H  # offset of g
    da_all = torch.empty_like(acts)  # dL/d(gate pre-activations) = dL/dxg, (T, B, G)
    dr_all = torch.empty_like(acts) if ln else da_all  # dL/d(W_hh h) before LayerNorm
    dyh = dy.new_empty(T, B, dy.shape[2]) if w_hr is not None else None  # dL/dh_new (T, B, P)
    dcn_all = cs.new_empty(T, B, H) if ln else None  # dL/d(normalised c)
    dh = dhn.clone()
    dc = dcn.clone()
    p_i = peep[0] if peep is not None else None
    p_f = peep[1] if (peep is not None and not coupled) else None
    p_o = peep[-1] if peep is not None else None

    for t in range(T - 1, -1, -1):
        dh_new = dy[t] + dh  # (B, P)
        if mask is not None:
            m = mask[t].unsqueeze(-1).to(dh.dtype)  # (B, 1)
            dh_carry = dh * (1.0 - m)
            dc_carry = dc * (1.0 - m)
            dh_new = dh_new * m
            dc = dc * m
        if zh is not None:
            dh_zone = dh_new * zh[t]
            dh_new = dh_new * (1.0 - zh[t])
        if zc is not None:
            dc_zone = dc * zc[t]
            dc = dc * (1.0 - zc[t])
        if w_hr is not None:
            dyh[t] = dh_new
            dh_new = dh_new @ w_hr  # (B, H)
        a = acts[t]
        i = a[:, :H]
        g = a[:, nf : nf + H]
        o = a[:, nf + H :]
        tc = tcs[t]
        c_prev = cs[t]
        da = da_all[t]
        da_o = da[:, nf + H :]
        # dL/da_o = dL/dh * tanh(c) * o (1 - o)
        torch.mul(dh_new, tc, out=da_o).mul_(o * (1.0 - o))
        dtc = dh_new * o * (1.0 - tc * tc)  # dL/d(LN(c) or c) through tanh
        if ln:
            dcn_all[t] = dtc
            dtc = _ln_backward(dtc * g_c, chat[t], crstd[t])
        dct = dc + dtc  # the additive cell path
        if p_o is not None:
            dct.addcmul_(da_o, p_o)
        da_g = da[:, nf : nf + H]
        torch.mul(dct, i, out=da_g).mul_(1.0 - g * g)
        da_i = da[:, :H]
        if coupled:
            # f = 1 - i: dL/di = dct * (g - c_prev)
            torch.mul(dct, g - c_prev, out=da_i).mul_(i * (1.0 - i))
            dc = dct * (1.0 - i)
        else:
            f = a[:, H : 2 * H]
            torch.mul(dct, g, out=da_i).mul_(i * (1.0 - i))
            da_f = da[:, H : 2 * H]
            torch.mul(dct, c_prev, out=da_f).mul_(f * (1.0 - f))
            dc = dct * f
        if p_i is not None:
            dc.addcmul_(da_i, p_i)
            if p_f is not None:
                dc.addcmul_(da[:, H : 2 * H], p_f)
        if ln:
            dr_all[t] = _ln_backward(da * g_hh, rhat[t], rrstd[t])
        dh = dr_all[t] @ w_hh  # (B, P)
        if drop is not None:
            dh.mul_(drop)
        if mask is not None:
            dh.add_(dh_carry)
            dc.add_(dc_carry)
        if zh is not None:
            dh.add_(dh_zone)
        if zc is not None:
            dc.add_(dc_zone)

    # Weight gradients once, over the whole sequence: (G, T*B) @ (T*B, P).
    h_in = hs[:-1] if drop is None else hs[:-1] * drop  # (T, B, P)
    dw_hh = dr_all.reshape(T * B, G).t() @ h_in.reshape(T * B, -1)
    dw_hr = dyh.reshape(T * B, -1).t() @ hraw.reshape(T * B, H) if w_hr is not None else None
    dpeep = None
    if peep is not None:
        rows = [(da_all[..., :H] * cs[:-1]).sum((0, 1))]
        if not coupled:
            rows.append((da_all[..., H : 2 * H] * cs[:-1]).sum((0, 1)))
        rows.append((da_all[..., nf + H :] * (cs[1:] if craw is None else craw)).sum((0, 1)))  # o's peephole: c~_t
        dpeep = torch.stack(rows)
    dg_hh = dg_c = db_c = None
    if ln:
        dg_hh = (da_all * rhat).sum((0, 1))
        dg_c = (dcn_all * chat).sum((0, 1))
        db_c = dcn_all.sum((0, 1))
    return da_all, dh, dc, dw_hh, dw_hr, dpeep, dg_hh, dg_c, db_c


class LSTMScan(torch.autograd.Function):
    """Autograd node for ``lstm_scan_forward`` / ``lstm_scan_backward``; inputs: a ScanArgs, then a GateSource."""

    @staticmethod
    def forward(ctx, *inputs):  # a ScanArgs, then a GateSource, splatted
        a = ScanArgs(*inputs[:N_SCAN_ARGS])
        ys, hn, cn, saved = lstm_scan_forward(a)
        ctx.coupled, ctx.eps = a.coupled, a.eps
        ctx.n_saved = len(saved)
        ctx.save_for_backward(*saved, *recurrent_of(a), *keep_for_second_order(a, GateSource(*inputs[N_SCAN_ARGS:])))
        # ys may alias the saved state buffer; hand autograd its own tensor.
        return ys.clone() if ys._base is not None else ys, hn.clone(), cn.clone()

    @staticmethod
    def backward(ctx, dy, dhn, dcn):
        tensors = ctx.saved_tensors
        saved = tensors[: ctx.n_saved]
        recurrent = tensors[ctx.n_saved : ctx.n_saved + N_RECURRENT]
        if torch.is_grad_enabled():  # create_graph=True: gradients that can be differentiated again
            kept = tensors[ctx.n_saved + N_RECURRENT :]
            return second_order_grads(kept, recurrent, ctx.coupled, ctx.eps, (dy, dhn, dcn), ctx.needs_input_grad)
        w_hh, w_hr, peep, g_hh, g_c, drop, mask, zone_h, zone_c = recurrent
        # Outputs autograd never reached come back as None: treat them as zero gradients.
        acts = saved[0]
        T, B, _ = acts.shape
        H = saved[2].shape[2]
        P = saved[1].shape[2]
        dy = acts.new_zeros(T, B, P) if dy is None else dy
        dhn = acts.new_zeros(B, P) if dhn is None else dhn
        dcn = acts.new_zeros(B, H) if dcn is None else dcn
        grads = lstm_scan_backward(
            dy, dhn, dcn, saved, w_hh, w_hr, peep, g_hh, g_c, drop, mask, ctx.coupled, zone_h, zone_c
        )
        return (*grads, *[None] * (N_SCAN_ARGS - N_DIFFERENTIABLE + len(GateSource._fields)))


def lstm_scan(
    xg: Tensor,
    state: tuple[Tensor, Tensor],
    w: LSTMWeights,
    opt: LSTMOptions,
    drop: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    zone: tuple[Tensor | None, Tensor | None] = (None, None),
    source: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Fused recurrence over precomputed input gates ``xg`` (T, B, G) from ``state`` (h0 (B, P), c0 (B, H)).

    Returns y (T, B, P), h_n (B, P), c_n (B, H). ``mask`` is (T, B) bool (False past a
    sequence's end), ``drop`` the (B, P) recurrent-dropout mask, already scaled by 1/(1-p), ``zone`` the
    zoneout weights (z_h (T or 1, B, P), z_c (T or 1, B, H), either None; ``_reference.zone_weights``).
    ``source``: the layer input x (T, B, I) when xg is ``input_gates(x, w, opt)``, so that gradients of
    gradients rebuild xg from it instead of keeping xg (see the module docstring).
    """
    args = scan_args(xg, state, w, opt, drop, mask, zone)
    if not torch.is_grad_enabled() or not any(t is not None and t.requires_grad for t in args[:N_DIFFERENTIABLE]):
        with torch.no_grad():
            ys, hn, cn, _ = lstm_scan_forward(args)
        return ys, hn, cn
    return LSTMScan.apply(*args, *GateSource.of(source, w))
