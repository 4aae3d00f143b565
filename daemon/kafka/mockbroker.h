/* mockbroker.h: an embedded development Kafka broker (librdkafka's mock cluster, one broker on
 * 127.0.0.1) for `tickcast broker` and for `tickcast run` without --brokers. Not a real broker:
 * it keeps everything in memory, a bounded log per partition (older batches are dropped), and does
 * not implement offsets-for-times (ListOffsets by timestamp). */
#ifndef DAEMON_MOCKBROKER_H
#define DAEMON_MOCKBROKER_H

#include <stddef.h>

typedef struct mockbroker mockbroker; /* opaque */

/* Partitions of a topic that clients create by producing to or asking metadata for a topic the
 * broker does not have (librdkafka's mock default). */
#define MOCKBROKER_AUTO_PARTITIONS 4

/* Starts a mock cluster of one broker on 127.0.0.1 and creates the topics in `topics`
 * ("ticks:8,predictions:8"; a name without ":N" gets MOCKBROKER_AUTO_PARTITIONS; NULL or ""
 * creates none). Topic names follow Kafka's rule (1..249 bytes of [A-Za-z0-9._-]); partitions
 * 1..100000. The mock listens on a free port of its own; port > 0 adds a relay (tcprelay.h) on
 * 127.0.0.1:port to it, which becomes the bootstrap address: clients bootstrap there and then
 * connect to the port the mock advertises in its metadata. On success returns 0 and *out (stop it
 * with mockbroker_stop). On failure returns TC_EUSAGE (bad topics spec, bad port), TC_EBUSY (the
 * port is taken) or TC_EKAFKA, with err like "--topics ticks:0: partitions must be 1..100000,
 * found 0" or "--port 9092: cannot listen on 127.0.0.1:9092: Address already in use". Messages
 * of the broker's own client go through log.h. */
int mockbroker_start(mockbroker **out, int port, const char *topics, char *err, size_t errlen);

/* Delays every response of the broker by ms milliseconds (librdkafka's mock RTT). */
void mockbroker_set_rtt(mockbroker *mb, int ms);

/* Makes every partition of topic leader-less (a topic the broker does not have is created with
 * one partition): consumers and producers wait for a leader that never comes, so produced
 * messages fail once message.timeout.ms passes. Returns the number of partitions changed, or -1
 * with err like "--no-leader a b: expected a topic name of [A-Za-z0-9._-]". */
int mockbroker_set_no_leader(mockbroker *mb, const char *topic, char *err, size_t errlen);

/* Makes the broker answer the next requests of some Kafka APIs with an error, as a broker in
 * trouble would: spec is "API:ERROR[:COUNT],..." with API a Kafka request name (Produce, Fetch,
 * ListOffsets, Metadata, OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, Heartbeat,
 * LeaveGroup, SyncGroup, ApiVersions, InitProducerId; any case) or its key, ERROR librdkafka's
 * name of a Kafka error (NOT_COORDINATOR, CLUSTER_AUTHORIZATION_FAILED; _TRANSPORT drops the
 * connection; NO_ERROR lets a request through, to fail later ones) and COUNT how many requests of
 * that API, from whichever client, fail (default 1). With mb NULL it only checks spec. Returns the
 * number of requests that will fail (NO_ERROR items not counted), or TC_EUSAGE with err like
 * "--fail-requests Fetch:NOPE: unknown error 'NOPE' (...)". */
int mockbroker_fail_requests(mockbroker *mb, const char *spec, char *err, size_t errlen);

/* Drops the failures still queued for each API of list ("Fetch,Produce": names or keys as for
 * mockbroker_fail_requests), so that the next requests of those APIs are answered; librdkafka's
 * rd_kafka_mock_clear_request_errors. With mb NULL it only checks list. Returns the number of
 * APIs, or TC_EUSAGE with err like "clear-requests Nope: unknown request 'Nope' (...)". */
int mockbroker_clear_requests(mockbroker *mb, const char *list, char *err, size_t errlen);

/* The bootstrap list ("127.0.0.1:PORT", the relay's port when one was asked for), valid until
 * mockbroker_stop. */
const char *mockbroker_bootstraps(const mockbroker *mb);

/* Stops the broker and frees it; clients still connected see their connections drop. Accepts NULL.
 */
void mockbroker_stop(mockbroker *mb);

#endif
