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
   return the final metrics for ``summary.json``. A task trains the model of ``build_model`` on the
   batches and step of ``training_data``, so that what ``lstmkit compress`` fine-tunes and distils
   on is exactly what the run trained on.
5. Later, from the run directory alone: ``evaluate(run, split)`` and, for text tasks, ``generate``.

What the run-level commands need, and nothing else, is declared here; ``lstmkit compress``,
``lstmkit export`` and ``lstmkit diagnose`` call only these methods and never ask which task or
model class they hold:

- ``build_model(config)``: the module ``model.safetensors`` holds (its ``export_kind`` tells
  ``lstmkit export`` the graph's inputs and outputs);
- ``training_data(prepared)``: training and validation batches and the step (fine-tuning);
- ``example_input(model, config)``: one input for timing the forward call;
- ``distill_step(teacher, base, ...)``: the step that trains a student against a teacher, and
  ``distill_config(config)`` the config the student trains with (one network where the teacher averages several);
- ``evaluation_data(run, split)``: a split's batches and step for scoring other implementations
  of the model (``--compare-torch``);
- ``serving_metadata(run)``: what serving needs besides the network;
- ``diagnosable``, ``diagnostic_batch``, ``last_step_loss``: gradient flow (``lstmkit diagnose``);
- ``unit`` and ``loss_label``: what the loss is per, for reports and ``curves.png``;
- ``compression_limits``: the ``lstmkit compress`` methods the task's model cannot take, and why.

``handwrite`` (``lstmkit write``) is, like ``generate``, for the tasks whose models write: it raises otherwise.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from lstmkit.models import SequenceModel
from lstmkit.train import Config

if TYPE_CHECKING:
    from lstmkit.tasks.rundir import Run


class TaskError(Exception):
    """A problem the user can fix (bad data, a bad run directory, a bad argument); the CLI prints it."""


class ConfigError(TaskError):
    """Config values that pass their own checks but not together with the data or the machine (the
    warm-up against the run's steps, a model too large for memory); found before any file is
    written, and the CLI exits with status 2 as for any bad argument."""


class DataUnavailable(TaskError):
    """The task's data is missing or unusable; the message says how to get or fix it."""


@dataclasses.dataclass
class Generated:
    """Text sampled from a model: the prompt and its continuation, and notes for the user."""

    text: str
    notes: list[str] = dataclasses.field(default_factory=list)  # e.g. prompt symbols the model does not know


Step = Callable[[nn.Module, Any, Any], tuple[Tensor, Any, int]]  # (model, batch, state) -> (loss, state, items)


@dataclasses.dataclass
class TrainingData:
    """What ``lstmkit.train.fit`` takes from a task: training batches, validation batches, the step."""

    train: Iterable
    val: Iterable
    step: Step


@dataclasses.dataclass
class EvaluationData:
    """A split's batches and the step that scores them; ``stateful`` carries the state across batches
    (contiguous chunks of one text), as ``lstmkit.train.evaluate`` takes it."""

    batches: Iterable
    step: Step
    stateful: bool = False


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
    unit: ClassVar[str] = "item"  # what one term of the loss is per ("char", "sequence", "label", ...)
    diagnosable: ClassVar[bool] = False  # provides diagnostic_batch and last_step_loss (lstmkit diagnose)
    # ``lstmkit compress`` methods ("quantize", "prune", "prune --structured", "distill", "lowrank", "circulant")
    # that this task's model cannot take, each with the reason; compress refuses them with it before any work.
    compression_limits: ClassVar[dict[str, str]] = {}
    # Values for keys that an older run's config.toml lacks, where the key's default has changed since it was added
    # (``"section.key"`` -> the value that run trained with): a reopened run keeps its behaviour.
    reopen_defaults: ClassVar[dict[str, Any]] = {}

    @property
    def loss_label(self) -> str:
        """The loss axis of ``curves.png``; a task whose loss is not a cross-entropy names it (class attribute)."""
        return f"loss (nats per {self.unit})"

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

    @abc.abstractmethod
    def training_data(self, prepared: Prepared) -> TrainingData:
        """The training split's batches, the validation batches and the step, as ``train`` uses them.

        ``lstmkit compress`` fine-tunes and distils on exactly these. Draws no random numbers at
        construction time (shuffling happens per epoch, seeded), so calling it changes no run.
        """

    def build_model(self, config: Config) -> nn.Module:
        """A fresh model of ``config``'s architecture: the module whose weights ``model.safetensors`` holds.

        ``lstmkit export`` (and anything else that loads a run without knowing its task) builds the
        model through this; a task whose model is not a ``SequenceModel`` of ``config.model`` overrides it.
        """
        return SequenceModel(config.model)

    def example_input(self, model: nn.Module, config: Config, *, length: int = 256) -> tuple[Tensor, ...]:
        """One sequence to time the model's forward call with: token ids (T, 1) when ``config.model``
        has a vocabulary, features (T, 1, I) otherwise, and its length (1,) when ``forward`` requires
        ``lengths``. A task whose model reads a fixed window overrides it."""
        g = torch.Generator().manual_seed(0)
        m = config.model
        if getattr(m, "vocab_size", None):
            return (torch.randint(2, m.vocab_size, (length, 1), generator=g),)
        x = torch.randn(length, 1, m.input_size, generator=g)  # (T, B=1, I)
        params = inspect.signature(model.forward).parameters
        needs_lengths = "lengths" in params and params["lengths"].default is inspect.Parameter.empty
        return (x, torch.tensor([length])) if needs_lengths else (x,)

    def distill_step(
        self, teacher: nn.Module, base: Step, *, alpha: float, temperature: float, config: Config
    ) -> Step:
        """A training step for a student that learns from ``teacher``'s soft targets (weight
        ``1 - alpha``) and the labels (weight ``alpha``), evaluating with ``base``. Tasks whose
        outputs are not class scores do not distil."""
        raise TaskError(f"task {self.name!r} does not support distillation (its model does not output class scores)")

    def distill_config(self, config: Config) -> Config:
        """The config a distilled student of a run with ``config`` trains with (its size already set): the
        teacher's own by default. A task whose runs can average several networks (an ensemble) makes the student
        one network here, on the same scaled cases as the teacher."""
        return config

    def evaluation_data(self, run: Run, split: str) -> EvaluationData:
        """``split``'s batches and scoring step, to score another implementation of the run's model
        on the same data (``lstmkit compress quantize --compare-torch``)."""
        raise TaskError(f"task {self.name!r} does not provide evaluation batches for other implementations")

    def diagnostic_batch(self, config: Config, length: int, n: int, generator: torch.Generator) -> Any:
        """``n`` inputs of ``length`` steps for the gradient-flow diagnostic (``lstmkit diagnose``)."""
        raise TaskError(f"task {self.name!r} has no gradient-flow diagnostic; diagnose runs the long-range tasks")

    def last_step_loss(self, last_output: Tensor, batch: Any) -> Tensor:
        """The loss read at the last step, whose gradient ``lstmkit diagnose`` follows back in time."""
        raise TaskError(f"task {self.name!r} has no gradient-flow diagnostic; diagnose runs the long-range tasks")

    def candidates(self, config: Config) -> dict[str, dict[str, Any]]:
        """The settings ``lstmkit select`` chooses among for ``config``'s data: each a name and the
        ``"section.key"`` values laid over ``config``. Each is trained as a run of its own and one kept by
        :meth:`choose` (by default the lowest :meth:`selection_loss`); the test split never enters the choice.
        Raise :class:`ConfigError` for a config that leaves nothing to choose on (no validation part)."""
        raise TaskError(f"task {self.name!r} offers no candidate settings to choose among; train one with "
                        "`lstmkit train`")  # fmt: skip

    def selection_loss(self, metrics: dict[str, Any]) -> float:
        """The validation loss (lower is better) in a finished run's metrics by which ``lstmkit select``
        chooses among :meth:`candidates`; the same measure for every candidate of one task."""
        raise TaskError(f"task {self.name!r} offers no candidate settings to choose among")

    def choose(self, losses: dict[str, float]) -> tuple[str, str]:
        """Which finished candidate ``lstmkit select`` keeps, given each one's :meth:`selection_loss` (in the order
        of :meth:`candidates`), and the rule in words for ``selection.json``: by default the lowest loss (ties: the
        first listed). A task whose candidates are not all alike (variants that must earn their place) says so
        here; the test split never enters the choice."""
        rule = "the lowest validation loss (the test split is not read for the choice)"
        return min(losses, key=losses.__getitem__), rule

    def serving_metadata(self, run: Run) -> dict[str, Any]:
        """What serving the exported model needs besides the network (a tokenizer, the input scaling,
        class names), JSON-serialisable; stored in the ONNX file's metadata by ``lstmkit export``."""
        return {}

    def generate(
        self, run: Run, *, prompt: str, length: int, temperature: float, top_k: int, seed: int
    ) -> Generated:
        """Sample text from the run's model; only text tasks do."""
        raise TaskError(f"task {self.name!r} does not generate text")

    def handwrite(
        self, run: Run, texts: list[str], *, bias: float, seed: int, max_points: int, style: Any = None
    ) -> list[Any]:
        """Pen points (N, 3) float32 (x, y up, end of stroke) for each of ``texts``, written by the run's model
        (``lstmkit write``), in the hand of ``style`` (pen points (N, 3) and their text) when given; only
        handwriting generators do."""
        raise TaskError(f"task {self.name!r} does not write handwriting; `lstmkit write` needs a handwriting-gen run")
