"""The C++ kernel's float32 tanh: how its coefficients were fitted, and its error, emulated and measured.

The kernel (``src/lstmkit/nn/csrc/lstm_scan_pointwise.h``, ``tanh_``) computes tanh(x) = x P(x^2) / Q(x^2) on x
clamped to [-9, 9] (beyond, tanh rounds to +-1 in float32), P of degree 6 and Q of degree 3 with Q(0) = 1. This
script fits them again: weighted least squares on the relative error of P/Q against tanh(x)/x, linearised as
P - f Q = 0 and iterated with the weights 1 / (f Q_previous) (Sanathanan-Koerner), then a few Lawson-style
reweightings towards the minimax, on x^2 scaled to [0, 1] (the monomials of the unscaled x^2 are too ill-conditioned
to fit), the scale folded back into the coefficients, which are rounded to float32. It prints them as C literals,
the fit's relative error, the float32 evaluation's error over [-12, 12] and down to 1e-30 (numpy, one rounding per
operation, no fused multiply-add), and, where the C++ kernel is built, the kernel's own error on each instruction-set
path it runs (through one LSTM step whose input and forget gates are saturated, so that c = tanh(g)).

    python benchmarks/tanh_fit.py          # about a minute
"""

from __future__ import annotations

import argparse

import numpy as np

CLAMP = 9.0
U = 2.0**-24  # float32 unit roundoff


def fit(m: int, n: int, iterations: int = 40) -> tuple[np.ndarray, np.ndarray, float]:
    """P (m + 1,) and Q (n + 1,) coefficients in s = x^2 / CLAMP^2 (Q[0] = 1), and the fit's max relative error."""
    x = np.concatenate([np.linspace(0, CLAMP, 300001)[1:], np.geomspace(1e-6, 1e-2, 500)])
    s, f = (x / CLAMP) ** 2, np.tanh(x) / x
    q_prev, weights, best = np.ones_like(s), np.ones_like(s), None
    for it in range(iterations):
        powers = np.vander(s, max(m, n) + 1, increasing=True)  # (N, max(m, n) + 1)
        design = np.concatenate([powers[:, : m + 1], -(f[:, None] * powers[:, 1 : n + 1])], axis=1)
        w = weights / (f * q_prev)
        coef, *_ = np.linalg.lstsq(design * w[:, None], f * w, rcond=None)
        p, q = coef[: m + 1], np.concatenate([[1.0], coef[m + 1 :]])
        q_values = np.polyval(q[::-1], s)
        if q_values.min() <= 0:  # a pole in the range: keep the best fit so far
            break
        q_prev = q_values
        err = np.abs(np.polyval(p[::-1], s) / q_values / f - 1)
        if best is None or err.max() < best[2]:
            best = (p.copy(), q.copy(), float(err.max()))
        if it >= 8:
            weights = weights * (1 + 0.5 * err / err.max())
            weights /= weights.mean()
    if best is None:
        raise RuntimeError(f"no pole-free fit of degrees {m}/{n}")
    return best


def in_x_squared(coef: np.ndarray) -> np.ndarray:
    """Coefficients in s = x^2 / CLAMP^2 -> in x^2, rounded to float32."""
    return np.array([c / CLAMP ** (2 * k) for k, c in enumerate(coef)], dtype=np.float32)


def float32_tanh(x: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The kernel's evaluation order in float32 (Horner, one rounding per operation)."""
    xc = np.clip(x, -CLAMP, CLAMP).astype(np.float32)
    t = (xc * xc).astype(np.float32)
    num, den = np.float32(p[-1]), np.float32(q[-1])
    for c in p[-2::-1]:
        num = (num * t + c).astype(np.float32)
    for c in q[-2::-1]:
        den = (den * t + c).astype(np.float32)
    return (xc * num / den).astype(np.float32)


def test_points() -> np.ndarray:
    tiny = np.geomspace(1e-30, 1e-2, 3000)
    return np.concatenate([np.linspace(-12, 12, 2000001), tiny, -tiny, [0.0, CLAMP, -CLAMP]]).astype(np.float32)


def kernel_errors(points: np.ndarray) -> dict[str, float]:
    """Max |tanh error| / u of the C++ kernel on each instruction-set path this CPU runs ({} without the kernel)."""
    import torch

    from lstmkit.nn import LSTMOptions, LSTMWeights, _cpp

    if not _cpp.available():
        return {}
    v = torch.from_numpy(points)
    v = torch.cat([v, torch.zeros(-v.numel() % 16)])
    rows, units = v.numel() // 16, 16
    big = torch.full((rows, units), 100.0)
    gates = torch.stack([big, -big, v.reshape(rows, units), big])  # i = 1, f = 0, g, o = 1: c = tanh(g)
    xg = gates.permute(1, 0, 2).reshape(1, rows, 4 * units).contiguous()  # (T=1, B, G)
    zeros = torch.zeros(rows, units)
    w = LSTMWeights(None, torch.zeros(4 * units, units))
    ext, errors = _cpp._ext(), {}
    before = ext.isa()
    try:
        for isa in _cpp.supported_isas():
            ext.set_isa(isa)
            with torch.no_grad():
                _, _, c = _cpp.lstm_scan_cpp(xg, (zeros, zeros), w, LSTMOptions())
            errors[isa] = float((c.double() - v.double().reshape(rows, units).tanh()).abs().max()) / U
    finally:
        ext.set_isa(before)
    return errors


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--degrees", type=int, nargs=2, default=(6, 3), metavar=("M", "N"),
                   help="degrees of P and Q in x^2 (default 6 3, the kernel's)")
    args = p.parse_args(argv)
    m, n = args.degrees
    if m < 1 or n < 1:
        raise SystemExit(f"--degrees must be >= 1 each, got {m} {n}")
    coef_p, coef_q, fit_err = fit(m, n)
    p32, q32 = in_x_squared(coef_p), in_x_squared(coef_q)
    print(f"degrees {m}/{n} in x^2 on |x| <= {CLAMP}: fit's max relative error {fit_err:.2e}")
    print("P:", ", ".join(f"{c:.9e}f" for c in p32))
    print("Q:", ", ".join(f"{c:.9e}f" for c in q32))
    x = test_points()
    ref = np.tanh(x.astype(np.float64))
    err = np.abs(float32_tanh(x, p32, q32) - ref)
    print(f"float32 evaluation (numpy, no FMA): max abs error {err.max() / U:.2f} u, max relative error "
          f"{(err / np.maximum(np.abs(ref), 1e-300)).max() / U:.2f} u over {x.size:,} points")
    for isa, e in kernel_errors(x).items():
        print(f"C++ kernel, {isa}: max abs error {e:.2f} u")


if __name__ == "__main__":
    main()
