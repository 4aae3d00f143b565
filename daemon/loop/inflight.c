/* inflight.c: the per-partition rings of input offsets whose outputs are in flight (part_get and
 * part_push, once per message, are inline in run_int.h): their growth, the delivery reports that
 * advance them and the offsets they let the consumer store. Not for checkpoints (ckpt_sched.c). */
#include <string.h>

#include "daemon/kafka/produce.h"
#include "daemon/loop/run_int.h"
#include "daemon/pipeline/log.h"
#include "nn/base/tc_err.h"

part *parts_grow(run *r, int32_t p) {
  int32_t n = r->nparts ? r->nparts : 16;
  while (n <= p)
    n *= 2;
  part *np = realloc(r->parts, (size_t)n * sizeof *np);
  if (!np)
    return NULL;
  memset(np + r->nparts, 0, (size_t)(n - r->nparts) * sizeof *np);
  r->parts = np;
  r->nparts = n;
  return &r->parts[p];
}

int part_ring_grow(part *pt) {
  uint32_t cap = pt->cap ? pt->cap * 2 : 4096;
  int64_t *off = malloc((size_t)cap * sizeof *off);
  uint8_t *done = malloc(cap);
  if (!off || !done) {
    free(off);
    free(done);
    return TC_ENOMEM;
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
  return 0;
}

void parts_free(run *r) {
  for (int32_t p = 0; p < r->nparts; p++) {
    free(r->parts[p].off);
    free(r->parts[p].done);
  }
  free(r->parts);
  r->parts = NULL;
  r->nparts = 0;
}

/* A delivery report for a tracked message: marks it and advances the committable offset. */
void part_ack(run *r, void *opaque, int failed) {
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
void parts_store(run *r) {
  for (int32_t p = 0; p < r->nparts; p++) {
    part *pt = &r->parts[p];
    if (!pt->dirty)
      continue;
    pt->dirty = 0;
    /* With a state db, offsets go to Kafka only once a checkpoint covers them (ckpt_sched.c). */
    if (r->db || !pt->assigned || pt->stuck || pt->next < 0)
      continue;
    /* rd_kafka_offset_store stores offset + 1, the next one to read. */
    rd_kafka_resp_err_t err = rd_kafka_offset_store(r->t_in, p, pt->next - 1);
    if (err && err != RD_KAFKA_RESP_ERR__STATE)
      log_warn("run", "offset store %s/%d at %lld: %s", r->o->input_topic, p, (long long)pt->next,
               rd_kafka_err2str(err));
  }
}

/* Whether hs is one of the lent header lists. */
static int hdrs_lent(const run *r, const rd_kafka_headers_t *hs) {
  if (hs == r->hdrs)
    return 1;
  for (int i = 0; i < r->nhdrs_old; i++)
    if (hs == r->hdrs_old[i])
      return 1;
  return 0;
}

rd_kafka_headers_t *parts_hdrs(run *r, const char *id) {
  if (r->hdrs)
    return r->hdrs;
  if (r->nhdrs_old == r->cap_hdrs_old) {
    int cap = r->cap_hdrs_old ? 2 * r->cap_hdrs_old : 4;
    rd_kafka_headers_t **o = realloc(r->hdrs_old, (size_t)cap * sizeof *o);
    if (!o)
      return NULL;
    r->hdrs_old = o;
    r->cap_hdrs_old = cap;
  }
  r->hdrs = kprod_hdrs_new("tickcast.model", id, strlen(id));
  return r->hdrs;
}

void parts_hdrs_retire(run *r) {
  if (!r->hdrs)
    return;
  r->hdrs_old[r->nhdrs_old++] = r->hdrs; /* parts_hdrs made the room */
  r->hdrs = NULL;
}

void parts_hdrs_sweep(run *r) {
  if (!r->nhdrs_old || !r->producer || rd_kafka_outq_len(r->producer) != 0)
    return;
  for (int i = 0; i < r->nhdrs_old; i++)
    rd_kafka_headers_destroy(r->hdrs_old[i]);
  r->nhdrs_old = 0;
}

void parts_hdrs_free(run *r) {
  for (int i = 0; i < r->nhdrs_old; i++)
    rd_kafka_headers_destroy(r->hdrs_old[i]);
  free(r->hdrs_old);
  r->hdrs_old = NULL;
  r->nhdrs_old = r->cap_hdrs_old = 0;
  if (r->hdrs)
    rd_kafka_headers_destroy(r->hdrs);
  r->hdrs = NULL;
}

/* Waits (bounded) for every output in flight to be acknowledged and stores the offsets. */
int parts_settle(run *r, int timeout_ms) {
  if (r->flush_failed)
    timeout_ms = 0; /* the broker did not answer once: do not wait again */
  rd_kafka_resp_err_t err = rd_kafka_flush(r->producer, timeout_ms);
  if (err && !r->flush_failed) /* once: the shutdown's second flush would say it again */
    log_warn("run", "flush: %d messages still unacknowledged after %d ms",
             rd_kafka_outq_len(r->producer), timeout_ms);
  if (err)
    r->flush_failed = 1;
  parts_store(r);
  return err ? -1 : 0;
}

void parts_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  run *r = opaque;
  /* Every header list on this producer's messages is lent (r->hdrs or a retired one), a message
   * with its own list aside (drain.c's fallback): that one is freed here as librdkafka would. */
  rd_kafka_headers_t *hs = kprod_hdrs_reclaim(m);
  if (hs && !hdrs_lent(r, hs))
    rd_kafka_headers_destroy(hs);
  if (r->closing)
    return;
  if (m->_private != OPQ_NONE && m->rkt == r->t_dlq) { /* a dead letter never holds offsets back */
    if (m->err)
      drain_dead_letter_failed(r, rd_kafka_err2str(m->err));
    else
      r->st.dlq_out++, r->st.delivered++;
    part_ack(r, m->_private, 0);
    return;
  }
  if (!m->err) {
    r->st.delivered++;
  } else if (++r->st.delivery_errors <= 10 || r->st.delivery_errors % 10000 == 0) {
    if (m->_private == OPQ_NONE) /* stats: only that message is lost */
      log_error("run", "delivery of a stats message to %s failed: %s (%llu delivery errors so far)",
                rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err),
                (unsigned long long)r->st.delivery_errors);
    else
      log_error("run",
                "delivery to %s failed: %s (%llu delivery errors so far; offsets of the "
                "input partition are no longer committed)",
                rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err),
                (unsigned long long)r->st.delivery_errors);
  }
  part_ack(r, m->_private, m->err != 0);
}
