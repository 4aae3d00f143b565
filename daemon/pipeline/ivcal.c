/* ivcal.c: the calibrated interval of a model with the scale head (see ivcal.h): the table's
 * quantiles from validation residuals, and the one rule that turns a coverage into z. */
#include "daemon/pipeline/ivcal.h"

#include <math.h>
#include <stdlib.h>

#include "daemon/pipeline/evalstat.h"
#include "nn/base/tc_err.h"

/* The grid of ivcal.h in thousandths. */
static int grid_milli(int i) {
  return i < 99 ? 10 * (i + 1) : i == 99 ? 995 : 999;
}

static int dbl_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int ivcal_fit(double *absz, size_t n, nn_ival *t) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(absz[i]))
      absz[m++] = fabs(absz[i]);
  qsort(absz, m, sizeof *absz, dbl_cmp);
  t->k = 0;
  t->n = m;
  for (int i = 0; i < IVCAL_GRID; i++) {
    /* k = ceil((m + 1) c) in integers: c = milli / 1000 exactly. */
    uint64_t c = (uint64_t)grid_milli(i), k = ((uint64_t)(m + 1) * c + 999) / 1000;
    if (k > m)
      break; /* and every larger coverage too */
    t->c[t->k] = (double)c / 1000;
    t->q[t->k++] = absz[k - 1];
  }
  return t->k > 0 ? 0 : TC_EINVAL;
}

double ivcal_z(const nn_model *m, double c) {
  nn_ival t;
  double zn = evalstat_norm_quantile(0.5 + 0.5 * c);
  if (!m || !m->gauss || nn_ival_get(m, &t, NULL, 0) != 0 || t.k == 0)
    return zn;
  /* Outside the table the normal quantile, but never on the wrong side of the table's end: a
   * fat-tailed q(0.99) can exceed the normal z at 0.995, and a wider coverage must not get a
   * narrower interval. */
  if (c < t.c[0])
    return zn < t.q[0] ? zn : t.q[0];
  if (c > t.c[t.k - 1])
    return zn > t.q[t.k - 1] ? zn : t.q[t.k - 1];
  {
    int i = 0;
    while (i + 1 < t.k && t.c[i + 1] <= c) /* c[i] <= c < c[i + 1], or i = k - 1 at the end */
      i++;
    if (i + 1 == t.k || c == t.c[i])
      return t.q[i];
    double w = (c - t.c[i]) / (t.c[i + 1] - t.c[i]);
    return t.q[i] + w * (t.q[i + 1] - t.q[i]);
  }
}
