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
leaves ``index.json`` naming complete checkpoints only; leftovers are removed by the next save.
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

from lstmkit._fileio import fsync_dir, fsync_file, read_versioned_json, write_versioned_json
from lstmkit.train.config import Config, dump_config, load_config, section_defaults

_INDEX = "index.json"
_INDEX_FORMAT = "lstmkit.checkpoint-index"
_STATE_FORMAT = "lstmkit.checkpoint"
_VERSION = 1
_NAME = re.compile(r"step-\d{9}(-\d+)?")
_TMP_PREFIX = ".tmp-"


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
    safetensors.torch.save_model(model, str(tmp / "model.safetensors"))  # drops tied duplicates
    safetensors.torch.save_file(tensors, str(tmp / "trainer.safetensors"))
    write_versioned_json(tmp / "trainer.json", _STATE_FORMAT, _VERSION, payload)
    if config is not None:
        dump_config(config, tmp / "config.toml")
    for f in tmp.iterdir():
        fsync_file(f)
    fsync_dir(tmp)

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
    tensors = safetensors.torch.load_file(str(path / "trainer.safetensors"))
    if model is not None:
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
