"""Sequence-to-sequence tasks on ``lstmkit.models.Seq2Seq`` (attentional encoder-decoder, beam search).

- ``g2p``: spelling to pronunciation on the CMU Pronouncing Dictionary (``g2p``); word error rate
  (any phoneme wrong) and phoneme error rate (edit distance), a word right if any of its
  pronunciations matches.
- ``seq2seq``: your parallel data, ``--set data.tsv=FILE`` (SOURCE<TAB>TARGET a line, ``char`` or
  ``word`` symbols by ``data.source_tokens`` / ``data.target_tokens``), or without it the bundled
  dates demo (``dates``); exact match, BLEU and chrF (sacrebleu).

Modules: ``config`` (``[data]`` and ``[train]``), ``data`` (the TSV reader, vocabularies, splits,
batches), ``g2p`` and ``dates`` (the two bundled data sets), ``steps``, ``scoring``, ``plots``,
``translate`` (what ``lstmkit translate`` does) and ``task`` (the registered tasks). See docs/seq2seq.md.
"""

from __future__ import annotations

from lstmkit.tasks.seq2seq.config import Seq2SeqData, Seq2SeqTrain
from lstmkit.tasks.seq2seq.data import (
    EmptySide,
    MissingTab,
    NotUTF8,
    Pair,
    TSVError,
    collate,
    read_tsv,
    split_of,
    vocabulary,
)
from lstmkit.tasks.seq2seq.scoring import decode, g2p_scores, text_scores
from lstmkit.tasks.seq2seq.steps import seq2seq_distill_step, seq2seq_step
from lstmkit.tasks.seq2seq.task import G2PTask, Seq2SeqPrepared, Seq2SeqTask, write_toy_tsv

__all__ = [
    "EmptySide",
    "G2PTask",
    "MissingTab",
    "NotUTF8",
    "Pair",
    "Seq2SeqData",
    "Seq2SeqPrepared",
    "Seq2SeqTask",
    "Seq2SeqTrain",
    "TSVError",
    "collate",
    "decode",
    "g2p_scores",
    "read_tsv",
    "seq2seq_distill_step",
    "seq2seq_step",
    "split_of",
    "text_scores",
    "vocabulary",
    "write_toy_tsv",
]
