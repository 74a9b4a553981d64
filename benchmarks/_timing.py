"""Shared timing helpers for the benchmarks: interleaved repeats, paired ratios, machine facts.

Our machines are shared and noisy, so a benchmark here never trusts one absolute time. Every
candidate is timed in the same round-robin (one sample of each per round, the start rotating),
and a candidate's speed is reported as the median over rounds of its time divided by the
baseline's time in the *same* round: load that comes and goes hits both sides of each ratio.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

_LONG_CALL = 0.5  # seconds: a first call this long is not timed again


def _calls_per_sample(fn: Callable[[], object], min_time: float) -> int:
    """How many back-to-back calls make one sample last at least ``min_time`` seconds.

    Very short calls (B = 1, small H) are otherwise dominated by timer and scheduler jitter.
    The first call is untimed warm-up (lazy initialisation can make it far slower than the rest:
    a Stream's merged or packed weights); the count comes from a second call unless the first took
    over ``_LONG_CALL`` seconds, since a long call (S1: about a second) needs no calibration and
    costs the most.
    """
    t0 = time.perf_counter()
    fn()  # lazy initialisation, kernel selection
    dt = time.perf_counter() - t0
    if dt < _LONG_CALL:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
    return max(1, math.ceil(min_time / max(dt, 1e-7)))


def interleaved(
    candidates: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    min_time: float = 0.05,
    progress: Callable[[str], None] | None = None,
    time_limit: float | None = None,
    min_repeats: int = 3,
) -> dict[str, list[float]]:
    """Time every candidate ``repeats`` times, round-robin; return seconds per call, per round.

    Round r runs the candidates in their given order rotated by r, so none always follows the
    same neighbour (caches, frequency boost). ``warmup`` untimed rounds come first; the first of
    them also sets each candidate's calls per sample (see ``_calls_per_sample``). The garbage
    collector is off while a sample runs, as in ``timeit``.

    With ``time_limit`` (seconds, warm-up included), rounds stop once it is spent and at least
    ``min_repeats`` are done, so a machine that other jobs slow down tenfold still finishes; the
    lists are then shorter than ``repeats``.
    """
    start = time.perf_counter()
    names = list(candidates)
    calls = {name: _calls_per_sample(candidates[name], min_time) for name in names}
    for _ in range(max(0, warmup - 1)):
        for name in names:
            candidates[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn, n = candidates[name], calls[name]
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                times[name].append((time.perf_counter() - t0) / n)
            finally:
                gc.enable()
        if progress is not None:
            progress(f"round {r + 1}/{repeats}")
        if time_limit is not None and r + 1 >= min_repeats and time.perf_counter() - start > time_limit:
            if progress is not None and r + 1 < repeats:
                progress(f"stopping after {r + 1} rounds: over the {time_limit:.0f} s limit")
            break
    return times


def paired_ratios(times: list[float], baseline: list[float]) -> list[float]:
    """Per-round ratios times[r] / baseline[r] (both from the same ``interleaved`` call)."""
    return [t / b for t, b in zip(times, baseline, strict=True)]


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def quartiles(xs: list[float]) -> tuple[float, float]:
    """(first, third) quartile; with fewer than 4 samples, (min, max)."""
    if len(xs) < 4:
        return min(xs), max(xs)
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def ratio_table(times: dict[str, list[float]], baseline: str, note: str, digits: int = 4) -> list[str]:
    """The report of an ``interleaved`` run: the command, the machine, ``note``, then a Markdown table of each
    candidate's median time (ms, ``digits`` decimals) and its paired ratio to ``baseline`` [IQR]."""
    import sys

    lines = [f"# {' '.join(['python', *sys.argv])}", f"# {machine_description()}", f"# {note}",
             f"| candidate | median step (ms) | / {baseline} [IQR] |", "|---|---:|---|"]  # fmt: skip
    for name, ts in times.items():
        ratios = paired_ratios(ts, times[baseline])
        lo, hi = quartiles(ratios)
        lines.append(f"| {name} | {1e3 * median(ts):.{digits}f} | {median(ratios):.2f} [{lo:.2f}, {hi:.2f}] |")
    return lines


def mm_candidate(m: int, k: int, n: int, dtype: torch.dtype = torch.float32) -> tuple[Callable[[], object], float]:
    """A ``torch.mm`` of (m, k) x (k, n) to time beside the layers, and its FLOPs (2 m k n)."""
    a = torch.randn(m, k, dtype=dtype)
    b = torch.randn(k, n, dtype=dtype)
    out = torch.empty(m, n, dtype=dtype)

    def run() -> None:
        torch.mm(a, b, out=out)

    return run, 2.0 * m * k * n


_DEFAULT_THREADS = torch.get_num_threads()  # before any benchmark changes it


# The x86 vector extensions that decide the kernels' paths, in /proc/cpuinfo's spelling.
_ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
              "amx_tile")


def instruction_sets() -> list[str]:
    """The vector instruction sets this CPU reports (x86 Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            found = re.search(r"^flags\s*:\s*(.+)$", f.read(), re.MULTILINE)
    except OSError:
        return []
    flags = set(found.group(1).split()) if found else set()
    return [f for f in _ISA_FLAGS if f in flags]


def machine_description() -> str:
    """One line: CPU model, core count, torch version and its BLAS/threading build."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            found = re.search(r"model name\s*:\s*(.+)", f.read())
        if found:
            cpu = found.group(1).strip()
    except OSError:
        pass
    isas = instruction_sets()
    blas = "MKL" if torch.backends.mkl.is_available() else "no MKL"
    onednn = "oneDNN" if torch.backends.mkldnn.is_available() else "no oneDNN"
    return (
        f"{cpu} (vector instruction sets: {', '.join(isas) or 'none found'}), "
        f"{os.cpu_count()} logical CPUs (1-minute load average {os.getloadavg()[0]:.1f} at the end); "
        f"torch {torch.__version__} ({blas}, {onednn}, "
        f"{_DEFAULT_THREADS} intra-op threads by default); Python {platform.python_version()}"
    )


# --- peak resident memory (Linux) -------------------------------------------------------------
# A CPU tensor allocator keeps no peak statistics, so we read the kernel's high-water mark of
# resident memory (VmHWM), which writing "5" to /proc/self/clear_refs resets to the current size.
# The caller must run in a fresh process started with a fixed MALLOC_MMAP_THRESHOLD_ (see
# ``MALLOC_ENV``): then every buffer above the threshold is its own mmap, returned to the kernel
# when freed, and the resident size follows the live tensors instead of glibc's caches.

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        found = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    if found is None:
        raise OSError(f"/proc/self/status has no {field}")
    return int(found.group(1))


def peak_rss_growth(fn: Callable[[], object]) -> int:
    """Bytes by which the resident set's high-water mark rises above its current size during ``fn()``."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - before) * 1024


def emit_report(lines: list[str], out: Path | None) -> None:
    """Print a Markdown report (one string per line) and also write it to ``out`` when given."""
    report = "\n".join(lines) + "\n"
    print(report)
    if out is not None:
        out.write_text(report)


def bxh_shapes(example: str) -> Callable[[str], list[tuple[int, int]]]:
    """An argparse ``type`` for ``--shapes BxH,BxH,...``: [(B, H), ...], refusing a bad entry with ``example`` named."""

    def parse(text: str) -> list[tuple[int, int]]:
        shapes = []
        for item in text.split(","):
            try:
                B, H = (int(v) for v in item.split("x"))
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"a shape is BxH (batch x hidden size), e.g. {example}; got {item!r}"
                ) from None
            if B < 1 or H < 1:
                raise argparse.ArgumentTypeError(f"B and H must be >= 1, got {item!r}")
            shapes.append((B, H))
        return shapes

    return parse
