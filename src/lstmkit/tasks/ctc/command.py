"""``lstmkit recognize RUN_DIR FILE...``: transcribe the user's own files with a trained run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from lstmkit.tasks.base import TaskError
from lstmkit.tasks.ctc.task import CTCTask
from lstmkit.tasks.rundir import open_run


def recognize_files(run_dir: str | os.PathLike[str], files: Sequence[str | os.PathLike[str]]) -> list[str]:
    """``lstmkit recognize``: "FILE<TAB>TRANSCRIPT" for each file, transcribed by a CTC recognition run."""
    run = open_run(run_dir)
    if not isinstance(run.task, CTCTask):
        raise TaskError(f"{run_dir} is a {run.task.name!r} run; recognize needs a ctc-speech, ctc-ocr or "
                        "handwriting run")  # fmt: skip
    if run.config.train.threads > 0:
        torch.set_num_threads(run.config.train.threads)
    paths = [Path(f) for f in files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise TaskError(f"no such file: {', '.join(missing)}")
    return [f"{p}\t{text}" for p, text in zip(paths, run.task.transcribe(run, paths), strict=True)]
