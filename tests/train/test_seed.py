from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from lstmkit.data import TokenStreamBatcher
from lstmkit.models import SequenceModel
from lstmkit.train import (
    Config,
    ModelConfig,
    TrainConfig,
    capture_rng_state,
    fit,
    lm_step,
    restore_rng_state,
    seed_everything,
)


def _losses(seed, out_dir):
    seed_everything(seed)
    cfg = Config(
        model=ModelConfig(vocab_size=6, hidden_size=8, num_layers=2, dropout=0.3),
        train=TrainConfig(epochs=1, warmup_steps=1, progress=False, tensorboard=False),
    )
    corpus = torch.randint(0, 6, (100,))  # drawn from the seeded generator too
    losses = []
    fit(SequenceModel(cfg.model), TokenStreamBatcher(corpus, 3, 8), lm_step, config=cfg, out_dir=out_dir,
        on_step=lambda log: losses.append(log.loss))  # fmt: skip
    return losses


def test_same_seed_same_run_and_other_seed_other_run(tmp_path):
    a = _losses(3, tmp_path / "a")
    assert a == _losses(3, tmp_path / "b")
    assert a != _losses(4, tmp_path / "c")


def test_seed_everything_seeds_python_numpy_and_torch():
    seed_everything(11)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(11)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*32\)"):
        seed_everything(-1)


def test_rng_state_round_trip():
    seed_everything(0)
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's generator state
    np.random.randn()  # and one in NumPy's
    state = capture_rng_state()
    expected = (random.gauss(0, 1), np.random.randn(), torch.randn(2).tolist())
    random.random(), np.random.rand(), torch.rand(5)
    restore_rng_state(state)
    assert (random.gauss(0, 1), np.random.randn(), torch.randn(2).tolist()) == expected
