from __future__ import annotations

import pytest
import torch

from lstmkit.metrics import accuracy, precision_recall_f1

# Hand-worked example: 8 labels over 3 classes.
TARGETS = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2])
PREDS = torch.tensor([0, 1, 1, 1, 0, 2, 2, 1])
# class 0: tp 1, predicted 2, true 2 -> P 1/2, R 1/2, F1 1/2
# class 1: tp 2, predicted 4, true 3 -> P 1/2, R 2/3, F1 4/7
# class 2: tp 2, predicted 2, true 3 -> P 1,   R 2/3, F1 4/5


def test_accuracy_labels_logits_and_mask():
    assert accuracy(PREDS, TARGETS) == 5 / 8
    logits = torch.nn.functional.one_hot(PREDS, 3).float()
    assert accuracy(logits, TARGETS) == 5 / 8
    mask = torch.tensor([True] * 4 + [False] * 4)
    assert accuracy(PREDS, TARGETS, mask) == 3 / 4


def test_binary():
    p, r, f = precision_recall_f1(PREDS, TARGETS, average="binary", positive=1)
    assert (p, r) == (0.5, pytest.approx(2 / 3)) and f == pytest.approx(4 / 7)


def test_macro_and_micro():
    p, r, f = precision_recall_f1(PREDS, TARGETS, average="macro")
    assert p == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert r == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)
    assert f == pytest.approx((1 / 2 + 4 / 7 + 4 / 5) / 3)  # mean of per-class F1, not F1 of the means
    # Single-label micro averaging pools counts: P = R = F1 = accuracy.
    assert precision_recall_f1(PREDS, TARGETS, average="micro") == pytest.approx((5 / 8,) * 3)


def test_zero_division_counts_as_zero_and_num_classes():
    t, p = torch.tensor([0, 0, 1]), torch.tensor([0, 0, 0])
    assert precision_recall_f1(p, t, positive=1) == (0.0, 0.0, 0.0)
    # With num_classes=3 the absent class 2 scores 0 and pulls the macro mean down.
    assert precision_recall_f1(p, t, average="macro")[2] == pytest.approx((0.8 + 0) / 2)
    assert precision_recall_f1(p, t, average="macro", num_classes=3)[2] == pytest.approx(0.8 / 3)


def test_errors():
    with pytest.raises(ValueError, match="average must be"):
        precision_recall_f1(PREDS, TARGETS, average="weighted")
    with pytest.raises(ValueError, match="predictions must be labels shaped like targets"):
        accuracy(PREDS[:3], TARGETS)
    with pytest.raises(ValueError, match="no labels to score"):
        accuracy(PREDS, TARGETS, torch.zeros(8, dtype=torch.bool))
