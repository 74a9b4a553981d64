// Winograd F(4x4, 3x3) tile transforms for the ConvLSTM's same-padded 3x3 convolutions (Lavin and Gray 2016).
//
// No include guard, on purpose: like lstm_scan_pointwise.h, lstm_scan.cpp includes this file once per
// instruction set, inside its own namespace (LSTMKIT_NS) and `#pragma GCC target` region.
//
// A convolution of x (B, C, H, W) by w (K, C, 3, 3) with padding 1 is cut into 4 x 4 output tiles, th = ceil(H/4)
// down and tw = ceil(W/4) across, N = B th tw tiles numbered n = (b th + ty) tw + tx. Each reads the 6 x 6 input
// patch starting at row 4 ty - 1, column 4 tx - 1 (zeros outside the frame). With xi = 6 a + e (a, e < 6):
//
//   V[xi][c][n] = (B^T d B)[a][e]            input transform of tile n's patch d of channel c
//   M[xi][k][n] = sum_c U[xi][k][c] V[xi][c][n]  36 matrix products (done by the caller, BLAS)
//   y tile      = A^T M A (+ bias[k])          output transform: the 4 x 4 outputs, cropped to the frame
//
// The four kernels here are the input and output transforms and their adjoints (transposes): the backward
// of the input transform scatter-adds B dV B^T into the frame (neighbouring patches overlap by two rows and
// columns), that of the output transform spreads a tile's gradient back as A dY A^T. Each works on one
// (image, channel) plane and one tile row at a time, kWinoLanes tiles (lanes) at once (8; 16 in the AVX-512 copy,
// a frame row of 16 tiles in one chunk), the images of a channel one
// after the other (so each of the 36 transformed planes is read or written in order). The input side splits
// the patch rows into their four column phases (column 4 l + q, q < 4), so the lanes read contiguous memory;
// the output side interleaves the lanes' four columns straight into the frame's rows. Plain loops the
// compiler vectorises: the same source is correct for float and double and every ISA.
//
// Matrices (rows as used below):
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]

namespace LSTMKIT_NS {

constexpr int kWinoLanes = LSTMKIT_WINO_LANES;  // tiles per chunk: one vector register of floats (lstm_scan.cpp)

// dst[l] = src[l] for the chunk's first `valid` lanes, zero after: full chunks take the plain (vectorised) copy.
template <typename T>
LK_INLINE void wino_load(const T* __restrict src, T* __restrict dst, int64_t valid) {
  if (valid == kWinoLanes) {
    for (int l = 0; l < kWinoLanes; ++l) dst[l] = src[l];
  } else {
    for (int l = 0; l < kWinoLanes; ++l) dst[l] = l < valid ? src[l] : T(0);
  }
}

template <typename T>
LK_INLINE void wino_store(const T* __restrict src, T* __restrict dst, int64_t valid) {
  if (valid == kWinoLanes) {
    for (int l = 0; l < kWinoLanes; ++l) dst[l] = src[l];
  } else {
    for (int64_t l = 0; l < valid; ++l) dst[l] = src[l];
  }
}

// out[a] = (B^T v)[a] for the six vectors v[0..5] of kWinoLanes lanes.
template <typename T>
LK_INLINE void wino_bt(const T (*v)[kWinoLanes], T (*out)[kWinoLanes]) {
  for (int l = 0; l < kWinoLanes; ++l) {
    const T d0 = v[0][l], d1 = v[1][l], d2 = v[2][l], d3 = v[3][l], d4 = v[4][l], d5 = v[5][l];
    out[0][l] = 4 * d0 - 5 * d2 + d4;
    out[1][l] = -4 * (d1 + d2) + d3 + d4;
    out[2][l] = 4 * (d1 - d2) - d3 + d4;
    out[3][l] = 2 * (d3 - d1) - d2 + d4;
    out[4][l] = 2 * (d1 - d3) - d2 + d4;
    out[5][l] = 4 * d1 - 5 * d3 + d5;
  }
}

// out[r] = (B v)[r] = sum_a B^T[a][r] v[a]: the adjoint of wino_bt.
template <typename T>
LK_INLINE void wino_b(const T (*v)[kWinoLanes], T (*out)[kWinoLanes]) {
  for (int l = 0; l < kWinoLanes; ++l) {
    const T v0 = v[0][l], v1 = v[1][l], v2 = v[2][l], v3 = v[3][l], v4 = v[4][l], v5 = v[5][l];
    out[0][l] = 4 * v0;
    out[1][l] = -4 * v1 + 4 * v2 - 2 * v3 + 2 * v4 + 4 * v5;
    out[2][l] = -5 * v0 - 4 * v1 - 4 * v2 - v3 - v4;
    out[3][l] = v1 - v2 + 2 * v3 - 2 * v4 - 5 * v5;
    out[4][l] = v0 + v1 + v2 + v3 + v4;
    out[5][l] = v5;
  }
}

// out[i] = (A^T m)[i], i < 4, for six vectors m.
template <typename T>
LK_INLINE void wino_at(const T (*m)[kWinoLanes], T (*out)[kWinoLanes]) {
  for (int l = 0; l < kWinoLanes; ++l) {
    const T m0 = m[0][l], m1 = m[1][l], m2 = m[2][l], m3 = m[3][l], m4 = m[4][l], m5 = m[5][l];
    const T s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
    out[0][l] = m0 + s12 + s34;
    out[1][l] = d12 + 2 * d34;
    out[2][l] = s12 + 4 * s34;
    out[3][l] = d12 + 8 * d34 + m5;
  }
}

// out[a] = (A g)[a] = sum_i A^T[i][a] g[i], a < 6, for four vectors g: the adjoint of wino_at.
template <typename T>
LK_INLINE void wino_a(const T (*g)[kWinoLanes], T (*out)[kWinoLanes]) {
  for (int l = 0; l < kWinoLanes; ++l) {
    const T g0 = g[0][l], g1 = g[1][l], g2 = g[2][l], g3 = g[3][l];
    out[0][l] = g0;
    out[1][l] = g0 + g1 + g2 + g3;
    out[2][l] = g0 - g1 + g2 - g3;
    out[3][l] = g0 + 2 * g1 + 4 * g2 + 8 * g3;
    out[4][l] = g0 - 2 * g1 + 4 * g2 - 8 * g3;
    out[5][l] = g3;
  }
}

// V (36, C, N) from x (B, C, H, W), for the planes p = c B + b in [p0, p1); V's 36 planes ldV apart.
template <typename T>
void wino_input(const T* x, T* V, int64_t ldV, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p0, int64_t p1) {
  const int64_t th = (H + 3) / 4, tw = (W + 3) / 4, N = B * th * tw;
  const int64_t chunks = (tw + kWinoLanes - 1) / kWinoLanes, span = chunks * kWinoLanes + 1;
  std::vector<T> ph(6 * 4 * span);  // [row r][phase q][l]: the patch rows' column 4 l + q - 1
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t c = p / B, b = p % B;  // images fastest: each of the 36 planes of V is then read in order
    const T* plane = x + (b * C + c) * H * W;
    for (int64_t ty = 0; ty < th; ++ty) {
      std::fill(ph.begin(), ph.end(), T(0));
      for (int r = 0; r < 6; ++r) {
        const int64_t row = 4 * ty - 1 + r;
        if (row < 0 || row >= H) continue;
        const T* src = plane + row * W;
        T* dst = ph.data() + r * 4 * span;
        for (int64_t col = 0; col < W; ++col) {  // padded column col + 1 = 4 l + q
          const int64_t pc = col + 1;
          dst[(pc & 3) * span + (pc >> 2)] = src[col];
        }
      }
      const int64_t nrow = (b * th + ty) * tw;
      for (int64_t ch = 0; ch < chunks; ++ch) {
        const int64_t l0 = ch * kWinoLanes;
        T d[6][6][kWinoLanes], t[6][6][kWinoLanes];  // d[r][s], then t[s][a] = (B^T d)[a][s]
        for (int r = 0; r < 6; ++r)
          for (int s = 0; s < 6; ++s) {
            const T* src = ph.data() + (r * 4 + (s & 3)) * span + l0 + (s >> 2);
            for (int l = 0; l < kWinoLanes; ++l) d[s][r][l] = src[l];  // d[s] holds column s, down r
          }
        for (int s = 0; s < 6; ++s) wino_bt<T>(d[s], t[s]);  // t[s][a]: (B^T d)[a][s]
        T col[6][kWinoLanes], v[6][kWinoLanes];
        const int64_t valid = std::min<int64_t>(kWinoLanes, tw - l0);
        for (int a = 0; a < 6; ++a) {
          for (int s = 0; s < 6; ++s)
            for (int l = 0; l < kWinoLanes; ++l) col[s][l] = t[s][a][l];
          wino_bt<T>(col, v);  // v[e] = (B^T d B)[a][e]
          for (int e = 0; e < 6; ++e) wino_store<T>(v[e], V + (6 * a + e) * ldV + c * N + nrow + l0, valid);
        }
      }
    }
  }
}

// dx (B, C, H, W) = the adjoint of wino_input applied to dV (36, C, N), for the planes [p0, p1) (p = c B + b);
// overwrites dx.
template <typename T>
void wino_input_adjoint(const T* dV, int64_t ldV, T* dx, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p0, int64_t p1) {
  const int64_t th = (H + 3) / 4, tw = (W + 3) / 4, N = B * th * tw;
  const int64_t chunks = (tw + kWinoLanes - 1) / kWinoLanes, span = chunks * kWinoLanes + 1;
  const int64_t rows = 4 * th + 2;  // padded rows
  std::vector<T> ph(rows * 4 * span);  // the padded plane's gradient, [row][phase q][l]
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t c = p / B, b = p % B;  // images fastest: each of the 36 planes of V is then read in order
    std::fill(ph.begin(), ph.end(), T(0));
    for (int64_t ty = 0; ty < th; ++ty) {
      const int64_t nrow = (b * th + ty) * tw;
      for (int64_t ch = 0; ch < chunks; ++ch) {
        const int64_t l0 = ch * kWinoLanes;
        const int64_t valid = std::min<int64_t>(kWinoLanes, tw - l0);
        T t[6][6][kWinoLanes];  // t[a][s] = (dV B^T)[a][s]
        T v[6][kWinoLanes];
        for (int a = 0; a < 6; ++a) {
          for (int e = 0; e < 6; ++e) wino_load<T>(dV + (6 * a + e) * ldV + c * N + nrow + l0, v[e], valid);
          wino_b<T>(v, t[a]);  // t[a][s] = sum_e dV[a][e] B^T[e][s]
        }
        T col[6][kWinoLanes], d[6][kWinoLanes];
        for (int s = 0; s < 6; ++s) {
          for (int a = 0; a < 6; ++a)
            for (int l = 0; l < kWinoLanes; ++l) col[a][l] = t[a][s][l];
          wino_b<T>(col, d);  // d[r] = (B dV B^T)[r][s]
          for (int r = 0; r < 6; ++r) {
            T* dst = ph.data() + ((4 * ty + r) * 4 + (s & 3)) * span + l0 + (s >> 2);
            for (int l = 0; l < kWinoLanes; ++l) dst[l] += d[r][l];
          }
        }
      }
    }
    T* plane = dx + (b * C + c) * H * W;
    for (int64_t row = 0; row < H; ++row) {
      const T* src = ph.data() + (row + 1) * 4 * span;
      T* dst = plane + row * W;
      for (int64_t col = 0; col < W; ++col) {
        const int64_t pc = col + 1;
        dst[col] = src[(pc & 3) * span + (pc >> 2)];
      }
    }
  }
}

// The output side works on pieces: runs of planes of one channel k (images b0 .. b0 + nb - 1, whose tiles lie side by
// side in each of the 36 planes of M), at most kWinoPieceTiles tiles. Its two passes meet in a buffer of 24 values a
// tile, [row][tile] (about 99 KB in float: it stays in the L2 cache): the pass over M handles one column e of the
// tile at a time, so it reads 6 planes of M side by side (contiguous runs), not 36 (reading all 36 at once, as this
// code first did, ran at a third of the memory's speed: more streams than the hardware prefetcher follows); the
// pass over the frame does the other dimension from the buffer. Rows are padded (wino_pad) so that a chunk's
// lanes past the piece's end stay inside their row.
constexpr int64_t kWinoPieceTiles = 1024;

inline int64_t wino_pad(int64_t tiles) { return (tiles + 2 * kWinoLanes - 1) / kWinoLanes * kWinoLanes; }

// f(k, b0, nb, buf, ld) for each piece of the planes p = k B + b in [p0, p1) (per tiles a frame): channel k, frames
// b0 .. b0 + nb - 1, and the buffer of 24 rows ld (padded) tiles apart.
template <typename T, typename F>
void wino_output_pieces(int64_t B, int64_t per, int64_t p0, int64_t p1, const F& f) {
  const int64_t most = std::max<int64_t>(1, kWinoPieceTiles / per);  // frames in a piece
  std::vector<T> buf(24 * wino_pad(most * per));
  for (int64_t p = p0; p < p1;) {
    const int64_t k = p / B, b0 = p % B, nb = std::min({most, B - b0, p1 - p});
    f(k, b0, nb, buf.data(), wino_pad(nb * per));
    p += nb;
  }
}

// f(j, ty, l0, n) for each chunk of kWinoLanes tiles in nb frames of th x tw tiles: frame j, tile row ty, the chunk's
// first tile column l0 and its first tile n in the piece.
template <typename F>
LK_INLINE void wino_frame_chunks(int64_t nb, int64_t th, int64_t tw, const F& f) {
  const int64_t chunks = (tw + kWinoLanes - 1) / kWinoLanes;
  for (int64_t j = 0; j < nb; ++j)
    for (int64_t ty = 0; ty < th; ++ty)
      for (int64_t ch = 0; ch < chunks; ++ch) f(j, ty, ch * kWinoLanes, (j * th + ty) * tw + ch * kWinoLanes);
}

// y (B, K, H, W) = A^T M A (+ bias) from M (36, K, N; planes ldM apart), for the planes p = k B + b in [p0, p1).
template <typename T>
void wino_output(const T* M, int64_t ldM, const T* bias, T* y, int64_t B, int64_t K, int64_t H, int64_t W, int64_t p0,
                 int64_t p1) {
  const int64_t th = (H + 3) / 4, tw = (W + 3) / 4, N = B * th * tw, per = th * tw;
  wino_output_pieces<T>(B, per, p0, p1, [&](int64_t k, int64_t b0, int64_t nb, T* buf, int64_t ld) {
    const int64_t P = nb * per;
    const T* src = M + k * N + b0 * per;  // the piece's first tile in plane 0
    for (int e = 0; e < 6; ++e) {  // pass 1: six planes of M side by side; buf [e][i][tile] = (A^T M)[i][e]
      for (int64_t n0 = 0; n0 < P; n0 += kWinoLanes) {
        const int64_t valid = std::min<int64_t>(kWinoLanes, P - n0);
        T m[6][kWinoLanes], t[4][kWinoLanes];
        for (int a = 0; a < 6; ++a) wino_load<T>(src + (6 * a + e) * ldM + n0, m[a], valid);
        wino_at<T>(m, t);
        for (int i = 0; i < 4; ++i)
          for (int l = 0; l < kWinoLanes; ++l) buf[(e * 4 + i) * ld + n0 + l] = t[i][l];
      }
    }
    const T bk = bias == nullptr ? T(0) : bias[k];
    // pass 2: each frame's rows of 4 x 4 tiles
    wino_frame_chunks(nb, th, tw, [&](int64_t j, int64_t ty, int64_t l0, int64_t n) LK_INLINE_LAMBDA {
      T* plane = y + ((b0 + j) * K + k) * H * W;
      T row[6][kWinoLanes], out[4][kWinoLanes];
      for (int i = 0; i < 4; ++i) {
        const int64_t r = 4 * ty + i;
        if (r >= H) break;
        for (int e = 0; e < 6; ++e)
          for (int l = 0; l < kWinoLanes; ++l) row[e][l] = buf[(e * 4 + i) * ld + n + l];
        wino_at<T>(row, out);  // out[j][l] = (A^T M A)[i][j] of tile l0 + l
        T* dst = plane + r * W + 4 * l0;
        if (4 * (l0 + kWinoLanes) <= W) {  // the whole chunk inside the frame: column 4 l + j
          for (int l = 0; l < kWinoLanes; ++l) {
            dst[4 * l] = out[0][l] + bk;
            dst[4 * l + 1] = out[1][l] + bk;
            dst[4 * l + 2] = out[2][l] + bk;
            dst[4 * l + 3] = out[3][l] + bk;
          }
        } else {  // cropped at the right edge
          for (int64_t col = 0; col < W - 4 * l0 && col < 4 * kWinoLanes; ++col) dst[col] = out[col & 3][col >> 2] + bk;
        }
      }
    });
  });
}

// dM (36, K, N) = the adjoint of wino_output (without the bias) applied to dy (B, K, H, W), planes [p0, p1)
// (p = k B + b); the same pieces and buffer as wino_output, the passes in the other order.
template <typename T>
void wino_output_adjoint(const T* dy, T* dM, int64_t ldM, int64_t B, int64_t K, int64_t H, int64_t W, int64_t p0, int64_t p1) {
  const int64_t th = (H + 3) / 4, tw = (W + 3) / 4, N = B * th * tw, per = th * tw;
  wino_output_pieces<T>(B, per, p0, p1, [&](int64_t k, int64_t b0, int64_t nb, T* buf, int64_t ld) {
    // pass 1: each frame's rows of tiles; buf [i][e][tile] = (dY A^T)[i][e]
    wino_frame_chunks(nb, th, tw, [&](int64_t j, int64_t ty, int64_t l0, int64_t n) LK_INLINE_LAMBDA {
      const T* plane = dy + ((b0 + j) * K + k) * H * W;
      T g[4][kWinoLanes], t[6][kWinoLanes];
      for (int i = 0; i < 4; ++i) {
        const int64_t r = 4 * ty + i;
        const T* src = plane + r * W + 4 * l0;
        if (r < H && 4 * (l0 + kWinoLanes) <= W) {  // the whole chunk inside the frame: column 4 l + j
          for (int l = 0; l < kWinoLanes; ++l) {
            g[0][l] = src[4 * l];
            g[1][l] = src[4 * l + 1];
            g[2][l] = src[4 * l + 2];
            g[3][l] = src[4 * l + 3];
          }
        } else {  // zero below and right of the frame (and in the lanes past the row's tiles)
          for (int c = 0; c < 4; ++c)
            for (int l = 0; l < kWinoLanes; ++l) g[c][l] = (r < H && 4 * (l0 + l) + c < W) ? src[4 * l + c] : T(0);
        }
        wino_a<T>(g, t);  // t[e] = (dY A^T)[i][e]
        // All lanes: those past the row's tiles land on the next row's, written after, or in the padding.
        for (int e = 0; e < 6; ++e)
          for (int l = 0; l < kWinoLanes; ++l) buf[(i * 6 + e) * ld + n + l] = t[e][l];
      }
    });
    const int64_t P = nb * per;
    T* dst = dM + k * N + b0 * per;
    for (int e = 0; e < 6; ++e) {  // pass 2: six planes of dM side by side
      for (int64_t n0 = 0; n0 < P; n0 += kWinoLanes) {
        const int64_t valid = std::min<int64_t>(kWinoLanes, P - n0);
        T col[4][kWinoLanes], out[6][kWinoLanes];
        for (int i = 0; i < 4; ++i)
          for (int l = 0; l < kWinoLanes; ++l) col[i][l] = buf[(i * 6 + e) * ld + n0 + l];
        wino_a<T>(col, out);  // out[a] = (A dY A^T)[a][e]
        for (int a = 0; a < 6; ++a) wino_store<T>(out[a], dst + (6 * a + e) * ldM + n0, valid);
      }
    }
  });
}

}  // namespace LSTMKIT_NS
