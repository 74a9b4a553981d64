"""The Kneser-Ney bigram baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmkit.tasks.ngram import KneserNeyBigram


def test_each_context_is_a_distribution_over_the_vocabulary():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 12, 500)
    train[train == 11] = 10  # id 11 never occurs: an unseen context and an unseen word
    lm = KneserNeyBigram(train, vocab_size=12)
    everything = np.arange(12)
    for v in range(12):
        p = np.exp(lm.log_prob(np.full(12, v), everything))
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        assert (p > 0).all()
    assert 0 < lm.discount < 1


def test_bigram_beats_unigram_on_structured_text_and_counts_match_by_hand():
    # A deterministic cycle 0 -> 1 -> 2 -> 0 ...: the bigram knows the next id almost surely.
    train = np.tile([0, 1, 2], 200)
    lm = KneserNeyBigram(train, vocab_size=5)
    assert lm.cross_entropy(torch.tensor([0, 1, 2, 0, 1])) < 0.05
    # Only three bigram types, each seen ~200 times: n1 = n2 = 0, so the fallback discount 0.5.
    assert lm.discount == 0.5
    c_v = 200  # c(0) as a context
    p = (200 - 0.5) / c_v + 0.5 * 1 / c_v * lm._p_cont[1]
    assert np.exp(lm.log_prob(np.array([0]), np.array([1])))[0] == pytest.approx(p)


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2 ids"):
        KneserNeyBigram([1], 3)
    with pytest.raises(ValueError, match=r"ids must be in \[0, 3\)"):
        KneserNeyBigram([0, 1, 3], 3)
