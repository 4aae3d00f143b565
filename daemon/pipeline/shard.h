/* shard.h: the data-parallel training step: a minibatch of B sequences is cut into a fixed number
 * of shards (a function of B alone, never of the thread count), each shard's forward and backward
 * runs on its own scratch and gradient buffer on a tpool, and the shards' losses and gradients are
 * summed in shard order 0, 1, 2, ...: the same floats whatever the threads, so that a seed and an
 * input give the same model bytes for any --threads. The math is nn/train.h's; the optimizer
 * step (clipping and Adam) runs on the pool too, in parts of the parameters (shard_set_update). */
#ifndef DAEMON_SHARD_H
#define DAEMON_SHARD_H

#include <stddef.h>

#include "daemon/pipeline/tpool.h"
#include "nn/model.h"
#include "nn/train.h"

/* Most sequences in one shard. 16 keeps the GEMMs near their efficiency at H = 32..64 (measured
 * CPU per tick-step: B = 16 within ~5-10% of B = 64, B = 8 ~25% slower) and still cuts the
 * default minibatch of 32 in two. */
#define SHARD_ROWS 16

/* Shards of a minibatch of B >= 1 sequences: ceil(B / SHARD_ROWS). */
int shard_count(int B);

/* Shard k of a minibatch of B: sequences [*b0, *b0 + *n), the B split as evenly as can be. */
void shard_rows(int B, int k, int *b0, int *n);

/* Fills rows [b0, b0 + n) of a minibatch's x, tgt and w (and resets their state) in place. */
typedef void (*shard_load_fn)(void *arg, int b0, int n);

/* Scratch for steps on minibatches of at most Bmax sequences x Tmax steps. */
typedef struct shard_set {
  int K;        /* shards of a Bmax minibatch: every nn_train below */
  size_t np;    /* m->nparams */
  nn_train *tr; /* (K) each shard's caches, for at most SHARD_ROWS sequences */
  float *grad;  /* (K - 1, np) shards 1.. (shard 0 adds into the caller's grad) */
  double *loss; /* (K) each shard's loss */
  /* The step being run (set by shard_set_grad for its jobs). */
  const nn_model *m;    /* the model */
  int B, T;             /* the minibatch's sequences and steps */
  const float *x;       /* (T, B, NN_F) inputs */
  const float *tgt, *w; /* (T, B) targets and loss weights */
  float *state;         /* (B, nn_state_floats(m)) carried state, in and out */
  float *out;           /* the caller's grad, shard 0 adds into it */
  shard_load_fn load;   /* shard_set_loader's, or NULL */
  void *load_arg;
  int K1;        /* the step's shards */
  int parts;     /* parameter ranges of the reduction and the update */
  nn_model *um;  /* the update (shard_set_update): its model, */
  nn_adam *adam; /* optimizer, */
  float clip;    /* and the factor grad is scaled by (1: none) */
} shard_set;

/* 0 or TC_ENOMEM/TC_EINVAL. */
int shard_set_init(shard_set *s, const nn_model *m, int Bmax, int Tmax);
void shard_set_free(shard_set *s); /* accepts NULL and half-built */

/* Forward and backward of the minibatch on pool (NULL: this thread), as nn_train_forward and
 * nn_train_backward over all B sequences would do but shard by shard:
 * x (T, B, NN_F), tgt and w (T, B), state (B, nn_state_floats(m)) in/out, as nn_train_forward's;
 * grad (m->nparams) is set (not added) to the sum of the shards' gradients, in shard order.
 * Returns the loss, the shards' losses summed in shard order. */
double shard_set_grad(shard_set *s, tpool *pool, const nn_model *m, int B, int T, const float *x,
                      const float *tgt, const float *w, float *state, float *grad);

/* With load set, each shard of the next shard_set_grad calls load(arg, b0, n) for its own rows
 * first, on its thread, before it reads them: the minibatch loads in parallel too. NULL: the
 * caller has filled x, tgt, w and state. */
void shard_set_loader(shard_set *s, shard_load_fn load, void *arg);

/* The optimizer step on grad, on pool (NULL: this thread): grad clipped to an L2 norm of at most
 * maxnorm (<= 0: no clipping), then Adam's update of m->params. The norm is summed on this thread
 * in index order and the rest runs in ranges of the parameters on the pool, so the floats are
 * nn_grad_clip's and nn_adam_step's for any thread count. Returns the norm before clipping. */
double shard_set_update(shard_set *s, tpool *pool, nn_model *m, nn_adam *a, float *grad,
                        double maxnorm);

#endif
