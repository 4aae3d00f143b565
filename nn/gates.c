/* gates.c: the gate nonlinearities of the LSTM (CONTRACT §3), the GRU and the RNN for a batch of
 * rows, in plain C that GCC auto-vectorizes at -O3 with baseline SSE2. Not a general math library:
 * tanh and sigmoid are only as accurate as float32 inference needs.
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
#include "nn/lstm.h"
#include "nn/lstm_int.h"

/* The exported loops are built for baseline x86-64 and for AVX and AVX-512 (8 and 16 lanes),
 * picked at load time by the CPU. Every clone does the same IEEE single-precision operations
 * in the same order without FMA, so all give identical bits; only the width changes. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NN_GATES_NO_CLONES)
#define GATES_CLONES __attribute__((target_clones("avx512f", "avx", "default")))
#else
#define GATES_CLONES
#endif
#define GATES_INLINE static inline __attribute__((always_inline))

/* One row without peepholes. zi..zo (H) are the four gate blocks of z; c, h (H). */
GATES_INLINE void row_plain(int H, const float *restrict zi, const float *restrict zf,
                            const float *restrict zg, const float *restrict zo, float *restrict c,
                            float *restrict h) {
  for (int j = 0; j < H; j++) {
    float i = nn_sigmoid_approx(zi[j]);
    float f = nn_sigmoid_approx(zf[j]);
    float g = nn_tanh_approx(zg[j]);
    float cn = f * c[j] + i * g;
    c[j] = cn;
    h[j] = nn_sigmoid_approx(zo[j]) * nn_tanh_approx(cn);
  }
}

/* One row with peepholes wci, wcf, wco (H): i and f see the old c, o sees the new one. */
GATES_INLINE void row_peep(int H, const float *restrict zi, const float *restrict zf,
                           const float *restrict zg, const float *restrict zo, float *restrict c,
                           float *restrict h, const float *restrict wci, const float *restrict wcf,
                           const float *restrict wco) {
  for (int j = 0; j < H; j++) {
    float cj = c[j];
    float i = nn_sigmoid_approx(zi[j] + wci[j] * cj);
    float f = nn_sigmoid_approx(zf[j] + wcf[j] * cj);
    float g = nn_tanh_approx(zg[j]);
    float cn = f * cj + i * g;
    c[j] = cn;
    h[j] = nn_sigmoid_approx(zo[j] + wco[j] * cn) * nn_tanh_approx(cn);
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

/* One GRU row (see lstm.h): zr, zu, zn (H) the blocks of z, hn (H) the recurrent side of n; h (H)
 * old in, new out. h' = n + u (h - n) is (1 - u) n + u h as PyTorch's kernel computes it. */
GATES_INLINE void row_gru(int H, const float *restrict zr, const float *restrict zu,
                          const float *restrict zn, const float *restrict hn, float *restrict h) {
  for (int j = 0; j < H; j++) {
    float r = nn_sigmoid_approx(zr[j]);
    float u = nn_sigmoid_approx(zu[j]);
    float n = nn_tanh_approx(zn[j] + r * hn[j]);
    h[j] = n + u * (h[j] - n);
  }
}

/* GRU gates for B rows: z (B, 3H) in gate order r, z, n; zh (B, H); h (B, H) updated. */
GATES_CLONES void nn_gates_gru(int B, int H, const float *z, const float *zh, float *h) {
  for (int b = 0; b < B; b++) {
    const float *zr = z + (size_t)b * 3 * H;
    row_gru(H, zr, zr + H, zr + 2 * H, zh + (size_t)b * H, h + (size_t)b * H);
  }
}

/* RNN activation: h (n) = tanh(z) or relu(z), z (n). `z < 0 ? 0 : z` keeps NaN, as PyTorch's
 * relu does. */
GATES_CLONES void nn_gates_rnn(int n, const float *restrict z, float *restrict h, int relu) {
  if (relu)
    for (int j = 0; j < n; j++)
      h[j] = z[j] < 0.0f ? 0.0f : z[j];
  else
    for (int j = 0; j < n; j++)
      h[j] = nn_tanh_approx(z[j]);
}

/* Array forms for tests and benchmarks: y (n) = tanh or sigmoid of x (n), through the same
 * vectorized code path as nn_gates. */
GATES_CLONES void nn_gate_tanh_n(int n, const float *restrict x, float *restrict y) {
  for (int j = 0; j < n; j++)
    y[j] = nn_tanh_approx(x[j]);
}
GATES_CLONES void nn_gate_sigmoid_n(int n, const float *restrict x, float *restrict y) {
  for (int j = 0; j < n; j++)
    y[j] = nn_sigmoid_approx(x[j]);
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
