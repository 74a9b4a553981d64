"""``train.max_minutes``: the training loop stops on a wall-clock budget, counted across resumes."""

from __future__ import annotations

import time

import torch

from lstmkit.data import TokenStreamBatcher
from lstmkit.models import SequenceModel
from lstmkit.train import Config, ModelConfig, TrainConfig, fit, lm_step


def test_max_minutes_ends_the_run_and_a_resume_does_not_restart_the_clock(tmp_path):
    config = Config(
        model=ModelConfig(vocab_size=5, hidden_size=8, num_layers=1, dropout=0.0),
        train=TrainConfig(epochs=1000, max_minutes=0.5 / 60, warmup_steps=0, schedule="constant",
                          progress=False, tensorboard=False),
    )  # fmt: skip
    data = TokenStreamBatcher(torch.randint(0, 5, (400,)), 2, 8)

    def slow_step(model, batch, state):
        time.sleep(0.01)
        return lm_step(model, batch, state)

    started = time.perf_counter()
    result = fit(SequenceModel(config.model), data, slow_step, config=config, out_dir=tmp_path)
    assert 0.5 <= time.perf_counter() - started < 3.0
    assert 10 < result.steps < 1000 * len(data)
    again = fit(SequenceModel(config.model), data, slow_step, config=config, out_dir=tmp_path)
    assert again.steps == result.steps  # the budget was spent: nothing more to do
