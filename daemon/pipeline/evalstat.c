/* evalstat.c: forecast-evaluation statistics (see evalstat.h for every contract and reference).
 * Plain loops over arrays of doubles; the only allocation is the bootstrap's scratch. Not for
 * reading data or printing reports. */
#include "daemon/pipeline/evalstat.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/base/tc_err.h"
#include "nn/train.h" /* nn_rng: the project's one seedable generator */

#define SQRT_2PI 2.50662827463100050242 /* sqrt(2 pi) */
#define LN_2PI 1.83787706640934548356   /* ln(2 pi) */

/* Distributions. */

double evalstat_norm_cdf(double x) {
  return 0.5 * erfc(-x / M_SQRT2);
}

double evalstat_norm_sf(double x) {
  return 0.5 * erfc(x / M_SQRT2);
}

/* Acklam's coefficients: central region |p - 0.5| <= 0.5 - ACKLAM_PLOW, tails below. */
#define ACKLAM_PLOW 0.02425
static const double acklam_a[6] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                   -2.759285104469687e+02, 1.383577518672690e+02,
                                   -3.066479806614716e+01, 2.506628277459239e+00};
static const double acklam_b[5] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                   -1.556989798598866e+02, 6.680131188771972e+01,
                                   -1.328068155288572e+01};
static const double acklam_c[6] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                   -2.400758277161838e+00, -2.549732539343734e+00,
                                   4.374664141464968e+00,  2.938163982698783e+00};
static const double acklam_d[4] = {7.784695709041462e-03, 3.224671290700398e-01,
                                   2.445134137142996e+00, 3.754408661907416e+00};

/* One Halley step for Phi(x) = target, given the residual e = Phi(x) - target computed without
 * cancellation by the caller. */
static double halley(double x, double e) {
  double u = e * SQRT_2PI * exp(0.5 * x * x);
  return x - u / (1 + 0.5 * x * u);
}

double evalstat_norm_quantile(double p) {
  if (isnan(p))
    return NAN;
  if (p <= 0)
    return -INFINITY;
  if (p >= 1)
    return INFINITY;
  const double *a = acklam_a, *b = acklam_b, *c = acklam_c, *d = acklam_d;
  double q = p - 0.5; /* exact (Sterbenz) for p >= 0.25 */
  if (fabs(q) <= 0.5 - ACKLAM_PLOW) {
    double r = q * q;
    double x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
               (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    /* The residual Phi(x) - p without cancellation: near p = 1/2 (x near 0) as
     * erf(x / sqrt 2) / 2 - (p - 1/2); below 1/4, where p - 1/2 is rounded, from erfc. */
    return halley(x, p < 0.25 ? evalstat_norm_cdf(x) - p : 0.5 * erf(x / M_SQRT2) - q);
  }
  double pt = p < 0.5 ? p : 1 - p; /* the lower-tail probability; 1 - p is exact for p > 0.5 */
  double s = sqrt(-2 * log(pt));
  double x = (((((c[0] * s + c[1]) * s + c[2]) * s + c[3]) * s + c[4]) * s + c[5]) /
             ((((d[0] * s + d[1]) * s + d[2]) * s + d[3]) * s + 1);
  if (pt >= 1e-300) /* below, exp(x^2/2) overflows */
    x = halley(x, evalstat_norm_cdf(x) - pt);
  return p < 0.5 ? x : -x;
}

double evalstat_chi2_1_sf(double x) {
  if (isnan(x))
    return NAN;
  if (x <= 0)
    return 1;
  return erfc(sqrt(0.5 * x));
}

/* The continued fraction of I_x(a, b) (Numerical Recipes 6.4), evaluated by the modified Lentz
 * method; it converges fast for x < (a + 1) / (a + b + 2), in O(sqrt(max(a, b))) terms. */
static double beta_cf(double a, double b, double x) {
  const double tiny = 1e-300, eps = 1e-16;
  double qab = a + b, qap = a + 1, qam = a - 1;
  double c = 1, d = 1 - qab * x / qap;
  if (fabs(d) < tiny)
    d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 1000000; m++) {
    double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (fabs(d) < tiny)
      d = tiny;
    c = 1 + aa / c;
    if (fabs(c) < tiny)
      c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (fabs(d) < tiny)
      d = tiny;
    c = 1 + aa / c;
    if (fabs(c) < tiny)
      c = tiny;
    d = 1 / d;
    double del = d * c;
    h *= del;
    if (fabs(del - 1) < eps)
      break;
  }
  return h;
}

/* The regularized incomplete beta I_x(a, b), a, b > 0, with y = 1 - x passed separately so that
 * callers who know it exactly (t^2 / (df + t^2)) lose nothing to rounding. */
static double beta_inc(double a, double b, double x, double y) {
  if (x <= 0)
    return 0;
  if (y <= 0)
    return 1;
  int sg; /* lgamma_r: lgamma writes the global signgam */
  double lbt = lgamma_r(a + b, &sg) - lgamma_r(a, &sg) - lgamma_r(b, &sg) + a * log(x) + b * log(y);
  double bt = exp(lbt);
  if (x < (a + 1) / (a + b + 2))
    return bt * beta_cf(a, b, x) / a;
  return 1 - bt * beta_cf(b, a, y) / b;
}

double evalstat_t_p2(double t, double df) {
  if (isnan(t) || isnan(df) || df <= 0)
    return NAN;
  if (isinf(df))
    return 2 * evalstat_norm_sf(fabs(t));
  if (isinf(t))
    return 0;
  double t2 = t * t;
  return beta_inc(0.5 * df, 0.5, df / (df + t2), t2 / (df + t2));
}

double evalstat_t_cdf(double t, double df) {
  double tail = 0.5 * evalstat_t_p2(t, df); /* P(T <= -|t|) */
  return t < 0 ? tail : 1 - tail;
}

double evalstat_binom_sf(uint64_t k, uint64_t n, double p) {
  if (isnan(p) || p < 0 || p > 1)
    return NAN;
  if (k == 0)
    return 1;
  if (k > n)
    return 0;
  return beta_inc((double)k, (double)(n - k + 1), p, 1 - p);
}
