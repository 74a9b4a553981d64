"""Crash-safe checkpoints without pickle: safetensors for tensors, JSON and TOML for the rest.

Layout of a checkpoint root::

    root/
      index.json              # the checkpoint names, newest last; readers start here
      step-000001200/
        model.safetensors     # the model's weights, loadable on their own
        trainer.safetensors   # optimiser moments, RNG states, carried hidden state, ...
        trainer.json          # step counters, lr schedule, ...; tensors referenced by key
        config.toml           # the run's Config, when one was given

A new checkpoint is built in a temporary directory (every file fsynced), renamed into place,
and only then added to ``index.json``, which is itself replaced atomically (written to a
temporary file in the same directory, fsynced, ``os.replace``). A kill at any moment therefore
leaves ``index.json`` naming complete checkpoints only; leftovers are removed by the next save, and
a save that fails (a full disk) removes its temporary directory itself.

Both safetensors files carry their SHA-256 (:mod:`lstmkit.formats.integrity`), checked on load.
:func:`latest_intact_checkpoint` finds the newest checkpoint that reads back whole: a damaged one
(bytes flipped, truncated, a broken ``trainer.json`` or ``index.json``) is skipped, renamed
``broken-step-...`` (kept, never deleted) and the index rewritten without it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from lstmkit._fileio import UnsafeWrite, fsync_dir, fsync_file, read_versioned_json, write_versioned_json
from lstmkit.formats import integrity
from lstmkit.train.config import Config, dump_config, load_config, section_defaults

_INDEX = "index.json"
_INDEX_FORMAT = "lstmkit.checkpoint-index"
_STATE_FORMAT = "lstmkit.checkpoint"
_VERSION = 1
_NAME = re.compile(r"step-\d{9}(-\d+)?")
_TMP_PREFIX = ".tmp-"
_BROKEN_PREFIX = "broken-"  # damaged checkpoints, set aside by latest_intact_checkpoint and never deleted


class CheckpointError(ValueError):
    """No checkpoint to resume from reads back whole; the message names the damaged files."""


@dataclasses.dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read back."""

    path: Path
    step: int
    state: dict[str, Any]  # the ``state`` given to save_checkpoint, tensors included
    config: Config | None


# -- tensors and plain values to JSON + a tensor dict, and back ------------------------------------
def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace tensors by ``{"__tensor__": key}`` (collected in ``tensors``); keep tuples and int keys."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        # clone: safetensors refuses tensors that share memory (tied weights) and needs contiguity.
        tensors[key] = obj.detach().to("cpu").clone().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint without pickle: {obj!r}")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
        return {k: _decode(v, tensors) for k, v in obj.items()}
    return obj


# -- the index -------------------------------------------------------------------------------------
def _read_index(root: Path) -> list[str]:
    if not (root / _INDEX).exists():
        return []
    names = read_versioned_json(root / _INDEX, _INDEX_FORMAT, _VERSION).get("checkpoints")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{root / _INDEX}: 'checkpoints' must be a list of names")
    return names


def _write_index(root: Path, names: list[str]) -> None:
    write_versioned_json(root / _INDEX, _INDEX_FORMAT, _VERSION, {"checkpoints": names})


def latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint under ``root``, or None when there is none."""
    names = _read_index(Path(root))
    return Path(root) / names[-1] if names else None


# -- save and load ---------------------------------------------------------------------------------
def save_checkpoint(
    root: str | os.PathLike[str],
    step: int,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    state: dict[str, Any] | None = None,
    config: Config | None = None,
    keep: int = 2,
) -> Path:
    """Write a checkpoint of ``model`` (and optimiser, scheduler, extra ``state``) at ``step``.

    Args:
        root: the checkpoint root directory (created if missing).
        step: the global step; names the checkpoint ``step-{step:09d}``.
        state: extra plain values and tensors (nested dicts, lists, tuples) to restore exactly.
        keep: how many checkpoints to keep; older ones are deleted after the new one is indexed.

    Returns:
        the directory of the new checkpoint.
    """
    if not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    if not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be an int >= 1, got {keep!r}")
    root = Path(root)
    if root.is_symlink():
        raise UnsafeWrite(root, "is a symbolic link; lstmkit never writes checkpoints through links")
    root.mkdir(parents=True, exist_ok=True)
    index = _read_index(root)
    _remove_unindexed(root, index)

    tensors: dict[str, torch.Tensor] = {}
    payload = {
        "step": step,
        "state": _encode(state or {}, tensors),
        "optimizer": _encode(optimizer.state_dict(), tensors) if optimizer is not None else None,
        "scheduler": _encode(scheduler.state_dict(), tensors) if scheduler is not None else None,
    }
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}step-{step:09d}-", dir=root))
    try:
        safetensors.torch.save_model(model, str(tmp / "model.safetensors"))  # drops tied duplicates
        integrity.seal(tmp / "model.safetensors")
        safetensors.torch.save_file(tensors, str(tmp / "trainer.safetensors"))
        integrity.seal(tmp / "trainer.safetensors")
        write_versioned_json(tmp / "trainer.json", _STATE_FORMAT, _VERSION, payload)
        if config is not None:
            dump_config(config, tmp / "config.toml")
        for f in tmp.iterdir():
            fsync_file(f)
        fsync_dir(tmp)
    except OSError as e:  # a full disk: leave no temporary folder behind, and name the folder that stays
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(e.errno, f"{e.strerror or e} (writing the checkpoint of step {step})", str(root)) from e
    except BaseException:  # an interrupt: leave no temporary folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    # A step saved again (e.g. after resuming from an older checkpoint) gets a fresh name, so that
    # the indexed older copy stays intact until the index has moved on to the new one.
    name, k = f"step-{step:09d}", 0
    while (root / name).exists():
        k += 1
        name = f"step-{step:09d}-{k}"
    os.replace(tmp, root / name)
    fsync_dir(root)
    superseded = [n for n in index if _step_of(n) == step]
    index = [*(n for n in index if n not in superseded), name]
    _write_index(root, index[-keep:])
    for old in superseded + index[:-keep]:
        shutil.rmtree(root / old, ignore_errors=True)
    return root / name


def _step_of(name: str) -> int:
    return int(name.split("-")[1])


def _order(name: str) -> tuple[int, int]:
    """Sort key of checkpoint names: by step, then by the re-save suffix (``step-...-1`` is newer)."""
    parts = name.split("-")
    return int(parts[1]), int(parts[2]) if len(parts) > 2 else 0


def _remove_unindexed(root: Path, index: list[str]) -> None:
    """Delete leftovers of interrupted saves: checkpoint or temporary dirs the index does not name."""
    for entry in root.iterdir():
        ours = _NAME.fullmatch(entry.name) or entry.name.startswith(_TMP_PREFIX)
        if ours and entry.is_dir() and entry.name not in index:
            shutil.rmtree(entry, ignore_errors=True)


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    config_like: Config | None = None,
) -> Checkpoint:
    """Read a checkpoint and load it into the objects given.

    Args:
        path: a checkpoint root (its newest checkpoint is read) or one checkpoint directory.
        model, optimizer, scheduler: loaded in place when given; they must be built like the
            ones that were saved.
        config_like: a config built like the saved one (a task's extended sections, such as a
            ``data`` section with a ``text`` key), so that its ``config.toml`` can be read back.
    """
    path = Path(path)
    if (path / _INDEX).exists():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"{path}: the checkpoint index is empty")
        path = latest
    if not (path / "trainer.json").exists():
        raise FileNotFoundError(f"{path}: neither a checkpoint root (no {_INDEX}) nor a checkpoint (no trainer.json)")
    payload = read_versioned_json(path / "trainer.json", _STATE_FORMAT, _VERSION)
    tensors = integrity.verify(path / "trainer.safetensors", finite=False)  # checksum checked
    if model is not None:
        integrity.verify(path / "model.safetensors")  # checksum and finite weights, before loading any
        safetensors.torch.load_model(model, str(path / "model.safetensors"), strict=True)
    if optimizer is not None:
        if payload["optimizer"] is None:
            raise ValueError(f"{path}: holds no optimiser state")
        optimizer.load_state_dict(_decode(payload["optimizer"], tensors))
    if scheduler is not None:
        if payload["scheduler"] is None:
            raise ValueError(f"{path}: holds no scheduler state")
        scheduler.load_state_dict(_decode(payload["scheduler"], tensors))
    config = None
    if (path / "config.toml").exists():
        base = None if config_like is None else section_defaults(config_like)
        config = load_config(path / "config.toml", base)
    return Checkpoint(path=path, step=payload["step"], state=_decode(payload["state"], tensors), config=config)


def check_checkpoint(path: str | os.PathLike[str], config_like: Config | None = None) -> None:
    """Read every file of the checkpoint directory ``path`` without loading it into anything.

    Raises:
        OSError, ValueError (``integrity.WeightsError`` included), KeyError: naming the damaged file.
    """
    path = Path(path)
    payload = read_versioned_json(path / "trainer.json", _STATE_FORMAT, _VERSION)
    tensors = integrity.verify(path / "trainer.safetensors", finite=False)
    try:
        for key in ("state", "optimizer", "scheduler"):
            _decode(payload[key], tensors)
        if not isinstance(payload["step"], int):
            raise TypeError("'step' is not an int")
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path / 'trainer.json'}: refers to state it does not hold ({e!r})") from e
    integrity.verify(path / "model.safetensors")
    if (path / "config.toml").exists():
        load_config(path / "config.toml", None if config_like is None else section_defaults(config_like))


def latest_intact_checkpoint(
    root: str | os.PathLike[str], config_like: Config | None = None
) -> tuple[Path | None, list[str]]:
    """The newest checkpoint under ``root`` that reads back whole (:func:`check_checkpoint`), and notes
    for the user saying which one is used and why, when it is not simply the newest.

    A damaged checkpoint is renamed ``broken-<name>`` (kept for inspection, never deleted) and the
    index is rewritten without it; an unreadable ``index.json`` is rebuilt from the checkpoint
    directories present. None when ``root`` holds no checkpoint (no index).

    Raises:
        CheckpointError: checkpoints exist but none is intact (the broken ones are kept).
    """
    root = Path(root)
    if not (root / _INDEX).exists():
        return None, []
    notes: list[str] = []
    try:
        names = _read_index(root)
        rewrite = False
    except (OSError, ValueError) as e:
        names = sorted((p.name for p in root.iterdir() if _NAME.fullmatch(p.name) and p.is_dir()), key=_order)
        notes.append(f"{root / _INDEX} is damaged ({e}); rebuilt it from the checkpoints present: {names}")
        rewrite = True
    chosen = None
    for name in reversed(names):
        try:
            check_checkpoint(root / name, config_like)
        except (OSError, ValueError) as e:
            kept = root / f"{_BROKEN_PREFIX}{name}"
            k = 0
            while kept.exists():
                k += 1
                kept = root / f"{_BROKEN_PREFIX}{name}.{k}"
            if (root / name).exists():
                os.replace(root / name, kept)
                notes.append(f"checkpoint {root / name} is damaged ({e}); kept it as {kept}")
            else:
                notes.append(f"checkpoint {root / name} is missing")
            names = [n for n in names if n != name]
            rewrite = True
            continue
        chosen = root / name
        break
    if rewrite:
        _write_index(root, names)
        fsync_dir(root)
    if chosen is None:
        raise CheckpointError(
            f"{root}: no intact checkpoint to resume from ({'; '.join(notes)}); move {root} away to start over"
        )
    if notes:
        notes.append(f"resuming from {chosen}, the newest intact checkpoint")
    return chosen, notes
