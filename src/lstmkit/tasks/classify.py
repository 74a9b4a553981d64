"""``classify``: sequence classification with a (bi)LSTM on UCR/UEA sets or your own files.

Data: a UCR/UEA set bundled in the ``sktime`` wheel (``data.dataset``: JapaneseVowels,
ItalyPowerDemand, BasicMotions, GunPoint, ...) read from its official ``_TRAIN.ts`` / ``_TEST.ts``
files by :mod:`lstmkit.data.ts_format`, or ``--set data.train=A.ts data.test=B.ts`` (``.ts`` or
``.csv``: one case a line, the label first, then the values; univariate). A stratified
``data.val_fraction`` of the training cases is held out for early stopping; the test split is
never used for any choice.

Variable lengths are padded and masked (never truncated): missing values at a case's end or
start (all channels) are padding the archive uses for variable lengths and are cut off; missing
values inside a case are filled by linear interpolation along time. Each channel is z-scored with
statistics fitted on the training cases.

Model: a (bi)LSTM over the padded batch with ``lengths`` (``lstmkit.LSTM`` masks padded steps and
runs the backward direction from each case's own last step), read out as each direction's state
after the whole case (or the masked mean over time), then dropout and a linear layer to the classes.
Long cases are read in frames of ``data.frame`` consecutive steps (chosen from the lengths by
default), so that the LSTM runs over tens of steps, not hundreds.

Reports accuracy and macro-F1 beside a 1-nearest-neighbour Euclidean baseline on the same split,
and writes ``confusion.png`` for the test split.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from lstmkit._fileio import read_versioned_json, write_versioned_json
from lstmkit.data import BucketBatchSampler, Standardizer, pad_collate
from lstmkit.data.ts_format import TSData, read_cases_csv, read_ts
from lstmkit.metrics import accuracy, precision_recall_f1
from lstmkit.models import LSTMReader, last_valid
from lstmkit.tasks import baselines as bl
from lstmkit.tasks.base import DataUnavailable, Prepared, Task, TaskError
from lstmkit.tasks.bundled import UCR_SETS, ucr_files
from lstmkit.tasks.registry import register_task
from lstmkit.tasks.rundir import Run
from lstmkit.train import Config, DataConfig, ModelConfig, TrainConfig, evaluate, fit, set_values

SCALER = "scaler.json"
DATA = "data.json"
CONFUSION = "confusion.png"
_DATA_FORMAT = "lstmkit.classify-split"
_DATA_VERSION = 1
SPLITS = ("train", "val", "test")
POOLINGS = ("mean", "last")
MAX_FRAMES = 30  # data.frame = 0 picks the smallest frame that reads the longest training case in this many


@dataclass(frozen=True)
class ClassifyData(DataConfig):
    """The cases and the validation split (``classify``'s ``[data]``)."""

    dataset: str = "JapaneseVowels"  # a UCR/UEA set bundled in sktime; ignored when data.train is given
    train: str = ""  # your own training cases (.ts or .csv), with data.test
    test: str = ""  # your own test cases
    val_fraction: float = 0.2  # stratified share of the training cases held out for early stopping
    split_seed: int = 0  # draws the validation cases; fixed apart from train.seed so seeds share one split
    differences: bool = False  # add each channel's first difference (its velocity) as another channel
    jitter: float = 0.0  # std of Gaussian noise added to the scaled training inputs each step (augmentation)
    # Steps stacked into one LSTM input: a case of T steps is read in ceil(T / frame) frames. 0: the
    # smallest frame that reads the longest training case in at most 30 frames (1 for up to 30 steps;
    # GunPoint's 150 steps: 5), because an LSTM trained on a few dozen cases learns far better over
    # tens of steps than over hundreds (GunPoint test accuracy 0.75 read step by step, 0.97 in frames).
    frame: int = 0

    def _validate(self) -> None:
        super()._validate()
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"data.val_fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.jitter < 0:
            raise ValueError(f"data.jitter must be >= 0, got {self.jitter}")
        if self.frame < 0:
            raise ValueError(f"data.frame must be >= 0 (0: automatic), got {self.frame}")
        if self.split_seed < 0:
            raise ValueError(f"data.split_seed must be >= 0, got {self.split_seed}")


@dataclass(frozen=True)
class ClassifyModel(ModelConfig):
    """``ModelConfig`` plus the direction and the readout."""

    bidirectional: bool = True  # a class may hinge on the start of a case as much as on its end
    # "last": each direction's state after reading the whole case (forward: at its last valid step);
    # "mean": the masked mean of the outputs over real steps. "last" reached a lower validation loss
    # on all four reported sets (docs/results.md).
    pooling: str = "last"

    def _validate(self) -> None:
        super()._validate()
        if self.pooling not in POOLINGS:
            raise ValueError(f"model.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.cell != "lstm":
            raise ValueError(f"classify uses an LSTM core; model.cell must be 'lstm', got {self.cell!r}")


# -- data -------------------------------------------------------------------------------------------
def _read(path: str | Path) -> TSData:
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_cases_csv(path)
    return read_ts(path)


def source_files(data: ClassifyData) -> tuple[Path, Path]:
    if data.train or data.test:
        if not (data.train and data.test):
            raise DataUnavailable("set both data.train=FILE and data.test=FILE (.ts or .csv)")
        return Path(data.train), Path(data.test)
    return ucr_files(data.dataset)


def load_cases(data: ClassifyData) -> tuple[TSData, TSData]:
    """The training and test cases; :class:`DataUnavailable` names what is wrong."""
    train_path, test_path = source_files(data)
    try:
        train, test = _read(train_path), _read(test_path)
    except (OSError, ValueError) as e:
        raise DataUnavailable(str(e)) from e
    for name, d in (("training", train), ("test", test)):
        if d.labels is None:
            raise DataUnavailable(f"the {name} file has no class labels (@classLabel false)")
    if train.num_channels != test.num_channels:
        raise DataUnavailable(f"the training cases have {train.num_channels} channels, the test cases "
                              f"{test.num_channels}")  # fmt: skip
    unseen = sorted(set(test.labels) - set(train.labels))
    if unseen:
        raise DataUnavailable(f"test labels {unseen} never occur in the training cases")
    return train, test


def fill_missing(case: np.ndarray, where: str) -> np.ndarray:
    """Cut rows missing in every channel at the start and end; interpolate the other gaps in time.

    case: (T, C) with NaN where missing -> (T', C) without NaN.
    """
    present = ~np.isnan(case).all(axis=1)  # (T,)
    if not present.any():
        raise ValueError(f"{where} has no values")
    idx = np.flatnonzero(present)
    case = case[idx[0] : idx[-1] + 1].copy()
    t = np.arange(len(case))
    for c in range(case.shape[1]):
        gaps = np.isnan(case[:, c])
        if gaps.all():
            raise ValueError(f"{where}: channel {c + 1} has no values")
        if gaps.any():  # edges take the nearest value (np.interp holds the end values)
            case[gaps, c] = np.interp(t[gaps], t[~gaps], case[~gaps, c])
    return case


def with_differences(case: np.ndarray) -> np.ndarray:
    """(T, C) -> (T, 2C): the channels, then their first differences (0 at the first step)."""
    return np.concatenate([case, np.diff(case, axis=0, prepend=case[:1])], axis=1)


def to_frames(case: np.ndarray, frame: int) -> np.ndarray:
    """(T, C) -> (ceil(T / frame), frame * C): consecutive steps side by side; the last frame is
    completed by repeating the case's last step (a step of the case, not padding)."""
    if frame == 1:
        return case
    T, C = case.shape
    n = -(-T // frame)
    full = np.concatenate([case, np.repeat(case[-1:], n * frame - T, axis=0)])  # (n * frame, C)
    return full.reshape(n, frame * C)  # row i holds steps i*frame .. i*frame + frame - 1


def stratified_val(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a stratified validation sample: ``round(fraction * n_c)`` of each class (at least one
    of any class with two or more cases), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = round(fraction * len(members))
        k = min(max(k, 1 if len(members) >= 2 else 0), len(members) - 1)
        val.extend(rng.permutation(members)[:k].tolist())
    return np.sort(np.asarray(val, dtype=np.int64))


def resample(case: np.ndarray, length: int) -> np.ndarray:
    """(T, C) -> (length, C) by linear interpolation along time (for the 1-NN baseline)."""
    if len(case) == length:
        return case
    src = np.linspace(0.0, 1.0, len(case)) if len(case) > 1 else np.zeros(1)
    dst = np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(dst, src, case[:, c]) for c in range(case.shape[1])], axis=1)


def files_sha256(paths: tuple[Path, Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


@dataclass
class ClassifyPrepared(Prepared):
    config: Config
    classes: list[str]
    cases: dict[str, list[np.ndarray]]  # per split, scaled (T_i, C) float32 arrays
    targets: dict[str, np.ndarray]  # per split, (N,) int64 class indices
    val_index: np.ndarray  # positions of the validation cases in the training file
    scaler: Standardizer
    sha256: str

    def save(self, run_dir: Path) -> None:
        self.scaler.save(run_dir / SCALER)
        write_versioned_json(run_dir / DATA, _DATA_FORMAT, _DATA_VERSION, {
            "source": ClassifyTask().data_source(self.config),
            "classes": self.classes,
            "cases": {s: len(v) for s, v in self.cases.items()},
            "lengths": {s: [min(map(len, v)), max(map(len, v))] for s, v in self.cases.items()},
            "val_index": self.val_index.tolist(),
            "sha256": self.sha256,
        })  # fmt: skip


def prepare_data(config: Config) -> ClassifyPrepared:
    data = config.data
    files = source_files(data)
    train, test = load_cases(data)
    classes = train.class_labels or sorted(set(train.labels))
    classes = [c for c in classes if c in set(train.labels)]  # declared but absent classes are not predicted
    index = {c: i for i, c in enumerate(classes)}
    try:
        raw = {
            "train": [fill_missing(x, f"training case {i + 1}") for i, x in enumerate(train.series)],
            "test": [fill_missing(x, f"test case {i + 1}") for i, x in enumerate(test.series)],
        }
    except ValueError as e:
        raise DataUnavailable(str(e)) from e
    if data.differences:
        raw = {s: [with_differences(x) for x in v] for s, v in raw.items()}
    y_all = np.array([index[c] for c in train.labels], dtype=np.int64)
    val_index = stratified_val(y_all, data.val_fraction, data.split_seed)
    if len(val_index) == 0:
        raise DataUnavailable("too few training cases to hold out a validation split; add cases")
    is_val = np.zeros(len(y_all), dtype=bool)
    is_val[val_index] = True
    split_cases = {
        "train": [x for x, v in zip(raw["train"], is_val, strict=True) if not v],
        "val": [raw["train"][i] for i in val_index],
        "test": raw["test"],
    }
    targets = {
        "train": y_all[~is_val],
        "val": y_all[val_index],
        "test": np.array([index[c] for c in test.labels], dtype=np.int64),
    }
    try:
        scaler = Standardizer().fit(split_cases["train"])  # per channel, over every real step of the training cases
    except ValueError as e:
        raise DataUnavailable(f"cannot scale the training cases: {e}") from e
    frame = data.frame or -(-max(len(x) for x in raw["train"]) // MAX_FRAMES)
    cases = {s: [to_frames(scaler.transform(x), frame).astype(np.float32) for x in v]
             for s, v in split_cases.items()}  # fmt: skip
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(data, frame=frame),
        model=dataclasses.replace(
            config.model, input_size=cases["train"][0].shape[1], output_size=len(classes), vocab_size=None
        ),
    )
    return ClassifyPrepared(config, classes, cases, targets, val_index, scaler, files_sha256(files))


# -- the model ----------------------------------------------------------------------------------------
class SequenceClassifier(LSTMReader):
    """(bi)LSTM over a padded batch, a last-state or masked-mean readout, dropout, linear.

    ``forward(x, lengths)``: x (T, B, C), lengths (B,) -> logits (B, K).
    """

    def __init__(self, config: ClassifyModel) -> None:
        super().__init__(config, config.bidirectional)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, (h, _) = self.rnn(x, lengths=lengths)  # (T, B, D*H); padded steps are zero
        if self.config.pooling == "mean":
            pooled = out.sum(dim=0) / lengths.to(out.dtype)[:, None]  # (B, D*H) over real steps only
        elif self.config.bidirectional:
            # The forward direction's state at the last valid step; the backward one's after reading back to t=0.
            pooled = torch.cat([last_valid(out[..., : self.config.hidden_size], lengths), h[-1]], dim=-1)
        else:
            pooled = last_valid(out, lengths)  # (B, H)
        return self.head(self.drop(pooled))  # (B, K)


def classify_step(model: nn.Module, batch: Any, state: Any) -> tuple[torch.Tensor, None, int]:
    """Mean cross-entropy per case; batch = (PaddedBatch, targets (B,))."""
    (x, lengths, _), y = batch
    return F.cross_entropy(model(x, lengths), y), None, len(y)


def jitter_step(std: float):
    """``classify_step`` with Gaussian noise of ``std`` added to the real steps of training batches."""
    if std == 0:
        return classify_step

    def step(model: nn.Module, batch: Any, state: Any) -> tuple[torch.Tensor, None, int]:
        (x, lengths, mask), y = batch
        if model.training:
            x = x + std * torch.randn_like(x) * mask[..., None]  # (T, B, C); padding stays zero
        return classify_step(model, ((x, lengths, mask), y), state)

    return step


class _Cases(torch.utils.data.Dataset):
    def __init__(self, cases: list[np.ndarray], targets: np.ndarray) -> None:
        self.cases = [torch.from_numpy(c) for c in cases]
        self.targets = torch.from_numpy(targets)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cases[i], self.targets[i]


def _collate(items):
    return pad_collate([x for x, _ in items]), torch.stack([y for _, y in items])


def loader(cases: list[np.ndarray], targets: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0):
    """Batches of similar lengths (shuffled for training); padded and masked by ``pad_collate``."""
    sampler = BucketBatchSampler([len(c) for c in cases], batch_size, shuffle=shuffle, seed=seed)
    return DataLoader(_Cases(cases, targets), batch_sampler=sampler, collate_fn=_collate)


# -- scoring ---------------------------------------------------------------------------------------------
def predict(model: nn.Module, cases: list[np.ndarray]) -> np.ndarray:
    """(N,) predicted class indices, in the order of ``cases``."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(cases), 256):
            x, lengths, _ = pad_collate([torch.from_numpy(c) for c in cases[start : start + 256]])
            out.append(model(x, lengths).argmax(dim=-1))
    return torch.cat(out).numpy()


def nn1_predict(
    ref: list[np.ndarray], ref_y: np.ndarray, cases: list[np.ndarray], *, leave_one_out: bool = False
) -> np.ndarray:
    """1-NN Euclidean on the scaled cases, every case resampled to the longest reference length.

    ``leave_one_out``: ``cases`` are ``ref`` itself, and each case's own entry is skipped.
    """
    length = max(len(c) for c in ref)
    flat = [np.stack([resample(c, length).ravel() for c in group]) for group in (ref, cases)]  # (N, length*C)
    return bl.nearest_neighbour(flat[0], ref_y, flat[1], exclude_self=leave_one_out)


def class_scores(pred: np.ndarray, target: np.ndarray, k: int) -> dict[str, float]:
    p, t = torch.from_numpy(pred), torch.from_numpy(target)
    return {"accuracy": accuracy(p, t), "macro_f1": precision_recall_f1(p, t, average="macro", num_classes=k)[2]}


def score_split(model: nn.Module, prepared: ClassifyPrepared, split: str) -> dict[str, Any]:
    """Accuracy, macro-F1 and the mean cross-entropy of the model, and the 1-NN baseline's scores.

    The 1-NN reference set is every official training case for the test split (as in the archive's
    published baseline), and the training part alone for the validation and training splits.
    """
    cases, target, k = prepared.cases[split], prepared.targets[split], len(prepared.classes)
    pred = predict(model, cases)
    ce = evaluate(model, loader(cases, target, 256, shuffle=False), classify_step)
    if split == "test":
        ref, ref_y = prepared.cases["train"] + prepared.cases["val"], np.r_[prepared.targets["train"],
                                                                           prepared.targets["val"]]
    else:
        ref, ref_y = prepared.cases["train"], prepared.targets["train"]
    nn1 = nn1_predict(ref, ref_y, cases, leave_one_out=split == "train")
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (target, pred), 1)
    return {
        "split": split,
        "cases": len(cases),
        "nats_per_sequence": ce,
        **class_scores(pred, target, k),
        "baseline_1nn": class_scores(nn1, target, k),
        "confusion": confusion.tolist(),  # rows: true class, columns: predicted
    }


def plot_confusion(confusion: np.ndarray, classes: list[str], png: Path, *, title: str) -> None:
    """Counts of (true, predicted) classes as an annotated heat map."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    k = len(classes)
    size = 2.5 + 0.45 * k
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=45 if max(map(len, classes)) > 3 else 0, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = confusion.max() if confusion.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center",
                    color="white" if confusion[i, j] > top / 2 else "black", fontsize=9)  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


# -- the task ---------------------------------------------------------------------------------------------
@register_task("classify")
class ClassifyTask(Task):
    """Sequence classification: accuracy and macro-F1 of a (bi)LSTM beside a 1-NN Euclidean baseline."""

    summary = (
        f"sequence classification: UCR/UEA sets bundled in sktime ({', '.join(UCR_SETS)}; data.dataset=NAME) "
        "or --set data.train=A.ts data.test=B.ts; (bi)LSTM vs 1-NN"
    )
    state_files = (SCALER, DATA)
    unit = "sequence"
    loss_label = "loss (cross-entropy, nats per sequence)"

    def default_config(self) -> Config:
        # One setting for the four reported sets, chosen by their mean best validation loss over three
        # seeds (docs/results.md): two layers, input jitter and 250 epochs reached the lowest validation
        # loss on every one of the four. The frame (data.frame = 0) adapts the number of LSTM steps to
        # the data set's lengths.
        return Config(
            model=ClassifyModel(hidden_size=64, num_layers=2, dropout=0.2),
            data=ClassifyData(batch_size=16, jitter=0.1),
            train=TrainConfig(
                epochs=250,
                lr=3e-3,
                schedule="cosine",
                warmup_steps=20,
                # A few dozen validation cases give a noisy loss that still falls late in the cosine
                # (ItalyPowerDemand seed 2: a new best at epoch 217 after none since 89): stop only after
                # 150 epochs without a new best, and keep the best epoch's weights.
                patience=150,
                stateful=False,  # cases are independent
                log_every=10,
                # No train.max_minutes: with it the cosine follows the clock whenever the clock is ahead of
                # the steps (the slow first steps of every run), which makes runs irreproducible. The
                # reported runs take well under a minute on a busy 2-core machine.
                max_minutes=None,
            ),
        )

    def smoke_config(self, workdir: Path) -> Config:
        paths = write_toy_ts(workdir)
        return Config(
            model=ClassifyModel(hidden_size=8, num_layers=1, dropout=0.0),
            data=ClassifyData(train=str(paths[0]), test=str(paths[1]), batch_size=8),
            train=TrainConfig(epochs=3, max_steps=6, warmup_steps=1, stateful=False, progress=False,
                              tensorboard=False, log_every=2),
        )  # fmt: skip

    def data_source(self, config: Config) -> str:
        d = config.data
        if d.train or d.test:
            return f"{d.train} (training) and {d.test} (test)"
        return f"UCR/UEA {d.dataset}, official train/test split (PyPI sktime: sktime/datasets/data/{d.dataset}/)"

    def check_data(self, config: Config) -> None:
        for path in source_files(config.data):
            if not path.is_file():
                raise DataUnavailable(f"{path} does not exist")

    def prepare(self, config: Config) -> ClassifyPrepared:
        if config.data.train or config.data.test:  # absolute paths, so that the run can be evaluated from anywhere
            paths = {f"data.{k}": str(Path(getattr(config.data, k)).expanduser().resolve())
                     for k in ("train", "test") if getattr(config.data, k)}  # fmt: skip
            config = set_values(config, {**paths, "data.dataset": ""})
        return prepare_data(config)

    def train(self, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
        assert isinstance(prepared, ClassifyPrepared)
        config = prepared.config
        model = SequenceClassifier(config.model)
        train_data = loader(prepared.cases["train"], prepared.targets["train"], config.data.batch_size,
                            shuffle=True, seed=config.train.seed)  # fmt: skip
        val_data = loader(prepared.cases["val"], prepared.targets["val"], 256, shuffle=False)
        step = jitter_step(config.data.jitter)
        result = fit(model, train_data, step, config=config, out_dir=run_dir, val_data=val_data)
        test = score_split(model, prepared, "test")
        plot_confusion(np.array(test["confusion"]), prepared.classes, run_dir / CONFUSION,
                       title=f"{self.data_source(config).split(',')[0]}: test accuracy {test['accuracy']:.3f}")
        return {
            "split": "val",
            "nats_per_sequence": result.best_val_loss,  # what `lstmkit evaluate --split val` gives back
            "val": score_split(model, prepared, "val"),
            "test": test,
            "classes": prepared.classes,
            "steps": result.steps,
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "parameters": sum(p.numel() for p in model.parameters()),
            "cases": {s: len(v) for s, v in prepared.cases.items()},
        }

    def evaluate(self, run: Run, split: str) -> dict[str, Any]:
        if split not in SPLITS:
            raise TaskError(f"split must be one of {SPLITS}, got {split!r}")
        try:
            recorded = read_versioned_json(run.file(DATA), _DATA_FORMAT, _DATA_VERSION)
            scaler = Standardizer.load(run.file(SCALER))
        except ValueError as e:
            raise TaskError(str(e)) from e
        prepared = prepare_data(run.config)
        if recorded.get("sha256") != prepared.sha256 or recorded.get("classes") != prepared.classes:
            raise TaskError(f"the files of {self.data_source(run.config)} are not the ones this run was trained on "
                            f"(their SHA-256 differs from {run.file(DATA)})")
        if not torch.equal(scaler.mean, prepared.scaler.mean) or not torch.equal(scaler.std, prepared.scaler.std):
            raise TaskError(f"{run.file(SCALER)} does not match the training cases")
        model = run.load_weights(self.build_model(run.config))
        return score_split(model, prepared, split)

    def build_model(self, config: Config) -> SequenceClassifier:
        return SequenceClassifier(config.model)

    def serving_metadata(self, run: Run) -> dict[str, Any]:
        """Classes by index and the preprocessing a raw (T, C) case needs before the network, in order:
        first differences appended (``differences``), ``(x - mean) / std`` per channel, then ``frame``
        consecutive steps side by side (the last frame completed by repeating the case's last step)."""
        try:
            recorded = read_versioned_json(run.file(DATA), _DATA_FORMAT, _DATA_VERSION)
            scaler = Standardizer.load(run.file(SCALER))
        except ValueError as e:
            raise TaskError(str(e)) from e
        data = run.config.data
        return {
            "classes": recorded["classes"],
            "preprocess": {"differences": data.differences, "mean": scaler.mean.tolist(), "std": scaler.std.tolist(),
                           "frame": data.frame},
        }

    def report(self, metrics: dict[str, Any]) -> list[str]:
        if "test" in metrics:  # a training summary
            head = (f"val loss: {metrics['nats_per_sequence']:.4f} nats/sequence, best epoch {metrics['best_epoch']}"
                    f" of {metrics['epochs']}")  # fmt: skip
            return [head, *self.report(metrics["test"])]
        b = metrics["baseline_1nn"]
        return [
            f"{metrics['split']} ({metrics['cases']} cases): accuracy {metrics['accuracy']:.4f}, macro-F1 "
            f"{metrics['macro_f1']:.4f}, cross-entropy {metrics['nats_per_sequence']:.4f} nats/sequence",
            f"1-NN Euclidean baseline: accuracy {b['accuracy']:.4f}, macro-F1 {b['macro_f1']:.4f}",
        ]


def write_toy_ts(workdir: Path, *, n_train: int = 24, n_test: int = 12, seed: int = 0) -> tuple[Path, Path]:
    """Two small ``.ts`` files of a two-class, two-channel problem with lengths 6-12: rising against
    falling first channels. For smoke tests."""
    rng = np.random.default_rng(seed)
    paths = []
    for name, n in (("toy_TRAIN.ts", n_train), ("toy_TEST.ts", n_test)):
        lines = ["@problemName toy", "@timeStamps false", "@missing false", "@univariate false",
                 "@dimensions 2", "@equalLength false", "@classLabel true up down", "@data"]  # fmt: skip
        for i in range(n):
            label = ("up", "down")[i % 2]
            t = np.linspace(0, 1, rng.integers(6, 13))
            a = (t if label == "up" else 1 - t) + 0.1 * rng.standard_normal(len(t))
            b = rng.standard_normal(len(t))
            lines.append(":".join(",".join(f"{v:.4f}" for v in ch) for ch in (a, b)) + f":{label}")
        path = workdir / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


__all__ = ["ClassifyData", "ClassifyModel", "ClassifyTask", "SequenceClassifier", "fill_missing", "load_cases"]
