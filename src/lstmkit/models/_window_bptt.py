r"""The first layer of Graves's synthesis network (the LSTM cell and its soft window over the text) as one
``autograd.Function``: a hand-written backpropagation through time, the fused twin of ``HandwritingNet``'s reference
loop (``_first_layer`` stepping ``LSTMCell`` and the window through autograd), which the tests hold equal in values
and every gradient and check with ``gradcheck`` in float64.

The reference records some 20 small operations a step for autograd and differentiates each on the way back; with
this layer a training step at the task's sizes takes 0.63 of its time (``benchmarks/handwriting_train_step.py``).
Here, on the CPU in float32/float64 where the C++ extension builds, each direction is one call into
``lstm_scan.cpp`` (``window_forward``, ``window_backward``): per step one product for all four gates on the path the
fused LSTM's own loop takes (brgemm on panels on AMD's AVX-512 CPUs, where MKL's sgemm is at half their speed), the
1-D layer's gate pass, one product for the window's parameters and the window in plain loops, nothing recorded;
every weight gradient is one product over all T steps after the loop (``lstmkit.nn.bptt.weight_gradient``).
Elsewhere the same steps run as tensor operations (the loops below, ``lstmkit.nn.bptt``'s gate math), and the tests
hold both equal to the reference. The same sums as the reference, in a different order: the gates' input is
x_t W_x^T + b_ih + b_hh (all T at once) + [h_{t-1}, w_{t-1}] W_hw^T, W_hw = [W_hh, W_w], where the reference's cell
computes [x_t, w_{t-1}] W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh.

One step t (B batch, H hidden, K window Gaussians, U text length, A alphabet; u = 0 .. U-1)::

    a_t = x_t W_x^T + b + [h_{t-1}, w_{t-1}] W_hw^T                         (B, 4H)
    (act_t, c_t, h_t) = gates(a_t, c_{t-1})                                 lstmkit.nn.bptt.gates_forward
    (alpha_hat, beta_hat, kappa_hat) = h_t W_win^T + b_win                  (B, 3K)
    beta = exp(beta_hat), kappa_t = kappa_{t-1} + exp(kappa_hat)
    g_t[k, u] = exp(alpha_hat_k - beta_k (kappa_t,k - u)^2)                 (B, K, U), saved
    phi_t[u] = sum_k g_t[k, u] (u < the text's length, else 0)              (B, U)
    w_t = phi_t C                                                           C the one-hot text (B, U, A)

and its backward, with dw_t, dh_t, dkappa_t, dc_t the gradients arriving at the step's outputs and state::

    dphi = C dw_t (+ the phi output's gradient, u < length);    dz = dphi[:, None, :] g_t      (B, K, U)
    d alpha_hat = sum_u dz,   d beta_hat = -beta sum_u dz (kappa_t - u)^2
    dkappa_t += -2 beta sum_u dz (kappa_t - u);  d kappa_hat = dkappa_t exp(kappa_hat);  dkappa_{t-1} = dkappa_t
    dh_t += d(alpha_hat, beta_hat, kappa_hat) W_win
    (da_t, dc_{t-1}) = gates'(dh_t, dc_t)                                   lstmkit.nn.bptt.gates_backward
    [dh_{t-1}, dw_{t-1}] = da_t W_hw

``valid`` (T, B) masks padded steps as the reference does: past a sequence's end its state (h, c, kappa, w) is
carried, its h and phi outputs are zero and its w output is the carried w; their gradients pass straight back.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lstmkit.nn.bptt import (
    autocast_off,
    extension,
    gate_kernels,
    gates_backward,
    gates_forward,
    refuse_second_order,
    weight_gradient,
)

SECOND_ORDER_REFUSAL = (
    "the handwriting network's fused window layer has a hand-written backward that cannot be differentiated again "
    "(gradients made with create_graph=True were differentiated); set model.window_impl = 'reference', whose "
    "torch operations autograd differentiates to any order"
)


class WindowLayerFn(torch.autograd.Function):
    """(x, h0, c0, kappa0, w0, w_ih, w_hh, b_ih, b_hh, w_win, b_win, onehot, in_text, valid) -> (h (T, B, H), w
    (T, B, A), phi (T, B, U), h_T, c_T, kappa_T, w_T). onehot (B, U, A) is the text, zero at u >= its length;
    in_text (B, U) that mask in x's dtype; valid (T, B) bool or None (no padded step)."""

    @staticmethod
    def forward(ctx, x, h0, c0, kappa0, w0, w_ih, w_hh, b_ih, b_hh, w_win, b_win, onehot, in_text, valid):
        T, B, Ix = x.shape
        H, U, A, K = w_hh.shape[1], onehot.shape[1], onehot.shape[2], w_win.shape[0] // 3
        kernels = gate_kernels(x)
        xg = torch.addmm(b_ih + b_hh, x.reshape(T * B, Ix), w_ih[:, :Ix].t()).view(T, B, 4 * H)  # (T B, Ix) -> ...
        w_hw = torch.cat([w_hh, w_ih[:, Ix:]], dim=1)  # (4H, H + A): one product over [h_{t-1}, w_{t-1}]
        positions = torch.arange(U, dtype=x.dtype, device=x.device)  # (U,)
        hw = x.new_empty(T + 1, B, H + A)  # slot t: [h_{t-1}, w_{t-1}], the state step t reads
        hw[0, :, :H] = h0
        hw[0, :, H:] = w0
        cs = x.new_empty(T + 1, B, H)  # c_{-1} (the given c0) .. c_{T-1}
        cs[0] = c0
        kappas = x.new_empty(T + 1, B, K)
        kappas[0] = kappa0
        acts = x.new_empty(T, B, 4 * H)  # the activated gates
        tcs = x.new_empty(T, B, H)  # tanh(c_t)
        hs = x.new_empty(T, B, H)  # each step's h before masking: what the window read
        es = x.new_empty(T, B, 2 * K)  # (beta, exp(kappa_hat))
        gs = x.new_empty(T, B, K, U)  # alpha_k exp(-beta_k (kappa_k - u)^2)
        phis = x.new_empty(T, B, U)
        if kernels:  # the whole loop in C++ (lstm_scan.cpp's window_forward): the same steps as below
            extension().window_forward(xg, w_hw.t().contiguous(), w_win.t().contiguous(), b_win.contiguous(),
                                       onehot, in_text, valid, hw, cs, kappas, acts, tcs, hs, es, gs, phis)  # fmt: skip
        else:  # tensor operations (other devices and dtypes, or no C++ compiler)
            pre = x.new_empty(B, 4 * H)
            ps = x.new_empty(T, B, 3 * K)  # (alpha_hat, beta_hat, kappa_hat)
            for t in range(T):
                torch.addmm(xg[t], hw[t], w_hw.t(), out=pre)
                gates_forward(pre, cs[t], acts[t], cs[t + 1], tcs[t], hs[t], kernels=False)
                torch.addmm(b_win, hs[t], w_win.t(), out=ps[t])
                torch.exp(ps[t, :, K:], out=es[t])
                beta, step = es[t, :, :K], es[t, :, K:]
                torch.add(kappas[t], step, out=kappas[t + 1])
                d = kappas[t + 1].unsqueeze(-1) - positions  # (B, K, 1) against (U,) -> (B, K, U)
                torch.exp(ps[t, :, :K].unsqueeze(-1) - beta.unsqueeze(-1) * d.square_(), out=gs[t])
                torch.mul(gs[t].sum(1), in_text, out=phis[t])
                hw[t + 1, :, :H] = hs[t]
                hw[t + 1, :, H:] = torch.bmm(phis[t].unsqueeze(1), onehot).squeeze(1)  # (B, 1, U) @ (B, U, A)
                if valid is not None:  # past its end a sequence keeps its state
                    v = valid[t].unsqueeze(1)  # (B, 1)
                    hw[t + 1] = torch.where(v, hw[t + 1], hw[t])
                    cs[t + 1] = torch.where(v, cs[t + 1], cs[t])
                    kappas[t + 1] = torch.where(v, kappas[t + 1], kappas[t])
                    phis[t] *= v
        h_out = hs if valid is None else hs * valid.unsqueeze(-1)
        ctx.save_for_backward(x, w_ih, w_hw, w_win, onehot, in_text, hw, cs, kappas, acts, tcs, hs, es, gs,
                              *([] if valid is None else [valid]))  # fmt: skip
        ctx.kernels = kernels
        return (h_out, hw[1:, :, H:].clone(), phis, hw[T, :, :H].clone(), cs[T].clone(), kappas[T].clone(),
                hw[T, :, H:].clone())  # fmt: skip

    @staticmethod
    @refuse_second_order(SECOND_ORDER_REFUSAL)
    def backward(ctx, dh_out, dw_out, dphi_out, dh_T, dc_T, dkappa_T, dw_T):
        x, w_ih, w_hw, w_win, onehot, in_text, hw, cs, kappas, acts, tcs, hs, es, gs, *rest = ctx.saved_tensors
        valid = rest[0] if rest else None
        T, B, Ix = x.shape
        H, U, K = hs.shape[2], onehot.shape[1], w_win.shape[0] // 3
        positions = torch.arange(U, dtype=x.dtype, device=x.device)

        def start(g: Tensor | None, like: Tensor) -> Tensor:
            return torch.zeros_like(like) if g is None else g.clone(memory_format=torch.contiguous_format)

        dh, dc = start(dh_T, cs[0]), start(dc_T, cs[0])
        dkappa, dw = start(dkappa_T, kappas[0]), start(dw_T, onehot[:, 0])
        das = hs.new_empty(T, B, 4 * H)  # the gates' pre-activation gradients, for the weight gradients after the loop
        dps = hs.new_empty(T, B, 3 * K)  # the window's (alpha_hat, beta_hat, kappa_hat) gradients, likewise
        if ctx.kernels:  # the whole loop in C++ (lstm_scan.cpp's window_backward): the same steps as below

            def given(g: Tensor | None) -> Tensor | None:
                return None if g is None else g.contiguous()

            extension().window_backward(given(dh_out), given(dw_out), given(dphi_out), w_hw, w_win.contiguous(),
                                        onehot, in_text, valid, cs, kappas, acts, tcs, es, gs, dh, dc, dkappa, dw,
                                        das, dps)  # fmt: skip
        else:
            for t in range(T - 1, -1, -1):
                if dw_out is not None:
                    dw = dw + dw_out[t]  # w_t: the next step's state and this step's w output
                dh_step = dh if dh_out is None else dh + dh_out[t]  # h_out is zero past the end: masked below
                if valid is not None:
                    v = valid[t].unsqueeze(1)  # (B, 1)
                    carry = (dh, dc, dkappa, dw)  # past the end the state went straight through
                    dh_step, dc, dkappa, dw = dh_step * v, dc * v, dkappa * v, dw * v
                dphi = torch.bmm(onehot, dw.unsqueeze(-1)).squeeze(-1)  # (B, U, A) @ (B, A, 1): zero at u >= length
                if dphi_out is not None:
                    dphi_t = dphi_out[t] * in_text
                    dphi = dphi + (dphi_t if valid is None else dphi_t * v)
                dz = dphi.unsqueeze(1) * gs[t]  # (B, K, U)
                d = kappas[t + 1].unsqueeze(-1) - positions  # (B, K, U): kappa_t - u
                dzd = dz * d
                beta, step = es[t, :, :K], es[t, :, K:]
                dp = dps[t]
                torch.sum(dz, -1, out=dp[:, :K])  # d alpha_hat
                torch.mul((dzd * d).sum(-1), beta, out=dp[:, K : 2 * K]).neg_()  # d beta_hat
                dkappa = dkappa - 2 * beta * dzd.sum(-1)  # dL/dkappa_t, also dL/dkappa_{t-1}
                torch.mul(dkappa, step, out=dp[:, 2 * K :])  # d kappa_hat
                dh_step = torch.addmm(dh_step, dp, w_win)  # + the window's use of h_t
                dc = gates_backward(acts[t], tcs[t], cs[t], dh_step, dc, das[t], kernels=False)
                dhw = das[t] @ w_hw  # (B, H + A): [dh_{t-1}, dw_{t-1}]
                dh, dw = dhw[:, :H], dhw[:, H:]
                if valid is not None:
                    dh, dc, dkappa, dw = (torch.where(v, new, old) for new, old in zip((dh, dc, dkappa, dw), carry,
                                                                                        strict=True))  # fmt: skip
        da = das.view(T * B, 4 * H)
        dw_hw = weight_gradient(da, hw[:T].reshape(T * B, -1))  # (4H, H + A)
        dw_ih = torch.cat([da.t() @ x.reshape(T * B, Ix), dw_hw[:, H:]], dim=1)
        db = da.sum(0)
        dp_all = dps.view(T * B, 3 * K)
        dx = (da @ w_ih[:, :Ix]).view(T, B, Ix) if ctx.needs_input_grad[0] else None
        return (dx, dh.contiguous(), dc, dkappa, dw.contiguous(), dw_ih, dw_hw[:, :H].contiguous(), db, db.clone(),
                weight_gradient(dp_all, hs.view(T * B, H)), dp_all.sum(0), None, None, None)  # fmt: skip


State = tuple[Tensor, Tensor, Tensor, Tensor]  # (h, c, kappa, w)


def window_layer(
    x: Tensor,
    state: State,
    cell_weights: tuple[Tensor, ...],
    window_weights: tuple[Tensor, Tensor],
    onehot: Tensor,
    in_text: Tensor,
    valid: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, State]:
    """x (T, B, Ix); state (h0, c0, kappa0, w0); cell_weights (w_ih, w_hh, b_ih, b_hh) of a plain ``LSTMCell``;
    window_weights (weight, bias) of the window's ``Linear``; onehot (B, U, A), in_text (B, U) in x's dtype; valid
    (T, B) bool or None -> h (T, B, H), w (T, B, A), phi (T, B, U) and (h_T, c_T, kappa_T, w_T), through the
    hand-written backward above. Autocast is turned off: the layer runs in the parameters' dtype."""
    with autocast_off(x):
        h, w, phi, *final = WindowLayerFn.apply(x, *state, *cell_weights, *window_weights, onehot.contiguous(),
                                                in_text.contiguous(), None if valid is None else valid.contiguous())
    return h, w, phi, tuple(final)
