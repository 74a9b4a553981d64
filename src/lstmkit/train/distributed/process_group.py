"""The process group of a data-parallel launch, on PyTorch's own engine (``torch.distributed``
launched by ``torchrun``), and the few collectives the loop and the task runner need.

Nothing here is home-made communication: processes meet through torch's ``env://`` rendezvous
(the ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` variables
``torchrun`` sets), and the control messages (a validation loss, a checkpoint path, an error) are
torch's object collectives.

- :func:`setup` joins the process group when the environment says the process is one of several
  (gloo on CPU; gloo for CPU tensors and nccl for CUDA tensors when CUDA is there), with a timeout
  (``LSTMKIT_DIST_TIMEOUT`` seconds, default 1800), and turns a failed rendezvous into a
  :class:`DistributedError` that says what to check.
- :func:`on_main` runs work on rank 0 only (evaluation, writing files) and hands its result or
  its error to every rank; :func:`agree` makes an error on any rank an error on every rank, so
  that a misconfigured launch stops everywhere instead of leaving the others waiting.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch
import torch.distributed as dist

TIMEOUT_ENV = "LSTMKIT_DIST_TIMEOUT"
# torch's own default for collectives. Rank 0 evaluates while the others wait in a broadcast, so the
# timeout must outlast the longest validation pass; a launch that should fail fast sets it lower.
DEFAULT_TIMEOUT_S = 1800.0
_ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

T = TypeVar("T")


class DistributedError(RuntimeError):
    """A distributed launch that cannot go on: a failed rendezvous, or an error on another rank."""


@dataclasses.dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a launch, from the variables ``torchrun`` sets."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int


# -- the environment and the process group ---------------------------------------------------------
def detect(environ: Mapping[str, str] | None = None) -> DistEnv | None:
    """The launch this process belongs to, or None when it runs alone.

    None when ``WORLD_SIZE`` is unset or 1 (plain ``python``, or ``torchrun --nproc-per-node 1``).
    A partial or malformed environment raises :class:`DistributedError` naming the variable.
    """
    env = os.environ if environ is None else environ
    if env.get("WORLD_SIZE") is None:
        return None

    def integer(name: str, default: str | None = None) -> int:
        raw = env.get(name, default)
        if raw is None:
            raise DistributedError(
                f"WORLD_SIZE={env['WORLD_SIZE']} is set but {name} is not; launch with torchrun, which sets "
                f"{', '.join(_ENV_VARS)}"
            )
        try:
            return int(raw)
        except ValueError:
            raise DistributedError(f"{name} must be an integer, got {raw!r}") from None

    world = integer("WORLD_SIZE")
    if world < 1:
        raise DistributedError(f"WORLD_SIZE must be >= 1, got {world}")
    if world == 1:
        return None
    rank = integer("RANK")
    if not 0 <= rank < world:
        raise DistributedError(f"RANK must be in [0, WORLD_SIZE={world}), got {rank}")
    addr = env.get("MASTER_ADDR")
    if not addr:
        raise DistributedError("MASTER_ADDR is not set; launch with torchrun, or set it to rank 0's host")
    port = integer("MASTER_PORT")
    return DistEnv(rank, world, integer("LOCAL_RANK", str(rank)), addr, port)


def timeout_from_env(environ: Mapping[str, str] | None = None) -> datetime.timedelta:
    """``LSTMKIT_DIST_TIMEOUT`` (seconds) or the default, for the rendezvous and every collective."""
    raw = (os.environ if environ is None else environ).get(TIMEOUT_ENV)
    if raw is None:
        return datetime.timedelta(seconds=DEFAULT_TIMEOUT_S)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise DistributedError(f"{TIMEOUT_ENV} must be a number of seconds > 0, got {raw!r}")
    return datetime.timedelta(seconds=seconds)


def backend() -> str:
    """gloo on CPU; with CUDA, gloo for CPU tensors and nccl for CUDA tensors (one group does both)."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


_owned = False  # whether setup() started the process group (and teardown() may end it)


def setup(timeout: datetime.timedelta | None = None) -> DistEnv | None:
    """Join the process group this process was launched into; return None when it runs alone.

    Idempotent: a group already started (by the caller, or an earlier call) is kept. Waits at
    most ``timeout`` (default :func:`timeout_from_env`) for every rank to arrive, then raises a
    :class:`DistributedError` saying what to check, on every rank that waited.
    """
    env = detect()
    if env is None:
        return None
    if not dist.is_available():
        raise DistributedError("this torch build has no torch.distributed; cannot train on several processes")
    if dist.is_initialized():
        if dist.get_world_size() != env.world_size or dist.get_rank() != env.rank:
            raise DistributedError(
                f"the process group has rank {dist.get_rank()} of {dist.get_world_size()}, but RANK={env.rank} "
                f"and WORLD_SIZE={env.world_size}"
            )
        return env
    timeout = timeout_from_env() if timeout is None else timeout
    if torch.cuda.is_available():
        torch.cuda.set_device(env.local_rank % torch.cuda.device_count())
    try:
        dist.init_process_group(
            backend(), init_method="env://", rank=env.rank, world_size=env.world_size, timeout=timeout
        )
    except Exception as e:  # DistStoreError, RuntimeError, TimeoutError: all mean the same to the user
        cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DistributedError(
            f"rank {env.rank} of {env.world_size}: could not join the other processes at "
            f"{env.master_addr}:{env.master_port} within {timeout.total_seconds():g} s ({cause}). Check that all "
            f"{env.world_size} processes were started (torchrun --nnodes/--nproc-per-node), that "
            "MASTER_ADDR:MASTER_PORT (torchrun --rdzv-endpoint) is rank 0's host and a free port every machine can "
            f"reach, and the firewall; {TIMEOUT_ENV} sets the timeout in seconds"
        ) from e
    global _owned
    _owned = True
    return env


def teardown(*, barrier: bool = True) -> None:
    """End the process group if :func:`setup` started it, after a barrier (nobody leaves while
    another rank may still need it) unless ``barrier`` is False (leaving on an error)."""
    global _owned, _control
    if _owned and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()
    _owned, _control = False, None


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """True on rank 0, and when running alone: the process that logs, evaluates and writes files."""
    return rank() == 0


# -- control messages: results and errors from one rank to all --------------------------------------
_control = None  # a gloo group for Python objects when the default group also speaks nccl


def _control_group():
    global _control
    if dist.get_backend() == "gloo":
        return None  # the default group
    if _control is None:
        _control = dist.new_group(backend="gloo")
    return _control


def all_gather_objects(obj: Any) -> list[Any]:
    """``obj`` from every rank, in rank order (``[obj]`` when running alone)."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj, group=_control_group())
    return out


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def agree(error: BaseException | None, what: str) -> None:
    """Collective: raise on every rank when ``error`` is set on any. Call it on every rank.

    The rank that failed raises its own error; the others raise a :class:`DistributedError`
    naming that rank and its message, so no rank is left waiting for the one that stopped.
    """
    errors = all_gather_objects(None if error is None else _describe(error))
    if error is not None:
        raise error
    for r, message in enumerate(errors):
        if message is not None:
            raise DistributedError(f"rank {r} failed to {what}: {message}")


def on_main(fn: Callable[[], T], what: str) -> T:
    """Collective: run ``fn`` on rank 0 only and return its result on every rank.

    It is also a barrier: no rank goes on before rank 0 is done. An exception in ``fn`` is
    raised on rank 0 and, as a :class:`DistributedError` with its message, on every other rank.
    """
    if world_size() == 1:
        return fn()
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except Exception as e:
            error = e
    payload = [result, None if error is None else _describe(error)]
    dist.broadcast_object_list(payload, src=0, group=_control_group())
    if error is not None:
        raise error
    if payload[1] is not None:
        raise DistributedError(f"rank 0 failed to {what}: {payload[1]}")
    return payload[0]


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sums over the ranks (float64; the values themselves when running alone)."""
    if world_size() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, group=_control_group())
    return t.tolist()


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "TIMEOUT_ENV",
    "DistEnv",
    "DistributedError",
    "agree",
    "all_gather_objects",
    "all_reduce_sum",
    "backend",
    "detect",
    "is_main",
    "on_main",
    "rank",
    "setup",
    "teardown",
    "timeout_from_env",
    "world_size",
]
