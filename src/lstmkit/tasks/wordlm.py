"""``wordlm``: a word-level LSTM language model with tied input/output embeddings.

Words are lower-cased; punctuation marks are tokens of their own and every line ends in a
``<nl>`` token (speaker names, verse lines), as in the usual word-level benchmarks (Penn
Treebank: lower case, an end-of-sentence token). The vocabulary is the 10,000 most frequent
tokens of the training split (``<pad>`` and ``<unk>`` included); the rest become ``<unk>``.

After training it reports test perplexity beside an interpolated Kneser-Ney bigram
(``lstmkit.tasks.ngram``) fitted on the same training tokens and scored on the same test tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lstmkit.data import WordTokenizer
from lstmkit.models import LMModel
from lstmkit.tasks.lm import LanguageModelTask, LMData, LMPrepared, eval_batcher
from lstmkit.tasks.ngram import KneserNeyBigram
from lstmkit.tasks.registry import register_task
from lstmkit.train import Config, TrainConfig, evaluate, lm_step

NL = "<nl>"
# A word: letters or digits with inner apostrophes (o'er, bless'd); anything else not a space is a token.
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*|[^\sa-z0-9]")
_NO_SPACE_BEFORE = set(".,;:!?)]}'")
_NO_SPACE_AFTER = ("\n", "(", "[")


def words(text: str) -> list[str]:
    """Lower-cased tokens of ``text``, ``<nl>`` after each non-empty line."""
    out: list[str] = []
    for line in text.lower().split("\n"):
        tokens = _TOKEN.findall(line)
        if tokens:
            out += [*tokens, NL]
    return out


def detokenize(tokens: list[str]) -> str:
    """Tokens back to readable text: ``<nl>`` is a line break, no space before punctuation."""
    out = ""
    for t in tokens:
        if t == NL:
            out += "\n"
        elif not out or out.endswith(_NO_SPACE_AFTER) or t in _NO_SPACE_BEFORE:
            out += t
        else:
            out += " " + t
    return out


@dataclass(frozen=True)
class WordLMData(LMData):
    """``LMData`` and the vocabulary size."""

    max_vocab: int = 10_000  # the classic word-LM size (Penn Treebank); <pad> and <unk> included

    def _validate(self) -> None:
        super()._validate()
        if self.max_vocab < 3:
            raise ValueError(f"data.max_vocab must be >= 3 (<pad>, <unk> and one word), got {self.max_vocab}")


@register_task("wordlm")
class WordLM(LanguageModelTask):
    """Predict the next word. Reports perplexity, and a Kneser-Ney bigram's on the same split."""

    summary = "word-level language model, 10k vocabulary, tied embeddings; test perplexity vs a KN bigram"
    unit = "word"
    start_symbol = NL
    sample_length = 80

    def default_config(self) -> Config:
        # Tuned for the 10-minute budget on a 2-core CPU (docs/results.md). The 10k-way softmax is
        # most of the cost, so the tied embedding is 128 wide (a bias-free 256 -> 128 projection
        # feeds the head) and one 256-unit layer does the recurrence: 1000 steps of 32 x 35 tokens
        # are 1.06 passes over the training plays.
        return Config(
            model=LMModel(
                hidden_size=256,
                num_layers=1,
                embedding_dim=128,
                dropout=0.1,  # about one pass over the data: a little dropout, not Zaremba's 0.5
                tie_weights=True,  # Press & Wolf 2017: fewer parameters, lower perplexity
            ),
            data=WordLMData(batch_size=32, bptt=35),  # bptt 35 as in the Penn Treebank setups
            train=TrainConfig(
                epochs=100,  # bounded by max_steps (and max_minutes), not by epochs
                max_steps=1000,
                max_minutes=8.5,  # a guard: on a slower or busier machine, stop in time
                lr=4e-3,
                # 300 steps of warm-up, not 50 (session 40): validation perplexity lower on all of 3 seeds (84.38
                # against 85.63 on average, docs/results.md), and the attention block then learns where with 50 it
                # fell behind the plain model (one seed ended above the bigram)
                warmup_steps=300,
                patience=3,
            ),
        )

    def smoke_config(self, workdir: Path) -> Config:
        path = workdir / "wordlm_smoke.txt"
        path.write_text(_SMOKE_TEXT * 10, encoding="utf-8")
        return Config(
            model=LMModel(hidden_size=16, num_layers=1, embedding_dim=16, dropout=0.0, tie_weights=True),
            data=WordLMData(text=str(path), batch_size=4, bptt=8, max_vocab=50),
            train=TrainConfig(epochs=2, max_steps=6, warmup_steps=1, progress=False, tensorboard=False, log_every=2),
        )

    def build_tokenizer(self, train_text: str, config: Config) -> WordTokenizer:
        return WordTokenizer.from_text(" ".join(words(train_text)), max_size=config.data.max_vocab)

    def encode(self, tokenizer: WordTokenizer, text: str) -> list[int]:
        return tokenizer.encode(" ".join(words(text)))

    def decode(self, tokenizer: WordTokenizer, ids: list[int]) -> str:
        return detokenize([tokenizer.tokens[i] for i in ids])

    def load_tokenizer(self, path: Path) -> WordTokenizer:
        return WordTokenizer.load(path)

    def unknown_symbols(self, tokenizer: WordTokenizer, text: str) -> list[str]:
        known = set(tokenizer.tokens)
        return list(dict.fromkeys(w for w in words(text) if w not in known))

    def text_rules(self) -> dict[str, Any]:
        """``words``, ``detokenize`` and ``join`` as data: lower case, the token pattern per line with ``line_end``
        after each non-empty line; no space before ``no_space_before`` or after ``no_space_after``."""
        return {"split": "words", "lowercase": True, "token_pattern": _TOKEN.pattern, "line_end": NL,
                "no_space_before": "".join(sorted(_NO_SPACE_BEFORE)), "no_space_after": list(_NO_SPACE_AFTER)}

    def join(self, prompt: str, continuation: str) -> str:
        if prompt and not prompt[-1].isspace() and continuation and continuation[0] not in _NO_SPACE_BEFORE | {"\n"}:
            return prompt + " " + continuation
        return prompt + continuation

    def extra_train_metrics(self, prepared: LMPrepared, model: torch.nn.Module) -> dict[str, Any]:
        """Test perplexity of the trained model and of the Kneser-Ney bigram, on the same test tokens."""
        config, test = prepared.config, prepared.ids["test"]
        test_ce = evaluate(model, eval_batcher(test, config.data.batch_size, config.data.bptt), lm_step, stateful=True)
        bigram = KneserNeyBigram(prepared.ids["train"], len(prepared.tokenizer))
        bigram_ce = bigram.cross_entropy(test)
        return {
            "test_perplexity": float(torch.tensor(test_ce).exp()),
            "test_nats_per_word": test_ce,
            "bigram_test_perplexity": float(torch.tensor(bigram_ce).exp()),
            "bigram_discount": bigram.discount,
        }

    def report(self, metrics: dict[str, Any]) -> list[str]:
        lines = super().report(metrics)
        if "test_perplexity" in metrics:
            ppl, base = metrics["test_perplexity"], metrics["bigram_test_perplexity"]
            gain = 100 * (1 - ppl / base)
            lines.append(
                f"test perplexity: {ppl:.2f}; Kneser-Ney bigram on the same split: {base:.2f} "
                f"(the LSTM is {abs(gain):.1f}% {'lower' if gain >= 0 else 'higher'})"
            )
        return lines


_SMOKE_TEXT = """\
To be, or not to be, that is the question:
Whether 'tis nobler in the mind to suffer
The slings and arrows of outrageous fortune,
Or to take arms against a sea of troubles
"""
