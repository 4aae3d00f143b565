/* test_evalstat.c: daemon/pipeline/evalstat against closed forms, hand computations, an
 * independent implementation (CPython's statistics.NormalDist, Wichura's AS241) and Monte Carlo
 * properties under fixed seeds (so every simulated rate is a fixed number, and each tolerance
 * below is several binomial standard deviations wide). */
#include "daemon/pipeline/evalstat.h"

#include <stdlib.h>

#include "nn/base/tc_err.h"
#include "nn/train.h"
#include "tests/boot_ref.h"
#include "tests/check.h"

/* |a - b| <= rel |b| */
#define CHECK_REL(a, b, rel) CHECK_NEAR(a, b, (rel)*fabs((double)(b)))

/* Simulation helpers: Box-Muller normals from the project's generator (deliberately not via
 * evalstat_norm_quantile, which is under test). */
static double gauss(nn_rng *r) {
  double u1 = 1 - nn_rng_uniform(r), u2 = nn_rng_uniform(r);
  return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

/* x (n) i.i.d. N(0, sd^2) from seed. */
static void gauss_fill(double *x, size_t n, double sd, uint64_t seed) {
  nn_rng r;
  nn_rng_seed(&r, seed);
  for (size_t t = 0; t < n; t++)
    x[t] = sd * gauss(&r);
}

/* n GARCH(1,1) innovations after 1000 burn-in steps from the unconditional variance. */
static void garch_sim(double omega, double alpha, double beta, size_t n, uint64_t seed, double *e) {
  nn_rng r;
  nn_rng_seed(&r, seed);
  double h = omega / (1 - alpha - beta);
  for (size_t t = 0; t < n + 1000; t++) {
    double x = sqrt(h) * gauss(&r);
    if (t >= 1000)
      e[t - 1000] = x;
    h = omega + alpha * x * x + beta * h;
  }
}

static double *dalloc(size_t n) {
  double *p = calloc(n, sizeof *p);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

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

/* Newey-West and Diebold-Mariano. */

static void test_nw(void) {
  CHECK_INT(evalstat_nw_lag(0), 0);
  CHECK_INT(evalstat_nw_lag(1), 0);
  CHECK_INT(evalstat_nw_lag(100), 4);
  CHECK_INT(evalstat_nw_lag(1000), 6);
  CHECK_INT(evalstat_nw_lag(100000), 18);
  CHECK_INT(evalstat_nw_lag(1000000), 30);
  /* By hand for x = 1, 2, 3, 4 (mean 5/2, deviations -3/2, -1/2, 1/2, 3/2):
   * g0 = 5/4, g1 = (3/4 - 1/4 + 3/4) / 4 = 5/16, g2 = (-3/4 - 3/4) / 4 = -3/8, g3 = -9/16.
   * lag 1: 5/4 + 2 (1/2) (5/16) = 25/16
   * lag 2: 5/4 + 2 (2/3) (5/16) + 2 (1/3) (-3/8) = 17/12
   * lag 3: 5/4 + 2 (3/4) (5/16) + 2 (1/2) (-3/8) + 2 (1/4) (-9/16) = 17/16 (also for any lag >= 3,
   * which is cut to n - 1). */
  const double x[4] = {1, 2, 3, 4}, y[4] = {0.5, -1, 2, 7}, xy[4] = {1.5, 1, 5, 11};
  CHECK_NEAR(evalstat_nw_lrv(x, NULL, 4, 0), 5.0 / 4, 1e-15);
  CHECK_NEAR(evalstat_nw_lrv(x, NULL, 4, 1), 25.0 / 16, 1e-15);
  CHECK_NEAR(evalstat_nw_lrv(x, NULL, 4, 2), 17.0 / 12, 1e-15);
  CHECK_NEAR(evalstat_nw_lrv(x, NULL, 4, 3), 17.0 / 16, 1e-15);
  CHECK_NEAR(evalstat_nw_lrv(x, NULL, 4, 99), 17.0 / 16, 1e-15);
  /* The difference of two series is the series of differences. */
  CHECK_NEAR(evalstat_nw_lrv(xy, y, 4, 2), evalstat_nw_lrv(x, NULL, 4, 2), 1e-14);
  CHECK(isnan(evalstat_nw_lrv(x, NULL, 0, 1)) && evalstat_nw_lrv(x, NULL, 1, 1) == 0);

  /* Lag 0 is the sample variance (divisor n); the default lag is the documented rule. */
  size_t n = 200000;
  double *d = dalloc(n);
  nn_rng r;
  nn_rng_seed(&r, 7);
  double m = 0, v = 0, prev = 0;
  for (size_t t = 0; t < n; t++) { /* AR(1), phi = 0.5, unit innovations */
    d[t] = 0.5 * prev + gauss(&r);
    prev = d[t];
    m += d[t];
  }
  m /= n;
  for (size_t t = 0; t < n; t++)
    v += (d[t] - m) * (d[t] - m);
  CHECK_REL(evalstat_nw_lrv(d, NULL, n, 0), v / n, 1e-12);
  CHECK(evalstat_nw_lrv(d, NULL, n, -1) == evalstat_nw_lrv(d, NULL, n, evalstat_nw_lag(n)));
  /* Consistency: the long-run variance of an AR(1) is s^2 / (1 - phi)^2 = 4 (its autocovariances
   * are g_j = (4/3) phi^j). The Bartlett estimate with lag L = 21 has the expectation
   * g_0 + 2 sum_{j<=L} (1 - j/(L+1)) g_j = 3.76 (its kernel bias, -6 %), and a standard deviation
   * of about sqrt(4 L / (3 n)) 4 = 0.047. */
  int L = evalstat_nw_lag(n);
  double expect = 4.0 / 3;
  for (int j = 1; j <= L; j++)
    expect += 2 * (1 - j / (L + 1.0)) * (4.0 / 3) * pow(0.5, j);
  double lrv = evalstat_nw_lrv(d, NULL, n, -1);
  printf("nw: AR(1) phi 0.5, n %zu, lag %d: long-run variance %.4f (expected %.4f, true 4)\n", n, L,
         lrv, expect);
  CHECK_NEAR(expect, 3.76, 0.01);
  CHECK_NEAR(lrv, expect, 0.15);
  free(d);
}

/* The rejection rate at 5 % of the two-sided DM test (normal p, and HLN p if hln) over reps
 * series of n loss differences d_t = u_t + theta u_{t-1} with u i.i.d. N(0,1) - N(0,1)^2 + 1
 * (mean 0, skewed): equal expected loss. */
static double dm_size(int reps, size_t n, double theta, int lag, int hln, uint64_t seed) {
  double *d = dalloc(n);
  nn_rng r;
  nn_rng_seed(&r, seed);
  int rej = 0;
  for (int i = 0; i < reps; i++) {
    double up = 0;
    for (size_t t = 0; t < n; t++) {
      double z = gauss(&r), u = gauss(&r) - z * z + 1;
      d[t] = u + theta * up;
      up = u;
    }
    evalstat_dm dm;
    if (evalstat_dm_test(d, NULL, n, lag, &dm) != 0)
      return NAN;
    rej += (hln ? dm.p_hln : dm.p) < 0.05;
  }
  free(d);
  return (double)rej / reps;
}

static void test_dm(void) {
  double l1[6] = {0.5, 1.25, 0.125, 4, 0.5, 0.25}, l2[6], l0[6] = {0}; /* exact sums */
  memcpy(l2, l1, sizeof l1);
  evalstat_dm dm;
  CHECK_INT(evalstat_dm_test(l1, l2, 6, -1, &dm), 0);
  CHECK(dm.stat == 0 && dm.p == 1 && dm.p_hln == 1 && dm.mean == 0 && dm.se == 0);
  CHECK_INT(dm.n, 6);
  /* Constant non-zero difference: no variance, infinite evidence. */
  for (int i = 0; i < 6; i++)
    l2[i] = l1[i] + 0.25;
  CHECK_INT(evalstat_dm_test(l1, l2, 6, 2, &dm), 0);
  CHECK(dm.mean < 0 && dm.stat == -INFINITY && dm.p == 0 && dm.p_hln == 0);
  CHECK_INT(dm.lag, 2);
  CHECK_INT(evalstat_dm_test(l1, NULL, 1, -1, &dm), TC_EINVAL);
  CHECK(isnan(dm.p));
  l0[3] = NAN;
  CHECK_INT(evalstat_dm_test(l1, l0, 6, -1, &dm), TC_EINVAL);

  /* The statistic is mean / sqrt(S / n) with S = evalstat_nw_lrv of the difference, the HLN
   * version sqrt((n-1)/n) of it against t(n-1); the sign says which is better. */
  size_t n = 2000;
  double *a = dalloc(n), *b = dalloc(n), *dd = dalloc(n);
  nn_rng r;
  nn_rng_seed(&r, 3);
  for (size_t t = 0; t < n; t++) { /* y = 0.3 x + e: the forecast 0.3 x has skill 0.083 */
    double x = gauss(&r), y = 0.3 * x + gauss(&r), f = 0.3 * x;
    a[t] = (y - f) * (y - f); /* the useful forecast */
    b[t] = y * y;             /* the random walk */
    dd[t] = a[t] - b[t];
  }
  evalstat_dm d2;
  CHECK_INT(evalstat_dm_test(a, b, n, -1, &dm), 0);
  CHECK_INT(evalstat_dm_test(dd, NULL, n, -1, &d2), 0);
  CHECK_NEAR(dm.stat, d2.stat, 1e-12 * fabs(d2.stat));
  CHECK_INT(dm.lag, evalstat_nw_lag(n));
  CHECK_REL(dm.se, sqrt(evalstat_nw_lrv(a, b, n, dm.lag) / n), 1e-15);
  CHECK_REL(dm.stat, dm.mean / dm.se, 1e-15);
  CHECK_REL(dm.p, 2 * evalstat_norm_sf(fabs(dm.stat)), 1e-14);
  CHECK_REL(dm.stat_hln, dm.stat * sqrt((n - 1.0) / n), 1e-15);
  CHECK_REL(dm.p_hln, evalstat_t_p2(dm.stat_hln, n - 1.0), 1e-14);
  CHECK(dm.p_hln >= dm.p);
  evalstat_dm rev;
  CHECK_INT(evalstat_dm_test(b, a, n, -1, &rev), 0);
  CHECK(rev.stat == -dm.stat && rev.p == dm.p);
  printf("dm: useful forecast vs random walk, n %zu: mean %.4f se %.4f stat %.2f p %.2g\n", n,
         dm.mean, dm.se, dm.stat, dm.p_hln);
  CHECK(dm.mean < 0 && dm.stat < -3 && dm.p_hln < 0.01);
  free(a);
  free(b);
  free(dd);

  /* Size: about 5 % rejections under the null with i.i.d. differences (2000 series; the binomial
   * standard deviation of the rate is 0.5 %). */
  double s_iid = dm_size(2000, 500, 0, -1, 1, 11);
  /* With MA(1) differences (theta 0.8) the variance of the mean is (1 + theta)^2 / (1 + theta^2)
   * = 1.98 times what lag 0 assumes: lag 0 rejects about 16 %, the default lag (5 at n = 500)
   * stays near 5 %. */
  double s_ma0 = dm_size(2000, 500, 0.8, 0, 0, 12);
  double s_manw = dm_size(2000, 500, 0.8, -1, 1, 12);
  printf("dm size at 5%%: iid %.4f; MA(1) lag 0 %.4f, default lag %.4f\n", s_iid, s_ma0, s_manw);
  CHECK(s_iid >= 0.03 && s_iid <= 0.075);
  CHECK(s_ma0 >= 0.11);
  CHECK(s_manw >= 0.03 && s_manw <= 0.09);
}

/* Skill and the bootstrap. */

/* Squared errors of a forecast 0.3 x of y = 0.3 x + e (x, e i.i.d. N(0,1)) and of the random
 * walk: the population skill is 1 - 1 / 1.09. */
#define BOOT_TRUE_SKILL (1 - 1 / 1.09)
static void boot_data(size_t n, uint64_t seed, double *sm, double *sr) {
  nn_rng r;
  nn_rng_seed(&r, seed);
  for (size_t t = 0; t < n; t++) {
    double x = gauss(&r), e = gauss(&r), y = 0.3 * x + e;
    sm[t] = e * e;
    sr[t] = y * y;
  }
}

static void test_boot_reference(void) {
  const size_t ns[] = {2, 3, 17, 1000, 3906, 100003};
  size_t N = 100003;
  double *sm = dalloc(N), *sr = dalloc(N);
  boot_data(N, 11, sm, sr);
  for (size_t i = 0; i < N; i += 7)
    sr[i] = 0; /* some replicates of the short series have a zero random-walk sum */
  int same = 0, cases = 0;
  for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
    size_t n = ns[a];
    const size_t blocks[] = {0, 1, 5, n};
    for (size_t bi = 0; bi < 4; bi++) {
      evalstat_boot got, want;
      CHECK_INT(evalstat_skill_boot(sm, sr, n, 0.9, 301, blocks[bi], 1000 + a, &got), 0);
      CHECK_INT(boot_ref(sm, sr, n, 0.9, 301, got.block, 1000 + a, &want), 0);
      cases++;
      same += memcmp(&got.lo, &want.lo, sizeof got.lo) == 0 &&
              memcmp(&got.hi, &want.hi, sizeof got.hi) == 0 &&
              memcmp(&got.se, &want.se, sizeof got.se) == 0 && got.dropped == want.dropped;
    }
  }
  CHECK_INT(same, cases);
  free(sm), free(sr);
}

static void test_boot(void) {
  const double sm4[4] = {1, 2, 3, 4}, sr4[4] = {2, 2, 4, 4}, z4[4] = {0};
  CHECK_NEAR(evalstat_skill(sm4, sr4, 4), 1 - 10.0 / 12, 1e-15);
  CHECK(isnan(evalstat_skill(sm4, z4, 4)) && isnan(evalstat_skill(sm4, sr4, 0)));

  size_t n = 16000;
  double *sm = dalloc(n), *sr = dalloc(n);
  boot_data(n, 5, sm, sr);
  evalstat_boot b1, b2, b3, bs;
  CHECK_INT(evalstat_skill_boot(sm, sr, 1000, 0.9, 0, 0, 42, &b1), 0);
  CHECK_INT(evalstat_skill_boot(sm, sr, 1000, 0.9, 0, 0, 42, &b2), 0);
  CHECK_INT(evalstat_skill_boot(sm, sr, 1000, 0.9, 0, 0, 43, &b3), 0);
  CHECK_INT(evalstat_skill_boot(sm, sr, n, 0.9, 0, 0, 42, &bs), 0);
  CHECK(b1.lo == b2.lo && b1.hi == b2.hi && b1.se == b2.se); /* same seed, same interval */
  CHECK(b1.lo != b3.lo || b1.hi != b3.hi);
  CHECK_INT(b1.reps, EVALSTAT_BOOT_REPS);
  CHECK_INT(b1.block, 10); /* ceil(1000^(1/3)) */
  CHECK_INT(bs.block, 26); /* ceil(16000^(1/3)) = ceil(25.2) */
  CHECK_INT(b1.dropped, 0);
  CHECK(b1.skill == evalstat_skill(sm, sr, 1000));
  CHECK(b1.lo < b1.skill && b1.skill < b1.hi);
  CHECK(bs.lo < bs.skill && bs.skill < bs.hi);
  /* 16 times the data: the width shrinks about 4 times. */
  double w1 = b1.hi - b1.lo, ws = bs.hi - bs.lo;
  printf("boot: skill %.4f [%.4f, %.4f] (n 1000), %.4f [%.4f, %.4f] (n %zu), true %.4f\n", b1.skill,
         b1.lo, b1.hi, bs.skill, bs.lo, bs.hi, n, BOOT_TRUE_SKILL);
  CHECK(ws < 0.4 * w1 && ws > 0.15 * w1);
  /* A normal-theory check of the width: 2 z se. */
  CHECK_NEAR(ws, 2 * 1.6448536269514722 * bs.se, 0.1 * ws);
  /* A wider level gives a wider interval from the same replicates. */
  CHECK_INT(evalstat_skill_boot(sm, sr, 1000, 0.99, 0, 0, 42, &b2), 0);
  CHECK(b2.lo < b1.lo && b2.hi > b1.hi);

  /* Coverage: 90 % intervals of 400 samples of n = 500 contain the true skill about 90 % of the
   * time (binomial sd 1.5 %; percentile intervals of a ratio run a little short in small
   * samples). */
  int cover = 0, S = 400;
  for (int s = 0; s < S; s++) {
    boot_data(500, 1000 + s, sm, sr);
    evalstat_boot b;
    if (evalstat_skill_boot(sm, sr, 500, 0.9, 500, 0, s, &b) != 0)
      break;
    cover += b.lo <= BOOT_TRUE_SKILL && BOOT_TRUE_SKILL <= b.hi;
  }
  printf("boot: coverage of 90%% intervals %.3f (%d samples)\n", (double)cover / S, S);
  CHECK(cover >= 0.84 * S && cover <= 0.95 * S);

  /* The resampling scheme, exactly. One block of length n wraps around the end: every replicate
   * is a rotation of the whole sample, so every replicate is the full-sample skill. */
  CHECK_INT(evalstat_skill_boot(sm, sr, 1000, 0.9, 200, 1000, 3, &b2), 0);
  CHECK_NEAR(b2.lo, b2.skill, 1e-12);
  CHECK_NEAR(b2.hi, b2.skill, 1e-12);
  CHECK(b2.se < 1e-12);
  /* Ten unit random-walk losses and one model loss at t = 0: a replicate's skill is 1 - k / 10,
   * k the number of blocks that cover t = 0. Blocks of 4, 4 and 2 (the last cut) starting
   * uniformly on the circle cover it with probabilities 0.4, 0.4 and 0.2 independently, so
   * sd(skill*) = sqrt(0.24 + 0.24 + 0.16) / 10 = 0.08 (a moving block bootstrap, which does not
   * wrap, would give less). 20,000 replicates estimate it to about 1 %. */
  double *s10 = dalloc(10), *u10 = dalloc(10);
  for (int t = 0; t < 10; t++)
    u10[t] = 1;
  s10[0] = 1;
  CHECK_INT(evalstat_skill_boot(s10, u10, 10, 0.9, 20000, 4, 77, &b2), 0);
  CHECK_NEAR(b2.se, 0.08, 0.003);
  CHECK(b2.skill == 0.9 && b2.lo == 0.8 && b2.hi == 1);
  free(s10);
  free(u10);
  /* Two replicates v1 <= v2: the type-7 quantiles are v1 + q (v2 - v1), so at level 0.5
   * hi - lo = (v2 - v1) / 2 = se / sqrt 2. */
  CHECK_INT(evalstat_skill_boot(sm, sr, 1000, 0.5, 2, 0, 5, &b2), 0);
  CHECK(b2.se > 0);
  CHECK_NEAR(b2.hi - b2.lo, b2.se / M_SQRT2, 1e-15);

  /* Degenerate input. */
  CHECK_INT(evalstat_skill_boot(sm4, z4, 4, 0.9, 10, 0, 1, &b1), TC_EINVAL);
  CHECK(isnan(b1.lo) && isnan(b1.skill));
  CHECK_INT(evalstat_skill_boot(sm4, sr4, 1, 0.9, 10, 0, 1, &b1), TC_EINVAL);
  CHECK_INT(evalstat_skill_boot(sm4, sr4, 4, 1.0, 10, 0, 1, &b1), TC_EINVAL);
  const double neg[4] = {1, -2, 3, 4};
  CHECK_INT(evalstat_skill_boot(neg, sr4, 4, 0.9, 10, 0, 1, &b1), TC_EINVAL);
  /* One non-zero random-walk loss in 100: replicates that miss it are dropped and counted. */
  double *one = dalloc(100);
  one[37] = 1;
  CHECK_INT(evalstat_skill_boot(one, one, 100, 0.9, 1000, 1, 9, &b1), 0);
  CHECK(b1.dropped > 250 && b1.dropped < 450); /* (99/100)^100 = 0.366 */
  CHECK(b1.lo == 0 && b1.hi == 0 && b1.skill == 0);
  free(one);
  free(sm);
  free(sr);
}

/* Direction. */

static void test_direction(void) {
  /* By hand: pairs 0..7; pair 2 has a zero return (skipped), pair 5 a zero prediction. */
  const double pred[8] = {0.1, -0.2, 0.3, 0.5, -0.1, 0, 0.2, 0.4};
  const double real[8] = {1, 1, 0, 2, -1, 3, -2, 1};
  evalstat_dir d;
  evalstat_direction(pred, real, 8, &d);
  CHECK_INT(d.n, 6);
  CHECK_INT(d.nocall, 1);
  CHECK_INT(d.hits, 4);    /* pairs 0, 3, 4, 7 */
  CHECK_INT(d.up, 4);      /* 0, 1, 3, 7 */
  CHECK_INT(d.pred_up, 4); /* 0, 3, 6, 7 */
  CHECK_NEAR(d.acc, 4.0 / 6, 1e-15);
  CHECK_NEAR(d.base, 4.0 / 6, 1e-15);
  CHECK_NEAR(d.p_base, binom_sf_direct(4, 6, 4.0 / 6), 1e-13);
  /* PT by hand: Py = Px = 2/3, P* = 5/9, V(P) = (20/81)/6, V(P*) = 2 (1/9)(2/9)/6 + 4 (4/81)/36,
   * PT = (2/3 - 5/9) / sqrt(V(P) - V(P*)). */
  double vp = (20.0 / 81) / 6, vps = 2 * (1.0 / 9) * (2.0 / 9) / 6 + 4 * (4.0 / 81) / 36;
  CHECK_NEAR(d.pt_stat, (2.0 / 3 - 5.0 / 9) / sqrt(vp - vps), 1e-12);
  CHECK_NEAR(d.pt_p, evalstat_norm_sf(d.pt_stat), 1e-15);

  /* The zero model calls nothing. */
  const double zero[8] = {0};
  evalstat_direction(zero, real, 8, &d);
  CHECK(d.n == 0 && d.nocall == 7 && isnan(d.acc) && isnan(d.base) && d.pt_p == 1);

  /* Always calling the majority sign scores the base rate and shows no skill. */
  size_t n = 3000;
  double *p = dalloc(n), *y = dalloc(n);
  nn_rng r;
  nn_rng_seed(&r, 21);
  for (size_t t = 0; t < n; t++) {
    y[t] = gauss(&r) + 0.1; /* 54 % up */
    p[t] = 1;
  }
  evalstat_direction(p, y, n, &d);
  CHECK(d.acc == d.base && d.base > 0.5 && d.pt_stat == 0 && d.pt_p == 1);
  CHECK(d.p_base > 0.4 && d.p_base < 0.6); /* P(X >= mean) of a binomial */

  /* Independent signs: PT rejects about 5 % at 5 % (one-sided; 2000 samples of 300, sd 0.5 %). */
  int rej = 0, reps = 2000;
  for (int i = 0; i < reps; i++) {
    for (size_t t = 0; t < 300; t++) {
      y[t] = gauss(&r) + 0.2; /* 58 % up */
      p[t] = gauss(&r) - 0.5; /* 31 % up */
    }
    evalstat_direction(p, y, 300, &d);
    rej += d.pt_p < 0.05;
  }
  printf("direction: Pesaran-Timmermann size at 5%% %.4f\n", (double)rej / reps);
  CHECK(rej >= 0.03 * reps && rej <= 0.075 * reps);

  /* A forecast correlated with the return: accuracy above chance, PT significant. */
  for (size_t t = 0; t < n; t++) {
    double s = gauss(&r);
    y[t] = s + gauss(&r);
    p[t] = s;
  }
  evalstat_direction(p, y, n, &d);
  printf("direction: informative forecast acc %.3f base %.3f PT %.1f\n", d.acc, d.base, d.pt_stat);
  CHECK(d.acc > 0.7 && d.pt_stat > 10 && d.pt_p < 1e-20 && d.p_base < 1e-20);
  free(p);
  free(y);
}

/* Variance forecasts. */

static void test_ewma(void) {
  size_t n = 300;
  double *e = dalloc(n), *h = dalloc(n);
  gauss_fill(e, n, 0.01, 4);
  double lam = EVALSTAT_EWMA_LAMBDA, h0 = 2e-4;
  double next = evalstat_ewma_filter(e, n, lam, h0, h);
  /* The unrolled definition: h_t = lambda^t h0 + (1 - lambda) sum_{j<t} lambda^(t-1-j) e_j^2. */
  int bad = 0;
  for (size_t t = 0; t <= n; t++) {
    double s = pow(lam, (double)t) * h0;
    for (size_t j = 0; j < t; j++)
      s += (1 - lam) * pow(lam, (double)(t - 1 - j)) * e[j] * e[j];
    bad += !(fabs((t < n ? h[t] : next) - s) <= 1e-13 * s);
  }
  CHECK_INT(bad, 0);
  CHECK(h[0] == h0);
  CHECK(evalstat_ewma_filter(e, n, lam, h0, NULL) == next);
  /* lambda 0: yesterday's square; a constant square at its own level stays there. */
  evalstat_ewma_filter(e, n, 0, h0, h);
  CHECK(h[17] == e[16] * e[16]);
  for (size_t t = 0; t < n; t++)
    e[t] = (t % 2 ? 1 : -1) * 0.02;
  evalstat_ewma_filter(e, n, lam, 4e-4, h);
  CHECK_REL(h[n - 1], 4e-4, 1e-14);
  CHECK(evalstat_ewma_filter(e, 0, lam, 3.0, NULL) == 3.0);
  CHECK_REL(evalstat_mean_sq(e, n), 4e-4, 1e-14);
  CHECK(isnan(evalstat_mean_sq(e, 0)));
  free(e);
  free(h);
}

static void test_garch_filter(void) {
  size_t n = 500;
  double *e = dalloc(n), *h = dalloc(n), ss = 0;
  gauss_fill(e, n, 0.02, 8);
  for (size_t t = 0; t < n; t++)
    ss += e[t] * e[t];
  /* alpha = 0: h_t = omega (1 - beta^t) / (1 - beta) + beta^t h0. */
  evalstat_garch g = {.omega = 1e-5, .alpha = 0, .beta = 0.7};
  double next = evalstat_garch_filter(&g, e, n, 1e-3, h);
  int bad = 0;
  for (size_t t = 0; t < n; t++) {
    double bt = pow(0.7, (double)t), want = 1e-5 * (1 - bt) / 0.3 + bt * 1e-3;
    bad += !(fabs(h[t] - want) <= 1e-14 * want);
  }
  CHECK_INT(bad, 0);
  CHECK_NEAR(next, 1e-5 / 0.3, 1e-18);
  /* With alpha = beta = 0 the variance is omega throughout: the i.i.d. Gaussian likelihood. */
  evalstat_garch c = {.omega = 4e-4, .alpha = 0, .beta = 0};
  double want = -0.5 * n * log(2 * M_PI * 4e-4) - ss / (2 * 4e-4);
  CHECK_REL(evalstat_garch_loglik(&c, e, n, 4e-4), want, 1e-13);
  /* The general recursion, step by step, and the log-likelihood from that filter. */
  evalstat_garch g2 = {.omega = 2e-6, .alpha = 0.1, .beta = 0.85};
  evalstat_garch_filter(&g2, e, n, 5e-4, h);
  double v = 5e-4, ll = 0;
  bad = 0;
  for (size_t t = 0; t < n; t++) {
    bad += h[t] != v;
    ll += -0.5 * (log(2 * M_PI) + log(v) + e[t] * e[t] / v);
    v = 2e-6 + 0.1 * e[t] * e[t] + 0.85 * v;
  }
  CHECK_INT(bad, 0);
  CHECK_REL(evalstat_garch_loglik(&g2, e, n, 5e-4), ll, 1e-13);
  CHECK(evalstat_garch_loglik(&g2, e, n, 0) == -INFINITY);
  free(e);
  free(h);
}

/* Fits GARCH(1,1) to n simulated innovations of (omega, alpha, beta) and checks recovery within
 * the stated tolerances: about 5 standard deviations of each estimate, measured over 40 seeds at
 * n = 20,000 (1e-6, 0.08, 0.90: sd 1.0e-7, 0.0035, 0.0041; 5e-6, 0.15, 0.60: sd 3.7e-7, 0.0072,
 * 0.022) and shrinking as 1 / sqrt(n). The maximized log-likelihood is never below the true
 * parameters' one. */
static void garch_recover(double omega, double alpha, double beta, size_t n, uint64_t seed,
                          double tol_om, double tol_a, double tol_b) {
  double *e = dalloc(n);
  garch_sim(omega, alpha, beta, n, seed, e);
  evalstat_garch g, tru = {.omega = omega, .alpha = alpha, .beta = beta};
  CHECK_INT(evalstat_garch_fit(e, n, &g), 0);
  double ll_true = evalstat_garch_loglik(&tru, e, n, g.h0);
  printf("garch: true (%.3g, %.3f, %.3f) fit (%.4g, %.4f, %.4f), loglik %.3f vs true %.3f, "
         "%d evaluations\n",
         omega, alpha, beta, g.omega, g.alpha, g.beta, g.loglik, ll_true, g.evals);
  CHECK_NEAR(g.omega, omega, tol_om * omega);
  CHECK_NEAR(g.alpha, alpha, tol_a);
  CHECK_NEAR(g.beta, beta, tol_b);
  CHECK(g.loglik >= ll_true);
  CHECK(g.omega > 0 && g.alpha >= 0 && g.beta >= 0 && g.alpha + g.beta < 1);
  CHECK(g.h0 == evalstat_mean_sq(e, n));
  CHECK(g.loglik == evalstat_garch_loglik(&g, e, n, g.h0));
  /* A local maximum: moving alpha or beta by 0.002 or omega by 2 % lowers the likelihood. */
  int bad = 0;
  for (int k = 0; k < 6; k++) {
    evalstat_garch q = g;
    double sg = k % 2 ? -1 : 1;
    if (k / 2 == 0)
      q.omega *= 1 + 0.02 * sg;
    else if (k / 2 == 1)
      q.alpha += 0.002 * sg;
    else
      q.beta += 0.002 * sg;
    bad += q.alpha >= 0 && !(evalstat_garch_loglik(&q, e, n, g.h0) < g.loglik);
  }
  CHECK_INT(bad, 0);

  /* Scale equivariance: 100 e gives the same alpha, beta and 10^4 omega (to the optimizer's
   * tolerance). */
  for (size_t t = 0; t < n; t++)
    e[t] *= 100;
  evalstat_garch g100;
  CHECK_INT(evalstat_garch_fit(e, n, &g100), 0);
  CHECK_NEAR(g100.alpha, g.alpha, 1e-4);
  CHECK_NEAR(g100.beta, g.beta, 1e-4);
  CHECK_REL(g100.omega, 1e4 * g.omega, 1e-3);
  CHECK_NEAR(g100.loglik, g.loglik - n * log(100.0), 1e-6 * fabs(g.loglik));
  free(e);
}

static void test_garch_fit(void) {
  garch_recover(1e-6, 0.08, 0.90, 20000, 1, 0.5, 0.02, 0.025);
  garch_recover(5e-6, 0.15, 0.60, 20000, 2, 0.4, 0.035, 0.1);
  /* Past 50,000 innovations the starts are screened on the last 50,000 and the fit finished on
   * all: 180,000 give sd 0.0012 and 0.0014 for alpha and beta of the first set. */
  garch_recover(1e-6, 0.08, 0.90, 180000, 4, 0.2, 0.007, 0.008);

  /* I.i.d. innovations: no ARCH effect (alpha near 0) and forecasts that stay near the sample
   * variance (beta is not identified there, so it is not checked). */
  size_t n = 20000;
  double *e = dalloc(n);
  gauss_fill(e, n, 0.01, 13);
  evalstat_garch g;
  CHECK_INT(evalstat_garch_fit(e, n, &g), 0);
  printf("garch: i.i.d. data fit (%.4g, %.4f, %.4f)\n", g.omega, g.alpha, g.beta);
  CHECK(g.alpha < 0.01);
  double *h = dalloc(n), dev = 0;
  evalstat_garch_filter(&g, e, n, g.h0, h);
  for (size_t t = 0; t < n; t++)
    dev += fabs(h[t] / g.h0 - 1) / n;
  CHECK(dev < 0.02);
  free(h);
  evalstat_garch flat = {.omega = g.h0};
  CHECK(g.loglik >= evalstat_garch_loglik(&flat, e, n, g.h0));

  /* Bad input. */
  CHECK_INT(evalstat_garch_fit(e, 2, &g), TC_EINVAL);
  memset(e, 0, n * sizeof *e);
  CHECK_INT(evalstat_garch_fit(e, n, &g), TC_EINVAL);
  e[5] = INFINITY;
  CHECK_INT(evalstat_garch_fit(e, n, &g), TC_EINVAL);
  free(e);
}

static void test_qlike(void) {
  /* Minimal at h = e2, where it is ln e2 + 1; an under-prediction by a factor costs more than
   * the same over-prediction. */
  CHECK_NEAR(evalstat_qlike(2, 2), log(2.0) + 1, 1e-15);
  for (double h = 0.5; h < 8; h *= 1.1)
    CHECK(fabs(h - 2) < 1e-9 || evalstat_qlike(2, h) > evalstat_qlike(2, 2));
  CHECK(evalstat_qlike(2, 1) > evalstat_qlike(2, 4));
  CHECK(evalstat_qlike(0, 3) == log(3.0));
  CHECK(evalstat_qlike(1, 0) == INFINITY && evalstat_qlike(1, -1) == INFINITY);
  CHECK(evalstat_qlike(1, NAN) == INFINITY);
  const double e[3] = {0.1, -0.2, 0}, h[3] = {0.01, 0.02, 0.03};
  double q[3], m[3];
  evalstat_var_losses(e, h, 3, q, m);
  for (int t = 0; t < 3; t++) {
    CHECK(q[t] == evalstat_qlike(e[t] * e[t], h[t]));
    CHECK_NEAR(m[t], (e[t] * e[t] - h[t]) * (e[t] * e[t] - h[t]), 1e-18);
  }
  evalstat_var_losses(e, h, 3, NULL, m);

  /* On GARCH data: the true conditional variance beats the constant (training) variance and
   * EWMA under both losses, and DM says so on 20,000 observations. */
  size_t n = 20000;
  double *x = dalloc(n), *ht = dalloc(n), *hc = dalloc(n), *he = dalloc(n);
  double *qt = dalloc(n), *qc = dalloc(n), *qe = dalloc(n), *mt = dalloc(n), *mc = dalloc(n);
  garch_sim(1e-6, 0.08, 0.90, n, 3, x);
  evalstat_garch g = {.omega = 1e-6, .alpha = 0.08, .beta = 0.90};
  evalstat_garch_filter(&g, x, n, 5e-5, ht);
  for (size_t t = 0; t < n; t++)
    hc[t] = 5e-5;
  evalstat_ewma_filter(x, n, EVALSTAT_EWMA_LAMBDA, 5e-5, he);
  evalstat_var_losses(x, ht, n, qt, mt);
  evalstat_var_losses(x, hc, n, qc, mc);
  evalstat_var_losses(x, he, n, qe, NULL);
  evalstat_dm dq, dqe, dm;
  CHECK_INT(evalstat_dm_test(qt, qc, n, -1, &dq), 0);
  CHECK_INT(evalstat_dm_test(qt, qe, n, -1, &dqe), 0);
  CHECK_INT(evalstat_dm_test(mt, mc, n, -1, &dm), 0);
  printf("qlike: true GARCH variance vs constant: DM %.1f (QLIKE), %.1f (MSE); vs EWMA %.1f\n",
         dq.stat, dm.stat, dqe.stat);
  CHECK(dq.stat < -5 && dq.p_hln < 1e-6);
  CHECK(dqe.stat < -2);
  CHECK(dm.stat < 0);
  free(x), free(ht), free(hc), free(he), free(qt), free(qc), free(qe), free(mt), free(mc);
}

/* Prediction intervals. */

static void test_kupiec(void) {
  static const struct {
    uint64_t n, x;
    double p;
  } cases[] = {{250, 5, 0.01}, {1000, 120, 0.1}, {500, 10, 0.05}, {20, 19, 0.5}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    double n = cases[i].n, x = cases[i].x, p = cases[i].p, ph = x / n;
    double want =
        -2 * ((n - x) * log(1 - p) + x * log(p)) + 2 * ((n - x) * log(1 - ph) + x * log(ph));
    double lr, pv;
    CHECK_INT(evalstat_kupiec(cases[i].n, cases[i].x, p, &lr, &pv), 0);
    CHECK_REL(lr, want, 1e-12);
    CHECK(pv == evalstat_chi2_1_sf(lr));
  }
  double lr, pv;
  CHECK_INT(evalstat_kupiec(100, 5, 0.05, &lr, &pv), 0);
  CHECK(lr == 0 && pv == 1);
  CHECK_INT(evalstat_kupiec(1000, 0, 0.01, &lr, &pv), 0); /* no failures at all */
  CHECK_REL(lr, -2 * 1000 * log(0.99), 1e-14);
  CHECK_INT(evalstat_kupiec(10, 10, 0.1, &lr, &pv), 0); /* nothing but failures */
  CHECK_REL(lr, -2 * 10 * log(0.1), 1e-14);
  /* 2.5 % of 1000 at 1 % is far off (LR 15.7); 12 of 1000 is not. */
  CHECK_INT(evalstat_kupiec(1000, 25, 0.01, &lr, &pv), 0);
  CHECK(pv < 1e-3);
  CHECK_INT(evalstat_kupiec(1000, 12, 0.01, &lr, &pv), 0);
  CHECK(pv > 0.5);
  CHECK_INT(evalstat_kupiec(0, 0, 0.1, &lr, &pv), TC_EINVAL);
  CHECK_INT(evalstat_kupiec(10, 11, 0.1, &lr, &pv), TC_EINVAL);
  CHECK_INT(evalstat_kupiec(10, 1, 0, &lr, &pv), TC_EINVAL);
  CHECK_INT(evalstat_kupiec(10, 1, 1, &lr, &pv), TC_EINVAL);
}

static void test_interval(void) {
  size_t n = 20000;
  double *r = dalloc(n), *mu = dalloc(n), *h = dalloc(n), *hs = dalloc(n);
  nn_rng g;
  nn_rng_seed(&g, 17);
  for (size_t t = 0; t < n; t++) {
    mu[t] = 0.001 * gauss(&g);
    h[t] = 1e-4;
    hs[t] = 0.5e-4;
    r[t] = mu[t] + 0.01 * gauss(&g);
  }
  evalstat_interval iv;
  CHECK_INT(evalstat_interval_score(r, mu, h, n, 0.9, 1.6448536269514722, &iv), 0);
  printf("interval: nominal 0.9 coverage %.4f width %.5f Kupiec LR %.2f p %.3f\n", iv.coverage,
         iv.width, iv.lr, iv.p);
  CHECK_NEAR(iv.z, 1.6448536269514722, 1e-15);
  CHECK_REL(iv.width, 2 * 1.6448536269514722 * 0.01, 1e-12);
  CHECK_NEAR(iv.coverage, 0.9, 0.01); /* sd 0.002 */
  CHECK(iv.p > 0.001);
  CHECK_INT(iv.n, n);
  CHECK_NEAR(iv.coverage, 1 - (double)iv.misses / n, 1e-15);
  /* Half the variance: coverage 2 Phi(1.645 / sqrt 2) - 1 = 0.755, rejected. */
  CHECK_INT(evalstat_interval_score(r, mu, hs, n, 0.9, 1.6448536269514722, &iv), 0);
  CHECK_NEAR(iv.coverage, 2 * evalstat_norm_cdf(1.6448536269514722 / M_SQRT2) - 1, 0.015);
  CHECK(iv.p < 1e-10);
  /* NULL mu is a zero mean; bounds are inclusive; h <= 0 is a point interval. */
  const double r3[3] = {1, 0, 0.5}, h3[3] = {1 / (1.6448536269514722 * 1.6448536269514722), 0, -1};
  CHECK_INT(evalstat_interval_score(r3, NULL, h3, 3, 0.9, -evalstat_norm_quantile(0.05), &iv), 0);
  CHECK_INT(iv.misses, 1); /* r = 1 sits on the bound (to rounding, inside); 0.5 misses */
  CHECK_INT(evalstat_interval_score(r3, NULL, h3, 0, 0.9, 1.6448536269514722, &iv), TC_EINVAL);
  CHECK_INT(evalstat_interval_score(r3, NULL, h3, 3, 1, 1.0, &iv), TC_EINVAL);
  CHECK_INT(evalstat_interval_score(r3, NULL, h3, 3, 0.9, -1.0, &iv), TC_EINVAL);
  CHECK_INT(evalstat_interval_score(r3, NULL, h3, 3, 0.9, INFINITY, &iv), TC_EINVAL);
  /* A calibrated z (narrower than the normal one) is used as given: r = 1 is now outside. */
  CHECK_INT(evalstat_interval_score(r3, NULL, h3, 3, 0.9, 1.5, &iv), 0);
  CHECK_NEAR(iv.z, 1.5, 0);
  CHECK_INT(iv.misses, 2);
  hs[4] = NAN;
  CHECK_INT(evalstat_interval_score(r, mu, hs, n, 0.9, 1.6448536269514722, &iv), TC_EINVAL);
  free(r), free(mu), free(h), free(hs);
}

/* Multiple trials. */

static void test_sidak(void) {
  CHECK_NEAR(evalstat_sidak_threshold(0.05, 1), 1.959963984540054, 1e-15);
  CHECK_NEAR(evalstat_sidak_alpha(0.05, 2), 1 - sqrt(0.95), 1e-16);
  CHECK(evalstat_sidak_alpha(0.05, 1) == 0.05);
  /* CPython's NormalDist().inv_cdf(1 - a / 2) with a = 1 - 0.95^(1/K), for K = 2, 10, 100. */
  CHECK_REL(evalstat_sidak_threshold(0.05, 2), 2.236476644557792, 4e-15);
  CHECK_REL(evalstat_sidak_threshold(0.05, 10), 2.799625219301096, 4e-15);
  CHECK_REL(evalstat_sidak_threshold(0.05, 100), 3.4739788691540476, 4e-15);
  double prev = 0;
  for (int K = 1; K <= 1000; K++) {
    double c = evalstat_sidak_threshold(0.05, K);
    double bonf = -evalstat_norm_quantile(0.05 / K / 2);
    /* Definition: the best of K independent two-sided tests passes c with probability alpha. */
    double fw = -expm1(K * log1p(-2 * evalstat_norm_sf(c)));
    if (!(c > prev && c <= bonf && fabs(fw - 0.05) <= 1e-12)) {
      CHECK(0);
      fprintf(stderr, "K %d: threshold %.17g (prev %.17g, Bonferroni %.17g), family %.17g\n", K, c,
              prev, bonf, fw);
      break;
    }
    prev = c;
  }
  /* It grows like sqrt(2 ln K). */
  CHECK(evalstat_sidak_threshold(0.05, 1000000) < sqrt(2 * log(1e6)) + 0.5);
  CHECK_NEAR(evalstat_sidak_p(evalstat_sidak_alpha(0.05, 7), 7), 0.05, 1e-16);
  CHECK(evalstat_sidak_p(0, 5) == 0 && evalstat_sidak_p(1, 5) == 1);
  CHECK_NEAR(evalstat_sidak_p(0.01, 3), 1 - 0.99 * 0.99 * 0.99, 1e-16);
  CHECK(isnan(evalstat_sidak_alpha(0.05, 0)) && isnan(evalstat_sidak_threshold(1.5, 3)));
  CHECK(isnan(evalstat_sidak_p(-0.1, 3)) && isnan(evalstat_sidak_p(0.5, 0)));
}

int main(void) {
  test_norm_cdf();
  test_norm_quantile();
  test_chi2();
  test_t();
  test_binom();
  test_nw();
  test_dm();
  test_boot();
  test_boot_reference();
  test_direction();
  test_ewma();
  test_garch_filter();
  test_garch_fit();
  test_qlike();
  test_kupiec();
  test_interval();
  test_sidak();
  return check_done();
}
