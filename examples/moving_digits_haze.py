"""How much of a moving-digits run's SSIM deficit is faint background ("haze"), on the validation split.

Prints (1) the SSIM and MSE of the truth itself plus a uniform haze h (what SSIM's C1 = 1e-4 does to faint
values on a background that is exactly 0), (2) the run's predicted intensity on background pixels more than
7 pixels from any digit, and (3) the run's MSE, MAE and per-frame SSIM when predicted values below a floor f
are set to 0, beside copy-last-frame. An analysis, not a model option: docs/results.md says why no floor is used.

    PYTHONPATH=src python examples/moving_digits_haze.py runs/md-5k [--split val]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.ndimage import binary_dilation

from lstmkit.metrics import frame_mae, frame_mse, frame_ssim
from lstmkit.tasks.moving_digits import scoring as S
from lstmkit.tasks.registry import get_task
from lstmkit.tasks.rundir import open_run

FLOORS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
HAZES = (0.0, 0.002, 0.005, 0.01, 0.018, 0.03)


def line(name: str, pred: np.ndarray, truth: np.ndarray) -> str:
    ssim = frame_ssim(pred, truth)  # (T_out,)
    return (f"{name:>14}  MSE {frame_mse(pred, truth).mean():7.2f}  MAE {frame_mae(pred, truth).mean():7.2f}  "
            f"SSIM {ssim.mean():.4f}  per frame {np.round(ssim, 3).tolist()}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--split", choices=("val", "test"), default="val")
    args = ap.parse_args()
    run = open_run(args.run)
    model, _, prepared = get_task("moving-digits").load(run)
    d = run.config.data
    frames = prepared.val if args.split == "val" else prepared.test
    truth = frames[:, d.input_frames :, 0].numpy()  # (N, T_out, H, W)
    print(f"{args.split}: {len(truth)} sequences; share of truth pixels exactly 0: {(truth == 0).mean():.3f}")
    for h in HAZES:
        print(line(f"truth + {h}", np.maximum(truth, h), truth))
    pred = S.predict(model, frames, d.input_frames, d.batch_size)
    far = ~binary_dilation(truth > 0, structure=np.ones((1, 1, 15, 15), dtype=bool))
    print(f"prediction on background > 7 px from a digit ({far.mean():.3f} of pixels): mean {pred[far].mean():.4f}, "
          f"median {np.median(pred[far]):.4f}, 99th percentile {np.quantile(pred[far], 0.99):.4f}")  # fmt: skip
    print(line("copy last", S.copy_last(frames, d.input_frames, d.output_frames), truth))
    for f in FLOORS:
        print(line(f"floor {f}", np.where(pred < f, 0.0, pred), truth))


if __name__ == "__main__":
    main()
