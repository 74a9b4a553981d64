"""The handwriting tasks: ``handwriting`` (online recognition with CTC) and ``handwriting-gen`` (Graves's
mixture-density LSTM writing a given text), on one data set (:mod:`~lstmkit.tasks.handwriting.data`).

Modules: ``data`` (the phrases, the writers, the cache), ``recognition`` (``handwriting``) and ``generation``
(``handwriting-gen``).
"""

from __future__ import annotations

from lstmkit.tasks.handwriting import generation, recognition
from lstmkit.tasks.handwriting.data import HandwritingData

__all__ = ["HandwritingData", "generation", "recognition"]
