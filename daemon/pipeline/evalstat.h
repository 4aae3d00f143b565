/* evalstat.h: the statistics that judge a forecast against the baselines a risk desk uses: normal,
 * chi-square(1), Student-t and binomial tails; the Newey-West long-run variance; the
 * Diebold-Mariano test; a block-bootstrap interval on skill; directional accuracy with its base
 * rate. Pure math on arrays of doubles (libm only): no files, no command line, no model. */
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

/* Long-run variance and Diebold-Mariano. */

/* The default Newey-West truncation lag for n observations: floor(4 (n / 100)^(2/9)), the rule
 * of thumb of Newey and West (1994) (n = 100 -> 4, 1000 -> 6, 1e5 -> 18, 1e6 -> 30). One-step
 * forecasts would allow lag 0 (the h - 1 rule) only if the loss differential were serially
 * uncorrelated, which squared errors of returns with volatility clustering are not; hence a
 * positive default. 0 for n < 2. */
int evalstat_nw_lag(size_t n);

/* The Newey-West (1987) long-run variance of the series d_t = x_t - y_t (y NULL: d_t = x_t),
 * t = 0..n-1, with the Bartlett kernel:
 *   S = g_0 + 2 sum_{j=1..L} (1 - j / (L + 1)) g_j,  g_j = (1/n) sum_{t=j..n-1} (d_t - m)(d_{t-j} -
 * m) with m the mean of d. S / n estimates the variance of m; S >= 0 always (the Bartlett weights
 * make the estimate positive semi-definite). lag < 0 takes evalstat_nw_lag(n); a lag >= n is cut
 * to n - 1. With lag 0, S is the sample variance with divisor n. x, y (n). n = 0 -> NaN;
 * n = 1 -> 0. */
double evalstat_nw_lrv(const double *x, const double *y, size_t n, int lag);

/* The Diebold-Mariano (1995) test of equal expected loss. */
typedef struct evalstat_dm {
  uint64_t n;      /* observations */
  int lag;         /* Newey-West lag used */
  double mean;     /* mean of d = loss1 - loss2; < 0: the first forecast has the lower loss */
  double se;       /* standard error of the mean: sqrt(S / n), S = evalstat_nw_lrv(d) */
  double stat;     /* mean / se, asymptotically N(0, 1) under equal expected loss */
  double p;        /* two-sided p-value of stat against N(0, 1) */
  double stat_hln; /* stat sqrt((n + 1 - 2h + h (h - 1) / n) / n) with h = 1, i.e. sqrt((n-1)/n) */
  double p_hln;    /* two-sided p-value of stat_hln against Student t with n - 1 df */
} evalstat_dm;

/* The Diebold-Mariano statistic for loss series l1 and l2 (n each; l2 NULL: l1 is already the
 * difference d), Newey-West standard error with the given lag (< 0: evalstat_nw_lag(n)), and its
 * Harvey-Leybourne-Newbold (1997) small-sample version compared with Student t (n - 1 df). The
 * HLN p-value is the one to report: it is never smaller than the normal one and converges to it
 * (at n = 1000 it is 1 % larger at stat 2, 3 % at stat 3). When the standard error is 0 (d
 * constant): mean 0 gives stat 0 and p 1; a non-zero mean gives stat +-inf and p 0. Returns 0, or
 * TC_EINVAL for n < 2 or a non-finite loss (out is then zeroed with p = p_hln = NaN). */
int evalstat_dm_test(const double *l1, const double *l2, size_t n, int lag, evalstat_dm *out);

/* Skill and its bootstrap interval. */

/* skill = 1 - sum(se_model) / sum(se_rw) over n, where se_rw are the squared errors of the random
 * walk (a zero return prediction, so se_rw_t = r_t^2). > 0: the model beats the random walk.
 * se_model, se_rw (n). NaN when sum(se_rw) = 0 or n = 0. */
double evalstat_skill(const double *se_model, const double *se_rw, size_t n);

#define EVALSTAT_BOOT_REPS 2000 /* default bootstrap replicates */

typedef struct evalstat_boot {
  double skill;  /* full-sample skill (evalstat_skill) */
  double lo, hi; /* percentile interval at the requested level */
  double se;     /* standard deviation of the replicates */
  size_t block;  /* block length used */
  int reps;      /* replicates drawn */
  int dropped;   /* replicates with sum(se_rw*) = 0, left out of lo, hi and se */
} evalstat_boot;

/* A circular block bootstrap (Politis and Romano 1992: blocks of fixed length that wrap around
 * the end, so every observation is equally likely to be drawn) interval for skill. A replicate
 * draws ceil(n / block) block starts uniformly in [0, n), takes the pairs (se_model_t, se_rw_t)
 * of each block (the last cut so that n pairs are used) and computes 1 - sum / sum. Pairs stay
 * together, so the correlation between the two losses is kept; blocks keep serial dependence up
 * to about the block length. block 0 takes ceil(n^(1/3)) (the order that minimizes the error of
 * block-bootstrap variance estimates, Hall, Horowitz and Jing 1995); reps <= 0 takes
 * EVALSTAT_BOOT_REPS. The interval is the percentile interval: the (1 - level) / 2 and
 * (1 + level) / 2 quantiles of the replicates (linear interpolation between order statistics,
 * R's type 7). Randomness is xoshiro256** seeded with seed, so equal inputs and seeds give the
 * same interval bit for bit. Cost O(reps n / block) after O(n) prefix sums. se_model, se_rw (n).
 * Returns 0; TC_EINVAL for n < 2, level outside (0, 1), a negative or non-finite loss, or
 * sum(se_rw) = 0; TC_ENOMEM. */
int evalstat_skill_boot(const double *se_model, const double *se_rw, size_t n, double level,
                        int reps, size_t block, uint64_t seed, evalstat_boot *out);

/* Direction. */

typedef struct evalstat_dir {
  uint64_t n;       /* called pairs: realized return != 0 and prediction != 0 */
  uint64_t nocall;  /* realized return != 0 but prediction = 0 (no direction called) */
  uint64_t hits;    /* called pairs with the sign of the prediction = the sign of the return */
  uint64_t up;      /* called pairs with a positive realized return */
  uint64_t pred_up; /* called pairs with a positive prediction */
  double acc;       /* hits / n (NaN when n = 0) */
  double base;      /* max(up, n - up) / n: what always calling the majority sign scores */
  double p_base;    /* P(X >= hits), X ~ Binomial(n, base): one-sided, accuracy > base rate */
  double pt_stat;   /* Pesaran-Timmermann (1992) statistic, N(0, 1) under independence */
  double pt_p;      /* its one-sided p-value, 1 - Phi(pt_stat) */
} evalstat_dir;

/* Directional accuracy of pred against real (n each) on the pairs where both are non-zero (a
 * zero return has no direction; a zero prediction calls none: the zero model has n = 0). The
 * base rate is computed on the same pairs. p_base treats the base rate as known, which it is
 * not (it is estimated from the same returns), so it is a yardstick, not a test of skill; the
 * Pesaran-Timmermann test is the test: it compares acc with the accuracy expected if predicted
 * and realized signs were independent with their observed frequencies,
 *   P* = Py Px + (1 - Py)(1 - Px),  Py = up / n, Px = pred_up / n,
 *   PT = (acc - P*) / sqrt(V(acc) - V(P*)),  V(acc) = P*(1 - P*) / n,
 *   V(P*) = (2Py - 1)^2 Px(1 - Px) / n + (2Px - 1)^2 Py(1 - Py) / n + 4 Py Px (1-Py)(1-Px) / n^2.
 * A predictor of constant sign (Px = 0 or 1) or a constant realized sign makes the variance 0:
 * then pt_stat = 0 and pt_p = 1 (no evidence of directional skill). n = 0 gives acc, base,
 * p_base, pt_stat NaN and pt_p 1. */
void evalstat_direction(const double *pred, const double *real, size_t n, evalstat_dir *out);

#endif
