from __future__ import annotations

import math
import random

import jiwer
import pytest

from lstmkit.metrics import bits_per_char, cer, edit_distance, perplexity, wer


def test_perplexity_and_bits_per_char():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(50)) == pytest.approx(50)  # uniform over 50 tokens
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)
    assert bits_per_char(math.log(256)) == pytest.approx(8.0)
    with pytest.raises(ValueError, match="mean_cross_entropy must be a finite number >= 0"):
        perplexity(-1.0)
    with pytest.raises(ValueError, match="finite"):
        bits_per_char(float("nan"))


def test_edit_distance_hand_computed():
    assert edit_distance("kitten", "sitting") == 3  # 2 substitutions + 1 insertion
    assert edit_distance("", "abc") == 3
    assert edit_distance("abc", "") == 3
    assert edit_distance(["a", "b"], ["a", "b"]) == 0


def test_wer_cer_hand_computed():
    # "the cat sat" -> "the bat sat down": 1 substitution + 1 insertion over 3 words.
    assert wer("the cat sat", "the bat sat down") == pytest.approx(2 / 3)
    # Corpus level: errors and words are summed before dividing: (1 + 0) / (2 + 3).
    assert wer(["a b", "c d e"], ["a x", "c d e"]) == pytest.approx(1 / 5)
    assert cer("abcd", "abd") == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        wer(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="references hold no words"):
        wer("", "a")


def _random_sentence(rng, vocab, max_words=8):
    return " ".join(rng.choice(vocab) for _ in range(rng.randint(1, max_words)))


def test_wer_cer_agree_with_jiwer_on_random_cases():
    rng = random.Random(0)
    vocab = ["a", "an", "the", "cat", "cats", "sat", "on", "mat", "x"]
    for _ in range(200):
        n = rng.randint(1, 4)
        refs = [_random_sentence(rng, vocab) for _ in range(n)]
        hyps = [_random_sentence(rng, vocab) for _ in range(n)]
        assert wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
        assert cer(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
