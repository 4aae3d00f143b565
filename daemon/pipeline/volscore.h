/* volscore.h: variance forecasts judged as a risk desk judges them: a model's scale head (its
 * forecasts from score_predict_var) against the baselines a desk uses, EWMA (RiskMetrics, lambda
 * 0.94), GARCH(1,1) and the constant variance of the fitting part, by QLIKE and by the MSE of
 * squared returns with Diebold-Mariano tests, and the central prediction interval by its
 * coverage, width and Kupiec's test. Used by `eval` on a model with the scale head. The statistics
 * are evalstat.h's; this file decides what they are applied to. No files, no output. */
#ifndef DAEMON_VOLSCORE_H
#define DAEMON_VOLSCORE_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/pipeline/dataset.h"
#include "daemon/pipeline/evalstat.h"

/* The forecasts compared, in this order everywhere. */
enum { VOL_MODEL, VOL_EWMA, VOL_GARCH, VOL_CONST, VOL_N };
extern const char *const vol_names[VOL_N]; /* "model", "ewma", "garch", "const" */

/* One instrument's baselines. The innovations are its returns (the zero-mean convention of
 * RiskMetrics, which a random-walk mean implies): e_j = the return after tick j, j = 0..n-2.
 * The fitting part is e_0..e_{nfit-1}, the returns up to the first scored prediction (tick
 * nfit); when that is fewer than VOL_MIN_FIT returns, the first half of the series (then the
 * baselines saw what is scored: in-sample). EWMA starts at the fitting part's mean square and
 * runs over the whole series; GARCH(1,1) is fitted on the fitting part by maximum likelihood
 * (evalstat_garch_fit) and run over the whole series from the same start; the constant is the
 * fitting part's mean square. h[k] (n - 1 each, k = VOL_EWMA..VOL_CONST): the forecast of e_j
 * made at tick j. */
#define VOL_MIN_FIT 100
typedef struct vol_base {
  size_t nfit;      /* returns the baselines were fitted on */
  int in_sample;    /* 1: the fitting part overlaps the scored predictions (first half used) */
  int garch_ok;     /* the GARCH fit succeeded (else its forecasts are the constant) */
  evalstat_garch g; /* the fit */
  double var_fit;   /* mean square of the fitting part */
} vol_base;

/* Fills b and h[VOL_EWMA..VOL_CONST][0..n-2] for series s whose first scored prediction is at
 * tick first. h[k] are the caller's arrays of s->n entries. */
void vol_baselines(const ds_series *s, size_t first, vol_base *b, double *const *h);

/* One scored forecast: when, the instrument, the realized return, the mean forecast and the
 * variance forecasts. */
typedef struct vol_pt {
  int64_t ts;
  int sym;
  double real;
  double mu;
  double h[VOL_N];
  double z; /* the z of the model's interval emitted then (the online one's, ivtrack.h) */
} vol_pt;

/* The figures of a set of scored forecasts. Means are over the points; the Diebold-Mariano tests
 * run on the loss differences (model minus baseline) summed per distinct timestamp, as
 * score_fig's do. */
typedef struct vol_fig {
  uint64_t n;
  double qlike[VOL_N];         /* mean evalstat_qlike(real^2, h): ln h + real^2 / h */
  double mse[VOL_N];           /* mean (real^2 - h)^2 */
  int has_dm;                  /* dm_* are set (at least 2 distinct times) */
  evalstat_dm dm_qlike[VOL_N]; /* [k], k >= 1: of qlike(model) - qlike(k); < 0 model better */
  evalstat_dm dm_mse[VOL_N];   /* likewise for the MSE */
  evalstat_interval iv[VOL_N]; /* the central interval mu +- z sqrt(h) (mu = 0 for the baselines,
                                  the model's mean for the model) at the nominal coverage; z is
                                  the model's calibrated one for the model, the normal one for
                                  the baselines */
  int has_iv;
  evalstat_interval iv_static; /* with online: the model's interval at the static zmodel */
} vol_fig;

/* Computes f over p (n, any order) at interval coverage nominal in (0, 1); the model's interval
 * is mu -+ zmodel sqrt(h) (ivcal_z of the model), or with online mu -+ p.z sqrt(h) (the online
 * interval, as emitted) and then also iv_static with zmodel; the baselines' is the Gaussian one.
 * Returns 0 or TC_ENOMEM. */
int vol_figures(const vol_pt *p, size_t n, double nominal, double zmodel, int online, vol_fig *f);

#endif
