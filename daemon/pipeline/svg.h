/* svg.h: the plot of `tickcast eval --plot`: hand-written SVG text with two panels sharing a time
 * axis: predicted vs realized next-tick returns, and the cumulative return of trading the sign of
 * the prediction, equal-weighted over instruments, net of costs and gross, next to buying and
 * holding. Not a general plotting library. */
#ifndef DAEMON_SVG_H
#define DAEMON_SVG_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/pipeline/score.h"

/* What the plot shows. */
typedef struct svg_eval {
  const char *title;   /* the headline */
  const score_pt *pts; /* (n) the scored predictions, sorted by ts (score_sort) */
  size_t n;            /* points */
  const double *gross; /* (n) equal-weighted cumulative strategy return after each point */
  const double *net;   /* (n) the same net of costs (score_curves) */
  const double *hold;  /* (n) buy and hold, equal-weighted */
  int ninst;           /* instruments the curves average over */
  const char *costs;   /* how costs were charged, for the legend */
  const double *band;  /* (n) or NULL: half-width of the model's central interval of the log
                          return at each point (a model with the scale head) */
  double band_level;   /* its coverage, for the legend */
} svg_eval;

/* Writes the plot of e to path. Long series are drawn per pixel column (the realized returns'
 * 10-90% range and min-max, the predictions' mean and 10-90% range, the interval's bounds averaged
 * over the column), so the file stays small and neither series hides the other at any length.
 * Returns 0 or TC_EIO/TC_EINVAL/TC_ENOMEM with err. */
int svg_eval_plot(const char *path, const svg_eval *e, char *err, size_t errlen);

#endif
