/* test_nn_gates.c: the gate approximations of nn/gates.c against double-precision libm over a
 * dense grid and the extremes, their saturation and symmetry, and nn_gates against the contract
 * equations; plus the property the batching relies on: an element's result does not depend on
 * B or on its position in the row (vector body or scalar tail). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "nn/lstm.h"

static double sigmoid_d(double x) {
  return 1.0 / (1.0 + exp(-x));
}

static uint32_t rng = 12345u;
static float frand(float lo, float hi) { /* xorshift32, uniform in [lo, hi) */
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return lo + (hi - lo) * (float)(rng >> 8) / 16777216.0f;
}

/* Max abs errors over x: a dense grid on [-20, 20] (step 2^-14), every float near 0 down to
 * the denormals on a log grid, and the extremes up to +-inf. */
static void test_grid(void) {
  const int NG = 2 * 20 * 16384 + 1;
  int N = NG + 4000 + 40;
  float *x = malloc((size_t)N * sizeof *x), *t = malloc((size_t)N * sizeof *t),
        *s = malloc((size_t)N * sizeof *s);
  int n = 0;
  for (int i = 0; i < NG; i++)
    x[n++] = -20.0f + (float)i / 16384.0f;
  for (int i = 0; i < 1000; i++) { /* 1e-45 .. 1e-3, both signs, and the same around 7.9 */
    float v = powf(10.0f, -45.0f + 42.0f * (float)i / 1000.0f);
    x[n++] = v;
    x[n++] = -v;
    x[n++] = 7.90531110763549805f + v * 1e3f;
    x[n++] = -7.90531110763549805f - v * 1e3f;
  }
  const float ext[] = {0.0f,  -0.0f, 7.9f, 8.0f, 9.0f,  15.9f,   16.0f,    17.0f,   30.0f,
                       88.0f, 89.0f, 1e3f, 1e6f, 1e30f, FLT_MAX, INFINITY, FLT_MIN, FLT_TRUE_MIN};
  for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
    x[n++] = ext[i];
    x[n++] = -ext[i];
  }
  nn_gate_tanh_n(n, x, t);
  nn_gate_sigmoid_n(n, x, s);
  double et = 0, es = 0, xt = 0, xs = 0;
  int nan = 0, sym = 1, range = 1;
  for (int i = 0; i < n; i++) {
    double dt = fabs((double)t[i] - tanh((double)x[i]));
    double ds = fabs((double)s[i] - sigmoid_d((double)x[i]));
    if (dt > et)
      et = dt, xt = x[i];
    if (ds > es)
      es = ds, xs = x[i];
    nan += isnan(t[i]) || isnan(s[i]);
    range &= t[i] >= -1.0f && t[i] <= 1.0f && s[i] >= 0.0f && s[i] <= 1.0f;
  }
  for (int i = 0; i < NG; i++)
    sym &= t[i] == -t[NG - 1 - i]; /* the grid is symmetric */
  /* The rational form is not exactly monotone in float near saturation; its backward steps
   * stay within the error bound. */
  double drop_t = 0, drop_s = 0;
  for (int i = 1; i < NG; i++) {
    drop_t = fmax(drop_t, (double)t[i - 1] - t[i]);
    drop_s = fmax(drop_s, (double)s[i - 1] - s[i]);
  }
  printf("gates: %d points; max abs error tanh %.3g (at x=%.9g), sigmoid %.3g (at x=%.9g); "
         "largest backward step tanh %.3g sigmoid %.3g\n",
         n, et, xt, es, xs, drop_t, drop_s);
  CHECK(et <= 1e-6);
  CHECK(es <= 1e-6);
  CHECK_INT(nan, 0);
  CHECK(sym);
  CHECK(range);
  CHECK(drop_t <= 1e-6);
  CHECK(drop_s <= 1e-6);
  /* Saturation at the extremes is exact or within the bound, and never NaN. */
  float e4[4] = {INFINITY, -INFINITY, 1e30f, -1e30f}, r4[4];
  nn_gate_tanh_n(4, e4, r4);
  CHECK_NEAR(r4[0], 1.0, 1e-6);
  CHECK_NEAR(r4[1], -1.0, 1e-6);
  CHECK_NEAR(r4[2], 1.0, 1e-6);
  nn_gate_sigmoid_n(4, e4, r4);
  CHECK_NEAR(r4[0], 1.0, 1e-6);
  CHECK_NEAR(r4[1], 0.0, 1e-6);
  CHECK_NEAR(r4[3], 0.0, 1e-6);
  /* tanh(0) is exactly 0, sigmoid(0) exactly 0.5. */
  float z1 = 0.0f, r1;
  nn_gate_tanh_n(1, &z1, &r1);
  CHECK(r1 == 0.0f);
  nn_gate_sigmoid_n(1, &z1, &r1);
  CHECK(r1 == 0.5f);
  free(x);
  free(t);
  free(s);
}

/* nn_gates against the contract equations in double, with and without peepholes. */
static void test_gates_formula(int peep) {
  enum { B = 37, H = 13 };
  static float z[B * 4 * H], c[B * H], c0[B * H], h[B * H], wci[H], wcf[H], wco[H];
  for (int i = 0; i < B * 4 * H; i++)
    z[i] = frand(-6, 6);
  for (int i = 0; i < B * H; i++)
    c0[i] = c[i] = frand(-3, 3);
  for (int j = 0; j < H; j++)
    wci[j] = frand(-1, 1), wcf[j] = frand(-1, 1), wco[j] = frand(-1, 1);
  nn_gates(B, H, z, c, h, peep ? wci : NULL, peep ? wcf : NULL, peep ? wco : NULL);
  double ec = 0, eh = 0;
  for (int b = 0; b < B; b++)
    for (int j = 0; j < H; j++) {
      const float *zr = z + b * 4 * H;
      double cp = c0[b * H + j];
      double pi = peep ? wci[j] * cp : 0, pf = peep ? wcf[j] * cp : 0;
      double ig = sigmoid_d(zr[j] + pi), fg = sigmoid_d(zr[H + j] + pf), g = tanh(zr[2 * H + j]);
      double cn = fg * cp + ig * g;
      double og = sigmoid_d(zr[3 * H + j] + (peep ? wco[j] * cn : 0));
      double hn = og * tanh(cn);
      ec = fmax(ec, fabs(c[b * H + j] - cn));
      eh = fmax(eh, fabs(h[b * H + j] - hn));
    }
  printf("nn_gates peephole=%d: max abs error c %.3g, h %.3g\n", peep, ec, eh);
  CHECK(ec <= 4e-6);
  CHECK(eh <= 4e-6);
}

/* The same row gives bit-identical results alone (B=1) or inside a batch, and the same value
 * gives the same result at every position j of a row (vector body or scalar tail). */
static void test_position_independence(void) {
  enum { B = 29, H = 23 };
  static float z[B * 4 * H], c[B * H], h[B * H], c1[H], h1[H], wc[3][H];
  for (int i = 0; i < B * 4 * H; i++)
    z[i] = frand(-5, 5);
  for (int i = 0; i < B * H; i++)
    c[i] = frand(-2, 2);
  for (int j = 0; j < H; j++)
    wc[0][j] = wc[1][j] = wc[2][j] = 0.25f;
  static float cc[B * H];
  memcpy(cc, c, sizeof c);
  nn_gates(B, H, z, c, h, wc[0], wc[1], wc[2]);
  int same = 1;
  for (int b = 0; b < B; b++) {
    memcpy(c1, cc + b * H, sizeof c1);
    nn_gates(1, H, z + b * 4 * H, c1, h1, wc[0], wc[1], wc[2]);
    same &= memcmp(c1, c + b * H, sizeof c1) == 0 && memcmp(h1, h + b * H, sizeof h1) == 0;
  }
  CHECK(same);
  /* One (z, c) value repeated along a row, for many values: every position must agree. */
  int pos = 1;
  for (int trial = 0; trial < 200; trial++) {
    float zv[4] = {frand(-9, 9), frand(-9, 9), frand(-9, 9), frand(-9, 9)}, cv = frand(-4, 4);
    float zr[4 * H], cr[H], hr[H];
    for (int g = 0; g < 4; g++)
      for (int j = 0; j < H; j++)
        zr[g * H + j] = zv[g];
    for (int j = 0; j < H; j++)
      cr[j] = cv;
    nn_gates(1, H, zr, cr, hr, wc[0], wc[1], wc[2]);
    for (int j = 1; j < H; j++)
      pos &= cr[j] == cr[0] && hr[j] == hr[0];
  }
  CHECK(pos);
}

/* The exact bits over a fixed input set. gates.c uses only IEEE single mul, add, div and
 * compare, without FMA, so every build gives this one value: the SSE2, AVX and AVX-512 clones,
 * gcc -march=native with -ffp-contract=off, clang, -O0 (all checked when it was written). If
 * the approximation is changed on purpose, print the new value and update it here. */
static void test_bits(void) {
  const int N = 2000003;
  float *x = malloc((size_t)N * 4), *y = malloc((size_t)N * 4);
  uint64_t hsh = 1469598103934665603ULL;
#define MIX(v)                                                                                     \
  do {                                                                                             \
    uint32_t u_;                                                                                   \
    memcpy(&u_, &(v), 4);                                                                          \
    hsh = (hsh ^ u_) * 1099511628211ULL;                                                           \
  } while (0)
  for (int i = 0; i < N; i++)
    x[i] = -25.f + 50.f * (float)i / (float)N;
  nn_gate_tanh_n(N, x, y);
  for (int i = 0; i < N; i++)
    MIX(y[i]);
  nn_gate_sigmoid_n(N, x, y);
  for (int i = 0; i < N; i++)
    MIX(y[i]);
  static float z[37 * 4 * 29], c[37 * 29], h[37 * 29], w[29];
  for (int i = 0; i < 37 * 4 * 29; i++)
    z[i] = x[i * 97 % N] / 3;
  for (int i = 0; i < 37 * 29; i++)
    c[i] = x[i * 31 % N] / 8;
  for (int i = 0; i < 29; i++)
    w[i] = 0.1f * (float)i - 1;
  nn_gates(37, 29, z, c, h, w, w, w);
  nn_gates(37, 29, z, c, h, NULL, NULL, NULL);
  for (int i = 0; i < 37 * 29; i++) {
    MIX(h[i]);
    MIX(c[i]);
  }
#undef MIX
  printf("gates bit hash %016llx\n", (unsigned long long)hsh);
  CHECK(hsh == 0xcc7bded5b10fd8daULL);
  free(x);
  free(y);
}

int main(void) {
  test_bits();
  test_grid();
  test_gates_formula(0);
  test_gates_formula(1);
  test_position_independence();
  return check_done();
}
