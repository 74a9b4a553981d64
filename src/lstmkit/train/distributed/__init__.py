"""Data-parallel training on PyTorch's own engine: ``torch.distributed`` launched by ``torchrun``.

Gradients are averaged by ``DistributedDataParallel`` in the loop; this package holds the policy
the training loop and the task runner share, in two modules:

- :mod:`~lstmkit.train.distributed.process_group`: joining and leaving the launch's process group
  (:func:`setup`, :func:`teardown`), this process's rank, and the collectives that carry results
  and errors between ranks (:func:`on_main`, :func:`agree`, :func:`all_gather_objects`,
  :func:`all_reduce_sum`).
- :mod:`~lstmkit.train.distributed.sharding`: ``data.batch_size`` is the global batch, and each
  rank keeps its contiguous share of every global batch (:func:`split_batch`, :func:`shard_data`);
  the ranks' shares laid side by side are the single-process batch or state (:func:`gather_batch`).

Both are re-exported here: callers write ``distributed.setup()``, ``distributed.shard_data(...)``.
See docs/distributed.md.
"""

from __future__ import annotations

from lstmkit.train.distributed.process_group import (
    DEFAULT_TIMEOUT_S,
    TIMEOUT_ENV,
    DistEnv,
    DistributedError,
    agree,
    all_gather_objects,
    all_reduce_sum,
    backend,
    detect,
    is_main,
    on_main,
    rank,
    setup,
    teardown,
    timeout_from_env,
    world_size,
)
from lstmkit.train.distributed.sharding import (
    ShardedBatches,
    ShardedBatchSampler,
    SizedShardedBatches,
    batch_dim,
    batch_rows,
    check_batch_size,
    concat_batches,
    gather_batch,
    shard_bounds,
    shard_data,
    split_batch,
)

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
