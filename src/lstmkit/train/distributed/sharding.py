"""Each rank's share of the data: ``data.batch_size`` is the **global** batch, and every rank
iterates the same global batches and keeps its own contiguous share of each (:func:`split_batch`,
:func:`shard_data`).

For a ``TokenStreamBatcher`` that share is a contiguous block of streams, so each rank carries its
own hidden states over its own stretch of the corpus, and the ranks' hidden states laid side by
side are exactly the single-process state (:func:`gather_batch`), which is what checkpoints
store. Every rank therefore runs the same number of steps per epoch by construction.

Tensors of a batch follow the package's time-major convention: a tensor of two or more
dimensions has its batch on dim 1 ((T, B, ...), and hidden states (L, B, H)), a 1-D tensor on
dim 0 ((B,) lengths or targets). Batch-first data (a ``DataLoader`` of (B, T, F) windows) is
sharded by its sampler's indices instead, before collation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, IterableDataset, RandomSampler, Sampler

from lstmkit.train.distributed.process_group import all_gather_objects, world_size


def check_batch_size(batch_size: int, world: int) -> None:
    """``data.batch_size`` is the global batch, split evenly among the ranks."""
    if world > 1 and batch_size % world:
        raise ValueError(
            f"data.batch_size = {batch_size} is the global batch and must be divisible by the world size {world} "
            f"(each rank trains on batch_size / world_size of it); use a batch size that is a multiple of {world}, "
            "or another number of processes"
        )


# -- batches: each rank's share of a global batch ---------------------------------------------------
def batch_dim(t: Tensor) -> int:
    """The batch dimension under the time-major convention: 0 of (B,), 1 of (T, B, ...) or (L, B, H)."""
    return 0 if t.ndim == 1 else 1


def _map(fn: Callable[[Tensor], Any], obj: Any) -> Any:
    """Apply ``fn`` to every tensor of a nested batch (tuples, named tuples, lists, dicts)."""
    if isinstance(obj, Tensor):
        return fn(obj) if obj.ndim > 0 else obj
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a NamedTuple such as PaddedBatch
        return type(obj)(*(_map(fn, v) for v in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_map(fn, v) for v in obj)
    if isinstance(obj, dict):
        return {k: _map(fn, v) for k, v in obj.items()}
    return obj


def batch_rows(batch: Any) -> int | None:
    """The number of sequences in ``batch`` (None when it holds no tensor); all tensors must agree."""
    sizes: set[int] = set()
    _map(lambda t: sizes.add(t.shape[batch_dim(t)]), batch)
    if len(sizes) > 1:
        raise ValueError(
            f"cannot split a batch among ranks: its tensors disagree on the batch size {sorted(sizes)} under the "
            "time-major convention ((T, B, ...) tensors, (B,) vectors); give batch-first data as a DataLoader, "
            "whose sampler is sharded instead"
        )
    return sizes.pop() if sizes else None


def shard_bounds(rows: int, rank: int, world: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous rows of ``rows``: sizes differ by at most one, lower ranks larger."""
    base, extra = divmod(rows, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def split_batch(batch: Any, rank: int, world: int) -> Any:
    """Rank ``rank``'s contiguous share of every tensor of ``batch`` (views, no copies)."""
    rows = batch_rows(batch)
    if rows is None:
        return batch
    start, stop = shard_bounds(rows, rank, world)
    return _map(lambda t: t.narrow(batch_dim(t), start, stop - start), batch)


def concat_batches(parts: list[Any]) -> Any:
    """The inverse of :func:`split_batch`: the ranks' shares laid side by side (None stays None)."""
    first = parts[0]
    if first is None or isinstance(first, (bool, int, float, str)):
        return first
    if isinstance(first, Tensor):
        return torch.cat(parts, dim=batch_dim(first)) if first.ndim > 0 else first
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(concat_batches(list(vs)) for vs in zip(*parts, strict=True)))
    if isinstance(first, (tuple, list)):
        return type(first)(concat_batches(list(vs)) for vs in zip(*parts, strict=True))
    if isinstance(first, dict):
        return {k: concat_batches([p[k] for p in parts]) for k in first}
    return first


def gather_batch(batch: Any) -> Any:
    """Collective: every rank's share of ``batch`` laid side by side, on every rank (for checkpoints:
    the ranks' carried hidden states together are the single-process state)."""
    if world_size() == 1:
        return batch
    device = next(iter(_tensors(batch)), torch.empty(0)).device
    parts = all_gather_objects(_map(lambda t: t.detach().cpu(), batch))
    return _map(lambda t: t.to(device), concat_batches(parts))


def _tensors(obj: Any) -> list[Tensor]:
    found: list[Tensor] = []
    _map(found.append, obj)
    return found


class ShardedBatches:
    """Rank ``rank``'s share of every global batch of ``data`` (any iterable of batches).

    Every rank iterates the same global batches (same seed, same data), so all run the same number
    of steps. A batch with fewer sequences than ranks (a short last batch) is skipped on every rank.
    ``set_epoch`` is passed on; :class:`SizedShardedBatches` adds ``len`` for data that has one.
    """

    def __init__(self, data: Iterable, rank: int, world: int) -> None:
        self.data, self.rank, self.world = data, rank, world

    def set_epoch(self, epoch: int) -> None:
        for obj in (self.data, getattr(self.data, "batch_sampler", None), getattr(self.data, "sampler", None)):
            if hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.data:
            rows = batch_rows(batch)
            if rows is not None and rows < self.world:
                continue
            yield split_batch(batch, self.rank, self.world)


class SizedShardedBatches(ShardedBatches):
    """:class:`ShardedBatches` of data with a ``len``: the same (it may count a batch every rank skips)."""

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]


class ShardedBatchSampler(Sampler[list[int]]):
    """Rank ``rank``'s contiguous share of the indices of each batch of ``inner`` (a batch sampler).

    The ``DistributedSampler`` of this package, at the level of batches: ``data.batch_size`` is
    global and every rank collates only its own share. A plain shuffled ``DataLoader``
    (``RandomSampler``, which draws its order from the global RNG) is reshuffled from a generator
    seeded with ``seed + epoch`` instead, the same on every rank. Samplers with their own
    ``set_epoch`` (``BucketBatchSampler``) keep their order. A batch with fewer indices than ranks
    is skipped on every rank.
    """

    def __init__(self, inner: Iterable[list[int]], rank: int, world: int, *, seed: int = 0) -> None:
        self.inner, self.rank, self.world, self.seed = inner, rank, world, seed
        self.epoch = 0
        self._epoch_set = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._epoch_set = epoch, True
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def _batches(self) -> Iterable[list[int]]:
        inner = self.inner
        if isinstance(inner, BatchSampler) and isinstance(inner.sampler, RandomSampler):
            s = inner.sampler
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            sampler = RandomSampler(s.data_source, replacement=s.replacement, num_samples=s._num_samples, generator=g)
            return BatchSampler(sampler, inner.batch_size, inner.drop_last)
        return inner

    def __len__(self) -> int:
        n = len(self.inner)  # type: ignore[arg-type]
        total, size = None, getattr(self.inner, "batch_size", None)
        if isinstance(self.inner, BatchSampler):
            total = len(self.inner.sampler)  # type: ignore[arg-type]
            drop = self.inner.drop_last
        elif hasattr(self.inner, "lengths"):  # BucketBatchSampler: only the last batch can be short
            total, drop = len(self.inner.lengths), self.inner.drop_last
        if total is not None and size and not drop and 0 < total % size < self.world:
            n -= 1  # the short batch every rank skips
        return n

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()
        if not self._epoch_set:
            self.epoch += 1  # like BucketBatchSampler: the next pass is the next epoch
        self._epoch_set = False
        for batch in batches:
            batch = list(batch)
            if len(batch) < self.world:
                continue
            start, stop = shard_bounds(len(batch), self.rank, self.world)
            yield batch[start:stop]


def shard_data(data: Iterable, rank: int, world: int, *, seed: int = 0) -> Iterable:
    """Rank ``rank``'s share of training data whose batches are global batches.

    A map-style ``DataLoader`` is rebuilt around a :class:`ShardedBatchSampler` (each rank loads
    and collates only its own indices); any other iterable of batches (``TokenStreamBatcher``,
    generated batches, a list) is wrapped in :class:`ShardedBatches`, which splits each collated
    batch along its batch dimension.
    """
    if world == 1:
        return data
    map_style = not isinstance(getattr(data, "dataset", None), IterableDataset)
    if isinstance(data, DataLoader) and data.batch_sampler is not None and map_style:
        return DataLoader(
            data.dataset,
            batch_sampler=ShardedBatchSampler(data.batch_sampler, rank, world, seed=seed),
            collate_fn=data.collate_fn,
            num_workers=data.num_workers,
            pin_memory=data.pin_memory,
            timeout=data.timeout,
            worker_init_fn=data.worker_init_fn,
            multiprocessing_context=data.multiprocessing_context,
            persistent_workers=data.persistent_workers,
            prefetch_factor=data.prefetch_factor,
        )
    return SizedShardedBatches(data, rank, world) if hasattr(data, "__len__") else ShardedBatches(data, rank, world)


__all__ = [
    "ShardedBatchSampler",
    "ShardedBatches",
    "SizedShardedBatches",
    "batch_dim",
    "batch_rows",
    "check_batch_size",
    "concat_batches",
    "gather_batch",
    "shard_bounds",
    "shard_data",
    "split_batch",
]
