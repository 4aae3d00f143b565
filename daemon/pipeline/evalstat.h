/* evalstat.h: the statistics that judge a forecast against the baselines a risk desk uses; first
 * the distribution tails their tests need: normal, chi-square(1), Student-t and binomial. Pure
 * math on doubles (libm only): no files, no command line, no model. */
#ifndef DAEMON_EVALSTAT_H
#define DAEMON_EVALSTAT_H

#include <stddef.h>
#include <stdint.h>

/* Distributions.
 * All tails are computed directly (never as 1 - cdf), so small p-values keep their relative
 * precision. */

/* Phi(x), the standard normal CDF: erfc(-x / sqrt 2) / 2, accurate to a few ulp (libm's erfc).
 * -inf -> 0, +inf -> 1, NaN -> NaN. */
double evalstat_norm_cdf(double x);

/* 1 - Phi(x) = Phi(-x) = erfc(x / sqrt 2) / 2, with full relative precision in the upper tail. */
double evalstat_norm_sf(double x);

/* Phi^-1(p), the standard normal quantile: Acklam's rational approximation (relative error below
 * 1.15e-9) refined by one Halley step on Phi computed with erf/erfc, which brings it to a few ulp
 * for p >= 1e-300 (below that the refinement would overflow and Acklam's value is returned). The
 * upper half is computed as -Phi^-1(1 - p), and 1 - p is exact there. p <= 0 -> -inf, p >= 1 ->
 * +inf, NaN -> NaN. */
double evalstat_norm_quantile(double p);

/* P(X > x) for X ~ chi-square with 1 degree of freedom: erfc(sqrt(x / 2)), which is
 * 2 (1 - Phi(sqrt x)). x <= 0 -> 1, +inf -> 0, NaN -> NaN. */
double evalstat_chi2_1_sf(double x);

/* The Student-t CDF with df > 0 degrees of freedom (df need not be an integer):
 * for t < 0, I_{df/(df+t^2)}(df/2, 1/2) / 2 with I the regularized incomplete beta function
 * (continued fraction, modified Lentz; Numerical Recipes 6.4), mirrored for t > 0. The relative
 * error of the tail is about 2e-16 lgamma(df / 2) (the lgamma terms cancel): 6e-13 at df = 1e3,
 * 1e-9 at df = 1e6, far below what a p-value needs. df = +inf gives Phi(t). df <= 0 or NaN ->
 * NaN. */
double evalstat_t_cdf(double t, double df);

/* The two-sided Student-t p-value P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2), df as above;
 * df = +inf gives 2 (1 - Phi(|t|)). */
double evalstat_t_p2(double t, double df);

/* P(X >= k) for X ~ Binomial(n, p), 0 <= p <= 1: I_p(k, n - k + 1) (the regularized incomplete
 * beta). k = 0 -> 1, k > n -> 0, p = 0 -> 0 (k >= 1), p = 1 -> 1 (k <= n). p outside [0, 1] or
 * NaN -> NaN. */
double evalstat_binom_sf(uint64_t k, uint64_t n, double p);

#endif
