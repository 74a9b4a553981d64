"""Data for recurrent models: tokenisers, normalisation, padding and bucketing, windows."""

from __future__ import annotations

from lstmkit.data.batching import BucketBatchSampler, PaddedBatch, pad_collate, padding_fraction
from lstmkit.data.normalize import Standardizer
from lstmkit.data.tokenizers import PAD, UNK, CharTokenizer, WordTokenizer
from lstmkit.data.windows import SlidingWindowDataset, TokenStreamBatcher

__all__ = [
    "PAD",
    "UNK",
    "BucketBatchSampler",
    "CharTokenizer",
    "PaddedBatch",
    "SlidingWindowDataset",
    "Standardizer",
    "TokenStreamBatcher",
    "WordTokenizer",
    "pad_collate",
    "padding_fraction",
]
