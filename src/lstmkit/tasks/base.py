"""What every task provides, and the errors tasks raise for the user to act on.

A task owns its data and its metrics; the runner (``lstmkit.tasks.runner``) owns the order of
work and the run directory. The contract, in the order the runner calls it:

1. ``default_config()``: the task's tuned defaults. A task that needs options of its own
   extends a config section by subclassing it (``class LMData(DataConfig)`` adds ``text``), so
   ``--set data.text=FILE`` is checked like any other key and unknown keys are still rejected
   by name.
2. ``prepare(config)``: read the data, fit tokenizers or scalers on the training split, fill in
   what the data decides (``model.vocab_size``) and check everything that can fail, before any
   file is written. Returns a :class:`Prepared`.
3. ``Prepared.save(run_dir)``: write the task's state files (tokenizer, split description).
4. ``train(prepared, run_dir)``: train, writing through ``lstmkit.train.fit`` into ``run_dir``;
   return the final metrics for ``summary.json``.
5. Later, from the run directory alone: ``evaluate(run, split)`` and, for text tasks, ``generate``.
"""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from lstmkit.models import SequenceModel
from lstmkit.train import Config

if TYPE_CHECKING:
    from lstmkit.tasks.rundir import Run


class TaskError(Exception):
    """A problem the user can fix (bad data, a bad run directory, a bad argument); the CLI prints it."""


class DataUnavailable(TaskError):
    """The task's data is missing or unusable; the message says how to get or fix it."""


@dataclasses.dataclass
class Generated:
    """Text sampled from a model: the prompt and its continuation, and notes for the user."""

    text: str
    notes: list[str] = dataclasses.field(default_factory=list)  # e.g. prompt symbols the model does not know


class Prepared(abc.ABC):
    """A task's data, ready to train on, and the resolved config."""

    config: Config

    @abc.abstractmethod
    def save(self, run_dir: Path) -> None:
        """Write the state files that ``evaluate``/``generate`` need (see ``Task.state_files``)."""


class Task(abc.ABC):
    """Base of every registered task; see the module docstring for the order of calls."""

    name: ClassVar[str] = ""  # set by @register_task
    summary: ClassVar[str] = ""  # one line for `lstmkit tasks`
    state_files: ClassVar[tuple[str, ...]] = ()  # files ``Prepared.save`` writes into the run directory

    @abc.abstractmethod
    def default_config(self) -> Config:
        """The tuned defaults, with the task's own section classes."""

    @abc.abstractmethod
    def data_source(self, config: Config) -> str:
        """Where the data comes from, in words."""

    @abc.abstractmethod
    def check_data(self, config: Config) -> None:
        """Raise :class:`DataUnavailable`, saying how to get the data, when it cannot be read."""

    @abc.abstractmethod
    def smoke_config(self, workdir: Path) -> Config:
        """A config that trains end to end in seconds, for tests; may write small data into ``workdir``."""

    @abc.abstractmethod
    def prepare(self, config: Config) -> Prepared:
        """Load and check the data; return it with the resolved config. Writes nothing."""

    @abc.abstractmethod
    def train(self, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
        """Train into ``run_dir``; return the final metrics (JSON-serialisable) for ``summary.json``."""

    @abc.abstractmethod
    def evaluate(self, run: Run, split: str) -> dict[str, Any]:
        """Metrics of the run's model on ``split``, loaded from the run directory alone."""

    @abc.abstractmethod
    def report(self, metrics: dict[str, Any]) -> list[str]:
        """Human-readable lines for metrics returned by ``train`` or ``evaluate``."""

    def build_model(self, config: Config) -> nn.Module:
        """A fresh model of ``config``'s architecture: the module whose weights ``model.safetensors`` holds.

        ``lstmkit export`` (and anything else that loads a run without knowing its task) builds the
        model through this; a task whose model is not a ``SequenceModel`` of ``config.model`` overrides it.
        """
        return SequenceModel(config.model)

    def serving_metadata(self, run: Run) -> dict[str, Any]:
        """What serving the exported model needs besides the network (a tokenizer, the input scaling,
        class names), JSON-serialisable; stored in the ONNX file's metadata by ``lstmkit export``."""
        return {}

    def generate(
        self, run: Run, *, prompt: str, length: int, temperature: float, top_k: int, seed: int
    ) -> Generated:
        """Sample text from the run's model; only text tasks do."""
        raise TaskError(f"task {self.name!r} does not generate text")
