"""Decoding a ``Seq2Seq``: greedy and batched beam search, both returning the attention weights.

Every sequence decodes at most ``max_output_lengths(...)`` steps (``ceil(a * S_i + b)``, from the
model config's ``max_length_a`` and ``max_length_b``), ``</s>`` included: a model that never emits
``</s>`` stops there, and its hypothesis is returned with ``finished=False``.

Beam search keeps ``beam_size`` hypotheses per sequence, all sequences of the batch in one
(B * K)-row decoder call per step. Per step it takes the 2K best continuations of each sequence:
those ending in ``</s>`` among the first K finish (as in fairseq), the first K others stay alive.
A sequence is done when K hypotheses have finished or at its length cap (its alive hypotheses are
then returned unfinished). Hypotheses are ranked by ``score / ((5 + n) / 6) ** length_penalty``
(GNMT; n counts ``</s>``); ``score`` is always the plain sum of the model's log-probabilities of the
emitted symbols, ``</s>`` included, which ``Seq2Seq.score`` computes again by teacher forcing.
With ``beam_size=1`` beam search is greedy decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lstmkit.models.seq2seq import (
    BOS_ID,
    EOS_ID,
    DecoderState,
    Encoded,
    Seq2Seq,
    gnmt_length_penalty,
    max_output_lengths,
)


@dataclass
class Hypothesis:
    """One output sequence: its ids (without ``<s>`` and ``</s>``), the summed log-probability of its
    symbols (``</s>`` included when ``finished``), its rank score, and the attention (steps, S_i)."""

    tokens: list[int]
    score: float
    normalized: float
    attention: Tensor  # (len(tokens) + finished, source length)
    finished: bool


def _caps(model: Seq2Seq, src_lengths: Tensor, max_lengths: Tensor | None) -> Tensor:
    if max_lengths is not None:
        return torch.as_tensor(max_lengths, dtype=torch.int64)
    cfg = model.config
    return max_output_lengths(src_lengths.cpu(), cfg.max_length_a, cfg.max_length_b)


def _hypothesis(tokens: list[int], score: float, attention: Tensor, finished: bool, alpha: float) -> Hypothesis:
    n = len(tokens) + int(finished)
    return Hypothesis(tokens, score, score / gnmt_length_penalty(n, alpha), attention, finished)


@torch.no_grad()
def greedy(model: Seq2Seq, src: Tensor, src_lengths: Tensor, *, max_lengths: Tensor | None = None) -> list[Hypothesis]:
    """The likeliest symbol at every step, for each sequence of the batch: src (S, B) -> B hypotheses."""
    src_lengths = torch.as_tensor(src_lengths, dtype=torch.int64)
    caps = _caps(model, src_lengths, max_lengths)
    enc = model.encode(src, src_lengths)
    dec = model.start(enc)
    B = src.shape[1]
    tokens = torch.full((B,), BOS_ID, dtype=torch.int64, device=src.device)
    out: list[list[int]] = [[] for _ in range(B)]
    attn: list[list[Tensor]] = [[] for _ in range(B)]
    scores = [0.0] * B
    finished = [False] * B
    active = [True] * B
    for t in range(int(caps.max())):
        logits, dec, weights = model.decode_step(tokens, dec, enc)
        logp = logits.float().log_softmax(-1)  # (B, V)
        best_logp, tokens = logp.max(dim=-1)
        for b in range(B):
            if not active[b]:
                continue
            scores[b] += float(best_logp[b])
            attn[b].append(weights[b, : int(src_lengths[b])].cpu())
            if int(tokens[b]) == EOS_ID:
                finished[b], active[b] = True, False
            else:
                out[b].append(int(tokens[b]))
                active[b] = t + 1 < int(caps[b])
        if not any(active):
            break
    alpha = model.config.length_penalty
    return [_hypothesis(out[b], scores[b], torch.stack(attn[b]), finished[b], alpha) for b in range(B)]


def _select(enc: Encoded, rows: Tensor) -> Encoded:
    """The encoder's result for the batch rows ``rows`` (beams of one sequence share its source)."""
    def pick(t: Tensor | None, dim: int = 0) -> Tensor | None:
        return None if t is None else t.index_select(dim, rows)

    return Encoded(enc.memory[:, rows], enc.mask[:, rows], (enc.state[0][:, rows], enc.state[1][:, rows]),
                   enc.feed[rows], pick(enc.context), pick(enc.values), pick(enc.keys), pick(enc.mask_bs))  # fmt: skip


def _reorder(dec: DecoderState, rows: Tensor) -> DecoderState:
    return DecoderState((dec.state[0][:, rows], dec.state[1][:, rows]), dec.feed[rows])


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    *,
    beam_size: int | None = None,
    length_penalty: float | None = None,
    n_best: int = 1,
    max_lengths: Tensor | None = None,
) -> list[list[Hypothesis]]:
    """The ``n_best`` best hypotheses of each sequence, best first: src (S, B) -> B lists.

    ``beam_size`` and ``length_penalty`` default to the model config's; ``n_best`` <= ``beam_size``.
    """
    cfg = model.config
    K = cfg.beam_size if beam_size is None else beam_size
    alpha = cfg.length_penalty if length_penalty is None else length_penalty
    if K < 1 or not 1 <= n_best <= K:
        raise ValueError(f"beam_size must be >= 1 and n_best in [1, beam_size], got {K} and {n_best}")
    if alpha < 0:
        raise ValueError(f"length_penalty must be >= 0, got {alpha}")
    src_lengths = torch.as_tensor(src_lengths, dtype=torch.int64)
    caps = _caps(model, src_lengths, max_lengths)
    S, B = src.shape
    device = src.device
    enc = _select(model.encode(src, src_lengths), torch.arange(B, device=device).repeat_interleave(K))
    dec = model.start(enc)
    scores = torch.zeros(B, K, dtype=torch.float64, device=device)
    scores[:, 1:] = float("-inf")  # all beams start equal: expand only the first at step 0
    tokens = torch.full((B * K,), BOS_ID, dtype=torch.int64, device=device)
    hist_tok = torch.empty(B * K, 0, dtype=torch.int64, device=device)
    hist_attn = torch.empty(B * K, 0, S, device=device)
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    done = [False] * B
    base = (torch.arange(B, device=device) * K)[:, None]  # (B, 1) first row of each sequence
    for t in range(int(caps.max())):
        logits, dec, weights = model.decode_step(tokens, dec, enc)
        logp = logits.double().log_softmax(-1)  # (B*K, V); float64 sums, so scores match a re-score
        V = logp.shape[-1]
        cand = (scores.view(-1, 1) + logp).view(B, K * V)
        top_s, top_i = cand.topk(min(2 * K, K * V), dim=1)  # (B, 2K), best first
        rows = base + top_i // V  # (B, 2K) the row each continuation extends
        tok = top_i % V
        is_eos = tok == EOS_ID
        for b, j in (is_eos[:, :K] & torch.isfinite(top_s[:, :K])).nonzero().tolist():
            if not done[b]:
                r = int(rows[b, j])
                att = torch.cat([hist_attn[r], weights[r][None]])[:, : int(src_lengths[b])].cpu()
                finished[b].append(_hypothesis(hist_tok[r].tolist(), float(top_s[b, j]), att, True, alpha))
        keep = torch.argsort(is_eos.int(), dim=1, stable=True)[:, :K]  # the first K non-</s>, in score order
        scores = top_s.gather(1, keep)
        flat = rows.gather(1, keep).view(-1)  # (B*K,)
        tokens = tok.gather(1, keep).view(-1)
        hist_tok = torch.cat([hist_tok[flat], tokens[:, None]], dim=1)
        hist_attn = torch.cat([hist_attn[flat], weights[flat][:, None]], dim=1)
        dec = _reorder(dec, flat)
        for b in range(B):
            if done[b]:
                continue
            if len(finished[b]) >= K:
                done[b] = True
            elif t + 1 >= int(caps[b]):  # the length cap: what is still alive is returned unfinished
                for k in range(K):
                    if torch.isfinite(scores[b, k]):
                        r = b * K + k
                        att = hist_attn[r, :, : int(src_lengths[b])].cpu()
                        finished[b].append(_hypothesis(hist_tok[r].tolist(), float(scores[b, k]), att, False, alpha))
                done[b] = True
            if done[b]:
                scores[b] = float("-inf")  # nothing of a finished sequence competes any more
        if all(done):
            break
    return [sorted(f, key=lambda h: (not h.finished, -h.normalized))[:n_best] for f in finished]


__all__ = ["Hypothesis", "beam_search", "greedy"]
