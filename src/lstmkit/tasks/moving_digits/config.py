"""``moving-digits``'s ``[data]`` section: the canvas, the sequence, the digit pools."""

from __future__ import annotations

from dataclasses import dataclass

from lstmkit.train import DataConfig


@dataclass(frozen=True)
class MovingDigitsData(DataConfig):
    """Sequences of handwritten digits bouncing inside a square canvas (as in Moving MNIST)."""

    canvas: int = 64  # Moving MNIST's 64 x 64 (Srivastava et al. 2015); the smoke config uses 16
    digit_size: int = 28  # MNIST's own size; smaller canvases take smaller (area-resized) digits
    digits: int = 2  # digits per sequence, overlaid with max as in Moving MNIST
    input_frames: int = 10  # frames given
    output_frames: int = 10  # frames predicted
    speed: float = 3.0  # pixels per frame on a 64 canvas (scaled with the canvas); Moving MNIST moves about 3.6
    train_sequences: int = 1600  # per epoch, freshly drawn each epoch from the training digits and train.seed
    val_sequences: int = 128  # fixed (seed below): early stopping and the validation loss
    test_sequences: int = 256  # fixed (seed below), from the test digits only: every reported figure
    eval_seed: int = 20150613  # the validation and test trajectories: the same for every run and train.seed
    fc_steps: int = 600  # optimiser steps of the fully connected LSTM baseline (cheap: a few seconds per 100)
    strips: int = 4  # test sequences drawn in strips.png

    def _validate(self) -> None:
        super()._validate()
        for name in ("canvas", "digit_size", "digits", "input_frames", "output_frames", "train_sequences",
                     "val_sequences", "test_sequences", "fc_steps"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if self.digit_size > self.canvas:
            raise ValueError(f"data.digit_size ({self.digit_size}) must fit in data.canvas ({self.canvas})")
        if not self.speed > 0:
            raise ValueError(f"data.speed must be > 0, got {self.speed}")
        if self.strips < 0:
            raise ValueError(f"data.strips must be >= 0, got {self.strips}")

    @property
    def frames(self) -> int:
        return self.input_frames + self.output_frames
