"""Where an inference forward's time goes, per step: native against lstmkit, and lstmkit's parts alone.

Each side's whole forward (``torch.inference_mode``) is timed at T = 1 and at T steps; the difference over T - 1
steps is its cost a step, the rest its fixed part (weight reorders or transposes and packing, allocation, the first
step). Beside them, lstmkit's parts alone, T times each: the recurrent product (B, H) x (H, 4H) through the kernel's
``step_product`` hook (in place and on panels 16 and 32 wide), and the gate pass over (B, 4H) (the same gate kernel
through the ConvLSTM's entry, ``convlstm_pointwise_forward``; its training variant, which also stores the gates).
All candidates interleaved in the same rounds; medians in ms (session 33):

    python benchmarks/step_parts.py --shapes 16x512x100x1,16x512x100 --threads 1
"""

from __future__ import annotations

import argparse
import sys

import torch
from _timing import interleaved, machine_description, median
from input_side import run_with_kernel, shape

import lstmkit

# (column, gemm mode, panel width: 0 = the kernel's rule)
PRODUCTS = (("product in place", "brgemm", 0), ("product, panels 16", "panels", 16),
            ("product, panels 32", "panels", 32))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", type=lambda s: [shape(v) for v in s.split(",")], default=[shape("16x512x100")],
                    help="comma list of BxHxT (I = H) or BxHxTxI, T >= 2")  # fmt: skip
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15, help="interleaved rounds (default 15)")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    if any(t < 2 for _, _, t, _ in args.shapes):
        ap.error("every shape needs T >= 2 (the cost a step is the difference between T steps and one)")
    run_with_kernel(args.threads, lambda ext: report(ext, args, sys.argv[1:] if argv is None else argv))


def report(ext, args: argparse.Namespace, argv: list[str]) -> None:
    """Prints the command and machine, then one row a shape."""
    print(f"Command: `python benchmarks/step_parts.py {' '.join(argv)}`\n")
    print(f"Machine: {machine_description()}. {args.threads} thread(s); kernel instruction set {ext.isa()}.\n")
    print("| B x H x T (x I) | native: a step | fixed | lstmkit: a step | fixed | "
          + " | ".join(p[0] for p in PRODUCTS) + " | gate pass |")  # fmt: skip
    print("|---|" + "---:|" * (5 + len(PRODUCTS)))
    for B, H, T, I in args.shapes:
        print(row(ext, B, H, T, I, args.repeats), flush=True)


def row(ext, B: int, H: int, T: int, I: int, repeats: int) -> str:
    """One table row: ms a step and fixed ms for each side, then each part's ms for T steps."""
    torch.manual_seed(0)
    native = torch.nn.LSTM(I, H)
    ours = lstmkit.nn.LSTM(I, H)
    ours.load_state_dict(native.state_dict())
    xs = {1: torch.randn(1, B, I), T: torch.randn(T, B, I)}
    h, w = torch.randn(B, H), torch.randn(H, 4 * H)  # (B, H) @ (H, 4H): one step's recurrent product
    pre, c_prev = torch.randn(B, 4 * H), torch.randn(B, H)
    act, c_new, tc, h_new = torch.empty(B, 4 * H), torch.empty(B, H), torch.empty(B, H), torch.empty(B, H)

    def forward(module: torch.nn.Module, steps: int):
        def run() -> None:
            with torch.inference_mode():
                module(xs[steps])
        return run

    def product(mode: str, width: int):
        def run() -> None:
            ext.set_gemm(mode)
            ext.set_panel_width(width)
            try:
                ext.step_product(h, w, T)
            finally:
                ext.set_gemm("auto")
                ext.set_panel_width(0)
        return run

    def gates() -> None:
        for _ in range(T):
            ext.convlstm_pointwise_forward(pre, c_prev, act, c_new, tc, h_new)

    candidates = {f"{side} {steps}": forward(m, steps) for side, m in (("native", native), ("ours", ours))
                  for steps in (1, T)}  # fmt: skip
    candidates |= {name: product(mode, width) for name, mode, width in PRODUCTS}
    candidates["gates"] = gates
    ms = {k: median(v) * 1e3 for k, v in interleaved(candidates, repeats).items()}
    cells = []
    for side in ("native", "ours"):
        step = (ms[f"{side} {T}"] - ms[f"{side} 1"]) / (T - 1)
        cells += [f"{step:.4g}", f"{ms[f'{side} 1'] - step:.4g}"]
    cells += [f"{ms[name]:.4g}" for name, _, _ in PRODUCTS] + [f"{ms['gates']:.4g}"]
    name = f"{B} x {H} x {T}" + (f" x {I}" if I != H else "")
    return f"| {name} | " + " | ".join(cells) + " |"


if __name__ == "__main__":
    main()
