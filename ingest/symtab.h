/* symtab.h: the per-instrument table: symbol -> slot, with every slot's LSTM state in one
 * contiguous, growable array so a batch gathers cheaply. Open addressing on xxHash3 with a seed
 * drawn at random per table, so symbols crafted to collide cost what ordinary ones do. Removal
 * (partition revoke) marks a slot dead and puts it on a free list; the next add reuses it, so the
 * table is only ever as large as its peak of live instruments. */
#ifndef INGEST_SYMTAB_H
#define INGEST_SYMTAB_H

#include "ingest/tick.h"
#include <stddef.h>
#include <stdint.h>

#define SYMTAB_IV 3 /* doubles of an instrument's interval tracker */

typedef struct inst {
  int64_t last_ts;      /* ts of the last accepted tick */
  double last_px;       /* px of the last accepted tick */
  uint64_t n;           /* ticks applied to the state so far */
  int64_t skip_below;   /* Kafka ticks of this instrument with a lower offset are already in the
                         * state (restored from a checkpoint): the engine skips them; 0 = none */
  int32_t partition;    /* input partition it was last seen on, -1 for files */
  double iv[SYMTAB_IV]; /* the online interval's tracker (daemon/pipeline/ivtrack.h): its z, and
                         * lo_px and hi_px of the interval emitted after the last tick */
  uint8_t iv_on;        /* 1: iv is set (an interval was emitted with the tracker on) */
  uint8_t live;         /* 0 after symtab_remove */
  uint8_t dirty;        /* changed since the last checkpoint */
  uint8_t sym_len;
  char sym[TICK_SYM_MAX + 1];
} inst;

typedef struct symtab {
  size_t state_floats; /* floats per slot state */
  uint32_t count;      /* slots handed out so far (live ones and dead ones on the free list) */
  uint32_t live;       /* live instruments */
  uint32_t cap;        /* slots allocated */
  inst *inst;          /* (cap) */
  float *state;        /* (cap, state_floats); moves on growth: re-take pointers after adds */
  uint32_t *index;     /* open-addressing table of slot+1, 0 = empty */
  uint32_t index_mask; /* index size - 1 (power of two) */
  uint32_t *free;      /* (cap) dead slots below count, reused last-in first-out */
  uint32_t nfree;      /* entries of free */
  uint8_t keep_dead;   /* while set, adds take new slots and leave dead ones alone: a sliced
                        * checkpoint copy reads slots by number and must not find another
                        * instrument in a slot it has not reached yet */
  uint64_t seed;       /* the hash's seed, random per table */
} symtab;

int symtab_init(symtab *t, size_t state_floats, uint32_t initial_cap);
void symtab_free(symtab *t); /* accepts NULL and half-built */

/* Returns the slot of sym, or -1 when absent (or removed). */
int32_t symtab_find(const symtab *t, const char *sym, size_t len);

/* Returns the slot of sym, adding it (zero state, n = 0) when absent, in a dead slot when there is
 * one (and keep_dead is 0), else in a new one; negative TC_E* on ENOMEM. Adding may move t->state
 * and t->inst. */
int32_t symtab_add(symtab *t, const char *sym, size_t len);

/* Marks a slot removed: find no longer returns it, and the slot goes on the free list (a later
 * add, of this symbol or another, gets it back with zero state). */
void symtab_remove(symtab *t, int32_t slot);

/* The sum over live symbols of how far each sits from its home bucket in the index (linear probing:
 * the extra buckets a find of it reads). For tests and benchmarks. */
uint64_t symtab_displacement(const symtab *t);

static inline float *symtab_state(const symtab *t, int32_t slot) {
  return t->state + (size_t)slot * t->state_floats;
}

#endif
