"""The bundled demo of the ``seq2seq`` task: human-written dates in many formats and locales -> ISO 8601.

Sources are written by babel (CLDR's real date formats): five formats (``medium``, ``long``, ``full``,
``d MMM y``, ``EEE, d MMM y``) in twelve European locales, e.g. ``Dienstag, 5. Januar 2021``,
``5 de enero de 2021``, ``05.01.2021``, ``Jan 5, 2021``; the target is ``2021-01-05``. Dates run from
1900-01-01 to 2099-12-31. Numeric formats are day-first in every locale used, so each source means
exactly one date. The split is by date (a hash of the ISO date: 5% validation, 5% test), so the
held-out dates never occur in training, in any format; the pairs are drawn with ``data.split_seed``,
not ``train.seed``, so seeds share one data set.
"""

from __future__ import annotations

import datetime
import random

from lstmkit.tasks.base import DataUnavailable
from lstmkit.tasks.seq2seq.data import SPLITS, Pair, split_of

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_PT", "sv_SE", "pl_PL", "da_DK",
           "fi_FI")  # fmt: skip
FORMATS = ("medium", "long", "full", "d MMM y", "EEE, d MMM y")
FIRST, LAST = datetime.date(1900, 1, 1), datetime.date(2099, 12, 31)
VAL, TEST = 0.05, 0.05


def _babel():
    try:
        import babel
        import babel.dates
    except ImportError as e:
        raise DataUnavailable("the dates demo needs the PyPI package 'babel': pip install babel") from e
    return babel


def babel_version() -> str:
    return _babel().__version__


def date_pairs(counts: tuple[int, int, int], seed: int) -> dict[str, list[Pair]]:
    """``counts`` (train, val, test) pairs, each a random date of its split in a random locale and format."""
    fmt = _babel().dates.format_date
    rng = random.Random(seed)
    span = (LAST - FIRST).days + 1
    out: dict[str, list[Pair]] = {}
    for split, n in zip(SPLITS, counts, strict=True):
        pairs: list[Pair] = []
        while len(pairs) < n:
            day = FIRST + datetime.timedelta(days=rng.randrange(span))
            iso = day.isoformat()
            if split_of(iso, VAL, TEST, 0) != split:
                continue
            locale, form = rng.choice(LOCALES), rng.choice(FORMATS)
            pairs.append(Pair(fmt(day, form, locale=locale), (iso,), iso))
        out[split] = pairs
    return out
