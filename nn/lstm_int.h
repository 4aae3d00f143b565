/* lstm_int.h: kernels shared between lstm.c, cells.c, gates.c (built with -O3 and CPU clones)
 * and train.c; not part of the public nn API. */
#ifndef NN_LSTM_INT_H
#define NN_LSTM_INT_H

#include "nn/lstm.h"

/* tanh(x) to within 3.7e-7 abs (see gates.c for the derivation and the measured bounds): the one
 * definition inference and training share, so the trainer sees the nonlinearities inference
 * uses. Plain IEEE mul, add, div and compare only, so it vectorizes and gives the same bits in
 * every clone. always_inline so that each target clone of a caller gets its own vector copy. */
static inline __attribute__((always_inline)) float nn_tanh_approx(float x) {
  const float lim = 7.90531110763549805f;
  x = x > lim ? lim : x;
  x = x < -lim ? -lim : x;
  float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * x;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return p / q;
}

/* sigmoid(x) = 0.5 + 0.5 tanh(x / 2), within 2.0e-7 abs. */
static inline __attribute__((always_inline)) float nn_sigmoid_approx(float x) {
  return 0.5f + 0.5f * nn_tanh_approx(0.5f * x);
}

/* z (B, G) = bias (G) + x (B, 4) . wt (4, G), wt being W_ih[0] transposed. Per element in a
 * fixed order (bias + x0 w0 + x1 w1 + x2 w2 + x3 w3), so a row's result does not depend on B. */
void nn_proj4(int B, int G, const float *x, const float *wt, const float *bias, float *z);

/* wt (K, ldw) = W^T, W being (G, K) row-major: the layout nn_projT reads; the padding columns
 * (G..ldw) are not written (nn_projT never reads them into a result). */
void nn_transpose_ld(int G, int K, const float *W, float *wt, int ldw);

/* z (B, G) += a (B, K) . wt (K, G), wt being a weight W (G, K) transposed, row-major with row
 * stride ldw >= G (nn_projT_ldw(G) is the one that avoids L1 set conflicts); a (B, K) and
 * z (B, G) are dense (proj.c). Each element is summed in one fixed order,
 * z + a[b][0] wt[0][g] + a[b][1] wt[1][g] + ..., so a row's result does not depend on B or on
 * its place in the batch. nn_projT runs the best version this CPU has, as nn_projT_level says:
 * 2 AVX-512, 1 AVX2 + FMA, 0 plain C. The two SIMD versions fuse each multiply-add (FMA, one
 * rounding) and so agree bit for bit; the plain one rounds twice and differs in the last bits.
 * The versions are exposed for tests and benchmarks; call a SIMD one only on a CPU that has its
 * instructions (nn_projT_level() >= 2 or >= 1). */
void nn_projT(int B, int G, int K, const float *a, const float *wt, int ldw, float *z);
/* The same with z's row stride ldz >= G, so that a block of columns of a wider z can be updated
 * (the GRU's r and z blocks); nn_projT is nn_projT_ld with ldz = G. */
void nn_projT_ld(int B, int G, int K, const float *a, const float *wt, int ldw, float *z, int ldz);
int nn_projT_level(void);
int nn_projT_ldw(int G);
void nn_projT_plain(int B, int G, int K, const float *a, const float *wt, int ldw, float *z);
void nn_projT_avx2(int B, int G, int K, const float *a, const float *wt, int ldw, float *z);
void nn_projT_avx512(int B, int G, int K, const float *a, const float *wt, int ldw, float *z);

/* The largest B for which nn_projT beats OpenBLAS's sgemm with the version nn_projT picks here;
 * nn_work_init stores it in nn_work.Bkern. Measured with bench/bench_lstm.c on one core of an
 * AMD EPYC (Zen 5) with OpenBLAS 0.3.21, which runs its Haswell (AVX2) sgemm there at up to
 * ~100 GFLOP/s. AVX-512 was faster at every B tried (1 to 4096) for H = 32 to 128, and H = 256
 * and 512 in a one-off run: 3x at B = 16-20, 2x from B = 256 on (and faster than sgemv at
 * B <= 4), so INT_MAX. (Forced to its AVX-512 kernels, OPENBLAS_CORETYPE=SkylakeX, sgemm draws
 * level from B = 256 and is up to 5% faster at H = 512, B >= 1024.) AVX2 + FMA:
 * faster up to B = 64 and level with sgemm above, so 64. The plain version (SSE2, no FMA) was
 * 2-4x slower than sgemm from B = 16 and from level with to 1.6x slower than the sgemv it
 * replaces at B <= 4; it keeps B <= 4, so that those calls stay bit-exact as they were. */
int nn_projT_max_b(void);

/* z (B, G) += a (B, K) . W^T (K, G) as the steps do it, z with row stride ldz >= G: nn_projT on wt
 * (W transposed, row stride w->ldw) for B <= w->Bkern, OpenBLAS's sgemm on W (G, K) above
 * (lstm.c). */
void nn_work_proj(const nn_work *w, int B, int G, int K, const float *a, const float *W,
                  const float *wt, float *z, int ldz);

/* y (B) = h (B, H) . head.weight + head.bias, each row summed in one fixed order (lstm.c). */
void nn_head(const nn_model *m, int B, const float *h, float *y);

#endif
