/* ivcal.h: the central prediction interval of a model with the scale head, calibrated on the
 * validation part. The scale head forecasts a variance; the interval pred_ret -+ z pred_std needs
 * a z for its coverage C. Returns have fat tails, so the normal z = Phi^-1((1 + C) / 2) covers
 * more than C in the body (at 90%) where the variance is right: `train --head gauss` stores the
 * empirical quantiles of |z| of the validation residuals (NN_META_INTERVAL_KEY) and every user of
 * the interval (the engine: replay, run, Kafka replay; eval; the PyTorch script) takes its z from
 * ivcal_z. Not for reading or writing the table (nn_ival_get/_set in nn/safetensors). */
#ifndef DAEMON_IVCAL_H
#define DAEMON_IVCAL_H

#include <stddef.h>

#include "nn/model.h"
#include "nn/safetensors/safetensors.h"

/* The coverages of the table, in thousandths: 0.01, 0.02, ..., 0.99 (every whole percent is a
 * grid point, so the usual levels need no interpolation and the linear interpolation between
 * others is within 0.0003 of |z| for normal residuals), then 0.995 and 0.999 for the tails. */
#define IVCAL_GRID 101

/* Fills t from the absolute standardized residuals absz (n; sorted in place, non-finite values
 * left out) with the split-conformal quantile: at coverage c, the k-th smallest with
 * k = ceil((n + 1) c) (Vovk et al. 2005; Lei et al. 2018: for exchangeable residuals the
 * interval covers at least c), which is no quantile at all when k > n: such grid points are left
 * out (then the normal quantile applies there). Returns 0, or TC_EINVAL when no grid point has
 * a quantile (fewer than 99 finite residuals leave out 0.99, fewer than 999 0.999). */
int ivcal_fit(double *absz, size_t n, nn_ival *t);

/* The z of the central interval at coverage c in (0, 1) of model m: with m's table (nn_ival_get)
 * and c within its coverages, the linear interpolation of its quantiles (the quantile itself at
 * a grid point); below the table's first coverage the least of its first quantile and the
 * normal quantile Phi^-1((1 + c) / 2), above its last the greatest of its last quantile and the
 * normal one (so z never falls as c grows); without a table, or for a mean model, the normal
 * quantile, as for every model before the table existed. */
double ivcal_z(const nn_model *m, double c);

#endif
