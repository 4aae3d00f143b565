/* shard.c: the data-parallel training step (see shard.h). */
#include "daemon/pipeline/shard.h"

#include <assert.h>
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
  memset(g, 0, s->np * sizeof *g);
  s->loss[k] =
      nn_train_forward_rows(&s->tr[k], s->m, s->B, b0, n, s->T, s->x, s->tgt, s->w, s->state);
  nn_train_backward(&s->tr[k], s->m, g);
}

double shard_set_grad(shard_set *s, tpool *pool, const nn_model *m, int B, int T, const float *x,
                      const float *tgt, const float *w, float *state, float *grad) {
  int K = shard_count(B);
  assert(K <= s->K && m->nparams == s->np);
  s->m = m, s->B = B, s->T = T;
  s->x = x, s->tgt = tgt, s->w = w, s->state = state, s->out = grad;
  tpool_run(pool, K, shard_job, s);
  /* The fixed reduction order: ((g0 + g1) + g2) + ..., and the losses likewise. */
  double loss = s->loss[0];
  for (int k = 1; k < K; k++) {
    const float *g = s->grad + (size_t)(k - 1) * s->np;
    for (size_t i = 0; i < s->np; i++)
      grad[i] += g[i];
    loss += s->loss[k];
  }
  return loss;
}
