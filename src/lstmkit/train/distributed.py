"""Data-parallel training on PyTorch's own engine: ``torch.distributed`` launched by ``torchrun``.

Nothing here is home-made communication: processes meet through torch's ``env://`` rendezvous
(the ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` variables
``torchrun`` sets), gradients are averaged by ``DistributedDataParallel`` in the loop, and the few
control messages (a validation loss, a checkpoint path, an error) are torch's object collectives.

What this module adds is the policy the training loop and the task runner share:

- :func:`setup` joins the process group when the environment says the process is one of several
  (gloo on CPU; gloo for CPU tensors and nccl for CUDA tensors when CUDA is there), with a timeout
  (``LSTMKIT_DIST_TIMEOUT`` seconds, default 1800), and turns a failed rendezvous into a
  :class:`DistributedError` that says what to check.
- ``data.batch_size`` is the **global** batch: every rank iterates the same global batches and
  keeps its own contiguous share of each (:func:`split_batch`, :func:`shard_data`). For a
  ``TokenStreamBatcher`` that share is a contiguous block of streams, so each rank carries its
  own hidden states over its own stretch of the corpus, and the ranks' hidden states laid side
  by side are exactly the single-process state (:func:`gather_batch`), which is what checkpoints
  store. Every rank therefore runs the same number of steps per epoch by construction.
- :func:`on_main` runs work on rank 0 only (evaluation, writing files) and hands its result or
  its error to every rank; :func:`agree` makes an error on any rank an error on every rank, so
  that a misconfigured launch stops everywhere instead of leaving the others waiting.

Tensors of a batch follow the package's time-major convention: a tensor of two or more
dimensions has its batch on dim 1 ((T, B, ...), and hidden states (L, B, H)), a 1-D tensor on
dim 0 ((B,) lengths or targets). Batch-first data (a ``DataLoader`` of (B, T, F) windows) is
sharded by its sampler's indices instead, before collation.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, IterableDataset, RandomSampler, Sampler

TIMEOUT_ENV = "LSTMKIT_DIST_TIMEOUT"
# torch's own default for collectives. Rank 0 evaluates while the others wait in a broadcast, so the
# timeout must outlast the longest validation pass; a launch that should fail fast sets it lower.
DEFAULT_TIMEOUT_S = 1800.0
_ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

T = TypeVar("T")


class DistributedError(RuntimeError):
    """A distributed launch that cannot go on: a failed rendezvous, or an error on another rank."""


@dataclasses.dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a launch, from the variables ``torchrun`` sets."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int


# -- the environment and the process group ---------------------------------------------------------
def detect(environ: Mapping[str, str] | None = None) -> DistEnv | None:
    """The launch this process belongs to, or None when it runs alone.

    None when ``WORLD_SIZE`` is unset or 1 (plain ``python``, or ``torchrun --nproc-per-node 1``).
    A partial or malformed environment raises :class:`DistributedError` naming the variable.
    """
    env = os.environ if environ is None else environ
    if env.get("WORLD_SIZE") is None:
        return None

    def integer(name: str, default: str | None = None) -> int:
        raw = env.get(name, default)
        if raw is None:
            raise DistributedError(
                f"WORLD_SIZE={env['WORLD_SIZE']} is set but {name} is not; launch with torchrun, which sets "
                f"{', '.join(_ENV_VARS)}"
            )
        try:
            return int(raw)
        except ValueError:
            raise DistributedError(f"{name} must be an integer, got {raw!r}") from None

    world = integer("WORLD_SIZE")
    if world < 1:
        raise DistributedError(f"WORLD_SIZE must be >= 1, got {world}")
    if world == 1:
        return None
    rank = integer("RANK")
    if not 0 <= rank < world:
        raise DistributedError(f"RANK must be in [0, WORLD_SIZE={world}), got {rank}")
    addr = env.get("MASTER_ADDR")
    if not addr:
        raise DistributedError("MASTER_ADDR is not set; launch with torchrun, or set it to rank 0's host")
    port = integer("MASTER_PORT")
    return DistEnv(rank, world, integer("LOCAL_RANK", str(rank)), addr, port)


def timeout_from_env(environ: Mapping[str, str] | None = None) -> datetime.timedelta:
    """``LSTMKIT_DIST_TIMEOUT`` (seconds) or the default, for the rendezvous and every collective."""
    raw = (os.environ if environ is None else environ).get(TIMEOUT_ENV)
    if raw is None:
        return datetime.timedelta(seconds=DEFAULT_TIMEOUT_S)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise DistributedError(f"{TIMEOUT_ENV} must be a number of seconds > 0, got {raw!r}")
    return datetime.timedelta(seconds=seconds)


def backend() -> str:
    """gloo on CPU; with CUDA, gloo for CPU tensors and nccl for CUDA tensors (one group does both)."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


_owned = False  # whether setup() started the process group (and teardown() may end it)


def setup(timeout: datetime.timedelta | None = None) -> DistEnv | None:
    """Join the process group this process was launched into; return None when it runs alone.

    Idempotent: a group already started (by the caller, or an earlier call) is kept. Waits at
    most ``timeout`` (default :func:`timeout_from_env`) for every rank to arrive, then raises a
    :class:`DistributedError` saying what to check, on every rank that waited.
    """
    env = detect()
    if env is None:
        return None
    if not dist.is_available():
        raise DistributedError("this torch build has no torch.distributed; cannot train on several processes")
    if dist.is_initialized():
        if dist.get_world_size() != env.world_size or dist.get_rank() != env.rank:
            raise DistributedError(
                f"the process group has rank {dist.get_rank()} of {dist.get_world_size()}, but RANK={env.rank} "
                f"and WORLD_SIZE={env.world_size}"
            )
        return env
    timeout = timeout_from_env() if timeout is None else timeout
    if torch.cuda.is_available():
        torch.cuda.set_device(env.local_rank % torch.cuda.device_count())
    try:
        dist.init_process_group(
            backend(), init_method="env://", rank=env.rank, world_size=env.world_size, timeout=timeout
        )
    except Exception as e:  # DistStoreError, RuntimeError, TimeoutError: all mean the same to the user
        cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DistributedError(
            f"rank {env.rank} of {env.world_size}: could not join the other processes at "
            f"{env.master_addr}:{env.master_port} within {timeout.total_seconds():g} s ({cause}). Check that all "
            f"{env.world_size} processes were started (torchrun --nnodes/--nproc-per-node), that "
            "MASTER_ADDR:MASTER_PORT (torchrun --rdzv-endpoint) is rank 0's host and a free port every machine can "
            f"reach, and the firewall; {TIMEOUT_ENV} sets the timeout in seconds"
        ) from e
    global _owned
    _owned = True
    return env


def teardown(*, barrier: bool = True) -> None:
    """End the process group if :func:`setup` started it, after a barrier (nobody leaves while
    another rank may still need it) unless ``barrier`` is False (leaving on an error)."""
    global _owned, _control
    if _owned and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()
    _owned, _control = False, None


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """True on rank 0, and when running alone: the process that logs, evaluates and writes files."""
    return rank() == 0


def check_batch_size(batch_size: int, world: int) -> None:
    """``data.batch_size`` is the global batch, split evenly among the ranks."""
    if world > 1 and batch_size % world:
        raise ValueError(
            f"data.batch_size = {batch_size} is the global batch and must be divisible by the world size {world} "
            f"(each rank trains on batch_size / world_size of it); use a batch size that is a multiple of {world}, "
            "or another number of processes"
        )


# -- control messages: results and errors from one rank to all --------------------------------------
_control = None  # a gloo group for Python objects when the default group also speaks nccl


def _control_group():
    global _control
    if dist.get_backend() == "gloo":
        return None  # the default group
    if _control is None:
        _control = dist.new_group(backend="gloo")
    return _control


def all_gather_objects(obj: Any) -> list[Any]:
    """``obj`` from every rank, in rank order (``[obj]`` when running alone)."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj, group=_control_group())
    return out


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def agree(error: BaseException | None, what: str) -> None:
    """Collective: raise on every rank when ``error`` is set on any. Call it on every rank.

    The rank that failed raises its own error; the others raise a :class:`DistributedError`
    naming that rank and its message, so no rank is left waiting for the one that stopped.
    """
    errors = all_gather_objects(None if error is None else _describe(error))
    if error is not None:
        raise error
    for r, message in enumerate(errors):
        if message is not None:
            raise DistributedError(f"rank {r} failed to {what}: {message}")


def on_main(fn: Callable[[], T], what: str) -> T:
    """Collective: run ``fn`` on rank 0 only and return its result on every rank.

    It is also a barrier: no rank goes on before rank 0 is done. An exception in ``fn`` is
    raised on rank 0 and, as a :class:`DistributedError` with its message, on every other rank.
    """
    if world_size() == 1:
        return fn()
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except Exception as e:
            error = e
    payload = [result, None if error is None else _describe(error)]
    dist.broadcast_object_list(payload, src=0, group=_control_group())
    if error is not None:
        raise error
    if payload[1] is not None:
        raise DistributedError(f"rank 0 failed to {what}: {payload[1]}")
    return payload[0]


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sums over the ranks (float64; the values themselves when running alone)."""
    if world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, group=_control_group())
    return t.tolist()


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
    "DEFAULT_TIMEOUT_S",
    "TIMEOUT_ENV",
    "DistEnv",
    "DistributedError",
    "ShardedBatchSampler",
    "ShardedBatches",
    "SizedShardedBatches",
    "agree",
    "all_gather_objects",
    "all_reduce_sum",
    "backend",
    "batch_dim",
    "batch_rows",
    "check_batch_size",
    "concat_batches",
    "detect",
    "gather_batch",
    "is_main",
    "on_main",
    "rank",
    "setup",
    "shard_bounds",
    "shard_data",
    "split_batch",
    "teardown",
    "timeout_from_env",
    "world_size",
]
