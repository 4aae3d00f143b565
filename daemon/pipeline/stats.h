/* stats.h: the daemon's figures: counters, a log-linear latency histogram, input rates over 1 s and
 * 60 s, per-partition lag, and their two renderings: the stats-topic JSON object and the Prometheus
 * text format (0.0.4). Not for Kafka or HTTP plumbing: the daemon's loop feeds it
 * (daemon/loop/health.c), http.c serves it. */
#ifndef DAEMON_STATS_H
#define DAEMON_STATS_H

#include "ingest/tick.h"
#include <stddef.h>
#include <stdint.h>

/* Log-linear histogram of non-negative integers (the daemon records nanoseconds): values below
 * 2^HIST_P are exact, above that each power of two is cut into 2^HIST_P equal buckets, so a
 * bucket's width is at most 1/2^HIST_P of its lower bound (1.6 % with P = 6). */
#define HIST_P 6
#define HIST_SUB (1u << HIST_P)
#define HIST_MAXBITS 44 /* values >= 2^44 (4.9 hours in ns) land in the last bucket */
#define HIST_NB ((HIST_MAXBITS - HIST_P + 1) * HIST_SUB)

typedef struct hist {
  uint64_t count;      /* values recorded */
  uint64_t sum;        /* their sum (saturating is not needed for ns over hours) */
  uint64_t min, max;   /* exact extremes; min = UINT64_MAX when empty */
  uint32_t b[HIST_NB]; /* bucket counts */
} hist;

void hist_reset(hist *h);

/* Adds the values recorded in s into d. */
void hist_merge(hist *d, const hist *s);

/* The bucket index of v and the inclusive value range [lo, hi] of bucket i. */
uint32_t hist_index(uint64_t v);
void hist_bucket_range(uint32_t i, uint64_t *lo, uint64_t *hi);

static inline void hist_record_n(hist *h, uint64_t v, uint64_t n) {
  h->b[hist_index(v)] += n;
  h->count += n;
  h->sum += v * n;
  if (v < h->min)
    h->min = v;
  if (v > h->max)
    h->max = v;
}
static inline void hist_record(hist *h, uint64_t v) {
  hist_record_n(h, v, 1);
}

/* The q-quantile (0 < q <= 1): the upper bound of the bucket holding the ceil(q * count)-th
 * smallest value, clamped to [min, max], so it is never below the true quantile and at most one
 * bucket width above it. 0 when empty. */
uint64_t hist_quantile(const hist *h, double q);

/* Prometheus histogram boundaries for the latency, in microseconds. */
#define STATS_NLE 14
extern const double stats_le_us[STATS_NLE];

#define STATS_MAX_PARTS 1024 /* partitions of the input topic tracked for lag and counts */
#define STATS_RATE_WIN 61    /* seconds of per-second history kept for the 60 s rate */

typedef struct stats {
  /* counters since start */
  uint64_t ticks_in;                /* input messages polled (accepted + rejected) */
  uint64_t predictions_out;         /* predictions enqueued to the output topic */
  uint64_t rejected[TICK_NREASONS]; /* rejected messages by reason (index 0 unused) */
  uint64_t dlq_out;                 /* dead letters acknowledged by the broker */
  uint64_t dlq_failed;              /* dead letters refused by the producer or not delivered */
  uint64_t delivered;               /* delivery reports with success */
  uint64_t delivery_errors;         /* delivery reports with an error */
  uint64_t consume_errors;          /* errors the consumer delivered with a message */
  uint64_t kafka_errors;            /* the process's Kafka clients' error events (not merged) */
  uint64_t rebalances;              /* assign + revoke events */
  uint64_t handoffs_out;            /* revoked partitions that left after a final checkpoint */
  uint64_t handoffs_in;             /* partitions resumed from the changelog (ahead of the file) */
  uint64_t restores;                /* assignments restored */
  uint64_t restored_instruments;    /* instruments they restored */
  uint64_t restore_records;         /* changelog records they read */
  double restore_last_s;            /* seconds the last restore took */
  double restore_total_s;           /* seconds all restores took */
  uint64_t restore_skipped;         /* ticks skipped: already in a restored state */
  uint64_t partition_moves;         /* accepted ticks of an instrument in another partition than
                                       its previous tick's (engine.moved) */
  uint64_t state_resets;            /* states dropped: a state file of another cluster or topic,
                                       or a resume offset outside its partition */
  uint64_t model_reloads;           /* successful SIGHUP reloads */
  uint64_t model_reload_failures;   /* refused or failed SIGHUP reloads */
  uint64_t backpressure_pauses;     /* times draining stopped on a full producer queue */
  uint64_t chunks;                  /* engine_process calls */
  /* latency consume (poll) -> produce enqueue, ns */
  hist lat_interval;          /* since the last stats message */
  uint64_t lat_le[STATS_NLE]; /* cumulative Prometheus buckets (non-cumulative counts here) */
  uint64_t lat_count;         /* since start */
  uint64_t lat_sum_ns;        /* since start */
  /* rates */
  uint64_t rate_hist[STATS_RATE_WIN]; /* ticks_in at each whole second, ring */
  uint64_t rate_secs;                 /* seconds recorded into rate_hist */
  /* per input partition, indexed by partition number; offsets are "next to read" positions */
  int32_t nparts;                       /* 1 + highest partition seen */
  uint64_t part_in[STATS_MAX_PARTS];    /* messages polled per partition */
  uint8_t assigned[STATS_MAX_PARTS];    /* 1 while the partition is assigned to us */
  int64_t hi[STATS_MAX_PARTS];          /* high watermark, -1 unknown (filled before rendering) */
  int64_t next[STATS_MAX_PARTS];        /* next offset to process, -1 unknown (likewise) */
  int64_t processed[STATS_MAX_PARTS];   /* last processed + 1 since the assignment, -1 none */
  int64_t ckpt_next[STATS_MAX_PARTS];   /* offset the last checkpoint covers up to, -1 unknown */
  uint64_t ckpt_at_ms[STATS_MAX_PARTS]; /* monotonic ms when ckpt_next last moved */
  int64_t rk_hi[STATS_MAX_PARTS];       /* hi_offset from librdkafka statistics, -1 unknown */
  int64_t rk_next[STATS_MAX_PARTS];     /* next_offset (fetch position) from them, -1 unknown */
  /* gauges filled by the daemon before rendering */
  int64_t start_ms;             /* wall clock at start */
  uint32_t instruments;         /* live instruments */
  int32_t assigned_count;       /* input partitions assigned */
  int32_t awaiting_count;       /* of them, paused until their state can be read */
  int64_t outq;                 /* producer queue depth */
  int paused;                   /* 1 while backpressure holds the consumer */
  int healthy;                  /* 1 while /healthz answers 200 */
  int64_t checkpoint_age_ms;    /* -1 until checkpoints exist */
  uint64_t checkpoints;         /* checkpoints committed to the state db */
  uint64_t checkpoint_failures; /* checkpoint writes that failed (merged into the next) */
  uint32_t checkpoint_failing;  /* failures since the last success */
  uint64_t
      checkpoints_skipped;   /* intervals without a new checkpoint (failed delivery, slow acks) */
  uint64_t state_file_heals; /* times the state file, deleted under the daemon, was written back */
  uint64_t stall_max_ns;     /* the loop's longest stall since the last stats message */
  /* the process, as Prometheus' standard process collector reports it (-1: unknown) */
  double cpu_s;        /* CPU time, user + system, of all threads since start */
  int64_t rss_bytes;   /* resident memory */
  int64_t vm_bytes;    /* virtual memory */
  double proc_start_s; /* when the process started, seconds since the epoch */
  int64_t open_fds;    /* open file descriptors */
  int64_t max_fds;     /* their limit (RLIMIT_NOFILE, soft) */
  uint64_t stalls;     /* stalls of STATS_STALL_NS or more since start */
  char model_id[17];   /* model sha256 prefix */
  char version[16];
  char member[160]; /* "HOST:PID" of the process, to tell a group's members apart */
  int threads;      /* stream threads of the process (run --threads), 1 unless merged */
} stats;

void stats_init(stats *s, int64_t now_ms);

/* Adds the figures of another stream thread of the same process (run --threads) into dst: its
 * counters, histograms and rates (by age: dst's second k ago plus src's second k ago, over the
 * seconds both recorded; a side with none adds nothing), its gauges (instruments, partitions,
 * queue: summed; checkpoint age, stalls and the last restore's seconds: the worst; healthy: both)
 * and its assigned partitions (one held by both, just moved, keeps dst's figures). The process
 * figures, the version, the model and the start stay dst's. */
void stats_merge(stats *dst, const stats *src);

/* Records n latency samples of ns nanoseconds each into the interval histogram and the
 * Prometheus buckets. */
void stats_latency_n(stats *s, uint64_t ns, uint64_t n);
/* One sample. */
void stats_latency(stats *s, uint64_t ns);

/* Called once per whole second: remembers ticks_in for the rates. */
void stats_second(stats *s);

/* Input rates in ticks per second over the last 1 s and last 60 s (or since start when shorter). */
double stats_rate(const stats *s, int secs);

/* A loop stall: how late the loop served a timer due every few milliseconds. Stalls of at least
 * STATS_STALL_NS are counted. */
#define STATS_STALL_NS 50000000ull
static inline void stats_stall(stats *s, uint64_t ns) {
  if (ns > s->stall_max_ns)
    s->stall_max_ns = ns;
  s->stalls += ns >= STATS_STALL_NS;
}

/* A checkpoint (or the first message after an assignment, which the assignment's stored offset
 * covers) covers partition p up to offset `next`, at monotonic time now_ms. */
static inline void stats_part_checkpointed(stats *s, int32_t p, int64_t next, uint64_t now_ms) {
  if (p < 0 || p >= STATS_MAX_PARTS)
    return;
  if (next != s->ckpt_next[p])
    s->ckpt_at_ms[p] = now_ms;
  s->ckpt_next[p] = next;
}

/* Partition p is assigned (again): its offsets are unknown until processed or reported. */
void stats_part_assigned(stats *s, int32_t p);

/* Partition p's lag: messages from the next one to process to the high watermark; -1 while
 * either is unknown. */
int64_t stats_lag(const stats *s, int32_t p);

/* Partition p's messages processed but not yet covered by a committed checkpoint (a crash would
 * process them again); 0 when nothing was processed since the assignment. */
int64_t stats_uncheckpointed(const stats *s, int32_t p);

/* Notes a partition seen on input; ignores partitions >= STATS_MAX_PARTS. */
static inline void stats_part_in(stats *s, int32_t p) {
  if (p < 0 || p >= STATS_MAX_PARTS)
    return;
  s->part_in[p]++;
  if (p >= s->nparts)
    s->nparts = p + 1;
}

/* Reads hi_offset and next_offset (the fetch position) per assigned partition of `topic` from a
 * librdkafka statistics JSON document into rk_hi and rk_next. Returns the number of partitions
 * updated, or -1 when the JSON does not parse. */
int stats_parse_rdkafka(stats *s, const char *json, size_t len, const char *topic);

/* The stats-topic JSON object (one line, no newline) into a malloc'd string (caller frees), or
 * NULL on ENOMEM. Resets the interval histogram when reset_interval is 1. */
char *stats_json(stats *s, int64_t now_ms, int reset_interval);

/* The Prometheus text exposition (format 0.0.4) into a malloc'd string; *len gets its length. */
char *stats_prometheus(const stats *s, int64_t now_ms, size_t *len);

#endif
