/* produce.c: produce with a bounded wait on a full queue (see produce.h). */
#include "daemon/kafka/produce.h"

#include "nn/base/clock.h"

/* One attempt: rd_kafka_produce, or rd_kafka_producev with the header (which librdkafka frees
 * itself when the attempt fails) or with the lent list (which stays the caller's when it fails). */
static rd_kafka_resp_err_t produce_once(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
                                        int msgflags, void *val, size_t len, const void *key,
                                        size_t keylen, const kprod_header *h,
                                        rd_kafka_headers_t *lent, void *opaque) {
  if (lent)
    return rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_MSGFLAGS(msgflags), RD_KAFKA_V_VALUE(val, len),
                             RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_HEADERS(lent),
                             RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
  if (!h)
    return rd_kafka_produce(rkt, partition, msgflags, val, len, key, keylen, opaque) == 0
               ? RD_KAFKA_RESP_ERR_NO_ERROR
               : rd_kafka_last_error();
  return rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
                           RD_KAFKA_V_MSGFLAGS(msgflags), RD_KAFKA_V_VALUE(val, len),
                           RD_KAFKA_V_KEY(key, keylen),
                           RD_KAFKA_V_HEADER(h->name, h->value, (ssize_t)h->len),
                           RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
}

/* The retry loop of every kprod_send*: h or lent (at most one). */
static rd_kafka_resp_err_t send_wait(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
                                     int msgflags, void *val, size_t len, const void *key,
                                     size_t keylen, const kprod_header *h, rd_kafka_headers_t *lent,
                                     void *opaque, int wait_ms, volatile sig_atomic_t *stop) {
  uint64_t deadline = 0;
  for (;;) {
    if (stop && *stop)
      return RD_KAFKA_RESP_ERR__INTR;
    rd_kafka_resp_err_t err =
        produce_once(rk, rkt, partition, msgflags, val, len, key, keylen, h, lent, opaque);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
      return err;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      return err;
    uint64_t now = tc_mono_ns();
    if (!deadline)
      deadline = now + (uint64_t)(wait_ms > 0 ? wait_ms : 0) * 1000000u;
    if (now >= deadline)
      return RD_KAFKA_RESP_ERR__QUEUE_FULL;
    uint64_t left_ms = (deadline - now + 999999u) / 1000000u;
    rd_kafka_poll(rk, left_ms < 10 ? (int)left_ms : 10);
  }
}

rd_kafka_resp_err_t kprod_send(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
                               int msgflags, void *val, size_t len, const void *key, size_t keylen,
                               void *opaque, int wait_ms, volatile sig_atomic_t *stop) {
  return kprod_send_hdr(rk, rkt, partition, msgflags, val, len, key, keylen, NULL, opaque, wait_ms,
                        stop);
}

rd_kafka_resp_err_t kprod_send_hdr(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
                                   int msgflags, void *val, size_t len, const void *key,
                                   size_t keylen, const kprod_header *h, void *opaque, int wait_ms,
                                   volatile sig_atomic_t *stop) {
  return send_wait(rk, rkt, partition, msgflags, val, len, key, keylen, h, NULL, opaque, wait_ms,
                   stop);
}

rd_kafka_headers_t *kprod_hdrs_new(const char *name, const void *value, size_t len) {
  rd_kafka_headers_t *hs = rd_kafka_headers_new(1);
  if (hs && rd_kafka_header_add(hs, name, -1, value, (ssize_t)len) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_headers_destroy(hs);
    hs = NULL;
  }
  return hs;
}

rd_kafka_resp_err_t kprod_send_lent(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
                                    int msgflags, void *val, size_t len, const void *key,
                                    size_t keylen, rd_kafka_headers_t *hdrs, void *opaque,
                                    int wait_ms, volatile sig_atomic_t *stop) {
  return send_wait(rk, rkt, partition, msgflags, val, len, key, keylen, NULL, hdrs, opaque, wait_ms,
                   stop);
}

rd_kafka_headers_t *kprod_hdrs_reclaim(const rd_kafka_message_t *m) {
  rd_kafka_headers_t *hs = NULL;
  /* The report's message is librdkafka's, about to be freed; detaching only clears its pointer. */
  if (rd_kafka_message_detach_headers((rd_kafka_message_t *)m, &hs) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return NULL;
  return hs;
}

int kprod_close_lent(rd_kafka_t *rk, int timeout_ms) {
  rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_flush(rk, timeout_ms); /* serves the purged messages' reports */
  return rd_kafka_outq_len(rk) == 0 ? 0 : -1;
}
