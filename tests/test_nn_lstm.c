/* test_nn_lstm.c: nn_lstm_step against the PyTorch fixtures of tests/gen_fixtures.py (1-3
 * layers, with and without peepholes, 4 instruments x 220 steps), and the batching property the
 * daemon's waves rely on: stepping B instruments in one call gives the same results as stepping
 * them one at a time, in any order and grouping: bit for bit while B <= nn_work.Bkern (nn_projT,
 * every B on an AVX-512 machine), to 1e-6 when sgemm does the projections (forced here with
 * Bkern lowered); and the output head row by row in a fixed order whatever the batch. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn/base/tc_err.h"
#include "nn/lstm.h"
#include "nn/lstm_int.h"
#include "nn/safetensors/safetensors.h"

#define FIX "tests/fixtures/"

static uint32_t rng = 2463534242u;
static uint32_t urand(void) { /* xorshift32 */
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}
static float frand(float lo, float hi) {
  return lo + (hi - lo) * (float)(urand() >> 8) / 16777216.0f;
}

/* Reads a whole little-endian float32 file of exactly n floats into a new array. */
static float *read_f32(const char *path, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: cannot open (run from the repository root)\n", path);
    return NULL;
  }
  float *a = malloc(n * sizeof *a + 1);
  size_t got = fread(a, sizeof *a, n + 1, f);
  fclose(f);
  if (got != n) {
    fprintf(stderr, "%s: %zu floats, expected %zu\n", path, got, n);
    free(a);
    return NULL;
  }
  return a;
}

static double maxdiff(const float *a, const float *b, size_t n) {
  double e = 0;
  for (size_t i = 0; i < n; i++)
    e = fmax(e, fabs((double)a[i] - b[i]));
  return e;
}

/* max |a - b| / (1 + |a|): state c can grow past 1, where float rounding is coarser. */
static double maxdiff_rel(const float *a, const float *b, size_t n) {
  double e = 0;
  for (size_t i = 0; i < n; i++)
    e = fmax(e, fabs((double)a[i] - b[i]) / (1 + fabs((double)a[i])));
  return e;
}

/* Runs all T steps of N instruments; mode 0: all N in one call per step; mode 1: one call per
 * instrument; mode 2: each step's instruments in a shuffled order, split into random groups.
 * x (T, N, 4), out (T, N); state is (N, state floats), zeroed here. */
static void run_all(const nn_model *m, nn_work *w, int mode, int T, int N, const float *x,
                    float *state, float *out) {
  size_t S = nn_state_floats(m);
  memset(state, 0, (size_t)N * S * sizeof *state);
  float *sp[64], xb[64 * NN_F], yb[64];
  int perm[64];
  for (int t = 0; t < T; t++) {
    const float *xt = x + (size_t)t * N * NN_F;
    if (mode == 0) {
      for (int n = 0; n < N; n++)
        sp[n] = state + n * S;
      nn_lstm_step(m, w, N, xt, sp, out + (size_t)t * N);
    } else if (mode == 1) {
      for (int n = 0; n < N; n++) {
        sp[0] = state + n * S;
        nn_lstm_step(m, w, 1, xt + n * NN_F, sp, out + (size_t)t * N + n);
      }
    } else {
      for (int n = 0; n < N; n++)
        perm[n] = n;
      for (int n = N - 1; n > 0; n--) {
        int j = (int)(urand() % (uint32_t)(n + 1)), tmp = perm[n];
        perm[n] = perm[j];
        perm[j] = tmp;
      }
      for (int at = 0; at < N;) {
        int g = 1 + (int)(urand() % (uint32_t)(N - at));
        for (int i = 0; i < g; i++) {
          int n = perm[at + i];
          sp[i] = state + n * S;
          memcpy(xb + i * NN_F, xt + n * NN_F, NN_F * sizeof(float));
        }
        nn_lstm_step(m, w, g, xb, sp, yb);
        for (int i = 0; i < g; i++)
          out[(size_t)t * N + perm[at + i]] = yb[i];
        at += g;
      }
    }
  }
}

static void test_fixture(const char *name) {
  char path[256], err[512];
  nn_model m;
  snprintf(path, sizeof path, FIX "nn_%s.safetensors", name);
  int rc = nn_model_load(&m, path, err, sizeof err);
  CHECK_INT(rc, 0);
  if (rc) {
    fprintf(stderr, "%s\n", err);
    return;
  }
  const char *sn = nn_model_get_meta(&m, "test.instruments"),
             *st = nn_model_get_meta(&m, "test.steps");
  CHECK(sn && st);
  if (!sn || !st)
    return;
  int N = atoi(sn), T = atoi(st);
  CHECK(N >= 3 && N <= 64 && T >= 200);
  snprintf(path, sizeof path, FIX "nn_%s.x.f32", name);
  float *x = read_f32(path, (size_t)T * N * NN_F);
  snprintf(path, sizeof path, FIX "nn_%s.y.f32", name);
  float *y = read_f32(path, (size_t)T * N);
  CHECK(x && y);
  size_t S = nn_state_floats(&m);
  float *st0 = calloc((size_t)N * S, sizeof *st0), *st1 = calloc((size_t)N * S, sizeof *st1),
        *o0 = calloc((size_t)T * N, sizeof *o0), *o1 = calloc((size_t)T * N, sizeof *o1);
  nn_work w;
  CHECK_INT(nn_work_init(&w, &m, N), 0);
  if (x && y) {
    run_all(&m, &w, 0, T, N, x, st0, o0);
    double e = 0;
    int at = 0;
    for (int i = 0; i < T * N; i++)
      if (fabs((double)o0[i] - y[i]) > e)
        e = fabs((double)o0[i] - y[i]), at = i;
    printf("lstm %s: L=%d H=%d peephole=%d N=%d T=%d: max abs error vs PyTorch %.3g (step %d, "
           "instrument %d)\n",
           name, m.L, m.H, m.peephole, N, T, e, at / N, at % N);
    CHECK(e <= 1e-5);
    /* One at a time, and shuffled random groups: bit for bit, as every call here has
     * B <= 4 <= Bkern (nn_projT sums each row alone in a fixed order). */
    for (int mode = 1; mode <= 2; mode++) {
      run_all(&m, &w, mode, T, N, x, st1, o1);
      double dy = maxdiff(o0, o1, (size_t)T * N), ds = maxdiff_rel(st0, st1, (size_t)N * S);
      int exact = dy == 0 && ds == 0 && memcmp(o0, o1, (size_t)T * N * sizeof *o0) == 0;
      printf(
          "lstm %s: batched vs %s: max diff y %.3g, final state (relative) %.3g (bit-exact %d)\n",
          name, mode == 1 ? "one-at-a-time" : "shuffled random groups", dy, ds, exact);
      CHECK(exact);
    }
  }
  /* The same instruments replicated R times in one call of B = R * N, with nn_projT and with
   * sgemm (Bkern = 0; OpenBLAS's kernels sum a row differently depending on where it falls in
   * the batch, so copies agree to rounding rather than bit for bit; the bound covers all 220
   * steps of state carried forward): every copy still matches PyTorch. */
  for (int sg = 0; sg <= 1 && x && y; sg++) {
    enum { R = 16 };
    int NB = R * N;
    nn_work wb;
    CHECK_INT(nn_work_init(&wb, &m, NB), 0);
    if (sg)
      wb.Bkern = 0;
    float *sb = calloc((size_t)NB * S, sizeof *sb), *xb = malloc((size_t)NB * NN_F * sizeof *xb),
          *yb = malloc((size_t)NB * sizeof *yb), **pb = malloc((size_t)NB * sizeof *pb);
    for (int b = 0; b < NB; b++)
      pb[b] = sb + (size_t)((b * 37) % NB) * S; /* scattered states */
    double e = 0, d = 0;
    for (int t = 0; t < T; t++) {
      for (int b = 0; b < NB; b++)
        memcpy(xb + b * NN_F, x + ((size_t)t * N + b % N) * NN_F, NN_F * sizeof(float));
      nn_lstm_step(&m, &wb, NB, xb, pb, yb);
      for (int b = 0; b < NB; b++) {
        e = fmax(e, fabs((double)yb[b] - y[(size_t)t * N + b % N]));
        d = fmax(d, fabs((double)yb[b] - o0[(size_t)t * N + b % N]));
      }
    }
    printf("lstm %s: B=%d (each instrument %d times, %s): max abs error vs PyTorch %.3g, vs B=%d "
           "%.3g\n",
           name, NB, R, NB <= wb.Bkern ? "nn_projT" : "sgemm", e, N, d);
    CHECK(e <= 1e-5);
    CHECK(d <= (NB <= wb.Bkern ? 0 : 1e-6));
    free(sb), free(xb), free(yb), free(pb);
    nn_work_free(&wb);
  }
  nn_work_free(&w);
  free(st0);
  free(st1);
  free(o0);
  free(o1);
  free(x);
  free(y);
  nn_model_free(&m);
}

/* A model of shape (L, H, peep) with every parameter uniform in +-1.5/sqrt(H). */
static void random_model(nn_model *m, int L, int H, int peep) {
  CHECK_INT(nn_model_init(m, L, H, peep), 0);
  float sc = 1.5f / sqrtf((float)H);
  for (size_t i = 0; i < m->nparams; i++)
    m->params[i] = frand(-sc, sc);
}

/* Bigger shapes than the fixtures: B=1 and B=300 calls give the same results, bit for bit when
 * nn_projT does both (B <= Bkern), to 1e-6 when sgemm does B=300 (Bkern = bkern; OpenBLAS
 * takes its blocked paths there), and the first step from zero state matches a scalar double
 * reference. */
static void test_batch_large(int L, int H, int peep, int bkern) {
  nn_model m;
  random_model(&m, L, H, peep);
  for (int i = 0; i < NN_F; i++)
    m.feat_std[i] = 1;
  m.tgt_std[0] = 1;
  enum { B = 300, T = 6 };
  size_t S = nn_state_floats(&m);
  float *sa = calloc(B * S, sizeof *sa), *sb = calloc(B * S, sizeof *sb);
  float *x = malloc(B * NN_F * sizeof *x), *ya = malloc(B * sizeof *ya),
        *yb = malloc(B * sizeof *yb);
  float **pa = malloc(B * sizeof *pa);
  nn_work w;
  CHECK_INT(nn_work_init(&w, &m, B), 0);
  w.Bkern = bkern < w.Bkern ? bkern : w.Bkern;
  double dmax = 0, e0 = 0;
  for (int t = 0; t < T; t++) {
    for (int i = 0; i < B * NN_F; i++)
      x[i] = frand(-3, 3);
    for (int b = 0; b < B; b++)
      pa[b] = sa + b * S;
    nn_lstm_step(&m, &w, B, x, pa, ya);
    for (int b = 0; b < B; b++) {
      float *p = sb + b * S;
      nn_lstm_step(&m, &w, 1, x + b * NN_F, &p, yb + b);
    }
    dmax = fmax(dmax, fmax(maxdiff(ya, yb, B), maxdiff_rel(sa, sb, B * S)));
    if (t == 0) { /* zero state: check a few rows in double against the contract equations */
      for (int b = 0; b < 5; b++) {
        double hin[4096], hk[4096], in0[NN_F];
        for (int d = 0; d < NN_F; d++)
          in0[d] = x[b * NN_F + d];
        const double *in = in0;
        for (int k = 0; k < L; k++) {
          int D = k ? H : NN_F;
          for (int j = 0; j < H; j++) {
            double zz[4];
            for (int g = 0; g < 4; g++) {
              int r = g * H + j;
              double s = (double)m.b_ih[k][r] + m.b_hh[k][r];
              for (int d = 0; d < D; d++)
                s += (double)m.W_ih[k][(size_t)r * D + d] * in[d];
              zz[g] = s; /* h = c = 0, so W_hh and the i/f peepholes add nothing */
            }
            double ig = 1 / (1 + exp(-zz[0])), gg = tanh(zz[2]), c = ig * gg;
            double og = 1 / (1 + exp(-(zz[3] + (peep ? m.w_co[k][j] * c : 0))));
            hk[j] = og * tanh(c);
          }
          memcpy(hin, hk, (size_t)H * sizeof(double));
          in = hin;
        }
        double yr = m.head_b[0];
        for (int j = 0; j < H; j++)
          yr += (double)m.head_w[j] * in[j];
        e0 = fmax(e0, fabs(yr - ya[b]));
      }
    }
  }
  printf("lstm random L=%d H=%d peephole=%d: B=%d (%s) vs B=1 max diff (y and state) %.3g over "
         "%d steps; step-0 error vs double %.3g\n",
         L, H, peep, B, B <= w.Bkern ? "nn_projT" : "sgemm", dmax, T, e0);
  CHECK(dmax <= (B <= w.Bkern ? 0 : 1e-6));
  CHECK(e0 <= 1e-5);
  nn_work_free(&w);
  nn_work_free(&w); /* a second free of a freed work is harmless */
  nn_work_free(NULL);
  free(sa);
  free(sb);
  free(x);
  free(ya);
  free(yb);
  free(pa);
  nn_model_free(&m);
}

/* Waves the size the daemon runs (up to its 64-tick chunks): N instruments stepped T times all
 * in one call, one at a time, and in shuffled random groups give the same bits when nn_projT
 * does the projections (Bkern raised to N, so that this holds for the plain version too), for
 * shapes whose 4H is not a multiple of 64 too (H = 20, 5) and with W_ih of layers 1 and 2 on
 * nn_projT (L = 3). */
static void test_waves_exact(int L, int H, int peep, int N) {
  nn_model m;
  random_model(&m, L, H, peep);
  enum { T = 30 };
  size_t S = nn_state_floats(&m);
  float *x = malloc((size_t)T * N * NN_F * sizeof *x), *s0 = malloc(N * S * sizeof *s0),
        *s1 = malloc(N * S * sizeof *s1), *o0 = malloc((size_t)T * N * sizeof *o0),
        *o1 = malloc((size_t)T * N * sizeof *o1);
  for (int i = 0; i < T * N * NN_F; i++)
    x[i] = frand(-3, 3);
  nn_work w;
  CHECK_INT(nn_work_init(&w, &m, N), 0);
  w.Bkern = N; /* nn_projT for every call here, whatever this CPU's crossover */
  run_all(&m, &w, 0, T, N, x, s0, o0);
  for (int mode = 1; mode <= 2; mode++) {
    run_all(&m, &w, mode, T, N, x, s1, o1);
    int exact =
        memcmp(o0, o1, (size_t)T * N * sizeof *o0) == 0 && memcmp(s0, s1, N * S * sizeof *s0) == 0;
    printf("lstm waves L=%d H=%d peephole=%d N=%d T=%d (nn_projT level %d): one call vs %s: "
           "bit-exact %d (max diff y %.3g)\n",
           L, H, peep, N, T, nn_projT_level(),
           mode == 1 ? "one at a time" : "shuffled random groups", exact,
           maxdiff(o0, o1, (size_t)T * N));
    CHECK(exact);
  }
  nn_work_free(&w);
  free(x), free(s0), free(s1), free(o0), free(o1);
  nn_model_free(&m);
}

/* nn_work_update picks up changed biases and weights (W_ih[0], and the transposed copies of
 * W_hh and W_ih[1] that nn_projT reads): after it, a step equals one with a freshly made work;
 * without it, the step still uses the old values. */
static void test_work_update(void) {
  nn_model m;
  CHECK_INT(nn_model_init(&m, 2, 8, 1), 0);
  for (size_t i = 0; i < m.nparams; i++)
    m.params[i] = frand(-0.5f, 0.5f);
  nn_work w, w2;
  CHECK_INT(nn_work_init(&w, &m, 3), 0);
  for (int j = 0; j < 32; j++)
    m.b_ih[0][j] += 0.25f, m.b_hh[1][j] -= 0.5f;
  for (int j = 0; j < 32 * NN_F; j++)
    m.W_ih[0][j] *= -1.0f;
  for (int j = 0; j < 32 * 8; j++)
    m.W_hh[0][j] *= 0.5f, m.W_hh[1][j] += 0.125f, m.W_ih[1][j] *= -1.0f;
  float x[3 * NN_F], y1[3], y2[3], y3[3], st[3][64] = {{0}}, st2[3][64] = {{0}}, st3[3][64] = {{0}};
  for (int i = 0; i < 3 * NN_F; i++)
    x[i] = frand(-2, 2);
  float *p1[3] = {st[0], st[1], st[2]}, *p2[3] = {st2[0], st2[1], st2[2]},
        *p3[3] = {st3[0], st3[1], st3[2]};
  /* Two steps each, so that W_hh meets a non-zero h. */
  for (int t = 0; t < 2; t++)
    nn_lstm_step(&m, &w, 3, x, p3, y3); /* stale */
  nn_work_update(&w, &m);
  for (int t = 0; t < 2; t++)
    nn_lstm_step(&m, &w, 3, x, p1, y1);
  CHECK_INT(nn_work_init(&w2, &m, 3), 0);
  for (int t = 0; t < 2; t++)
    nn_lstm_step(&m, &w2, 3, x, p2, y2);
  CHECK(memcmp(y1, y2, sizeof y1) == 0 && memcmp(st, st2, sizeof st) == 0);
  CHECK(memcmp(y1, y3, sizeof y1) != 0);
  nn_work_free(&w);
  nn_work_free(&w2);
  nn_model_free(&m);
}

/* nn_head: each row's sum in the order j = 0..H-1, whatever B and the row's place in the call
 * (rows run 8 at a time, the rest one by one): the same bits as the plain loop here. */
static void test_head(int H) {
  nn_model m;
  CHECK_INT(nn_model_init(&m, 1, H, 0), 0);
  for (int j = 0; j < H; j++)
    m.head_w[j] = frand(-1, 1);
  m.head_b[0] = frand(-1, 1);
  enum { BMAX = 21 };
  float *h = malloc((size_t)BMAX * H * sizeof *h), y[BMAX], ref[BMAX];
  for (int i = 0; i < BMAX * H; i++)
    h[i] = frand(-1, 1);
  for (int b = 0; b < BMAX; b++) {
    volatile float acc = 0.0f; /* one rounding per operation, in order */
    for (int j = 0; j < H; j++) {
      volatile float p = h[b * H + j] * m.head_w[j];
      acc = acc + p;
    }
    ref[b] = acc + m.head_b[0];
  }
  int bad = 0;
  for (int B = 0; B <= BMAX; B++)
    for (int b0 = 0; b0 + B <= BMAX; b0 += 5) {
      nn_head(&m, B, h + (size_t)b0 * H, y);
      for (int b = 0; b < B; b++)
        bad += memcmp(&y[b], &ref[b0 + b], sizeof *y) != 0;
    }
  CHECK_INT(bad, 0);
  free(h);
  nn_model_free(&m);
}

int main(void) {
  test_work_update();
  test_head(5);
  test_head(64);
  const char *cases[] = {"l1_h8", "l2_h16", "l1_h8_peep", "l2_h16_peep", "l3_h5_peep"};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    test_fixture(cases[i]);
  test_batch_large(1, 64, 0, INT_MAX);
  test_batch_large(2, 32, 1, INT_MAX);
  test_batch_large(1, 128, 1, INT_MAX);
  test_batch_large(1, 64, 0, 4);
  test_batch_large(2, 32, 1, 4);
  test_batch_large(1, 128, 1, 4);
  test_waves_exact(2, 32, 1, 20);
  test_waves_exact(1, 64, 0, 64);
  test_waves_exact(3, 20, 1, 33);
  test_waves_exact(2, 5, 0, 17);
  nn_work w;
  nn_model m;
  CHECK_INT(nn_model_init(&m, 1, 8, 0), 0);
  CHECK_INT(nn_work_init(&w, &m, 0), TC_EINVAL);
  nn_model_free(&m);
  return check_done();
}
