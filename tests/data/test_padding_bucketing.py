from __future__ import annotations

import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from lstmkit.data import BucketBatchSampler, pad_collate, padding_fraction


def test_pad_collate_time_major_and_batch_first():
    seqs = [torch.tensor([1, 2, 3]), torch.tensor([4]), torch.tensor([5, 6])]
    data, lengths, mask = pad_collate(seqs)
    assert data.tolist() == [[1, 4, 5], [2, 0, 6], [3, 0, 0]]  # (T, B)
    assert lengths.dtype == torch.int64 and lengths.tolist() == [3, 1, 2]
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True, True, True], [True, False, True], [True, False, False]]

    data_bf, _, mask_bf = pad_collate(seqs, batch_first=True, padding_value=-1)
    assert data_bf.tolist() == [[1, 2, 3], [4, -1, -1], [5, 6, -1]]  # (B, T)
    assert torch.equal(mask_bf, mask.T)


def test_pad_collate_features_and_errors():
    seqs = [torch.randn(4, 3), torch.randn(2, 3)]
    data, lengths, mask = pad_collate(seqs)
    assert data.shape == (4, 2, 3)
    assert torch.equal(data[:2, 1], seqs[1]) and (data[2:, 1] == 0).all()
    assert mask.sum().item() == lengths.sum().item() == 6
    with pytest.raises(ValueError, match=r"batch\[1\] has trailing shape \(2,\)"):
        pad_collate([torch.randn(4, 3), torch.randn(2, 2)])
    with pytest.raises(TypeError, match=r"batch\[0\] must be a torch.Tensor"):
        pad_collate([[1, 2]])
    with pytest.raises(ValueError, match="non-empty"):
        pad_collate([])


def test_padding_fraction_hand_computed():
    lengths = [2, 4, 3, 3]
    # batch [0, 1]: 2 slots of 4 -> 8 padded, 6 real; batch [2, 3]: 6 and 6.
    assert padding_fraction(lengths, [[0, 1], [2, 3]]) == pytest.approx(1 - 12 / 14)
    assert padding_fraction(lengths, [[2, 3], [0], [1]]) == 0.0


def _realistic_lengths(n=2000, seed=0):
    # Sentence-like lengths: log-normal, median ~20 tokens, long tail, clipped to [1, 200].
    g = torch.Generator().manual_seed(seed)
    return torch.exp(torch.randn(n, generator=g) * 0.6 + 3.0).round().clamp(1, 200).long()


def test_bucketing_saves_padding_vs_random_batches():
    lengths = _realistic_lengths()
    bucket = list(BucketBatchSampler(lengths, 32, pool_batches=50, seed=1))
    g = torch.Generator().manual_seed(1)
    random = list(BatchSampler(RandomSampler(range(len(lengths)), generator=g), 32, drop_last=False))
    pad_bucket, pad_random = padding_fraction(lengths, bucket), padding_fraction(lengths, random)
    assert pad_random > 0.6  # random batches of a long-tailed distribution are mostly padding
    assert pad_bucket < 0.15  # what is left comes from the tail (lengths 55-200 above the 95th percentile)
    # Bigger pools sort more sequences together and save more.
    small_pools = list(BucketBatchSampler(lengths, 32, pool_batches=5, seed=1))
    assert pad_bucket < padding_fraction(lengths, small_pools) < pad_random


def test_bucket_sampler_covers_every_index_once_and_is_seeded():
    lengths = _realistic_lengths(500)
    s = BucketBatchSampler(lengths, 16, pool_batches=4, seed=3)
    epoch0 = list(s)
    assert len(epoch0) == len(s) == 32  # ceil(500 / 16)
    assert sorted(i for b in epoch0 for i in b) == list(range(500))
    assert sum(len(b) < 16 for b in epoch0) == 1
    epoch1 = list(s)  # the epoch advances by itself
    assert epoch1 != epoch0
    s.set_epoch(0)
    assert list(s) == epoch0
    assert list(BucketBatchSampler(lengths, 16, pool_batches=4, seed=3)) == epoch0
    assert list(BucketBatchSampler(lengths, 16, pool_batches=4, seed=4)) != epoch0


def test_bucket_sampler_drop_last_and_no_shuffle():
    lengths = list(range(1, 11))
    s = BucketBatchSampler(lengths, 3, drop_last=True)
    batches = list(s)
    assert len(batches) == len(s) == 3 and all(len(b) == 3 for b in batches)
    ordered = list(BucketBatchSampler(lengths[::-1], 4, shuffle=False))
    assert ordered == [[9, 8, 7, 6], [5, 4, 3, 2], [1, 0]]  # sorted by length within the one pool


def test_bucket_sampler_in_dataloader_with_pad_collate():
    seqs = [torch.arange(n) for n in _realistic_lengths(64).tolist()]
    sampler = BucketBatchSampler([len(s) for s in seqs], 8, pool_batches=2)
    loader = DataLoader(seqs, batch_sampler=sampler, collate_fn=pad_collate)
    batches = list(loader)
    assert len(batches) == 8
    for data, lengths, mask in batches:
        assert data.shape[0] == lengths.max() and mask.sum() == lengths.sum()


def test_bucket_sampler_errors():
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        BucketBatchSampler([1, 2], 0)
    with pytest.raises(ValueError, match="lengths must be a non-empty 1-D"):
        BucketBatchSampler([], 2)
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        BucketBatchSampler([3, -1], 2)
