"""Large work buffers the ConvLSTM layer keeps from one call to the next (CPU). (The LSTM's inference needs none:
its C++ kernel computes W_ih x a chunk of steps at a time, ``_cpp.lstm_scan_cpp_input``.)

Why: one training step of a ConvLSTM layer at issue 21's shape (T=10, B=16, 64x64 frames, 64 hidden channels)
allocates about 1.9 GB of buffers: the gates and states it saves for the backward, the Winograd transforms.
glibc serves allocations above 32 MB straight from ``mmap`` and returns them to the kernel when they are freed, so
every step faults each page in again, and the kernel zeroes it: about 0.35 ms a MB, 0.6 s of a 3.3 s training
step on the AVX-512 Xeon of session 22 (docs/benchmarks.md). PyTorch keeps a caching allocator on GPUs, not on
the CPU; this is one for these buffers only.

A buffer is handed out again only when nothing but the pool references its storage: an autograd graph that saved
it, or any tensor viewing it, keeps it in use (storage use counts, not Python references: a graph's saved
tensors outlive their Python objects). Buffers under ``MIN_BYTES`` are left to malloc, whose heap reuses them
itself. The pool holds at most ``LSTMKIT_BUFFER_CACHE_MB`` megabytes (default 4096; 0 turns it off): past that,
buffers in use are allocated as usual and free ones are dropped, least recently used first. ``release()``
drops every free buffer. Off the CPU and under a tracer (fake tensors) ``take`` is a plain ``new_empty``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import torch
from torch import Tensor

from . import _cpp

MIN_BYTES = 32 << 20  # glibc's largest mmap threshold: smaller blocks come from (and return to) malloc's heap

_lock = threading.Lock()
_pool: OrderedDict[int, tuple[Tensor, int]] = OrderedDict()  # id -> (buffer, its storage's use count when free)


def limit_bytes() -> int:
    """The pool's size limit from ``LSTMKIT_BUFFER_CACHE_MB`` (default 4096 MB; 0: no pool)."""
    raw = os.environ.get("LSTMKIT_BUFFER_CACHE_MB", "4096").strip()
    try:
        mb = float(raw)
    except ValueError:
        raise ValueError(f"LSTMKIT_BUFFER_CACHE_MB must be a number of megabytes, got {raw!r}") from None
    if mb < 0:
        raise ValueError(f"LSTMKIT_BUFFER_CACHE_MB must be >= 0, got {raw!r}")
    return int(mb * (1 << 20))


def _uses(t: Tensor) -> int:
    return torch._C._storage_Use_Count(t.untyped_storage()._cdata)


def held_bytes() -> int:
    """The bytes the pool holds, in use or free."""
    with _lock:
        return sum(t.untyped_storage().nbytes() for t, _ in _pool.values())


def release() -> None:
    """Drop every buffer not in use (the memory returns to the system once nothing else holds it)."""
    with _lock:
        for key in [k for k, (t, free) in _pool.items() if _uses(t) == free]:
            del _pool[key]


def take(like: Tensor, *shape: int) -> Tensor:
    """An uninitialised contiguous tensor of ``shape`` with ``like``'s dtype and device: a free pooled buffer of
    that shape where there is one, else a new one (pooled where it fits the limit). Read it as ``new_empty``'s."""
    nbytes = like.element_size()
    for n in shape:
        nbytes *= n
    if like.device.type != "cpu" or nbytes < MIN_BYTES or _cpp.tracing(like):
        return like.new_empty(shape)
    limit = limit_bytes()
    if limit == 0 or nbytes > limit:
        return like.new_empty(shape)
    with _lock:
        for key, (t, free) in _pool.items():
            if t.shape == shape and t.dtype == like.dtype and _uses(t) == free:
                _pool.move_to_end(key)  # most recently used last
                return t.view(shape)  # a view: its own reference to the storage marks the buffer in use
        held = sum(t.untyped_storage().nbytes() for t, _ in _pool.values())
        for key in [k for k, (t, free) in _pool.items() if _uses(t) == free]:  # oldest first
            if held + nbytes <= limit:
                break
            held -= _pool.pop(key)[0].untyped_storage().nbytes()
        t = like.new_empty(shape)
        if held + nbytes > limit:
            return t  # the pool is full of buffers in use: this one is not kept
        _pool[id(t)] = (t, _uses(t))
        return t.view(shape)
