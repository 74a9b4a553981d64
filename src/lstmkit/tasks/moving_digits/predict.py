"""``lstmkit predict RUN_DIR FRAMES``: continue your own frame sequence with a moving-digits run.

``FRAMES`` is a ``.npy`` array (T, H, W) or (T, 1, H, W) (uint8 0-255, or floats in [0, 1]), or a
folder of PNG files, one frame each, taken in name order (converted to grey). Frames are light
digits on a dark background, as in training, H and W multiples of the run's ``model.patch`` (the
ConvLSTM runs on any such size; it was trained at ``data.canvas``). The model reads the last
``data.input_frames`` frames (fewer if fewer are given) and predicts ``data.output_frames``; longer
continuations (``frames``) feed the predictions back as the next input, ``output_frames`` at a time.

Writes into ``out`` (default ``RUN_DIR/predictions/NAME``): ``pred_00.png``, ``pred_01.png``, ...
and ``sequence.gif`` (the given frames, then the predicted ones), all through the atomic writers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstmkit._fileio import write_bytes_atomic
from lstmkit.data.images import read_image
from lstmkit.models import floored
from lstmkit.tasks.base import TaskError
from lstmkit.tasks.moving_digits.task import MovingDigitsTask
from lstmkit.tasks.rundir import open_run

MAX_FRAMES = 1000  # input frames read; a longer sequence is a mistake (only the last few are used)


@dataclass
class Prediction:
    frames: np.ndarray  # (N, H, W) predicted intensities in [0, 1]
    out: Path
    files: list[Path]
    lines: list[str]


def read_frames(source: str | Path) -> np.ndarray:
    """Frames (T, H, W) float32 in [0, 1] from a .npy file or a folder of PNGs; ``TaskError`` says what is wrong."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() == ".png")
        if not files:
            raise TaskError(f"{source} holds no .png files")
        if len(files) > MAX_FRAMES:
            raise TaskError(f"{source} holds {len(files)} PNG files; at most {MAX_FRAMES} frames are read")
        try:
            images = [read_image(f) for f in files]
        except ValueError as e:
            raise TaskError(str(e)) from e
        if len({im.shape for im in images}) != 1:
            raise TaskError(f"the PNG files of {source} differ in size: {sorted({im.shape for im in images})}")
        return np.stack(images).astype(np.float32) / 255.0
    if source.suffix.lower() != ".npy":
        raise TaskError(f"{source}: give a .npy array (T, H, W) or a folder of PNG frames")
    try:
        x = np.load(source, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise TaskError(f"{source} is not a readable .npy array: {e}") from e
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or 0 in x.shape:
        raise TaskError(f"{source}: frames must be (T, H, W) or (T, 1, H, W), got shape {x.shape}")
    if len(x) > MAX_FRAMES:
        raise TaskError(f"{source} holds {len(x)} frames; at most {MAX_FRAMES} are read")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise TaskError(f"{source}: frames must be uint8 (0-255) or finite floats in [0, 1], got {x.dtype} "
                        f"in [{x.min()}, {x.max()}]")  # fmt: skip
    return x.astype(np.float32)


def _png(frame: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.rint(frame * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _gif(frames: np.ndarray, given: int) -> bytes:
    """An animated GIF of all frames, 150 ms each; predicted frames get a grey bar at the top."""
    from PIL import Image

    images = []
    for i, f in enumerate(frames):
        g = np.rint(f * 255).astype(np.uint8)
        if i >= given:
            g = g.copy()
            g[: max(1, g.shape[0] // 32)] = 128  # marks a prediction
        images.append(Image.fromarray(g).convert("P"))
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=150, loop=0)
    return buf.getvalue()


def predict_run(run_dir: str | Path, source: str | Path, *, frames: int | None = None,
                out: str | Path | None = None) -> Prediction:
    """Predict ``frames`` (default: the run's ``data.output_frames``) frames after the sequence in ``source``."""
    run = open_run(run_dir)
    if not isinstance(run.task, MovingDigitsTask):
        raise TaskError(f"{run_dir} holds a {run.task.name!r} run; `lstmkit predict` needs a moving-digits run")
    d, patch = run.config.data, run.config.model.patch
    n_out = d.output_frames if frames is None else frames
    if n_out < 1:
        raise TaskError(f"--frames must be >= 1, got {n_out}")
    given = read_frames(source)
    T, H, W = given.shape
    if H % patch or W % patch:
        raise TaskError(f"frames of {H} x {W} pixels: height and width must be multiples of the run's "
                        f"model.patch={patch} (it was trained on {d.canvas} x {d.canvas})")  # fmt: skip
    model = run.load_weights(run.task.build_model(run.config))
    seq = torch.from_numpy(given)  # (T, H, W)
    predicted: list[torch.Tensor] = []
    with torch.no_grad():
        while len(predicted) * d.output_frames < n_out:
            context = torch.cat([seq, *predicted])[-d.input_frames :]  # (T_in, H, W)
            frames_out = floored(torch.sigmoid(model(context[:, None, None])), run.config.model.floor)
            predicted.append(frames_out[:, 0, 0])  # (T_out, H, W): emitted frames, also the next context
    pred = torch.cat(predicted)[:n_out].numpy()
    name = Path(source).stem or "frames"
    out_dir = Path(out) if out is not None else run.path / "predictions" / name
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TaskError(f"cannot create {out_dir}: {e.strerror or e}") from e
    files = []
    for i, frame in enumerate(pred):
        files.append(out_dir / f"pred_{i:02d}.png")
        write_bytes_atomic(files[-1], _png(frame))
    files.append(out_dir / "sequence.gif")
    write_bytes_atomic(files[-1], _gif(np.concatenate([given, pred]), T))
    lines = [f"read {T} frame(s) of {H} x {W} from {source}; the model used the last {min(T, d.input_frames)}",
             f"predicted {n_out} frame(s): {out_dir}/pred_00.png .. pred_{n_out - 1:02d}.png",
             f"animation (given, then predicted): {files[-1]}"]  # fmt: skip
    return Prediction(pred, out_dir, files, lines)
