"""Chrono initialisation (Tallec & Ollivier 2018) and the curriculum over T of the long-range tasks."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from lstmkit.tasks import TaskError, get_task, runner
from lstmkit.tasks.longrange.adding import AddingData
from lstmkit.tasks.longrange.common import build_model, chrono_biases, curriculum_length, mixed_length


def prepared_config(task: str, *overrides: str):
    return get_task(task).prepare(runner.build_config(task, overrides=["data.val_size=8", "data.test_size=8",
                                                                       *overrides])).config  # fmt: skip


def test_chrono_biases_are_log_of_uniform_1_to_tmax_minus_1():
    b = chrono_biases(20000, 1000, torch.Generator().manual_seed(0)).double()
    assert b.min() >= 0 and b.max() <= math.log(999)  # log U(1, 999)
    # exp(b) is U(1, 999): mean 500, and a quarter of the units below 1 + 998 / 4 = 250.5.
    assert abs(b.exp().mean().item() - 500) < 5
    assert abs((b.exp() < 250.5).double().mean().item() - 0.25) < 0.01
    assert chrono_biases(4, 3, torch.Generator().manual_seed(0)).max() <= math.log(2)  # T_max = 3: U(1, 2)


def test_chrono_sets_lstm_forget_and_input_biases_and_the_gru_update_gate():
    config = prepared_config("adding", "model.forget_bias=none", "model.chrono_tmax=1000")
    torch.manual_seed(0)
    lstm = build_model(config).rnn
    H = lstm.hidden_size
    b_f, b_i = lstm.bias_ih_l0[H : 2 * H], lstm.bias_ih_l0[:H]
    assert torch.equal(b_i, -b_f) and (b_f >= 0).all() and (b_f <= math.log(999)).all()
    assert (lstm.bias_hh_l0[: 2 * H] == 0).all()  # the two bias vectors add up: bias_ih holds it all
    assert b_f.std() > 0.5  # one value per unit, spread over time scales, not one constant
    torch.manual_seed(0)
    again = build_model(config).rnn
    assert torch.equal(again.bias_ih_l0, lstm.bias_ih_l0)  # seeded by the runner's seed_everything
    gru_config = dataclasses.replace(config, model=dataclasses.replace(config.model, cell="gru"))
    torch.manual_seed(0)
    gru = build_model(gru_config).rnn
    G = gru.hidden_size
    assert (gru.bias_ih_l0[G : 2 * G] >= 0).all() and (gru.bias_hh_l0[G : 2 * G] == 0).all()  # z of (r, z, n)
    with pytest.raises(ValueError, match=r"set one of model\.forget_bias and model\.chrono_tmax"):
        runner.build_config("adding", overrides=["model.chrono_tmax=1000"])  # the default forget_bias=3 is set
    with pytest.raises(ValueError, match="needs a gated cell"):
        runner.build_config("adding", overrides=["model.forget_bias=none", "model.chrono_tmax=100", "model.cell=rnn"])
    with pytest.raises(ValueError, match=r"model\.chrono_tmax must be >= 3"):
        runner.build_config("adding", overrides=["model.forget_bias=none", "model.chrono_tmax=2"])


def test_curriculum_doubles_from_the_start_length_up_to_data_length():
    data = AddingData(length=100, curriculum_start=10, curriculum_steps=5)
    assert [curriculum_length(data, s) for s in (0, 4, 5, 9, 10, 15, 20, 1000)] == [10, 10, 20, 20, 40, 80, 100, 100]
    assert curriculum_length(AddingData(length=100), 0) == 100  # off


def test_curriculum_batches_grow_while_validation_stays_at_full_length():
    config = prepared_config("adding", "data.length=40", "data.curriculum_start=10", "data.curriculum_steps=2",
                             "data.train_batches=3")  # fmt: skip
    task = get_task("adding")
    prepared = task.prepare(config)
    data = task.training_data(prepared)
    lengths = []
    for epoch in range(3):
        data.train.set_epoch(epoch)
        lengths += [b.x.shape[0] for b in data.train]
    assert lengths == [10, 10, 20, 20, 40, 40, 40, 40, 40]  # step = epoch * 3 + batch
    assert {b.x.shape[0] for b in data.val} == {40}
    with pytest.raises(TaskError, match=r"curriculum_start 50 exceeds data\.length 40"):
        prepared_config("adding", "data.length=40", "data.curriculum_start=50")
    with pytest.raises(TaskError, match=r"needs a task with data\.length"):
        prepared_config("reber", "data.curriculum_start=5")


def test_mixed_curriculum_draws_lengths_between_the_start_and_the_current_length():
    config = prepared_config("temporal-order", "data.length=100", "data.curriculum_start=10", "data.curriculum_steps=4",
                             "data.train_batches=4", "data.curriculum_mix=0.5")  # fmt: skip
    task = get_task("temporal-order")
    data = task.training_data(task.prepare(config))

    def lengths() -> list[int]:
        out = []
        for epoch in range(8):
            data.train.set_epoch(epoch)
            # a temporal-order batch of base length T has lengths in [T, 1.1 T]: its shortest is T or a little above
            out += [int(b.lengths.min()) for b in data.train]
        return out

    got = lengths()
    caps = [curriculum_length(config.data, s) for s in range(32)]  # 10, 20, 40, 80, 100 every 4 steps
    assert all(10 <= n <= cap + cap // 10 for n, cap in zip(got, caps, strict=True))
    at_cap = [n >= cap for n, cap in zip(got, caps, strict=True)]
    assert 6 <= sum(at_cap) <= 26  # about half at the current length (a binomial(32, 0.5) lies in 6..26)
    assert any(n < cap for n, cap in zip(got[8:], caps[8:], strict=True))  # and some shorter than it once it has grown
    assert lengths() == got  # a replay (a resumed run) sees the same lengths
    plain = prepared_config("temporal-order", "data.length=100", "data.curriculum_start=10", "data.curriculum_steps=4")
    assert mixed_length(plain.data, 80, torch.Generator().manual_seed(0)) == 80  # mix 0: the current length
    with pytest.raises(ValueError, match=r"data\.curriculum_mix must be in \[0, 1\], got 1\.5"):
        runner.build_config("adding", overrides=["data.curriculum_start=10", "data.curriculum_mix=1.5"])
    with pytest.raises(ValueError, match=r"data\.curriculum_mix=0\.5 needs a curriculum: set data\.curriculum_start"):
        runner.build_config("adding", overrides=["data.curriculum_mix=0.5"])
