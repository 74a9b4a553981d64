"""Decoding CTC outputs into label sequences: greedy and prefix beam search."""

from __future__ import annotations

import math
from collections import defaultdict

import torch

_NEG_INF = -math.inf


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    hi, lo = (a, b) if a > b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


def _collapse(path: list[int], blank: int) -> list[int]:
    """CTC's many-to-one map: merge repeated labels, then drop blanks."""
    out: list[int] = []
    prev = None
    for c in path:
        if c != prev and c != blank:
            out.append(c)
        prev = c
    return out


def ctc_greedy_decode(
    log_probs: torch.Tensor, lengths: torch.Tensor | None = None, *, blank: int = 0
) -> list[int] | list[list[int]]:
    """Best path decoding: the most likely class at each step, repeats merged, blanks dropped.

    Args:
        log_probs: (T, C) for one sequence or (T, B, C) time-major for a batch; probabilities
            or log-probabilities (only the argmax matters).
        lengths: (B,) valid steps per sequence for a batch; None uses all T steps.
        blank: the blank class index.

    Returns:
        one list of labels for (T, C) input, or B lists for (T, B, C) input.
    """
    if not isinstance(log_probs, torch.Tensor) or log_probs.ndim not in (2, 3):
        raise ValueError("log_probs must be a tensor of shape (T, C) or (T, B, C)")
    if not 0 <= blank < log_probs.shape[-1]:
        raise ValueError(f"blank must be in [0, {log_probs.shape[-1]}), got {blank}")
    best = log_probs.argmax(dim=-1)  # (T,) or (T, B)
    if log_probs.ndim == 2:
        if lengths is not None:
            raise ValueError("lengths is only for batched (T, B, C) log_probs")
        return _collapse(best.tolist(), blank)
    T, B = best.shape
    if lengths is None:
        lengths = torch.full((B,), T)
    lengths = torch.as_tensor(lengths)
    if lengths.shape != (B,) or (lengths < 0).any() or (lengths > T).any():
        raise ValueError(f"lengths must be shape ({B},) with values in [0, {T}], got {lengths.tolist()}")
    columns = best.T.tolist()  # (B, T)
    return [_collapse(col[: int(n)], blank) for col, n in zip(columns, lengths, strict=True)]


def ctc_prefix_beam_search(
    log_probs: torch.Tensor, *, beam_width: int = 16, blank: int = 0
) -> list[tuple[tuple[int, ...], float]]:
    """Prefix beam search over CTC log-probabilities of one sequence.

    Unlike a beam over paths, each beam entry is a label prefix holding the total
    log-probability of all alignments that collapse to it, split into the part ending in
    blank (``p_b``) and the part ending in its last label (``p_nb``). The split is needed
    because a repeated label extends the prefix only after a blank ("a", blank, "a" is "aa";
    "a", "a" is "a"). With ``beam_width`` at least the number of reachable prefixes the
    result is exact: the label sequences ranked by total probability.

    Args:
        log_probs: (T, C) log-probabilities (e.g. ``log_softmax`` output).
        beam_width: prefixes kept after each step.
        blank: the blank class index.

    Returns:
        up to ``beam_width`` pairs ``(labels, log_prob)``, most probable first.
    """
    if not isinstance(log_probs, torch.Tensor) or log_probs.ndim != 2:
        raise ValueError("log_probs must be a tensor of shape (T, C); decode a batch one sequence at a time")
    if not isinstance(beam_width, int) or beam_width < 1:
        raise ValueError(f"beam_width must be an int >= 1, got {beam_width!r}")
    num_classes = log_probs.shape[1]
    if not 0 <= blank < num_classes:
        raise ValueError(f"blank must be in [0, {num_classes}), got {blank}")
    steps = log_probs.detach().to("cpu", torch.float64).tolist()  # (T, C) as floats: the loop is scalar

    # prefix -> [log p_b, log p_nb]; the empty prefix starts with probability 1 of "ending in blank".
    beams: dict[tuple[int, ...], list[float]] = {(): [0.0, _NEG_INF]}
    for lp in steps:
        nxt: defaultdict[tuple[int, ...], list[float]] = defaultdict(lambda: [_NEG_INF, _NEG_INF])
        for prefix, (p_b, p_nb) in beams.items():
            p_total = _logaddexp(p_b, p_nb)
            last = prefix[-1] if prefix else None
            for c in range(num_classes):
                p = lp[c]
                if c == blank:
                    stay = nxt[prefix]
                    stay[0] = _logaddexp(stay[0], p_total + p)
                    continue
                ext = nxt[(*prefix, c)]
                if c == last:
                    # Extending by the same label needs a blank in between; without one it merges.
                    ext[1] = _logaddexp(ext[1], p_b + p)
                    stay = nxt[prefix]
                    stay[1] = _logaddexp(stay[1], p_nb + p)
                else:
                    ext[1] = _logaddexp(ext[1], p_total + p)
        scored = [(_logaddexp(*p), prefix, p) for prefix, p in nxt.items()]
        # Drop impossible prefixes (e.g. a repeat reached without a blank on the first step).
        ranked = sorted((s for s in scored if s[0] > _NEG_INF), key=lambda s: s[0], reverse=True)
        beams = {prefix: p for _, prefix, p in ranked[:beam_width]}
    return [(prefix, _logaddexp(*p)) for prefix, p in beams.items()]
