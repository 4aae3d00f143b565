/* volscore.c: variance forecasts of the scale head against EWMA, GARCH(1,1) and a constant (see
 * volscore.h). */
#include "daemon/pipeline/volscore.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/pipeline/score.h"
#include "nn/base/tc_err.h"
#include "nn/features.h"

const char *const vol_names[VOL_N] = {"model", "ewma", "garch", "const"};

void vol_baselines(const ds_series *s, size_t first, vol_base *b, double *const *h) {
  memset(b, 0, sizeof *b);
  size_t n = s->n > 1 ? s->n - 1 : 0; /* innovations e_j = ret of tick j + 1 */
  double *e = malloc((n ? n : 1) * sizeof *e);
  if (!e) { /* the forecasts stay NaN: nothing scores */
    for (int k = VOL_EWMA; k < VOL_N; k++)
      for (size_t j = 0; j < n; j++)
        h[k][j] = NAN;
    return;
  }
  for (size_t j = 0; j < n; j++)
    e[j] = s->raw[(j + 1) * NN_F];
  size_t nfit = first < n ? first : n;
  if (nfit < VOL_MIN_FIT) {
    nfit = n / 2;
    b->in_sample = 1;
  }
  b->nfit = nfit;
  b->var_fit = nfit ? evalstat_mean_sq(e, nfit) : NAN;
  evalstat_ewma_filter(e, n, EVALSTAT_EWMA_LAMBDA, b->var_fit, h[VOL_EWMA]);
  b->garch_ok = nfit >= 3 && evalstat_garch_fit(e, nfit, &b->g) == 0;
  if (b->garch_ok)
    evalstat_garch_filter(&b->g, e, n, b->g.h0, h[VOL_GARCH]);
  for (size_t j = 0; j < n; j++) {
    h[VOL_CONST][j] = b->var_fit;
    if (!b->garch_ok)
      h[VOL_GARCH][j] = b->var_fit;
  }
  free(e);
}

int vol_figures(const vol_pt *p, size_t n, double nominal, double zmodel, int online, vol_fig *f) {
  memset(f, 0, sizeof *f);
  f->n = n;
  if (n == 0)
    return 0;
  double *lq = malloc(VOL_N * n * sizeof *lq), *lm = malloc(VOL_N * n * sizeof *lm);
  double *d = malloc(n * sizeof *d), *r = malloc(n * sizeof *r), *mu = malloc(n * sizeof *mu);
  double *h = malloc(n * sizeof *h);
  int64_t *ts = malloc(n * sizeof *ts);
  int rc = TC_ENOMEM;
  if (!lq || !lm || !d || !r || !mu || !h || !ts)
    goto done;
  for (size_t j = 0; j < n; j++) {
    r[j] = p[j].real, mu[j] = p[j].mu, ts[j] = p[j].ts;
    double e2 = p[j].real * p[j].real;
    for (int k = 0; k < VOL_N; k++) {
      double q = evalstat_qlike(e2, p[j].h[k]), m = (e2 - p[j].h[k]) * (e2 - p[j].h[k]);
      lq[k * n + j] = q, lm[k * n + j] = m;
      f->qlike[k] += q / (double)n;
      f->mse[k] += m / (double)n;
    }
  }
  f->has_dm = 1;
  for (int k = 1; k < VOL_N; k++) {
    uint64_t times;
    for (size_t j = 0; j < n; j++)
      d[j] = lq[j] - lq[k * n + j];
    int a = score_dm_by_time(ts, d, n, &f->dm_qlike[k], &times);
    for (size_t j = 0; j < n; j++)
      d[j] = lm[j] - lm[k * n + j];
    int b = score_dm_by_time(ts, d, n, &f->dm_mse[k], &times);
    if (a == TC_ENOMEM || b == TC_ENOMEM)
      goto done;
    if (a != 0 || b != 0)
      f->has_dm = 0;
  }
  f->has_iv = 1;
  double znorm = evalstat_norm_quantile(0.5 + 0.5 * nominal);
  for (int k = 0; k < VOL_N; k++) {
    for (size_t j = 0; j < n; j++)
      h[j] = p[j].h[k];
    if (evalstat_interval_score(r, k == VOL_MODEL ? mu : NULL, h, n, nominal,
                                k == VOL_MODEL ? zmodel : znorm, &f->iv[k]) != 0)
      f->has_iv = 0;
    if (k == VOL_MODEL && online) { /* the emitted interval; the static one beside it */
      f->iv_static = f->iv[k];
      for (size_t j = 0; j < n; j++)
        d[j] = p[j].z;
      if (evalstat_interval_score_zt(r, mu, h, d, n, nominal, &f->iv[k]) != 0)
        f->has_iv = 0;
    }
  }
  rc = 0;
done:
  free(lq), free(lm), free(d), free(r), free(mu), free(h), free(ts);
  return rc;
}
