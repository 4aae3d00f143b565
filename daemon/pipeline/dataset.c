/* dataset.c: tick files into per-instrument series with raw features, the time split and the
 * training-part statistics, for `train` and `eval`. Holds everything in memory (about 57 bytes a
 * tick); streaming use goes through the engine instead. */
#include "daemon/pipeline/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/tickfile.h"
#include "nn/base/bigbuf.h"
#include "nn/base/tc_err.h"
#include "nn/features.h"

int dataset_init(dataset *d) {
  memset(d, 0, sizeof *d);
  reject_tally_init(&d->rej);
  if (symtab_init(&d->st, 0, 64) != 0)
    return TC_ENOMEM;
  for (int i = 0; i < NN_F; i++)
    d->feat_std[i] = 1.0;
  d->tgt_std = 1.0;
  d->ts_unit = TICKFILE_TS_AUTO;
  return 0;
}

void dataset_free(dataset *d) {
  if (!d)
    return;
  tc_big_sized_free(d->arena, d->arena_len);
  free(d->s);
  symtab_free(&d->st);
  memset(d, 0, sizeof *d);
}

/* A file loads in two passes: its accepted ticks are first appended, in file order, to a list of
 * blocks of records (ds_stage), then copied to their series' arrays, which are all cut from one
 * new buffer of exactly the size needed (ds_commit). Arrays grown tick by tick (realloc, doubling)
 * cost a page fault per 4 KiB at every size they pass through, and the copy of each doubling: on
 * the VMs of docs/BENCHMARKS.md, 11 us a fault, 40% of loading a file. The two buffers here
 * are on huge pages when large, so a file of 130,000 ticks takes a few faults instead of ~1,600. */
typedef struct ds_rec {
  int64_t ts;
  double px;
  double raw[NN_F];
  int32_t si; /* series */
  uint8_t quoted;
} ds_rec;

/* Records of the first block (57 KiB: a small file stays small), and of every next one (8 MiB,
 * on huge pages, resident as it fills). */
#define DS_BLOCK_FIRST 1024
#define DS_BLOCK_NEXT ((size_t)TC_BIG_ALIGN / sizeof(ds_rec) * 4)

typedef struct ds_block {
  struct ds_block *next;
  size_t n, cap, bytes; /* records used and room, and the block's bytes */
  ds_rec r[];
} ds_block;

typedef struct ds_stage {
  ds_block *head, *tail;
} ds_stage;

static void stage_free(ds_stage *g) {
  for (ds_block *b = g->head, *nx; b; b = nx) {
    nx = b->next;
    tc_big_sized_free(b, b->bytes);
  }
  g->head = g->tail = NULL;
}

/* Room for one more record, NULL on ENOMEM. */
static ds_rec *stage_next(ds_stage *g) {
  ds_block *b = g->tail;
  if (!b || b->n == b->cap) {
    size_t cap = b ? DS_BLOCK_NEXT : DS_BLOCK_FIRST;
    size_t bytes = sizeof *b + cap * sizeof(ds_rec);
    ds_block *nb = tc_big_sized_alloc(bytes);
    if (!nb)
      return NULL;
    nb->next = NULL, nb->n = 0, nb->cap = cap, nb->bytes = bytes;
    if (b)
      b->next = nb;
    else
      g->head = nb;
    g->tail = b = nb;
  }
  return &b->r[b->n++];
}

/* Bytes of one series' arrays of n ticks, each array on whole cache lines. */
#define DS_LINE(x) (((x) + 63) / 64 * 64)
static size_t series_bytes(size_t n) {
  return DS_LINE(n * sizeof(int64_t)) + DS_LINE(n * sizeof(double)) +
         DS_LINE(n * NN_F * sizeof(double)) + DS_LINE(n);
}

/* Moves every series to arrays of its n ticks in one new buffer: the ticks already kept, then
 * the staged ones in order, freeing g's blocks. On ENOMEM the dataset stays as it was (the staged
 * ticks dropped). */
static int ds_commit(dataset *d, ds_stage *g) {
  size_t len = 0;
  for (int i = 0; i < d->ns; i++)
    len += series_bytes(d->s[i].n);
  char *a = len ? tc_big_sized_alloc(len) : NULL;
  if (len && !a) {
    for (int i = 0; i < d->ns; i++)
      d->s[i].n = d->s[i].nkept;
    return TC_ENOMEM;
  }
  char *p = a;
  for (int i = 0; i < d->ns; i++) {
    ds_series *s = &d->s[i];
    size_t n = s->n, k = s->nkept;
    int64_t *ts = (int64_t *)p;
    p += DS_LINE(n * sizeof *ts);
    double *px = (double *)p;
    p += DS_LINE(n * sizeof *px);
    double *raw = (double *)p;
    p += DS_LINE(n * NN_F * sizeof *raw);
    uint8_t *quoted = (uint8_t *)p;
    p += DS_LINE(n);
    if (k) {
      memcpy(ts, s->ts, k * sizeof *ts);
      memcpy(px, s->px, k * sizeof *px);
      memcpy(raw, s->raw, k * NN_F * sizeof *raw);
      memcpy(quoted, s->quoted, k);
    }
    s->ts = n ? ts : NULL, s->px = n ? px : NULL, s->raw = n ? raw : NULL;
    s->quoted = n ? quoted : NULL;
  }
  while (g->head) { /* each block freed once copied: the two copies are not resident at once */
    ds_block *b = g->head;
    for (size_t j = 0; j < b->n; j++) {
      const ds_rec *r = &b->r[j];
      ds_series *s = &d->s[r->si];
      size_t i = s->nkept++;
      s->ts[i] = r->ts;
      s->px[i] = r->px;
      memcpy(s->raw + i * NN_F, r->raw, sizeof r->raw);
      s->quoted[i] = r->quoted;
    }
    g->head = b->next;
    tc_big_sized_free(b, b->bytes);
  }
  g->tail = NULL;
  tc_big_sized_free(d->arena, d->arena_len);
  d->arena = a, d->arena_len = len;
  return 0;
}

/* Returns the series index of sym, adding an empty series when new; negative on ENOMEM. */
static int series_of(dataset *d, const tick *t) {
  int32_t slot = symtab_find(&d->st, t->sym, t->sym_len);
  if (slot >= 0)
    return slot;
  if (d->ns == d->scap) {
    int cap = d->scap ? d->scap * 2 : 16;
    ds_series *s = realloc(d->s, (size_t)cap * sizeof *s);
    if (!s)
      return TC_ENOMEM;
    d->s = s;
    d->scap = cap;
  }
  slot = symtab_add(&d->st, t->sym, t->sym_len);
  if (slot < 0)
    return slot;
  ds_series *s = &d->s[d->ns++];
  memset(s, 0, sizeof *s);
  memcpy(s->sym, t->sym, t->sym_len);
  s->sym[t->sym_len] = 0;
  return slot;
}

uint64_t dataset_memory_bound(int mib) {
  if (mib > 0)
    return (uint64_t)mib << 20;
  long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
  return pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize / 2 : 0;
}

int dataset_load(dataset *d, const char *path, int verbose, char *err, size_t errlen) {
  tickfile tf;
  int rc = tickfile_open(&tf, path, err, errlen);
  if (rc != 0)
    return rc;
  tickfile_set_ts_unit(&tf, d->ts_unit);
  const char *name = strcmp(path, "-") ? path : "stdin";
  d->rej.quiet = !verbose;
  char msg[256];
  tick t;
  int reason;
  ds_stage g = {NULL, NULL};
  while ((rc = tickfile_next(&tf, &t, &reason, msg, sizeof msg)) == 1) {
    d->read++;
    if (reason != TICK_OK) {
      reject_tally_note(&d->rej, reason, (reject_loc){name, REJECT_LINE, (int64_t)tf.line}, msg);
      continue;
    }
    int si = series_of(d, &t);
    if (si < 0) {
      rc = TC_ENOMEM;
      break;
    }
    ds_series *s = &d->s[si];
    if (s->n > 0 && t.ts < s->last_ts) {
      snprintf(msg, sizeof msg,
               "field ts: found %lld, expected >= %lld (the last accepted tick "
               "of %s)",
               (long long)t.ts, (long long)s->last_ts, s->sym);
      reject_tally_note(&d->rej, TICK_OUT_OF_ORDER,
                        (reject_loc){name, REJECT_LINE, (int64_t)tf.line}, msg);
      continue;
    }
    /* An instrument counts as at least DATASET_SERIES_TICKS ticks: its first tick pays for
     * them, and its ticks past them one each. */
    uint64_t cost = s->n == 0 ? DATASET_SERIES_TICKS : s->n >= DATASET_SERIES_TICKS ? 1 : 0;
    if (d->max_bytes && d->charged + cost > d->max_bytes / DATASET_TICK_BYTES) {
      unsigned long long most = d->max_bytes / DATASET_TICK_BYTES;
      char what[160];
      if (d->charged == d->accepted)
        snprintf(what, sizeof what, "more than %llu accepted ticks at %d bytes a tick", most,
                 DATASET_TICK_BYTES);
      else
        snprintf(what, sizeof what,
                 "%llu accepted ticks in %d instruments, each counted as at least %d ticks, "
                 "make more than %llu at %d bytes a tick",
                 (unsigned long long)d->accepted, d->ns - (s->n == 0), DATASET_SERIES_TICKS, most,
                 DATASET_TICK_BYTES);
      snprintf(err, errlen,
               "%s:%llu: %s: past the memory bound of %llu MiB (--max-memory; default: half of "
               "this machine's memory); use a shorter range of the input, or raise --max-memory",
               name, (unsigned long long)tf.line, what, (unsigned long long)(d->max_bytes >> 20));
      rc = TC_ERANGE;
      break;
    }
    ds_rec *r = stage_next(&g);
    if (!r) {
      rc = TC_ENOMEM;
      break;
    }
    int first = s->n == 0;
    nn_features_raw(r->raw, first, t.px, first ? t.px : s->last_px, t.ts, first ? t.ts : s->last_ts,
                    t.qty, t.has_quote, t.bid, t.ask);
    r->ts = s->last_ts = t.ts;
    r->px = s->last_px = t.px;
    r->quoted = (uint8_t)t.has_quote;
    r->si = si;
    s->n++;
    s->ntrain = s->nfit = s->n;
    d->accepted++;
    d->charged += cost;
  }
  if (tickfile_ts_warning(&tf, msg, sizeof msg))
    fprintf(stderr, "%s\n", msg);
  tickfile_close(&tf);
  if (ds_commit(d, &g) != 0 && rc >= 0)
    rc = TC_ENOMEM;
  stage_free(&g);
  if (rc == TC_ENOMEM) {
    snprintf(err, errlen, "%s: out of memory after %llu ticks", name,
             (unsigned long long)d->accepted);
    return rc;
  }
  if (rc == TC_ERANGE) /* err says it */
    return rc;
  if (rc < 0) {
    snprintf(err, errlen, "%s", msg);
    return rc;
  }
  return 0;
}

void dataset_hold_out(dataset *d, double test_frac, int has_from, int64_t from) {
  for (int i = 0; i < d->ns; i++) {
    ds_series *s = &d->s[i];
    size_t ntest = (size_t)floor((double)s->n * test_frac);
    size_t nfit = s->n - (ntest < s->n ? ntest : s->n);
    while (has_from && nfit > 0 && s->ts[nfit - 1] >= from)
      nfit--;
    while (nfit > 0 && nfit < s->n && s->ts[nfit] == s->ts[nfit - 1])
      nfit++;
    s->nfit = s->ntrain = nfit;
  }
}

void dataset_split(dataset *d, double val_frac) {
  for (int i = 0; i < d->ns; i++) {
    ds_series *s = &d->s[i];
    size_t nval = (size_t)floor((double)s->nfit * val_frac);
    if (nval > s->nfit)
      nval = s->nfit;
    s->ntrain = s->nfit - nval;
  }
}

void dataset_stats(dataset *d) {
  /* Two passes in double: mean, then the mean squared deviation (no cancellation). */
  double sum[NN_F] = {0}, ss[NN_F] = {0}, n = 0, tss = 0, tn = 0;
  for (int i = 0; i < d->ns; i++) {
    const ds_series *s = &d->s[i];
    for (size_t t = 0; t < s->ntrain; t++)
      for (int f = 0; f < NN_F; f++)
        sum[f] += s->raw[t * NN_F + f];
    n += (double)s->ntrain;
  }
  for (int f = 0; f < NN_F; f++)
    d->feat_mean[f] = n > 0 ? sum[f] / n : 0.0;
  for (int i = 0; i < d->ns; i++) {
    const ds_series *s = &d->s[i];
    for (size_t t = 0; t < s->ntrain; t++)
      for (int f = 0; f < NN_F; f++) {
        double v = s->raw[t * NN_F + f] - d->feat_mean[f];
        ss[f] += v * v;
      }
    for (size_t t = 0; t + 1 < s->ntrain; t++) {
      double r = s->raw[(t + 1) * NN_F + 0];
      tss += r * r;
      tn += 1;
    }
  }
  for (int f = 0; f < NN_F; f++) {
    double sd = n > 0 ? sqrt(ss[f] / n) : 0.0;
    d->feat_std[f] = sd < 1e-12 || !isfinite(sd) ? 1.0 : sd;
  }
  double rms = tn > 0 ? sqrt(tss / tn) : 0.0;
  d->tgt_mean = 0.0;
  d->tgt_std = rms < 1e-12 || !isfinite(rms) ? 1.0 : rms;
}

void dataset_apply_stats(const dataset *d, nn_model *m) {
  for (int f = 0; f < NN_F; f++) {
    m->feat_mean[f] = (float)d->feat_mean[f];
    m->feat_std[f] = (float)d->feat_std[f];
  }
  m->tgt_mean[0] = (float)d->tgt_mean;
  m->tgt_std[0] = (float)d->tgt_std;
}

void dataset_print_summary(const dataset *d, const char *what) {
  fprintf(stderr, "%s: %llu ticks read, %llu accepted, %llu rejected, %d instruments\n", what,
          (unsigned long long)d->read, (unsigned long long)d->accepted,
          (unsigned long long)d->rej.total, d->ns);
  reject_tally_summary(&d->rej, stderr, "", REJECT_SUM_FILE);
}
