/* engine.h: the prediction pipeline shared by `replay` and `run`: a chunk of decoded ticks is
 * checked for per-instrument order, turned into features, scheduled into waves (the k-th tick of
 * each instrument in wave k, so the result equals the sequential one) and stepped through the
 * batched recurrent cell (nn_step). Not for I/O: callers decode input and encode predictions. */
#ifndef DAEMON_ENGINE_H
#define DAEMON_ENGINE_H

#include "ingest/symtab.h"
#include "ingest/tick.h"
#include "nn/lstm.h"
#include "nn/model.h"
#include <stdint.h>

/* One tick of a chunk, with what the engine adds. */
typedef struct eng_tick {
  tick t;            /* in: the decoded tick (ignored when reason != TICK_OK) */
  int reason;        /* in: TICK_OK or the decoder's reason; out: may become TICK_OUT_OF_ORDER */
  int32_t partition; /* in: input partition, -1 for files */
  int64_t offset;    /* in: input offset (Kafka), -1 for files */
  uint8_t skipped;   /* out: 1 when the tick was already in its instrument's restored state
                      * (offset below the instrument's skip_below): nothing applied, no output */
  int32_t slot;      /* out: instrument slot when accepted */
  int64_t prev_ts;   /* out: for TICK_OUT_OF_ORDER, the instrument's last accepted ts then */
  uint64_t n;        /* out: ticks applied to the instrument, this one included */
  double pred_ret;   /* out: y * target.std + target.mean */
  double pred_px;    /* out: px * exp(pred_ret) */
  float y;           /* out: standardized network output */
  uint8_t has_std;   /* out: 1 when the model has the scale head and the three below are set */
  double pred_std;   /* out: exp(s / 2) * target.std, s the scale head's output: the standard
                        deviation of the next log return */
  double lo_px;      /* out: px * exp(pred_ret - z pred_std), z = e->z, or the instrument's
                        tracked z when e->eta > 0 (daemon/pipeline/ivtrack.h) */
  double hi_px;      /* out: px * exp(pred_ret + z pred_std): the central interval of the next
                        price at coverage e->interval */
} eng_tick;

typedef struct engine {
  const nn_model *m; /* not owned; engine_set_model swaps it */
  nn_work w;         /* the cell's scratch for up to chunk_max instruments */
  symtab st;         /* instruments and their states */
  int chunk_max;     /* most ticks per engine_process call */
  int exact;         /* engine_init_exact: no step batches more than w.Bkern instruments */
  float *x;          /* (chunk_max, NN_F) standardized features, by chunk index */
  float *xb;         /* (chunk_max, NN_F) features gathered for one wave */
  float *yb;         /* (chunk_max) outputs of one wave */
  float *sb;         /* (chunk_max) scale head outputs of one wave (gauss models) */
  double interval;   /* coverage of lo_px..hi_px, in (0, 1); 0.9 from engine_init */
  double z;          /* ivcal_z(m, interval): the model's calibrated quantile of |z| or the normal
                        Phi^-1((1 + interval) / 2) */
  double eta;        /* the online interval's step (engine_set_adapt); 0: z for every tick */
  float **sp;        /* (chunk_max) state pointers of one wave */
  int32_t *wave;     /* (chunk_max) wave of each tick */
  int32_t *order;    /* (chunk_max) tick indices sorted by wave */
  int32_t *wstart;   /* (chunk_max + 2) start of each wave in order */
  uint32_t *occ;     /* (st.cap) ticks of each slot in the current chunk; zero between calls */
  uint32_t occ_cap;  /* capacity of occ */
  uint64_t accepted; /* ticks accepted so far */
  uint64_t skipped;  /* ticks skipped as already in a restored state (eng_tick.skipped) */
  uint64_t rejected[TICK_NREASONS]; /* ticks rejected so far, by reason (see engine_process) */
  /* The daemon's bounds (0 = none, as engine_init leaves them; the file tools use none). */
  int64_t max_future_ns;    /* a tick whose ts is further ahead of the wall clock: future_ts */
  uint32_t max_instruments; /* a new instrument while this many are live: instrument_limit */
  uint64_t unfrozen;        /* instruments restarted afresh, their last ts beyond max_future_ns */
  int32_t unfrozen_slot;    /* the slot of the last one */
  /* Accepted ticks of an instrument in another input partition than its previous tick's (a
   * producer that does not key by sym, or partitions added to the topic): the instrument follows
   * the tick (its partition becomes the new one); counted for the daemon to report. */
  uint64_t moved;
  int32_t moved_slot, moved_from; /* the last one: its slot and the partition it came from */
} engine;

/* Sets up an engine for model m with chunks of at most chunk_max ticks. 0 or TC_E*. */
int engine_init(engine *e, const nn_model *m, int chunk_max);

/* The same for results that must not depend on how ticks are grouped into chunks (the replays,
 * whose output is the same bits for every --threads): a wave is stepped in batches of at most
 * wave_max instruments and at most w.Bkern, so every projection runs on nn_projT, which gives an
 * instrument the same bits whichever others share its step (nn/lstm.h). On AVX-512 (Bkern
 * unbounded) with wave_max >= chunk_max this is engine_init exactly; on AVX2 it moves waves of
 * more than 64 instruments from sgemm to nn_projT, which is as fast there; on CPUs without AVX2
 * (Bkern 4) it is slower than sgemm for large waves: the price of the same bits. */
int engine_init_exact(engine *e, const nn_model *m, int chunk_max, int wave_max);

/* The wave_max of the replays (any value gives the same bits). 256 instruments fill nn_projT's
 * rows as well as more do, and the cell's scratch (nn_work) for 256 is 0.5 MB at H = 64, where
 * the one for a whole chunk of 4096 was 7 MB, zeroed at start-up: 1,700 page faults more, and a
 * `replay --threads 1` of two lines took 46 ms instead of 25 on this virtual machine. */
#define ENGINE_WAVE 256
void engine_free(engine *e); /* accepts NULL and half-built */

/* An engine's instruments and counts without its scratch. The pipeline of preplay.h keeps one per
 * shard of instruments and swaps it into the engine of whichever worker steps that shard next, so
 * that a shard moves between threads for the price of a few words. */
typedef struct engine_book {
  symtab st;
  uint64_t accepted, skipped, rejected[TICK_NREASONS], unfrozen;
  int32_t unfrozen_slot;
} engine_book;

int engine_book_init(engine_book *b, const nn_model *m); /* no instruments: 0 or TC_ENOMEM */
void engine_book_free(engine_book *b);                   /* accepts NULL and half-built */

/* Exchanges e's instruments and counts with b's; a second call restores both. Between calls to
 * engine_process only: e's other fields are scratch, or settings that stay with e and apply to
 * whichever book is swapped in (the model, the interval, max_instruments, max_future_ns;
 * engine_set_model resets or restarts the instruments of the book in e at the time). */
void engine_swap_book(engine *e, engine_book *b);

/* Processes ticks[0..N) (N <= chunk_max) in input order semantics: every accepted tick updates its
 * instrument's state and gets its prediction; rejected ticks touch nothing. A decoded tick whose
 * offset is below its instrument's skip_below is already in the state (a checkpoint restored it
 * with that offset): it is marked skipped and touches nothing (no order check, no prediction).
 * Ticks that come in with a reason are skipped: the caller counts decode rejections in e->rejected
 * itself (it knows them first); the engine counts what it rejects (out_of_order, future_ts,
 * instrument_limit) and what it accepts. With max_future_ns, a tick whose ts lies further ahead of
 * the wall clock is future_ts and creates no instrument, and an instrument whose last ts lies
 * beyond that bound (a state from before the bound) is not frozen by it: a tick older than that
 * last ts restarts it afresh (n = 1, zero state, counted in unfrozen) instead of being
 * out_of_order. Returns 0 or TC_ENOMEM (then no state was changed). Never allocates except when
 * the symbol table grows. */
int engine_process(engine *e, eng_tick *ticks, int N);

/* Sets the coverage of the interval lo_px..hi_px of a model with the scale head; c in (0, 1)
 * (callers validate it), else TC_EINVAL and nothing changes. Its z is ivcal_z's for the model
 * (engine_set_model takes the new model's). */
int engine_set_interval(engine *e, double c);

/* Turns the online interval on (eta > 0) or off (0) for a model with the scale head: every
 * instrument tracks its own z (ivtrack.h), starting at e->z at its first tick, updated on each
 * accepted tick after the first by whether its price fell outside the interval emitted after the
 * tick before, and kept in its state (inst.iv) so that checkpoints and restores carry it. A mean
 * model ignores it. eta < 0 or not finite: TC_EINVAL and nothing changes. */
int engine_set_adapt(engine *e, double eta);

/* Switches to model m (same shape required; checked by the caller with nn_model_same_shape; the
 * heads may differ), refreshing what the cell's scratch caches of the weights. reset = 1 zeroes
 * every instrument's state and n: each instrument starts afresh, as if first seen (its next tick
 * has ret = 0). Either way every instrument's online interval restarts at the new model's z
 * (the old q was learnt on the old model's errors): its next tick emits with z and counts no
 * miss. */
void engine_set_model(engine *e, const nn_model *m, int reset);

#endif
