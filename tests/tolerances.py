"""Tolerances for comparing two implementations, from a derived rounding-error bound (lstmkit/_rounding.py).

Every comparison of two kernels (C++ against Python, inference against training, lstmkit against
onnxruntime) allows ``between(bound)``: each side is within a bound of the exact result, which grows
with the sizes (gate sums of K terms, LayerNorm over G and H, T steps, layers) and with the
magnitudes of weights and inputs. See the derivation at the top of ``lstmkit/_rounding.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lstmkit import _rounding
from lstmkit.nn import LSTM


def _largest(t: Tensor | None) -> float:
    return float(t.detach().abs().max()) if t is not None and t.numel() else 0.0


def scan_tolerance(args: dict, *, gradients: bool = True, input_side: tuple | None = None) -> float:
    """Allowed difference between two evaluations of ``lstm_scan(**args)``: absolute for the outputs,
    and with ``gradients`` relative to the largest entry of each gradient (the backward is linear in
    the incoming gradient).

    The scan takes precomputed input gates xg (T, B, G), so each gate sums P recurrent terms, xg and
    the peephole term; with ``gradients`` the sums also run over the G gates (dh = W_hh^T dgates) and
    over the T*B rows of the weight gradients. ``input_side`` = (x, w_ih, b_ih, b_hh) when one of the two
    evaluations computes xg = W_ih x + b_ih + b_hh itself, in another order: each gate then sums I + 2 terms
    more, of sizes up to ||W_ih||_inf max|x| and the biases.
    """
    xg, w_hh = args["xg"], args["w_hh"]
    extra_k, extra_a = 0, 0.0
    if input_side is not None:
        x, w_ih, b_ih, b_hh = input_side
        extra_k = x.shape[-1] + 2
        extra_a = _rounding.row_abs_sum(w_ih) * _largest(x) + _largest(b_ih) + _largest(b_hh)
    T, B, G = xg.shape
    H = args["c0"].shape[1]
    P = w_hh.shape[1]
    c_max = _largest(args["c0"]) + T
    drop = _largest(args.get("drop")) or 1.0
    proj = _rounding.row_abs_sum(args.get("w_hr"))
    h_max = max(_largest(args["h0"]), proj or 1.0)
    a_max = (_largest(xg) + _rounding.row_abs_sum(w_hh) * h_max * drop + _largest(args.get("peep")) * c_max
             + extra_a)
    K = P + 2 + extra_k if not gradients else max(P + 2 + extra_k, G, T * B)
    ln_gain = max(_largest(args.get("g_hh")), _largest(args.get("g_c")), 1.0)
    bound = _rounding.lstm_error(
        xg.dtype, T=max(T, 1), K=K, a_max=a_max, H=H, G=G, c0_max=_largest(args["c0"]),
        layer_norm=args.get("g_hh") is not None, ln_gain=ln_gain,
    )
    if proj:
        bound = proj * bound + _rounding.gamma(H, _rounding.unit_roundoff(xg.dtype)) * proj
    if args.get("zone_h") is not None or args.get("zone_c") is not None:
        bound += _rounding.zoneout_error(T, max(c_max, h_max), _rounding.unit_roundoff(xg.dtype))
    return _rounding.between(bound)


def module_tolerance(m: LSTM, x: Tensor, *, gradients: bool = False) -> float:
    """Allowed difference between two evaluations of the LSTM module ``m`` on ``x`` (T, B, I), zero state."""
    return _rounding.between(_module_error(m, x, gradients=gradients))


def head_tolerance(m: LSTM, head, x: Tensor, logits: Tensor) -> tuple[float, float]:
    """Allowed differences between two evaluations of ``head(m(x)[0])``, the LSTM ``m`` on ``x`` (T, B, I) under a
    linear layer ``head`` (V, D H): (absolute, for the logits, h and c; relative, for every gradient of the loss
    ``sum(logits ** 2) + sum(h) + sum(c) / 2``, scaled by ``max(1, max|gradient|)`` like ``module_tolerance``'s).

    Logits: the LSTM's bound carried through the head's row sums, plus the head's own sum (``linear_error``).
    Gradients: the backward is linear in the incoming gradient 2 logits, which carries up to 2 e_logits, relative
    e_logits / max|logits| (``logits``: one evaluation's, for their size); the head's products sum V terms (dy) and
    T B terms (dW, the embedding's rows); the LSTM's backward adds its own relative bound, times the head's row
    sums where dy enters it. First order, as every bound here (lstmkit/_rounding.py)."""
    T, B = x.shape[0], x.shape[1]
    u = _rounding.unit_roundoff(x.dtype)
    y_max = max(_rounding.row_abs_sum(getattr(m, f"weight_hr_l{m.num_layers - 1}", None)), 1.0)
    e_y = _module_error(m, x)
    e_logits = _rounding.linear_error(head.weight, head.bias, e_y, y_max, u)
    e_h = max(e_y, e_logits)
    K = max(head.out_features, head.in_features + 1, T * B)
    w = max(_rounding.row_abs_sum(head.weight.T), 1.0)  # dy = W^T dlogits: W's column sums
    rel = (e_logits / max(_largest(logits), u) + _rounding.gamma(K, u)
           + w * _module_error(m, x, gradients=True))  # fmt: skip
    return _rounding.between(e_h), _rounding.between(rel)


def _module_error(m: LSTM, x: Tensor, *, gradients: bool = False) -> float:
    """One evaluation's bound for ``module_tolerance`` (before ``between``)."""
    T = x.shape[1 if m.batch_first else 0]
    x_max = _largest(x)
    err = 0.0
    u = _rounding.unit_roundoff(x.dtype)
    for layer in range(m.num_layers):
        worst = 0.0
        for suffix in ("", "_reverse")[: m.num_directions]:
            def p(name: str, layer=layer, suffix=suffix) -> Tensor | None:
                return getattr(m, f"{name}_l{layer}{suffix}", None)

            w_ih, w_hh = p("weight_ih"), p("weight_hh")
            w_in, proj = _rounding.row_abs_sum(w_ih), _rounding.row_abs_sum(p("weight_hr"))
            keep = 1 - getattr(m, "recurrent_dropout", 0.0)  # training scales the fed-back h by 1/keep
            keep *= 1 - getattr(m, "weight_dropout", 0.0)  # and DropConnect W_hh's kept entries by 1/(1 - p)
            h_in = max(proj, 1.0)  # |h| <= 1, or the projection's row sums
            a_max = (w_in * (x_max if layer == 0 else h_in) + _rounding.row_abs_sum(w_hh) * h_in / keep
                     + _largest(p("bias_ih")) + _largest(p("bias_hh")) + _largest(p("weight_ch")) * T)
            K = w_ih.shape[1] + w_hh.shape[1] + 3
            if gradients:
                K = max(K, w_ih.shape[0], T * x.shape[1])
            gains = [_largest(p(n)) for n in ("weight_ln_ih", "weight_ln_hh", "weight_ln_c")]
            e = _rounding.lstm_error(x.dtype, T=T, K=K, a_max=a_max, H=m.hidden_size, G=w_ih.shape[0],
                                     c0_max=0.0, layer_norm=m.layer_norm, ln_gain=max([*gains, 1.0]),
                                     dx=err, w_in=w_in)
            if proj:
                e = proj * e + _rounding.gamma(m.hidden_size, u) * proj
            if getattr(m, "zoneout", (0.0, 0.0)) != (0.0, 0.0):
                e += _rounding.zoneout_error(T, max(T, h_in), u)
            worst = max(worst, e)
        err = worst
    return err


def baseline_step_tolerance(cell, x: Tensor, h: Tensor) -> float:
    """Allowed difference between two evaluations of one GRUCell / RNNCell step at (x (B, I), h (B, H)) in the
    cell's dtype: each side within 4 K u A of the exact h' (K = I + H + 2 terms a pre-activation sums, u the unit
    roundoff, A the largest sum of their absolute values; sigmoid, tanh and ReLU are 1-Lipschitz, and GRU's n and h'
    each add at most the errors of the two values they mix; zoneout's eval-mode mix adds its own), so twice that
    between the two."""
    x, h = x.detach(), h.detach()
    u = torch.finfo(x.dtype).eps / 2
    a = x.abs() @ cell.weight_ih.detach().abs().T + h.abs() @ cell.weight_hh.detach().abs().T  # (B, G)
    if cell.bias_ih is not None:
        a = a + cell.bias_ih.detach().abs() + cell.bias_hh.detach().abs()
    K = x.shape[-1] + h.shape[-1] + 2
    err = 4 * K * u * float(a.max())
    if getattr(cell, "zoneout", 0.0):  # eval mode's p h + (1 - p) h': two more roundings of values up to max(|h|, 1)
        err += 2 * u * max(float(h.abs().max()), 1.0)
    return 2 * err

