/* train.c: forward with caches, backpropagation through time, clipping and Adam for the contract
 * network: the layer loop, the head and the loss for every cell, and the LSTM's recurrence (the
 * GRU's and RNN's are in train_cells.c). Projections are GEMMs over the whole batch (and, where
 * the recurrence allows, over all T steps at once); only the recurrent h . W_hh^T product runs
 * step by step. Not for inference (lstm.c) and not for reading data (daemon/dataset.c). */
#include "nn/train.h"
#include "nn/lstm_int.h"
#include "nn/train_int.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/base/tc_err.h"
#include "nn/blas.h"

int nn_train_init(nn_train *tr, const nn_model *m, int Bmax, int Tmax) {
  memset(tr, 0, sizeof *tr);
  if (!m || m->L < 1 || m->L > NN_MAX_LAYERS || m->H < 1 || Bmax < 1 || Tmax < 1 ||
      !nn_cell_valid(m->cell) || m->G != nn_cell_gates(m->cell) * m->H)
    return TC_EINVAL;
  const int L = m->L, H = m->H, G = m->G, lstm = m->cell == NN_CELL_LSTM,
            gru = m->cell == NN_CELL_GRU;
  size_t TB = (size_t)Tmax * Bmax, T1B = (size_t)(Tmax + 1) * Bmax;
  size_t n = TB * NN_F                                        /* x */
             + (size_t)L * (TB * G + T1B * H)                 /* gates, h */
             + (lstm ? (size_t)L * (T1B * H + TB * H) : 0)    /* c, tc */
             + (gru ? (size_t)L * TB * H : 0)                 /* hn */
             + 2 * TB                                         /* y, dy */
             + (m->gauss ? 2 * TB : 0)                        /* s, ds */
             + TB * G + (gru ? TB * G + (size_t)Bmax * G : 0) /* dz, dzh, zh */
             + 2 * TB * H                                     /* dhin, dhin2 */
             + 2 * (size_t)Bmax * H;                          /* dh, dc */
  tr->buf = calloc(n, sizeof(float));
  if (!tr->buf)
    return TC_ENOMEM;
  tr->cell = m->cell;
  tr->L = L;
  tr->H = H;
  tr->G = G;
  tr->peephole = m->peephole;
  tr->gauss = m->gauss;
  tr->Bmax = Bmax;
  tr->Tmax = Tmax;
  float *p = tr->buf;
  tr->x = p, p += TB * NN_F;
  for (int k = 0; k < L; k++) {
    tr->gates[k] = p, p += TB * G;
    tr->h[k] = p, p += T1B * H;
    if (lstm) {
      tr->c[k] = p, p += T1B * H;
      tr->tc[k] = p, p += TB * H;
    }
    if (gru)
      tr->hn[k] = p, p += TB * H;
  }
  tr->y = p, p += TB;
  tr->dy = p, p += TB;
  if (m->gauss) {
    tr->s = p, p += TB;
    tr->ds = p, p += TB;
  }
  tr->dz = p, p += TB * G;
  if (gru) {
    tr->dzh = p, p += TB * G;
    tr->zh = p, p += (size_t)Bmax * G;
  }
  tr->dhin = p, p += TB * H;
  tr->dhin2 = p, p += TB * H;
  tr->dh = p, p += (size_t)Bmax * H;
  tr->dc = p, p += (size_t)Bmax * H;
  assert((size_t)(p - tr->buf) == n);
  if (Bmax <= nn_projT_max_b()) {
    tr->ldwg = nn_projT_ldw(G);
    tr->ldwh = nn_projT_ldw(H);
    size_t a = (size_t)H * tr->ldwg, b = (size_t)G * tr->ldwh;
    void *w = NULL;
    if (posix_memalign(&w, 64, (a > b ? a : b) * sizeof(float)) != 0) {
      nn_train_free(tr);
      return TC_ENOMEM;
    }
    tr->wpk = w;
  }
  return 0;
}

void nn_train_pack_wt(nn_train *tr, const float *W) {
  nn_transpose_ld(tr->G, tr->H, W, tr->wpk, tr->ldwg);
}

void nn_train_pack_w(nn_train *tr, const float *W) {
  const int H = tr->H, G = tr->G;
  for (int g = 0; g < G; g++)
    memcpy(tr->wpk + (size_t)g * tr->ldwh, W + (size_t)g * H, (size_t)H * sizeof *tr->wpk);
}

void nn_train_rec_fwd(const nn_train *tr, int B, int G, int H, const float *h, const float *W,
                      float *z) {
  if (tr->wpk)
    nn_projT(B, G, H, h, tr->wpk, tr->ldwg, z);
  else
    nn_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, G, H, 1.0f, h, H, W, H, 1.0f, z, G);
}

void nn_train_rec_bwd(const nn_train *tr, int B, int H, int G, const float *dz, const float *W,
                      float *dh, int acc) {
  if (tr->wpk) {
    if (!acc)
      memset(dh, 0, sizeof(float) * (size_t)B * H);
    nn_projT(B, H, G, dz, tr->wpk, tr->ldwh, dh);
  } else {
    nn_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, G, 1.0f, dz, G, W, H,
             acc ? 1.0f : 0.0f, dh, H);
  }
}

void nn_train_free(nn_train *tr) {
  if (!tr)
    return;
  free(tr->wpk);
  free(tr->buf);
  memset(tr, 0, sizeof *tr);
}

/* The gate functions are inference's (nn_tanh_approx in lstm_int.h, max abs error ~4e-7), so
 * the trainer sees the nonlinearities inference uses, and the loops below auto-vectorize at -O3
 * (libm's expf/tanhf do not; they took half of the training time). */

/* One row of gates, forward. z (4H) pre-activations in, activations i, f, g, o out (in place);
 * c0 (H) old cell; c1, tc1, h1 (H) new cell, tanh of it, new h. Peepholes NULL or (H) each. */
static void row_forward(int H, float *restrict z, const float *restrict c0, float *restrict c1,
                        float *restrict tc1, float *restrict h1, const float *restrict wci,
                        const float *restrict wcf, const float *restrict wco) {
  float *restrict zi = z, *restrict zf = z + H, *restrict zg = z + 2 * H, *restrict zo = z + 3 * H;
  if (wci) {
    for (int j = 0; j < H; j++) {
      float gi = nn_sigmoid_approx(zi[j] + wci[j] * c0[j]),
            gf = nn_sigmoid_approx(zf[j] + wcf[j] * c0[j]);
      float gg = nn_tanh_approx(zg[j]);
      float c = gf * c0[j] + gi * gg;
      float go = nn_sigmoid_approx(zo[j] + wco[j] * c), tc = nn_tanh_approx(c);
      c1[j] = c, tc1[j] = tc, h1[j] = go * tc;
      zi[j] = gi, zf[j] = gf, zg[j] = gg, zo[j] = go;
    }
  } else {
    for (int j = 0; j < H; j++) {
      float gi = nn_sigmoid_approx(zi[j]), gf = nn_sigmoid_approx(zf[j]),
            gg = nn_tanh_approx(zg[j]);
      float c = gf * c0[j] + gi * gg;
      float go = nn_sigmoid_approx(zo[j]), tc = nn_tanh_approx(c);
      c1[j] = c, tc1[j] = tc, h1[j] = go * tc;
      zi[j] = gi, zf[j] = gf, zg[j] = gg, zo[j] = go;
    }
  }
}

/* One row of gates, backward. g (4H) activations; cp, cn, tcn (H) old cell, new cell, tanh(new);
 * din (H) d loss / d h from above; dh, dc (H) from the next step, dc replaced by d loss / d old
 * cell; dz (4H) out. Peephole gradients accumulate into gci, gcf, gco. */
static void row_backward(int H, const float *restrict g, const float *restrict cp,
                         const float *restrict cn, const float *restrict tcn,
                         const float *restrict din, const float *restrict dh, float *restrict dc,
                         float *restrict dz, const float *restrict wci, const float *restrict wcf,
                         const float *restrict wco, float *restrict gci, float *restrict gcf,
                         float *restrict gco) {
  const float *gi = g, *gf = g + H, *gg = g + 2 * H, *go = g + 3 * H;
  float *restrict di = dz, *restrict df = dz + H, *restrict dg = dz + 2 * H,
                  *restrict dout = dz + 3 * H;
  if (wci) {
    for (int j = 0; j < H; j++) {
      float dht = din[j] + dh[j];
      float dpo = dht * tcn[j] * go[j] * (1.0f - go[j]);
      float dcn = dc[j] + dht * go[j] * (1.0f - tcn[j] * tcn[j]) + dpo * wco[j];
      float dpi = dcn * gg[j] * gi[j] * (1.0f - gi[j]);
      float dpf = dcn * cp[j] * gf[j] * (1.0f - gf[j]);
      dg[j] = dcn * gi[j] * (1.0f - gg[j] * gg[j]);
      dc[j] = dcn * gf[j] + dpi * wci[j] + dpf * wcf[j];
      gco[j] += dpo * cn[j];
      gci[j] += dpi * cp[j];
      gcf[j] += dpf * cp[j];
      di[j] = dpi, df[j] = dpf, dout[j] = dpo;
    }
  } else {
    for (int j = 0; j < H; j++) {
      float dht = din[j] + dh[j];
      float dpo = dht * tcn[j] * go[j] * (1.0f - go[j]);
      float dcn = dc[j] + dht * go[j] * (1.0f - tcn[j] * tcn[j]);
      di[j] = dcn * gg[j] * gi[j] * (1.0f - gi[j]);
      df[j] = dcn * cp[j] * gf[j] * (1.0f - gf[j]);
      dg[j] = dcn * gi[j] * (1.0f - gg[j] * gg[j]);
      dc[j] = dcn * gf[j];
      dout[j] = dpo;
    }
  }
}

/* Layer k of the LSTM over the T steps of the last forward: Z = tr->gates[k] holds the input side
 * with both biases; h[0], c[0] the initial state. Fills h, c, tc for t = 1..T and turns Z into
 * the gate activations. */
static void lstm_layer_forward(nn_train *tr, const nn_model *m, int k) {
  const int H = m->H, G = 4 * H, B = tr->B, T = tr->T;
  float *Z = tr->gates[k], *hk = tr->h[k], *ck = tr->c[k], *tck = tr->tc[k];
  const float *wci = m->w_ci[k], *wcf = m->w_cf[k], *wco = m->w_co[k];
  if (tr->wpk)
    nn_train_pack_wt(tr, m->W_hh[k]);
  for (int t = 0; t < T; t++) {
    float *zt = Z + (size_t)t * B * G;        /* (B, 4H) */
    const float *hp = hk + (size_t)t * B * H; /* (B, H) h before step t */
    const float *cp = ck + (size_t)t * B * H; /* (B, H) */
    float *hn = hk + (size_t)(t + 1) * B * H; /* (B, H) h after step t */
    float *cn = ck + (size_t)(t + 1) * B * H;
    float *tct = tck + (size_t)t * B * H;
    /* zt (B, 4H) += h (B, H) . W_hh^T (H, 4H) */
    nn_train_rec_fwd(tr, B, G, H, hp, m->W_hh[k], zt);
    for (int b = 0; b < B; b++)
      row_forward(H, zt + (size_t)b * G, cp + (size_t)b * H, cn + (size_t)b * H,
                  tct + (size_t)b * H, hn + (size_t)b * H, wci, wcf, wco);
  }
}

double nn_train_forward(nn_train *tr, const nn_model *m, int B, int T, const float *x,
                        const float *tgt, const float *w, float *state) {
  return nn_train_forward_rows(tr, m, B, 0, B, T, x, tgt, w, state);
}

double nn_train_forward_rows(nn_train *tr, const nn_model *m, int Ball, int b0, int B, int T,
                             const float *x, const float *tgt, const float *w, float *state) {
  assert(B >= 1 && B <= tr->Bmax && T >= 1 && T <= tr->Tmax && b0 >= 0 && b0 + B <= Ball);
  assert(m->cell == tr->cell && m->L == tr->L && m->H == tr->H && m->peephole == tr->peephole &&
         m->gauss == tr->gauss);
  const int L = m->L, H = m->H, G = m->G, TB = T * B, nv = nn_cell_state_vectors(m->cell);
  const size_t sf = nn_state_floats(m);
  tr->B = B;
  tr->T = T;
  /* The rows of this slice, compact: x (T, Ball, NN_F) rows t * Ball + b0 .. + B. */
  for (int t = 0; t < T; t++)
    memcpy(tr->x + (size_t)t * B * NN_F, x + ((size_t)t * Ball + b0) * NN_F,
           sizeof(float) * (size_t)B * NN_F);
  state += (size_t)b0 * sf;
  for (int k = 0; k < L; k++) {
    const int D = k == 0 ? NN_F : H;
    const float *X = k == 0 ? tr->x : tr->h[k - 1] + (size_t)B * H; /* (T*B, D) */
    float *Z = tr->gates[k];                                        /* (T*B, G) */
    float *hk = tr->h[k], *ck = tr->c[k];
    const float *bi = m->b_ih[k], *bh = m->b_hh[k];
    /* Z (T*B, G) = b_ih + b_hh, then += X (T*B, D) . W_ih^T (D, G), for all steps at once. The
     * GRU's n block takes b_in alone: b_hn is on the recurrent side, which r multiplies. */
    const int Gb = m->cell == NN_CELL_GRU ? 2 * H : G;
    for (int r = 0; r < TB; r++) {
      for (int j = 0; j < Gb; j++)
        Z[(size_t)r * G + j] = bi[j] + bh[j];
      for (int j = Gb; j < G; j++)
        Z[(size_t)r * G + j] = bi[j];
    }
    nn_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, TB, G, D, 1.0f, X, D, m->W_ih[k], D, 1.0f, Z,
             G);
    for (int b = 0; b < B; b++) {
      memcpy(hk + (size_t)b * H, state + b * sf + (size_t)(nv * k) * H, sizeof(float) * H);
      if (ck)
        memcpy(ck + (size_t)b * H, state + b * sf + (size_t)(2 * k + 1) * H, sizeof(float) * H);
    }
    switch (m->cell) {
    case NN_CELL_GRU: nn_train_gru_forward(tr, m, k); break;
    case NN_CELL_RNN_TANH:
    case NN_CELL_RNN_RELU: nn_train_rnn_forward(tr, m, k); break;
    default: lstm_layer_forward(tr, m, k); break;
    }
    for (int b = 0; b < B; b++) {
      memcpy(state + b * sf + (size_t)(nv * k) * H, hk + ((size_t)T * B + b) * H,
             sizeof(float) * H);
      if (ck)
        memcpy(state + b * sf + (size_t)(2 * k + 1) * H, ck + ((size_t)T * B + b) * H,
               sizeof(float) * H);
    }
  }
  /* y (T*B) = h_top (T*B, H) . head_w^T + head_b; the loss and its gradient. */
  const float *top = tr->h[L - 1] + (size_t)B * H;
  double loss = 0.0;
  for (int r = 0; r < TB; r++) {
    const float *hr = top + (size_t)r * H;
    const size_t q = (size_t)(r / B) * Ball + b0 + r % B; /* the row in tgt and w */
    float acc = 0.0f;
    for (int j = 0; j < H; j++)
      acc += m->head_w[j] * hr[j];
    float y = acc + m->head_b[0];
    tr->y[r] = y;
    float d = y - tgt[q];
    if (!m->gauss) {
      loss += (double)w[q] * (double)d * (double)d;
      tr->dy[r] = 2.0f * w[q] * d;
      continue;
    }
    float sacc = 0.0f;
    for (int j = 0; j < H; j++)
      sacc += m->scale_w[j] * hr[j];
    float s = sacc + m->scale_b[0], e = expf(s), v = e > NN_GAUSS_EPS ? e : NN_GAUSS_EPS;
    tr->s[r] = s;
    loss += (double)w[q] * 0.5 * (log((double)v) + (double)d * d / v);
    tr->dy[r] = w[q] * d / v;
    /* d/dv of 0.5 (log v + d^2 / v), times dv/ds = exp(s): the clamp passes the gradient. */
    tr->ds[r] = w[q] * 0.5f * (1.0f / v - d * d / (v * v)) * e;
  }
  return loss;
}

/* Layer k of the LSTM backward over the T steps of the last forward: from tr->dhin (T*B, H),
 * d loss / d h from above, fills tr->dz (T*B, 4H) and adds the peephole gradients. */
static void lstm_layer_backward(nn_train *tr, const nn_model *m, int k, float *grad) {
  const int H = m->H, G = 4 * H, B = tr->B, T = tr->T;
  const float *gk = tr->gates[k], *ck = tr->c[k], *tck = tr->tc[k];
  const float *wci = m->w_ci[k], *wcf = m->w_cf[k], *wco = m->w_co[k];
#define GRAD(p) (grad + ((p)-m->params))
  float *gci = wci ? GRAD(m->w_ci[k]) : NULL, *gcf = wcf ? GRAD(m->w_cf[k]) : NULL,
        *gco = wco ? GRAD(m->w_co[k]) : NULL;
#undef GRAD
  float *dz = tr->dz, *dh = tr->dh, *dc = tr->dc;
  if (tr->wpk)
    nn_train_pack_w(tr, m->W_hh[k]);
  memset(dh, 0, sizeof(float) * (size_t)B * H);
  memset(dc, 0, sizeof(float) * (size_t)B * H);
  for (int t = T - 1; t >= 0; t--) {
    for (int b = 0; b < B; b++) {
      size_t r = (size_t)t * B + b;
      row_backward(H, gk + r * G, ck + r * H, ck + (r + B) * H, tck + r * H, tr->dhin + r * H,
                   dh + (size_t)b * H, dc + (size_t)b * H, dz + r * G, wci, wcf, wco, gci, gcf,
                   gco);
    }
    /* dh (B, H) = dz_t (B, 4H) . W_hh (4H, H); not needed past the window start. */
    if (t > 0)
      nn_train_rec_bwd(tr, B, H, G, dz + (size_t)t * B * G, m->W_hh[k], dh, 0);
  }
}

/* One linear head (1, H) over top (T*B, H) backward from d (T*B), d loss / d its output:
 * gw (1, H) += d^T . top, gb += sum d; dhin (T*B, H) = d x w, or += when add. */
static void head_backward(int TB, int H, const float *top, const float *d, const float *w,
                          float *gw, float *gb, float *dhin, int add) {
  float dbsum = 0.0f;
  for (int r = 0; r < TB; r++)
    dbsum += d[r];
  gb[0] += dbsum;
  nn_sgemv(CblasRowMajor, CblasTrans, TB, H, 1.0f, top, H, d, 1, 1.0f, gw, 1);
  for (int r = 0; r < TB; r++)
    for (int j = 0; j < H; j++) {
      float v = d[r] * w[j];
      dhin[(size_t)r * H + j] = add ? dhin[(size_t)r * H + j] + v : v;
    }
}

void nn_train_backward(nn_train *tr, const nn_model *m, float *grad) {
  const int L = m->L, H = m->H, G = m->G, B = tr->B, T = tr->T, TB = T * B;
#define GRAD(p) (grad + ((p)-m->params))
  /* The heads: head (from dy) sets dhin, the scale head (from ds) adds to it. */
  const float *top = tr->h[L - 1] + (size_t)B * H;
  head_backward(TB, H, top, tr->dy, m->head_w, GRAD(m->head_w), GRAD(m->head_b), tr->dhin, 0);
  if (m->gauss)
    head_backward(TB, H, top, tr->ds, m->scale_w, GRAD(m->scale_w), GRAD(m->scale_b), tr->dhin, 1);

  for (int k = L - 1; k >= 0; k--) {
    const int D = k == 0 ? NN_F : H;
    const float *X = k == 0 ? tr->x : tr->h[k - 1] + (size_t)B * H; /* (T*B, D) */
    const float *hk = tr->h[k];
    float *dz = tr->dz;
    switch (m->cell) {
    case NN_CELL_GRU: nn_train_gru_backward(tr, m, k); break;
    case NN_CELL_RNN_TANH:
    case NN_CELL_RNN_RELU: nn_train_rnn_backward(tr, m, k); break;
    default: lstm_layer_backward(tr, m, k, grad); break;
    }
    /* The recurrent side's pre-activation gradient: the GRU's differs from dz in its n block. */
    const float *dzr = m->cell == NN_CELL_GRU ? tr->dzh : dz; /* (T*B, G) */
    /* d W_hh (G, H) += dzr^T (G, T*B) . h_prev (T*B, H); d W_ih (G, D) += dz^T . X (T*B, D) */
    nn_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, H, TB, 1.0f, dzr, G, hk, H, 1.0f,
             GRAD(m->W_hh[k]), H);
    nn_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, D, TB, 1.0f, dz, G, X, D, 1.0f,
             GRAD(m->W_ih[k]), D);
    float *gbi = GRAD(m->b_ih[k]), *gbh = GRAD(m->b_hh[k]);
    for (int r = 0; r < TB; r++) {
      const float *dzx = dz + (size_t)r * G, *dzh = dzr + (size_t)r * G;
      for (int j = 0; j < G; j++)
        gbi[j] += dzx[j];
      for (int j = 0; j < G; j++)
        gbh[j] += dzh[j];
    }
    if (k > 0) {
      /* dhin for layer k-1 (T*B, H) = dz (T*B, G) . W_ih (G, H) */
      nn_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, TB, H, G, 1.0f, dz, G, m->W_ih[k], H,
               0.0f, tr->dhin2, H);
      float *tmp = tr->dhin;
      tr->dhin = tr->dhin2;
      tr->dhin2 = tmp;
    }
  }
#undef GRAD
}

double nn_grad_clip(float *grad, size_t n, double maxnorm) {
  double ss = 0.0;
  for (size_t i = 0; i < n; i++)
    ss += (double)grad[i] * grad[i];
  double norm = sqrt(ss);
  if (maxnorm > 0 && norm > maxnorm) {
    float s = (float)(maxnorm / norm);
    for (size_t i = 0; i < n; i++)
      grad[i] *= s;
  }
  return norm;
}

int nn_param_trainable(const nn_model *m, size_t i) {
  const float *p = m->params + i;
  if (p >= m->feat_mean && p < m->feat_mean + NN_F)
    return 0;
  if (p >= m->feat_std && p < m->feat_std + NN_F)
    return 0;
  if (p == m->tgt_mean || p == m->tgt_std)
    return 0;
  return 1;
}

static void fill_uniform(float *p, size_t n, float a, nn_rng *r) {
  for (size_t i = 0; i < n; i++)
    p[i] = (float)((2.0 * nn_rng_uniform(r) - 1.0) * a);
}

void nn_train_init_weights(nn_model *m, nn_rng *r) {
  const int H = m->H, G = m->G;
  float a = 1.0f / sqrtf((float)H);
  for (int k = 0; k < m->L; k++) {
    int D = k == 0 ? NN_F : H;
    fill_uniform(m->W_ih[k], (size_t)G * D, a, r);
    fill_uniform(m->W_hh[k], (size_t)G * H, a, r);
    fill_uniform(m->b_ih[k], G, a, r);
    fill_uniform(m->b_hh[k], G, a, r);
    if (m->peephole) {
      fill_uniform(m->w_ci[k], H, a, r);
      fill_uniform(m->w_cf[k], H, a, r);
      fill_uniform(m->w_co[k], H, a, r);
    }
  }
  fill_uniform(m->head_w, H, a, r);
  fill_uniform(m->head_b, 1, a, r);
  if (m->gauss) {
    fill_uniform(m->scale_w, H, a, r);
    fill_uniform(m->scale_b, 1, a, r);
  }
}

int nn_adam_init(nn_adam *a, size_t n, float lr) {
  memset(a, 0, sizeof *a);
  a->mom = calloc(n ? 2 * n : 1, sizeof(float));
  if (!a->mom)
    return TC_ENOMEM;
  a->vel = a->mom + n;
  a->n = n;
  a->lr = lr;
  a->beta1 = 0.9f;
  a->beta2 = 0.999f;
  a->eps = 1e-8f;
  return 0;
}

void nn_adam_free(nn_adam *a) {
  if (!a)
    return;
  free(a->mom);
  memset(a, 0, sizeof *a);
}

/* Adam's loop is built for baseline x86-64 and for AVX and AVX-512, picked at load time by the
 * CPU, as nn/gates.c's are: each lane does the scalar loop's IEEE operations in its order, without
 * FMA (-ffp-contract=off), so every width gives the same bits. Its three divisions and square
 * root made the scalar loop 6 ns a parameter, the serial gap between two training steps. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ADAM_CLONES __attribute__((target_clones("avx512f", "avx", "default")))
#else
#define ADAM_CLONES
#endif

/* Updates p[0, n) from g; mom and vel are Adam's moments of the same entries. */
ADAM_CLONES static void adam_range(float *restrict p, const float *restrict g, float *restrict mom,
                                   float *restrict vel, size_t n, float b1, float b2, float lr,
                                   float eps, float c1, float c2) {
  for (size_t i = 0; i < n; i++) {
    float gi = g[i];
    float mo = mom[i] = b1 * mom[i] + (1.0f - b1) * gi;
    float ve = vel[i] = b2 * vel[i] + (1.0f - b2) * gi * gi;
    p[i] -= lr * (mo / c1) / (__builtin_sqrtf(ve / c2) + eps);
  }
}

void nn_adam_next(nn_adam *a) {
  a->t++;
}

void nn_adam_part(nn_adam *a, nn_model *m, const float *grad, size_t lo, size_t hi) {
  assert(a->n == m->nparams && lo <= hi && hi <= m->nparams);
  float c1 = 1.0f - (float)pow(a->beta1, (double)a->t);
  float c2 = 1.0f - (float)pow(a->beta2, (double)a->t);
  /* Runs of trainable entries between the features/target tensors, wherever model.c put them. */
  size_t i = lo;
  while (i < hi) {
    if (!nn_param_trainable(m, i)) {
      i++;
      continue;
    }
    size_t j = i;
    while (j < hi && nn_param_trainable(m, j))
      j++;
    adam_range(m->params + i, grad + i, a->mom + i, a->vel + i, j - i, a->beta1, a->beta2, a->lr,
               a->eps, c1, c2);
    i = j;
  }
}

void nn_adam_step(nn_adam *a, nn_model *m, const float *grad) {
  nn_adam_next(a);
  nn_adam_part(a, m, grad, 0, m->nparams);
}
