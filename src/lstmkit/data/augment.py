"""Time-series augmentation for small training sets: new versions of a case (T, C) drawn each time it is
read, with the same length T, so that batching, framing and the models see nothing new.

- ``slice``: window slicing (Le Guennec, Malinowski and Tavenard 2016): a random ``SLICE_RATIO`` of the
  case, stretched back to T steps by linear interpolation: the pattern shifted and a little slower.
- ``warp``: window warping (ibid.): a random ``WARP_WINDOW`` share of the case played at half or double
  speed, the whole then resampled to T steps: local changes of tempo, as when one phase of a gesture
  takes longer.
- ``scale``: magnitude scaling (Um et al. 2017): each channel times its own factor drawn from
  N(1, ``SCALE_STD``²).

The draws come from torch's global generator, whose state the training loop saves in every checkpoint, so a
resumed run draws what the uninterrupted one would. Iwana and Uchida (2021) survey these and others on the
UCR archive: none helps on every set, so they are a choice to make on validation, not a default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

AUGMENTATIONS = ("slice", "warp", "scale")
SLICE_RATIO = 0.9
WARP_WINDOW = 0.1
WARP_FACTORS = (0.5, 2.0)
SCALE_STD = 0.1


def parse_augment(value: str, key: str = "data.augment") -> tuple[str, ...]:
    """The augmentations named in a comma-separated string ("" for none), in the order given."""
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    for n in names:
        if n not in AUGMENTATIONS:
            raise ValueError(f"{key} takes a comma-separated list of {AUGMENTATIONS}, got {n!r} in {value!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{key} names an augmentation twice: {value!r}")
    return names


def stretch(case: Tensor, length: int) -> Tensor:
    """(T, C) -> (length, C) by linear interpolation along time, the first and last steps kept."""
    if case.shape[0] == length:
        return case
    if case.shape[0] == 1:
        return case.expand(length, -1)
    out = F.interpolate(case.T[None], size=length, mode="linear", align_corners=True)  # (1, C, length)
    return out[0].T


def _randint(high: int) -> int:
    """Uniform in [0, high] from torch's global generator."""
    return int(torch.randint(high + 1, ()).item())


def window_slice(case: Tensor, ratio: float = SLICE_RATIO) -> Tensor:
    """A random ``ratio`` of the case (T, C), stretched back to T steps."""
    T = case.shape[0]
    L = max(2, round(ratio * T))
    if L >= T:
        return case
    start = _randint(T - L)
    return stretch(case[start : start + L], T)


def window_warp(case: Tensor, window: float = WARP_WINDOW, factors: tuple[float, ...] = WARP_FACTORS) -> Tensor:
    """A random ``window`` share of the case (T, C) played ``factor`` times slower (one of ``factors``),
    then the whole resampled to T steps."""
    T = case.shape[0]
    w = max(2, round(window * T))
    if w >= T:
        return case
    start = _randint(T - w)
    factor = factors[_randint(len(factors) - 1)]
    warped = stretch(case[start : start + w], max(1, round(w * factor)))
    return stretch(torch.cat([case[:start], warped, case[start + w :]]), T)


def magnitude_scale(case: Tensor, std: float = SCALE_STD) -> Tensor:
    """Each channel of the case (T, C) times a factor drawn from N(1, std²)."""
    return case * (1.0 + std * torch.randn(case.shape[1], dtype=case.dtype))


_APPLY = {"slice": window_slice, "warp": window_warp, "scale": magnitude_scale}


def augment(case: Tensor, names: tuple[str, ...], frame: int = 1) -> Tensor:
    """The case with each named augmentation applied in turn; its shape is kept.

    ``frame``: the case is stored framed (T / frame, frame * C, as ``classify`` reads it): it is laid out
    as (T, C) steps first and framed again after, so time is warped step by step, not frame by frame
    (a last frame completed by repeating the last step warps with the rest)."""
    if not names:
        return case
    n, width = case.shape
    if width % frame:
        raise ValueError(f"a framed case of width {width} cannot hold frames of {frame} steps")
    steps = case.reshape(n * frame, width // frame)  # (T, C)
    for name in names:
        steps = _APPLY[name](steps)
    return steps.reshape(n, width)
