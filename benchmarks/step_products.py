"""The per-step recurrent product on its own: which routine multiplies (B, P) by (P, G) fastest.

Times T = 100 repetitions of C (B, 4H) = h (B, H) @ W (H, 4H) (one thread, the product an LSTM step
makes, W fixed for all steps) through each routine the C++ kernel could call, in a small C++
extension built on the fly (about a minute, cached by torch):

- ``brgemm``: oneDNN's batch-reduce GEMM (``at::native::cpublas::brgemm``) reading W in place;
- ``panels16`` / ``panels32``: the same on W copied once into 16- or 32-column panels;
- ``mkl_packed``: MKL's ``cblas_sgemm_pack`` once, ``cblas_sgemm_compute`` per step;
- ``sgemm``: MKL's ``sgemm_`` per step;
- ``gemv``: a row-streaming loop (B = 1 only; the kernel's ``gemv_rows``), compiled for AVX2+FMA.

Prints GFLOP/s (2 B H 4H per product); each cell is the best of 5 timings.

    python benchmarks/step_products.py

With ``--kernel``, the products run through lstmkit's own C++ kernel instead (its ``step_product`` hook:
the ``StepGemm`` the scan uses, each path forced in turn, the panels 16 and 32 columns wide, ``gemv`` for one row
only, ``torch.mm`` beside them in the same rounds), at
the shapes given as M x K x N: the forward's (B, H) x (H, 4H) and the backward's dL/dh product
(B, 4H) x (4H, H), where panels run K above 1024 in blocks of 512 rows:

    python benchmarks/step_products.py --kernel --shapes 64x1024x4096,64x4096x1024,16x4096x1024
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from _timing import machine_description
from torch.utils.cpp_extension import load_inline

SOURCE = r"""
#include <ATen/ATen.h>
#include <ATen/native/CPUBlas.h>
#include <chrono>
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*);
size_t cblas_sgemm_pack_get_size(int, int, int, int);
void cblas_sgemm_pack(int, int, int, int, int, int, float, const float*, int, float*);
void cblas_sgemm_compute(int, int, int, int, int, int, const float*, int, const float*, int, float, float*, int);
}
__attribute__((target("avx2,fma"))) void gemv_rows(int K, int N, const float* h, const float* W, float* y) {
  for (int n = 0; n < N; ++n) y[n] = 0.f;
  int k = 0;
  for (; k + 4 <= K; k += 4) {
    const float a0 = h[k], a1 = h[k + 1], a2 = h[k + 2], a3 = h[k + 3];
    const float *__restrict w0 = W + (size_t)k * N, *__restrict w1 = w0 + N, *__restrict w2 = w1 + N,
                *__restrict w3 = w2 + N;
    float* __restrict out = y;
    for (int n = 0; n < N; ++n) out[n] += a0 * w0[n] + a1 * w1[n] + a2 * w2[n] + a3 * w3[n];
  }
  for (; k < K; ++k)
    for (int n = 0; n < N; ++n) y[n] += h[k] * W[(size_t)k * N + n];
}
double bench(int64_t mode, int64_t B, int64_t H) {
  const int G = 4 * H, P = H, T = 100;
  auto h = at::randn({B, P}), w = at::randn({P, G}), c = at::empty({B, G});
  float *hp = h.data_ptr<float>(), *wp = w.data_ptr<float>(), *cp = c.data_ptr<float>();
  std::vector<float> buf;
  const int nb = mode == 1 ? 16 : 32;
  if (mode == 1 || mode == 2) {
    buf.resize((size_t)G * P);
    for (int n0 = 0, j = 0; n0 < G; n0 += nb, ++j)
      for (int k = 0; k < P; ++k)
        for (int i = 0; i < nb; ++i) buf[(size_t)j * P * nb + (size_t)k * nb + i] = wp[(size_t)k * G + n0 + i];
  }
  if (mode == 3) {
    buf.resize(cblas_sgemm_pack_get_size(162, B, G, P) / 4 + 16);
    cblas_sgemm_pack(101, 162, 111, B, G, P, 1.0f, wp, G, buf.data());
  }
  auto run = [&]() {
    for (int t = 0; t < T; ++t) {
      if (mode == 0) {
        at::native::cpublas::brgemm(B, G, P, P, G, G, false, hp, wp, cp, false);
      } else if (mode == 1 || mode == 2) {
        for (int n0 = 0, j = 0; n0 < G; n0 += nb, ++j)
          at::native::cpublas::brgemm(B, nb, P, P, nb, G, false, hp, buf.data() + (size_t)j * P * nb, cp + n0, false);
      } else if (mode == 3) {
        cblas_sgemm_compute(101, 111, 151, B, G, P, hp, P, buf.data(), G, 0.0f, cp, G);
      } else if (mode == 4) {
        const char n = 'N'; int m = G, nn = B, k = P; float one = 1, zero = 0;
        sgemm_(&n, &n, &m, &nn, &k, &one, wp, &m, hp, &k, &zero, cp, &m);
      } else {
        gemv_rows(P, G, hp, wp, cp);
      }
    }
  };
  run();
  double best = 1e9;
  for (int r = 0; r < 5; ++r) {
    auto s = std::chrono::steady_clock::now();
    run();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count());
  }
  return 2.0 * T * B * P * G / best / 1e9;
}
"""

MODES = ["brgemm", "panels16", "panels32", "mkl_packed", "sgemm", "gemv"]


def kernel_table(shapes: list[tuple[int, int, int]], rounds: int = 5, steps: int = 20) -> None:
    """GFLOP/s of lstmkit's own per-step product paths (best of ``rounds`` interleaved rounds)."""
    from lstmkit.nn import _cpp

    _cpp._ext()
    ext = _cpp._module
    # (column, gemm mode, panel width: 0 = the kernel's rule)
    paths = [("brgemm", "brgemm", 0), ("panels 16", "panels", 16), ("panels 32", "panels", 32), ("packed", "packed", 0),
             ("blas", "blas", 0), ("gemv", "gemv", 0)]  # fmt: skip
    paths = [p for p in paths if p[1] != "packed" or _try_mode(ext, "packed")]
    modes = [p[0] for p in paths]
    print(f"lstmkit kernel, instruction set {ext.isa()}, CPU vendor check {ext.cpu_vendor()}; {steps} steps per "
          f"timing, best of {rounds} rounds. Panel width by the kernel's rule at M = 16: {ext.panel_width(16)}.\n")
    print("| M x K x N | " + " | ".join(modes) + " | torch.mm |")
    print("|---|" + "---:|" * (len(modes) + 1))
    before = ext.gemm()
    for M, K, N in shapes:
        a, w = torch.randn(M, K), torch.randn(K, N)
        best = dict.fromkeys([*modes, "mm"], 0.0)
        flop = 2.0 * M * K * N * steps
        for _ in range(rounds):
            for m, mode, width in paths:
                if m == "gemv" and M != 1:  # one batch row only (forced, it runs panels otherwise)
                    continue
                ext.set_gemm(mode)
                ext.set_panel_width(width)
                try:
                    best[m] = max(best[m], flop / ext.step_product(a, w, steps)[1] / 1e9)
                finally:
                    ext.set_panel_width(0)
            c = torch.empty(M, N)
            t0 = time.perf_counter()
            for _ in range(steps):
                torch.mm(a, w, out=c)
            best["mm"] = max(best["mm"], flop / (time.perf_counter() - t0) / 1e9)
        ext.set_gemm(before)
        cells = ["–" if m == "gemv" and M != 1 else f"{best[m]:.0f}" for m in [*modes, "mm"]]
        print(f"| {M} x {K} x {N} | " + " | ".join(cells) + " |", flush=True)


def _try_mode(ext, mode: str) -> bool:
    before = ext.gemm()
    try:
        ext.set_gemm(mode)
        return True
    except RuntimeError:
        return False
    finally:
        ext.set_gemm(before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kernel", action="store_true", help="time lstmkit's own StepGemm paths")
    parser.add_argument("--shapes", default="64x1024x4096,64x4096x1024,16x1024x4096,16x4096x1024",
                        help="with --kernel: comma list of MxKxN")
    args = parser.parse_args()
    if args.kernel:
        torch.set_num_threads(1)
        print(f"Command: `python {' '.join(sys.argv)}`\n\nMachine: {machine_description()}. One thread.\n")
        try:
            shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
        except ValueError:
            parser.error(f"--shapes must be a comma list of MxKxN, got {args.shapes!r}")
        if any(len(s) != 3 or min(s) < 1 for s in shapes):
            parser.error(f"--shapes must be a comma list of MxKxN with sizes >= 1, got {args.shapes!r}")
        kernel_table(shapes)
        return
    ext = load_inline("lstmkit_step_products", cpp_sources=SOURCE, functions=["bench"], extra_cflags=["-O3"])
    torch.set_num_threads(1)
    print(f"Command: `python {' '.join(sys.argv)}`\n\nMachine: {machine_description()}. One thread.\n")
    print("| H | B | " + " | ".join(MODES) + " |")
    print("|---:|---:|" + "---:|" * len(MODES))
    for H in (128, 256, 512, 1024):
        for B in (1, 4, 16, 64):
            cells = [f"{ext.bench(i, B, H):.0f}" if (m != "gemv" or B == 1) else "–" for i, m in enumerate(MODES)]
            print(f"| {H} | {B} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
