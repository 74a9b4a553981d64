"""What a compression step costs and gains: stored numbers, bytes on disk, the task metric, latency."""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

import safetensors
import torch
from torch import nn

from lstmkit.formats.quantized import Dequantize

# The number each task is judged by, in order of preference, and whether higher is better.
PRIMARY = (("accuracy", True), ("bits_per_char", False), ("perplexity", False), ("mse", False))


def count_parameters(model: nn.Module) -> int:
    """Stored numbers: parameters (tied ones once, emptied placeholders of a parametrization add 0),
    plus the weights a quantised model keeps as integers."""
    n = sum(p.numel() for p in model.parameters())
    return n + sum(math.prod(m.shape) for m in model.modules() if isinstance(m, Dequantize))


def tensor_bytes(path: str | Path) -> int:
    """Bytes of the tensors in a safetensors file (the file less its JSON header)."""
    with safetensors.safe_open(str(path), framework="pt") as f:
        return sum(_nbytes(f, k) for k in f.keys())  # noqa: SIM118 - safe_open has no __iter__


def _nbytes(f: Any, key: str) -> int:
    s = f.get_slice(key)
    size = {"U8": 1, "I8": 1, "BOOL": 1, "F16": 2, "BF16": 2, "I16": 2, "F32": 4, "I32": 4, "F64": 8, "I64": 8}
    return math.prod(s.get_shape()) * size[s.get_dtype()]


def primary_metric(metrics: dict[str, Any]) -> tuple[str, float, bool] | None:
    """(name, value, higher_is_better) of the task's headline number in an ``evaluate`` result."""
    for name, higher in PRIMARY:
        if isinstance(metrics.get(name), (int, float)):
            return name, float(metrics[name]), higher
    scores = metrics.get("scores")  # forecast: a table of methods; the LSTM's row is the first
    if isinstance(scores, dict) and scores:
        first = next(iter(scores.values()))
        if isinstance(first, dict) and "mse" in first:
            return "mse", float(first["mse"]), False
    return None


def relative_change(before: float, after: float) -> float:
    """(after - before) / |before|: the share by which the metric moved."""
    return (after - before) / abs(before) if before else math.inf


def latency_ms(
    models: list[nn.Module], inputs: tuple, *, repeats: int = 20, warmup: int = 3
) -> list[dict[str, float]]:
    """Wall time (ms) of one forward call of each model on ``inputs``, one thread: the median and the
    fastest of ``repeats`` calls. The models are timed in turn within each repeat, so a change in the
    machine's load hits all of them alike; on a shared machine the fastest call is the steadiest
    measure of what the model costs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    times: list[list[float]] = [[] for _ in models]
    try:
        with torch.no_grad():
            for m in models:
                m.eval()
                for _ in range(warmup):
                    m(*inputs)
            for _ in range(repeats):
                for i, m in enumerate(models):
                    t0 = time.perf_counter()
                    m(*inputs)
                    times[i].append((time.perf_counter() - t0) * 1000)
    finally:
        torch.set_num_threads(threads)
    return [{"median": statistics.median(t), "min": min(t)} for t in times]


def describe(report: dict[str, Any]) -> list[str]:
    """Lines for the terminal: what ``lstmkit compress`` did and what it changed."""
    b, a, c = report["before"], report["after"], report["change"]
    lines = [f"{report['method']} {report['options']}: written with compression.json"]
    lines.append(f"stored numbers {b['parameters']} -> {a['parameters']} ({c['parameter_ratio']:.2f}x fewer); "
                 f"model.safetensors {b['model_bytes']} -> {a['model_bytes']} bytes ({c['size_ratio']:.2f}x smaller)")
    for split, m in b["metric"].items():
        if split in a["metric"]:
            lines.append(f"{split} {m['name']}: {m['value']:.4f} -> {a['metric'][split]['value']:.4f} "
                         f"({100 * c['metric_relative_change'][split]:+.2f}% relative)")
    lines.append(f"latency of one forward call on {report['latency_input']}: {b['latency_ms']['min']:.2f} -> "
                 f"{a['latency_ms']['min']:.2f} ms fastest, {b['latency_ms']['median']:.2f} -> "
                 f"{a['latency_ms']['median']:.2f} ms median ({c['speedup']:.2f}x speed-up)")
    storage = report.get("storage") or {}
    if storage.get("format") == "lstmkit.sparse":
        lines.append(f"stored sparse (values + bitmask): {storage['sparse_tensors']} matrices, "
                     f"{storage['dense_bytes']} -> {storage['sparse_bytes']} bytes")
    for name, t in (report.get("latency_by_product") or {}).items():
        if name != "input":
            lines.append(f"  {name:<42} {t['min']:.2f} ms fastest, {t['median']:.2f} ms median")
    if "torch_ao" in report:
        t = report["torch_ao"]
        for name, m in t["models"].items():
            lines.append(f"  {name:<24} {m['cross_entropy']:.4f} {t['unit']}, {m['bytes']} bytes, "
                         f"{m['latency_ms']['min']:.2f} ms")
    return lines
