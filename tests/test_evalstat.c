/* test_evalstat.c: daemon/pipeline/evalstat against closed forms, hand computations, an
 * independent implementation (CPython's statistics.NormalDist, Wichura's AS241) and Monte Carlo
 * properties under fixed seeds (so every simulated rate is a fixed number, and each tolerance
 * below is several binomial standard deviations wide). */
#include "daemon/pipeline/evalstat.h"

#include <float.h>
#include <stdlib.h>

#include "nn/base/tc_err.h"
#include "tests/check.h"

/* |a - b| <= rel |b| */
#define CHECK_REL(a, b, rel) CHECK_NEAR(a, b, (rel)*fabs((double)(b)))

/* Distributions. */

static void test_norm_cdf(void) {
  CHECK(evalstat_norm_cdf(0) == 0.5);
  CHECK_REL(evalstat_norm_cdf(1.959963984540054), 0.975, 1e-15);
  CHECK_REL(evalstat_norm_cdf(-1.6448536269514722), 0.05, 1e-14);
  /* Phi(-x) = 1 - Phi(x), and the upper tail keeps relative precision far out:
   * 1 - Phi(10) = 7.61985302416047e-24 (erfc(10/sqrt 2)/2, A&S table 26.1 gives 7.6199e-24). */
  CHECK_REL(evalstat_norm_sf(10), 7.61985302416047e-24, 1e-12);
  for (double x = -8; x <= 8; x += 0.25)
    CHECK_NEAR(evalstat_norm_cdf(x) + evalstat_norm_cdf(-x), 1, 2e-16);
  CHECK(evalstat_norm_cdf(-INFINITY) == 0 && evalstat_norm_cdf(INFINITY) == 1);
  CHECK(isnan(evalstat_norm_cdf(NAN)));
}

static void test_norm_quantile(void) {
  /* The values the task states (the quantiles of the real numbers 0.95 and 0.975; the doubles
   * nearest them differ by under 1e-15). */
  CHECK_NEAR(evalstat_norm_quantile(0.95), 1.6448536269514722, 1e-15);
  CHECK_NEAR(evalstat_norm_quantile(0.975), 1.959963984540054, 1e-15);
  CHECK_NEAR(evalstat_norm_quantile(0.025), -1.959963984540054, 1e-15);
  /* statistics.NormalDist().inv_cdf(p) of CPython 3 (AS241, an independent algorithm). */
  static const double ref[][2] = {
      {1e-300, -37.0470962993612}, {1e-100, -21.27345356096532}, {1e-20, -9.262340089798405},
      {1e-12, -7.034483825301132}, {1e-08, -5.61200124417479},   {1e-05, -4.2648907939228256},
      {0.001, -3.090232306167813}, {0.01, -2.3263478740408408},  {0.02425, -1.9729610513118845},
      {0.1, -1.2815515655446008},  {0.3, -0.5244005127080407},   {0.4999, -0.0002506628300880075},
      {0.6, 0.2533471031357998},   {0.9, 1.2815515655446008},    {0.99, 2.3263478740408408},
      {0.999, 3.090232306167813},
  };
  for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++)
    CHECK_REL(evalstat_norm_quantile(ref[i][0]), ref[i][1], 4e-15);
  CHECK(evalstat_norm_quantile(0.5) == 0);
  CHECK(evalstat_norm_quantile(0) == -INFINITY && evalstat_norm_quantile(1) == INFINITY);
  CHECK(evalstat_norm_quantile(-1) == -INFINITY && evalstat_norm_quantile(2) == INFINITY);
  CHECK(isnan(evalstat_norm_quantile(NAN)));
  /* Round trips over [1e-12, 1 - 1e-12]: Phi(Phi^-1(p)) = p, to the relative precision that x
   * allows (one ulp of x moves Phi by about x^2 ulp relatively: 6e-15 at p = 1e-12, x = -7); in
   * the upper half the tail 1 - p (exact there) against 1 - Phi. */
  int bad = 0;
  double worst = 0;
  for (double lp = -12; lp <= -0.30103; lp += 0.01) {
    double p = pow(10, lp), x = evalstat_norm_quantile(p);
    double rlo = fabs(evalstat_norm_cdf(x) - p) / p;
    double xu = evalstat_norm_quantile(1 - p), q = 1 - (1 - p); /* the tail 1 - p really has */
    double rhi = fabs(evalstat_norm_sf(xu) - q) / q;
    worst = fmax(worst, fmax(rlo, rhi));
    bad += !(rlo <= 2e-14 && rhi <= 2e-14) || !(x < 0 && xu > 0);
  }
  CHECK_INT(bad, 0);
  printf("norm_quantile round trip: worst relative error %.2g\n", worst);
  /* x -> Phi(x) -> x over the lower half, where Phi(x) loses nothing. */
  bad = 0;
  for (double x = -37; x <= -0.01; x += 0.0137)
    bad += !(fabs(evalstat_norm_quantile(evalstat_norm_cdf(x)) - x) <= 1e-14 * fabs(x));
  CHECK_INT(bad, 0);
  /* Strictly increasing on a fine grid, crossing 0 at 1/2. */
  bad = 0;
  double prev = -INFINITY;
  for (int i = 1; i < 100000; i++) {
    double x = evalstat_norm_quantile(i / 100000.0);
    bad += !(x > prev);
    prev = x;
  }
  CHECK_INT(bad, 0);
}

static void test_chi2(void) {
  for (double x = 0.01; x < 60; x *= 1.3)
    CHECK_REL(evalstat_chi2_1_sf(x), 2 * evalstat_norm_sf(sqrt(x)), 1e-14);
  /* The 5 % critical value of chi-square(1) is 1.959963984540054^2. */
  CHECK_REL(evalstat_chi2_1_sf(1.959963984540054 * 1.959963984540054), 0.05, 1e-14);
  CHECK(evalstat_chi2_1_sf(0) == 1 && evalstat_chi2_1_sf(-3) == 1);
  CHECK(evalstat_chi2_1_sf(INFINITY) == 0 && isnan(evalstat_chi2_1_sf(NAN)));
}

/* P(|T| < t) for Student t with integer nu degrees of freedom by the finite series of
 * Abramowitz and Stegun 26.7.3 (nu even) and 26.7.4 (nu odd), theta = atan(t / sqrt nu). */
static double t_abs_below(double t, int nu) {
  double th = atan(fabs(t) / sqrt(nu)), s = sin(th), c2 = cos(th) * cos(th), term = 1, sum;
  if (nu % 2 == 0) {
    sum = 1;
    for (int k = 2; k <= nu - 2; k += 2)
      sum += term *= c2 * (k - 1) / k;
    return s * sum;
  }
  sum = nu > 1 ? 1 : 0;
  for (int k = 3; k <= nu - 2; k += 2)
    sum += term *= c2 * (k - 1) / k;
  return 2 / M_PI * (th + s * cos(th) * sum);
}

static void test_t(void) {
  int bad = 0;
  for (double t = -30; t <= 30; t += 0.37) {
    /* closed forms: Cauchy (1 df), 2 and 3 df */
    double f1 = 0.5 + atan(t) / M_PI;
    double f2 = 0.5 + t / (2 * sqrt(2 + t * t));
    double f3 = 0.5 + (t / sqrt(3) / (1 + t * t / 3) + atan(t / sqrt(3))) / M_PI;
    bad += !(fabs(evalstat_t_cdf(t, 1) - f1) <= 1e-14);
    bad += !(fabs(evalstat_t_cdf(t, 2) - f2) <= 1e-14);
    bad += !(fabs(evalstat_t_cdf(t, 3) - f3) <= 1e-14);
    bad += !(fabs(evalstat_t_cdf(t, 7.5) + evalstat_t_cdf(-t, 7.5) - 1) <= 1e-15);
    /* the two-sided p-value is both tails */
    double lo = evalstat_t_cdf(-fabs(t), 11);
    bad += !(fabs(evalstat_t_p2(t, 11) - 2 * lo) <= 1e-15 * fmax(1, lo) + 1e-300);
  }
  CHECK_INT(bad, 0);
  /* The finite series for integer df (absolute error: the incomplete beta's relative error is
   * about 2e-16 lgamma(df / 2), 6e-13 at df = 1000). */
  static const int nus[] = {4, 5, 10, 31, 100, 1000};
  bad = 0;
  for (size_t i = 0; i < sizeof nus / sizeof nus[0]; i++)
    for (double t = 0.01; t < 40; t *= 1.05)
      bad += !(fabs(evalstat_t_p2(t, nus[i]) - (1 - t_abs_below(t, nus[i]))) <= 1e-12);
  CHECK_INT(bad, 0);
  /* Table quantiles (0.975): 12.706204736174707 = tan(0.475 pi) for 1 df, 4.302652729749464 =
   * 0.95 / sqrt(2 * 0.975 * 0.025) for 2 df, and the standard values for 5, 10 and 30 df. */
  CHECK_NEAR(evalstat_t_cdf(12.706204736174707, 1), 0.975, 1e-14);
  CHECK_NEAR(evalstat_t_cdf(4.302652729749464, 2), 0.975, 1e-14);
  CHECK_NEAR(evalstat_t_cdf(2.570581835636314, 5), 0.975, 1e-13);
  CHECK_NEAR(evalstat_t_cdf(2.228138851986274, 10), 0.975, 1e-13);
  CHECK_NEAR(evalstat_t_cdf(2.042272456301238, 30), 0.975, 1e-13);
  /* Large df tends to the normal: t(df) - Phi is O(1/df). */
  CHECK_NEAR(evalstat_t_cdf(-1.7, 1e6), evalstat_norm_cdf(-1.7), 1e-6);
  CHECK_NEAR(evalstat_t_p2(2.5, 1e5), 2 * evalstat_norm_sf(2.5), 1e-5);
  CHECK(evalstat_t_cdf(1.3, INFINITY) == evalstat_norm_cdf(1.3));
  CHECK(evalstat_t_cdf(0, 4) == 0.5 && evalstat_t_p2(0, 4) == 1);
  CHECK(evalstat_t_cdf(-INFINITY, 4) == 0 && evalstat_t_cdf(INFINITY, 4) == 1);
  CHECK(isnan(evalstat_t_cdf(1, 0)) && isnan(evalstat_t_cdf(1, -2)) &&
        isnan(evalstat_t_p2(NAN, 3)));
}

/* P(X >= k) for Binomial(n, p) by summing the pmf (via lgamma): a route independent of the
 * incomplete beta. */
static double binom_sf_direct(int k, int n, double p) {
  double s = 0;
  for (int i = k; i <= n; i++)
    s += exp(lgamma(n + 1.0) - lgamma(i + 1.0) - lgamma(n - i + 1.0) + i * log(p) +
             (n - i) * log1p(-p));
  return s;
}

static void test_binom(void) {
  static const int ns[] = {1, 5, 20, 73, 200};
  static const double ps[] = {0.01, 0.3, 0.5, 0.77, 0.999};
  int bad = 0;
  for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
    for (size_t b = 0; b < sizeof ps / sizeof ps[0]; b++)
      for (int k = 1; k <= ns[a]; k++) {
        double want = binom_sf_direct(k, ns[a], ps[b]), got = evalstat_binom_sf(k, ns[a], ps[b]);
        if (!(fabs(got - want) <= 1e-12 * want + 1e-300)) {
          if (bad++ < 5)
            fprintf(stderr, "binom_sf(%d, %d, %g) = %.17g, want %.17g\n", k, ns[a], ps[b], got,
                    want);
        }
        /* P(X >= k; p) + P(X >= n - k + 1; 1 - p) = 1 (X < k iff n - X >= n - k + 1) */
        double sym =
            evalstat_binom_sf(k, ns[a], ps[b]) + evalstat_binom_sf(ns[a] - k + 1, ns[a], 1 - ps[b]);
        bad += !(fabs(sym - 1) <= 1e-13);
      }
  CHECK_INT(bad, 0);
  CHECK(evalstat_binom_sf(0, 10, 0.3) == 1 && evalstat_binom_sf(11, 10, 0.3) == 0);
  CHECK(evalstat_binom_sf(3, 10, 0) == 0 && evalstat_binom_sf(10, 10, 1) == 1);
  CHECK(isnan(evalstat_binom_sf(3, 10, 1.5)) && isnan(evalstat_binom_sf(3, 10, NAN)));
  /* Large n: the normal approximation with continuity correction, off by O(1/sqrt n) skewness
   * terms (here about 1e-4 at most). */
  for (uint64_t k = 4800; k <= 5300; k += 50)
    CHECK_NEAR(evalstat_binom_sf(k, 10000, 0.5),
               evalstat_norm_sf((k - 0.5 - 5000.0) / sqrt(10000 * 0.25)), 2e-4);
  /* A million trials still converges: P(X >= mean) is about 1/2. */
  CHECK_NEAR(evalstat_binom_sf(530000, 1000000, 0.53), 0.5, 1e-3);
}

int main(void) {
  test_norm_cdf();
  test_norm_quantile();
  test_chi2();
  test_t();
  test_binom();
  return check_done();
}
