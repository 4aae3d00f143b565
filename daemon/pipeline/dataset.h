/* dataset.h: tick files loaded whole into per-instrument series for `train` and `eval`: accepted
 * ticks with their raw features (CONTRACT §2), the split by time into a training part and a
 * validation part (the last ticks of every instrument), and the standardization statistics of
 * the training part. Not for streaming (replay and run go through engine.h in constant memory). */
#ifndef DAEMON_DATASET_H
#define DAEMON_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/reject.h"
#include "ingest/symtab.h"
#include "ingest/tick.h"
#include "nn/model.h"

/* One instrument's accepted ticks, in order. Target of tick t = raw ret of tick t + 1. */
typedef struct ds_series {
  char sym[TICK_SYM_MAX + 1];
  size_t n;      /* accepted ticks */
  size_t cap;    /* allocated entries */
  size_t ntrain; /* ticks [0, ntrain) are training, [ntrain, n) validation (dataset_split) */
  int64_t *ts;   /* (n) */
  double *px;    /* (n) */
  double *raw;   /* (n, NN_F) raw features */
} ds_series;

typedef struct dataset {
  symtab st;         /* sym -> slot; slot i is series[i] (slots are never reused here) */
  ds_series *s;      /* (ns) */
  int ns;            /* instruments */
  int scap;          /* allocated series */
  uint64_t read;     /* ticks (non-empty lines) read over all files */
  uint64_t accepted; /* ticks accepted */
  reject_tally rej;  /* ticks rejected, by reason, with their first lines (over all files) */
  /* Standardization from the training part (dataset_stats). */
  double feat_mean[NN_F], feat_std[NN_F];
  double tgt_mean, tgt_std;
} dataset;

int dataset_init(dataset *d);  /* 0 or TC_ENOMEM */
void dataset_free(dataset *d); /* accepts NULL and half-built */

/* Appends the ticks of one file (CSV or JSON Lines, '-' = stdin). Rejected lines (decoder
 * reasons, and out_of_order: ts older than the instrument's last accepted tick, also across
 * files) are counted in d->rej, never fatal; when verbose, the first REJECT_SHOWN of the dataset
 * are printed on stderr. path must outlive d (the tally keeps it). Returns 0,
 * TC_ENOENT/TC_EFORMAT (cannot open, no valid header; err says which) or TC_EIO/TC_ENOMEM. */
int dataset_load(dataset *d, const char *path, int verbose, char *err, size_t errlen);

/* Splits every series by time: its last floor(n * val_frac) ticks are validation. */
void dataset_split(dataset *d, double val_frac);

/* Computes feature mean/std over the training ticks and the target scale over the training
 * targets (ticks t with t + 1 < ntrain). A std below 1e-12 becomes 1 (a constant feature is
 * then only centered). The target mean is set to 0 and its std is the root mean square: a model
 * whose output is 0 predicts a zero return, exactly the random walk. */
void dataset_stats(dataset *d);

/* Copies the statistics into m's features.* and target.* tensors. */
void dataset_apply_stats(const dataset *d, nn_model *m);

/* Prints the read/accepted/rejected summary (with the first line numbers per reason). */
void dataset_print_summary(const dataset *d, const char *what);

#endif
