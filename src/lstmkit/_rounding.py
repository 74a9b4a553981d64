"""Bounds on the floating-point rounding error of an LSTM's evaluation: tolerances that scale with the sizes.

Two correct implementations of the same float32 computation (the C++ and Python kernels, lstmkit and
onnxruntime) differ only by rounding, and how much depends on the sizes (H, I, T, layers) and on the
magnitudes of weights and inputs. A fixed tolerance (1e-5, 1e-4) is right for one shape and wrong for
the next; these functions give one derived from standard forward error analysis (Higham, *Accuracy
and Stability of Numerical Algorithms*, 2nd ed., ch. 3) instead.

Notation: u is the unit roundoff (2**-24 in float32, 2**-53 in float64) and
``gamma(n) = n u / (1 - n u)``, the worst case of a sum of n terms. Worst cases compound into bounds
thousands of times the real error over a recurrence (they assume every rounding goes the same way),
too loose to catch a wrong weight; so, as in Higham & Mary's probabilistic rounding error analysis
(SIAM J. Sci. Comput. 41, 2019), roundings are taken as independent and mean zero, which makes a sum
of n of them at most ``gamma~(n) = min(gamma(n), LAMBDA sqrt(n) u)`` with probability at least
``1 - 2n exp(-LAMBDA**2 / 2)`` (LAMBDA = 6: 3e-8 n).

1. Dot product of length K, summed in any order (blocked, FMA, any thread split):
   ``|fl(w.x) - w.x| <= gamma~(K) sum_k |w_k| |x_k| <= gamma~(K) ||W||_inf max|x|``, with ||W||_inf
   the largest row sum of |W|. A gate pre-activation ``a = W_ih x + b_ih + W_hh h + b_hh`` is one
   sum of K = I + P + 2 terms, so ``da <= gamma(K) A`` where A bounds sum |terms|
   (``||W_ih|| max|x| + ||W_hh|| max|h| + |b_ih| + |b_hh|``; |h| <= 1, or ||W_hr|| with a projection).
2. LayerNorm of a row of n values a (mean m, d = a - m, variance v, r = 1/sqrt(v + eps), z = d r):
   ``|dm| <= gamma(n) max|a|``; ``dv <= gamma(n+2) v + 2 sqrt(v) |dm|`` (Cauchy-Schwarz), so
   ``dr/r <= gamma(n+2)/2 + r |dm| + 2u``; with ``|z| <= sqrt(n)``:
   ``dz <= (1 + sqrt(n)) (gamma(n+4) (1 + kappa) + r da_in)``, kappa = r max|a| the row's largest value
   over its spread, da_in the rounding the row already carries. kappa has no a-priori bound below
   max|a|/sqrt(eps) (a flat row); we take rows whose mean is within one standard deviation of zero,
   so ``kappa <= 1 + sqrt(n)`` and ``r da_in <= kappa da_in / A``. The gain multiplies dz; its bias adds u.
3. The cell: ``c' = f c + i g``, ``h' = o tanh(c')``; sigmoid' <= 1/4, tanh' <= 1 and every gate is
   at most 1 in size, so ``dc' <= |f| dc + (|c|/4 + 1/4 + 1) da + F u (1 + |c|)`` and
   ``dh' <= da/4 + dc' + F u``, with ``|c_t| <= |c_0| + t`` (|i g| <= 1) and F = 8 for the pointwise
   functions and products (the kernel's vectorised sigmoid and tanh are within 6u of exact, tanh's rational
   form the larger: test_float32_gate_functions_over_a_wide_range).
4. T steps: the forget gate passes the cell's error on with a factor |f| <= 1, so the errors of the
   steps add up, and being independent they add like a random walk: ``dh_T <= sqrt(T) * (step error)``
   (``T *`` in the worst case). This is first order and assumes the recurrence does not
   amplify perturbations through W_hh (it is not chaotic) -- true of trained LSTMs and of the random
   models in the tests; a chaotic recurrence has no useful float32 tolerance at all.
5. Layers: layer l's input is layer l-1's output, so its error enters the gates as ``||W_ih|| dh``.
6. Two implementations each within the bound of the exact result are within twice it of each other
   (``between``).

The bound is on absolute error; the outputs h are at most 1 in size. Gradients: the backward pass is
the same kind of recurrence run backwards, linear in the incoming gradient, with products over the
gates (length G) and the weight gradients summed over T*B rows; ``lstm_error`` with those lengths,
times the largest gradient, bounds its error.
"""

from __future__ import annotations

import math

import torch

F_POINTWISE = 8  # rounding of one pointwise function or product, in units of u (see point 3)
LAMBDA = 6.0  # confidence of the probabilistic bounds: each holds with probability >= 1 - 2n exp(-18)


def unit_roundoff(dtype: torch.dtype) -> float:
    """u: half the machine epsilon (2**-24 for float32)."""
    return torch.finfo(dtype).eps / 2


def gamma(n: int, u: float) -> float:
    """gamma~_n = min(n u / (1 - n u), LAMBDA sqrt(n) u): the relative error bound of a sum of n terms."""
    worst = n * u / (1 - n * u) if n * u < 1 else math.inf
    return min(worst, LAMBDA * math.sqrt(n) * u)


def layer_norm_error(n: int, u: float, gain: float = 1.0, da_rel: float = 0.0) -> float:
    """Absolute error of LayerNorm's output over a row of n values (point 2).

    ``da_rel``: the rounding the row already carries, relative to the row's magnitude A (da / A).
    """
    kappa = 1 + math.sqrt(n)  # rows whose mean is within one standard deviation of zero
    return gain * (1 + math.sqrt(n)) * (gamma(n + 4, u) * (1 + kappa) + kappa * da_rel) + u


def cell_step_error(da: float, c_max: float, u: float) -> float:
    """Point 3: the error one LSTM cell step adds to h, given its gate pre-activations' error ``da`` and the cell's
    largest |c|: dc = (|c|/4 + 1/4 + 1) da + F u (1 + |c|), dh = da/4 + dc + F u."""
    fp = F_POINTWISE * u
    return da / 4 + (c_max / 4 + 1.25) * da + fp * (1 + c_max) + fp


def lstm_error(
    dtype: torch.dtype,
    *,
    T: int,
    K: int,
    a_max: float,
    H: int,
    G: int | None = None,
    c0_max: float = 1.0,
    layer_norm: bool = False,
    ln_gain: float = 1.0,
    dx: float = 0.0,
    w_in: float = 0.0,
) -> float:
    """Bound on |fl(h_t) - h_t| (and c_t) of one LSTM layer and direction evaluated in ``dtype`` (points 1-5).

    Args:
        T: time steps. K: terms in each gate's sum (I + P + 2 for a layer; P + 1 for the scan over
        precomputed input gates). a_max: bound on the sum of |terms| of a gate pre-activation.
        H: hidden units; G: gate row length for the LayerNorms (4H, 3H coupled). c0_max: max |c_0|.
        layer_norm: LayerNorm on the gates and cell, with gains up to ``ln_gain``.
        dx, w_in: error of the layer's input (the layer below's bound) and ||W_ih||_inf, for stacking.
    """
    u = unit_roundoff(dtype)
    G = 4 * H if G is None else G
    da = gamma(K, u) * a_max + w_in * dx  # point 1, and point 5: the input's own error
    if layer_norm:  # LN_ih and LN_hh over G each, then LN_c over H on the cell
        da_rel = da / max(a_max, u)
        da = 2 * layer_norm_error(G, u, ln_gain, da_rel) + 2 * u
    step = cell_step_error(da, c0_max + T, u)  # point 3
    if layer_norm:
        step += layer_norm_error(H, u, ln_gain)  # LN_c on the cell, passed on to h with |o tanh'| <= 1
    return math.sqrt(T) * step  # point 4


def zoneout_error(T: int, v_max: float, u: float) -> float:
    """What zoneout's update (1 - z) new + z old adds to a state's bound in ``lstm_error``'s terms: a convex mix, so
    the two values' errors pass on at most as large as the larger; its own four roundings (1 - z, two products, the
    sum) are up to 4 u v_max a step, |values| <= v_max (none for 0/1 weights, all of them for eval mode's z = p),
    growing over the T steps as the steps' own do (point 4)."""
    return math.sqrt(max(T, 1)) * 4 * u * v_max


def log_softmax_error(n: int, v, u: float):
    """Absolute error of a log-softmax z - LSE(z) over n values with |z| <= v: the shifted exponentials' sum and its
    log, gamma(n + 2) + F u (a relative error of the sum is an absolute one of its log), plus the subtraction's
    u (|z| + LSE), at most 2 u (v + log n). ``v`` a float, or a tensor of them (a bound each)."""
    return gamma(n + 2, u) + F_POINTWISE * u + 2 * u * (v + math.log(n))


def linear_error(weight: torch.Tensor, bias: torch.Tensor | None, dx: float, x_max: float, u: float) -> float:
    """Absolute error of y = W x + b (W (N, K)) evaluated in floating point, its inputs carrying an error up to
    ``dx`` and at most ``x_max`` in size: ``||W|| dx + gamma(K + 1) (||W|| x_max + max|b|)`` (points 1 and 5)."""
    w = row_abs_sum(weight)
    return w * dx + gamma(weight.shape[1] + 1, u) * (w * x_max + row_abs_sum(bias))


def between(bound: float) -> float:
    """Two implementations each within ``bound`` of the exact result are within twice it of each other."""
    return 2 * bound


def row_abs_sum(w: torch.Tensor | None) -> float:
    """||W||_inf: the largest row sum of |W| (0 for None); a vector's largest |entry|."""
    if w is None or w.numel() == 0:
        return 0.0
    w = w.detach().double()
    return float(w.abs().sum(-1).max()) if w.dim() > 1 else float(w.abs().max())
