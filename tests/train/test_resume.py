"""A run interrupted and resumed from its checkpoint must give exactly the losses of a run never stopped."""

from __future__ import annotations

import contextlib
import csv
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lstmkit.data import BucketBatchSampler, TokenStreamBatcher, pad_collate
from lstmkit.models import SequenceModel, last_valid
from lstmkit.train import Config, ModelConfig, TrainConfig, fit, lm_step, load_checkpoint, seed_everything


class _Interrupt(Exception):
    pass


def _classify_step(model, batch, state):
    (x, lengths, _), y = batch
    x = x + 0.1 * torch.randn_like(x)  # augmentation noise: draws from the global RNG each step
    logits, _ = model(x, None, lengths)  # (T, B, 2)
    return F.cross_entropy(last_valid(logits, lengths), y), None, len(y)


def _sequences(n=24):
    g = torch.Generator().manual_seed(5)
    xs = [torch.randn(int(torch.randint(3, 9, (1,), generator=g)), 3, generator=g) for _ in range(n)]
    return [(x, int(x[:, 0].sum() > 0)) for x in xs]


def _collate(items):
    return pad_collate([x for x, _ in items]), torch.tensor([y for _, y in items])


def _setup(kind):
    """Each kind exercises another source of state a resume must restore."""
    train = {"epochs": 2, "warmup_steps": 2, "checkpoint_every": 3, "progress": False, "tensorboard": False,
             "log_every": 2, "lr": 1e-2}  # fmt: skip
    if kind == "tbptt":  # carried hidden state, dropout RNG, per-step schedule, validation
        model_cfg = ModelConfig(vocab_size=6, hidden_size=12, num_layers=2, dropout=0.3)
        corpus = torch.randint(0, 6, (180,), generator=torch.Generator().manual_seed(1))
        data = TokenStreamBatcher(corpus[:150], batch_size=3, bptt=7)  # 7 chunks per epoch
        val = TokenStreamBatcher(corpus[150:], batch_size=2, bptt=7)
        return model_cfg, TrainConfig(**train), data, val, lm_step
    model_cfg = ModelConfig(input_size=3, output_size=2, hidden_size=12, num_layers=2, dropout=0.3, cell="gru")
    items = _sequences()
    if kind == "shuffled":  # DataLoader shuffling draws its order from the global RNG at each epoch
        data = DataLoader(items, batch_size=4, shuffle=True, collate_fn=_collate)
    else:  # "bucketed": the sampler's own seeded order, set per epoch by the loop
        sampler = BucketBatchSampler([len(x) for x, _ in items], 4, pool_batches=2, seed=7)
        data = DataLoader(items, batch_sampler=sampler, collate_fn=_collate)
    train_cfg = TrainConfig(**train, stateful=False, schedule="plateau")
    return model_cfg, train_cfg, data, DataLoader(items[:8], batch_size=4, collate_fn=_collate), _classify_step


def _run(kind, out_dir, stop_at=None):
    seed_everything(0)
    model_cfg, train_cfg, data, val, step = _setup(kind)
    model = SequenceModel(model_cfg)
    losses = []

    def on_step(log):
        losses.append(log.loss)
        if log.step == stop_at:
            raise _Interrupt

    with contextlib.suppress(_Interrupt):
        fit(model, data, step, config=Config(model=model_cfg, train=train_cfg), out_dir=out_dir, val_data=val,
            on_step=on_step)  # fmt: skip
    return model, losses


def _csv_losses(path):
    with open(path) as f:
        return [(r["step"], r["split"], r["loss"], r["lr"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("kind", ["tbptt", "shuffled", "bucketed"])
def test_interrupted_and_resumed_run_matches_uninterrupted_exactly(tmp_path, kind):
    full_model, full = _run(kind, tmp_path / "full")
    assert len(full) >= 12

    # Interrupt two steps after the checkpoint at step 9, then resume in a fresh fit().
    _, part = _run(kind, tmp_path / "run", stop_at=11)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints")
    assert ckpt.step == 9 and ckpt.state["progress"]["batch_in_epoch"] > 0  # mid-epoch: the hard case
    resumed_model, rest = _run(kind, tmp_path / "run")
    assert part[9:11] == rest[:2]  # the two lost steps are redone identically
    assert part[:9] + rest == full  # bit-exact, not approximately
    for a, b in zip(full_model.state_dict().values(), resumed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # metrics.csv of the resumed run drops the lost rows and ends up the same as the full run's.
    assert _csv_losses(tmp_path / "run" / "metrics.csv") == _csv_losses(tmp_path / "full" / "metrics.csv")


def test_a_run_killed_between_its_last_checkpoint_and_validation_still_validates(tmp_path):
    # The checkpoint of the last step (max_steps, mid-epoch) is written before the epoch's validation.
    model_cfg, train_cfg, data, val, step = _setup("tbptt")  # 7 chunks per epoch
    config = Config(model=model_cfg, train=dataclasses.replace(train_cfg, max_steps=9))

    def run(out_dir, stop_at=None):
        seed_everything(0)
        model = SequenceModel(model_cfg)

        def on_step(log):
            if log.step == stop_at:
                raise _Interrupt

        with contextlib.suppress(_Interrupt):
            return fit(model, data, step, config=config, out_dir=out_dir, val_data=val, on_step=on_step)

    full = run(tmp_path / "full")
    assert run(tmp_path / "run", stop_at=9) is None  # killed after the checkpoint of step 9
    resumed = run(tmp_path / "run")
    assert resumed.steps == full.steps == 9
    assert resumed.best_val_loss == full.best_val_loss is not None
    assert [h.val_loss for h in resumed.history] == [h.val_loss for h in full.history]
