"""``CTCTask``: what ``ctc-speech`` and ``ctc-ocr`` share, through the ``Task`` interface."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from lstmkit._fileio import read_versioned_json
from lstmkit.metrics import cer, wer
from lstmkit.models import CTCRecognizer
from lstmkit.tasks.base import Prepared, Task, TaskError, TrainingData
from lstmkit.tasks.ctc.config import resolved_dir
from lstmkit.tasks.ctc.data import (
    _DATA_FORMAT,
    _DATA_VERSION,
    DATA,
    SPLITS,
    CTCPrepared,
    check_lengths,
    input_scale,
    loader,
    scale,
)
from lstmkit.tasks.ctc.decode import decode
from lstmkit.tasks.ctc.steps import ctc_step
from lstmkit.tasks.generated import fit_and_score, reopen_and_score
from lstmkit.tasks.rundir import Run
from lstmkit.train import Config, evaluate, set_values


def line_scores(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    """Character and word error rates over all lines, and the share of lines read whole."""
    return {
        "cer": cer(references, hypotheses),
        "wer": wer(references, hypotheses),
        "line_accuracy": float(np.mean([r == h for r, h in zip(references, hypotheses, strict=True)])),
    }


class CTCTask(Task):
    """A recognition task trained with CTC; subclasses supply the data and the scoring."""

    state_files = (DATA,)
    unit = "label"
    loss_label = "loss (CTC, nats per label)"

    # -- what a task module supplies --
    @abc.abstractmethod
    def alphabet(self, config: Config) -> str:
        """The symbols, in class order (class i + 1 is symbol i)."""

    @abc.abstractmethod
    def load(self, config: Config) -> tuple[dict[str, list[np.ndarray]], dict[str, list[str]], dict[str, Any]]:
        """The cached (or newly generated) samples: model inputs and transcripts per split, and the record."""

    @abc.abstractmethod
    def read_file(self, path: Path, config: Config) -> np.ndarray:
        """A user's file as the model's input (T, I); ``ValueError`` says what is wrong with it."""

    @abc.abstractmethod
    def score(self, references: list[str], hypotheses: list[str]) -> dict[str, float]:
        """Error rates and exact-match share of the transcripts."""

    def build_model(self, config: Config) -> CTCRecognizer:
        """A fresh model of ``config`` (for ``lstmkit export`` and ``compress``); its input size comes from the data."""
        if config.model.input_size is None or config.model.output_size is None:
            raise TaskError(f"{self.name}: model.input_size and output_size are set from the data by prepare; "
                            "build the model from a run's config.toml")  # fmt: skip
        return CTCRecognizer(config.model)

    def serving_metadata(self, run: Run) -> dict[str, Any]:
        """The symbols by class (class 0 is the blank) and the input standardisation of the training steps."""
        recorded = run.read_record(DATA, _DATA_FORMAT, _DATA_VERSION)
        return {"classes": ["<blank>", *self.alphabet(run.config)],
                "preprocess": {"input_mean": recorded.get("input_mean"), "input_std": recorded.get("input_std")}}

    def to_text(self, labels: Sequence[int], config: Config) -> str:
        symbols = self.alphabet(config)
        return "".join(symbols[i - 1] for i in labels)

    # -- the Task contract --
    def resolve(self, config: Config) -> Config:
        """``config`` with ``data.dir`` absolute, so that the run can be evaluated from anywhere."""
        return set_values(config, {"data.dir": str(resolved_dir(config.data))})

    def prepare(self, config: Config) -> CTCPrepared:
        self.check_data(config)
        config = self.resolve(config)
        inputs, texts, record = self.load(config)
        mean, std = input_scale(inputs["train"])
        inputs = {s: [scale(x, mean, std) for x in v] for s, v in inputs.items()}
        record = {**record, "input_mean": mean.tolist(), "input_std": std}
        symbols = self.alphabet(config)
        index = {s: i + 1 for i, s in enumerate(symbols)}
        labels = {s: [[index[c] for c in t] for t in texts[s]] for s in SPLITS}
        for split in SPLITS:
            check_lengths(inputs[split], labels[split], [f"{split} sample {i}" for i in range(len(inputs[split]))])
        config = dataclasses.replace(
            config,
            model=dataclasses.replace(config.model, input_size=inputs["train"][0].shape[1],
                                      output_size=len(symbols) + 1, vocab_size=None),
        )  # fmt: skip
        return CTCPrepared(config, inputs, labels, texts, record)

    def score_split(self, model: nn.Module, prepared: CTCPrepared, split: str) -> dict[str, Any]:
        config = prepared.config
        loss = evaluate(model, loader(prepared.inputs[split], prepared.labels[split], 64, shuffle=False), ctc_step)
        greedy, beam = decode(model, prepared.inputs[split], config.model.beam_width)
        refs = prepared.texts[split]
        examples = [
            {"reference": r, "greedy": self.to_text(g, config), "beam": self.to_text(b, config)}
            for r, g, b in zip(refs, greedy, beam, strict=True)
        ]
        return {
            "split": split,
            "samples": len(refs),
            "nats_per_label": loss,
            "greedy": self.score(refs, [e["greedy"] for e in examples]),
            "beam": self.score(refs, [e["beam"] for e in examples]),
            "beam_width": config.model.beam_width,
            "errors": [e for e in examples if e["beam"] != e["reference"]][:20],  # a few to look at
        }

    def training_data(self, prepared: Prepared) -> TrainingData:
        assert isinstance(prepared, CTCPrepared)
        config = prepared.config
        train = loader(prepared.inputs["train"], prepared.labels["train"], config.data.batch_size, shuffle=True,
                       seed=config.train.seed)  # fmt: skip
        return TrainingData(train, loader(prepared.inputs["val"], prepared.labels["val"], 64, shuffle=False), ctc_step)

    def train(self, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
        assert isinstance(prepared, CTCPrepared)
        summary = fit_and_score(self, prepared, run_dir, "nats_per_label")
        return {**summary, "samples": {s: len(v) for s, v in prepared.inputs.items()}}

    def evaluate(self, run: Run, split: str) -> dict[str, Any]:
        recorded = run.read_record(DATA, _DATA_FORMAT, _DATA_VERSION)
        return reopen_and_score(self, run, split, recorded, run.file(DATA))

    def transcribe(self, run: Run, paths: Sequence[Path]) -> list[str]:
        """The beam-search transcript of each file, in order; ``TaskError`` names a file that cannot be read."""
        config = run.config
        inputs = []
        for path in paths:
            try:
                inputs.append(self.read_file(Path(path), config).astype(np.float32))
            except ValueError as e:
                raise TaskError(str(e)) from e
        if config.model.input_size is not None and any(x.shape[1] != config.model.input_size for x in inputs):
            raise TaskError(f"the files give inputs of another size than the model's {config.model.input_size}")
        try:
            recorded = read_versioned_json(run.file(DATA), _DATA_FORMAT, _DATA_VERSION)
            mean, std = np.asarray(recorded["input_mean"], dtype=np.float32), float(recorded["input_std"])
        except (ValueError, KeyError) as e:
            raise TaskError(f"{run.file(DATA)} cannot be read: {e}") from e
        inputs = [scale(x, mean, std) for x in inputs]
        model = run.load_weights(self.build_model(config))
        _, beam = decode(model, inputs, config.model.beam_width)
        return [self.to_text(b, config) for b in beam]

    def report(self, metrics: dict[str, Any]) -> list[str]:
        if "test" in metrics:  # a training summary
            head = (f"val loss: {metrics['nats_per_label']:.4f} nats/label, best epoch {metrics['best_epoch']} "
                    f"of {metrics['epochs']}")  # fmt: skip
            return [head, *self.report(metrics["val"]), *self.report(metrics["test"])]
        lines = [f"{metrics['split']} ({metrics['samples']} samples): CTC loss {metrics['nats_per_label']:.4f} "
                 "nats/label"]  # fmt: skip
        for how in ("greedy", "beam"):
            scores = ", ".join(f"{k} {v:.4f}" for k, v in metrics[how].items())
            width = f" (width {metrics['beam_width']})" if how == "beam" else ""
            lines.append(f"  {how}{width}: {scores}")
        return lines
