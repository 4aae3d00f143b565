/* train_cells.c: the GRU's and the RNN's recurrences for the trainer (train.c runs the layer
 * loop around them), forward with caches and backward through time, step by step: the recurrent
 * h . W_hh^T product as a GEMM over the batch, then vectorized gate rows. The gate functions are
 * inference's (lstm_int.h), so the trainer sees the nonlinearities inference uses. Built with -O3
 * like train.c (Makefile) so the row loops vectorize. Not for inference (cells.c). */
#include <assert.h>
#include <string.h>

#include "nn/lstm_int.h"
#include "nn/train_int.h"

/* One GRU row forward. zx (3H) input side in (b_ir + b_hr, b_iz + b_hz, b_in folded in), r, z, n
 * out (in place); zh (3H) recurrent side W_hh h + [0, 0, b_hn]; hp (H) old h; hn (H) out,
 * zh's n block kept for backward; h1 (H) out, the new h. */
static void gru_row_forward(int H, float *restrict zx, const float *restrict zh,
                            const float *restrict hp, float *restrict hn, float *restrict h1) {
  float *restrict xr = zx, *restrict xz = zx + H, *restrict xn = zx + 2 * H;
  const float *restrict hr = zh, *restrict hz = zh + H, *restrict hh = zh + 2 * H;
  for (int j = 0; j < H; j++) {
    float r = nn_sigmoid_approx(xr[j] + hr[j]), z = nn_sigmoid_approx(xz[j] + hz[j]);
    float n = nn_tanh_approx(xn[j] + r * hh[j]);
    h1[j] = n + z * (hp[j] - n);
    hn[j] = hh[j];
    xr[j] = r, xz[j] = z, xn[j] = n;
  }
}

/* One GRU row backward. g (3H) r, z, n; hp (H) old h; hn (H) W_hn h + b_hn; din (H) d loss / d h
 * from above; dh (H) d loss / d new h through the recurrence in, the direct part of d loss / d old
 * h (through h' = n + z (h - n)) out; dzx, dzh (3H) out: d loss / d the input and recurrent
 * sides' pre-activations (the same in the r and z blocks; the recurrent n block is r times the
 * input one). */
static void gru_row_backward(int H, const float *restrict g, const float *restrict hp,
                             const float *restrict hn, const float *restrict din,
                             float *restrict dh, float *restrict dzx, float *restrict dzh) {
  const float *r = g, *z = g + H, *n = g + 2 * H;
  for (int j = 0; j < H; j++) {
    float dht = din[j] + dh[j];
    float dan = dht * (1.0f - z[j]) * (1.0f - n[j] * n[j]);
    float daz = dht * (hp[j] - n[j]) * z[j] * (1.0f - z[j]);
    float dar = dan * hn[j] * r[j] * (1.0f - r[j]);
    dh[j] = dht * z[j];
    dzx[j] = dzh[j] = dar;
    dzx[H + j] = dzh[H + j] = daz;
    dzx[2 * H + j] = dan;
    dzh[2 * H + j] = dan * r[j];
  }
}

void nn_train_gru_forward(nn_train *tr, const nn_model *m, int k) {
  assert(m->cell == NN_CELL_GRU && tr->cell == NN_CELL_GRU);
  const int H = m->H, G = m->G, B = tr->B, T = tr->T;
  const float *bh = m->b_hh[k];
  float *zh = tr->zh, *hk = tr->h[k], *hnk = tr->hn[k];
  if (tr->wpk)
    nn_train_pack_wt(tr, m->W_hh[k]);
  for (int t = 0; t < T; t++) {
    float *zt = tr->gates[k] + (size_t)t * B * G; /* (B, 3H) */
    const float *hp = hk + (size_t)t * B * H;     /* (B, H) h before step t */
    float *h1 = hk + (size_t)(t + 1) * B * H;     /* (B, H) h after step t */
    /* zh (B, 3H) = [0, 0, b_hn] + h (B, H) . W_hh^T (H, 3H) */
    for (int b = 0; b < B; b++) {
      memset(zh + (size_t)b * G, 0, sizeof(float) * 2 * H);
      memcpy(zh + (size_t)b * G + 2 * H, bh + 2 * H, sizeof(float) * H);
    }
    nn_train_rec_fwd(tr, B, G, H, hp, m->W_hh[k], zh);
    for (int b = 0; b < B; b++)
      gru_row_forward(H, zt + (size_t)b * G, zh + (size_t)b * G, hp + (size_t)b * H,
                      hnk + ((size_t)t * B + b) * H, h1 + (size_t)b * H);
  }
}

void nn_train_gru_backward(nn_train *tr, const nn_model *m, int k) {
  const int H = m->H, G = m->G, B = tr->B, T = tr->T;
  float *dh = tr->dh;
  if (tr->wpk)
    nn_train_pack_w(tr, m->W_hh[k]);
  memset(dh, 0, sizeof(float) * (size_t)B * H);
  for (int t = T - 1; t >= 0; t--) {
    for (int b = 0; b < B; b++) {
      size_t r = (size_t)t * B + b;
      gru_row_backward(H, tr->gates[k] + r * G, tr->h[k] + r * H, tr->hn[k] + r * H,
                       tr->dhin + r * H, dh + (size_t)b * H, tr->dz + r * G, tr->dzh + r * G);
    }
    /* dh (B, H) += dzh_t (B, 3H) . W_hh (3H, H); not needed past the window start. */
    if (t > 0)
      nn_train_rec_bwd(tr, B, H, G, tr->dzh + (size_t)t * B * G, m->W_hh[k], dh, 1);
  }
}

void nn_train_rnn_forward(nn_train *tr, const nn_model *m, int k) {
  assert((m->cell == NN_CELL_RNN_TANH || m->cell == NN_CELL_RNN_RELU) && tr->cell == m->cell);
  const int H = m->H, B = tr->B, T = tr->T, relu = m->cell == NN_CELL_RNN_RELU;
  float *hk = tr->h[k];
  if (tr->wpk)
    nn_train_pack_wt(tr, m->W_hh[k]);
  for (int t = 0; t < T; t++) {
    float *zt = tr->gates[k] + (size_t)t * B * H; /* (B, H) */
    const float *hp = hk + (size_t)t * B * H;
    /* zt (B, H) += h (B, H) . W_hh^T (H, H); h after step t = act(zt) */
    nn_train_rec_fwd(tr, B, H, H, hp, m->W_hh[k], zt);
    nn_gates_rnn(B * H, zt, hk + (size_t)(t + 1) * B * H, relu);
  }
}

/* d loss / d pre-activation from d loss / d h (din + dh) and the h it made: tanh' = 1 - h^2,
 * relu' = [h > 0] (0 at 0, as PyTorch). */
void nn_train_rnn_backward(nn_train *tr, const nn_model *m, int k) {
  const int H = m->H, B = tr->B, T = tr->T, relu = m->cell == NN_CELL_RNN_RELU;
  float *dh = tr->dh;
  if (tr->wpk)
    nn_train_pack_w(tr, m->W_hh[k]);
  memset(dh, 0, sizeof(float) * (size_t)B * H);
  for (int t = T - 1; t >= 0; t--) {
    const size_t r0 = (size_t)t * B * H, n = (size_t)B * H;
    const float *restrict h1 = tr->h[k] + r0 + (size_t)B * H, *restrict din = tr->dhin + r0;
    float *restrict dz = tr->dz + r0, *restrict dhr = dh;
    if (relu) /* both loads unconditional, so that the loop vectorizes without branches */
      for (size_t j = 0; j < n; j++) {
        float d = din[j] + dhr[j];
        dz[j] = h1[j] > 0.0f ? d : 0.0f;
      }
    else
      for (size_t j = 0; j < n; j++)
        dz[j] = (din[j] + dhr[j]) * (1.0f - h1[j] * h1[j]);
    /* dh (B, H) = dz_t (B, H) . W_hh (H, H) */
    if (t > 0)
      nn_train_rec_bwd(tr, B, H, H, dz, m->W_hh[k], dh, 0);
  }
}
