/* ivtrack.c: the online interval's bounds and its run along a series (see ivtrack.h). */
#include "daemon/pipeline/ivtrack.h"

#include <math.h>

#include "daemon/pipeline/evalstat.h"

void ivtrack_bounds(double px, double mu, double sd, double z, double *lo, double *hi) {
  *lo = px * exp(mu - z * sd);
  *hi = px * exp(mu + z * sd);
}

void ivtrack_series(const double *ret, const double *mu, const double *var, size_t n, double z0,
                    double eta, double c, double *z) {
  double q = z0;
  for (size_t t = 0; t < n; t++) {
    z[t] = q;
    if (eta > 0)
      q = ivtrack_step(q, evalstat_interval_miss(ret[t], mu[t], var[t], q), eta, c);
  }
}
