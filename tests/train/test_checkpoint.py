from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import safetensors.torch
import torch
from torch import nn

from lstmkit.models import SequenceModel
from lstmkit.train import (
    Config,
    ModelConfig,
    TrainConfig,
    latest_checkpoint,
    load_checkpoint,
    make_optimizer,
    make_scheduler,
    save_checkpoint,
)


def _trained(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    cfg = TrainConfig(warmup_steps=2)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg, total_steps=10)
    for _ in range(3):
        model(torch.randn(5, 3)).square().mean().backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    return model, opt, sched, cfg


def test_round_trip_restores_model_optimizer_scheduler_and_state(tmp_path):
    model, opt, sched, cfg = _trained()
    state = {
        "hidden": (torch.randn(2, 3, 4), torch.randn(2, 3, 4)),
        "by_int": {0: torch.arange(3), 7: "x"},
        "numbers": [1, 2.5, None, math.inf, True],
    }
    config = Config(train=cfg)
    path = save_checkpoint(tmp_path, 3, model, optimizer=opt, scheduler=sched, state=state, config=config)
    assert path.name == "step-000000003" and latest_checkpoint(tmp_path) == path

    model2, opt2, sched2, _ = _trained(seed=1)  # same structure, other values
    ckpt = load_checkpoint(tmp_path, model=model2, optimizer=opt2, scheduler=sched2)
    assert ckpt.step == 3 and ckpt.config == config
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for p, p2 in zip(model.parameters(), model2.parameters(), strict=True):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.state[p][key], opt2.state[p2][key])
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999)  # tuples survive JSON
    assert sched2.state_dict() == sched.state_dict()
    assert isinstance(ckpt.state["hidden"], tuple)
    assert all(torch.equal(a, b) for a, b in zip(ckpt.state["hidden"], state["hidden"], strict=True))
    assert torch.equal(ckpt.state["by_int"][0], torch.arange(3)) and ckpt.state["by_int"][7] == "x"
    assert ckpt.state["numbers"] == [1, 2.5, None, math.inf, True]


def test_weights_file_is_plain_safetensors_and_tied_weights_work(tmp_path):
    model = SequenceModel(ModelConfig(vocab_size=11, hidden_size=8, embedding_dim=6, tie_weights=True))
    path = save_checkpoint(tmp_path, 0, model)
    assert "rnn.weight_ih_l0" in safetensors.torch.load_file(path / "model.safetensors")
    fresh = SequenceModel(ModelConfig(vocab_size=11, hidden_size=8, embedding_dim=6, tie_weights=True))
    load_checkpoint(path, model=fresh)
    assert torch.equal(fresh.head.weight, model.embedding.weight)
    assert fresh.head.weight is fresh.embedding.weight  # still tied after loading


def test_keeps_the_newest_and_resaving_a_step_is_safe(tmp_path):
    model = nn.Linear(2, 2)
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, model, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json", "step-000000003", "step-000000004"]
    with torch.no_grad():
        model.weight.fill_(7.0)
    again = save_checkpoint(tmp_path, 4, model, keep=2)  # e.g. after resuming from step 3
    assert again.name == "step-000000004-1"
    assert json.loads((tmp_path / "index.json").read_text())["checkpoints"] == ["step-000000003", again.name]
    assert not (tmp_path / "step-000000004").exists()
    fresh = nn.Linear(2, 2)
    load_checkpoint(tmp_path, model=fresh)
    assert (fresh.weight == 7.0).all()


def test_failure_halfway_through_a_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model = nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.fill_(1.0)
    save_checkpoint(tmp_path, 1, model, state={"tag": "good"})

    def half_write(tensors, filename, *args, **kwargs):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 10)  # a torn file, then the "crash"
        raise OSError("disk full")

    with torch.no_grad():
        model.weight.fill_(2.0)
    monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 2, model, state={"tag": "bad"})
    monkeypatch.undo()

    fresh = nn.Linear(3, 3)
    ckpt = load_checkpoint(tmp_path, model=fresh)
    assert ckpt.step == 1 and ckpt.state["tag"] == "good" and (fresh.weight == 1.0).all()
    # A failed save (a full disk) removes its own temporary folder; a killed one is cleaned by the next save.
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
    save_checkpoint(tmp_path, 3, model)
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())


_SAVER = textwrap.dedent(
    """
    import sys, torch
    from lstmkit.train import save_checkpoint
    model = torch.nn.Linear(512, 512)  # 1 MiB of weights: each save takes a while
    step = 0
    while True:
        step += 1
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(step))
        save_checkpoint(sys.argv[1], step, model, state={"step": step}, keep=2)
    """
)


@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_sigkill_during_saves_leaves_a_loadable_consistent_checkpoint(tmp_path, delay):
    proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while latest_checkpoint(tmp_path) is None:  # wait for the first complete save
            assert proc.poll() is None and time.monotonic() < deadline, "saver died before its first save"
            time.sleep(0.01)
        time.sleep(delay)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    model = torch.nn.Linear(512, 512)
    ckpt = load_checkpoint(tmp_path, model=model)
    # Weights, state and name all come from the same save.
    assert ckpt.state["step"] == ckpt.step >= 1
    assert (model.weight == float(ckpt.step)).all() and (model.bias == float(ckpt.step)).all()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a checkpoint root"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path, 1, nn.Linear(2, 2))
    trainer = tmp_path / "step-000000001" / "trainer.json"
    trainer.write_text(json.dumps({**json.loads(trainer.read_text()), "version": 9}))
    with pytest.raises(ValueError, match=r"unsupported lstmkit.checkpoint version 9"):
        load_checkpoint(tmp_path)
    with pytest.raises(TypeError, match="cannot store a object in a checkpoint without pickle"):
        save_checkpoint(tmp_path, 2, nn.Linear(2, 2), state={"x": object()})
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        save_checkpoint(tmp_path, -1, nn.Linear(2, 2))
