/* changelog.h: the state changelog topic (CONTRACT §6, default `<group>.state`,
 * `--changelog-topic`): the record format, the restore accumulator that picks, per input
 * partition, where to resume and, per instrument, the freshest state, and the two Kafka sides
 * (a reader that scans changelog partitions, a writer that puts one checkpoint in and waits for
 * the broker's acknowledgements). Not for when to checkpoint (daemon/loop/ckpt_sched.c) nor for
 * the local state file (store/).
 *
 * Every record is a fact: "the state of instrument A after every tick of A with offset < o_A in
 * input partition p, under model M". Processing is deterministic, so a fact is true whoever wrote
 * it; it is superseded only by a fact with a larger o_A. A checkpoint of partition p taken at
 * input offset O (last processed + 1) writes a record for every instrument of p that changed since
 * the writer's previous checkpoint, with o_A = max(O, the instrument's restored skip offset), then,
 * once all of them are acknowledged, a marker "checkpoint of p complete at O". A marker asserts:
 * every instrument of p with an accepted tick below O has a record whose o_A is past that tick.
 * So a restore resumes p at the largest marker offset R of its model and, per instrument, takes
 * the record with the largest o_A and skips the instrument's ticks below it. This stays true when
 * the writer died between records and marker (some records are ahead of R: their ticks are
 * skipped), and after compaction (the latest value per key survives: the latest marker of each
 * partition, the latest record of each instrument; with one writer per partition log order is
 * o_A order). A restore uses the latest marker in log order, as compaction keeps it.
 *
 * Retention instead of compaction (the embedded broker keeps about 5 MiB per partition) drops old
 * records that no later record supersedes. Each marker therefore names its base: the changelog
 * offset from which the records it relies on start. A writer rewrites every instrument of a
 * partition (a full checkpoint, which moves the base up) once the messages written since the base
 * exceed twice the partition's instruments; a restore uses a marker only when its base is still
 * retained (base >= the changelog partition's low watermark).
 *
 * Input partition p goes to changelog partition p % (changelog partitions); every record also
 * carries p, so partitions may share a changelog partition.
 *
 * A model is its file's sha256 and its cell (nn/base/cell.h): both are in every record and
 * marker, and a restore takes only those of its own model (and of the earlier models whose states
 * its model carries on: cl_restore_accept_earlier), so a state of one cell is never restored into
 * a model of another (the state blob records the cell too, and is checked).
 *
 * Value layout (little-endian), CL_HEAD bytes of header: "TCCL", u8 kind (3 state, 4 marker;
 * 1 and 2 were the hand-off records of an earlier version: ignored and counted), u8 cell of the
 * model (NN_CELL_*), 2 zero bytes, i32 input partition, i64 offset (state: o_A; marker: O), the
 * model's sha256 (32 raw bytes); then a state: u64 n, i64 last_ts, f64 last_px, a state blob
 * (store_blob_encode: version 2 with the cell, or version 3 with the instrument's interval
 * tracker too; checked by its own hash); a marker: i64 base, u64
 * messages since base, u32 instruments of the partition, u32 records of this checkpoint, i64 wall
 * clock (ns). Both end with the XXH64 (seeded with the XXH64 of the message key) of every value
 * byte before it, so a record whose key or any byte changed is ignored. Keys: the symbol (states),
 * "\0ckpt/<p>" (markers). */
#ifndef DAEMON_CHANGELOG_H
#define DAEMON_CHANGELOG_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "ingest/symtab.h"
#include "store/store.h"

#define CL_HEAD 52
#define CL_STATE_FIXED (CL_HEAD + 24)
#define CL_MARKER_LEN (CL_HEAD + 36 + 8)
#define CL_MARKER_KEY_MAX 24
#define CL_KIND_STATE 3
#define CL_KIND_MARKER 4

/* Bytes of one state record's value for a state of the cell (NN_CELL_*), L layers of H, without
 * an interval tracker; one with it (a version 3 blob) has STORE_BLOB_TRACK_LEN more. */
size_t cl_state_len(int cell, int L, int H);

/* Encodes the record "in (of input partition part) after its ticks below next, under model sha
 * of the cell" (a state of L layers of H, and in's tracker when it has one) into buf
 * (cl_state_len bytes, STORE_BLOB_TRACK_LEN more with a tracker); returns the length. */
size_t cl_encode_state(unsigned char *buf, int32_t part, int64_t next, const unsigned char sha[32],
                       const store_inst *in, int cell, int L, int H);

/* Writes the key of partition part's markers ("\0ckpt/PART", not NUL-terminated) into key
 * (CL_MARKER_KEY_MAX bytes); returns its length. */
size_t cl_marker_key(char *key, int32_t part);

/* One marker's content. */
typedef struct cl_marker {
  int32_t part;         /* input partition */
  int64_t next;         /* O: resume offset; every instrument with a tick below has a record */
  int64_t base;         /* changelog offset from which the records it relies on start */
  uint64_t since_base;  /* changelog messages of this partition written since base, this one too */
  uint32_t instruments; /* live instruments of the partition at the checkpoint */
  uint32_t records;     /* records of the partition in this checkpoint */
  int64_t time_ns;      /* wall clock of the checkpoint */
  int64_t at;           /* restore only: the marker's own changelog offset */
} cl_marker;

/* The changelog offset below which a marker relies on no record: its base, or the marker itself
 * when it relies on none (base INT64_MAX: the partition had no instrument). */
static inline int64_t cl_marker_floor(const cl_marker *m) {
  return m->base == INT64_MAX ? m->at : m->base;
}

/* Encodes a marker (CL_MARKER_LEN bytes) of model sha of the cell; its key is
 * cl_marker_key(m->part). */
size_t cl_encode_marker(unsigned char *buf, const cl_marker *m, const unsigned char sha[32],
                        int cell);

/* ---- restore: the freshest state per instrument and the resume offset per partition ---- */

typedef struct cl_restore cl_restore;

/* Counters of what a restore saw. */
typedef struct cl_restore_stats {
  uint64_t messages;    /* changelog messages fed */
  uint64_t bytes;       /* their value bytes */
  uint64_t records;     /* state records of the partitions asked for, of this model */
  uint64_t markers;     /* markers of those partitions, of this model */
  uint64_t other_model; /* records and markers of another model or cell (count as absent) */
  uint64_t earlier;     /* of the records and markers taken, those of an earlier model */
  uint64_t old_format;  /* hand-off records of the earlier format (ignored) */
  uint64_t bad;         /* values that do not decode (damaged, foreign): ignored */
} cl_restore_stats;

/* A restore of input partitions parts[0..nparts) for model sha of the cell (states of L layers of
 * H, sized by the cell). 0 or TC_ENOMEM. */
int cl_restore_new(cl_restore **out, int cell, int L, int H, const unsigned char sha[32],
                   const int32_t *parts, int nparts);
void cl_restore_free(cl_restore *r); /* accepts NULL */

/* Earlier models a restore also takes (cl_restore_accept_earlier), at most. */
#define CL_EARLIER_MAX 8

/* The restore also takes the records and markers of model sha, of the same cell and shape: an
 * earlier model that `--on-model-change keep` swapped out, whose states the running model carries
 * on. They count as the running model's, except that an instrument whose freshest fact is of an
 * earlier model restarts its interval tracker (as every instrument does at a swap) and is written
 * again (dirty 1, so that the changelog then holds it under the running model); at an equal
 * offset the running model's fact wins. 0, or TC_EINVAL when CL_EARLIER_MAX are taken already. */
int cl_restore_accept_earlier(cl_restore *r, const unsigned char sha[32]);

/* Feeds one changelog message (changelog offset cl_off). Messages of other partitions are
 * skipped; values that do not decode are counted and skipped. */
void cl_restore_add(cl_restore *r, int64_t cl_off, const void *key, size_t klen, const void *val,
                    size_t len);

/* Feeds the state file's view of partition p: it resumes at next (-1: the file has no offset for
 * p). Then cl_restore_add_file_inst for each of its rows, with the row's own offset o_A; earlier:
 * the file's rows are of an earlier model, as a changelog fact of one accepted by
 * cl_restore_accept_earlier. */
void cl_restore_file_offset(cl_restore *r, int32_t p, int64_t next);
int cl_restore_add_file_inst(cl_restore *r, const store_inst *in, int64_t next, int earlier);

/* Decides partition p, knowing the low watermark of its changelog partition (cl_low: a marker
 * whose base is below it lost records to retention and is not used; -1 when unknown). Returns the
 * offset to resume at: the larger of the file's offset and the largest usable marker's, or -1
 * when neither exists. *from_changelog is 1 when the changelog's marker decided (it was ahead of
 * the file). *m gets that marker (m->part = -1 when none is usable). */
int64_t cl_restore_resume(cl_restore *r, int32_t p, int64_t cl_low, int *from_changelog,
                          cl_marker *m);

/* After cl_restore_resume(p): the instruments of p whose freshest record lies before the floor
 * (cl_marker_floor) of the marker used. A full checkpoint at the base rewrote every instrument of
 * p, so such a record belongs to instruments the writer had dropped: states of a deleted and
 * recreated input topic, whose offsets mean nothing now. When nonzero, call cl_restore_refloor(p,
 * the marker's floor) and feed the changelog again. */
uint32_t cl_restore_stale(const cl_restore *r, int32_t p);

/* Drops partition p's instruments and marker and ignores its records below changelog offset floor
 * from now on (the file's rows are offered again by the caller). */
void cl_restore_refloor(cl_restore *r, int32_t p, int64_t floor);

/* Finishes: the table of every restored instrument (skip_below = its o_A, the offset its state is
 * at; dirty = 1 when the changelog lacks that state under the running model (it may hold it under
 * an earlier one), 2 when only the state file lacks it, so the next checkpoint writes it where it
 * is missing, 0 when both hold it). Valid until cl_restore_free. Instruments of partition p are
 * restored only after cl_restore_resume(p). */
symtab *cl_restore_table(cl_restore *r);

/* After cl_restore_table: 1 when the state of the table's slot s came from the changelog, which the
 * state file lacks (as dirty 2, but also for a state of an earlier model, which is dirty 1). */
int cl_restore_from_changelog(cl_restore *r, uint32_t s);

/* Drops partition p's instruments from the table (a reset). */
void cl_restore_drop(cl_restore *r, int32_t p);

const cl_restore_stats *cl_restore_get_stats(const cl_restore *r);

/* Approximate bytes the restore holds (table, states, side arrays). */
size_t cl_restore_mem(const cl_restore *r);

/* ---- Kafka: reading ---- */

/* The reader consumer's settings (key, value pairs for kconf_build's defaults or
 * rd_kafka_conf_set), besides its group.id: the end of a partition as an event, and a bounded
 * prefetch. A restore applies each record as it reads it (the table is the map: per instrument
 * only the freshest state), so what it holds grows with the instruments; librdkafka's prefetch
 * queue, 64 MiB by default, grows with the changelog when the broker sends faster than the
 * records are applied (12,000 instruments, 60,000 records: 10-20 MB more at the peak). Capped at
 * 1 MiB of values in the queue and fetch responses of 1 MiB (256 KiB per partition). */
#define CL_READER_CONF                                                                             \
  "enable.partition.eof", "true", "queued.max.messages.kbytes", "1024", "fetch.max.bytes",         \
      "1048576", "max.partition.fetch.bytes", "262144"

/* Reads, with consumer rk (no subscription; its assignment is replaced and cleared; made with
 * CL_READER_CONF), every changelog partition that holds one of parts[0..nparts), from its low
 * watermark to its high watermark at the time of the call, into r. lows (ncl entries, or NULL)
 * get each changelog partition's low watermark (-1 for partitions not read); *ncl the
 * changelog's partition count (0: the topic does not exist, which reads as empty).
 * Each request waits at most timeout_ms, and the read gives up once no message came for
 * timeout_ms after them (a large changelog is read as long as it takes), and no later (within a
 * slice of cl_watermarks) than *stop (if stop is not NULL; read atomically, set by another thread)
 * is non-zero. 0, or -1 with err ("changelog tickcast.state: ..."). */
int cl_read(rd_kafka_t *rk, const char *topic, cl_restore *r, const int32_t *parts, int nparts,
            int64_t *lows, int lows_cap, int *ncl, int timeout_ms, const int *stop, char *err,
            size_t errlen);

/* Whether the changelog partitions that hold input partitions parts[0..n) (each part % the
 * changelog's partition count) hold records now (the high watermark above the low one), asked of
 * rk's brokers (one metadata request, then ListOffsets once per changelog partition; they work
 * when fetches fail): held[i] 1 it does, 0 it does not or the topic does not exist, -1 not known.
 * 0, or -1 with err when a request failed (no answer within timeout_ms, or *stop was set: stop
 * may be NULL, as in cl_watermarks); the partitions not asked after it are then -1. */
int cl_holds_records(rd_kafka_t *rk, const char *topic, const int32_t *parts, int n, int *held,
                     int timeout_ms, const int *stop, char *err, size_t errlen);

/* The low and high watermarks of topic/part (ListOffsets, earliest and latest; with lo NULL only
 * the latest) within timeout_ms, which a stop cuts short: with stop (read atomically; set by
 * another thread), the request is asked again when a slice of the wait ends without its answer (a
 * second, or twice what the last answered request took, each next slice twice the one before, up
 * to 4 s) and RD_KAFKA_RESP_ERR__DESTROY returned once *stop is set; without, one request waits
 * it all. */
rd_kafka_resp_err_t cl_watermarks(rd_kafka_t *rk, const char *topic, int32_t part, int64_t *lo,
                                  int64_t *hi, int timeout_ms, const int *stop);

/* rd_kafka_committed of parts (a group consumer's) in the same way as cl_watermarks. */
rd_kafka_resp_err_t cl_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                                 int timeout_ms, const int *stop);

/* ---- Kafka: writing one checkpoint ---- */

typedef struct cl_writer cl_writer;

/* The changelog clients' error callback (set on the writer by cl_writer_new, on the reader by its
 * creator): logs like the daemon's own clients (transport errors at debug, librdkafka's lines say
 * them already; others as warnings, a fatal one as an error) instead of librdkafka's default,
 * which logs every error, a broker's restart included, at level ERROR. Only logs: it runs on
 * whichever thread polls the client; a fatal error of the writer is acted on through
 * cl_writer_fatal. */
void cl_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque);

/* A writer for topic with a producer of its own made from conf (owned from here on, also on
 * failure), with what a changelog needs set on it: enable.idempotence=true, acks=all and the
 * writer's delivery report callback. 0 or TC_ENOMEM / TC_EKAFKA with err. */
int cl_writer_new(cl_writer **out, rd_kafka_conf_t *conf, const char *topic, char *err,
                  size_t errlen);
void cl_writer_destroy(cl_writer *w); /* accepts NULL; drops what is still in flight */

/* From now on no wait of a put (the one under way on another thread included) goes past
 * mono_ms_by (CLOCK_MONOTONIC, ms): a shutdown bounds its checkpoint writes so. 0 lifts it.
 * Accepts NULL; thread-safe. */
void cl_writer_cut(cl_writer *w, int64_t mono_ms_by);

/* The writer's producer (for metadata and the Admin API). */
rd_kafka_t *cl_writer_handle(cl_writer *w);

/* 1 when the writer's producer failed for good (a fatal error of the idempotent producer, e.g. the
 * broker lost its sequence state): every later put fails, and only a new producer writes again.
 * reason (may be NULL) gets librdkafka's text. Any thread. */
int cl_writer_fatal(cl_writer *w, char *reason, size_t len);

/* The changelog's partition count (metadata, at most timeout_ms), 0 when the topic does not exist,
 * -1 with err when metadata fails. */
int cl_writer_partitions(cl_writer *w, int timeout_ms, char *err, size_t errlen);

/* Creates the topic with nparts partitions and cleanup.policy=compact (Admin API); 0 when it was
 * created or exists, TC_EKAFKA with err when the broker refused or does not support it. */
int cl_writer_create(cl_writer *w, int nparts, int timeout_ms, char *err, size_t errlen);

/* One partition of a checkpoint: in (set by the caller), out (set by cl_writer_put). */
typedef struct cl_part {
  int32_t part;         /* in: input partition */
  int64_t next;         /* in: O, the checkpoint's offset for it */
  uint32_t instruments; /* in: its live instruments */
  uint8_t full;         /* in: every instrument of it is among the rows (a full checkpoint) */
  int64_t base;         /* in: base so far (-1: none yet, then the checkpoint must be full);
                           out: the marker's base */
  uint64_t since_base;  /* in: messages since base so far; out: including this checkpoint's */
  uint32_t records;     /* out: records of it in this checkpoint */
} cl_part;

/* Writes one checkpoint of model sha of the cell (states of L layers of H): the rows in[0..n) (each
 * at its own o_A, in[i].next_offset; rows with send[i] == 0 (send may be NULL: all), a negative
 * offset, or a partition not in parts are not written) to the changelog, waits until the broker
 * acknowledged all of them, then one marker per partition of parts, and waits again. timeout_ms
 * bounds each wait, and so does cl_writer_cut. 0 when every message was acknowledged; TC_EKAFKA
 * with err when one failed or the wait ran out (then the checkpoint must be treated as not
 * written: markers are sent only after every record is acknowledged, so no marker can claim a
 * record that is missing). Not thread-safe: one call at a time (the caller's checkpoints are
 * serialized). */
int cl_writer_put(cl_writer *w, const unsigned char sha[32], int cell, int L, int H,
                  const store_inst *in, const uint8_t *send, size_t n, cl_part *parts,
                  size_t nparts, int64_t time_ns, int timeout_ms, char *err, size_t errlen);

/* A full checkpoint is due for a partition once the messages since its base exceed this. */
static inline int cl_full_due(uint64_t since_base, uint32_t instruments) {
  return since_base > 2 * (uint64_t)instruments + 64;
}

#endif
