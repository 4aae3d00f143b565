/* ckpt_sched.c: when the daemon checkpoints (ckpt.h copies and writes). A checkpoint covers only
 * ticks whose outputs the broker acknowledged: the snapshot is begun at the interval, copied a
 * slice per loop turn (copy on write keeps it "as of" its beginning), and submitted once the
 * delivery reports of every output produced before it have arrived. A submitted checkpoint goes
 * to the changelog first (its records, acknowledged, then its markers, acknowledged), then to the
 * state file, and only then do its offsets go to Kafka: neither the file nor the committed
 * offsets are ever ahead of the changelog. Revokes use the same path (rebalance.c); shutdown
 * checkpoints synchronously after flushing the producer. */
#include <stdio.h>
#include <string.h>

#include "daemon/loop/run_int.h"
#include "daemon/pipeline/log.h"
#include "nn/base/tc_err.h"

/* A slice of a snapshot copy: about 1 MB of state per loop turn (under 1 ms). */
#define SLICE_BYTES (1u << 20)

/* Offsets the states reflect, into r->offbuf: next = last processed + 1 of every assigned
 * partition that processed something since its assignment or was restored (the others keep
 * their stored offset), and the changelog side of each in r->clparts. A snapshot with these
 * offsets may be committed only once every output produced so far is acknowledged (THE RULE,
 * ckpt.h). Returns the count, -1 when a delivery failed on some partition (no checkpoint may
 * cover a lost output), or -2 on ENOMEM. */
static int offsets_fill(run *r) {
  if (r->offcap < r->nparts) {
    store_offset *nb = realloc(r->offbuf, (size_t)r->nparts * sizeof *nb);
    if (!nb)
      return -2;
    r->offbuf = nb;
    cl_part *nc = realloc(r->clparts, (size_t)r->nparts * sizeof *nc);
    if (!nc)
      return -2;
    r->clparts = nc;
    r->offcap = r->nparts;
  }
  int n = 0;
  for (int32_t p = 0; p < r->nparts; p++) {
    part *pt = &r->parts[p];
    if (!pt->assigned || pt->restoring || pt->awaiting)
      continue;
    if (pt->stuck)
      return -1;
    if (pt->pnext < 0)
      continue;
    store_offset *o = &r->offbuf[n];
    snprintf(o->topic, sizeof o->topic, "%s", r->o->input_topic);
    o->partition = p;
    o->next_offset = pt->pnext;
    int64_t base = pt->cl_base;
    r->clparts[n] =
        (cl_part){.part = p,
                  .next = pt->pnext,
                  .base = base,
                  .since_base = pt->cl_since,
                  .full = base < 0 || base == INT64_MAX || cl_full_due(pt->cl_since, pt->ninst)};
    n++;
  }
  return n;
}

/* After a committed checkpoint: its offsets become the ones Kafka commits (auto-commit sends
 * them), so lag tools see progress; they never get ahead of the changelog. */
static void offsets_to_kafka(run *r) {
  size_t n = 0;
  const store_offset *off = ckpt_offsets(r->ck, &n);
  for (size_t k = 0; k < n; k++) {
    int32_t p = off[k].partition;
    if (strcmp(off[k].topic, r->o->input_topic) || p >= r->nparts || !r->parts[p].assigned ||
        r->parts[p].restoring || r->parts[p].awaiting || off[k].next_offset <= 0)
      continue;
    stats_part_checkpointed(&r->st, p, off[k].next_offset, uv_now(r->loop));
    /* rd_kafka_offset_store stores offset + 1, the next one to read. */
    rd_kafka_resp_err_t err = rd_kafka_offset_store(r->t_in, p, off[k].next_offset - 1);
    if (err && err != RD_KAFKA_RESP_ERR__STATE)
      log_warn("run", "offset store %s/%d at %lld: %s", r->o->input_topic, p,
               (long long)off[k].next_offset, rd_kafka_err2str(err));
  }
}

/* After a committed checkpoint: each partition's changelog base and instrument count, for the
 * next one's full-or-not decision. */
static void parts_from_ckpt(run *r) {
  size_t n = 0;
  const cl_part *cp = ckpt_parts(r->ck, &n);
  for (size_t k = 0; k < n; k++) {
    int32_t p = cp[k].part;
    if (p < 0 || p >= r->nparts || !r->parts[p].assigned)
      continue;
    r->parts[p].ninst = cp[k].instruments;
    if (r->clw) {
      r->parts[p].cl_base = cp[k].base;
      r->parts[p].cl_since = cp[k].since_base;
    }
  }
}

int sched_changelog_hook(void *ud, const store_inst *rows, const uint8_t *to_cl, size_t n,
                         cl_part *parts, size_t nparts, int64_t time_ns, char *err, size_t errlen) {
  run *r = ud;
  /* On the pool thread: not r->model, which a reload swaps and frees meanwhile (a reload keeps
   * the shape: lifecycle.c). */
  return cl_writer_put(r->clw, r->ckpt_sha, r->m_cell, r->m_L, r->m_H, rows, to_cl, n, parts,
                       nparts, time_ns, __atomic_load_n(&r->cl_ack_ms, __ATOMIC_RELAXED), err,
                       errlen);
}

/* A submitted checkpoint write ended (loop thread). */
static void on_done(ckpt *ck, int status, const char *err, void *ud) {
  run *r = ud;
  const ckpt_stats *cs = ckpt_get_stats(ck);
  if (status == 0) {
    if (r->st.checkpoint_failing)
      log_info("run", "checkpoint written again after %u failures", r->st.checkpoint_failing);
    r->st.checkpoint_failing = 0;
    r->ckpt_done_seq = r->ckpt_write_seq;
    log_debug("run",
              "checkpoint: %llu instruments, copy %.0f us in %llu slices (longest %.0f us), "
              "acknowledged after %llu ms, changelog and file %.1f ms",
              (unsigned long long)cs->last_rows, cs->last_copy_us,
              (unsigned long long)cs->copy_slices, cs->max_copy_us,
              (unsigned long long)r->ckpt_acked_ms, cs->last_write_us / 1e3);
    parts_from_ckpt(r);
    if (!r->stopping) /* at shutdown the consumer is closed; sched_ckpt_now stored them already */
      offsets_to_kafka(r);
    rebalance_progress(r);
    /* A model swap arrived while this one was written. */
    if (ckpt_model_change_pending(ck) && !r->stopping)
      sched_ckpt_try(r);
    return;
  }
  r->st.checkpoint_failing = cs->consecutive_failures;
  char why[256];
  if (r->clw && !r->stopping && cl_writer_fatal(r->clw, why, sizeof why)) {
    /* No checkpoint can be written again by this process: exit 1 and let the supervisor start a
     * new one (it resumes at the last checkpoint, as after a crash). */
    log_error("run",
              "checkpoint failed: %s; the changelog writer cannot write again, stopping (exit 1) "
              "so that a restart makes a new one",
              err);
    lifecycle_begin_shutdown(r, 1);
    return;
  }
  if (r->stopping) /* a write under way when the shutdown began (which says what it does next) */
    log_warn("run", "checkpoint failed: %s", err);
  else if (cs->consecutive_failures <= 3 || cs->consecutive_failures % 100 == 0)
    log_warn("run", "checkpoint failed (%u in a row): %s; predicting goes on, retrying",
             cs->consecutive_failures, err);
  rebalance_progress(r);
}

/* The pending snapshot leaves the waiting state (submitted, merged or given up). */
static void unpend(run *r) {
  r->ckpt_pending = 0;
  uv_idle_stop(&r->ckpt_idle);
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

/* Submits the pending snapshot once it is copied and every output produced before it was begun is
 * acknowledged (each covered partition's oldest unacknowledged output is past the snapshot's);
 * gives it up if one of them failed for good. Called after each copy slice and after delivery
 * reports. */
void sched_ckpt_ready(run *r) {
  if (!r->ckpt_pending || ckpt_copying(r->ck))
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
  r->ckpt_write_seq = r->ckpt_seq;
  int rc = ckpt_submit(r->ck, on_done, r);
  if (rc != 0) {
    /* Not written: keep it in the arena to be merged into the next one (it satisfies THE RULE). */
    ckpt_carry(r->ck);
    log_warn("run", "checkpoint not started: %s", tc_strerror(rc));
  }
}

/* One slice of the snapshot copy per loop turn; once complete, it waits for acknowledgements. */
void sched_ckpt_on_idle(uv_idle_t *h) {
  run *r = h->data;
  int rc = ckpt_take_step(r->ck, &r->e.st, SLICE_BYTES);
  if (rc == 0)
    return;
  uv_idle_stop(&r->ckpt_idle);
  if (rc < 0) {
    sched_ckpt_abandon(r, "out of memory in the copy");
    return;
  }
  sched_ckpt_ready(r);
}

void sched_ckpt_guard(run *r, int N) {
  if (!r->ck || !ckpt_copying(r->ck))
    return;
  for (int i = 0; i < N; i++) {
    const eng_tick *t = &r->ticks[i];
    if (t->reason != TICK_OK)
      continue;
    int32_t s = symtab_find(&r->e.st, t->t.sym, t->t.sym_len);
    if (s >= 0)
      ckpt_take_guard(r->ck, &r->e.st, s);
  }
}

/* Every --checkpoint-interval (and right after a model swap, and at a revoke): begins a snapshot
 * of the states and of the processed offsets at this chunk boundary, without pausing anything; it
 * is copied a slice per loop turn and submitted by sched_ckpt_ready once its outputs are
 * acknowledged. A snapshot still pending from the last interval (slow acknowledgements) makes
 * this one count as skipped. */
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
  int rc = n < 0 ? TC_ENOMEM
                 : ckpt_take_begin(r->ck, &r->e.st, r->offbuf, (size_t)n,
                                   r->clw ? r->clparts : NULL, r->clw ? (size_t)n : 0);
  if (rc != 0) {
    log_warn("run", "checkpoint not started: %s", tc_strerror(rc));
    return;
  }
  for (int32_t p = 0; p < r->nparts; p++) {
    part *pt = &r->parts[p];
    pt->in_snap = pt->assigned && !pt->restoring && !pt->awaiting && pt->pnext >= 0;
    pt->snap_seq = pt->head;
  }
  r->ckpt_seq++;
  r->ckpt_pending = 1;
  r->ckpt_taken_ms = uv_now(r->loop);
  /* The records name the model the states were built with: the one of this moment. */
  memcpy(r->ckpt_sha, r->model->sha256, sizeof r->ckpt_sha);
  uv_idle_start(&r->ckpt_idle, sched_ckpt_on_idle);
}

/* Synchronous checkpoint (shutdown), after the caller flushed the producer. 0 when it was
 * written, -1 when not (no state file, outputs unacknowledged, a failed write: logged). */
int sched_ckpt_now(run *r, const char *why) {
  if (!r->db)
    return -1;
  if (rd_kafka_outq_len(r->producer) > 0) {
    sched_ckpt_abandon(r, "outputs unacknowledged at a revoke or shutdown");
    log_warn("run", "%s: no checkpoint, %d outputs still unacknowledged", why,
             rd_kafka_outq_len(r->producer));
    return -1;
  }
  int n = offsets_fill(r);
  if (n < 0) {
    sched_ckpt_abandon(r, "no final checkpoint");
    log_warn("run", "%s: no checkpoint, %s", why,
             n == -1 ? "a delivery failed" : "out of memory for the offsets");
    return -1;
  }
  if (r->ckpt_pending) {
    /* Everything is acknowledged now: the pending snapshot is merged into this one. */
    int copying = ckpt_copying(r->ck);
    unpend(r);
    if (copying)
      ckpt_untake(r->ck, &r->e.st);
    else
      ckpt_carry(r->ck);
  }
  char err[512];
  ckpt_wait(r->ck); /* the write in flight still names the model of its snapshot */
  memcpy(r->ckpt_sha, r->model->sha256, sizeof r->ckpt_sha);
  if (ckpt_flush(r->ck, &r->e.st, r->offbuf, (size_t)n, r->clw ? r->clparts : NULL,
                 r->clw ? (size_t)n : 0, err, sizeof err) != 0) {
    r->st.checkpoint_failing = ckpt_get_stats(r->ck)->consecutive_failures;
    log_warn("run", "%s: checkpoint failed: %s", why, err);
    return -1;
  }
  r->st.checkpoint_failing = 0;
  r->ckpt_done_seq = ++r->ckpt_seq;
  parts_from_ckpt(r);
  offsets_to_kafka(r);
  log_info("run", "%s: checkpoint of %llu instruments", why,
           (unsigned long long)ckpt_get_stats(r->ck)->last_rows);
  return 0;
}

/* Every --checkpoint-interval. */
void sched_ckpt_on_timer(uv_timer_t *h) {
  sched_ckpt_try(h->data);
}

/* A new model of the same shape was swapped in (states reset unless --on-model-change keep): the
 * new hash is recorded with the states in a checkpoint taken right away (until it commits, a
 * restart with the new model file is refused as state of another model). Every instrument is
 * written again under the new model (changelog records name their model, and a record of another
 * model counts as absent), and a snapshot being copied is given up: it mixes both models. */
void sched_ckpt_model_changed(run *r) {
  if (!r->db)
    return;
  if (r->ckpt_pending && ckpt_copying(r->ck))
    sched_ckpt_abandon(r, "the model changed during its copy");
  for (uint32_t s = 0; s < r->e.st.count; s++)
    if (r->e.st.inst[s].live)
      r->e.st.inst[s].dirty = 1;
  ckpt_model_changed(r->ck, r->model, !r->o->on_model_change_keep);
  sched_ckpt_try(r);
}
