"""Metrics for sequence models: classification, language modelling, transcription, forecasting, video frames."""

from __future__ import annotations

from lstmkit.metrics.classification import accuracy, precision_recall_f1
from lstmkit.metrics.ctc_decode import ctc_greedy_decode, ctc_prefix_beam_search
from lstmkit.metrics.frames import frame_mae, frame_mse, frame_ssim
from lstmkit.metrics.regression import mae, mase, rmse, smape
from lstmkit.metrics.text import bits_per_char, cer, edit_distance, perplexity, wer

__all__ = [
    "accuracy",
    "bits_per_char",
    "cer",
    "ctc_greedy_decode",
    "ctc_prefix_beam_search",
    "edit_distance",
    "frame_mae",
    "frame_mse",
    "frame_ssim",
    "mae",
    "mase",
    "perplexity",
    "precision_recall_f1",
    "rmse",
    "smape",
    "wer",
]
