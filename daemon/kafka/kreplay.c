/* kreplay.c: the model over a Kafka topic range with fresh state (see kreplay.h), partitions
 * assigned explicitly, stopping at the end of the range. Predictions go through the same engine
 * and encoders as the file replay. Not the daemon: no loop, no checkpoints, no dead-letter topic
 * (rejects are counted); not the command line (cmd_kreplay.c). */
#include "daemon/kafka/kreplay.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "daemon/kafka/kconf.h"
#include "daemon/kafka/produce.h"
#include "daemon/pipeline/encode.h"
#include "daemon/pipeline/engine.h"
#include "daemon/pipeline/log.h"
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

int kreplay_run(const kreplay_opts *o, const nn_model *m, const kconf *kc) {
  char err[1024], rerr[512];
  int status = TC_EKAFKA;
  engine e;
  memset(&e, 0, sizeof e);
  int engine_ok = 0;
  rd_kafka_t *rk = NULL, *prod = NULL;
  rd_kafka_topic_t *out_rkt = NULL;
  rd_kafka_topic_partition_list_t *assign = NULL;
  kr_part *parts = NULL;
  eng_tick *ticks = NULL;
  reject_loc *srcs = NULL; /* (KR_CHUNK) where each tick of a chunk came from */
  char *outbuf = NULL;
  FILE *out = NULL;
  kr_dr dr = {0};
  int prod_wait_ms = 0; /* how long a produce may wait for room in the producer's queue */

  const char *cdefaults[] = {"client.id", "tickcast-replay", "group.id", "tickcast-replay",
                             "enable.auto.commit", "false", "enable.auto.offset.store", "false",
                             "enable.partition.eof", "true", "auto.offset.reset", "earliest",
                             /* A fetch at the end of one partition must not hold up the next
                              * partition's first fetch for the default 500 ms. */
                             "fetch.wait.max.ms", "10", NULL};
  rd_kafka_conf_t *conf;
  if (kconf_build(kc, cdefaults, &conf, err, sizeof err) < 0) {
    fprintf(stderr, "tickcast replay: %s\n", err);
    status = TC_EUSAGE;
    goto done;
  }
  if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rerr, sizeof rerr))) {
    rd_kafka_conf_destroy(conf);
    fprintf(stderr, "tickcast replay: cannot create the consumer: %s\n", rerr);
    goto done;
  }
  rd_kafka_poll_set_consumer(rk);

  /* The topic's partitions. All-topics metadata, because asking for one topic makes brokers
   * with auto-creation (the embedded one always) create it. */
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t ke = rd_kafka_metadata(rk, 1, NULL, &md, KR_META_MS);
  int ti = -1;
  for (int i = 0; !ke && i < md->topic_cnt; i++)
    if (!strcmp(md->topics[i].topic, o->topic))
      ti = i;
  if (!ke && ti < 0)
    ke = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
  if (!ke && md->topics[ti].err)
    ke = md->topics[ti].err;
  if (ke) {
    fprintf(stderr, "tickcast replay: topic %s on %s: %s\n", o->topic, kc->brokers,
            rd_kafka_err2str(ke));
    if (md)
      rd_kafka_metadata_destroy(md);
    goto done;
  }
  int ntopic = md->topics[ti].partition_cnt;
  rd_kafka_metadata_destroy(md);
  if (ntopic <= 0 || ntopic > KREPLAY_MAX_PARTS) {
    fprintf(stderr, "tickcast replay: topic %s has %d partitions (expected 1..%d)\n", o->topic,
            ntopic, KREPLAY_MAX_PARTS);
    goto done;
  }
  int np = o->parts ? o->nparts : ntopic;
  parts = calloc((size_t)np, sizeof *parts);
  ticks = malloc(KR_CHUNK * sizeof *ticks);
  srcs = malloc(KR_CHUNK * sizeof *srcs);
  outbuf = malloc(KR_CHUNK * (size_t)ENC_PRED_MAX);
  if (!parts || !ticks || !srcs || !outbuf || engine_init(&e, m, KR_CHUNK) != 0) {
    fprintf(stderr, "tickcast replay: out of memory\n");
    goto done;
  }
  engine_ok = 1;
  for (int i = 0; i < np; i++) {
    int32_t id = o->parts ? o->parts[i] : i;
    for (int j = 0; j < i; j++)
      if (parts[j].id == id) {
        fprintf(stderr, "tickcast replay: --partitions %s: partition %d named twice\n",
                o->parts_arg, (int)id);
        status = TC_EUSAGE;
        goto done;
      }
    if (id >= ntopic) {
      fprintf(stderr, "tickcast replay: --partitions %s: topic %s has partitions 0..%d, found %d\n",
              o->parts_arg, o->topic, ntopic - 1, (int)id);
      status = TC_EUSAGE;
      goto done;
    }
    parts[i].id = id;
    int64_t lo, hi;
    ke = rd_kafka_query_watermark_offsets(rk, o->topic, id, &lo, &hi, KR_META_MS);
    if (ke) {
      fprintf(stderr, "tickcast replay: %s/%d: watermarks: %s\n", o->topic, (int)id,
              rd_kafka_err2str(ke));
      goto done;
    }
    parts[i].start = o->start_off >= 0 ? (o->start_off < lo ? lo : o->start_off) : lo;
    parts[i].end = o->end_off >= 0 && o->end_off < hi ? o->end_off : hi;
  }
  if (o->start_ms >= 0 && offsets_for_time(rk, o->topic, parts, np, o->start_ms, 1, "--start-time",
                                           o->start_time, err, sizeof err) < 0) {
    fprintf(stderr, "tickcast replay: %s\n", err);
    goto done;
  }
  if (o->end_ms >= 0 && offsets_for_time(rk, o->topic, parts, np, o->end_ms, 0, "--end-time",
                                         o->end_time, err, sizeof err) < 0) {
    fprintf(stderr, "tickcast replay: %s\n", err);
    goto done;
  }

  /* Output: a file (CSV or JSONL) or a topic. */
  int jsonl = o->out_topic || (o->output && ends_with(o->output, ".jsonl"));
  if (o->out_topic) {
    const char *pdefaults[] = {"client.id",   "tickcast-replay", "enable.idempotence", "true",
                               "partitioner", "murmur2_random",  "linger.ms",          "5",
                               NULL};
    if (kconf_build(kc, pdefaults, &conf, err, sizeof err) < 0) {
      fprintf(stderr, "tickcast replay: %s\n", err);
      goto done;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, &dr);
    if (!(prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rerr, sizeof rerr))) {
      rd_kafka_conf_destroy(conf);
      fprintf(stderr, "tickcast replay: cannot create the producer: %s\n", rerr);
      goto done;
    }
    prod_wait_ms = kconf_queue_wait_ms(prod);
    if (!(out_rkt = rd_kafka_topic_new(prod, o->out_topic, NULL))) {
      fprintf(stderr, "tickcast replay: --output-topic %s: %s\n", o->out_topic,
              rd_kafka_err2str(rd_kafka_last_error()));
      goto done;
    }
  } else if (!o->output || !strcmp(o->output, "-")) {
    out = stdout;
  } else if (!(out = fopen(o->output, "w"))) {
    fprintf(stderr, "tickcast replay: %s: cannot open for writing: %s\n", o->output,
            strerror(errno));
    goto done;
  }
  if (out && !jsonl)
    fputs(ENC_CSV_HEADER "\n", out);

  /* Partitions are read one at a time, each in chunks of the next KR_CHUNK accepted ticks (or
   * the rest of its range). The engine's float32 results depend slightly on which instruments
   * share a chunk, so fixing chunks by offsets rather than by fetch timing makes two replays of
   * one range give identical output. Instruments never span partitions when keyed by sym. */
  assign = rd_kafka_topic_partition_list_new(1);
  int remaining = 0;
  for (int i = 0; i < np; i++) {
    kr_part *p = &parts[i];
    p->next = p->start;
    if (p->start < p->end)
      remaining++;
    log_debug("replay", "%s/%d: offsets [%lld, %lld)", o->topic, (int)p->id, (long long)p->start,
              (long long)p->end);
  }

  uint64_t read = 0; /* messages read in range */
  reject_tally rej;
  reject_tally_init(&rej);
  rej.quiet = o->quiet;
  rej.print = log_warn_line;
  rej.print_ud = "replay";
  size_t tlen = strlen(o->topic) > 200 ? 200 : strlen(o->topic);
  double t0 = tc_mono_s(), last_msg = t0;
  int failed = 0, cur = -1;
  kr_part *p = NULL;
  while (remaining > 0 && !failed) {
    if (!p || p->next >= p->end) { /* on to the next partition with something in range */
      do
        cur++; /* remaining > 0: there is one */
      while (parts[cur].next >= parts[cur].end);
      p = &parts[cur];
      rd_kafka_topic_partition_list_destroy(assign);
      assign = rd_kafka_topic_partition_list_new(1);
      rd_kafka_topic_partition_list_add(assign, o->topic, p->id)->offset = p->start;
      if ((ke = rd_kafka_assign(rk, assign))) {
        fprintf(stderr, "tickcast replay: assign %s/%d: %s\n", o->topic, (int)p->id,
                rd_kafka_err2str(ke));
        failed = 1;
        break;
      }
      last_msg = tc_mono_s();
    }
    int N = 0;
    while (N < KR_CHUNK && p->next < p->end && !failed) {
      rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 100);
      if (msg && msg->partition != p->id) { /* not ours: a client-wide error, or stale */
        if (msg->err && msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
          log_warn("replay", "%s", rd_kafka_message_errstr(msg));
        rd_kafka_message_destroy(msg);
        msg = NULL;
      }
      if (!msg) {
        if (tc_mono_s() - last_msg > o->idle_ms / 1000.0) {
          fprintf(stderr,
                  "tickcast replay: %s/%d: no message for %d ms at offset %lld, before "
                  "the end of the range %lld\n",
                  o->topic, (int)p->id, o->idle_ms, (long long)p->next, (long long)p->end);
          failed = 1;
        }
        continue;
      }
      last_msg = tc_mono_s();
      if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        /* End of the log: done when the range end is reached (offsets may have gaps). */
        if (msg->offset >= p->end)
          p->next = p->end;
        else if (msg->offset > p->next)
          p->next = msg->offset;
        if (p->next >= p->end)
          remaining--;
      } else if (msg->err) {
        fprintf(stderr, "tickcast replay: %s/%d: %s\n", o->topic, (int)p->id,
                rd_kafka_message_errstr(msg));
        failed = 1;
      } else if (msg->offset >= p->next) {
        if (msg->offset < p->end) {
          eng_tick *t = &ticks[N];
          char derr[256];
          t->partition = p->id;
          t->reason = msg->payload
                          ? tick_parse_json(&t->t, msg->payload, msg->len, derr, sizeof derr)
                          : TICK_BAD_JSON;
          if (!msg->payload)
            snprintf(derr, sizeof derr, "empty message (null value)");
          if (t->reason == TICK_OK)
            t->reason = tick_check_key(&t->t, msg->key, msg->key_len, derr, sizeof derr);
          srcs[N] = (reject_loc){o->topic, p->id, msg->offset};
          read++;
          p->read++;
          if (t->reason != TICK_OK) {
            reject_tally_note(&rej, t->reason, srcs[N], derr);
          } else {
            N++;
          }
        }
        p->next = msg->offset + 1 < p->end ? msg->offset + 1 : p->end;
        if (p->next >= p->end)
          remaining--;
      }
      rd_kafka_message_destroy(msg);
    }
    if (N == 0)
      continue;
    if (engine_process(&e, ticks, N) != 0) {
      fprintf(stderr, "tickcast replay: out of memory\n");
      failed = 1;
      break;
    }
    char *bp = outbuf;
    for (int i = 0; i < N && !failed; i++) {
      eng_tick *t = &ticks[i];
      if (t->reason == TICK_OUT_OF_ORDER) {
        snprintf(err, sizeof err, "field ts: found %lld, older than the last accepted tick of %s",
                 (long long)t->t.ts, t->t.sym);
        reject_tally_note(&rej, TICK_OUT_OF_ORDER, srcs[i], err);
      }
      if (t->reason != TICK_OK)
        continue;
      if (!jsonl) {
        bp += enc_pred_csv(bp, t);
        *bp++ = '\n';
        continue;
      }
      char src[400];
      memcpy(src, o->topic, tlen);
      size_t sl = tlen;
      sl += (size_t)snprintf(src + sl, sizeof src - sl, "/%d/%lld", (int)srcs[i].part,
                             (long long)srcs[i].pos);
      size_t n = enc_pred_json(bp, t, src, sl);
      if (!out_rkt) {
        bp += n;
        *bp++ = '\n';
        continue;
      }
      rd_kafka_resp_err_t pe = kprod_send(prod, out_rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                                          bp, n, t->t.sym, t->t.sym_len, NULL, prod_wait_ms, NULL);
      if (pe) {
        fprintf(stderr, "tickcast replay: produce to %s: %s\n", o->out_topic, rd_kafka_err2str(pe));
        failed = 1;
      }
    }
    if (prod)
      rd_kafka_poll(prod, 0);
    if (out && fwrite(outbuf, 1, (size_t)(bp - outbuf), out) != (size_t)(bp - outbuf)) {
      fprintf(stderr, "tickcast replay: %s: write failed: %s\n", o->output ? o->output : "stdout",
              strerror(errno));
      failed = 1;
    }
  }
  if (out && fflush(out) != 0) {
    fprintf(stderr, "tickcast replay: %s: write failed: %s\n", o->output ? o->output : "stdout",
            strerror(errno));
    failed = 1;
  }
  uint64_t undelivered = 0;
  if (prod) {
    rd_kafka_flush(prod, KR_FLUSH_MS);
    undelivered = rd_kafka_outq_len(prod);
    if (dr.failed || undelivered) {
      fprintf(stderr, "tickcast replay: --output-topic %s: %llu failed, %llu undelivered%s%s\n",
              o->out_topic, (unsigned long long)dr.failed, (unsigned long long)undelivered,
              dr.failed ? "; first error: " : "", dr.first_error);
      failed = 1;
    }
  }
  double dt = tc_mono_s() - t0;
  if (!o->quiet) {
    fprintf(stderr,
            "replay %s: %llu messages read, %llu accepted, %llu rejected, %u instruments, "
            "%.3f s, %.0f ticks/s\n",
            o->topic, (unsigned long long)read, (unsigned long long)e.accepted,
            (unsigned long long)rej.total, e.st.live, dt, dt > 0 ? read / dt : 0.0);
    for (int i = 0; i < np; i++)
      fprintf(stderr, "  partition %d: offsets [%lld, %lld), %llu read\n", (int)parts[i].id,
              (long long)parts[i].start, (long long)parts[i].end,
              (unsigned long long)parts[i].read);
    reject_tally_summary(&rej, stderr, "", 0);
  }
  status = failed ? TC_EKAFKA : 0;
done:
  if (out && out != stdout && fclose(out) != 0 && status == 0) {
    fprintf(stderr, "tickcast replay: %s: write failed: %s\n", o->output, strerror(errno));
    status = TC_EIO;
  }
  if (assign)
    rd_kafka_topic_partition_list_destroy(assign);
  if (rk) {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
  if (out_rkt)
    rd_kafka_topic_destroy(out_rkt);
  if (prod)
    rd_kafka_destroy(prod);
  if (engine_ok)
    engine_free(&e);
  free(parts);
  free(ticks);
  free(srcs);
  free(outbuf);
  return status;
}
