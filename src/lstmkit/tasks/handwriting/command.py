"""``lstmkit write RUN_DIR TEXT...``: lines written by a handwriting-gen run, as SVG and CSV files, optionally read
back by a ``handwriting`` recognition run (``--judge``) for a legibility score."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from lstmkit._fileio import check_destination
from lstmkit.data.strokes import read_strokes, write_csv, write_svg
from lstmkit.metrics import cer
from lstmkit.tasks.base import DataUnavailable, TaskError
from lstmkit.tasks.corpus import read_text_file
from lstmkit.tasks.rundir import open_run


def write_lines(
    run_dir: str | os.PathLike[str],
    texts: Sequence[str],
    *,
    texts_file: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    bias: float = 0.5,
    seed: int = 0,
    max_points: int = 1500,
    judge: str | os.PathLike[str] | None = None,
    style: str | os.PathLike[str] | None = None,
    style_text: str = "",
) -> list[str]:
    """Write each text with the run's model into ``out`` (default ``RUN_DIR/written``) as ``line-N.svg`` and
    ``line-N.csv``; return the lines to print: "FILE<TAB>TEXT" per line, and with ``judge`` the recogniser's
    transcript per line and the character error rate over all lines. ``style``: a pen file (``read_strokes``'
    formats) whose hand the lines continue in, ``style_text`` what it says. ``texts_file``: more texts, one a
    line (blank lines skipped), after ``texts``."""
    texts = list(texts)
    if texts_file is not None:
        try:
            texts += [t for t in read_text_file(texts_file, "--texts").splitlines() if t.strip()]
        except DataUnavailable as e:
            raise TaskError(str(e)) from e
    if not texts:
        raise TaskError("give at least one TEXT to write (or --texts FILE)")
    run = open_run(run_dir)
    if judge is not None:
        judge_run = open_run(judge)  # checked before any line is written
        if judge_run.task.name != "handwriting":
            raise TaskError(f"--judge needs a handwriting recognition run; {judge} is a {judge_run.task.name!r} run")
    prime = None
    if style is not None:
        try:
            prime = (read_strokes(style), style_text)
        except ValueError as e:
            raise TaskError(str(e)) from e
    if run.config.train.threads > 0:
        torch.set_num_threads(run.config.train.threads)
    folder = Path(out) if out is not None else run.path / "written"
    points = run.task.handwrite(run, list(texts), bias=bias, seed=seed, max_points=max_points, style=prime)
    folder.mkdir(parents=True, exist_ok=True)
    lines, csvs = [], []
    for i, (text, p) in enumerate(zip(texts, points, strict=True), start=1):
        root = run.path if out is None else None  # the default folder must stay inside the run directory
        svg, csv = (check_destination(folder / f"line-{i}.{ext}", root) for ext in ("svg", "csv"))
        write_svg(p, svg)
        write_csv(p, csv)
        csvs.append(csv)
        lines.append(f"{svg}\t{text}")
    if judge is not None:
        from lstmkit.tasks.ctc import recognize_files

        read = [line.split("\t", 1)[1] for line in recognize_files(judge, csvs)]
        lines += [f"{c}\tread back: {r}" for c, r in zip(csvs, read, strict=True)]
        lines.append(f"character error rate of the lines read back: {cer(list(texts), read):.4f}")
    return lines


__all__ = ["write_lines"]
