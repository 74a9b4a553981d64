"""``moving-digits``' scores: per predicted frame MSE, MAE (summed over pixels) and SSIM, for the
ConvLSTM and the two baselines on the same sequences."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lstmkit.metrics import frame_mae, frame_mse, frame_ssim
from lstmkit.models import floored

MODEL = "ConvLSTM"
COPY = "copy last frame"
FC = "FC-LSTM"


@torch.no_grad()
def predict(model: nn.Module, frames: torch.Tensor, input_frames: int, batch_size: int, floor: float = 0.0
            ) -> np.ndarray:
    """Predicted frames (N, T_out, H, W) in [0, 1] for sequences (N, T, 1, H, W), values below ``floor`` at 0."""
    model.eval()
    out = []
    for i in range(0, len(frames), batch_size):
        x = frames[i : i + batch_size].transpose(0, 1)[:input_frames]  # (T_in, B, 1, H, W)
        out.append(floored(torch.sigmoid(model(x)), floor)[:, :, 0].transpose(0, 1))  # (B, T_out, H, W)
    return torch.cat(out).numpy()


def copy_last(frames: torch.Tensor, input_frames: int, output_frames: int, floor: float = 0.0) -> np.ndarray:
    """The last given frame repeated, values below ``floor`` at 0 like every method's: (N, T_out, H, W)."""
    last = floored(frames[:, input_frames - 1, 0], floor).numpy()  # (N, H, W)
    return np.repeat(last[:, None], output_frames, axis=1)


def score(predictions: dict[str, np.ndarray], truth: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per-frame and mean MSE, MAE and SSIM of each method's predictions (N, T_out, H, W)."""
    out = {}
    for name, pred in predictions.items():
        per = {"mse": frame_mse(pred, truth), "mae": frame_mae(pred, truth), "ssim": frame_ssim(pred, truth)}
        out[name] = {k: float(v.mean()) for k, v in per.items()}
        out[name]["per_frame"] = {k: [round(float(x), 6) for x in v] for k, v in per.items()}
    return out


def score_split(model: nn.Module, fc: nn.Module | None, frames: torch.Tensor, input_frames: int,
                batch_size: int, floor: float = 0.0) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Scores of the ConvLSTM, copy-last and (when given) the FC-LSTM on sequences (N, T, 1, H, W), and
    the predictions themselves; every method's values below ``floor`` (model.floor) set to 0 alike."""
    output_frames = frames.shape[1] - input_frames
    truth = frames[:, input_frames:, 0].numpy()  # (N, T_out, H, W)
    preds = {MODEL: predict(model, frames, input_frames, batch_size, floor),
             COPY: copy_last(frames, input_frames, output_frames, floor)}  # fmt: skip
    if fc is not None:
        preds[FC] = predict(fc, frames, input_frames, batch_size, floor)
    return score(preds, truth), preds


def beats_baselines(scores: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """Whether the ConvLSTM has a lower MSE and a higher SSIM than every baseline on every predicted frame."""
    mine = scores[MODEL]["per_frame"]
    out = {}
    for name, s in scores.items():
        if name == MODEL:
            continue
        theirs = s["per_frame"]
        out[name] = all(a < b for a, b in zip(mine["mse"], theirs["mse"], strict=True)) and all(
            a > b for a, b in zip(mine["ssim"], theirs["ssim"], strict=True)
        )
    return out
