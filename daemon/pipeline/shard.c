/* shard.c: the data-parallel training step (see shard.h). */
#include "daemon/pipeline/shard.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/base/tc_err.h"

int shard_count(int B) {
  return (B + SHARD_ROWS - 1) / SHARD_ROWS;
}

void shard_rows(int B, int k, int *b0, int *n) {
  int K = shard_count(B);
  *b0 = (int)((long long)k * B / K);
  *n = (int)((long long)(k + 1) * B / K) - *b0;
}

int shard_set_init(shard_set *s, const nn_model *m, int Bmax, int Tmax) {
  memset(s, 0, sizeof *s);
  if (Bmax < 1)
    return TC_EINVAL;
  s->K = shard_count(Bmax);
  s->np = m->nparams;
  s->tr = calloc((size_t)s->K, sizeof *s->tr);
  s->loss = calloc((size_t)s->K, sizeof *s->loss);
  s->grad = malloc((s->K > 1 ? (size_t)(s->K - 1) * s->np : 1) * sizeof *s->grad);
  if (!s->tr || !s->loss || !s->grad) {
    shard_set_free(s);
    return TC_ENOMEM;
  }
  for (int k = 0; k < s->K; k++) {
    int rc = nn_train_init(&s->tr[k], m, Bmax < SHARD_ROWS ? Bmax : SHARD_ROWS, Tmax);
    if (rc != 0) {
      shard_set_free(s);
      return rc;
    }
  }
  return 0;
}

void shard_set_free(shard_set *s) {
  if (!s)
    return;
  for (int k = 0; s->tr && k < s->K; k++)
    nn_train_free(&s->tr[k]);
  free(s->tr);
  free(s->grad);
  free(s->loss);
  memset(s, 0, sizeof *s);
}

/* Shard k of the step: its rows forward and backward into its own gradient. */
static void shard_job(void *arg, int k) {
  shard_set *s = arg;
  int b0, n;
  shard_rows(s->B, k, &b0, &n);
  float *g = k == 0 ? s->out : s->grad + (size_t)(k - 1) * s->np;
  if (s->load)
    s->load(s->load_arg, b0, n);
  memset(g, 0, s->np * sizeof *g);
  s->loss[k] =
      nn_train_forward_rows(&s->tr[k], s->m, s->B, b0, n, s->T, s->x, s->tgt, s->w, s->state);
  nn_train_backward(&s->tr[k], s->m, g);
}

/* The parameter ranges of the reduction and the update: one per thread, of at least
 * PART_MIN floats (below that, waking a thread costs more than the work). */
#define PART_MIN 2048

static int part_count(const shard_set *s, const tpool *pool) {
  size_t byn = (s->np + PART_MIN - 1) / PART_MIN;
  int t = tpool_threads(pool);
  return byn < (size_t)t ? (int)(byn ? byn : 1) : t;
}

static void part_range(const shard_set *s, int j, size_t *lo, size_t *hi) {
  *lo = s->np * (size_t)j / (size_t)s->parts;
  *hi = s->np * (size_t)(j + 1) / (size_t)s->parts;
}

/* Range j of the reduction, in the fixed order ((g0 + g1) + g2) + ... entry by entry. */
static void reduce_job(void *arg, int j) {
  shard_set *s = arg;
  size_t lo, hi;
  part_range(s, j, &lo, &hi);
  for (int k = 1; k < s->K1; k++) {
    const float *g = s->grad + (size_t)(k - 1) * s->np;
    for (size_t i = lo; i < hi; i++)
      s->out[i] += g[i];
  }
}

void shard_set_loader(shard_set *s, shard_load_fn load, void *arg) {
  s->load = load, s->load_arg = arg;
}

double shard_set_grad(shard_set *s, tpool *pool, const nn_model *m, int B, int T, const float *x,
                      const float *tgt, const float *w, float *state, float *grad) {
  int K = shard_count(B);
  assert(K <= s->K && m->nparams == s->np);
  s->m = m, s->B = B, s->T = T, s->K1 = K;
  s->x = x, s->tgt = tgt, s->w = w, s->state = state, s->out = grad;
  tpool_run(pool, K, shard_job, s);
  if (K > 1) {
    s->parts = part_count(s, pool);
    tpool_run(pool, s->parts, reduce_job, s);
  }
  double loss = s->loss[0]; /* the losses in the same order */
  for (int k = 1; k < K; k++)
    loss += s->loss[k];
  return loss;
}

/* Range j of the update: the clipping's scaling, then Adam. */
static void update_job(void *arg, int j) {
  shard_set *s = arg;
  size_t lo, hi;
  part_range(s, j, &lo, &hi);
  if (s->clip != 1.0f)
    for (size_t i = lo; i < hi; i++)
      s->out[i] *= s->clip;
  nn_adam_part(s->adam, s->um, s->out, lo, hi);
}

double shard_set_update(shard_set *s, tpool *pool, nn_model *m, nn_adam *a, float *grad,
                        double maxnorm) {
  assert(m->nparams == s->np);
  double ss = 0.0; /* nn_grad_clip's sum and factor */
  for (size_t i = 0; i < s->np; i++)
    ss += (double)grad[i] * grad[i];
  double norm = sqrt(ss);
  s->clip = maxnorm > 0 && norm > maxnorm ? (float)(maxnorm / norm) : 1.0f;
  s->um = m, s->adam = a, s->out = grad;
  s->parts = part_count(s, pool);
  nn_adam_next(a);
  tpool_run(pool, s->parts, update_job, s);
  return norm;
}
