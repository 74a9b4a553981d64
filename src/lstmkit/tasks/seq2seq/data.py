"""Pairs of symbol sequences for the sequence-to-sequence tasks: the TSV reader, the vocabularies,
splits, and padded batches.

Vocabularies are ``lstmkit.data`` tokenizers whose first four ids are ``<pad>``, ``<unk>``, ``<s>``,
``</s>``, the layout ``lstmkit.models.seq2seq`` expects; the other symbols follow by falling
frequency in the training pairs.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from lstmkit.data import BucketBatchSampler
from lstmkit.data.tokenizers import PAD, UNK, CharTokenizer, WordTokenizer
from lstmkit.models.seq2seq import BOS_ID, EOS_ID, PAD_ID
from lstmkit.tasks.base import DataUnavailable

BOS, EOS = "<s>", "</s>"
SPLITS = ("train", "val", "test")
Tokenizer = CharTokenizer | WordTokenizer
TOKENIZERS: dict[str, type[Tokenizer]] = {"char": CharTokenizer, "word": WordTokenizer}


class TSVError(DataUnavailable):
    """A line of a parallel-data file that cannot be read; the message names the file and the line."""


class MissingTab(TSVError):
    """A line without the TAB between source and target."""


class EmptySide(TSVError):
    """A line whose source or target is empty."""


class NotUTF8(TSVError):
    """Bytes that are not UTF-8."""


@dataclass(frozen=True)
class Pair:
    source: str
    targets: tuple[str, ...]  # every correct output; training uses each, scoring accepts any
    key: str = ""  # what the split is by (g2p: the word); "" means the source


def read_tsv(path: str | Path) -> list[Pair]:
    """``SOURCE<TAB>TARGET`` a line, UTF-8; blank lines are skipped and a TAB inside the target is kept.

    Raises :class:`MissingTab`, :class:`EmptySide` or :class:`NotUTF8` with the line number.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataUnavailable(f"cannot read {path}: {e.strerror or e}") from e
    pairs = []
    for n, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise NotUTF8(f"{path}, line {n}: not UTF-8 (byte {line[e.start]:#04x} at column {e.start + 1}); "
                          "save the file as UTF-8") from e  # fmt: skip
        text = text.removesuffix("\r")
        if n == 1:
            text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
        if not text.strip():
            continue
        if "\t" not in text:
            raise MissingTab(f"{path}, line {n}: no TAB between source and target: {text[:60]!r}")
        source, target = text.split("\t", 1)
        for side, value in (("source", source), ("target", target)):
            if not value.strip():
                raise EmptySide(f"{path}, line {n}: the {side} is empty")
        pairs.append(Pair(source.strip(), (target.strip(),)))
    if not pairs:
        raise DataUnavailable(f"{path} holds no pairs (one SOURCE<TAB>TARGET a line)")
    return pairs


def vocabulary(kind: str, texts: Iterable[str]) -> Tokenizer:
    """A tokenizer of ``kind`` over ``texts`` with ids 0-3 ``<pad> <unk> <s> </s>``."""
    cls = TOKENIZERS[kind]
    counts = Counter(s for t in texts for s in cls._split(t))
    for special in (PAD, UNK, BOS, EOS):
        counts.pop(special, None)
    return cls([PAD, UNK, BOS, EOS, *sorted(counts, key=lambda s: (-counts[s], s))])


def check_vocabulary(tok: Tokenizer, where: str) -> Tokenizer:
    if tok.tokens[:4] != [PAD, UNK, BOS, EOS]:
        raise ValueError(f"{where}: a seq2seq vocabulary starts with {[PAD, UNK, BOS, EOS]}, got {tok.tokens[:4]}")
    return tok


def split_of(key: str, val: float, test: float, seed: int) -> str:
    """The split of ``key`` from a hash of it: fixed for a key, whatever else the data holds."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64
    return "test" if h < test else "val" if h < test + val else "train"


def encode_pairs(pairs: Sequence[Pair], src_tok: Tokenizer, tgt_tok: Tokenizer, *, every_target: bool):
    """(source ids, target ids + </s>) tensors; ``every_target`` makes one item per correct target
    (training), else one per pair with its first target (validation loss)."""
    items = []
    for p in pairs:
        src = torch.tensor(src_tok.encode(p.source), dtype=torch.int64)
        if len(src) == 0:
            raise DataUnavailable(f"the source {p.source!r} has no symbols")
        for target in p.targets if every_target else p.targets[:1]:
            items.append((src, torch.tensor([*tgt_tok.encode(target), EOS_ID], dtype=torch.int64)))
    return items


def collate(items: Sequence[tuple[torch.Tensor, torch.Tensor]]):
    """Padded, time-major: (src (S, B), lengths (B,), tgt_in (T, B), tgt_out (T, B), mask (T, B))."""
    srcs, tgts = zip(*items, strict=True)
    pad = torch.nn.utils.rnn.pad_sequence
    src = pad(list(srcs), padding_value=PAD_ID)  # (S, B)
    tgt_out = pad(list(tgts), padding_value=PAD_ID)  # (T, B)
    tgt_in = torch.cat([torch.full_like(tgt_out[:1], BOS_ID), tgt_out[:-1]])  # shifted right, <s> first
    mask = tgt_out != PAD_ID  # </s> is a real step
    tgt_in = tgt_in.masked_fill(~mask, PAD_ID)  # steps past the end read <pad>; their outputs are not scored
    return src, torch.tensor([len(s) for s in srcs]), tgt_in, tgt_out, mask


def loader(items: list, batch_size: int, *, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of similar source lengths (shuffled for training; each epoch's from ``seed + epoch``)."""
    sampler = BucketBatchSampler([len(s) for s, _ in items], batch_size, shuffle=shuffle, seed=seed)
    return DataLoader(items, batch_sampler=sampler, collate_fn=collate)


def source_batches(texts: Sequence[str], tok: Tokenizer) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Sources as a padded batch (S, B) and lengths (B,); returns the ids of symbols it does not know."""
    ids = [tok.encode(t) for t in texts]
    empty = [i for i, x in enumerate(ids) if not x]
    if empty:
        raise ValueError(f"input {empty[0] + 1} has no symbols: {texts[empty[0]]!r}")
    src = torch.nn.utils.rnn.pad_sequence([torch.tensor(x) for x in ids], padding_value=PAD_ID)
    unknown = sorted({i for i, x in enumerate(ids) if tok.unk_id in x})
    return src, torch.tensor([len(x) for x in ids]), unknown


def files_sha256(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()
