/* drain.c: the hot path from the consumer queue to the producer: drain in chunks, decode, one
 * engine step per chunk, produce predictions and dead letters; and backpressure, which pauses
 * draining while the producer queue is backed up. Not for delivery reports (inflight.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/kafka/produce.h"
#include "daemon/loop/run_int.h"
#include "daemon/pipeline/dlq.h"
#include "daemon/pipeline/encode.h"
#include "daemon/pipeline/log.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"

/* The longest one produce waits on a full producer queue, serving delivery reports: 1 s (it was
 * up to 1000 polls of 10 ms). Backpressure pauses consumption at the queue's high mark, so the
 * queue is full only when a chunk is larger than the room above that mark (a tiny
 * queue.buffering.max.messages) or its byte limit comes first; the loop thread then blocks for as
 * long as the broker takes to acknowledge, at most 1 s per message. */
#define PRODUCE_WAIT_MS 1000

/* Hands one message to the producer (bounded wait on a full queue, see PRODUCE_WAIT_MS) with the
 * header tickcast.model = the running model's id, so a consumer knows which model made a
 * prediction across SIGHUP reloads. Once per message: no clock read unless the queue is full.
 * The header list is built once per model and lent to every message (parts_on_delivery takes it
 * back): a list per message cost the loop thread three allocations and three frees, 0.2-0.35 us
 * a tick with the producer's thread (docs/BENCHMARKS.md). Out of memory for the list, the
 * message gets a list of its own. */
static rd_kafka_resp_err_t produce(run *r, rd_kafka_topic_t *t, int flags, void *buf, size_t len,
                                   const void *key, size_t keylen, void *opaque) {
  const char *id = r->model ? r->model->id : "";
  rd_kafka_headers_t *hs = parts_hdrs(r, id);
  if (hs)
    return kprod_send_lent(r->producer, t, RD_KAFKA_PARTITION_UA, flags, buf, len, key, keylen, hs,
                           opaque, PRODUCE_WAIT_MS, NULL);
  kprod_header h = {"tickcast.model", id, strlen(id)};
  return kprod_send_hdr(r->producer, t, RD_KAFKA_PARTITION_UA, flags, buf, len, key, keylen, &h,
                        opaque, PRODUCE_WAIT_MS, NULL);
}

/* Produces one message. A failure is counted as a delivery error and its input offset as failed
 * (so no checkpoint covers it). */
void drain_produce(run *r, rd_kafka_topic_t *t, int flags, void *buf, size_t len, const void *key,
                   size_t keylen, void *opaque) {
  rd_kafka_resp_err_t err = produce(r, t, flags, buf, len, key, keylen, opaque);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
    return;
  log_error("run", "produce to %s failed: %s", rd_kafka_topic_name(t), rd_kafka_err2str(err));
  r->st.delivery_errors++;
  if (flags & RD_KAFKA_MSG_F_FREE)
    free(buf);
  part_ack(r, opaque, 1);
}

/* A dead letter that will never reach its topic (refused by the producer, or its delivery failed
 * for good): counted, logged (the first ten, then every 10,000th), and its input offset treated
 * as done, so that one poison message can never stop the checkpoints of its partition. */
void drain_dead_letter_failed(run *r, const char *why) {
  r->st.dlq_failed++;
  if (r->st.dlq_failed <= 10 || r->st.dlq_failed % 10000 == 0)
    log_error("run",
              "dead letter not delivered to %s: %s (%llu so far); counted in "
              "dead_letters_failed, its input offset is not held back",
              r->o->dlq_topic, why, (unsigned long long)r->st.dlq_failed);
}

/* Writes "PARTITION/OFFSET" after the "topic/" prefix of r->src; returns the src length. */
static size_t src_format(run *r, int32_t p, int64_t off) {
  char tmp[48];
  size_t n = 0;
  uint64_t v = (uint64_t)off;
  do
    tmp[n++] = (char)('0' + v % 10), v /= 10;
  while (v);
  char *q = r->src + r->in_prefix_len;
  uint32_t pv = (uint32_t)p;
  char pb[16];
  size_t pn = 0;
  do
    pb[pn++] = (char)('0' + pv % 10), pv /= 10;
  while (pv);
  while (pn)
    *q++ = pb[--pn];
  *q++ = '/';
  while (n)
    *q++ = tmp[--n];
  return (size_t)(q - r->src);
}

/* The producer's message.max.bytes less the record's framing and its tickcast.model header, which
 * a dead letter (value and key) must fit. Read per dead letter: they are the exception, and this
 * is cheap next to encoding one. */
static size_t dlq_budget(run *r) {
  char v[32];
  size_t vl = sizeof v;
  long mx = 1000000; /* librdkafka's default */
  if (rd_kafka_conf_get(rd_kafka_conf(r->producer), "message.max.bytes", v, &vl) ==
      RD_KAFKA_CONF_OK)
    mx = strtol(v, NULL, 10);
  /* librdkafka counts a v2 record's framing (under 64 bytes) and its headers against the limit. */
  long frame = 64 + (long)strlen("tickcast.model") + (r->model ? (long)strlen(r->model->id) : 0);
  return mx > frame ? (size_t)(mx - frame) : 0;
}

/* A rejected message: its dead letter (with the decoder's error text, recomputed here since the
 * hot path decodes without it). */
static void send_dead_letter(run *r, const rd_kafka_message_t *m, eng_tick *t, size_t srclen,
                             void *opaque) {
  char err[256] = "";
  if (t->reason == TICK_OUT_OF_ORDER) {
    tick_ooo_message(err, sizeof err, t->t.ts, t->prev_ts, t->t.sym);
  } else if (t->reason == TICK_FUTURE_TS) {
    snprintf(err, sizeof err,
             "field ts: found %lld, more than %d ms ahead of the wall clock (--max-future)",
             (long long)t->t.ts, r->o->max_future_ms);
  } else if (t->reason == TICK_INSTRUMENT_LIMIT) {
    snprintf(err, sizeof err,
             "field sym: found %s, a new instrument while %u are live (--max-instruments)",
             t->t.sym, r->e.st.live);
  } else if (!m->payload) {
    snprintf(err, sizeof err, "empty message (no value), expected one JSON object");
  } else {
    tick tk;
    int rs = tick_parse_json(&tk, m->payload, m->len, err, sizeof err);
    if (rs == TICK_OK)
      tick_check_key(&tk, m->key, m->key_len, err, sizeof err);
  }
  r->src[srclen] = 0;
  size_t keylen = dlq_key_kept(m->key, m->key_len), len = 0, budget = dlq_budget(r);
  /* Bounded by DLQ_RECORD_MAX; a smaller message.max.bytes cuts the payload further. */
  char *d = NULL;
  for (size_t cut = DLQ_PAYLOAD_MAX;; cut /= 4) {
    d = dlq_encode(tick_reason_name(t->reason), err, r->src, m->key, m->key_len, tc_wall_ms(),
                   m->payload, m->len, cut, &len);
    if (!d || len + keylen <= budget || cut == 0)
      break;
    free(d);
  }
  rd_kafka_resp_err_t pe = RD_KAFKA_RESP_ERR__NOENT;
  if (d && (pe = produce(r, r->t_dlq, RD_KAFKA_MSG_F_FREE, d, len, m->key, keylen, opaque)) == 0)
    return;
  drain_dead_letter_failed(r, d ? rd_kafka_err2str(pe) : "out of memory");
  free(d);
  part_ack(r, opaque, 0);
}

/* Whether a counter that went from `before` to `now` in one chunk is due a log line: while it is
 * among the first ten, and when it crosses a multiple of 1000 (a chunk can add several). */
static int log_due(uint64_t before, uint64_t now) {
  return before < 10 || before / 1000 != now / 1000;
}

/* Instruments whose last ts lay beyond --max-future (a state from before the bound) restarted
 * afresh instead of rejecting every real tick as out of order: logged, the first ten and then
 * every 1000th. */
static void log_unfrozen(run *r, uint64_t before) {
  uint64_t n = r->e.unfrozen;
  if (log_due(before, n))
    log_warn("run",
             "instrument %s: its last ts lay more than %d ms ahead of the wall clock, so it "
             "restarted from zero state instead of rejecting every tick (%llu so far)",
             r->e.st.inst[r->e.unfrozen_slot].sym, r->o->max_future_ms, (unsigned long long)n);
}

/* An instrument's tick in another partition than its previous one: one instrument in one
 * partition is what makes a group behave as one instance (its order, its one state), so this is
 * logged for the chunks that bring the first ten and each 1000th, naming the chunk's last such
 * instrument. */
static void log_moved(run *r, uint64_t before) {
  uint64_t n = r->e.moved;
  const inst *in = &r->e.st.inst[r->e.moved_slot];
  if (log_due(before, n))
    log_warn("run",
             "instrument %s: a tick in %s partition %d after ticks in partition %d (a producer "
             "that does not key ticks by sym, or partitions added to the topic): across "
             "partitions its ticks are taken in fetch order, and each member of a group keeps a "
             "state of its own for it (%llu such ticks in this chunk, %llu so far)",
             in->sym, r->o->input_topic, (int)in->partition, (int)r->e.moved_from,
             (unsigned long long)(n - before), (unsigned long long)n);
}

/* The pipeline: decode, one engine step, produce. */
void drain_process_chunk(run *r) {
  int N = r->n;
  r->n = 0;
  if (!N)
    return;
  for (int i = 0; i < N; i++) {
    rd_kafka_message_t *m = r->msgs[i];
    eng_tick *t = &r->ticks[i];
    t->partition = m->partition;
    t->offset = m->offset;
    t->reason = m->payload ? tick_parse_json(&t->t, m->payload, m->len, NULL, 0) : TICK_BAD_JSON;
    if (t->reason == TICK_OK && m->key_len)
      t->reason = tick_check_key(&t->t, m->key, m->key_len, NULL, 0);
    if (t->reason != TICK_OK)
      r->e.rejected[t->reason]++;
    r->st.ticks_in++;
    stats_part_in(&r->st, m->partition);
  }
  uint64_t unfrozen = r->e.unfrozen, moved = r->e.moved;
  sched_ckpt_guard(r, N);
  int rc = engine_process(&r->e, r->ticks, N);
  r->st.chunks++;
  if (r->e.unfrozen != unfrozen)
    log_unfrozen(r, unfrozen);
  if (r->e.moved != moved) {
    r->st.partition_moves += r->e.moved - moved;
    log_moved(r, moved);
  }
  if (rc != 0) {
    /* Nothing was applied; the messages are not acknowledged, so a restart reprocesses them. */
    log_error("run", "engine: %s on a chunk of %d ticks; stopping", tc_strerror(rc), N);
    for (int i = 0; i < N; i++)
      rd_kafka_message_destroy(r->msgs[i]);
    lifecycle_begin_shutdown(r, 1);
    return;
  }
  char buf[ENC_PRED_MAX];
  for (int i = 0; i < N; i++) {
    rd_kafka_message_t *m = r->msgs[i];
    eng_tick *t = &r->ticks[i];
    if (m->partition >= r->nparts || r->parts[m->partition].pnext < 0) /* first since assigned */
      stats_part_checkpointed(&r->st, m->partition, m->offset, uv_now(r->loop));
    if (t->skipped) { /* already in its instrument's restored state: no output */
      part_skip(r, m->partition, m->offset);
      continue;
    }
    size_t srclen = src_format(r, m->partition, m->offset);
    void *opq = part_push(r, m->partition, m->offset);
    if (t->reason == TICK_OK) {
      size_t len = enc_pred_json(buf, t, r->src, srclen);
      drain_produce(r, r->t_out, RD_KAFKA_MSG_F_COPY, buf, len, t->t.sym, t->t.sym_len, opq);
      r->st.predictions_out++;
    } else {
      r->st.rejected[t->reason]++;
      send_dead_letter(r, m, t, srclen, opq);
    }
  }
  /* Latency: every message of the chunk gets the chunk's span, from before its first poll to
   * after its last produce, an upper bound of each one's poll-to-produce time that costs two
   * clock reads per chunk instead of two per message (6-10% of the loop thread on this VM). */
  stats_latency_n(&r->st, tc_mono_ns() - r->t_chunk, (uint64_t)N);
  /* Inputs are freed after every output is enqueued: their memory belongs to librdkafka's fetch
   * thread's malloc arena, and freeing them between produces made later messages of the chunk
   * wait on that arena's lock. */
  for (int i = 0; i < N; i++)
    rd_kafka_message_destroy(r->msgs[i]);
}

/* Backpressure. Pausing first just stops draining: messages wait in librdkafka's bounded fetch
 * queue and resuming costs nothing. librdkafka's own pause (which drops the prefetched messages
 * and refetches on resume) is used only when a pause outlasts PAUSE_HARD_MS, so that the loop can
 * go on serving rebalances and stay within max.poll.interval.ms while the output is down. */
#define PAUSE_HARD_MS 10000

static void pause_partitions(run *r, int pause) {
  rd_kafka_topic_partition_list_t *a = NULL;
  if (rd_kafka_assignment(r->consumer, &a) == 0 && a) {
    if (pause) {
      rd_kafka_pause_partitions(r->consumer, a);
    } else {
      /* Not the partitions a revoke holds paused until its final checkpoint (rebalance.c):
       * ticks processed after that snapshot would be repeated by their next owner; nor those
       * awaiting their state (restore.c). */
      for (int i = a->cnt - 1; i >= 0; i--) {
        int32_t p = a->elems[i].partition;
        if ((r->rv_parts &&
             rd_kafka_topic_partition_list_find(r->rv_parts, a->elems[i].topic, p)) ||
            (p >= 0 && p < r->nparts && r->parts[p].awaiting))
          rd_kafka_topic_partition_list_del_by_idx(a, i);
      }
      rd_kafka_resume_partitions(r->consumer, a);
    }
    rd_kafka_topic_partition_list_destroy(a);
  }
}

static void on_pause_timer(uv_timer_t *h) {
  run *r = h->data;
  if (!r->paused || r->hard_paused || r->stopping)
    return;
  r->hard_paused = 1;
  log_warn("run",
           "output still backed up after %d ms (%d messages queued): pausing the "
           "partitions",
           PAUSE_HARD_MS, rd_kafka_outq_len(r->producer));
  pause_partitions(r, 1);
  uv_idle_start(&r->idle, drain_on_idle); /* keep serving the consumer queue's events */
}

static void set_paused(run *r, int pause) {
  if (r->paused == pause)
    return;
  r->paused = pause;
  r->st.paused = pause;
  r->paused_since = pause ? uv_now(r->loop) : 0;
  if (pause) {
    r->st.backpressure_pauses++;
    log_debug("run", "producer queue at %d messages (high mark %lld): pausing consumption",
              rd_kafka_outq_len(r->producer), (long long)r->outq_high);
    uv_timer_start(&r->t_pause, on_pause_timer, PAUSE_HARD_MS, 0);
  } else {
    uv_timer_stop(&r->t_pause);
    if (r->hard_paused) {
      r->hard_paused = 0;
      pause_partitions(r, 0);
      log_info("run", "producer queue down to %d messages: resuming the partitions",
               rd_kafka_outq_len(r->producer));
    } else {
      log_debug("run", "producer queue down to %d messages: resuming consumption",
                rd_kafka_outq_len(r->producer));
    }
    uv_idle_start(&r->idle, drain_on_idle);
  }
}

static void on_consumer_error(run *r, rd_kafka_message_t *m) {
  r->st.consume_errors++;
  if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
      m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
    int64_t now = tc_wall_ms();
    if (now - r->warned_unknown_topic_ms > 10000) {
      r->warned_unknown_topic_ms = now;
      log_warn("run", "input topic %s: %s (waiting for it)", r->o->input_topic,
               rd_kafka_message_errstr(m));
    }
    return;
  }
  log_warn("run", "consumer: %s%s%s", rd_kafka_err2name(m->err), m->payload ? ": " : "",
           m->payload ? rd_kafka_message_errstr(m) : "");
}

/* Drains the consumer queue in chunks of --chunk messages (default 8): each chunk is decoded,
 * stepped through the engine once and produced before the next one is polled, so a message's
 * latency is about one chunk's processing time (the first one polled waits for the whole chunk)
 * and a chunk is exposed to the loop thread being descheduled only for as long as it runs. A
 * loop turn handles up to TURN_MSGS messages, then yields to timers and HTTP through the
 * uv_idle handle, which calls back while the queue may hold more (the io event fires only on
 * empty -> non-empty); with one loop turn per chunk, chunks of 16 cost the loop thread 0.35 us
 * more per message than chunks of 64 (perf CPU time over a catch-up). On the embedded
 * broker at half the passthrough rate (bench/run_kafka.sh with BENCH_LAT_CHUNKS="8 16 64",
 * docs/BENCHMARKS.md), p99 per second fell from milliseconds with chunks of 64 to about 100 us
 * with 8, and catching up on a backlog showed no throughput difference between 8 and 16 beyond
 * the machine's noise.
 * While the daemon works through a backlog, chunks take up to --backlog-chunk messages (default
 * 64): per message, a larger batch of the network's step and fewer turns of the loop. On the pinned
 * catch-up (bench/cpu_tick.sh, docs/BENCHMARKS.md) the process spent 2.29-2.45 us of CPU per tick
 * instead of 2.58-2.72, lower in each of 5 alternating rounds. A backlog is told by the age of the
 * messages: the last of a full chunk was written (its Kafka timestamp) more than BACKLOG_MS before
 * the wall clock, as after a restart, an outage or a stall. The length of the consumer queue cannot
 * tell it: librdkafka prefetches whatever the broker holds, so at half the passthrough rate the
 * queue held over 4096 messages after two chunks in three, and chunks of 64 there put p99 back in
 * the milliseconds (a chunk is exposed to the loop thread being descheduled for as long as it
 * runs). Fresh messages keep chunks at --chunk. */
#define TURN_MSGS 256
#define BACKLOG_MS 1000

static void drain(run *r) {
  int turn = 0, more = 0;
  int64_t now_ms = r->chunk_backlog > r->chunk ? tc_wall_ms() : 0; /* once a turn: 1 s is coarse */
  while (!r->stopping && (!r->paused || r->hard_paused)) {
    if (turn >= TURN_MSGS) {
      more = 1;
      break;
    }
    int limit = r->backlog ? r->chunk_backlog : r->chunk;
    r->t_chunk = tc_mono_ns(); /* drain_process_chunk left r->n at 0 */
    while (r->n < limit && !r->stopping) {
      rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, 0);
      if (!m)
        break;
      if (m->err) {
        on_consumer_error(r, m);
        rd_kafka_message_destroy(m);
        continue;
      }
      if (m->partition >= 0 && m->partition < r->nparts && r->parts[m->partition].awaiting) {
        /* fetched before its pause took hold: read again once it is restored */
        rd_kafka_message_destroy(m);
        continue;
      }
      r->msgs[r->n++] = m;
    }
    int got = r->n, full = got >= limit;
    int64_t ts = full ? rd_kafka_message_timestamp(r->msgs[got - 1], NULL) : -1;
    drain_process_chunk(r);
    if (r->stopping)
      return;
    turn += got;
    if (rd_kafka_outq_len(r->producer) > r->outq_high)
      set_paused(r, 1);
    r->backlog = r->chunk_backlog > r->chunk && ts >= 0 && now_ms - ts > BACKLOG_MS;
    if (!full)
      break; /* the queue is empty: the io event wakes us */
  }
  if (more)
    uv_idle_start(&r->idle, drain_on_idle);
  else
    uv_idle_stop(&r->idle);
}

void drain_on_idle(uv_idle_t *h) {
  drain(h->data);
}

/* Reads an io-event pipe empty (librdkafka writes a byte when a queue becomes non-empty). */
static void pipe_clear(int fd) {
  char b[256];
  while (read(fd, b, sizeof b) > 0) {
  }
}

void drain_on_consumer_io(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  run *r = h->data;
  pipe_clear(r->cpipe[0]);
  drain(r);
}

void drain_on_producer_io(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  run *r = h->data;
  pipe_clear(r->ppipe[0]);
  rd_kafka_poll(r->producer, 0);
  parts_store(r);
  parts_hdrs_sweep(r);
  if (r->paused && rd_kafka_outq_len(r->producer) < r->outq_low)
    set_paused(r, 0);
  sched_ckpt_ready(r);
}
