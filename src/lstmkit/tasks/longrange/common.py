"""What the long-range memory tasks share: generated data with a seed, equal parameter budgets,
training on fresh sequences, and scoring by the original success criteria.

Data. Every sequence is generated. The validation and test sequences are fixed by ``data.seed``
(the same for every cell and every training seed, so that runs are compared on the same
sequences); their SHA-256 goes into ``data.json`` and ``evaluate`` refuses to score a split the
generator no longer reproduces. Training batches are drawn fresh for every step (online learning,
as in Hochreiter & Schmidhuber 1997: there is no training set to overfit, only the memory
problem), each from its own generator keyed by ``train.seed``, the epoch and the batch index, so
that a run, and a resumed run, sees the same sequences. An "epoch" is ``data.train_batches``
batches, followed by a validation pass and a checkpoint.

Model. ``SequenceModel`` on real or one-hot features. ``model.hidden_size`` is the LSTM's; with
``model.equal_params`` (the default) a GRU or plain RNN gets the largest hidden size whose model has
no more parameters than the LSTM's, so ``--set model.cell=gru|rnn`` compares the cells on equal
parameter budgets. ``--set model.equal_params=false`` compares them at equal hidden sizes instead.
``model.forget_bias`` starts the gate that keeps the state (the LSTM's f, the GRU's z) near 1: the
tasks' defaults use 3 (f = 0.95), without which a memory 40+ steps long never starts to form.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from lstmkit._fileio import write_versioned_json
from lstmkit.models import SequenceModel
from lstmkit.nn import param_count
from lstmkit.tasks.base import Prepared, Task, TaskError, TrainingData
from lstmkit.tasks.rundir import Run
from lstmkit.train import Config, DataConfig, ModelConfig, evaluate, fit
from lstmkit.train.seed import generator_for

SPLITS = ("train", "val", "test")
DATA = "data.json"
_DATA_FORMAT = "lstmkit.generated-splits"
_DATA_VERSION = 1
_EVAL_CHUNK = 512  # sequences per evaluation batch: bounds memory at long T, and big enough to be fast


class Batch(Protocol):
    """What every task's batch has (each task's NamedTuple adds its targets)."""

    x: Tensor  # (T, B, I) float inputs
    lengths: Tensor | None  # (B,) valid lengths; None when every sequence has T steps


# -- config sections ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LongRangeModel(ModelConfig):
    """``ModelConfig`` and how the cells are sized against each other."""

    # hidden_size is the LSTM's. True: a GRU or RNN gets the largest hidden size within the LSTM's parameter
    # count (equal budgets, the fair comparison: an RNN unit is 4x cheaper); False: the same hidden size.
    equal_params: bool = True
    # Initial bias of the gate that keeps the state: the LSTM's forget gate f and the GRU's update gate z
    # (z = 1 keeps h); the plain RNN has none. None keeps torch.nn's init, where f and z start near 0.5 and
    # a state, and its gradient, halves every step. The 1997 LSTM had no forget gate (f = 1).
    forget_bias: float | None = None
    # Chrono initialisation (Tallec & Ollivier 2018) for dependencies up to chrono_tmax steps: the LSTM's forget
    # bias b_f ~ log(U(1, chrono_tmax - 1)) per unit and its input bias b_i = -b_f, so the units' memories span
    # characteristic times 1 .. chrono_tmax; the GRU's update-gate bias (z = 1 keeps h) as b_f. None: off
    # (forget_bias, or torch's init). For T = 1000 a single forget bias of 3 holds a state ~20 steps; chrono 1000.
    chrono_tmax: int | None = None

    def _validate(self) -> None:
        super()._validate()
        if self.chrono_tmax is not None:
            if self.chrono_tmax < 3:
                raise ValueError(f"model.chrono_tmax must be >= 3 (b_f ~ log U(1, T_max - 1)), got {self.chrono_tmax}")
            if self.forget_bias is not None:
                raise ValueError("set one of model.forget_bias and model.chrono_tmax (chrono sets the forget bias "
                                 f"itself), got forget_bias={self.forget_bias}, chrono_tmax={self.chrono_tmax}")
            if self.cell == "rnn":
                raise ValueError("model.chrono_tmax needs a gated cell (lstm or gru); the plain RNN has no gate")


@dataclass(frozen=True)
class GeneratedData(DataConfig):
    """Generated sequences (the long-range tasks' ``[data]`` section). ``bptt`` and
    ``bucket_pool_batches`` are not used: every sequence is trained on whole, with full BPTT."""

    seed: int = 1234  # fixes the validation and test sequences: the same for every cell and training seed
    # Curriculum over T (Bengio et al. 2009; Zaremba & Sutskever 2014): 0 is off. Else training starts at
    # curriculum_start steps and doubles every curriculum_steps optimiser steps until data.length; the
    # validation and test sequences always have data.length steps. Short sequences teach what to store before
    # the long ones must carry it far. Needs a task with data.length (adding, temporal-order, copy).
    curriculum_start: int = 0
    curriculum_steps: int = 500  # steps per doubling: a few hundred steps learn each length on adding at T <= 100
    # The share of curriculum batches drawn at a T uniform in [curriculum_start, current length] (Zaremba &
    # Sutskever's 2014 mixed curriculum) instead of at the current length: the short lengths already learnt
    # stay in training, so a doubling need not unlearn them. 0 is the plain doubling curriculum.
    curriculum_mix: float = 0.0
    train_batches: int = 250  # fresh training batches per epoch (then a validation pass and a checkpoint)
    val_size: int = 1000  # validation sequences: picks the best weights; 1000 resolves a 0.1% success rate
    test_size: int = 2560  # the size of Hochreiter & Schmidhuber's (1997) test sets

    def _validate(self) -> None:
        super()._validate()
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"data.seed must be in [0, 2**32), got {self.seed}")
        if not 0.0 <= self.curriculum_mix <= 1.0:
            raise ValueError(f"data.curriculum_mix must be in [0, 1], got {self.curriculum_mix}")
        if self.curriculum_mix and not self.curriculum_start:
            raise ValueError(f"data.curriculum_mix={self.curriculum_mix} needs a curriculum: set data.curriculum_start")
        if self.curriculum_start < 0 or self.curriculum_steps < 1:
            raise ValueError(f"data.curriculum_start must be >= 0 and data.curriculum_steps >= 1, got "
                             f"{self.curriculum_start} and {self.curriculum_steps}")  # fmt: skip
        for name in ("train_batches", "val_size", "test_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")


def model_param_count(model: ModelConfig, hidden_size: int) -> int:
    """Parameters of a feature-input ``SequenceModel`` (recurrent core and linear head) of ``hidden_size``."""
    core = param_count(model.input_size, hidden_size, model.num_layers, mode=model.cell)
    return core + hidden_size * model.output_size + model.output_size  # head: weight and bias


def resolved_hidden_size(model: ModelConfig) -> int:
    """The hidden size the model is built with (see :class:`LongRangeModel`)."""
    H = model.hidden_size
    if model.cell == "lstm" or not getattr(model, "equal_params", False):
        return H
    budget = model_param_count(dataclasses.replace(model, cell="lstm"), H)
    while model_param_count(model, H + 1) <= budget:  # GRU/RNN units are cheaper: grow until the budget is used
        H += 1
    return H


def chrono_biases(hidden_size: int, t_max: int, generator: torch.Generator | None = None) -> Tensor:
    """Tallec & Ollivier's (2018) chrono forget biases: ``log(u)``, u ~ U(1, t_max - 1), one per unit (H,)."""
    if t_max < 3:
        raise ValueError(f"t_max must be >= 3, got {t_max}")
    u = 1.0 + (t_max - 2.0) * torch.rand(hidden_size, generator=generator, dtype=torch.float64)  # U(1, T_max - 1)
    return torch.log(u).float()


def curriculum_length(data: GeneratedData, step: int) -> int:
    """The training T at optimiser step ``step`` (0-based): ``curriculum_start`` doubled every ``curriculum_steps``
    steps, at most ``data.length``; ``data.length`` when the curriculum is off."""
    length = data.length  # type: ignore[attr-defined]
    if not data.curriculum_start:
        return length
    return min(length, data.curriculum_start * 2 ** (step // data.curriculum_steps))


def mixed_length(data: GeneratedData, length: int, generator: torch.Generator) -> int:
    """A curriculum batch's T when the current length is ``length``: with probability ``data.curriculum_mix``
    uniform in [``curriculum_start``, ``length``], else ``length``; drawn from the batch's own ``generator``,
    so a resumed run replays the same lengths."""
    if not data.curriculum_mix:
        return length
    u = torch.rand(2, generator=generator, dtype=torch.float64)
    if u[0] >= data.curriculum_mix:
        return length
    return data.curriculum_start + int(u[1] * (length - data.curriculum_start + 1))


def build_model(config: Config) -> SequenceModel:
    """The task's ``SequenceModel`` with the resolved hidden size, and ``model.forget_bias`` or
    ``model.chrono_tmax`` set (chrono draws from torch's global generator, seeded by the runner)."""
    model = SequenceModel(dataclasses.replace(config.model, hidden_size=resolved_hidden_size(config.model)))
    forget_bias = getattr(config.model, "forget_bias", None)
    chrono = getattr(config.model, "chrono_tmax", None)
    rnn = model.rnn
    if chrono is not None and config.model.cell in ("lstm", "gru"):
        H = rnn.hidden_size
        with torch.no_grad():
            for k in range(rnn.num_layers):
                b_f = chrono_biases(H, chrono)
                bias_ih, bias_hh = getattr(rnn, f"bias_ih_l{k}"), getattr(rnn, f"bias_hh_l{k}")
                bias_ih[H : 2 * H] = b_f  # f (LSTM's i, f, g, o) or z (GRU's r, z, n): the gate that keeps the state
                bias_hh[H : 2 * H] = 0.0
                if config.model.cell == "lstm":
                    bias_ih[:H] = -b_f  # i = -f: a unit that keeps its memory long writes to it rarely
                    bias_hh[:H] = 0.0
    if forget_bias is not None and config.model.cell in ("lstm", "gru"):
        H = rnn.hidden_size
        with torch.no_grad():
            for k in range(rnn.num_layers):
                # The second block of both: f in the LSTM's (i, f, g, o), z in the GRU's (r, z, n). The two
                # bias vectors add up, so bias_ih holds it all, as lstmkit.LSTM(forget_bias=...) does.
                getattr(rnn, f"bias_ih_l{k}")[H : 2 * H] = forget_bias
                getattr(rnn, f"bias_hh_l{k}")[H : 2 * H] = 0.0
    return model


# -- training batches ------------------------------------------------------------------------------
class OnlineBatches:
    """Fresh training batches: ``len(self)`` per epoch, batch ``i`` of epoch ``e`` drawn from
    ``generator_for(seed, "train", e, i)``. ``fit`` calls ``set_epoch``, so a resumed run replays
    and continues exactly the sequences a run never stopped would see."""

    def __init__(
        self,
        make: Callable[[int, torch.Generator], Batch],
        seed: int,
        batches: int,
        batch_size: int,
        *,
        length_at: Callable[[int], int] | None = None,
        make_length: Callable[[int, torch.Generator, int], Batch] | None = None,
    ):
        """``length_at(step)`` and ``make_length(n, generator, T)``: a curriculum, batch ``i`` of epoch ``e``
        drawn at T = ``length_at(e * batches + i)`` (the optimiser step, when each batch is one step)."""
        self.make, self.seed, self.batches, self.batch_size = make, seed, batches, batch_size
        self.length_at, self.make_length = length_at, make_length
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[Batch]:
        for i in range(self.batches):
            g = generator_for(self.seed, "train", self.epoch, i)
            if self.length_at is None or self.make_length is None:
                yield self.make(self.batch_size, g)
            else:
                yield self.make_length(self.batch_size, g, self.length_at(self.epoch * self.batches + i))


def fingerprint(batches: list[Batch]) -> str:
    """SHA-256 of every tensor of every batch, in order."""
    h = hashlib.sha256()
    for batch in batches:
        for t in batch:
            if t is not None:
                h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass
class GeneratedPrepared(Prepared):
    config: Config
    batches: dict[str, list[Batch]]  # "val" and "test"
    description: str

    def save(self, run_dir: Path) -> None:
        write_versioned_json(
            run_dir / DATA,
            _DATA_FORMAT,
            _DATA_VERSION,
            {
                "generator": self.description,
                "sequences": {s: sum(b.x.shape[1] for b in bs) for s, bs in self.batches.items()},
                "sha256": {s: fingerprint(bs) for s, bs in self.batches.items()},
            },
        )


# -- the task ----------------------------------------------------------------------------------------
class GeneratedTask(Task):
    """Base of the long-range tasks: data, training and scoring; each task says what differs."""

    diagnosable = True  # lstmkit diagnose: inputs of any length and a loss at the last step

    state_files = (DATA,)
    loss_key: ClassVar[str]  # the loss's name in the metrics: "mse", "nats_per_sequence", "nats_per_symbol"
    criterion: ClassVar[str]  # the success criterion per sequence, in words, for the report

    # -- what each task says ------------------------------------------------------------------------
    @abc.abstractmethod
    def sizes(self, data: GeneratedData) -> tuple[int, int]:
        """(input features, outputs) of the model."""

    @abc.abstractmethod
    def generate(self, data: GeneratedData, n: int, generator: torch.Generator) -> Batch:
        """``n`` sequences drawn with ``generator`` only."""

    @abc.abstractmethod
    def loss(self, output: Tensor, batch: Batch) -> tuple[Tensor, int]:
        """The training loss of the model's output (T, B, O) on ``batch``: (mean loss, items it averages)."""

    @abc.abstractmethod
    def per_sequence(self, output: Tensor, batch: Batch) -> dict[str, Tensor]:
        """Per-sequence scores, each (B,), averaged over the split into the metric of the same name;
        ``"success"`` is whether the sequence passes :attr:`criterion`."""

    def baselines(self, data: GeneratedData) -> dict[str, float]:
        """Metrics of a memoryless predictor that need no data (added to every split's metrics)."""
        return {}

    def describe(self, data: GeneratedData) -> str:
        """The generator and its settings, in words (for ``data.json`` and ``lstmkit tasks``)."""
        return f"generated {self.name} sequences, seed data.seed={data.seed}"

    def diagnostic_batch(self, config: Config, length: int, n: int, generator: torch.Generator) -> Batch:
        """``n`` sequences of exactly ``length`` steps, for ``lstmkit diagnose``."""
        raise TaskError(f"task {self.name!r} has no fixed-length input for the gradient-flow diagnostic")

    def last_step_loss(self, last_output: Tensor, batch: Batch) -> Tensor:
        """The task's loss at the last step only, from the output there (B, O)."""
        raise TaskError(f"task {self.name!r} has no loss at the last step")

    # -- config and data -----------------------------------------------------------------------------
    def data_source(self, config: Config) -> str:
        return self.describe(config.data)

    def check_data(self, config: Config) -> None:
        """Generated data is always available."""

    def eval_batches(self, config: Config, split: str) -> list[Batch]:
        """The fixed sequences of ``split``: "val" and "test" from ``data.seed``; "train" the first
        ``data.val_size`` training sequences (the first batches of epoch 0)."""
        data = config.data
        if split == "train":
            n, chunk, keys = data.val_size, data.batch_size, (config.train.seed, "train", 0)
        else:
            n, chunk, keys = (data.val_size if split == "val" else data.test_size), _EVAL_CHUNK, (data.seed, split)
        return [
            self.generate(data, min(chunk, n - start), generator_for(*keys, i))
            for i, start in enumerate(range(0, n, chunk))
        ]

    def prepare(self, config: Config) -> GeneratedPrepared:
        if not isinstance(config.data, GeneratedData) or not isinstance(config.model, LongRangeModel):
            raise TaskError(f"task {self.name!r} needs its own [data] and [model] sections; build its config with "
                            "lstmkit.tasks.runner.build_config")  # fmt: skip
        if config.data.curriculum_start and not hasattr(config.data, "length"):
            raise TaskError(f"data.curriculum_start needs a task with data.length; {self.name!r} has none")
        if config.data.curriculum_start and config.data.curriculum_start > config.data.length:
            raise TaskError(f"data.curriculum_start {config.data.curriculum_start} exceeds data.length "
                            f"{config.data.length}; start shorter")  # fmt: skip
        if config.model.vocab_size is not None:
            raise TaskError(f"model.vocab_size does not apply to {self.name!r}: its inputs are features; unset it")
        n_in, n_out = self.sizes(config.data)
        config = dataclasses.replace(
            config, model=dataclasses.replace(config.model, input_size=n_in, output_size=n_out)
        )
        batches = {s: self.eval_batches(config, s) for s in ("val", "test")}
        return GeneratedPrepared(config=config, batches=batches, description=self.describe(config.data))

    # -- training and scoring ----------------------------------------------------------------------
    def step(self, model: SequenceModel, batch: Batch, state: Any) -> tuple[Tensor, None, int]:
        """``fit``'s step: every batch holds whole, independent sequences, so no state is carried."""
        output, _ = model(batch.x, None, batch.lengths)  # (T, B, O)
        loss, items = self.loss(output, batch)
        return loss, None, items

    def score(self, model: SequenceModel, batches: list[Batch], split: str, config: Config) -> dict[str, Any]:
        """The split's loss (as ``fit`` computes it), per-sequence scores averaged, and the baselines."""
        loss = evaluate(model, batches, self.step)
        was_training = model.training
        model.eval()
        parts: dict[str, list[Tensor]] = {}
        with torch.no_grad():
            for batch in batches:
                output, _ = model(batch.x, None, batch.lengths)
                for key, value in self.per_sequence(output, batch).items():
                    parts.setdefault(key, []).append(value.double())
        model.train(was_training)
        scores = {key: torch.cat(v) for key, v in parts.items()}  # each (N,) over the split's N sequences
        means = {key: float(v.mean()) for key, v in scores.items()}
        sequences = sum(b.x.shape[1] for b in batches)
        return {"split": split, self.loss_key: loss, **means, **self.baselines(config.data), "sequences": sequences,
                **self.split_details(split, scores, batches)}  # fmt: skip

    def split_details(self, split: str, scores: dict[str, Tensor], batches: list[Batch]) -> dict[str, Any]:
        """More metrics of a split from the per-sequence scores (each (N,), in the order of ``batches``)."""
        return {}

    def training_data(self, prepared: Prepared) -> TrainingData:
        """Fresh sequences every epoch (seeded by ``train.seed`` and the epoch); the fixed validation set."""
        assert isinstance(prepared, GeneratedPrepared)
        config = prepared.config
        data = config.data
        curriculum = {}
        if data.curriculum_start:
            curriculum = {
                "length_at": lambda step: curriculum_length(data, step // config.train.accumulate),
                "make_length": lambda n, g, T: self.generate(
                    dataclasses.replace(data, length=mixed_length(data, T, g)), n, g
                ),
            }
        train = OnlineBatches(
            lambda n, g: self.generate(data, n, g), config.train.seed, data.train_batches, data.batch_size,
            **curriculum,
        )
        return TrainingData(train, prepared.batches["val"], self.step)

    def train(self, prepared: Prepared, run_dir: Path) -> dict[str, Any]:
        assert isinstance(prepared, GeneratedPrepared)
        config = prepared.config
        model = self.build_model(config)
        data = self.training_data(prepared)
        result = fit(model, data.train, data.step, config=config, out_dir=run_dir, val_data=data.val)
        metrics = self.score(model, prepared.batches["val"], "val", config)
        metrics["test"] = self.score(model, prepared.batches["test"], "test", config)
        metrics.update(
            steps=result.steps,
            epochs=len(result.history),
            best_epoch=result.best_epoch,
            cell=self.model_name(config.model),
            hidden_size=self.hidden_size(config.model),
            parameters=sum(p.numel() for p in model.parameters()),
            sequences_trained=result.steps * config.data.batch_size,
        )
        return metrics

    def build_model(self, config: Config) -> SequenceModel:
        return build_model(config)

    def model_name(self, model: ModelConfig) -> str:
        """What the report calls the model: its cell."""
        return model.cell

    def hidden_size(self, model: ModelConfig) -> int:
        """The hidden size the model is built with."""
        return resolved_hidden_size(model)

    def load_model(self, run: Run) -> SequenceModel:
        return run.load_weights(self.build_model(run.config))

    def evaluate(self, run: Run, split: str) -> dict[str, Any]:
        if split not in SPLITS:
            raise TaskError(f"split must be one of {SPLITS}, got {split!r}")
        model = self.load_model(run)
        batches = self.eval_batches(run.config, split)
        if split != "train":
            recorded = run.read_record(DATA, _DATA_FORMAT, _DATA_VERSION)
            if recorded.get("sha256", {}).get(split) != fingerprint(batches):
                raise TaskError(
                    f"the {split} sequences generated now differ from those this run was scored on (their SHA-256 "
                    f"differs from {run.file(DATA)}); the generator changed: evaluate with the lstmkit that "
                    "trained the run, or train again"
                )
        return self.score(model, batches, split, run.config)

    def report(self, metrics: dict[str, Any]) -> list[str]:
        lines = [self.report_split(metrics)]
        if "test" in metrics:
            lines.append(self.report_split(metrics["test"]))
        if "cell" in metrics:
            lines.append(
                f"model: {metrics['cell']}, {metrics['hidden_size']} units, {metrics['parameters']:,} parameters; "
                f"{metrics['steps']} steps ({metrics['sequences_trained']:,} training sequences)"
            )
        return lines

    def report_split(self, m: dict[str, Any]) -> str:
        """One line: the loss beside its baseline, and the share of sequences that pass the criterion."""
        baseline = m.get(f"baseline_{self.loss_key}")
        versus = f" (memoryless baseline {baseline:.4f})" if baseline is not None else ""
        return (
            f"{m['split']}: {self.loss_key} {m[self.loss_key]:.4f}{versus}; {100 * m['success']:.1f}% of "
            f"{m['sequences']} sequences solved ({self.criterion})"
        )


def one_hot(ids: Tensor, n: int) -> Tensor:
    """Integer symbols (...) to float one-hot vectors (..., n)."""
    return torch.nn.functional.one_hot(ids, n).float()
