/* changelog.h: state hand-off between members of a consumer group through the changelog topic
 * (CONTRACT §6, default `<group>.state`, `--changelog-topic`).
 *
 * When a daemon gives up an input partition at a revoke (a rebalance or its own shutdown), after
 * the flush and the synchronous checkpoint, it writes one hand-off: a state record for every
 * instrument of the partition, then a marker with the count of records, the next input offset
 * those states reflect and the model's sha256. Everything of input partition p goes to changelog
 * partition p % (changelog partitions), keyed by the symbol (records) or by "\0handoff/p"
 * (markers; so a compacted changelog keeps every instrument's and every partition's latest). The
 * member that is assigned p next reads that changelog partition and takes the latest complete
 * hand-off for p (all its records seen, same model) when it is ahead of its own state file's
 * offset for p: the instruments continue with the states and `n` they had, from the offset the
 * hand-off names, so a partition moving between members repeats no tick on a state and misses
 * none. A member that crashes (kill -9) writes no hand-off: its successor falls back to the last
 * hand-off or its own file (repeats) or to zero state (docs/RUN.md).
 *
 * Value layout (little-endian): "TCCL", u8 kind (1 state, 2 marker), 3 zero bytes, u64 hand-off
 * id, i32 input partition, then for a state: u64 n, i64 last_ts, f64 last_px, a state blob
 * (store_blob_encode: checked by its own hash); for a marker: u32 count, i64 next offset, the
 * model's sha256 as 64 lowercase hex characters; both end with the XXH64 (seeded with the XXH64 of
 * the message key) of every value byte before it, so a record whose key or any byte changed is
 * ignored. */
#ifndef DAEMON_CHANGELOG_H
#define DAEMON_CHANGELOG_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "store/store.h"

#define CL_HEAD 20 /* magic, kind, pad, id, partition */
#define CL_STATE_FIXED (CL_HEAD + 24)
#define CL_MARKER_LEN (CL_HEAD + 12 + 64 + 8)

/* Bytes of one state record's value for a state of the cell (NN_CELL_*), L layers of H. */
size_t cl_state_len(int cell, int L, int H);

/* Encodes one instrument's state record into buf (cl_state_len bytes); returns the length. The
 * state blob records the cell, so a reader of another cell never takes it. */
size_t cl_encode_state(unsigned char *buf, uint64_t id, int32_t part, const store_inst *in,
                       int cell, int L, int H);

#define CL_MARKER_KEY_MAX 24

/* Writes the key of partition part's markers ("\0handoff/PART", not NUL-terminated) into key
 * (CL_MARKER_KEY_MAX bytes); returns its length. */
size_t cl_marker_key(char *key, int32_t part);

/* Encodes a marker (CL_MARKER_LEN bytes) closing hand-off id of count records; its key is
 * cl_marker_key(part). */
size_t cl_encode_marker(unsigned char *buf, uint64_t id, int32_t part, uint32_t count,
                        int64_t next_offset, const char *model_sha256);

/* Collects, for the input partitions asked for, the latest complete hand-off of one model. */
typedef struct cl_scan cl_scan;

/* 0 and *out, or TC_ENOMEM. parts: the input partitions of interest; records whose state is not
 * of this cell, L and H do not decode (cl_scan_bad). */
int cl_scan_new(cl_scan **out, int cell, int L, int H, const char *model_sha256,
                const int32_t *parts, int nparts);

/* Feeds one changelog message in log order. Records of other partitions are skipped; a value
 * that does not decode is counted in *bad (and skipped). */
void cl_scan_add(cl_scan *s, const void *key, size_t klen, const void *val, size_t len);

/* The result for input partition p: the next offset the hand-off reflects (-1 when there is no
 * complete hand-off of this model for p) and its instruments (valid until cl_scan_free). */
int64_t cl_scan_result(const cl_scan *s, int32_t p, const store_inst **insts, size_t *n);

/* Values that did not decode, and complete hand-offs of another model (ignored). */
uint64_t cl_scan_bad(const cl_scan *s);
uint64_t cl_scan_other_model(const cl_scan *s);

void cl_scan_free(cl_scan *s); /* accepts NULL */

/* Reads, with consumer rk (no subscription; its assignment is replaced and cleared), every
 * changelog partition that holds one of parts, from its start to its end at the time of the call
 * (rk needs enable.partition.eof=true), into s. A topic that does not exist is empty. At most
 * timeout_ms in all. 0, or -1 with err
 * ("changelog tickcast.state: ..."). */
int cl_read(rd_kafka_t *rk, const char *topic, cl_scan *s, const int32_t *parts, int nparts,
            int timeout_ms, char *err, size_t errlen);

#endif
