"""What ``lstmkit translate RUN_DIR TEXT ...`` does: the n-best outputs of a trained sequence-to-sequence
run, with their scores, and optionally the attention matrix of each best output as a PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lstmkit.tasks.base import TaskError
from lstmkit.tasks.rundir import open_run
from lstmkit.tasks.runner import set_threads
from lstmkit.tasks.seq2seq.plots import plot_attention
from lstmkit.tasks.seq2seq.scoring import decode
from lstmkit.tasks.seq2seq.task import _Seq2SeqTask


@dataclass
class Output:
    text: str
    score: float  # the summed log-probability of the output's symbols, </s> included
    normalized: float  # the rank score: score / ((5 + n) / 6) ** length_penalty
    finished: bool  # False: stopped at the length cap without </s>


@dataclass
class Translation:
    source: str
    outputs: list[Output]  # best first
    attention_png: Path | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """``SOURCE<TAB>RANK<TAB>OUTPUT<TAB>LOG-PROBABILITY`` per output (``[unfinished]`` marks a capped one)."""
        return [f"{self.source}\t{k}\t{o.text}\t{o.score:.4f}{'' if o.finished else chr(9) + '[unfinished]'}"
                for k, o in enumerate(self.outputs, start=1)]  # fmt: skip


def _png_for(base: Path, i: int, n: int) -> Path:
    return base if n == 1 else base.with_name(f"{base.stem}-{i + 1}{base.suffix or '.png'}")


def translate_run(
    run_dir: str | os.PathLike[str],
    texts: Sequence[str],
    *,
    n_best: int = 5,
    beam_size: int | None = None,
    attention: str | os.PathLike[str] | None = None,
) -> list[Translation]:
    """Decode ``texts`` with the run's model by beam search (``beam_size`` default: the run's
    ``model.beam_size``; at least ``n_best``). ``attention``: write the best output's attention
    matrix there (with several texts, NAME-1.png, NAME-2.png, ...)."""
    run = open_run(run_dir)
    if not isinstance(run.task, _Seq2SeqTask):
        raise TaskError(f"{run_dir} is a {run.task.name!r} run; translate reads runs of the g2p and seq2seq tasks")
    if n_best < 1:
        raise ValueError(f"n_best must be >= 1, got {n_best}")
    beam = max(beam_size or run.config.model.beam_size, n_best)
    texts = [run.task.normalize_source(t) for t in texts]
    if not texts:
        raise ValueError("give at least one input text")
    set_threads(run.config)
    model, source, target = run.task.load_run(run)
    try:
        results = decode(model, texts, source, beam_size=beam, n_best=n_best)
    except ValueError as e:
        raise ValueError(str(e)) from e
    out = []
    for i, (text, hyps) in enumerate(zip(texts, results, strict=True)):
        t = Translation(text, [Output(target.decode(h.tokens), h.score, h.normalized, h.finished) for h in hyps])
        unknown = sorted({s for s in source._split(text) if s not in source._index})
        if unknown:
            t.notes.append(f"{text!r}: symbols the model never saw, read as <unk>: {unknown}")
        if attention is not None:
            best = hyps[0]
            symbols = target._split(target.decode(best.tokens))
            if len(symbols) != len(best.tokens):  # a word tokenizer: one symbol per id all the same
                symbols = [target.tokens[k] for k in best.tokens]
            rows = [*symbols, "</s>"] if best.finished else symbols
            t.attention_png = _png_for(Path(attention), i, len(texts))
            plot_attention(best.attention.numpy(), source._split(text), rows, t.attention_png,
                           title=f"{text} -> {t.outputs[0].text}")  # fmt: skip
        out.append(t)
    return out
