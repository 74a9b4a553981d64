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

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.nn import LSTM, ConvLSTM, Linear
from lstmkit.train.config import ModelConfig

LOSSES = ("bce", "mse", "l1", "bce+ssim")
OUTPUTS = ("pixels", "motion")
IMPLS = ("auto", "bptt", "winograd", "fused", "concat", "reference")  # lstmkit.ConvLSTM's impl= values
# The correlation's start weights (products, squared differences), from validation pilots of the correlation
# alone (no training, the mask at 1): constant-velocity kernels with SSIM above copy-last-frame's on all 10 frames.
EVIDENCE_GAINS = (5.0, -100.0)
PROB_EPS = 1e-6  # output="motion": probabilities are clamped to [eps, 1 - eps] before the logit (finite logits)


@dataclass(frozen=True)
class FramesModel(ModelConfig):
    """The ConvLSTM stack: ``hidden_size`` is its hidden channels per layer (Hc)."""

    _no_weight_dropout = "the ConvLSTM's recurrent weights are convolution kernels"
    _no_zoneout = "the ConvLSTM has no zoneout"

    hidden_size: int = 16  # hidden channels per layer: 32 took 2x the time per step, too slow for the 15-minute budget
    num_layers: int = 2  # Shi et al.'s best Moving MNIST model has 3 (of 64-128 channels); 2 of 16 fit the CPU budget
    dropout: float = 0.0  # no overfitting to fight: every epoch draws new sequences
    # Shi et al. use 5 x 5 state-to-state kernels (on 4 x 4 patches: 20 x 20 pixels); the moving-digits task sets 3,
    # whose cheaper step buys more steps in its 15 minutes (docs/results.md, session 12)
    kernel_size: int = 5
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
    # "l1" and "bce+ssim" raise SSIM above copy-last-frame's in pilots, but by letting the digits fade to black
    # (an all-black frame scores SSIM 0.78 on this data, docs/results.md): kept to show that, not to use.
    loss: str = "bce"
    # What the forecaster's head draws. "pixels": the frame's intensities (logits from the 1 x 1 head, plus the
    # skip). "motion" (Finn et al. 2016's DNA): per patch, a softmax kernel of (2 s + 1)^2 taps moving the
    # previous frame (s = the data's largest displacement per frame, ``max_shift``), composited by a
    # per-pixel mask with the "pixels" frame for content the warp cannot bring. "pixels" stays the default:
    # in 5-minute validation pilots "motion" learnt blurred kernels, lower SSIM (docs/results.md).
    output: str = "pixels"
    # With output="motion": add to the kernels' logits a 1 x 1 convolution of the ``correlation`` of the last two
    # frames at each tap (started at EVIDENCE_GAINS: "keep moving as you moved"), so the kernels can read the
    # digits' last motion off the frames rather than learn it in the ConvLSTM's state.
    correlation: bool = False
    # Predicted intensities below ``floor`` are emitted as 0, the background, in every scored, predicted and
    # exported frame (of the baselines too: ``floored``); training and the frames fed back are unaffected.
    # The sigmoid never reaches 0, and SSIM (C1 = 1e-4) charges the faint halo it leaves on the exact-0
    # background (docs/results.md). 0 keeps the raw sigmoid; the moving-digits task sets its default.
    floor: float = 0.0
    # How the ConvLSTM layers run (lstmkit.ConvLSTM's impl): "winograd" (3 x 3 kernels) is 0.84x "auto"'s time at
    # this task's layers (docs/benchmarks.md, session 19) with a float32 rounding a few times larger, but the whole
    # training step is no faster: 3 seeds with it reached the same steps and figures (docs/results.md, session 20).
    # The ONNX export verifies against the direct convolutions either way.
    impl: str = "auto"

    def _validate(self) -> None:
        super()._validate()
        if self.impl not in IMPLS:
            raise ValueError(f"model.impl must be one of {IMPLS}, got {self.impl!r}")
        if self.impl == "winograd" and self.kernel_size != 3:
            raise ValueError(f"model.impl='winograd' runs 3 x 3 kernels only (F(4x4, 3x3)), got model.kernel_size "
                             f"{self.kernel_size}")
        if not 0.0 <= self.floor < 1.0:
            raise ValueError(f"model.floor must be in [0, 1), got {self.floor}")
        if self.output not in OUTPUTS:
            raise ValueError(f"model.output must be one of {OUTPUTS}, got {self.output!r}")
        if self.correlation and self.output != "motion":
            raise ValueError("model.correlation needs model.output='motion': it feeds the motion kernels")
        if self.output == "motion" and not self.condition:
            raise ValueError("model.output='motion' needs model.condition: it moves the previous frame")
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


def floored(frames: Tensor, floor: float) -> Tensor:
    """``frames`` with every intensity below ``floor`` set to 0 (the background); the same tensor at floor 0."""
    if floor <= 0.0:
        return frames
    return torch.where(frames < floor, torch.zeros_like(frames), frames)


def ssim(pred: Tensor, target: Tensor, win: int = 7) -> Tensor:
    """The mean SSIM of frames (..., H, W) in [0, 1], as scikit-image's ``structural_similarity`` computes
    it (``lstmkit.metrics.frame_ssim``: a uniform win x win window, the sample covariance, data_range 1,
    the windows that fit inside the frame), differentiable."""
    x, y = pred.reshape(-1, 1, *pred.shape[-2:]), target.reshape(-1, 1, *target.shape[-2:])
    n = win * win
    mean = lambda v: F.avg_pool2d(v, win, stride=1)  # noqa: E731
    mx, my = mean(x), mean(y)
    cov = n / (n - 1)
    vx, vy, vxy = cov * (mean(x * x) - mx * mx), cov * (mean(y * y) - my * my), cov * (mean(x * y) - mx * my)
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean()


def frame_loss(logits: Tensor, target: Tensor, loss: str) -> Tensor:
    """The per-pixel training loss, averaged over pixels, frames and sequences."""
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    if loss == "bce+ssim":  # the metric's structure term too: a haze over the background costs SSIM
        return F.binary_cross_entropy_with_logits(logits, target) + 1 - ssim(torch.sigmoid(logits), target)
    if loss == "l1":  # its optimum is each pixel's median, 0 or 1 on near-binary frames: sharp, not a blend
        return F.l1_loss(torch.sigmoid(logits), target)
    return F.mse_loss(torch.sigmoid(logits), target)


def shifted(frame: Tensor, K: int, step: int = 1) -> Tensor:
    """The K² shifted copies (B, K², H, W) of ``frame`` (B, 1, H, W), K = 2 s + 1 odd, taps in row-major order:
    copy i K + j at (y, x) is frame[y + step (i - s), x + step (j - s)], zero outside the frame (slices of
    the zero-padded frame)."""
    if K < 1 or K % 2 == 0:
        raise ValueError(f"the kernel size must be a positive odd number, got {K}")
    r, (H, W) = step * (K // 2), frame.shape[-2:]
    padded = F.pad(frame, (r, r, r, r))  # (B, 1, H + 2r, W + 2r)
    return torch.cat([padded[:, :, step * i : step * i + H, step * j : step * j + W]
                      for i in range(K) for j in range(K)], dim=1)  # fmt: skip


def warp(frame: Tensor, kernels: Tensor) -> Tensor:
    """Move ``frame`` (B, 1, H, W) by per-pixel kernels (B, K², H, W), K odd, taps in row-major order:
    out[y, x] = sum over (i, j) of kernels[i K + j, y, x] * frame[y + i - s, x + j - s], s = K // 2.
    The sum of the K² ``shifted`` copies of the zero-padded frame: a one-hot kernel at tap (s - dy, s - dx)
    shifts the frame by (dy, dx) exactly; a kernel summing to 1 makes each output pixel a convex
    combination of its neighbours."""
    K = math.isqrt(kernels.shape[1])
    if kernels.shape[1] != K * K or K % 2 == 0:
        raise ValueError(f"kernels must have K² channels with K odd, got {kernels.shape[1]}")
    return (kernels * shifted(frame, K)).sum(dim=1, keepdim=True)  # (B, 1, H, W)


def correlation(frame: Tensor, before: Tensor, K: int, patch: int) -> Tensor:
    """The evidence (B, 2 K², H/patch, W/patch) for each tap of the kernels that move ``frame`` on, from the
    motion between ``before`` and ``frame`` (both (B, 1, H, W)): for the tap reading frame[y + o], over each
    patch, the mean of frame[y + o] * before[y + 2 o] (channels :K²) and of (frame[y + o] - before[y + 2 o])²
    (channels K²:). The content that tap brings to y was at y + 2 o a frame earlier if it keeps its speed
    (it moved by -o): the squared difference is 0 for the taps consistent with the last motion, and the
    product tells content from empty background (a correlation layer as in FlowNet, Dosovitskiy et al.
    2015, taken along each tap's line of motion)."""
    now, then = shifted(frame, K), shifted(before, K, 2)
    return F.avg_pool2d(torch.cat([now * then, (now - then) ** 2], dim=1), patch)


def composite(frame: Tensor, kernels: Tensor, mask_logits: Tensor, generated: Tensor) -> Tensor:
    """The "motion" output (Finn et al. 2016, DNA): m * warp(frame, kernels) + (1 - m) * generated,
    m = sigmoid(mask_logits); frame and generated (B, 1, H, W) in [0, 1], kernels (B, K², H, W) (a softmax
    over the K² taps), mask_logits (B, 1, H, W). In [0, 1] when frame and generated are."""
    m = torch.sigmoid(mask_logits)
    return m * warp(frame, kernels) + (1 - m) * generated


class ConvForecaster(nn.Module):
    """Encoder ConvLSTM stack -> forecaster ConvLSTM stack (states copied layer by layer) -> 1 x 1 conv heads.

    ``forward(x)``: x (T_in, B, 1, H, W) intensities in [0, 1], H and W multiples of ``patch`` ->
    logits (horizon, B, 1, H, W). The frames are cut into ``patch`` x ``patch`` patches first
    (``pixel_unshuffle``: (1, H, W) -> (p², H/p, W/p)), and the heads' outputs are put back together the
    same way (``pixel_shuffle``), so each of a patch's pixels has its own values.

    With ``config.output == "motion"`` the model needs ``max_shift`` (s: the data's largest displacement
    per frame along either axis, ``moving_digits.data.max_shift``) and draws each frame with ``composite``:
    per patch, a (2 s + 1)² kernel (``self.kernels``; the patch's pixels share it) moving the previous
    frame, and per pixel a mask (``self.mask``) mixing it with the "pixels" frame. Its logits are those of
    the probability clamped to [PROB_EPS, 1 - PROB_EPS], so the sigmoid of ``forward`` gives the frame
    back, as in "pixels".
    """

    export_kind: ClassVar[str] = "frames"  # lstmkit.export: frames (T_in, B, 1, H, W) -> predicted frames

    def __init__(self, config: FramesModel, *, max_shift: int | None = None) -> None:
        super().__init__()
        self.config = config
        p2, hc, k, L = config.patch**2, config.hidden_size, config.kernel_size, config.num_layers
        drop = config.dropout if L > 1 else 0.0
        self.encoder = ConvLSTM(p2, hc, k, L, dropout=drop, impl=config.impl)
        self.forecaster = ConvLSTM(p2 if config.condition else 1, hc, k, L, dropout=drop, impl=config.impl)
        self.head = nn.Conv2d(hc, p2, 1)
        self.skip: nn.Conv2d | None = None
        if config.condition and config.skip:
            self.skip = nn.Conv2d(p2, p2, 3, padding=1)
            with torch.no_grad():  # logits 8 x - 4: sigmoid gives back about the input frame
                self.skip.weight.zero_()
                self.skip.weight[:, :, 1, 1] = 8.0 * torch.eye(p2)
                self.skip.bias.fill_(-4.0)
        self.max_shift: int | None = None
        self.kernels: nn.Conv2d | None = None
        self.mask: nn.Conv2d | None = None
        self.evidence: nn.Conv2d | None = None
        if config.output == "motion":
            if max_shift is None or isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 1:
                raise ValueError(f"model.output='motion' needs max_shift, the largest displacement per frame "
                                 f"in pixels (an int >= 1), got {max_shift!r}")  # fmt: skip
            self.max_shift = max_shift
            taps = (2 * max_shift + 1) ** 2
            # One kernel per patch (its pixels move together; per pixel cost 3x the time for the warp), one
            # mask value per pixel.
            self.kernels = nn.Conv2d(hc, taps, 1)
            self.mask = nn.Conv2d(hc, p2, 1)
            with torch.no_grad():  # start from the frames' own evidence (below) or, without it, copy-last-frame:
                self.kernels.weight.zero_()  # half of each kernel on the centre tap, 0.98 of each pixel from
                self.kernels.bias.zero_()  # the warp
                self.kernels.bias[taps // 2] = math.log(taps - 1)
                self.mask.weight.zero_()
                self.mask.bias.fill_(4.0)
            if config.correlation:
                self.evidence = nn.Conv2d(2 * taps, taps, 1, bias=False)
                with torch.no_grad():  # each tap's logit from its own product and squared difference
                    eye = torch.eye(taps)[:, :, None, None]
                    self.evidence.weight.copy_(torch.cat([g * eye for g in EVIDENCE_GAINS], dim=1))
        elif max_shift is not None:
            raise ValueError("max_shift applies to model.output='motion' only")

    def check_frames(self, x: Tensor) -> None:
        p = self.config.patch
        if x.ndim != 5 or x.shape[2] != 1 or x.shape[-1] % p or x.shape[-2] % p or not x.is_floating_point():
            raise ValueError(f"frames must be float (T, B, 1, H, W) with H and W multiples of model.patch={p}, "
                             f"got {x.dtype} {tuple(x.shape)}")  # fmt: skip

    def _draw(self, y: Tensor, prev: Tensor, before: Tensor) -> tuple[Tensor, Tensor]:
        """One predicted frame from the forecaster's top output y (B, Hc, H/p, W/p), the previous frame
        prev and the one before it (B, p², H/p, W/p): its logits and its intensities, both (B, p², H/p, W/p)."""
        p = self.config.patch
        logits = self.head(y)
        if self.skip is not None:
            logits = logits + self.skip(prev)
        if self.kernels is None or self.mask is None:
            return logits, torch.sigmoid(logits)
        frame = F.pixel_shuffle(prev, p)  # (B, 1, H, W)
        kernels = self.kernels(y)  # (B, K², H/p, W/p) logits
        if self.evidence is not None:
            K = 2 * self.max_shift + 1
            kernels = kernels + self.evidence(correlation(frame, F.pixel_shuffle(before, p), K, p))
        kernels = torch.softmax(kernels, dim=1)  # each patch's kernel, then to its pixels:
        kernels = kernels.repeat_interleave(p, dim=2).repeat_interleave(p, dim=3)  # (B, K², H, W)
        frame = composite(frame, kernels, F.pixel_shuffle(self.mask(y), p),
                          F.pixel_shuffle(torch.sigmoid(logits), p))  # fmt: skip
        frame = F.pixel_unshuffle(frame.clamp(PROB_EPS, 1 - PROB_EPS), p)
        return torch.logit(frame), frame

    def forward(self, x: Tensor) -> Tensor:
        self.check_frames(x)
        T, B, _, H, W = x.shape
        p = self.config.patch
        z = F.pixel_unshuffle(x.flatten(0, 1), p).unflatten(0, (T, B))  # (T, B, p², H/p, W/p)
        _, states = self.encoder(z)  # one (h, c) per layer, each (B, Hc, H/p, W/p)
        if self.config.condition:
            if self.evidence is not None and T < 2:
                raise ValueError(f"model.correlation needs at least 2 given frames, got {T}")
            prev, before, steps = z[-1], z[-2 if T > 1 else -1], []  # (B, p², H/p, W/p): the last given frames
            for _ in range(self.config.horizon):
                y, states = self.forecaster(prev[None], states)  # (1, B, Hc, H/p, W/p)
                logits, frame = self._draw(y[0], prev, before)  # the predicted frame, in patches
                before, prev = prev, frame
                steps.append(logits)
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
        self.head = Linear(hidden_size, pixels)  # over every frame: lstmkit's panels where MKL is the slower

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
