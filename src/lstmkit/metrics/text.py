"""Language-model and transcription metrics: perplexity, bits per character, WER, CER."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence


def perplexity(mean_cross_entropy: float) -> float:
    """``exp(CE)`` for a mean cross-entropy in nats per token."""
    _check_ce(mean_cross_entropy)
    return math.exp(mean_cross_entropy)


def bits_per_char(mean_cross_entropy: float) -> float:
    """``CE / ln 2`` for a mean cross-entropy in nats per character."""
    _check_ce(mean_cross_entropy)
    return mean_cross_entropy / math.log(2)


def _check_ce(ce: float) -> None:
    if not isinstance(ce, (int, float)) or not ce >= 0 or math.isinf(ce):
        raise ValueError(f"mean_cross_entropy must be a finite number >= 0 (nats), got {ce!r}")


def edit_distance(reference: Sequence[Hashable], hypothesis: Sequence[Hashable]) -> int:
    """Levenshtein distance: the least substitutions + deletions + insertions turning
    ``reference`` into ``hypothesis``."""
    prev = list(range(len(hypothesis) + 1))  # distances from reference[:0]
    for i, r in enumerate(reference, start=1):
        cur = [i]
        for j, h in enumerate(hypothesis, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))  # del, ins, sub/match
        prev = cur
    return prev[-1]


def _error_rate(references, hypotheses, split, unit: str) -> float:
    if isinstance(references, str):
        references = [references]
    if isinstance(hypotheses, str):
        hypotheses = [hypotheses]
    if len(references) != len(hypotheses):
        raise ValueError(f"got {len(references)} references but {len(hypotheses)} hypotheses")
    if not all(isinstance(s, str) for s in [*references, *hypotheses]):
        raise TypeError("references and hypotheses must be str or lists of str")
    errors = total = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        r, h = split(ref), split(hyp)
        errors += edit_distance(r, h)
        total += len(r)
    if total == 0:
        raise ValueError(f"references hold no {unit}s; the error rate (S + D + I) / N is undefined")
    return errors / total


def wer(references: str | Sequence[str], hypotheses: str | Sequence[str]) -> float:
    """Word error rate (S + D + I) / N over a corpus, words split on whitespace.

    Errors and reference words are summed over all pairs before dividing, as jiwer does.
    """
    return _error_rate(references, hypotheses, str.split, "word")


def cer(references: str | Sequence[str], hypotheses: str | Sequence[str]) -> float:
    """Character error rate (S + D + I) / N over a corpus; spaces count as characters."""
    return _error_rate(references, hypotheses, list, "character")
