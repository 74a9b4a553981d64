from __future__ import annotations

import csv
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lstmkit.data import TokenStreamBatcher
from lstmkit.models import SequenceModel
from lstmkit.nn import LSTM
from lstmkit.train import (
    Config,
    ModelConfig,
    TrainConfig,
    fit,
    lm_step,
    make_optimizer,
    make_scheduler,
    param_groups,
    seed_everything,
    warmup_cosine,
)

TINY = ModelConfig(vocab_size=5, hidden_size=16, num_layers=1, dropout=0.0)


def _config(**train):
    base = {"epochs": 2, "warmup_steps": 1, "progress": False, "tensorboard": False, "log_every": 1}
    return Config(model=TINY, train=TrainConfig(**{**base, **train}))


def _corpus(n=400):
    return torch.arange(n) % 5  # 0 1 2 3 4 0 1 ...: fully predictable, so the loss must fall


class _Toy(nn.Module):
    """One parameter; the step functions of these tests compute their loss from it directly."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))


def test_param_groups_exclude_biases_and_norm_gains():
    model = nn.ModuleDict({"rnn": LSTM(3, 4, layer_norm=True), "norm": nn.LayerNorm(4), "head": nn.Linear(4, 2)})
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == [
        "head.weight", "rnn.weight_hh_l0", "rnn.weight_ih_l0",
    ]  # fmt: skip
    assert sorted(names[id(p)] for p in no_decay["params"]) == [
        "head.bias", "norm.bias", "norm.weight", "rnn.bias_hh_l0", "rnn.bias_ih_l0",
        "rnn.bias_ln_c_l0", "rnn.weight_ln_c_l0", "rnn.weight_ln_hh_l0", "rnn.weight_ln_ih_l0",
    ]  # fmt: skip
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)


def test_param_groups_count_tied_weights_once():
    model = SequenceModel(ModelConfig(vocab_size=7, hidden_size=4, num_layers=1, tie_weights=True))
    groups = param_groups(model, 0.1)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_warmup_cosine_values():
    f = lambda s: warmup_cosine(s, warmup_steps=4, total_steps=14, min_ratio=0.1)  # noqa: E731
    assert [f(s) for s in range(4)] == [0.2, 0.4, 0.6, 0.8]
    assert f(4) == 1.0
    assert f(9) == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the decay
    assert f(14) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)


def test_schedules_drive_the_optimizer_lr():
    model = nn.Linear(2, 2)
    cfg = TrainConfig(lr=1.0, warmup_steps=2, schedule="constant")
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg, total_steps=None)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    with pytest.raises(ValueError, match="needs the run's length"):
        make_scheduler(opt, TrainConfig(), total_steps=None)
    with pytest.raises(ValueError, match=r"warmup_steps \(100\) must be below the run's 50 steps"):
        make_scheduler(opt, TrainConfig(), total_steps=50)


def test_fit_lowers_the_loss_and_writes_metrics(tmp_path):
    seed_everything(0)
    model = SequenceModel(TINY)
    data = TokenStreamBatcher(_corpus(), batch_size=4, bptt=10)  # 10 chunks per epoch
    result = fit(model, data, lm_step, config=_config(epochs=3, lr=3e-2), out_dir=tmp_path)
    losses = [h.train_loss for h in result.history]
    assert result.steps == 30 and len(losses) == 3
    assert losses[0] > 1.0 and losses[-1] < 0.4  # ln 5 = 1.61 at chance
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    assert {r["split"] for r in rows} == {"train"}
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "checkpoints" / "index.json").exists()


def test_stateful_carries_detached_state_and_full_bptt_resets(tmp_path):
    seen, ws = [], []

    def step(model, batch, state):
        seen.append(state)
        ws.append(model.w.item())
        h = model.w * batch + (0 if state is None else state)  # (1,) graph through w and the state
        return h.square().sum(), h, 1

    data = [torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([3.0])]
    fit(_Toy(), data, step, config=_config(epochs=2, schedule="constant"), out_dir=tmp_path / "a")
    assert seen[0] is None and seen[3] is None  # each epoch starts from a fresh state
    for k in (1, 2, 4, 5):  # within an epoch: the previous step's h, as a value without its graph
        previous = 0.0 if seen[k - 1] is None else seen[k - 1].item()
        assert seen[k].item() == pytest.approx(ws[k - 1] * data[(k - 1) % 3].item() + previous)
        assert not seen[k].requires_grad

    seen.clear()
    fit(_Toy(), data, step, config=_config(epochs=1, stateful=False, schedule="constant"), out_dir=tmp_path / "b")
    assert seen == [None, None, None]


def test_nonfinite_steps_are_skipped_then_fail_loudly(tmp_path):
    calls = []

    def step(model, batch, state):
        calls.append(batch)
        loss = (model.w - 1.0).square().sum()
        return (loss * math.nan if batch in (1, 2) else loss), None, 1

    logs = []
    model = _Toy()
    fit(model, [0, 1, 2, 3], step, config=_config(epochs=1, schedule="constant", lr=0.1, max_nonfinite=3),
        out_dir=tmp_path / "a", on_step=logs.append)  # fmt: skip
    assert [log.skipped for log in logs] == [False, True, True, False]
    assert all(math.isfinite(p.item()) for p in model.parameters())

    def always_nan(model, batch, state):
        return model.w.sum() * math.nan, None, 1

    with pytest.raises(FloatingPointError, match="3 consecutive steps had a non-finite loss or gradient"):
        fit(_Toy(), range(10), always_nan, config=_config(epochs=1, max_nonfinite=3, schedule="constant"),
            out_dir=tmp_path / "b")  # fmt: skip

    def inf_grad(model, batch, state):  # finite loss (0), infinite gradient (1 / (2 sqrt(0)))
        return model.w.sqrt().sum(), None, 1

    logs.clear()
    with pytest.raises(FloatingPointError, match="2 consecutive steps had a non-finite loss or gradient"):
        fit(_Toy(), range(10), inf_grad, config=_config(epochs=1, max_nonfinite=2, schedule="constant"),
            out_dir=tmp_path / "c", on_step=logs.append)  # fmt: skip
    assert [(log.loss, log.skipped, log.grad_norm) for log in logs] == [(0.0, True, math.inf)]


def test_early_stopping_restores_the_best_weights(tmp_path):
    val_losses = iter([1.0, 0.5, 0.7, 0.6, 0.9, 0.1])

    def step(model, batch, state):
        if not model.training:  # validation: a scripted loss per epoch
            return torch.tensor(next(val_losses)), None, 1
        return (model.w - 10.0).square().sum(), None, 1  # training keeps moving w

    snapshots = []
    model = _Toy()
    result = fit(
        model, [0, 1], step, config=_config(epochs=10, patience=3, lr=0.1, schedule="constant"),
        out_dir=tmp_path, val_data=[0], on_epoch_end=lambda log: snapshots.append(model.w.item()),
    )  # fmt: skip
    # Epoch 1 is best (0.5); epochs 2, 3, 4 do not beat it -> stop after epoch 4, before 0.1 is seen.
    assert result.stopped_early and len(result.history) == 5
    assert result.best_epoch == 1 and result.best_val_loss == 0.5
    assert [h.improved for h in result.history] == [True, True, False, False, False]
    assert model.w.item() == snapshots[1] != snapshots[4]


def test_plateau_schedule_cuts_lr_on_stalls(tmp_path):
    val_losses = iter([1.0, 1.0, 1.0, 1.0])

    def step(model, batch, state):
        if not model.training:
            return torch.tensor(next(val_losses)), None, 1
        return model.w.square().sum(), None, 1

    cfg = _config(epochs=4, schedule="plateau", plateau_patience=1, plateau_factor=0.5, lr=0.1, patience=10)
    result = fit(_Toy(), [0], step, config=cfg, out_dir=tmp_path, val_data=[0])
    assert [h.lr for h in result.history] == pytest.approx([0.1, 0.1, 0.05, 0.05])


def test_refuses_to_overwrite_checkpoints_without_resume(tmp_path):
    def step(model, batch, state):
        return model.w.square().sum(), None, 1

    cfg = _config(epochs=1, schedule="constant")
    fit(_Toy(), [0], step, config=cfg, out_dir=tmp_path)
    with pytest.raises(ValueError, match="already holds checkpoints; pass resume=True"):
        fit(_Toy(), [0], step, config=cfg, out_dir=tmp_path, resume=False)
    with pytest.raises(TypeError, match=r"config must be a lstmkit.train.Config"):
        fit(_Toy(), [0], step, config=cfg.train, out_dir=tmp_path)


def test_lm_step_is_mean_token_cross_entropy():
    model = SequenceModel(TINY).eval()
    x = torch.randint(0, 5, (6, 3))
    y = torch.randint(0, 5, (6, 3))
    loss, state, items = lm_step(model, (x, y), None)
    logits, _ = model(x)
    assert items == 18 and torch.allclose(loss, F.cross_entropy(logits.reshape(18, 5), y.reshape(18)))
    assert isinstance(state, tuple) and state[0].shape == (1, 3, 16)
