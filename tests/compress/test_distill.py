"""Distillation: the loss against a hand computation, the steps, the student-size check."""

from __future__ import annotations

import math

import pytest
import torch

from lstmkit.compress.distill import check_smaller, classify_distill_step, lm_distill_step
from lstmkit.models import SequenceModel
from lstmkit.train import ModelConfig, distillation_loss


def by_hand(zs, zt, y, alpha, T):
    """alpha CE + (1 - alpha) T^2 KL(softmax(zt/T) || softmax(zs/T)), one token at a time, in floats."""
    total = 0.0
    for s, t, label in zip(zs.tolist(), zt.tolist(), y.tolist(), strict=True):
        ls = math.log(sum(math.exp(v) for v in s))
        ce = ls - s[label]
        ps = [math.exp(v / T) / sum(math.exp(u / T) for u in s) for v in s]
        pt = [math.exp(v / T) / sum(math.exp(u / T) for u in t) for v in t]
        kl = sum(p * math.log(p / q) for p, q in zip(pt, ps, strict=True))
        total += alpha * ce + (1 - alpha) * T**2 * kl
    return total / len(y)


@pytest.mark.parametrize(("alpha", "T"), [(0.5, 2.0), (0.0, 1.0), (1.0, 3.0), (0.3, 4.0)])
def test_loss_matches_a_hand_computation(alpha, T):
    zs, zt = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    y = torch.randint(0, 5, (7,))
    loss = distillation_loss(zs, zt, y, alpha=alpha, temperature=T)
    assert float(loss) == pytest.approx(by_hand(zs, zt, y, alpha, T), rel=1e-10)
    # Time-major LM logits (T, B, V) are the same tokens.
    seq = distillation_loss(zs.view(7, 1, 5), zt.view(7, 1, 5), y.view(7, 1), alpha=alpha, temperature=T)
    assert float(seq) == pytest.approx(float(loss), rel=1e-12)


def lm(hidden):
    return SequenceModel(ModelConfig(vocab_size=12, hidden_size=hidden, num_layers=1, dropout=0.0))


def test_lm_step_carries_both_states_and_scores_plain_ce_in_evaluation():
    teacher, student = lm(16).eval(), lm(8)
    base_calls = []

    def base(model, batch, state):
        base_calls.append(state)
        return torch.tensor(0.0), state, 1

    step = lm_distill_step(teacher, base, alpha=0.5, temperature=2.0)
    x, y = torch.randint(0, 12, (5, 3)), torch.randint(0, 12, (5, 3))
    student.train()
    loss, state, n = step(student, (x, y), None)
    (s_state, t_state) = state
    assert n == 15 and s_state[0].shape == (1, 3, 8) and t_state[0].shape == (1, 3, 16)
    with torch.no_grad():
        zs, _ = student(x)
        zt, _ = teacher(x)
    expected = by_hand(zs.reshape(-1, 12).double(), zt.reshape(-1, 12).double(), y.reshape(-1), 0.5, 2.0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    step(student, (x, y), state)  # the carried pair goes back in
    student.eval()
    step(student, (x, y), None)
    assert base_calls == [None]


def test_classify_step_uses_the_teacher_in_training_only():
    class Clf(torch.nn.Module):
        def __init__(self, h):
            super().__init__()
            self.lin = torch.nn.Linear(3, h)
            self.out = torch.nn.Linear(h, 2)

        def forward(self, x, lengths):
            return self.out(self.lin(x).mean(0))  # (B, 2)

    teacher, student = Clf(16).eval(), Clf(4)
    step = classify_distill_step(teacher, lambda m, b, s: ("base", None, 0), alpha=0.0, temperature=1.0)
    x = torch.randn(4, 2, 3)
    batch = ((x, torch.tensor([4, 4]), torch.ones(4, 2, dtype=torch.bool)), torch.tensor([0, 1]))
    loss, _, n = step(student.train(), batch, None)
    with torch.no_grad():
        kl = by_hand(student(x, None).double(), teacher(x, None).double(), torch.tensor([0, 1]), 0.0, 1.0)
    assert n == 2 and loss.item() == pytest.approx(kl, rel=1e-5)
    assert step(student.eval(), batch, None)[0] == "base"


def test_student_must_be_smaller():
    assert check_smaller(lm(8), lm(16))[0] < check_smaller(lm(8), lm(16))[1]
    for h in (16, 32):
        with pytest.raises(ValueError, match="student must be smaller than the teacher"):
            check_smaller(lm(h), lm(16))
    with pytest.raises(ValueError, match="alpha"):
        lm_distill_step(lm(16), None, alpha=1.5, temperature=2.0)
    with pytest.raises(ValueError, match="temperature"):
        lm_distill_step(lm(16), None, alpha=0.5, temperature=0)
