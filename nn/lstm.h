/* lstm.h: batched inference of the contract network (CONTRACT §3) and of its GRU and RNN cells:
 * B instruments, one tick each, in one call, with a register-blocked kernel (or OpenBLAS's sgemm
 * for large B on CPUs without AVX-512) for the projections and vectorized gate math.
 * Not for training (see train.h) and not for deciding which ticks go together (the caller's
 * wave scheduling does that). */
#ifndef NN_LSTM_H
#define NN_LSTM_H

#include "nn/model.h"

/* Scratch for up to Bmax instruments per step, allocated once; the step itself never allocates.
 * G is the model's gate rows (4H LSTM, 3H GRU, H RNN). */
typedef struct nn_work {
  int Bmax;    /* capacity in instruments */
  int cell;    /* cell it was made for (NN_CELL_*) */
  int H;       /* hidden size it was made for */
  int L;       /* layers it was made for */
  int G;       /* gate rows of that model */
  int Bkern;   /* batches of up to Bkern use nn_projT, larger ones sgemm: set by init for this
                  CPU (nn_projT_max_b in lstm_int.h); tests and benchmarks may change it */
  int ldw;     /* row stride of whh and wih: G padded (nn_projT_ldw in lstm_int.h) */
  void *raw;   /* the allocation (calloc) */
  float *buf;  /* its first 64-byte boundary: the blocks below */
  float *x;    /* (Bmax, max(NN_F, H)) layer input */
  float *h;    /* (Bmax, H) gathered h of the current layer */
  float *c;    /* (Bmax, H) gathered c of the current layer (LSTM) */
  float *z;    /* (Bmax, G) gate pre-activations (GRU: the input side) */
  float *zh;   /* (Bmax, H) GRU: the recurrent n block, W_hn h + b_hn; NULL for other cells */
  float *bias; /* (L, G) b_ih + b_hh per layer, summed at init (see nn_work_update); GRU: the
                  n block holds b_in alone */
  float *bhh;  /* (L, H) GRU: b_hn; else NULL */
  float *wx;   /* (NN_F, G) W_ih[0] transposed, copied at init (see nn_work_update) */
  float *whh;  /* (L, H, ldw) W_hh[k] transposed, likewise, for nn_projT */
  float *wih;  /* (L-1, H, ldw) W_ih[k] transposed for layers k >= 1, likewise */
} nn_work;

/* Allocates scratch for up to Bmax instruments of m's shape (plus a transposed copy of the
 * weights, about as many floats as m itself) and sums m's biases. Returns 0,
 * TC_EINVAL (Bmax < 1 or a model without parameters) or TC_ENOMEM; on failure w is freed. */
int nn_work_init(nn_work *w, const nn_model *m, int Bmax);
/* Re-derives bias, wx, whh and wih after m's weights changed (same shape); init already did
 * this once. */
void nn_work_update(nn_work *w, const nn_model *m);
void nn_work_free(nn_work *w); /* accepts NULL and half-built */

/* Steps B instruments (B <= w->Bmax) of an LSTM model by one tick each.
 * x      (B, NN_F) standardized features
 * state  (B) pointers, each to one instrument's state of nn_state_floats(m) floats, layout
 *        (L, 2, H) = h0, c0, h1, c1, ...; read, then updated in place
 * y      (B) standardized output, head.weight . h[L-1] + head.bias
 * Distinct state pointers are required (one tick per instrument per step).
 * An instrument's result does not depend on which others share the call except for rounding:
 * for B <= w->Bkern every projection sums each row in one fixed order (nn_projT), so
 * results are bit-identical to one-at-a-time calls, in any order and grouping. That is every B
 * on a CPU with AVX-512, B <= 64 with AVX2 + FMA and B <= 4 otherwise, where the kernel is the
 * faster one. Above, OpenBLAS's sgemm sums a row differently by its place in the batch
 * (tests/test_nn_lstm.c measures up to 6e-7 on y), so such waves equal the sequential result to
 * ~1e-7, not bit for bit. Results differ in the last bits between CPUs: nn_projT fuses each
 * multiply-add (FMA) with AVX-512 or AVX2 and does not without. */
void nn_lstm_step(const nn_model *m, nn_work *w, int B, const float *x, float *const *state,
                  float *y);

/* The same for a GRU model (PyTorch's nn.GRU; cells.c): per layer, gates in the order r, z, n,
 *   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
 *   n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   h = (1 - z) * n + z * h
 * state (L, H) = h0, h1, ... Same arguments, batching guarantee and CPU dependence. */
void nn_gru_step(const nn_model *m, nn_work *w, int B, const float *x, float *const *state,
                 float *y);

/* The same for an Elman RNN model (PyTorch's nn.RNN; cells.c): per layer
 *   h = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh (NN_CELL_RNN_TANH) or relu
 * state (L, H) = h0, h1, ... */
void nn_rnn_step(const nn_model *m, nn_work *w, int B, const float *x, float *const *state,
                 float *y);

/* One step of any model: the step of its cell above. What replay, the daemon and eval call. */
void nn_step(const nn_model *m, nn_work *w, int B, const float *x, float *const *state, float *y);

/* Vectorized gate nonlinearities, exposed for tests and benchmarks. For one row of z (4H),
 * c (H) and h (H), with optional peepholes (NULL when absent):
 *   i = sigmoid(zi + wci*c), f = sigmoid(zf + wcf*c), g = tanh(zg), c = f*c + i*g,
 *   o = sigmoid(zo + wco*c), h = o * tanh(c).
 * Max abs error against double-precision libm: documented in gates.c and tested. */
void nn_gates(int B, int H, const float *z, float *c, float *h, const float *wci, const float *wcf,
              const float *wco);

/* GRU gates for B rows (gates.c): z (B, 3H) the pre-activations of r and z (both sides, biases
 * included) and the input side of n (W_in x + b_in), zh (B, H) the recurrent side of n
 * (W_hn h + b_hn); h (B, H) the old h, replaced by the new one: r = sigmoid(z_r),
 * u = sigmoid(z_z), n = tanh(z_n + r * zh), h = n + u * (h - n). */
void nn_gates_gru(int B, int H, const float *z, const float *zh, float *h);

/* RNN activation over n values: h (n) = tanh(z) (relu == 0) or max(z, 0), z (n). NaN stays
 * NaN in both. */
void nn_gates_rnn(int n, const float *z, float *h, int relu);

/* The approximations nn_gates uses, over arrays: y (n) = tanh(x) or sigmoid(x), x (n). */
void nn_gate_tanh_n(int n, const float *x, float *y);
void nn_gate_sigmoid_n(int n, const float *x, float *y);

#endif
