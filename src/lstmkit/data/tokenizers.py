"""Character and word tokenisers with a frequency-built vocabulary and special tokens."""

from __future__ import annotations

import abc
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import ClassVar, TypeVar

from lstmkit._fileio import read_versioned_json, write_versioned_json

PAD = "<pad>"
UNK = "<unk>"
_FORMAT = "lstmkit.tokenizer"
_VERSION = 1

_Tok = TypeVar("_Tok", bound="_VocabTokenizer")


class _VocabTokenizer(abc.ABC):
    """Shared vocabulary logic; subclasses say how text splits into symbols and joins back.

    Id 0 is ``<pad>`` (so zero-padded batches need no remapping) and id 1 is ``<unk>``.
    """

    kind: ClassVar[str]
    pad_id: ClassVar[int] = 0
    unk_id: ClassVar[int] = 1

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(f"tokens must start with {[PAD, UNK]}, got {tokens[:2]}")
        if not all(isinstance(t, str) and t for t in tokens):
            raise ValueError("tokens must be non-empty strings")
        if len(set(tokens)) != len(tokens):
            dupes = sorted(t for t, n in Counter(tokens).items() if n > 1)
            raise ValueError(f"tokens must be unique, got duplicates {dupes[:5]}")
        self.tokens: list[str] = tokens
        self._index = {t: i for i, t in enumerate(tokens)}

    # -- subclasses define these two -------------------------------------------------------
    @staticmethod
    @abc.abstractmethod
    def _split(text: str) -> list[str]:
        """Cut text into symbols."""

    @staticmethod
    @abc.abstractmethod
    def _join(symbols: list[str]) -> str:
        """Join symbols back into text."""

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_text(
        cls: type[_Tok], text: str | Iterable[str], *, min_freq: int = 1, max_size: int | None = None
    ) -> _Tok:
        """Build a vocabulary from ``text`` (one string or an iterable of strings).

        Symbols are ordered by falling frequency, ties alphabetically, so the same text always
        gives the same ids.

        Args:
            min_freq: keep symbols seen at least this many times.
            max_size: the largest vocabulary size, the two special tokens included.
        """
        if not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be an int >= 1, got {min_freq!r}")
        if max_size is not None and (not isinstance(max_size, int) or max_size < 2):
            raise ValueError(
                f"max_size must be None or an int >= 2 (room for {PAD} and {UNK}), got {max_size!r}"
            )
        texts = [text] if isinstance(text, str) else list(text)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("text must be a str or an iterable of str")
        counts = Counter(s for t in texts for s in cls._split(t))
        for special in (PAD, UNK):
            counts.pop(special, None)
        ranked = sorted((s for s, n in counts.items() if n >= min_freq), key=lambda s: (-counts[s], s))
        if max_size is not None:
            ranked = ranked[: max_size - 2]
        return cls([PAD, UNK, *ranked])

    # -- use ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Map ``text`` to ids; symbols not in the vocabulary become ``unk_id``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return [self._index.get(s, self.unk_id) for s in self._split(text)]

    def decode(self, ids: Iterable[int], *, skip_pad: bool = True) -> str:
        """Map ids back to text; ``<pad>`` ids are dropped unless ``skip_pad=False``."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < len(self.tokens)]
        if bad:
            raise ValueError(f"ids must be in [0, {len(self.tokens)}), got {bad[:5]}")
        return self._join([self.tokens[i] for i in ids if not (skip_pad and i == self.pad_id)])

    # -- files ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary as versioned JSON."""
        write_versioned_json(path, _FORMAT, _VERSION, {"kind": self.kind, "tokens": self.tokens})

    @classmethod
    def load(cls: type[_Tok], path: str | os.PathLike[str]) -> _Tok:
        """Read a vocabulary written by :meth:`save`; a file of another kind or version is refused."""
        obj = read_versioned_json(path, _FORMAT, _VERSION)
        if obj.get("kind") != cls.kind:
            raise ValueError(f"{path}: holds a {obj.get('kind')!r} tokenizer, not {cls.kind!r}")
        tokens = obj.get("tokens")
        if not isinstance(tokens, list):
            raise ValueError(f"{path}: 'tokens' must be a list of strings")
        try:
            return cls(tokens)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={len(self)})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.tokens == self.tokens

    __hash__ = None  # mutable-looking container; equality by content


class CharTokenizer(_VocabTokenizer):
    """One id per character. ``decode(encode(s)) == s`` for text made of known characters.

    Example:
        >>> tok = CharTokenizer.from_text("hello")
        >>> tok.decode(tok.encode("hole"))
        'hole'
    """

    kind = "char"

    @staticmethod
    def _split(text: str) -> list[str]:
        return list(text)

    @staticmethod
    def _join(symbols: list[str]) -> str:
        return "".join(symbols)


class WordTokenizer(_VocabTokenizer):
    """One id per whitespace-separated word.

    ``decode(encode(s)) == " ".join(s.split())`` for text made of known words: runs of
    whitespace are not kept.
    """

    kind = "word"

    @staticmethod
    def _split(text: str) -> list[str]:
        return text.split()

    @staticmethod
    def _join(symbols: list[str]) -> str:
        return " ".join(symbols)
