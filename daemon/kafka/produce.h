/* produce.h: the one way to hand a message to a librdkafka producer. rd_kafka_produce refuses
 * with QUEUE_FULL while the producer's local queue is at queue.buffering.max.messages/kbytes; this
 * serves delivery reports (which is what empties the queue) and tries again, up to a deadline, so
 * no caller can wait for ever. Not for delivery tracking: delivery reports go to the producer's
 * dr_msg_cb as usual. */
#ifndef DAEMON_KAFKA_PRODUCE_H
#define DAEMON_KAFKA_PRODUCE_H

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* Produces val[0..len) with key[0..keylen) to partition `partition` of rkt (RD_KAFKA_PARTITION_UA
 * lets the partitioner choose) with msgflags (RD_KAFKA_MSG_F_COPY or _FREE) and the delivery
 * report opaque `opaque`. While the queue is full it calls rd_kafka_poll(rk, up to 10 ms) and
 * retries, for at most wait_ms milliseconds in all (0: one attempt, no waiting). When `stop` is
 * not NULL and becomes nonzero (a signal handler's flag), it gives up at once.
 * Returns RD_KAFKA_RESP_ERR_NO_ERROR when the message was queued (librdkafka owns a _FREE buffer
 * from then on); RD_KAFKA_RESP_ERR__QUEUE_FULL when the deadline passed; RD_KAFKA_RESP_ERR__INTR
 * when *stop was set; any other error rd_kafka_produce reported (message too large, unknown
 * partition, ...). On every error the message was not queued and a _FREE buffer still belongs to
 * the caller. */
rd_kafka_resp_err_t kprod_send(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
                               int msgflags, void *val, size_t len, const void *key, size_t keylen,
                               void *opaque, int wait_ms, volatile sig_atomic_t *stop);

/* One message header: its name and value[0..len) (librdkafka copies both). */
typedef struct kprod_header {
  const char *name;
  const void *value;
  size_t len;
} kprod_header;

/* kprod_send with the header h on the message (h NULL: none, exactly kprod_send), through
 * rd_kafka_producev; the same waiting, returns and ownership. librdkafka builds a header list
 * per message (three allocations, freed with the message). */
rd_kafka_resp_err_t kprod_send_hdr(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
                                   int msgflags, void *val, size_t len, const void *key,
                                   size_t keylen, const kprod_header *h, void *opaque, int wait_ms,
                                   volatile sig_atomic_t *stop);

/* Lent headers: one header list (kprod_hdrs_new) that many messages in flight carry at once,
 * instead of a list built and freed per message. librdkafka owns a message's header list and
 * frees it with the message, so the producer that lends one must take it back from every message
 * before that: kprod_hdrs_reclaim in its delivery report callback (for every message, delivered
 * or failed; librdkafka frees a message right after its report), and, before rd_kafka_destroy,
 * kprod_close_lent, since rd_kafka_destroy frees undelivered messages without reports. A lent list
 * is only read while lent (librdkafka serializes it on its broker threads) and is destroyed
 * (rd_kafka_headers_destroy) once no message holds it: rd_kafka_outq_len 0, or after
 * rd_kafka_destroy. */

/* A header list with the one header name = value[0..len); NULL when out of memory. */
rd_kafka_headers_t *kprod_hdrs_new(const char *name, const void *value, size_t len);

/* kprod_send with the lent header list hdrs on the message (NULL: none, exactly kprod_send); the
 * same waiting, returns and ownership of val. On any error the message was not queued and holds
 * nothing. */
rd_kafka_resp_err_t kprod_send_lent(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
                                    int msgflags, void *val, size_t len, const void *key,
                                    size_t keylen, rd_kafka_headers_t *hdrs, void *opaque,
                                    int wait_ms, volatile sig_atomic_t *stop);

/* In a delivery report callback: takes the message's header list back (librdkafka will not free
 * it); returns it, NULL when the message had none. */
rd_kafka_headers_t *kprod_hdrs_reclaim(const rd_kafka_message_t *m);

/* Before rd_kafka_destroy of a producer that lent headers: purges what is still queued or in
 * flight and serves the purged messages' delivery reports (whose callback reclaims the headers),
 * for up to timeout_ms. Returns 0 when no message is left, so rd_kafka_destroy frees no lent
 * list; -1 otherwise (then the caller must not destroy the producer). */
int kprod_close_lent(rd_kafka_t *rk, int timeout_ms);

#endif
