/* fit.h: the training loop of `tickcast train`: minibatches of sequence pieces over the training
 * part of a dataset, truncated BPTT with state carried across windows, Adam, clipping, validation
 * after every epoch on the held-out tail of each instrument (the learning rate is halved after
 * every epoch that does not improve it), early stopping, and the choice of the best model. Not for
 * command-line parsing (cmd_train.c) nor file I/O. */
#ifndef DAEMON_FIT_H
#define DAEMON_FIT_H

#include <stdint.h>
#include <stdio.h>

#include "daemon/pipeline/dataset.h"
#include "nn/model.h"

typedef struct fit_opts {
  int cell;      /* NN_CELL_* (nn/base/cell.h): LSTM, GRU or RNN */
  int H;         /* hidden size */
  int L;         /* layers */
  int peephole;  /* 1: with w_ci/w_cf/w_co (LSTM only) */
  int epochs;    /* most epochs */
  int T;         /* BPTT window (steps) */
  int B;         /* sequences per minibatch */
  int patience;  /* epochs without validation improvement before stopping */
  double lr;     /* Adam learning rate */
  double clip;   /* global gradient-norm limit, <= 0: none */
  uint64_t seed; /* all randomness */
  int verbose;   /* 0 silent, 1 one line per epoch, 2 plus a \r bar (a terminal) */
  double min_t;  /* least t-statistic of the validation gain for a non-zero model */
  int threads;   /* threads for the shards of each step and of validation (<= 1: this one);
                    the result is the same floats for any value */
  int gauss;     /* 1: with the scale head, trained by Gaussian NLL, epochs chosen by validation
                    NLL without halving the learning rate (the mean head's scale and fallback are
                    then chosen as without), the scale head calibrated on validation, and the
                    interval's quantiles of |z| on validation written to the model
                    (NN_META_INTERVAL_KEY, daemon/pipeline/ivcal.h) */
} fit_opts;

/* The threshold of one training run: a gain t-statistic of 2, a two-sided level of
 * 2 (1 - Phi(2)) = 0.0455. A search of K trials raises it to fit_min_t(K). */
#define FIT_MIN_T 2.0

/* The threshold for each of K trials (a search) that keeps the family-wise level of FIT_MIN_T:
 * evalstat_sidak_threshold(2 (1 - Phi(2)), K); 2 for K = 1, 2.52 for K = 4, 2.76 for 8. */
double fit_min_t(int K);

/* Defaults: the LSTM, H 32, L 1, 30 epochs, T 32, B 32, patience 5, lr 3e-3, clip 1, seed 1,
 * min_t 2. */
void fit_opts_default(fit_opts *o);

typedef struct fit_result {
  double val_mse;       /* standardized validation MSE of the saved model */
  double val_mse_rw;    /* the same for a zero prediction (the random walk) */
  double train_mse;     /* training loss of the best epoch (0 for the zero model) */
  double scale;         /* factor applied to the head (least squares on validation, in [0, 1]) */
  double tstat;         /* t-statistic of the validation gain over the zero prediction: minus the
                           Diebold-Mariano statistic (HLN) of the loss differential */
  double pval;          /* its two-sided p-value (Student t, HLN) */
  uint64_t val_times;   /* distinct validation timestamps: the test's sample size */
  double val_mse_fit;   /* validation MSE of the trained model before any fallback to zero */
  int fallback;         /* 1: the saved model predicts zero (no epoch beat it, or t < 2) */
  int best_epoch;       /* 0 = no epoch beat the zero model, which is what was kept */
  int epochs_run;       /* epochs trained */
  uint64_t nval;        /* validation targets */
  uint64_t ntrain;      /* training targets per epoch */
  double seconds;       /* wall time of training */
  double steps_per_s;   /* tick-steps per second, forward + backward (training only) */
  double val_nll;       /* gauss: standardized validation Gaussian NLL of the saved model */
  double val_nll_const; /* gauss: the same for the zero mean and the constant variance of the
                           training part (1 in standardized units) */
  double var_scale;     /* gauss: the factor a of the calibrated log-variance a s + b, in [0, 1] */
  double var_shift;     /* gauss: b */
  uint64_t ival_n;      /* gauss: validation residuals of the interval table (0: no table) */
  double ival_z90;      /* gauss: the table's z of the 90% interval (ivcal_z) */
} fit_result;

/* Trains a model of shape (o->cell, o->L, o->H, o->peephole) on d (split and stats already
 * done) into m, which is initialized here (the caller frees it). The model returned is the one
 * with the best validation MSE, its head scaled by the least-squares factor in [0, 1] on
 * validation. When no epoch beats a zero prediction, or the gain over it has a t-statistic below
 * o->min_t (noise), the head is zero: it predicts exactly a zero return. Without validation ticks
 * the last epoch is kept. Ticks of the held-out test part (from each series' nfit) are never
 * read.
 * Returns 0 or TC_E* with err. */
int fit_run(const dataset *d, const fit_opts *o, nn_model *m, fit_result *res, FILE *log, char *err,
            size_t errlen);

/* Standardized MSE of m over the validation ticks of d (state carried from each instrument's
 * first tick), and of the zero prediction. Returns 0 or TC_ENOMEM. */
int fit_validate(const dataset *d, const nn_model *m, double *mse, double *mse_rw, uint64_t *n);

#endif
