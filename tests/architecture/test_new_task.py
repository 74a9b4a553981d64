"""A task defined here, in the test suite alone, goes through every command: ``lstmkit train`` (the
runner), ``evaluate``, every ``lstmkit compress`` method and ``lstmkit export``, with no change to
``compress/`` or ``export/``: the ``Task`` interface is all they need."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from lstmkit.compress import distill_run, lowrank_run, prune_run, quantize_run
from lstmkit.data import pad_collate
from lstmkit.export.rundir import export_run
from lstmkit.models import ClassifyModel, SequenceClassifier
from lstmkit.tasks import runner
from lstmkit.tasks.base import Prepared, Step, Task, TaskError, TrainingData
from lstmkit.tasks.registry import TASKS, register_task
from lstmkit.train import Config, DataConfig, TrainConfig, evaluate, fit
from lstmkit.train.distill import classify_distill_step

NAME = "toy-sign"


def _batches(seed: int, n: int, batch_size: int) -> list:
    """Sequences of 4-9 steps of 2 features; the class is whether feature 0 sums above zero."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        xs = [torch.randn(int(torch.randint(4, 10, (1,), generator=g)), 2, generator=g) for _ in range(batch_size)]
        y = torch.tensor([int(x[:, 0].sum() > 0) for x in xs])
        out.append((pad_collate(xs), y))  # ((x (T, B, 2), lengths (B,), mask (T, B)), y (B,))
    return out


def _step(model: torch.nn.Module, batch: Any, state: Any) -> tuple[torch.Tensor, None, int]:
    (x, lengths, _), y = batch
    return F.cross_entropy(model(x, lengths), y), None, len(y)


@dataclasses.dataclass
class ToyPrepared(Prepared):
    config: Config
    splits: dict[str, list]

    def save(self, run_dir: Path) -> None:
        (run_dir / "toy.json").write_text(json.dumps({"seed": self.config.train.seed}))


class ToyTask(Task):
    summary = "sign of a sum (a test's own task)"
    state_files = ("toy.json",)
    unit = "sequence"

    def default_config(self) -> Config:
        return Config(
            model=ClassifyModel(input_size=2, output_size=2, hidden_size=8, num_layers=1, dropout=0.0),
            data=DataConfig(batch_size=8),
            train=TrainConfig(epochs=2, lr=1e-2, warmup_steps=1, progress=False, tensorboard=False),
        )

    def smoke_config(self, workdir: Path) -> Config:
        return self.default_config()

    def data_source(self, config: Config) -> str:
        return "generated in the test"

    def check_data(self, config: Config) -> None:
        pass

    def prepare(self, config: Config) -> ToyPrepared:
        s, b = config.train.seed, config.data.batch_size
        return ToyPrepared(config, {"train": _batches(s, 6, b), "val": _batches(s + 1, 2, b)})

    def training_data(self, prepared: Prepared) -> TrainingData:
        return TrainingData(prepared.splits["train"], prepared.splits["val"], _step)

    def build_model(self, config: Config) -> SequenceClassifier:
        return SequenceClassifier(config.model)

    def distill_step(self, teacher, base: Step, *, alpha: float, temperature: float, config: Config) -> Step:
        return classify_distill_step(teacher, base, alpha=alpha, temperature=temperature)

    def train(self, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
        model = self.build_model(prepared.config)
        data = self.training_data(prepared)
        result = fit(model, data.train, data.step, config=prepared.config, out_dir=run_dir, val_data=data.val)
        return {"split": "val", "nats_per_sequence": result.best_val_loss, "steps": result.steps}

    def evaluate(self, run, split: str) -> dict[str, Any]:
        if split != "val":
            raise TaskError(f"split must be 'val', got {split!r}")
        model = run.load_weights(self.build_model(run.config))
        return {"split": split, "nats_per_sequence": evaluate(model, self.prepare(run.config).splits["val"], _step)}

    def report(self, metrics: dict[str, Any]) -> list[str]:
        return [f"{metrics['split']} loss {metrics['nats_per_sequence']:.4f}"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    register_task(NAME)(ToyTask)
    try:
        root = tmp_path_factory.mktemp("toy")
        yield runner.train(NAME, ToyTask().default_config(), root / "run")
    finally:
        del TASKS[NAME]


def test_trains_and_evaluates_through_the_runner(toy_run):
    assert toy_run.metrics["steps"] == 12  # 2 epochs of 6 batches
    metrics, lines = runner.evaluate(toy_run.run_dir, "val")
    assert metrics["nats_per_sequence"] == pytest.approx(toy_run.metrics["nats_per_sequence"], rel=1e-6)
    assert lines == [f"val loss {metrics['nats_per_sequence']:.4f}"]
    assert (toy_run.run_dir / "curves.png").is_file() and (toy_run.run_dir / "toy.json").is_file()


@pytest.mark.parametrize("method", ["quantize", "prune", "prune-structured", "lowrank", "distill"])
def test_every_compression_method(toy_run, tmp_path, method):
    out = tmp_path / method
    common = {"repeats": 1}
    if method == "quantize":
        report = quantize_run(toy_run.run_dir, out, bits=8, **common)
    elif method == "prune":
        report = prune_run(toy_run.run_dir, out, sparsity=0.5, finetune_steps=2, progress=False, **common)
        assert [f["steps"] for f in report["finetune"]] == [2]  # on the task's own batches and step
    elif method == "prune-structured":
        report = prune_run(toy_run.run_dir, out, sparsity=0.5, structured=True, finetune_steps=2, progress=False,
                           **common)  # fmt: skip
        assert report["hidden_size"] == {"before": 8, "after": 4}
    elif method == "lowrank":
        report = lowrank_run(toy_run.run_dir, out, rank=2, finetune_steps=2, progress=False, **common)
        assert report["finetune"]["steps"] == 2
    else:
        report = distill_run(toy_run.run_dir, out, hidden_size=4, steps=3, progress=False, **common)
        assert report["training"]["steps"] == 3 and report["teacher_used"]
    assert report["complete"] and report["task"] == NAME
    metrics, _ = runner.evaluate(out, "val")  # the compressed run is a run directory like any other
    assert metrics["nats_per_sequence"] == pytest.approx(report["after"]["metrics"]["val"]["nats_per_sequence"])
    assert report["latency_input"] == [[256, 1, 2], [1]]  # Task.example_input: features and lengths


def test_exports_and_verifies_in_onnxruntime(toy_run, tmp_path):
    pytest.importorskip("onnxruntime")
    result = export_run(toy_run.run_dir, out=tmp_path / "toy.onnx")
    assert result.path.is_file()
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert meta["lstmkit.task"] == NAME
    assert [i.name for i in onnx.load(str(result.path)).graph.input] == ["features", "lengths"]
