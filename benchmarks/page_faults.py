"""Minor page faults per inference call: lstmkit.LSTM (its work-buffer pool on and off) against torch.nn.LSTM.

A CPU buffer of 32 MB or more comes from ``mmap`` in glibc and goes back to the kernel when freed, so a fresh one
is faulted in (and zeroed) page by page on every call. ``lstmkit.nn._workspace`` keeps such buffers from one call
to the next; in inference the LSTM takes its input side W_ih x (T, B, G) from it (docs/layers.md). This script
counts, with ``getrusage``, the minor page faults a forward pass costs (one layer, I = H, T steps, float32, one
thread, ``torch.inference_mode``), after warm-up calls, averaged over ``--calls`` calls:

- ``lstmkit, pool``: the default (``LSTMKIT_BUFFER_CACHE_MB`` unset);
- ``lstmkit, no pool``: ``LSTMKIT_BUFFER_CACHE_MB=0`` (read at every call);
- ``nn.LSTM``: native, same weights.

The returned output (T, B, H) is allocated anew by every candidate, so none reaches zero once it is over 32 MB.

    python benchmarks/page_faults.py                                # B64H512 and B16H128, T = 100; seconds
    python benchmarks/page_faults.py --shapes B64H512,B64H1024 --out faults.md
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import emit_report, machine_description

import lstmkit
from lstmkit.nn import _workspace

_SHAPE = re.compile(r"B(\d+)H(\d+)")


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """"B64H512,B16H128" -> [(64, 512), (16, 128)]; a clear error for anything else."""
    shapes = []
    for part in text.split(","):
        found = _SHAPE.fullmatch(part.strip())
        if not found:
            raise SystemExit(f"--shapes: {part.strip()!r} is not of the form BxHy, e.g. B64H512")
        shapes.append((int(found.group(1)), int(found.group(2))))
    return shapes


def faults_per_call(fn: Callable[[], object], calls: int, warmup: int = 3) -> float:
    """Minor page faults of this process per call of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def measure(batch: int, hidden: int, steps: int, calls: int) -> dict[str, float]:
    torch.manual_seed(0)
    ours = lstmkit.LSTM(hidden, hidden).eval()
    native = torch.nn.LSTM(hidden, hidden).eval()
    native.load_state_dict(ours.state_dict())
    x = torch.randn(steps, batch, hidden)  # (T, B, I)
    saved = os.environ.get("LSTMKIT_BUFFER_CACHE_MB")
    out = {}
    try:
        with torch.inference_mode():
            os.environ.pop("LSTMKIT_BUFFER_CACHE_MB", None)
            out["lstmkit, pool"] = faults_per_call(lambda: ours(x), calls)
            _workspace.release()
            os.environ["LSTMKIT_BUFFER_CACHE_MB"] = "0"
            out["lstmkit, no pool"] = faults_per_call(lambda: ours(x), calls)
            out["nn.LSTM"] = faults_per_call(lambda: native(x), calls)
    finally:
        if saved is None:
            os.environ.pop("LSTMKIT_BUFFER_CACHE_MB", None)
        else:
            os.environ["LSTMKIT_BUFFER_CACHE_MB"] = saved
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="B64H512,B16H128", help="comma list of BxHy (I = H); default B64H512,B16H128")
    p.add_argument("--steps", type=int, default=100, help="T, time steps (default 100)")
    p.add_argument("--calls", type=int, default=10, help="calls counted per candidate (default 10)")
    p.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    args = p.parse_args(argv)
    if args.steps < 1 or args.calls < 1:
        raise SystemExit(f"--steps and --calls must be >= 1, got {args.steps} and {args.calls}")
    torch.set_num_threads(1)
    lines = [
        "# Minor page faults per inference call",
        "",
        f"`python benchmarks/{Path(__file__).name} {shlex.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        machine_description() + f"; 1 thread, T = {args.steps}, I = H, float32.",
        "",
        "| shape | W_ih x buffer MB | lstmkit, pool | lstmkit, no pool | nn.LSTM |",
        "|---|---:|---:|---:|---:|",
    ]
    for batch, hidden in parse_shapes(args.shapes):
        got = measure(batch, hidden, args.steps, args.calls)
        mb = args.steps * batch * 4 * hidden * 4 / 2**20
        lines.append(f"| B{batch}H{hidden} | {mb:.1f} | {got['lstmkit, pool']:,.0f} | "
                     f"{got['lstmkit, no pool']:,.0f} | {got['nn.LSTM']:,.0f} |")
    emit_report(lines, args.out)


if __name__ == "__main__":
    main()
