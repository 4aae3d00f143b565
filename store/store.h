/* store.h: the state database: one SQLite file (WAL mode) holding the model binding, the next
 * input offset per partition and every instrument's (n, last tick, recurrent state), written in one
 * transaction per checkpoint. Not for deciding what or when to checkpoint (daemon/loop/ckpt.h
 * does), and it knows nothing of libuv, Kafka or the symbol table: plain values in, plain values
 * out.
 *
 * Threading: a store may be used from any thread, but from one thread at a time (the daemon
 * hands it to libuv's thread pool for a write and takes it back on completion). */
#ifndef STORE_STORE_H
#define STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "nn/base/cell.h"

#define STORE_SCHEMA_VERSION 2  /* PRAGMA user_version this code writes */
#define STORE_APP_ID 0x54434b43 /* PRAGMA application_id: "TCKC" */
#define STORE_SYM_MAX 32        /* longest symbol (CONTRACT §1) */
#define STORE_TOPIC_MAX 249     /* longest Kafka topic name */
#define STORE_FEATURES_MAX 127  /* longest feature spec string */
#define STORE_APP_MAX 63        /* longest writer name */
#define STORE_CLUSTER_MAX 127   /* longest Kafka cluster id kept */

/* State blob layout (all little-endian): magic "TCST", u16 version (2), u8 cell (NN_CELL_* of
 * nn/base/cell.h), u8 L, u32 H, u32 float count (= L * 2 * H for the LSTM, L * H for the GRU and
 * RNN), then the floats (LSTM: (L, 2, H) = h0, c0, h1, c1, ...; else (L, H) = h0, h1, ...), then
 * the XXH64 (seed 0) of every byte before it. Version 1 (written before the cell byte) has a u16
 * L where version 2 has the cell and L, and is read as an LSTM's state. Version 3 is version 2
 * with STORE_BLOB_TRACK f64 after the floats, before the hash: the instrument's online interval
 * tracker (daemon/pipeline/ivtrack.h: its z, and lo_px and hi_px of the interval emitted after
 * its last tick); it is written only for an instrument that has one. A daemon with the static
 * interval drops an instrument's tracker at its next tick, so until then an instrument restored
 * with one is still written as version 3. */
#define STORE_BLOB_HEADER 16
#define STORE_BLOB_TRAILER 8
#define STORE_BLOB_TRACK 3                          /* doubles of a version 3 blob's tracker */
#define STORE_BLOB_TRACK_LEN (8 * STORE_BLOB_TRACK) /* its bytes */

enum { STORE_SYNC_NORMAL = 1, STORE_SYNC_FULL = 2 };
enum { STORE_OPEN_CREATE = 0, STORE_OPEN_READONLY = 1 };

typedef struct store store; /* opaque */

/* The model binding and bookkeeping, one row. */
typedef struct store_meta {
  char model_sha256[65];                  /* lowercase hex, "" when no model is bound yet */
  char features[STORE_FEATURES_MAX + 1];  /* e.g. "ret,log_qty,log_dt,spread" */
  int cell;                               /* the states' cell (NN_CELL_*; schema 1: the LSTM) */
  int L;                                  /* layers */
  int H;                                  /* hidden size */
  int64_t ckpt_time_ns;                   /* wall clock of the last checkpoint, 0 when none */
  uint64_t ckpts;                         /* checkpoints written so far */
  char app[STORE_APP_MAX + 1];            /* writer, e.g. "tickcast 0.1.0" */
  char cluster_id[STORE_CLUSTER_MAX + 1]; /* Kafka cluster the offsets belong to, "" unbound */
  char input_topic[STORE_TOPIC_MAX + 1];  /* input topic they belong to, "" unbound */
} store_meta;

/* One instrument as stored. On write, sym and state point at the caller's memory; on load they
 * point into the store's buffers and are valid only during the callback. */
typedef struct store_inst {
  const char *sym;    /* not NUL-terminated on write; sym_len bytes */
  size_t sym_len;     /* 1..STORE_SYM_MAX */
  int32_t partition;  /* input partition, -1 for none */
  uint64_t n;         /* ticks applied to the state */
  int64_t last_ts;    /* ns of the last accepted tick */
  double last_px;     /* px of the last accepted tick */
  const float *state; /* (L, 2, H) h and c of every layer of an LSTM, (L, H) h of a GRU or RNN */
  int has_track;      /* 1: track holds the online interval's tracker (a version 3 blob) */
  double track[STORE_BLOB_TRACK]; /* z, lo_px, hi_px (see the blob layout); unset without it */
  int64_t next_offset; /* the state holds the instrument's ticks below this input offset (at
                        * least its partition's stored offset); -1: unknown (a schema 1 row,
                        * which is at its partition's stored offset) */
} store_inst;

/* The next offset to read on one input partition. */
typedef struct store_offset {
  char topic[STORE_TOPIC_MAX + 1]; /* NUL-terminated */
  int32_t partition;
  int64_t next_offset; /* first offset whose tick is NOT reflected in the states */
} store_offset;

/* One checkpoint, written in one transaction. Order inside: clear (when asked), deletes, then
 * the instruments in array order (a later row for the same sym wins), offsets, meta. */
typedef struct store_ckpt {
  const store_inst *inst; /* (ninst) instruments to insert or replace */
  size_t ninst;
  const char *const *del; /* (ndel) NUL-terminated symbols to delete */
  size_t ndel;
  const store_offset *off; /* (noff) offsets to insert or replace */
  size_t noff;
  const char *model_sha256; /* NULL, or a new model hash recorded in meta atomically */
  int clear_instruments;    /* 1: delete every stored instrument first (model reset) */
  int64_t time_ns;          /* wall clock recorded as the checkpoint time */
  int L;                    /* layers of every state */
  int H;                    /* hidden size of every state */
  int cell;                 /* cell of every state (NN_CELL_*); 0 is the LSTM */
} store_ckpt;

/* Parses "normal" or "full" (the --sync flag); returns STORE_SYNC_* or -1. */
int store_sync_parse(const char *s);

/* Opens (creating when absent, unless mode is STORE_OPEN_READONLY) the state database at path,
 * in WAL mode with PRAGMA synchronous per sync_mode, migrating an older schema forward in one
 * transaction. Refuses, with one line in err naming the file, what was found and what was
 * expected: a file that is not SQLite or is truncated/corrupt (PRAGMA quick_check), a SQLite file
 * of another application, a schema newer than STORE_SCHEMA_VERSION. Never resets or rewrites a
 * file it refuses. A new file (and SQLite's -wal and -shm, which take its mode) is created 0600.
 * Returns 0 and *out, or TC_ENOENT (read-only open of a missing file),
 * TC_EFORMAT (not ours / corrupt / too new), TC_EBUSY, TC_EIO, TC_ENOMEM, TC_ESTORE. */
int store_open(const char *path, int sync_mode, int mode, store **out, char *err, size_t errlen);

/* Closes the database; accepts NULL. */
void store_close(store *st);

/* Checks that the path a writer opened still names the open database (same device and inode), at
 * the start of every checkpoint: a state file deleted under a running daemon would otherwise take
 * checkpoints into the unlinked file until a restart found an empty one. When the path is gone
 * (the file deleted, with or without its -wal and -shm) the store heals it: a complete copy of the
 * open database (SQLite's backup) goes to a new file, created 0600 and renamed into place, the
 * connection and the one-writer lock move to it, *healed = 1 and err says what happened; the next
 * checkpoint then writes there. When the path names another file (replaced by a move), the store
 * does not touch it: TC_EIO with err saying so. Returns 0 (with *healed 0 or 1), or TC_EIO /
 * TC_ESTORE / TC_ENOMEM with err. A read-only store is never checked. Same threading as writes. */
int store_path_check(store *st, int *healed, char *err, size_t errlen);

/* How many times store_path_check healed the file, and the message of the last time into msg
 * ("" when none). Safe from another thread while a write is in flight (the daemon's loop reads it
 * while the pool writes). */
uint64_t store_heals(store *st);
void store_heal_message(store *st, char *msg, size_t len);

/* Milliseconds a write waits for another connection's lock before giving up with TC_EBUSY
 * (default 200). */
void store_set_busy_timeout(store *st, int ms);

/* The path it was opened with. */
const char *store_path(const store *st);

/* The underlying SQLite connection, for tests (fault injection such as PRAGMA max_page_count)
 * and tools. Do not use it while a checkpoint write is in flight. */
struct sqlite3 *store_handle(store *st);

/* Reads the meta row. Returns 0, or TC_ENOENT when it was never written (fresh file). */
int store_meta_get(store *st, store_meta *m, char *err, size_t errlen);

/* Writes the meta row (every field but the binding; ckpt_time_ns and ckpts as given). TC_EINVAL
 * for a cell not of nn/base/cell.h. */
int store_meta_set(store *st, const store_meta *m, char *err, size_t errlen);

/* Binds the file to a Kafka cluster id and input topic (meta; the row must exist). */
int store_binding_set(store *st, const char *cluster_id, const char *input_topic, char *err,
                      size_t errlen);

/* Writes one checkpoint in one transaction (see store_ckpt). Every state has
 * store_blob_floats(c->cell, c->L, c->H) floats. On any failure nothing of it is written (rolled
 * back) and the return is TC_EBUSY (locked by another connection: retry later), TC_EIO (disk full,
 * read-only file, I/O error), TC_EINVAL (a bad row) or TC_ESTORE; err names the cause. */
int store_checkpoint_write(store *st, const store_ckpt *c, char *err, size_t errlen);

/* Calls fn for every stored instrument (in storage order), after checking each state blob: magic,
 * version, cell, L and H equal to the arguments, length, checksum. A state of another cell stops
 * the load with TC_EMODEL, any other bad blob with TC_EFORMAT, and err names the symbol and the
 * check. fn returning non-zero stops the load and that value is returned. */
typedef int (*store_inst_fn)(void *ud, const store_inst *in);
int store_instruments_load(store *st, int cell, int L, int H, store_inst_fn fn, void *ud, char *err,
                           size_t errlen);

/* store_instruments_load for the instruments of one partition only (an index lookup). */
int store_instruments_load_partition(store *st, int cell, int L, int H, int32_t partition,
                                     store_inst_fn fn, void *ud, char *err, size_t errlen);

/* Calls fn for the k instruments with the largest n (ties by sym), without checking or passing
 * the state (in->state is NULL). For inspection. */
int store_instruments_top(store *st, int k, store_inst_fn fn, void *ud, char *err, size_t errlen);

/* Number of stored instruments. */
int store_instruments_count(store *st, uint64_t *count, char *err, size_t errlen);

/* Loads every stored offset into a malloc'd array (*out, free() it; NULL when *n == 0), ordered
 * by topic and partition. */
int store_offsets_load(store *st, store_offset **out, size_t *n, char *err, size_t errlen);

/* Deletes the instruments of one partition and its stored offset of topic, in one transaction (a
 * partition whose stored state describes another stream, e.g. a recreated topic). */
int store_partition_reset(store *st, const char *topic, int32_t partition, char *err,
                          size_t errlen);

/* Deletes every instrument and offset in one transaction (--reset-state); meta is kept. */
int store_reset(store *st, char *err, size_t errlen);

/* Floats of one state of the cell, L layers of H (nn_state_floats of such a model). */
size_t store_blob_floats(int cell, int L, int H);

/* Bytes of a version 2 state blob: STORE_BLOB_HEADER + 4 * store_blob_floats +
 * STORE_BLOB_TRAILER; a version 3 blob has STORE_BLOB_TRACK_LEN more. */
size_t store_blob_len(int cell, int L, int H);

/* Encodes a state blob into buf; returns its length. state (store_blob_floats); track NULL: a
 * version 2 blob (store_blob_len bytes), else (STORE_BLOB_TRACK) the tracker: version 3. */
size_t store_blob_encode(unsigned char *buf, int cell, int L, int H, const float *state,
                         const double *track);

/* Checks and decodes a blob into state (store_blob_floats), and a version 3 blob's tracker into
 * track (STORE_BLOB_TRACK) with *has_track = 1 (versions 1 and 2: *has_track = 0, track left
 * alone). 0, TC_EMODEL when it holds a state of another cell than `cell` (err names both), or
 * TC_EFORMAT with err saying which other check failed (magic, version, shape, length, checksum,
 * a tracker that is not finite or has a negative z). */
int store_blob_decode(const unsigned char *buf, size_t len, int cell, int L, int H, float *state,
                      double *track, int *has_track, char *err, size_t errlen);

/* The cell a blob says it holds (a version 1 blob: the LSTM), or -1 when buf is no blob of a
 * known version and cell; the rest is not checked. */
int store_blob_cell(const unsigned char *buf, size_t len);

#endif
