"""Decoding a split and scoring it: word and phoneme error rates (g2p), exact match, BLEU and chrF."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lstmkit.metrics.text import edit_distance
from lstmkit.models import Seq2Seq, beam_search
from lstmkit.models.decoding import Hypothesis
from lstmkit.tasks.seq2seq.data import Pair, Tokenizer, source_batches


@torch.no_grad()
def decode(model: Seq2Seq, texts: Sequence[str], src_tok: Tokenizer, *, beam_size: int | None = None,
           n_best: int = 1, batch_size: int = 128,
           length_penalty: float | None = None) -> list[list[Hypothesis]]:  # fmt: skip
    """The n-best hypotheses of every text, in the order given (batched by length); ``beam_size`` and
    ``length_penalty`` default to the model config's."""
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[list[Hypothesis]] = [[] for _ in texts]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        src, lengths, _ = source_batches([texts[i] for i in idx], src_tok)
        best = beam_search(model, src, lengths, beam_size=beam_size, n_best=n_best, length_penalty=length_penalty)
        for i, hyps in zip(idx, best, strict=True):
            out[i] = hyps
    return out


def predictions(model: Seq2Seq, pairs: Sequence[Pair], src_tok: Tokenizer, tgt_tok: Tokenizer,
                beam_size: int | None = None, length_penalty: float | None = None) -> list[str]:  # fmt: skip
    hyps = decode(model, [p.source for p in pairs], src_tok, beam_size=beam_size, length_penalty=length_penalty)
    return [tgt_tok.decode(h[0].tokens) for h in hyps]


def g2p_scores(pairs: Sequence[Pair], hyps: Sequence[str]) -> dict[str, Any]:
    """WER: the share of words whose predicted pronunciation equals none of theirs; PER: phoneme edit
    distance to the closest of a word's pronunciations, over the phonemes of those pronunciations."""
    wrong = edits = phones = 0
    for p, h in zip(pairs, hyps, strict=True):
        hyp = h.split()
        best = min((edit_distance(t.split(), hyp), len(t.split())) for t in p.targets)
        wrong += best[0] > 0
        edits += best[0]
        phones += best[1]
    return {"words": len(pairs), "wer": wrong / len(pairs), "per": edits / phones}


def text_scores(pairs: Sequence[Pair], hyps: Sequence[str]) -> dict[str, Any]:
    """Exact match (any reference), and corpus BLEU and chrF of sacrebleu against the first reference."""
    import sacrebleu

    refs = [[p.targets[0] for p in pairs]]
    exact = sum(h in p.targets for p, h in zip(pairs, hyps, strict=True)) / len(pairs)
    return {"pairs": len(pairs), "exact_match": exact, "bleu": sacrebleu.corpus_bleu(hyps, refs).score,
            "chrf": sacrebleu.corpus_chrf(hyps, refs).score}  # fmt: skip
