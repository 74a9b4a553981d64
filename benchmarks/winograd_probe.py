"""Would Winograd's F(4x4, 3x3) make the ConvLSTM's recurrent convolution pay? A probe, not a layer.

The ConvLSTM speed analysis (docs/benchmarks.md) bounds any direct-convolution arrangement at 1.45x the naive
layer, because every one runs the same FLOPs near the matrix-product peak. Winograd's minimal filtering
(Lavin and Gray 2016) is the one known way to run fewer: F(4x4, 3x3) computes each 4x4 output tile from a
6x6 input tile with 36 products per channel pair instead of 144 (4x fewer). This probe writes it with torch
operations (tile extraction by ``unfold``, the input, filter and output transforms by ``einsum``, the 36
channel products by one ``bmm``; autograd gives the backward, whose products are ``bmm`` again) and times it,
forward and forward + backward, against one ``F.conv2d`` of the same shape, interleaved in the same rounds,
beside the ``bmm`` of the 36 products alone.

    OMP_NUM_THREADS=1 python benchmarks/winograd_probe.py --threads 1    # about a minute on an idle core

It first checks the transform against ``F.conv2d`` in float64 (the matrices are exact), then prints the
float32 difference beside the largest output, and the times.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
from _timing import interleaved, machine_description
from torch import Tensor

# Lavin and Gray's F(4x4, 3x3) matrices: input transform B^T (6x6), filter transform G (6x3), output A^T (4x6).
BT = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0],
      [0, 4, 0, -5, 0, 1]]  # fmt: skip
G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
     [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]  # fmt: skip
AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]


def winograd_conv(x: Tensor, w: Tensor) -> Tensor:
    """Same-padded 3x3 convolution of x (B, C, H, W) by w (K, C, 3, 3) as F(4x4, 3x3): (B, K, H, W)."""
    B, C, H, W = x.shape
    K = w.shape[0]
    th, tw = -(-H // 4), -(-W // 4)  # output tiles down and across
    bt, g, at = (torch.tensor(m, dtype=x.dtype) for m in (BT, G, AT))
    d = F.pad(x, (1, 1 + 4 * tw - W, 1, 1 + 4 * th - H)).unfold(2, 6, 4).unfold(3, 6, 4)  # (B, C, th, tw, 6, 6)
    v = torch.einsum("ai,nctwij,bj->abntwc", bt, d, bt).reshape(36, B * th * tw, C)
    u = torch.einsum("ai,kcij,bj->abck", g, w, g).reshape(36, C, K)
    m = torch.bmm(v, u).reshape(6, 6, B, th, tw, K)  # the 36 channel products
    y = torch.einsum("pa,abntwk,qb->nktpwq", at, m, at).reshape(B, K, 4 * th, 4 * tw)
    return y[:, :, :H, :W]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--channels", type=int, default=65, help="C + Hc: the input frame and the hidden state")
    p.add_argument("--out-channels", type=int, default=256, help="4 Hc: the four gates")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x64, w64 = torch.randn(2, 5, 9, 11, dtype=torch.float64), torch.randn(7, 5, 3, 3, dtype=torch.float64)
    err64 = (winograd_conv(x64, w64) - F.conv2d(x64, w64, padding=1)).abs().max().item()
    assert err64 < 1e-10, f"the transform is wrong: float64 difference {err64}"
    B, C, K, S = a.batch, a.channels, a.out_channels, a.size
    x = torch.randn(B, C, S, S, requires_grad=True)
    w = (torch.randn(K, C, 3, 3) / (3 * C**0.5)).requires_grad_()
    ref = F.conv2d(x, w, padding=1)
    diff = (winograd_conv(x, w) - ref).abs().max().item()
    v, u = torch.randn(36, B * (S // 4) ** 2, C), torch.randn(36, C, K)

    def train(f):
        return lambda: f(x, w).sum().backward()

    direct = lambda a_, b_: F.conv2d(a_, b_, padding=1)  # noqa: E731
    with torch.no_grad():
        fwd = interleaved({"direct": lambda: direct(x, w), "winograd": lambda: winograd_conv(x, w),
                           "bmm of the 36 products": lambda: torch.bmm(v, u)}, a.repeats)  # fmt: skip
    trn = interleaved({"direct": train(direct), "winograd": train(winograd_conv)}, a.repeats)
    flops = 2 * B * S * S * C * K * 9
    print(f"{machine_description()}, {a.threads} thread(s), torch {torch.__version__}")
    print(f"shape: B={B}, {C}->{K} channels, {S}x{S}, 3x3; direct-convolution FLOPs {flops / 1e9:.1f} G")
    print(f"float64 check {err64:.1e}; float32 max difference {diff:.2e} (largest output {ref.abs().max():.2f})")
    print("| part | direct ms | winograd ms | winograd / direct |")
    print("|---|---:|---:|---:|")
    for name, t in (("forward", fwd), ("forward + backward", trn)):
        d_, w_ = statistics.median(t["direct"]), statistics.median(t["winograd"])
        ratio = statistics.median(b / a for a, b in zip(t["direct"], t["winograd"], strict=True))
        print(f"| {name} | {1e3 * d_:.0f} | {1e3 * w_:.0f} | {ratio:.2f} |")
    mm = statistics.median(fwd["bmm of the 36 products"])
    print(f"bmm of the 36 products alone: {1e3 * mm:.0f} ms, {flops / 4 / mm / 1e9:.0f} GFLOP/s; "
          f"direct convolution {flops / statistics.median(fwd['direct']) / 1e9:.0f} GFLOP/s")  # fmt: skip


if __name__ == "__main__":
    main()
