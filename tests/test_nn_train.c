/* test_nn_train.c: the trainer's forward and backward passes (nn/train.c, nn/train_cells.c).
 * Gradients of every parameter tensor against central finite differences of a double-precision
 * reference of the same loss, for L = 1 and 2, the LSTM with and without peepholes, the GRU and
 * the RNN with tanh and relu; against PyTorch autograd on a fixed batch
 * (tests/fixtures/train_grad_*.txt from tests/gen_train_fixture.py: nn.LSTM, nn.GRU, nn.RNN,
 * and with the scale head PyTorch's GaussianNLLLoss, its eps clamp included);
 * state carried across windows; clipping; Adam's first step in closed form; the recurrence's
 * products on nn_projT (packed W_hh, row strides padded) against sgemm's, every cell. */
#include <stdlib.h>

#include "check.h"
#include "nn/base/tc_err.h"
#include "nn/lstm.h"
#include "nn/lstm_int.h"
#include "nn/model.h"
#include "nn/train.h"

/* The loss of CONTRACT §3 in double, with params read from p (laid out like m->params).
 * x (T, B, F), tgt (T, B), w (T, B), initial state zero. */
static double ref_loss(const nn_model *m, const double *p, int B, int T, const float *x,
                       const float *tgt, const float *w) {
  const int L = m->L, H = m->H, G = m->G;
#define P(ptr) (p + ((ptr)-m->params))
  double *h = calloc((size_t)L * B * H, sizeof(double)), *c = calloc((size_t)L * B * H, 8);
  double *in = calloc((size_t)(H > NN_F ? H : NN_F), 8), *z = calloc(G, 8), *zh = calloc(G, 8);
  double loss = 0;
  for (int t = 0; t < T; t++)
    for (int b = 0; b < B; b++) {
      for (int i = 0; i < NN_F; i++)
        in[i] = x[((size_t)t * B + b) * NN_F + i];
      for (int k = 0; k < L; k++) {
        int D = k == 0 ? NN_F : H;
        double *hk = h + ((size_t)k * B + b) * H, *ck = c + ((size_t)k * B + b) * H;
        const double *Wi = P(m->W_ih[k]), *Wh = P(m->W_hh[k]), *bi = P(m->b_ih[k]),
                     *bh = P(m->b_hh[k]);
        for (int r = 0; r < G; r++) {
          double s = bi[r], sh = bh[r];
          for (int d = 0; d < D; d++)
            s += Wi[(size_t)r * D + d] * in[d];
          for (int d = 0; d < H; d++)
            sh += Wh[(size_t)r * H + d] * hk[d];
          z[r] = s + sh;
          zh[r] = sh;
        }
        if (m->cell == NN_CELL_GRU) { /* r, z, n; r multiplies the recurrent n block */
          for (int j = 0; j < H; j++) {
            double gr = 1 / (1 + exp(-z[j])), gz = 1 / (1 + exp(-z[H + j]));
            double gn = tanh(z[2 * H + j] - zh[2 * H + j] + gr * zh[2 * H + j]);
            hk[j] = (1 - gz) * gn + gz * hk[j];
          }
        } else if (m->cell != NN_CELL_LSTM) {
          for (int j = 0; j < H; j++)
            hk[j] = m->cell == NN_CELL_RNN_RELU ? (z[j] > 0 ? z[j] : 0) : tanh(z[j]);
        }
        for (int j = 0; j < H && m->cell == NN_CELL_LSTM; j++) {
          double zi = z[j], zf = z[H + j], zg = z[2 * H + j], zo = z[3 * H + j];
          if (m->peephole) {
            zi += P(m->w_ci[k])[j] * ck[j];
            zf += P(m->w_cf[k])[j] * ck[j];
          }
          double gi = 1 / (1 + exp(-zi)), gf = 1 / (1 + exp(-zf)), gg = tanh(zg);
          ck[j] = gf * ck[j] + gi * gg;
          if (m->peephole)
            zo += P(m->w_co[k])[j] * ck[j];
          hk[j] = 1 / (1 + exp(-zo)) * tanh(ck[j]);
        }
        for (int j = 0; j < H; j++)
          in[j] = hk[j];
      }
      double y = P(m->head_b)[0];
      for (int j = 0; j < H; j++)
        y += P(m->head_w)[j] * in[j];
      size_t r = (size_t)t * B + b;
      if (!m->gauss) {
        loss += w[r] * (y - tgt[r]) * (y - tgt[r]);
        continue;
      }
      double s = P(m->scale_b)[0];
      for (int j = 0; j < H; j++)
        s += P(m->scale_w)[j] * in[j];
      double v = fmax(exp(s), 1e-6);
      loss += w[r] * 0.5 * (log(v) + (y - tgt[r]) * (y - tgt[r]) / v);
    }
#undef P
  free(h), free(c), free(in), free(z), free(zh);
  return loss;
}

static float frand(nn_rng *r, float a) {
  return (float)((2 * nn_rng_uniform(r) - 1) * a);
}

/* One configuration: analytic gradients of every tensor vs finite differences. */
static void check_grads_head(int cell, int L, int H, int peephole, int B, int T, uint64_t seed,
                             int gauss) {
  nn_model m;
  nn_train tr;
  nn_rng r;
  nn_rng_seed(&r, seed);
  CHECK_INT(nn_model_init_head(&m, cell, L, H, peephole, gauss), 0);
  nn_train_init_weights(&m, &r);
  /* Larger-than-default weights so that every gate is exercised away from its linear regime. */
  for (size_t i = 0; i < m.nparams; i++)
    if (nn_param_trainable(&m, i))
      m.params[i] *= 2.0f;
  CHECK_INT(nn_train_init(&tr, &m, B, T), 0);
  size_t TB = (size_t)T * B;
  float *x = malloc(TB * NN_F * 4), *tgt = malloc(TB * 4), *w = malloc(TB * 4);
  float *state = calloc((size_t)B * nn_state_floats(&m), 4), *grad = calloc(m.nparams, 4);
  for (size_t i = 0; i < TB * NN_F; i++)
    x[i] = frand(&r, 1.5f);
  for (size_t i = 0; i < TB; i++) {
    tgt[i] = frand(&r, 1.0f);
    w[i] = (i % 5 == 3) ? 0.0f : 1.0f / (float)TB; /* some padding */
  }
  double loss = nn_train_forward(&tr, &m, B, T, x, tgt, w, state);
  nn_train_backward(&tr, &m, grad);
  double *p = malloc(m.nparams * sizeof(double));
  for (size_t i = 0; i < m.nparams; i++)
    p[i] = m.params[i];
  double ref = ref_loss(&m, p, B, T, x, tgt, w);
  CHECK_NEAR(loss, ref, 1e-5 * fabs(ref) + 1e-7);

  struct {
    const char *name;
    float *t;
    size_t n;
  } ts[7 * NN_MAX_LAYERS + 4];
  int nt = 0;
  for (int k = 0; k < L; k++) {
    size_t D = k == 0 ? NN_F : (size_t)H, G = (size_t)m.G;
    ts[nt++] = (typeof(ts[0])){"W_ih", m.W_ih[k], G * D};
    ts[nt++] = (typeof(ts[0])){"W_hh", m.W_hh[k], G * H};
    ts[nt++] = (typeof(ts[0])){"b_ih", m.b_ih[k], G};
    ts[nt++] = (typeof(ts[0])){"b_hh", m.b_hh[k], G};
    if (peephole) {
      ts[nt++] = (typeof(ts[0])){"w_ci", m.w_ci[k], (size_t)H};
      ts[nt++] = (typeof(ts[0])){"w_cf", m.w_cf[k], (size_t)H};
      ts[nt++] = (typeof(ts[0])){"w_co", m.w_co[k], (size_t)H};
    }
  }
  ts[nt++] = (typeof(ts[0])){"head_w", m.head_w, (size_t)H};
  ts[nt++] = (typeof(ts[0])){"head_b", m.head_b, 1};
  if (gauss) {
    ts[nt++] = (typeof(ts[0])){"scale_w", m.scale_w, (size_t)H};
    ts[nt++] = (typeof(ts[0])){"scale_b", m.scale_b, 1};
  }
  int bad = 0, checked = 0;
  double maxrel = 0;
  for (int q = 0; q < nt; q++) {
    /* Several entries per tensor: the gate blocks (i, f, g, o; r, z, n) of a G-row tensor are
     * all hit. */
    int ne = ts[q].n < 8 ? (int)ts[q].n : 8;
    for (int e = 0; e < ne; e++) {
      size_t j = ts[q].n <= 8 ? (size_t)e : (size_t)e * ts[q].n / 8 + nn_rng_below(&r, ts[q].n / 8);
      size_t idx = (size_t)(ts[q].t - m.params) + j;
      const double eps = 1e-5;
      double save = p[idx];
      p[idx] = save + eps;
      double lp = ref_loss(&m, p, B, T, x, tgt, w);
      p[idx] = save - eps;
      double lm = ref_loss(&m, p, B, T, x, tgt, w);
      p[idx] = save;
      double fd = (lp - lm) / (2 * eps), an = grad[idx];
      double tol = 2e-5 + 2e-3 * fabs(fd);
      checked++;
      double rel = fabs(an - fd) / (fabs(fd) + 1e-6);
      if (rel > maxrel && fabs(fd) > 1e-4)
        maxrel = rel;
      if (!(fabs(an - fd) <= tol)) {
        bad++;
        fprintf(stderr, "%s L=%d H=%d peep=%d %s[%d][%zu]: analytic %.9g vs fd %.9g\n",
                nn_cell_name(cell), L, H, peephole, ts[q].name, q, j, an, fd);
      }
    }
  }
  printf("grads %s%s L=%d H=%d peephole=%d B=%d T=%d: %d entries vs finite differences, max "
         "rel err %.2e\n",
         nn_cell_name(cell), gauss ? " gauss" : "", L, H, peephole, B, T, checked, maxrel);
  CHECK_INT(bad, 0);
  /* features.* and target.* get no gradient. */
  for (size_t i = 0; i < m.nparams; i++)
    if (!nn_param_trainable(&m, i))
      CHECK(grad[i] == 0.0f);
  free(p), free(x), free(tgt), free(w), free(state), free(grad);
  nn_train_free(&tr);
  nn_model_free(&m);
}

static void check_grads(int cell, int L, int H, int peephole, int B, int T, uint64_t seed) {
  check_grads_head(cell, L, H, peephole, B, T, seed, 0);
}

/* The trainer's forward and inference's step (nn_step) agree on every cell: the same outputs to
 * float rounding and the same final states, so a model is trained on the network it runs. */
static void check_infer(int cell, int gauss) {
  nn_model m;
  nn_train tr;
  nn_work w;
  nn_rng r;
  nn_rng_seed(&r, 40 + (uint64_t)cell);
  enum { L = 2, H = 12, B = 5, T = 20 };
  CHECK_INT(nn_model_init_head(&m, cell, L, H, 0, gauss), 0);
  nn_train_init_weights(&m, &r);
  for (size_t i = 0; i < m.nparams; i++)
    if (nn_param_trainable(&m, i))
      m.params[i] *= 2.0f;
  CHECK_INT(nn_train_init(&tr, &m, B, T), 0);
  CHECK_INT(nn_work_init(&w, &m, B), 0);
  const size_t S = nn_state_floats(&m);
  float x[T * B * NN_F], tgt[T * B] = {0}, wt[T * B] = {0}, y[B], sc[B];
  float *s1 = calloc(B * S, sizeof *s1), *s2 = calloc(B * S, sizeof *s2), *sp[B];
  for (int i = 0; i < T * B * NN_F; i++)
    x[i] = frand(&r, 2.0f);
  nn_train_forward(&tr, &m, B, T, x, tgt, wt, s1);
  for (int b = 0; b < B; b++)
    sp[b] = s2 + b * S;
  double dy = 0, ds = 0;
  for (int t = 0; t < T; t++) {
    nn_step(&m, &w, B, x + (size_t)t * B * NN_F, sp, y);
    for (int b = 0; b < B; b++)
      dy = fmax(dy, fabs((double)y[b] - tr.y[t * B + b]) / (1 + fabs((double)y[b])));
    if (gauss) { /* the scale head over the stepped state: the trainer's s */
      nn_model_scale_out(&m, B, sp, sc);
      for (int b = 0; b < B; b++)
        dy = fmax(dy, fabs((double)sc[b] - tr.s[t * B + b]) / (1 + fabs((double)sc[b])));
    }
  }
  for (size_t i = 0; i < B * S; i++)
    ds = fmax(ds, fabs((double)s1[i] - s2[i]) / (1 + fabs((double)s1[i])));
  /* Relative to 1 + |value|: a relu RNN's h is unbounded. */
  printf("train forward vs nn_step, %s%s L=%d H=%d B=%d T=%d: max rel diff y %.3g, state %.3g\n",
         nn_cell_name(cell), gauss ? " gauss (y and s)" : "", L, H, B, T, dy, ds);
  CHECK(dy <= 1e-5 && ds <= 1e-5);
  free(s1), free(s2);
  nn_work_free(&w);
  nn_train_free(&tr);
  nn_model_free(&m);
}

/* Two windows of T with carried state give the outputs of one window of 2T. */
static void check_carry(int cell) {
  nn_model m;
  nn_train tr;
  nn_rng r;
  nn_rng_seed(&r, 7);
  int L = 2, H = 6, B = 3, T = 5;
  CHECK_INT(nn_model_init_cell(&m, cell, L, H, cell == NN_CELL_LSTM), 0);
  nn_train_init_weights(&m, &r);
  CHECK_INT(nn_train_init(&tr, &m, B, 2 * T), 0);
  size_t TB = (size_t)2 * T * B;
  float *x = malloc(TB * NN_F * 4), *tgt = calloc(TB, 4), *w = calloc(TB, 4), *y = malloc(TB * 4);
  float *s1 = calloc((size_t)B * nn_state_floats(&m), 4),
        *s2 = calloc((size_t)B * nn_state_floats(&m), 4);
  for (size_t i = 0; i < TB * NN_F; i++)
    x[i] = frand(&r, 1.0f);
  nn_train_forward(&tr, &m, B, 2 * T, x, tgt, w, s1);
  memcpy(y, tr.y, TB * 4);
  nn_train_forward(&tr, &m, B, T, x, tgt, w, s2);
  float maxd = 0;
  for (size_t i = 0; i < TB / 2; i++)
    maxd = fmaxf(maxd, fabsf(tr.y[i] - y[i]));
  nn_train_forward(&tr, &m, B, T, x + TB / 2 * NN_F, tgt, w, s2);
  for (size_t i = 0; i < TB / 2; i++)
    maxd = fmaxf(maxd, fabsf(tr.y[i] - y[TB / 2 + i]));
  CHECK(maxd == 0.0f);
  float maxs = 0;
  for (size_t i = 0; i < (size_t)B * nn_state_floats(&m); i++)
    maxs = fmaxf(maxs, fabsf(s1[i] - s2[i]));
  CHECK(maxs == 0.0f);
  free(x), free(tgt), free(w), free(y), free(s1), free(s2);
  nn_train_free(&tr);
  nn_model_free(&m);
}

/* The same forward and backward with the recurrence on nn_projT (tr.wpk, the default for small
 * batches) and on sgemm (tr.wpk taken away): the same loss, outputs and gradients within float
 * rounding, so the packing of W_hh (transposed for the forward, rows padded for the backward) and
 * the strides are right. H = 24: G and H both get padded row strides; B = 7: a block of 4 rows
 * and a remainder of 3; two passes with the weights moved in between: packed again each pass. */
static void check_kernels(int cell) {
  nn_model m;
  nn_rng r;
  nn_rng_seed(&r, 11 + (uint64_t)cell);
  int L = 2, H = 24, B = 7, T = 6;
  CHECK_INT(nn_model_init_cell(&m, cell, L, H, cell == NN_CELL_LSTM), 0);
  nn_train_init_weights(&m, &r);
  size_t TB = (size_t)T * B, sf = nn_state_floats(&m), np = m.nparams;
  float *x = malloc(TB * NN_F * 4), *tgt = malloc(TB * 4), *w = malloc(TB * 4);
  float *s0 = malloc((size_t)B * sf * 4), *st = malloc((size_t)B * sf * 4);
  float *g[2] = {calloc(np, 4), calloc(np, 4)}, *y[2] = {malloc(TB * 4), malloc(TB * 4)};
  for (size_t i = 0; i < TB * NN_F; i++)
    x[i] = frand(&r, 1.0f);
  for (size_t i = 0; i < TB; i++)
    tgt[i] = frand(&r, 1.0f), w[i] = 1.0f / (float)TB;
  for (size_t i = 0; i < (size_t)B * sf; i++)
    s0[i] = frand(&r, 0.5f);
  double loss[2];
  float *p0 = malloc(np * 4);
  memcpy(p0, m.params, np * 4);
  for (int v = 0; v < 2; v++) {
    nn_train tr;
    CHECK_INT(nn_train_init(&tr, &m, B, T), 0);
    CHECK((tr.wpk != NULL) == (B <= nn_projT_max_b())); /* 7: every SIMD level, not plain C */
    if (v == 1) {
      free(tr.wpk);
      tr.wpk = NULL;
    }
    memcpy(m.params, p0, np * 4);
    for (int pass = 0; pass < 2; pass++) { /* the second pass on moved weights */
      memcpy(st, s0, (size_t)B * sf * 4);
      memset(g[v], 0, np * 4);
      loss[v] = nn_train_forward(&tr, &m, B, T, x, tgt, w, st);
      memcpy(y[v], tr.y, TB * 4);
      nn_train_backward(&tr, &m, g[v]);
      nn_rng q; /* the same move for both variants */
      nn_rng_seed(&q, 99);
      if (pass == 0)
        for (size_t i = 0; i < np; i++)
          m.params[i] += nn_param_trainable(&m, i) ? frand(&q, 0.05f) : 0.0f;
    }
    nn_train_free(&tr);
  }
  memcpy(m.params, p0, np * 4);
  free(p0);
  double gmax = 0, gd = 0, yd = 0;
  for (size_t i = 0; i < np; i++) {
    gmax = fmax(gmax, fabs(g[1][i]));
    gd = fmax(gd, fabs(g[0][i] - g[1][i]));
  }
  for (size_t i = 0; i < TB; i++)
    yd = fmax(yd, fabs(y[0][i] - y[1][i]));
  CHECK(gmax > 0);
  CHECK_NEAR(loss[0], loss[1], 1e-6 * fabs(loss[1]));
  CHECK_NEAR(gd / gmax, 0, 1e-5);
  CHECK_NEAR(yd, 0, 1e-5);
  printf("kernels %s L=%d H=%d B=%d T=%d: nn_projT vs sgemm, loss %.9g vs %.9g, outputs %.2g, "
         "worst grad diff %.2g of the max\n",
         nn_cell_name(cell), L, H, B, T, loss[0], loss[1], yd, gd / gmax);
  free(x), free(tgt), free(w), free(s0), free(st), free(g[0]), free(g[1]), free(y[0]), free(y[1]);
  nn_model_free(&m);
}

/* Adam's vector clones (nn/train.c: adam_range, the one this CPU picks) against the scalar
 * formula written out here, bit for bit: five steps over a model whose trainable runs have odd
 * lengths, on every split point of nn_adam_part's ranges, with gradients of all magnitudes. */
static void check_adam_bits(void) {
  nn_model m;
  CHECK_INT(nn_model_init(&m, 2, 13, 0), 0);
  size_t n = m.nparams;
  nn_adam a;
  CHECK_INT(nn_adam_init(&a, n, 3e-3f), 0);
  float *p = malloc(n * 4), *mo = calloc(n, 4), *ve = calloc(n, 4), *g = malloc(n * 4);
  memcpy(p, m.params, n * 4);
  nn_rng r;
  nn_rng_seed(&r, 11);
  size_t bad = 0;
  for (int t = 1; t <= 5; t++) {
    for (size_t i = 0; i < n; i++)
      g[i] = frand(&r, 1.0f) * ldexpf(1.0f, (int)(i % 41) - 20);
    float c1 = 1.0f - (float)pow(a.beta1, (double)t), c2 = 1.0f - (float)pow(a.beta2, (double)t);
    for (size_t i = 0; i < n; i++) {
      if (!nn_param_trainable(&m, i))
        continue;
      volatile float mv = a.beta1 * mo[i] + (1.0f - a.beta1) * g[i];
      volatile float vv = a.beta2 * ve[i] + (1.0f - a.beta2) * g[i] * g[i];
      volatile float q = sqrtf(vv / c2) + a.eps;
      mo[i] = mv, ve[i] = vv;
      p[i] -= a.lr * (mv / c1) / q;
    }
    nn_adam_next(&a);
    size_t cut = (size_t)t * n / 7 + (size_t)t; /* parts of any length and alignment */
    nn_adam_part(&a, &m, g, 0, cut);
    nn_adam_part(&a, &m, g, cut, n);
    for (size_t i = 0; i < n; i++)
      bad += memcmp(&p[i], &m.params[i], 4) != 0 || memcmp(&mo[i], &a.mom[i], 4) != 0 ||
             memcmp(&ve[i], &a.vel[i], 4) != 0;
  }
  CHECK_INT(bad, 0);
  printf("adam: %zu parameters, 5 steps, the vector loop's floats are the scalar formula's\n", n);
  free(p), free(mo), free(ve), free(g);
  nn_adam_free(&a);
  nn_model_free(&m);
}

static void check_clip_adam(void) {
  float g[3] = {3, 4, 0};
  CHECK_NEAR(nn_grad_clip(g, 3, 1.0), 5.0, 1e-12);
  CHECK_NEAR(g[0], 0.6, 1e-6);
  CHECK_NEAR(g[1], 0.8, 1e-6);
  CHECK_NEAR(nn_grad_clip(g, 3, 0), 1.0, 1e-6); /* no clipping */
  CHECK_NEAR(g[1], 0.8, 1e-6);

  nn_model m;
  nn_adam a;
  CHECK_INT(nn_model_init(&m, 1, 2, 0), 0);
  CHECK_INT(nn_adam_init(&a, m.nparams, 0.01f), 0);
  float *grad = calloc(m.nparams, 4);
  for (size_t i = 0; i < m.nparams; i++)
    grad[i] = (i % 2 ? -1.0f : 1.0f) * (float)(i + 1);
  float *before = malloc(m.nparams * 4);
  memcpy(before, m.params, m.nparams * 4);
  nn_adam_step(&a, &m, grad);
  /* First step: m_hat = g, v_hat = g^2, so each trainable entry moves by -lr * sign(g). */
  int ok = 1;
  for (size_t i = 0; i < m.nparams; i++) {
    float want = nn_param_trainable(&m, i) ? before[i] - 0.01f * (grad[i] > 0 ? 1 : -1) : before[i];
    if (fabsf(m.params[i] - want) > 1e-6f)
      ok = 0;
  }
  CHECK(ok);
  CHECK(m.feat_std[0] == 1.0f && m.tgt_std[0] == 1.0f && m.feat_mean[0] == 0.0f);
  free(grad), free(before);
  nn_adam_free(&a);
  nn_adam_free(&a); /* twice is fine */
  nn_model_free(&m);
}

/* The fixture: "name n v0 v1 ..." lines (tests/gen_train_fixture.py). Returns the values of one
 * entry or NULL. */
typedef struct fx {
  char name[64];
  int n;
  double *v;
} fx;

static int fx_load(const char *path, fx *out, int max) {
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  int k = 0;
  while (k < max && fscanf(f, "%63s %d", out[k].name, &out[k].n) == 2) {
    out[k].v = malloc(sizeof(double) * (out[k].n ? out[k].n : 1));
    for (int i = 0; i < out[k].n; i++)
      if (fscanf(f, "%lf", &out[k].v[i]) != 1)
        return -1;
    k++;
  }
  fclose(f);
  return k;
}

static const fx *fx_get(const fx *f, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(f[i].name, name))
      return &f[i];
  fprintf(stderr, "fixture lacks %s\n", name);
  return NULL;
}

/* Our gradients against PyTorch autograd on the same model and batch. */
static void check_torch(const char *path) {
  fx f[200];
  int nf = fx_load(path, f, 200);
  CHECK(nf > 0);
  if (nf <= 0) {
    fprintf(stderr, "cannot read %s (run from the repository root)\n", path);
    return;
  }
  const fx *cfg = fx_get(f, nf, "config");
  if (!cfg)
    return;
  int L = (int)cfg->v[0], H = (int)cfg->v[1], peep = (int)cfg->v[2], B = (int)cfg->v[3],
      T = (int)cfg->v[4], cell = cfg->n > 5 ? (int)cfg->v[5] : NN_CELL_LSTM,
      gauss = cfg->n > 6 ? (int)cfg->v[6] : 0;
  const char *pre = nn_cell_prefix(cell);
  nn_model m;
  nn_train tr;
  CHECK_INT(nn_model_init_head(&m, cell, L, H, peep, gauss), 0);
  CHECK_INT(nn_train_init(&tr, &m, B, T), 0);
  struct {
    char name[48];
    float *t;
  } map[7 * NN_MAX_LAYERS + 4];
  int nm = 0;
  for (int k = 0; k < L; k++) {
    snprintf(map[nm].name, 48, "%s.weight_ih_l%d", pre, k), map[nm++].t = m.W_ih[k];
    snprintf(map[nm].name, 48, "%s.weight_hh_l%d", pre, k), map[nm++].t = m.W_hh[k];
    snprintf(map[nm].name, 48, "%s.bias_ih_l%d", pre, k), map[nm++].t = m.b_ih[k];
    snprintf(map[nm].name, 48, "%s.bias_hh_l%d", pre, k), map[nm++].t = m.b_hh[k];
    if (peep) {
      snprintf(map[nm].name, 48, "lstm.weight_ci_l%d", k), map[nm++].t = m.w_ci[k];
      snprintf(map[nm].name, 48, "lstm.weight_cf_l%d", k), map[nm++].t = m.w_cf[k];
      snprintf(map[nm].name, 48, "lstm.weight_co_l%d", k), map[nm++].t = m.w_co[k];
    }
  }
  snprintf(map[nm].name, 48, "head.weight"), map[nm++].t = m.head_w;
  snprintf(map[nm].name, 48, "head.bias"), map[nm++].t = m.head_b;
  if (gauss) {
    snprintf(map[nm].name, 48, "scale_head.weight"), map[nm++].t = m.scale_w;
    snprintf(map[nm].name, 48, "scale_head.bias"), map[nm++].t = m.scale_b;
  }
  for (int q = 0; q < nm; q++) {
    const fx *e = fx_get(f, nf, map[q].name);
    if (!e)
      return;
    for (int i = 0; i < e->n; i++)
      map[q].t[i] = (float)e->v[i];
  }
  const fx *fxx = fx_get(f, nf, "x"), *fxt = fx_get(f, nf, "tgt"), *fxw = fx_get(f, nf, "w"),
           *fxl = fx_get(f, nf, "loss"), *fxy = fx_get(f, nf, "y"), *fxs = fx_get(f, nf, "state");
  if (!fxx || !fxt || !fxw || !fxl || !fxy || !fxs)
    return;
  size_t TB = (size_t)T * B;
  float *x = malloc(TB * NN_F * 4), *tgt = malloc(TB * 4), *w = malloc(TB * 4);
  float *state = calloc((size_t)B * nn_state_floats(&m), 4), *grad = calloc(m.nparams, 4);
  for (size_t i = 0; i < TB * NN_F; i++)
    x[i] = (float)fxx->v[i];
  for (size_t i = 0; i < TB; i++)
    tgt[i] = (float)fxt->v[i], w[i] = (float)fxw->v[i];
  double loss = nn_train_forward(&tr, &m, B, T, x, tgt, w, state);
  nn_train_backward(&tr, &m, grad);
  CHECK_NEAR(loss, fxl->v[0], 1e-5 * fabs(fxl->v[0]));
  double maxy = 0;
  for (size_t i = 0; i < TB; i++)
    maxy = fmax(maxy, fabs(tr.y[i] - fxy->v[i]));
  CHECK(maxy < 1e-5);
  if (gauss) { /* the log-variance output */
    const fx *fxsc = fx_get(f, nf, "s");
    CHECK(fxsc != NULL);
    double maxsc = 0;
    for (size_t i = 0; fxsc && i < TB; i++)
      maxsc = fmax(maxsc, fabs(tr.s[i] - fxsc->v[i]) / (1 + fabs(fxsc->v[i])));
    CHECK(maxsc < 1e-5);
  }
  double maxs = 0;
  for (int i = 0; i < fxs->n; i++)
    maxs = fmax(maxs, fabs(state[i] - fxs->v[i]));
  CHECK(maxs < 1e-5);
  double worst = 0;
  for (int q = 0; q < nm; q++) {
    char gname[80];
    snprintf(gname, sizeof gname, "grad.%.47s", map[q].name);
    const fx *e = fx_get(f, nf, gname);
    if (!e)
      return;
    double scale = 0;
    for (int i = 0; i < e->n; i++)
      scale = fmax(scale, fabs(e->v[i]));
    const float *g = grad + (map[q].t - m.params);
    for (int i = 0; i < e->n; i++) {
      double d = fabs(g[i] - e->v[i]) / (scale + 1e-12);
      if (d > worst)
        worst = d;
      if (d > 1e-4) {
        fprintf(stderr, "%s %s[%d]: ours %.9g, torch %.9g\n", path, map[q].name, i, g[i], e->v[i]);
        CHECK(d <= 1e-4);
        break;
      }
    }
  }
  printf("%s: %s%s L=%d H=%d peephole=%d B=%d T=%d, loss %.9g vs %.9g, worst grad diff %.2e of "
         "the tensor's max\n",
         path, nn_cell_name(cell), gauss ? " gauss" : "", L, H, peep, B, T, loss, fxl->v[0], worst);
  CHECK(worst < 1e-4);
  for (int i = 0; i < nf; i++)
    free(f[i].v);
  free(x), free(tgt), free(w), free(state), free(grad);
  nn_train_free(&tr);
  nn_model_free(&m);
}

int main(void) {
  check_grads(NN_CELL_LSTM, 1, 5, 0, 3, 6, 1);
  check_grads(NN_CELL_LSTM, 1, 5, 1, 3, 6, 2);
  check_grads(NN_CELL_LSTM, 2, 4, 0, 2, 7, 3);
  check_grads(NN_CELL_LSTM, 2, 4, 1, 4, 5, 4);
  check_grads(NN_CELL_LSTM, 1, 1, 1, 1, 1, 5); /* the smallest case */
  for (int cell = NN_CELL_GRU; cell < NN_CELL_COUNT; cell++) {
    check_grads(cell, 1, 5, 0, 3, 6, 10 + (uint64_t)cell);
    check_grads(cell, 2, 4, 0, 2, 7, 20 + (uint64_t)cell);
    check_grads(cell, 1, 1, 0, 1, 1, 30 + (uint64_t)cell);
  }
  /* The scale head and the Gaussian NLL, every cell. */
  check_grads_head(NN_CELL_LSTM, 2, 4, 1, 3, 6, 51, 1);
  for (int cell = 0; cell < NN_CELL_COUNT; cell++) {
    check_grads_head(cell, 1, 5, 0, 3, 6, 60 + (uint64_t)cell, 1);
    check_grads_head(cell, 2, 4, 0, 2, 7, 70 + (uint64_t)cell, 1);
  }
  for (int cell = 0; cell < NN_CELL_COUNT; cell++) {
    check_carry(cell);
    check_infer(cell, 0);
    check_infer(cell, 1);
    check_kernels(cell);
  }
  check_clip_adam();
  check_adam_bits();
  check_torch("tests/fixtures/train_grad_l1.txt");
  check_torch("tests/fixtures/train_grad_l2_peephole.txt");
  check_torch("tests/fixtures/train_grad_gru_l2.txt");
  check_torch("tests/fixtures/train_grad_rnn_tanh_l2.txt");
  check_torch("tests/fixtures/train_grad_rnn_relu_l1.txt");
  check_torch("tests/fixtures/train_grad_gauss_l1.txt");
  check_torch("tests/fixtures/train_grad_gauss_gru_l2.txt");
  check_torch("tests/fixtures/train_grad_gauss_rnn_tanh_l1.txt"); /* variances below eps */
  return check_done();
}
