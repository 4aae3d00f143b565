/* preplay.c: the replay on several threads (see preplay.h for the design). One mutex guards the
 * ring of chunk slots, the ready queue of shards and the counters that move work between threads;
 * it is taken a few times per chunk, part and shard, never per record. Records and text are read
 * and written without it: a slot's arrays belong to the reader while it fills, to the router of
 * each part, to the worker stepping a shard for that shard's log, then to the writer, and every
 * hand-over goes through the mutex.
 * What crosses between threads is kept small, because on a many-core CPU every cache line that
 * one core writes and another reads costs a transfer: the text (reader -> router and stepper), a
 * shard number per record (router -> steppers and writer), each shard's log of results (stepper
 * -> writer) and, when a shard changes workers, its instruments' states. A record is decoded on
 * the worker that steps it. */
#include "daemon/pipeline/preplay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/pipeline/encode.h"
#include "ingest/fmt.h"
#include "nn/base/bigbuf.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"

#define PREPLAY_CHUNK 8192       /* records per chunk by default */
#define PREPLAY_BLOCK 65536      /* bytes per read of a file */
#define PREPLAY_BYTES (64 << 20) /* the longest message preplay_add takes */
/* A chunk takes no more records once its text is this long. A chunk of 8192 lines of 580 bytes
 * (ticks as JSON with other fields) held 4.75 MB, the ring of 2 threads 24 MB: the reader's
 * read() into it faulted pages in and missed the cache all the way, and `replay --threads 2` on
 * 200,000 such lines (bench/gen_wide.py) took 0.26-0.28 s against 0.21-0.25 s on one thread
 * (lines of 9 KB: 0.42-0.45 s against 0.10-0.12). With 1 MiB it takes 0.15-0.17 s (9 KB:
 * 0.09-0.10 s, as one thread); docs/BENCHMARKS.md, "Wide lines". The benchmark's CSV lines
 * (62 bytes) fill 8192 records in 0.5 MB, unchanged. */
#define PREPLAY_TEXT (1 << 20)
#define PREPLAY_PART 256      /* fewest records per decode part */
#define PREPLAY_BUCKETS 65536 /* symbol hash buckets, each placed in one shard */
/* A shard's records are spread over the chunk, and another thread read or routed them: the first
 * byte of each missed the cache: 78 % of tickfile_decode's samples, most of the 10 ms it took
 * more than on one thread per million ticks (perf record, perf annotate). It prefetches the text of
 * the record this many ahead of the one it decodes. */
#define PREFETCH_AHEAD 8
#define NO_SHARD 0xFFFF /* the shard of a blank line: none */
#define ST_BLANK 0xFF   /* a log entry's status for a record that held no tick after all */
/* Shards of instruments per worker. A shard's chunk is stepped by whichever worker is free, so
 * that a worker on a slower core (another process on it) steps fewer and the others more,
 * instead of the slowest setting the pace. `replay --threads 2`, 1M ticks of 256 instruments,
 * medians of 10: with a busy loop at nice 5 on core 0, 0.451 s against 0.537 s with a fixed half
 * of the instruments per worker; at nice 0, 0.565 against 0.663 s; idle, 1-3 % slower or the
 * same (docs/BENCHMARKS.md, "Shards that any worker steps"). In process (bench_replay
 * --pipeline) 2 and 4 per worker took the same time on the idle machine (4 per worker was a
 * little slower with the busy loop: narrower waves). */
#define PREPLAY_SHARDS 2
/* Symbol buckets each shard of a row of N shards (as many as workers) takes before the next row
 * is opened: a wave of fewer instruments steps slower (bench_replay --pipeline, H = 64, 2
 * workers: 1 instrument a shard 0.29 s, 2 0.21 s, 4 to 64 0.17 s), so an input of few
 * instruments stays on the first N shards. */
#define PREPLAY_FILL 8
/* A log entry: status (TICK_OK or a reason), sym length, text length (2 bytes, little-endian),
 * then the sym (when kept: cfg.keep_sym, and out_of_order rejects), then the text (the
 * prediction with its '\n', or an out_of_order tick's ts as 8 bytes). */
#define ENTRY_HEAD 4
/* The longest entry of a prediction as a JSON object, with the sym kept or not (an out_of_order
 * reject's entry, sym and ts, is shorter than either). */
#define ENTRY_MAX(keep) (ENTRY_HEAD + ((keep) ? TICK_SYM_MAX : 0) + ENC_PRED_MAX + 1)
/* The longest entry of a CSV row, with and without the scale head's columns. A chunk's logs are
 * laid out by the longest entry, so with CSV rows the 8192 of a chunk (1.65 MB without the scale
 * head and the kept sym) fit one huge page with the chunk's text (see place_out). By ENTRY_MAX
 * they spanned 5.5 MB, each shard's log began in another huge page, and a replay on 2 threads
 * cleared 15 huge pages for logs of under 3 MB (11-26 ms of CPU on this VM in perf record;
 * docs/BENCHMARKS.md, "Replay on several threads"). */
#define ENTRY_CSV_MAX(std, keep) (ENTRY_HEAD + ((keep) ? TICK_SYM_MAX : 0) + ENC_CSV_MAX(std) + 1)

/* What a Kafka message's record has beyond its text. */
typedef struct prp_msg {
  uint32_t koff; /* the key: bytes [koff, koff + klen) */
  int32_t klen;  /* -1: none */
  int32_t part;  /* partition */
  int32_t null;  /* no value */
  int64_t pos;   /* offset */
} prp_msg;

struct preplay_chunk {
  uint64_t seq;      /* place in the input, from 0 */
  int n;             /* records */
  int cap;           /* records it may hold (cfg.chunk) */
  uint32_t *off;     /* (cap) each record's text: bytes [off, off + len) */
  uint32_t *len;     /* (cap) */
  int64_t line0;     /* lines: the number of record 0 (record i is line line0 + i) */
  prp_msg *msg;      /* (cap) messages: the rest of each record; NULL for lines */
  char *bytes;       /* the records' text */
  size_t used;       /* bytes in use */
  size_t bcap;       /* bytes allocated */
  uint16_t *shard;   /* (cap) the shard of each record, NO_SHARD for a blank line */
  int32_t *sidx;     /* (cap) each part's records grouped by shard, in input order */
  uint32_t *poff;    /* (maxparts, shards + 1) where each part's group of each shard starts in
                        sidx */
  char *out;         /* (n * emax) one log per shard: an entry for each of its records,
                        in input order; no cache line is written by two workers at once. In
                        bytes, after the text (see place_out) */
  size_t *base;      /* (shards) start of each shard's log in out */
  uint32_t *cnt;     /* (shards) records of each shard, summed over the parts */
  int nparts;        /* routing parts */
  int parts_claimed; /* handed to a worker so far (under mu) */
  int parts_done;    /* routed so far (under mu) */
  int routed;        /* every part routed and the logs laid out (under mu) */
  int shards_done;   /* shards stepped through it (under mu) */
};

/* One shard: the instruments of the symbol buckets given to it, with their states, stepped one
 * chunk after the other by whichever worker is free. */
typedef struct prp_shard {
  _Alignas(64) engine_book b; /* (each shard on cache lines of its own) */
  uint64_t next;              /* the next chunk it steps (under mu) */
  int queued;                 /* in the ready queue or being stepped (under mu) */
  int last;                   /* the worker that stepped it last, -1 before (under mu) */
} prp_shard;

/* One worker: an engine's scratch, into which it swaps the book of the shard it steps, and room
 * to gather a shard's ticks. */
typedef struct prp_worker {
  _Alignas(64) preplay *p; /* (each worker on cache lines of its own) */
  int id;                  /* 0 .. threads-1 */
  pthread_t th;            /* the thread */
  int started;             /* th runs (worker 0 is the caller's thread: none) */
  int made;                /* e is made (worker 0 makes it when it first helps) */
  engine e;                /* scratch (its own book stays empty) */
  eng_tick *loc;           /* (chunk) a shard's ticks of one chunk, in input order */
  int32_t *idx;            /* (chunk) their records */
  uint32_t *cnt;           /* (shards) records by shard in the part it routes */
  uint32_t *pos;           /* (shards) where the next of each shard's goes in sidx */
  double route_us;         /* CPU time in route_part */
  double step_us;          /* CPU time in step_shard: decoding, stepping, encoding */
  double cpu_us;           /* CPU time of the thread (at its end); worker 0: making its engine */
  double wait_us;          /* wall time waiting for work (worker 0: for work or a chunk) */
  char err[8];             /* a decoder's message buffer (not read: errlen 0) */
} prp_worker;

struct preplay {
  preplay_cfg cfg;
  int N;                           /* workers */
  int S;                           /* shards */
  int K;                           /* chunk slots */
  size_t emax;                     /* the longest log entry: ENTRY_MAX or ENTRY_CSV_MAX */
  preplay_chunk *ck;               /* (K) the ring: chunk seq lives in slot seq % K */
  prp_worker *wk;                  /* (N) */
  prp_shard *sh;                   /* (S) */
  _Alignas(64) pthread_mutex_t mu; /* guards what the comments say is under mu */
  pthread_cond_t work;             /* workers wait here for a part, a routed chunk, the end */
  pthread_cond_t done;             /* the caller's thread waits here for the oldest chunk */
  uint64_t filled;                 /* chunks submitted (under mu) */
  uint64_t written;                /* chunks emitted and freed (under mu) */
  int eof;                         /* no more chunks will come (under mu) */
  int stop;                        /* workers must return (under mu) */
  int failed;            /* 0, or TC_ENOMEM from a worker, TC_EIO from a callback (under mu) */
  uint64_t buckets;      /* symbol buckets given a shard so far (under mu) */
  _Atomic uint16_t *map; /* (PREPLAY_BUCKETS) shard + 1 of each symbol bucket, 0: none yet */
  int *rq;               /* (S) the ready queue: shards whose next chunk is routed (under mu) */
  int rq_head, rq_len;   /* (under mu) */
  int waiting;           /* workers waiting on work (under mu) */
  int caller_waits;      /* the caller's thread waits on done (under mu) */
  uint64_t steps;        /* shard steps done, one per shard and chunk (under mu) */
  /* The reader (the caller's thread). */
  char *carry; /* bytes read past the last line of the previous chunk */
  size_t carry_len, carry_cap;
  uint64_t line; /* number of the last line given out */
  int lines_eof; /* the file has no more bytes */
  /* The writer (the caller's thread). */
  _Alignas(64) uint64_t read; /* records with a tick, emitted so far */
  size_t *cur;                /* (shards) the next entry of each shard's log of a chunk */
  double read_us;             /* the caller's thread: CPU time reading (preplay_fill_lines) */
  double write_us;            /* and writing (walk, with emit and chunk_done) */
};

/* The calling thread's CPU time for preplay_get_stats, with cfg.stats; else 0 (the clock is a
 * system call, and the pipeline reads it a few times per chunk). */
static inline double stage_us(const preplay *p) {
  return p->cfg.stats ? tc_thread_cpu_us() : 0;
}

/* Record i of c, as the callbacks see it. */
static inline void rec_at(const preplay_chunk *c, int i, preplay_rec *r) {
  if (c->msg) {
    const prp_msg *m = &c->msg[i];
    *r = (preplay_rec){c->off[i], c->len[i], m->koff, m->klen, m->part, m->null, m->pos};
  } else {
    *r = (preplay_rec){c->off[i], c->len[i], 0, -1, REJECT_LINE, 0, c->line0 + i};
  }
}

/* ---- set-up ---- */

/* n zeroed bytes on cache lines of their own: what one thread writes on every record must not
 * share a line with what another thread touches (false sharing cost the decoders a fifth). */
static void *alloc_lines(size_t n) {
  n = (n + 63) / 64 * 64;
  void *b = aligned_alloc(64, n ? n : 64);
  if (b)
    memset(b, 0, n);
  return b;
}

static void chunk_free(preplay_chunk *c) {
  free(c->off), free(c->len), free(c->msg), free(c->shard), free(c->sidx);
  free(c->poff), free(c->base), free(c->cnt);
  tc_big_free(c->bytes, c->bcap);
}

/* Routing parts of a chunk of cap records: a few per worker, so that the work balances, of at
 * least PREPLAY_PART records. */
static int max_parts(int cap, int N) {
  int parts = (cap + PREPLAY_PART - 1) / PREPLAY_PART;
  return parts < 4 * N ? parts : 4 * N;
}

static int chunk_init(preplay_chunk *c, int cap, int N, int S, size_t emax) {
  size_t n = (size_t)cap;
  c->cap = cap;
  /* Room for records of 256 bytes and the logs from the start: growing moves the text, and on a
   * virtual machine each new page costs a fault again. Untouched pages cost nothing. The text
   * with the logs after it is the slot's large buffer, on huge pages (nn/base/bigbuf.h): with
   * 4 KiB pages the first fill of text and logs took 1900 faults, 11-21 us each on this VM, in a
   * replay of a million ticks on 2 threads (2961 faults against 1048 on one). */
  c->bcap = n * 256 + PREPLAY_BLOCK + n * emax;
  c->off = malloc(n * sizeof *c->off);
  c->len = malloc(n * sizeof *c->len);
  c->bytes = tc_big_alloc(c->bcap);
  c->shard = malloc(n * sizeof *c->shard);
  c->sidx = malloc(n * sizeof *c->sidx);
  c->poff = malloc((size_t)max_parts(cap, N) * (size_t)(S + 1) * sizeof *c->poff);
  c->base = malloc((size_t)S * sizeof *c->base);
  c->cnt = malloc((size_t)S * sizeof *c->cnt);
  return c->off && c->len && c->bytes && c->shard && c->sidx && c->poff && c->base && c->cnt
             ? 0
             : TC_ENOMEM;
}

static void *worker_main(void *arg);

int preplay_new(preplay **out, const preplay_cfg *cfg) {
  *out = NULL;
  if (!cfg->m || cfg->threads < 1 || cfg->threads > PREPLAY_MAX_THREADS || !cfg->route ||
      !cfg->decode || !cfg->emit || !cfg->rej || cfg->chunk < 0 || cfg->shards < 0)
    return TC_EINVAL;
  preplay *p = alloc_lines(sizeof *p); /* the writer's fields apart from what workers read */
  if (!p)
    return TC_ENOMEM;
  p->cfg = *cfg;
  if (!p->cfg.chunk)
    p->cfg.chunk = PREPLAY_CHUNK;
  p->N = cfg->threads;
  p->S = cfg->shards > 0 ? cfg->shards : p->N * PREPLAY_SHARDS;
  if (p->S > PREPLAY_MAX_SHARDS)
    p->S = PREPLAY_MAX_SHARDS;
  /* Room for every worker to be a chunk apart from the slowest, and for one being filled and
   * one being written. */
  p->K = p->N + 3 < 32 ? p->N + 3 : 32;
  p->emax =
      p->cfg.jsonl ? ENTRY_MAX(p->cfg.keep_sym) : ENTRY_CSV_MAX(p->cfg.m->gauss, p->cfg.keep_sym);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work, NULL);
  pthread_cond_init(&p->done, NULL);
  p->ck = calloc((size_t)p->K, sizeof *p->ck);
  p->wk = alloc_lines((size_t)p->N * sizeof *p->wk);
  p->sh = alloc_lines((size_t)p->S * sizeof *p->sh);
  p->rq = malloc((size_t)p->S * sizeof *p->rq);
  p->map = calloc(PREPLAY_BUCKETS, sizeof *p->map);
  p->cur = alloc_lines((size_t)p->S * sizeof *p->cur);
  int rc = p->ck && p->wk && p->sh && p->rq && p->map && p->cur ? 0 : TC_ENOMEM;
  for (int k = 0; rc == 0 && k < p->K; k++)
    rc = chunk_init(&p->ck[k], p->cfg.chunk, p->N, p->S, p->emax);
  for (int s = 0; rc == 0 && s < p->S; s++) {
    p->sh[s].last = -1;
    rc = engine_book_init(&p->sh[s].b, p->cfg.m);
  }
  for (int i = 0; rc == 0 && i < p->N; i++) {
    prp_worker *w = &p->wk[i];
    w->p = p;
    w->id = i;
    w->loc = malloc((size_t)p->cfg.chunk * sizeof *w->loc);
    w->idx = malloc((size_t)p->cfg.chunk * sizeof *w->idx);
    w->cnt = alloc_lines((size_t)p->S * sizeof *w->cnt);
    w->pos = alloc_lines((size_t)p->S * sizeof *w->pos);
    if (!w->loc || !w->idx || !w->cnt || !w->pos)
      rc = TC_ENOMEM;
  }
  for (int i = 1; rc == 0 && i < p->N; i++) {
    if (pthread_create(&p->wk[i].th, NULL, worker_main, &p->wk[i]) != 0)
      rc = TC_ENOMEM;
    else
      p->wk[i].started = 1;
  }
  if (rc != 0) {
    preplay_destroy(p);
    return rc;
  }
  *out = p;
  return 0;
}

/* Makes every worker return and waits for them. */
static void stop_workers(preplay *p) {
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->N; i++)
    if (p->wk[i].started) {
      pthread_join(p->wk[i].th, NULL);
      p->wk[i].started = 0;
    }
}

void preplay_destroy(preplay *p) {
  if (!p)
    return;
  if (p->wk)
    stop_workers(p);
  for (int i = 0; p->wk && i < p->N; i++) {
    engine_free(&p->wk[i].e);
    free(p->wk[i].loc), free(p->wk[i].idx), free(p->wk[i].cnt), free(p->wk[i].pos);
  }
  for (int s = 0; p->sh && s < p->S; s++)
    engine_book_free(&p->sh[s].b);
  for (int k = 0; p->ck && k < p->K; k++)
    chunk_free(&p->ck[k]);
  free(p->ck), free(p->wk), free(p->sh), free(p->rq), free((void *)p->map), free(p->carry);
  free(p->cur);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->work);
  pthread_cond_destroy(&p->done);
  free(p);
}

/* ---- the workers ---- */

/* The shard of an instrument, from its symbol's bytes: its hash bucket's, given when the bucket
 * is first seen: round robin over the first row of N shards (N = workers) until each has
 * PREPLAY_FILL buckets, then over the next row, and so on; once all are filled, round robin over
 * all. Any placement gives the same output (preplay.h); this one spreads instruments evenly
 * without making waves narrow. */
static int shard_of(preplay *p, const char *sym, size_t len) {
  uint64_t h = len, v; /* a multiplicative hash, 8 bytes at a time */
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    memcpy(&v, sym + i, 8);
    h = (h ^ v) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
  }
  if (i < len) { /* 1..7 bytes left, read without a call to memcpy (a fifth of the routing) */
    size_t n = len - i;
    const char *t = sym + i;
    uint32_t lo, hi;
    if (n >= 4) { /* two 4-byte words, overlapping when n < 8 */
      memcpy(&lo, t, 4);
      memcpy(&hi, t + n - 4, 4);
      v = (uint64_t)hi << 32 | lo;
    } else {
      v = (uint64_t)(unsigned char)t[0] << 16 | (uint64_t)(unsigned char)t[n / 2] << 8 |
          (unsigned char)t[n - 1];
    }
    h = (h ^ v) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
  }
  size_t b = (size_t)((h * 0xBF58476D1CE4E5B9ull) >> 48);
  uint16_t s = atomic_load_explicit(&p->map[b], memory_order_acquire);
  if (s)
    return s - 1;
  pthread_mutex_lock(&p->mu);
  s = atomic_load_explicit(&p->map[b], memory_order_relaxed);
  if (!s) {
    uint64_t k = p->buckets++, n = (uint64_t)p->N, row = n * PREPLAY_FILL;
    uint64_t sh = k < (uint64_t)p->S * PREPLAY_FILL ? k / row * n + k % n : k % (uint64_t)p->S;
    s = (uint16_t)((sh < (uint64_t)p->S ? sh : k % (uint64_t)p->S) + 1);
    atomic_store_explicit(&p->map[b], s, memory_order_release);
  }
  pthread_mutex_unlock(&p->mu);
  return s - 1;
}

/* The shard of record r: the one of its symbol, told by cfg.route or, when route cannot tell,
 * by decoding it here (with a worker number >= threads: its side notes do not count, the worker
 * that steps it decodes it again). A record that decodes to no tick may go to any shard, which
 * only reports the reject: the one of its position. NO_SHARD for a blank line. */
static int route_rec(prp_worker *w, const preplay_chunk *c, const preplay_rec *r) {
  preplay *p = w->p;
  const char *sym;
  size_t len;
  int h = p->cfg.route(p->cfg.ud, c->bytes, r, &sym, &len);
  if (h < 0)
    return NO_SHARD;
  if (h > 0)
    return shard_of(p, sym, len);
  tick t;
  int reason;
  if (p->cfg.decode(p->cfg.ud, p->N + w->id, c->bytes, r, &t, &reason, w->err, 0) &&
      reason == TICK_OK)
    return shard_of(p, t.sym, t.sym_len);
  return (int)((uint64_t)r->pos % (uint64_t)p->S);
}

/* Routes part k of chunk c: each record's shard, and the records grouped by shard in sidx
 * (poff says where); adds the records of each shard to w->cnt. */
static void route_part(prp_worker *w, preplay_chunk *c, int k) {
  preplay *p = w->p;
  int lo = (int)((int64_t)c->n * k / c->nparts), hi = (int)((int64_t)c->n * (k + 1) / c->nparts);
  memset(w->cnt, 0, (size_t)p->S * sizeof *w->cnt);
  for (int i = lo; i < hi; i++) {
    preplay_rec r;
    rec_at(c, i, &r);
    int s = route_rec(w, c, &r);
    c->shard[i] = (uint16_t)s;
    if (s != NO_SHARD)
      w->cnt[s]++;
  }
  uint32_t *off = c->poff + (size_t)k * (size_t)(p->S + 1), at = (uint32_t)lo;
  for (int s = 0; s < p->S; s++) {
    off[s] = at;
    at += w->cnt[s];
  }
  off[p->S] = at;
  memcpy(w->pos, off, (size_t)p->S * sizeof *w->pos);
  for (int i = lo; i < hi; i++)
    if (c->shard[i] != NO_SHARD)
      c->sidx[w->pos[c->shard[i]]++] = i;
}

/* Wakes the caller's thread when it waits for a chunk to finish, so that it helps with work that
 * has become ready (under mu). */
static void wake_caller(preplay *p) {
  if (p->caller_waits)
    pthread_cond_signal(&p->done);
}

/* Puts shard s in the ready queue (under mu). The caller wakes the workers. */
static void ready(preplay *p, int s) {
  p->sh[s].queued = 1;
  p->rq[(p->rq_head + p->rq_len++) % p->S] = s;
}

/* The last part of c is routed: each shard's log in c->out, and the shards waiting for c are
 * ready (under mu; the caller then wakes every worker). */
static void lay_out(preplay *p, preplay_chunk *c) {
  size_t at = 0;
  for (int s = 0; s < p->S; s++) {
    c->base[s] = at;
    at += (size_t)c->cnt[s] * p->emax;
  }
  c->routed = 1;
  for (int s = 0; s < p->S; s++)
    if (!p->sh[s].queued && p->sh[s].next == c->seq)
      ready(p, s);
  if (p->rq_len)
    wake_caller(p);
}

/* The JSONL src of record r: SRC:LINE for a line, TOPIC/PARTITION/OFFSET for a message, with
 * src cut to cfg.src_max bytes, as the one-thread replays write it. Returns its length. */
static size_t src_of(const preplay *p, const preplay_rec *r, char *buf) {
  size_t n = strlen(p->cfg.src);
  if (n > p->cfg.src_max)
    n = p->cfg.src_max;
  memcpy(buf, p->cfg.src, n);
  if (r->part < 0) {
    buf[n++] = ':';
    return n + fmt_u64(buf + n, (uint64_t)r->pos);
  }
  buf[n++] = '/';
  n += fmt_i64(buf + n, r->part);
  buf[n++] = '/';
  return n + fmt_i64(buf + n, r->pos);
}

/* Decodes shard s's records of c into w->loc (in input order), as the one-thread replay decodes
 * them: this decode is the one whose side notes count. Returns how many. */
static int decode_shard(prp_worker *w, int s, const preplay_chunk *c) {
  preplay *p = w->p;
  int k = 0;
  for (int part = 0; part < c->nparts; part++) {
    const uint32_t *off = c->poff + (size_t)part * (size_t)(p->S + 1) + s;
    for (uint32_t j = off[0]; j < off[1]; j++) {
      int i = c->sidx[j], reason;
      if (j + PREFETCH_AHEAD < off[1]) { /* see PREFETCH_AHEAD */
        const char *a = c->bytes + c->off[c->sidx[j + PREFETCH_AHEAD]];
        __builtin_prefetch(a);
        __builtin_prefetch(a + c->len[c->sidx[j + PREFETCH_AHEAD]] - 1); /* its last line */
      }
      preplay_rec r;
      rec_at(c, i, &r);
      eng_tick *t = &w->loc[k];
      if (!p->cfg.decode(p->cfg.ud, w->id, c->bytes, &r, &t->t, &reason, w->err, 0))
        reason = ST_BLANK; /* route said otherwise: a callback pair that disagrees */
      t->reason = reason;
      t->partition = r.part;
      w->idx[k++] = i;
    }
  }
  return k;
}

/* Decodes shard s's records of c, steps them through w's engine with s's book swapped in and
 * writes s's log. 0 or TC_ENOMEM. */
static int step_shard(prp_worker *w, int s, preplay_chunk *c) {
  preplay *p = w->p;
  int k = decode_shard(w, s, c);
  if (k == 0)
    return 0;
  engine_swap_book(&w->e, &p->sh[s].b);
  int rc = engine_process(&w->e, w->loc, k);
  engine_swap_book(&w->e, &p->sh[s].b);
  if (rc != 0)
    return rc;
  char *o = c->out + c->base[s], src[400];
  for (int j = 0; j < k; j++) {
    const eng_tick *t = &w->loc[j];
    int st = t->reason, keep = st == TICK_OUT_OF_ORDER || (st == TICK_OK && p->cfg.keep_sym);
    size_t sl = keep ? t->t.sym_len : 0, len = 0;
    char *e = o + ENTRY_HEAD;
    if (sl) {
      memcpy(e, t->t.sym, sl);
      e += sl;
    }
    if (st == TICK_OK) {
      if (p->cfg.jsonl) {
        preplay_rec r;
        rec_at(c, w->idx[j], &r);
        len = enc_pred_json(e, t, src, src_of(p, &r, src));
      } else {
        len = enc_pred_csv(e, t);
      }
      e[len++] = '\n';
    } else if (st == TICK_OUT_OF_ORDER) { /* the writer notes it, with its ts and sym */
      memcpy(e, &t->t.ts, 8);
      memcpy(e + 8, &t->prev_ts, 8);
      len = 16;
    }
    o[0] = (char)st;
    o[1] = (char)sl;
    o[2] = (char)(len & 0xFF);
    o[3] = (char)(len >> 8);
    o = e + len;
  }
  return 0;
}

/* A chunk with a routing part left, the oldest first (under mu), or NULL. */
static preplay_chunk *part_to_claim(preplay *p) {
  for (uint64_t s = p->written; s < p->filled; s++) {
    preplay_chunk *c = &p->ck[s % (uint64_t)p->K];
    if (c->parts_claimed < c->nparts)
      return c;
  }
  return NULL;
}

static void fail(preplay *p, int rc) { /* under mu */
  if (!p->failed)
    p->failed = rc;
  pthread_cond_broadcast(&p->work);
  pthread_cond_signal(&p->done);
}

/* Shard s is done with chunk c (under mu): on to its next chunk, ready at once when that one is
 * routed; the caller's thread learns when c is done, and the workers when everything is. */
static void stepped(preplay *p, int s, preplay_chunk *c) {
  prp_shard *sh = &p->sh[s];
  sh->queued = 0;
  sh->next++;
  if (++c->shards_done == p->S)
    pthread_cond_signal(&p->done);
  if (sh->next < p->filled && p->ck[sh->next % (uint64_t)p->K].routed) {
    ready(p, s);
    if (p->rq_len > 1) { /* the calling worker takes one */
      if (p->waiting)
        pthread_cond_signal(&p->work);
      wake_caller(p);
    }
  }
  if (++p->steps == p->filled * (uint64_t)p->S && p->eof)
    pthread_cond_broadcast(&p->work);
}

/* Place j of the ready queue (0: the head; under mu). */
static int *rq_at(preplay *p, int j) {
  return &p->rq[(p->rq_head + j) % p->S];
}

/* The shard that worker id steps next, taken out of the ready queue (not empty; under mu): the
 * first one it stepped last time, else the one ready longest. A shard's states and symbols stay
 * in the cache of the core that stepped them; on another core each access misses (they move
 * between the cores' caches). In process (bench_replay --pipeline, 1M ticks, H = 64, 256
 * instruments, 2 threads, 4 rounds alternating) this took 2.5 % off the wall time: 0.318-0.331 s
 * against 0.320-0.344 s, with stepping 1-3 % cheaper (measured before the preference was kept to
 * the oldest chunk, below). It only chooses among shards that are ready: a worker with none of
 * its own takes another's, so the work still balances itself; and only among those waiting for
 * the same chunk as the shard ready longest, so that the oldest chunk is not held back. */
static int take_ready(preplay *p, int id) {
  uint64_t head = p->sh[*rq_at(p, 0)].next; /* the oldest chunk a ready shard waits for */
  int j = 0;
  while (j < p->rq_len && (p->sh[*rq_at(p, j)].last != id || p->sh[*rq_at(p, j)].next != head))
    j++;
  if (j == p->rq_len)
    j = 0;
  int s = *rq_at(p, j);
  for (; j > 0; j--) /* those before it move up one place, in their order */
    *rq_at(p, j) = *rq_at(p, j - 1);
  p->rq_head = (p->rq_head + 1) % p->S;
  p->rq_len--;
  p->sh[s].last = id;
  return s;
}

/* Makes w's engine (its scratch). 0 or TC_ENOMEM. */
static int make_engine(prp_worker *w) {
  preplay *p = w->p;
  int rc = engine_init_exact(&w->e, p->cfg.m, p->cfg.chunk, ENGINE_WAVE);
  if (rc == 0 && p->cfg.interval > 0)
    engine_set_interval(&w->e, p->cfg.interval);
  if (rc == 0)
    rc = engine_set_adapt(&w->e, p->cfg.adapt);
  w->made = rc == 0;
  return rc;
}

/* One piece of work for w (under mu, which it lets go while it works): steps a ready shard
 * (take_ready) or, when none is ready, routes a part of the oldest submitted chunk that has one.
 * 1 when it did, 0 when there was nothing to do. */
static int work_one(prp_worker *w) {
  preplay *p = w->p;
  if (p->rq_len) {
    int s = take_ready(p, w->id);
    preplay_chunk *c = &p->ck[p->sh[s].next % (uint64_t)p->K];
    if (c->cnt[s]) {
      pthread_mutex_unlock(&p->mu);
      double t0 = stage_us(p);
      int rc = step_shard(w, s, c);
      w->step_us += stage_us(p) - t0;
      pthread_mutex_lock(&p->mu);
      if (rc != 0)
        fail(p, rc);
    }
    stepped(p, s, c);
    return 1;
  }
  preplay_chunk *c = part_to_claim(p);
  if (!c)
    return 0;
  int k = c->parts_claimed++;
  pthread_mutex_unlock(&p->mu);
  double t0 = stage_us(p);
  route_part(w, c, k);
  w->route_us += stage_us(p) - t0;
  pthread_mutex_lock(&p->mu);
  for (int s = 0; s < p->S; s++)
    c->cnt[s] += w->cnt[s];
  if (++c->parts_done == c->nparts) {
    lay_out(p, c);
    pthread_cond_broadcast(&p->work);
  }
  return 1;
}

/* A worker of its own thread (1 .. threads-1): makes its engine's scratch (here, so that the
 * workers zero their buffers at once, while the caller's thread reads), then works until
 * everything submitted is stepped after the end of the input. */
static void *worker_main(void *arg) {
  prp_worker *w = arg;
  preplay *p = w->p;
  int rc = make_engine(w);
  pthread_mutex_lock(&p->mu);
  if (rc != 0)
    fail(p, rc);
  while (!p->stop && !p->failed) {
    if (work_one(w))
      continue;
    if (p->eof && p->steps == p->filled * (uint64_t)p->S)
      break;
    double t0 = tc_mono_s();
    p->waiting++;
    pthread_cond_wait(&p->work, &p->mu);
    p->waiting--;
    w->wait_us += (tc_mono_s() - t0) * 1e6;
  }
  pthread_mutex_unlock(&p->mu);
  w->cpu_us = stage_us(p);
  return NULL;
}

/* The caller's thread, waiting for the oldest chunk to finish, works as worker 0 meanwhile (under
 * mu), so that `--threads N` keeps N threads busy and no more: with a thread of its own for each
 * worker besides the caller's, the caller woke for every chunk on a core that the workers kept
 * busy, and each wake-up preempted one of them (futex calls cost 10-60 us on this VM). 1 when it
 * did some work or made its engine (mu was let go meanwhile), 0 when there was nothing to do. */
static int help(preplay *p) {
  prp_worker *w = &p->wk[0];
  if (!w->made) {
    pthread_mutex_unlock(&p->mu);
    double t0 = stage_us(p);
    int rc = make_engine(w);
    w->cpu_us += stage_us(p) - t0;
    pthread_mutex_lock(&p->mu);
    if (rc != 0)
      fail(p, rc);
    return 1; /* mu was let go: the caller looks again before it waits */
  }
  return work_one(w);
}

/* Waits on done for the oldest chunk or for work to help with (under mu). */
static void caller_wait(preplay *p) {
  double t0 = tc_mono_s();
  p->caller_waits = 1;
  pthread_cond_wait(&p->done, &p->mu);
  p->caller_waits = 0;
  p->wk[0].wait_us += (tc_mono_s() - t0) * 1e6;
}

/* ---- the reader ---- */

int preplay_count(const preplay_chunk *c) {
  return c->n;
}

/* Room for n more bytes in c->bytes, whose text (c->used bytes) it keeps. 0 or TC_ENOMEM. */
static int bytes_reserve(preplay_chunk *c, size_t n) {
  if (c->bcap - c->used >= n)
    return 0;
  size_t cap = c->bcap;
  while (cap - c->used < n)
    cap *= 2;
  char *b = tc_big_alloc(cap);
  if (!b)
    return TC_ENOMEM;
  memcpy(b, c->bytes, c->used); /* not the rest: a copy of untouched pages would fault them in */
  tc_big_free(c->bytes, c->bcap);
  c->bytes = b;
  c->bcap = cap;
  return 0;
}

int preplay_add(preplay_chunk *c, const char *val, size_t len, const char *key, size_t klen,
                int32_t part, int64_t off) {
  if (len > PREPLAY_BYTES || klen > PREPLAY_BYTES || bytes_reserve(c, len + klen) != 0)
    return TC_ENOMEM;
  if (!c->msg && !(c->msg = malloc((size_t)c->cap * sizeof *c->msg)))
    return TC_ENOMEM;
  int i = c->n++;
  c->off[i] = (uint32_t)c->used;
  c->len[i] = (uint32_t)len;
  c->msg[i] = (prp_msg){0, -1, part, !val, off};
  if (val)
    memcpy(c->bytes + c->used, val, len);
  c->used += len;
  if (key) {
    c->msg[i].koff = (uint32_t)c->used;
    c->msg[i].klen = (int32_t)klen;
    memcpy(c->bytes + c->used, key, klen);
    c->used += klen;
  }
  return c->used >= PREPLAY_TEXT ? 0 : c->cap - c->n;
}

/* The line c->bytes[beg, end) as the next record, without a trailing '\r'. */
static void add_line(preplay *p, preplay_chunk *c, size_t beg, size_t end) {
  if (end > beg && c->bytes[end - 1] == '\r')
    end--;
  p->line++;
  c->off[c->n] = (uint32_t)beg;
  c->len[c->n++] = (uint32_t)(end - beg);
}

/* Keeps c->bytes[beg, used) for the next chunk. 0 or TC_ENOMEM. */
static int keep_carry(preplay *p, preplay_chunk *c, size_t beg) {
  size_t n = c->used - beg;
  if (n > p->carry_cap) {
    char *b = realloc(p->carry, n);
    if (!b)
      return TC_ENOMEM;
    p->carry = b;
    p->carry_cap = n;
  }
  memcpy(p->carry, c->bytes + beg, n);
  p->carry_len = n;
  c->used = beg;
  return 0;
}

static int fill_lines(preplay *p, preplay_chunk *c, tickfile *tf);

int preplay_fill_lines(preplay *p, preplay_chunk *c, tickfile *tf) {
  double t0 = stage_us(p);
  int rc = fill_lines(p, c, tf);
  p->read_us += stage_us(p) - t0;
  return rc;
}

static int fill_lines(preplay *p, preplay_chunk *c, tickfile *tf) {
  if (!p->line)
    p->line = tf->line;
  c->line0 = (int64_t)p->line + 1;
  if (bytes_reserve(c, p->carry_len + PREPLAY_BLOCK) != 0)
    return TC_ENOMEM;
  if (p->carry_len) /* carry is NULL before the first chunk */
    memcpy(c->bytes, p->carry, p->carry_len);
  c->used = p->carry_len;
  p->carry_len = 0;
  size_t beg = 0, scan = 0; /* the current line's start; where to look for its end */
  while (c->n < c->cap && (c->n == 0 || beg < PREPLAY_TEXT)) {
    char *nl = memchr(c->bytes + scan, '\n', c->used - scan);
    if (nl) {
      add_line(p, c, beg, (size_t)(nl - c->bytes));
      beg = scan = (size_t)(nl - c->bytes) + 1;
      continue;
    }
    scan = c->used;
    if (p->lines_eof) {
      if (beg < c->used) /* a last line without '\n' */
        add_line(p, c, beg, c->used);
      return 0;
    }
    if (bytes_reserve(c, PREPLAY_BLOCK) != 0)
      return TC_ENOMEM;
    int got = tickfile_read_raw(tf, c->bytes + c->used, PREPLAY_BLOCK);
    if (got < 0)
      return got;
    if (got == 0)
      p->lines_eof = 1;
    c->used += (size_t)got;
  }
  return keep_carry(p, c, beg) != 0 ? TC_ENOMEM : 1;
}

/* ---- the writer ---- */

/* An out_of_order reject, with its message (ts, and the instrument's last accepted ts then) only
 * when the tally will print it. */
static void note_ooo(preplay *p, const preplay_rec *r, const char *sym, size_t sl, const char *e) {
  char msg[256] = "";
  reject_tally *rej = p->cfg.rej;
  if (!rej->quiet && rej->total < REJECT_SHOWN) {
    int64_t ts, prev;
    char name[TICK_SYM_MAX + 1];
    memcpy(&ts, e, 8);
    memcpy(&prev, e + 8, 8);
    memcpy(name, sym, sl);
    name[sl] = 0;
    tick_ooo_message(msg, sizeof msg, ts, prev, name);
  }
  reject_tally_note(rej, TICK_OUT_OF_ORDER, (reject_loc){p->cfg.src, r->part, r->pos}, msg);
}

/* A decode reject: its message is made again (by the same decoder, with a worker number whose
 * side notes do not count) only when the tally will print it, so the workers never format one. */
static void note_reject(preplay *p, const preplay_chunk *c, int i, int reason) {
  preplay_rec r;
  rec_at(c, i, &r);
  char err[512] = "";
  reject_tally *rej = p->cfg.rej;
  if (!rej->quiet && rej->total < REJECT_SHOWN) {
    tick t;
    int again;
    p->cfg.decode(p->cfg.ud, 2 * p->N, c->bytes, &r, &t, &again, err, sizeof err);
  }
  reject_tally_note(rej, reason, (reject_loc){p->cfg.src, r.part, r.pos}, err);
}

/* Emits chunk c's predictions and notes its rejects, in input order, as the one-thread replays
 * do. Each record's result is the next entry of its shard's log. 0, or TC_EIO when a callback
 * stopped it. */
static int walk(preplay *p, const preplay_chunk *c) {
  memcpy(p->cur, c->base, (size_t)p->S * sizeof *p->cur);
  for (int i = 0; i < c->n; i++) {
    int s = c->shard[i];
    if (s == NO_SHARD)
      continue;
    const char *e = c->out + p->cur[s], *sym = e + ENTRY_HEAD;
    int st = (unsigned char)e[0];
    size_t sl = (unsigned char)e[1], len = (unsigned char)e[2] | (size_t)(unsigned char)e[3] << 8;
    const char *text = sym + sl;
    p->cur[s] = (size_t)(text + len - c->out);
    if (st == ST_BLANK)
      continue;
    p->read++;
    preplay_rec r;
    rec_at(c, i, &r);
    if (st == TICK_OUT_OF_ORDER)
      note_ooo(p, &r, sym, sl, text);
    else if (st != TICK_OK)
      note_reject(p, c, i, st);
    else if (p->cfg.emit(p->cfg.ud, &r, sl ? sym : NULL, sl, text, len) != 0)
      return TC_EIO;
  }
  if (p->cfg.chunk_done && p->cfg.chunk_done(p->cfg.ud) != 0)
    return TC_EIO;
  return 0;
}

/* Emits the oldest chunk, when every shard is done with it, and frees its slot (called and
 * returning under mu). Returns 1 when it did, 0 when that chunk is not ready. */
static int write_oldest(preplay *p) {
  if (p->written >= p->filled)
    return 0;
  preplay_chunk *c = &p->ck[p->written % (uint64_t)p->K];
  if (c->shards_done < p->S)
    return 0;
  pthread_mutex_unlock(&p->mu);
  double t0 = stage_us(p);
  int rc = walk(p, c);
  p->write_us += stage_us(p) - t0;
  pthread_mutex_lock(&p->mu);
  if (rc != 0)
    fail(p, rc);
  p->written++;
  return 1;
}

preplay_chunk *preplay_acquire(preplay *p) {
  pthread_mutex_lock(&p->mu);
  for (;;) {
    if (p->failed) {
      pthread_mutex_unlock(&p->mu);
      return NULL;
    }
    if (write_oldest(p))
      continue;
    if (p->filled - p->written < (uint64_t)p->K)
      break;
    if (!help(p))
      caller_wait(p);
  }
  /* Shards made ready by the caller's last step woke nobody (stepped: "the calling worker takes
   * one"), and the caller goes to read now: a sleeping worker takes each. */
  for (int k = 0; k < p->rq_len && k < p->waiting; k++)
    pthread_cond_signal(&p->work);
  preplay_chunk *c = &p->ck[p->filled % (uint64_t)p->K];
  c->seq = p->filled;
  c->n = 0;
  c->used = 0;
  c->nparts = c->parts_claimed = c->parts_done = c->routed = c->shards_done = 0;
  memset(c->cnt, 0, (size_t)p->S * sizeof *c->cnt);
  pthread_mutex_unlock(&p->mu);
  return c;
}

/* Puts c's logs in its text buffer, after the text (growing the buffer when the text was long):
 * the two share huge pages. A slot's first use clears each huge page it touches, which on this
 * VM took 0.12 ms when the host had backed that memory before and up to 1.8 ms when not (the
 * 10 huge pages of a 2-thread replay touched at its start: 1.2-18 ms in 5 runs). As two buffers,
 * the CSV text of a chunk (0.5 MB) and its logs (1.6 MB laid out, 0.4 MB written) took two huge
 * pages a slot; together they take one. 0 or TC_ENOMEM. */
static int place_out(preplay *p, preplay_chunk *c) {
  size_t at = (c->used + 63) & ~(size_t)63;
  c->out = c->bytes; /* (not read when it fails: the chunk is then empty) */
  if (bytes_reserve(c, at - c->used + (size_t)c->n * p->emax) != 0)
    return TC_ENOMEM;
  c->out = c->bytes + at;
  return 0;
}

void preplay_submit(preplay *p, preplay_chunk *c) {
  int rc = place_out(p, c);
  if (rc != 0)
    c->n = 0; /* nothing of it is stepped or written: the replay fails */
  int parts = max_parts(c->n, p->N);
  pthread_mutex_lock(&p->mu);
  if (rc != 0)
    fail(p, rc);
  c->nparts = parts;
  if (parts == 0)
    lay_out(p, c);
  p->filled++;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
}

int preplay_finish(preplay *p) {
  pthread_mutex_lock(&p->mu);
  p->eof = 1;
  pthread_cond_broadcast(&p->work);
  while (!p->failed && p->written < p->filled)
    if (!write_oldest(p) && !help(p))
      caller_wait(p);
  int rc = p->failed;
  pthread_mutex_unlock(&p->mu);
  stop_workers(p);
  return rc;
}

void preplay_get_stats(const preplay *p, preplay_stats *st) {
  memset(st, 0, sizeof *st);
  st->read_us = p->read_us;
  st->write_us = p->write_us;
  for (int i = 0; i < p->N; i++) {
    st->route_us += p->wk[i].route_us;
    st->step_us += p->wk[i].step_us;
    /* worker 0: making its engine, routing and stepping (its hand-overs are not counted) */
    st->worker_us += p->wk[i].cpu_us + (i ? 0 : p->wk[i].route_us + p->wk[i].step_us);
    st->wait_us += p->wk[i].wait_us;
  }
}

uint64_t preplay_read(const preplay *p) {
  return p->read;
}

uint64_t preplay_accepted(const preplay *p) {
  uint64_t n = 0;
  for (int s = 0; s < p->S; s++)
    n += p->sh[s].b.accepted;
  return n;
}

uint32_t preplay_instruments(const preplay *p) {
  uint32_t n = 0;
  for (int s = 0; s < p->S; s++)
    n += p->sh[s].b.st.live;
  return n;
}
