"""A bigram language model with interpolated Kneser-Ney smoothing: the baseline ``wordlm`` reports.

.. math::
    P(w | v) = \\frac{\\max(c(v, w) - D, 0)}{c(v)} + \\frac{D \\, N_{1+}(v \\bullet)}{c(v)} P_{cont}(w)

    P_{cont}(w) = \\frac{\\max(N_{1+}(\\bullet w) - D, 0)}{N_{1+}(\\bullet\\bullet)}
                  + \\frac{D \\, |\\{w : N_{1+}(\\bullet w) > 0\\}|}{N_{1+}(\\bullet\\bullet)} \\frac{1}{V}

with the discount D = n_1 / (n_1 + 2 n_2) from the counts of bigrams seen once and twice (Ney et
al. 1994). The continuation distribution is itself interpolated with the uniform one, so every
token of the vocabulary has a probability > 0; a context never seen in training backs off to
``P_cont`` alone. Chen & Goodman (1998) found interpolated Kneser-Ney the best n-gram smoothing.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class KneserNeyBigram:
    """Fit on a training id sequence; ``cross_entropy(ids)`` in nats per predicted token."""

    def __init__(self, train_ids: torch.Tensor | np.ndarray, vocab_size: int) -> None:
        ids = np.asarray(train_ids, dtype=np.int64)
        if ids.ndim != 1 or ids.size < 2:
            raise ValueError(f"train_ids must be a 1-D sequence of at least 2 ids, got shape {ids.shape}")
        if ids.min() < 0 or ids.max() >= vocab_size:
            raise ValueError(f"ids must be in [0, {vocab_size}), got range [{ids.min()}, {ids.max()}]")
        V = self.vocab_size = vocab_size
        pairs, counts = np.unique(ids[:-1] * V + ids[1:], return_counts=True)  # sorted bigram codes
        self._pairs, self._counts = pairs, counts
        prev, nxt = pairs // V, pairs % V
        n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
        self.discount = n1 / (n1 + 2 * n2) if n1 else 0.5
        D = self.discount
        self._context_count = np.bincount(prev, weights=counts, minlength=V)  # c(v)
        self._context_types = np.bincount(prev, minlength=V)  # N1+(v .)
        continuation = np.bincount(nxt, minlength=V).astype(np.float64)  # N1+(. w)
        total = continuation.sum()  # N1+(. .): distinct bigram types
        seen = (continuation > 0).sum()
        self._p_cont = np.maximum(continuation - D, 0) / total + D * seen / total / V

    def log_prob(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """log P(nxt | prev) for arrays of ids."""
        V, D = self.vocab_size, self.discount
        codes = prev * V + nxt
        at = np.searchsorted(self._pairs, codes)
        at = np.minimum(at, len(self._pairs) - 1)
        c_vw = np.where(self._pairs[at] == codes, self._counts[at], 0).astype(np.float64)
        c_v = self._context_count[prev]
        p_cont = self._p_cont[nxt]
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(
                c_v > 0,
                np.maximum(c_vw - D, 0) / c_v + D * self._context_types[prev] / c_v * p_cont,
                p_cont,
            )
        return np.log(p)

    def cross_entropy(self, ids: torch.Tensor | np.ndarray) -> float:
        """Mean -log P(w_t | w_{t-1}) over t = 1 .. N-1, in nats."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1 or ids.size < 2:
            raise ValueError(f"ids must be a 1-D sequence of at least 2 ids, got shape {ids.shape}")
        ce = float(-self.log_prob(ids[:-1], ids[1:]).mean())
        assert math.isfinite(ce), "every token has probability > 0 by construction"
        return ce
