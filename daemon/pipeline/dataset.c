/* dataset.c: tick files into per-instrument series with raw features, the time split and the
 * training-part statistics, for `train` and `eval`. Holds everything in memory (about 57 bytes a
 * tick); streaming use goes through the engine instead. */
#include "daemon/pipeline/dataset.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/pipeline/tpool.h"
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
  ds_block *spare; /* the next block, made ahead (stage_spare) */
} ds_stage;

static void stage_free(ds_stage *g) {
  for (ds_block *b = g->head, *nx; b; b = nx) {
    nx = b->next;
    tc_big_sized_free(b, b->bytes);
  }
  if (g->spare)
    tc_big_sized_free(g->spare, g->spare->bytes);
  g->head = g->tail = g->spare = NULL;
}

static ds_block *block_new(size_t cap) {
  size_t bytes = sizeof(ds_block) + cap * sizeof(ds_rec);
  ds_block *nb = tc_big_sized_alloc(bytes);
  if (nb)
    nb->next = NULL, nb->n = 0, nb->cap = cap, nb->bytes = bytes;
  return nb;
}

/* The block that comes after the tail, made now when the next n records may not fit the tail (and
 * there is one: the first block is made by stage_next); NULL otherwise or on ENOMEM (then
 * stage_next makes it when it is needed). */
static ds_block *stage_spare(ds_stage *g, size_t n) {
  if (g->spare || !g->tail || g->tail->cap - g->tail->n >= n)
    return NULL;
  return g->spare = block_new(DS_BLOCK_NEXT);
}

/* Room for one more record, NULL on ENOMEM. */
static ds_rec *stage_next(ds_stage *g) {
  ds_block *b = g->tail;
  if (!b || b->n == b->cap) {
    ds_block *nb = b && g->spare ? g->spare : block_new(b ? DS_BLOCK_NEXT : DS_BLOCK_FIRST);
    if (!nb)
      return NULL;
    if (nb == g->spare)
      g->spare = NULL;
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

/* The copy of one staged block into the series' arrays, on several threads: job j copies the
 * records of series [lo[j], lo[j + 1]). */
typedef struct commit_job {
  dataset *d;
  const ds_block *b;
  int lo[DATASET_MAX_THREADS + 1];
} commit_job;

static void commit_job_run(void *arg, int j) {
  const commit_job *cj = arg;
  const ds_block *b = cj->b;
  int lo = cj->lo[j], hi = cj->lo[j + 1];
  for (size_t k = 0; k < b->n; k++) {
    const ds_rec *r = &b->r[k];
    if (r->si < lo || r->si >= hi)
      continue;
    ds_series *s = &cj->d->s[r->si];
    size_t i = s->nkept++;
    s->ts[i] = r->ts;
    s->px[i] = r->px;
    memcpy(s->raw + i * NN_F, r->raw, sizeof r->raw);
    s->quoted[i] = r->quoted;
  }
}

/* Moves every series to arrays of its n ticks in one new buffer: the ticks already kept, then
 * the staged ones in order, freeing g's blocks; on pool's threads (NULL: the caller's). On
 * ENOMEM the dataset stays as it was (the staged ticks dropped). */
static int ds_commit(dataset *d, ds_stage *g, tpool *pool) {
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
  /* Each thread copies the records of one range of series, about equal in bytes, so that the
   * arena's pages are first touched (cleared) on all of them. */
  commit_job cj = {d, NULL, {0}};
  int T = pool ? tpool_threads(pool) : 1;
  size_t acc = 0;
  for (int i = 0, j = 1; i < d->ns && j < T; i++) {
    acc += series_bytes(d->s[i].n);
    while (j < T && acc >= len / (size_t)T * (size_t)j)
      cj.lo[j++] = i + 1;
  }
  for (int j = 1; j < T; j++)
    if (!cj.lo[j])
      cj.lo[j] = d->ns;
  cj.lo[T] = d->ns;
  while (g->head) { /* each block freed once copied: the two copies are not resident at once */
    ds_block *b = g->head;
    cj.b = b;
    tpool_run(pool, T, commit_job_run, &cj);
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

/* Takes one decoded tick of line `line`: its series, the out_of_order check (a reject noted in
 * d->rej), the memory bound, its raw features, staged in g. 0, or TC_ENOMEM, or TC_ERANGE past
 * the bound (err says which line). */
static int ds_accept(dataset *d, ds_stage *g, const tick *t, uint64_t line, const char *name,
                     char *err, size_t errlen) {
  int si = series_of(d, t);
  if (si < 0)
    return TC_ENOMEM;
  ds_series *s = &d->s[si];
  if (s->n > 0 && t->ts < s->last_ts) {
    char msg[256];
    tick_ooo_message(msg, sizeof msg, t->ts, s->last_ts, s->sym);
    reject_tally_note(&d->rej, TICK_OUT_OF_ORDER, (reject_loc){name, REJECT_LINE, (int64_t)line},
                      msg);
    return 0;
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
             name, (unsigned long long)line, what, (unsigned long long)(d->max_bytes >> 20));
    return TC_ERANGE;
  }
  ds_rec *r = stage_next(g);
  if (!r)
    return TC_ENOMEM;
  int first = s->n == 0;
  nn_features_raw(r->raw, first, t->px, first ? t->px : s->last_px, t->ts,
                  first ? t->ts : s->last_ts, t->qty, t->has_quote, t->bid, t->ask);
  r->ts = s->last_ts = t->ts;
  r->px = s->last_px = t->px;
  r->quoted = (uint8_t)t->has_quote;
  r->si = si;
  s->n++;
  s->ntrain = s->nfit = s->n;
  d->accepted++;
  d->charged += cost;
  return 0;
}

/* The load on one thread: tickfile_next, line by line. 0, TC_ENOMEM, TC_ERANGE (err set), or
 * TC_EIO (msg set). */
static int load_serial(dataset *d, ds_stage *g, tickfile *tf, const char *name, char *msg,
                       size_t msglen, char *err, size_t errlen) {
  tick t;
  int reason, rc;
  while ((rc = tickfile_next(tf, &t, &reason, msg, msglen)) == 1) {
    d->read++;
    if (reason != TICK_OK)
      reject_tally_note(&d->rej, reason, (reject_loc){name, REJECT_LINE, (int64_t)tf->line}, msg);
    else if ((rc = ds_accept(d, g, &t, tf->line, name, err, errlen)) != 0)
      return rc;
  }
  return rc;
}

/* The load on several threads. The text is read in blocks of whole lines (on the caller's
 * thread, between sections); in each section of the pool, one job takes the previous block's
 * decoded lines in order (ds_accept, as load_serial does: the same series, rejects, features and
 * bound) while the other jobs decode the next block's lines, each a slice of them, with the
 * decoder of load_serial (tickfile_decode). A reject's message is made again only when the tally
 * prints it. So the dataset, the tally and what is printed are those of one thread, also where
 * a load stops early: each line's integer-timestamp notes (for tickfile_ts_warning) count when
 * the line is taken, not when it is decoded, and on a read error the whole lines before it are
 * decoded and taken first, as tickfile_next would have returned them. There are a
 * few slices per thread, so that the thread that takes, when done, decodes what is left: with one
 * decoding job per thread but the taker's, 2 threads loaded the benchmark's million ticks in
 * 0.24-0.33 s, with 4 slices per thread in 0.16-0.25 (one thread: 0.24-0.60, with the page
 * faults). */
#define DS_LINES 8192      /* lines per block, at most */
#define DS_TEXT (1 << 20)  /* a block takes no more lines once its text is this long */
#define DS_READ (64 << 10) /* bytes per read */
#define DS_SLICES 4        /* decoding slices of a block per thread */
typedef struct ds_dec {
  tick t;
  int reason;      /* TICK_OK or a reject reason; -1: a blank line */
  uint8_t ts_int;  /* the decoder counted an integer ts (tickfile_ts_seen.ints) */
  int8_t ts_odd;   /* and the unit it looks like (tickfile_ts_seen.odd_unit), or -1 */
  int64_t ts_seen; /* the ts it noted (odd_ts) */
} ds_dec;

typedef struct ds_block_text {
  char *text;
  size_t used, cap;
  size_t *off, *len; /* (DS_LINES) each line, without its "\n" or "\r\n" */
  ds_dec *dec;       /* (DS_LINES) */
  int n;             /* lines */
  uint64_t line0;    /* number of line 0 */
} ds_block_text;

typedef struct ds_par {
  dataset *d;
  ds_stage *g;
  tickfile *tf;
  const char *name;
  char *err;
  size_t errlen;
  ds_block_text blk[2];  /* the block being decoded and the one being taken, in turn */
  int dec, acc;          /* their indexes in blk; acc -1: none this section */
  int J;                 /* jobs of a section: 0 takes, 1..J-1 each decode a slice */
  ds_block *populate;    /* the staging block that job 1 makes resident first, or NULL */
  tickfile_ts_seen seen; /* the integer timestamps of the lines taken so far, as load_serial's
                            tickfile_next counts them: up to the line where the load stops */
  int rc;                /* job 0's result */
  char *carry;           /* bytes read past the last whole line */
  size_t carry_len, carry_cap;
  uint64_t line; /* the number of the last line given out */
  int eof;
} ds_par;

static int grow(char **b, size_t *cap, size_t need) {
  if (need <= *cap)
    return 0;
  size_t c = *cap ? *cap : DS_TEXT + DS_READ;
  while (c < need)
    c *= 2;
  char *n = realloc(*b, c);
  if (!n)
    return TC_ENOMEM;
  *b = n, *cap = c;
  return 0;
}

static void add_line(ds_block_text *k, size_t beg, size_t end) {
  size_t len = end - beg;
  if (len && k->text[beg + len - 1] == '\r')
    len--;
  k->off[k->n] = beg, k->len[k->n] = len;
  k->n++;
}

/* Reads the next block of whole lines into k. 0, or TC_EIO (errno set) or TC_ENOMEM; then k
 * holds the whole lines read before the error, as tickfile_next would have returned them. */
static int read_block(ds_par *p, ds_block_text *k) {
  k->n = 0;
  k->line0 = p->line + 1;
  if (grow(&k->text, &k->cap, p->carry_len + DS_READ) != 0)
    return TC_ENOMEM;
  if (p->carry_len)
    memcpy(k->text, p->carry, p->carry_len);
  k->used = p->carry_len;
  p->carry_len = 0;
  size_t beg = 0, scan = 0;
  while (k->n < DS_LINES && (k->n == 0 || beg < DS_TEXT)) {
    char *nl = memchr(k->text + scan, '\n', k->used - scan);
    if (nl) {
      add_line(k, beg, (size_t)(nl - k->text));
      beg = scan = (size_t)(nl - k->text) + 1;
      continue;
    }
    scan = k->used;
    if (p->eof) {
      if (beg < k->used) /* a last line without '\n' */
        add_line(k, beg, k->used);
      beg = k->used;
      break;
    }
    int got = grow(&k->text, &k->cap, k->used + DS_READ) != 0
                  ? TC_ENOMEM
                  : tickfile_read_raw(p->tf, k->text + k->used, DS_READ);
    if (got < 0) {
      p->line += (uint64_t)k->n;
      return got;
    }
    if (got == 0)
      p->eof = 1;
    k->used += (size_t)got;
  }
  p->line += (uint64_t)k->n;
  size_t rest = k->used - beg;
  if (rest) {
    if (grow(&p->carry, &p->carry_cap, rest) != 0)
      return TC_ENOMEM;
    memcpy(p->carry, k->text + beg, rest);
    p->carry_len = rest;
  }
  return 0;
}

/* Takes block k's decoded lines in order. 0, or ds_accept's error. */
static int take_block(ds_par *p, const ds_block_text *k) {
  dataset *d = p->d;
  for (int i = 0; i < k->n; i++) {
    const ds_dec *e = &k->dec[i];
    uint64_t line = k->line0 + (uint64_t)i;
    if (e->reason < 0)
      continue;
    p->seen.ints += e->ts_int;
    if (e->ts_odd >= 0 && !p->seen.odd++) /* (in line order: the first is the lowest) */
      p->seen.odd_line = line, p->seen.odd_ts = e->ts_seen, p->seen.odd_unit = e->ts_odd;
    d->read++;
    if (e->reason == TICK_OK) {
      int rc = ds_accept(d, p->g, &e->t, line, p->name, p->err, p->errlen);
      if (rc != 0)
        return rc;
      continue;
    }
    char msg[256] = "";
    if (!d->rej.quiet && d->rej.total < REJECT_SHOWN) { /* the tally prints this one */
      tick t;
      int again;
      tickfile_ts_seen seen = {0}; /* (not merged: the decoding job's counted it) */
      tickfile_decode(p->tf, line, k->text + k->off[i], k->len[i], &t, &again, &seen, msg,
                      sizeof msg);
    }
    reject_tally_note(&d->rej, e->reason, (reject_loc){p->name, REJECT_LINE, (int64_t)line}, msg);
  }
  return 0;
}

static void par_job(void *arg, int j) {
  ds_par *p = arg;
  if (j == 0) {
    if (p->acc >= 0 && p->rc == 0)
      p->rc = take_block(p, &p->blk[p->acc]);
    return;
  }
  if (j == 1 && p->populate) /* the taker's next block: its first touch off the taker's thread */
    tc_big_populate(p->populate, p->populate->bytes);
  ds_block_text *k = &p->blk[p->dec];
  int parts = p->J - 1;
  int lo = (int)((int64_t)k->n * (j - 1) / parts), hi = (int)((int64_t)k->n * j / parts);
  for (int i = lo; i < hi; i++) {
    ds_dec *e = &k->dec[i];
    tickfile_ts_seen seen = {0};
    if (!tickfile_decode(p->tf, k->line0 + (uint64_t)i, k->text + k->off[i], k->len[i], &e->t,
                         &e->reason, &seen, NULL, 0))
      e->reason = -1;
    e->ts_int = (uint8_t)seen.ints;
    e->ts_odd = seen.odd ? (int8_t)seen.odd_unit : -1;
    e->ts_seen = seen.odd_ts;
  }
}

/* 0, TC_ENOMEM, TC_ERANGE (err set), or TC_EIO (msg set). */
static int load_parallel(dataset *d, ds_stage *g, tickfile *tf, const char *name, tpool *pool,
                         char *msg, size_t msglen, char *err, size_t errlen) {
  ds_par p = {.d = d, .g = g, .tf = tf, .name = name, .err = err, .errlen = errlen, .acc = -1};
  /* Slices of a few per thread: the thread that takes decodes the slices left when it is done. */
  p.J = 1 + DS_SLICES * tpool_threads(pool);
  p.line = tf->line;
  int rc = 0;
  for (int b = 0; b < 2 && rc == 0; b++) {
    ds_block_text *k = &p.blk[b];
    k->off = malloc(DS_LINES * sizeof *k->off);
    k->len = malloc(DS_LINES * sizeof *k->len);
    k->dec = malloc(DS_LINES * sizeof *k->dec);
    if (!k->off || !k->len || !k->dec)
      rc = TC_ENOMEM;
  }
  /* Each section: job 0 takes block acc (the one decoded in the section before) while the others
   * decode slices of block dec (read just before); the last section only takes. A read error
   * ends the reading: the whole lines before it are decoded and taken, then it is the result. */
  int more = 1, read_rc = 0;
  while (rc == 0) {
    if (more) {
      p.dec = p.acc < 0 ? 0 : 1 - p.acc;
      read_rc = read_block(&p, &p.blk[p.dec]);
      if (read_rc != 0 && msglen)
        snprintf(msg, msglen, "%s:%llu: cannot read: %s", tf->path, (unsigned long long)p.line + 1,
                 read_rc == TC_ENOMEM ? "out of memory" : strerror(errno));
      more = p.blk[p.dec].n > 0;
    }
    if (!more && p.acc < 0)
      break;
    if (!more) { /* nothing to decode: the section only takes */
      p.dec = 1 - p.acc;
      p.blk[p.dec].n = 0;
    }
    /* The staging block the taker will move to in this section, made now and faulted in by a
     * decoding job: the first touch of 8 MiB of huge pages took the taker 10-20 % of a load on a
     * VM whose fresh memory costs 12 us a 4 KiB page (build/bench/bench_faults). */
    p.populate = p.acc >= 0 ? stage_spare(g, (size_t)p.blk[p.acc].n) : NULL;
    tpool_run(pool, p.J, par_job, &p);
    if (p.rc != 0) {
      rc = p.rc;
      break;
    }
    p.acc = more ? p.dec : -1;
    if (read_rc != 0)
      more = 0;
  }
  if (rc == 0)
    rc = read_rc;
  tickfile_ts_merge(tf, &p.seen);
  for (int b = 0; b < 2; b++)
    free(p.blk[b].text), free(p.blk[b].off), free(p.blk[b].len), free(p.blk[b].dec);
  free(p.carry);
  return rc;
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
  ds_stage g = {NULL, NULL, NULL};
  tpool *pool = NULL;
  int threads = d->threads < DATASET_MAX_THREADS ? d->threads : DATASET_MAX_THREADS;
  if (threads > 1 && tpool_new(&pool, threads) != 0)
    pool = NULL; /* (then on this thread) */
  if (pool && tpool_threads(pool) > 1)
    rc = load_parallel(d, &g, &tf, name, pool, msg, sizeof msg, err, errlen);
  else
    rc = load_serial(d, &g, &tf, name, msg, sizeof msg, err, errlen);
  char warn[512];
  if (tickfile_ts_warning(&tf, warn, sizeof warn))
    fprintf(stderr, "%s\n", warn);
  tickfile_close(&tf);
  if (ds_commit(d, &g, pool) != 0 && rc >= 0)
    rc = TC_ENOMEM;
  tpool_destroy(pool);
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
