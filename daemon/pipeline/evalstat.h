/* evalstat.h: the statistics that judge a forecast against the baselines a risk desk uses: normal,
 * chi-square(1), Student-t and binomial tails; the Newey-West long-run variance; the
 * Diebold-Mariano test; a block-bootstrap interval on skill; directional accuracy with its base
 * rate; EWMA (RiskMetrics) and GARCH(1,1) variance forecasts; QLIKE; central prediction intervals
 * with Kupiec's coverage test; and the Sidak correction for the trials of a search. Pure math on
 * arrays of doubles (libm only): no files, no command line, no model. */
#ifndef DAEMON_EVALSTAT_H
#define DAEMON_EVALSTAT_H

#include <math.h>
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

/* Variance forecasts.
 * The variance models forecast the variance of an innovation e_t: the return minus the mean
 * forecast, or the return itself under the zero-mean convention of RiskMetrics (which is what a
 * random-walk baseline implies). h_t is always the forecast of e_t^2 made from e_0..e_{t-1}; a
 * model's Gaussian scale head gives h_t = exp(its log-variance output). */

#define EVALSTAT_EWMA_LAMBDA 0.94 /* RiskMetrics (1996) decay for daily data */

/* The EWMA (RiskMetrics) filter: h_0 = h0, h_t = lambda h_{t-1} + (1 - lambda) e_{t-1}^2, i.e.
 * h_t = lambda^t h0 + (1 - lambda) sum_{j<t} lambda^(t-1-j) e_j^2. Initialization: the caller
 * passes h0; the documented choice is the mean square of the training part (evalstat_mean_sq),
 * and filtering over training then test data lets the start-up wash out before the test part.
 * e (n), h (n, may be NULL). Returns h_n, the forecast after the last innovation (h0 for n = 0). */
double evalstat_ewma_filter(const double *e, size_t n, double lambda, double h0, double *h);

/* The mean of e_t^2 over n (NaN for n = 0): the zero-mean sample variance that starts both
 * variance filters. */
double evalstat_mean_sq(const double *e, size_t n);

typedef struct evalstat_garch {
  double omega;  /* > 0 */
  double alpha;  /* >= 0, weight of the last squared innovation */
  double beta;   /* >= 0, weight of the last variance; alpha + beta < 1 */
  double h0;     /* variance the fit started from: evalstat_mean_sq of the fit sample */
  double loglik; /* Gaussian log-likelihood at the fit (evalstat_garch_loglik) */
  int evals;     /* likelihood evaluations the fit took (on the screening part or on all) */
} evalstat_garch;

/* The GARCH(1,1) filter (Bollerslev 1986) with g's omega, alpha, beta:
 * h_0 = h0, h_t = omega + alpha e_{t-1}^2 + beta h_{t-1}. Run it over the test data with the
 * parameters fitted on the training data (h0: the last training forecast, or the training mean
 * square). e (n), h (n, may be NULL). Returns h_n, the forecast after the last innovation. */
double evalstat_garch_filter(const evalstat_garch *g, const double *e, size_t n, double h0,
                             double *h);

/* The Gaussian log-likelihood of e (n) under the GARCH(1,1) filter from h0:
 * sum_t -(ln(2 pi) + ln h_t + e_t^2 / h_t) / 2. -inf if some h_t <= 0. */
double evalstat_garch_loglik(const evalstat_garch *g, const double *e, size_t n, double h0);

/* Fits GARCH(1,1) to e (n) by Gaussian maximum likelihood, the filter started at h0 = the mean
 * square of e. The optimizer is Nelder-Mead on an unconstrained reparametrization that keeps
 * every candidate admissible: persistence alpha + beta = logistic(u1), the share of alpha in it
 * = logistic(u2), omega = h0 (1 - alpha - beta) exp(u0) (so u0 = 0 is variance targeting and the
 * scale of omega is normalized). It runs Nelder-Mead from four points of typical persistence
 * (0.5 to 0.99) on the last 50,000 innovations (all of them when fewer), keeps the best, and
 * restarts from it on all n with a fresh simplex until the log-likelihood improves by less than
 * 1e-9 per observation. That takes about 1000 evaluations of O(min(n, 50,000)) and a few hundred
 * of O(n): 0.1 s for n = 20,000, a few seconds for n = 1e6 (one core). Without volatility
 * clustering the maximum lies on the boundary (alpha about 0, and beta about 0 or near 1 - alpha):
 * the parameters are then poorly identified but the forecasts nearly constant, as they should be.
 * Writes omega, alpha, beta, h0, loglik and evals to g. Returns 0; TC_EINVAL for n < 3, a
 * non-finite e_t or e all zero. */
int evalstat_garch_fit(const double *e, size_t n, evalstat_garch *g);

/* The QLIKE loss of a variance forecast h for the proxy e2 = e^2: ln h + e2 / h, the Gaussian
 * negative log-likelihood up to constants. Patton (2011) shows it ranks variance forecasts
 * consistently with an unbiased but noisy proxy such as a squared return, like the MSE below and
 * unlike most other losses; it penalizes under-prediction more than over-prediction. This form
 * (rather than e2/h - ln(e2/h) - 1) stays finite at e2 = 0, common for ticks; the two differ by a
 * term of e2 alone, so differences between forecasts, and DM tests on them, are the same.
 * h <= 0 or NaN -> +inf (a non-positive variance forecast is infinitely wrong). */
double evalstat_qlike(double e2, double h);

/* The loss series of variance forecasts h (n) against innovations e (n): qlike_t =
 * evalstat_qlike(e_t^2, h_t) and mse_t = (e_t^2 - h_t)^2 (the MSE of squared returns); either
 * output (n) may be NULL. Feed two forecasts' series to evalstat_dm_test to compare them. */
void evalstat_var_losses(const double *e, const double *h, size_t n, double *qlike, double *mse);

/* Prediction intervals. */

/* Kupiec's (1995) proportion-of-failures test: x failures in n trials against a failure rate p,
 *   LR = -2 [(n - x) ln(1 - p) + x ln p] + 2 [(n - x) ln(1 - x/n) + x ln(x/n)],
 * with 0 ln 0 = 0 (so x = 0 gives -2 n ln(1 - p) and x = n gives -2 n ln p), chi-square(1) under
 * the null. Writes LR to *lr and its p-value to *pval. Returns 0, or TC_EINVAL for n = 0, x > n or
 * p outside (0, 1). */
int evalstat_kupiec(uint64_t n, uint64_t x, double p, double *lr, double *pval);

typedef struct evalstat_interval {
  uint64_t n;      /* scored observations */
  uint64_t misses; /* realized outside [mu - z sd, mu + z sd] */
  double nominal;  /* requested coverage */
  double z;        /* the half-width in sd: Phi^-1((1 + nominal) / 2), or a calibrated one */
  double coverage; /* 1 - misses / n */
  double width;    /* mean of 2 z sd_t */
  double lr, p;    /* Kupiec's test of misses against 1 - nominal */
} evalstat_interval;

/* Whether the realized return r falls outside the central interval m +- z sqrt(h) (inclusive
 * bounds; h <= 0 gives a zero-width interval): the miss every interval score counts. */
static inline int evalstat_interval_miss(double r, double m, double h, double z) {
  double half = h > 0 ? z * sqrt(h) : 0;
  return r < m - half || r > m + half;
}

/* Scores the central prediction intervals mu_t +- z sqrt(h_t) of coverage nominal on the realized
 * returns r (n): coverage, mean width and Kupiec's test. z is the interval's half-width in
 * standard deviations: Phi^-1((1 + nominal) / 2) for a Gaussian interval, or a calibrated
 * quantile (ivcal_z). mu (n) may be NULL (a zero mean forecast); h (n) is the variance forecast;
 * h_t <= 0 gives a zero-width interval. The bounds are inclusive. Returns 0, or TC_EINVAL for
 * n = 0, nominal outside (0, 1), z not finite or < 0, or a non-finite input. */
int evalstat_interval_score(const double *r, const double *mu, const double *h, size_t n,
                            double nominal, double z, evalstat_interval *out);

/* The same with a z per interval, zt (n) (an online interval, daemon/pipeline/ivtrack.h); out->z
 * is their mean. TC_EINVAL also for a zt not finite or < 0. */
int evalstat_interval_score_zt(const double *r, const double *mu, const double *h, const double *zt,
                               size_t n, double nominal, evalstat_interval *out);

/* Multiple trials. */

/* The Sidak per-trial level for a family-wise level alpha over K trials: 1 - (1 - alpha)^(1/K)
 * (computed with log1p/expm1). Chosen over Bonferroni (alpha / K), which it slightly relaxes,
 * because Sidak's inequality (1967) makes it exact for independent trials and still valid for
 * two-sided tests on jointly normal statistics with any correlation, which is what trials scored
 * on one validation set are (being positively correlated, they make it conservative: the real
 * family-wise level is then below alpha). K < 1 or alpha outside (0, 1) -> NaN. */
double evalstat_sidak_alpha(double alpha, int K);

/* The two-sided normal threshold a trial's t-statistic must pass so that the best of K trials is
 * significant at family-wise level alpha: Phi^-1(1 - a / 2), a = evalstat_sidak_alpha(alpha, K).
 * At alpha 0.05: 1.95996 for K = 1, 2.23648 for K = 2, 2.79963 for K = 10, 3.47398 for K = 100
 * (Bonferroni: 2.24140, 2.80703, 3.48076); it grows like sqrt(2 ln K). NaN as
 * evalstat_sidak_alpha. */
double evalstat_sidak_threshold(double alpha, int K);

/* The Sidak-adjusted p-value of the best of K trials with raw p-value p: 1 - (1 - p)^K, in [0, 1].
 * NaN for K < 1 or p outside [0, 1]. */
double evalstat_sidak_p(double p, int K);

#endif
