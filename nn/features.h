/* features.h: the four input features of CONTRACT §2, computed in double from a tick and the
 * previous accepted tick of the same instrument, then standardized to float32.
 * Pure functions; no knowledge of where ticks come from. */
#ifndef NN_FEATURES_H
#define NN_FEATURES_H

#include "nn/model.h"
#include <stdint.h>

/* raw (NN_F): ret, log_qty, log_dt, spread. `first` is 1 for an instrument's first tick (then
 * ret = log_dt = 0). has_quote is 1 when both bid and ask are present, finite, > 0 and bid <= ask.
 */
static inline void nn_features_raw(double raw[NN_F], int first, double px, double prev_px,
                                   int64_t ts, int64_t prev_ts, double qty, int has_quote,
                                   double bid, double ask);

/* x (NN_F) = (raw - mean) / std as float32. */
static inline void nn_features_standardize(const nn_model *m, const double raw[NN_F],
                                           float x[NN_F]) {
  for (int i = 0; i < NN_F; i++)
    x[i] = (float)((raw[i] - (double)m->feat_mean[i]) / (double)m->feat_std[i]);
}

#include <math.h>

/* ts - prev_ts in double, exact wherever the int64 difference fits (the same bits as before) and
 * without signed overflow where it does not (timestamps near both ends of int64): the magnitude
 * is computed in uint64, where it always fits. */
static inline double nn_ts_diff(int64_t ts, int64_t prev_ts) {
  return ts >= prev_ts ? (double)((uint64_t)ts - (uint64_t)prev_ts)
                       : -(double)((uint64_t)prev_ts - (uint64_t)ts);
}

/* ln(px / prev_px) for prices that are finite and > 0: from the quotient wherever it is a normal
 * double (the same bits as always), else as ln(px) - ln(prev_px), so that a move of more than
 * about 2^1022 either way (1e-200 -> 1e200) gives its finite log return instead of +-inf. */
static inline double nn_log_ret(double px, double prev_px) {
  double q = px / prev_px;
  return q >= 0x1p-1022 && q <= 0x1.fffffffffffffp+1023 ? log(q) : log(px) - log(prev_px);
}

static inline void nn_features_raw(double raw[NN_F], int first, double px, double prev_px,
                                   int64_t ts, int64_t prev_ts, double qty, int has_quote,
                                   double bid, double ask) {
  raw[0] = first ? 0.0 : nn_log_ret(px, prev_px);
  raw[1] = log1p(qty);
  raw[2] = first ? 0.0 : log1p(nn_ts_diff(ts, prev_ts) / 1e9);
  if (has_quote) {
    /* The mid as (ask + bid) / 2 unless that sum overflows (quotes near DBL_MAX). */
    double sum = ask + bid;
    raw[3] = (ask - bid) / (sum <= 0x1.fffffffffffffp+1023 ? sum / 2.0 : ask / 2.0 + bid / 2.0);
  } else {
    raw[3] = 0.0;
  }
}

/* pred_ret = y * target.std + target.mean (in double). */
static inline double nn_pred_ret(const nn_model *m, float y) {
  return (double)y * (double)m->tgt_std[0] + (double)m->tgt_mean[0];
}

#endif
