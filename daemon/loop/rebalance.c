/* rebalance.c: partitions assigned and revoked, without blocking the loop. An assignment starts
 * the partitions' restore on the thread pool (restore.c) and returns; librdkafka waits for the
 * assign call, made once the restore is done. A revoke pauses the partitions and returns; the
 * unassign call comes once a checkpoint that covers them has committed (to the changelog, then the
 * file), or after REVOKE_WAIT_MS without one (the successor then repeats from the last checkpoint:
 * predictions repeat with equal values, none is lost). Lost partitions (the session expired) leave
 * at once, with no final checkpoint: someone else may own them already. */
#include <stdio.h>
#include <string.h>

#include "daemon/loop/run_int.h"
#include "daemon/pipeline/log.h"

/* The longest a revoke waits for its final checkpoint (the producer flush of earlier versions
 * waited as long, blocking the loop). */
#define REVOKE_WAIT_MS 5000

/* The partition numbers of parts, for the log. */
static void list_of(const rd_kafka_topic_partition_list_t *parts, char *list, size_t cap) {
  size_t o = 0;
  list[0] = 0;
  for (int i = 0; i < parts->cnt && o < cap - 16; i++)
    o += (size_t)snprintf(list + o, cap - o, "%s%d", i ? "," : "", parts->elems[i].partition);
}

/* Drops the instruments of partitions parts (they leave: another member will advance them). */
static void drop_revoked(run *r, const rd_kafka_topic_partition_list_t *parts) {
  for (int i = 0; i < parts->cnt; i++) {
    if (strcmp(parts->elems[i].topic, r->o->input_topic))
      continue;
    int32_t p = parts->elems[i].partition;
    for (uint32_t s = 0; s < r->e.st.count; s++)
      if (r->e.st.inst[s].live && r->e.st.inst[s].partition == p)
        symtab_remove(&r->e.st, (int32_t)s);
    if (r->ck && r->clw && ckpt_forget(r->ck, p) != 0)
      log_error("run", "out of memory: a failed checkpoint may still write partition %d", (int)p);
  }
}

/* Newly assigned partitions of the input topic start a new generation of in-flight tracking
 * (delivery reports of an earlier assignment are ignored) with nothing processed yet; they are
 * restoring until rebalance_assign. */
static void track_assigned(run *r, const rd_kafka_topic_partition_list_t *parts) {
  for (int i = 0; i < parts->cnt; i++) {
    if (strcmp(parts->elems[i].topic, r->o->input_topic))
      continue;
    int32_t p = parts->elems[i].partition;
    part *pt = part_get(r, p);
    if (!pt)
      continue;
    pt->gen++;
    pt->assigned = 1;
    pt->restoring = 1;
    pt->revoking = 0;
    pt->awaiting = 0;
    if (pt->in_snap) /* cannot happen: a revoke resolved it; but never commit across this */
      sched_ckpt_abandon(r, "its partition was assigned again");
    pt->tail = pt->head = 0;
    pt->next = pt->pnext = -1;
    pt->stuck = pt->dirty = 0;
    pt->cl_base = -1;
    pt->cl_since = 0;
    pt->ninst = 0;
    pt->wait_hi = -1;
    stats_part_assigned(&r->st, p);
    r->assigned++;
  }
}

/* Revoked partitions of the input topic are no longer tracked. */
static void untrack_revoked(run *r, const rd_kafka_topic_partition_list_t *parts) {
  for (int i = 0; i < parts->cnt; i++) {
    if (strcmp(parts->elems[i].topic, r->o->input_topic))
      continue;
    int32_t p = parts->elems[i].partition;
    if (p < r->nparts && r->parts[p].assigned) {
      r->parts[p].assigned = 0;
      r->parts[p].revoking = 0;
      r->parts[p].restoring = 0;
      r->parts[p].awaiting = 0;
      r->assigned--;
    }
    if (p >= 0 && p < STATS_MAX_PARTS)
      r->st.assigned[p] = 0;
  }
}

void rebalance_assign(run *r, rd_kafka_topic_partition_list_t *parts, int coop) {
  for (int i = 0; i < parts->cnt; i++) {
    int32_t p = parts->elems[i].partition;
    if (!strcmp(parts->elems[i].topic, r->o->input_topic) && p < r->nparts)
      r->parts[p].restoring = 0;
  }
  rd_kafka_error_t *e = NULL;
  rd_kafka_resp_err_t ae = 0;
  if (coop)
    e = rd_kafka_incremental_assign(r->consumer, parts);
  else
    ae = rd_kafka_assign(r->consumer, parts);
  if (e || ae) {
    log_error("run", "assign: %s", e ? rd_kafka_error_string(e) : rd_kafka_err2str(ae));
    if (e)
      rd_kafka_error_destroy(e);
  }
  if (r->hard_paused)
    rd_kafka_pause_partitions(r->consumer, parts);
  uv_idle_start(&r->idle, drain_on_idle);
}

static void on_assign(run *r, rd_kafka_topic_partition_list_t *parts, int coop, const char *list) {
  track_assigned(r, parts);
  int mine = 0;
  for (int i = 0; i < parts->cnt; i++)
    mine += !strcmp(parts->elems[i].topic, r->o->input_topic);
  int now = r->stopping || (!r->db && !r->cl_rk) || !mine;
  log_info("run", "assigned %s partitions [%s] (%s), %d in all%s", r->o->input_topic, list,
           coop ? "cooperative" : "eager", r->assigned, now ? "" : "; restoring them");
  if (now)
    rebalance_assign(r, parts, coop);
  else
    restore_begin(r, parts, coop);
}

/* Lets the revoked partitions go: their instruments are dropped and librdkafka told. ok: a
 * checkpoint covering them committed. */
static void revoke_finish(run *r, int ok) {
  rd_kafka_topic_partition_list_t *parts = r->rv_parts;
  r->rv_parts = NULL;
  uv_timer_stop(&r->t_revoke);
  if (!ok && r->ckpt_pending)
    sched_ckpt_abandon(r, "partitions revoked before it was committed");
  if (ok) {
    int n = 0;
    for (int i = 0; i < parts->cnt; i++)
      n += !strcmp(parts->elems[i].topic, r->o->input_topic);
    r->st.handoffs_out += (uint64_t)n;
    if (!r->stopping)
      rd_kafka_commit(r->consumer, NULL, 1); /* async: the offsets the checkpoint stored */
  }
  drop_revoked(r, parts);
  untrack_revoked(r, parts);
  rd_kafka_resume_partitions(r->consumer, parts);
  if (r->rv_coop) {
    rd_kafka_error_t *e = rd_kafka_incremental_unassign(r->consumer, parts);
    if (e) {
      log_error("run", "unassign: %s", rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    }
  } else {
    rd_kafka_assign(r->consumer, NULL);
  }
  char list[512];
  list_of(parts, list, sizeof list);
  uint64_t ms = uv_now(r->loop) - r->rv_start;
  if (ok)
    log_info("run", "revoked %s partitions [%s] after a final checkpoint (%llu ms), %d left",
             r->o->input_topic, list, (unsigned long long)ms, r->assigned);
  else
    log_warn("run",
             "revoked %s partitions [%s] without a final checkpoint after %llu ms (their next "
             "owner resumes from the last one: predictions since then repeat), %d left",
             r->o->input_topic, list, (unsigned long long)ms, r->assigned);
  rd_kafka_topic_partition_list_destroy(parts);
}

void rebalance_progress(run *r) {
  if (!r->rv_parts)
    return;
  if (r->ckpt_done_seq >= r->rv_want_seq) {
    revoke_finish(r, 1);
    return;
  }
  if (uv_now(r->loop) >= r->rv_deadline) {
    revoke_finish(r, 0);
    return;
  }
  /* The last attempt failed or was given up: try again now rather than at the interval. */
  if (!r->ckpt_pending && !ckpt_busy(r->ck))
    sched_ckpt_try(r);
}

static void on_revoke_timer(uv_timer_t *h) {
  rebalance_progress(h->data);
}

/* A revoke: the chunk being gathered is finished, then the partitions leave at once when there is
 * nothing to checkpoint (no state file, shutdown under way, partitions lost), else once a final
 * checkpoint covers them (rebalance_progress). */
static void on_revoke(run *r, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts, int coop,
                      const char *list) {
  drain_process_chunk(r);
  r->rv_parts = rd_kafka_topic_partition_list_copy(parts);
  r->rv_coop = coop;
  r->rv_start = uv_now(r->loop);
  int lost = rd_kafka_assignment_lost(rk);
  if (lost || !r->db || r->stopping) {
    if (lost)
      log_warn("run", "%s partitions [%s] lost (session expired?): leaving without a checkpoint",
               r->o->input_topic, list);
    revoke_finish(r, !lost && r->stopping && r->final_ckpt);
    return;
  }
  for (int i = 0; i < parts->cnt; i++) {
    int32_t p = parts->elems[i].partition;
    if (!strcmp(parts->elems[i].topic, r->o->input_topic) && p < r->nparts)
      r->parts[p].revoking = 1;
  }
  rd_kafka_pause_partitions(rk, parts);
  /* A snapshot already pending or being written covers the partitions (they were assigned when
   * it began): it will do; ticks processed after it are repeated by the next owner. */
  r->rv_want_seq = r->ckpt_pending || ckpt_busy(r->ck) ? r->ckpt_seq : r->ckpt_seq + 1;
  r->rv_deadline = r->rv_start + REVOKE_WAIT_MS;
  log_info("run", "revoking %s partitions [%s] (%s): final checkpoint", r->o->input_topic, list,
           coop ? "cooperative" : "eager");
  uv_timer_start(&r->t_revoke, on_revoke_timer, 50, 50);
  sched_ckpt_try(r);
}

void rebalance_stop(run *r) {
  restore_stop(r);
  if (r->rv_parts)
    revoke_finish(r, r->ckpt_done_seq >= r->rv_want_seq);
}

void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                  void *opaque) {
  run *r = opaque;
  int coop = r->coop; /* never rd_kafka_rebalance_protocol() here: kconf_cooperative */
  r->st.rebalances++;
  char list[512];
  list_of(parts, list, sizeof list);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    on_assign(r, parts, coop, list);
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    if (r->rv_parts) /* cannot happen: librdkafka waits for the unassign call */
      revoke_finish(r, 0);
    on_revoke(r, rk, parts, coop, list);
  } else {
    log_error("run", "rebalance error: %s", rd_kafka_err2str(err));
    sched_ckpt_abandon(r, "rebalance error");
    untrack_revoked(r, parts);
    rd_kafka_resume_partitions(rk, parts); /* a pause (awaiting, revoking) outlives an unassign */
    rd_kafka_error_t *e = coop ? rd_kafka_incremental_unassign(rk, parts) : NULL;
    if (e)
      rd_kafka_error_destroy(e);
    if (!coop)
      rd_kafka_assign(rk, NULL);
  }
}
