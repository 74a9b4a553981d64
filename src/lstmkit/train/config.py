"""Run configuration: frozen dataclasses with reasoned defaults, TOML files, and one way to change
a value: :func:`set_values` (``{"train.lr": 3e-4}``), which :func:`apply_overrides` (the CLI's
``section.key=value`` strings) parses into."""

from __future__ import annotations

import dataclasses
import io
import math
import os
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import tomli_w

from lstmkit._fileio import read_utf8, write_text_atomic

CELLS = ("lstm", "gru", "rnn")
SCHEDULES = ("cosine", "constant", "plateau")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def require_at_least(obj: Any, section: str, minimum: float, *names: str) -> None:
    """Each named field is >= ``minimum`` (None passes: it means "not set"); ``ValueError`` naming
    ``section.field`` otherwise. Task sections call it from their ``_validate``."""
    for name in names:
        v = getattr(obj, name)
        _require(v is None or v >= minimum, f"{section}.{name} must be >= {minimum}, got {v}")


# -- typed values --------------------------------------------------------------------------------
def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against the type hint ``hint`` of field ``where``; widen int to float."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, where)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # tuple[int, ...]: a list of any length
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - a field type this module does not handle yet
        raise TypeError(f"{where}: unsupported field type {hint!r}")
    if not ok:
        raise ValueError(f"{where}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


class _Section:
    """Base of the config sections: checks every field's type on construction (so also on
    ``dataclasses.replace``), widening ints to floats, then the section's own value checks."""

    _name: ClassVar[str]

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(getattr(self, f.name), hints[f.name], f"{self._name}.{f.name}")
            object.__setattr__(self, f.name, value)  # frozen: the documented way to set in __post_init__
        self._validate()

    def _validate(self) -> None:
        """Range checks; each section overrides this."""


@dataclass(frozen=True)
class ModelConfig(_Section):
    """The network: embedding or feature input, recurrent core, linear head."""

    _name = "model"

    vocab_size: int | None = None  # token-id input; set from the tokenizer (exactly one of vocab/input)
    input_size: int | None = None  # real-valued (T, B, I) input
    output_size: int | None = None  # classes or targets; None means vocab_size (a language model)
    embedding_dim: int | None = None  # None means hidden_size, so tied weights need no projection
    hidden_size: int = 256  # large enough for char/word LMs on small corpora, fast on CPU
    num_layers: int = 2  # a second layer helps consistently; a third rarely does (Jozefowicz et al. 2015)
    dropout: float = 0.2  # between layers and before the head (Zaremba et al. 2014 use 0.5 for larger nets)
    cell: str = "lstm"  # LSTM is the robust default; GRU is cheaper at similar quality on many tasks
    tie_weights: bool = False  # tying input and output embeddings helps LMs (Press & Wolf 2017); LM only
    # DropConnect on every recurrent layer's W_hh in training (Wan et al. 2013): one mask a batch, shared by every
    # step, as AWD-LSTM's weight drop (Merity et al. 2017, 0.5 there); 0 is off. Refused, with the reason, by
    # handwriting-gen (its window cell) and the ConvLSTM's; seq2seq's decoder holds one mask a batch over its one-step
    # calls, and the NTM's controller cell takes one mask a call.
    weight_dropout: float = 0.0
    # Zoneout on every LSTM layer in training (Krueger et al. 2017): each unit of h and c keeps its previous value
    # with probability [p_h, p_c], a new draw every step; eval mode moves by the expectation. The paper's LMs used
    # [0.05, 0.5]; [0, 0] is off. A GRU or RNN core takes the first rate (h; it has no c). seq2seq takes it (both
    # stacks), the NTM its controller cell; handwriting-gen and the ConvLSTM's refuse it with the reason.
    zoneout: tuple[float, float] = (0.0, 0.0)
    # Why this config's model cannot take ``weight_dropout`` (a clause for the error), or None when it can; likewise
    # ``zoneout``.
    _no_weight_dropout = None
    _no_zoneout = None

    def extra_training_size(self, batch_size: int, steps: int) -> tuple[int, int]:
        """(parameters, activation values kept for backward) the model adds beyond its recurrent core, embedding and
        head, for the memory guard (``lstmkit.tasks.runner.memory_estimate``); a config whose model adds a block
        says so here. ``steps``: the time steps a training batch holds."""
        return 0, 0

    def _validate(self) -> None:
        require_at_least(
            self, "model", 1, "vocab_size", "input_size", "output_size", "embedding_dim", "hidden_size", "num_layers"
        )
        _require(0.0 <= self.dropout < 1.0, f"model.dropout must be in [0, 1), got {self.dropout}")
        _require(
            0.0 <= self.weight_dropout < 1.0, f"model.weight_dropout must be in [0, 1), got {self.weight_dropout}"
        )
        _require(
            self._no_weight_dropout is None or self.weight_dropout == 0.0,
            f"model.weight_dropout={self.weight_dropout} is not available for this task's model: "
            f"{self._no_weight_dropout}; leave it at 0",
        )
        _require(self.cell in CELLS, f"model.cell must be one of {CELLS}, got {self.cell!r}")
        zoned = self.zoneout != (0.0, 0.0)
        _require(all(0.0 <= p < 1.0 for p in self.zoneout),
                 f"model.zoneout must be two rates [h, c] in [0, 1), got {list(self.zoneout)}")  # fmt: skip
        _require(not zoned or self._no_zoneout is None,
                 f"model.zoneout={list(self.zoneout)} is not available for this task's model: {self._no_zoneout}; "
                 "leave it at [0, 0]")  # fmt: skip
        _require(self.zoneout[1] == 0.0 or self.cell == "lstm",
                 f"model.zoneout's second rate is the LSTM cell state's; model.cell = {self.cell!r} has no c: "
                 f"set it to 0, got {list(self.zoneout)}")  # fmt: skip


@dataclass(frozen=True)
class DataConfig(_Section):
    """Batching."""

    _name = "data"

    batch_size: int = 32  # small batches generalise well for RNNs; 20-80 is usual for LMs
    bptt: int = 128  # truncated-BPTT chunk: 100-200 steps covers most useful LSTM memory at bearable cost
    bucket_pool_batches: int = 50  # bucketing pool: saves most padding while keeping batches varied

    def _validate(self) -> None:
        require_at_least(self, "data", 1, "batch_size", "bptt", "bucket_pool_batches")


@dataclass(frozen=True)
class TrainConfig(_Section):
    """Optimisation, schedule, stopping and bookkeeping."""

    _name = "train"

    epochs: int = 20  # an upper bound; early stopping usually ends the run first
    max_steps: int | None = None  # optional cap on optimiser steps across epochs
    lr: float = 1e-3  # Adam's default step is a safe start for LSTMs
    weight_decay: float = 1e-2  # AdamW's default decoupled decay; not applied to biases or norm gains
    betas: tuple[float, float] = (0.9, 0.999)  # Adam defaults; recurrent nets rarely gain from tuning
    clip_norm: float = 5.0  # global-norm clipping tames exploding gradients (Pascanu et al. 2013)
    schedule: str = "cosine"  # cosine decay after warm-up; "plateau" halves lr when val loss stalls
    warmup_steps: int = 100  # linear warm-up steadies Adam's early moment estimates (cosine/constant only)
    min_lr_ratio: float = 0.1  # cosine ends at 10% of lr rather than 0, so late steps still learn
    plateau_factor: float = 0.5  # "plateau": multiply lr by this on a stall
    plateau_patience: int = 1  # "plateau": evaluations without improvement before cutting lr
    patience: int = 5  # early stopping: evaluations without val improvement before stopping
    min_delta: float = 0.0  # early stopping: the improvement that counts
    stateful: bool = True  # carry (detached) state across consecutive batches: truncated BPTT over chunks
    # Batches whose gradients are summed into one optimiser step (their mean loss); 1 steps after every batch.
    # With several processes the gradients are averaged across ranks only on the last batch of each group.
    accumulate: int = 1
    max_nonfinite: int = 5  # consecutive non-finite steps skipped before the run fails loudly
    checkpoint_every: int | None = None  # steps between mid-epoch checkpoints; one is always saved per epoch
    keep_checkpoints: int = 2  # older checkpoints are deleted; 2 keeps one spare if the newest is bad
    log_every: int = 10  # steps between rows of metrics.csv
    # Optional wall-clock cap, counted across resumes: ends the run like max_steps, and the cosine schedule follows
    # the clock whenever it is further along than the steps, so a run cut short by time still ends its decay.
    max_minutes: float | None = None
    # Exponential moving average of the weights (0: off): after every optimiser step each parameter's average
    # becomes d * average + (1 - d) * weight, d = min(ema_decay, (1 + t) / (10 + t)) at step t (counted from 0),
    # so early averages forget the initial weights quickly. Validation, early stopping and the saved model use
    # the average; the optimiser trains the raw weights. Saved in checkpoints, so a resumed run goes on exactly.
    ema_decay: float = 0.0
    seed: int = 0  # for seed_everything; one number reproduces a run on one machine
    # Intra-op threads, set by the task runner (``lstmkit train/evaluate/generate``), not by ``fit``. Per-step
    # matrices of small recurrent nets are too small for threads to pay, and with the other core of a 2-core
    # machine busy, 2 threads run many times slower than 1. 0 keeps torch's default.
    threads: int = 1
    progress: bool = True  # tqdm progress bar
    tensorboard: bool = True  # also log to TensorBoard when it is installed

    def _validate(self) -> None:
        require_at_least(
            self, "train", 1,
            "epochs", "max_steps", "accumulate", "patience", "max_nonfinite", "checkpoint_every", "keep_checkpoints",
            "log_every",
        )  # fmt: skip
        require_at_least(
            self, "train", 0, "weight_decay", "warmup_steps", "plateau_patience", "min_delta", "threads"
        )
        _require(
            self.max_minutes is None or self.max_minutes > 0, f"train.max_minutes must be > 0, got {self.max_minutes}"
        )
        _require(0 <= self.seed < 2**32, f"train.seed must be in [0, 2**32), got {self.seed}")
        _require(0 < self.lr < math.inf, f"train.lr must be a finite number > 0, got {self.lr}")
        _require(
            math.isfinite(self.weight_decay), f"train.weight_decay must be finite, got {self.weight_decay}"
        )
        _require(all(0 <= b < 1 for b in self.betas), f"train.betas must be in [0, 1), got {self.betas}")
        _require(self.clip_norm > 0, f"train.clip_norm must be > 0 (use inf to disable), got {self.clip_norm}")
        _require(self.schedule in SCHEDULES, f"train.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        _require(0 <= self.ema_decay < 1, f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        _require(0 <= self.min_lr_ratio <= 1, f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        _require(0 < self.plateau_factor < 1, f"train.plateau_factor must be in (0, 1), got {self.plateau_factor}")


@dataclass(frozen=True)
class Config:
    """A whole run: ``[model]``, ``[data]`` and ``[train]`` sections."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


_SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}


def section_defaults(config: Config) -> Config:
    """A :class:`Config` with the same section classes as ``config``, every key at its default.

    Tasks extend a section by subclassing it (``class CharLMData(DataConfig)`` adds ``text``);
    this is the base to read such a config back from a file exactly: keys the file leaves out
    (None values are not written) take their class defaults, not some other config's values.
    """
    return Config(**{f.name: type(getattr(config, f.name))() for f in dataclasses.fields(Config)})


def _section_from_dict(base: Any, values: dict[str, Any], section: str) -> Any:
    known = [f.name for f in dataclasses.fields(base)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in [{section}]; known keys: {known}")
    return dataclasses.replace(base, **values)


def config_from_dict(data: dict[str, Any], base: Config | None = None) -> Config:
    """Build a :class:`Config` from nested ``{section: {key: value}}``.

    Keys the dict leaves out keep their value in ``base`` (default ``Config()``: the defaults).
    Each section's class is ``base``'s, so a task's extended section accepts its own keys, and
    every other key is rejected by name.
    """
    base = Config() if base is None else base
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; known sections: {list(_SECTIONS)}")
    parts = {}
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ValueError(f"[{section}] must be a table of key = value, got {type(values).__name__}")
        parts[section] = _section_from_dict(getattr(base, section), values, section)
    return dataclasses.replace(base, **parts)


def config_to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """Nested plain dict of ``config``; None values are left out (TOML has no null; they are defaults)."""
    out = {}
    for f in dataclasses.fields(config):
        section = dataclasses.asdict(getattr(config, f.name))
        out[f.name] = {k: list(v) if isinstance(v, tuple) else v for k, v in section.items() if v is not None}
    return out


def load_config(path: str | os.PathLike[str], base: Config | None = None) -> Config:
    """Read a TOML file of ``[model]``, ``[data]``, ``[train]`` tables onto ``base`` (see
    :func:`config_from_dict`; use ``section_defaults(config)`` to read back a task's config exactly)."""
    if Path(path).is_dir():
        raise ValueError(f"{path} is a directory, not a TOML file")
    text = read_utf8(path)  # a ValueError naming the file and line when it is not UTF-8
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: invalid TOML ({e})") from e
    try:
        return config_from_dict(data, base)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def dump_config(config: Config, path: str | os.PathLike[str] | None = None) -> str:
    """Return ``config`` as TOML text, and write it to ``path`` when one is given."""
    text = tomli_w.dumps(config_to_dict(config))
    if path is not None:
        write_text_atomic(path, text)  # never through a link; a kill leaves the old file or the new one
    return text


def _parse_value(text: str) -> Any:
    """A TOML literal (``3e-4``, ``true``, ``[0.9, 0.98]``, ``"gru"``), ``none``, or else the bare string."""
    if text.strip().lower() in ("none", "null"):
        return None
    if "\n" in text or "\r" in text:  # a TOML literal is one line; this is a string (a path) kept as given
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def set_values(config: Config, values: Mapping[str, Any]) -> Config:
    """Return a copy of ``config`` with ``{"section.key": value}`` set.

    The typed way for code to change a config: values are Python values (a path is a ``str``
    as it is, whatever quotes or backslashes it holds; None clears an optional key), checked like
    ``--set`` values: ints widen to floats, other ill-typed values, out-of-range values and unknown
    sections or keys raise ValueError naming them. The known keys are those of ``config``'s own
    section classes, so a task's extended section (``data.text``) is accepted where that task's
    config is given.

    Example:
        >>> set_values(Config(), {"train.lr": 3e-4, "model.cell": "gru"}).train.lr
        0.0003
    """
    if not isinstance(values, Mapping):
        raise TypeError(f"values must be a mapping of 'section.key' to values, got {type(values).__name__}")
    parts: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise TypeError(f"keys must be 'section.key' strings, got {key!r}")
        section, dot, name = key.partition(".")
        if not dot or not name:
            raise ValueError(f"key {key!r} must look like 'section.key'")
        if section not in _SECTIONS:
            raise ValueError(f"{key}: unknown section {section!r}; known sections: {list(_SECTIONS)}")
        known = [f.name for f in dataclasses.fields(getattr(config, section))]
        if name not in known:
            raise ValueError(f"{key}: unknown key {name!r} in [{section}]; known keys: {known}")
        parts.setdefault(section, {})[name] = value
    # Each section is built once with all its new values: that checks every value's type (``_coerce``) and the
    # section's ranges, and a check across keys (model.attention_layer against model.num_layers) sees the final
    # combination, whatever the order the keys came in.
    for section, new in parts.items():
        config = dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **new)})
    return config


def apply_overrides(config: Config, overrides: Iterable[str]) -> Config:
    """Return a copy of ``config`` with ``"section.key=value"`` overrides applied.

    Values are TOML literals; a bare word is a string (``model.cell=gru``) and ``none`` clears
    an optional key. The overrides are parsed in order (a key given twice keeps its last value), then
    set together by :func:`set_values`: unknown sections or keys and ill-typed values raise ValueError
    by name. The known keys are those of ``config``'s own section classes, so a task's extended
    section (say ``data.text``) is accepted where that task's config is given.

    Example:
        >>> apply_overrides(Config(), ["train.lr=3e-4", "model.cell=gru"]).train.lr
        0.0003
    """
    if isinstance(overrides, str):
        raise TypeError("overrides must be a list of 'section.key=value' strings, not one string")
    values: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        _, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"override {item!r} must look like 'section.key=value'")
        values[key] = _parse_value(raw)  # a key given again keeps its last value
    return set_values(config, values)


# -- describing the keys ---------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyDoc:
    """One config key as ``lstmkit config TASK`` prints it."""

    key: str  # "section.name"
    type: str  # the field's type hint, as written ("int | None")
    value: Any  # the value in the described config (the task's default, or after overrides)
    default: Any  # the section class's own default
    reason: str  # why the default is what it is, from the field's metadata["doc"] or its source comment


def _source_comments(cls: type) -> dict[str, str]:
    """``{field: comment}`` for the fields ``cls`` itself declares: the comment at the end of the field's
    line(s), else the block of comment lines right above it, joined into one line."""
    import ast
    import inspect
    import textwrap
    import tokenize

    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # built in a REPL or by exec: no source to read
        return {}
    comments: dict[int, str] = {}  # line (1-based, in the dedented class source) -> comment text
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    out = {}
    for node in ast.parse(source).body[0].body:  # the class body
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        trailing = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        if trailing:
            out[node.target.id] = " ".join(trailing)
            continue
        above, n = [], node.lineno - 1
        while n >= 1 and lines[n - 1].strip().startswith("#"):
            above.insert(0, comments.get(n, ""))
            n -= 1
        if above:
            out[node.target.id] = " ".join(above)
    return out


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def describe_keys(config: Config) -> list[KeyDoc]:
    """Every key of ``config``'s sections, in section and field order, with its value, type, class default
    and the reason for the default. A field's reason is its ``metadata["doc"]`` when it has one, else the
    comment beside (or right above) its declaration in the class that declares it.

    Raises:
        ValueError: naming every key that has no reason (each default must say why).
    """
    docs, missing = [], []
    for sf in dataclasses.fields(config):
        section = getattr(config, sf.name)
        cls = type(section)
        hints = typing.get_type_hints(cls)
        reasons: dict[str, str] = {}
        for base in reversed(cls.__mro__):  # a subclass's comment on a redeclared field wins
            if dataclasses.is_dataclass(base) and base is not object:
                reasons.update(_source_comments(base))
        for f in dataclasses.fields(section):
            reason = f.metadata.get("doc") or reasons.get(f.name, "")
            if not reason:
                missing.append(f"{sf.name}.{f.name} ({cls.__qualname__})")
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            docs.append(KeyDoc(f"{sf.name}.{f.name}", _type_name(hints[f.name]), getattr(section, f.name), default,
                               reason))  # fmt: skip
    if missing:
        raise ValueError(f"config keys without a reason (add a comment beside the field): {missing}")
    return docs


def _toml(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).removeprefix("v = ").strip()


def format_key_docs(docs: Iterable[KeyDoc], task_reasons: Mapping[str, str] | None = None) -> list[str]:
    """Lines ``section.key = value  (type)  # reason``. Where the value is not the class default, the class
    default is shown too, and the task's own reason for its value first (``task_reasons``, by key) when given."""
    task_reasons = task_reasons or {}
    lines = []
    for d in docs:
        reason = d.reason
        note = ""
        if d.value != d.default:
            note = f" [class default {_toml(d.default)}]"
            if d.key in task_reasons:
                reason = f"{task_reasons[d.key]} (class default: {reason})"
        lines.append(f"{d.key} = {_toml(d.value)}  ({d.type}){note}  # {reason}")
    return lines
