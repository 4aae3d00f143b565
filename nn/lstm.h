/* lstm.h: batched inference of the contract network (CONTRACT §3): B instruments, one tick each,
 * in one call, with OpenBLAS GEMMs for the projections and vectorized gate math.
 * Not for training (see train.h) and not for deciding which ticks go together (the caller's
 * wave scheduling does that). */
#ifndef NN_LSTM_H
#define NN_LSTM_H

#include "model.h"

/* Scratch for up to Bmax instruments per step, allocated once; the step itself never allocates. */
typedef struct nn_work {
  int Bmax; /* capacity in instruments */
  int H;    /* hidden size it was made for */
  int L;    /* layers it was made for */
  float *buf; /* one allocation holding the blocks below */
  float *x;   /* (Bmax, max(NN_F, H)) layer input */
  float *h;   /* (Bmax, H) gathered h of the current layer */
  float *c;   /* (Bmax, H) gathered c of the current layer */
  float *z;   /* (Bmax, 4H) gate pre-activations */
} nn_work;

int nn_work_init(nn_work *w, const nn_model *m, int Bmax);
void nn_work_free(nn_work *w); /* accepts NULL and half-built */

/* Steps B instruments (B <= w->Bmax) by one tick each.
 * x      (B, NN_F) standardized features
 * state  (B) pointers, each to one instrument's state of nn_state_floats(m) floats, layout
 *        (L, 2, H) = h0, c0, h1, c1, ...; read, then updated in place
 * y      (B) standardized output, head.weight . h[L-1] + head.bias
 * Distinct state pointers are required (one tick per instrument per step). */
void nn_lstm_step(const nn_model *m, nn_work *w, int B, const float *x, float *const *state,
                  float *y);

/* Vectorized gate nonlinearities, exposed for tests and benchmarks. For one row of z (4H),
 * c (H) and h (H), with optional peepholes (NULL when absent):
 *   i = sigmoid(zi + wci*c), f = sigmoid(zf + wcf*c), g = tanh(zg), c = f*c + i*g,
 *   o = sigmoid(zo + wco*c), h = o * tanh(c).
 * Max abs error against double-precision libm: documented in gates.c and tested. */
void nn_gates(int B, int H, const float *z, float *c, float *h, const float *wci,
              const float *wcf, const float *wco);

#endif
