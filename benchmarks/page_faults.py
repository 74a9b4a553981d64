"""Minor page faults per inference call: lstmkit.LSTM against torch.nn.LSTM.

A CPU buffer of 32 MB or more comes from ``mmap`` in glibc and goes back to the kernel when freed, so a fresh one
is faulted in (and zeroed) page by page on every call. Until session 24 lstmkit's inference forward computed the
input side W_ih x of all steps into one (T, B, G) buffer (the "W_ih x of all steps" column; session 23 took it
from the work-buffer pool); now its C++ kernel computes it a chunk of steps at a time into a buffer of about
1 MB (``_cpp.lstm_scan_cpp_input``). This script counts, with ``getrusage``, the minor page faults a forward pass
costs (one layer, I = H, T steps, float32, one thread, ``torch.inference_mode``), after warm-up calls, averaged
over ``--calls`` calls, for ``lstmkit.LSTM`` and for ``nn.LSTM`` with the same weights. The returned output
(T, B, H) is allocated anew by both, so neither reaches zero once it is over 32 MB.

    python benchmarks/page_faults.py                                # B64H512 and B16H128, T = 100; seconds
    python benchmarks/page_faults.py --shapes B64H512 --steps 1000 --out faults.md
"""

from __future__ import annotations

import argparse
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
    with torch.inference_mode():
        return {"lstmkit": faults_per_call(lambda: ours(x), calls),
                "nn.LSTM": faults_per_call(lambda: native(x), calls)}


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
        "| shape | W_ih x of all steps, MB | lstmkit | nn.LSTM |",
        "|---|---:|---:|---:|",
    ]
    for batch, hidden in parse_shapes(args.shapes):
        got = measure(batch, hidden, args.steps, args.calls)
        mb = args.steps * batch * 4 * hidden * 4 / 2**20
        lines.append(f"| B{batch}H{hidden} | {mb:.1f} | {got['lstmkit']:,.0f} | {got['nn.LSTM']:,.0f} |")
    emit_report(lines, args.out)


if __name__ == "__main__":
    main()
