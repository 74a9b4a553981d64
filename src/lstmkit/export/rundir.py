"""Exporting a trained run directory (``lstmkit export RUN_DIR``): its model, and what serving it needs.

The exported file carries in its ``metadata_props`` everything a server needs besides the
weights, so that onnxruntime alone can serve it (see ``examples/onnx_generate.py``):

- ``lstmkit.tokenizer``: JSON ``{"kind": "char" | "word", "tokens": [...], "pad_id", "unk_id"}``
  for text tasks (ids are positions in ``tokens``; ``char`` joins with "", ``word`` with " ");
- ``lstmkit.start_symbol``: what an empty prompt starts from (text tasks);
- ``lstmkit.classes``: JSON, the class names by index (``classify``);
- ``lstmkit.preprocess``: JSON, what turns raw values into the graph's ``features`` and, for
  ``forecast``, its output back into the series' units (see each task's ``serving_metadata``);
- ``lstmkit.task``, ``lstmkit.model_config`` (JSON), ``lstmkit.version``, ``lstmkit.layers``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from lstmkit.export import attention_lm, handwriting, memory, seq2seq
from lstmkit.export import int8 as int8_mod
from lstmkit.export._deps import MissingDependency
from lstmkit.export.frames import frames_to_onnx
from lstmkit.export.int8 import Int8Export
from lstmkit.export.onnx_model import ExportVerificationError, OnnxExport, _core_of, to_onnx
from lstmkit.export.task_models import export_kind
from lstmkit.nn.int8 import rebuilt_weights
from lstmkit.tasks import TaskError
from lstmkit.tasks.rundir import open_run

FORMATS = ("onnx",)


# export kind -> (its writer, why --lengths does not apply): the models whose graphs carry more state than h and c
_STATEFUL_WRITERS = {
    attention_lm.KIND: (attention_lm.export_attention_lm, "a model with an attention block (model.attention = true): "
                        "it does not mask padding, so every chunk is whole"),
    memory.KIND: (memory.export_memory, "a model with an external memory (the NTM): its outputs up to a sequence's "
                  "length do not depend on the steps after it, so pad and read the first steps"),
    handwriting.KIND: (handwriting.export_handwriting, "the handwriting network: its graph reads T points of every "
                       "sequence (writing feeds one point at a time)"),
}  # fmt: skip


def export_run(
    run_dir: str | os.PathLike[str],
    *,
    format: str = "onnx",
    out: str | os.PathLike[str] | None = None,
    lengths: bool = False,
    verify: bool = True,
    int8: bool = False,
    per_channel: bool = True,
    reduce_range: bool = True,
) -> OnnxExport | Int8Export:
    """Export the model of a finished run directory; returns what was written.

    ``out`` defaults to ``RUN_DIR/model.onnx``. ``lengths`` and ``verify`` are ``to_onnx``'s.
    ``int8`` also writes ``model.int8.onnx`` (beside ``out``): onnxruntime's dynamic int8
    quantisation of the float file, verified against the float model (``lstmkit.export.int8``),
    with one scale per output channel (``per_channel``) or per tensor, and 7-bit weight values
    (``reduce_range``, right on CPUs without VNNI) or 8-bit.
    Raises ``ValueError`` for a bad argument and ``TaskError`` (with what to do) for a run that
    cannot be read, a missing onnx/onnxruntime, or a failed verification.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if not int8 and not (per_channel and reduce_range):
        raise ValueError(f"{'--per-tensor' if not per_channel else '--full-range'} applies to --int8 only")
    run = open_run(run_dir)
    model = run.load_weights(run.task.build_model(run.config))
    # A compressed model's float graph holds its rebuilt matrices: compare with those, not with the
    # int8 or factor products the layers use in inference (lstmkit.nn.int8).
    with rebuilt_weights():
        return _export(run, model, out, format=format, lengths=lengths, verify=verify, int8=int8,
                       per_channel=per_channel, reduce_range=reduce_range)


def _export(run, model, out, *, format, lengths, verify, int8, per_channel, reduce_range):
    # The task's serving metadata first: a task refuses by name a model it cannot serve (a forecast ensemble)
    # before the graph builders see it.
    metadata = _metadata(run)
    if int8:
        if lengths:
            raise ValueError("--lengths does not apply with --int8: the int8 check runs whole one-step inputs")
        return _export_int8(run, model, out, metadata, verify=verify, per_channel=per_channel,
                            reduce_range=reduce_range)  # fmt: skip
    writer = _STATEFUL_WRITERS.get(export_kind(model))
    if writer is not None:  # a model whose graph carries more state than h and c (its own module in export/)
        write, no_lengths = writer
        if lengths:
            raise ValueError(f"--lengths does not apply to {no_lengths}")
        try:
            return write(model, Path(out) if out is not None else run.path / "model.onnx", verify=verify,
                         metadata=metadata)  # fmt: skip
        except (MissingDependency, ExportVerificationError) as e:
            raise TaskError(str(e)) from e
    if export_kind(model) == "seq2seq":
        return _export_encoder_decoder(run, model, out, metadata, lengths=lengths, verify=verify)
    if export_kind(model) == "frames":  # a ConvLSTM frame forecaster: an unrolled graph (export/frames.py)
        return _export_frames(run, model, out, metadata, lengths=lengths, verify=verify)
    try:
        _core_of(model)
    except (TypeError, ValueError) as e:
        raise TaskError(f"the {run.task.name} task's model cannot be exported: {e}") from e
    path = Path(out) if out is not None else run.path / "model.onnx"
    try:
        return to_onnx(model, path, lengths=lengths, verify=verify, metadata=metadata)
    except (MissingDependency, ExportVerificationError) as e:
        raise TaskError(str(e)) from e


def _export_int8(run, model, out, metadata, *, verify: bool, per_channel: bool, reduce_range: bool) -> Int8Export:
    """``out`` (default ``RUN_DIR/model.onnx``) in float and ``*.int8.onnx`` beside it (``export.int8``)."""
    try:
        int8_mod.check_supported(model)  # before anything is written
    except TypeError as e:
        raise TaskError(f"the {run.task.name} task's model cannot be exported: {e}") from e
    path = Path(out) if out is not None else run.path / "model.onnx"
    try:
        return int8_mod.to_int8_onnx(model, path.with_suffix(".int8.onnx"), float_path=path, per_channel=per_channel,
                                     reduce_range=reduce_range, verify=verify, metadata=metadata)  # fmt: skip
    except (MissingDependency, ExportVerificationError) as e:
        raise TaskError(str(e)) from e


def _metadata(run) -> dict[str, str]:
    """The task, the model config and the task's serving metadata, for the file's ``metadata_props``."""
    metadata = {
        "lstmkit.task": run.task.name,
        "lstmkit.model_config": json.dumps(dataclasses.asdict(run.config.model)),
    }
    for key, value in run.task.serving_metadata(run).items():
        metadata[f"lstmkit.{key}"] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return metadata


def _export_frames(run, model, out, metadata, *, lengths: bool, verify: bool) -> OnnxExport:
    """A frame forecaster: the number of given frames is the task's example input's (``Task.example_input``)."""
    if lengths:
        raise ValueError("--lengths does not apply to a frame forecaster: every sequence has the same frames")
    (example,) = run.task.example_input(model, run.config)  # (T_in, 1, 1, H, W)
    path = Path(out) if out is not None else run.path / "model.onnx"
    try:
        return frames_to_onnx(model, path, example.shape[0], tuple(example.shape[-2:]), verify=verify,
                              metadata=metadata)  # fmt: skip
    except (MissingDependency, ExportVerificationError) as e:
        raise TaskError(str(e)) from e


def _export_encoder_decoder(run, model, out, metadata, *, lengths: bool, verify: bool) -> seq2seq.Seq2SeqExport:
    """An encoder-decoder: ``RUN_DIR/model.encoder.onnx`` and ``model.decoder.onnx`` (see ``export.seq2seq``)."""
    if lengths:
        raise ValueError("--lengths does not apply to a seq2seq run: its encoder graph always takes lengths")
    path = Path(out) if out is not None else run.path / "model.onnx"
    try:
        return seq2seq.export_seq2seq(model, path, verify_outputs=verify, metadata=metadata)
    except (MissingDependency, ExportVerificationError) as e:
        raise TaskError(str(e)) from e
