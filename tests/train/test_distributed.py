"""Data-parallel training: 2 processes on CPU with gloo on loopback against one process.

The processes are started like torchrun starts them (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``), running this file as a script (``python test_distributed.py
worker OUT_DIR``): cheaper than torchrun's agent, and the same code path inside ``fit``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lstmkit.data import TokenStreamBatcher
from lstmkit.models import SequenceModel
from lstmkit.tasks import TASKS, TaskError, get_task, runner
from lstmkit.train import (
    Config,
    DataConfig,
    ModelConfig,
    TrainConfig,
    apply_overrides,
    dump_config,
    fit,
    lm_step,
    seed_everything,
)
from lstmkit.train import distributed as D

HERE = Path(__file__).resolve()
WORLD = 2
STOP_AT = 3  # the interrupted runs stop after the checkpoint of this step, mid-epoch


class _Interrupt(Exception):
    pass


# -- the experiment both sides run --------------------------------------------------------------------
def _corpus() -> torch.Tensor:
    return torch.randint(0, 7, (170,), generator=torch.Generator().manual_seed(3))


def _experiment(
    out_dir: Path, *, accumulate: int = 1, stop_at: int | None = None, poison: int | None = None
) -> list[torch.Tensor]:
    """Stateful TBPTT over 4 streams (2 per rank), 2 epochs with validation; the flat parameters
    after every optimiser step (the last entry: the final, best-by-validation weights).

    ``poison``: the loss of that training batch is NaN on the last rank only (alone: on the batch).
    """
    config = Config(
        model=ModelConfig(vocab_size=7, hidden_size=8, num_layers=2, dropout=0.0),
        data=DataConfig(batch_size=4, bptt=6),
        train=TrainConfig(epochs=2, lr=1e-2, warmup_steps=2, checkpoint_every=STOP_AT, accumulate=accumulate,
                          progress=False, tensorboard=False, log_every=2, patience=5),
    )  # fmt: skip
    corpus = _corpus()
    train = TokenStreamBatcher(corpus[:130], batch_size=4, bptt=6, drop_last=True)  # 5 chunks per epoch
    val = TokenStreamBatcher(corpus[130:], batch_size=2, bptt=6)
    seed_everything(0)
    model = SequenceModel(config.model).double()  # float64: the comparisons see the algorithm, not rounding
    params: list[torch.Tensor] = []

    def on_step(log):
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]).clone())
        if stop_at is not None and log.step == stop_at:
            raise _Interrupt

    calls = 0
    last_rank = int(os.environ.get("RANK", "0")) == int(os.environ.get("WORLD_SIZE", "1")) - 1

    def step(model, batch, state):
        nonlocal calls
        loss, state, items = lm_step(model, batch, state)
        calls += 1
        return (loss * math.nan if calls == poison and last_rank else loss), state, items

    try:
        fit(model, train, step, config=config, out_dir=out_dir, val_data=val, on_step=on_step)
    except _Interrupt:
        return params
    params.append(torch.cat([p.detach().flatten() for p in model.parameters()]).clone())
    return params


def _uneven_experiment(out_dir: Path) -> list[torch.Tensor]:
    """Batch-first windows from a DataLoader (its sampler sharded), 11 of them in batches of 4: the
    last batch of 3 splits 2 + 1 between the ranks; the parameters after every step."""
    config = Config(
        model=ModelConfig(input_size=3, output_size=2, hidden_size=6, num_layers=1, dropout=0.0),
        data=DataConfig(batch_size=4),
        train=TrainConfig(epochs=2, lr=1e-2, warmup_steps=1, stateful=False, progress=False, tensorboard=False),
    )
    g = torch.Generator().manual_seed(1)
    items = [(torch.randn(5, 3, generator=g, dtype=torch.float64), int(torch.randint(0, 2, (1,), generator=g)))
             for _ in range(11)]  # fmt: skip
    loader = DataLoader(items, batch_size=4)  # (B, 5, 3) windows, (B,) labels

    def step(model, batch, state):
        x, y = batch
        logits, _ = model(x.transpose(0, 1))  # (B, T, 3) -> (T, B, 3); logits (T, B, 2)
        return F.cross_entropy(logits[-1], y), None, len(y)

    seed_everything(0)
    model = SequenceModel(config.model).double()
    params: list[torch.Tensor] = []

    def on_step(log):
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]).clone())

    fit(model, loader, step, config=config, out_dir=out_dir, on_step=on_step)
    return params


class _BrokenData:
    def __iter__(self):
        raise ValueError("no validation data here")


def _failing_validation(out_dir: Path) -> str:
    """One epoch whose validation data raises (read on rank 0 only); the error each rank ends with."""
    config = Config(model=ModelConfig(vocab_size=7, hidden_size=4, num_layers=1, dropout=0.0),
                    data=DataConfig(batch_size=4, bptt=6),
                    train=TrainConfig(epochs=1, warmup_steps=1, progress=False, tensorboard=False))  # fmt: skip
    train = TokenStreamBatcher(_corpus()[:130], batch_size=4, bptt=6, drop_last=True)
    try:
        fit(SequenceModel(config.model), train, lm_step, config=config, out_dir=out_dir, val_data=_BrokenData())
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return "no error"


def _worker(tmp: Path) -> None:
    """What each rank runs: full runs, an interrupted run, and a resume of a single-process checkpoint."""
    rank = int(os.environ["RANK"])
    results = {
        "full": _experiment(tmp / "dist_full"),
        "accumulate": _experiment(tmp / "dist_accumulate", accumulate=2),
        "poisoned": _experiment(tmp / "dist_poisoned", poison=2),
        "uneven": _uneven_experiment(tmp / "dist_uneven"),
        "cut": _experiment(tmp / "dist_cut", stop_at=STOP_AT),
        "resumed": _experiment(tmp / "single_cut"),  # a single-process run's checkpoint, resumed on 2 ranks
    }
    results["failed"] = _failing_validation(tmp / "dist_failed")
    # Last, as it ends the process group: what `torchrun ... -m lstmkit train --config charlm.toml` runs.
    metrics = runner.train("charlm", runner.build_config("charlm", tmp / "charlm.toml"), tmp / "command").metrics
    results["command"] = {k: metrics[k] for k in ("nats_per_char", "steps", "processes")}
    torch.save(results, tmp / f"rank{rank}.pt")


# -- launching ------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(rank: int, world: int, port: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port), OMP_NUM_THREADS="1", **extra)  # fmt: skip
    return env


def _run_all(commands: list[tuple[list[str], dict[str, str]]], timeout: float) -> list[subprocess.CompletedProcess]:
    """Start every command at once, wait for all; kill them all when the time is up."""
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cmd, env in commands]  # fmt: skip
    deadline, done = time.monotonic() + timeout, []
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
            p.communicate()
        raise AssertionError(f"the processes were still running after {timeout} s (hanging?)") from None
    return done


# -- the tests ------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread, as each rank has (OMP_NUM_THREADS=1): on a busy 2-core machine two threads
    of these tiny models spin many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_two_ranks_match_one_process_and_resume_each_other(tmp_path):
    # Single-process references, and a single-process run interrupted for the ranks to resume.
    single_full = _experiment(tmp_path / "single_full")
    single_accumulate = _experiment(tmp_path / "single_accumulate", accumulate=2)
    single_poisoned = _experiment(tmp_path / "single_poisoned", poison=2)
    single_uneven = _uneven_experiment(tmp_path / "single_uneven")
    _experiment(tmp_path / "single_cut", stop_at=STOP_AT)
    command = get_task("charlm").smoke_config(tmp_path)
    single_command = runner.train("charlm", command, tmp_path / "command").metrics

    # The free port is free when chosen, not certainly when rank 0 binds it: on a busy machine another
    # process may take it first. Such a failure of the network set-up is retried once, in a fresh directory.
    for attempt in range(2):
        work = tmp_path / f"attempt{attempt}"
        shutil.copytree(tmp_path / "single_cut", work / "single_cut")
        dump_config(command, work / "charlm.toml")
        cmd = [sys.executable, "-W", "error", str(HERE), "worker", str(work)]  # warnings fail, as in pytest
        port = _free_port()
        results = _run_all([(cmd, _env(r, WORLD, port)) for r in range(WORLD)], timeout=120)
        network = ("address already in use", "distnetworkerror", "diststoreerror", "connection reset", "gloo")
        if not any(m in r.stderr.lower() for r in results if r.returncode for m in network):
            break
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    ranks = [torch.load(work / f"rank{r}.pt") for r in range(WORLD)]

    # A NaN loss on one rank skips the step on every rank, as a NaN in the batch does in one process.
    poisoned = ranks[0]["poisoned"]
    assert torch.equal(poisoned[1], poisoned[0]) and not torch.equal(poisoned[2], poisoned[1])
    cases = (("full", single_full), ("accumulate", single_accumulate), ("poisoned", single_poisoned),
             ("uneven", single_uneven))  # fmt: skip
    for name, reference in cases:
        steps = ranks[0][name]
        assert len(steps) == len(reference) == len(ranks[1][name])
        for i, (p0, p1, ref) in enumerate(zip(steps, ranks[1][name], reference, strict=True)):
            assert torch.equal(p0, p1), f"{name}: the ranks' parameters differ after step {i + 1}"
            torch.testing.assert_close(p0, ref, rtol=1e-9, atol=1e-11, msg=f"{name}: step {i + 1} differs")

    # Rank 0 alone wrote the files of the run.
    assert (work / "dist_full" / "model.safetensors").exists()
    rows = (work / "dist_full" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == len(set(rows))

    # An error on rank 0 (here in validation, which only rank 0 runs) is an error on every rank.
    assert ranks[0]["failed"] == "ValueError: no validation data here"
    assert ranks[1]["failed"] == (
        "DistributedError: rank 0 failed to evaluate on the validation data: ValueError: no validation data here"
    )

    # The command's runner: rank 0 wrote the run directory, and the model is the one-process model.
    for rank in ranks:
        assert rank["command"]["processes"] == WORLD and rank["command"]["steps"] == single_command["steps"]
        assert rank["command"]["nats_per_char"] == pytest.approx(single_command["nats_per_char"], rel=1e-5)
    assert json.loads((work / "command" / "summary.json").read_text())["processes"] == WORLD
    assert (work / "command" / "curves.png").exists() and (work / "command" / "tokenizer.json").exists()

    # A checkpoint of the distributed run resumes in one process, and one of a single process on 2 ranks,
    # both ending where the run never stopped ends.
    assert len(ranks[0]["cut"]) == STOP_AT
    resumed_single = _experiment(work / "dist_cut")
    torch.testing.assert_close(resumed_single[-1], single_full[-1], rtol=1e-9, atol=1e-11)
    for rank in ranks:
        torch.testing.assert_close(rank["resumed"][-1], single_full[-1], rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("rank", range(WORLD))
def test_a_world_size_that_does_not_divide_the_batch_stops_each_rank_before_the_rendezvous(rank, tmp_path, monkeypatch):
    for name, value in _env(rank, WORLD, _free_port()).items():
        monkeypatch.setenv(name, value)
    config = apply_overrides(get_task("adding").smoke_config(tmp_path), ["data.batch_size=3"])
    message = "data.batch_size = 3 is the global batch and must be divisible by the world size 2"
    with pytest.raises(TaskError, match=message):  # the command's path
        runner.train("adding", config, tmp_path / "run")
    with pytest.raises(ValueError, match=message):  # fit called by a script under torchrun
        fit(torch.nn.Linear(2, 2), [], lm_step, config=config, out_dir=tmp_path / "fit")
    assert not (tmp_path / "run").exists() and not (tmp_path / "fit").exists()


@pytest.mark.parametrize("rank", range(WORLD))
def test_a_rank_that_cannot_reach_the_rendezvous_stops_with_a_clear_error(rank, tmp_path, monkeypatch):
    # Rank 0 waits for a rank 1 that never comes; rank 1 finds no rank 0 at its address. In this process:
    # a failed rendezvous leaves no process group behind.
    port = _free_port()
    for name, value in _env(rank, WORLD, port, **{D.TIMEOUT_ENV: "2"}).items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    expected = f"rank {rank} of 2: could not join the other processes at 127.0.0.1:{port} within 2 s"
    with pytest.raises(TaskError, match=expected):
        runner.train("adding", get_task("adding").smoke_config(tmp_path), tmp_path / "run")
    assert time.monotonic() - started < 30
    assert not torch.distributed.is_initialized() and not (tmp_path / "run").exists()


def _torchrun(task: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, Config]:
    config = get_task(task).smoke_config(tmp_path)
    dump_config(config, tmp_path / "config.toml")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD),
           "--local-ranks-filter", "0", "-m", "lstmkit", "train", "--task", task, "--config",
           str(tmp_path / "config.toml"), "--out", str(tmp_path / "dist")]  # fmt: skip
    (result,) = _run_all([(cmd, {**os.environ, "OMP_NUM_THREADS": "1"})], timeout=180)
    return result, config


@pytest.mark.slow  # torchrun's agent and two fresh workers: 15 s; the default run covers the runner above
def test_torchrun_trains_the_default_task_like_one_process(tmp_path):
    result, config = _torchrun("charlm", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("run directory:") == 1  # --local-ranks-filter 0: rank 0's report only
    dist_summary = json.loads((tmp_path / "dist" / "summary.json").read_text())
    single = runner.train("charlm", config, tmp_path / "single")
    assert dist_summary["processes"] == WORLD and single.metrics["processes"] == 1
    assert dist_summary["steps"] == single.metrics["steps"]
    assert dist_summary["nats_per_char"] == pytest.approx(single.metrics["nats_per_char"], rel=1e-5)


@pytest.mark.slow
def test_two_torchrun_agents_meet_like_two_machines(tmp_path):
    """The several-machine launch of docs/distributed.md, with both "machines" on this host."""
    config = get_task("charlm").smoke_config(tmp_path)
    dump_config(config, tmp_path / "config.toml")
    agent = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
             "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--rdzv-id", "two-nodes",
             "-m", "lstmkit", "train", "--task", "charlm", "--config", str(tmp_path / "config.toml"),
             "--out", str(tmp_path / "dist")]  # fmt: skip
    results = _run_all([(agent, {**os.environ, "OMP_NUM_THREADS": "1"})] * 2, timeout=180)
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "dist" / "summary.json").read_text())
    single = runner.train("charlm", config, tmp_path / "single")
    assert summary["processes"] == 2
    assert summary["nats_per_char"] == pytest.approx(single.metrics["nats_per_char"], rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_trains_under_torchrun(task, tmp_path):
    try:
        get_task(task).check_data(get_task(task).smoke_config(tmp_path))
    except TaskError as e:
        pytest.skip(f"no data for {task}: {e}")
    result, _ = _torchrun(task, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "dist" / "summary.json").exists() and (tmp_path / "dist" / "model.safetensors").exists()


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _worker(Path(sys.argv[2]))
