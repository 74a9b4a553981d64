"""Decoding a recognizer's log-probabilities: greedy and prefix beam search."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from lstmkit.data import pad_collate
from lstmkit.metrics import ctc_greedy_decode
from lstmkit.tasks.ctc.steps import BLANK

DECODE_BATCH = 64


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
