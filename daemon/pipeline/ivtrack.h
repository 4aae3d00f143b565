/* ivtrack.h: the online interval of a model with the scale head: per instrument, the quantile
 * tracker of Angelopoulos, Candes and Tibshirani (Conformal PID control, 2023; adaptive conformal
 * inference, Gibbs and Candes 2021) on the standardized scale. Each instrument keeps q, the z of
 * its interval (starting at the model's calibrated ivcal_z), and the interval it emitted last;
 * when its next price arrives, err = 1 if that price fell outside the interval, and
 * q <- max(0, q + eta (err - alpha)), alpha = 1 - coverage; the next interval uses q. Used by the
 * engine (replay, run, Kafka replay) and by eval, so both judge the interval that is emitted. Not
 * for the static calibration (ivcal.h).
 *
 * The guarantee (their Proposition 1, for the step without the floor at 0): for any sequence of
 * scores s_t in [0, B] (s_t the least z whose interval holds the price) and q_1 in [0, B], the
 * misses of the first T steps satisfy |mean(err) - alpha| <= (B + eta) / (eta T), whatever the
 * sequence. It follows from eta sum(err_t - alpha) = q_{T+1} - q_1 and q_t staying in
 * [-eta alpha, B + eta (1 - alpha)]. The floor at 0 (a negative z would emit lo_px > hi_px)
 * changes the identity to eta sum(err_t - alpha) = q_{T+1} - q_1 - F_T, F_T >= 0 the total the
 * floor added; a floor step needs err_t = 0 with q_t < eta alpha, so it only happens at a score
 * s_t < eta alpha, and each adds at most eta alpha: |mean(err) - alpha| <= (B + eta) / (eta T) +
 * alpha m / T, m the number of steps with s_t < eta alpha (0.0005 standard deviations at
 * eta 0.005, alpha 0.1: a price within a hair of the predicted mean). */
#ifndef DAEMON_IVTRACK_H
#define DAEMON_IVTRACK_H

#include <stddef.h>

/* The step size used when a command is not told otherwise (--interval-adapt). */
#define IVTRACK_ETA_DEFAULT 0.02
#define IVTRACK_ETA_TEXT "0.02" /* the same, for --help texts */

/* One update: the next q after a step with miss err (0 or 1) at coverage c. */
static inline double ivtrack_step(double q, int err, double eta, double c) {
  double n = q + eta * ((double)err - (1.0 - c));
  return n > 0 ? n : 0;
}

/* The interval's bounds of the next price after a tick at price px with mean log return mu and
 * standard deviation sd, at z: px exp(mu -+ z sd). The one formula of lo_px and hi_px. */
void ivtrack_bounds(double px, double mu, double sd, double z, double *lo, double *hi);

/* Whether price px falls outside [lo, hi] (inclusive bounds): the tracker's err, and eval's. */
static inline int ivtrack_miss(double px, double lo, double hi) {
  return px < lo || px > hi;
}

/* Runs the tracker along one instrument's forecasts as the engine does, in eval's terms: mu and
 * var (n) the mean and variance forecasts of the next log return made after each tick, ret (n)
 * the realized return each is judged on (the last one is not used). z (n): the z of the interval
 * made after tick t: z[0] = z0, z[t + 1] = ivtrack_step(z[t], evalstat_interval_miss(ret[t],
 * mu[t], var[t], z[t])): the miss test eval's coverage counts, which is the engine's price test
 * in log terms (equal but for rounding exactly at a bound). With eta = 0 every z is z0. */
void ivtrack_series(const double *ret, const double *mu, const double *var, size_t n, double z0,
                    double eta, double c, double *z);

#endif
