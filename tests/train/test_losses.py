from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lstmkit.train import ctc_loss, distillation_loss, masked_cross_entropy, masked_mse


def _batch(T=5, B=3, C=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, B, C, generator=g, dtype=torch.float64)
    targets = torch.randint(0, C, (T, B), generator=g)
    lengths = torch.tensor([5, 2, 3])
    mask = torch.arange(T)[:, None] < lengths[None, :]  # (T, B)
    return logits, targets, mask, lengths


def test_masked_cross_entropy_token_and_sequence_means():
    logits, targets, mask, lengths = _batch()
    per_token = F.cross_entropy(logits[mask], targets[mask])
    assert torch.allclose(masked_cross_entropy(logits, targets, mask), per_token)
    per_seq = torch.stack(
        [F.cross_entropy(logits[: lengths[b], b], targets[: lengths[b], b]) for b in range(3)]
    ).mean()
    assert torch.allclose(masked_cross_entropy(logits, targets, mask, reduction="sequence"), per_seq)
    assert not torch.allclose(per_seq, per_token)  # the two reductions weigh sequences differently


def test_masked_cross_entropy_ignores_padding_values_and_gradients():
    logits, targets, mask, _ = _batch()
    logits = logits.clone().requires_grad_()
    targets = targets.masked_fill(~mask, -1)  # e.g. an ignore value at padding
    poisoned = logits.detach().masked_fill(~mask[..., None], float("nan")).requires_grad_()
    loss = masked_cross_entropy(poisoned, targets, mask)
    assert torch.isfinite(loss)
    loss.backward()
    assert (poisoned.grad[~mask] == 0).all()
    assert torch.allclose(loss, masked_cross_entropy(logits, targets, mask))


def test_masked_cross_entropy_errors():
    logits, targets, mask, _ = _batch()
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        masked_cross_entropy(logits, targets, mask.long())
    with pytest.raises(ValueError, match=r"mask must have the shape of targets \(5, 3\)"):
        masked_cross_entropy(logits, targets, mask[:4])
    with pytest.raises(ValueError, match=r"sequences \[1\] have no unmasked step"):
        mask[:, 1] = False
        masked_cross_entropy(logits, targets, mask, reduction="sequence")


def test_masked_mse_hand_computed():
    pred = torch.tensor([[[1.0, 2.0], [0.0, 0.0]], [[3.0, 3.0], [float("inf"), 5.0]]])  # (T=2, B=2, 2)
    target = torch.zeros(2, 2, 2)
    mask = torch.tensor([[True, True], [True, False]])
    # real elements: 1, 4, 0, 0, 9, 9 -> 23 / 6; the inf sits at a padded step.
    assert masked_mse(pred, target, mask).item() == pytest.approx(23 / 6)
    assert masked_mse(pred[..., 0], target[..., 0], mask).item() == pytest.approx((1 + 0 + 9) / 3)


def test_ctc_loss_matches_torch_for_padded_and_concatenated_targets():
    g = torch.Generator().manual_seed(0)
    log_probs = torch.randn(12, 2, 5, generator=g, dtype=torch.float64).log_softmax(-1)
    targets = torch.tensor([[1, 2, 2, 3], [4, 1, 0, 0]])
    input_lengths, target_lengths = torch.tensor([12, 9]), torch.tensor([4, 2])
    expected = torch.nn.CTCLoss()(log_probs, targets, input_lengths, target_lengths)
    assert torch.allclose(ctc_loss(log_probs, targets, input_lengths, target_lengths), expected)
    flat = torch.tensor([1, 2, 2, 3, 4, 1])
    assert torch.allclose(ctc_loss(log_probs, flat, input_lengths, target_lengths), expected)


def test_ctc_loss_names_sample_too_short_counting_repeats():
    log_probs = torch.randn(6, 2, 4).log_softmax(-1)
    targets = torch.tensor([[1, 2, 3], [1, 1, 2]])
    # Sample 0 needs 3 steps; sample 1 needs 3 labels + 1 blank between the two 1s = 4 steps.
    ctc_loss(log_probs, targets, torch.tensor([3, 4]), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match=r"sample 1: input length 3 is too short .* needs 4 steps"):
        ctc_loss(log_probs, targets, torch.tensor([3, 3]), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match=r"sample 0: targets must be in \[0, 4\) and not the blank 0"):
        ctc_loss(log_probs, torch.tensor([[0, 1, 2], [1, 2, 3]]), torch.tensor([6, 6]), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match=r"input_lengths must be in \[0, T=6\]"):
        ctc_loss(log_probs, targets, torch.tensor([7, 6]), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match=r"time-major \(T, B, C\)"):
        ctc_loss(log_probs[:, 0], targets, torch.tensor([6, 6]), torch.tensor([3, 3]))


def test_distillation_loss_formula():
    g = torch.Generator().manual_seed(1)
    student = torch.randn(10, 6, generator=g, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(10, 6, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 6, (10,), generator=g)
    alpha, T = 0.3, 4.0
    ce = F.cross_entropy(student, targets)
    kl = F.kl_div(F.log_softmax(student / T, -1), F.softmax(teacher / T, -1), reduction="batchmean")
    expected = alpha * ce + (1 - alpha) * T**2 * kl
    loss = distillation_loss(student, teacher, targets, alpha=alpha, temperature=T)
    assert torch.allclose(loss, expected)
    loss.backward()
    assert teacher.grad is None  # the teacher is a fixed target
    assert torch.allclose(distillation_loss(student, teacher, targets, alpha=1.0), ce)
    # A student equal to its teacher has zero KL: only the hard term is left.
    same = distillation_loss(teacher, teacher, targets, alpha=0.0)
    assert same.abs().item() < 1e-12


def test_distillation_loss_mask_and_errors():
    s, t = torch.randn(4, 2, 3), torch.randn(4, 2, 3)
    y = torch.randint(0, 3, (4, 2))
    mask = torch.tensor([[True, True], [True, False], [False, False], [False, False]])
    full = distillation_loss(s[:2], t[:2], y[:2], mask=mask[:2])
    assert torch.allclose(distillation_loss(s, t, y, mask=mask), full)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        distillation_loss(s, t, y, alpha=1.5)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        distillation_loss(s, t, y, temperature=0.0)
