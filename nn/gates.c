/* gates.c: the LSTM gate nonlinearities (CONTRACT §3) for a batch of rows, in plain C that GCC
 * auto-vectorizes at -O3 with baseline SSE2. Not a general math library: tanh and sigmoid are
 * only as accurate as float32 inference needs.
 *
 * tanh(x) is a [13/6] odd/even rational minimax approximation on [-7.90531, 7.90531] (the
 * coefficients of Eigen's generic_fast_tanh_float), clamped outside it, where float tanh is 1
 * to within 2e-7. sigmoid(x) = 0.5 + 0.5 * tanh(x / 2). Only IEEE mul, add, div and compare are
 * used, with no FMA (baseline x86-64 has none, and no -march flag is given), so an element's
 * result does not depend on B or on whether it lands in the vector body or the scalar tail.
 * Infinities saturate to +-1 (tanh) and 0/1 (sigmoid); NaN in gives NaN out.
 *
 * Max abs error against double libm, measured by tests/test_nn_gates.c over a grid of step 2^-14
 * on [-20, 20], a log grid down to the denormals and the extremes up to +-inf: tanh 3.7e-7,
 * sigmoid 2.0e-7 (asserted <= 1e-6). Near saturation the rational form is not exactly monotone
 * in float: backward steps of up to 4.2e-7, within the same bound. */
#include "lstm.h"
#include "lstm_int.h"

/* The exported loops are built for baseline x86-64 and for AVX and AVX-512 (8 and 16 lanes),
 * picked at load time by the CPU. Every clone does the same IEEE single-precision operations
 * in the same order without FMA, so all give identical bits; only the width changes. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NN_GATES_NO_CLONES)
#define GATES_CLONES __attribute__((target_clones("avx512f", "avx", "default")))
#else
#define GATES_CLONES
#endif
#define GATES_INLINE static inline __attribute__((always_inline))

/* tanh(x) to within ~1e-7 abs. */
GATES_INLINE float gate_tanh(float x) {
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

GATES_INLINE float gate_sigmoid(float x) {
  return 0.5f + 0.5f * gate_tanh(0.5f * x);
}

/* One row without peepholes. zi..zo (H) are the four gate blocks of z; c, h (H). */
GATES_INLINE void row_plain(int H, const float *restrict zi, const float *restrict zf,
                            const float *restrict zg, const float *restrict zo, float *restrict c,
                            float *restrict h) {
  for (int j = 0; j < H; j++) {
    float i = gate_sigmoid(zi[j]);
    float f = gate_sigmoid(zf[j]);
    float g = gate_tanh(zg[j]);
    float cn = f * c[j] + i * g;
    c[j] = cn;
    h[j] = gate_sigmoid(zo[j]) * gate_tanh(cn);
  }
}

/* One row with peepholes wci, wcf, wco (H): i and f see the old c, o sees the new one. */
GATES_INLINE void row_peep(int H, const float *restrict zi, const float *restrict zf,
                           const float *restrict zg, const float *restrict zo, float *restrict c,
                           float *restrict h, const float *restrict wci, const float *restrict wcf,
                           const float *restrict wco) {
  for (int j = 0; j < H; j++) {
    float cj = c[j];
    float i = gate_sigmoid(zi[j] + wci[j] * cj);
    float f = gate_sigmoid(zf[j] + wcf[j] * cj);
    float g = gate_tanh(zg[j]);
    float cn = f * cj + i * g;
    c[j] = cn;
    h[j] = gate_sigmoid(zo[j] + wco[j] * cn) * gate_tanh(cn);
  }
}

/* Applies the gates to B rows (see lstm.h): z (B, 4H) in gate order i, f, g, o; c (B, H) read
 * and updated; h (B, H) written; wci, wcf, wco (H) or all NULL. */
GATES_CLONES void nn_gates(int B, int H, const float *z, float *c, float *h, const float *wci,
                           const float *wcf, const float *wco) {
  for (int b = 0; b < B; b++) {
    const float *zr = z + (size_t)b * 4 * H;
    float *cr = c + (size_t)b * H, *hr = h + (size_t)b * H;
    if (wci)
      row_peep(H, zr, zr + H, zr + 2 * H, zr + 3 * H, cr, hr, wci, wcf, wco);
    else
      row_plain(H, zr, zr + H, zr + 2 * H, zr + 3 * H, cr, hr);
  }
}

/* Array forms for tests and benchmarks: y (n) = tanh or sigmoid of x (n), through the same
 * vectorized code path as nn_gates. */
GATES_CLONES void nn_gate_tanh_n(int n, const float *restrict x, float *restrict y) {
  for (int j = 0; j < n; j++)
    y[j] = gate_tanh(x[j]);
}
GATES_CLONES void nn_gate_sigmoid_n(int n, const float *restrict x, float *restrict y) {
  for (int j = 0; j < n; j++)
    y[j] = gate_sigmoid(x[j]);
}

/* Layer 0's input projection plus biases (see lstm_int.h): with K = 4 a GEMM call costs more in
 * packing than the arithmetic, and this loop vectorizes along G. */
GATES_CLONES void nn_proj4(int B, int G, const float *restrict x, const float *restrict wt,
                           const float *restrict bias, float *restrict z) {
  const float *w0 = wt, *w1 = wt + G, *w2 = wt + 2 * G, *w3 = wt + 3 * G;
  for (int b = 0; b < B; b++) {
    const float x0 = x[4 * b], x1 = x[4 * b + 1], x2 = x[4 * b + 2], x3 = x[4 * b + 3];
    float *zr = z + (size_t)b * G;
    for (int r = 0; r < G; r++) {
      float a = bias[r] + x0 * w0[r];
      a = a + x1 * w1[r];
      a = a + x2 * w2[r];
      zr[r] = a + x3 * w3[r];
    }
  }
}
