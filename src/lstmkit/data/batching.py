"""Padding variable-length sequences into batches, and length-bucketed batch sampling."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch.utils.data import Sampler


class PaddedBatch(NamedTuple):
    """A padded batch. ``mask`` is True at real steps and False at padding."""

    data: torch.Tensor  # (T, B, *) time-major or (B, T, *) batch-first
    lengths: torch.Tensor  # (B,) int64
    mask: torch.Tensor  # (T, B) or (B, T) bool


def pad_collate(
    batch: Sequence[torch.Tensor], *, batch_first: bool = False, padding_value: float = 0.0
) -> PaddedBatch:
    """Pad sequences of shape (T_i, *) to the longest one.

    Use it as a ``DataLoader`` ``collate_fn`` for datasets of bare sequences; for
    ``(sequence, target)`` items collate the targets beside it::

        def collate(items):
            return pad_collate([x for x, _ in items]), torch.stack([y for _, y in items])

    Args:
        batch: B tensors of shape (T_i, *) with the same trailing shape and dtype.
        batch_first: return (B, T, *) instead of the time-major (T, B, *).
        padding_value: the value written at padded steps (0 is ``<pad>`` for token ids).

    Returns:
        ``PaddedBatch(data, lengths, mask)`` with ``T = max(T_i)``.
    """
    if not isinstance(batch, Sequence) or len(batch) == 0:
        raise ValueError("batch must be a non-empty sequence of tensors")
    for i, x in enumerate(batch):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"batch[{i}] must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 1:
            raise ValueError(f"batch[{i}] must have a time dimension (T_i, *), got a scalar")
        if x.shape[1:] != batch[0].shape[1:] or x.dtype != batch[0].dtype:
            raise ValueError(
                f"batch[{i}] has trailing shape {tuple(x.shape[1:])} and dtype {x.dtype}, but batch[0] has "
                f"{tuple(batch[0].shape[1:])} and {batch[0].dtype}; all must match"
            )
    lengths = torch.tensor([x.shape[0] for x in batch], dtype=torch.int64)  # (B,)
    data = torch.nn.utils.rnn.pad_sequence(list(batch), batch_first=batch_first, padding_value=padding_value)
    steps = torch.arange(data.shape[1 if batch_first else 0])  # (T,)
    mask = steps[None, :] < lengths[:, None]  # (B, T)
    return PaddedBatch(data, lengths, mask if batch_first else mask.T.contiguous())


def padding_fraction(lengths: Sequence[int] | torch.Tensor, batches: Sequence[Sequence[int]]) -> float:
    """Share of the padded slots in ``batches`` that are padding: 1 - sum(T_i) / sum(B * max T_i).

    Args:
        lengths: the length of every sequence in the data set, indexed like the batches.
        batches: lists of indices into ``lengths``, e.g. ``list(sampler)``.
    """
    lengths = torch.as_tensor(lengths, dtype=torch.int64)
    real = padded = 0
    for batch in batches:
        if len(batch) == 0:
            continue
        b = lengths[torch.as_tensor(list(batch), dtype=torch.int64)]
        real += int(b.sum())
        padded += int(b.max()) * len(batch)
    if padded == 0:
        raise ValueError("batches hold no sequence steps; cannot compute a padding fraction")
    return 1.0 - real / padded


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices whose sequences have similar lengths, to waste less compute on padding.

    Each epoch shuffles the indices, cuts them into pools of ``batch_size * pool_batches``,
    sorts each pool by length, cuts it into batches and shuffles the batch order. Bigger pools
    save more padding; smaller pools keep batches more random. Everything is drawn from a
    generator seeded with ``seed + epoch``, so an epoch's batches are reproducible.

    Pass it as ``DataLoader(dataset, batch_sampler=sampler, collate_fn=...)``. The epoch
    advances by one after each full pass; :meth:`set_epoch` sets it (the training loop calls
    it, so that a resumed run sees the same batches).
    """

    def __init__(
        self,
        lengths: Sequence[int] | torch.Tensor,
        batch_size: int,
        *,
        pool_batches: int = 50,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        lengths = torch.as_tensor(lengths)
        if lengths.ndim != 1 or lengths.numel() == 0 or lengths.is_floating_point():
            raise ValueError(
                f"lengths must be a non-empty 1-D sequence of ints, got shape {tuple(lengths.shape)}"
            )
        if (lengths < 0).any():
            raise ValueError("lengths must be >= 0")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if not isinstance(pool_batches, int) or pool_batches < 1:
            raise ValueError(f"pool_batches must be an int >= 1, got {pool_batches!r}")
        self.lengths = lengths.to(torch.int64)
        self.batch_size = batch_size
        self.pool_batches = pool_batches
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use the batches of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.lengths.numel()
        # Pools are whole multiples of batch_size, so only the very last batch can be short.
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        n = self.lengths.numel()
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        pool = self.batch_size * self.pool_batches
        batches: list[list[int]] = []
        for start in range(0, n, pool):
            idx = order[start : start + pool]
            # Stable sort keeps the shuffled order among equal lengths.
            idx = idx[torch.sort(self.lengths[idx], stable=True).indices]
            batches.extend(idx[i : i + self.batch_size].tolist() for i in range(0, len(idx), self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        yield from batches
