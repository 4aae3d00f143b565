/* produce.c: produce with a bounded wait on a full queue (see produce.h). */
#include "daemon/kafka/produce.h"

#include "nn/base/clock.h"

rd_kafka_resp_err_t kprod_send(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
                               int msgflags, void *val, size_t len, const void *key, size_t keylen,
                               void *opaque, int wait_ms, volatile sig_atomic_t *stop) {
  uint64_t deadline = 0;
  for (;;) {
    if (stop && *stop)
      return RD_KAFKA_RESP_ERR__INTR;
    if (rd_kafka_produce(rkt, partition, msgflags, val, len, key, keylen, opaque) == 0)
      return RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_resp_err_t err = rd_kafka_last_error();
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
