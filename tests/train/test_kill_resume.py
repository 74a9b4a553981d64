"""Issue 16 fault injection: a training process killed (SIGKILL) at random moments, then resumed,
ends with exactly the weights of a run never interrupted, whatever the kill hit (a step, a checkpoint
being written, metrics.csv, model.safetensors)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap

import pytest
import safetensors.torch
import torch

_TRAIN = textwrap.dedent(
    """
    import os, random, signal, sys, threading, torch
    from lstmkit.data import TokenStreamBatcher
    from lstmkit.models import SequenceModel
    from lstmkit.train import Config, ModelConfig, TrainConfig, fit, lm_step, seed_everything

    out, kill_step, kill_ms = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    seed_everything(0)
    model_cfg = ModelConfig(vocab_size=6, hidden_size=8, num_layers=1, dropout=0.2)
    train_cfg = TrainConfig(epochs=2, warmup_steps=2, checkpoint_every=2, progress=False, tensorboard=False,
                            lr=1e-2, log_every=1)
    corpus = torch.randint(0, 6, (180,), generator=torch.Generator().manual_seed(1))
    data = TokenStreamBatcher(corpus[:150], batch_size=3, bptt=7)
    val = TokenStreamBatcher(corpus[150:], batch_size=2, bptt=7)

    def on_step(log):
        if log.step == kill_step:  # SIGKILL a moment later: mid-step, mid-checkpoint, mid-anything
            threading.Timer(kill_ms / 1000, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()

    fit(SequenceModel(model_cfg), data, lm_step, config=Config(model=model_cfg, train=train_cfg), out_dir=out,
        val_data=val, on_step=on_step, resume=True)
    """
)


def _train(out, kill_step=-1, kill_ms=0.0):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.abspath("src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", _TRAIN, str(out), str(kill_step), str(kill_ms)], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    r = _train(out)
    assert r.returncode == 0, r.stderr
    return safetensors.torch.load_file(str(out / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_killed_at_random_points_and_resumed_matches_the_uninterrupted_run(tmp_path, uninterrupted, seed):
    rng = random.Random(seed)
    out = tmp_path / "run"
    kills = 0
    for _ in range(2):  # two kills per seed, at random steps and random moments after them
        r = _train(out, kill_step=rng.randint(1, 13), kill_ms=rng.uniform(0, 40))
        kills += r.returncode == -9
        assert r.returncode in (0, -9), r.stderr
    r = _train(out)  # resume to the end
    assert r.returncode == 0, r.stderr
    assert kills >= 1
    final = safetensors.torch.load_file(str(out / "model.safetensors"))
    assert final.keys() == uninterrupted.keys()
    for k, v in uninterrupted.items():
        assert torch.equal(final[k], v), k
    assert not list(out.rglob(".tmp-*"))
