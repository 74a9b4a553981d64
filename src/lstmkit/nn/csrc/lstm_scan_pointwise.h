// Pointwise LSTM kernels: the gate math of one time step, for a range of batch rows.
//
// No include guard, on purpose: lstm_scan.cpp includes this file once per instruction set, each
// time inside its own namespace (LSTMKIT_NS) and `#pragma GCC target` region, and picks one
// version at run time. That gives AVX2/AVX-512 code without -march flags, so one build runs on
// any x86-64 machine. Everything here is plain loops over contiguous rows that the compiler
// vectorises; float sigmoid/tanh use the approximations below (sigmoid about 1 ulp, tanh within
// 5.5 units of roundoff; all vectorisable), double uses libm (double is for gradient checks, not speed).
//
// Layout: rows of xg/act/rhat are G = 3H or 4H wide with gate blocks i, [f,] g, o; rows of
// c/tc/chat are H wide; rows of y/h state are P wide (P = H without projection).
// Needs <cmath>, <cstdint>, <cstring>, the LK_INLINE macros and the FwdArgs / PostArgs / BwdPreArgs /
// BwdArgs structs, all declared by lstm_scan.cpp before including this file. Row ranges [b0, b1) and
// column ranges [j0, j1) let several threads share one step (see "work split" there).

namespace LSTMKIT_NS {

LK_INLINE float bits_to_float(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

LK_INLINE int32_t float_to_bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}

// exp(x) for float: Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then Cephes' degree-6
// polynomial for exp(r), scaled by 2^n built in the exponent bits. Rounding to the nearest n uses
// the 1.5 * 2^23 trick (float add/sub and a bit cast: vectorises with plain SSE2).
LK_INLINE float exp_approx(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);  // keeps 2^n a normal float
  const float shifted = x * 1.44269504088896341f + 12582912.0f;
  const float n = shifted - 12582912.0f;
  const int32_t ni = float_to_bits(shifted) - 0x4B400000;  // the integer n, from the mantissa
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  return p * bits_to_float((ni + 127) << 23);
}

LK_INLINE float sigmoid_(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

// tanh for float: x P(x^2) / Q(x^2), a rational fit of degrees 6 and 3 in x^2 made for this kernel by
// benchmarks/tanh_fit.py (weighted least squares on the relative error, iterated as Sanathanan-Koerner, |x| <= 9;
// fit error 7e-9; measured over [-12, 12] and down to 1e-30: within 4.6u on the AVX paths, 5.5u portable).
// Beyond |x| = 9 tanh rounds to +-1 in float32, so x is clamped there (NaN passes the clamp and comes out NaN).
// No exp and one division: the gate pass is bound by its arithmetic, and this is about half the operations of
// 1 - 2 / (e^2|x| + 1) with a polynomial near 0 (the form before session 24, within 1.3u).
LK_INLINE float tanh_(float x) {
  const float xc = x > 9.0f ? 9.0f : (x < -9.0f ? -9.0f : x);
  const float t = xc * xc;
  float p = -8.494087730e-14f;
  p = p * t + 5.280040294e-11f;
  p = p * t - 2.022956558e-08f;
  p = p * t + 1.115537725e-05f;
  p = p * t + 3.104058327e-03f;
  p = p * t + 1.308410168e-01f;
  p = p * t + 1.0f;
  float q = 2.546294127e-04f;
  q = q * t + 2.449558489e-02f;
  q = q * t + 4.641743004e-01f;
  q = q * t + 1.0f;
  return xc * p / q;
}

LK_INLINE double sigmoid_(double x) { return 1.0 / (1.0 + std::exp(-x)); }
LK_INLINE double tanh_(double x) { return std::tanh(x); }

// Mean and 1/sqrt(var + eps) of one row (biased variance, two passes for accuracy, as torch).
template <typename T>
LK_INLINE void row_mean_rstd(const T* __restrict x, int64_t n, T eps, T& mean, T& rstd) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < n; ++k) s += x[k];
  mean = s / T(n);
  T v = 0;
  const T m = mean;
#pragma omp simd reduction(+ : v)
  for (int64_t k = 0; k < n; ++k) {
    const T d = x[k] - m;
    v += d * d;
  }
  rstd = T(1) / std::sqrt(v / T(n) + eps);
}

// LayerNorm of one row in place: x <- (x - mean) * rstd * g + bias (bias may be null).
template <typename T>
LK_INLINE void layer_norm_row_inplace(T* __restrict x, int64_t n, T eps, const T* __restrict g,
                                      const T* __restrict bias) {
  T mean, rs;
  row_mean_rstd(x, n, eps, mean, rs);
  if (bias != nullptr) {
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) x[k] = (x[k] - mean) * rs * g[k] + bias[k];
  } else {
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) x[k] = (x[k] - mean) * rs * g[k];
  }
}

// Forward gate math for rows [b0, b1) and hidden units [j0, j1) of one step: act, c_new, tc (and LN
// saves), and h = o * tanh(.) written to args.h. With a length mask a finished row keeps c_prev (its
// h is handled by post_rows). LayerNorm needs whole rows: then [j0, j1) must be [0, H). Without TRAIN
// (inference) only what the step itself needs is stored: c_new and h (and o, for LayerNorm).
// HAS_R = false (the ConvLSTM's rows, lstm_scan.cpp's convlstm_pointwise_forward): xg holds the whole
// pre-activation and r is unused.
template <typename T, bool COUPLED, bool PEEP, bool LN, bool TRAIN, bool HAS_R = true>
void fwd_rows(const FwdArgs<T>& A, int64_t b0, int64_t b1, int64_t j0, int64_t j1) {
  const int64_t H = A.H, G = A.G;
  constexpr int64_t kI = 0;
  const int64_t of = H, og = COUPLED ? H : 2 * H, oo = og + H;
  for (int64_t b = b0; b < b1; ++b) {
    if constexpr (LN && !TRAIN) {
      // Inference may leave the input side's LayerNorm to the kernel (g_ih set): xg then holds W_ih x_t,
      // normalised here row by row while in cache, instead of in a pass over all (T, B, G) before the loop.
      if (A.g_ih != nullptr) layer_norm_row_inplace(A.xg_own + b * G, G, A.eps, A.g_ih, A.b_x);
    }
    const T* __restrict xg = A.xg + b * G;
    const T* __restrict r = HAS_R ? A.r + b * G : nullptr;
    T* __restrict act = (TRAIN || LN) ? A.act + b * G : nullptr;
    const T* __restrict cp = A.c_prev + b * H;
    T* __restrict cn = A.c_new + b * H;
    T* __restrict tc = TRAIN ? A.tc + b * H : nullptr;
    T* __restrict h = A.h + b * H;
    const T* __restrict p_i = A.p_i;
    const T* __restrict p_f = A.p_f;
    const T* __restrict p_o = A.p_o;
    T mean_r = 0, rs_r = 0;
    if constexpr (LN) {
      row_mean_rstd(r, G, A.eps, mean_r, rs_r);
      A.rrstd[b] = rs_r;
    }
    T* __restrict rh = (LN && TRAIN) ? A.rhat + b * G : nullptr;
    const T* __restrict g_hh = A.g_hh;
    const T* __restrict b_x = A.b_x;
    // Pre-activation at column k: xg + r (+ b_x in inference), or xg + g_hh * LN(r) (keeping LN(r) for the
    // backward).
    auto pre = [&](int64_t k) LK_INLINE_LAMBDA {
      if constexpr (LN) {
        const T v = (r[k] - mean_r) * rs_r;
        if constexpr (TRAIN) rh[k] = v;
        return xg[k] + v * g_hh[k];
      } else if constexpr (HAS_R && !TRAIN) {
        return xg[k] + r[k] + b_x[k];
      } else if constexpr (HAS_R) {
        return xg[k] + r[k];
      } else {
        return xg[k];
      }
    };
#pragma omp simd
    for (int64_t j = j0; j < j1; ++j) {
      const T cpv = cp[j];
      T ai = pre(kI + j), af = 0;
      if constexpr (!COUPLED) af = pre(of + j);
      T ag = pre(og + j), ao = pre(oo + j);
      if constexpr (PEEP) {
        ai += p_i[j] * cpv;
        if constexpr (!COUPLED) af += p_f[j] * cpv;
      }
      const T i = sigmoid_(ai);
      const T g = tanh_(ag);
      T c;
      if constexpr (COUPLED) {
        c = cpv + i * (g - cpv);  // f = 1 - i
      } else {
        const T f = sigmoid_(af);
        if constexpr (TRAIN) act[of + j] = f;
        c = f * cpv + i * g;
      }
      if constexpr (PEEP) ao += p_o[j] * c;  // the output gate's peephole sees the new cell
      const T o = sigmoid_(ao);
      if constexpr (TRAIN) {
        act[kI + j] = i;
        act[og + j] = g;
      }
      if constexpr (TRAIN || LN) act[oo + j] = o;
      cn[j] = c;
      if constexpr (!LN) {
        const T t = tanh_(c);
        if constexpr (TRAIN) tc[j] = t;
        h[j] = o * t;
      }
    }
    if constexpr (LN) {
      T mean, rs;
      row_mean_rstd(cn, H, A.eps, mean, rs);
      A.crstd[b] = rs;
      T* __restrict ch = TRAIN ? A.chat + b * H : nullptr;
      const T* __restrict g_c = A.g_c;
      const T* __restrict b_c = A.b_c;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T v = (cn[j] - mean) * rs;
        const T t = tanh_(b_c[j] + v * g_c[j]);
        if constexpr (TRAIN) {
          ch[j] = v;
          tc[j] = t;
        }
        h[j] = act[oo + j] * t;
      }
    }
    if (A.zc != nullptr) {  // zoneout: c_t = (1 - z) c~_t + z c_{t-1}, after h read c~_t
      const T* __restrict z = A.zc + b * H;
      if (A.c_raw != nullptr) std::memcpy(A.c_raw + b * H + j0, cn + j0, sizeof(T) * (j1 - j0));
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) cn[j] = (T(1) - z[j]) * cn[j] + z[j] * cp[j];
    }
    if (A.mask != nullptr && !A.mask[b]) std::memcpy(cn + j0, cp + j0, sizeof(T) * (j1 - j0));  // finished: keep c
  }
}

// Output side of one forward step on rows [b0, b1), columns [k0, k1) of the P-wide outputs: zoneout
// mixes h_prev into y, y is zeroed past a sequence's end, the carried state h_new is y (or h_prev past
// the end), and h_in_next = h_new * drop feeds the next product.
template <typename T>
void post_rows(const PostArgs<T>& A, int64_t b0, int64_t b1, int64_t k0, int64_t k1) {
  const int64_t P = A.P, n = k1 - k0;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t off = b * P + k0;
    T* __restrict y = A.y + off;
    if (A.zh != nullptr && (A.mask == nullptr || A.mask[b])) {
      const T* __restrict z = A.zh + off;
      const T* __restrict hp = A.h_prev + off;
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) y[k] = (T(1) - z[k]) * y[k] + z[k] * hp[k];
    }
    const T* src = y;
    if (A.mask != nullptr) {
      T* __restrict hn = A.h_new + off;
      if (A.mask[b]) {
        std::memcpy(hn, y, sizeof(T) * n);
      } else {
        std::memcpy(hn, A.h_prev + off, sizeof(T) * n);
        std::memset(y, 0, sizeof(T) * n);
      }
      src = hn;
    }
    if (A.drop != nullptr) {
      const T* __restrict d = A.drop + off;
      T* __restrict hin = A.h_in_next + off;
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) hin[k] = src[k] * d[k];
    }
  }
}

// Backward, rows [b0, b1), columns [k0, k1) of the P-wide dL/dh: first finish the later step's
// dL/dh_t = (dr W_hh) * drop (plus, with zoneout, the part z dL/dh that passed the later step by),
// kept unchanged past a sequence's end; then dL/dh_new of step t, (dy_t + dh) * mask_t, into dst,
// with zoneout (1 - z) of it into dst and z of it kept in dh.
template <typename T>
void bwd_pre_rows(const BwdPreArgs<T>& A, int64_t b0, int64_t b1, int64_t k0, int64_t k1) {
  const int64_t P = A.P, n = k1 - k0;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t off = b * P + k0;
    T* __restrict dh = A.dh + off;
    if (A.dhg != nullptr && (A.mask_next == nullptr || A.mask_next[b])) {
      const T* __restrict src = A.dhg + off;
      const T* __restrict d = A.drop != nullptr ? A.drop + off : nullptr;
      if (A.accumulate) {
        if (d != nullptr) {
#pragma omp simd
          for (int64_t k = 0; k < n; ++k) dh[k] += src[k] * d[k];
        } else {
#pragma omp simd
          for (int64_t k = 0; k < n; ++k) dh[k] += src[k];
        }
      } else if (d != nullptr) {
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) dh[k] = src[k] * d[k];
      } else {
        std::memcpy(dh, src, sizeof(T) * n);
      }
    }
    if (A.dst == nullptr) continue;
    T* __restrict dst = A.dst + off;
    if (A.mask != nullptr && !A.mask[b]) {
      std::memset(dst, 0, sizeof(T) * n);
    } else if (A.zh != nullptr) {
      const T* __restrict z = A.zh + off;
      const T* __restrict dy = A.dy;
      if (dy != nullptr) dy += off;
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) {
        const T total = dy != nullptr ? dy[k] + dh[k] : dh[k];
        dst[k] = (T(1) - z[k]) * total;
        dh[k] = z[k] * total;
      }
    } else if (A.dy != nullptr) {
      const T* __restrict dy = A.dy + off;
#pragma omp simd
      for (int64_t k = 0; k < n; ++k) dst[k] = dy[k] + dh[k];
    } else {
      std::memcpy(dst, dh, sizeof(T) * n);
    }
  }
}

// Backward gate math for rows [b0, b1), hidden units [j0, j1) of one step. dL/d(pre-activations) goes
// to da (this is dL/dxg), dL/d(W_hh h) before LayerNorm to dr, dc is updated in place to dL/dc_{t-1},
// and the peephole / LayerNorm-gain gradients are summed into this chunk's accumulators.
// LayerNorm needs whole rows: then [j0, j1) must be [0, H).
template <typename T, bool COUPLED, bool PEEP, bool LN>
void bwd_rows(const BwdArgs<T>& A, int64_t b0, int64_t b1, int64_t j0, int64_t j1, T* __restrict acc,
              T* __restrict tmp) {
  const int64_t H = A.H, G = A.G;
  constexpr int64_t kI = 0;
  const int64_t of = H, og = COUPLED ? H : 2 * H, oo = og + H;
  // Accumulator layout (see BwdArgs): p_i, p_f, p_o (H each), g_hh (G), g_c, b_c (H each).
  T* __restrict acc_pi = acc;
  T* __restrict acc_pf = acc + H;
  T* __restrict acc_po = acc + 2 * H;
  T* __restrict acc_ghh = acc + 3 * H;
  T* __restrict acc_gc = acc + 3 * H + G;
  T* __restrict acc_bc = acc + 4 * H + G;
  const T* __restrict p_i = A.p_i;
  const T* __restrict p_f = A.p_f;
  const T* __restrict p_o = A.p_o;
  for (int64_t b = b0; b < b1; ++b) {
    T* __restrict da = A.da + b * G;
    if (A.mask != nullptr && !A.mask[b]) {
      // Past the end: no gradient into this step; dc (and dh, in bwd_pre_rows) pass through.
      for (int64_t k = 0; k < G; k += H) std::memset(da + k + j0, 0, sizeof(T) * (j1 - j0));
      if constexpr (LN) std::memset(A.dr + b * G, 0, sizeof(T) * G);
      continue;
    }
    const T* __restrict act = A.act + b * G;
    const T* __restrict tc = A.tc + b * H;
    const T* __restrict cp = A.c_prev + b * H;
    const T* __restrict cn = A.c_new + b * H;
    const T* __restrict dhn = A.dhn + b * H;
    T* __restrict dc = A.dc + b * H;
    T m1c = 0, m2c = 0, rsc = 0;
    const T* __restrict ch = LN ? A.chat + b * H : nullptr;
    if constexpr (LN) {
      // Through LN_c: tmp <- g_c * dL/d(normalised c); keep the two row means for the LN backward.
      const T* __restrict g_c = A.g_c;
      T s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
      for (int64_t j = 0; j < H; ++j) {
        const T o = act[oo + j];
        const T t = tc[j];
        const T dtc = dhn[j] * o * (T(1) - t * t);
        acc_gc[j] += dtc * ch[j];
        acc_bc[j] += dtc;
        const T x = dtc * g_c[j];
        tmp[j] = x;
        s1 += x;
        s2 += x * ch[j];
      }
      m1c = s1 / T(H);
      m2c = s2 / T(H);
      rsc = A.crstd[b];
    }
    const T* __restrict zc = A.zc != nullptr ? A.zc + b * H : nullptr;
    // One hidden unit; `zoned` (std::true_type / false_type) compiles the zoneout terms in or out.
    auto unit = [&](int64_t j, auto zoned) LK_INLINE_LAMBDA {
      const T i = act[kI + j];
      const T g = act[og + j];
      const T o = act[oo + j];
      const T t = tc[j];
      const T d = dhn[j];
      const T cpv = cp[j];
      const T dao = d * t * o * (T(1) - o);
      T dtc;
      if constexpr (LN) {
        dtc = (tmp[j] - m1c - ch[j] * m2c) * rsc;
      } else {
        dtc = d * o * (T(1) - t * t);
      }
      const T dcz = dc[j];  // dL/dc_t
      T dct;  // dL/dc~_t, the additive cell path: with zoneout (1 - z) dL/dc_t reaches c~_t
      if constexpr (decltype(zoned)::value) {
        dct = (T(1) - zc[j]) * dcz + dtc;
      } else {
        dct = dcz + dtc;
      }
      if constexpr (PEEP) dct += dao * p_o[j];
      const T dag = dct * i * (T(1) - g * g);
      T dai, dcn;
      if constexpr (COUPLED) {
        dai = dct * (g - cpv) * i * (T(1) - i);  // f = 1 - i
        dcn = dct * (T(1) - i);
        if constexpr (PEEP) {
          dcn += dai * p_i[j];
          acc_pi[j] += dai * cpv;
          acc_po[j] += dao * cn[j];
        }
      } else {
        const T f = act[of + j];
        dai = dct * g * i * (T(1) - i);
        const T daf = dct * cpv * f * (T(1) - f);
        dcn = dct * f;
        da[of + j] = daf;
        if constexpr (PEEP) {
          dcn += dai * p_i[j] + daf * p_f[j];
          acc_pi[j] += dai * cpv;
          acc_pf[j] += daf * cpv;
          acc_po[j] += dao * cn[j];
        }
      }
      da[kI + j] = dai;
      da[og + j] = dag;
      da[oo + j] = dao;
      if constexpr (decltype(zoned)::value) dcn += zc[j] * dcz;  // and z dL/dc_t passes to c_{t-1} directly
      dc[j] = dcn;
    };
    if (zc != nullptr) {
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) unit(j, std::true_type{});
    } else {
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) unit(j, std::false_type{});
    }
    if constexpr (LN) {
      // Through LN_hh: dr = LN backward of g_hh * da.
      const T* __restrict rh = A.rhat + b * G;
      const T* __restrict g_hh = A.g_hh;
      T* __restrict dr = A.dr + b * G;
      T s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
      for (int64_t k = 0; k < G; ++k) {
        const T x = da[k] * g_hh[k];
        acc_ghh[k] += da[k] * rh[k];
        s1 += x;
        s2 += x * rh[k];
      }
      const T m1 = s1 / T(G), m2 = s2 / T(G), rs = A.rrstd[b];
#pragma omp simd
      for (int64_t k = 0; k < G; ++k) dr[k] = (da[k] * g_hh[k] - m1 - rh[k] * m2) * rs;
    }
  }
}

// y (N) = h (K) @ W (K, N), W row-major with leading dimension ldw: a per-step product of ONE batch
// row. W's rows stream through four at a time into y, which stays in the L1 cache; at batch 1 this
// runs at the memory's speed, where a GEMM call's blocking and packing are pure overhead.
inline void gemv_rows(int64_t K, int64_t N, const float* h, const float* W, int64_t ldw, float* y) {
  for (int64_t n = 0; n < N; ++n) y[n] = 0.0f;
  int64_t k = 0;
  for (; k + 4 <= K; k += 4) {
    const float a0 = h[k], a1 = h[k + 1], a2 = h[k + 2], a3 = h[k + 3];
    const float* __restrict w0 = W + k * ldw;
    const float* __restrict w1 = w0 + ldw;
    const float* __restrict w2 = w1 + ldw;
    const float* __restrict w3 = w2 + ldw;
    float* __restrict out = y;
    for (int64_t n = 0; n < N; ++n) out[n] += a0 * w0[n] + a1 * w1[n] + a2 * w2[n] + a3 * w3[n];
  }
  for (; k < K; ++k) {
    const float a = h[k];
    const float* __restrict w = W + k * ldw;
    float* __restrict out = y;
    for (int64_t n = 0; n < N; ++n) out[n] += a * w[n];
  }
}

}  // namespace LSTMKIT_NS
