"""``classify``'s scores: accuracy and macro-F1 of the model beside 1-nearest-neighbour baselines (Euclidean on
every split, DTW on the test split)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import nn

from lstmkit.data import pad_collate
from lstmkit.metrics import accuracy, precision_recall_f1
from lstmkit.tasks import baselines as bl
from lstmkit.tasks.classify.data import ClassifyPrepared, loader, resample
from lstmkit.tasks.classify.steps import classify_step
from lstmkit.train import evaluate


def predict_proba(model: nn.Module, cases: list[np.ndarray]) -> np.ndarray:
    """(N, K) class probabilities, in the order of ``cases`` (averaged over seeds, they make an ensemble)."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(cases), 256):
            x, lengths, _ = pad_collate([torch.from_numpy(c) for c in cases[start : start + 256]])
            out.append(model(x, lengths).softmax(dim=-1))
    return torch.cat(out).double().numpy()


def predict(model: nn.Module, cases: list[np.ndarray]) -> np.ndarray:
    """(N,) predicted class indices, in the order of ``cases``."""
    return predict_proba(model, cases).argmax(axis=1)


# 1-NN DTW predictions kept for the process, by a digest of what they are computed from: `lstmkit select` scores
# every candidate (and bare reruns of a config) as an ordinary run on the same test cases, and full-window DTW on
# long cases is most of such a run (PigCVP, 208 x 104 cases of 2,000 steps: minutes of a core each time).
_DTW_MEMO: dict[str, np.ndarray] = {}
DTW_MEMO_SIZE = 4  # entries kept, the oldest dropped first


def _digest(*arrays: np.ndarray, band: int | None) -> str:
    h = hashlib.sha256(repr(band).encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(repr((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def nn1_dtw_predict(ref: list[np.ndarray], ref_y: np.ndarray, cases: list[np.ndarray], window: float) -> np.ndarray:
    """1-NN DTW on the scaled cases (one step a row: ``ClassifyPrepared.baseline_cases``), every case resampled to
    the longest reference length; ``window`` is the Sakoe-Chiba band as a share of that length (1: full warping).
    The same cases, labels and band again in one process return the kept predictions (``_DTW_MEMO``)."""
    length = max(len(c) for c in ref)
    a, b = (np.stack([resample(c, length) for c in group]) for group in (ref, cases))  # (N, T, C)
    band = None if window >= 1 else round(window * length)
    key = _digest(a, np.asarray(ref_y), b, band=band)
    if key not in _DTW_MEMO:
        _DTW_MEMO[key] = bl.nearest_neighbour_dtw(a, ref_y, b, window=band)
        while len(_DTW_MEMO) > DTW_MEMO_SIZE:
            del _DTW_MEMO[next(iter(_DTW_MEMO))]
    return _DTW_MEMO[key].copy()


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
    published baseline), and the training part alone for the validation and training splits. The baselines
    read ``prepared.baseline_cases``: the cases before ``data.normalize``.
    """
    cases, target, k = prepared.cases[split], prepared.targets[split], len(prepared.classes)
    pred = predict(model, cases)
    ce = evaluate(model, loader(cases, target, 256, shuffle=False), classify_step)
    plain = prepared.baseline_cases  # the cases before data.normalize: the baselines do not follow the network's
    if split == "test":
        ref, ref_y = plain["train"] + plain["val"], np.r_[prepared.targets["train"], prepared.targets["val"]]
    else:
        ref, ref_y = plain["train"], prepared.targets["train"]
    nn1 = nn1_predict(ref, ref_y, plain[split], leave_one_out=split == "train")
    dtw = {}
    if split == "test" and prepared.config.data.dtw_baseline:
        pred_dtw = nn1_dtw_predict(ref, ref_y, plain[split], prepared.config.data.dtw_window)
        dtw = {"baseline_1nn_dtw": {**class_scores(pred_dtw, target, k), "window": prepared.config.data.dtw_window}}
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (target, pred), 1)
    return {
        "split": split,
        "cases": len(cases),
        "nats_per_sequence": ce,
        **class_scores(pred, target, k),
        "baseline_1nn": class_scores(nn1, target, k),
        **dtw,
        "confusion": confusion.tolist(),  # rows: true class, columns: predicted
    }
