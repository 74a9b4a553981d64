"""Frame-sequence forecasters: ``ConvForecaster`` (the encoder-forecaster ConvLSTM of Shi et al. 2015)
and ``FCForecaster`` (the same design with fully connected ``lstmkit.LSTM`` layers on flattened
frames: Shi's FC-LSTM comparison), with their config section ``FramesModel``.

Both read ``T_in`` frames and predict the next ``horizon`` frames, as logits of each pixel's
intensity in [0, 1] (a sigmoid gives the frame). The encoder's final states start the forecaster.
With ``model.condition`` (the default) the forecaster reads the previous frame at each step: the
last given frame, then its own previous prediction (the sigmoid of its logits), with gradients
flowing through the predictions, so training and prediction run the same graph. Without it the
forecaster takes no input (a constant zero frame), exactly as in Shi et al. 2015; that variant
stayed on the blank frame for the whole CPU budget in our runs (docs/results.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.nn import LSTM, ConvLSTM
from lstmkit.train.config import ModelConfig

LOSSES = ("bce", "mse")


@dataclass(frozen=True)
class FramesModel(ModelConfig):
    """The ConvLSTM stack: ``hidden_size`` is its hidden channels per layer (Hc)."""

    hidden_size: int = 16  # hidden channels per layer: 32 took 2x the time per step, too slow for the 15-minute budget
    num_layers: int = 2  # Shi et al.'s best Moving MNIST model has 3 (of 64-128 channels); 2 of 16 fit the CPU budget
    dropout: float = 0.0  # no overfitting to fight: every epoch draws new sequences
    kernel_size: int = 5  # Shi et al. use 5 x 5 state-to-state kernels; on 4 x 4 patches it sees 20 x 20 pixels
    patch: int = 4  # frames as 4 x 4 patches (space to depth, as PredRNN and OpenSTL do): 16x fewer positions
    horizon: int = 10  # frames predicted; the data's output_frames
    # Feed the forecaster the previous frame (given, then predicted). Shi et al.'s forecaster reads nothing
    # (false); conditioned, the model leaves the blank-frame plateau within the 15-minute CPU budget.
    condition: bool = True
    # With condition: add a 3 x 3 convolution of the forecaster's input frame (in patches) to its logits, started
    # as a copy of that frame (8 x identity at the centre tap, bias -4), so training starts from copy-last-frame
    # and the ConvLSTM learns the motion, like the AR skip of the forecast task.
    skip: bool = True
    # Binary cross-entropy per pixel (Shi et al.'s loss on Moving MNIST): the frames are near-binary, and BCE
    # keeps a gradient where MSE settles early on the all-background frame. "mse" trains on the metric itself.
    loss: str = "bce"

    def _validate(self) -> None:
        super()._validate()
        if self.loss not in LOSSES:
            raise ValueError(f"model.loss must be one of {LOSSES}, got {self.loss!r}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"model.kernel_size must be a positive odd number, got {self.kernel_size}")
        for name in ("patch", "horizon"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.skip and not self.condition:
            raise ValueError("model.skip needs model.condition: the skip reads the forecaster's input frame")
        if self.cell != "lstm":
            raise ValueError(f"moving-digits uses ConvLSTM cells; model.cell must be 'lstm', got {self.cell!r}")


def frame_loss(logits: Tensor, target: Tensor, loss: str) -> Tensor:
    """The per-pixel training loss, averaged over pixels, frames and sequences."""
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.mse_loss(torch.sigmoid(logits), target)


class ConvForecaster(nn.Module):
    """Encoder ConvLSTM stack -> forecaster ConvLSTM stack (states copied layer by layer) -> 1 x 1 conv.

    ``forward(x)``: x (T_in, B, 1, H, W) intensities in [0, 1], H and W multiples of ``patch`` ->
    logits (horizon, B, 1, H, W). The frames are cut into ``patch`` x ``patch`` patches first
    (``pixel_unshuffle``: (1, H, W) -> (p², H/p, W/p)), and the output is put back together the same way.
    """

    export_kind: ClassVar[str] = "frames"  # lstmkit.export: frames (T_in, B, 1, H, W) -> predicted frames

    def __init__(self, config: FramesModel) -> None:
        super().__init__()
        self.config = config
        p2, hc, k, L = config.patch**2, config.hidden_size, config.kernel_size, config.num_layers
        self.encoder = ConvLSTM(p2, hc, k, L, dropout=config.dropout if L > 1 else 0.0)
        self.forecaster = ConvLSTM(p2 if config.condition else 1, hc, k, L, dropout=config.dropout if L > 1 else 0.0)
        self.head = nn.Conv2d(hc, p2, 1)
        self.skip: nn.Conv2d | None = None
        if config.condition and config.skip:
            self.skip = nn.Conv2d(p2, p2, 3, padding=1)
            with torch.no_grad():  # logits 8 x - 4: sigmoid gives back about the input frame
                self.skip.weight.zero_()
                self.skip.weight[:, :, 1, 1] = 8.0 * torch.eye(p2)
                self.skip.bias.fill_(-4.0)

    def check_frames(self, x: Tensor) -> None:
        p = self.config.patch
        if x.ndim != 5 or x.shape[2] != 1 or x.shape[-1] % p or x.shape[-2] % p or not x.is_floating_point():
            raise ValueError(f"frames must be float (T, B, 1, H, W) with H and W multiples of model.patch={p}, "
                             f"got {x.dtype} {tuple(x.shape)}")  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        self.check_frames(x)
        T, B, _, H, W = x.shape
        p = self.config.patch
        z = F.pixel_unshuffle(x.flatten(0, 1), p).unflatten(0, (T, B))  # (T, B, p², H/p, W/p)
        _, states = self.encoder(z)  # one (h, c) per layer, each (B, Hc, H/p, W/p)
        if self.config.condition:
            prev, steps = z[-1], []  # (B, p², H/p, W/p): the last given frame
            for _ in range(self.config.horizon):
                y, states = self.forecaster(prev[None], states)  # (1, B, Hc, H/p, W/p)
                logits = self.head(y[0])  # (B, p², H/p, W/p)
                steps.append(logits if self.skip is None else logits + self.skip(prev))
                prev = torch.sigmoid(steps[-1])  # the predicted frame, in patches
            logits = torch.stack(steps).flatten(0, 1)  # (horizon * B, p², H/p, W/p)
        else:
            blank = z.new_zeros(self.config.horizon, B, 1, H // p, W // p)  # the forecaster's input: nothing
            y, _ = self.forecaster(blank, states)  # (horizon, B, Hc, H/p, W/p)
            logits = self.head(y.flatten(0, 1))  # (horizon * B, p², H/p, W/p)
        return F.pixel_shuffle(logits, p).unflatten(0, (self.config.horizon, B))  # (horizon, B, 1, H, W)


class FCForecaster(nn.Module):
    """Shi et al.'s FC-LSTM baseline: the same encoder-forecaster with ``lstmkit.LSTM`` on flattened frames.

    ``forward(x)``: x (T_in, B, 1, H, W) -> logits (horizon, B, 1, H, W); the frame size is fixed.
    """

    export_kind: ClassVar[str] = "fc-frames"

    def __init__(self, frame: tuple[int, int], hidden_size: int, num_layers: int, horizon: int) -> None:
        super().__init__()
        self.frame, self.horizon = tuple(frame), horizon
        pixels = frame[0] * frame[1]
        self.encoder = LSTM(pixels, hidden_size, num_layers)
        self.forecaster = LSTM(1, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, pixels)

    def forward(self, x: Tensor) -> Tensor:
        T, B = x.shape[:2]
        _, state = self.encoder(x.reshape(T, B, -1))  # (T, B, H*W) -> (h, c) each (L, B, Hd)
        y, _ = self.forecaster(x.new_zeros(self.horizon, B, 1), state)  # (horizon, B, Hd)
        return self.head(y).reshape(self.horizon, B, 1, *self.frame)


def fc_hidden_for(params: int, frame: tuple[int, int], num_layers: int) -> int:
    """The hidden size whose ``FCForecaster`` has the parameter count nearest ``params`` (at least 1)."""
    def count(h: int) -> int:
        return sum(p.numel() for p in FCForecaster(frame, h, num_layers, 1).parameters())

    lo, hi = 1, 4096  # the count grows with h: bisect for the last h at or below params
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if count(mid) <= params else (lo, mid - 1)
    return min((lo, lo + 1), key=lambda h: abs(count(h) - params))
