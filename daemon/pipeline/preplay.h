/* preplay.h: the replay on several threads (`replay --threads N`, the Kafka range replay and its
 * --threads): input records (lines of a tick file, or Kafka messages) in chunks, decoded on every
 * thread, each instrument's ticks stepped in its shard (a set of instruments with their states,
 * which any worker may step), predictions encoded there, and written in input order by the
 * caller's thread, byte for byte what the one-thread replay writes.
 * Not for reading Kafka (kreplay.c adds its messages) nor for opening files or printing summaries.
 *
 * How: the caller's thread reads records into a ring of chunk slots (preplay_fill_lines, or
 * preplay_add per message) and submits them. Workers claim parts of a submitted chunk and route
 * them (any worker, any part: the work balances itself): each record goes to the shard of its
 * instrument, which is fixed for the whole run, chosen by a hash of the symbol when first seen;
 * the symbol is found without decoding the record where that is exact (tick_*_sym_hint).
 * Once a chunk is routed, each shard is ready when it is done with the chunk before; a free worker
 * takes a ready shard (the first it stepped last time, else the one ready longest: a shard's
 * states stay in one core's cache), decodes its records, runs them through its engine with the
 * shard's book swapped in (engine_swap_book) and encodes the predictions into the shard's log in
 * the chunk. Shards belong to no worker (by default there are twice as many), so a worker that a
 * busy core slows steps fewer of them (the work balances itself here too). The caller's thread, in
 * preplay_acquire and preplay_finish, walks finished chunks in order: it notes rejected records
 * in the tally in the order the one-thread replay notes them and hands each prediction to emit.
 * It is worker 0 too: while it waits for a chunk to finish it routes and steps like the others,
 * which run on threads of their own (1 .. threads-1), so `threads` threads do the work.
 * Same bits: an instrument's state, order check, n and features see its ticks in input order
 * wherever it lives, and the engines step in batches that give an instrument the same bits
 * whichever others share its step (engine_init_exact), so the output does not depend on the
 * number of threads, the number of shards, the chunk size or which worker steps a shard.
 * Memory: a ring of threads + 3 (at most 32) chunks of `chunk` records (and at most 1 MiB of
 * text, plus one record) each, whatever the input's length. */
#ifndef DAEMON_PREPLAY_H
#define DAEMON_PREPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/pipeline/engine.h"
#include "ingest/reject.h"
#include "ingest/tick.h"
#include "ingest/tickfile.h"
#include "nn/model.h"

#define PREPLAY_MAX_THREADS 1024 /* workers a pipeline may have */
#define PREPLAY_MAX_SHARDS 4096  /* shards of instruments a pipeline may have */

/* One input record, as the reader gave it. */
typedef struct preplay_rec {
  uint32_t off;  /* the text: the chunk's bytes [off, off + len) */
  uint32_t len;  /* (a line without its "\n" or "\r\n"; a message's value) */
  uint32_t koff; /* a Kafka message's key: bytes [koff, koff + klen) */
  int32_t klen;  /* -1: no key (and always for lines) */
  int32_t part;  /* Kafka partition, or -1 (REJECT_LINE) for a line of a file */
  int32_t null;  /* 1: a Kafka message without a value */
  int64_t pos;   /* line number (from 1) or offset */
} preplay_rec;

/* Where record r (its bytes in `bytes`) goes, before it is decoded: -1 when it holds no tick (a
 * blank line: the decoder would return 0), 1 with *sym, *len set to bytes that are its symbol
 * whenever it decodes to an accepted tick (tick_csv_sym_hint, tick_json_sym_hint), 0 when that
 * cannot be told without decoding (the pipeline decodes it once more to know). Called on any
 * worker at once: it must be thread-safe. */
typedef int (*preplay_route_fn)(void *ud, const char *bytes, const preplay_rec *r, const char **sym,
                                size_t *len);

/* Decodes record r (its bytes in `bytes`) into t: returns 0 when it holds no tick (a blank line),
 * else 1 with *reason TICK_OK or a reject reason and err filled as the one-thread replay fills it
 * (errlen may be 0). Called on any thread at once, with worker: 0 .. threads-1 for the one
 * decode of each record whose side notes count (a worker decoding the records of a shard it
 * steps: keep state per worker, and do not rely on the order: a worker sees the shards' records
 * of different chunks in no set order); threads .. 2 threads-1 when a worker decodes a record
 * only to route it, and
 * 2 threads on the caller's thread when a rejected record's message is printed: the side notes
 * of these must not count. */
typedef int (*preplay_decode_fn)(void *ud, int worker, const char *bytes, const preplay_rec *r,
                                 tick *t, int *reason, char *err, size_t errlen);

/* Takes one prediction, in input order, on the caller's thread: the record, its sym (with
 * cfg.keep_sym, else NULL) and its encoded text (CSV row or JSON object, ending in '\n').
 * Returns 0, or non-zero to stop the replay (after printing why). */
typedef int (*preplay_emit_fn)(void *ud, const preplay_rec *r, const char *sym, size_t symlen,
                               const char *text, size_t len);

/* Called on the caller's thread after each chunk's predictions were emitted. Returns 0, or
 * non-zero to stop the replay (after printing why). */
typedef int (*preplay_chunk_fn)(void *ud);

typedef struct preplay_cfg {
  const nn_model *m;           /* the model (not owned; outlives the pipeline) */
  double interval;             /* coverage of lo_px..hi_px (the scale head's); 0: 0.9 */
  double adapt;                /* the online interval's step (engine_set_adapt); 0: off */
  int threads;                 /* workers, the caller's thread among them, 1 ..
                                  PREPLAY_MAX_THREADS */
  int shards;                  /* shards of instruments (0: 2 per worker; at most
                                  PREPLAY_MAX_SHARDS); any number gives the same output */
  int chunk;                   /* records per chunk (0: a default) */
  int jsonl;                   /* encode JSON Lines (with src), else CSV rows */
  int keep_sym;                /* pass each prediction's sym to emit */
  const char *src;             /* file name ("stdin") or topic: JSONL src and reject locations */
  size_t src_max;              /* bytes of src that go into a JSONL src (300 files, 200 topics) */
  reject_tally *rej;           /* where rejected records are noted (caller-owned) */
  preplay_route_fn route;      /* required */
  preplay_decode_fn decode;    /* required */
  preplay_emit_fn emit;        /* required */
  preplay_chunk_fn chunk_done; /* may be NULL */
  int stats;                   /* measure each stage's CPU time for preplay_get_stats */
  void *ud;                    /* the callbacks' first argument */
} preplay_cfg;

typedef struct preplay preplay;
typedef struct preplay_chunk preplay_chunk;

/* Starts workers 1 .. threads-1, each of which makes its own engine of m on its thread (meanwhile
 * the caller reads, and makes worker 0's when it first helps; a worker out of memory fails the
 * replay: preplay_acquire, preplay_finish). 0, TC_EINVAL or TC_ENOMEM. */
int preplay_new(preplay **out, const preplay_cfg *cfg);

/* A free chunk slot to fill; first emits every chunk that has finished, and works (as worker 0)
 * or waits until the oldest finishes when no slot is free. NULL when the replay failed (an emit,
 * chunk_done or a worker's memory): then preplay_finish returns why. */
preplay_chunk *preplay_acquire(preplay *p);

/* Fills c with the next lines of tf (up to the chunk size), numbering them on from tf's last
 * line. Returns 1 when there is more, 0 at the end of the file (c holds the last lines, maybe
 * none), TC_EIO or TC_ENOMEM. Uses only tickfile_read_raw on tf. */
int preplay_fill_lines(preplay *p, preplay_chunk *c, tickfile *tf);

/* Adds one Kafka message to c: its value (NULL: none), key (NULL: none), partition and offset.
 * Returns the records c still has room for after it (0: submit it; also once c holds 1 MiB of
 * text), or TC_ENOMEM (also for a message over 64 MiB). */
int preplay_add(preplay_chunk *c, const char *val, size_t len, const char *key, size_t klen,
                int32_t part, int64_t off);

/* Records c holds. */
int preplay_count(const preplay_chunk *c);

/* Hands c (filled, possibly empty) to the workers. */
void preplay_submit(preplay *p, preplay_chunk *c);

/* No more input: works with the workers until every chunk is stepped, emits the rest and notes the
 * last rejects. Returns 0, TC_ENOMEM (a worker ran out of memory; nothing was printed), or TC_EIO
 * when emit or chunk_done stopped it. */
int preplay_finish(preplay *p);

/* Counts for the summary: records read (non-blank), ticks accepted and instruments, over all
 * shards; the last two are exact after preplay_finish. */
uint64_t preplay_read(const preplay *p);
uint64_t preplay_accepted(const preplay *p);
uint32_t preplay_instruments(const preplay *p);

/* Where the CPU time went, for benchmarks (complete after preplay_finish, with cfg.stats; else
 * only wait_us), in microseconds. */
typedef struct preplay_stats {
  double read_us;   /* the caller's thread in preplay_fill_lines: reading, splitting lines */
  double write_us;  /* the caller's thread walking finished chunks: rejects, emit, chunk_done */
  double route_us;  /* the workers routing records to their instruments' shards */
  double step_us;   /* the workers decoding, stepping and encoding the shards' records */
  double worker_us; /* the workers' threads in all (the rest: hand-overs; the caller's thread,
                       worker 0, counts only making its engine, routing and stepping) */
  double wait_us;   /* the workers' wall time waiting for work (a worker with nothing to do;
                       the caller's thread: nothing to do and no chunk to write) */
} preplay_stats;
void preplay_get_stats(const preplay *p, preplay_stats *st);

/* Stops the workers (without waiting for the input to end) and frees p. Accepts NULL. */
void preplay_destroy(preplay *p);

#endif
