/* proj.c: the projection kernel z (B, G) += a (B, K) . Wt (K, G) of every cell step (lstm_int.h),
 * register-blocked with AVX-512 or AVX2 + FMA intrinsics, with a plain C fallback, picked per
 * call by the CPU. It replaces OpenBLAS's sgemm, whose packing costs more than the arithmetic
 * in the small waves the daemon runs (and which, on the AVX-512 machine measured, runs AVX2
 * kernels: see nn_projT_max_b in lstm_int.h). Wt is transposed once, when the weights are
 * loaded, with its rows padded (nn_projT_ldw) so that a column panel spreads over all L1 sets.
 * Not a general GEMM: no transposes, no alpha or beta, no blocking along K.
 *
 * Every element is one chain z[b][g] = fma(a[b][k], Wt[k][g], z[b][g]) for k = 0, 1, ..., K - 1
 * (mul then add, each rounded, in the plain version), whatever block, tail or lane the element
 * lands in. So a row's result depends only on that row, never on B or on where the row sits in
 * the batch. AVX-512 and AVX2 give the same bits (an FMA is exactly rounded whatever its
 * width); the plain version differs from them in the last bits. Built with -ffp-contract=off
 * (Makefile) so that it keeps its two roundings whatever -march CFLAGS adds; the intrinsics fuse
 * explicitly. */
#include "nn/lstm_int.h"

#include <assert.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define PROJ_INLINE static inline __attribute__((always_inline))

/* The plain version: rows one at a time, each an axpy per k, which GCC vectorizes along G. z has
 * row stride ldz. */
static void projT_plain(int B, int G, int K, const float *restrict a, const float *restrict wt,
                        int ldw, float *restrict z, int ldz) {
  for (int b = 0; b < B; b++) {
    const float *ar = a + (size_t)b * K;
    float *zr = z + (size_t)b * ldz;
    for (int k = 0; k < K; k++) {
      const float s = ar[k], *wk = wt + (size_t)k * ldw;
      for (int g = 0; g < G; g++)
        zr[g] = zr[g] + s * wk[g];
    }
  }
}
void nn_projT_plain(int B, int G, int K, const float *a, const float *wt, int ldw, float *z) {
  projT_plain(B, G, K, a, wt, ldw, z, G);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(NN_PROJ_NO_SIMD)
#include <immintrin.h>

#define NN_PROJ_X86 1
#define T512 __attribute__((target("avx512f")))
#define T256 __attribute__((target("avx2,fma")))

/* One block of R rows x V vectors of 16 columns: acc (R, V) held in registers across the whole
 * K loop, one load of Wt per vector and one broadcast of a per row each k. With V == 1 the
 * vector is masked by `mask` (the columns left over at the end of G). a (R, K), wt (K, >= 16V)
 * with row stride ldw, z (R, >= 16V) with row stride ldz. R <= 4 and V <= 4 are constants at
 * every call, so the loops unroll into registers. */
PROJ_INLINE T512 void blk512(const int R, const int V, int ldz, int K, const float *a,
                             const float *wt, int ldw, float *z, __mmask16 mask) {
  __m512 acc[4][4], w[4];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++)
      acc[r][v] = V == 1 ? _mm512_maskz_loadu_ps(mask, z + (size_t)r * ldz)
                         : _mm512_loadu_ps(z + (size_t)r * ldz + 16 * v);
  for (int k = 0; k < K; k++) {
    const float *wk = wt + (size_t)k * ldw;
    for (int v = 0; v < V; v++)
      w[v] = V == 1 ? _mm512_maskz_loadu_ps(mask, wk) : _mm512_loadu_ps(wk + 16 * v);
    for (int r = 0; r < R; r++) {
      const __m512 s = _mm512_set1_ps(a[(size_t)r * K + k]);
      for (int v = 0; v < V; v++)
        acc[r][v] = _mm512_fmadd_ps(s, w[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++) {
      if (V == 1)
        _mm512_mask_storeu_ps(z + (size_t)r * ldz, mask, acc[r][v]);
      else
        _mm512_storeu_ps(z + (size_t)r * ldz + 16 * v, acc[r][v]);
    }
}

/* All B rows over one panel of V vectors (16V columns, or 1 masked vector): blocks of 4 rows,
 * then the 1-3 rows left over, so that all of them find the panel of Wt in L1. */
PROJ_INLINE T512 void panel512(const int V, int B, int ldz, int K, const float *a, const float *wt,
                               int ldw, float *z, __mmask16 mask) {
  int b = 0;
  for (; b + 4 <= B; b += 4)
    blk512(4, V, ldz, K, a + (size_t)b * K, wt, ldw, z + (size_t)b * ldz, mask);
  switch (B - b) {
  case 1: blk512(1, V, ldz, K, a + (size_t)b * K, wt, ldw, z + (size_t)b * ldz, mask); break;
  case 2: blk512(2, V, ldz, K, a + (size_t)b * K, wt, ldw, z + (size_t)b * ldz, mask); break;
  case 3: blk512(3, V, ldz, K, a + (size_t)b * K, wt, ldw, z + (size_t)b * ldz, mask); break;
  }
}

/* Panels of 64 columns (4 vectors), outermost so that a panel of Wt (K x 64 floats, 32 KB at
 * K = 128) stays in L1 while every block of rows passes over it; then the columns left over, one
 * (masked) vector at a time. A block of 4 rows holds 16 accumulators and does 4 loads and 4
 * broadcasts per 16 FMAs: ~190 GFLOP/s on one Zen 5 core, near its peak. A single row is bound
 * by reading Wt (from L2 once K x G floats pass 48 KB). z has row stride ldz. */
static T512 void projT512(int B, int G, int K, const float *a, const float *wt, int ldw, float *z,
                          int ldz) {
  int g = 0;
  for (; g + 64 <= G; g += 64)
    panel512(4, B, ldz, K, a, wt + g, ldw, z + g, 0xffff);
  for (; g < G; g += 16) {
    int n = G - g < 16 ? G - g : 16;
    panel512(1, B, ldz, K, a, wt + g, ldw, z + g, (__mmask16)((1u << n) - 1));
  }
}
T512 void nn_projT_avx512(int B, int G, int K, const float *a, const float *wt, int ldw, float *z) {
  projT512(B, G, K, a, wt, ldw, z, G);
}

/* The AVX2 version: the same scheme with 8-float vectors, and with 16 registers, panels of 2
 * vectors; masks for the last 1-7 columns from a sliding window over this table. */
PROJ_INLINE T256 __m256i mask256(int n) {
  static const int32_t tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256((const __m256i *)(tab + 8 - n));
}

/* As blk512, with 8-float vectors and masks as vectors. */
PROJ_INLINE T256 void blk256(const int R, const int V, int ldz, int K, const float *a,
                             const float *wt, int ldw, float *z, __m256i mask) {
  __m256 acc[4][4], w[4];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++)
      acc[r][v] = V == 1 ? _mm256_maskload_ps(z + (size_t)r * ldz, mask)
                         : _mm256_loadu_ps(z + (size_t)r * ldz + 8 * v);
  for (int k = 0; k < K; k++) {
    const float *wk = wt + (size_t)k * ldw;
    for (int v = 0; v < V; v++)
      w[v] = V == 1 ? _mm256_maskload_ps(wk, mask) : _mm256_loadu_ps(wk + 8 * v);
    for (int r = 0; r < R; r++) {
      const __m256 s = _mm256_broadcast_ss(a + (size_t)r * K + k);
      for (int v = 0; v < V; v++)
        acc[r][v] = _mm256_fmadd_ps(s, w[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++) {
      if (V == 1)
        _mm256_maskstore_ps(z + (size_t)r * ldz, mask, acc[r][v]);
      else
        _mm256_storeu_ps(z + (size_t)r * ldz + 8 * v, acc[r][v]);
    }
}

/* All B rows over one panel of V vectors (8V columns, or 1 masked vector), as panel512. */
PROJ_INLINE T256 void panel256(const int V, int B, int ldz, int K, const float *a, const float *wt,
                               int ldw, float *z, __m256i mask) {
  int b = 0;
  for (; b + 4 <= B; b += 4)
    blk256(4, V, ldz, K, a + (size_t)b * K, wt, ldw, z + (size_t)b * ldz, mask);
  switch (B - b) {
  case 1: blk256(1, V, ldz, K, a + (size_t)b * K, wt, ldw, z + (size_t)b * ldz, mask); break;
  case 2: blk256(2, V, ldz, K, a + (size_t)b * K, wt, ldw, z + (size_t)b * ldz, mask); break;
  case 3: blk256(3, V, ldz, K, a + (size_t)b * K, wt, ldw, z + (size_t)b * ldz, mask); break;
  }
}

/* Panels of 16 columns (2 vectors, 8 accumulators for 4 rows), then one masked vector at a
 * time. Measured by calling it directly on an AVX-512 machine: about half the speed of the
 * AVX-512 version, as the vector width says. */
static T256 void projT256(int B, int G, int K, const float *a, const float *wt, int ldw, float *z,
                          int ldz) {
  int g = 0;
  for (; g + 16 <= G; g += 16)
    panel256(2, B, ldz, K, a, wt + g, ldw, z + g, mask256(8));
  for (; g < G; g += 8)
    panel256(1, B, ldz, K, a, wt + g, ldw, z + g, mask256(G - g < 8 ? G - g : 8));
}
T256 void nn_projT_avx2(int B, int G, int K, const float *a, const float *wt, int ldw, float *z) {
  projT256(B, G, K, a, wt, ldw, z, G);
}
#else
/* Not x86: the SIMD versions exist only so that tests link; nn_projT_level() says not to call
 * them. */
void nn_projT_avx512(int B, int G, int K, const float *a, const float *wt, int ldw, float *z) {
  assert(!"nn_projT_avx512 without x86");
  nn_projT_plain(B, G, K, a, wt, ldw, z);
}
void nn_projT_avx2(int B, int G, int K, const float *a, const float *wt, int ldw, float *z) {
  assert(!"nn_projT_avx2 without x86");
  nn_projT_plain(B, G, K, a, wt, ldw, z);
}
#endif

/* The version for this CPU: AVX-512, else AVX2 with FMA, else plain C. */
int nn_projT_level(void) {
#ifdef NN_PROJ_X86
  if (__builtin_cpu_supports("avx512f"))
    return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return 1;
#endif
  return 0;
}

/* Where nn_lstm_step stops using nn_projT for the version it runs (see lstm_int.h). */
int nn_projT_max_b(void) {
  static const int max_b[3] = {4, 64, INT_MAX};
  return max_b[nn_projT_level()];
}

/* G rounded up to a whole number of cache lines (16 floats), and to an odd number of them: a
 * row stride of 2^n lines would put a column panel of wt into a few L1 sets, which then evict
 * each other (measured: a remainder row cost as much as a block of 4 at H = 64 and 128). */
int nn_projT_ldw(int G) {
  int n = (G + 15) / 16;
  return 16 * (n | 1);
}

void nn_projT_ld(int B, int G, int K, const float *a, const float *wt, int ldw, float *z, int ldz) {
  assert(B >= 0 && G >= 0 && K >= 0 && ldw >= G && ldz >= G);
#ifdef NN_PROJ_X86
  if (__builtin_cpu_supports("avx512f")) {
    projT512(B, G, K, a, wt, ldw, z, ldz);
    return;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    projT256(B, G, K, a, wt, ldw, z, ldz);
    return;
  }
#endif
  projT_plain(B, G, K, a, wt, ldw, z, ldz);
}

void nn_projT(int B, int G, int K, const float *a, const float *wt, int ldw, float *z) {
  nn_projT_ld(B, G, K, a, wt, ldw, z, G);
}
