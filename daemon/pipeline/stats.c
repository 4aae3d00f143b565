/* stats.c: the daemon's counters, latency histogram and rates, rendered as the stats-topic JSON
 * object and as Prometheus text (see stats.h). Rendering is the cold path: it may allocate. Not
 * for deciding anything: the daemon's loop (daemon/loop/) owns all behaviour. */
#include "daemon/pipeline/stats.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double stats_le_us[STATS_NLE] = {5,    10,   25,   50,    100,   200,    500,
                                       1000, 2500, 5000, 10000, 25000, 100000, 1000000};

void hist_reset(hist *h) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
}

/* Below 2^P the index is the value; above, the exponent picks a group of 2^P buckets and the P bits
 * after the leading one pick the bucket, which keeps the index continuous at 2^P. */
uint32_t hist_index(uint64_t v) {
  if (v < HIST_SUB)
    return (uint32_t)v;
  int e = 63 - __builtin_clzll(v);
  if (e >= HIST_MAXBITS)
    return HIST_NB - 1;
  uint64_t m = v >> (e - HIST_P); /* in [2^P, 2^(P+1)) */
  return (uint32_t)((e - HIST_P + 1) * HIST_SUB + (m - HIST_SUB));
}

void hist_bucket_range(uint32_t i, uint64_t *lo, uint64_t *hi) {
  uint32_t g = i >> HIST_P;
  if (g == 0) {
    *lo = *hi = i;
    return;
  }
  int shift = (int)g - 1;
  uint64_t m = (uint64_t)(i & (HIST_SUB - 1)) + HIST_SUB;
  *lo = m << shift;
  *hi = *lo + ((uint64_t)1 << shift) - 1;
  if (i == HIST_NB - 1)
    *hi = UINT64_MAX;
}

uint64_t hist_quantile(const hist *h, double q) {
  if (h->count == 0)
    return 0;
  if (q <= 0)
    return h->min;
  uint64_t rank = (uint64_t)(q * (double)h->count);
  if ((double)rank < q * (double)h->count)
    rank++;
  if (rank < 1)
    rank = 1;
  if (rank > h->count)
    rank = h->count;
  uint64_t cum = 0;
  for (uint32_t i = 0; i < HIST_NB; i++) {
    cum += h->b[i];
    if (cum >= rank) {
      uint64_t lo, hi;
      hist_bucket_range(i, &lo, &hi);
      if (hi > h->max)
        hi = h->max;
      if (hi < h->min)
        hi = h->min;
      return hi;
    }
  }
  return h->max;
}

void stats_init(stats *s, int64_t now_ms) {
  memset(s, 0, sizeof *s);
  hist_reset(&s->lat_interval);
  for (int i = 0; i < STATS_MAX_PARTS; i++)
    s->hi[i] = s->next[i] = s->processed[i] = s->ckpt_next[i] = s->rk_hi[i] = s->rk_next[i] = -1;
  s->start_ms = now_ms;
  s->checkpoint_age_ms = -1;
  s->cpu_s = s->proc_start_s = -1;
  s->rss_bytes = s->vm_bytes = s->open_fds = s->max_fds = -1;
  s->threads = 1;
}

void hist_merge(hist *d, const hist *s) {
  for (uint32_t i = 0; i < HIST_NB; i++)
    d->b[i] += s->b[i];
  d->count += s->count;
  d->sum += s->sum;
  if (s->min < d->min)
    d->min = s->min;
  if (s->max > d->max)
    d->max = s->max;
}

/* rate_hist holds ticks_in at each whole second: the sums of the two at equal ages, over the
 * seconds both have. */
static void rates_merge(stats *d, const stats *s) {
  if (!s->rate_secs) /* nothing recorded yet: it adds nothing */
    return;
  if (!d->rate_secs) {
    memcpy(d->rate_hist, s->rate_hist, sizeof d->rate_hist);
    d->rate_secs = s->rate_secs;
    return;
  }
  uint64_t n = d->rate_secs < s->rate_secs ? d->rate_secs : s->rate_secs;
  uint64_t keep = n < STATS_RATE_WIN ? n : STATS_RATE_WIN;
  uint64_t sum[STATS_RATE_WIN];
  for (uint64_t k = 0; k < keep; k++)
    sum[k] = d->rate_hist[(d->rate_secs - 1 - k) % STATS_RATE_WIN] +
             s->rate_hist[(s->rate_secs - 1 - k) % STATS_RATE_WIN];
  for (uint64_t k = 0; k < keep; k++)
    d->rate_hist[(n - 1 - k) % STATS_RATE_WIN] = sum[k];
  d->rate_secs = n;
}

void stats_merge(stats *d, const stats *s) {
  d->ticks_in += s->ticks_in;
  d->predictions_out += s->predictions_out;
  for (int r = 0; r < TICK_NREASONS; r++)
    d->rejected[r] += s->rejected[r];
  d->dlq_out += s->dlq_out;
  d->dlq_failed += s->dlq_failed;
  d->delivered += s->delivered;
  d->delivery_errors += s->delivery_errors;
  d->consume_errors += s->consume_errors;
  d->rebalances += s->rebalances;
  d->handoffs_out += s->handoffs_out;
  d->handoffs_in += s->handoffs_in;
  d->restores += s->restores;
  d->restored_instruments += s->restored_instruments;
  d->restore_records += s->restore_records;
  if (s->restore_last_s > d->restore_last_s)
    d->restore_last_s = s->restore_last_s;
  d->restore_total_s += s->restore_total_s;
  d->restore_skipped += s->restore_skipped;
  d->partition_moves += s->partition_moves;
  d->state_resets += s->state_resets;
  d->model_reloads += s->model_reloads;
  d->model_reload_failures += s->model_reload_failures;
  d->backpressure_pauses += s->backpressure_pauses;
  d->chunks += s->chunks;
  hist_merge(&d->lat_interval, &s->lat_interval);
  for (int i = 0; i < STATS_NLE; i++)
    d->lat_le[i] += s->lat_le[i];
  d->lat_count += s->lat_count;
  d->lat_sum_ns += s->lat_sum_ns;
  rates_merge(d, s);
  if (s->nparts > d->nparts)
    d->nparts = s->nparts;
  for (int32_t p = 0; p < s->nparts; p++) {
    d->part_in[p] += s->part_in[p];
    if (!s->assigned[p] || d->assigned[p]) /* just moved: the fresher figures are dst's */
      continue;
    d->assigned[p] = 1;
    d->hi[p] = s->hi[p];
    d->next[p] = s->next[p];
    d->processed[p] = s->processed[p];
    d->ckpt_next[p] = s->ckpt_next[p];
    d->ckpt_at_ms[p] = s->ckpt_at_ms[p];
    d->rk_hi[p] = s->rk_hi[p];
    d->rk_next[p] = s->rk_next[p];
  }
  d->instruments += s->instruments;
  d->assigned_count += s->assigned_count;
  d->awaiting_count += s->awaiting_count;
  d->outq += s->outq;
  d->paused |= s->paused;
  d->healthy &= s->healthy;
  if (s->checkpoint_age_ms > d->checkpoint_age_ms)
    d->checkpoint_age_ms = s->checkpoint_age_ms;
  d->checkpoints += s->checkpoints;
  d->checkpoint_failures += s->checkpoint_failures;
  if (s->checkpoint_failing > d->checkpoint_failing)
    d->checkpoint_failing = s->checkpoint_failing;
  d->checkpoints_skipped += s->checkpoints_skipped;
  d->state_file_heals += s->state_file_heals;
  if (s->stall_max_ns > d->stall_max_ns)
    d->stall_max_ns = s->stall_max_ns;
  d->stalls += s->stalls;
  d->threads += s->threads;
}

void stats_latency_n(stats *s, uint64_t ns, uint64_t n) {
  hist_record_n(&s->lat_interval, ns, n);
  s->lat_count += n;
  s->lat_sum_ns += ns * n;
  double us = (double)ns / 1000.0;
  for (int i = 0; i < STATS_NLE; i++)
    if (us <= stats_le_us[i]) {
      s->lat_le[i] += n;
      break;
    }
}

void stats_latency(stats *s, uint64_t ns) {
  stats_latency_n(s, ns, 1);
}

void stats_second(stats *s) {
  s->rate_hist[s->rate_secs % STATS_RATE_WIN] = s->ticks_in;
  s->rate_secs++;
}

double stats_rate(const stats *s, int secs) {
  if (s->rate_secs < 2)
    return s->rate_secs ? (double)s->rate_hist[0] : 0.0;
  uint64_t have = s->rate_secs - 1; /* seconds spanned by the history */
  if (have > STATS_RATE_WIN - 1)
    have = STATS_RATE_WIN - 1;
  if ((uint64_t)secs > have)
    secs = (int)have;
  uint64_t now = s->rate_hist[(s->rate_secs - 1) % STATS_RATE_WIN];
  uint64_t then = s->rate_hist[(s->rate_secs - 1 - secs) % STATS_RATE_WIN];
  return (double)(now - then) / secs;
}

/* The integer at key of v, or -1 when absent, negative or not an integer. */
static int64_t json_offset(json_t *v, const char *key) {
  json_t *x = json_object_get(v, key);
  return json_is_integer(x) && json_integer_value(x) >= 0 ? (int64_t)json_integer_value(x) : -1;
}

int stats_parse_rdkafka(stats *s, const char *json, size_t len, const char *topic) {
  json_error_t jerr;
  json_t *root = json_loadb(json, len, 0, &jerr);
  if (!root)
    return -1;
  int n = 0;
  json_t *parts =
      json_object_get(json_object_get(json_object_get(root, "topics"), topic), "partitions");
  const char *k;
  json_t *v;
  json_object_foreach(parts, k, v) {
    long p = strtol(k, NULL, 10);
    if (p < 0 || p >= STATS_MAX_PARTS || !s->assigned[p])
      continue; /* "-1" is the internal UA partition */
    s->rk_hi[p] = json_offset(v, "hi_offset");
    s->rk_next[p] = json_offset(v, "next_offset");
    if (p >= s->nparts)
      s->nparts = (int32_t)p + 1;
    n++;
  }
  json_decref(root);
  return n;
}

void stats_part_assigned(stats *s, int32_t p) {
  if (p < 0 || p >= STATS_MAX_PARTS)
    return;
  s->assigned[p] = 1;
  s->hi[p] = s->next[p] = s->processed[p] = s->ckpt_next[p] = s->rk_hi[p] = s->rk_next[p] = -1;
  if (p >= s->nparts)
    s->nparts = p + 1;
}

int64_t stats_lag(const stats *s, int32_t p) {
  if (p < 0 || p >= STATS_MAX_PARTS || s->hi[p] < 0 || s->next[p] < 0)
    return -1;
  return s->hi[p] > s->next[p] ? s->hi[p] - s->next[p] : 0;
}

int64_t stats_uncheckpointed(const stats *s, int32_t p) {
  if (p < 0 || p >= STATS_MAX_PARTS || s->processed[p] < 0 || s->ckpt_next[p] < 0)
    return 0;
  return s->processed[p] > s->ckpt_next[p] ? s->processed[p] - s->ckpt_next[p] : 0;
}

static json_t *us_or_null(const hist *h, double q) {
  if (!h->count)
    return json_null();
  uint64_t ns = q >= 1.0 ? h->max : hist_quantile(h, q);
  return json_real((double)ns / 1000.0);
}

char *stats_json(stats *s, int64_t now_ms, int reset_interval) {
  json_t *o = json_object();
  if (!o)
    return NULL;
  json_object_set_new(o, "time", json_integer(now_ms));
  json_object_set_new(o, "uptime_s", json_real((double)(now_ms - s->start_ms) / 1000.0));
  json_object_set_new(o, "version", json_string(s->version));
  if (s->member[0])
    json_object_set_new(o, "member", json_string(s->member));
  json_object_set_new(o, "model", json_string(s->model_id));
  json_object_set_new(o, "ticks_in", json_integer((json_int_t)s->ticks_in));
  json_object_set_new(o, "predictions_out", json_integer((json_int_t)s->predictions_out));
  json_object_set_new(o, "chunks", json_integer((json_int_t)s->chunks));
  json_t *rej = json_object();
  uint64_t rtot = 0;
  for (int r = 1; r < TICK_NREASONS; r++) {
    json_object_set_new(rej, tick_reason_name(r), json_integer((json_int_t)s->rejected[r]));
    rtot += s->rejected[r];
  }
  json_object_set_new(o, "rejected", rej);
  json_object_set_new(o, "rejected_total", json_integer((json_int_t)rtot));
  json_object_set_new(o, "dead_letters_out", json_integer((json_int_t)s->dlq_out));
  json_object_set_new(o, "dead_letters_failed", json_integer((json_int_t)s->dlq_failed));
  json_object_set_new(o, "instruments", json_integer(s->instruments));
  json_object_set_new(o, "rate_1s", json_real(stats_rate(s, 1)));
  json_object_set_new(o, "rate_60s", json_real(stats_rate(s, 60)));
  json_t *lat = json_object();
  json_object_set_new(lat, "count", json_integer((json_int_t)s->lat_interval.count));
  json_object_set_new(lat, "p50", us_or_null(&s->lat_interval, 0.5));
  json_object_set_new(lat, "p99", us_or_null(&s->lat_interval, 0.99));
  json_object_set_new(lat, "p999", us_or_null(&s->lat_interval, 0.999));
  json_object_set_new(lat, "max", us_or_null(&s->lat_interval, 1.0));
  json_object_set_new(o, "latency_us", lat);
  json_t *lag = json_object(), *unck = json_object();
  for (int p = 0; p < s->nparts; p++) {
    if (!s->assigned[p])
      continue;
    char key[16];
    snprintf(key, sizeof key, "%d", p);
    int64_t l = stats_lag(s, p);
    json_object_set_new(lag, key, l < 0 ? json_null() : json_integer(l));
    json_object_set_new(unck, key, json_integer(stats_uncheckpointed(s, p)));
  }
  json_object_set_new(o, "lag", lag);
  json_object_set_new(o, "uncheckpointed", unck);
  json_object_set_new(o, "partitions_assigned", json_integer(s->assigned_count));
  json_object_set_new(o, "partitions_awaiting_state", json_integer(s->awaiting_count));
  json_object_set_new(o, "threads", json_integer(s->threads));
  json_object_set_new(o, "producer_queue", json_integer(s->outq));
  json_object_set_new(o, "paused", json_boolean(s->paused));
  json_object_set_new(o, "healthy", json_boolean(s->healthy));
  json_object_set_new(o, "delivery_errors", json_integer((json_int_t)s->delivery_errors));
  json_object_set_new(o, "kafka_errors", json_integer((json_int_t)s->kafka_errors));
  json_object_set_new(o, "rebalances", json_integer((json_int_t)s->rebalances));
  json_object_set_new(o, "handoffs_out", json_integer((json_int_t)s->handoffs_out));
  json_object_set_new(o, "handoffs_in", json_integer((json_int_t)s->handoffs_in));
  json_object_set_new(o, "restores", json_integer((json_int_t)s->restores));
  json_object_set_new(o, "restored_instruments", json_integer((json_int_t)s->restored_instruments));
  json_object_set_new(o, "restore_records", json_integer((json_int_t)s->restore_records));
  json_object_set_new(o, "restore_last_s", json_real(s->restore_last_s));
  json_object_set_new(o, "restore_total_s", json_real(s->restore_total_s));
  json_object_set_new(o, "restore_skipped", json_integer((json_int_t)s->restore_skipped));
  json_object_set_new(o, "partition_moves", json_integer((json_int_t)s->partition_moves));
  json_object_set_new(o, "state_resets", json_integer((json_int_t)s->state_resets));
  json_object_set_new(o, "model_reload_failures",
                      json_integer((json_int_t)s->model_reload_failures));
  json_object_set_new(o, "checkpoint_age_ms",
                      s->checkpoint_age_ms < 0 ? json_null() : json_integer(s->checkpoint_age_ms));
  json_object_set_new(o, "checkpoints", json_integer((json_int_t)s->checkpoints));
  json_object_set_new(o, "checkpoint_failures", json_integer((json_int_t)s->checkpoint_failures));
  json_object_set_new(o, "checkpoints_failing", json_integer((json_int_t)s->checkpoint_failing));
  json_object_set_new(o, "checkpoints_skipped", json_integer((json_int_t)s->checkpoints_skipped));
  json_object_set_new(o, "state_file_heals", json_integer((json_int_t)s->state_file_heals));
  json_object_set_new(o, "loop_stall_max_ms", json_real((double)s->stall_max_ns / 1e6));
  json_object_set_new(o, "loop_stalls", json_integer((json_int_t)s->stalls));
  json_object_set_new(o, "cpu_s", s->cpu_s < 0 ? json_null() : json_real(s->cpu_s));
  json_object_set_new(o, "rss_bytes", s->rss_bytes < 0 ? json_null() : json_integer(s->rss_bytes));
  char *out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
  json_decref(o);
  if (out && reset_interval) {
    hist_reset(&s->lat_interval);
    s->stall_max_ns = 0;
  }
  return out;
}

/* A growable text buffer for the exposition; on ENOMEM it stops growing and marks itself failed. */
typedef struct sbuf {
  char *p;
  size_t len, cap;
  int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  if (b->failed)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->failed = 1;
      return;
    }
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap * 2 + (size_t)n + 1;
    char *q = realloc(b->p, cap);
    if (!q) {
      b->failed = 1;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
}

static void counter(sbuf *b, const char *name, const char *help, uint64_t v) {
  sb_printf(b, "# HELP tickcast_%s %s\n# TYPE tickcast_%s counter\ntickcast_%s %llu\n", name, help,
            name, name, (unsigned long long)v);
}

static void gauge(sbuf *b, const char *name, const char *help, double v) {
  sb_printf(b, "# HELP tickcast_%s %s\n# TYPE tickcast_%s gauge\ntickcast_%s %.17g\n", name, help,
            name, name, v);
}

/* The version and model, as labels of a constant gauge. */
static void prom_build_info(sbuf *b, const stats *s) {
  sb_printf(b,
            "# HELP tickcast_build_info Version and model of this daemon.\n"
            "# TYPE tickcast_build_info gauge\n"
            "tickcast_build_info{version=\"%s\",model=\"%s\"} 1\n",
            s->version, s->model_id);
}

/* Messages in and out, rejections by reason, errors and events. */
static void prom_traffic(sbuf *b, const stats *s) {
  counter(b, "ticks_in_total", "Input messages consumed (accepted and rejected).", s->ticks_in);
  counter(b, "predictions_out_total", "Predictions enqueued to the output topic.",
          s->predictions_out);
  counter(b, "chunks_total", "Chunks of input messages stepped through the network together.",
          s->chunks);
  sb_printf(b, "# HELP tickcast_rejected_total Input messages rejected, by reason.\n"
               "# TYPE tickcast_rejected_total counter\n");
  for (int r = 1; r < TICK_NREASONS; r++)
    sb_printf(b, "tickcast_rejected_total{reason=\"%s\"} %llu\n", tick_reason_name(r),
              (unsigned long long)s->rejected[r]);
  counter(b, "dead_letters_out_total", "Dead letters acknowledged by the dead-letter topic.",
          s->dlq_out);
  counter(b, "dead_letters_failed_total",
          "Dead letters the producer refused or could not deliver (their inputs go on).",
          s->dlq_failed);
  counter(b, "delivered_total", "Messages acknowledged by the broker.", s->delivered);
  counter(b, "delivery_errors_total", "Messages the producer failed to deliver.",
          s->delivery_errors);
  counter(b, "consume_errors_total",
          "Errors the consumer delivered with a message (a partition it cannot fetch).",
          s->consume_errors);
  counter(b, "kafka_errors_total",
          "Error events of the process's Kafka clients (a broker unreachable, all brokers down, "
          "a fatal error); each is logged.",
          s->kafka_errors);
  counter(b, "rebalances_total", "Partition assignments and revocations.", s->rebalances);
  counter(b, "handoffs_out_total", "Revoked partitions that left after a final checkpoint.",
          s->handoffs_out);
  counter(b, "handoffs_in_total", "Partitions resumed from the changelog, ahead of the state file.",
          s->handoffs_in);
  counter(b, "restores_total", "Assignments restored (state file and changelog).", s->restores);
  counter(b, "restored_instruments_total", "Instruments restored at assignments.",
          s->restored_instruments);
  counter(b, "restore_records_total", "Changelog records read by restores.", s->restore_records);
  gauge(b, "restore_last_seconds", "Seconds the last restore took.", s->restore_last_s);
  sb_printf(b,
            "# HELP tickcast_restore_seconds_total Seconds all restores took (those that left "
            "partitions waiting included).\n"
            "# TYPE tickcast_restore_seconds_total counter\ntickcast_restore_seconds_total "
            "%.17g\n",
            s->restore_total_s);
  counter(b, "restore_skipped_total", "Ticks skipped as already in a restored state.",
          s->restore_skipped);
  counter(b, "partition_moves_total",
          "Accepted ticks of an instrument in another input partition than its previous tick's "
          "(producers must key ticks by sym).",
          s->partition_moves);
  counter(b, "state_resets_total",
          "States dropped: a state file of another cluster or topic, or a resume offset outside "
          "its partition.",
          s->state_resets);
  counter(b, "model_reloads_total", "Models swapped in on SIGHUP.", s->model_reloads);
  counter(b, "model_reload_failures_total", "SIGHUP reloads refused or failed.",
          s->model_reload_failures);
  counter(b, "backpressure_pauses_total", "Times consumption paused on a full producer queue.",
          s->backpressure_pauses);
}

/* Per input partition: messages consumed, the lag and what no checkpoint covers yet. */
static void prom_partitions(sbuf *b, const stats *s) {
  sb_printf(b, "# HELP tickcast_partition_ticks_in_total Input messages per partition.\n"
               "# TYPE tickcast_partition_ticks_in_total counter\n");
  for (int p = 0; p < s->nparts; p++)
    if (s->part_in[p] || s->assigned[p])
      sb_printf(b, "tickcast_partition_ticks_in_total{partition=\"%d\"} %llu\n", p,
                (unsigned long long)s->part_in[p]);
  sb_printf(b, "# HELP tickcast_partition_lag_messages Messages from the next one to process to "
               "the high watermark, per assigned partition (absent until the watermark is "
               "known).\n# TYPE tickcast_partition_lag_messages gauge\n");
  for (int p = 0; p < s->nparts; p++)
    if (s->assigned[p] && stats_lag(s, p) >= 0)
      sb_printf(b, "tickcast_partition_lag_messages{partition=\"%d\"} %lld\n", p,
                (long long)stats_lag(s, p));
  sb_printf(b, "# HELP tickcast_partition_uncheckpointed_messages Messages processed but not yet "
               "covered by a committed checkpoint, per assigned partition.\n"
               "# TYPE tickcast_partition_uncheckpointed_messages gauge\n");
  for (int p = 0; p < s->nparts; p++)
    if (s->assigned[p])
      sb_printf(b, "tickcast_partition_uncheckpointed_messages{partition=\"%d\"} %lld\n", p,
                (long long)stats_uncheckpointed(s, p));
}

/* The daemon's state now: instruments, assignment, queue, pause, rates, uptime. */
static void prom_state(sbuf *b, const stats *s, int64_t now_ms) {
  gauge(b, "instruments", "Live instruments.", s->instruments);
  gauge(b, "partitions_assigned", "Input partitions assigned to this process's consumers.",
        s->assigned_count);
  gauge(b, "partitions_awaiting_state",
        "Assigned input partitions paused until their state can be read from the changelog.",
        s->awaiting_count);
  gauge(b, "stream_threads", "Stream threads of this process (run --threads), each a consumer.",
        s->threads);
  gauge(b, "producer_queue", "Messages in the producer queue.", (double)s->outq);
  gauge(b, "paused", "1 while backpressure holds consumption.", s->paused);
  gauge(b, "healthy", "1 while /healthz answers 200 (docs/RUN.md, Health).", s->healthy);
  gauge(b, "rate_1s", "Input ticks per second over the last second.", stats_rate(s, 1));
  gauge(b, "rate_60s", "Input ticks per second over the last 60 seconds.", stats_rate(s, 60));
  gauge(b, "uptime_seconds", "Seconds since start.", (double)(now_ms - s->start_ms) / 1000.0);
  gauge(b, "loop_stall_max_seconds",
        "The loop thread's longest stall since the last stats message (a timer served late).",
        (double)s->stall_max_ns / 1e9);
  counter(b, "loop_stalls_total", "Loop thread stalls of 50 ms or more.", s->stalls);
}

static void prom_checkpoints(sbuf *b, const stats *s) {
  if (s->checkpoint_age_ms >= 0)
    gauge(b, "checkpoint_age_seconds", "Seconds since the last checkpoint.",
          (double)s->checkpoint_age_ms / 1000.0);
  counter(b, "checkpoints_total", "Checkpoints committed to the state database.", s->checkpoints);
  counter(b, "checkpoint_failures_total",
          "Checkpoint writes that failed (their content goes into the next one).",
          s->checkpoint_failures);
  gauge(b, "checkpoints_failing", "Checkpoint failures since the last success (0 = healthy).",
        s->checkpoint_failing);
  counter(b, "checkpoints_skipped_total",
          "Checkpoint intervals skipped (a failed delivery, or the last snapshot still waiting for "
          "acknowledgements).",
          s->checkpoints_skipped);
  counter(b, "state_file_heals_total",
          "Times the state file was found deleted at a checkpoint and written back whole.",
          s->state_file_heals);
}

/* The latency since start, as a cumulative histogram over stats_le_us. */
static void prom_latency(sbuf *b, const stats *s) {
  sb_printf(b, "# HELP tickcast_latency_seconds Consume (poll) to produce-enqueue latency.\n"
               "# TYPE tickcast_latency_seconds histogram\n");
  uint64_t cum = 0;
  for (int i = 0; i < STATS_NLE; i++) {
    cum += s->lat_le[i];
    sb_printf(b, "tickcast_latency_seconds_bucket{le=\"%g\"} %llu\n", stats_le_us[i] / 1e6,
              (unsigned long long)cum);
  }
  sb_printf(b, "tickcast_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
            (unsigned long long)s->lat_count);
  sb_printf(b, "tickcast_latency_seconds_sum %.9f\n", (double)s->lat_sum_ns / 1e9);
  sb_printf(b, "tickcast_latency_seconds_count %llu\n", (unsigned long long)s->lat_count);
}

/* The process: the standard names and help texts of Prometheus' process collector (client_golang
 * and the others), so that dashboards made for any exporter work; a figure that could not be read
 * is left out. */
static void prom_process(sbuf *b, const stats *s) {
  const struct {
    const char *name, *type, *help;
    double v;
  } m[] = {
      {"process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
       s->cpu_s},
      {"process_open_fds", "gauge", "Number of open file descriptors.", (double)s->open_fds},
      {"process_max_fds", "gauge", "Maximum number of open file descriptors.", (double)s->max_fds},
      {"process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
       (double)s->vm_bytes},
      {"process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
       (double)s->rss_bytes},
      {"process_start_time_seconds", "gauge",
       "Start time of the process since unix epoch in seconds.", s->proc_start_s},
  };
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    if (m[i].v >= 0)
      sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", m[i].name, m[i].help, m[i].name,
                m[i].type, m[i].name, m[i].v);
}

char *stats_prometheus(const stats *s, int64_t now_ms, size_t *len) {
  sbuf b = {malloc(8192), 0, 8192, 0};
  if (!b.p)
    return NULL;
  b.p[0] = 0;
  prom_build_info(&b, s);
  prom_traffic(&b, s);
  prom_partitions(&b, s);
  prom_state(&b, s, now_ms);
  prom_checkpoints(&b, s);
  prom_latency(&b, s);
  prom_process(&b, s);
  if (b.failed) {
    free(b.p);
    return NULL;
  }
  *len = b.len;
  return b.p;
}
