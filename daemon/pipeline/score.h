/* score.h: next-tick return forecasts judged as a risk desk judges them: a model's predictions
 * over a dataset, and the figures of a set of scored predictions (an instrument, or all of them
 * pooled): MSE against the random walk with a block-bootstrap interval on skill and a
 * Diebold-Mariano test, directional accuracy next to its base rate, and the sign-of-prediction
 * strategy net of costs, equal-weighted over instruments. Shared by `eval` (every figure) and
 * `train` (the validation test of the gain, the held-out test figures it records). The statistics
 * themselves are evalstat.h's; this file decides what they are applied to. No files, no output. */
#ifndef DAEMON_SCORE_H
#define DAEMON_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/pipeline/dataset.h"
#include "daemon/pipeline/evalstat.h"
#include "nn/model.h"

#define SCORE_LEVEL 0.95  /* level of the skill interval */
#define SCORE_BOOT_SEED 1 /* the bootstrap's seed: equal inputs, equal intervals */

/* The predictions of m for every tick of every series of d, run as `replay` runs them (the
 * inference network, each instrument's state from zero at its first tick), all instruments
 * stepped in lockstep. pred[i] (d->s[i].n): the prediction made after tick t of
 * series i. Returns 0 or TC_ENOMEM. */
int score_predict(const nn_model *m, const dataset *d, double **pred);

/* The same, and for a model with the scale head (var not NULL) its variance forecast of the next
 * log return, var[i][t] = exp(s) target.std^2, after tick t of series i (var[i] like pred[i]). */
int score_predict_var(const nn_model *m, const dataset *d, double **pred, double **var);

/* score_predict on `threads` threads (eval --threads): series are dealt out by length, and each
 * thread steps its series in lockstep. Every series is stepped in batches of at most the kernel's
 * Bkern instruments, so the predictions are the same bits for every thread count and on every
 * CPU (nn/lstm.h); score_predict is this with one thread. */
int score_predict_threads(const nn_model *m, const dataset *d, double **pred, int threads);

/* Both: the predictions and, for a model with the scale head (var not NULL), the variances, on
 * `threads` threads, the same bits for every thread count. */
int score_predict_var_threads(const nn_model *m, const dataset *d, double **pred, double **var,
                              int threads);

/* One scored prediction. */
typedef struct score_pt {
  int64_t ts;  /* when it was made: the ts of the tick it follows */
  int sym;     /* the instrument (series index) */
  double pred; /* predicted next log return */
  double real; /* realized next log return */
  double cost; /* cost of changing the position by one unit at this tick, as a fraction of the
                  price: half the quoted relative spread, or a fixed rate (eval --cost-bps) */
} score_pt;

/* The figures of a set of scored predictions.
 * Statistics that need a time series (Diebold-Mariano, the bootstrap) run on the losses summed
 * per distinct timestamp: predictions for several instruments made at the same time (the same
 * day's close) are one observation, so their cross-correlation is inside each term and the
 * Newey-West variance sees only serial dependence. For one instrument with distinct timestamps
 * this is the plain series. Skill is unchanged by the grouping (a ratio of sums). */
typedef struct score_fig {
  uint64_t n;                   /* scored predictions */
  uint64_t times;               /* distinct timestamps among them: the DM and bootstrap sample */
  double mse, mae;              /* of pred - real */
  double mse_rw;                /* of the random walk (a zero prediction): mean of real^2 */
  double skill;                 /* 1 - mse / mse_rw; NaN when mse_rw = 0 */
  int has_ci;                   /* ci is set (at least 2 times, mse_rw > 0) */
  evalstat_boot ci;             /* circular block bootstrap interval of skill at SCORE_LEVEL */
  int has_dm;                   /* dm is set (at least 2 times) */
  evalstat_dm dm;               /* of loss(model) - loss(random walk): < 0, the model is better */
  evalstat_dir dir;             /* direction over pairs with pred != 0 and real != 0 */
  uint64_t tp, fp, fn, tn;      /* the "up" class over those pairs */
  double precision, recall, f1; /* of the "up" class (NaN when undefined) */
  int ninst;                    /* instruments among the predictions */
  double gross, net;            /* the sign-of-prediction strategy, equal-weighted: the mean over
                                   instruments of sum(sign(pred) real), and of that minus the
                                   costs of its position changes */
  double hold;                  /* buy and hold, equal-weighted: the mean of sum(real) */
  uint64_t changes;             /* position changes (the first entry counts; a flip counts 1) */
} score_fig;

/* Sorts pts (n) by ts and then by instrument, keeping the order of equal pairs (a stable merge
 * sort): one instrument's predictions stay in their order, so its positions follow each other
 * as they were taken. Returns 0 or TC_ENOMEM. */
int score_sort(score_pt *pts, size_t n);

/* Computes the figures of pts (n, sorted by ts; instruments are pts[].sym < nsym). Returns 0 or
 * TC_ENOMEM. */
int score_figures(const score_pt *pts, size_t n, int nsym, score_fig *f);

/* The equal-weighted strategy curves of pts (n, sorted by ts) after each point: gross[k], net[k]
 * and hold[k] (n each) are the figures of score_fig over pts[0..k]. Returns 0 or TC_ENOMEM. */
int score_curves(const score_pt *pts, size_t n, int nsym, double *gross, double *net, double *hold);

/* The Diebold-Mariano test of d = loss1 - loss2 (n, any order) summed per distinct ts, as
 * score_fig does; *times gets the number of distinct timestamps. Returns 0, TC_EINVAL (fewer
 * than 2 times; out zeroed, p NaN) or TC_ENOMEM. */
int score_dm_by_time(const int64_t *ts, const double *d, size_t n, evalstat_dm *out,
                     uint64_t *times);

#endif
