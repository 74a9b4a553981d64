"""``train.ema_decay``: the weights' exponential moving average, against one computed by hand."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lstmkit.data import pad_collate
from lstmkit.models import SequenceModel, last_valid
from lstmkit.train import Config, ModelConfig, TrainConfig, evaluate, fit, load_checkpoint, seed_everything

DECAY = 0.5  # reached from step 8 on: the warm-up min(decay, (1 + t) / (10 + t)) is below it before


class _Interrupt(Exception):
    pass


def _step(model, batch, state):
    (x, lengths, _), y = batch
    if model.training:  # draws from the global RNG each training step, as augmentation would
        x = x + 0.1 * torch.randn_like(x)
    logits, _ = model(x, None, lengths)
    return F.cross_entropy(last_valid(logits, lengths), y), None, len(y)


def _data():
    g = torch.Generator().manual_seed(5)
    xs = [torch.randn(int(torch.randint(3, 9, (1,), generator=g)), 3, generator=g) for _ in range(24)]
    items = [(x, int(x[:, 0].sum() > 0)) for x in xs]

    def collate(batch):
        return pad_collate([x for x, _ in batch]), torch.tensor([y for _, y in batch])

    return DataLoader(items, batch_size=4, collate_fn=collate), DataLoader(items[:8], batch_size=4, collate_fn=collate)


def _config(decay, **train):
    model = ModelConfig(input_size=3, output_size=2, hidden_size=8, num_layers=1, dropout=0.0)
    train = {"epochs": 2, "warmup_steps": 1, "progress": False, "tensorboard": False, "stateful": False,
             "lr": 3e-2, "ema_decay": decay, **train}  # fmt: skip
    return Config(model=model, train=TrainConfig(**train))


def _fit(config, out_dir, *, val=True, stop_at=None):
    """The run's model, its initial weights, the raw weights after each step, the losses and val losses."""
    seed_everything(0)
    model = SequenceModel(config.model)
    initial = {k: p.detach().clone() for k, p in model.named_parameters()}
    train, val_data = _data()
    weights, losses, val_losses = [], [], []

    def on_step(log):
        weights.append({k: p.detach().clone() for k, p in model.named_parameters()})
        losses.append(log.loss)
        if log.step == stop_at:
            raise _Interrupt

    with contextlib.suppress(_Interrupt):
        fit(model, train, _step, config=config, out_dir=out_dir, val_data=val_data if val else None,
            on_step=on_step, on_epoch_end=lambda e: val_losses.append(e.val_loss))  # fmt: skip
    return model, initial, weights, losses, val_losses


def _by_hand(initial, weights, decay):
    """The averages after each step, computed here in the order the docs give."""
    average, out = dict(initial), []
    for t, w in enumerate(weights):
        d = min(decay, (1 + t) / (10 + t))
        average = {k: average[k] * d + w[k] * (1 - d) for k in average}
        out.append(average)
    return out


def test_the_saved_model_is_the_average_computed_by_hand_and_training_follows_the_raw_weights(tmp_path):
    model, initial, weights, losses, _ = _fit(_config(DECAY), tmp_path / "ema", val=False)
    assert len(weights) == 12  # 6 batches x 2 epochs: the warm-up of d ends at step 8
    expected = _by_hand(initial, weights, DECAY)[-1]
    for k, p in model.named_parameters():
        assert torch.equal(p, expected[k]), k
        assert not torch.equal(p, weights[-1][k]), k  # the average, not the last raw weights
    # The optimiser trains the raw weights: the same losses and weights as a run without the average.
    _, _, plain_weights, plain_losses, _ = _fit(_config(0.0), tmp_path / "plain", val=False)
    assert losses == plain_losses
    assert all(torch.equal(a[k], b[k]) for a, b in zip(weights, plain_weights, strict=True) for k in a)


def test_validation_and_the_best_weights_use_the_average(tmp_path):
    config = _config(DECAY)
    model, initial, weights, losses, val_losses = _fit(config, tmp_path / "ema")
    averages = _by_hand(initial, weights, DECAY)
    _, val_data = _data()
    probe = copy.deepcopy(model)
    expected = []
    for end in (5, 11):  # the last step of each epoch
        probe.load_state_dict(averages[end])
        expected.append(evaluate(probe, val_data, _step))
    assert val_losses == expected
    best = averages[5 if expected[0] < expected[1] else 11]
    assert all(torch.equal(p, best[k]) for k, p in model.named_parameters())
    # Validating on the average leaves training alone: the raw weights go on as without it.
    _, _, _, plain_losses, _ = _fit(_config(0.0), tmp_path / "plain")
    assert losses == plain_losses


def test_a_resumed_run_continues_the_average_exactly(tmp_path):
    config = _config(DECAY, checkpoint_every=4)
    full, _, _, full_losses, full_val = _fit(config, tmp_path / "full")
    _, _, _, part, _ = _fit(config, tmp_path / "run", stop_at=10)  # killed 2 steps after the checkpoint of step 8
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints")
    assert ckpt.step == 8 and ckpt.state["averages"] is not None
    resumed, _, _, rest, resumed_val = _fit(config, tmp_path / "run")
    assert part[:8] + rest == full_losses
    assert resumed_val[-1] == full_val[-1]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resuming_an_unaveraged_checkpoint_with_an_average_is_refused(tmp_path):
    _fit(_config(0.0, checkpoint_every=4), tmp_path / "run", stop_at=5)
    with pytest.raises(ValueError, match="ema_decay"):
        _fit(_config(DECAY, checkpoint_every=4), tmp_path / "run")


@pytest.mark.parametrize("decay", [-0.1, 1.0, float("nan")])
def test_a_decay_outside_0_1_is_refused_by_name(decay):
    with pytest.raises(ValueError, match=r"train\.ema_decay"):
        TrainConfig(ema_decay=decay)
