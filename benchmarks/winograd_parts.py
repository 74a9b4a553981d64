"""The pieces of one time step of the Winograd ConvLSTM layer (``impl="winograd"``), each alone, interleaved in the
same rounds: the four tile transforms, the three channel products (by each route) and the C++ gate kernels.

At issue 21's shape (T=10, B=16, C=1, 64x64 frames, Hc=64: N = 4096 tiles, C + Hc = 65 input channels, G = 4 Hc = 256
gate channels) a step runs, forward: the input transform of [x_t, h_{t-1}] (B, 65, 64, 64) -> V (36, 65, N), the
products M = U V, the output transform M -> the pre-activations (B, G, 64, 64) with the bias, the gate kernel;
backward: the gate kernel's backward, the output transform's adjoint, the weight gradient's products dU += dM V^T,
the data gradient's products dV = U^T dM and the input transform's adjoint. The buffers are made once and reused
(the layer keeps its own across steps and calls: lstmkit/nn/_workspace.py), so the times hold no page faults.

    OMP_NUM_THREADS=1 python benchmarks/winograd_parts.py --threads 1

Prints the median time per call in ms and the effective memory rate of the transforms (bytes read and written once
each), with the machine's instruction sets and the extension's kernel path (``LSTMKIT_CPU_ISA`` picks another).
"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch
from _timing import interleaved, machine_description, median

from lstmkit.nn import _cpp, _winograd

SHAPE = dict(B=16, C=1, H=64, W=64, Hc=64)


def parts(B: int, C: int, H: int, W: int, Hc: int) -> tuple[dict[str, object], dict[str, float]]:
    """The candidates (name -> a call) and the bytes each transform moves (name -> bytes), on random data."""
    g = torch.Generator().manual_seed(0)
    G, Cin, N = 4 * Hc, C + Hc, _winograd.tiles(B, H, W)
    ext = _cpp._ext()
    xh = torch.randn(B, Cin, H, W, generator=g)  # [x_t, h_{t-1}]
    U = _winograd.filter_transform(torch.randn(G, Cin, 3, 3, generator=g) / (3 * Cin**0.5))  # (36, G, Cin)
    UT = U.transpose(1, 2).contiguous()
    bias = torch.randn(G, generator=g)
    V, dV = torch.empty(36, Cin, N), torch.randn(36, Cin, N, generator=g)
    M, dU = torch.randn(36, G, N, generator=g), torch.zeros(36, G, Cin)
    pre, dpre = torch.empty(B, G, H, W), torch.randn(B, G, H, W, generator=g)
    c_prev = torch.randn(B, Hc, H, W, generator=g)
    gates = torch.empty(B, G, H, W)
    c, tc, h = torch.empty_like(c_prev), torch.empty_like(c_prev), torch.empty_like(c_prev)
    ext.convlstm_pointwise_forward(torch.randn(B, G, H, W, generator=g), c_prev, gates, c, tc, h)
    dh, dc, da = torch.randn_like(c_prev), torch.randn_like(c_prev), torch.empty(B, G, H, W)
    dxh = torch.empty_like(xh)
    fns: dict[str, object] = {
        "input transform": lambda: _winograd.input_transform(xh, V),
        "output transform (+ bias)": lambda: _winograd.output_transform(M, bias, pre),
        "output transform's adjoint": lambda: _winograd.output_transform_adjoint(dpre, M),
        "input transform's adjoint": lambda: _winograd.input_transform_adjoint(dV, tuple(xh.shape), dxh),
        "gate kernel, forward": lambda: ext.convlstm_pointwise_forward(pre, c_prev, gates, c, tc, h),
        "gate kernel, backward": lambda: ext.convlstm_pointwise_backward(gates, tc, c_prev, dh, dc, da),
    }
    for route in _winograd.PRODUCTS:
        def by(fn, route=route):
            def run() -> None:
                with _winograd.products_by(route):
                    fn()
            return run

        fns[f"products, forward ({route})"] = by(lambda: _winograd.products(U, V, M))
        fns[f"products, weight gradient ({route})"] = by(lambda: _winograd.products(M, V.transpose(1, 2), dU,
                                                                                    accumulate=True))
        fns[f"products, data gradient ({route})"] = by(lambda: _winograd.products(UT, M, dV))
    f = 4  # bytes a float32
    moved = {"input transform": f * (xh.numel() + V.numel()),
             "output transform (+ bias)": f * (M.numel() + pre.numel()),
             "output transform's adjoint": f * (dpre.numel() + M.numel()),
             "input transform's adjoint": f * (dV.numel() + dxh.numel())}  # fmt: skip
    return fns, moved


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: all)")
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    ap.add_argument("--quick", action="store_true", help="a small shape (B=2, 16x16, Hc=8): a smoke run")
    args = ap.parse_args(argv)
    if not _cpp.available():
        raise SystemExit(f"the lstmkit C++ extension is unavailable here: {_cpp._failure}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    shape = dict(B=2, C=1, H=16, W=16, Hc=8) if args.quick else SHAPE
    fns, moved = parts(**shape)
    times = interleaved(fns, args.repeats, warmup=1, min_time=0.05)
    command = "python " + shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    print(f"Command: `{command}`\n\nMachine: {machine_description()}; torch threads {torch.get_num_threads()}; "
          f"extension kernels: {_cpp._ext().isa()}; {len(times[next(iter(times))])} interleaved rounds after a "
          f"warm-up round. Shape {shape}.\n")  # fmt: skip
    print("| part (one time step) | ms | GB/s (bytes in and out once) |")
    print("|---|---:|---:|")
    for name in fns:
        t = median(times[name])
        rate = f"{moved[name] / t / 1e9:.1f}" if name in moved else ""
        print(f"| {name} | {1000 * t:.1f} | {rate} |")


if __name__ == "__main__":
    main()
