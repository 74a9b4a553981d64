"""The CTC tasks' data: length checks against the labels, input scaling, batches, the prepared splits."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from lstmkit._fileio import write_versioned_json
from lstmkit.data import BucketBatchSampler, pad_collate
from lstmkit.tasks.base import DataUnavailable, Prepared
from lstmkit.train import Config

DATA = "data.json"


_DATA_FORMAT = "lstmkit.ctc-data"


_DATA_VERSION = 1


SPLITS = ("train", "val", "test")


def min_input_length(labels: Sequence[int]) -> int:
    """The fewest steps CTC needs to emit ``labels``: one per label, plus a blank between equal neighbours."""
    return len(labels) + sum(a == b for a, b in itertools.pairwise(labels))


def check_lengths(inputs: Sequence[np.ndarray], labels: Sequence[Sequence[int]], what: Sequence[str]) -> None:
    """Raise :class:`DataUnavailable` naming the first sample whose input is too short for its label."""
    for x, y, name in zip(inputs, labels, what, strict=True):
        need = min_input_length(y)
        if len(x) < need:
            raise DataUnavailable(
                f"{name}: its input has {len(x)} steps but its label of {len(y)} symbols needs at least {need} "
                "under CTC (one per symbol, plus a blank between repeated symbols); use a finer time step"
            )


def input_scale(inputs: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
    """Each feature's mean over every step of ``inputs`` (I,), and one standard deviation for all features.

    One deviation rather than one per feature: a pixel row that is nearly always blank (the top of a
    text line) would otherwise be blown up to the scale of the rows that carry the letters.
    """
    total = sum(x.sum(axis=0, dtype=np.float64) for x in inputs)
    steps = sum(len(x) for x in inputs)
    mean = total / steps  # (I,)
    var = sum(((x - mean) ** 2).sum(dtype=np.float64) for x in inputs) / (steps * len(mean))
    return mean.astype(np.float32), max(float(np.sqrt(var)), 1e-6)


def scale(x: np.ndarray, mean: np.ndarray, std: float) -> np.ndarray:
    """(T, I) -> (T, I) float32, standardised with the training statistics."""
    return ((x - mean) / std).astype(np.float32)


class _Samples(torch.utils.data.Dataset):
    def __init__(self, inputs: list[np.ndarray], labels: list[list[int]]) -> None:
        self.inputs = [torch.from_numpy(x) for x in inputs]
        self.labels = [torch.tensor(y, dtype=torch.int64) for y in labels]

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[i], self.labels[i]


def _collate(items):
    labels = [y for _, y in items]
    return pad_collate([x for x, _ in items]), torch.cat(labels), torch.tensor([len(y) for y in labels])


def loader(inputs: list[np.ndarray], labels: list[list[int]], batch_size: int, *, shuffle: bool, seed: int = 0):
    """Batches of similar lengths (shuffled for training), padded and masked by ``pad_collate``."""
    sampler = BucketBatchSampler([len(x) for x in inputs], batch_size, shuffle=shuffle, seed=seed)
    return DataLoader(_Samples(inputs, labels), batch_sampler=sampler, collate_fn=_collate)


@dataclass
class CTCPrepared(Prepared):
    config: Config
    inputs: dict[str, list[np.ndarray]]  # per split, (T_i, I) float32 model inputs
    labels: dict[str, list[list[int]]]  # per split, class ids (1 .. len(alphabet))
    texts: dict[str, list[str]]  # per split, the reference transcripts
    record: dict[str, Any]  # what data.json keeps: the cache file, its SHA-256, its generation parameters

    def save(self, run_dir: Path) -> None:
        write_versioned_json(run_dir / DATA, _DATA_FORMAT, _DATA_VERSION, self.record)
