/* produce.c: produce with a bounded wait on a full queue (see produce.h). */
#include "daemon/kafka/produce.h"

#include "nn/base/clock.h"

/* One attempt: rd_kafka_produce, or rd_kafka_producev with the header (which librdkafka frees
 * itself when the attempt fails). */
static rd_kafka_resp_err_t produce_once(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
                                        int msgflags, void *val, size_t len, const void *key,
                                        size_t keylen, const kprod_header *h, void *opaque) {
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
  uint64_t deadline = 0;
  for (;;) {
    if (stop && *stop)
      return RD_KAFKA_RESP_ERR__INTR;
    rd_kafka_resp_err_t err =
        produce_once(rk, rkt, partition, msgflags, val, len, key, keylen, h, opaque);
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
