"""Windows over long sequences: forecasting windows and parallel token streams for truncated BPTT."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class SlidingWindowDataset(Dataset):
    """Forecasting pairs cut from one multivariate series.

    Item ``i`` starts at ``s = i * stride``::

        x = series[s : s + window]                                   # (window, F)
        y = series[s + window : s + window + horizon, target_columns]  # (horizon, F_out)

    The default ``DataLoader`` collate stacks items batch-first, (B, window, F); transpose to the
    time-major (T, B, F) the models take with ``x.transpose(0, 1)``.

    Args:
        series: (T, F) array, or (T,) for one feature.
        window: input steps per item.
        horizon: future steps to predict.
        stride: steps between the starts of consecutive items.
        target_columns: feature indices to predict; None predicts every feature.
        dtype: dtype of the returned tensors.
    """

    def __init__(
        self,
        series: torch.Tensor | np.ndarray,
        *,
        window: int,
        horizon: int = 1,
        stride: int = 1,
        target_columns: Sequence[int] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not isinstance(series, (torch.Tensor, np.ndarray)):
            raise TypeError(f"series must be a tensor or numpy array, got {type(series).__name__}")
        series = torch.as_tensor(series).to(dtype)
        if series.ndim == 1:
            series = series[:, None]  # (T,) -> (T, 1)
        if series.ndim != 2:
            raise ValueError(f"series must be (T, F) or (T,), got shape {tuple(series.shape)}")
        for name, value in (("window", window), ("horizon", horizon), ("stride", stride)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        n_features = series.shape[1]
        if target_columns is None:
            target_columns = range(n_features)
        target_columns = list(target_columns)
        in_range = all(isinstance(c, int) and 0 <= c < n_features for c in target_columns)
        if not target_columns or not in_range:
            raise ValueError(
                f"target_columns must be non-empty ints in [0, {n_features}), got {target_columns}"
            )
        if series.shape[0] < window + horizon:
            raise ValueError(
                f"series has {series.shape[0]} steps, fewer than window + horizon = {window + horizon}"
            )
        self.series = series
        self.window, self.horizon, self.stride = window, horizon, stride
        self.target_columns = target_columns

    def __len__(self) -> int:
        return (self.series.shape[0] - self.window - self.horizon) // self.stride + 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} windows")
        s = (i % len(self)) * self.stride
        x = self.series[s : s + self.window]  # (window, F)
        t = s + self.window
        y = self.series[t : t + self.horizon, self.target_columns]  # (horizon, F_out)
        return x, y


class TokenStreamBatcher:
    """Lay a 1-D token corpus into B parallel streams and cut them into k-step chunks.

    The corpus is cut into B contiguous streams of ``S = N // B`` tokens (the last ``N % B``
    tokens are dropped), stream ``b`` being ``corpus[b * S : (b + 1) * S]``. Chunk ``j`` covers
    steps ``[j * k, j * k + k)`` of every stream, so column ``b`` of chunk ``j + 1`` continues
    column ``b`` of chunk ``j``: carrying the hidden state across chunks is exact, and detaching
    it between chunks is truncated BPTT over k steps.

    Each chunk is ``(x, y)`` of shape (k, B), time-major, with ``y`` the next token of ``x``.
    Only ``S - 1`` steps per stream have a next token, so when ``k`` does not divide ``S - 1``
    the last chunk is shorter: ``drop_last=False`` (default) yields it as (r, B) with r < k,
    ``drop_last=True`` drops it.
    """

    def __init__(
        self, tokens: Sequence[int] | torch.Tensor, batch_size: int, bptt: int, *, drop_last: bool = False
    ) -> None:
        tokens = torch.as_tensor(tokens)
        is_int = not (tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool)
        if tokens.ndim != 1 or not is_int:
            raise ValueError(
                f"tokens must be a 1-D integer sequence, got shape {tuple(tokens.shape)} {tokens.dtype}"
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if not isinstance(bptt, int) or bptt < 1:
            raise ValueError(f"bptt must be an int >= 1, got {bptt!r}")
        needed = batch_size * (bptt + 1)
        if tokens.numel() < needed:
            raise ValueError(
                f"corpus of {tokens.numel()} tokens is shorter than one chunk: batch_size * (bptt + 1) = "
                f"{batch_size} * {bptt + 1} = {needed} tokens are needed"
            )
        stream_len = tokens.numel() // batch_size
        streams = tokens[: stream_len * batch_size].to(torch.int64).view(batch_size, stream_len)  # (B, S)
        self.streams = streams.T  # (S, B)
        self.batch_size, self.bptt, self.drop_last = batch_size, bptt, drop_last

    def __len__(self) -> int:
        steps = self.streams.shape[0] - 1  # steps with a next-token target
        return steps // self.bptt if self.drop_last else -(-steps // self.bptt)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for j in range(len(self)):
            start = j * self.bptt
            stop = min(start + self.bptt, self.streams.shape[0] - 1)
            yield self.streams[start:stop], self.streams[start + 1 : stop + 1]  # (k, B), (k, B)
