"""A training step's whole-sequence products (the input side W_ih x, dx, dW_ih, dW_hh) on the C++ kernel's brgemm
panels against MKL's sgemm, paired with native ``torch.nn.LSTM`` (session 39).

For each shape (T = 100, I = H, one plain layer, the input not requiring grad, as the sweep's training step: zero
grads, forward, ``output.sum()``, backward), three candidates in the same interleaved rounds: lstmkit with the
products on panels (``set_whole_gemm("panels")``, the default on AMD's AVX-512 CPUs), lstmkit with them on BLAS
(``"blas"``, the default elsewhere and on every CPU before session 39), and native. Ratios are per round against
native, median [IQR].

    python benchmarks/whole_products.py --shapes 16x256,64x512 --threads 1,2     # about 2 minutes
"""

from __future__ import annotations

import argparse

import torch
from _timing import bxh_shapes, interleaved, ratio_table

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", type=bxh_shapes("16x256,64x512"), default=[(16, 256), (64, 512)])
    parser.add_argument("--threads", default="1,2", help="comma list of thread counts")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    if not _cpp.available():
        raise SystemExit(f"the C++ kernel is unavailable here: {_cpp._failure}")
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
