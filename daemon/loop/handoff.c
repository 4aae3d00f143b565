/* handoff.c: the changelog hand-off (daemon/kafka/changelog.h, docs/STATE.md): at a revoke the
 * revoked partitions' instrument states go to the changelog topic, and at an assignment a newer
 * hand-off replaces the state file's states. Not for the record format (changelog.c). */
#include <stdio.h>
#include <string.h>

#include "daemon/kafka/changelog.h"
#include "daemon/kafka/produce.h"
#include "daemon/loop/run_int.h"
#include "daemon/pipeline/log.h"
#include "nn/base/tc_err.h"

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

/* The changelog's partition count, or 0 when it is not available (logged). */
static int changelog_partitions(run *r) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e = rd_kafka_metadata(r->producer, 0, r->t_cl, &md, 2000);
  int ncl = !e && md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : 0;
  if (md)
    rd_kafka_metadata_destroy(md);
  if (ncl <= 0) {
    log_warn("run", "hand-off: changelog %s not available (%s); no hand-off", r->o->changelog_topic,
             e ? rd_kafka_err2str(e) : "no partitions");
    return 0;
  }
  return ncl;
}

/* One hand-off of input partition p to changelog partition q: a record per live instrument of p,
 * then the marker that completes them (model hash sha, offset pnext). buf holds
 * cl_state_len(cell, L, H) bytes. 0, or -1 when a record or the marker could not be produced (the
 * records without a marker are ignored by readers). */
static int send_partition(run *r, int32_t p, int32_t q, const char *sha, unsigned char *buf) {
  const int cell = r->model->cell, L = r->model->L, H = r->model->H;
  uint64_t id = r->cl_ids++;
  uint32_t count = 0;
  for (uint32_t s = 0; s < r->e.st.count; s++) {
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
    size_t len = cl_encode_state(buf, id, p, &si, cell, L, H);
    count++;
    if (cl_produce(r, q, buf, len, in->sym, in->sym_len) != 0)
      return -1;
  }
  int64_t pnext = r->parts[p].pnext;
  char mkey[CL_MARKER_KEY_MAX];
  size_t mkl = cl_marker_key(mkey, p);
  size_t len = cl_encode_marker(buf, id, p, count, pnext, sha);
  if (cl_produce(r, q, buf, len, mkey, mkl) != 0)
    return -1;
  r->st.handoffs_out++;
  log_info("run", "hand-off of %s/%d: %u instruments at offset %lld to %s/%d", r->o->input_topic, p,
           count, (long long)pnext, r->o->changelog_topic, q);
  return 0;
}

/* At a revoke, after the flush: one hand-off per revoked partition whose state is exactly that of
 * its processed offset with every output acknowledged (it processed something since its
 * assignment, no delivery failed, nothing is in flight), then a bounded wait for the broker. */
void handoff_send(run *r, rd_kafka_topic_partition_list_t *parts) {
  if (!r->t_cl || rd_kafka_outq_len(r->producer) > 0)
    return;
  int ncl = changelog_partitions(r);
  if (ncl <= 0)
    return;
  char sha[65];
  ckpt_model_hex(r->model, sha);
  unsigned char *buf = malloc(cl_state_len(r->model->cell, r->model->L, r->model->H));
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
    if (send_partition(r, p, p % ncl, sha, buf) == 0)
      sent++;
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
void handoff_restore(run *r, rd_kafka_topic_partition_list_t *parts, const int32_t *ps, int np,
                     const store_offset *off, size_t noff) {
  char sha[65], err[512];
  ckpt_model_hex(r->model, sha);
  cl_scan *s = NULL;
  if (cl_scan_new(&s, r->model->cell, r->model->L, r->model->H, sha, ps, np) != 0)
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
