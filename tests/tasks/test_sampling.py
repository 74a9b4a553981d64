"""Sampling with temperature and top-k."""

from __future__ import annotations

import math

import pytest
import torch

from lstmkit.models import SequenceModel
from lstmkit.tasks.sampling import check_sampling_args, next_token, sample
from lstmkit.train import ModelConfig


def draws(logits, n=4000, **kw):
    g = torch.Generator().manual_seed(0)
    return torch.tensor([next_token(logits, generator=g, **kw) for _ in range(n)])


def test_temperature_zero_and_top_k_one_are_greedy():
    logits = torch.tensor([0.1, 2.0, 1.9, -3.0])
    assert (draws(logits, 50, temperature=0.0, top_k=0) == 1).all()
    assert (draws(logits, 50, temperature=5.0, top_k=1) == 1).all()


def test_top_k_keeps_only_the_k_likeliest_and_matches_their_softmax():
    logits = torch.tensor([1.0, 3.0, 0.0, 2.0, -1.0])
    d = draws(logits, temperature=1.0, top_k=2)
    assert set(d.tolist()) == {1, 3}
    p3 = math.exp(3.0) / (math.exp(3.0) + math.exp(2.0))  # 0.73
    assert (d == 1).float().mean() == pytest.approx(p3, abs=0.03)


def test_temperature_flattens_and_sharpens():
    logits = torch.tensor([0.0, 1.0])
    hot = (draws(logits, temperature=10.0, top_k=0) == 1).float().mean()
    cold = (draws(logits, temperature=0.25, top_k=0) == 1).float().mean()
    assert hot == pytest.approx(1 / (1 + math.exp(-0.1)), abs=0.03)
    assert cold == pytest.approx(1 / (1 + math.exp(-4.0)), abs=0.02)


def test_banned_ids_are_never_drawn():
    logits = torch.tensor([5.0, 5.0, 0.0, 0.0])
    d = draws(logits, 500, temperature=1.0, top_k=0, banned=[0, 1])
    assert not ((d == 0) | (d == 1)).any()
    assert next_token(logits, temperature=0.0, top_k=0, banned=[0, 1], generator=torch.Generator()) in (2, 3)


def test_sample_feeds_tokens_back_and_is_seeded():
    model = SequenceModel(ModelConfig(vocab_size=7, hidden_size=8, num_layers=1, dropout=0.0))
    a = sample(model, [2, 3], 20, temperature=1.0, top_k=3, seed=5)
    assert len(a) == 20 and all(0 <= t < 7 for t in a)
    assert a == sample(model, [2, 3], 20, temperature=1.0, top_k=3, seed=5)
    # Greedy sampling equals feeding the whole sequence at once and taking each step's argmax.
    g = sample(model, [2, 3], 6, temperature=0.0)
    logits, _ = model(torch.tensor([2, 3, *g[:-1]])[:, None])
    assert logits[1:, 0].argmax(-1).tolist() == g


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"length": -1, "temperature": 1.0, "top_k": 0}, r"length must be an int in \[0, 1000000\]"),
        ({"length": 5, "temperature": -0.5, "top_k": 0}, "temperature must be a finite number >= 0"),
        ({"length": 5, "temperature": math.nan, "top_k": 0}, "temperature must be a finite number >= 0"),
        ({"length": 5, "temperature": 1.0, "top_k": -2}, "top_k must be an int >= 0"),
    ],
)
def test_bad_arguments_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        check_sampling_args(**kw)
