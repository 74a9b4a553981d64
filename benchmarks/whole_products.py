"""A training step's whole-sequence products (the input side W_ih x, dx, dW_ih, dW_hh) on the C++ kernel's brgemm
panels against MKL's sgemm, paired with native ``torch.nn.LSTM`` (session 39).

For each shape (T = 100, I = H, one plain layer, the input not requiring grad, as the sweep's training step: zero
grads, forward, ``output.sum()``, backward), three candidates in the same interleaved rounds: lstmkit with the
products on panels (``set_whole_gemm("panels")``, the default on AMD's AVX-512 CPUs), lstmkit with them on BLAS
(``"blas"``, the default elsewhere and on every CPU before session 39), and native. Ratios are per round against
native, median [IQR].

    python benchmarks/whole_products.py --shapes 16x256,64x512 --threads 1,2     # about 2 minutes

With ``--products`` the three products alone instead, at T B rows (T = 100): GFLOP/s of MKL's (``torch.mm``) and of
the kernel's panels (``plane_products``, what the panel path calls) for the input side x W_ih^T, dx = dxg W_ih and
dW_ih^T = x^T dxg (x^T copied first, as ``_WholeLinear`` does), best of 7:

    python benchmarks/whole_products.py --products --shapes 16x256,64x512 --threads 1,2
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from _timing import bxh_shapes, interleaved, machine_description, ratio_table

import lstmkit
from lstmkit.nn import _cpp

BASELINE = "native nn.LSTM"
T = 100


def step(model: torch.nn.Module, x: torch.Tensor, mode: str | None = None):
    def run() -> None:
        if mode is not None:
            _cpp._ext().set_whole_gemm(mode)
        model.zero_grad(set_to_none=True)
        y, _ = model(x)
        y.sum().backward()

    return run


def products(B: int, H: int) -> str:
    """One report line: GFLOP/s of each product form on MKL and on the panels."""
    ext = _cpp._ext()
    M, I, G = T * B, H, 4 * H
    x, w, d = torch.randn(M, I), torch.randn(G, I), torch.randn(M, G)
    y, dx, dwt = torch.empty(1, M, G), torch.empty(1, M, I), torch.empty(1, I, G)
    forms = {
        "x W_ih^T": (lambda: torch.mm(x, w.t()), lambda: ext.plane_products(x[None], w.t()[None], y, False)),
        "dxg W_ih": (lambda: torch.mm(d, w), lambda: ext.plane_products(d[None], w[None], dx, False)),
        "dxg^T x": (lambda: torch.mm(d.t(), x),
                    lambda: ext.plane_products(x.t().contiguous()[None], d[None], dwt, False)),
    }  # fmt: skip
    gflop = 2 * M * I * G / 1e9
    cells = []
    for name, (mkl, panels) in forms.items():
        best = {}
        for label, fn in (("MKL", mkl), ("panels", panels)):
            fn()
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            best[label] = gflop / min(times)
        cells.append(f"{name}: {best['MKL']:.0f} / {best['panels']:.0f}")
    return f"| {M} x {I} x {G} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", type=bxh_shapes("16x256,64x512"), default=[(16, 256), (64, 512)])
    parser.add_argument("--threads", default="1,2", help="comma list of thread counts")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--products", action="store_true", help="the three products alone, GFLOP/s")
    args = parser.parse_args()
    if not _cpp.available():
        raise SystemExit(f"the C++ kernel is unavailable here: {_cpp._failure}")
    if args.products:
        print(f"# {' '.join(['python', *sys.argv])}\n# {machine_description()}")
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            print(f"\n{threads} thread(s), GFLOP/s, MKL / panels (best of 7)\n| rows x I x G | forward | dx | dW |")
            print("|---|---|---|---|")
            for B, H in args.shapes:
                print(products(B, H), flush=True)
        return
    try:
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            for B, H in args.shapes:
                torch.manual_seed(0)
                native = torch.nn.LSTM(H, H)
                ours = lstmkit.LSTM(H, H)
                ours.load_state_dict(native.state_dict())
                x = torch.randn(T, B, H)
                times = interleaved({BASELINE: step(native, x), "lstmkit, products on panels": step(ours, x, "panels"),
                                     "lstmkit, products on BLAS": step(ours, x, "blas")},
                                    repeats=args.rounds)  # fmt: skip
                note = f"training step, T={T}, B={B}, I=H={H}, plain layer, {threads} thread(s)"
                print("\n".join(ratio_table(times, BASELINE, note, digits=2)), "\n", flush=True)
    finally:
        _cpp._ext().set_whole_gemm("auto")


if __name__ == "__main__":
    main()
