/* cmd_feed.c: `tickcast feed`, publishes ticks to a Kafka topic: a tick file (CSV or JSON Lines),
 * raw lines (--raw, for tests that need malformed messages), or a seeded synthetic random walk
 * (--synthetic, for load tests). Keyed by sym with the murmur2 partitioner and an idempotent
 * producer, so each instrument's ticks land in one partition in file order.
 * Not a validator of order: out-of-order ticks are sent; the consumer rejects them. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "daemon/cmd/args.h"
#include "daemon/cmd/cmds.h"
#include "daemon/kafka/kconf.h"
#include "daemon/kafka/produce.h"
#include "daemon/pipeline/log.h"
#include "ingest/fmt.h"
#include "ingest/reject.h"
#include "ingest/tick.h"
#include "ingest/tickfile.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"

#define FEED_FLUSH_MS 30000     /* how long the final flush may wait for delivery reports */
#define FEED_STOP_FLUSH_MS 5000 /* the same after SIGINT/SIGTERM */

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: tickcast feed --brokers LIST --topic T (--input FILE | --synthetic N) [options]\n"
      "\n"
      "Publishes ticks to Kafka, one JSON object per message (CONTRACT section 1), key = sym,\n"
      "partitioner murmur2_random (the Java client's: one instrument, one partition), with an\n"
      "idempotent producer (order kept per partition). Lines that do not decode are not sent:\n"
      "they are counted and reported with their line numbers.\n"
      "\n"
      "  --topic T            topic to publish to (required)\n"
      "  --input FILE         tick file, CSV with header or JSON Lines ('-' = stdin). JSON Lines\n"
      "                       are sent verbatim (unknown keys kept); CSV rows are re-encoded as\n"
      "                       {\"sym\",\"ts\" (integer ns),\"px\",\"qty\"[,\"bid\",\"ask\"]} with\n"
      "                       numbers in their shortest exact form, so they decode to the same "
      "tick\n"
      "  --ts-unit U          integer timestamps in --input are s, ms, us or ns (default ns,\n"
      "                       with a warning when they look like another unit); what is sent\n"
      "                       is always ns: JSON lines with a converted ts are re-encoded as\n"
      "                       CSV rows are (unknown keys dropped)\n"
      "  --raw                with --input: send every non-empty line verbatim, undecoded (key =\n"
      "                       sym when the line is a valid tick, else no key); for tests\n"
      "  --synthetic N        instead of --input: N random-walk ticks (JSON) over K instruments\n"
      "  --instruments K      instruments for --synthetic (default 16), named SYN0000...\n"
      "  --seed S             seed for --synthetic (default 1)\n"
      "  --start-time T       ts of the first synthetic tick, RFC 3339 or integer ns (default\n"
      "                       2024-01-01T00:00:00Z; feeding a topic twice needs a later one, or\n"
      "                       the second run's ticks are out of order)\n"
      "  --rate R             at most R ticks per second (token bucket; default: as fast as\n"
      "                       the producer takes them)\n"
      "  --log-level L        error, warn, info (default) or debug\n" KCONF_USAGE "\n"
      "Producer defaults (override with -X): enable.idempotence=true,\n"
      "partitioner=murmur2_random, linger.ms=5. Exit status: 0 when every message was\n"
      "delivered (rejected lines are not failures), 1 when a delivery failed, 2 on bad usage or\n"
      "an unreadable input file. SIGINT/SIGTERM stop sending; what was sent is flushed (5 s at\n"
      "most) and counted as usual. A summary goes to stderr.\n");
}

/* Set by SIGINT/SIGTERM: stop sending, flush what was sent, print the summary. */
static volatile sig_atomic_t feed_stop;

static void on_stop_signal(int sig) {
  (void)sig;
  feed_stop = 1;
}

/* What one run did; read by the summary. */
typedef struct feed_stats {
  uint64_t sent;         /* messages handed to the producer */
  uint64_t delivered;    /* delivery reports without error */
  uint64_t failed;       /* delivery reports with an error */
  reject_tally rej;      /* lines not sent, by reason, with their first line numbers */
  char first_error[256]; /* the first delivery error */
} feed_stats;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  feed_stats *st = opaque;
  if (m->err) {
    if (!st->failed)
      snprintf(st->first_error, sizeof st->first_error, "%s [%d]: %s", rd_kafka_topic_name(m->rkt),
               (int)m->partition, rd_kafka_err2str(m->err));
    st->failed++;
  } else {
    st->delivered++;
  }
}

/* Token bucket: `rate` tokens per second, at most `burst` saved up. rate <= 0: unlimited. */
typedef struct bucket {
  double rate, burst, tokens, last;
} bucket;

/* Takes one token, sleeping (while serving delivery reports) until there is one. */
static void bucket_take(bucket *b, rd_kafka_t *rk) {
  if (b->rate <= 0)
    return;
  while (!feed_stop) {
    double t = tc_mono_s();
    b->tokens += (t - b->last) * b->rate;
    b->last = t;
    if (b->tokens > b->burst)
      b->tokens = b->burst;
    if (b->tokens >= 1) {
      b->tokens -= 1;
      return;
    }
    double wait = (1 - b->tokens) / b->rate;
    int ms = (int)(wait * 1000);
    if (ms >= 1) {
      rd_kafka_poll(rk, ms); /* sleeps at most ms, serving delivery reports meanwhile */
    } else {
      rd_kafka_poll(rk, 0);
      struct timespec ts = {0, (long)(wait * 1e9)};
      nanosleep(&ts, NULL);
    }
  }
}

/* Where the ticks go: the producer and its topic, paced by the token bucket. */
typedef struct feed_sink {
  rd_kafka_t *rk;        /* the producer */
  rd_kafka_topic_t *rkt; /* the topic */
  bucket b;              /* --rate */
  int wait_ms;           /* how long a produce may wait for room in a full queue */
  feed_stats *st;        /* what was sent, delivered and rejected */
} feed_sink;

/* Hands one message to the producer after the rate limit allows it, waiting at most
 * sink->wait_ms (serving delivery reports) while its queue is full. Returns 0, TC_EAGAIN when a
 * stop signal came (nothing sent), or TC_EKAFKA with err set (nothing sent). */
static int feed_send(feed_sink *sink, const char *val, size_t len, const char *key, size_t keylen,
                     char *err, size_t errlen) {
  bucket_take(&sink->b, sink->rk);
  rd_kafka_resp_err_t e =
      kprod_send(sink->rk, sink->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)val, len,
                 key, keylen, NULL, sink->wait_ms, &feed_stop);
  if (e == RD_KAFKA_RESP_ERR__INTR)
    return TC_EAGAIN;
  if (e) {
    snprintf(err, errlen, "produce to %s: %s", rd_kafka_topic_name(sink->rkt), rd_kafka_err2str(e));
    return TC_EKAFKA;
  }
  sink->st->sent++;
  rd_kafka_poll(sink->rk, 0);
  return 0;
}

/* Encodes a decoded tick as the contract's JSON object. out holds at least 256 bytes. */
static size_t tick_to_json(char *out, const tick *t) {
  char *p = out;
  memcpy(p, "{\"sym\":\"", 8), p += 8;
  memcpy(p, t->sym, t->sym_len), p += t->sym_len; /* sym needs no escaping: no '"' nor '\' */
  memcpy(p, "\",\"ts\":", 7), p += 7;
  p += fmt_i64(p, t->ts);
  memcpy(p, ",\"px\":", 6), p += 6;
  p += fmt_double_short(p, t->px);
  memcpy(p, ",\"qty\":", 7), p += 7;
  p += fmt_double_short(p, t->qty);
  if (t->has_quote) {
    memcpy(p, ",\"bid\":", 7), p += 7;
    p += fmt_double_short(p, t->bid);
    memcpy(p, ",\"ask\":", 7), p += 7;
    p += fmt_double_short(p, t->ask);
  }
  *p++ = '}';
  return (size_t)(p - out);
}

/* splitmix64: small, seedable, good enough for a load generator. */
static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
static double rng_unit(uint64_t *s) {
  return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}
static double rng_normal(uint64_t *s) {
  double u = rng_unit(s), v = rng_unit(s);
  return sqrt(-2 * log(u + 0x1.0p-60)) * cos(6.283185307179586 * v);
}

typedef struct feed_opts {
  const char *topic, *input;
  int raw;
  long long synthetic; /* -1 = not synthetic */
  int instruments;
  uint64_t seed;
  int64_t start_ts; /* ns, first synthetic tick */
  double rate;
  int ts_unit; /* --ts-unit (enum tickfile_ts_unit) */
} feed_opts;

static int feed_file(const feed_opts *o, feed_sink *sink, char *err, size_t errlen) {
  tickfile tf;
  int rc = tickfile_open(&tf, o->input, err, errlen);
  if (rc < 0)
    return TC_EUSAGE; /* unreadable input or no valid header: exit 2 */
  tickfile_set_ts_unit(&tf, o->ts_unit);
  /* A JSON line goes out verbatim unless its ts had to be converted to nanoseconds. */
  int convert = o->ts_unit != TICKFILE_TS_AUTO && o->ts_unit != TICKFILE_TS_NS;
  char json[256], derr[256];
  tick t;
  int reason;
  while ((rc = tickfile_next(&tf, &t, &reason, derr, sizeof derr)) > 0) {
    if (reason != TICK_OK) {
      reject_tally_note(&sink->st->rej, reason,
                        (reject_loc){tf.path, REJECT_LINE, (int64_t)tf.line}, derr);
      continue;
    }
    size_t len;
    const char *val = tickfile_text(&tf, &len);
    if (!tf.jsonl || (convert && t.ts_int)) {
      len = tick_to_json(json, &t);
      val = json;
    }
    rc = feed_send(sink, val, len, t.sym, t.sym_len, err, errlen);
    if (rc < 0)
      break;
  }
  if (rc < 0 && rc != TC_EKAFKA)
    snprintf(err, errlen, "%s:%llu: %s", tf.path, (unsigned long long)tf.line, derr);
  char warn[512];
  if (tickfile_ts_warning(&tf, warn, sizeof warn))
    log_warn("feed", "%s", warn);
  tickfile_close(&tf);
  return rc < 0 ? rc : 0;
}

static int feed_raw(const feed_opts *o, feed_sink *sink, char *err, size_t errlen) {
  FILE *f = strcmp(o->input, "-") ? fopen(o->input, "rb") : stdin;
  if (!f) {
    snprintf(err, errlen, "%s: cannot open: %s", o->input, strerror(errno));
    return TC_EUSAGE;
  }
  char *line = NULL, derr[8];
  size_t cap = 0;
  ssize_t n;
  int rc = 0;
  while ((n = getline(&line, &cap, f)) >= 0) {
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
      n--;
    if (n == 0)
      continue;
    tick t;
    int ok = tick_parse_json(&t, line, (size_t)n, derr, 0) == TICK_OK;
    rc = feed_send(sink, line, (size_t)n, ok ? t.sym : NULL, ok ? t.sym_len : 0, err, errlen);
    if (rc < 0)
      break;
  }
  if (rc == 0 && ferror(f)) {
    snprintf(err, errlen, "%s: read error: %s", o->input, strerror(errno));
    rc = TC_EIO;
  }
  free(line);
  if (f != stdin)
    fclose(f);
  return rc;
}

/* N ticks of a geometric random walk per instrument, each tick of a uniformly drawn instrument,
 * timestamps 1 ms apart on average from --start-time, a quote on 3 ticks in 4. Same seed, same
 * ticks. */
static int feed_synthetic(const feed_opts *o, feed_sink *sink, char *err, size_t errlen) {
  int K = o->instruments;
  double *px = malloc((size_t)K * sizeof *px);
  if (!px) {
    snprintf(err, errlen, "--synthetic: out of memory");
    return TC_ENOMEM;
  }
  uint64_t s = o->seed;
  for (int k = 0; k < K; k++)
    px[k] = 10 + 190 * rng_unit(&s);
  int64_t ts = o->start_ts;
  char json[256];
  int rc = 0;
  for (long long i = 0; i < o->synthetic && rc == 0; i++) {
    int k = (int)(rng_next(&s) % (uint64_t)K);
    px[k] *= exp(0.0005 * rng_normal(&s));
    ts += 1 + (int64_t)(2e6 * rng_unit(&s));
    tick t = {.ts = ts, .px = px[k], .qty = floor(1 + 100 * rng_unit(&s))};
    t.sym_len = (uint8_t)snprintf(t.sym, sizeof t.sym, "SYN%04d", k);
    if (rng_next(&s) % 4) {
      double half = px[k] * 0.0001 * (1 + rng_unit(&s));
      t.bid = px[k] - half, t.ask = px[k] + half, t.has_quote = 1;
    }
    size_t len = tick_to_json(json, &t);
    rc = feed_send(sink, json, len, t.sym, t.sym_len, err, errlen);
  }
  free(px);
  return rc;
}

/* The command line into o and kc (flags not given there from the config file), then librdkafka.
 * Returns -1 to go on, or the exit status to return at once (0 after --help, 2 after a usage
 * error, 1 when librdkafka would not load). */
static int feed_parse(feed_opts *o, kconf *kc, int argc, char **argv) {
  uint64_t synthetic = 0, seed = 1;
  int instruments = 16, synthetic_set = 0;
  /* In the order kconf_check_flags lists them for an unknown config key. */
  const args_flag flags[] = {
      {"topic", ARGS_STR, .dst = &o->topic},
      {"input", ARGS_STR, .dst = &o->input},
      {"rate", ARGS_DOUBLE, .dst = &o->rate, .lo = 0, .hi = 1e9},
      {"synthetic", ARGS_FN, .dst = &synthetic, .parse = args_u64, .given = &synthetic_set,
       .unit = "an integer in 0..1000000000000"},
      {"instruments", ARGS_INT, .dst = &instruments, .lo = 1, .hi = 1000000},
      {"seed", ARGS_FN, .dst = &seed, .parse = args_u64, .unit = "an unsigned 64-bit integer"},
      {"start-time", ARGS_FN, .dst = &o->start_ts, .parse = args_time_ns,
       .unit = "RFC 3339 or integer ns"},
      ARGS_LOG_LEVEL,
      {"raw", ARGS_SWITCH, .dst = &o->raw},
      {"ts-unit", ARGS_CHOICE, .dst = &o->ts_unit, .choices = tickfile_ts_unit_names},
  };
  const args_cmd c = {.name = "feed",
                      .flags = flags,
                      .nflags = (int)(sizeof flags / sizeof flags[0]),
                      .kc = kc,
                      .usage = usage};
  int status = args_parse_cmd(&c, argc, argv);
  if (status >= 0)
    return status;
  if (synthetic_set && synthetic > 1000000000000ull) {
    fprintf(stderr, "tickcast feed: --synthetic %llu: expected an integer in 0..1000000000000\n",
            (unsigned long long)synthetic);
    return 2;
  }
  o->synthetic = synthetic_set ? (long long)synthetic : -1;
  o->instruments = instruments;
  o->seed = seed;
  if (!kc->brokers || !o->topic || (!o->input && o->synthetic < 0) ||
      (o->input && o->synthetic >= 0) || (o->raw && !o->input) ||
      (o->raw && o->ts_unit != TICKFILE_TS_AUTO)) {
    fprintf(stderr, "tickcast feed: %s (see tickcast feed --help)\n",
            !kc->brokers          ? "--brokers is required"
            : !o->topic           ? "--topic is required"
            : o->raw && !o->input ? "--raw needs --input"
            : o->raw   ? "--raw sends lines verbatim, so --ts-unit cannot convert them (drop one)"
            : o->input ? "--input and --synthetic exclude each other"
                       : "one of --input FILE or --synthetic N is required");
    return 2;
  }
  return args_kafka_load("feed");
}

/* The idempotent murmur2 producer and its topic into sink (its delivery reports count into
 * sink->st). 0, or the exit status after printing why. */
static int feed_open(feed_sink *sink, const kconf *kc, const char *topic) {
  const char *defaults[] = {"enable.idempotence", "true",          "partitioner",
                            "murmur2_random",     "linger.ms",     "5",
                            "client.id",          "tickcast-feed", NULL};
  char err[1024];
  rd_kafka_conf_t *conf;
  if (kconf_build(kc, defaults, &conf, err, sizeof err) < 0) {
    fprintf(stderr, "tickcast feed: %s\n", err);
    return 2;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_opaque(conf, sink->st);
  if (!(sink->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err))) {
    rd_kafka_conf_destroy(conf);
    fprintf(stderr, "tickcast feed: cannot create the producer: %s\n", err);
    return 1;
  }
  if (!(sink->rkt = rd_kafka_topic_new(sink->rk, topic, NULL))) {
    fprintf(stderr, "tickcast feed: topic %s: %s\n", topic,
            rd_kafka_err2str(rd_kafka_last_error()));
    return 1;
  }
  sink->wait_ms = kconf_queue_wait_ms(sink->rk);
  return 0;
}

/* Sends the synthetic walk, the raw lines or the tick file, until done or a stop signal.
 * Returns 0 (also when stopped by a signal) or the source's negative TC_E* code, printed. */
static int feed_send_all(const feed_opts *o, feed_sink *sink) {
  /* No SA_RESTART: a read blocked on stdin returns, and the loops see feed_stop. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sink->b =
      (bucket){.rate = o->rate, .burst = o->rate > 100 ? o->rate / 100 : 1, .last = tc_mono_s()};
  char err[1024];
  int rc = o->synthetic >= 0 ? feed_synthetic(o, sink, err, sizeof err)
           : o->raw          ? feed_raw(o, sink, err, sizeof err)
                             : feed_file(o, sink, err, sizeof err);
  if (feed_stop) { /* stopped on request: not a failure if what was sent gets delivered */
    log_info("feed", "stop signal: stopped sending, flushing");
    return 0;
  }
  if (rc < 0)
    fprintf(stderr, "tickcast feed: %s\n", err);
  return rc;
}

/* Waits for the delivery reports: at most FEED_FLUSH_MS, and at most FEED_STOP_FLUSH_MS from a
 * stop signal, whether it came before the flush or during it. *waited_ms: how long it waited. */
static rd_kafka_resp_err_t feed_flush(rd_kafka_t *rk, int *waited_ms) {
  double t0 = tc_mono_s(), end = t0 + FEED_FLUSH_MS / 1e3;
  double stop_end = feed_stop ? t0 + FEED_STOP_FLUSH_MS / 1e3 : -1;
  for (;;) {
    rd_kafka_resp_err_t e = rd_kafka_flush(rk, 100);
    double now = tc_mono_s();
    *waited_ms = (int)((now - t0) * 1e3);
    if (!e)
      return e;
    if (feed_stop && stop_end < 0) /* the signal came during the flush */
      stop_end = now + FEED_STOP_FLUSH_MS / 1e3;
    if (now >= end || (stop_end >= 0 && now >= stop_end))
      return e;
  }
}

/* Waits for the delivery reports (less long after a stop signal) and prints the summary: one line,
 * then one per reject reason with its first line numbers. Returns the undelivered count. */
static uint64_t feed_finish(const feed_opts *o, feed_sink *sink, double t0) {
  const feed_stats *st = sink->st;
  int flush_ms = 0;
  rd_kafka_resp_err_t ferr = feed_flush(sink->rk, &flush_ms);
  double dt = tc_mono_s() - t0;
  uint64_t undelivered = st->sent - st->delivered - st->failed;
  if (ferr)
    log_error("feed", "flush: %llu messages still undelivered after %d ms: %s",
              (unsigned long long)undelivered, flush_ms, rd_kafka_err2str(ferr));
  if (st->failed)
    log_error("feed", "first delivery error: %s", st->first_error);
  fprintf(stderr,
          "feed: %s -> %s: sent %llu, delivered %llu, failed %llu, rejected %llu, "
          "%.2f s, %.0f ticks/s\n",
          o->synthetic >= 0 ? "synthetic" : o->input, o->topic, (unsigned long long)st->sent,
          (unsigned long long)st->delivered, (unsigned long long)(st->failed + undelivered),
          (unsigned long long)st->rej.total, dt, dt > 0 ? st->delivered / dt : 0.0);
  reject_tally_summary(&st->rej, stderr, "feed: ", REJECT_SUM_INLINE);
  return undelivered;
}

int cmd_feed(int argc, char **argv) {
  feed_opts o = {.start_ts = 1704067200000000000LL, /* 2024-01-01T00:00:00Z */
                 .ts_unit = TICKFILE_TS_AUTO};
  kconf kc;
  kconf_init(&kc);
  feed_stats st = {0};
  reject_tally_init(&st.rej);
  st.rej.print = log_warn_line;
  st.rej.print_ud = "feed";
  feed_sink sink = {.st = &st};
  int status = feed_parse(&o, &kc, argc, argv);
  if (status < 0 && (status = feed_open(&sink, &kc, o.topic)) == 0) {
    double t0 = tc_mono_s();
    int rc = feed_send_all(&o, &sink);
    uint64_t undelivered = feed_finish(&o, &sink, t0);
    status = rc == TC_EUSAGE ? 2 : rc < 0 || st.failed || undelivered ? 1 : 0;
  }
  if (sink.rkt)
    rd_kafka_topic_destroy(sink.rkt);
  if (sink.rk) {
    /* What the flush gave up on (counted as undelivered) is purged: librdkafka would otherwise
     * warn at destroy that it is "still in queue or transit: use flush()". */
    kprod_close_lent(sink.rk, 1000);
    rd_kafka_destroy(sink.rk);
  }
  kconf_free(&kc);
  return status;
}
