"""Issue 16, item 3: a damaged newest checkpoint does not block a resume.

Resume falls back to the newest intact checkpoint, says which one it used and why, keeps the
damaged one (renamed ``broken-...``) and ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import shutil

import pytest
import torch

from lstmkit.data import TokenStreamBatcher
from lstmkit.models import SequenceModel
from lstmkit.train import Config, ModelConfig, TrainConfig, fit, lm_step, seed_everything
from lstmkit.train.checkpoint import latest_intact_checkpoint


class _Interrupt(Exception):
    pass


def _run(out_dir, stop_at=None):
    seed_everything(0)
    model_cfg = ModelConfig(vocab_size=6, hidden_size=8, num_layers=1, dropout=0.2)
    train_cfg = TrainConfig(epochs=2, warmup_steps=2, checkpoint_every=3, progress=False, tensorboard=False, lr=1e-2)
    corpus = torch.randint(0, 6, (180,), generator=torch.Generator().manual_seed(1))
    data = TokenStreamBatcher(corpus[:150], batch_size=3, bptt=7)
    val = TokenStreamBatcher(corpus[150:], batch_size=2, bptt=7)
    model = SequenceModel(model_cfg)

    def on_step(log):
        if log.step == stop_at:
            raise _Interrupt

    with contextlib.suppress(_Interrupt):
        fit(model, data, lm_step, config=Config(model=model_cfg, train=train_cfg), out_dir=out_dir, val_data=val,
            on_step=on_step)  # fmt: skip
    return model


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("full"))


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run stopped at step 11: checkpoints at steps 7 (end of epoch 0) and 9 are kept."""
    run = tmp_path_factory.mktemp("interrupted") / "run"
    _run(run, stop_at=11)
    return run


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "truncated trainer.safetensors": lambda c: _truncate(c / "step-000000009" / "trainer.safetensors"),
    "flipped byte in model.safetensors": lambda c: (c / "step-000000009" / "model.safetensors").write_bytes(
        (lambda b: b[:-3] + bytes([b[-3] ^ 1]) + b[-2:])((c / "step-000000009" / "model.safetensors").read_bytes())
    ),
    "broken trainer.json": lambda c: (c / "step-000000009" / "trainer.json").write_text("{not json"),
    "trainer.json naming a missing tensor": lambda c: (c / "step-000000009" / "trainer.json").write_text(
        (c / "step-000000009" / "trainer.json").read_text().replace('"t0"', '"t999"', 1)
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_falls_back_to_the_spare_and_matches_the_full_run(tmp_path, full, interrupted, capsys, damage):
    run = shutil.copytree(interrupted, tmp_path / "run")
    ckpts = run / "checkpoints"
    assert json.loads((ckpts / "index.json").read_text())["checkpoints"] == ["step-000000007", "step-000000009"]
    DAMAGE[damage](ckpts)
    capsys.readouterr()
    resumed = _run(run)
    err = capsys.readouterr().err
    assert f"checkpoint {ckpts / 'step-000000009'} is damaged" in err
    assert f"resuming from {ckpts / 'step-000000007'}, the newest intact checkpoint" in err
    assert (ckpts / "broken-step-000000009").is_dir()  # kept for inspection, never deleted
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_broken_index_is_rebuilt_from_the_checkpoints(tmp_path, full, interrupted, capsys):
    run = shutil.copytree(interrupted, tmp_path / "run")
    (run / "checkpoints" / "index.json").write_text('{"format": "lstmkit.checkpoint-index", "vers')
    capsys.readouterr()
    resumed = _run(run)
    assert "index.json is damaged" in capsys.readouterr().err
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_no_intact_checkpoint_is_a_named_error_and_deletes_nothing(tmp_path, interrupted):
    run = shutil.copytree(interrupted, tmp_path / "run")
    ckpts = run / "checkpoints"
    for name in ("step-000000007", "step-000000009"):
        _truncate(ckpts / name / "trainer.safetensors")
    with pytest.raises(ValueError, match="no intact checkpoint to resume from"):
        latest_intact_checkpoint(ckpts)
    assert sorted(p.name for p in ckpts.iterdir() if p.is_dir()) == [
        "broken-step-000000007", "broken-step-000000009"]  # fmt: skip
