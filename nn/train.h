/* train.h: training of the contract network (CONTRACT §3) with any of its cells (LSTM, GRU,
 * RNN): a forward pass over B sequences x T steps that keeps what the backward pass needs,
 * backpropagation through time into a gradient array parallel to m->params, global-norm
 * clipping, Adam, weight initialization and a seedable PRNG. Pure math: no files and no data
 * loading (daemon/dataset.h does that); inference lives in lstm.h. */
#ifndef NN_TRAIN_H
#define NN_TRAIN_H

#include "nn/model.h"
#include <stddef.h>
#include <stdint.h>

/* xoshiro256** seeded through splitmix64: the only randomness in training, so that a seed fixes
 * every bit of the result on a given machine. */
typedef struct nn_rng {
  uint64_t s[4];
} nn_rng;

static inline uint64_t nn_rng_splitmix_(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline void nn_rng_seed(nn_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    r->s[i] = nn_rng_splitmix_(&seed);
}

static inline uint64_t nn_rng_next(nn_rng *r) {
  uint64_t *s = r->s;
  uint64_t x = s[1] * 5, result = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
  return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double nn_rng_uniform(nn_rng *r) {
  return (double)(nn_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), n > 0 (the tiny modulo bias is irrelevant here). */
static inline uint64_t nn_rng_below(nn_rng *r, uint64_t n) {
  return nn_rng_next(r) % n;
}

/* Scratch and caches for one minibatch of at most Bmax sequences x Tmax steps. All buffers are in
 * one allocation made by nn_train_init; forward and backward never allocate. Buffers are used
 * compactly with the B and T of the last forward call, row index t * B + b. G is the model's
 * gate rows (4H LSTM, 3H GRU, H RNN). */
typedef struct nn_train {
  int cell, L, H, G, peephole; /* the shape it was made for */
  int gauss;                   /* 1: the model has the scale head, the loss is Gaussian NLL */
  int Bmax, Tmax;              /* capacity */
  int B, T;                    /* of the last forward pass */
  float *buf;                  /* the one allocation */
  float *x;                    /* (T, B, NN_F) inputs of the last forward */
  float *gates[NN_MAX_LAYERS]; /* (T, B, G) LSTM: i, f, g, o after their nonlinearities; GRU: r, z,
                                  n likewise; RNN: the pre-activations */
  float *h[NN_MAX_LAYERS];     /* (T + 1, B, H) h[0] = initial state, h[t + 1] after step t */
  float *c[NN_MAX_LAYERS];     /* LSTM: (T + 1, B, H) the same for c; else NULL */
  float *tc[NN_MAX_LAYERS];    /* LSTM: (T, B, H) tanh(c) after step t; else NULL */
  float *hn[NN_MAX_LAYERS];    /* GRU: (T, B, H) W_hn h + b_hn at step t, which r multiplied */
  float *y;                    /* (T, B) outputs (standardized) */
  float *dy;                   /* (T, B) d loss / d y */
  float *s;                    /* gauss: (T, B) scale head outputs, log-variance; else NULL */
  float *ds;                   /* gauss: (T, B) d loss / d s; else NULL */
  float *dz;    /* (T, B, G) d loss / d gate pre-activations of the current layer (GRU: of the
                   input side, W_ih x + b_ih) */
  float *dzh;   /* GRU: (T, B, G) the same for the recurrent side, W_hh h + b_hh; else NULL */
  float *zh;    /* GRU: (B, G) one step's recurrent side; else NULL */
  float *dhin;  /* (T, B, H) d loss / d h coming from above (head or the next layer) */
  float *dhin2; /* (T, B, H) the same for the layer below, filled while going down */
  float *dh;    /* (B, H) d loss / d h[t] through the recurrence */
  float *dc;    /* (B, H) d loss / d c[t] through the recurrence (LSTM) */
  /* Bmax <= nn_projT_max_b(): the recurrence's products run on nn_projT, the inference step's
   * kernel (lstm_int.h), which for such small batches is 2-3x faster than sgemm and takes no lock
   * (OpenBLAS locks a global buffer in every call, which threads contend for); else NULL and
   * sgemm. */
  float *wpk; /* (max(H * ldwg, G * ldwh)) a layer's W_hh packed for it, per pass */
  int ldwg;   /* nn_projT_ldw(G): row stride of W_hh^T (H, G) packed for the forward */
  int ldwh;   /* nn_projT_ldw(H): row stride of W_hh (G, H) packed for the backward */
} nn_train;

/* Allocates caches for model shape m and batches of at most Bmax x Tmax.
 * Returns 0 or TC_ENOMEM/TC_EINVAL. */
int nn_train_init(nn_train *tr, const nn_model *m, int Bmax, int Tmax);
void nn_train_free(nn_train *tr); /* accepts NULL and half-built */

/* Forward pass of B sequences for T steps (B <= Bmax, T <= Tmax), keeping caches for backward.
 * x      (T, B, NN_F) standardized inputs
 * tgt    (T, B) standardized targets
 * w      (T, B) loss weight of each position (0 for padding; 1/count for a mean)
 * state  (B, nn_state_floats(m)) per sequence: LSTM (L, 2, H) h0, c0, h1, c1, ..., else (L, H)
 *        h0, h1, ...: in the initial state, out the final one (truncated BPTT: no gradient flows
 *        into the initial state)
 * Returns loss = sum w * (y - tgt)^2, accumulated in double. Outputs are left in tr->y.
 * A model with the scale head (m->gauss) also leaves s = scale_head(h) in tr->s and returns
 * the Gaussian negative log-likelihood sum w * 0.5 (log v + (y - tgt)^2 / v), v = max(exp(s),
 * NN_GAUSS_EPS), as PyTorch's GaussianNLLLoss(full=False, eps=1e-6) with var = exp(s) (whose
 * clamp passes the gradient through unchanged).
 * The gate functions are the rational approximations of nn/gates.c (within ~4e-7 of libm). */
double nn_train_forward(nn_train *tr, const nn_model *m, int B, int T, const float *x,
                        const float *tgt, const float *w, float *state);

/* The same for the sequences [b0, b0 + B) of a minibatch of Ball (b0 + B <= Ball, B <= Bmax):
 * x (T, Ball, NN_F), tgt and w (T, Ball) and state (Ball, nn_state_floats(m)) are the whole
 * minibatch's arrays, of which only those rows are read (and those rows of state written). A
 * slice is one shard of a data-parallel step: its loss and its backward's gradient are the
 * slice's part of the whole minibatch's sums (w already carries the global 1/count), and the
 * slices of a minibatch can run at once on separate nn_train scratch. */
double nn_train_forward_rows(nn_train *tr, const nn_model *m, int Ball, int b0, int B, int T,
                             const float *x, const float *tgt, const float *w, float *state);

#define NN_GAUSS_EPS 1e-6f /* the least variance of the Gaussian NLL (PyTorch's eps) */

/* Backward pass of the last forward: adds d loss / d params into grad (m->nparams floats, same
 * layout as m->params). The entries of features.* and target.* are never touched. */
void nn_train_backward(nn_train *tr, const nn_model *m, float *grad);

/* Scales grad in place so that its L2 norm is at most maxnorm (maxnorm <= 0: no clipping).
 * Returns the norm before clipping. */
double nn_grad_clip(float *grad, size_t n, double maxnorm);

/* Fills the trainable tensors like PyTorch's nn.LSTM/GRU/RNN and nn.Linear defaults: uniform in
 * [-1/sqrt(H), 1/sqrt(H)]; peepholes and the scale head (drawn last) the same. features.* and
 * target.* are left alone. */
void nn_train_init_weights(nn_model *m, nn_rng *r);

/* Adam (Kingma & Ba) with bias correction, over the trainable entries of m->params. */
typedef struct nn_adam {
  size_t n;    /* floats, = m->nparams */
  float *mom;  /* (n) first moment */
  float *vel;  /* (n) second moment */
  long t;      /* steps taken */
  float lr;    /* learning rate */
  float beta1; /* 0.9 */
  float beta2; /* 0.999 */
  float eps;   /* 1e-8 */
} nn_adam;

int nn_adam_init(nn_adam *a, size_t n, float lr); /* 0 or TC_ENOMEM */
void nn_adam_free(nn_adam *a);                    /* accepts NULL and half-built */

/* One update of m->params from grad; features.* and target.* are left as they are. */
void nn_adam_step(nn_adam *a, nn_model *m, const float *grad);

/* The same update in parts, for several threads: nn_adam_next once, then nn_adam_part on ranges
 * [lo, hi) that together cover [0, m->nparams) once each, in any order and on any threads (each
 * entry's update depends only on itself: any split gives nn_adam_step's floats). */
void nn_adam_next(nn_adam *a);
void nn_adam_part(nn_adam *a, nn_model *m, const float *grad, size_t lo, size_t hi);

/* 1 when params[i] is a trainable entry (not features.* or target.*). */
int nn_param_trainable(const nn_model *m, size_t i);

#endif
