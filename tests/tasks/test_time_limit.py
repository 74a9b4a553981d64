"""``train.max_minutes``: the training loop stops on a wall-clock budget, counted across resumes."""

from __future__ import annotations

import itertools
import time

import pytest
import torch

from lstmkit.data import TokenStreamBatcher
from lstmkit.models import SequenceModel
from lstmkit.train import Config, ModelConfig, TrainConfig, fit, lm_step
from lstmkit.train import loop as loop_module


class FakeClock:
    """The loop's ``time`` module with a ``perf_counter`` that only the steps advance, so that a busy
    machine cannot change how many steps fit in the budget; everything else is the real module."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(loop_module, "time", fake)
    return fake


def test_max_minutes_ends_the_run_and_a_resume_does_not_restart_the_clock(tmp_path, clock):
    config = Config(
        model=ModelConfig(vocab_size=5, hidden_size=8, num_layers=1, dropout=0.0),
        train=TrainConfig(epochs=1000, max_minutes=0.3 / 60, warmup_steps=0, schedule="constant",
                          progress=False, tensorboard=False),
    )  # fmt: skip
    data = TokenStreamBatcher(torch.randint(0, 5, (400,)), 2, 8)

    def slow_step(model, batch, state):
        clock.now += 0.01  # each step takes 10 ms of the loop's clock
        return lm_step(model, batch, state)

    result = fit(SequenceModel(config.model), data, slow_step, config=config, out_dir=tmp_path)
    assert 29 <= result.steps <= 31  # 10 ms a step: about 30 fit in the 0.3 s (of 24,000 asked)
    again = fit(SequenceModel(config.model), data, slow_step, config=config, out_dir=tmp_path)
    assert again.steps == result.steps  # the budget was spent: nothing more to do


def test_the_cosine_follows_the_clock_when_time_runs_out_first(tmp_path, clock):
    config = Config(
        model=ModelConfig(vocab_size=5, hidden_size=8, num_layers=1, dropout=0.0),
        train=TrainConfig(epochs=1000, max_steps=10**6, max_minutes=0.5 / 60, warmup_steps=0, lr=1e-2,
                          min_lr_ratio=0.1, progress=False, tensorboard=False, log_every=1),
    )  # fmt: skip
    data = TokenStreamBatcher(torch.randint(0, 5, (400,)), 2, 8)
    lrs = []

    def slow_step(model, batch, state):
        clock.now += 0.01
        return lm_step(model, batch, state)

    fit(SequenceModel(config.model), data, slow_step, config=config, out_dir=tmp_path,
        on_step=lambda log: lrs.append(log.lr))  # fmt: skip
    # A million steps were asked for and only a few dozen ran, yet the lr decayed to its floor.
    assert 45 <= len(lrs) <= 55  # 10 ms a step in 0.5 s
    assert lrs[0] > 0.6e-2 and lrs[-1] < 0.25e-2  # a step schedule over 10**6 steps would still be at 1e-2
    assert all(a >= b for a, b in itertools.pairwise(lrs))


def test_the_schedule_is_the_step_schedule_while_the_steps_are_ahead(tmp_path):
    base = dict(epochs=1, max_steps=20, warmup_steps=2, lr=1e-2, progress=False, tensorboard=False)
    runs = []
    for minutes in (None, 60.0):
        config = Config(
            model=ModelConfig(vocab_size=5, hidden_size=8, num_layers=1, dropout=0.0),
            train=TrainConfig(**base, max_minutes=minutes),
        )
        torch.manual_seed(0)
        lrs = []
        fit(SequenceModel(config.model), TokenStreamBatcher(torch.arange(400) % 5, 2, 8), lm_step, config=config,
            out_dir=tmp_path / str(minutes), on_step=lambda log, lrs=lrs: lrs.append((log.lr, log.loss)))  # fmt: skip
        runs.append(lrs)
    assert runs[0] == runs[1]  # bit for bit: a generous budget changes nothing
