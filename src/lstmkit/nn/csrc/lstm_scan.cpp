// C++ time loops for the fused LSTM recurrence: the same math and the same saved tensors as
// lstmkit/nn/_fused.py (lstm_scan_forward / lstm_scan_backward), without Python in the loop.
//
// Per step the forward does one recurrent matrix product into a reused buffer and then ONE pointwise
// pass (lstm_scan_pointwise.h) for all the gate math; with a projection, one more product. The
// backward walks time in reverse: one pointwise pass and one product (dL/dh = dr W_hh) per step;
// the weight gradients are whole-sequence products after the loop, and the peephole / LayerNorm-gain
// gradients are summed during it. Threads split each step by hidden units (see "work split").
//
// Shapes: T time, B batch, H hidden, P recurrent output (P = H without projection), G = 3H or 4H.
// Built by lstmkit/nn/_cpp.py with torch.utils.cpp_extension.load; float32 and float64, CPU only.

// ATen and torch's pybind11 glue only, not <torch/extension.h>: half the compile time.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/CPUBlas.h>
#include <ATen/native/quantized/PackedParams.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#define LK_INLINE inline __attribute__((always_inline))
#define LK_INLINE_LAMBDA __attribute__((always_inline))

namespace lstmkit {

using at::Tensor;

// Pointers of one step, already offset to step t; a nullptr means "absent" (see the kernels).
template <typename T>
struct FwdArgs {
  const T* xg;      // (B, G) input-side pre-activations
  const T* r;       // (B, G) recurrent product W_hh h_in
  T* act;           // (B, G) out: gate activations i, [f,] g, o
  const T* c_prev;  // (B, H)
  T* c_new;         // (B, H) out
  T* tc;            // (B, H) out: tanh of the (normalised) cell
  T* h;             // (B, H) out: o * tc, before projection and mask
  T* rhat;          // (B, G) out, LayerNorm only
  T* rrstd;         // (B,)   out, LayerNorm only
  T* chat;          // (B, H) out, LayerNorm only
  T* crstd;         // (B,)   out, LayerNorm only
  const T* p_i;
  const T* p_f;
  const T* p_o;
  const T* g_hh;
  const T* g_c;
  const T* b_c;
  const bool* mask;  // (B,) this step's length mask, or nullptr
  // Inference only: the input side finished by the kernel, xg being W_ih x_t without the biases.
  // b_x: the summed biases b_ih + b_hh (G,). With LayerNorm (g_ih set) xg_own is xg, writable, normalised
  // in place with gain g_ih and then b_x added (b_x may be nullptr); without LayerNorm every inference step
  // adds b_x to its pre-activations (never nullptr there: zeros for a layer without biases).
  T* xg_own;
  const T* g_ih;
  const T* b_x;
  // Zoneout of the cell: c_t = (1 - z) c~_t + z c_{t-1}, z this step's (B, H) weights, or nullptr; c_raw (B, H)
  // out: c~_t before it (training with peepholes: the output gate's peephole saw c~_t), or nullptr.
  const T* zc;
  T* c_raw;
  int64_t H, G;
  T eps;
};

template <typename T>
struct PostArgs {
  T* y;             // (B, P) in: this step's output; out: zeroed past the end
  const T* h_prev;  // (B, P) carried state before the step (mask only)
  T* h_new;         // (B, P) out: carried state (mask only; else the state is y)
  const T* drop;    // (B, P) recurrent-dropout mask, or nullptr
  T* h_in_next;     // (B, P) out: h_new * drop (drop only)
  const bool* mask;
  const T* zh;      // (B, P) zoneout weights of h: y = (1 - z) y + z h_prev (h_prev then set), or nullptr
  int64_t P;
};

template <typename T>
struct BwdPreArgs {
  T* dh;                 // (B, P) carried dL/dh
  const T* dhg;          // (B, P) dr_{t+1} W_hh still to fold into dh, or nullptr
  const bool* mask_next; // (B,) mask of step t+1 (for that fold), or nullptr
  const T* drop;
  T* dst;                // (B, P) out: dL/dh_new of step t, or nullptr (fold only)
  const T* dy;           // (B, P) dL/dy_t, or nullptr (zero)
  const bool* mask;      // (B,) mask of step t, or nullptr
  const T* zh;           // (B, P) zoneout weights of h at step t, or nullptr
  bool accumulate;       // zoneout: dh holds z dL/dh of the later step, which the fold adds to (else overwrites)
  int64_t P;
};

template <typename T>
struct BwdArgs {
  const T* act;
  const T* tc;
  const T* c_prev;  // c_{t-1}
  const T* c_new;   // c_t (for the output gate's peephole)
  const T* dhn;     // (B, H) dL/d(o * tc)
  T* dc;            // (B, H) in: dL/dc_t, out: dL/dc_{t-1}
  T* da;            // (B, G) out: dL/d(pre-activations) = dL/dxg_t
  T* dr;            // (B, G) out: dL/d(W_hh h_in) (LayerNorm only; else it is da)
  const T* rhat;
  const T* rrstd;
  const T* chat;
  const T* crstd;
  const T* p_i;
  const T* p_f;
  const T* p_o;
  const T* g_hh;
  const T* g_c;
  const bool* mask;
  const T* zc;      // (B, H) zoneout weights of c at step t, or nullptr (c_new is then c~_t where it differs)
  int64_t H, G;
};

}  // namespace lstmkit

// One copy of the kernels per instruction set (see the header). GCC only: other compilers get the
// portable copy, which is correct everywhere, just slower.
#define LSTMKIT_NS lstmkit::generic
#define LSTMKIT_WINO_LANES 8
#include "lstm_scan_pointwise.h"
#include "winograd_transforms.h"
#undef LSTMKIT_NS

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define LSTMKIT_X86_VARIANTS 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define LSTMKIT_NS lstmkit::avx2
#include "lstm_scan_pointwise.h"
#include "winograd_transforms.h"
#undef LSTMKIT_NS
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")
#define LSTMKIT_NS lstmkit::avx512
#undef LSTMKIT_WINO_LANES
#define LSTMKIT_WINO_LANES 16
#include "lstm_scan_pointwise.h"
#include "winograd_transforms.h"
#undef LSTMKIT_NS
#pragma GCC pop_options
#endif

// BLAS. The x86-64 Linux torch wheels export MKL's Fortran sgemm_/dgemm_; calling them directly
// skips ATen's per-call dispatch, which matters at small batch where a step is a few microseconds.
// Declared weak: where the symbols are absent they are null and at::mm_out is used instead.
extern "C" {
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc) __attribute__((weak));
void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc) __attribute__((weak));
// MKL's packed GEMM (also exported by those wheels): the constant operand of a product is packed once
// into the micro-kernel's layout and reused for every step, as oneDNN's own RNN primitive does.
// Layout 101 = row-major, identifier 162 = the B matrix, trans 111 = no transpose, 151 = packed.
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha, const float* src,
                      int ld, float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc) __attribute__((weak));
}

namespace lstmkit {

enum class Isa { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

Isa detect_isa() {
#ifdef LSTMKIT_X86_VARIANTS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kGeneric;
}

Isa g_isa = detect_isa();

// MKL chooses its kernels by CPU vendor (slower ones on this AMD CPU, below), and AMD's caches differ from the
// Intel ones the rules below were first measured on.
bool amd_cpu() {
#ifdef LSTMKIT_X86_VARIANTS
  __builtin_cpu_init();
  return __builtin_cpu_is("amd");
#else
  return false;
#endif
}
const bool g_amd = amd_cpu();

// The CPU's family (cpuid leaf 1: base family, plus the extended family when the base is 15): AMD's Zen 4 is 25,
// Zen 5 26. Zen 5 runs 512-bit vectors at full width, Zen 4 as two 256-bit halves: there brgemm's AVX-512 code
// runs twice as fast as the AVX2 code MKL picks on AMD CPUs (session 39), on Zen 4 at about the same speed.
int cpu_family() {
#ifdef LSTMKIT_X86_VARIANTS
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
  const int base = (eax >> 8) & 0xf;
  return base == 0xf ? base + ((eax >> 20) & 0xff) : base;
#else
  return 0;
#endif
}
const bool g_amd_full512 = g_amd && cpu_family() >= 26;

bool direct_blas_available() { return sgemm_ != nullptr && dgemm_ != nullptr; }

bool packed_blas_available() {
  return cblas_sgemm_pack_get_size != nullptr && cblas_sgemm_pack != nullptr && cblas_sgemm_compute != nullptr;
}

// How the per-step matrix products run (the whole-sequence weight-gradient products, and all of float64,
// always use BLAS directly, or at::mm_out where its symbols are missing):
//   kBrgemm  oneDNN's batch-reduce GEMM micro-kernel (at::native::cpublas::brgemm, the kernel behind
//            torch's own fused CPU code) reading W in place; fastest at every shape measured on AVX-512.
//            On AVX2 it runs at a third of BLAS's speed once K >= 256 (docs/benchmarks.md, "Why AVX2
//            was slow"): each of the K rows it reads is a whole W row (G floats) away from the last.
//   kPanels  the same micro-kernel on W copied once per call into column panels of 16 or 32 columns,
//            each panel's K rows contiguous: the rows it reads are adjacent.
//   kPacked  MKL's packed GEMM: W packed once per call into MKL's own layout, reused by every step.
//   kGemv    one batch row: gemv_rows (lstm_scan_pointwise.h) streams W's rows through the output.
//   kBlas    sgemm_/dgemm_ per step.   kAten  at::mm_out per step (a test hook).
//   kAuto    per product, by instruction set, batch rows M, K and the number of steps (choose_gemm).
enum class GemmMode { kAuto = 0, kBrgemm = 1, kPanels = 2, kPacked = 3, kBlas = 4, kAten = 5, kGemv = 6 };
GemmMode g_gemm = GemmMode::kAuto;

// Row-major C (M, N) = op(A) (M, K) @ op(B) (K, N) + beta * C, leading dimensions in elements.
template <typename T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* Bm, int64_t ldb,
          T beta, T* C, int64_t ldc, bool aten = false) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) C[m * ldc + n] = beta == T(0) ? T(0) : beta * C[m * ldc + n];
    return;
  }
  if (!aten && g_gemm != GemmMode::kAten && direct_blas_available()) {
    // Row-major C = A B is column-major C^T = B^T A^T: swap the operands, keep the flags.
    const char cta = ta ? 'T' : 'N', ctb = tb ? 'T' : 'N';
    const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
    const int ia = static_cast<int>(ldb), ib = static_cast<int>(lda), ic = static_cast<int>(ldc);
    const T one = 1;
    if constexpr (std::is_same_v<T, float>) {
      sgemm_(&ctb, &cta, &m, &n, &k, &one, Bm, &ia, A, &ib, &beta, C, &ic);
    } else {
      dgemm_(&ctb, &cta, &m, &n, &k, &one, Bm, &ia, A, &ib, &beta, C, &ic);
    }
    return;
  }
  const auto opt = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  auto view = [&](const T* p, bool trans, int64_t rows, int64_t cols, int64_t ld) {
    return trans ? at::from_blob(const_cast<T*>(p), {cols, rows}, {ld, 1}, opt).t()
                 : at::from_blob(const_cast<T*>(p), {rows, cols}, {ld, 1}, opt);
  };
  Tensor a = view(A, ta, M, K, lda), b = view(Bm, tb, K, N, ldb);
  Tensor c = at::from_blob(C, {M, N}, {ldc, 1}, opt);
  if (beta == T(0)) {
    at::mm_out(c, a, b);
  } else {
    c.addmm_(a, b, beta, 1);
  }
}

// Packing costs about one step's product; below this many steps it does not pay for itself.
constexpr int64_t kMinPackedSteps = 4;
// One row's packed gate blocks (step_gemms_row): the copy reads and writes W once, a step's product reads it once.
constexpr int64_t kMinRowBlockSteps = 8;
// Panels: inner dimensions above kPanelMaxK run in blocks of kPanelBlockK rows (StepGemm::run).
constexpr int64_t kPanelMaxK = 1024, kPanelBlockK = 512;
// Inner dimensions up to this read W fast enough in place (AVX2, one batch row).
constexpr int64_t kBrgemmMaxK = 128;
// The same on AVX-512 (session 22's Xeon: in place at K = 256 as fast as panels, at K >= 512 half their speed).
constexpr int64_t kBrgemmMaxKAvx512 = 256;
// On AMD's AVX-512 CPUs in place stays as fast to K = 512 below 16 rows (session 32's EPYC,
// benchmarks/step_products.py --kernel: 52-111 GFLOP/s against the panels' 46-111 at M = 2-16, 4-16 x 512 x
// 1536-2048) and saves copying W; at K = 1024 the panels win (86-99 against 64-88). From 16 rows the panels (32 wide,
// below) win above K = 256 there too, in whole forwards (session 33's EPYC, one thread, benchmarks/input_side.py
// --step, x native: B16H512 1.027 on panels against 1.039 in place, B64H512 0.985 against 1.004, but B4H512 1.013
// against 0.990). With too few steps to pay for packing, in place to K = 512 at any row count.
constexpr int64_t kBrgemmMaxKAvx512Amd = 512;
constexpr int64_t kAmdPanelRows = 16;
// On Zen 5 (g_amd_full512) in place only up to K = 128, panels above at every row count: session 39's EPYC (family
// 26), whole inference forwards x native, one thread (benchmarks/input_side.py --step), in place against 32-wide
// panels: K = 256 at 2, 4, 16, 64 rows 0.88 / 0.68, 0.99 / 0.88, 1.15 / 0.99, 1.16 / 0.99; K = 512 at 4 rows
// 0.88 / 0.85; K = 128 at 4 and 16 rows 0.89 / 0.99 and 0.98 / 0.99 (in place the faster).
constexpr int64_t kBrgemmMaxKZen5 = 128;

// Panel width (columns a panel holds, StepGemm's kPanels): 16 for up to 16 rows, else 32 (the rule before
// session 33). On AMD's AVX-512 CPUs 32 at every row count: session 33's EPYC ran (16, 512) x (512, 2048)
// at 113 GFLOP/s on 32-wide panels against 109 on 16-wide ones, (4, 1024) x (1024, 4096) at 96 against 83 and the
// backward's (16, 2048) x (2048, 512) at 112 against 53 (benchmarks/step_products.py --kernel, docs/benchmarks.md).
// A test hook (set_panel_width) forces 16 or 32; 0 is this rule.
int64_t g_panel_width = 0;
int64_t panel_width(int64_t M) {
  if (g_panel_width > 0) return g_panel_width;
  return M <= 16 && !(g_amd && g_isa == Isa::kAvx512) ? 16 : 32;
}

// The matrix-product path of one per-step product, C (M, N) = A (M, K) @ W (K, N), run `steps` times.
// Measured on AVX2 (docs/benchmarks.md): with one row, gemv_rows (2x MKL's sgemm / sgemv / packed
// GEMM at H = 128 and 512); with several rows, brgemm on panels once there are enough steps to pay for
// copying W, else brgemm in place up to K = 128 and BLAS above. AVX-512 (benchmarks/step_products.py --kernel,
// session 22): gemv_rows for one row too (90 GFLOP/s against brgemm's 77 at 1 x 128 x 512, level from K = 512,
// where reading W bounds every path); for several, brgemm in place up to K = 256 (512 on AMD below 16 rows; 2x the
// panels' speed at 4 x 128 x 512), above it panels once there are enough steps, else BLAS: in place, W's rows 4H
// floats apart (a multiple of 4 KiB) share the L1 cache's sets there too, and it ran at 36-74 GFLOP/s where panels
// ran at 102-167 (session 10's AVX-512 CPU had found brgemm in place the fastest everywhere).
template <typename T>
GemmMode choose_gemm(int64_t M, int64_t K, int64_t steps) {
  if constexpr (!std::is_same_v<T, float>) {
    return g_gemm == GemmMode::kAten ? GemmMode::kAten : GemmMode::kBlas;
  } else {
    const bool blas = direct_blas_available(), packed = packed_blas_available();
    switch (g_gemm) {
      case GemmMode::kAten: return GemmMode::kAten;
      case GemmMode::kBlas: return blas ? GemmMode::kBlas : GemmMode::kAten;
      case GemmMode::kPacked: return packed ? GemmMode::kPacked : GemmMode::kPanels;
      case GemmMode::kPanels: return GemmMode::kPanels;
      case GemmMode::kGemv: return M == 1 ? GemmMode::kGemv : GemmMode::kPanels;
      case GemmMode::kBrgemm: return GemmMode::kBrgemm;
      default: break;
    }
    if (K == 0) return GemmMode::kBlas;  // gemm() writes the zeros
    if (M == 1) return GemmMode::kGemv;
    if (g_isa == Isa::kAvx512) {
      const int64_t in_place = g_amd_full512              ? kBrgemmMaxKZen5
                               : g_amd && M < kAmdPanelRows ? kBrgemmMaxKAvx512Amd
                                                            : kBrgemmMaxKAvx512;
      if (K <= in_place) return GemmMode::kBrgemm;
      if (steps < kMinPackedSteps) {
        return (g_amd && K <= kBrgemmMaxKAvx512Amd) || !blas ? GemmMode::kBrgemm : GemmMode::kBlas;
      }
      return GemmMode::kPanels;
    }
    if (steps < kMinPackedSteps) return (K <= kBrgemmMaxK || !blas) ? GemmMode::kBrgemm : GemmMode::kBlas;
    (void)packed;  // kPacked: measured, never the fastest on AVX2 once kGemv and kPanels exist
    return GemmMode::kPanels;
  }
}

using GemvFn = void (*)(int64_t, int64_t, const float*, const float*, int64_t, float*);
GemvFn pick_gemv() {
#ifdef LSTMKIT_X86_VARIANTS
  if (g_isa == Isa::kAvx512) return &avx512::gemv_rows;
  if (g_isa == Isa::kAvx2) return &avx2::gemv_rows;
#endif
  return &generic::gemv_rows;
}

// The input side's product in inference, (k B, I) @ W_ih^T (I, G) for a chunk of k steps (forward_impl): MKL's
// sgemm by default; on AMD CPUs with AVX-512, brgemm on panels of W_ih, packed once per call, where the T B
// rows pay for the packing. MKL chooses its kernels by CPU vendor: at 400-1,600 rows x 512 x 2048, one thread,
// session 32's AMD EPYC measured sgemm at 100 GFLOP/s and the panels at 111-114, i.e. about 2.3 ps saved per
// row and element of W_ih, where packing cost 0.04-0.05 ms at 1 MB of W_ih (H = I = 256), 0.55-0.83 ms at 4 MB and
// 2.2-4.1 ms at 16 MB (benchmarks/input_side.py at T = B = 1, two runs): it pays from about 70-90, 230-350 and
// 230-430 rows.

// A test hook (set_input_gemm) forces the input side alone; else the per-step hook's panels, BLAS and ATen
// apply here too, and its other modes leave the choice to the rule.
GemmMode g_input_gemm = GemmMode::kAuto;
// T B rows from which packing W_ih pays (see above), rounded up: 128 where W_ih fits 1 MB, 256 where it fits 4 MB,
// else 512. (Interleaved whole forwards had the panels faster at 400 rows and 4 MB on all three runs, 1-12%.)
// On Zen 5 (full-width AVX-512: the panels at 2x MKL's speed) from 16 rows up to 4 MB, 32 up to 16 MB, else 512:
// session 39's EPYC (family 26), whole forwards at B = 1, one thread, x native (benchmarks/input_side.py), panels
// against BLAS: H = 1024 (16 MB) at 16, 32, 64, 100 rows 1.08 / 0.87, 0.92 / 1.09, 1.02 / 1.06, 0.96 / 1.14; H = 2048
// (64 MB) at 32 rows 1.005 / 0.825; up to 4 MB at 8 rows 0.92 / 0.98 (H = 256), at 16 rows 0.94 / 1.02 (128),
// 0.96 / 1.02 (256), 0.80 / 0.87 (512), at 100 rows 0.94 / 1.07 (512; at 32 rows 0.75 / 0.66, quartiles 0.6-1.1).
int64_t input_panel_rows(int64_t w_bytes) {
  if (g_amd_full512 && w_bytes <= (16 << 20)) return w_bytes <= (4 << 20) ? 16 : 32;
  return w_bytes <= (1 << 20) ? 128 : w_bytes <= (4 << 20) ? 256 : 512;
}

template <typename T>
GemmMode choose_input_gemm(int64_t rows, int64_t w_elements) {
  GemmMode want = g_input_gemm != GemmMode::kAuto ? g_input_gemm : g_gemm;
  if (want != GemmMode::kPanels && want != GemmMode::kBlas && want != GemmMode::kAten) want = GemmMode::kAuto;
  if constexpr (!std::is_same_v<T, float>) {
    return want == GemmMode::kAten ? GemmMode::kAten : GemmMode::kBlas;
  } else {
    if (want != GemmMode::kAuto) return want;
    const int64_t enough = input_panel_rows(w_elements * int64_t(sizeof(float)));
    return g_isa == Isa::kAvx512 && g_amd && rows >= enough ? GemmMode::kPanels : GemmMode::kBlas;
  }
}

// The whole-sequence products of training (the input side W_ih x for every step, its gradients dx = dxg W_ih and
// dW_ih = dxg^T x, and the recurrent weight gradients dW_hh = dr^T h, dW_hr): BLAS by default (sgemm_, or ATen's mm
// from Python); on AMD CPUs with AVX-512, brgemm on panels (plane_products, all threads). MKL chooses its kernels by
// CPU vendor: session 39's AMD EPYC ran (1,600 x 256) x (256 x 1,024), (1,600 x 1,024) x (1,024 x 256) and
// (256 x 1,600) x (1,600 x 1,024) at 104-111 GFLOP/s one thread and 203-231 two with MKL, at 226-258 and 432-506 on
// panels (6,400 rows at H = I = 512: 98-111 and 189-227 against 198-231 and 353-411).
// A test hook (set_whole_gemm) forces panels or BLAS on any CPU; float64 always runs on BLAS.
GemmMode g_whole_gemm = GemmMode::kAuto;

bool whole_on_panels() {
  if (g_whole_gemm != GemmMode::kAuto) return g_whole_gemm == GemmMode::kPanels;
  return g_isa == Isa::kAvx512 && g_amd;
}

template <typename T>
void transpose_scalar(const T* src, int64_t lds, int64_t rows, int64_t cols, T* dst, int64_t ldd) {
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r) dst[c * ldd + r] = src[r * lds + c];
}

#ifdef LSTMKIT_X86_VARIANTS
// dst (16 rows, leading dimension ldd) = the transpose of the 16 x 16 tile at src (leading dimension lds).
__attribute__((target("avx512f"))) void transpose16x16(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 16; i += 2) {  // pairs of rows interleaved
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // r[i + c], 128-bit lane L: column 4 L + c of rows i .. i + 3
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 16; i += 8) {  // lanes of rows i .. i + 3 and i + 4 .. i + 7 paired
    for (int j = 0; j < 4; ++j) {
      t[i + j] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0x88);
      t[i + j + 4] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0xDD);
    }
  }
  for (int j = 0; j < 8; ++j) {  // r[k]: column k of all 16 rows
    r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
    r[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xDD);
  }
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * ldd, r[i]);
}
#endif

template <typename T>
void transpose_into(const T* src, int64_t lds, int64_t rows, int64_t cols, T* dst, int64_t ldd) {
  int64_t r16 = 0, c16 = 0;
#ifdef LSTMKIT_X86_VARIANTS
  if constexpr (std::is_same_v<T, float>) {
    if (g_isa == Isa::kAvx512) {  // whole tiles; the edges below
      r16 = rows / 16 * 16;
      c16 = cols / 16 * 16;
      for (int64_t r0 = 0; r0 < r16; r0 += 16)
        for (int64_t c0 = 0; c0 < c16; c0 += 16) transpose16x16(src + r0 * lds + c0, lds, dst + c0 * ldd + r0, ldd);
    }
  }
#endif
  transpose_scalar(src + c16, lds, r16, cols - c16, dst + c16 * ldd, ldd);  // the tiled rows' last columns
  transpose_scalar(src + r16 * lds, lds, rows - r16, cols, dst + r16, ldd);  // the rows left
}

// f(b0, b1) over blocks [0, n) of a copy of `elements` elements: split across the threads when the copy is large
// enough to pay for waking them (as torch's own copies are) and no parallel region is running.
template <typename F>
void copy_blocks(int64_t n, int64_t elements, const F& f) {
  if (n > 1 && elements >= (int64_t(1) << 18) && at::get_num_threads() > 1 && !at::in_parallel_region()) {
    at::parallel_for(0, n, 1, f);
  } else {
    f(0, n);
  }
}

// w (R, C) -> its transpose (C, R), contiguous; blocks of 16 rows of w split across the threads.
template <typename T>
Tensor transposed(const Tensor& w) {
  const Tensor src = w.contiguous();
  const int64_t R = src.size(0), C = src.size(1);
  Tensor out = at::empty({C, R}, src.options());
  const T* s = src.data_ptr<T>();
  T* d = out.data_ptr<T>();
  copy_blocks((R + 15) / 16, R * C, [&](int64_t b0, int64_t b1) {
    const int64_t r0 = b0 * 16, r1 = std::min(R, b1 * 16);
    transpose_into<T>(s + r0 * C, C, r1 - r0, C, d + r0, R);
  });
  return out;
}

// One thread's block of a per-step product whose right operand W (K, N) (row-major, leading dimension
// ldw) is the same at every step: C (M, N) = A (M, K) @ W, all row-major. Built once per call, before
// the time loop; with kPacked it owns W packed for MKL's micro-kernel. The second constructor takes W as
// its transpose W^T (N, K) (row-major, leading dimension ldw, e.g. W_ih (G, I)) and a mode: kPanels packs
// the panels straight from it, kBlas and kAten read it transposed.
template <typename T>
class StepGemm {
 public:
  StepGemm() = default;
  StepGemm(int64_t M, int64_t N, int64_t K, const T* W, int64_t ldw, int64_t steps)
      : M_(M), N_(N), K_(K), W_(W), ldw_(ldw), mode_(choose_gemm<T>(M, K, steps)) {
    if constexpr (std::is_same_v<T, float>) {
      if (mode_ == GemmMode::kPanels && M > 0 && N > 0) {
        // Panel j holds columns [j * nb, j * nb + w) as K contiguous rows of w = min(nb, N - j * nb).
        nb_ = panel_width(M);
        packed_ = at::empty({K * N}, at::kFloat);
        float* dst = packed_.data_ptr<float>();
        for (int64_t n0 = 0; n0 < N; n0 += nb_) {
          const int64_t w = std::min(nb_, N - n0);
          for (int64_t k = 0; k < K; ++k) std::memcpy(dst + k * w, W + k * ldw + n0, w * sizeof(float));
          dst += K * w;
        }
      }
      if (mode_ == GemmMode::kPacked && M > 0 && N > 0) {
        const size_t bytes = cblas_sgemm_pack_get_size(162, int(M), int(N), int(K));
        packed_ = at::empty({static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float))}, at::kFloat);
        cblas_sgemm_pack(101, 162, 111, int(M), int(N), int(K), 1.0f, W, int(ldw), packed_.data_ptr<float>());
      }
    }
  }
  StepGemm(int64_t M, int64_t N, int64_t K, const T* Wt, int64_t ldw, GemmMode mode)
      : M_(M), N_(N), K_(K), W_(Wt), ldw_(ldw), mode_(mode), transposed_(true) {
    TORCH_CHECK(mode == GemmMode::kPanels || mode == GemmMode::kBlas || mode == GemmMode::kAten,
                "StepGemm: a transposed W runs on panels, BLAS or ATen");
    if constexpr (std::is_same_v<T, float>) {
      if (mode_ == GemmMode::kPanels && M > 0 && N > 0) {
        // The same panels as above, panel row k being column k of w rows of W^T.
        nb_ = panel_width(M);
        packed_ = at::empty({K * N}, at::kFloat);
        float* dst = packed_.data_ptr<float>();
        copy_blocks((N + nb_ - 1) / nb_, K * N, [&](int64_t p0, int64_t p1) {  // panel p starts at n0 K
          for (int64_t n0 = p0 * nb_; n0 < std::min(N, p1 * nb_); n0 += nb_) {
            const int64_t w = std::min(nb_, N - n0);
            transpose_into<float>(Wt + n0 * ldw, ldw, w, K, dst + n0 * K, w);
          }
        });
      }
    } else {
      TORCH_CHECK(mode != GemmMode::kPanels, "StepGemm: panels are float32 only");
    }
  }
  // One batch row over q_count column blocks [q stride, q stride + w) of W (K, ldw), e.g. one thread's units in
  // each gate block: the blocks packed side by side once, (K, q_count w), so that gemv_rows streams one contiguous
  // matrix instead of q_count runs of w floats a row (run_blocks).
  StepGemm(int64_t K, const T* W, int64_t ldw, int64_t w, int64_t q_count, int64_t stride)
      : M_(1), N_(q_count * w), K_(K), W_(W), ldw_(ldw), mode_(GemmMode::kGemv), blocks_(q_count), block_w_(w),
        block_stride_(stride) {
    if constexpr (std::is_same_v<T, float>) {
      packed_ = at::empty({K * N_}, at::kFloat);
      ybuf_ = at::empty({N_}, at::kFloat);
      float* dst = packed_.data_ptr<float>();
      for (int64_t k = 0; k < K; ++k)
        for (int64_t q = 0; q < q_count; ++q)
          std::memcpy(dst + k * N_ + q * w, W + k * ldw + q * stride, w * sizeof(float));
    } else {
      TORCH_CHECK(false, "StepGemm: packed gate blocks are float32 only");
    }
  }
  // C + q stride (w values) = A (one row, K) @ block q of W, for every block (the packed-blocks constructor).
  void run_blocks(const T* A, T* C) const {
    if constexpr (std::is_same_v<T, float>) {
      float* y = ybuf_.data_ptr<float>();
      gemv_(K_, N_, A, packed_.data_ptr<float>(), N_, y);
      for (int64_t q = 0; q < blocks_; ++q)
        std::memcpy(C + q * block_stride_, y + q * block_w_, block_w_ * sizeof(float));
    }
  }
  GemmMode mode() const { return mode_; }
  // C = A @ W for M rows (default: the M it was built for; panels, BLAS and ATen take any count).
  void run(const T* A, int64_t lda, T* C, int64_t ldc, int64_t rows = -1) const {
    const int64_t M = rows < 0 ? M_ : rows;
    if (transposed_) {
      if constexpr (std::is_same_v<T, float>) {
        if (mode_ == GemmMode::kPanels) return run_panels(A, lda, C, ldc, M);
      }
      gemm<T>(false, true, M, N_, K_, A, lda, W_, ldw_, T(0), C, ldc, mode_ == GemmMode::kAten);
      return;
    }
    if (M_ == 0 || N_ == 0) return;
    if constexpr (std::is_same_v<T, float>) {
      if (mode_ == GemmMode::kBrgemm && K_ > 0) {
        at::native::cpublas::brgemm(M_, N_, K_, lda, ldw_, ldc, false, A, W_, C, false);
        return;
      }
      if (mode_ == GemmMode::kGemv) {
        gemv_(K_, N_, A, W_, ldw_, C);
        return;
      }
      if (mode_ == GemmMode::kPanels) return run_panels(A, lda, C, ldc, M);
      if (mode_ == GemmMode::kPacked) {
        cblas_sgemm_compute(101, 111, 151, int(M_), int(N_), int(K_), A, int(lda), packed_.data_ptr<float>(),
                            int(N_), 0.0f, C, int(ldc));
        return;
      }
    }
    gemm<T>(false, false, M_, N_, K_, A, lda, W_, ldw_, T(0), C, ldc, mode_ == GemmMode::kAten);
  }

 private:
  // K in blocks of kc rows (outer), panels inner: A's block and C stay in cache while the panels' blocks stream
  // through. Measured on AVX2 (docs/benchmarks.md): at K = 4096 (the backward's dh product at H = 1024) blocks
  // of 512 lift (64, 4096) x (4096, 1024) from 48 to 62-76 GFLOP/s; up to K = 1024 a whole-K call is as fast
  // or faster.
  void run_panels(const T* A, int64_t lda, T* C, int64_t ldc, int64_t M) const {
    if constexpr (std::is_same_v<T, float>) {
      if (M == 0 || N_ == 0) return;
      if (K_ == 0) return gemm<T>(false, false, M, N_, K_, A, lda, W_, ldw_, T(0), C, ldc);  // writes the zeros
      const int64_t kc = K_ > kPanelMaxK ? kPanelBlockK : K_;
      // Panels [p0, p1): panel p starts at column p nb, K rows of its width into the packing.
      auto panels = [&](int64_t p0, int64_t p1) {
        for (int64_t k0 = 0; k0 < K_; k0 += kc) {
          const int64_t kb = std::min(kc, K_ - k0);
          for (int64_t n0 = p0 * nb_; n0 < std::min(N_, p1 * nb_); n0 += nb_) {
            const int64_t w = std::min(nb_, N_ - n0);
            const float* panel = packed_.data_ptr<float>() + n0 * K_;
            at::native::cpublas::brgemm(M, w, kb, lda, w, ldc, k0 > 0, A + k0, panel + k0 * w, C + n0, false);
          }
        }
      };
      const int64_t n_panels = (N_ + nb_ - 1) / nb_;
      // The input side (transposed W, many rows) is one product for all threads, split by panels; a per-step
      // product is already one thread's part of its step.
      if (transposed_ && n_panels > 1 && at::get_num_threads() > 1 && !at::in_parallel_region()) {
        at::parallel_for(0, n_panels, 1, panels);
      } else {
        panels(0, n_panels);
      }
    }
  }

  int64_t M_ = 0, N_ = 0, K_ = 0;
  const T* W_ = nullptr;
  int64_t ldw_ = 0;
  GemmMode mode_ = GemmMode::kBlas;
  bool transposed_ = false;  // W_ holds W^T (N, K) (the second constructor)
  int64_t blocks_ = 0, block_w_ = 0, block_stride_ = 0;  // the packed-blocks constructor
  Tensor ybuf_;  // its row of outputs before they go to their blocks (one thread uses one StepGemm)
  int64_t nb_ = 0;  // panel width (kPanels)
  GemvFn gemv_ = pick_gemv();
  Tensor packed_;   // W packed (kPacked) or in panels (kPanels)
};

// --- work split -------------------------------------------------------------------------------
// A step is split into a fixed number of parts, one per thread: by hidden units (each thread keeps
// its slice of the weights in its own cache across steps, and runs its product block and then the
// gate math of the same units without waiting for the other threads), or by batch rows where
// LayerNorm needs whole rows. Fixed parts also make the per-part sums, and so the results, independent
// of scheduling. Below this many multiply-adds per step, waking a second thread costs more than it saves.
constexpr int64_t kMinParallelMacs = int64_t(1) << 18;
constexpr int64_t kAlign = 16;  // unit / column boundaries: whole vectors and micro-kernel blocks

int64_t step_threads(int64_t macs) {
  if (at::in_parallel_region()) return 1;
  const int64_t nt = at::get_num_threads();
  return (nt > 1 && macs >= kMinParallelMacs) ? nt : 1;
}

int64_t parts_of(int64_t threads, int64_t n, int64_t align) {
  return std::max<int64_t>(1, std::min(threads, n / align));
}

// Start of part c when [0, n) is cut into `parts` pieces on multiples of `align`.
int64_t split_at(int64_t n, int64_t parts, int64_t c, int64_t align) {
  if (c >= parts) return n;
  return std::min(n, (c * n / parts) / align * align);
}

template <typename F>
void parallel_parts(int64_t parts, const F& f) {
  if (parts <= 1) {
    f(0);
    return;
  }
  at::parallel_for(0, parts, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) f(c);
  });
}

// The per-step products of one partition of [0, n) into `parts` (see split_at), all with the same
// left operand A (M, K): part c multiplies by the columns [lo, hi) of W (K, ld ldw), or, with q_count gate
// blocks, by the columns [q * stride + lo, q * stride + hi) of each block q; entry c * q_count + q.
template <typename T>
std::vector<StepGemm<T>> step_gemms(int64_t parts, int64_t n, int64_t align, int64_t M, int64_t K, const T* W,
                                    int64_t ldw, int64_t steps, int64_t q_count = 1, int64_t stride = 0) {
  std::vector<StepGemm<T>> out;
  out.reserve(parts * q_count);
  for (int64_t c = 0; c < parts; ++c) {
    const int64_t lo = split_at(n, parts, c, align), hi = split_at(n, parts, c + 1, align);
    for (int64_t q = 0; q < q_count; ++q) out.emplace_back(M, hi - lo, K, W + q * stride + lo, ldw, steps);
  }
  return out;
}

// One batch row split by units over `parts` threads, q_count gate blocks: one packed-blocks StepGemm a part (see
// its constructor), each packed by the thread that will read it.
template <typename T>
std::vector<StepGemm<T>> step_gemms_row(int64_t parts, int64_t n, int64_t align, int64_t K, const T* W, int64_t ldw,
                                        int64_t q_count, int64_t stride) {
  std::vector<StepGemm<T>> out(parts);
  parallel_parts(parts, [&](int64_t c) {
    const int64_t lo = split_at(n, parts, c, align), hi = split_at(n, parts, c + 1, align);
    out[c] = StepGemm<T>(K, W + lo, ldw, hi - lo, q_count, stride);
  });
  return out;
}

// --- kernel selection -------------------------------------------------------------------------
template <typename T>
using FwdFn = void (*)(const FwdArgs<T>&, int64_t, int64_t, int64_t, int64_t);
template <typename T>
using BwdFn = void (*)(const BwdArgs<T>&, int64_t, int64_t, int64_t, int64_t, T*, T*);
template <typename T>
using PostFn = void (*)(const PostArgs<T>&, int64_t, int64_t, int64_t, int64_t);
template <typename T>
using BwdPreFn = void (*)(const BwdPreArgs<T>&, int64_t, int64_t, int64_t, int64_t);

#ifdef LSTMKIT_X86_VARIANTS
#define LSTMKIT_PICK(T, ...)                                  \
  do {                                                        \
    if constexpr (std::is_same_v<T, float>) {                 \
      if (g_isa == Isa::kAvx512) return &avx512::__VA_ARGS__; \
      if (g_isa == Isa::kAvx2) return &avx2::__VA_ARGS__;     \
    }                                                         \
    return &generic::__VA_ARGS__;                             \
  } while (0)
#else
#define LSTMKIT_PICK(T, ...) return &generic::__VA_ARGS__
#endif

template <typename T, bool C, bool P, bool L, bool TR>
FwdFn<T> pick_fwd() { LSTMKIT_PICK(T, fwd_rows<T, C, P, L, TR>); }
template <typename T, bool C, bool P, bool L>
BwdFn<T> pick_bwd() { LSTMKIT_PICK(T, bwd_rows<T, C, P, L>); }
template <typename T>
PostFn<T> pick_post() { LSTMKIT_PICK(T, post_rows<T>); }
template <typename T>
BwdPreFn<T> pick_bwd_pre() { LSTMKIT_PICK(T, bwd_pre_rows<T>); }

template <typename T, template <typename, bool, bool, bool> class Pick>
auto pick_variant(bool coupled, bool peep, bool ln) {
  switch ((coupled ? 4 : 0) | (peep ? 2 : 0) | (ln ? 1 : 0)) {
    case 0: return Pick<T, false, false, false>::get();
    case 1: return Pick<T, false, false, true>::get();
    case 2: return Pick<T, false, true, false>::get();
    case 3: return Pick<T, false, true, true>::get();
    case 4: return Pick<T, true, false, false>::get();
    case 5: return Pick<T, true, false, true>::get();
    case 6: return Pick<T, true, true, false>::get();
    default: return Pick<T, true, true, true>::get();
  }
}
template <typename T, bool C, bool P, bool L>
struct PickFwdTrain { static FwdFn<T> get() { return pick_fwd<T, C, P, L, true>(); } };
template <typename T, bool C, bool P, bool L>
struct PickFwdInfer { static FwdFn<T> get() { return pick_fwd<T, C, P, L, false>(); } };
template <typename T, bool C, bool P, bool L>
struct PickBwd { static BwdFn<T> get() { return pick_bwd<T, C, P, L>(); } };

// --- helpers ----------------------------------------------------------------------------------
template <typename T>
T* ptr(const Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; }
template <typename T>
T* row(const Tensor& t, int64_t i) {  // pointer to t[i] of a contiguous tensor
  return t.defined() ? t.data_ptr<T>() + i * (t.numel() / std::max<int64_t>(t.size(0), 1)) : nullptr;
}
const bool* mask_row(const Tensor& m, int64_t t) { return m.defined() ? m.data_ptr<bool>() + t * m.size(1) : nullptr; }
// Step t's (B, W) rows of zoneout weights z (T, B, W), or (1, B, W) for the same rows every step; nullptr if absent.
// Each step's (B, W) block is contiguous; the steps may lie further apart (zone_opt).
template <typename T>
const T* zone_row(const Tensor& z, int64_t t) {
  return z.defined() ? z.data_ptr<T>() + (z.size(0) == 1 ? 0 : t * z.stride(0)) : nullptr;
}
// Zoneout weights as the kernels read them: each step's (B, W) block contiguous, the step stride free (the layer's
// h and c weights are column blocks of one (T, B P + B H) draw), else a contiguous copy.
Tensor zone_opt(const std::optional<Tensor>& z) {
  if (!z.has_value() || !z->defined()) return Tensor();
  const Tensor& t = *z;
  const bool blocks = t.dim() == 3 && (t.size(2) <= 1 || t.stride(2) == 1) &&
                      (t.size(1) <= 1 || t.stride(1) == t.size(2));
  return blocks ? t : t.contiguous();
}
Tensor opt(const std::optional<Tensor>& t) { return t.has_value() ? t->contiguous() : Tensor(); }

// Rows i, f, o of the peephole weights (no f row when coupled; all null without peepholes).
template <typename T>
void peephole_rows(const Tensor& peep, bool coupled, int64_t H, const T*& p_i, const T*& p_f, const T*& p_o) {
  p_i = p_f = p_o = nullptr;
  if (!peep.defined()) return;
  p_i = ptr<T>(peep);
  p_f = coupled ? nullptr : p_i + H;
  p_o = p_i + (peep.size(0) - 1) * H;
}

// --- int8 products -----------------------------------------------------------------------------
// A weight matrix W (N, K) held as int8 with a scale and zero point per row (lstmkit's 8-bit format,
// shifted by 128), packed once by torch's quantized backend (fbgemm on x86, the kernels behind
// torch.ao's dynamic quantisation). Each product x (M, K) -> x W^T (M, N) quantises x on the fly to
// 8 bits (7 with reduce_range, which AVX2's 16-bit pair sums need) and multiplies in integers.
class Int8Weight {
 public:
  Int8Weight(const Tensor& q, const Tensor& scale, const Tensor& zero, const std::optional<Tensor>& bias,
             bool reduce_range)
      : N_(q.size(0)), K_(q.size(1)), reduce_range_(reduce_range) {
    TORCH_CHECK(q.dim() == 2 && q.scalar_type() == at::kChar, "Int8Weight: q must be a 2-D int8 tensor");
    TORCH_CHECK(scale.numel() == N_ && zero.numel() == N_, "Int8Weight: one scale and zero point per row");
    const Tensor qw = at::_make_per_channel_quantized_tensor(q.contiguous(), scale.to(at::kDouble).contiguous(),
                                                             zero.to(at::kLong).contiguous(), 0);
    static auto prepack = c10::Dispatcher::singleton()
                              .findSchemaOrThrow("quantized::linear_prepack", "")
                              .typed<c10::intrusive_ptr<LinearPackedParamsBase>(Tensor, std::optional<Tensor>)>();
    packed_ = prepack.call(qw, bias.has_value() ? std::optional<Tensor>(bias->contiguous()) : std::nullopt);
  }
  int64_t rows() const { return N_; }
  int64_t cols() const { return K_; }
  // C (M, N) = A (M, K) W^T [+ bias], row-major, contiguous.
  void run(const float* A, int64_t M, float* C) const {
    Tensor a = at::from_blob(const_cast<float*>(A), {M, K_}, at::kFloat);
    const Tensor out = packed_->apply_dynamic(a, reduce_range_);  // fbgemm has no out= variant
    std::memcpy(C, out.const_data_ptr<float>(), M * N_ * sizeof(float));
  }
  Tensor apply(const Tensor& x) const {  // x (..., K) -> (..., N)
    TORCH_CHECK(x.scalar_type() == at::kFloat && x.size(-1) == K_, "Int8Weight: x must be float32 (..., ", K_, ")");
    const Tensor out = packed_->apply_dynamic(x.reshape({-1, K_}).contiguous(), reduce_range_);
    auto shape = x.sizes().vec();
    shape.back() = N_;
    return out.view(shape);
  }

 private:
  int64_t N_, K_;
  bool reduce_range_;
  c10::intrusive_ptr<LinearPackedParamsBase> packed_;
};

// --- forward ----------------------------------------------------------------------------------
// Steps per chunk of the input side when the kernel computes it (x_in): about 1 MB of W_ih x, which stays in
// cache (L2) until its steps read it, and at least 512 rows (k B) so that the product keeps its speed. On panels
// of a W_ih of up to 4 MB (AMD's AVX-512 CPUs, choose_input_gemm) about 256 KB instead, however few the rows: the
// panels run as fast at a few dozen rows (a step's own product has B), re-reading W_ih from the L3 cache chunk by
// chunk, and the steps then find their W_ih x in L2. Session 33's EPYC, one thread, whole forwards x native with
// the chunk forced (benchmarks/input_side.py --chunks): B16H512 0.999 at 2 steps against 1.028 at the 32 of the
// 1 MB rule, B16H256 0.998 at 4 against 1.011 at 32, B64H256 1.022 at 1 against 1.036 at 8, but B64H512 0.951 at 1
// against 0.937 at 8; two threads level or better. At 16 MB of W_ih (H = 1024) small chunks stream it from memory
// (a one-off probe at B16H1024: 0.88-0.98 at 1-8 steps against 0.84 at 32), so the 1 MB rule stays there. A test
// hook (set_input_chunk) fixes the count; 0 is this rule.
int64_t g_input_chunk = 0;
int64_t input_chunk_steps(int64_t steps, int64_t B, int64_t G, int64_t elem, bool small_panels) {
  constexpr int64_t kChunkBytes = 1 << 20, kMinRows = 512, kPanelChunkBytes = 1 << 18;
  const int64_t step_bytes = std::max<int64_t>(B * G * elem, 1);
  int64_t k = g_input_chunk;
  if (k <= 0) {
    k = small_panels ? kPanelChunkBytes / step_bytes : std::max(kChunkBytes / step_bytes, (kMinRows + B - 1) / B);
  }
  return std::max<int64_t>(1, std::min(k, steps));
}
// Whether the input side takes the small chunks above: on panels, W_ih (G, I) of up to 4 MB.
bool small_panel_chunks(GemmMode mode, int64_t w_bytes) { return mode == GemmMode::kPanels && w_bytes <= (4 << 20); }
void set_input_chunk(int64_t steps) {
  TORCH_CHECK(steps >= 0, "set_input_chunk: steps must be >= 0 (0: automatic), got ", steps);
  g_input_chunk = steps;
}
// For the tests: the chunk for T steps of (B, G) and W_ih (G, I) on the input-side path the rule takes there.
int64_t input_chunk(int64_t steps, int64_t B, int64_t G, int64_t I, int64_t elem) {
  const GemmMode mode =
      elem == 4 ? choose_input_gemm<float>(steps * B, G * I) : choose_input_gemm<double>(steps * B, G * I);
  return input_chunk_steps(steps, B, G, elem, small_panel_chunks(mode, G * I * elem));
}

// Returns y, h_n, c_n, then (train only) the saved tensors:
// acts, cs, tcs, hin, hraw, rhat, rrstd, chat, crstd, craw (undefined where absent), where hin (T, B, P)
// holds the recurrent product's input h_{t-1} * drop of every step (it may have a spare row T) and craw the
// cell before zoneout (zone_c with peepholes). zone_h (T or 1, B, P), zone_c (T or 1, B, H): zoneout's weights
// (ScanArgs in _fused.py): y_t = h_t = (1 - z) h~_t + z h_{t-1}, likewise c.
template <typename T>
std::vector<Tensor> forward_impl(const Tensor& xg, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                                 const Tensor& w_hr, const Tensor& peep, const Tensor& g_hh, const Tensor& g_c,
                                 const Tensor& b_c, const Tensor& drop, const Tensor& mask, bool coupled, double eps,
                                 bool train, const Tensor& g_ih, const Tensor& b_x,
                                 const Int8Weight* q_hh = nullptr, const Int8Weight* q_hr = nullptr,
                                 const Tensor& lr_left = Tensor(), const Tensor& lr_right = Tensor(),
                                 const Tensor& x_in = Tensor(), const Tensor& w_ih = Tensor(),
                                 const Tensor& zone_h = Tensor(), const Tensor& zone_c = Tensor()) {
  // x_in (T, B, I) and w_ih (G, I) instead of xg (inference): the input side W_ih x is computed here, a chunk of
  // steps at a time into a small buffer that the steps then read from cache (input_chunk_steps).
  const bool chunked = x_in.defined();
  const Tensor& lead = chunked ? x_in : xg;
  const int64_t Tn = lead.size(0), B = lead.size(1), G = chunked ? w_ih.size(0) : xg.size(2), H = c0.size(1),
                P = h0.size(1);
  const bool proj = w_hr.defined(), ln = g_hh.defined(), has_mask = mask.defined(), has_drop = drop.defined();
  const bool has_zh = zone_h.defined(), has_zc = zone_c.defined();
  const bool alias_hin = !has_mask && !has_drop;  // (zoneout keeps it: the state is still y without a mask)
  const auto o = lead.options();
  Tensor ys = at::empty({Tn, B, P}, o);
  Tensor acts, cs, tcs, hin_all, hraw_all, rhat, rrstd, chat, crstd, craw;  // kept for the backward
  Tensor act_s, cring, hraw_s, rrstd_s, crstd_s, hin_ring, hs_ring;  // per-step scratch
  if (train) {
    acts = at::empty({Tn, B, G}, o);
    cs = at::empty({Tn + 1, B, H}, o);
    cs[0].copy_(c0);
    tcs = at::empty({Tn, B, H}, o);
    if (!alias_hin) hin_all = at::empty({Tn + 1, B, P}, o);
    if (proj) hraw_all = at::empty({Tn, B, H}, o);
    if (has_zc && peep.defined()) craw = at::empty({Tn, B, H}, o);
    if (ln) {
      rhat = at::empty({Tn, B, G}, o);
      rrstd = at::empty({Tn, B}, o);
      chat = at::empty({Tn, B, H}, o);
      crstd = at::empty({Tn, B}, o);
    }
  } else {
    // Inference: nothing per step survives the step except the state, and the kernels store only
    // what the step needs (o for the LayerNorm pass over c).
    cring = at::empty({2, B, H}, o);
    if (proj) hraw_s = at::empty({B, H}, o);
    if (ln) {
      act_s = at::empty({B, G}, o);
      rrstd_s = at::empty({B}, o);
      crstd_s = at::empty({B}, o);
    }
    if (has_drop) hin_ring = at::empty({2, B, P}, o);
  }
  // With a mask the carried h differs from y. In training without dropout it is exactly the product's
  // input, so it lives in hin_all; otherwise in a two-slot ring.
  const bool hs_in_hin = train && has_mask && !has_drop;
  if (has_mask && !hs_in_hin) hs_ring = at::empty({2, B, P}, o);
  Tensor hin0 = hin_all.defined() ? hin_all[0] : (hin_ring.defined() ? hin_ring[0] : Tensor());
  if (hin0.defined()) {
    if (has_drop) {
      at::mul_out(hin0, h0, drop);
    } else {
      hin0.copy_(h0);
    }
  }

  Tensor rbuf = at::empty({B, G}, o);  // the recurrent product of the current step
  // Inference without LayerNorm adds the biases in the gate pass (b_x; zeros when the caller left them in xg),
  // which saves the pass over all (T, B, G) that adding them to W_ih x beforehand costs.
  const Tensor b_gates = ln || train ? Tensor() : (b_x.defined() ? b_x : at::zeros({G}, o));
  // int8 (inference): the recurrent products run in fbgemm, one call for all units (q_hh, q_hr).
  const bool int8 = q_hh != nullptr;
  // Low rank (inference): W_hh = left (G, R) @ right (R, P) as two thin products per step, one part.
  const bool lowrank = lr_left.defined();
  const bool single = int8 || lowrank;  // one call computes the whole product: no split by units
  const Tensor w_hh_t = single ? Tensor() : transposed<T>(w_hh);  // (P, G): transposed once per call
  const Tensor w_hr_t = proj && !int8 ? transposed<T>(w_hr) : Tensor();  // (H, P)
  const T* wt = ptr<T>(w_hh_t);
  const T* wrt = ptr<T>(w_hr_t);
  const T* h0_p = ptr<T>(h0);
  const T* c0_p = ptr<T>(c0);
  const T *p_i, *p_f, *p_o;
  peephole_rows<T>(peep, coupled, H, p_i, p_f, p_o);
  const FwdFn<T> fwd = train ? pick_variant<T, PickFwdTrain>(coupled, peep.defined(), ln)
                             : pick_variant<T, PickFwdInfer>(coupled, peep.defined(), ln);
  const PostFn<T> post = pick_post<T>();
  const bool need_post = has_mask || has_drop || has_zh;
  const int64_t ng = coupled ? 3 : 4;
  const int64_t nt = step_threads(B * G * P);
  const int64_t n_units = ln || single ? 1 : parts_of(nt, H, kAlign);  // LayerNorm needs whole rows
  const int64_t n_cols = ln && !single ? parts_of(nt, G, kAlign) : 1;
  const int64_t n_rows = ln ? std::max<int64_t>(1, std::min(nt, B)) : 1;
  const int64_t n_pcols = proj && !int8 ? parts_of(step_threads(B * P * H), P, kAlign) : 1;
  // The per-step products, each part's weight block prepared (packed, where chosen) once for all steps:
  // rec by units across the gate blocks (entry c * ng + q), or by gate columns with LayerNorm / one part.
  // One batch row split by units: each thread's gate-block columns packed side by side (gemv_rows then streams
  // one contiguous matrix, not ng runs of H / n_units floats a row), where the steps repay the copy.
  const bool row_blocks = std::is_same_v<T, float> && B == 1 && !single && !ln && n_units > 1 &&
                          Tn >= kMinRowBlockSteps && choose_gemm<T>(1, P, Tn) == GemmMode::kGemv &&
                          g_gemm == GemmMode::kAuto;
  const auto rec = single                  ? std::vector<StepGemm<T>>{}
                   : (ln || n_units == 1) ? step_gemms<T>(ln ? n_cols : 1, G, kAlign, B, P, wt, G, Tn)
                   : row_blocks           ? step_gemms_row<T>(n_units, H, kAlign, P, wt, G, ng, H)
                                          : step_gemms<T>(n_units, H, kAlign, B, P, wt, G, Tn, ng, H);
  const auto prj = proj && !int8 ? step_gemms<T>(n_pcols, P, kAlign, B, H, wrt, P, Tn) : std::vector<StepGemm<T>>{};
  const int64_t R = lowrank ? lr_left.size(1) : 0;
  const Tensor lr_right_t = lowrank ? lr_right.t().contiguous() : Tensor();  // (P, R)
  const Tensor lr_left_t = lowrank ? lr_left.t().contiguous() : Tensor();    // (R, G)
  const Tensor lr_mid = lowrank ? at::empty({B, R}, o) : Tensor();           // h_in right^T of a step
  const StepGemm<T> lr_a = lowrank ? StepGemm<T>(B, R, P, ptr<T>(lr_right_t), R, Tn) : StepGemm<T>();
  const StepGemm<T> lr_b = lowrank ? StepGemm<T>(B, G, R, ptr<T>(lr_left_t), G, Tn) : StepGemm<T>();
  // The whole recurrent product of a step: r (B, G) = h_in (B, P) W_hh^T.
  auto rec_all = [&](const T* hin, T* r) {
    if constexpr (std::is_same_v<T, float>) {
      if (int8) return q_hh->run(hin, B, r);
    }
    if (lowrank) {
      lr_a.run(hin, P, ptr<T>(lr_mid), R);  // (B, P) @ (P, R)
      lr_b.run(ptr<T>(lr_mid), R, r, G);    // (B, R) @ (R, G)
      return;
    }
    rec[0].run(hin, P, r, G);
  };

  auto c_prev = [&](int64_t t) -> T* {
    return train ? row<T>(cs, t) : (t == 0 ? const_cast<T*>(c0_p) : row<T>(cring, t % 2));
  };
  auto c_new = [&](int64_t t) -> T* { return train ? row<T>(cs, t + 1) : row<T>(cring, (t + 1) % 2); };
  auto hs_prev = [&](int64_t t) -> T* {  // carried h before step t (mask only)
    if (hs_in_hin) return row<T>(hin_all, t);
    return t == 0 ? const_cast<T*>(h0_p) : row<T>(hs_ring, t % 2);
  };
  auto hs_new = [&](int64_t t) -> T* { return hs_in_hin ? row<T>(hin_all, t + 1) : row<T>(hs_ring, (t + 1) % 2); };
  auto h_in = [&](int64_t t) -> const T* {  // input of step t's recurrent product
    if (alias_hin) return t == 0 ? h0_p : row<T>(ys, t - 1);
    if (has_drop) return train ? row<T>(hin_all, t) : row<T>(hin_ring, t % 2);
    return hs_prev(t);
  };
  auto h_in_next = [&](int64_t t) -> T* {
    if (!has_drop) return nullptr;
    return train ? row<T>(hin_all, t + 1) : row<T>(hin_ring, (t + 1) % 2);
  };

  const int64_t I = chunked ? x_in.size(2) : 0;
  // (k B, I) @ W_ih^T (I, G), read from W_ih (G, I) as it is or packed into panels (choose_input_gemm).
  const GemmMode in_mode = chunked ? choose_input_gemm<T>(Tn * B, G * I) : GemmMode::kBlas;
  const int64_t elem = static_cast<int64_t>(sizeof(T));
  const int64_t n_chunk =
      chunked ? input_chunk_steps(Tn, B, G, elem, small_panel_chunks(in_mode, G * I * elem)) : 0;
  const Tensor xchunk = chunked ? at::empty({n_chunk, B, G}, o) : Tensor();  // (K, B, G) W_ih x of K steps
  const StepGemm<T> in_gemm = chunked ? StepGemm<T>(n_chunk * B, G, I, ptr<T>(w_ih), I, in_mode) : StepGemm<T>();
  auto xg_row = [&](int64_t t) -> T* {
    if (!chunked) return row<T>(xg, t);
    if (t % n_chunk == 0) {  // the next chunk's input side, no biases
      const int64_t k = std::min(n_chunk, Tn - t);
      in_gemm.run(row<T>(x_in, t), I, ptr<T>(xchunk), G, k * B);
    }
    return row<T>(xchunk, t % n_chunk);
  };

  for (int64_t t = 0; t < Tn; ++t) {
    T* r = rbuf.data_ptr<T>();
    const T* hin = h_in(t);
    T* y_t = row<T>(ys, t);
    FwdArgs<T> a{};
    T* xg_t = xg_row(t);
    a.xg = xg_t;
    a.r = r;
    a.act = train ? row<T>(acts, t) : ptr<T>(act_s);
    a.c_prev = c_prev(t);
    a.c_new = c_new(t);
    a.tc = train ? row<T>(tcs, t) : nullptr;
    a.h = proj ? (train ? row<T>(hraw_all, t) : ptr<T>(hraw_s)) : y_t;
    if (ln) {
      a.rhat = train ? row<T>(rhat, t) : nullptr;
      a.rrstd = train ? row<T>(rrstd, t) : ptr<T>(rrstd_s);
      a.chat = train ? row<T>(chat, t) : nullptr;
      a.crstd = train ? row<T>(crstd, t) : ptr<T>(crstd_s);
      a.g_hh = ptr<T>(g_hh);
      a.g_c = ptr<T>(g_c);
      a.b_c = ptr<T>(b_c);
      if (g_ih.defined()) {
        a.xg_own = xg_t;
        a.g_ih = ptr<T>(g_ih);
        a.b_x = b_x.defined() ? ptr<T>(b_x) : nullptr;
      }
    } else if (!train) {
      a.b_x = ptr<T>(b_gates);
    }
    a.p_i = p_i;
    a.p_f = p_f;
    a.p_o = p_o;
    a.mask = mask_row(mask, t);
    a.zc = zone_row<T>(zone_c, t);
    a.c_raw = craw.defined() ? row<T>(craw, t) : nullptr;
    a.H = H;
    a.G = G;
    a.eps = static_cast<T>(eps);
    PostArgs<T> pa{};
    pa.y = y_t;
    pa.mask = a.mask;
    // The carried h before the step: the mask's own buffer, else y_{t-1} (h0 at t = 0).
    pa.h_prev = has_mask ? hs_prev(t) : (has_zh ? (t == 0 ? h0_p : row<T>(ys, t - 1)) : nullptr);
    pa.zh = zone_row<T>(zone_h, t);
    pa.h_new = has_mask ? hs_new(t) : nullptr;
    pa.drop = ptr<T>(drop);
    pa.h_in_next = h_in_next(t);
    pa.P = P;
    if (!ln) {
      // Each thread: its units' columns of every gate block of r = h_in W_hh^T, then their gate math.
      parallel_parts(n_units, [&](int64_t c) {
        const int64_t j0 = split_at(H, n_units, c, kAlign), j1 = split_at(H, n_units, c + 1, kAlign);
        if (n_units == 1) {
          rec_all(hin, r);  // (B, P) @ (P, G)
        } else {
          if (row_blocks) {
            rec[c].run_blocks(hin, r + j0);
          } else {
            for (int64_t q = 0; q < ng; ++q) rec[c * ng + q].run(hin, P, r + q * H + j0, G);
          }
        }
        fwd(a, 0, B, j0, j1);
        if (!proj && need_post) post(pa, 0, B, j0, j1);
      });
    } else {
      parallel_parts(n_cols, [&](int64_t c) {
        const int64_t n0 = split_at(G, n_cols, c, kAlign), n1 = split_at(G, n_cols, c + 1, kAlign);
        if (n_cols == 1) {
          rec_all(hin, r);
        } else {
          rec[c].run(hin, P, r + n0, G);
        }
      });
      parallel_parts(n_rows, [&](int64_t c) {
        const int64_t b0 = split_at(B, n_rows, c, 1), b1 = split_at(B, n_rows, c + 1, 1);
        fwd(a, b0, b1, 0, H);
        if (!proj && need_post) post(pa, b0, b1, 0, P);
      });
    }
    if (proj) {
      parallel_parts(n_pcols, [&](int64_t c) {
        const int64_t k0 = split_at(P, n_pcols, c, kAlign), k1 = split_at(P, n_pcols, c + 1, kAlign);
        if constexpr (std::is_same_v<T, float>) {
          if (int8) {
            q_hr->run(a.h, B, y_t);  // (B, H) -> (B, P)
          } else {
            prj[c].run(a.h, H, y_t + k0, P);  // (B, H) @ (H, P)
          }
        } else {
          prj[c].run(a.h, H, y_t + k0, P);
        }
        if (need_post) post(pa, 0, B, k0, k1);
      });
    }
  }

  Tensor h_n = has_mask ? at::from_blob(hs_prev(Tn), {B, P}, o).clone() : (Tn == 0 ? h0.clone() : ys[Tn - 1].clone());
  Tensor c_n = at::from_blob(c_prev(Tn), {B, H}, o).clone();
  if (!train) return {ys, h_n, c_n};
  if (alias_hin) {
    // The products read [h0, y_0 .. y_{T-2}] in place; the backward gets its own copy so that the
    // caller may modify y in place (as with the Python kernel).
    hin_all = at::empty({Tn, B, P}, o);
    if (Tn > 0) {
      hin_all[0].copy_(h0);
      hin_all.slice(0, 1).copy_(ys.slice(0, 0, Tn - 1));
    }
  }
  return {ys, h_n, c_n, acts, cs, tcs, hin_all, hraw_all, rhat, rrstd, chat, crstd, craw};
}

// --- backward ---------------------------------------------------------------------------------
void plane_products(const Tensor& A, const Tensor& Bm, Tensor& C, bool accumulate);

// dW (N, K) = d^T x over the R rows of d (R, N) and x (R, K) (a weight gradient over every step and sequence): on
// panels (whole_on_panels, float32) as (x^T d)^T, x transposed (for dW_hh the smaller operand, K = P <= N = G); else
// one BLAS call.
template <typename T>
Tensor weight_gradient(const Tensor& d, const Tensor& x) {
  const int64_t R = d.size(0), N = d.size(1), K = x.size(1);
  if (std::is_same_v<T, float> && whole_on_panels() && R > 0) {
    Tensor xt = transposed<T>(x).unsqueeze(0);  // (1, K, R)
    Tensor c = at::empty({1, K, N}, d.options());
    plane_products(xt, d.unsqueeze(0), c, false);  // (1, K, N) = x^T d
    return transposed<T>(c[0]);  // (N, K)
  }
  Tensor dw = at::empty({N, K}, d.options());
  gemm<T>(true, false, N, K, R, ptr<T>(d), N, ptr<T>(x), K, T(0), ptr<T>(dw), K);
  return dw;
}

// Returns dxg, dh0, dc0, dw_hh, dw_hr, dpeep, dg_hh, dg_c, db_c (undefined where absent or not
// asked for: need_w covers w_hh and w_hr, need_extra the peephole and LayerNorm gains).
template <typename T>
std::vector<Tensor> backward_impl(const Tensor& dy, const Tensor& dhn, const Tensor& dcn, const Tensor& acts,
                                  const Tensor& cs, const Tensor& tcs, const Tensor& hin_all, const Tensor& hraw_all,
                                  const Tensor& rhat, const Tensor& rrstd, const Tensor& chat, const Tensor& crstd,
                                  const Tensor& craw, const Tensor& w_hh, const Tensor& w_hr,
                                  const Tensor& peep, const Tensor& g_hh, const Tensor& g_c, const Tensor& drop,
                                  const Tensor& mask, const Tensor& zone_h, const Tensor& zone_c, bool coupled,
                                  bool need_w, bool need_extra) {
  const int64_t Tn = acts.size(0), B = acts.size(1), G = acts.size(2), H = cs.size(2), P = w_hh.size(1);
  const bool proj = w_hr.defined(), ln = g_hh.defined(), has_mask = mask.defined(), has_drop = drop.defined();
  const auto o = acts.options();
  Tensor dxg = at::empty({Tn, B, G}, o);
  Tensor dr_all = ln ? at::empty({Tn, B, G}, o) : dxg;
  Tensor dh = dhn.defined() ? dhn.clone() : at::zeros({B, P}, o);
  Tensor dc = dcn.defined() ? dcn.clone() : at::zeros({B, H}, o);
  Tensor dyh_all = proj ? at::empty({Tn, B, P}, o) : Tensor();  // dL/dy before W_hr, kept for dW_hr
  Tensor dhn_buf = at::empty({B, H}, o);
  // The dh product can write dh itself, except where dh holds something to add to (zoneout's z dL/dh).
  const bool direct_dh = !has_mask && !has_drop && !zone_h.defined();
  Tensor dhg = direct_dh ? Tensor() : at::empty({B, P}, o);

  const int64_t nt = step_threads(B * G * P);
  const int64_t n_units = ln ? 1 : parts_of(nt, H, kAlign);  // LayerNorm needs whole rows
  const int64_t n_rows = ln ? std::max<int64_t>(1, std::min(nt, B)) : 1;
  const int64_t n_pcols = parts_of(nt, P, kAlign);
  const int64_t n_hcols = proj ? parts_of(step_threads(B * P * H), H, kAlign) : 1;
  const int64_t n_acc = std::max(n_units, n_rows);  // parts of the gate math, each with its own sums
  const bool sums = peep.defined() || ln;
  const int64_t acc_w = sums ? 5 * H + G : 1;
  Tensor acc = at::zeros({n_acc, acc_w}, o);
  Tensor tmp = at::empty({n_acc, H}, o);
  T* acc_p = ptr<T>(acc);
  T* tmp_p = ptr<T>(tmp);
  const BwdFn<T> bwd = pick_variant<T, PickBwd>(coupled, peep.defined(), ln);
  const BwdPreFn<T> pre = pick_bwd_pre<T>();
  const T *p_i, *p_f, *p_o;
  peephole_rows<T>(peep, coupled, H, p_i, p_f, p_o);
  const T* w_hh_p = ptr<T>(w_hh);
  const T* w_hr_p = ptr<T>(w_hr);
  T* dh_p = ptr<T>(dh);
  T* dhg_p = ptr<T>(dhg);
  T* dhn_p = ptr<T>(dhn_buf);

  // dL/dh_{s-1} (before dropout and mask) = dr_s W_hh, columns [k0, k1): (B, G) @ (G, P). It runs at
  // the start of step s-1, fused with that step's first pass.
  // Part c of the n_pcols split of P (the same split as n_units' when P == H without LayerNorm).
  const auto dhp = step_gemms<T>(n_pcols, P, kAlign, B, G, w_hh_p, P, Tn);
  TORCH_INTERNAL_ASSERT(ln || proj || n_units == n_pcols, "lstm_scan_cpp: unit and column splits differ");
  auto dh_product = [&](int64_t s, int64_t c, int64_t k0) {
    dhp[c].run(row<T>(dr_all, s), G, (direct_dh ? dh_p : dhg_p) + k0, P);
  };
  // dL/d(o * tc) = dyh W_hr by columns of H: the n_units split, or n_hcols' with LayerNorm.
  const auto hrp = proj ? step_gemms<T>(ln ? n_hcols : n_units, H, kAlign, B, P, w_hr_p, H, Tn)
                        : std::vector<StepGemm<T>>{};

  for (int64_t t = Tn - 1; t >= 0; --t) {
    const bool pending = t < Tn - 1;  // step t+1's dh product is still to run
    BwdPreArgs<T> pa{};
    pa.dh = dh_p;
    pa.dhg = (direct_dh || !pending) ? nullptr : dhg_p;
    pa.mask_next = pending ? mask_row(mask, t + 1) : nullptr;
    pa.drop = ptr<T>(drop);
    pa.dst = proj ? row<T>(dyh_all, t) : dhn_p;
    pa.dy = row<T>(dy, t);
    pa.mask = mask_row(mask, t);
    pa.zh = zone_row<T>(zone_h, t);
    pa.accumulate = zone_h.defined();
    pa.P = P;
    BwdArgs<T> a{};
    a.act = row<T>(acts, t);
    a.tc = row<T>(tcs, t);
    a.c_prev = row<T>(cs, t);
    a.c_new = craw.defined() ? row<T>(craw, t) : row<T>(cs, t + 1);  // what the output gate's peephole saw
    a.zc = zone_row<T>(zone_c, t);
    a.dhn = dhn_p;
    a.dc = ptr<T>(dc);
    a.da = row<T>(dxg, t);
    a.dr = row<T>(dr_all, t);
    if (ln) {
      a.rhat = row<T>(rhat, t);
      a.rrstd = row<T>(rrstd, t);
      a.chat = row<T>(chat, t);
      a.crstd = row<T>(crstd, t);
      a.g_hh = ptr<T>(g_hh);
      a.g_c = ptr<T>(g_c);
    }
    a.p_i = p_i;
    a.p_f = p_f;
    a.p_o = p_o;
    a.mask = pa.mask;
    a.H = H;
    a.G = G;
    auto gates = [&](int64_t c, int64_t b0, int64_t b1, int64_t j0, int64_t j1) {
      bwd(a, b0, b1, j0, j1, acc_p + c * acc_w, tmp_p + c * H);
    };
    if (!ln && !proj) {
      // P == H: each thread finishes its columns of dL/dh and runs the gate math of the same units.
      parallel_parts(n_units, [&](int64_t c) {
        const int64_t j0 = split_at(H, n_units, c, kAlign), j1 = split_at(H, n_units, c + 1, kAlign);
        if (pending) dh_product(t + 1, c, j0);
        pre(pa, 0, B, j0, j1);
        gates(c, 0, B, j0, j1);
      });
      continue;
    }
    parallel_parts(n_pcols, [&](int64_t c) {
      const int64_t k0 = split_at(P, n_pcols, c, kAlign), k1 = split_at(P, n_pcols, c + 1, kAlign);
      if (pending) dh_product(t + 1, c, k0);
      pre(pa, 0, B, k0, k1);
    });
    const T* dyh_t = pa.dst;
    if (!ln) {  // projection: dL/d(o * tc) = dyh W_hr per unit slice, then the gate math of those units
      parallel_parts(n_units, [&](int64_t c) {
        const int64_t j0 = split_at(H, n_units, c, kAlign), j1 = split_at(H, n_units, c + 1, kAlign);
        hrp[c].run(dyh_t, P, dhn_p + j0, H);  // (B, P) @ (P, H)
        gates(c, 0, B, j0, j1);
      });
      continue;
    }
    if (proj) {
      parallel_parts(n_hcols, [&](int64_t c) {
        const int64_t j0 = split_at(H, n_hcols, c, kAlign), j1 = split_at(H, n_hcols, c + 1, kAlign);
        hrp[c].run(dyh_t, P, dhn_p + j0, H);
      });
    }
    parallel_parts(n_rows, [&](int64_t c) {
      gates(c, split_at(B, n_rows, c, 1), split_at(B, n_rows, c + 1, 1), 0, H);
    });
  }
  if (Tn > 0) {  // step 0's dh product, folded into dh
    BwdPreArgs<T> pa{};
    pa.dh = dh_p;
    pa.dhg = direct_dh ? nullptr : dhg_p;
    pa.mask_next = mask_row(mask, 0);
    pa.drop = ptr<T>(drop);
    pa.accumulate = zone_h.defined();
    pa.P = P;
    parallel_parts(n_pcols, [&](int64_t c) {
      const int64_t k0 = split_at(P, n_pcols, c, kAlign), k1 = split_at(P, n_pcols, c + 1, kAlign);
      dh_product(0, c, k0);
      pre(pa, 0, B, k0, k1);
    });
  }

  Tensor dw_hh, dw_hr, dpeep, dg_hh, dg_c, db_c;
  if (need_w) {
    // Whole sequence at once: (G, T*B) @ (T*B, P).
    dw_hh = weight_gradient<T>(dr_all.view({Tn * B, G}), hin_all.narrow(0, 0, Tn).view({Tn * B, P}));  // T+1 rows
    if (proj) dw_hr = weight_gradient<T>(dyh_all.view({Tn * B, P}), hraw_all.view({Tn * B, H}));
  }
  if (need_extra && sums) {
    Tensor s = acc.sum(0);  // (5H + G,)
    if (peep.defined()) {
      dpeep = coupled ? at::stack({s.slice(0, 0, H), s.slice(0, 2 * H, 3 * H)})
                      : s.slice(0, 0, 3 * H).reshape({3, H}).clone();
    }
    if (ln) {
      dg_hh = s.slice(0, 3 * H, 3 * H + G).clone();
      dg_c = s.slice(0, 3 * H + G, 4 * H + G).clone();
      db_c = s.slice(0, 4 * H + G, 5 * H + G).clone();
    }
  }
  return {dxg, dh, dc, dw_hh, dw_hr, dpeep, dg_hh, dg_c, db_c};
}

// --- bindings ---------------------------------------------------------------------------------
void check_cpu(const Tensor& t, const char* name, at::ScalarType st) {
  if (!t.defined()) return;
  TORCH_CHECK(t.device().is_cpu(), "lstm_scan_cpp: ", name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == st, "lstm_scan_cpp: ", name, " has dtype ", t.scalar_type(), ", expected ", st);
}

// Zoneout's weights: (T or 1, B, P) for h and (T or 1, B, H) for c, each undefined where off.
void check_zone(const char* who, const Tensor& zone_h, const Tensor& zone_c, int64_t Tn, const Tensor& h0,
                const Tensor& c0) {
  const int64_t B = h0.size(0);
  for (auto& [z, n, W] : std::initializer_list<std::tuple<const Tensor&, const char*, int64_t>>{
           {zone_h, "zone_h", h0.size(1)}, {zone_c, "zone_c", c0.size(1)}})
    TORCH_CHECK(!z.defined() || (z.dim() == 3 && (z.size(0) == Tn || z.size(0) == 1) && z.size(1) == B &&
                                 z.size(2) == W),
                who, ": ", n, " must be (", Tn, " or 1, ", B, ", ", W, "), got ", z.sizes());
}

// The checks forward and forward_input share, then forward_impl in the tensors' dtype. Exactly one of xg (T, B, G)
// and x (T, B, I) with w_ih (G, I) is defined; `who` names the caller in the errors.
std::vector<Tensor> checked_forward(const char* who, const Tensor& xg, const Tensor& x, const Tensor& w_ih,
                                    const Tensor& h0_, const Tensor& c0_, const Tensor& w_hh_,
                                    const std::optional<Tensor>& w_hr_, const std::optional<Tensor>& peep_,
                                    const std::optional<Tensor>& g_hh_, const std::optional<Tensor>& g_c_,
                                    const std::optional<Tensor>& b_c_, const std::optional<Tensor>& drop_,
                                    const std::optional<Tensor>& mask_, bool coupled, double eps,
                                    const std::optional<Tensor>& zone_h_, const std::optional<Tensor>& zone_c_,
                                    bool train, const Tensor& g_ih, const Tensor& b_x) {
  const Tensor h0 = h0_.contiguous(), c0 = c0_.contiguous(), w_hh = w_hh_.contiguous();
  const Tensor w_hr = opt(w_hr_), peep = opt(peep_), g_hh = opt(g_hh_), g_c = opt(g_c_), b_c = opt(b_c_);
  const Tensor drop = opt(drop_), zone_h = zone_opt(zone_h_), zone_c = zone_opt(zone_c_);
  const Tensor mask = mask_.has_value() ? mask_->to(at::kBool).contiguous() : Tensor();
  const auto st = (xg.defined() ? xg : x).scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble, who, ": float32 or float64 only, got ", st);
  for (auto& [t, n] : std::initializer_list<std::pair<const Tensor&, const char*>>{
           {xg, "xg"}, {x, "x"}, {w_ih, "w_ih"}, {h0, "h0"}, {c0, "c0"}, {w_hh, "w_hh"}, {w_hr, "w_hr"},
           {peep, "peep"}, {g_hh, "g_hh"}, {g_c, "g_c"}, {b_c, "b_c"}, {drop, "drop"}, {g_ih, "g_ih"}, {b_x, "b_x"},
           {zone_h, "zone_h"}, {zone_c, "zone_c"}})
    check_cpu(t, n, st);
  TORCH_CHECK(!mask.defined() || mask.device().is_cpu(), who, ": mask must be a CPU tensor");
  check_zone(who, zone_h, zone_c, (xg.defined() ? xg : x).size(0), h0, c0);
  TORCH_CHECK(g_hh.defined() == g_c.defined() && g_c.defined() == b_c.defined(), who,
              ": g_hh, g_c and b_c come together (layer_norm)");
  const Tensor none;
  if (st == at::kFloat)
    return forward_impl<float>(xg, h0, c0, w_hh, w_hr, peep, g_hh, g_c, b_c, drop, mask, coupled, eps, train, g_ih,
                               b_x, nullptr, nullptr, none, none, x, w_ih, zone_h, zone_c);
  return forward_impl<double>(xg, h0, c0, w_hh, w_hr, peep, g_hh, g_c, b_c, drop, mask, coupled, eps, train, g_ih,
                              b_x, nullptr, nullptr, none, none, x, w_ih, zone_h, zone_c);
}

std::vector<Tensor> forward(const Tensor& xg_, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                            const std::optional<Tensor>& w_hr, const std::optional<Tensor>& peep,
                            const std::optional<Tensor>& g_hh, const std::optional<Tensor>& g_c,
                            const std::optional<Tensor>& b_c, const std::optional<Tensor>& drop,
                            const std::optional<Tensor>& mask, bool coupled, double eps,
                            const std::optional<Tensor>& zone_h, const std::optional<Tensor>& zone_c, bool train,
                            const std::optional<Tensor>& g_ih_, const std::optional<Tensor>& b_x_) {
  const Tensor xg = xg_.contiguous(), g_ih = opt(g_ih_), b_x = opt(b_x_);
  const bool ln = g_hh.has_value() && g_hh->defined();
  // g_ih: xg is W_ih x (no bias) and the kernel normalises it in place, so it must be the caller's own buffer.
  TORCH_CHECK(!g_ih.defined() || (!train && ln && xg.is_same(xg_)),
              "lstm_scan_cpp: g_ih is for inference with layer_norm, on a contiguous xg the kernel may overwrite");
  TORCH_CHECK(!b_x.defined() || (!train && (g_ih.defined() || !ln)),
              "lstm_scan_cpp: b_x is for inference, and with layer_norm it comes with g_ih");
  return checked_forward("lstm_scan_cpp", xg, Tensor(), Tensor(), h0, c0, w_hh, w_hr, peep, g_hh, g_c, b_c, drop, mask,
                         coupled, eps, zone_h, zone_c, train, g_ih, b_x);
}

// Inference with the input side in the kernel: forward's arguments (train false) with x (T, B, I) and w_ih (G, I)
// in place of xg; b_x (b_ih + b_hh, or nullopt) and, with layer_norm, g_ih finish each step's W_ih x_t.
std::vector<Tensor> forward_input(const Tensor& x_, const Tensor& w_ih_, const Tensor& h0, const Tensor& c0,
                                  const Tensor& w_hh, const std::optional<Tensor>& w_hr,
                                  const std::optional<Tensor>& peep, const std::optional<Tensor>& g_hh,
                                  const std::optional<Tensor>& g_c, const std::optional<Tensor>& b_c,
                                  const std::optional<Tensor>& drop, const std::optional<Tensor>& mask, bool coupled,
                                  double eps, const std::optional<Tensor>& zone_h, const std::optional<Tensor>& zone_c,
                                  const std::optional<Tensor>& g_ih_, const std::optional<Tensor>& b_x_) {
  const Tensor x = x_.contiguous(), w_ih = w_ih_.contiguous(), g_ih = opt(g_ih_), b_x = opt(b_x_);
  TORCH_CHECK(g_ih.defined() == (g_hh.has_value() && g_hh->defined()),
              "lstm_scan_cpp_input: g_ih comes exactly with layer_norm (g_hh)");
  TORCH_CHECK(x.dim() == 3 && w_ih.dim() == 2 && w_ih.size(1) == x.size(2) && w_ih.size(0) == w_hh.size(0),
              "lstm_scan_cpp_input: x must be (T, B, I) and w_ih (G, I) with w_hh's G rows");
  return checked_forward("lstm_scan_cpp_input", Tensor(), x, w_ih, h0, c0, w_hh, w_hr, peep, g_hh, g_c, b_c, drop,
                         mask, coupled, eps, zone_h, zone_c, false, g_ih, b_x);
}

// Inference with int8 recurrent weights: forward's arguments with w_hh (and w_hr) as Int8Weight.
std::vector<Tensor> forward_int8(const Tensor& xg_, const Tensor& h0_, const Tensor& c0_, const Int8Weight& q_hh,
                                 const Int8Weight* q_hr, const std::optional<Tensor>& peep_,
                                 const std::optional<Tensor>& g_hh_, const std::optional<Tensor>& g_c_,
                                 const std::optional<Tensor>& b_c_, const std::optional<Tensor>& mask_, bool coupled,
                                 double eps, const std::optional<Tensor>& g_ih_, const std::optional<Tensor>& b_x_,
                                 const std::optional<Tensor>& zone_h_, const std::optional<Tensor>& zone_c_) {
  const Tensor xg = xg_.contiguous(), h0 = h0_.contiguous(), c0 = c0_.contiguous();
  const Tensor peep = opt(peep_), g_hh = opt(g_hh_), g_c = opt(g_c_), b_c = opt(b_c_), g_ih = opt(g_ih_),
               b_x = opt(b_x_);
  const Tensor zone_h = zone_opt(zone_h_), zone_c = zone_opt(zone_c_);
  TORCH_CHECK(!g_ih.defined() || (g_hh.defined() && xg.is_same(xg_)),
              "lstm_scan_int8: g_ih is for layer_norm, on a contiguous xg the kernel may overwrite");
  TORCH_CHECK(!b_x.defined() || g_ih.defined() || !g_hh.defined(),
              "lstm_scan_int8: with layer_norm b_x comes with g_ih");
  const Tensor mask = mask_.has_value() ? mask_->to(at::kBool).contiguous() : Tensor();
  for (auto& [t, n] : std::initializer_list<std::pair<const Tensor&, const char*>>{
           {xg, "xg"}, {h0, "h0"}, {c0, "c0"}, {peep, "peep"}, {g_hh, "g_hh"}, {g_c, "g_c"}, {b_c, "b_c"},
           {g_ih, "g_ih"}, {b_x, "b_x"}, {zone_h, "zone_h"}, {zone_c, "zone_c"}})
    check_cpu(t, n, at::kFloat);
  check_zone("lstm_scan_int8", zone_h, zone_c, xg.size(0), h0, c0);
  const int64_t G = xg.size(2), P = h0.size(1), H = c0.size(1);
  TORCH_CHECK(q_hh.rows() == G && q_hh.cols() == P, "lstm_scan_int8: w_hh is (", q_hh.rows(), ", ", q_hh.cols(),
              "), expected (", G, ", ", P, ")");
  TORCH_CHECK((q_hr != nullptr) == (P != H), "lstm_scan_int8: w_hr must be given exactly when P != H");
  TORCH_CHECK(q_hr == nullptr || (q_hr->rows() == P && q_hr->cols() == H), "lstm_scan_int8: w_hr must be (", P,
              ", ", H, ")");
  const Tensor none;  // w_hr below only marks "projection": its values are q_hr's, never read
  return forward_impl<float>(xg, h0, c0, none, q_hr ? at::empty({0}, xg.options()) : none, peep, g_hh, g_c, b_c,
                             none, mask, coupled, eps, false, g_ih, b_x, &q_hh, q_hr, none, none, none, none, zone_h,
                             zone_c);
}

// One step of a layer with int8 W_ih and W_hh (streaming): x (B, I) -> y (B, P), h (B, P), c (B, H).
// bias: b_ih + b_hh, added to W_ih x (without LayerNorm), or nullopt.
std::vector<Tensor> step_int8(const Tensor& x, const Tensor& h0, const Tensor& c0, const Int8Weight& q_ih,
                              const Int8Weight& q_hh, const Int8Weight* q_hr, const std::optional<Tensor>& bias,
                              const std::optional<Tensor>& peep, const std::optional<Tensor>& g_hh,
                              const std::optional<Tensor>& g_c, const std::optional<Tensor>& b_c, bool coupled,
                              double eps, const std::optional<Tensor>& g_ih, const std::optional<Tensor>& b_x) {
  Tensor xg = q_ih.apply(x.unsqueeze(0));  // (1, B, G), our own buffer
  if (bias.has_value()) xg.add_(*bias);
  auto out = forward_int8(xg, h0, c0, q_hh, q_hr, peep, g_hh, g_c, b_c, std::nullopt, coupled, eps, g_ih, b_x,
                          std::nullopt, std::nullopt);
  out[0] = out[0][0];
  return out;
}

// Inference with W_hh = left (G, R) @ right (R, P): forward's arguments with the factors for w_hh.
std::vector<Tensor> forward_lowrank(const Tensor& xg_, const Tensor& h0_, const Tensor& c0_, const Tensor& left_,
                                    const Tensor& right_, const std::optional<Tensor>& w_hr_,
                                    const std::optional<Tensor>& peep_, const std::optional<Tensor>& g_hh_,
                                    const std::optional<Tensor>& g_c_, const std::optional<Tensor>& b_c_,
                                    const std::optional<Tensor>& mask_, bool coupled, double eps,
                                    const std::optional<Tensor>& g_ih_, const std::optional<Tensor>& b_x_,
                                    const std::optional<Tensor>& zone_h_, const std::optional<Tensor>& zone_c_) {
  const Tensor xg = xg_.contiguous(), h0 = h0_.contiguous(), c0 = c0_.contiguous();
  const Tensor left = left_.contiguous(), right = right_.contiguous();
  const Tensor zone_h = zone_opt(zone_h_), zone_c = zone_opt(zone_c_);
  const Tensor w_hr = opt(w_hr_), peep = opt(peep_), g_hh = opt(g_hh_), g_c = opt(g_c_), b_c = opt(b_c_);
  const Tensor g_ih = opt(g_ih_), b_x = opt(b_x_);
  TORCH_CHECK(!g_ih.defined() || (g_hh.defined() && xg.is_same(xg_)),
              "lstm_scan_lowrank: g_ih is for layer_norm, on a contiguous xg the kernel may overwrite");
  TORCH_CHECK(!b_x.defined() || g_ih.defined() || !g_hh.defined(),
              "lstm_scan_lowrank: with layer_norm b_x comes with g_ih");
  const Tensor mask = mask_.has_value() ? mask_->to(at::kBool).contiguous() : Tensor();
  const auto st = xg.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble, "lstm_scan_lowrank: float32 or float64 only, got ", st);
  for (auto& [t, n] : std::initializer_list<std::pair<const Tensor&, const char*>>{
           {xg, "xg"}, {h0, "h0"}, {c0, "c0"}, {left, "left"}, {right, "right"}, {w_hr, "w_hr"}, {peep, "peep"},
           {g_hh, "g_hh"}, {g_c, "g_c"}, {b_c, "b_c"}, {g_ih, "g_ih"}, {b_x, "b_x"}, {zone_h, "zone_h"},
           {zone_c, "zone_c"}})
    check_cpu(t, n, st);
  check_zone("lstm_scan_lowrank", zone_h, zone_c, xg.size(0), h0, c0);
  const int64_t G = xg.size(2), P = h0.size(1);
  TORCH_CHECK(left.dim() == 2 && right.dim() == 2 && left.size(0) == G && right.size(1) == P &&
                  left.size(1) == right.size(0),
              "lstm_scan_lowrank: left must be (", G, ", R) and right (R, ", P, ")");
  const Tensor none;
  if (st == at::kFloat)
    return forward_impl<float>(xg, h0, c0, none, w_hr, peep, g_hh, g_c, b_c, none, mask, coupled, eps, false, g_ih,
                               b_x, nullptr, nullptr, left, right, none, none, zone_h, zone_c);
  return forward_impl<double>(xg, h0, c0, none, w_hr, peep, g_hh, g_c, b_c, none, mask, coupled, eps, false, g_ih,
                              b_x, nullptr, nullptr, left, right, none, none, zone_h, zone_c);
}

std::vector<Tensor> backward(const std::optional<Tensor>& dy_, const std::optional<Tensor>& dhn_,
                             const std::optional<Tensor>& dcn_, const std::vector<std::optional<Tensor>>& saved_,
                             const Tensor& w_hh_,
                             const std::optional<Tensor>& w_hr_, const std::optional<Tensor>& peep_,
                             const std::optional<Tensor>& g_hh_, const std::optional<Tensor>& g_c_,
                             const std::optional<Tensor>& drop_, const std::optional<Tensor>& mask_,
                             const std::optional<Tensor>& zone_h_, const std::optional<Tensor>& zone_c_, bool coupled,
                             bool need_w, bool need_extra) {
  TORCH_CHECK(saved_.size() == 10, "lstm_scan_cpp: expected 10 saved tensors, got ", saved_.size());
  std::vector<Tensor> s;
  for (const auto& t : saved_) s.push_back(opt(t));
  const Tensor mask = mask_.has_value() ? mask_->to(at::kBool).contiguous() : Tensor();
  const Tensor dy = opt(dy_), dhn = opt(dhn_), dcn = opt(dcn_);
  const Tensor w_hh = w_hh_.contiguous();
  const Tensor w_hr = opt(w_hr_), peep = opt(peep_), g_hh = opt(g_hh_), g_c = opt(g_c_), drop = opt(drop_);
  const Tensor zone_h = zone_opt(zone_h_), zone_c = zone_opt(zone_c_);
  if (s[0].scalar_type() == at::kFloat)
    return backward_impl<float>(dy, dhn, dcn, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], w_hh,
                                w_hr, peep, g_hh, g_c, drop, mask, zone_h, zone_c, coupled, need_w, need_extra);
  return backward_impl<double>(dy, dhn, dcn, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], w_hh,
                               w_hr, peep, g_hh, g_c, drop, mask, zone_h, zone_c, coupled, need_w, need_extra);
}

std::string cpu_vendor() { return g_amd ? "amd" : "other"; }
int64_t family() { return cpu_family(); }

std::string isa_name() {
  switch (g_isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "generic";
  }
}

// Test hooks: run the portable kernels / the other matrix-product paths on a machine that has the fast ones.
void set_isa(const std::string& name) {
  const Isa best = detect_isa();
  Isa want = name == "avx512" ? Isa::kAvx512 : name == "avx2" ? Isa::kAvx2 : Isa::kGeneric;
  TORCH_CHECK(name == "generic" || name == "avx2" || name == "avx512", "unknown isa ", name);
  TORCH_CHECK(static_cast<int>(want) <= static_cast<int>(best), "this CPU does not support ", name);
  g_isa = want;
}
const char* const kGemmNames[] = {"auto", "brgemm", "panels", "packed", "blas", "aten", "gemv"};
constexpr int kGemmModes = 7;
std::string gemm_name() { return kGemmNames[static_cast<int>(g_gemm)]; }
void set_gemm(const std::string& name) {
  int i = 0;
  while (i < kGemmModes && name != kGemmNames[i]) ++i;
  TORCH_CHECK(i < kGemmModes, "unknown gemm mode ", name, " (auto, brgemm, panels, packed, blas, aten or gemv)");
  TORCH_CHECK(name != "blas" || direct_blas_available(), "no BLAS symbols in this torch build");
  TORCH_CHECK(name != "packed" || packed_blas_available(), "no packed-GEMM symbols in this torch build");
  g_gemm = static_cast<GemmMode>(i);
}
// The path choose_gemm takes for a float32 per-step product of M rows, inner dimension K, `steps` steps.
std::string gemm_for(int64_t M, int64_t K, int64_t steps) {
  return kGemmNames[static_cast<int>(choose_gemm<float>(M, K, steps))];
}
// The panels' width for M rows (panel_width), its hook.
int64_t panel_width_for(int64_t M) { return panel_width(M); }
void set_panel_width(int64_t width) {
  TORCH_CHECK(width == 0 || width == 16 || width == 32, "set_panel_width: 0 (the rule), 16 or 32, got ", width);
  g_panel_width = width;
}
// The path of the float32 input side in inference for T B rows and W_ih (G, I) (choose_input_gemm), its hook.
std::string input_gemm(int64_t rows, int64_t G, int64_t I) {
  return kGemmNames[static_cast<int>(choose_input_gemm<float>(rows, G * I))];
}
// The whole-sequence products' path (see whole_on_panels): "panels" or "blas"; its hook takes those or "auto".
std::string whole_gemm() { return whole_on_panels() ? "panels" : "blas"; }
void set_whole_gemm(const std::string& name) {
  TORCH_CHECK(name == "auto" || name == "panels" || name == "blas", "unknown whole-product gemm mode ", name,
              " (auto, panels or blas)");
  g_whole_gemm = name == "auto" ? GemmMode::kAuto : name == "panels" ? GemmMode::kPanels : GemmMode::kBlas;
}
void set_input_gemm(const std::string& name) {
  TORCH_CHECK(name == "auto" || name == "panels" || name == "blas" || name == "aten",
              "unknown input-side gemm mode ", name, " (auto, panels, blas or aten)");
  int i = 0;
  while (name != kGemmNames[i]) ++i;
  g_input_gemm = static_cast<GemmMode>(i);
}

// One per-step product as the scan runs it: C (M, N) = A (M, K) @ W (K, N) through the path the current
// mode chooses, `steps` times (W prepared once). Returns C and the seconds the steps took (benchmarks and
// the tests of every path).
std::tuple<Tensor, double> step_product(const Tensor& A_, const Tensor& W_, int64_t steps) {
  TORCH_CHECK(A_.dim() == 2 && W_.dim() == 2 && A_.size(1) == W_.size(0), "step_product: A (M, K) and W (K, N)");
  TORCH_CHECK(A_.scalar_type() == W_.scalar_type() && A_.device().is_cpu() && W_.device().is_cpu(),
              "step_product: CPU tensors of one dtype");
  TORCH_CHECK(steps >= 1, "step_product: steps >= 1");
  const Tensor A = A_.contiguous(), W = W_.contiguous();
  const int64_t M = A.size(0), K = A.size(1), N = W.size(1);
  Tensor C = at::empty({M, N}, A.options());
  double secs = 0;
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "step_product", [&] {
    const StepGemm<scalar_t> g(M, N, K, W.data_ptr<scalar_t>(), N, steps);
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < steps; ++s) g.run(A.data_ptr<scalar_t>(), K, C.data_ptr<scalar_t>(), N);
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  });
  return {C, secs};
}

// --- the handwriting network's windowed first layer (lstmkit/models/_window_bptt.py) ------------------------------
// Graves's (2013) synthesis layer: a plain LSTM cell reading [x_t, w_{t-1}] and a soft window of K Gaussians over a
// text of U symbols (one-hot, alphabet A). The Python Function allocates every buffer, computes the input side
// xg = x W_x^T + b_ih + b_hh for all T and the weight gradients after the loop; these run the time loops: per step
// one prepared product for all four gates ([h, w] @ W_hw^T), the 1-D layer's gate pass, one for the window's
// parameters, then the window in plain loops. Equations and masks: the Python module's docstring (its tensor-op
// loops are the same computation off these kernels). Shapes: T steps, B rows, G = 4H, HA = H + A.

namespace {

void window_check(const Tensor& t, const char* name, const Tensor& like, at::IntArrayRef sizes) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.scalar_type() == like.scalar_type() &&
                  t.sizes() == sizes,
              "window kernel: ", name, " must be a contiguous CPU tensor of shape ", sizes, " and xg's dtype, got ",
              t.sizes());
}

template <typename T>
void window_forward_impl(const Tensor& xg, const Tensor& w_hw_t, const Tensor& w_win_t, const Tensor& b_win,
                         const Tensor& onehot, const Tensor& in_text, const Tensor& valid, Tensor& hw, Tensor& cs,
                         Tensor& kappas, Tensor& acts, Tensor& tcs, Tensor& hs, Tensor& es, Tensor& gs, Tensor& phis) {
  const int64_t Tn = xg.size(0), B = xg.size(1), G = xg.size(2), H = G / 4, HA = hw.size(2), A = HA - H;
  const int64_t K3 = b_win.size(0), K = K3 / 3, U = onehot.size(1);
  const StepGemm<T> rec(B, G, HA, w_hw_t.data_ptr<T>(), G, Tn);  // [h, w] (B, HA) @ W_hw^T (HA, G)
  const StepGemm<T> win(B, K3, H, w_win_t.data_ptr<T>(), K3, Tn);  // h (B, H) @ W_win^T (H, 3K)
  std::vector<T> r(B * G), p(B * K3), phi(U);
  const FwdFn<T> fn = pick_fwd<T, false, false, false, true>();
  const T *oh = onehot.data_ptr<T>(), *it = in_text.data_ptr<T>(), *bw = b_win.data_ptr<T>();
  const bool* vm = valid.defined() ? valid.data_ptr<bool>() : nullptr;
  T *hw0 = hw.data_ptr<T>(), *cs0 = cs.data_ptr<T>(), *kp0 = kappas.data_ptr<T>(), *es0 = es.data_ptr<T>();
  T *gs0 = gs.data_ptr<T>(), *ph0 = phis.data_ptr<T>(), *hs0 = hs.data_ptr<T>();
  for (int64_t t = 0; t < Tn; ++t) {
    const T* hw_t = hw0 + t * B * HA;
    T* hw_n = hw0 + (t + 1) * B * HA;
    rec.run(hw_t, HA, r.data(), G);
    FwdArgs<T> a{};
    a.xg = xg.data_ptr<T>() + t * B * G;
    a.r = r.data();
    a.act = acts.data_ptr<T>() + t * B * G;
    a.c_prev = cs0 + t * B * H;
    a.c_new = cs0 + (t + 1) * B * H;
    a.tc = tcs.data_ptr<T>() + t * B * H;
    a.h = hs0 + t * B * H;
    a.H = H;
    a.G = G;
    fn(a, 0, B, 0, H);
    win.run(a.h, H, p.data(), K3);
    for (int64_t b = 0; b < B; ++b) {
      const bool v = vm == nullptr || vm[t * B + b];
      const T* pb = p.data() + b * K3;
      const T* kp = kp0 + (t * B + b) * K;
      T* kn = kp0 + ((t + 1) * B + b) * K;
      T* e = es0 + (t * B + b) * 2 * K;
      T* g = gs0 + (t * B + b) * K * U;
      std::fill(phi.begin(), phi.end(), T(0));
      for (int64_t k = 0; k < K; ++k) {
        const T ah = pb[k] + bw[k], beta = std::exp(pb[K + k] + bw[K + k]);
        const T step = std::exp(pb[2 * K + k] + bw[2 * K + k]);
        const T kappa = kp[k] + step;
        e[k] = beta;
        e[K + k] = step;
        kn[k] = v ? kappa : kp[k];
        for (int64_t u = 0; u < U; ++u) {
          const T d = kappa - T(u);
          const T gv = std::exp(ah - beta * (d * d));
          g[k * U + u] = gv;
          phi[u] += gv;
        }
      }
      T* phr = ph0 + (t * B + b) * U;
      for (int64_t u = 0; u < U; ++u) phr[u] = v ? phi[u] * it[b * U + u] : T(0);
      T* row = hw_n + b * HA;
      const T* prev = hw_t + b * HA;
      if (v) {
        std::memcpy(row, hs0 + (t * B + b) * H, H * sizeof(T));
        T* w = row + H;
        std::fill(w, w + A, T(0));
        const T* ohb = oh + b * U * A;
        for (int64_t u = 0; u < U; ++u) {
          const T f = phr[u];
          if (f == T(0)) continue;  // past the text (the one-hot row is zero there too)
          for (int64_t q = 0; q < A; ++q) w[q] += f * ohb[u * A + q];
        }
      } else {  // past its end a sequence keeps its state
        std::memcpy(row, prev, HA * sizeof(T));
        std::memcpy(cs0 + ((t + 1) * B + b) * H, cs0 + (t * B + b) * H, H * sizeof(T));
      }
    }
  }
}

template <typename T>
void window_backward_impl(const Tensor& dh_out, const Tensor& dw_out, const Tensor& dphi_out, const Tensor& w_hw,
                          const Tensor& w_win, const Tensor& onehot, const Tensor& in_text, const Tensor& valid,
                          const Tensor& cs, const Tensor& kappas, const Tensor& acts, const Tensor& tcs,
                          const Tensor& es, const Tensor& gs, Tensor& dh, Tensor& dc, Tensor& dkappa, Tensor& dw,
                          Tensor& das, Tensor& dps) {
  const int64_t Tn = acts.size(0), B = acts.size(1), G = acts.size(2), H = G / 4, HA = w_hw.size(1), A = HA - H;
  const int64_t K3 = w_win.size(0), K = K3 / 3, U = onehot.size(1);
  const StepGemm<T> rec(B, HA, G, w_hw.data_ptr<T>(), HA, Tn);  // da (B, G) @ W_hw (G, HA)
  const StepGemm<T> win(B, H, K3, w_win.data_ptr<T>(), H, Tn);  // dp (B, 3K) @ W_win (3K, H)
  std::vector<T> dhs(B * H), dhw(B * HA), dphi(U);
  std::vector<char> live(B);
  const BwdFn<T> fn = pick_bwd<T, false, false, false>();
  const T *oh = onehot.data_ptr<T>(), *it = in_text.data_ptr<T>();
  const bool* vm = valid.defined() ? valid.data_ptr<bool>() : nullptr;
  const T* dho = dh_out.defined() ? dh_out.data_ptr<T>() : nullptr;
  const T* dwo = dw_out.defined() ? dw_out.data_ptr<T>() : nullptr;
  const T* dpo = dphi_out.defined() ? dphi_out.data_ptr<T>() : nullptr;
  T *dh0 = dh.data_ptr<T>(), *dc0 = dc.data_ptr<T>(), *dk0 = dkappa.data_ptr<T>(), *dw0 = dw.data_ptr<T>();
  for (int64_t t = Tn - 1; t >= 0; --t) {
    T* dp_t = dps.data_ptr<T>() + t * B * K3;
    T* da_t = das.data_ptr<T>() + t * B * G;
    for (int64_t b = 0; b < B; ++b) {
      T* dwb = dw0 + b * A;
      if (dwo != nullptr)  // w_t: the next step's state and this step's w output
        for (int64_t q = 0; q < A; ++q) dwb[q] += dwo[(t * B + b) * A + q];
      live[b] = vm == nullptr || vm[t * B + b];
      T* dpb = dp_t + b * K3;
      if (!live[b]) {  // past the end the state went straight through: dh, dc, dkappa and dw stay as they are
        std::fill(dpb, dpb + K3, T(0));
        std::fill(da_t + b * G, da_t + (b + 1) * G, T(0));
        std::fill(dhs.begin() + b * H, dhs.begin() + (b + 1) * H, T(0));
        continue;
      }
      const T* ohb = oh + b * U * A;
      for (int64_t u = 0; u < U; ++u) {
        T s = 0;
        for (int64_t q = 0; q < A; ++q) s += ohb[u * A + q] * dwb[q];
        dphi[u] = s + (dpo != nullptr ? dpo[(t * B + b) * U + u] * it[b * U + u] : T(0));
      }
      const T* e = es.data_ptr<T>() + (t * B + b) * 2 * K;
      const T* g = gs.data_ptr<T>() + (t * B + b) * K * U;
      const T* kn = kappas.data_ptr<T>() + ((t + 1) * B + b) * K;
      T* dk = dk0 + b * K;
      for (int64_t k = 0; k < K; ++k) {
        T sa = 0, sd = 0, sd2 = 0;
        for (int64_t u = 0; u < U; ++u) {
          const T dz = dphi[u] * g[k * U + u], d = kn[k] - T(u), dzd = dz * d;
          sa += dz;
          sd += dzd;
          sd2 += dzd * d;
        }
        const T beta = e[k];
        dpb[k] = sa;
        dpb[K + k] = -(sd2 * beta);
        dk[k] -= T(2) * beta * sd;
        dpb[2 * K + k] = dk[k] * e[K + k];
      }
      for (int64_t j = 0; j < H; ++j)
        dhs[b * H + j] = dh0[b * H + j] + (dho != nullptr ? dho[(t * B + b) * H + j] : T(0));
    }
    win.run(dp_t, K3, dhw.data(), H);  // d(alpha_hat, beta_hat, kappa_hat) W_win (B, H); zero rows past the end
    for (int64_t i = 0; i < B * H; ++i) dhs[i] += dhw[i];
    BwdArgs<T> a{};
    a.act = acts.data_ptr<T>() + t * B * G;
    a.tc = tcs.data_ptr<T>() + t * B * H;
    a.c_prev = cs.data_ptr<T>() + t * B * H;
    a.c_new = a.c_prev;  // read by the peephole variants only
    a.dhn = dhs.data();
    a.dc = dc0;
    a.da = da_t;
    a.dr = da_t;
    a.H = H;
    a.G = G;
    for (int64_t b = 0; b < B; ++b)
      if (live[b]) fn(a, b, b + 1, 0, H, nullptr, nullptr);  // da_t and dc_{t-1} (over dc) of the rows still running
    rec.run(da_t, G, dhw.data(), HA);  // [dh_{t-1}, dw_{t-1}]
    for (int64_t b = 0; b < B; ++b) {
      if (!live[b]) continue;
      std::memcpy(dh0 + b * H, dhw.data() + b * HA, H * sizeof(T));
      std::memcpy(dw0 + b * A, dhw.data() + b * HA + H, A * sizeof(T));
    }
  }
}

}  // namespace

void window_forward(const Tensor& xg, const Tensor& w_hw_t, const Tensor& w_win_t, const Tensor& b_win,
                    const Tensor& onehot, const Tensor& in_text, const std::optional<Tensor>& valid, Tensor& hw,
                    Tensor& cs, Tensor& kappas, Tensor& acts, Tensor& tcs, Tensor& hs, Tensor& es, Tensor& gs,
                    Tensor& phis) {
  TORCH_CHECK(xg.dim() == 3 && xg.size(2) % 4 == 0 &&
                  (xg.scalar_type() == at::kFloat || xg.scalar_type() == at::kDouble),
              "window kernel: xg must be float32/float64 (T, B, 4H)");
  const int64_t Tn = xg.size(0), B = xg.size(1), G = xg.size(2), H = G / 4, HA = w_hw_t.size(0);
  const int64_t K3 = b_win.size(0), U = onehot.size(1), A = HA - H;
  TORCH_CHECK(K3 % 3 == 0 && A >= 1, "window kernel: b_win must be (3K,) and w_hw_t (H + A, 4H)");
  window_check(xg, "xg", xg, {Tn, B, G});
  window_check(w_hw_t, "w_hw_t", xg, {HA, G});
  window_check(w_win_t, "w_win_t", xg, {H, K3});
  window_check(b_win, "b_win", xg, {K3});
  window_check(onehot, "onehot", xg, {B, U, A});
  window_check(in_text, "in_text", xg, {B, U});
  window_check(hw, "hw", xg, {Tn + 1, B, HA});
  window_check(cs, "cs", xg, {Tn + 1, B, H});
  window_check(kappas, "kappas", xg, {Tn + 1, B, K3 / 3});
  window_check(acts, "acts", xg, {Tn, B, G});
  window_check(tcs, "tcs", xg, {Tn, B, H});
  window_check(hs, "hs", xg, {Tn, B, H});
  window_check(es, "es", xg, {Tn, B, 2 * K3 / 3});
  window_check(gs, "gs", xg, {Tn, B, K3 / 3, U});
  window_check(phis, "phis", xg, {Tn, B, U});
  const Tensor v = valid.has_value() ? *valid : Tensor();
  TORCH_CHECK(!v.defined() || (v.scalar_type() == at::kBool && v.is_contiguous() &&
                                v.sizes() == at::IntArrayRef{Tn, B}),
              "window kernel: valid must be a contiguous bool (T, B)");
  AT_DISPATCH_FLOATING_TYPES(xg.scalar_type(), "window_forward", [&] {
    window_forward_impl<scalar_t>(xg, w_hw_t, w_win_t, b_win, onehot, in_text, v, hw, cs, kappas, acts, tcs, hs, es,
                                  gs, phis);
  });
}

void window_backward(const std::optional<Tensor>& dh_out, const std::optional<Tensor>& dw_out,
                     const std::optional<Tensor>& dphi_out, const Tensor& w_hw, const Tensor& w_win,
                     const Tensor& onehot, const Tensor& in_text, const std::optional<Tensor>& valid, const Tensor& cs,
                     const Tensor& kappas, const Tensor& acts, const Tensor& tcs, const Tensor& es, const Tensor& gs,
                     Tensor& dh, Tensor& dc, Tensor& dkappa, Tensor& dw, Tensor& das, Tensor& dps) {
  TORCH_CHECK(acts.dim() == 3 && acts.size(2) % 4 == 0 &&
                  (acts.scalar_type() == at::kFloat || acts.scalar_type() == at::kDouble),
              "window kernel: acts must be float32/float64 (T, B, 4H)");
  const int64_t Tn = acts.size(0), B = acts.size(1), G = acts.size(2), H = G / 4, HA = w_hw.size(1);
  const int64_t K3 = w_win.size(0), K = K3 / 3, U = onehot.size(1), A = HA - H;
  window_check(w_hw, "w_hw", acts, {G, HA});
  window_check(w_win, "w_win", acts, {K3, H});
  window_check(onehot, "onehot", acts, {B, U, A});
  window_check(in_text, "in_text", acts, {B, U});
  window_check(cs, "cs", acts, {Tn + 1, B, H});
  window_check(kappas, "kappas", acts, {Tn + 1, B, K});
  window_check(tcs, "tcs", acts, {Tn, B, H});
  window_check(es, "es", acts, {Tn, B, 2 * K});
  window_check(gs, "gs", acts, {Tn, B, K, U});
  window_check(dh, "dh", acts, {B, H});
  window_check(dc, "dc", acts, {B, H});
  window_check(dkappa, "dkappa", acts, {B, K});
  window_check(dw, "dw", acts, {B, A});
  window_check(das, "das", acts, {Tn, B, G});
  window_check(dps, "dps", acts, {Tn, B, K3});
  const auto opt = [&](const std::optional<Tensor>& g, const char* name, at::IntArrayRef sizes) {
    if (!g.has_value()) return Tensor();
    window_check(*g, name, acts, sizes);
    return *g;
  };
  const Tensor gh = opt(dh_out, "dh_out", {Tn, B, H}), gw = opt(dw_out, "dw_out", {Tn, B, A});
  const Tensor gp = opt(dphi_out, "dphi_out", {Tn, B, U});
  const Tensor v = valid.has_value() ? *valid : Tensor();
  TORCH_CHECK(!v.defined() || (v.scalar_type() == at::kBool && v.is_contiguous() &&
                                v.sizes() == at::IntArrayRef{Tn, B}),
              "window kernel: valid must be a contiguous bool (T, B)");
  AT_DISPATCH_FLOATING_TYPES(acts.scalar_type(), "window_backward", [&] {
    window_backward_impl<scalar_t>(gh, gw, gp, w_hw, w_win, onehot, in_text, v, cs, kappas, acts, tcs, es, gs, dh, dc,
                                   dkappa, dw, das, dps);
  });
}

// --- the ConvLSTM's gate math (the plain cell) -----------------------------------------------------------------
// A ConvLSTM step's pre-activations (B, 4 Hc, H, W) are, per batch row, the 1-D layer's row of gate blocks
// i, f, g, o with H := Hc H W: the same kernels (fwd_rows without the recurrent term, bwd_rows) run them, one
// pass each way instead of a dozen tensor operations. Masks stay with the caller (it zeroes dh and dc of
// finished rows before the backward and carries their state after the forward). Threads split the rows and
// column blocks of each row.

namespace {

constexpr int64_t kConvCols = 16384;  // columns of one row a thread takes at a time

void conv_rows_check(const Tensor& t, const char* name, const Tensor& like, int64_t width) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.scalar_type() == like.scalar_type() &&
              t.dim() >= 2 && t.size(0) == like.size(0) && t.numel() == like.size(0) * width,
              "convlstm pointwise: ", name, " must be a contiguous CPU tensor of B rows of ", width, " of pre's dtype");
}

template <typename F>
void conv_row_blocks(int64_t B, int64_t H, const F& f) {
  const int64_t blocks = (H + kConvCols - 1) / kConvCols;
  at::parallel_for(0, B * blocks, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t b = q / blocks, j0 = (q % blocks) * kConvCols;
      f(b, j0, std::min(H, j0 + kConvCols));
    }
  });
}

}  // namespace

// act (B, G) gates, c_new, tc = tanh(c_new), h = o tc (B, H each) from pre (B, G) and c_prev (B, H), G = 4 H.
void convlstm_pointwise_forward(const Tensor& pre, const Tensor& c_prev, Tensor& act, Tensor& c_new, Tensor& tc,
                                Tensor& h) {
  TORCH_CHECK(pre.device().is_cpu() && pre.is_contiguous() && pre.dim() >= 2 && pre.size(1) % 4 == 0 &&
              (pre.scalar_type() == at::kFloat || pre.scalar_type() == at::kDouble),
              "convlstm pointwise: pre must be a contiguous CPU float32/float64 tensor (B, 4 Hc, ...)");
  const int64_t B = pre.size(0), G = pre.numel() / std::max<int64_t>(B, 1), H = G / 4;
  conv_rows_check(act, "act", pre, G);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&c_prev, &c_new, &tc, &h})
    conv_rows_check(*t, "c_prev, c_new, tc and h", pre, H);
  AT_DISPATCH_FLOATING_TYPES(pre.scalar_type(), "convlstm_pointwise_forward", [&] {
    using T = scalar_t;
    FwdFn<T> fn = [] { LSTMKIT_PICK(T, fwd_rows<T, false, false, false, true, false>); }();
    FwdArgs<T> a{};
    a.xg = pre.data_ptr<T>();
    a.act = act.data_ptr<T>();
    a.c_prev = c_prev.data_ptr<T>();
    a.c_new = c_new.data_ptr<T>();
    a.tc = tc.data_ptr<T>();
    a.h = h.data_ptr<T>();
    a.H = H;
    a.G = G;
    conv_row_blocks(B, H, [&](int64_t b, int64_t j0, int64_t j1) { fn(a, b, b + 1, j0, j1); });
  });
}

// da (B, G) and dc (B, H; in: dL/dc_t, out: dL/dc_{t-1}) from the saved act, tc, c_prev and dh = dL/dh_t.
void convlstm_pointwise_backward(const Tensor& act, const Tensor& tc, const Tensor& c_prev, const Tensor& dh,
                                 Tensor& dc, Tensor& da) {
  TORCH_CHECK(act.device().is_cpu() && act.is_contiguous() && act.dim() >= 2 && act.size(1) % 4 == 0 &&
              (act.scalar_type() == at::kFloat || act.scalar_type() == at::kDouble),
              "convlstm pointwise: act must be a contiguous CPU float32/float64 tensor (B, 4 Hc, ...)");
  const int64_t B = act.size(0), G = act.numel() / std::max<int64_t>(B, 1), H = G / 4;
  conv_rows_check(da, "da", act, G);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&tc, &c_prev, &dc})
    conv_rows_check(*t, "tc, c_prev and dc", act, H);
  // dh may be a slice of a wider buffer (the data gradient's h channels): each row contiguous, rows apart.
  TORCH_CHECK(dh.device().is_cpu() && dh.scalar_type() == act.scalar_type() && dh.dim() >= 2 &&
              dh.size(0) == B && dh.numel() == B * H && dh[0].is_contiguous() && dh.stride(0) >= H,
              "convlstm pointwise: dh must be B rows of ", H, " contiguous values of act's dtype");
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "convlstm_pointwise_backward", [&] {
    using T = scalar_t;
    BwdFn<T> fn = pick_bwd<T, false, false, false>();
    BwdArgs<T> a{};
    a.act = act.data_ptr<T>();
    a.tc = tc.data_ptr<T>();
    a.c_prev = c_prev.data_ptr<T>();
    a.c_new = c_prev.data_ptr<T>();  // read by the peephole variants only
    a.dc = dc.data_ptr<T>();
    a.da = da.data_ptr<T>();
    a.dr = da.data_ptr<T>();
    a.H = H;
    a.G = G;
    const T* dh0 = dh.data_ptr<T>();
    const int64_t ldh = dh.stride(0);
    conv_row_blocks(B, H, [&](int64_t b, int64_t j0, int64_t j1) {
      BwdArgs<T> r = a;
      r.dhn = dh0 + b * (ldh - H);  // so that the kernel's dhn + b H is row b
      fn(r, b, b + 1, j0, j1, nullptr, nullptr);
    });
  });
}

// --- Winograd F(4x4, 3x3) transforms (winograd_transforms.h) for the ConvLSTM's 3x3 convolutions ---------------
// Each writes into a caller-made contiguous tensor (the ConvLSTM layer reuses its buffers across steps) and
// splits the (image, channel) planes between threads; the chosen ISA's copy runs (the same arithmetic in each).

namespace {

void wino_check(const Tensor& t, const char* name, int64_t dims) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.dim() == dims, "winograd: ", name, " must be a ",
              "contiguous CPU tensor of ", dims, " dimensions");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, "winograd: float32 or float64");
}

// A transformed tensor (36, rows, N): each of the 36 planes contiguous, the planes any distance apart (the
// callers pad it: planes a multiple of 4 KiB apart would share the L1 cache's sets and evict each other).
void wino_check_planes(const Tensor& t, const char* name, int64_t rows, int64_t N, const Tensor& like) {
  TORCH_CHECK(t.device().is_cpu() && t.dim() == 3 && t.size(0) == 36 && t.size(1) == rows && t.size(2) == N &&
              t.stride(2) == 1 && (rows <= 1 || t.stride(1) == N) && t.stride(0) >= rows * N &&
              t.scalar_type() == like.scalar_type(),
              "winograd: ", name, " must be (36, ", rows, ", ", N, ") of the frames' dtype, each plane contiguous");
}

int64_t wino_tiles(int64_t B, int64_t H, int64_t W) { return B * ((H + 3) / 4) * ((W + 3) / 4); }

template <typename F>
void wino_planes(int64_t planes, const F& f) {
  at::parallel_for(0, planes, 1, [&](int64_t p0, int64_t p1) { f(p0, p1); });
}

}  // namespace

#define LSTMKIT_WINO_DISPATCH(scalar, fn, ...)                                                \
  do {                                                                                        \
    if (g_isa == Isa::kAvx512) { LSTMKIT_WINO_X86(avx512::fn<scalar>(__VA_ARGS__)); break; }  \
    if (g_isa == Isa::kAvx2) { LSTMKIT_WINO_X86(avx2::fn<scalar>(__VA_ARGS__)); break; }      \
    generic::fn<scalar>(__VA_ARGS__);                                                         \
  } while (0)
#ifdef LSTMKIT_X86_VARIANTS
#define LSTMKIT_WINO_X86(call) call
#else
#define LSTMKIT_WINO_X86(call) (void)0
#endif

// V (36, C, N) <- the input transform of x (B, C, H, W).
void winograd_input(const Tensor& x, Tensor& V) {
  wino_check(x, "x", 4);
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  wino_check_planes(V, "V", C, wino_tiles(B, H, W), x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "winograd_input", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* vp = V.data_ptr<scalar_t>();
    const int64_t ld = V.stride(0);
    wino_planes(B * C, [&](int64_t p0, int64_t p1) {
      LSTMKIT_WINO_DISPATCH(scalar_t, wino_input, xp, vp, ld, B, C, H, W, p0, p1);
    });
  });
}

// dx (B, C, H, W) <- the adjoint of the input transform applied to dV (36, C, N).
void winograd_input_adjoint(const Tensor& dV, Tensor& dx) {
  wino_check(dx, "dx", 4);
  const int64_t B = dx.size(0), C = dx.size(1), H = dx.size(2), W = dx.size(3);
  wino_check_planes(dV, "dV", C, wino_tiles(B, H, W), dx);
  AT_DISPATCH_FLOATING_TYPES(dx.scalar_type(), "winograd_input_adjoint", [&] {
    const scalar_t* vp = dV.data_ptr<scalar_t>();
    scalar_t* xp = dx.data_ptr<scalar_t>();
    const int64_t ld = dV.stride(0);
    wino_planes(B * C, [&](int64_t p0, int64_t p1) {
      LSTMKIT_WINO_DISPATCH(scalar_t, wino_input_adjoint, vp, ld, xp, B, C, H, W, p0, p1);
    });
  });
}

// y (B, K, H, W) <- the output transform of M (36, K, N), plus bias (K) when given.
void winograd_output(const Tensor& M, const std::optional<Tensor>& bias, Tensor& y) {
  wino_check(y, "y", 4);
  const int64_t B = y.size(0), K = y.size(1), H = y.size(2), W = y.size(3);
  wino_check_planes(M, "M", K, wino_tiles(B, H, W), y);
  const bool has_bias = bias.has_value() && bias->defined();
  if (has_bias) {
    wino_check(*bias, "bias", 1);
    TORCH_CHECK(bias->size(0) == K && bias->scalar_type() == y.scalar_type(), "winograd_output: bias must be (K,)");
  }
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "winograd_output", [&] {
    const scalar_t* mp = M.data_ptr<scalar_t>();
    const scalar_t* bp = has_bias ? bias->data_ptr<scalar_t>() : nullptr;
    scalar_t* yp = y.data_ptr<scalar_t>();
    const int64_t ld = M.stride(0);
    wino_planes(B * K, [&](int64_t p0, int64_t p1) {
      LSTMKIT_WINO_DISPATCH(scalar_t, wino_output, mp, ld, bp, yp, B, K, H, W, p0, p1);
    });
  });
}

// dM (36, K, N) <- the adjoint of the output transform applied to dy (B, K, H, W).
void winograd_output_adjoint(const Tensor& dy, Tensor& dM) {
  wino_check(dy, "dy", 4);
  const int64_t B = dy.size(0), K = dy.size(1), H = dy.size(2), W = dy.size(3);
  wino_check_planes(dM, "dM", K, wino_tiles(B, H, W), dy);
  AT_DISPATCH_FLOATING_TYPES(dy.scalar_type(), "winograd_output_adjoint", [&] {
    const scalar_t* yp = dy.data_ptr<scalar_t>();
    scalar_t* mp = dM.data_ptr<scalar_t>();
    const int64_t ld = dM.stride(0);
    wino_planes(B * K, [&](int64_t p0, int64_t p1) {
      LSTMKIT_WINO_DISPATCH(scalar_t, wino_output_adjoint, yp, mp, ld, B, K, H, W, p0, p1);
    });
  });
}

// --- The Winograd layer's 36 channel products by oneDNN's brgemm ------------------------------------------------
// C_p (M, N) (+)= A_p (M, K) @ B_p (K, N) for each plane p of P, float32. A and C row-major planes (any leading
// dimension); B row-major or column-major (B_p = V_p^T for the weight gradient). B is copied block by block into a
// panel of kProdKB rows by up to kProdNB columns, contiguous, which the micro-kernel reads for all M rows of A:
// read in place, B's rows lie a whole row (N floats, a multiple of 4 KiB at the tasks' shapes) apart and share the
// L1 cache's sets (docs/benchmarks.md, "Why AVX2 was slow"). The work items are (plane, column block) pairs, split
// between threads; each output element is summed in the same order whatever the split.
// Panels of 64 columns by 128 rows (32 KiB): on AVX2 (1 thread, 16-128 columns x 128-512 rows tried) the fastest
// for the forward's (256, 65) @ (65, 4096) planes and the data gradient's (65, 256) @ (256, 4096); the rates against
// MKL's bmm: benchmarks/winograd_products.py (docs/benchmarks.md, session 20).
constexpr int64_t kProdNB = 64, kProdKB = 128;

void plane_products(const Tensor& A, const Tensor& Bm, Tensor& C, bool accumulate) {
  TORCH_CHECK(A.device().is_cpu() && Bm.device().is_cpu() && C.device().is_cpu() && A.scalar_type() == at::kFloat &&
                  Bm.scalar_type() == at::kFloat && C.scalar_type() == at::kFloat && A.dim() == 3 && Bm.dim() == 3 &&
                  C.dim() == 3,
              "plane_products: A, B and C must be 3-dimensional float32 CPU tensors");
  const int64_t P = A.size(0), M = A.size(1), K = A.size(2), N = Bm.size(2);
  TORCH_CHECK(Bm.size(0) == P && C.size(0) == P && Bm.size(1) == K && C.size(1) == M && C.size(2) == N,
              "plane_products: shapes ", A.sizes(), " @ ", Bm.sizes(), " -> ", C.sizes(), " do not match");
  // A dimension of size 1 may have any stride.
  const bool b_rows = N <= 1 || Bm.stride(2) == 1, b_cols = K <= 1 || Bm.stride(1) == 1;
  TORCH_CHECK((K <= 1 || A.stride(2) == 1) && (N <= 1 || C.stride(2) == 1) && (b_rows || b_cols),
              "plane_products: A and C need contiguous rows, B contiguous rows or columns");
  if (P == 0 || M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate) C.zero_();
    return;
  }
  const bool bt = !b_rows;  // column-major planes: B_p[k, n] at k + n * stride(2)
  const float* a = A.data_ptr<float>();
  const float* b = Bm.data_ptr<float>();
  float* c = C.data_ptr<float>();
  const int64_t sa0 = A.stride(0), sb0 = Bm.stride(0), sb1 = Bm.stride(1), sb2 = Bm.stride(2), sc0 = C.stride(0);
  const int64_t lda = M <= 1 ? K : A.stride(1), ldc = M <= 1 ? N : C.stride(1);  // one row: its stride is unused
  const int64_t nb = N <= 2 * kProdNB ? N : kProdNB;  // one block up to 128 columns (the weight gradient's C + Hc)
  const int64_t blocks = (N + nb - 1) / nb;
  at::parallel_for(0, P * blocks, 1, [&](int64_t w0, int64_t w1) {
    std::vector<float> panel(static_cast<size_t>(std::min(K, kProdKB) * nb));
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t p = w / blocks, n0 = (w % blocks) * nb, nw = std::min(nb, N - n0);
      for (int64_t k0 = 0; k0 < K; k0 += kProdKB) {
        const int64_t kw = std::min(kProdKB, K - k0);
        const float* src = b + p * sb0 + k0 * sb1 + n0 * sb2;
        if (!bt) {
          for (int64_t k = 0; k < kw; ++k) std::memcpy(panel.data() + k * nw, src + k * sb1, nw * sizeof(float));
        } else {
          for (int64_t n = 0; n < nw; ++n)
            for (int64_t k = 0; k < kw; ++k) panel[k * nw + n] = src[n * sb2 + k];
        }
        at::native::cpublas::brgemm(M, nw, kw, lda, nw, ldc, accumulate || k0 > 0, a + p * sa0 + k0, panel.data(),
                                    c + p * sc0 + n0, false);
      }
    }
  });
}

}  // namespace lstmkit

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "lstmkit: C++ time loops of the fused LSTM recurrence (see lstmkit/nn/_cpp.py)";
  // The time loops run without the GIL, like torch's own ops.
  m.def("forward", &lstmkit::forward, py::call_guard<py::gil_scoped_release>());
  m.def("backward", &lstmkit::backward, py::call_guard<py::gil_scoped_release>());
  m.def("forward_input", &lstmkit::forward_input, py::call_guard<py::gil_scoped_release>());
  m.def("set_input_chunk", &lstmkit::set_input_chunk);
  m.def("input_chunk", &lstmkit::input_chunk);
  m.def("forward_int8", &lstmkit::forward_int8, py::call_guard<py::gil_scoped_release>());
  m.def("step_int8", &lstmkit::step_int8, py::call_guard<py::gil_scoped_release>());
  m.def("forward_lowrank", &lstmkit::forward_lowrank, py::call_guard<py::gil_scoped_release>());
  m.def("step_product", &lstmkit::step_product, py::call_guard<py::gil_scoped_release>());
  m.def("window_forward", &lstmkit::window_forward, py::call_guard<py::gil_scoped_release>());
  m.def("window_backward", &lstmkit::window_backward, py::call_guard<py::gil_scoped_release>());
  py::class_<lstmkit::Int8Weight>(m, "Int8Weight")
      .def(py::init<const at::Tensor&, const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, bool>())
      .def("rows", &lstmkit::Int8Weight::rows)
      .def("cols", &lstmkit::Int8Weight::cols)
      .def("apply", &lstmkit::Int8Weight::apply, py::call_guard<py::gil_scoped_release>());
  m.def("convlstm_pointwise_forward", &lstmkit::convlstm_pointwise_forward, py::call_guard<py::gil_scoped_release>());
  m.def("convlstm_pointwise_backward", &lstmkit::convlstm_pointwise_backward,
        py::call_guard<py::gil_scoped_release>());
  m.def("winograd_input", &lstmkit::winograd_input, py::call_guard<py::gil_scoped_release>());
  m.def("winograd_input_adjoint", &lstmkit::winograd_input_adjoint, py::call_guard<py::gil_scoped_release>());
  m.def("winograd_output", &lstmkit::winograd_output, py::call_guard<py::gil_scoped_release>());
  m.def("winograd_output_adjoint", &lstmkit::winograd_output_adjoint, py::call_guard<py::gil_scoped_release>());
  m.def("plane_products", &lstmkit::plane_products, py::call_guard<py::gil_scoped_release>());
  m.def("isa", &lstmkit::isa_name);
  m.def("set_isa", &lstmkit::set_isa);
  m.def("gemm", &lstmkit::gemm_name);
  m.def("set_gemm", &lstmkit::set_gemm);
  m.def("gemm_for", &lstmkit::gemm_for);
  m.def("cpu_vendor", &lstmkit::cpu_vendor);
  m.def("cpu_family", &lstmkit::family);
  m.def("input_gemm", &lstmkit::input_gemm);
  m.def("set_input_gemm", &lstmkit::set_input_gemm);
  m.def("whole_gemm", &lstmkit::whole_gemm);
  m.def("set_whole_gemm", &lstmkit::set_whole_gemm);
  m.def("panel_width", &lstmkit::panel_width_for);
  m.def("set_panel_width", &lstmkit::set_panel_width);
}
