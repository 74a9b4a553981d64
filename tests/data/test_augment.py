"""``lstmkit.data.augment``: each augmentation on hand-checkable cases, the framed layout, the replay from
torch's generator, the config key's errors, and a classify run that trains with them."""

from __future__ import annotations

import pytest
import torch

from lstmkit.data.augment import (
    SLICE_RATIO,
    augment,
    magnitude_scale,
    parse_augment,
    stretch,
    window_slice,
    window_warp,
)


def ramp(T: int = 50, C: int = 2) -> torch.Tensor:
    """(T, C): channel c is t + 100 c."""
    return torch.arange(T, dtype=torch.float64)[:, None] + 100.0 * torch.arange(C)


def test_stretch_interpolates_linearly_and_keeps_the_ends():
    x = torch.tensor([[0.0], [2.0], [4.0]])
    assert stretch(x, 5)[:, 0].tolist() == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    assert stretch(x, 2)[:, 0].tolist() == pytest.approx([0.0, 4.0])
    assert stretch(x, 3) is x
    assert stretch(x[:1], 4)[:, 0].tolist() == [0.0] * 4


def test_window_slice_is_a_stretched_sub_ramp():
    """A slice of a ramp is a ramp again: L = 45 of 50 steps at a start s in [0, 5], stretched to 50 steps,
    so it runs from s to s + 44 in equal increments."""
    torch.manual_seed(0)
    starts = set()
    for _ in range(40):
        y = window_slice(ramp())
        start = float(y[0, 0])
        L = round(SLICE_RATIO * 50)
        assert start == int(start) and 0 <= start <= 50 - L
        assert y[-1, 0] == pytest.approx(start + L - 1)
        steps = torch.diff(y[:, 0])
        assert torch.allclose(steps, torch.full_like(steps, (L - 1) / 49))
        assert torch.allclose(y[:, 1] - y[:, 0], torch.full((50,), 100.0, dtype=torch.float64))  # channels alike
        starts.add(start)
    assert len(starts) > 3  # the start is drawn


def test_window_warp_keeps_the_ends_and_the_order_and_changes_the_tempo():
    """A warped ramp still starts at 0, ends at T - 1 and rises monotonically, but not evenly: one window
    of 5 steps ran at half or double speed."""
    torch.manual_seed(1)
    for _ in range(20):
        y = window_warp(ramp(T=50, C=1))[:, 0]
        assert y.shape == (50,) and y[0] == 0 and y[-1] == pytest.approx(49)
        d = torch.diff(y)
        assert (d >= 0).all() and d.max() - d.min() > 0.3
    const = torch.full((30, 3), 2.5)
    assert torch.equal(window_warp(const), const)  # a constant case has no tempo to change


def test_magnitude_scale_multiplies_each_channel_by_its_own_factor():
    torch.manual_seed(2)
    x = ramp(T=10, C=3) + 1
    y = magnitude_scale(x)
    factor = y / x
    assert torch.allclose(factor, factor[:1].expand_as(factor))  # one factor a channel, over every step
    assert len(set(factor[0].tolist())) == 3 and (factor[0] - 1).abs().max() < 0.5


def test_framed_cases_are_augmented_step_by_step_and_keep_their_shape():
    """A case of 12 steps of 2 channels framed by 3 (4 frames of 6 values): the layout round-trips, and a
    slice moves steps, not whole frames."""
    x = ramp(T=12, C=2)
    framed = x.reshape(4, 6)
    assert torch.equal(augment(framed, (), frame=3), framed)
    torch.manual_seed(3)
    y = augment(framed, ("slice",), frame=3).reshape(12, 2)
    torch.manual_seed(3)
    assert torch.allclose(y, window_slice(x))
    with pytest.raises(ValueError, match="a framed case of width 6 cannot hold frames of 4 steps"):
        augment(framed, ("scale",), frame=4)


def test_the_draws_replay_from_torchs_generator():
    x = ramp()
    torch.manual_seed(4)
    a = [augment(x, ("slice", "warp", "scale")) for _ in range(3)]
    torch.manual_seed(4)
    b = [augment(x, ("slice", "warp", "scale")) for _ in range(3)]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True)) and not torch.equal(a[0], a[1])


def test_parse_augment_names_the_key_and_what_it_takes():
    assert parse_augment("") == () and parse_augment(" slice, warp ") == ("slice", "warp")
    with pytest.raises(ValueError, match=r"data\.augment takes a comma-separated list of \('slice', 'warp', "
                                         r"'scale'\), got 'flip' in 'slice,flip'"):
        parse_augment("slice,flip")
    with pytest.raises(ValueError, match=r"data\.augment names an augmentation twice: 'warp,warp'"):
        parse_augment("warp,warp")


def test_classify_trains_with_augmented_cases(tmp_path):
    """A toy classify run with every augmentation: the training batches differ from the stored cases while
    validation batches do not, and the run completes."""
    from lstmkit.tasks import runner
    from lstmkit.tasks.classify.data import write_toy_ts
    from lstmkit.tasks.registry import get_task

    train, test = write_toy_ts(tmp_path)
    keys = [f"data.train={train}", f"data.test={test}", "data.augment=slice,warp,scale", "train.epochs=2",
            "train.warmup_steps=0", "train.progress=false", "train.tensorboard=false", "data.dtw_baseline=false"]
    config = runner.build_config("classify", overrides=keys)
    task = get_task("classify")
    prepared = task.prepare(config)
    data = task.training_data(prepared)
    (x, lengths, _), _ = next(iter(data.train))
    stored = {tuple(c.shape) for c in prepared.cases["train"]}
    assert all((int(n), x.shape[2]) in stored for n in lengths)  # shapes kept
    torch.manual_seed(0)
    first = torch.cat([b[0][0].flatten() for b in data.train])
    torch.manual_seed(1)
    second = torch.cat([b[0][0].flatten() for b in data.train])
    assert not torch.equal(first, second)  # redrawn every read
    val = [b[0][0] for b in data.val]
    torch.manual_seed(1)
    assert all(torch.equal(u, b[0][0]) for u, b in zip(val, data.val, strict=True))
    result = runner.train("classify", config, tmp_path / "run")
    assert 0.0 <= result.metrics["test"]["accuracy"] <= 1.0
