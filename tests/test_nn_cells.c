/* test_nn_cells.c: the GRU and RNN steps (nn/cells.c, nn_step) against the PyTorch fixtures of
 * tests/gen_fixtures.py (torch.nn.GRU and torch.nn.RNN with tanh and relu, 1-3 layers, H = 5 to
 * 64, 3 to 16 instruments x 220 steps) and against a double-precision reference of their
 * equations at H up to 256; the batching property the daemon's waves rely on (one call for all
 * instruments, one at a time and shuffled random groups give the same bits while B <=
 * nn_work.Bkern, agree to 1e-6 of the outputs' scale on sgemm); nn_step running each cell, the LSTM
 * bit for bit as nn_lstm_step; nn_work_update for the GRU's separate recurrent bias. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "nn/base/tc_err.h"
#include "nn/lstm.h"
#include "nn/lstm_int.h"
#include "nn/safetensors/safetensors.h"

static uint64_t seed = 0x243F6A8885A308D3ull;
static float urandf(float lo, float hi) { /* splitmix64 */
  uint64_t z = (seed += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return lo + (hi - lo) * (float)(z >> 40) / 16777216.0f;
}

/* A whole little-endian float32 file of exactly n floats, or NULL (with a message). */
static float *load_f32(const char *path, size_t n) {
  FILE *f = fopen(path, "rb");
  float *a = f ? malloc((n + 1) * sizeof *a) : NULL;
  size_t got = a ? fread(a, sizeof *a, n + 1, f) : 0;
  if (f)
    fclose(f);
  if (got != n) {
    fprintf(stderr, "%s: %zu floats, expected %zu (run from the repository root)\n", path, got, n);
    free(a);
    return NULL;
  }
  return a;
}

/* How run() groups each step's instruments. */
enum { ALL_AT_ONCE, ONE_BY_ONE, RANDOM_GROUPS };

/* N instruments stepped T times with nn_step. x (T, N, NN_F), y (T, N) out; states (N, S) are
 * zeroed first and hold the final states after. */
static void run(const nn_model *m, nn_work *w, int how, int T, int N, const float *x, float *states,
                float *y) {
  const size_t S = nn_state_floats(m);
  memset(states, 0, (size_t)N * S * sizeof *states);
  float **sp = malloc((size_t)N * sizeof *sp), *xg = malloc((size_t)N * NN_F * sizeof *xg),
        *yg = malloc((size_t)N * sizeof *yg);
  int *order = malloc((size_t)N * sizeof *order);
  for (int t = 0; t < T; t++) {
    const float *xt = x + (size_t)t * N * NN_F;
    for (int n = 0; n < N; n++)
      order[n] = n;
    if (how == RANDOM_GROUPS)
      for (int n = N - 1; n > 0; n--) {
        int j = (int)urandf(0, (float)n + 0.999f), tmp = order[n];
        order[n] = order[j], order[j] = tmp;
      }
    for (int at = 0; at < N;) {
      int g = how == ALL_AT_ONCE  ? N
              : how == ONE_BY_ONE ? 1
                                  : 1 + (int)urandf(0, (float)(N - at) - 0.001f);
      for (int i = 0; i < g; i++) {
        sp[i] = states + (size_t)order[at + i] * S;
        memcpy(xg + i * NN_F, xt + order[at + i] * NN_F, NN_F * sizeof(float));
      }
      nn_step(m, w, g, xg, sp, yg);
      for (int i = 0; i < g; i++)
        y[(size_t)t * N + order[at + i]] = yg[i];
      at += g;
    }
  }
  free(sp), free(xg), free(yg), free(order);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
  double e = 0;
  for (size_t i = 0; i < n; i++)
    e = fmax(e, fabs((double)a[i] - b[i]));
  return e;
}

/* max |a - b| / (1 + |a|): an RNN's outputs and a relu RNN's states exceed 1, where float
 * rounding is coarser. */
static double max_rel_diff(const float *a, const float *b, size_t n) {
  double e = 0;
  for (size_t i = 0; i < n; i++)
    e = fmax(e, fabs((double)a[i] - b[i]) / (1 + fabs((double)a[i])));
  return e;
}

/* One fixture: cell, L, H as named; all N instruments per call within 1e-5 of PyTorch; one at a
 * time and random groups bit-exact; R copies of each instrument in one call of R * N, on
 * nn_projT (bit-exact) and on sgemm (1e-6), still within 1e-5 of PyTorch. */
static void test_fixture(const char *name, int cell, int L, int H) {
  char path[256], err[512];
  nn_model m;
  snprintf(path, sizeof path, "tests/fixtures/nn_%s.safetensors", name);
  int rc = nn_model_load(&m, path, err, sizeof err);
  CHECK_INT(rc, 0);
  if (rc) {
    fprintf(stderr, "%s\n", err);
    return;
  }
  CHECK_INT(m.cell, cell);
  CHECK_INT(m.L, L);
  CHECK_INT(m.H, H);
  CHECK_INT(m.G, nn_cell_gates(cell) * H);
  CHECK_INT(nn_state_floats(&m), (size_t)L * H);
  const char *sn = nn_model_get_meta(&m, "test.instruments"),
             *st = nn_model_get_meta(&m, "test.steps");
  int N = sn ? atoi(sn) : 0, T = st ? atoi(st) : 0;
  CHECK(N >= 3 && N <= 64 && T >= 200);
  snprintf(path, sizeof path, "tests/fixtures/nn_%s.x.f32", name);
  float *x = N ? load_f32(path, (size_t)T * N * NN_F) : NULL;
  snprintf(path, sizeof path, "tests/fixtures/nn_%s.y.f32", name);
  float *want = N ? load_f32(path, (size_t)T * N) : NULL;
  CHECK(x && want);
  if (!x || !want) {
    free(x), free(want);
    nn_model_free(&m);
    return;
  }
  const size_t S = nn_state_floats(&m), TN = (size_t)T * N;
  float *s0 = malloc(N * S * sizeof *s0), *s1 = malloc(N * S * sizeof *s1),
        *y0 = malloc(TN * sizeof *y0), *y1 = malloc(TN * sizeof *y1);
  nn_work w;
  CHECK_INT(nn_work_init(&w, &m, N), 0);
  run(&m, &w, ALL_AT_ONCE, T, N, x, s0, y0);
  double e = max_abs_diff(y0, want, TN);
  printf("%s: cell=%s L=%d H=%d N=%d T=%d: max abs error vs PyTorch %.3g\n", name,
         nn_cell_name(m.cell), L, H, N, T, e);
  CHECK(e <= 1e-5);
  for (int how = ONE_BY_ONE; how <= RANDOM_GROUPS; how++) {
    run(&m, &w, how, T, N, x, s1, y1);
    int exact = memcmp(y0, y1, TN * sizeof *y0) == 0 && memcmp(s0, s1, N * S * sizeof *s0) == 0;
    printf("%s: all at once vs %s: bit-exact %d (max diff y %.3g)\n", name,
           how == ONE_BY_ONE ? "one at a time" : "random groups", exact, max_abs_diff(y0, y1, TN));
    CHECK(exact);
  }
  enum { R = 16 };
  for (int sg = 0; sg <= 1; sg++) {
    int NB = R * N;
    nn_work wb;
    CHECK_INT(nn_work_init(&wb, &m, NB), 0);
    if (sg)
      wb.Bkern = 0;
    float *sb = calloc((size_t)NB * S, sizeof *sb), *xb = malloc((size_t)NB * NN_F * sizeof *xb),
          *yb = malloc((size_t)NB * sizeof *yb), **pb = malloc((size_t)NB * sizeof *pb);
    for (int b = 0; b < NB; b++)
      pb[b] = sb + (size_t)((b * 37) % NB) * S;
    double ep = 0, d = 0, ymax = 1;
    for (size_t i = 0; i < TN; i++)
      ymax = fmax(ymax, fabs(want[i]));
    for (int t = 0; t < T; t++) {
      for (int b = 0; b < NB; b++)
        memcpy(xb + b * NN_F, x + ((size_t)t * N + b % N) * NN_F, NN_F * sizeof(float));
      nn_step(&m, &wb, NB, xb, pb, yb);
      for (int b = 0; b < NB; b++) {
        ep = fmax(ep, fabs((double)yb[b] - want[(size_t)t * N + b % N]));
        d = fmax(d, fabs((double)yb[b] - y0[(size_t)t * N + b % N]));
      }
    }
    printf("%s: B=%d (%s): max abs error vs PyTorch %.3g, vs B=%d %.3g (max |y| %.3g)\n", name, NB,
           NB <= wb.Bkern ? "nn_projT" : "sgemm", ep, N, d, ymax);
    CHECK(ep <= 1e-5);
    /* sgemm's rounding differs by a row's place in the batch, and an RNN carries it forward
     * over 220 steps at up to |y| = 8: 1e-6 of the outputs' scale. */
    CHECK(d <= (NB <= wb.Bkern ? 0 : 1e-6 * ymax));
    free(sb), free(xb), free(yb), free(pb);
    nn_work_free(&wb);
  }
  nn_work_free(&w);
  free(s0), free(s1), free(y0), free(y1), free(x), free(want);
  nn_model_free(&m);
}

/* A model of the cell with every parameter uniform in +-1.5/sqrt(H), features and target
 * unscaled. */
static void random_model(nn_model *m, int cell, int L, int H) {
  CHECK_INT(nn_model_init_cell(m, cell, L, H, 0), 0);
  float sc = 1.5f / sqrtf((float)H);
  for (size_t i = 0; i < m->nparams; i++)
    m->params[i] = urandf(-sc, sc);
  for (int i = 0; i < NN_F; i++)
    m->feat_mean[i] = 0, m->feat_std[i] = 1;
  m->tgt_mean[0] = 0, m->tgt_std[0] = 1;
}

/* One step of the cell's equations in double for one instrument: x (NN_F), h (L, H) updated;
 * returns y. */
static double ref_step(const nn_model *m, const float *x, double *h) {
  const int L = m->L, H = m->H;
  double *in = malloc((size_t)(H > NN_F ? H : NN_F) * sizeof *in), *hn = malloc(H * sizeof *hn);
  for (int d = 0; d < NN_F; d++)
    in[d] = x[d];
  for (int k = 0; k < L; k++) {
    const int D = k ? H : NN_F;
    double *hk = h + (size_t)k * H;
    for (int j = 0; j < H; j++) {
      double gi[3], gh[3]; /* per gate block: input side, recurrent side (biases included) */
      for (int g = 0; g < nn_cell_gates(m->cell); g++) {
        int r = g * H + j;
        gi[g] = m->b_ih[k][r], gh[g] = m->b_hh[k][r];
        for (int d = 0; d < D; d++)
          gi[g] += (double)m->W_ih[k][(size_t)r * D + d] * in[d];
        for (int d = 0; d < H; d++)
          gh[g] += (double)m->W_hh[k][(size_t)r * H + d] * hk[d];
      }
      if (m->cell == NN_CELL_GRU) {
        double rg = 1 / (1 + exp(-(gi[0] + gh[0]))), zg = 1 / (1 + exp(-(gi[1] + gh[1])));
        double ng = tanh(gi[2] + rg * gh[2]);
        hn[j] = (1 - zg) * ng + zg * hk[j];
      } else {
        double a = gi[0] + gh[0];
        hn[j] = m->cell == NN_CELL_RNN_RELU ? (a > 0 ? a : 0) : tanh(a);
      }
    }
    memcpy(hk, hn, H * sizeof *hn);
    memcpy(in, hn, H * sizeof *hn);
  }
  double y = m->head_b[0];
  for (int j = 0; j < H; j++)
    y += (double)m->head_w[j] * in[j];
  free(in), free(hn);
  return y;
}

/* Larger shapes than the fixtures: N = 300 instruments in one call equal one call each (bit for
 * bit on nn_projT, to 2e-6 relative on sgemm with Bkern lowered to bkern), and the first ones
 * follow the double reference over T steps. */
static void test_batch_large(int cell, int L, int H, int bkern) {
  nn_model m;
  random_model(&m, cell, L, H);
  enum { N = 300, T = 6, NREF = 4 };
  const size_t S = nn_state_floats(&m), TN = (size_t)T * N;
  float *x = malloc(TN * NN_F * sizeof *x), *s0 = malloc(N * S * sizeof *s0),
        *s1 = malloc(N * S * sizeof *s1), *y0 = malloc(TN * sizeof *y0),
        *y1 = malloc(TN * sizeof *y1);
  double *href = calloc((size_t)NREF * S, sizeof *href);
  for (size_t i = 0; i < TN * NN_F; i++)
    x[i] = urandf(-3, 3);
  nn_work w;
  CHECK_INT(nn_work_init(&w, &m, N), 0);
  w.Bkern = bkern < w.Bkern ? bkern : w.Bkern;
  run(&m, &w, ALL_AT_ONCE, T, N, x, s0, y0);
  run(&m, &w, ONE_BY_ONE, T, N, x, s1, y1);
  double dmax = fmax(max_rel_diff(y0, y1, TN), max_rel_diff(s0, s1, N * S)), eref = 0;
  for (int b = 0; b < NREF; b++)
    for (int t = 0; t < T; t++)
      eref = fmax(eref, fabs(ref_step(&m, x + ((size_t)t * N + b) * NN_F, href + b * S) -
                             y0[(size_t)t * N + b]));
  printf("%s random L=%d H=%d: B=%d (%s) vs B=1 max rel diff (y and state) %.3g over %d steps; "
         "error vs double %.3g\n",
         nn_cell_name(cell), L, H, N, N <= w.Bkern ? "nn_projT" : "sgemm", dmax, T, eref);
  /* sgemm: 2e-6, as an RNN does not damp the rounding differences step after step. */
  CHECK(dmax <= (N <= w.Bkern ? 0 : 2e-6));
  CHECK(eref <= 2e-5);
  nn_work_free(&w);
  free(x), free(s0), free(s1), free(y0), free(y1), free(href);
  nn_model_free(&m);
}

/* Waves the size the daemon runs, with nn_projT forced for every call (Bkern = N, so that this
 * holds for its plain version too): all at once, one at a time and random groups give the same
 * bits, for shapes whose G is no multiple of 16 too. */
static void test_waves_exact(int cell, int L, int H, int N) {
  nn_model m;
  random_model(&m, cell, L, H);
  enum { T = 30 };
  const size_t S = nn_state_floats(&m), TN = (size_t)T * N;
  float *x = malloc(TN * NN_F * sizeof *x), *s0 = malloc(N * S * sizeof *s0),
        *s1 = malloc(N * S * sizeof *s1), *y0 = malloc(TN * sizeof *y0),
        *y1 = malloc(TN * sizeof *y1);
  for (size_t i = 0; i < TN * NN_F; i++)
    x[i] = urandf(-3, 3);
  nn_work w;
  CHECK_INT(nn_work_init(&w, &m, N), 0);
  w.Bkern = N;
  run(&m, &w, ALL_AT_ONCE, T, N, x, s0, y0);
  for (int how = ONE_BY_ONE; how <= RANDOM_GROUPS; how++) {
    run(&m, &w, how, T, N, x, s1, y1);
    int exact = memcmp(y0, y1, TN * sizeof *y0) == 0 && memcmp(s0, s1, N * S * sizeof *s0) == 0;
    printf("%s waves L=%d H=%d N=%d (nn_projT level %d): %s bit-exact %d\n", nn_cell_name(cell), L,
           H, N, nn_projT_level(), how == ONE_BY_ONE ? "one at a time" : "random groups", exact);
    CHECK(exact);
  }
  nn_work_free(&w);
  free(x), free(s0), free(s1), free(y0), free(y1);
  nn_model_free(&m);
}

/* nn_step on an LSTM is nn_lstm_step, bit for bit; on the other cells it runs theirs (a GRU step
 * differs from an RNN step on the same parameters' shapes). */
static void test_dispatch(void) {
  nn_model m;
  random_model(&m, NN_CELL_LSTM, 2, 12);
  enum { B = 5 };
  const size_t S = nn_state_floats(&m);
  float sa[B * 2 * 2 * 12] = {0}, sb[B * 2 * 2 * 12] = {0}, x[B * NN_F], ya[B], yb[B];
  float *pa[B], *pb[B];
  for (int b = 0; b < B; b++)
    pa[b] = sa + b * S, pb[b] = sb + b * S;
  nn_work w;
  CHECK_INT(nn_work_init(&w, &m, B), 0);
  int same = 1;
  for (int t = 0; t < 4; t++) {
    for (int i = 0; i < B * NN_F; i++)
      x[i] = urandf(-2, 2);
    nn_step(&m, &w, B, x, pa, ya);
    nn_lstm_step(&m, &w, B, x, pb, yb);
    same &= memcmp(ya, yb, sizeof ya) == 0 && memcmp(sa, sb, sizeof sa) == 0;
  }
  CHECK(same);
  nn_work_free(&w);
  nn_model_free(&m);
  /* relu against tanh on the same weights, one step from zero state: both see the same
   * pre-activation a, so relu's h is 0 where tanh's is <= 0 and atanh of tanh's elsewhere. */
  nn_model r[2];
  nn_work rw[2];
  float h[2][16] = {{0}}, y[2];
  for (int i = 0; i < 2; i++) {
    random_model(&r[i], i ? NN_CELL_RNN_RELU : NN_CELL_RNN_TANH, 1, 16);
    if (i)
      memcpy(r[1].params, r[0].params, r[0].nparams * sizeof(float));
    CHECK_INT(nn_work_init(&rw[i], &r[i], 1), 0);
    float *p = h[i];
    nn_step(&r[i], &rw[i], 1, x, &p, &y[i]);
  }
  int neg = 0, relu_ok = 1;
  for (int j = 0; j < 16; j++) {
    neg += h[0][j] < 0;
    relu_ok &= (h[1][j] > 0) == (h[0][j] > 0) && h[1][j] >= 0;
    if (h[0][j] > 0 && h[0][j] < 0.9f)
      relu_ok &= fabsf(h[1][j] - atanhf(h[0][j])) < 1e-4f;
  }
  CHECK(neg > 0 && relu_ok);
  for (int i = 0; i < 2; i++)
    nn_work_free(&rw[i]), nn_model_free(&r[i]);
  /* Peepholes exist only on the LSTM; a model of an unknown cell is refused by nn_work_init. */
  CHECK_INT(nn_model_init_cell(&m, NN_CELL_GRU, 1, 4, 1), TC_EINVAL); /* peepholes: LSTM only */
  CHECK_INT(nn_model_init_cell(&m, NN_CELL_COUNT, 1, 4, 0), TC_EINVAL);
  CHECK_INT(nn_model_init_cell(&m, NN_CELL_GRU, 1, 4, 0), 0);
  m.cell = 7;
  CHECK_INT(nn_work_init(&w, &m, 1), TC_EINVAL);
  m.cell = NN_CELL_GRU;
  nn_model_free(&m);
}

/* nn_work_update picks up changed parameters of a GRU, its b_hn (kept apart in nn_work.bhh)
 * included: a work made before the change and updated follows the double reference of the new
 * parameters; not updated, it does not. */
static void test_work_update(void) {
  nn_model m;
  random_model(&m, NN_CELL_GRU, 2, 8);
  enum { B = 3, T = 3 };
  nn_work w;
  CHECK_INT(nn_work_init(&w, &m, B), 0);
  for (int j = 0; j < m.G; j++)
    m.b_hh[0][j] += 0.5f, m.b_ih[1][j] -= 0.25f;
  for (int j = 0; j < m.G * m.H; j++)
    m.W_hh[1][j] *= -1.0f;
  double e[2] = {0, 0}; /* max |y - reference| without, then with the update */
  for (int upd = 0; upd < 2; upd++) {
    if (upd)
      nn_work_update(&w, &m);
    float st[B][16] = {{0}}, x[B * NN_F], y[B];
    double href[B][16] = {{0}};
    float *sp[B] = {st[0], st[1], st[2]};
    for (int t = 0; t < T; t++) {
      for (int i = 0; i < B * NN_F; i++)
        x[i] = urandf(-2, 2);
      nn_step(&m, &w, B, x, sp, y);
      for (int b = 0; b < B; b++)
        e[upd] = fmax(e[upd], fabs(ref_step(&m, x + b * NN_F, href[b]) - y[b]));
    }
  }
  printf("gru nn_work_update: error vs the new parameters' reference %.3g stale, %.3g updated\n",
         e[0], e[1]);
  CHECK(e[0] > 1e-3 && e[1] <= 2e-5);
  nn_work_free(&w);
  nn_model_free(&m);
}

int main(void) {
  static const struct {
    const char *name;
    int cell, L, H;
  } fx[] = {{"gru_l1_h8", NN_CELL_GRU, 1, 8},
            {"gru_l2_h16", NN_CELL_GRU, 2, 16},
            {"gru_l3_h5", NN_CELL_GRU, 3, 5},
            {"gru_l1_h64", NN_CELL_GRU, 1, 64},
            {"rnn_tanh_l1_h8", NN_CELL_RNN_TANH, 1, 8},
            {"rnn_tanh_l2_h16", NN_CELL_RNN_TANH, 2, 16},
            {"rnn_tanh_l1_h64", NN_CELL_RNN_TANH, 1, 64},
            {"rnn_relu_l1_h8", NN_CELL_RNN_RELU, 1, 8},
            {"rnn_relu_l2_h12", NN_CELL_RNN_RELU, 2, 12}};
  for (size_t i = 0; i < sizeof fx / sizeof *fx; i++)
    test_fixture(fx[i].name, fx[i].cell, fx[i].L, fx[i].H);
  for (int cell = NN_CELL_GRU; cell < NN_CELL_COUNT; cell++) {
    test_batch_large(cell, 1, 128, INT_MAX);
    test_batch_large(cell, 2, 64, INT_MAX);
    test_batch_large(cell, 1, 256, 4);
    test_waves_exact(cell, 2, 32, 20);
    test_waves_exact(cell, 3, 20, 33);
    test_waves_exact(cell, 1, 5, 17);
  }
  test_dispatch();
  test_work_update();
  return check_done();
}
