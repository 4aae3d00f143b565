/* lstm.c: one step of the contract network (CONTRACT §3) for B instruments at once: gather their
 * h, c into contiguous (B, H) blocks, the projections (layer 0's K=4 input projection in
 * nn_proj4; the others in the register-blocked nn_projT up to nn_work.Bkern rows, which is every
 * B on an AVX-512 CPU, and in OpenBLAS's sgemm above), the fused gates of gates.c, scatter back,
 * then the linear head. Not for training and not for choosing which ticks form a batch (the
 * caller's waves do that). The step never allocates. Also the scratch (nn_work) of every cell,
 * and the projection and head that the GRU and RNN steps (cells.c) share. */
#include "nn/lstm.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/base/tc_err.h"
#include "nn/blas.h"
#include "nn/lstm_int.h"

/* Rounds a float count up to 16 (64 bytes) so every block in nn_work starts cache-aligned. */
static size_t round16(size_t n) {
  return (n + 15) & ~(size_t)15;
}

/* Allocates the scratch blocks of w in one aligned allocation, sized by the model's gate rows G;
 * see lstm.h. */
int nn_work_init(nn_work *w, const nn_model *m, int Bmax) {
  memset(w, 0, sizeof *w);
  if (!m || !m->params || Bmax < 1 || m->L < 1 || m->H < 1 || !nn_cell_valid(m->cell) ||
      m->G != nn_cell_gates(m->cell) * m->H)
    return TC_EINVAL;
  const int gru = m->cell == NN_CELL_GRU;
  size_t H = (size_t)m->H, G = (size_t)m->G, Bm = (size_t)Bmax, Dx = H > NN_F ? H : NN_F;
  size_t nx = round16(Bm * Dx), nh = round16(Bm * H), nz = round16(Bm * G),
         nb = round16((size_t)m->L * G), nw = round16((size_t)NN_F * G),
         ldw = (size_t)nn_projT_ldw(m->G), nhh = (size_t)m->L * H * ldw,
         nih = (size_t)(m->L - 1) * H * ldw;
  size_t total =
      nx + 2 * nh + nz + nb + nw + nhh + nih + (gru ? nh + round16((size_t)m->L * H) : 0);
  /* Zeroed by calloc, which for a large block maps pages that the kernel zeroes when they are
   * first touched: rows beyond the widest batch a run steps are never touched. The workers of
   * `replay --threads 2` step batches of a shard's quarter of the instruments, and a memset of
   * the whole (0.5 MB at H = 64, 256 rows) faulted in 3 pages of 4 where faults cost 11 us. */
  w->raw = calloc(total * sizeof(float) + 63, 1);
  if (!w->raw)
    return TC_ENOMEM;
  w->buf = (float *)(((uintptr_t)w->raw + 63) & ~(uintptr_t)63);
  w->x = w->buf;
  w->h = w->x + nx;
  w->c = w->h + nh;
  w->z = w->c + nh;
  w->bias = w->z + nz;
  w->wx = w->bias + nb;
  w->whh = w->wx + nw;
  w->wih = w->whh + nhh;
  if (gru) {
    w->zh = w->wih + nih;
    w->bhh = w->zh + nh;
  }
  w->Bmax = Bmax;
  w->cell = m->cell;
  w->H = m->H;
  w->L = m->L;
  w->G = m->G;
  w->ldw = (int)ldw;
  w->Bkern = nn_projT_max_b();
  nn_work_update(w, m);
  return 0;
}

void nn_transpose_ld(int G, int K, const float *W, float *wt, int ldw) {
  for (int r = 0; r < G; r++)
    for (int d = 0; d < K; d++)
      wt[(size_t)d * ldw + r] = W[(size_t)r * K + d];
}

/* bias (L, G) = b_ih + b_hh, so the step adds one vector per row instead of two (for the GRU
 * only in the r and z blocks: its n block keeps b_in, and bhh (L, H) holds b_hn, because r
 * multiplies the recurrent side with its bias); wx (4, G) = W_ih[0]^T, whh (L, H, ldw) =
 * W_hh[k]^T and wih (L-1, H, ldw) = W_ih[k]^T for k >= 1, so that the projections run along rows
 * of W (nn_proj4, nn_projT). */
void nn_work_update(nn_work *w, const nn_model *m) {
  const int H = m->H, G = m->G;
  const size_t HW = (size_t)H * w->ldw;
  for (int k = 0; k < m->L; k++)
    for (int j = 0; j < G; j++)
      w->bias[(size_t)k * G + j] = m->b_ih[k][j] + m->b_hh[k][j];
  if (m->cell == NN_CELL_GRU)
    for (int k = 0; k < m->L; k++)
      for (int j = 0; j < H; j++) {
        w->bias[(size_t)k * G + 2 * H + j] = m->b_ih[k][2 * H + j];
        w->bhh[(size_t)k * H + j] = m->b_hh[k][2 * H + j];
      }
  nn_transpose_ld(G, NN_F, m->W_ih[0], w->wx, G);
  for (int k = 0; k < m->L; k++)
    nn_transpose_ld(G, H, m->W_hh[k], w->whh + (size_t)k * HW, w->ldw);
  for (int k = 1; k < m->L; k++)
    nn_transpose_ld(G, H, m->W_ih[k], w->wih + (size_t)(k - 1) * HW, w->ldw);
}

/* z (B, G) += a (B, K) . W^T (K, G), W being (G, K) row-major and wt its transpose (K, ldw), z of
 * row stride ldz: nn_projT on wt up to w->Bkern rows, sgemm on W above (see lstm_int.h). */
void nn_work_proj(const nn_work *w, int B, int G, int K, const float *a, const float *W,
                  const float *wt, float *z, int ldz) {
  if (B <= w->Bkern)
    nn_projT_ld(B, G, K, a, wt, w->ldw, z, ldz);
  else
    nn_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, G, K, 1.0f, a, K, W, K, 1.0f, z, ldz);
}

/* y (B) = h (B, H) . head.weight (H) + head.bias, in a fixed order per row so a row's result does
 * not depend on B: each row's sum runs j = 0, 1, ..., H - 1. A row alone is a chain of dependent
 * additions (4 cycles each); HEAD_ROWS rows at a time run as that many independent chains, with
 * each chain's additions in the same order, so the floats are the same. */
#define HEAD_ROWS 8
void nn_head(const nn_model *m, int B, const float *h, float *y) {
  const int H = m->H;
  const float *w = m->head_w;
  int b = 0;
  for (; b + HEAD_ROWS <= B; b += HEAD_ROWS) {
    const float *h0 = h + (size_t)b * H, *h1 = h0 + H, *h2 = h1 + H, *h3 = h2 + H;
    const float *h4 = h3 + H, *h5 = h4 + H, *h6 = h5 + H, *h7 = h6 + H;
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0; /* in registers */
    for (int j = 0; j < H; j++) {
      float wj = w[j];
      a0 += h0[j] * wj, a1 += h1[j] * wj, a2 += h2[j] * wj, a3 += h3[j] * wj;
      a4 += h4[j] * wj, a5 += h5[j] * wj, a6 += h6[j] * wj, a7 += h7[j] * wj;
    }
    float bias = m->head_b[0];
    y[b] = a0 + bias, y[b + 1] = a1 + bias, y[b + 2] = a2 + bias, y[b + 3] = a3 + bias;
    y[b + 4] = a4 + bias, y[b + 5] = a5 + bias, y[b + 6] = a6 + bias, y[b + 7] = a7 + bias;
  }
  for (; b < B; b++) {
    const float *hr = h + (size_t)b * H;
    float acc = 0.0f;
    for (int j = 0; j < H; j++)
      acc += hr[j] * m->head_w[j];
    y[b] = acc + m->head_b[0];
  }
}

void nn_work_free(nn_work *w) {
  if (!w)
    return;
  free(w->raw);
  memset(w, 0, sizeof *w);
}

/* Steps B instruments by one tick (see lstm.h). Layer k reads its input from `in` (B, D) and
 * gathers its own h into `hk` (B, H); the gates overwrite hk with the new h, which is the next
 * layer's input, so the two h blocks (w->h and w->x) alternate between layers. */
void nn_lstm_step(const nn_model *m, nn_work *w, int B, const float *x, float *const *state,
                  float *y) {
  assert(B >= 0 && B <= w->Bmax && w->H == m->H && w->L == m->L);
  assert(m->cell == NN_CELL_LSTM && w->cell == NN_CELL_LSTM);
  const int H = m->H, G = 4 * H;
  const size_t H2 = 2 * (size_t)H;
  const float *in = x; /* (B, D) layer input */
  float *hk = w->h;    /* (B, H) */
  for (int k = 0; k < m->L; k++) {
    const int D = k == 0 ? NN_F : H;
    float *c = w->c, *z = w->z;
    const float *bias = w->bias + (size_t)k * G;
    for (int b = 0; b < B; b++) {
      const float *s = state[b] + (size_t)k * H2;
      memcpy(hk + (size_t)b * H, s, (size_t)H * sizeof(float));
      memcpy(c + (size_t)b * H, s + H, (size_t)H * sizeof(float));
    }
    if (k == 0) {
      /* z (B, 4H) = bias + x (B, 4) . W_ih^T (4, 4H) */
      nn_proj4(B, G, in, w->wx, bias, z);
    } else {
      /* z (B, 4H) = bias + in (B, H) . W_ih^T (H, 4H) */
      for (int b = 0; b < B; b++)
        memcpy(z + (size_t)b * G, bias, (size_t)G * sizeof(float));
      nn_work_proj(w, B, G, D, in, m->W_ih[k], w->wih + (size_t)(k - 1) * H * w->ldw, z, G);
    }
    /* z (B, 4H) += h (B, H) . W_hh^T (H, 4H) */
    nn_work_proj(w, B, G, H, hk, m->W_hh[k], w->whh + (size_t)k * H * w->ldw, z, G);
    nn_gates(B, H, z, c, hk, m->w_ci[k], m->w_cf[k], m->w_co[k]);
    for (int b = 0; b < B; b++) {
      float *s = state[b] + (size_t)k * H2;
      memcpy(s, hk + (size_t)b * H, (size_t)H * sizeof(float));
      memcpy(s + H, c + (size_t)b * H, (size_t)H * sizeof(float));
    }
    in = hk;
    hk = hk == w->h ? w->x : w->h;
  }
  nn_head(m, B, in, y);
}
