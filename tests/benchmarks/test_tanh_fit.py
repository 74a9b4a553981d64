"""benchmarks/tanh_fit.py against the kernel's source: the script refits the coefficients that
src/lstmkit/nn/csrc/lstm_scan_pointwise.h holds, and their float32 evaluation stays within the bounds' 8u."""

from __future__ import annotations

import re

import numpy as np

from scripts import BENCHMARKS
from scripts import load_benchmark as _load

HEADER = BENCHMARKS.parent / "src" / "lstmkit" / "nn" / "csrc" / "lstm_scan_pointwise.h"


def _header_coefficients() -> tuple[np.ndarray, np.ndarray]:
    """P and Q of the float tanh_ in the header, lowest degree first."""
    body = HEADER.read_text().split("LK_INLINE float tanh_(float x) {", 1)[1].split("\n}\n", 1)[0]
    lead = {name: float(v) for name, v in re.findall(r"float ([pq]) = ([-+0-9.e]+)f;", body)}
    steps = {"p": [lead["p"]], "q": [lead["q"]]}
    for name, sign, v in re.findall(r"([pq]) = [pq] \* t ([-+]) ([0-9.e+-]+)f;", body):
        steps[name].append(float(sign + v))
    return np.array(steps["p"][::-1], dtype=np.float32), np.array(steps["q"][::-1], dtype=np.float32)


def test_the_script_refits_the_kernels_coefficients_and_they_are_within_the_bound():
    tf = _load("tanh_fit")
    p_header, q_header = _header_coefficients()
    assert p_header.shape == (7,) and q_header.shape == (4,) and p_header[0] == 1 and q_header[0] == 1
    p, q, fit_err = tf.fit(6, 3)
    assert fit_err < 1e-8
    # the same float32 numbers up to the last bit or two (another BLAS may round the least squares differently)
    np.testing.assert_allclose(tf.in_x_squared(p), p_header, rtol=1e-6)
    np.testing.assert_allclose(tf.in_x_squared(q), q_header, rtol=1e-6)
    x = tf.test_points()
    err = np.abs(tf.float32_tanh(x, p_header, q_header) - np.tanh(x.astype(np.float64)))
    assert err.max() <= 6 * tf.U  # the bounds allow 8u per function (lstmkit._rounding.F_POINTWISE)
    assert np.isnan(tf.float32_tanh(np.array([np.nan], dtype=np.float32), p_header, q_header)).all()
