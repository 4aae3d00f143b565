/* evalstat.c: forecast-evaluation statistics (see evalstat.h for every contract and reference).
 * Plain loops over arrays of doubles; the only allocation is the bootstrap's scratch. Not for
 * reading data or printing reports. */
#include "daemon/pipeline/evalstat.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/base/divu64.h"
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

#define LENTZ_TINY 1e-300 /* stands in for a zero denominator */

/* One term aa of a continued fraction by the modified Lentz method: updates c and d and returns
 * the factor by which the value changes. */
static inline double lentz_step(double aa, double *c, double *d) {
  *d = 1 + aa * *d;
  if (fabs(*d) < LENTZ_TINY)
    *d = LENTZ_TINY;
  *c = 1 + aa / *c;
  if (fabs(*c) < LENTZ_TINY)
    *c = LENTZ_TINY;
  *d = 1 / *d;
  return *d * *c;
}

/* The continued fraction of I_x(a, b) (Numerical Recipes 6.4), evaluated by the modified Lentz
 * method; it converges fast for x < (a + 1) / (a + b + 2), in O(sqrt(max(a, b))) terms. */
static double beta_cf(double a, double b, double x) {
  double qab = a + b, qap = a + 1, qam = a - 1;
  double c = 1, d = 1 - qab * x / qap;
  if (fabs(d) < LENTZ_TINY)
    d = LENTZ_TINY;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 1000000; m++) {
    double m2 = 2.0 * m;
    h *= lentz_step(m * (b - m) * x / ((qam + m2) * (a + m2)), &c, &d);
    double del = lentz_step(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)), &c, &d);
    h *= del;
    if (fabs(del - 1) < 1e-16)
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

/* Long-run variance and Diebold-Mariano. */

int evalstat_nw_lag(size_t n) {
  if (n < 2)
    return 0;
  return (int)floor(4 * pow((double)n / 100, 2.0 / 9));
}

static inline double diff_at(const double *x, const double *y, size_t t) {
  return y ? x[t] - y[t] : x[t];
}

static double diff_mean(const double *x, const double *y, size_t n) {
  double s = 0;
  for (size_t t = 0; t < n; t++)
    s += diff_at(x, y, t);
  return s / (double)n;
}

/* The effective lag: the default for lag < 0, at most n - 1. */
static int nw_lag_for(size_t n, int lag) {
  if (lag < 0)
    lag = evalstat_nw_lag(n);
  if (n > 0 && (size_t)lag >= n)
    lag = (int)(n - 1);
  return lag;
}

double evalstat_nw_lrv(const double *x, const double *y, size_t n, int lag) {
  if (n == 0)
    return NAN;
  int L = nw_lag_for(n, lag);
  double m = diff_mean(x, y, n), S = 0;
  for (size_t t = 0; t < n; t++) {
    double u = diff_at(x, y, t) - m;
    S += u * u;
  }
  for (int j = 1; j <= L; j++) {
    double g = 0;
    for (size_t t = (size_t)j; t < n; t++)
      g += (diff_at(x, y, t) - m) * (diff_at(x, y, t - (size_t)j) - m);
    S += 2 * (1 - (double)j / (L + 1)) * g;
  }
  return S / (double)n;
}

static int all_finite(const double *x, size_t n) {
  for (size_t t = 0; x && t < n; t++)
    if (!isfinite(x[t]))
      return 0;
  return 1;
}

int evalstat_dm_test(const double *l1, const double *l2, size_t n, int lag, evalstat_dm *out) {
  memset(out, 0, sizeof *out);
  out->p = out->p_hln = NAN;
  if (n < 2 || !all_finite(l1, n) || !all_finite(l2, n))
    return TC_EINVAL;
  out->n = n;
  out->lag = nw_lag_for(n, lag);
  out->mean = diff_mean(l1, l2, n);
  out->se = sqrt(evalstat_nw_lrv(l1, l2, n, out->lag) / (double)n);
  if (out->se > 0)
    out->stat = out->mean / out->se;
  else
    out->stat = out->mean == 0 ? 0 : copysign(INFINITY, out->mean);
  out->p = 2 * evalstat_norm_sf(fabs(out->stat));
  out->stat_hln = out->stat * sqrt((double)(n - 1) / (double)n);
  out->p_hln = evalstat_t_p2(out->stat_hln, (double)(n - 1));
  return 0;
}

/* Skill and its bootstrap interval. */

double evalstat_skill(const double *se_model, const double *se_rw, size_t n) {
  double sm = 0, sr = 0;
  for (size_t t = 0; t < n; t++) {
    sm += se_model[t];
    sr += se_rw[t];
  }
  return sr != 0 ? 1 - sm / sr : NAN;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The q-quantile of sorted x (k) by linear interpolation between order statistics (type 7). */
static double quantile_sorted(const double *x, int k, double q) {
  double h = (k - 1) * q;
  int i = (int)floor(h);
  if (i >= k - 1)
    return x[k - 1];
  return x[i] + (h - i) * (x[i + 1] - x[i]);
}

/* The sums of the circular block [s, s + L) of the two series whose prefix sums are interleaved
 * in c (pairs: c[2 t] the model's, c[2 t + 1] the random walk's, t = 0 .. n). */
static inline void block_sums(const double *c, size_t n, size_t s, size_t L, double *sm,
                              double *sr) {
  if (s + L <= n) {
    *sm += c[2 * (s + L)] - c[2 * s];
    *sr += c[2 * (s + L) + 1] - c[2 * s + 1];
  } else {
    *sm += (c[2 * n] - c[2 * s]) + c[2 * (s + L - n)];
    *sr += (c[2 * n + 1] - c[2 * s + 1]) + c[2 * (s + L - n) + 1];
  }
}

/* How far ahead boot_replicate prefetches the prefix sums of a block. Over the 1,000,000 points
 * of a pooled eval they are 16 MB, and each block's two ends were two cache misses in turn; the
 * block starts do not depend on the data, so a replicate draws all of them first. */
#define BOOT_AHEAD 16

/* Draws one replicate's skill; NaN when its random-walk sum is 0. c: the interleaved prefix sums
 * (2 (n + 1)); below: division by n; start: room for the replicate's ceil(n / block) block
 * starts. The sums add the blocks in the order drawn, as one loop of draws and sums did. */
static double boot_replicate(const double *c, size_t n, size_t block, nn_rng *rng,
                             const nn_divu64 *below, size_t *start) {
  size_t D = (n + block - 1) / block;
  for (size_t i = 0; i < D; i++) /* nn_rng_below(rng, n), without a division */
    start[i] = (size_t)nn_divu64_mod(below, nn_rng_next(rng));
  double sm = 0, sr = 0;
  for (size_t i = 0; i < D; i++) {
    if (i + BOOT_AHEAD < D) {
      size_t a = start[i + BOOT_AHEAD], e = a + block;
      __builtin_prefetch(c + 2 * a);
      __builtin_prefetch(c + 2 * (e <= n ? e : e - n));
    }
    size_t L = i + 1 < D ? block : n - (D - 1) * block;
    block_sums(c, n, start[i], L, &sm, &sr);
  }
  return sr > 0 ? 1 - sm / sr : NAN;
}

static int boot_check(const double *se_model, const double *se_rw, size_t n, double level) {
  if (n < 2 || !(level > 0 && level < 1))
    return TC_EINVAL;
  for (size_t t = 0; t < n; t++)
    if (!(se_model[t] >= 0 && se_rw[t] >= 0 && isfinite(se_model[t]) && isfinite(se_rw[t])))
      return TC_EINVAL;
  return 0;
}

/* Fills out's lo, hi and se from the k finite replicates v (sorted here). */
static void boot_summarize(double *v, int k, double level, evalstat_boot *out) {
  if (k == 0) {
    out->lo = out->hi = out->se = NAN;
    return;
  }
  qsort(v, (size_t)k, sizeof *v, cmp_double);
  out->lo = quantile_sorted(v, k, 0.5 * (1 - level));
  out->hi = quantile_sorted(v, k, 0.5 * (1 + level));
  double m = 0, ss = 0;
  for (int i = 0; i < k; i++)
    m += v[i];
  m /= k;
  for (int i = 0; i < k; i++)
    ss += (v[i] - m) * (v[i] - m);
  out->se = k > 1 ? sqrt(ss / (k - 1)) : 0;
}

int evalstat_skill_boot(const double *se_model, const double *se_rw, size_t n, double level,
                        int reps, size_t block, uint64_t seed, evalstat_boot *out) {
  memset(out, 0, sizeof *out);
  out->skill = out->lo = out->hi = out->se = NAN;
  if (boot_check(se_model, se_rw, n, level) != 0)
    return TC_EINVAL;
  out->skill = evalstat_skill(se_model, se_rw, n);
  if (isnan(out->skill))
    return TC_EINVAL;
  if (block == 0)
    block = (size_t)ceil(cbrt((double)n));
  out->block = block < n ? block : n;
  out->reps = reps > 0 ? reps : EVALSTAT_BOOT_REPS;
  size_t D = (n + out->block - 1) / out->block;
  double *c = malloc((2 * (n + 1) + (size_t)out->reps) * sizeof *c);
  size_t *start = malloc(D * sizeof *start);
  if (!c || !start) {
    free(c), free(start);
    return TC_ENOMEM;
  }
  double *v = c + 2 * (n + 1);
  c[0] = c[1] = 0;
  for (size_t t = 0; t < n; t++) {
    c[2 * t + 2] = c[2 * t] + se_model[t];
    c[2 * t + 3] = c[2 * t + 1] + se_rw[t];
  }
  nn_rng rng;
  nn_rng_seed(&rng, seed);
  const nn_divu64 below = nn_divu64_new(n);
  int k = 0;
  for (int r = 0; r < out->reps; r++) {
    double s = boot_replicate(c, n, out->block, &rng, &below, start);
    if (isnan(s))
      out->dropped++;
    else
      v[k++] = s;
  }
  boot_summarize(v, k, level, out);
  free(c), free(start);
  return 0;
}

/* Direction. */

/* Pesaran and Timmermann's statistic for hits of n calls, up realized and pred_up predicted
 * positive signs; NaN when a sign is constant or the variance is not positive. */
static double pt_statistic(uint64_t n, uint64_t hits, uint64_t up, uint64_t pred_up) {
  if (up == 0 || up == n || pred_up == 0 || pred_up == n)
    return NAN;
  double N = (double)n, P = hits / N, py = up / N, px = pred_up / N;
  double ps = py * px + (1 - py) * (1 - px);
  double vp = ps * (1 - ps) / N;
  double vps = (2 * py - 1) * (2 * py - 1) * px * (1 - px) / N +
               (2 * px - 1) * (2 * px - 1) * py * (1 - py) / N +
               4 * py * px * (1 - py) * (1 - px) / (N * N);
  double v = vp - vps;
  return v > 0 ? (P - ps) / sqrt(v) : NAN;
}

void evalstat_direction(const double *pred, const double *real, size_t n, evalstat_dir *out) {
  memset(out, 0, sizeof *out);
  for (size_t t = 0; t < n; t++) {
    if (real[t] == 0)
      continue;
    if (pred[t] == 0) {
      out->nocall++;
      continue;
    }
    out->n++;
    out->up += real[t] > 0;
    out->pred_up += pred[t] > 0;
    out->hits += (pred[t] > 0) == (real[t] > 0);
  }
  if (out->n == 0) {
    out->acc = out->base = out->p_base = out->pt_stat = NAN;
    out->pt_p = 1;
    return;
  }
  uint64_t major = out->up > out->n - out->up ? out->up : out->n - out->up;
  out->acc = (double)out->hits / (double)out->n;
  out->base = (double)major / (double)out->n;
  out->p_base = evalstat_binom_sf(out->hits, out->n, out->base);
  out->pt_stat = pt_statistic(out->n, out->hits, out->up, out->pred_up);
  out->pt_p = isnan(out->pt_stat) ? 1 : evalstat_norm_sf(out->pt_stat);
  if (isnan(out->pt_stat))
    out->pt_stat = 0;
}

/* Variance forecasts. */

double evalstat_mean_sq(const double *e, size_t n) {
  if (n == 0)
    return NAN;
  double s = 0;
  for (size_t t = 0; t < n; t++)
    s += e[t] * e[t];
  return s / (double)n;
}

double evalstat_ewma_filter(const double *e, size_t n, double lambda, double h0, double *h) {
  double v = h0;
  for (size_t t = 0; t < n; t++) {
    if (h)
      h[t] = v;
    v = lambda * v + (1 - lambda) * e[t] * e[t];
  }
  return v;
}

double evalstat_garch_filter(const evalstat_garch *g, const double *e, size_t n, double h0,
                             double *h) {
  double v = h0;
  for (size_t t = 0; t < n; t++) {
    if (h)
      h[t] = v;
    v = g->omega + g->alpha * e[t] * e[t] + g->beta * v;
  }
  return v;
}

/* The log-likelihood from raw parameters (shared by the public call and the optimizer). */
static double garch_ll(double omega, double alpha, double beta, const double *e, size_t n,
                       double h0) {
  double v = h0, s = 0;
  for (size_t t = 0; t < n; t++) {
    if (!(v > 0))
      return -INFINITY;
    double e2 = e[t] * e[t];
    s += log(v) + e2 / v;
    v = omega + alpha * e2 + beta * v;
  }
  return -0.5 * ((double)n * LN_2PI + s);
}

double evalstat_garch_loglik(const evalstat_garch *g, const double *e, size_t n, double h0) {
  return garch_ll(g->omega, g->alpha, g->beta, e, n, h0);
}

/* The fit: Nelder-Mead over u = (u0, u1, u2) in R^3 (see the header for the map to omega,
 * alpha, beta), minimizing the negative log-likelihood per observation. */
#define GARCH_D 3
#define GARCH_UMAX 40.0      /* |u| is clamped here: 1 - logistic(40) = 4e-18 keeps omega > 0 */
#define GARCH_SCREEN_N 50000 /* innovations the starting points are compared on */

typedef struct garch_obj {
  const double *e;
  size_t n;
  double h0;
  int evals;
} garch_obj;

static double logistic(double u) {
  return 1 / (1 + exp(-u));
}

static double clampu(double u) {
  return u > GARCH_UMAX ? GARCH_UMAX : u < -GARCH_UMAX ? -GARCH_UMAX : u;
}

static void garch_from_u(const double *u, double h0, double *omega, double *alpha, double *beta) {
  double u0 = clampu(u[0]), u1 = clampu(u[1]), u2 = clampu(u[2]);
  double p = logistic(u1), q = logistic(-u1), s = logistic(u2); /* q = 1 - p without rounding */
  *alpha = p * s;
  *beta = p * (1 - s);
  *omega = h0 * q * exp(u0);
}

static double garch_objective(garch_obj *o, const double *u) {
  double omega, alpha, beta;
  garch_from_u(u, o->h0, &omega, &alpha, &beta);
  o->evals++;
  double ll = garch_ll(omega, alpha, beta, o->e, o->n, o->h0);
  return isfinite(ll) ? -ll / (double)o->n : INFINITY;
}

static double logit(double p) {
  return log(p / (1 - p));
}

/* Writes the point c + k (w - c) to xt (GARCH_D), w the worst vertex and c the centroid of the
 * others (k = -1 reflects, -2 expands, -1/2 and 1/2 contract), and returns the objective there. */
static double nm_point(garch_obj *o, const double *c, const double *w, double k, double *xt) {
  for (int j = 0; j < GARCH_D; j++)
    xt[j] = c[j] + k * (w[j] - c[j]);
  return garch_objective(o, xt);
}

/* Sorts the simplex by objective, best first (insertion sort of 4 vertices). */
static void nm_sort(double x[][GARCH_D], double *f) {
  for (int i = 1; i <= GARCH_D; i++)
    for (int k = i; k > 0 && f[k] < f[k - 1]; k--) {
      double tf = f[k], tx[GARCH_D];
      memcpy(tx, x[k], sizeof tx);
      f[k] = f[k - 1];
      memcpy(x[k], x[k - 1], sizeof tx);
      f[k - 1] = tf;
      memcpy(x[k - 1], tx, sizeof tx);
    }
}

static int nm_converged(double x[][GARCH_D], const double *f) {
  if (!(f[GARCH_D] - f[0] <= 1e-13 * (1 + fabs(f[0]))))
    return 0;
  for (int i = 1; i <= GARCH_D; i++)
    for (int j = 0; j < GARCH_D; j++)
      if (fabs(x[i][j] - x[0][j]) > 1e-7)
        return 0;
  return 1;
}

/* One Nelder-Mead run (reflection 1, expansion 2, contractions and shrink 1/2) from u (GARCH_D)
 * with initial steps of `step`; writes the best point to u and returns its objective. */
static double nm_run(garch_obj *o, double *u, double step, int max_evals) {
  double x[GARCH_D + 1][GARCH_D], f[GARCH_D + 1], c[GARCH_D], xr[GARCH_D], xt[GARCH_D];
  for (int i = 0; i <= GARCH_D; i++) {
    memcpy(x[i], u, sizeof x[i]);
    if (i > 0)
      x[i][i - 1] += step;
    f[i] = garch_objective(o, x[i]);
  }
  int start = o->evals;
  for (nm_sort(x, f); o->evals - start < max_evals && !nm_converged(x, f); nm_sort(x, f)) {
    for (int j = 0; j < GARCH_D; j++) {
      c[j] = 0;
      for (int i = 0; i < GARCH_D; i++)
        c[j] += x[i][j] / GARCH_D;
    }
    double *w = x[GARCH_D], fr = nm_point(o, c, w, -1, xr), ft;
    if (fr < f[0] && (ft = nm_point(o, c, w, -2, xt)) < fr) { /* expansion */
      memcpy(w, xt, sizeof xt);
      f[GARCH_D] = ft;
    } else if (fr < f[GARCH_D - 1]) { /* reflection */
      memcpy(w, xr, sizeof xr);
      f[GARCH_D] = fr;
    } else if ((ft = nm_point(o, c, w, fr < f[GARCH_D] ? -0.5 : 0.5, xt)) <
               fmin(fr, f[GARCH_D])) { /* outside (fr < worst) or inside contraction */
      memcpy(w, xt, sizeof xt);
      f[GARCH_D] = ft;
    } else {
      for (int i = 1; i <= GARCH_D; i++) { /* shrink towards the best */
        for (int j = 0; j < GARCH_D; j++)
          x[i][j] = x[0][j] + 0.5 * (x[i][j] - x[0][j]);
        f[i] = garch_objective(o, x[i]);
      }
    }
  }
  memcpy(u, x[0], sizeof x[0]);
  return f[0];
}

int evalstat_garch_fit(const double *e, size_t n, evalstat_garch *g) {
  memset(g, 0, sizeof *g);
  if (n < 3 || !all_finite(e, n))
    return TC_EINVAL;
  garch_obj o = {.e = e, .n = n, .h0 = evalstat_mean_sq(e, n)};
  if (!(o.h0 > 0))
    return TC_EINVAL;
  /* The starts are compared on the last GARCH_SCREEN_N innovations (all of them when fewer). */
  garch_obj s = o;
  if (n > GARCH_SCREEN_N) {
    s.e = e + (n - GARCH_SCREEN_N);
    s.n = GARCH_SCREEN_N;
  }
  /* Starting points (persistence alpha + beta, share of alpha in it), at variance targeting. */
  static const double starts[4][2] = {{0.95, 0.1}, {0.9, 0.2}, {0.99, 0.05}, {0.5, 0.3}};
  double best[GARCH_D], fbest = INFINITY;
  for (int i = 0; i < 4; i++) {
    double u[GARCH_D] = {0, logit(starts[i][0]), logit(starts[i][1])};
    double f = nm_run(&s, u, 0.5, 2000);
    if (f < fbest) {
      fbest = f;
      memcpy(best, u, sizeof best);
    }
  }
  if (s.n < n)
    fbest = garch_objective(&o, best);
  for (int r = 0; r < 10; r++) { /* restarts: a fresh simplex escapes a collapsed one */
    double u[GARCH_D];
    memcpy(u, best, sizeof u);
    double f = nm_run(&o, u, 0.1, 2000);
    int done = !(f < fbest - 1e-9);
    if (f < fbest) {
      fbest = f;
      memcpy(best, u, sizeof best);
    }
    if (done)
      break;
  }
  garch_from_u(best, o.h0, &g->omega, &g->alpha, &g->beta);
  g->h0 = o.h0;
  g->loglik = evalstat_garch_loglik(g, e, n, o.h0);
  g->evals = o.evals + s.evals;
  return 0;
}

double evalstat_qlike(double e2, double h) {
  if (!(h > 0))
    return INFINITY;
  return log(h) + e2 / h;
}

void evalstat_var_losses(const double *e, const double *h, size_t n, double *qlike, double *mse) {
  for (size_t t = 0; t < n; t++) {
    double e2 = e[t] * e[t];
    if (qlike)
      qlike[t] = evalstat_qlike(e2, h[t]);
    if (mse)
      mse[t] = (e2 - h[t]) * (e2 - h[t]);
  }
}

/* Prediction intervals. */

int evalstat_kupiec(uint64_t n, uint64_t x, double p, double *lr, double *pval) {
  if (n == 0 || x > n || !(p > 0 && p < 1))
    return TC_EINVAL;
  double N = (double)n, X = (double)x, ph = X / N;
  double l0 = (N - X) * log1p(-p) + X * log(p);
  double l1 = x == 0 || x == n ? 0 : (N - X) * log1p(-ph) + X * log(ph);
  double s = -2 * (l0 - l1);
  *lr = s > 0 ? s : 0; /* rounding can leave -1e-16 when x / n = p */
  *pval = evalstat_chi2_1_sf(*lr);
  return 0;
}

/* The interval score with z, or zt[t] when zt is not NULL. */
static int interval_score(const double *r, const double *mu, const double *h, double z,
                          const double *zt, size_t n, double nominal, evalstat_interval *out) {
  memset(out, 0, sizeof *out);
  if (n == 0 || !(nominal > 0 && nominal < 1) || !(z >= 0 && isfinite(z)) || !all_finite(r, n) ||
      !all_finite(mu, n) || !all_finite(h, n))
    return TC_EINVAL;
  for (size_t t = 0; zt && t < n; t++)
    if (!(zt[t] >= 0 && isfinite(zt[t])))
      return TC_EINVAL;
  out->n = n;
  out->nominal = nominal;
  double w = 0, zs = 0;
  for (size_t t = 0; t < n; t++) {
    double m = mu ? mu[t] : 0, zz = zt ? zt[t] : z, half = h[t] > 0 ? zz * sqrt(h[t]) : 0;
    out->misses += evalstat_interval_miss(r[t], m, h[t], zz);
    w += 2 * half;
    zs += zz;
  }
  out->z = zt ? zs / (double)n : z;
  out->coverage = 1 - (double)out->misses / (double)n;
  out->width = w / (double)n;
  return evalstat_kupiec(n, out->misses, 1 - nominal, &out->lr, &out->p);
}

int evalstat_interval_score(const double *r, const double *mu, const double *h, size_t n,
                            double nominal, double z, evalstat_interval *out) {
  return interval_score(r, mu, h, z, NULL, n, nominal, out);
}

int evalstat_interval_score_zt(const double *r, const double *mu, const double *h, const double *zt,
                               size_t n, double nominal, evalstat_interval *out) {
  return interval_score(r, mu, h, 0, zt, n, nominal, out);
}

/* Multiple trials. */

double evalstat_sidak_alpha(double alpha, int K) {
  if (K < 1 || !(alpha > 0 && alpha < 1))
    return NAN;
  return -expm1(log1p(-alpha) / K);
}

double evalstat_sidak_threshold(double alpha, int K) {
  return -evalstat_norm_quantile(0.5 * evalstat_sidak_alpha(alpha, K));
}

double evalstat_sidak_p(double p, int K) {
  if (K < 1 || !(p >= 0 && p <= 1))
    return NAN;
  return -expm1(K * log1p(-p));
}
