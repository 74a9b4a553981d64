"""What a run reports: the records the loop hands its hooks (:class:`StepLog`, :class:`EpochLog`),
``metrics.csv``, TensorBoard scalars and the progress bar."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from lstmkit._fileio import check_destination, open_no_follow

_CSV_FIELDS = ["step", "epoch", "split", "loss", "lr", "grad_norm", "items_per_s"]


@dataclasses.dataclass
class StepLog:
    """What ``on_step`` receives after every training step."""

    step: int  # batches done so far, skipped ones included
    epoch: int
    loss: float  # this batch's loss (may be non-finite when skipped)
    lr: float
    grad_norm: float  # before clipping
    items: int
    skipped: bool  # True when the step was skipped for a non-finite loss or gradient


@dataclasses.dataclass
class EpochLog:
    """What ``on_epoch_end`` receives; ``FitResult.history`` holds one per epoch."""

    epoch: int
    step: int
    train_loss: float  # item-weighted mean over the epoch's finite steps
    val_loss: float | None
    lr: float  # after the epoch's schedule step: the lr the next step uses
    improved: bool  # val_loss beat the best so far by more than min_delta


class MetricsCsv:
    """``metrics.csv``: rows of step, epoch, split, loss, lr, grad_norm, items/s. On resume, rows
    past the resumed step are dropped: the resumed run writes them again."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        rows = []
        if resume_step is not None and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self._file = open_no_follow(path)  # closed by close(); refuses a planted link
        self._writer = csv.DictWriter(self._file, fieldnames=_CSV_FIELDS)
        self._writer.writeheader()
        self._writer.writerows(rows)
        self._file.flush()

    def write(self, **row: Any) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def open_tensorboard(out_dir: Path):
    """A TensorBoard writer when the ``tensorboard`` package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(check_destination(out_dir / "tensorboard")))  # a linked folder is refused


def progress_bar(total: int | None, initial: int, enabled: bool) -> tqdm:
    """The optimiser-step bar (a context manager); ``enabled`` False makes it silent."""
    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


__all__ = ["EpochLog", "MetricsCsv", "StepLog", "open_tensorboard", "progress_bar"]
