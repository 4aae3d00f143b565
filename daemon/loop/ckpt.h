/* ckpt.h: checkpoints of the daemon's state: the loop thread copies the changed instruments and
 * the input offsets into a reusable snapshot, libuv's thread pool writes it to the state
 * database (store/store.h), and a completion callback on the loop thread reports the result.
 * Also the start-up side: binding the database to the model and restoring it into a symtab.
 * Not for deciding when to checkpoint (ckpt_sched.c: the daemon's timer, revoke and shutdown
 * paths).
 *
 * THE RULE: a checkpoint covers only ticks whose predictions the broker acknowledged.
 *
 *   A checkpoint stores, per input partition, the next offset to read, and every instrument's
 *   state; after a crash the daemon restarts from exactly there. If it stored a state that
 *   includes tick t while t's prediction was still in the producer queue, a crash would lose
 *   that prediction forever (the tick is never re-read). So the offsets passed to ckpt_take and
 *   the states in the symtab must reflect the same moment, and every message produced for the
 *   ticks before that moment (predictions AND dead letters) must be acknowledged by the broker.
 *
 *   Design chosen: take the snapshot at any chunk boundary, commit it when its outputs are
 *   acknowledged. At the checkpoint timer the daemon calls ckpt_take with next_offset = last
 *   processed offset + 1 of every partition it processed, so the copied states and the offsets
 *   reflect the same moment, and remembers, per partition, how many outputs it had produced by
 *   then. Draining goes on. As delivery reports arrive it checks whether every output up to
 *   that moment is acknowledged; when they all are, it calls ckpt_submit. A delivery that
 *   failed for good, or a revoke before the acknowledgements, makes the snapshot uncommittable:
 *   ckpt_untake gives it up without losing what it copied (the instruments become dirty again).
 *   If acknowledgements are slow the next interval finds the snapshot still pending and counts
 *   a skipped checkpoint; predicting never waits, for the broker or for disk.
 *
 *   History: the first version stopped draining at the timer until the producer queue was
 *   empty and took the snapshot then. That stall (6-100 ms per checkpoint on the embedded
 *   broker at 450k ticks/s) cost about 5 % of the throughput of a backlog catch-up, and a
 *   latency spike for the ticks behind it. Checkpointing "as of the acked offsets" instead would
 *   need each instrument's state as of every in-flight tick; copying at the timer and committing
 *   later needs none of that. A crash may repeat predictions produced after the last checkpoint
 *   (same src, same values), never lose one.
 *
 * Failures (disk full, read-only file, SQLITE_BUSY, I/O error): the write fails as a whole, the
 * callback reports it, and the failed snapshot stays in the ckpt and is merged into the next one
 * (rows of instruments that changed again are replaced by fresh copies; offsets by newer ones),
 * so nothing is lost and the next successful checkpoint is complete. Stats (ckpt_stats) give the
 * checkpoint age and failure counts for the stats topic and /metrics.
 *
 * Wiring in the daemon (each a single call):
 *   start:     store_open(path, sync, STORE_OPEN_CREATE, &st, ...);
 *              ckpt_bind_model(st, model, reset_state, ...);       TC_EMODEL -> exit 2
 *              ckpt_new(&ck, loop, st, model); ckpt_set_hook(ck, changelog side, ud);
 *              (restores at each assignment: daemon/loop/restore.c, under ckpt_store_lock;
 *              ckpt_restore loads a whole file, for tools and tests)
 *   timer:     if (!ckpt_busy(ck) && nothing pending) ckpt_take_begin(ck, &engine.st, offs, n,
 *              parts, n); ckpt_take_step once per loop turn until it returns 1 (ckpt_take_guard
 *              before each change meanwhile); then, once its outputs are acknowledged,
 *              ckpt_submit(ck, on_done, ud): the hook (changelog) then the file, on the pool;
 *              on_done may commit ckpt_offsets() to Kafka (see above).
 *   SIGHUP:    engine_set_model(&e, m, reset); ckpt_model_changed(ck, m, reset); then
 *              checkpoint right away (not at the next tick of the timer): until it commits, a
 *              restart with the new model file is refused as "state of another model".
 *   delivery failure: a prediction that failed for good is lost, so no checkpoint may cover
 *              its tick; while any partition has a failed delivery, take no checkpoint (the
 *              last good one stays, and a restart re-produces from there).
 *   revoke:    the timer's path; the partitions leave once a snapshot covering them committed.
 *   shutdown (after flushing the producer; a pending snapshot is committed by the flush when every
 *              output was acknowledged, else given up with ckpt_untake):
 * ckpt_flush(ck, &engine.st, offs, n, parts, n, err, errlen) writes synchronously on the loop
 * thread (waits for an in-flight write first). Stored rows of removed instruments are kept: each
 * holds its own offset.
 *   end:       after the loop has run the last completion (ckpt_busy() == 0): ckpt_destroy(ck);
 *              store_close(st). */
#ifndef DAEMON_CKPT_H
#define DAEMON_CKPT_H

#include <stdint.h>
#include <uv.h>

#include "daemon/kafka/changelog.h"
#include "ingest/symtab.h"
#include "nn/model.h"
#include "store/store.h"

typedef struct ckpt ckpt;

/* Called on the loop thread when a submitted write ends: status 0 or TC_E*, err its message. */
typedef void (*ckpt_done_fn)(ckpt *ck, int status, const char *err, void *ud);

typedef struct ckpt_stats {
  uint64_t written;              /* checkpoints committed */
  uint64_t failures;             /* checkpoint writes that failed (merged into the next) */
  uint32_t consecutive_failures; /* failures since the last success */
  uint64_t last_rows;            /* instruments in the last committed checkpoint */
  uint64_t rows_total;           /* instruments written over all committed checkpoints */
  uint64_t last_ok_mono_ns;      /* uv_hrtime() of the snapshot of the last commit, 0 = none */
  int64_t last_ok_wall_ns;       /* wall clock of the same, 0 = none */
  double last_copy_us;           /* loop-thread time of the last snapshot copy (all its slices) */
  double max_copy_us;            /* the most one loop turn spent copying (one slice) */
  uint64_t copy_slices;          /* slices of the last snapshot copy */
  double last_copy_cpu_us;       /* CPU time of the same (wall minus CPU = time preempted) */
  double last_write_us;          /* time of the last database write (on the pool) */
  double last_write_cpu_us;      /* CPU time of the same */
  char last_error[256];          /* message of the last failure, "" after a success */
} ckpt_stats;

/* Creates a checkpointer writing states of model m's shape to st (not owned) on loop's thread
 * pool, into *out. Allocates no arena yet (see ckpt_reserve). 0 or TC_ENOMEM (*out stays NULL). */
int ckpt_new(ckpt **out, uv_loop_t *loop, store *st, const nn_model *m);

/* Frees the checkpointer and its arena; accepts NULL. Only once the loop has run the completion
 * of the last submitted write (ckpt_busy() == 0; running the loop until it has no more work does
 * that, also after a ckpt_flush). */
void ckpt_destroy(ckpt *ck);

/* Grows the arena to hold n instruments now, so that the first checkpoints after start-up do
 * not pay for growth on the loop thread. 0 or TC_ENOMEM. */
int ckpt_reserve(ckpt *ck, size_t n);

/* 1 while a submitted write has not completed (ckpt_take would return TC_EBUSY). */
int ckpt_busy(const ckpt *ck);

/* Loop thread: copies every live dirty instrument of t (fields and state) and the offsets
 * off[0..noff) into the snapshot and clears the dirty flags (dead slots' flags too), in one go
 * (ckpt_take_begin and ckpt_take_step until done). The caller submits it only once THE RULE above
 * holds for it (or gives it up with ckpt_untake; to commit it through ckpt_flush instead, call
 * ckpt_carry first so the flush's take merges it). Returns 0, TC_EBUSY while a write is in flight
 * or a copy is under way (nothing touched) or TC_ENOMEM (dirty flags untouched). Never blocks on
 * I/O; allocates only when the arena grows. */
int ckpt_take(ckpt *ck, symtab *t, const store_offset *off, size_t noff);

/* Loop thread: starts a snapshot "as of now" that is copied a slice at a time
 * (ckpt_take_step), so no single loop turn copies more than a slice however many instruments
 * changed. Until the copy is done the caller must call ckpt_take_guard for every slot it is about
 * to change: a slot not yet copied is copied first (copy on write), so the snapshot holds every
 * state as of this call. Slots added after it are not in the snapshot (their dirty flags stay for
 * the next); t->keep_dead is set until the copy ends (or ckpt_untake), so an instrument added
 * meanwhile never takes a dead slot the copy has yet to pass. Each row gets its own offset: max(its
 * partition's offset in off, the instrument's skip_below); instruments of partitions without an
 * offset in off keep their dirty flag unless parts is NULL (no changelog: they are taken at offset
 * skip_below, or -1). parts[0..nparts) (may be NULL) describe the changelog side per partition
 * (daemon/kafka/changelog.h): a partition with full = 1 has every live instrument copied, dirty or
 * not; ckpt_parts gives them back with the instruments counted. dirty 2 means "only the state file
 * lacks it": such a row is not sent to the changelog. Returns 0, TC_EBUSY (write in flight or copy
 * under way) or TC_ENOMEM. */
int ckpt_take_begin(ckpt *ck, symtab *t, const store_offset *off, size_t noff, const cl_part *parts,
                    size_t nparts);

/* Loop thread: copies the next slice of the snapshot begun by ckpt_take_begin (at most about
 * budget_bytes of state); returns 1 once the copy is complete (the snapshot is then taken, as by
 * ckpt_take), 0 while more remains, TC_ENOMEM (the copy is given up as by ckpt_untake). */
int ckpt_take_step(ckpt *ck, symtab *t, size_t budget_bytes);

/* 1 while a copy begun by ckpt_take_begin is under way. */
int ckpt_copying(const ckpt *ck);

/* Loop thread, while ckpt_copying: slot is about to change; copies it first if the snapshot
 * still needs it. Cheap when it does not. */
void ckpt_take_guard(ckpt *ck, symtab *t, int32_t slot);

/* The partitions of the snapshot last taken (cl_part of ckpt_take_begin, instruments counted;
 * after a successful write with a changelog hook, the hook's results: base, since_base). */
const cl_part *ckpt_parts(const ckpt *ck, size_t *n);

/* The changelog side of a checkpoint, run on the pool thread (or the loop thread for ckpt_flush)
 * before the state file is written: it gets the snapshot's rows (each with next_offset set;
 * to_cl[i] says whether the changelog lacks row i) and partitions (which it may update: base,
 * since_base), and returns 0, or a TC_E* with err, which fails the checkpoint as a whole (nothing
 * written to the file: the file never gets ahead of the changelog). */
typedef int (*ckpt_hook_fn)(void *ud, const store_inst *rows, const uint8_t *to_cl, size_t n,
                            cl_part *parts, size_t nparts, int64_t time_ns, char *err,
                            size_t errlen);
void ckpt_set_hook(ckpt *ck, ckpt_hook_fn fn, void *ud);

/* The state database is used by one thread at a time: checkpoint writes hold this lock, and so
 * must anything else that uses the store while the checkpointer lives (the restore at an
 * assignment, on the pool). */
void ckpt_store_lock(ckpt *ck);
void ckpt_store_unlock(ckpt *ck);

/* Loop thread: gives up a snapshot taken but not submitted, because it can no longer satisfy
 * THE RULE (an output it covers failed for good, or a partition it covers was revoked before its
 * outputs were acknowledged): the instruments it copied are marked dirty again (those still
 * live), its model hash or clear goes back to pending, its offsets are dropped. The next take
 * then copies current states and current offsets, so nothing the snapshot held is lost. */
void ckpt_untake(ckpt *ck, symtab *t);

/* Loop thread: keeps the snapshot taken but not submitted in the arena, to be merged into the
 * next take (ckpt_take or ckpt_flush) as a failed write's is: its rows of instruments that changed
 * since are replaced by fresh copies, its offsets by newer ones, and its model hash or clear is
 * kept. For a snapshot that satisfies THE RULE but was not written (ckpt_submit refused it, or a
 * revoke or shutdown commits it through ckpt_flush). */
void ckpt_carry(ckpt *ck);

/* Loop thread: partition p is no longer this member's (revoked or lost): a snapshot kept in the
 * arena (ckpt_carry, or a failed write's, now or when the write in flight fails) loses its rows,
 * offset and changelog side of p, so no later write puts p's old states or a marker of p into
 * the changelog, where the partition's next owner writes now (changelog.h: one writer per
 * partition). A write already in flight still goes out. 0, or TC_ENOMEM. */
int ckpt_forget(ckpt *ck, int32_t p);

/* Loop thread: queues the write of the taken snapshot on the thread pool; cb(ck, status, err, ud)
 * runs on the loop thread when it ends. 0, TC_EBUSY, or TC_EIO when libuv refuses the work. */
int ckpt_submit(ckpt *ck, ckpt_done_fn cb, void *ud);

/* Loop thread, for revoke and shutdown: waits for a write in flight to finish (its callback
 * still runs later from the loop), then takes a snapshot and writes it synchronously.
 * 0 or TC_E* with err. */
int ckpt_flush(ckpt *ck, symtab *t, const store_offset *off, size_t noff, const cl_part *parts,
               size_t nparts, char *err, size_t errlen);

/* Loop thread: waits for a write in flight to finish and applies its result to the stats (its
 * callback still runs later from the loop). The store connection is not shared between threads,
 * so the loop thread calls this before it uses the store itself (ckpt_flush, at shutdown and
 * revoke). Returns at once when nothing is in flight. */
void ckpt_wait(ckpt *ck);

/* The offsets of the snapshot last taken (for committing them to Kafka in the callback). */
const store_offset *ckpt_offsets(const ckpt *ck, size_t *n);

/* After a model swap (engine_set_model): the next snapshot records m's hash atomically with the
 * states; with reset = 1 it also deletes every stored instrument first and takes all live
 * instruments (engine_set_model already zeroed and dirtied them). */
void ckpt_model_changed(ckpt *ck, const nn_model *m, int reset);

/* 1 while a model change (ckpt_model_changed) waits for the next take to record it; 0 once a
 * snapshot holds it. */
int ckpt_model_change_pending(const ckpt *ck);

/* Instruments in the snapshot last taken (with any carried rows merged in); 0 after ckpt_untake. */
size_t ckpt_snapshot_rows(const ckpt *ck);

/* The model hash (64 lowercase hex digits) the snapshot last taken records with its states, or
 * NULL when it records none (no model change since the last committed checkpoint). */
const char *ckpt_snapshot_model(const ckpt *ck);

/* Counters and timings of the checkpoints so far (see ckpt_stats); valid until ckpt_destroy. */
const ckpt_stats *ckpt_get_stats(const ckpt *ck);

/* Seconds since the snapshot of the last committed checkpoint (monotonic clock), -1 when none. */
double ckpt_age_s(const ckpt *ck);

/* Writes m's sha256 as 64 lowercase hex digits + NUL into hex (65 bytes). */
void ckpt_model_hex(const nn_model *m, char hex[65]);

/* Start-up: checks that st belongs to model m (same sha256, cell, L, H). A fresh file is bound to
 * m. Another model is refused with TC_EMODEL and a message naming both hashes (and both cells when
 * they differ or are not the LSTM), unless reset = 1
 * (--reset-state): then every instrument and offset is dropped and the file is bound to m.
 * 0 or TC_E* with err. */
int ckpt_bind_model(store *st, const nn_model *m, int reset, char *err, size_t errlen);

/* Start-up: loads every stored instrument into t (which must have state_floats =
 * nn_state_floats(m) and hold none of those symbols yet; dirty flags stay 0) and the stored
 * offsets into *off (malloc'd, free() it; *noff entries). A bad state blob stops it with
 * TC_EFORMAT, a state of another cell with TC_EMODEL (never a silent reset).
 * 0 or TC_E* with err. */
int ckpt_restore(store *st, const nn_model *m, symtab *t, store_offset **off, size_t *noff,
                 char *err, size_t errlen);

/* Puts one stored instrument into t: its slot (added when the symbol is new, overwritten when it
 * is live) gets n, last ts and px, partition and state, and the dirty flag given. Returns the
 * slot, or a TC_E* from symtab_add. */
int32_t ckpt_inst_put(symtab *t, const store_inst *in, int dirty);

#endif
