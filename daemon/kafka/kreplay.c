/* kreplay.c: the model over a Kafka topic range with fresh state (see kreplay.h), partitions
 * assigned explicitly, stopping at the end of the range. Predictions go through the same engine
 * and encoders as the file replay; with threads > 1, this thread reads the messages in the same
 * order and the pipeline of preplay.h decodes, steps and encodes them on the workers, writing
 * the same output. Not the daemon: no loop, no checkpoints, no dead-letter topic (rejects are
 * counted); not the command line (cmd_kreplay.c). */
#include "daemon/kafka/kreplay.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "daemon/kafka/changelog.h"
#include "daemon/kafka/kconf.h"
#include "daemon/kafka/produce.h"
#include "daemon/pipeline/encode.h"
#include "daemon/pipeline/engine.h"
#include "daemon/pipeline/log.h"
#include "daemon/pipeline/preplay.h"
#include "ingest/reject.h"
#include "ingest/tick.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"
#include "nn/model.h"

#define KR_CHUNK 4096     /* ticks per engine call */
#define KR_META_MS 10000  /* metadata, watermark and offsets-for-times requests */
#define KR_FLUSH_MS 30000 /* final flush of --output-topic */

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

/* One partition's range and progress. */
typedef struct kr_part {
  int32_t id;    /* partition number */
  int64_t start; /* first offset to read */
  int64_t end;   /* first offset not to read */
  int64_t next;  /* next offset expected; done when next >= end */
  uint64_t read; /* messages read in range */
} kr_part;

/* Reads the message at offset `off` of topic/part and returns 1 with its timestamp (ms), or 0
 * when it cannot be read within KR_META_MS or has none. Leaves nothing assigned. */
static int last_timestamp(rd_kafka_t *rk, const char *topic, int32_t part, int64_t off,
                          int64_t *ts) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, part)->offset = off;
  int found = 0;
  if (!rd_kafka_assign(rk, l)) {
    double deadline = tc_mono_s() + KR_META_MS / 1000.0;
    int got = 0;
    while (!got && tc_mono_s() < deadline) {
      rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
      if (!m)
        continue;
      if (!m->err && m->partition == part && m->offset == off) {
        *ts = rd_kafka_message_timestamp(m, NULL);
        found = *ts >= 0;
        got = 1;
      }
      rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, NULL);
  }
  rd_kafka_topic_partition_list_destroy(l);
  return found;
}

/* Resolves time bounds with rd_kafka_offsets_for_times: for each partition, the first offset
 * whose timestamp is >= ms, or the high watermark (-1 from the broker) when there is none.
 * Writes the offsets into start or end of parts. Returns 0 or -1 with err set. */
static int offsets_for_time(rd_kafka_t *rk, const char *topic, kr_part *parts, int np, int64_t ms,
                            int is_start, const char *flag, const char *val, char *err,
                            size_t errlen) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
  for (int i = 0; i < np; i++)
    rd_kafka_topic_partition_list_add(l, topic, parts[i].id)->offset = ms;
  rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, l, KR_META_MS);
  for (int i = 0; !e && i < l->cnt; i++)
    if (l->elems[i].err)
      e = l->elems[i].err;
  if (e) {
    snprintf(
        err, errlen,
        "%s %s: offsets-for-times (ListOffsets by timestamp) failed on %s: %s; the embedded "
        "broker (tickcast broker) does not implement it: use --start-offset/--end-offset there",
        flag, val, topic, rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    return -1;
  }
  for (int i = 0; i < l->cnt; i++) {
    kr_part *p = &parts[i];
    int64_t off = l->elems[i].offset, last_ts = -1;
    /* -1 means "no message that late". Brokers without the lookup (the embedded one) also say
     * -1, so check against the partition's last message before believing it. */
    if (off < 0 && p->end > p->start && last_timestamp(rk, topic, p->id, p->end - 1, &last_ts) &&
        last_ts >= ms) {
      snprintf(
          err, errlen,
          "%s %s: the broker found no offset in %s/%d although its message at offset %lld "
          "has timestamp %lld ms >= %lld: it does not implement offsets-for-times (ListOffsets "
          "by timestamp; the embedded tickcast broker does not): use --start-offset/"
          "--end-offset",
          flag, val, topic, (int)p->id, (long long)(p->end - 1), (long long)last_ts, (long long)ms);
      rd_kafka_topic_partition_list_destroy(l);
      return -1;
    }
    if (off < 0)
      off = p->end; /* no message that late: the range ends (or starts) at the end */
    if (is_start)
      p->start = off;
    else
      p->end = off;
  }
  rd_kafka_topic_partition_list_destroy(l);
  return 0;
}

/* Delivery failures of --output-topic. */
typedef struct kr_dr {
  uint64_t delivered, failed;
  char first_error[256];
} kr_dr;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  kr_dr *d = opaque;
  if (!m->err) {
    d->delivered++;
    return;
  }
  if (!d->failed++)
    snprintf(d->first_error, sizeof d->first_error, "%s [%d]: %s", rd_kafka_topic_name(m->rkt),
             (int)m->partition, rd_kafka_err2str(m->err));
}

/* One replay: its settings, clients, buffers and counts. */
typedef struct kr_run {
  const kreplay_opts *o;     /* what to replay */
  const kconf *kc;           /* the Kafka settings */
  rd_kafka_t *rk;            /* the consumer */
  rd_kafka_t *prod;          /* --output-topic's producer, or NULL */
  rd_kafka_topic_t *out_rkt; /* its topic */
  int prod_wait_ms;          /* how long a produce may wait for room in prod's queue */
  kr_dr dr;                  /* prod's delivery reports */
  FILE *out;                 /* the prediction file, or NULL */
  int jsonl;                 /* predictions as JSON Lines (always for a topic) */
  kr_part *parts;            /* (np) the partitions' ranges and progress */
  int np;                    /* partitions to read */
  engine e;                  /* fresh state */
  int engine_ok;             /* e is set up */
  eng_tick *ticks;           /* (KR_CHUNK) the chunk */
  reject_loc *srcs;          /* (KR_CHUNK) where each tick of the chunk came from */
  char *outbuf;              /* (KR_CHUNK * ENC_PRED_MAX) the chunk's predictions */
  uint64_t read;             /* messages read in range */
  reject_tally rej;          /* rejected messages */
  reject_hold hold;          /* threads 1: the chunk's decode rejects, noted as it is walked */
  preplay *pp;               /* threads > 1: the pipeline */
  size_t outlen;             /* threads > 1: bytes waiting in outbuf */
  double last_msg;           /* when the consumer last returned a message (tc_mono_s) */
  int failed;                /* a runtime failure was reported */
} kr_run;

/* The consumer: explicit assignment, nothing committed, an end-of-partition event. */
static int kr_open_consumer(kr_run *r) {
  const char *defaults[] = {"client.id", "tickcast-replay", "group.id", "tickcast-replay",
                            "enable.auto.commit", "false", "enable.auto.offset.store", "false",
                            "enable.partition.eof", "true", "auto.offset.reset", "earliest",
                            /* A fetch at the end of one partition must not hold up the next
                             * partition's first fetch for the default 500 ms. */
                            "fetch.wait.max.ms", "10", NULL};
  char err[1024];
  rd_kafka_conf_t *conf;
  if (kconf_build(r->kc, defaults, &conf, err, sizeof err) < 0) {
    fprintf(stderr, "tickcast replay: %s\n", err);
    return TC_EUSAGE;
  }
  if (!(r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err))) {
    rd_kafka_conf_destroy(conf);
    fprintf(stderr, "tickcast replay: cannot create the consumer: %s\n", err);
    return TC_EKAFKA;
  }
  rd_kafka_poll_set_consumer(r->rk);
  return 0;
}

/* The topic's partition count into *n. All-topics metadata, because asking for one topic makes
 * brokers with auto-creation (the embedded one always) create it. */
static int kr_topic_partitions(kr_run *r, int *n) {
  const char *topic = r->o->topic;
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t ke = rd_kafka_metadata(r->rk, 1, NULL, &md, KR_META_MS);
  int ti = -1;
  for (int i = 0; !ke && i < md->topic_cnt; i++)
    if (!strcmp(md->topics[i].topic, topic))
      ti = i;
  if (!ke && ti < 0)
    ke = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
  if (!ke && md->topics[ti].err)
    ke = md->topics[ti].err;
  if (ke) {
    fprintf(stderr, "tickcast replay: topic %s on %s: %s\n", topic, r->kc->brokers,
            rd_kafka_err2str(ke));
    if (md)
      rd_kafka_metadata_destroy(md);
    return TC_EKAFKA;
  }
  *n = md->topics[ti].partition_cnt;
  rd_kafka_metadata_destroy(md);
  if (*n <= 0 || *n > KREPLAY_MAX_PARTS) {
    fprintf(stderr, "tickcast replay: topic %s has %d partitions (expected 1..%d)\n", topic, *n,
            KREPLAY_MAX_PARTS);
    return TC_EKAFKA;
  }
  return 0;
}

/* The chunk buffers and the engine. */
static int kr_alloc(kr_run *r, const nn_model *m) {
  r->parts = calloc((size_t)r->np, sizeof *r->parts);
  r->ticks = malloc(KR_CHUNK * sizeof *r->ticks);
  r->srcs = malloc(KR_CHUNK * sizeof *r->srcs);
  r->outbuf = malloc(KR_CHUNK * (size_t)ENC_PRED_MAX);
  /* Exact: the same bits as the workers of threads > 1, on every CPU (engine.h). */
  if (!r->parts || !r->ticks || !r->srcs || !r->outbuf || reject_hold_init(&r->hold) != 0 ||
      (r->o->threads <= 1 && engine_init_exact(&r->e, m, KR_CHUNK, ENGINE_WAVE) != 0)) {
    fprintf(stderr, "tickcast replay: out of memory\n");
    return TC_ENOMEM;
  }
  r->engine_ok = r->o->threads <= 1;
  if (r->engine_ok && r->o->interval > 0)
    engine_set_interval(&r->e, r->o->interval);
  if (r->engine_ok)
    engine_set_adapt(&r->e, r->o->adapt);
  return 0;
}

/* Each partition's range from the watermarks, the offsets and the time bounds. */
static int kr_set_ranges(kr_run *r, int ntopic) {
  const kreplay_opts *o = r->o;
  for (int i = 0; i < r->np; i++) {
    int32_t id = o->parts ? o->parts[i] : i;
    for (int j = 0; j < i; j++)
      if (r->parts[j].id == id) {
        fprintf(stderr, "tickcast replay: --partitions %s: partition %d named twice\n",
                o->parts_arg, (int)id);
        return TC_EUSAGE;
      }
    if (id >= ntopic) {
      fprintf(stderr, "tickcast replay: --partitions %s: topic %s has partitions 0..%d, found %d\n",
              o->parts_arg, o->topic, ntopic - 1, (int)id);
      return TC_EUSAGE;
    }
    r->parts[i].id = id;
    int64_t lo, hi; /* not rd_kafka_query_watermark_offsets, which may wait 60 s (cl_watermarks) */
    rd_kafka_resp_err_t ke = cl_watermarks(r->rk, o->topic, id, &lo, &hi, KR_META_MS, NULL);
    if (ke) {
      fprintf(stderr, "tickcast replay: %s/%d: watermarks: %s\n", o->topic, (int)id,
              rd_kafka_err2str(ke));
      return TC_EKAFKA;
    }
    r->parts[i].start = o->start_off >= 0 ? (o->start_off < lo ? lo : o->start_off) : lo;
    r->parts[i].end = o->end_off >= 0 && o->end_off < hi ? o->end_off : hi;
  }
  char err[1024];
  if ((o->start_ms >= 0 && offsets_for_time(r->rk, o->topic, r->parts, r->np, o->start_ms, 1,
                                            "--start-time", o->start_time, err, sizeof err) < 0) ||
      (o->end_ms >= 0 && offsets_for_time(r->rk, o->topic, r->parts, r->np, o->end_ms, 0,
                                          "--end-time", o->end_time, err, sizeof err) < 0)) {
    fprintf(stderr, "tickcast replay: %s\n", err);
    return TC_EKAFKA;
  }
  for (int i = 0; i < r->np; i++) {
    kr_part *p = &r->parts[i];
    p->next = p->start;
    log_debug("replay", "%s/%d: offsets [%lld, %lld)", o->topic, (int)p->id, (long long)p->start,
              (long long)p->end);
  }
  return 0;
}

/* --output-topic's producer. */
static int kr_open_producer(kr_run *r) {
  const char *defaults[] = {"client.id",   "tickcast-replay", "enable.idempotence", "true",
                            "partitioner", "murmur2_random",  "linger.ms",          "5",
                            NULL};
  char err[1024];
  rd_kafka_conf_t *conf;
  if (kconf_build(r->kc, defaults, &conf, err, sizeof err) < 0) {
    fprintf(stderr, "tickcast replay: %s\n", err);
    return TC_EKAFKA;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_opaque(conf, &r->dr);
  if (!(r->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err))) {
    rd_kafka_conf_destroy(conf);
    fprintf(stderr, "tickcast replay: cannot create the producer: %s\n", err);
    return TC_EKAFKA;
  }
  r->prod_wait_ms = kconf_queue_wait_ms(r->prod);
  if (!(r->out_rkt = rd_kafka_topic_new(r->prod, r->o->out_topic, NULL))) {
    fprintf(stderr, "tickcast replay: --output-topic %s: %s\n", r->o->out_topic,
            rd_kafka_err2str(rd_kafka_last_error()));
    return TC_EKAFKA;
  }
  return 0;
}

/* Where predictions go: a topic, or a file (CSV with its header, or JSONL) or stdout. */
static int kr_open_output(kr_run *r, const nn_model *m) {
  const kreplay_opts *o = r->o;
  r->jsonl = o->out_topic || (o->output && ends_with(o->output, ".jsonl"));
  if (o->out_topic)
    return kr_open_producer(r);
  if (!o->output || !strcmp(o->output, "-")) {
    r->out = stdout;
  } else if (!(r->out = fopen(o->output, "w"))) {
    fprintf(stderr, "tickcast replay: %s: cannot open for writing: %s\n", o->output,
            strerror(errno));
    return TC_EIO;
  }
  if (!r->jsonl)
    fprintf(r->out, "%s\n", enc_csv_header(m));
  return 0;
}

/* Starts reading partition p at its start. */
static int kr_assign(kr_run *r, const kr_part *p) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, r->o->topic, p->id)->offset = p->start;
  rd_kafka_resp_err_t ke = rd_kafka_assign(r->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (ke) {
    fprintf(stderr, "tickcast replay: assign %s/%d: %s\n", r->o->topic, (int)p->id,
            rd_kafka_err2str(ke));
    r->failed = 1;
    return TC_EKAFKA;
  }
  r->last_msg = tc_mono_s();
  return 0;
}

/* Decodes message msg of p at its offset into the chunk's tick N; returns 1 when accepted (for the
 * engine to check its order), 0 when rejected (counted). */
static int kr_decode(kr_run *r, kr_part *p, const rd_kafka_message_t *msg, int N) {
  eng_tick *t = &r->ticks[N];
  char derr[256];
  t->partition = p->id;
  t->reason = msg->payload ? tick_parse_json(&t->t, msg->payload, msg->len, derr, sizeof derr)
                           : TICK_BAD_JSON;
  if (!msg->payload)
    snprintf(derr, sizeof derr, "empty message (null value)");
  if (t->reason == TICK_OK)
    t->reason = tick_check_key(&t->t, msg->key, msg->key_len, derr, sizeof derr);
  r->srcs[N] = (reject_loc){r->o->topic, p->id, msg->offset};
  r->read++;
  p->read++;
  if (t->reason == TICK_OK)
    return 1;
  reject_hold_add(&r->hold, &r->rej, t->reason, r->srcs[N], derr, N);
  return 0;
}

/* Takes one message of p: the end of the log, an error, or a message; moves p->next past it.
 * Returns 1 for a message in range (the caller decodes it), else 0. */
static int kr_take(kr_run *r, kr_part *p, const rd_kafka_message_t *msg) {
  if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    /* End of the log: done when the range end is reached (offsets may have gaps). */
    if (msg->offset >= p->end)
      p->next = p->end;
    else if (msg->offset > p->next)
      p->next = msg->offset;
  } else if (msg->err) {
    fprintf(stderr, "tickcast replay: %s/%d: %s\n", r->o->topic, (int)p->id,
            rd_kafka_message_errstr(msg));
    r->failed = 1;
  } else if (msg->offset >= p->next) {
    int in = msg->offset < p->end;
    p->next = msg->offset + 1 < p->end ? msg->offset + 1 : p->end;
    return in;
  }
  return 0;
}

/* The next message of p in its range (destroy it after use), or NULL at the end of the range or
 * after a failure: a consumer error, or idle_ms without a message (r->failed set). */
static rd_kafka_message_t *kr_next(kr_run *r, kr_part *p) {
  while (p->next < p->end && !r->failed) {
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(r->rk, 100);
    if (msg && msg->partition != p->id) { /* not ours: a client-wide error, or stale */
      if (msg->err && msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        log_warn("replay", "%s", rd_kafka_message_errstr(msg));
      rd_kafka_message_destroy(msg);
      msg = NULL;
    }
    if (!msg) {
      if (tc_mono_s() - r->last_msg > r->o->idle_ms / 1000.0) {
        fprintf(stderr,
                "tickcast replay: %s/%d: no message for %d ms at offset %lld, before "
                "the end of the range %lld\n",
                r->o->topic, (int)p->id, r->o->idle_ms, (long long)p->next, (long long)p->end);
        r->failed = 1;
      }
      continue;
    }
    r->last_msg = tc_mono_s();
    if (kr_take(r, p, msg))
      return msg;
    rd_kafka_message_destroy(msg);
  }
  return NULL;
}

/* Reads the next chunk of p: up to KR_CHUNK accepted ticks or the rest of its range. Returns the
 * ticks in the chunk; sets r->failed on a consumer error or after idle_ms without a message. */
static int kr_read_chunk(kr_run *r, kr_part *p) {
  int N = 0;
  rd_kafka_message_t *msg;
  while (N < KR_CHUNK && !reject_hold_full(&r->hold) && (msg = kr_next(r, p))) {
    N += kr_decode(r, p, msg, N);
    rd_kafka_message_destroy(msg);
  }
  return N;
}

/* Produces the prediction json[0..n) to --output-topic, keyed by sym. */
static void kr_produce(kr_run *r, const char *sym, size_t symlen, const char *json, size_t n) {
  rd_kafka_resp_err_t pe =
      kprod_send(r->prod, r->out_rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (char *)json, n,
                 sym, symlen, NULL, r->prod_wait_ms, NULL);
  if (pe) {
    fprintf(stderr, "tickcast replay: produce to %s: %s\n", r->o->out_topic, rd_kafka_err2str(pe));
    r->failed = 1;
  }
}

/* Steps the chunk's N ticks through the engine and writes or produces their predictions; JSON
 * Lines name their source TOPIC/PARTITION/OFFSET. */
static void kr_emit_chunk(kr_run *r, int N) {
  if (engine_process(&r->e, r->ticks, N) != 0) {
    fprintf(stderr, "tickcast replay: out of memory\n");
    r->failed = 1;
    return;
  }
  const char *topic = r->o->topic;
  size_t tlen = strlen(topic) > 200 ? 200 : strlen(topic);
  char *bp = r->outbuf;
  for (int i = 0; i < N && !r->failed; i++) {
    eng_tick *t = &r->ticks[i];
    reject_hold_flush(&r->hold, &r->rej, i);
    if (t->reason == TICK_OUT_OF_ORDER) {
      char msg[256];
      tick_ooo_message(msg, sizeof msg, t->t.ts, t->prev_ts, t->t.sym);
      reject_tally_note(&r->rej, TICK_OUT_OF_ORDER, r->srcs[i], msg);
    }
    if (t->reason != TICK_OK)
      continue;
    if (!r->jsonl) {
      bp += enc_pred_csv(bp, t);
      *bp++ = '\n';
      continue;
    }
    char src[400];
    memcpy(src, topic, tlen);
    size_t sl = tlen;
    sl += (size_t)snprintf(src + sl, sizeof src - sl, "/%d/%lld", (int)r->srcs[i].part,
                           (long long)r->srcs[i].pos);
    size_t n = enc_pred_json(bp, t, src, sl);
    if (r->out_rkt) {
      kr_produce(r, t->t.sym, t->t.sym_len, bp, n);
      continue;
    }
    bp += n;
    *bp++ = '\n';
  }
  reject_hold_flush(&r->hold, &r->rej, INT_MAX);
  if (r->prod)
    rd_kafka_poll(r->prod, 0);
  if (r->out &&
      fwrite(r->outbuf, 1, (size_t)(bp - r->outbuf), r->out) != (size_t)(bp - r->outbuf)) {
    fprintf(stderr, "tickcast replay: %s: write failed: %s\n",
            r->o->output ? r->o->output : "stdout", strerror(errno));
    r->failed = 1;
  }
}

/* Partitions are read one at a time, each in chunks of the next KR_CHUNK accepted ticks (or the
 * rest of its range, or fewer when REJECT_HOLD_MAX rejects are held). The exact engine gives an
 * instrument the same bits whichever others share its chunk, so the output does not depend on
 * where chunks end. Instruments never span partitions when keyed by sym. */
static void kr_replay(kr_run *r) {
  for (int i = 0; i < r->np && !r->failed; i++) {
    kr_part *p = &r->parts[i];
    if (p->next >= p->end || kr_assign(r, p) != 0)
      continue;
    while (p->next < p->end && !r->failed) {
      int N = kr_read_chunk(r, p);
      if (N > 0)
        kr_emit_chunk(r, N);
      else
        reject_hold_flush(&r->hold, &r->rej, INT_MAX);
    }
  }
}

/* ---- threads > 1: this thread reads, the pipeline of preplay.h does the rest ---- */

/* Writes the gathered predictions to the file. */
static void kr_par_flush(kr_run *r) {
  if (r->out && r->outlen && fwrite(r->outbuf, 1, r->outlen, r->out) != r->outlen) {
    fprintf(stderr, "tickcast replay: %s: write failed: %s\n",
            r->o->output ? r->o->output : "stdout", strerror(errno));
    r->failed = 1;
  }
  r->outlen = 0;
}

/* A message as kr_decode decodes it: no value is bad_json, the key must match sym. */
static int kr_par_decode(void *ud, int worker, const char *bytes, const preplay_rec *rec, tick *t,
                         int *reason, char *err, size_t errlen) {
  (void)ud, (void)worker;
  if (rec->null) {
    if (errlen)
      snprintf(err, errlen, "empty message (null value)");
    *reason = TICK_BAD_JSON;
    return 1;
  }
  *reason = tick_parse_json(t, bytes + rec->off, rec->len, err, errlen);
  if (*reason == TICK_OK)
    *reason = tick_check_key(t, rec->klen >= 0 ? bytes + rec->koff : NULL,
                             rec->klen >= 0 ? (size_t)rec->klen : 0, err, errlen);
  return 1;
}

/* A message's sym without decoding it; a message without a value is bad_json on any worker. */
static int kr_par_route(void *ud, const char *bytes, const preplay_rec *rec, const char **sym,
                        size_t *len) {
  (void)ud;
  return rec->null ? 0 : tick_json_sym_hint(bytes + rec->off, rec->len, sym, len);
}

static int kr_par_emit(void *ud, const preplay_rec *rec, const char *sym, size_t symlen,
                       const char *text, size_t len) {
  (void)rec;
  kr_run *r = ud;
  if (r->out_rkt) {
    kr_produce(r, sym, symlen, text, len - 1); /* without the '\n' */
    return r->failed;
  }
  if (r->outlen + len > KR_CHUNK * (size_t)ENC_PRED_MAX)
    kr_par_flush(r);
  memcpy(r->outbuf + r->outlen, text, len);
  r->outlen += len;
  return r->failed;
}

static int kr_par_chunk_done(void *ud) {
  kr_run *r = ud;
  if (r->prod)
    rd_kafka_poll(r->prod, 0);
  kr_par_flush(r);
  return r->failed;
}

/* Adds the messages of every partition in turn to the pipeline's chunks, as kr_replay reads
 * them, then lets the pipeline finish. */
static void kr_replay_par(kr_run *r, const nn_model *m) {
  const preplay_cfg cfg = {.m = m,
                           .interval = r->o->interval,
                           .adapt = r->o->adapt,
                           .threads = r->o->threads,
                           .jsonl = r->jsonl,
                           .keep_sym = r->out_rkt != NULL,
                           .src = r->o->topic,
                           .src_max = 200,
                           .rej = &r->rej,
                           .route = kr_par_route,
                           .decode = kr_par_decode,
                           .emit = kr_par_emit,
                           .chunk_done = kr_par_chunk_done,
                           .ud = r};
  if (preplay_new(&r->pp, &cfg) != 0) {
    fprintf(stderr, "tickcast replay: out of memory\n");
    r->failed = 1;
    return;
  }
  preplay_chunk *c = preplay_acquire(r->pp);
  for (int i = 0; i < r->np && c && !r->failed; i++) {
    kr_part *p = &r->parts[i];
    if (p->next >= p->end || kr_assign(r, p) != 0)
      continue;
    rd_kafka_message_t *msg;
    while (c && (msg = kr_next(r, p))) {
      int room = preplay_add(c, msg->payload, msg->len, msg->key, msg->key_len, p->id, msg->offset);
      rd_kafka_message_destroy(msg);
      r->read++;
      p->read++;
      if (room < 0) {
        fprintf(stderr, "tickcast replay: out of memory\n");
        r->failed = 1;
        break;
      } else if (room == 0) {
        preplay_submit(r->pp, c);
        c = preplay_acquire(r->pp);
      }
    }
  }
  if (c)
    preplay_submit(r->pp, c);
  int rc = preplay_finish(r->pp);
  if (rc == TC_ENOMEM)
    fprintf(stderr, "tickcast replay: out of memory\n");
  if (rc != 0)
    r->failed = 1;
}

/* Flushes the output: the file, or the producer with its delivery check. */
static void kr_flush(kr_run *r) {
  if (r->out && fflush(r->out) != 0) {
    fprintf(stderr, "tickcast replay: %s: write failed: %s\n",
            r->o->output ? r->o->output : "stdout", strerror(errno));
    r->failed = 1;
  }
  if (!r->prod)
    return;
  rd_kafka_flush(r->prod, KR_FLUSH_MS);
  uint64_t undelivered = (uint64_t)rd_kafka_outq_len(r->prod);
  if (r->dr.failed || undelivered) {
    fprintf(stderr, "tickcast replay: --output-topic %s: %llu failed, %llu undelivered%s%s\n",
            r->o->out_topic, (unsigned long long)r->dr.failed, (unsigned long long)undelivered,
            r->dr.failed ? "; first error: " : "", r->dr.first_error);
    r->failed = 1;
  }
}

static void kr_summary(const kr_run *r, double dt) {
  uint64_t accepted = r->pp ? preplay_accepted(r->pp) : r->e.accepted;
  uint32_t live = r->pp ? preplay_instruments(r->pp) : r->e.st.live;
  fprintf(stderr,
          "replay %s: %llu messages read, %llu accepted, %llu rejected, %u instruments, "
          "%.3f s, %.0f ticks/s\n",
          r->o->topic, (unsigned long long)r->read, (unsigned long long)accepted,
          (unsigned long long)r->rej.total, live, dt, dt > 0 ? r->read / dt : 0.0);
  for (int i = 0; i < r->np; i++)
    fprintf(stderr, "  partition %d: offsets [%lld, %lld), %llu read\n", (int)r->parts[i].id,
            (long long)r->parts[i].start, (long long)r->parts[i].end,
            (unsigned long long)r->parts[i].read);
  reject_tally_summary(&r->rej, stderr, "", 0);
}

/* Closes and frees what r holds; rc is the result so far, returned unless closing the output
 * file fails. */
static int kr_close(kr_run *r, int rc) {
  if (r->out && r->out != stdout && fclose(r->out) != 0 && rc == 0) {
    fprintf(stderr, "tickcast replay: %s: write failed: %s\n", r->o->output, strerror(errno));
    rc = TC_EIO;
  }
  if (r->rk) {
    rd_kafka_consumer_close(r->rk);
    rd_kafka_destroy(r->rk);
  }
  if (r->out_rkt)
    rd_kafka_topic_destroy(r->out_rkt);
  if (r->prod) {
    kprod_close_lent(r->prod, 1000); /* what kr_flush gave up on (counted there): no hint at exit */
    rd_kafka_destroy(r->prod);
  }
  if (r->engine_ok)
    engine_free(&r->e);
  preplay_destroy(r->pp);
  free(r->parts);
  free(r->ticks);
  free(r->srcs);
  free(r->outbuf);
  reject_hold_free(&r->hold);
  return rc;
}

int kreplay_run(const kreplay_opts *o, const nn_model *m, const kconf *kc) {
  kr_run r;
  memset(&r, 0, sizeof r);
  r.o = o;
  r.kc = kc;
  reject_tally_init(&r.rej);
  r.rej.quiet = o->quiet;
  r.rej.print = log_warn_line;
  r.rej.print_ud = "replay";
  int ntopic = 0;
  int rc = kr_open_consumer(&r);
  if (rc == 0)
    rc = kr_topic_partitions(&r, &ntopic);
  r.np = o->parts ? o->nparts : ntopic;
  if (rc == 0)
    rc = kr_alloc(&r, m);
  if (rc == 0)
    rc = kr_set_ranges(&r, ntopic);
  if (rc == 0)
    rc = kr_open_output(&r, m);
  if (rc == 0) {
    double t0 = tc_mono_s();
    if (o->threads > 1)
      kr_replay_par(&r, m);
    else
      kr_replay(&r);
    kr_flush(&r);
    if (!o->quiet)
      kr_summary(&r, tc_mono_s() - t0);
    rc = r.failed ? TC_EKAFKA : 0;
  }
  return kr_close(&r, rc);
}
