"""The pieces of data-parallel training that need no second process: the environment, sharding
global batches and samplers, and gradient accumulation (``train.accumulate``) in one process."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lstmkit.data import BucketBatchSampler, TokenStreamBatcher
from lstmkit.models import SequenceModel
from lstmkit.train import Config, DataConfig, ModelConfig, TrainConfig, apply_overrides, fit, seed_everything
from lstmkit.train import distributed as D


# -- the environment ----------------------------------------------------------------------------------
def _env(**overrides):
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def test_detect_reads_torchruns_variables():
    assert D.detect({}) is None  # plain python
    assert D.detect(_env(WORLD_SIZE="1", RANK="0")) is None  # torchrun --nproc-per-node 1
    assert D.detect(_env()) == D.DistEnv(rank=1, world_size=2, local_rank=1, master_addr="10.0.0.1", master_port=29500)
    assert D.detect(_env(LOCAL_RANK=None)).local_rank == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"RANK": None}, "RANK is not"),
        ({"RANK": "2"}, r"RANK must be in \[0, WORLD_SIZE=2\)"),
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE must be an integer"),
        ({"MASTER_ADDR": None}, "MASTER_ADDR is not set"),
        ({"MASTER_PORT": None}, "MASTER_PORT is not"),
    ],
)
def test_detect_names_what_is_wrong(overrides, message):
    with pytest.raises(D.DistributedError, match=message):
        D.detect(_env(**overrides))


def test_timeout_from_env():
    assert D.timeout_from_env({}).total_seconds() == D.DEFAULT_TIMEOUT_S
    assert D.timeout_from_env({D.TIMEOUT_ENV: "2.5"}).total_seconds() == 2.5
    for bad in ("0", "-1", "soon", "inf"):
        with pytest.raises(D.DistributedError, match=D.TIMEOUT_ENV):
            D.timeout_from_env({D.TIMEOUT_ENV: bad})


def test_alone_the_collectives_are_plain_calls():
    assert (D.world_size(), D.rank(), D.is_main()) == (1, 0, True)
    assert D.on_main(lambda: 3, "compute") == 3
    assert D.all_gather_objects("x") == ["x"]
    assert D.all_reduce_sum([1.0, 2.0]) == [1.0, 2.0]
    D.agree(None, "do nothing")
    with pytest.raises(KeyError):
        D.agree(KeyError("own"), "fail")


def test_the_world_size_must_divide_the_global_batch():
    D.check_batch_size(6, 1)
    D.check_batch_size(6, 3)
    with pytest.raises(ValueError, match=r"data\.batch_size = 6 is the global batch .* divisible by the world size 4"):
        D.check_batch_size(6, 4)


# -- splitting batches ----------------------------------------------------------------------------------
class _Batch(NamedTuple):
    x: torch.Tensor  # (T, B, I)
    y: torch.Tensor  # (B,)
    lengths: torch.Tensor | None


def test_split_batch_takes_contiguous_rows_and_concat_undoes_it():
    batch = _Batch(torch.randn(4, 5, 3), torch.arange(5), None)
    parts = [D.split_batch(batch, r, 2) for r in range(2)]
    assert [p.x.shape[1] for p in parts] == [3, 2]  # uneven: lower ranks one more
    assert torch.equal(parts[1].y, torch.tensor([3, 4])) and parts[1].lengths is None
    whole = D.concat_batches(parts)
    assert isinstance(whole, _Batch) and torch.equal(whole.x, batch.x) and torch.equal(whole.y, batch.y)
    state = (torch.randn(2, 4, 8), torch.randn(2, 4, 8))  # an LSTM's (h, c): (L, B, H)
    assert torch.equal(D.concat_batches([D.split_batch(state, r, 4) for r in range(4)])[1], state[1])


def test_split_batch_refuses_tensors_that_disagree_on_the_batch():
    with pytest.raises(ValueError, match=r"disagree on the batch size \[3, 5\]"):
        D.split_batch((torch.zeros(5, 3, 2), torch.zeros(5)), 0, 2)  # batch-first (B, T, F) with (B,) targets


def test_token_streams_shard_into_contiguous_stretches_of_the_corpus():
    corpus = torch.arange(4 * 25)
    data = TokenStreamBatcher(corpus, batch_size=4, bptt=6)  # streams of 25 tokens
    shards = [D.shard_data(data, r, 2) for r in range(2)]
    assert len(shards[0]) == len(data)
    for (x, y), (x0, y0), (x1, y1) in zip(data, *shards, strict=True):
        assert torch.equal(torch.cat([x0, x1], 1), x) and torch.equal(torch.cat([y0, y1], 1), y)
    rank1 = torch.cat([x for x, _ in shards[1]])  # (24, 2): rank 1 carries streams 2 and 3
    assert torch.equal(rank1.T.flatten(), torch.cat([corpus[50:74], corpus[75:99]]))


def test_batches_with_fewer_rows_than_ranks_are_skipped_everywhere():
    data = [(torch.zeros(3, 4), torch.zeros(4)), (torch.zeros(3, 1), torch.zeros(1))]
    for r in range(2):
        assert [x.shape for x, _ in D.shard_data(data, r, 2)] == [torch.Size([3, 2])]
    unsized = D.shard_data(iter(data), 0, 2)  # a generator has no len, and neither has its shard
    assert not hasattr(unsized, "__len__") and len(list(unsized)) == 1


# -- sharding samplers --------------------------------------------------------------------------------
def _indices(loader):
    return [b.tolist() for b in loader]


def test_a_shuffled_loader_is_reshuffled_per_epoch_alike_on_every_rank():
    loader = DataLoader(list(range(10)), batch_size=4, shuffle=True)
    shards = [D.shard_data(loader, r, 2, seed=7) for r in range(2)]
    assert len(shards[0]) == 3
    epochs = []
    for epoch in range(2):
        for s in shards:
            s.batch_sampler.set_epoch(epoch)
        per_rank = [_indices(s) for s in shards]
        assert [len(b) for b in per_rank[0]] == [2, 2, 1] and [len(b) for b in per_rank[1]] == [2, 2, 1]
        flat = sorted(i for rank in per_rank for b in rank for i in b)
        assert flat == list(range(10))  # the ranks' shares partition the data set
        epochs.append(per_rank)
    assert epochs[0] != epochs[1]
    shards[0].batch_sampler.set_epoch(0)
    assert _indices(shards[0]) == epochs[0][0]  # an epoch's order is reproducible


def test_a_bucketed_loader_keeps_its_batches_and_splits_each():
    lengths = [5, 1, 4, 2, 3, 6, 7, 2, 5]
    sampler = BucketBatchSampler(lengths, 4, pool_batches=2, seed=3)
    loader = DataLoader(list(range(9)), batch_sampler=sampler)
    shards = [D.shard_data(loader, r, 2) for r in range(2)]
    assert len(shards[0]) == 2  # the batch of 1 cannot be split among 2 ranks: every rank skips it
    sampler.set_epoch(0)
    whole = [b for b in sampler if len(b) >= 2]
    per_rank = []
    for s in shards:  # in one process the ranks share the sampler: set the epoch before each pass
        s.batch_sampler.set_epoch(0)
        per_rank.append(_indices(s))
    assert [b0 + b1 for b0, b1 in zip(*per_rank, strict=True)] == whole


# -- gradient accumulation -------------------------------------------------------------------------------
@pytest.fixture
def one_thread():
    """Tiny models on a busy 2-core machine: one intra-op thread is many times faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _classifier_run(tmp_path, name, batches, accumulate):
    config = Config(
        model=ModelConfig(input_size=3, output_size=2, hidden_size=6, num_layers=1, dropout=0.0),
        data=DataConfig(batch_size=4),
        train=TrainConfig(epochs=2, lr=1e-2, warmup_steps=1, stateful=False, accumulate=accumulate,
                          progress=False, tensorboard=False),
    )  # fmt: skip
    seed_everything(0)
    model = SequenceModel(config.model).double()
    losses = []

    def step(model, batch, state):
        x, y = batch
        logits, _ = model(x)  # (T, B, 2)
        return F.cross_entropy(logits[-1], y), None, len(y)

    fit(model, batches, step, config=config, out_dir=tmp_path / name, on_step=lambda log: losses.append(log.loss))
    return losses, torch.cat([p.detach().flatten() for p in model.parameters()])


def test_accumulated_halves_step_like_their_union(tmp_path, one_thread):
    g = torch.Generator().manual_seed(0)
    halves = [(torch.randn(5, 2, 3, generator=g, dtype=torch.float64), torch.randint(0, 2, (2,), generator=g))
              for _ in range(6)]  # fmt: skip
    pairs = zip(halves[::2], halves[1::2], strict=True)
    unions = [(torch.cat([a[0], b[0]], 1), torch.cat([a[1], b[1]])) for a, b in pairs]  # (5, 4, 3), (4,)
    losses_acc, params_acc = _classifier_run(tmp_path, "acc", halves, accumulate=2)
    losses_union, params_union = _classifier_run(tmp_path, "union", unions, accumulate=1)
    assert len(losses_acc) == len(losses_union) == 6  # optimiser steps: 3 per epoch
    torch.testing.assert_close(losses_acc, losses_union, rtol=1e-12, atol=0)
    torch.testing.assert_close(params_acc, params_union, rtol=1e-10, atol=1e-12)
    # A short last group (5 batches, groups of 2) takes the mean over its one batch.
    losses_short, _ = _classifier_run(tmp_path, "short", halves[:5], accumulate=2)
    assert len(losses_short) == 6


def test_accumulate_is_checked():
    with pytest.raises(ValueError, match=r"train\.accumulate must be >= 1"):
        apply_overrides(Config(), ["train.accumulate=0"])
