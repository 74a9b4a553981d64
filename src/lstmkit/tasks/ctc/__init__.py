"""What the CTC recognition tasks share (``ctc-speech``, ``ctc-ocr``): the generated-data cache, the
stacked biLSTM with a CTC head, batching, the training step, greedy and prefix-beam decoding, the
run-directory state, and ``lstmkit recognize``.

A task module supplies the data (generated once and cached, see :func:`cached_arrays`), turns a
cached sample or a user's file into the model's input (T, I), and scores transcripts (WER/CER).

Labels: class 0 is CTC's blank; symbol ``alphabet[i]`` is class ``i + 1``.

Modules: ``config``, ``cache``, ``data``, ``steps``, ``decode``, ``task`` (``CTCTask``, subclassed by
``ctc-speech`` and ``ctc-ocr``) and ``command`` (``lstmkit recognize``); the model is
``lstmkit.models.CTCRecognizer``.
"""

from __future__ import annotations

from lstmkit.models import CTCModel, CTCRecognizer
from lstmkit.tasks.ctc.cache import Cached, cached_arrays, file_sha256, ragged, unragged, write_npz
from lstmkit.tasks.ctc.command import recognize_files
from lstmkit.tasks.ctc.config import CTCData, default_data_dir, resolved_dir
from lstmkit.tasks.ctc.data import (
    DATA,
    SPLITS,
    CTCPrepared,
    check_lengths,
    input_scale,
    loader,
    min_input_length,
    scale,
)
from lstmkit.tasks.ctc.decode import DECODE_BATCH, beam_decode, decode
from lstmkit.tasks.ctc.steps import BLANK, ctc_step
from lstmkit.tasks.ctc.task import CTCTask

__all__ = [
    "BLANK",
    "DATA",
    "DECODE_BATCH",
    "SPLITS",
    "CTCData",
    "CTCModel",
    "CTCPrepared",
    "CTCRecognizer",
    "CTCTask",
    "Cached",
    "beam_decode",
    "cached_arrays",
    "check_lengths",
    "ctc_step",
    "decode",
    "default_data_dir",
    "file_sha256",
    "input_scale",
    "loader",
    "min_input_length",
    "ragged",
    "recognize_files",
    "resolved_dir",
    "scale",
    "unragged",
    "write_npz",
]
