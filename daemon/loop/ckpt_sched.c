/* ckpt_sched.c: when the daemon checkpoints (ckpt.h copies and writes). A checkpoint covers only
 * ticks whose outputs the broker acknowledged: the snapshot is copied at the interval and
 * submitted for writing once the delivery reports of every output produced before it have
 * arrived; revokes and shutdown checkpoint synchronously after flushing the producer. With a
 * state db, Kafka's committed offsets follow the committed checkpoints. */
#include <stdio.h>
#include <string.h>

#include "daemon/loop/run_int.h"
#include "daemon/pipeline/log.h"
#include "nn/base/tc_err.h"

/* Offsets the states reflect, into r->offbuf: next = last processed + 1 of every assigned
 * partition that processed something since its assignment (the others keep their stored offset).
 * A snapshot with these offsets may be committed only once every output produced so far is
 * acknowledged (THE RULE, ckpt.h). Returns the count, -1 when a delivery failed on some
 * partition (no checkpoint may cover a lost output), or -2 on ENOMEM. */
static int offsets_fill(run *r) {
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
static void offsets_to_kafka(run *r) {
  size_t n = 0;
  const store_offset *off = ckpt_offsets(r->ck, &n);
  for (size_t k = 0; k < n; k++) {
    int32_t p = off[k].partition;
    if (strcmp(off[k].topic, r->o->input_topic) || p >= r->nparts || !r->parts[p].assigned ||
        off[k].next_offset <= 0)
      continue;
    stats_part_checkpointed(&r->st, p, off[k].next_offset, uv_now(r->loop));
    /* rd_kafka_offset_store stores offset + 1, the next one to read. */
    rd_kafka_resp_err_t err = rd_kafka_offset_store(r->t_in, p, off[k].next_offset - 1);
    if (err && err != RD_KAFKA_RESP_ERR__STATE)
      log_warn("run", "offset store %s/%d at %lld: %s", r->o->input_topic, p,
               (long long)off[k].next_offset, rd_kafka_err2str(err));
  }
}

/* A submitted checkpoint write ended (loop thread). */
static void on_done(ckpt *ck, int status, const char *err, void *ud) {
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
    if (!r->stopping) /* at shutdown the consumer is closed; sched_ckpt_now stored them already */
      offsets_to_kafka(r);
    /* A model swap arrived while this one was written. */
    if (ckpt_model_change_pending(ck) && !r->stopping)
      sched_ckpt_try(r);
    return;
  }
  r->st.checkpoint_failing = cs->consecutive_failures;
  if (cs->consecutive_failures <= 3 || cs->consecutive_failures % 100 == 0)
    log_warn("run", "checkpoint failed (%u in a row): %s; predicting goes on, retrying",
             cs->consecutive_failures, err);
}

/* The pending snapshot leaves the waiting state (submitted, merged or given up). */
static void unpend(run *r) {
  r->ckpt_pending = 0;
  for (int32_t p = 0; p < r->nparts; p++)
    r->parts[p].in_snap = 0;
}

/* Gives up the pending snapshot (a delivery it covers failed, or a partition it covers is being
 * revoked before its outputs were acknowledged): what it copied becomes dirty again. */
void sched_ckpt_abandon(run *r, const char *why) {
  if (!r->ckpt_pending)
    return;
  unpend(r);
  ckpt_untake(r->ck, &r->e.st);
  r->st.checkpoints_skipped++;
  log_debug("run", "checkpoint given up: %s", why);
}

/* Submits the pending snapshot once every output produced before it was taken is acknowledged
 * (each covered partition's oldest unacknowledged output is past the snapshot's); gives it up
 * if one of them failed for good. Called from the timer and after delivery reports. */
void sched_ckpt_ready(run *r) {
  if (!r->ckpt_pending)
    return;
  for (int32_t p = 0; p < r->nparts; p++) {
    part *pt = &r->parts[p];
    if (!pt->in_snap)
      continue;
    if (pt->stuck || !pt->assigned) {
      sched_ckpt_abandon(r, pt->stuck ? "a delivery it covers failed" : "a partition left");
      return;
    }
    if (pt->tail < pt->snap_seq)
      return; /* not yet */
  }
  unpend(r);
  r->ckpt_acked_ms = uv_now(r->loop) - r->ckpt_taken_ms;
  int rc = ckpt_submit(r->ck, on_done, r);
  if (rc != 0) {
    /* Not written: keep it in the arena to be merged into the next one (it satisfies THE RULE). */
    ckpt_carry(r->ck);
    log_warn("run", "checkpoint not started: %s", tc_strerror(rc));
  }
}

/* Every --checkpoint-interval (and right after a model swap): takes a snapshot of the states and
 * of the processed offsets at this chunk boundary, without pausing anything; sched_ckpt_ready
 * submits it once its outputs are acknowledged. A snapshot still pending from the last interval
 * (slow acknowledgements) makes this one count as skipped. */
void sched_ckpt_try(run *r) {
  if (!r->db || r->stopping || ckpt_busy(r->ck))
    return;
  if (r->ckpt_pending) {
    r->st.checkpoints_skipped++;
    log_debug("run", "checkpoint skipped: the last one still waits for acknowledgements (%llu ms)",
              (unsigned long long)(uv_now(r->loop) - r->ckpt_taken_ms));
    return;
  }
  int n = offsets_fill(r);
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
  sched_ckpt_ready(r);
}

/* Synchronous checkpoint (revoke, shutdown), after the caller flushed the producer. */
void sched_ckpt_now(run *r, const char *why) {
  if (!r->db)
    return;
  if (rd_kafka_outq_len(r->producer) > 0) {
    sched_ckpt_abandon(r, "outputs unacknowledged at a revoke or shutdown");
    log_warn("run", "%s: no checkpoint, %d outputs still unacknowledged", why,
             rd_kafka_outq_len(r->producer));
    return;
  }
  int n = offsets_fill(r);
  if (n < 0) {
    sched_ckpt_abandon(r, "no final checkpoint");
    log_warn("run", "%s: no checkpoint, %s", why,
             n == -1 ? "a delivery failed" : "out of memory for the offsets");
    return;
  }
  if (r->ckpt_pending) {
    /* Everything is acknowledged now: the pending snapshot is merged into this one. */
    unpend(r);
    ckpt_carry(r->ck);
  }
  char err[512];
  if (ckpt_flush(r->ck, &r->e.st, r->offbuf, (size_t)n, err, sizeof err) != 0) {
    r->st.checkpoint_failing = ckpt_get_stats(r->ck)->consecutive_failures;
    log_warn("run", "%s: checkpoint failed: %s", why, err);
    return;
  }
  r->st.checkpoint_failing = 0;
  offsets_to_kafka(r);
  log_info("run", "%s: checkpoint of %llu instruments", why,
           (unsigned long long)ckpt_get_stats(r->ck)->last_rows);
}

/* Every --checkpoint-interval. */
void sched_ckpt_on_timer(uv_timer_t *h) {
  sched_ckpt_try(h->data);
}

/* A new model of the same shape was swapped in (states reset unless --on-model-change keep): the
 * new hash is recorded with the states in a checkpoint taken right away (until it commits, a
 * restart with the new model file is refused as state of another model). */
void sched_ckpt_model_changed(run *r) {
  if (!r->db)
    return;
  ckpt_model_changed(r->ck, r->model, !r->o->on_model_change_keep);
  sched_ckpt_try(r);
}
