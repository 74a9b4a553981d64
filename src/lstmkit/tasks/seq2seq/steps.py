"""The training step of the sequence-to-sequence tasks, and its distillation twin."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lstmkit.tasks.base import Step
from lstmkit.tasks.seq2seq.config import Seq2SeqTrain
from lstmkit.train.distill import check_distill_args
from lstmkit.train.losses import distillation_loss

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
# (src (S, B), src_lengths (B,), tgt_in (T, B) starting with <s>, tgt_out (T, B) ending with </s>, mask (T, B))


def seq2seq_step(train: Seq2SeqTrain, *, start_batch: int = 0) -> Step:
    """Cross-entropy per target symbol (``</s>`` included). In training: label smoothing and the
    teacher-forcing ratio of ``train`` (its schedule counts this step's training batches, from
    ``start_batch``: a resumed run passes the batches its checkpoint has done); in evaluation: plain
    cross-entropy, teacher-forced, so validation losses of runs compare."""
    if start_batch < 0:
        raise ValueError(f"start_batch must be >= 0, got {start_batch}")
    batches = [start_batch]

    def step(model: nn.Module, batch: Batch, state: Any) -> tuple[torch.Tensor, None, int]:
        src, src_lengths, tgt_in, tgt_out, mask = batch
        if model.training:
            ratio = train.teacher_forcing_at(batches[0])
            batches[0] += 1
            logits, _ = model(src, src_lengths, tgt_in, teacher_forcing=ratio)
            loss = F.cross_entropy(logits[mask], tgt_out[mask], label_smoothing=train.label_smoothing)
        else:
            logits, _ = model(src, src_lengths, tgt_in)
            loss = F.cross_entropy(logits[mask], tgt_out[mask])  # (N, V) over the real target symbols
        return loss, None, int(mask.sum())

    return step


def seq2seq_distill_step(teacher: nn.Module, base: Step, *, alpha: float, temperature: float) -> Step:
    """Token-level distillation (Kim & Rush 2016's word-level KD): at every target position the
    student, teacher-forced, matches the teacher's softened distribution (weight 1 - alpha) and the
    true symbol (alpha); evaluation is ``base``."""
    check_distill_args(alpha, temperature)

    def step(model: nn.Module, batch: Batch, state: Any) -> tuple[torch.Tensor, None, int]:
        if not model.training:
            return base(model, batch, state)
        src, src_lengths, tgt_in, tgt_out, mask = batch
        with torch.no_grad():
            t_logits, _ = teacher(src, src_lengths, tgt_in)  # (T, B, V)
        logits, _ = model(src, src_lengths, tgt_in)
        loss = distillation_loss(logits, t_logits, tgt_out, alpha=alpha, temperature=temperature, mask=mask)
        return loss, None, int(mask.sum())

    return step
