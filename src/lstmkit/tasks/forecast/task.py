"""The ``forecast`` task: the ``Task`` interface over the data, steps and scoring of this package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from lstmkit.data import Standardizer
from lstmkit.formats.integrity import save_model_file
from lstmkit.models import EnsembleForecaster, ForecastModel, ForecastNet
from lstmkit.tasks.base import ConfigError, Prepared, Task, TaskError, TrainingData
from lstmkit.tasks.forecast.config import ForecastData
from lstmkit.tasks.forecast.data import (
    _DATA_FORMAT,
    _DATA_VERSION,
    DATA,
    SCALER,
    SPLITS,
    ForecastPrepared,
    _stack,
    describe_source,
    fingerprint,
    load_series,
    prepare_data,
    scaled_features,
    window_dataset,
)
from lstmkit.tasks.forecast.scoring import score_split
from lstmkit.tasks.forecast.steps import forecast_step
from lstmkit.tasks.registry import register_task
from lstmkit.tasks.rundir import MODEL, Run, read_scaler
from lstmkit.train import Config, TrainConfig, evaluate, fit, seed_everything, set_values

MEMBERS = "members"  # model.ensemble > 1: each member's training directory (checkpoints, metrics.csv)


@register_task("forecast")
class ForecastTask(Task):
    """One-series forecasting: RMSE, MAE, sMAPE and MASE of the LSTM beside naive, seasonal and AR baselines."""

    summary = (
        "forecasting: sunspots, airline passengers (data.dataset=airline) or --set data.csv=FILE data.column=NAME; "
        "LSTM vs naive, seasonal and AR baselines"
    )
    state_files = (SCALER, DATA)
    loss_label = "loss (MSE of the z-scored series)"

    def default_config(self) -> Config:
        # Tuned on sunspots' validation years (docs/results.md): a small net, because 177 training
        # windows overfit a large one within a few epochs; a constant rate and patient early stopping,
        # because the validation loss of 35 one-step targets is noisy.
        return Config(
            model=ForecastModel(hidden_size=32, num_layers=1, dropout=0.0),
            data=ForecastData(batch_size=16),  # about 11 updates per epoch on sunspots
            train=TrainConfig(
                epochs=300,
                lr=3e-3,
                schedule="constant",
                warmup_steps=0,  # the AR skip already gives a sensible start
                patience=100,
                stateful=False,  # windows are independent
                log_every=10,
                max_minutes=4.5,  # a guard for the 5-minute budget on a busy machine
            ),
        )

    def smoke_config(self, workdir: Path) -> Config:
        path = workdir / "forecast_smoke.csv"
        t = np.arange(80)
        values = 10 + np.sin(t * 2 * np.pi / 6) + 0.05 * t
        path.write_text("step,y\n" + "".join(f"{i},{v:.4f}\n" for i, v in zip(t, values, strict=True)))
        return Config(
            model=ForecastModel(hidden_size=8, num_layers=1, dropout=0.0),
            data=ForecastData(csv=str(path), column="y", window=6, horizon=2, season=6,
                              test_size=12, val_size=12, batch_size=8, auto_baselines=False),
            train=TrainConfig(epochs=3, max_steps=6, schedule="constant", warmup_steps=0, stateful=False,
                              progress=False, tensorboard=False, log_every=2),
        )  # fmt: skip

    def data_source(self, config: Config) -> str:
        return describe_source(config)

    def check_data(self, config: Config) -> None:
        load_series(config.data)

    def prepare(self, config: Config) -> ForecastPrepared:
        if config.data.csv:  # record the absolute path, so that the run can be evaluated from anywhere
            path = str(Path(config.data.csv).expanduser().resolve())
            config = set_values(config, {"data.csv": path, "data.dataset": ""})
        return prepare_data(config)

    def train(self, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
        assert isinstance(prepared, ForecastPrepared)
        config = prepared.config
        data = self.training_data(prepared)
        train_ds = data.train.dataset
        members, results = [], []
        for i in range(config.model.ensemble):  # model.ensemble > 1: member i in members/i with seed train.seed + i
            member_config = set_values(config, {"train.seed": config.train.seed + i})
            seed_everything(member_config.train.seed)
            model = self.single_model(member_config)
            if model.ar is not None:
                # On the training windows only, so that validation stays unseen (with data.full_train: every window
                # before the test); the same least squares for every member.
                model.fit_ar(*_stack(train_ds))
            out_dir = run_dir / MEMBERS / str(i) if config.model.ensemble > 1 else run_dir
            results.append(fit(model, data.train, data.step, config=member_config, out_dir=out_dir,
                               val_data=data.val or None))  # fmt: skip
            members.append(model)
        result = results[0]
        if len(members) > 1:
            model = EnsembleForecaster(members).eval()
            save_model_file(model, run_dir / MODEL)
        # The summary leads with the validation loss (what `lstmkit evaluate --split val` gives back; None with
        # data.full_train; an ensemble's is its averaged forecasts') and holds the test split's table.
        test = score_split(model, prepared, "test")
        val_loss = None
        if not config.data.full_train:
            val_loss = result.best_val_loss if len(members) == 1 else evaluate(model, data.val, data.step)
        metrics: dict[str, Any] = {"split": "val", "mse": val_loss, "test": test}
        if len(members) > 1:  # the members' own figures; steps, epochs and best_epoch below are the first's
            metrics["members"] = [{"seed": config.train.seed + i, "best_val_loss": r.best_val_loss,
                                   "best_epoch": r.best_epoch, "epochs": len(r.history), "steps": r.steps}
                                  for i, r in enumerate(results)]  # fmt: skip
        metrics.update(
            steps=result.steps,
            epochs=len(result.history),
            best_epoch=result.best_epoch,
            parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
            train_windows=len(train_ds),
            val_windows=len(data.val.dataset) if data.val else 0,
        )
        return metrics

    def training_data(self, prepared: Prepared) -> TrainingData:
        """Sliding windows: training ones shuffled, validation ones in one batch."""
        assert isinstance(prepared, ForecastPrepared)
        data, split = prepared.config.data, prepared.split
        if data.full_train:  # every window before the test; no validation part, no early stopping
            train_ds = window_dataset(prepared.z, 0, split.test_lo, data.window, data.horizon)
            return TrainingData(DataLoader(train_ds, batch_size=data.batch_size, shuffle=True), [], forecast_step)
        train_ds = window_dataset(prepared.z, 0, split.val_lo, data.window, data.horizon)
        val_ds = window_dataset(prepared.z, split.val_lo, split.test_lo, data.window, data.horizon)
        train = DataLoader(train_ds, batch_size=data.batch_size, shuffle=True)
        return TrainingData(train, DataLoader(val_ds, batch_size=len(val_ds)), forecast_step)

    def example_input(self, model: nn.Module, config: Config, *, length: int = 256) -> tuple[torch.Tensor, ...]:
        """One window (``data.window`` steps): what the model reads per forecast."""
        g = torch.Generator().manual_seed(0)
        return (torch.randn(config.data.window, 1, config.model.input_size, generator=g),)  # (W, B=1, F)

    def load(self, run: Run) -> tuple[ForecastNet, ForecastPrepared]:
        """The run's model and data, checking that the series is the one it was trained on."""
        recorded = run.read_record(DATA, _DATA_FORMAT, _DATA_VERSION)
        scaler = read_scaler(run.file(SCALER))
        prepared = prepare_data(run.config)
        if recorded.get("sha256") != fingerprint(prepared.series, prepared.split):
            raise TaskError(f"the series of {self.data_source(run.config)} is not the one this run was trained on "
                            f"(its SHA-256 differs from {run.file(DATA)})")
        prepared.scaler = scaler
        prepared.z, _ = scaled_features(prepared.series, prepared.config.data, scaler, prepared.split,
                                        run.config.model.base, prepared.season)  # fmt: skip
        model = run.load_weights(self.build_model(run.config))
        return model, prepared

    def build_model(self, config: Config) -> ForecastNet | EnsembleForecaster:
        if config.model.ensemble > 1:
            return EnsembleForecaster([self.single_model(config) for _ in range(config.model.ensemble)])
        return self.single_model(config)

    @staticmethod
    def single_model(config: Config) -> ForecastNet:
        return ForecastNet(config.model, config.data.ar_order)

    def serving_metadata(self, run: Run) -> dict[str, Any]:
        """How a window of raw values becomes the network's input and its output becomes forecasts: the
        target (column 0) is logged when ``log``, every column scaled by ``(x - mean) / std``; the output
        (B, horizon) is in scaled units: ``y * std[0] + mean[0]``, then ``exp`` when ``log``. With
        ``data.deseason`` (where it applied), a seasonal cycle is subtracted before the scaling and added after."""
        try:
            scaler = Standardizer.load(run.file(SCALER))
        except ValueError as e:
            raise TaskError(str(e)) from e
        data, base = run.config.data, run.config.model.base
        out = {
            "preprocess": {"columns": [data.column or "value", *data.covariate_list()], "log": bool(data.log),
                           "mean": scaler.mean.tolist(), "std": scaler.std.tolist(), "window": data.window,
                           "horizon": data.horizon},
        }  # fmt: skip
        if data.deseason != "off":
            _, prepared = self.load(run)
            if prepared.season is not None:  # "auto" may have left the series as it is
                season, n = prepared.season, len(prepared.season.component)
                out["preprocess"]["deseason"] = {
                    "period": season.m,
                    "cycle": season.at(np.arange(n, n + season.m)).tolist(),
                    "cycle_starts_at": prepared.series.labels[n],
                    "meaning": "subtracted from the (log) target before scaling and added to the unscaled output: "
                    "cycle[k] at the step k steps after cycle_starts_at, and every period steps after that (the "
                    "last season of the STL component fitted on the steps before cycle_starts_at)",
                }  # fmt: skip
        if base:  # the base model runs outside the network: say what its columns hold
            _, prepared = self.load(run)
            out["preprocess"]["base"] = {
                "model": prepared.base_name,
                "fitted_on": list(prepared.base_fitted_on()),  # first and last step
                "columns": ["base residual", *(f"base change +{k}" for k in range(1, data.horizon + 1))],
                "meaning": "appended after the scaled columns, divided by std[0]: at each step s the base model's "
                "one-step residual (value - its forecast from the steps before s) and its forecasts of steps "
                "s+1..s+horizon made from the steps up to s, minus the value at s; the (log) target units",
            }
        return out

    def candidates(self, config: Config) -> dict[str, dict[str, Any]]:
        """The LSTM with and without the AR skip, each reading the window as it is and level-free
        (``model.relative``): the choices the forecasting panel makes on the validation window
        (docs/results.md); with ``model.base`` (which replaces the AR skip) only the two readings."""
        if config.data.full_train:
            raise ConfigError("lstmkit select chooses on the validation window, and data.full_train trains on it: "
                              "unset it")  # fmt: skip
        readings = {"": {"model.relative": False}, ", relative": {"model.relative": True}}
        if config.model.base:
            return {f"{config.model.base.upper()} base{tag}": v for tag, v in readings.items()}
        skips = (("AR skip", True), ("no AR skip", False))
        return {f"{name}{tag}": {"model.ar_skip": skip, **v} for name, skip in skips for tag, v in readings.items()}

    def selection_loss(self, metrics: dict[str, Any]) -> float:
        if metrics.get("mse") is None:
            raise TaskError("the run has no validation loss (it was trained with data.full_train)")
        return float(metrics["mse"])

    def evaluate(self, run: Run, split: str) -> dict[str, Any]:
        if split not in SPLITS:
            raise TaskError(f"split must be one of {SPLITS}, got {split!r}")
        model, prepared = self.load(run)
        return score_split(model, prepared, split)

    def report(self, metrics: dict[str, Any]) -> list[str]:
        if "test" in metrics:  # a training summary: the validation loss, then the test table
            if metrics["mse"] is None:
                head = f"trained on every window before the test for {metrics['epochs']} epochs (data.full_train)"
            elif metrics.get("members"):
                epochs = ", ".join(str(m["best_epoch"]) for m in metrics["members"])
                head = (f"val loss: {metrics['mse']:.4f} (MSE of the z-scored series) of the {len(metrics['members'])} "
                        f"members' averaged forecasts (members' best epochs {epochs})")  # fmt: skip
            else:
                head = (f"val loss: {metrics['mse']:.4f} (MSE of the z-scored series), "
                        f"best epoch {metrics['best_epoch']}")  # fmt: skip
            return [head, *self.report(metrics["test"])]
        lines = [
            f"{metrics['split']} targets {metrics['targets']}: {metrics['origins']} origins x {metrics['horizon']} "
            f"step(s) ahead, in the series' units (full precision)",
        ]
        if metrics.get("base"):
            lines.append(f"the LSTM's base: {metrics['base']}, then fixed")
        if metrics.get("deseason"):
            lines.append(metrics["deseason"])
        if metrics.get("filled"):
            lines.append(f"gaps filled (data.gaps): {len(metrics['filled'])} step(s): {', '.join(metrics['filled'])}")
        names = list(metrics["scores"])
        width = max(40, *(len(n) + 1 for n in names))
        columns = ("mse", "rmse", "mae", "smape", "mase")
        table = [[repr(float(metrics["scores"][n][c])) for c in columns] for n in names]
        widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(("MSE", "RMSE", "MAE", "sMAPE%",
                                                                                       "MASE"))]  # fmt: skip
        header = ("MSE", "RMSE", "MAE", "sMAPE%", "MASE")
        lines.append(f"{'method':<{width}}" + " ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
        for name, row in zip(names, table, strict=True):
            lines.append(f"{name:<{width}}" + " ".join(f"{v:>{w}}" for v, w in zip(row, widths, strict=True)))
        return lines
