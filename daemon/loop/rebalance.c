/* rebalance.c: partitions assigned and revoked. An assignment restores the partitions'
 * instruments and starts them at their stored offsets; a revoke finishes the chunk, flushes,
 * checkpoints, hands the partitions off and drops their instruments. Not for the hand-off's
 * records (handoff.c). */
#include <stdio.h>
#include <string.h>

#include "daemon/loop/run_int.h"
#include "daemon/pipeline/log.h"

/* Partitions assigned: restore their instruments and start them at the stored offsets (stored
 * offsets win over Kafka's committed ones), or at a newer hand-off's (handoff_restore). */
static void restore_assigned(run *r, rd_kafka_topic_partition_list_t *parts) {
  if (!r->db && !r->cl_rk)
    return;
  int32_t *ps = malloc((size_t)(parts->cnt ? parts->cnt : 1) * sizeof *ps);
  if (!ps) {
    log_error("run", "restore: out of memory; stopping");
    lifecycle_begin_shutdown(r, 1);
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
    lifecycle_begin_shutdown(r, 1);
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
    handoff_restore(r, parts, ps, np, off, noff);
  free(ps);
  free(off);
}

/* Partitions about to be revoked (outputs flushed, checkpoint taken, offsets committed): their
 * instruments are dropped, since another consumer may advance them meanwhile; their stored rows
 * stay and match the stored offsets. */
static void drop_revoked(run *r, rd_kafka_topic_partition_list_t *parts) {
  for (int i = 0; i < parts->cnt; i++) {
    if (strcmp(parts->elems[i].topic, r->o->input_topic))
      continue;
    int32_t p = parts->elems[i].partition;
    for (uint32_t s = 0; s < r->e.st.count; s++)
      if (r->e.st.inst[s].live && r->e.st.inst[s].partition == p)
        symtab_remove(&r->e.st, (int32_t)s);
  }
}

/* Newly assigned partitions of the input topic start a new generation of in-flight tracking
 * (delivery reports of an earlier assignment are ignored) with nothing processed yet. */
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
    if (pt->in_snap) /* cannot happen: a revoke resolved it; but never commit across this */
      sched_ckpt_abandon(r, "its partition was assigned again");
    pt->tail = pt->head = 0;
    pt->next = pt->pnext = -1;
    pt->stuck = pt->dirty = 0;
    stats_part_assigned(&r->st, p);
    r->assigned++;
  }
}

static void on_assign(run *r, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts, int coop,
                      const char *list) {
  track_assigned(r, parts);
  restore_assigned(r, parts);
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
  uv_idle_start(&r->idle, drain_on_idle);
}

/* Revoked partitions of the input topic are no longer tracked. */
static void untrack_revoked(run *r, const rd_kafka_topic_partition_list_t *parts) {
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
}

static void unassign(run *r, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts, int coop) {
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
}

/* A revoke, or a rebalance error (err): flush, checkpoint and hand off when every output was
 * acknowledged in time, then drop and unassign the partitions. */
static void on_revoke(run *r, rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts, int coop, const char *list) {
  /* A revoke may land while a chunk is being gathered: finish it first, flush its outputs and
   * commit, so the partitions leave with their offsets exactly at what we processed. */
  drain_process_chunk(r);
  if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    int flushed = parts_settle(r, 5000) == 0;
    if (flushed) {
      sched_ckpt_now(r, "revoke");
      handoff_send(r, parts);
    }
    rd_kafka_resp_err_t ce = flushed ? rd_kafka_commit(rk, NULL, 0) : 0;
    if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
      log_warn("run", "commit before revoke: %s", rd_kafka_err2str(ce));
    drop_revoked(r, parts);
  } else {
    log_error("run", "rebalance error: %s", rd_kafka_err2str(err));
  }
  /* A snapshot still pending here (flush failed, or an error) covers partitions that leave
   * with outputs unacknowledged: it can never be committed. */
  sched_ckpt_abandon(r, "partitions revoked before its outputs were acknowledged");
  untrack_revoked(r, parts);
  unassign(r, rk, parts, coop);
  log_info("run", "revoked %s partitions [%s], %d left", r->o->input_topic, list, r->assigned);
}

void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                  void *opaque) {
  run *r = opaque;
  int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
  r->st.rebalances++;
  char list[512]; /* the partition numbers, for the log */
  size_t o = 0;
  list[0] = 0;
  for (int i = 0; i < parts->cnt && o < sizeof list - 16; i++)
    o += (size_t)snprintf(list + o, sizeof list - o, "%s%d", i ? "," : "",
                          parts->elems[i].partition);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
    on_assign(r, rk, parts, coop, list);
  else
    on_revoke(r, rk, err, parts, coop, list);
}
