/* dataset.h: tick files loaded whole into per-instrument series for `train` and `eval`: accepted
 * ticks with their raw features (CONTRACT §2), the split by time into a training, a validation
 * and a held-out test part (the last ticks of every instrument), and the standardization
 * statistics of the training part. Not for streaming (replay and run go through engine.h in
 * constant memory). */
#ifndef DAEMON_DATASET_H
#define DAEMON_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/reject.h"
#include "ingest/symtab.h"
#include "ingest/tick.h"
#include "nn/model.h"

/* One instrument's accepted ticks, in order. Target of tick t = raw ret of tick t + 1.
 * Its ticks fall in three parts, in time order: [0, ntrain) training, [ntrain, nfit) validation,
 * [nfit, n) the held-out test part. A prediction belongs to the part of the tick it is made at
 * and is scored against the next tick's return, so training scores targets 1..ntrain-1,
 * validation targets ntrain+1..nfit-1 and the test part targets nfit+1..n-1: the return that
 * crosses each boundary is a target of neither side, and no price of the test part is ever a
 * training or validation target. */
typedef struct ds_series {
  char sym[TICK_SYM_MAX + 1];
  size_t n;        /* accepted ticks */
  size_t nkept;    /* of which in the arrays (n, but for those of a file being loaded) */
  int64_t last_ts; /* the last accepted tick's ts and px (while loading) */
  double last_px;
  size_t ntrain;   /* ticks [0, ntrain) are training (dataset_split) */
  size_t nfit;     /* ticks [ntrain, nfit) validation, [nfit, n) test (dataset_hold_out) */
  int64_t *ts;     /* (n) */
  double *px;      /* (n) */
  double *raw;     /* (n, NN_F) raw features */
  uint8_t *quoted; /* (n) 1 when the tick had a valid quote (bid <= ask): raw spread is real */
} ds_series;

typedef struct dataset {
  symtab st;          /* sym -> slot; slot i is series[i] (slots are never reused here) */
  ds_series *s;       /* (ns) */
  void *arena;        /* every series' arrays, in one buffer (nn/base/bigbuf.h) */
  size_t arena_len;   /* its bytes */
  int ns;             /* instruments */
  int scap;           /* allocated series */
  uint64_t read;      /* ticks (non-empty lines) read over all files */
  uint64_t accepted;  /* ticks accepted */
  reject_tally rej;   /* ticks rejected, by reason, with their first lines (over all files) */
  int ts_unit;        /* unit of integer timestamps in the files (enum tickfile_ts_unit) */
  uint64_t max_bytes; /* memory bound (dataset_memory_bound): at most max_bytes /
                       * DATASET_TICK_BYTES charged ticks over all files; 0: no bound */
  uint64_t charged;   /* accepted ticks as the bound counts them: an instrument counts as at
                       * least DATASET_SERIES_TICKS */
  int threads;        /* dataset_load decodes and copies on this many threads (0 or 1: the
                       * caller's only; at most DATASET_MAX_THREADS); the dataset is the same */
  /* Standardization from the training part (dataset_stats). */
  double feat_mean[NN_F], feat_std[NN_F];
  double tgt_mean, tgt_std;
} dataset;

#define DATASET_MAX_THREADS 1024

int dataset_init(dataset *d);  /* 0 or TC_ENOMEM */
void dataset_free(dataset *d); /* accepts NULL and half-built */

/* Appends the ticks of one file (CSV or JSON Lines, '-' = stdin), integer timestamps in
 * d->ts_unit (TICKFILE_TS_AUTO after dataset_init: nanoseconds, with tickfile_ts_warning's
 * warning on stderr, whatever verbose says, when they look like another unit). Rejected lines
 * (decoder reasons, and out_of_order: ts older than the instrument's last accepted tick, also
 * across files) are counted in d->rej, never fatal; when verbose, the first REJECT_SHOWN of the
 * dataset are printed on stderr. path must outlive d (the tally keeps it). Every series is whole
 * training afterwards (ntrain = nfit = n). Returns 0, TC_ENOENT/TC_EFORMAT (cannot open, no
 * valid header; err says which) or TC_EIO/TC_ENOMEM, or TC_ERANGE past the memory
 * bound (err names the file, the line and the bound). */
int dataset_load(dataset *d, const char *path, int verbose, char *err, size_t errlen);

/* What a dataset command holds in memory per accepted tick, at most: the series (ts, px, raw
 * features, quote flag: 49 bytes, and 56 more while its file loads) and the command's own
 * per-tick arrays (train: the fitting copy, about 110 bytes a tick in all at its peak, while the
 * file loads, measured as peak RSS on 0.5M to 1.5M ticks; eval: predictions, scores and
 * bootstrap, about 180). */
#define DATASET_TICK_BYTES 200
/* An instrument counts as at least this many ticks: what a command holds per instrument whatever
 * its ticks (the series, its symbol, train's piece of a lane padded to a whole window, eval's
 * per-instrument arrays: about 1.6 KB in train and 0.9 KB in eval beyond its ticks, measured as
 * peak RSS on 20,000 and 40,000 instruments of 2 ticks each). */
#define DATASET_SERIES_TICKS 16
/* Each trial of a search that trains at the same time as another holds this much more a tick
 * (its own training arrays: 27-31 bytes measured as peak RSS). */
#define DATASET_TRIAL_BYTES 32
/* The memory bound in bytes for --max-memory mib MiB (0: half of this machine's memory, from
 * sysconf), for max_bytes. */
uint64_t dataset_memory_bound(int mib);

/* Holds out the test part of every series, which training, validation and every choice made on
 * them never see: its last floor(n * test_frac) ticks, or, with has_from, its ticks at
 * ts >= from (the later of the two when both are given). The boundary then moves later past
 * ticks that share the timestamp of the last tick kept, so the test part starts strictly after
 * the fitted part ends and "after the training range" (eval --test) is the same set of ticks.
 * Sets nfit (and ntrain = nfit); call before dataset_split. */
void dataset_hold_out(dataset *d, double test_frac, int has_from, int64_t from);

/* Splits what dataset_hold_out left of every series, [0, nfit), by time: its last
 * floor(nfit * val_frac) ticks are validation. */
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
