/* run.c: the daemon's libuv loop (see run.h). One loop thread owns every piece of state: the
 * consumer's queue and the producer's delivery reports wake it through librdkafka's queue io
 * events on pipes watched by uv_poll; each wake drains up to a chunk of messages, steps the engine
 * once and produces the results, then yields to timers and HTTP (a uv_idle handle reschedules the
 * rest). Checkpoints (daemon/ckpt.h, docs/STATE.md) are copied on this loop between chunks and
 * written once the broker has acknowledged every output they cover; with a state db, Kafka's
 * committed offsets follow the checkpoints (informational: the offsets in the db decide where a
 * restart resumes).
 */
#include "daemon/loop/run.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/kafka/changelog.h"
#include "daemon/kafka/mockbroker.h"
#include "daemon/kafka/produce.h"
#include "daemon/loop/ckpt.h"
#include "daemon/loop/http.h"
#include "daemon/pipeline/dlq.h"
#include "daemon/pipeline/encode.h"
#include "daemon/pipeline/engine.h"
#include "daemon/pipeline/log.h"
#include "daemon/pipeline/stats.h"
#include "daemon/pipeline/version.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"
#include "nn/model.h"

/* Offsets of one input partition whose outputs (prediction or dead letter) are in flight, in
 * produce order. Delivery reports come back in any order across output partitions, so an input
 * offset is stored for commit only when it and everything before it were acknowledged. */
typedef struct part {
  int64_t *off;      /* (cap) input offset of ring sequence seq at off[seq & (cap - 1)] */
  uint8_t *done;     /* (cap) 1 when acknowledged */
  uint32_t cap;      /* power of two */
  uint64_t head;     /* next sequence number */
  uint64_t tail;     /* oldest unacknowledged sequence number */
  int64_t next;      /* next offset to commit (last acknowledged + 1), -1 none yet */
  int64_t pnext;     /* last processed offset + 1 (outputs possibly in flight), -1 none yet */
  uint64_t snap_seq; /* with in_snap: outputs produced when the pending snapshot was taken */
  uint8_t in_snap;   /* the pending snapshot covers this partition */
  uint8_t gen;       /* assignment generation: reports from an older assignment are ignored */
  uint8_t assigned;  /* 1 while assigned to this consumer */
  uint8_t stuck;     /* a delivery failed: offsets are no longer stored (at-least-once) */
  uint8_t dirty;     /* next advanced since the last offset store */
} part;

/* msg_opaque of produced messages: generation (8 bits), partition (16), sequence (40). */
#define OPQ_SEQ_BITS 40
#define OPQ_PART_MAX 65534 /* 65535 with generation 255 would collide with OPQ_NONE */
#define OPQ_NONE ((void *)(uintptr_t)UINT64_MAX) /* stats messages: not tracked */

typedef struct run {
  const run_opts *o;
  uv_loop_t *loop;
  rd_kafka_t *consumer, *producer;
  rd_kafka_queue_t *cq, *pq; /* consumer queue, producer main queue (io events enabled) */
  rd_kafka_topic_t *t_in;    /* consumer-side handle of the input topic, for offset_store */
  rd_kafka_topic_t *t_out, *t_stats, *t_dlq;
  rd_kafka_t *cl_rk;      /* reads the changelog at assignments (never joins); NULL when off */
  rd_kafka_topic_t *t_cl; /* producer-side handle of the changelog; NULL when off */
  uint64_t cl_ids;        /* next hand-off id: clock and pid above, a counter below */
  int cpipe[2], ppipe[2]; /* io-event pipes: consumer, producer */
  uv_poll_t cpoll, ppoll;
  uv_idle_t idle; /* continues draining after a full chunk */
  uv_timer_t t_stats_timer, t_second, t_ckpt, t_stop;
  uv_signal_t sig_term, sig_int, sig_hup;
  http_srv *http;
  mockbroker *mb;
  nn_model *model; /* the running model (owned) */
  engine e;
  int chunk;                 /* budget per drain */
  rd_kafka_message_t **msgs; /* (chunk) messages of the chunk being gathered */
  eng_tick *ticks;           /* (chunk) */
  uint64_t t_chunk;          /* monotonic ns before the first poll of the chunk being gathered */
  int n;                     /* messages gathered so far */
  part *parts;               /* (nparts) by partition number */
  int32_t nparts;
  int assigned;       /* partitions assigned */
  int paused;         /* backpressure holds consumption */
  int hard_paused;    /* ... for long: the partitions are paused in librdkafka too */
  uv_timer_t t_pause; /* turns a long pause into a partition pause */
  int64_t outq_high, outq_low;
  int stopping;
  int flush_failed; /* a flush timed out: later ones do not wait */
  int exit_code;
  size_t in_prefix_len; /* strlen(input topic) + 1: src = "topic/" + partition/offset */
  char src[320];        /* src buffer, "topic/" prefix kept */
  stats st;
  int64_t warned_unknown_topic_ms;
  store *db;                  /* --state, NULL until opened */
  ckpt *ck;                   /* checkpoints into db, NULL until set up */
  int ckpt_pending;           /* a snapshot is taken and waits for its outputs' acknowledgements */
  uint64_t ckpt_taken_ms;     /* uv_now() when it was taken */
  uint64_t ckpt_acked_ms;     /* how long the last committed one waited for acknowledgements */
  uint64_t ckpt_stuck_warned; /* last failed-delivery warning, uv_now() */
  store_offset *offbuf;       /* (offcap) offsets of the next snapshot */
  int32_t offcap;
} run;

/* ---- Checkpoints (issue 5, daemon/ckpt.h). A checkpoint covers only ticks whose outputs the
 * broker acknowledged: the snapshot is copied at the interval and submitted for writing once the
 * delivery reports of every output produced before it have arrived. */

static void begin_shutdown(run *r, int code);
static void on_idle(uv_idle_t *h);

/* Offsets the states reflect, into r->offbuf: next = last processed + 1 of every assigned
 * partition that processed something since its assignment (the others keep their stored offset).
 * A snapshot with these offsets may be committed only once every output produced so far is
 * acknowledged (THE RULE, ckpt.h). Returns the count, -1 when a delivery failed on some
 * partition (no checkpoint may cover a lost output), or -2 on ENOMEM. */
static int ckpt_offsets_fill(run *r) {
  if (r->offcap < r->nparts) {
    store_offset *nb = realloc(r->offbuf, (size_t)r->nparts * sizeof *nb);
    if (!nb)
      return -2;
    r->offbuf = nb;
    r->offcap = r->nparts;
  }
  int n = 0;
  for (int32_t p = 0; p < r->nparts; p++) {
    part *pt = &r->parts[p];
    if (!pt->assigned)
      continue;
    if (pt->stuck)
      return -1;
    if (pt->pnext < 0)
      continue;
    store_offset *o = &r->offbuf[n++];
    snprintf(o->topic, sizeof o->topic, "%s", r->o->input_topic);
    o->partition = p;
    o->next_offset = pt->pnext;
  }
  return n;
}

/* After a committed checkpoint: its offsets become the ones Kafka commits (auto-commit sends
 * them), so lag tools see progress. They are informational: a restart resumes from the db. */
static void ckpt_offsets_to_kafka(run *r) {
  size_t n = 0;
  const store_offset *off = ckpt_offsets(r->ck, &n);
  for (size_t k = 0; k < n; k++) {
    int32_t p = off[k].partition;
    if (strcmp(off[k].topic, r->o->input_topic) || p >= r->nparts || !r->parts[p].assigned ||
        off[k].next_offset <= 0)
      continue;
    /* rd_kafka_offset_store stores offset + 1, the next one to read. */
    rd_kafka_resp_err_t err = rd_kafka_offset_store(r->t_in, p, off[k].next_offset - 1);
    if (err && err != RD_KAFKA_RESP_ERR__STATE)
      log_warn("run", "offset store %s/%d at %lld: %s", r->o->input_topic, p,
               (long long)off[k].next_offset, rd_kafka_err2str(err));
  }
}

static void ckpt_try(run *r);

static void on_ckpt_done(ckpt *ck, int status, const char *err, void *ud) {
  run *r = ud;
  const ckpt_stats *cs = ckpt_get_stats(ck);
  if (status == 0) {
    if (r->st.checkpoint_failing)
      log_info("run", "checkpoint written again after %u failures", r->st.checkpoint_failing);
    r->st.checkpoint_failing = 0;
    log_debug("run",
              "checkpoint: %llu instruments, copy %.0f us, acknowledged after %llu ms, "
              "write %.1f ms",
              (unsigned long long)cs->last_rows, cs->last_copy_us,
              (unsigned long long)r->ckpt_acked_ms, cs->last_write_us / 1e3);
    if (!r->stopping) /* at shutdown the consumer is closed; ckpt_now stored them already */
      ckpt_offsets_to_kafka(r);
    if (ckpt_model_change_pending(ck) &&
        !r->stopping) /* a model swap arrived while this one was written */
      ckpt_try(r);
    return;
  }
  r->st.checkpoint_failing = cs->consecutive_failures;
  if (cs->consecutive_failures <= 3 || cs->consecutive_failures % 100 == 0)
    log_warn("run", "checkpoint failed (%u in a row): %s; predicting goes on, retrying",
             cs->consecutive_failures, err);
}

/* The pending snapshot leaves the waiting state (submitted, merged or given up). */
static void ckpt_unpend(run *r) {
  r->ckpt_pending = 0;
  for (int32_t p = 0; p < r->nparts; p++)
    r->parts[p].in_snap = 0;
}

/* Gives up the pending snapshot (a delivery it covers failed, or a partition it covers is being
 * revoked before its outputs were acknowledged): what it copied becomes dirty again. */
static void ckpt_abandon(run *r, const char *why) {
  if (!r->ckpt_pending)
    return;
  ckpt_unpend(r);
  ckpt_untake(r->ck, &r->e.st);
  r->st.checkpoints_skipped++;
  log_debug("run", "checkpoint given up: %s", why);
}

/* Submits the pending snapshot once every output produced before it was taken is acknowledged
 * (each covered partition's oldest unacknowledged output is past the snapshot's); gives it up
 * if one of them failed for good. Called from the timer and after delivery reports. */
static void ckpt_ready(run *r) {
  if (!r->ckpt_pending)
    return;
  for (int32_t p = 0; p < r->nparts; p++) {
    part *pt = &r->parts[p];
    if (!pt->in_snap)
      continue;
    if (pt->stuck || !pt->assigned) {
      ckpt_abandon(r, pt->stuck ? "a delivery it covers failed" : "a partition left");
      return;
    }
    if (pt->tail < pt->snap_seq)
      return; /* not yet */
  }
  ckpt_unpend(r);
  r->ckpt_acked_ms = uv_now(r->loop) - r->ckpt_taken_ms;
  int rc = ckpt_submit(r->ck, on_ckpt_done, r);
  if (rc != 0) {
    /* Not written: keep it in the arena to be merged into the next one (it satisfies THE RULE). */
    ckpt_carry(r->ck);
    log_warn("run", "checkpoint not started: %s", tc_strerror(rc));
  }
}

/* Every --checkpoint-interval (and right after a model swap): takes a snapshot of the states and
 * of the processed offsets at this chunk boundary, without pausing anything; ckpt_ready submits
 * it once its outputs are acknowledged. A snapshot still pending from the last interval (slow
 * acknowledgements) makes this one count as skipped. */
static void ckpt_try(run *r) {
  if (!r->db || r->stopping || ckpt_busy(r->ck))
    return;
  if (r->ckpt_pending) {
    r->st.checkpoints_skipped++;
    log_debug("run", "checkpoint skipped: the last one still waits for acknowledgements (%llu ms)",
              (unsigned long long)(uv_now(r->loop) - r->ckpt_taken_ms));
    return;
  }
  int n = ckpt_offsets_fill(r);
  if (n == -1) {
    r->st.checkpoints_skipped++;
    if (!r->ckpt_stuck_warned || uv_now(r->loop) - r->ckpt_stuck_warned > 10000) {
      r->ckpt_stuck_warned = uv_now(r->loop);
      log_warn("run", "checkpoint skipped: a delivery failed, so no checkpoint may cover its tick; "
                      "a restart resumes from the last good checkpoint");
    }
    return;
  }
  int rc = n < 0 ? TC_ENOMEM : ckpt_take(r->ck, &r->e.st, r->offbuf, (size_t)n);
  if (rc != 0) {
    log_warn("run", "checkpoint not started: %s", tc_strerror(rc));
    return;
  }
  for (int32_t p = 0; p < r->nparts; p++) {
    part *pt = &r->parts[p];
    pt->in_snap = pt->assigned && pt->pnext >= 0;
    pt->snap_seq = pt->head;
  }
  r->ckpt_pending = 1;
  r->ckpt_taken_ms = uv_now(r->loop);
  ckpt_ready(r);
}

/* Synchronous checkpoint (revoke, shutdown), after the caller flushed the producer. */
static void ckpt_now(run *r, const char *why) {
  if (!r->db)
    return;
  if (rd_kafka_outq_len(r->producer) > 0) {
    ckpt_abandon(r, "outputs unacknowledged at a revoke or shutdown");
    log_warn("run", "%s: no checkpoint, %d outputs still unacknowledged", why,
             rd_kafka_outq_len(r->producer));
    return;
  }
  int n = ckpt_offsets_fill(r);
  if (n < 0) {
    ckpt_abandon(r, "no final checkpoint");
    log_warn("run", "%s: no checkpoint, %s", why,
             n == -1 ? "a delivery failed" : "out of memory for the offsets");
    return;
  }
  if (r->ckpt_pending) {
    /* Everything is acknowledged now: the pending snapshot is merged into this one. */
    ckpt_unpend(r);
    ckpt_carry(r->ck);
  }
  char err[512];
  if (ckpt_flush(r->ck, &r->e.st, r->offbuf, (size_t)n, err, sizeof err) != 0) {
    r->st.checkpoint_failing = ckpt_get_stats(r->ck)->consecutive_failures;
    log_warn("run", "%s: checkpoint failed: %s", why, err);
    return;
  }
  r->st.checkpoint_failing = 0;
  ckpt_offsets_to_kafka(r);
  log_info("run", "%s: checkpoint of %llu instruments", why,
           (unsigned long long)ckpt_get_stats(r->ck)->last_rows);
}

/* Every --checkpoint-interval. */
static void hook_checkpoint_timer(run *r) {
  ckpt_try(r);
}

/* ---- Changelog hand-off (changelog.h). */

/* The longest a hand-off record waits on a full producer queue, serving delivery reports: 1 s
 * (it was up to 1000 polls of 10 ms). The queue is empty when a hand-off starts (it follows the
 * flush), so it fills only with more instruments in a partition than the queue holds; a record
 * that still does not fit ends that partition's hand-off (its marker is not sent), so a revoke
 * blocks the loop thread at most about 1 s per partition beyond the produce calls themselves. */
#define HANDOFF_WAIT_MS 1000

/* Produces one changelog message to partition q (bounded wait, see HANDOFF_WAIT_MS); 0, or -1. */
static int cl_produce(run *r, int32_t q, const void *buf, size_t len, const void *key, size_t kl) {
  rd_kafka_resp_err_t err = kprod_send(r->producer, r->t_cl, q, RD_KAFKA_MSG_F_COPY, (void *)buf,
                                       len, key, kl, OPQ_NONE, HANDOFF_WAIT_MS, NULL);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
    return 0;
  log_warn("run", "hand-off to %s/%d: %s", r->o->changelog_topic, q, rd_kafka_err2str(err));
  return -1;
}

/* At a revoke, after the flush: one hand-off per revoked partition whose state is exactly that of
 * its processed offset with every output acknowledged (it processed something since its
 * assignment, no delivery failed, nothing is in flight), then a bounded wait for the broker. */
static void handoff(run *r, rd_kafka_topic_partition_list_t *parts) {
  if (!r->t_cl || rd_kafka_outq_len(r->producer) > 0)
    return;
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e = rd_kafka_metadata(r->producer, 0, r->t_cl, &md, 2000);
  int ncl = !e && md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : 0;
  if (md)
    rd_kafka_metadata_destroy(md);
  if (ncl <= 0) {
    log_warn("run", "hand-off: changelog %s not available (%s); no hand-off", r->o->changelog_topic,
             e ? rd_kafka_err2str(e) : "no partitions");
    return;
  }
  char sha[65];
  ckpt_model_hex(r->model, sha);
  const int L = r->model->L, H = r->model->H;
  unsigned char *buf = malloc(cl_state_len(L, H));
  if (!buf)
    return;
  int sent = 0;
  for (int i = 0; i < parts->cnt; i++) {
    int32_t p = parts->elems[i].partition;
    if (strcmp(parts->elems[i].topic, r->o->input_topic) || p >= r->nparts)
      continue;
    part *pt = &r->parts[p];
    if (!pt->assigned || pt->stuck || pt->pnext < 0)
      continue;
    uint64_t id = r->cl_ids++;
    int32_t q = p % ncl;
    uint32_t count = 0;
    int ok = 1;
    for (uint32_t s = 0; s < r->e.st.count && ok; s++) {
      inst *in = &r->e.st.inst[s];
      if (!in->live || in->partition != p)
        continue;
      store_inst si = {.sym = in->sym,
                       .sym_len = in->sym_len,
                       .partition = p,
                       .n = in->n,
                       .last_ts = in->last_ts,
                       .last_px = in->last_px,
                       .state = symtab_state(&r->e.st, (int32_t)s)};
      size_t len = cl_encode_state(buf, id, p, &si, L, H);
      ok = cl_produce(r, q, buf, len, in->sym, in->sym_len) == 0;
      count++;
    }
    if (!ok)
      continue; /* no marker: the records without one are ignored by readers */
    char mkey[CL_MARKER_KEY_MAX];
    size_t mkl = cl_marker_key(mkey, p);
    size_t len = cl_encode_marker(buf, id, p, count, pt->pnext, sha);
    if (cl_produce(r, q, buf, len, mkey, mkl) == 0) {
      sent++;
      r->st.handoffs_out++;
      log_info("run", "hand-off of %s/%d: %u instruments at offset %lld to %s/%d",
               r->o->input_topic, p, count, (long long)pt->pnext, r->o->changelog_topic, q);
    }
  }
  free(buf);
  if (sent && rd_kafka_flush(r->producer, 3000) != 0)
    log_warn("run", "hand-off: %d changelog messages unacknowledged after 3 s",
             rd_kafka_outq_len(r->producer));
}

/* At an assignment: the latest complete hand-off of each assigned partition, taken when it is
 * ahead of the state file's offset for it (off[], from the file). Its instruments replace their
 * file states and are dirty, and the partition starts at its offset: the next checkpoint stores
 * both. A changelog that cannot be read leaves the file's states (logged). */
static void changelog_restore(run *r, rd_kafka_topic_partition_list_t *parts, const int32_t *ps,
                              int np, const store_offset *off, size_t noff) {
  char sha[65], err[512];
  ckpt_model_hex(r->model, sha);
  cl_scan *s = NULL;
  if (cl_scan_new(&s, r->model->L, r->model->H, sha, ps, np) != 0)
    return;
  if (cl_read(r->cl_rk, r->o->changelog_topic, s, ps, np, 10000, err, sizeof err) != 0) {
    log_warn("run", "%s; the assigned partitions start without a hand-off", err);
    cl_scan_free(s);
    return;
  }
  if (cl_scan_bad(s) || cl_scan_other_model(s))
    log_info("run",
             "changelog %s: %llu incomplete or undecodable, %llu of another model "
             "(ignored)",
             r->o->changelog_topic, (unsigned long long)cl_scan_bad(s),
             (unsigned long long)cl_scan_other_model(s));
  for (int i = 0; i < np; i++) {
    int32_t p = ps[i];
    const store_inst *in;
    size_t n;
    int64_t x = cl_scan_result(s, p, &in, &n), f = -1;
    if (x < 0)
      continue;
    for (size_t k = 0; k < noff; k++)
      if (off[k].partition == p && !strcmp(off[k].topic, r->o->input_topic))
        f = off[k].next_offset;
    if (f >= x) {
      log_info("run", "%s/%d: the state file (offset %lld) is not behind the hand-off (%lld)",
               r->o->input_topic, p, (long long)f, (long long)x);
      continue;
    }
    size_t got = 0;
    for (size_t k = 0; k < n; k++) {
      int32_t slot = ckpt_inst_put(&r->e.st, &in[k], 1); /* dirty: the next checkpoint stores it */
      if (slot < 0)
        log_warn("run", "hand-off: cannot add instrument %.*s: %s", (int)in[k].sym_len, in[k].sym,
                 tc_strerror(slot));
      else
        got++;
    }
    for (int j = 0; j < parts->cnt; j++)
      if (parts->elems[j].partition == p && !strcmp(parts->elems[j].topic, r->o->input_topic))
        parts->elems[j].offset = x;
    r->parts[p].pnext = x;
    r->st.handoffs_in++;
    log_info("run",
             "%s/%d: %zu instruments from the hand-off in %s, starting at offset %lld "
             "(state file: %s%lld)",
             r->o->input_topic, p, got, r->o->changelog_topic, (long long)x,
             f < 0 ? "no offset" : "offset ", f < 0 ? 0LL : (long long)f);
  }
  cl_scan_free(s);
}

/* Partitions assigned: restore their instruments and start them at the stored offsets (stored
 * offsets win over Kafka's committed ones), or at a newer hand-off's (changelog_restore). */
static void hook_assign(run *r, rd_kafka_topic_partition_list_t *parts) {
  if (!r->db && !r->cl_rk)
    return;
  int32_t *ps = malloc((size_t)(parts->cnt ? parts->cnt : 1) * sizeof *ps);
  if (!ps) {
    log_error("run", "restore: out of memory; stopping");
    begin_shutdown(r, 1);
    return;
  }
  int np = 0;
  for (int i = 0; i < parts->cnt; i++)
    if (!strcmp(parts->elems[i].topic, r->o->input_topic))
      ps[np++] = parts->elems[i].partition;
  store_offset *off = NULL;
  size_t noff = 0;
  char err[512];
  uint32_t before = r->e.st.live;
  int rc = 0;
  if (r->db) {
    ckpt_wait(r->ck); /* a checkpoint write on the pool uses the same connection */
    rc = ckpt_restore_partitions(r->db, r->model, &r->e.st, r->o->input_topic, ps, np, &off, &noff,
                                 err, sizeof err);
  }
  if (rc != 0) {
    free(ps);
    log_error("run", "%s; stopping", err);
    begin_shutdown(r, 1);
    return;
  }
  for (size_t k = 0; k < noff; k++)
    for (int i = 0; i < parts->cnt; i++)
      if (!strcmp(parts->elems[i].topic, off[k].topic) &&
          parts->elems[i].partition == off[k].partition)
        parts->elems[i].offset = off[k].next_offset;
  log_info("run", "restored %u instruments and %zu stored offsets for %d partitions",
           r->e.st.live - before, noff, np);
  if (r->cl_rk && np > 0)
    changelog_restore(r, parts, ps, np, off, noff);
  free(ps);
  free(off);
}

/* Partitions about to be revoked (outputs flushed, checkpoint taken, offsets committed): their
 * instruments are dropped, since another consumer may advance them meanwhile; their stored rows
 * stay and match the stored offsets. */
static void hook_revoke(run *r, rd_kafka_topic_partition_list_t *parts) {
  for (int i = 0; i < parts->cnt; i++) {
    if (strcmp(parts->elems[i].topic, r->o->input_topic))
      continue;
    int32_t p = parts->elems[i].partition;
    for (uint32_t s = 0; s < r->e.st.count; s++)
      if (r->e.st.inst[s].live && r->e.st.inst[s].partition == p)
        symtab_remove(&r->e.st, (int32_t)s);
  }
}

/* Shutdown, after the producer flush: the final checkpoint. */
static void hook_shutdown(run *r) {
  ckpt_now(r, "shutdown");
}

/* A new model of the same shape was swapped in (states reset unless --on-model-change keep): the
 * new hash is recorded with the states in a checkpoint taken right away (until it commits, a
 * restart with the new model file is refused as state of another model). */
static void hook_model_change(run *r) {
  if (!r->db)
    return;
  ckpt_model_changed(r->ck, r->model, !r->o->on_model_change_keep);
  ckpt_try(r);
}

/* ---- Per-partition in-flight tracking. */

static part *part_get(run *r, int32_t p) {
  if (p < 0 || p > OPQ_PART_MAX)
    return NULL;
  if (p >= r->nparts) {
    int32_t n = r->nparts ? r->nparts : 16;
    while (n <= p)
      n *= 2;
    part *np = realloc(r->parts, (size_t)n * sizeof *np);
    if (!np)
      return NULL;
    memset(np + r->nparts, 0, (size_t)(n - r->nparts) * sizeof *np);
    r->parts = np;
    r->nparts = n;
  }
  return &r->parts[p];
}

/* Appends offset to the partition's ring (grows it when full: the only allocation, bounded by the
 * producer queue) and returns the opaque for the produced message, or OPQ_NONE on ENOMEM. */
static void *part_push(run *r, int32_t p, int64_t offset) {
  part *pt = part_get(r, p);
  if (!pt)
    return OPQ_NONE;
  if (pt->head - pt->tail >= pt->cap) {
    uint32_t cap = pt->cap ? pt->cap * 2 : 4096;
    int64_t *off = malloc((size_t)cap * sizeof *off);
    uint8_t *done = malloc(cap);
    if (!off || !done) {
      free(off);
      free(done);
      return OPQ_NONE;
    }
    for (uint64_t s = pt->tail; s < pt->head; s++) {
      off[s & (cap - 1)] = pt->off[s & (pt->cap - 1)];
      done[s & (cap - 1)] = pt->done[s & (pt->cap - 1)];
    }
    free(pt->off);
    free(pt->done);
    pt->off = off;
    pt->done = done;
    pt->cap = cap;
  }
  uint64_t seq = pt->head++;
  pt->pnext = offset + 1;
  pt->off[seq & (pt->cap - 1)] = offset;
  pt->done[seq & (pt->cap - 1)] = 0;
  uint64_t v = ((uint64_t)pt->gen << 56) | ((uint64_t)p << OPQ_SEQ_BITS) |
               (seq & (((uint64_t)1 << OPQ_SEQ_BITS) - 1));
  return (void *)(uintptr_t)v;
}

/* A delivery report for a tracked message: marks it and advances the committable offset. */
static void part_ack(run *r, void *opaque, int failed) {
  if (opaque == OPQ_NONE)
    return;
  uint64_t v = (uint64_t)(uintptr_t)opaque;
  int32_t p = (int32_t)((v >> OPQ_SEQ_BITS) & 0xFFFF);
  if (p >= r->nparts)
    return;
  part *pt = &r->parts[p];
  if (!pt->assigned || (uint8_t)(v >> 56) != pt->gen)
    return;
  /* Recover the full sequence from its low 40 bits: it lies in [tail, head). */
  uint64_t lo = v & (((uint64_t)1 << OPQ_SEQ_BITS) - 1);
  uint64_t seq = (pt->tail & ~(((uint64_t)1 << OPQ_SEQ_BITS) - 1)) | lo;
  if (seq < pt->tail)
    seq += (uint64_t)1 << OPQ_SEQ_BITS;
  if (seq >= pt->head)
    return;
  if (failed)
    pt->stuck = 1;
  pt->done[seq & (pt->cap - 1)] = 1;
  while (pt->tail < pt->head && pt->done[pt->tail & (pt->cap - 1)]) {
    pt->next = pt->off[pt->tail & (pt->cap - 1)] + 1;
    pt->tail++;
    pt->dirty = 1;
  }
}

/* Stores the committable offsets of partitions that advanced (auto-commit sends them). */
static void parts_store(run *r) {
  for (int32_t p = 0; p < r->nparts; p++) {
    part *pt = &r->parts[p];
    if (!pt->dirty)
      continue;
    pt->dirty = 0;
    /* With a state db, offsets go to Kafka only once a checkpoint covers them (ckpt_commit). */
    if (r->db || !pt->assigned || pt->stuck || pt->next < 0)
      continue;
    /* rd_kafka_offset_store stores offset + 1, the next one to read. */
    rd_kafka_resp_err_t err = rd_kafka_offset_store(r->t_in, p, pt->next - 1);
    if (err && err != RD_KAFKA_RESP_ERR__STATE)
      log_warn("run", "offset store %s/%d at %lld: %s", r->o->input_topic, p, (long long)pt->next,
               rd_kafka_err2str(err));
  }
}

/* ---- Producing. */

/* The longest one produce waits on a full producer queue, serving delivery reports: 1 s (it was
 * up to 1000 polls of 10 ms). Backpressure pauses consumption at the queue's high mark, so the
 * queue is full only when a chunk is larger than the room above that mark (a tiny
 * queue.buffering.max.messages) or its byte limit comes first; the loop thread then blocks for as
 * long as the broker takes to acknowledge, at most 1 s per message. */
#define PRODUCE_WAIT_MS 1000

/* Produces one message (bounded wait on a full queue, see PRODUCE_WAIT_MS). A failure is counted
 * as a delivery error and its input offset as failed. */
static void produce(run *r, rd_kafka_topic_t *t, int flags, void *buf, size_t len, const void *key,
                    size_t keylen, void *opaque) {
  rd_kafka_resp_err_t err = kprod_send(r->producer, t, RD_KAFKA_PARTITION_UA, flags, buf, len, key,
                                       keylen, opaque, PRODUCE_WAIT_MS, NULL);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
    return;
  log_error("run", "produce to %s failed: %s", rd_kafka_topic_name(t), rd_kafka_err2str(err));
  r->st.delivery_errors++;
  if (flags & RD_KAFKA_MSG_F_FREE)
    free(buf);
  part_ack(r, opaque, 1);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  run *r = opaque;
  if (m->err) {
    r->st.delivery_errors++;
    if (r->st.delivery_errors <= 10 || r->st.delivery_errors % 10000 == 0)
      log_error("run",
                "delivery to %s failed: %s (%llu delivery errors so far; offsets of the "
                "input partition are no longer committed)",
                rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err),
                (unsigned long long)r->st.delivery_errors);
  } else {
    r->st.delivered++;
  }
  part_ack(r, m->_private, m->err != 0);
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

/* A rejected message: its dead letter (with the decoder's error text, recomputed here since the
 * hot path decodes without it). */
static void send_dead_letter(run *r, const rd_kafka_message_t *m, eng_tick *t, size_t srclen,
                             void *opaque) {
  char err[256] = "";
  if (t->reason == TICK_OUT_OF_ORDER) {
    int32_t s = symtab_find(&r->e.st, t->t.sym, t->t.sym_len);
    snprintf(err, sizeof err,
             "field ts: found %lld, expected at least the last accepted ts of %s"
             " (%lld)",
             (long long)t->t.ts, t->t.sym, s >= 0 ? (long long)r->e.st.inst[s].last_ts : -1LL);
  } else if (!m->payload) {
    snprintf(err, sizeof err, "empty message (no value), expected one JSON object");
  } else {
    tick tk;
    int rs = tick_parse_json(&tk, m->payload, m->len, err, sizeof err);
    if (rs == TICK_OK)
      tick_check_key(&tk, m->key, m->key_len, err, sizeof err);
  }
  r->src[srclen] = 0;
  size_t len = 0;
  char *d = dlq_encode(tick_reason_name(t->reason), err, r->src, m->key, m->key_len, tc_wall_ms(),
                       m->payload, m->len, DLQ_PAYLOAD_MAX, &len);
  if (!d) {
    log_error("run", "dead letter for %s: out of memory", r->src);
    part_ack(r, opaque, 1);
    return;
  }
  produce(r, r->t_dlq, RD_KAFKA_MSG_F_FREE, d, len, m->key, m->key_len, opaque);
  r->st.dlq_out++;
}

/* ---- The pipeline: decode, one engine step, produce. */

static void begin_shutdown(run *r, int code);

static void process_chunk(run *r) {
  int N = r->n;
  r->n = 0;
  if (!N)
    return;
  for (int i = 0; i < N; i++) {
    rd_kafka_message_t *m = r->msgs[i];
    eng_tick *t = &r->ticks[i];
    t->partition = m->partition;
    t->reason = m->payload ? tick_parse_json(&t->t, m->payload, m->len, NULL, 0) : TICK_BAD_JSON;
    if (t->reason == TICK_OK && m->key_len)
      t->reason = tick_check_key(&t->t, m->key, m->key_len, NULL, 0);
    if (t->reason != TICK_OK)
      r->e.rejected[t->reason]++;
    r->st.ticks_in++;
    stats_part_in(&r->st, m->partition);
  }
  int rc = engine_process(&r->e, r->ticks, N);
  r->st.chunks++;
  if (rc != 0) {
    /* Nothing was applied; the messages are not acknowledged, so a restart reprocesses them. */
    log_error("run", "engine: %s on a chunk of %d ticks; stopping", tc_strerror(rc), N);
    for (int i = 0; i < N; i++)
      rd_kafka_message_destroy(r->msgs[i]);
    begin_shutdown(r, 1);
    return;
  }
  char buf[ENC_PRED_MAX];
  for (int i = 0; i < N; i++) {
    rd_kafka_message_t *m = r->msgs[i];
    eng_tick *t = &r->ticks[i];
    size_t srclen = src_format(r, m->partition, m->offset);
    void *opq = part_push(r, m->partition, m->offset);
    if (t->reason == TICK_OK) {
      size_t len = enc_pred_json(buf, t, r->src, srclen);
      produce(r, r->t_out, RD_KAFKA_MSG_F_COPY, buf, len, t->t.sym, t->t.sym_len, opq);
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

/* ---- Consumer side. */

static void on_idle(uv_idle_t *h);

/* Backpressure. Pausing first just stops draining: messages wait in librdkafka's bounded fetch
 * queue and resuming costs nothing. librdkafka's own pause (which drops the prefetched messages
 * and refetches on resume) is used only when a pause outlasts PAUSE_HARD_MS, so that the loop can
 * go on serving rebalances and stay within max.poll.interval.ms while the output is down. */
#define PAUSE_HARD_MS 10000

static void pause_partitions(run *r, int pause) {
  rd_kafka_topic_partition_list_t *a = NULL;
  if (rd_kafka_assignment(r->consumer, &a) == 0 && a) {
    if (pause)
      rd_kafka_pause_partitions(r->consumer, a);
    else
      rd_kafka_resume_partitions(r->consumer, a);
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
  uv_idle_start(&r->idle, on_idle); /* keep serving the consumer queue's events */
}

static void set_paused(run *r, int pause) {
  if (r->paused == pause)
    return;
  r->paused = pause;
  r->st.paused = pause;
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
    uv_idle_start(&r->idle, on_idle);
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
 * the machine's noise. */
#define TURN_MSGS 256

static void drain(run *r) {
  int turn = 0, more = 0;
  while (!r->stopping && (!r->paused || r->hard_paused)) {
    if (turn >= TURN_MSGS) {
      more = 1;
      break;
    }
    int limit = r->chunk;
    r->t_chunk = tc_mono_ns(); /* process_chunk left r->n at 0 */
    while (r->n < limit && !r->stopping) {
      rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, 0);
      if (!m)
        break;
      if (m->err) {
        on_consumer_error(r, m);
        rd_kafka_message_destroy(m);
        continue;
      }
      r->msgs[r->n++] = m;
    }
    int got = r->n, full = got >= limit;
    process_chunk(r);
    if (r->stopping)
      return;
    turn += got;
    if (rd_kafka_outq_len(r->producer) > r->outq_high)
      set_paused(r, 1);
    if (!full)
      break; /* the queue is empty: the io event wakes us */
  }
  if (more)
    uv_idle_start(&r->idle, on_idle);
  else
    uv_idle_stop(&r->idle);
}

static void on_idle(uv_idle_t *h) {
  drain(h->data);
}

static void drain_pipe(int fd) {
  char b[256];
  while (read(fd, b, sizeof b) > 0) {
  }
}

static void on_consumer_io(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  run *r = h->data;
  drain_pipe(r->cpipe[0]);
  drain(r);
}

static void on_producer_io(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  run *r = h->data;
  drain_pipe(r->ppipe[0]);
  rd_kafka_poll(r->producer, 0);
  parts_store(r);
  if (r->paused && rd_kafka_outq_len(r->producer) < r->outq_low)
    set_paused(r, 0);
  ckpt_ready(r);
}

/* Waits (bounded) for every output in flight to be acknowledged and stores the offsets. */
static int settle(run *r, int timeout_ms) {
  if (r->flush_failed)
    timeout_ms = 0; /* the broker did not answer once: do not wait again */
  rd_kafka_resp_err_t err = rd_kafka_flush(r->producer, timeout_ms);
  if (err) {
    r->flush_failed = 1;
    log_warn("run", "flush: %d messages still unacknowledged after %d ms",
             rd_kafka_outq_len(r->producer), timeout_ms);
  }
  parts_store(r);
  return err ? -1 : 0;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
  run *r = opaque;
  int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
  r->st.rebalances++;
  char list[512];
  size_t o = 0;
  list[0] = 0;
  for (int i = 0; i < parts->cnt && o < sizeof list - 16; i++)
    o += (size_t)snprintf(list + o, sizeof list - o, "%s%d", i ? "," : "",
                          parts->elems[i].partition);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (int i = 0; i < parts->cnt; i++) {
      if (strcmp(parts->elems[i].topic, r->o->input_topic))
        continue;
      int32_t p = parts->elems[i].partition;
      part *pt = part_get(r, p);
      if (!pt)
        continue;
      pt->gen++;
      pt->assigned = 1;
      if (pt->in_snap) /* cannot happen: a revoke resolved it; but never commit across this */
        ckpt_abandon(r, "its partition was assigned again");
      pt->tail = pt->head = 0;
      pt->next = pt->pnext = -1;
      pt->stuck = pt->dirty = 0;
      if (p < STATS_MAX_PARTS) {
        r->st.assigned[p] = 1;
        r->st.lag[p] = -1;
        if (p >= r->st.nparts)
          r->st.nparts = p + 1;
      }
      r->assigned++;
    }
    hook_assign(r, parts);
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t ae = 0;
    if (coop)
      e = rd_kafka_incremental_assign(rk, parts);
    else
      ae = rd_kafka_assign(rk, parts);
    if (e || ae) {
      log_error("run", "assign: %s", e ? rd_kafka_error_string(e) : rd_kafka_err2str(ae));
      if (e)
        rd_kafka_error_destroy(e);
    }
    if (r->hard_paused)
      rd_kafka_pause_partitions(rk, parts);
    log_info("run", "assigned %s partitions [%s] (%s), %d in all", r->o->input_topic, list,
             coop ? "cooperative" : "eager", r->assigned);
    uv_idle_start(&r->idle, on_idle);
  } else {
    /* A revoke may land while a chunk is being gathered: finish it first, flush its outputs and
     * commit, so the partitions leave with their offsets exactly at what we processed. */
    process_chunk(r);
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      int flushed = settle(r, 5000) == 0;
      if (flushed) {
        ckpt_now(r, "revoke");
        handoff(r, parts);
      }
      rd_kafka_resp_err_t ce = flushed ? rd_kafka_commit(rk, NULL, 0) : 0;
      if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_warn("run", "commit before revoke: %s", rd_kafka_err2str(ce));
      hook_revoke(r, parts);
    } else {
      log_error("run", "rebalance error: %s", rd_kafka_err2str(err));
    }
    /* A snapshot still pending here (flush failed, or an error) covers partitions that leave
     * with outputs unacknowledged: it can never be committed. */
    ckpt_abandon(r, "partitions revoked before its outputs were acknowledged");
    for (int i = 0; i < parts->cnt; i++) {
      if (strcmp(parts->elems[i].topic, r->o->input_topic))
        continue;
      int32_t p = parts->elems[i].partition;
      if (p < r->nparts && r->parts[p].assigned) {
        r->parts[p].assigned = 0;
        r->assigned--;
      }
      if (p >= 0 && p < STATS_MAX_PARTS)
        r->st.assigned[p] = 0;
    }
    if (coop) {
      rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
      if (e) {
        log_error("run", "unassign: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
      }
    } else {
      rd_kafka_assign(rk, NULL);
      r->assigned = 0;
      for (int32_t p = 0; p < r->nparts; p++)
        r->parts[p].assigned = 0;
      memset(r->st.assigned, 0, sizeof r->st.assigned);
    }
    log_info("run", "revoked %s partitions [%s], %d left", r->o->input_topic, list, r->assigned);
  }
}

static int on_rdkafka_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
  (void)rk;
  run *r = opaque;
  if (stats_parse_rdkafka(&r->st, json, len, r->o->input_topic) < 0)
    log_debug("run", "librdkafka statistics did not parse");
  return 0; /* librdkafka frees json */
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  run *r = opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512];
    rd_kafka_fatal_error(rk, buf, sizeof buf);
    log_error("run", "%s: fatal: %s", rd_kafka_name(rk), buf);
    begin_shutdown(r, 1);
    return;
  }
  /* Transport errors are already in librdkafka's own log lines; keep them out of warnings. */
  int lv = err == RD_KAFKA_RESP_ERR__TRANSPORT ? LOG_DEBUG : LOG_WARN;
  log_msg(lv, "run", "%s: %s: %s", rd_kafka_name(rk), rd_kafka_err2name(err), reason);
}

/* ---- Timers, HTTP, signals. */

static void stats_fill(run *r) {
  r->st.instruments = r->e.st.live;
  r->st.assigned_count = r->assigned;
  r->st.outq = rd_kafka_outq_len(r->producer);
  if (r->ck) {
    const ckpt_stats *cs = ckpt_get_stats(r->ck);
    double age = ckpt_age_s(r->ck);
    r->st.checkpoint_age_ms = age < 0 ? -1 : (int64_t)(age * 1000);
    r->st.checkpoints = cs->written;
    r->st.checkpoint_failures = cs->failures;
    r->st.checkpoint_failing = cs->consecutive_failures;
  }
  memcpy(r->st.model_id, r->model->id, sizeof r->st.model_id);
}

static void on_stats_timer(uv_timer_t *h) {
  run *r = h->data;
  stats_fill(r);
  char *js = stats_json(&r->st, tc_wall_ms(), 1);
  if (!js)
    return;
  produce(r, r->t_stats, RD_KAFKA_MSG_F_FREE, js, strlen(js), r->o->group, strlen(r->o->group),
          OPQ_NONE);
  log_debug("run", "stats: in %llu, out %llu", (unsigned long long)r->st.ticks_in,
            (unsigned long long)r->st.predictions_out);
}

static void on_second(uv_timer_t *h) {
  stats_second(&((run *)h->data)->st);
}

static void on_ckpt_timer(uv_timer_t *h) {
  hook_checkpoint_timer(h->data);
}

static int on_http(void *ud, const char *path, char **body, size_t *len, const char **ctype) {
  run *r = ud;
  if (!strcmp(path, "/metrics")) {
    stats_fill(r);
    *body = stats_prometheus(&r->st, tc_wall_ms(), len);
    *ctype = "text/plain; version=0.0.4; charset=utf-8";
    return *body ? 200 : 500;
  }
  const char *msg;
  int status;
  if (!strcmp(path, "/healthz")) {
    status = r->stopping ? 503 : 200;
    msg = r->stopping ? "stopping\n" : "ok\n";
  } else if (!strcmp(path, "/readyz")) {
    int ready = !r->stopping && r->model && r->assigned > 0;
    status = ready ? 200 : 503;
    msg = ready         ? "ready\n"
          : r->stopping ? "not ready: stopping\n"
                        : "not ready: no partitions assigned\n";
  } else {
    status = 404;
    msg = "not found (try /metrics, /healthz, /readyz)\n";
  }
  *body = strdup(msg);
  *len = *body ? strlen(*body) : 0;
  return status;
}

static void reload_model(run *r) {
  char err[512];
  nn_model *nm = calloc(1, sizeof *nm);
  if (!nm)
    return;
  int rc = nn_model_load(nm, r->o->model_path, err, sizeof err);
  if (rc != 0) {
    r->st.model_reload_failures++;
    log_error("run", "SIGHUP: %s; keeping model %s", err, r->model->id);
    free(nm);
    return;
  }
  if (!nn_model_same_shape(nm, r->model)) {
    r->st.model_reload_failures++;
    log_error("run",
              "SIGHUP: model %s has shape L=%d H=%d peephole=%d, expected L=%d H=%d "
              "peephole=%d (the running model's); refused, keeping model %s",
              r->o->model_path, nm->L, nm->H, nm->peephole, r->model->L, r->model->H,
              r->model->peephole, r->model->id);
    nn_model_free(nm);
    free(nm);
    return;
  }
  if (!strcmp(nm->id, r->model->id)) {
    log_info("run", "SIGHUP: model %s unchanged (%s); nothing to do", r->o->model_path, nm->id);
    nn_model_free(nm);
    free(nm);
    return;
  }
  int reset = !r->o->on_model_change_keep;
  engine_set_model(&r->e, nm, reset);
  /* The LSTM scratch caches the summed biases of the model it was set up with. */
  nn_work_update(&r->e.w, nm);
  log_info("run", "SIGHUP: model %s -> %s (%s instrument states)", r->model->id, nm->id,
           reset ? "reset" : "kept");
  nn_model_free(r->model);
  free(r->model);
  r->model = nm;
  r->st.model_reloads++;
  hook_model_change(r);
}

static void close_cb(uv_handle_t *h) {
  (void)h;
}

static void close_all(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, close_cb);
}

/* Shutdown must end within 10 s even when the broker is gone (rd_kafka_consumer_close can wait
 * on a coordinator that never answers): this thread ends the process with status 1 at 9.5 s. */
static void *watchdog(void *arg) {
  (void)arg;
  struct timespec ts = {9, 500000000};
  nanosleep(&ts, NULL);
  log_error("run", "shutdown did not finish in 9.5 s (broker unreachable?); exiting without "
                   "leaving the group cleanly");
  _exit(1);
  return NULL;
}

/* Stops consuming, flushes the producer (bounded), commits, leaves the group and lets the loop
 * end. Blocking inside the loop is fine here: nothing else is left to serve. Runs from a timer,
 * never from inside a librdkafka callback. */
static void on_stop(uv_timer_t *h) {
  run *r = h->data;
  log_info("run", "stopping: flushing %d queued messages", rd_kafka_outq_len(r->producer));
  uv_poll_stop(&r->cpoll);
  uv_idle_stop(&r->idle);
  pthread_t wd;
  if (pthread_create(&wd, NULL, watchdog, NULL) == 0)
    pthread_detach(wd);
  int flushed = settle(r, 5000) == 0;
  if (flushed)
    hook_shutdown(r);
  else
    log_warn("run", "shutdown: no final checkpoint, outputs unacknowledged; a restart resumes "
                    "from the last checkpoint");
  rd_kafka_resp_err_t ce = flushed ? rd_kafka_commit(r->consumer, NULL, 0) : 0;
  if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
    log_warn("run", "final commit: %s", rd_kafka_err2str(ce));
  rd_kafka_consumer_close(r->consumer);
  settle(r, 1000);
  http_stop(r->http);
  r->http = NULL;
  uv_walk(r->loop, close_all, NULL);
}

/* Asks the loop to stop (from anywhere, librdkafka callbacks included): no more draining; the
 * shutdown itself runs on the next loop turn. */
static void begin_shutdown(run *r, int code) {
  if (r->stopping)
    return;
  r->stopping = 1;
  r->exit_code = code;
  uv_timer_start(&r->t_stop, on_stop, 0, 0);
}

static void on_signal(uv_signal_t *h, int sig) {
  run *r = h->data;
  if (sig == SIGHUP) {
    reload_model(r);
    return;
  }
  log_info("run", "%s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  begin_shutdown(r, 0);
}

/* ---- Setup. */

static int make_pipe(int fds[2]) {
  return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
}

/* The -X properties for one of the two clients: "consumer.KEY" and "producer.KEY" go only to that
 * client (prefix removed), plain keys to both. kc->brokers is shared. */
static int kconf_for(kconf *out, const kconf *kc, const char *mine, const char *other) {
  kconf_init(out);
  out->brokers = kc->brokers; /* borrowed: cleared before kconf_free */
  size_t ml = strlen(mine), ol = strlen(other);
  for (int i = 0; i < kc->nprops; i++) {
    const char *k = kc->props[i].key;
    if (!strncmp(k, other, ol))
      continue;
    if (!strncmp(k, mine, ml))
      k += ml;
    if (kconf_prop_add(out, k, kc->props[i].val, kc->props[i].where) != 0)
      return TC_ENOMEM;
  }
  return 0;
}

static void kconf_for_free(kconf *k) {
  k->brokers = NULL;
  kconf_free(k);
}

/* Builds the consumer and producer confs from defaults + --config + -X. */
static int make_clients(run *r, const char *bootstrap, char *err, size_t errlen) {
  const run_opts *o = r->o;
  /* librdkafka's statistics (the consumer lag in our stats) at most once a second: parsing that
   * JSON (50 partitions) every 250 ms took 0.8 % of the loop thread in perf, on top of
   * librdkafka building it. */
  char stats_ms[32];
  snprintf(stats_ms, sizeof stats_ms, "%d", o->stats_ms > 1000 ? o->stats_ms : 1000);
  const char *cdef[] = {"group.id", o->group, "auto.offset.reset", "earliest", "enable.auto.commit",
                        "true", "enable.auto.offset.store", "false", "auto.commit.interval.ms",
                        "1000", "statistics.interval.ms", stats_ms,
                        /* librdkafka 2.0.2 counts queued.min.messages against the one consumer
                         * queue all partitions forward to, and once it is exceeded the fetcher
                         * sleeps until its next wakeup, up to 1 s, even after the loop drained
                         * the queue (2.4 added fetch.queue.backoff.ms for this). With the default
                         * 100000, a backlog catch-up stalled for 0.3-0.7 s every ~0.25 s
                         * (bench/run_kafka.sh, 2026-11-29). The bound on prefetched memory stays
                         * queued.max.messages.kbytes (64 MiB of payload by default). */
                        "queued.min.messages", "1000000", "client.id", "tickcast-run",
                        bootstrap ? "bootstrap.servers" : NULL, bootstrap, NULL};
  const char *pdef[] = {"client.id",      "tickcast-run",
                        "linger.ms",      "5",
                        "partitioner", /* the Java client's: same partition as Kafka tools */
                        "murmur2_random", bootstrap ? "bootstrap.servers" : NULL,
                        bootstrap,        NULL};
  rd_kafka_conf_t *cc = NULL, *pc = NULL;
  kconf ck, pk;
  kconf_init(&ck);
  kconf_init(&pk);
  int rc = kconf_for(&ck, &o->kc, "consumer.", "producer.");
  if (rc == 0)
    rc = kconf_for(&pk, &o->kc, "producer.", "consumer.");
  if (rc == 0 && kconf_build(&ck, cdef, &cc, err, errlen) != 0)
    rc = TC_EUSAGE;
  if (rc == 0 && kconf_build(&pk, pdef, &pc, err, errlen) != 0)
    rc = TC_EUSAGE;
  kconf_for_free(&ck);
  kconf_for_free(&pk);
  if (rc != 0) {
    if (rc == TC_ENOMEM)
      snprintf(err, errlen, "out of memory");
    if (cc)
      rd_kafka_conf_destroy(cc);
    return rc;
  }
  char v[64];
  size_t vl = sizeof v;
  long qmax = 100000;
  if (rd_kafka_conf_get(pc, "queue.buffering.max.messages", v, &vl) == RD_KAFKA_CONF_OK)
    qmax = strtol(v, NULL, 10);
  r->outq_high = qmax * 8 / 10;
  r->outq_low = qmax / 2;
  if (r->outq_high < 1)
    r->outq_high = 1;
  rd_kafka_conf_set_opaque(cc, r);
  rd_kafka_conf_set_opaque(pc, r);
  rd_kafka_conf_set_rebalance_cb(cc, on_rebalance);
  rd_kafka_conf_set_stats_cb(cc, on_rdkafka_stats);
  rd_kafka_conf_set_error_cb(cc, on_error);
  rd_kafka_conf_set_error_cb(pc, on_error);
  rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
  char kerr[512];
  r->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, kerr, sizeof kerr);
  if (!r->consumer) {
    rd_kafka_conf_destroy(cc);
    rd_kafka_conf_destroy(pc);
    snprintf(err, errlen, "consumer: %s", kerr);
    return TC_EKAFKA;
  }
  r->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, kerr, sizeof kerr);
  if (!r->producer) {
    rd_kafka_conf_destroy(pc);
    snprintf(err, errlen, "producer: %s", kerr);
    return TC_EKAFKA;
  }
  rd_kafka_poll_set_consumer(r->consumer);
  if (o->changelog_topic) {
    /* The changelog reader: a consumer that never subscribes or commits (librdkafka wants a
     * group.id for assign), assigned to changelog partitions only while an assignment reads
     * them. */
    char lgroup[300];
    snprintf(lgroup, sizeof lgroup, "%s.changelog-reader", o->group);
    const char *ldef[] = {"group.id",
                          lgroup,
                          "client.id",
                          "tickcast-run-changelog",
                          "enable.auto.commit",
                          "false",
                          "enable.auto.offset.store",
                          "false",
                          "enable.partition.eof",
                          "true",
                          "auto.offset.reset",
                          "earliest",
                          bootstrap ? "bootstrap.servers" : NULL,
                          bootstrap,
                          NULL};
    kconf lk;
    rd_kafka_conf_t *lc = NULL;
    kconf_init(&lk);
    rc = kconf_for(&lk, &o->kc, "consumer.", "producer.");
    if (rc == 0 && kconf_build(&lk, ldef, &lc, err, errlen) != 0)
      rc = TC_EUSAGE;
    kconf_for_free(&lk);
    if (rc == 0 && !(r->cl_rk = rd_kafka_new(RD_KAFKA_CONSUMER, lc, kerr, sizeof kerr))) {
      rd_kafka_conf_destroy(lc);
      snprintf(err, errlen, "changelog reader: %s", kerr);
      rc = TC_EKAFKA;
    }
    if (rc != 0)
      return rc;
    r->t_cl = rd_kafka_topic_new(r->producer, o->changelog_topic, NULL);
    r->cl_ids = (tc_mono_ns() ^ ((uint64_t)getpid() << 40)) << 16;
  }
  r->t_in = rd_kafka_topic_new(r->consumer, o->input_topic, NULL);
  r->t_out = rd_kafka_topic_new(r->producer, o->output_topic, NULL);
  r->t_stats = rd_kafka_topic_new(r->producer, o->stats_topic, NULL);
  r->t_dlq = rd_kafka_topic_new(r->producer, o->dlq_topic, NULL);
  if (!r->t_in || !r->t_out || !r->t_stats || !r->t_dlq) {
    snprintf(err, errlen, "topic handles: %s", rd_kafka_err2str(rd_kafka_last_error()));
    return TC_EKAFKA;
  }
  rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, o->input_topic, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t se = rd_kafka_subscribe(r->consumer, sub);
  rd_kafka_topic_partition_list_destroy(sub);
  if (se) {
    snprintf(err, errlen, "subscribe to %s: %s", o->input_topic, rd_kafka_err2str(se));
    return TC_EKAFKA;
  }
  /* Wake the loop through pipes: librdkafka writes a byte when a queue becomes non-empty. */
  if (make_pipe(r->cpipe) || make_pipe(r->ppipe)) {
    snprintf(err, errlen, "pipe: %s", strerror(errno));
    return TC_EIO;
  }
  r->cq = rd_kafka_queue_get_consumer(r->consumer);
  r->pq = rd_kafka_queue_get_main(r->producer);
  rd_kafka_queue_io_event_enable(r->cq, r->cpipe[1], "1", 1);
  rd_kafka_queue_io_event_enable(r->pq, r->ppipe[1], "1", 1);
  return 0;
}

int run_main(const run_opts *o) {
  run *r = calloc(1, sizeof *r);
  if (!r)
    return 1;
  r->o = o;
  r->cpipe[0] = r->cpipe[1] = r->ppipe[0] = r->ppipe[1] = -1;
  r->chunk = o->chunk;
  char err[1024];
  int code = 1;
  uv_loop_t loop;
  int loop_ok = 0;
  stats_init(&r->st, tc_wall_ms());
  snprintf(r->st.version, sizeof r->st.version, "%s", TICKCAST_VERSION);

  r->model = calloc(1, sizeof *r->model);
  if (!r->model)
    goto out;
  if (nn_model_load(r->model, o->model_path, err, sizeof err) != 0) {
    log_error("run", "%s", err);
    code = 2;
    goto out;
  }
  if (engine_init(&r->e, r->model, r->chunk) != 0) {
    log_error("run", "engine: out of memory for chunks of %d", r->chunk);
    goto out;
  }
  r->msgs = calloc((size_t)r->chunk, sizeof *r->msgs);
  r->ticks = calloc((size_t)r->chunk, sizeof *r->ticks);
  if (!r->msgs || !r->ticks)
    goto out;
  r->in_prefix_len = strlen(o->input_topic) + 1;
  snprintf(r->src, sizeof r->src, "%s/", o->input_topic);

  const char *bootstrap = NULL;
  if (!o->kc.brokers) {
    char topics[1024];
    snprintf(topics, sizeof topics, "%s,%s,%s,%s", o->input_topic, o->output_topic, o->stats_topic,
             o->dlq_topic);
    if (mockbroker_start(&r->mb, 0, topics, err, sizeof err) != 0) {
      log_error("run", "embedded broker: %s", err);
      goto out;
    }
    bootstrap = mockbroker_bootstraps(r->mb);
    log_info("run",
             "no --brokers: started an embedded development broker at %s "
             "(publish ticks to topic %s there)",
             bootstrap, o->input_topic);
  }
  uv_loop_init(&loop);
  loop_ok = 1;
  r->loop = &loop;
  if (o->http) {
    int hr = http_start(&r->http, &loop, o->http, on_http, r, err, sizeof err);
    if (hr != 0) {
      log_error("run", "%s", err);
      goto out;
    }
    log_info("run", "http on %s (port %d): /metrics /healthz /readyz", o->http, http_port(r->http));
  }
  int kr = make_clients(r, bootstrap, err, sizeof err);
  if (kr != 0) {
    log_error("run", "%s", err);
    code = kr == TC_EUSAGE ? 2 : 1;
    goto out;
  }
  /* The state db opens after the client configuration was accepted (a bad -X creates no file)
   * and before the loop runs (the first assignment restores from it). */
  {
    int rc = store_open(o->state_path, o->sync_full ? STORE_SYNC_FULL : STORE_SYNC_NORMAL,
                        STORE_OPEN_CREATE, &r->db, err, sizeof err);
    if (rc == 0)
      rc = ckpt_bind_model(r->db, r->model, o->reset_state, err, sizeof err);
    if (rc != 0) {
      log_error("run", "%s", err);
      code = rc == TC_EFORMAT || rc == TC_EMODEL ? 2 : 1;
      goto out;
    }
  }
  if (ckpt_new(&r->ck, &loop, r->db, r->model) != 0)
    goto out;
  uv_poll_init(&loop, &r->cpoll, r->cpipe[0]);
  uv_poll_init(&loop, &r->ppoll, r->ppipe[0]);
  uv_idle_init(&loop, &r->idle);
  uv_timer_init(&loop, &r->t_stats_timer);
  uv_timer_init(&loop, &r->t_second);
  uv_timer_init(&loop, &r->t_ckpt);
  uv_timer_init(&loop, &r->t_stop);
  uv_timer_init(&loop, &r->t_pause);
  uv_signal_init(&loop, &r->sig_term);
  uv_signal_init(&loop, &r->sig_int);
  uv_signal_init(&loop, &r->sig_hup);
  r->cpoll.data = r->ppoll.data = r->idle.data = r->t_stats_timer.data = r->t_second.data =
      r->t_ckpt.data = r->t_stop.data = r->t_pause.data = r->sig_term.data = r->sig_int.data =
          r->sig_hup.data = r;
  uv_poll_start(&r->cpoll, UV_READABLE, on_consumer_io);
  uv_poll_start(&r->ppoll, UV_READABLE, on_producer_io);
  uv_idle_start(&r->idle, on_idle); /* the queue may be non-empty already: no event for that */
  uv_timer_start(&r->t_stats_timer, on_stats_timer, (uint64_t)o->stats_ms, (uint64_t)o->stats_ms);
  uv_timer_start(&r->t_second, on_second, 0, 1000);
  uv_timer_start(&r->t_ckpt, on_ckpt_timer, (uint64_t)o->checkpoint_ms, (uint64_t)o->checkpoint_ms);
  uv_signal_start(&r->sig_term, on_signal, SIGTERM);
  uv_signal_start(&r->sig_int, on_signal, SIGINT);
  uv_signal_start(&r->sig_hup, on_signal, SIGHUP);
  log_info("run", "model %s (%s: L=%d H=%d%s); consuming %s as group %s -> %s", r->model->id,
           o->model_path, r->model->L, r->model->H, r->model->peephole ? " peephole" : "",
           o->input_topic, o->group, o->output_topic);
  uv_run(&loop, UV_RUN_DEFAULT);
  code = r->exit_code;
  log_info("run",
           "stopped: %llu ticks in, %llu predictions, %llu dead letters, %llu delivery "
           "errors",
           (unsigned long long)r->st.ticks_in, (unsigned long long)r->st.predictions_out,
           (unsigned long long)r->st.dlq_out, (unsigned long long)r->st.delivery_errors);
out:
  if (loop_ok) {
    if (r->http)
      http_stop(r->http);
    uv_walk(&loop, close_all, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  ckpt_destroy(r->ck);
  store_close(r->db);
  if (r->cq) {
    rd_kafka_queue_io_event_enable(r->cq, -1, NULL, 0);
    rd_kafka_queue_destroy(r->cq);
  }
  if (r->pq) {
    rd_kafka_queue_io_event_enable(r->pq, -1, NULL, 0);
    rd_kafka_queue_destroy(r->pq);
  }
  if (r->t_in)
    rd_kafka_topic_destroy(r->t_in);
  if (r->t_out)
    rd_kafka_topic_destroy(r->t_out);
  if (r->t_stats)
    rd_kafka_topic_destroy(r->t_stats);
  if (r->t_dlq)
    rd_kafka_topic_destroy(r->t_dlq);
  if (r->t_cl)
    rd_kafka_topic_destroy(r->t_cl);
  if (r->cl_rk) {
    rd_kafka_consumer_close(r->cl_rk);
    rd_kafka_destroy(r->cl_rk);
  }
  if (r->consumer)
    rd_kafka_destroy(r->consumer);
  if (r->producer) {
    rd_kafka_purge(r->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(r->producer);
  }
  mockbroker_stop(r->mb);
  for (int i = 0; i < 2; i++) {
    if (r->cpipe[i] >= 0)
      close(r->cpipe[i]);
    if (r->ppipe[i] >= 0)
      close(r->ppipe[i]);
  }
  for (int32_t p = 0; p < r->nparts; p++) {
    free(r->parts[p].off);
    free(r->parts[p].done);
  }
  free(r->parts);
  free(r->offbuf);
  engine_free(&r->e);
  nn_model_free(r->model);
  free(r->model);
  free(r->msgs);
  free(r->ticks);
  free(r);
  return code;
}
