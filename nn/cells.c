/* cells.c: one step of the GRU and the Elman RNN (PyTorch's nn.GRU and nn.RNN, the cells beside
 * CONTRACT §3's LSTM) for B instruments at once, and nn_step, which runs a model of any cell.
 * The scheme of nn_lstm_step (lstm.c): gather each layer's h into a contiguous (B, H) block, the
 * input projection (nn_proj4 for layer 0, else nn_projT or sgemm through nn_work_proj), the
 * recurrent projection on the same kernel, the vectorized gates of gates.c, scatter back, then
 * the linear head. Every row is summed in one fixed order as there, so a tick's result does not
 * depend on which instruments share its wave (B <= nn_work.Bkern). Not for training (train.c).
 * The step never allocates. */
#include <assert.h>
#include <string.h>

#include "nn/lstm.h"
#include "nn/lstm_int.h"

/* hk (B, H) = h of layer k of every instrument; state (L, H) per instrument. */
static void gather_h(int B, int H, int k, float *const *state, float *hk) {
  for (int b = 0; b < B; b++)
    memcpy(hk + (size_t)b * H, state[b] + (size_t)k * H, (size_t)H * sizeof(float));
}

/* The inverse: layer k's h of every instrument from hk (B, H). */
static void scatter_h(int B, int H, int k, float *const *state, const float *hk) {
  for (int b = 0; b < B; b++)
    memcpy(state[b] + (size_t)k * H, hk + (size_t)b * H, (size_t)H * sizeof(float));
}

/* z (B, G) = bias (G) + in (B, D) . W_ih[k]^T: nn_proj4 for layer 0 (D = NN_F), else bias rows
 * then nn_work_proj (D = H). */
static void proj_input(const nn_model *m, const nn_work *w, int k, int B, const float *in,
                       float *z) {
  const int H = m->H, G = m->G;
  const float *bias = w->bias + (size_t)k * G;
  if (k == 0) {
    nn_proj4(B, G, in, w->wx, bias, z);
    return;
  }
  for (int b = 0; b < B; b++)
    memcpy(z + (size_t)b * G, bias, (size_t)G * sizeof(float));
  nn_work_proj(w, B, G, H, in, m->W_ih[k], w->wih + (size_t)(k - 1) * H * w->ldw, z, G);
}

/* Layer k reads its input from `in` (B, D) and gathers its own h into `hk` (B, H); the gates
 * overwrite hk with the new h, which is the next layer's input, so the two h blocks (w->h and
 * w->x) alternate between layers, as in nn_lstm_step. */
void nn_gru_step(const nn_model *m, nn_work *w, int B, const float *x, float *const *state,
                 float *y) {
  assert(B >= 0 && B <= w->Bmax && w->H == m->H && w->L == m->L);
  assert(m->cell == NN_CELL_GRU && w->cell == NN_CELL_GRU);
  const int H = m->H, G = m->G;
  const float *in = x; /* (B, D) layer input */
  float *hk = w->h;    /* (B, H) */
  for (int k = 0; k < m->L; k++) {
    const float *bhn = w->bhh + (size_t)k * H, *whh = w->whh + (size_t)k * H * w->ldw;
    gather_h(B, H, k, state, hk);
    /* z (B, 3H) = in . W_ih^T + [b_ir + b_hr, b_iz + b_hz, b_in] */
    proj_input(m, w, k, B, in, w->z);
    /* z's r and z blocks (B, 2H) += h (B, H) . W_h{r,z}^T (H, 2H), in place (row stride 3H) */
    nn_work_proj(w, B, 2 * H, H, hk, m->W_hh[k], whh, w->z, G);
    /* zh (B, H) = b_hn + h . W_hn^T: kept apart from z's n block, as r multiplies it. */
    for (int b = 0; b < B; b++)
      memcpy(w->zh + (size_t)b * H, bhn, (size_t)H * sizeof(float));
    nn_work_proj(w, B, H, H, hk, m->W_hh[k] + (size_t)2 * H * H, whh + 2 * H, w->zh, H);
    nn_gates_gru(B, H, w->z, w->zh, hk);
    scatter_h(B, H, k, state, hk);
    in = hk;
    hk = hk == w->h ? w->x : w->h;
  }
  nn_head(m, B, in, y);
}

/* As nn_gru_step, with one block z (B, H) = bias + in . W_ih^T + h . W_hh^T. */
void nn_rnn_step(const nn_model *m, nn_work *w, int B, const float *x, float *const *state,
                 float *y) {
  assert(B >= 0 && B <= w->Bmax && w->H == m->H && w->L == m->L);
  assert((m->cell == NN_CELL_RNN_TANH || m->cell == NN_CELL_RNN_RELU) && w->cell == m->cell);
  const int H = m->H;
  const float *in = x;
  float *hk = w->h;
  for (int k = 0; k < m->L; k++) {
    gather_h(B, H, k, state, hk);
    proj_input(m, w, k, B, in, w->z);
    nn_work_proj(w, B, H, H, hk, m->W_hh[k], w->whh + (size_t)k * H * w->ldw, w->z, H);
    nn_gates_rnn(B * H, w->z, hk, m->cell == NN_CELL_RNN_RELU);
    scatter_h(B, H, k, state, hk);
    in = hk;
    hk = hk == w->h ? w->x : w->h;
  }
  nn_head(m, B, in, y);
}

void nn_step(const nn_model *m, nn_work *w, int B, const float *x, float *const *state, float *y) {
  switch (m->cell) {
  case NN_CELL_GRU: nn_gru_step(m, w, B, x, state, y); break;
  case NN_CELL_RNN_TANH:
  case NN_CELL_RNN_RELU: nn_rnn_step(m, w, B, x, state, y); break;
  default: nn_lstm_step(m, w, B, x, state, y); break;
  }
}
