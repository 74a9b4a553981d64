"""Layer benchmark: lstmkit.LSTM (every variant, each --impl) against torch.nn.LSTM.

Times the forward (under ``torch.inference_mode``) and one training step (zero grads, forward,
``output.sum()``, backward) at a few shapes and thread counts, and prints a Markdown table.
Every time is shown beside its ratio to native ``torch.nn.LSTM`` timed in the same interleaved
run (see ``_timing.interleaved``), and beside the GFLOP/s it achieves against a ``torch.mm``
timed in the same run. It also reports the memory of one training step at S1.

    python benchmarks/layers.py                       # full run (see docs/benchmarks.md for how long)
    python benchmarks/layers.py --quick --shapes S4 --threads 1
    python benchmarks/layers.py --impl fused,cpp --shapes S1,S3 --out bench.md
    python benchmarks/layers.py --sweep --threads 1,2 --no-memory --out sweep.md   # issue 17 grid

Shapes: T time, B batch, I input, H hidden, P recurrent output (proj_size or H), G gate rows.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shlex
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from _timing import (
    MALLOC_ENV,
    interleaved,
    machine_description,
    median,
    mm_candidate,
    paired_ratios,
    peak_rss_growth,
    quartiles,
)

import lstmkit

# nn.LSTM(proj_size=...) warns on every call that oneDNN cannot run it; the report says so once.
warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")

SHAPES: dict[str, tuple[int, int, int, int]] = {  # name: (T, B, I, H)
    "S1": (100, 64, 512, 512),  # large batch and width: matrix products dominate
    "S2": (100, 32, 128, 256),
    "S3": (200, 16, 64, 128),  # long and narrow: per-step overhead dominates
    "S4": (100, 1, 64, 128),  # streaming-like batch of one: pure per-step overhead
}

# --sweep: every batch size x hidden size, I = H, T = 100 (issue 17's grid), named like "B16H512".
SWEEP_B = (1, 4, 16, 64)
SWEEP_H = (128, 256, 512, 1024)
SWEEP = [f"B{b}H{h}" for h in SWEEP_H for b in SWEEP_B]
SHAPES.update({f"B{b}H{h}": (100, b, h, h) for b in SWEEP_B for h in SWEEP_H})

# Variant name -> lstmkit.LSTM keyword arguments, given H.
VARIANTS: dict[str, Callable[[int], dict[str, object]]] = {
    "plain": lambda H: {},
    "peephole": lambda H: {"peephole": True},
    "coupled": lambda H: {"coupled": True},
    "layer_norm": lambda H: {"layer_norm": True},
    "proj": lambda H: {"proj_size": H // 2},
    "recurrent_dropout": lambda H: {"recurrent_dropout": 0.25},
    "peephole+layer_norm": lambda H: {"peephole": True, "layer_norm": True},
    "zoneout": lambda H: {"zoneout": (0.05, 0.5)},  # Krueger et al.'s LM rates; training draws every unit and step
}

NATIVE = "nn.LSTM"  # the baseline every ratio divides by
MM = "torch.mm"
FULL_REPEATS = 5  # odd, so the median is one measured round; 7 gave the same 1-thread ratios, 40% slower
QUICK_REPEATS = 3
# Seconds per shape/thread block before its rounds stop (after 3). Idle, the slowest block (S1, one
# thread) takes ~90 s; when other jobs share the 2 cores, 2-thread blocks can slow down tenfold.
BLOCK_TIME_LIMIT = 120.0


@dataclass
class Candidate:
    """One layer to time: how to build it, and the sizes its FLOP count needs."""

    label: str
    build: Callable[[], torch.nn.Module]
    G: int  # gate rows of W_ih: 4H, or 3H when coupled
    P: int  # recurrent output size: proj_size or H


@dataclass
class Block:
    """Every candidate timed at one shape and thread count."""

    shape: str
    threads: int
    results: dict[str, Result]
    mm_gflops: float  # the representative torch.mm, timed in the same rounds
    rounds: int  # timed rounds actually run (fewer than --repeats when the time limit cut them)


@dataclass
class Result:
    fwd_ms: float | None = None
    fwd_ratio: list[float] = field(default_factory=list)
    train_ms: float | None = None
    train_ratio: list[float] = field(default_factory=list)
    flops: float = 0.0  # forward FLOPs; a training step counts 3x
    error: str | None = None


def forward_flops(T: int, B: int, I: int, H: int, G: int, P: int) -> float:
    """Matrix-product FLOPs of one forward, for the actual sizes: 2 T B G (I + P) [+ 2 T B H P].

    W_ih is (G, I) and W_hh is (G, P); with a projection W_hr (P, H) adds its product. For the
    plain cell (G = 4H, P = H) this is the usual 8 T B H (I + H). Pointwise gate math, LayerNorm
    and peepholes are O(T B H) and not counted, so variants are credited only with the products
    they really do (coupled does 3/4 of them, proj_size = H/2 fewer recurrent ones).
    """
    flops = 2.0 * T * B * G * (I + P)
    if P != H:
        flops += 2.0 * T * B * H * P
    return flops


def candidates_for(shape: tuple[int, int, int, int], impls: list[str], variants: list[str],
                   reference: bool) -> list[Candidate]:
    _, _, I, H = shape
    out = [Candidate(NATIVE, lambda: torch.nn.LSTM(I, H), 4 * H, H)]
    if "proj" in variants:
        # The like-for-like native layer for our proj variant (torch.nn runs it without oneDNN).
        out.append(Candidate(f"{NATIVE} proj_size=H/2", lambda: torch.nn.LSTM(I, H, proj_size=H // 2),
                             4 * H, H // 2))
    runs = [(impl, v) for impl in impls for v in variants]
    if reference and "reference" not in impls:
        runs.append(("reference", "plain"))  # the slow loop: plain only, as the floor to compare with
    for impl, v in runs:
        kwargs = VARIANTS[v](H)
        G = (3 if kwargs.get("coupled") else 4) * H
        P = int(kwargs.get("proj_size", 0)) or H

        def build(kwargs=kwargs, impl=impl) -> torch.nn.Module:
            return lstmkit.LSTM(I, H, impl=impl, **kwargs)

        out.append(Candidate(f"{impl} {v}", build, G, P))
    return out


def _forward_fn(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            module(x)

    return run


def _train_fn(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        module.zero_grad(set_to_none=True)
        y, _ = module(x)  # (T, B, P)
        y.sum().backward()

    return run


def bench_block(shape_name: str, threads: int, cands: list[Candidate], repeats: int, min_time: float,
                time_limit: float | None, log: Callable[[str], None]) -> Block:
    """Time every candidate at one shape and thread count."""
    torch.set_num_threads(threads)
    T, B, I, H = SHAPES[shape_name]
    torch.manual_seed(0)
    x = torch.randn(T, B, I)  # (T, B, I)
    fns: dict[str, Callable[[], None]] = {}
    results: dict[str, Result] = {}
    for c in cands:
        res = results[c.label] = Result(flops=forward_flops(T, B, I, H, c.G, c.P))
        try:
            # Train mode for the forward too: recurrent dropout only acts in training, the rest ignore it.
            module = c.build().train()
            fwd, step = _forward_fn(module, x), _train_fn(module, x)
            step()  # fail here, not halfway through the timed rounds (e.g. an impl that cannot build)
        except Exception as e:  # an impl named on the command line that this lstmkit lacks, say
            res.error = f"{type(e).__name__}: {e}".splitlines()[0][:120]
            log(f"  skip {c.label}: {res.error}")
            continue
        fns[f"{c.label}|fwd"] = fwd
        fns[f"{c.label}|train"] = step
    # One representative product timed in the same rounds: S1's input projection, (T B, I) x (I, 4H).
    T1, B1, I1, H1 = SHAPES["S1"]
    mm_fn, mm_flops = mm_candidate(T1 * B1, I1, 4 * H1)
    fns[MM] = mm_fn

    def progress(msg: str) -> None:
        log(f"  {shape_name} threads={threads}: {msg}")

    times = interleaved(fns, repeats, warmup=1, min_time=min_time, progress=progress, time_limit=time_limit)
    for label, res in results.items():
        if res.error:
            continue
        for mode in ("fwd", "train"):
            t, base = times[f"{label}|{mode}"], times[f"{NATIVE}|{mode}"]
            setattr(res, f"{mode}_ms", 1e3 * median(t))
            setattr(res, f"{mode}_ratio", paired_ratios(t, base))
    return Block(shape_name, threads, results, mm_flops / median(times[MM]) / 1e9, len(times[MM]))


# --- memory -----------------------------------------------------------------------------------


def saved_tensor_bytes(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd keeps from forward to backward in one training step (activation memory).

    Every tensor saved for backward passes through ``saved_tensors_hooks``; we count each
    distinct storage once (views of one buffer share it) and leave out the parameters and the
    input, which exist whether or not we train.
    """
    exclude = {p.untyped_storage().data_ptr() for p in module.parameters()} | {x.untyped_storage().data_ptr()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in exclude:
            seen[s.data_ptr()] = s.nbytes()
        return t

    module.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y, _ = module(x)
    y.sum().backward()
    return sum(seen.values())


def _memory_probe(impl: str | None, shape: tuple[int, int, int, int]) -> tuple[int, int]:
    """In a fresh process: (saved-tensor bytes, peak resident growth) of one training step."""
    torch.set_num_threads(1)
    T, B, I, H = shape
    torch.manual_seed(0)
    module = torch.nn.LSTM(I, H) if impl is None else lstmkit.LSTM(I, H, impl=impl)
    x = torch.randn(T, B, I)  # (T, B, I)
    step = _train_fn(module, x)
    step()  # one step first: oneDNN primitives, thread pools and the like are made once, not per step
    saved = saved_tensor_bytes(module, x)
    module.zero_grad(set_to_none=True)
    return saved, peak_rss_growth(step)


def memory_rows(impls: list[str], log: Callable[[str], None]) -> list[tuple[str, str, str]]:
    """(layer, saved MiB, peak MiB) for native and each impl's plain layer at S1, one process each."""
    rows = []
    probes = [(NATIVE, None)] + [(f"{impl} plain", impl) for impl in impls]
    # Spawned children read the malloc settings from the environment when they start.
    old = {k: os.environ.get(k) for k in MALLOC_ENV}
    os.environ.update(MALLOC_ENV)
    try:
        ctx = multiprocessing.get_context("spawn")
        for label, impl in probes:
            log(f"memory: {label}")
            try:
                with ctx.Pool(1) as pool:
                    saved, peak = pool.apply(_memory_probe, (impl, SHAPES["S1"]))
                rows.append((label, f"{saved / 2**20:.0f}", f"{peak / 2**20:.0f}"))
            except Exception as e:
                rows.append((label, "skipped", f"{type(e).__name__}: {e}".splitlines()[0][:80]))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return rows


# --- report -----------------------------------------------------------------------------------


def _ratio_cell(ratios: list[float]) -> str:
    lo, hi = quartiles(ratios)
    return f"{median(ratios):.2f} ({lo:.2f}–{hi:.2f})"


def _rate_cell(flops: float, ms: float, mm_gflops: float) -> str:
    gflops = flops / (ms * 1e-3) / 1e9
    return f"{gflops:.1f} ({100 * gflops / mm_gflops:.0f}%)"


def block_table(block: Block) -> list[str]:
    T, B, I, H = SHAPES[block.shape]
    T1, B1, I1, H1 = SHAPES["S1"]
    lines = [
        f"### {block.shape} (T={T}, B={B}, I={I}, H={H}), {block.threads} thread{'s' if block.threads > 1 else ''}",
        "",
        f"{block.rounds} rounds. torch.mm ({T1 * B1}×{I1})·({I1}×{4 * H1}) in the same rounds: "
        f"**{block.mm_gflops:.1f} GFLOP/s**.",
        "",
        "| layer | forward ms | forward ×native | forward GFLOP/s (% mm) "
        "| train step ms | train ×native | train GFLOP/s (% mm) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    mm_gflops = block.mm_gflops
    for label, r in block.results.items():
        if r.error:
            lines.append(f"| {label} | skipped: {r.error.replace('|', '/')} | | | | | |")
            continue
        lines.append(
            f"| {label} | {r.fwd_ms:.2f} | {_ratio_cell(r.fwd_ratio)} | {_rate_cell(r.flops, r.fwd_ms, mm_gflops)} "
            f"| {r.train_ms:.2f} | {_ratio_cell(r.train_ratio)} | {_rate_cell(3 * r.flops, r.train_ms, mm_gflops)} |"
        )
    return [*lines, ""]


def summary_table(blocks: list[Block], impls: list[str]) -> list[str]:
    """Per shape and thread count: each impl's plain layer, and the variant slowest against native."""
    head = "| shape | threads | rounds | mm GFLOP/s |"
    rule = "|---|---:|---:|---:|"
    for impl in impls:
        head += f" {impl} plain fwd ×native | {impl} plain train ×native | {impl} slowest variant (train ×native) |"
        rule += "---:|---:|---|"
    lines = [head, rule]
    for block in blocks:
        results = block.results
        row = f"| {block.shape} | {block.threads} | {block.rounds} | {block.mm_gflops:.1f} |"
        for impl in impls:
            plain = results.get(f"{impl} plain")
            if plain is None or plain.error:
                row += " – | – |"
            else:
                row += f" {median(plain.fwd_ratio):.2f} | {median(plain.train_ratio):.2f} |"
            ok = {k: r for k, r in results.items() if k.startswith(f"{impl} ") and not r.error}
            if ok:
                worst = max(ok, key=lambda k: median(ok[k].train_ratio))
                row += f" {worst.split(' ', 1)[1]} ({median(ok[worst].train_ratio):.2f}) |"
            else:
                row += " – |"
        lines.append(row)
    return [*lines, ""]


def reference_table(blocks: list[Block], impls: list[str], variants: list[str]) -> list[str]:
    """How many times faster than the reference loop of the same variant each impl is (forward / train).

    Per round: the reference's time over the impl's, both from that round (as ratios to native, whose
    time cancels), then the median over rounds. Only with ``--impl ...,reference``.
    """
    fast = [i for i in impls if i != "reference"]
    if "reference" not in impls or not fast:
        return []
    lines = [
        "## Against the reference loop of the same variant",
        "",
        "Times faster than `impl=\"reference\"` (the plain autograd loop) with the same variant, forward / "
        "train step; the median over rounds of the per-round ratio.",
        "",
        "| shape | threads | impl | " + " | ".join(variants) + " |",
        "|---|---:|---|" + "---:|" * len(variants),
    ]
    for block in blocks:
        for impl in fast:
            cells = []
            for v in variants:
                ref, ours = block.results.get(f"reference {v}"), block.results.get(f"{impl} {v}")
                if ref is None or ours is None or ref.error or ours.error:
                    cells.append("–")
                    continue
                fwd = median([a / b for a, b in zip(ref.fwd_ratio, ours.fwd_ratio, strict=True)])
                train = median([a / b for a, b in zip(ref.train_ratio, ours.train_ratio, strict=True)])
                cells.append(f"{fwd:.1f} / {train:.1f}")
            lines.append(f"| {block.shape} | {block.threads} | {impl} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _csv(s: str) -> list[str]:
    return [p.strip() for p in s.split(",") if p.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", type=_csv, default=["S1", "S2", "S3", "S4"],
                    help="comma list of S1, S2, S3, S4 or sweep shapes BxHy (default: S1-S4)")
    ap.add_argument("--sweep", action="store_true",
                    help=f"the shape sweep: B in {SWEEP_B} x H in {SWEEP_H}, I = H, T = 100 (replaces --shapes)")
    ap.add_argument("--variants", type=_csv, default=list(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    ap.add_argument("--impl", type=_csv, default=["auto"],
                    help="comma list of lstmkit impl names, passed through to lstmkit.LSTM(impl=...) "
                         "(default: auto, what a user gets: the C++ kernel on CPU)")
    ap.add_argument("--no-reference", action="store_true", help="skip the slow reference loop")
    ap.add_argument("--threads", type=_csv, default=None,
                    help="comma list of torch thread counts (default: 1 and all threads)")
    ap.add_argument("--repeats", type=int, default=None,
                    help=f"timed rounds per candidate (default {FULL_REPEATS}, {QUICK_REPEATS} with --quick)")
    ap.add_argument("--block-time-limit", type=float, default=BLOCK_TIME_LIMIT, metavar="SECONDS",
                    help="stop a shape/thread block's rounds once it has taken this long and done 3 "
                         f"(default {BLOCK_TIME_LIMIT:.0f}; 0: no limit)")
    ap.add_argument("--quick", action="store_true", help="fewer, shorter repeats: a smoke run, not a measurement")
    ap.add_argument("--no-memory", action="store_true", help="skip the S1 training-step memory measurement")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown report to this file")
    args = ap.parse_args(argv)
    if args.sweep:
        args.shapes = list(SWEEP)
    for name in args.shapes:
        if name not in SHAPES:
            ap.error(f"unknown shape {name!r}; choose from S1, S2, S3, S4 or {', '.join(SWEEP)}")
    for name in args.variants:
        if name not in VARIANTS:
            ap.error(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    all_threads = torch.get_num_threads()
    try:
        args.threads = sorted({int(t) for t in args.threads}) if args.threads else sorted({1, all_threads})
    except ValueError:
        ap.error(f"--threads must be a comma list of integers, got {','.join(args.threads)}")
    if any(t < 1 for t in args.threads):
        ap.error("--threads must be positive")
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else FULL_REPEATS
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = "python " + shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    min_time = 0.01 if args.quick else 0.05  # seconds per sample: short calls are repeated up to this

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    start = time.perf_counter()
    blocks = []
    for shape_name in args.shapes:
        cands = candidates_for(SHAPES[shape_name], args.impl, args.variants, not args.no_reference)
        for threads in args.threads:
            log(f"{shape_name} threads={threads}: {len(cands)} layers, {time.perf_counter() - start:.0f} s so far, "
                f"load average {os.getloadavg()[0]:.1f}")
            blocks.append(bench_block(shape_name, threads, cands, args.repeats, min_time,
                                      args.block_time_limit or None, log))
    mem = [] if args.no_memory else memory_rows(args.impl, log)
    elapsed = time.perf_counter() - start

    out = [
        "# lstmkit layer benchmark",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine_description()}. Run took {elapsed / 60:.1f} min"
        f"{' (--quick: a smoke run, not a measurement)' if args.quick else ''}.",
        "",
        f"Each time is the median of {args.repeats} interleaved rounds (round-robin over every layer and mode, "
        "after a warm-up round; fewer where a block hit the "
        f"{args.block_time_limit:.0f} s limit, see *rounds*; calls shorter than "
        f"{1e3 * min_time:.0f} ms are repeated within a sample). "
        "**×native** is the median over rounds of the time divided by native `torch.nn.LSTM`'s time in the "
        "same round (first–third quartile in brackets; lower is faster). Forward runs under "
        "`torch.inference_mode`; a train step is zero grads, forward, `output.sum()`, backward. "
        "GFLOP/s counts the matrix products only, for each layer's actual sizes: 2·T·B·G·(I+P) "
        "(+ 2·T·B·H·P with a projection), i.e. 8·T·B·H·(I+H) for the plain cell; a train step counts 3× "
        "the forward. The % compares with the `torch.mm` timed in the same rounds.",
        "",
        "## Summary",
        "",
        *summary_table(blocks, args.impl),
        *reference_table(blocks, args.impl, args.variants),
    ]
    for block in blocks:
        out += block_table(block)
    if mem:
        T, B, I, H = SHAPES["S1"]
        out += [
            f"## Memory of one training step at S1 (T={T}, B={B}, I={I}, H={H})",
            "",
            "Each layer in its own fresh process, after one warm-up step. *Saved* is what autograd keeps "
            "from forward to backward (every tensor through `torch.autograd.graph.saved_tensors_hooks`, each "
            "storage once, parameters and input left out). *Peak* is how far the process's resident "
            "high-water mark (`VmHWM`, reset through `/proc/self/clear_refs`) rises above its size before the "
            "step, with glibc told to give every buffer over 64 KiB back to the kernel when freed; it adds "
            "gradients and temporaries to the saved tensors.",
            "",
            "| layer | saved MiB | peak MiB |",
            "|---|---:|---:|",
            *(f"| {a} | {b} | {c} |" for a, b, c in mem),
            "",
        ]
    text = "\n".join(out)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
        log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
