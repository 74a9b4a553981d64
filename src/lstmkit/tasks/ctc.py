"""What the CTC recognition tasks share (``ctc-speech``, ``ctc-ocr``): the generated-data cache, the
stacked biLSTM with a CTC head, batching, the training step, greedy and prefix-beam decoding, the
run-directory state, and ``lstmkit recognize``.

A task module supplies the data (generated once and cached, see :func:`cached_arrays`), turns a
cached sample or a user's file into the model's input (T, I), and scores transcripts (WER/CER).

Labels: class 0 is CTC's blank; symbol ``alphabet[i]`` is class ``i + 1``.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import itertools
import json
import math
import os
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from lstmkit._fileio import atomic_path, read_versioned_json, write_versioned_json
from lstmkit.data import BucketBatchSampler, pad_collate
from lstmkit.metrics import ctc_greedy_decode
from lstmkit.models import LSTMReader
from lstmkit.tasks.base import DataUnavailable, Prepared, Task, TaskError
from lstmkit.tasks.rundir import Run, open_run
from lstmkit.train import Config, DataConfig, ModelConfig, ctc_loss, evaluate, fit, set_values

BLANK = 0
DATA = "data.json"
_DATA_FORMAT = "lstmkit.ctc-data"
_DATA_VERSION = 1
_CACHE_FORMAT = "lstmkit.ctc-cache"
_CACHE_VERSION = 1
SPLITS = ("train", "val", "test")
DECODE_BATCH = 64


# -- config -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CTCData(DataConfig):
    """Where the generated data is cached, and what draws it (each task adds its generation keys)."""

    # The data directory: the generated set is cached in a subfolder named by a hash of its generation
    # parameters, beside a params.json of them, so a second run with the same parameters reuses it.
    # "" means $LSTMKIT_DATA_DIR, else $LSTMKIT_CACHE_DIR/data, else ~/.cache/lstmkit/data; the resolved
    # absolute path is written into the run's config.toml.
    dir: str = ""
    seed: int = 0  # draws the generated set; apart from train.seed so that training seeds share one data set

    def _validate(self) -> None:
        super()._validate()
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"data.seed must be in [0, 2**32), got {self.seed}")


@dataclass(frozen=True)
class CTCModel(ModelConfig):
    """``ModelConfig`` plus the direction and the decoder's beam."""

    bidirectional: bool = True  # a label is easier to place when the frames after it are known too
    beam_width: int = 8  # prefix beam search; 1 keeps only the likeliest prefix

    def _validate(self) -> None:
        super()._validate()
        if self.cell != "lstm":
            raise ValueError(f"the CTC tasks use an LSTM core; model.cell must be 'lstm', got {self.cell!r}")
        if self.beam_width < 1:
            raise ValueError(f"model.beam_width must be >= 1, got {self.beam_width}")


def default_data_dir() -> Path:
    if os.environ.get("LSTMKIT_DATA_DIR"):
        return Path(os.environ["LSTMKIT_DATA_DIR"])
    if os.environ.get("LSTMKIT_CACHE_DIR"):
        return Path(os.environ["LSTMKIT_CACHE_DIR"]) / "data"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lstmkit" / "data"


def resolved_dir(data: CTCData) -> Path:
    return (Path(data.dir).expanduser() if data.dir else default_data_dir()).resolve()


# -- the data cache ---------------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Cached:
    arrays: dict[str, np.ndarray]
    path: Path  # the .npz file
    sha256: str
    generated_seconds: float | None  # None when read from the cache


def cached_arrays(
    root: Path, name: str, params: dict[str, Any], build: Callable[[], dict[str, np.ndarray]]
) -> Cached:
    """The arrays ``build()`` makes for ``params``, generated once into
    ``root/NAME-HASH/data.npz`` (with ``params.json`` beside it) and read back on later calls.

    The folder's HASH is of ``params``; a folder whose ``params.json`` differs (or an unreadable one) is
    rebuilt. Writes are atomic, so a killed generation leaves nothing half-written behind.
    """
    text = json.dumps(params, sort_keys=True)
    folder = root / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    path, meta = folder / "data.npz", folder / "params.json"
    if path.is_file() and meta.is_file():
        try:
            stored = read_versioned_json(meta, _CACHE_FORMAT, _CACHE_VERSION)
            if stored.get("params") == json.loads(text):
                with np.load(path, allow_pickle=False) as f:
                    arrays = {k: f[k] for k in f.files}
                return Cached(arrays, path, file_sha256(path), None)
        except (OSError, ValueError, KeyError):
            pass  # damaged: generate it again below
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataUnavailable(f"cannot create the data directory {folder}: {e}; set data.dir=DIR") from e
    started = time.perf_counter()
    arrays = build()
    with atomic_path(path) as tmp:
        write_npz(tmp, arrays)
    write_versioned_json(meta, _CACHE_FORMAT, _CACHE_VERSION, {"params": json.loads(text)})
    return Cached(arrays, path, file_sha256(path), time.perf_counter() - started)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` with fixed entry timestamps and order, so that the same arrays give the same bytes
    (and SHA-256) whenever they are generated again; ``np.load`` reads it as usual."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with z.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arrays[name]), allow_pickle=False)


def ragged(items: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length arrays (T_i, *) -> their concatenation (sum T_i, *) and offsets (N + 1,)."""
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in items])
    return np.concatenate(items), offsets


def unragged(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[a:b] for a, b in itertools.pairwise(offsets.tolist())]


# -- CTC lengths and labels ---------------------------------------------------------------------------------
def min_input_length(labels: Sequence[int]) -> int:
    """The fewest steps CTC needs to emit ``labels``: one per label, plus a blank between equal neighbours."""
    return len(labels) + sum(a == b for a, b in itertools.pairwise(labels))


def check_lengths(inputs: Sequence[np.ndarray], labels: Sequence[Sequence[int]], what: Sequence[str]) -> None:
    """Raise :class:`DataUnavailable` naming the first sample whose input is too short for its label."""
    for x, y, name in zip(inputs, labels, what, strict=True):
        need = min_input_length(y)
        if len(x) < need:
            raise DataUnavailable(
                f"{name}: its input has {len(x)} steps but its label of {len(y)} symbols needs at least {need} "
                "under CTC (one per symbol, plus a blank between repeated symbols); use a finer time step"
            )


def input_scale(inputs: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
    """Each feature's mean over every step of ``inputs`` (I,), and one standard deviation for all features.

    One deviation rather than one per feature: a pixel row that is nearly always blank (the top of a
    text line) would otherwise be blown up to the scale of the rows that carry the letters.
    """
    total = sum(x.sum(axis=0, dtype=np.float64) for x in inputs)
    steps = sum(len(x) for x in inputs)
    mean = total / steps  # (I,)
    var = sum(((x - mean) ** 2).sum(dtype=np.float64) for x in inputs) / (steps * len(mean))
    return mean.astype(np.float32), max(float(np.sqrt(var)), 1e-6)


def scale(x: np.ndarray, mean: np.ndarray, std: float) -> np.ndarray:
    """(T, I) -> (T, I) float32, standardised with the training statistics."""
    return ((x - mean) / std).astype(np.float32)


# -- the model ----------------------------------------------------------------------------------------------
class CTCRecognizer(LSTMReader):
    """Stacked (bi)LSTM, dropout and a linear layer to the blank and the symbols, as log-probabilities.

    ``forward(x, lengths)``: x (T, B, I), lengths (B,) -> log-probabilities (T, B, C), C = symbols + 1.
    """

    def __init__(self, config: CTCModel) -> None:
        super().__init__(config, config.bidirectional)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x, lengths=lengths)  # (T, B, D*H); padded steps are zero and never scored
        return self.head(self.drop(out)).log_softmax(dim=-1)  # (T, B, C)


def ctc_step(model: nn.Module, batch: Any, state: Any) -> tuple[torch.Tensor, None, int]:
    """CTC loss in nats per label; batch = (PaddedBatch, targets (sum S_i,), target lengths (B,))."""
    (x, lengths, _), targets, target_lengths = batch
    log_probs = model(x, lengths)  # (T, B, C)
    labels = int(target_lengths.sum())
    # lstmkit's ctc_loss checks every input is long enough for its label before torch's would return inf.
    loss = ctc_loss(log_probs, targets, lengths, target_lengths, blank=BLANK, reduction="sum")
    return loss / labels, None, labels


class _Samples(torch.utils.data.Dataset):
    def __init__(self, inputs: list[np.ndarray], labels: list[list[int]]) -> None:
        self.inputs = [torch.from_numpy(x) for x in inputs]
        self.labels = [torch.tensor(y, dtype=torch.int64) for y in labels]

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[i], self.labels[i]


def _collate(items):
    labels = [y for _, y in items]
    return pad_collate([x for x, _ in items]), torch.cat(labels), torch.tensor([len(y) for y in labels])


def loader(inputs: list[np.ndarray], labels: list[list[int]], batch_size: int, *, shuffle: bool, seed: int = 0):
    """Batches of similar lengths (shuffled for training), padded and masked by ``pad_collate``."""
    sampler = BucketBatchSampler([len(x) for x in inputs], batch_size, shuffle=shuffle, seed=seed)
    return DataLoader(_Samples(inputs, labels), batch_sampler=sampler, collate_fn=_collate)


# -- decoding ------------------------------------------------------------------------------------------------
def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    hi, lo = (a, b) if a > b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


def beam_decode(log_probs: torch.Tensor, beam_width: int, *, prune: float = 1e-3) -> list[int]:
    """The likeliest label sequence of one sequence's (T, C) log-probabilities, by prefix beam search
    that tries at each step only the symbols at least ``prune`` likely there (the blank always).

    The search is :func:`lstmkit.metrics.ctc_prefix_beam_search`'s (``prune=0`` gives its result), with
    the per-step pruning of common CTC decoders: a trained model gives one or two symbols a
    probability above 1e-3 at a step, so the pure-Python search tries two or three symbols per beam
    and step instead of every one (ctc-ocr's 84: about ten times faster, with the same transcripts).
    """
    if log_probs.ndim != 2:
        raise ValueError(f"log_probs must be (T, C), got shape {tuple(log_probs.shape)}")
    lp = log_probs.detach().to("cpu", torch.float64)
    floor = math.log(prune) if prune > 0 else -math.inf
    rows = lp.tolist()  # (T, C) floats: the loop is scalar
    candidates = [[c for c in row.nonzero().flatten().tolist() if c != BLANK] for row in lp >= floor]
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}  # prefix -> (log p_b, log p_nb)
    for row, symbols in zip(rows, candidates, strict=True):
        nxt: dict[tuple[int, ...], list[float]] = {}
        for prefix, (p_b, p_nb) in beams.items():
            p_total = _logaddexp(p_b, p_nb)
            last = prefix[-1] if prefix else None
            stay = nxt.setdefault(prefix, [-math.inf, -math.inf])
            stay[0] = _logaddexp(stay[0], p_total + row[BLANK])
            for c in symbols:
                ext = nxt.setdefault((*prefix, c), [-math.inf, -math.inf])
                if c == last:  # a repeat extends the prefix only after a blank; without one it merges
                    ext[1] = _logaddexp(ext[1], p_b + row[c])
                    stay[1] = _logaddexp(stay[1], p_nb + row[c])
                else:
                    ext[1] = _logaddexp(ext[1], p_total + row[c])
        ranked = sorted(nxt.items(), key=lambda kv: _logaddexp(*kv[1]), reverse=True)
        beams = {prefix: (p[0], p[1]) for prefix, p in ranked[:beam_width] if _logaddexp(*p) > -math.inf}
    return list(max(beams.items(), key=lambda kv: _logaddexp(*kv[1]))[0])


@torch.no_grad()
def decode(model: nn.Module, inputs: list[np.ndarray], beam_width: int) -> tuple[list[list[int]], list[list[int]]]:
    """Greedy and prefix-beam label sequences of every input (T_i, I), in order."""
    model.eval()
    greedy: list[list[int]] = []
    beam: list[list[int]] = []
    for start in range(0, len(inputs), DECODE_BATCH):
        x, lengths, _ = pad_collate([torch.from_numpy(a) for a in inputs[start : start + DECODE_BATCH]])
        log_probs = model(x, lengths)  # (T, B, C)
        greedy.extend(ctc_greedy_decode(log_probs, lengths, blank=BLANK))
        beam.extend(beam_decode(log_probs[: int(n), b], beam_width) for b, n in enumerate(lengths.tolist()))
    return greedy, beam


# -- prepared data and the shared task ---------------------------------------------------------------------------
@dataclass
class CTCPrepared(Prepared):
    config: Config
    inputs: dict[str, list[np.ndarray]]  # per split, (T_i, I) float32 model inputs
    labels: dict[str, list[list[int]]]  # per split, class ids (1 .. len(alphabet))
    texts: dict[str, list[str]]  # per split, the reference transcripts
    record: dict[str, Any]  # what data.json keeps: the cache file, its SHA-256, its generation parameters

    def save(self, run_dir: Path) -> None:
        write_versioned_json(run_dir / DATA, _DATA_FORMAT, _DATA_VERSION, self.record)


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
        try:
            recorded = read_versioned_json(run.file(DATA), _DATA_FORMAT, _DATA_VERSION)
        except ValueError as e:
            raise TaskError(str(e)) from e
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

    def train(self, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
        assert isinstance(prepared, CTCPrepared)
        config = prepared.config
        model = self.build_model(config)
        train_data = loader(prepared.inputs["train"], prepared.labels["train"], config.data.batch_size,
                            shuffle=True, seed=config.train.seed)  # fmt: skip
        val_data = loader(prepared.inputs["val"], prepared.labels["val"], 64, shuffle=False)
        result = fit(model, train_data, ctc_step, config=config, out_dir=run_dir, val_data=val_data)
        return {
            "split": "val",
            "nats_per_label": result.best_val_loss,  # what `lstmkit evaluate --split val` gives back
            "val": self.score_split(model, prepared, "val"),
            "test": self.score_split(model, prepared, "test"),
            "steps": result.steps,
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "parameters": sum(p.numel() for p in model.parameters()),
            "samples": {s: len(v) for s, v in prepared.inputs.items()},
            "generation_seconds": prepared.record.get("generation_seconds"),
        }

    def evaluate(self, run: Run, split: str) -> dict[str, Any]:
        if split not in SPLITS:
            raise TaskError(f"split must be one of {SPLITS}, got {split!r}")
        try:
            recorded = read_versioned_json(run.file(DATA), _DATA_FORMAT, _DATA_VERSION)
        except ValueError as e:
            raise TaskError(str(e)) from e
        prepared = self.prepare(run.config)
        if recorded.get("sha256") != prepared.record["sha256"]:
            raise TaskError(f"the data in {prepared.record['cache']} is not the data this run was trained on "
                            f"(its SHA-256 differs from {run.file(DATA)})")  # fmt: skip
        model = run.load_weights(self.build_model(prepared.config))
        return self.score_split(model, prepared, split)

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


def recognize_files(run_dir: str | os.PathLike[str], files: Sequence[str | os.PathLike[str]]) -> list[str]:
    """``lstmkit recognize``: "FILE<TAB>TRANSCRIPT" for each file, transcribed by a ctc-speech or ctc-ocr run."""
    run = open_run(run_dir)
    if not isinstance(run.task, CTCTask):
        raise TaskError(f"{run_dir} is a {run.task.name!r} run; recognize needs a ctc-speech or ctc-ocr run")
    if run.config.train.threads > 0:
        torch.set_num_threads(run.config.train.threads)
    paths = [Path(f) for f in files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise TaskError(f"no such file: {', '.join(missing)}")
    return [f"{p}\t{text}" for p, text in zip(paths, run.task.transcribe(run, paths), strict=True)]


__all__ = [
    "BLANK",
    "CTCData",
    "CTCModel",
    "CTCPrepared",
    "CTCRecognizer",
    "CTCTask",
    "beam_decode",
    "cached_arrays",
    "check_lengths",
    "ctc_step",
    "decode",
    "min_input_length",
    "recognize_files",
]
