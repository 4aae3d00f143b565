/* symtab.h: the per-instrument table: symbol -> slot, with every slot's LSTM state in one
 * contiguous, growable array so a batch gathers cheaply. Open addressing on xxHash3.
 * Slots are never reused while the table lives; removal (partition revoke) marks a slot dead. */
#ifndef INGEST_SYMTAB_H
#define INGEST_SYMTAB_H

#include "ingest/tick.h"
#include <stddef.h>
#include <stdint.h>

typedef struct inst {
  int64_t last_ts;    /* ts of the last accepted tick */
  double last_px;     /* px of the last accepted tick */
  uint64_t n;         /* ticks applied to the state so far */
  int64_t skip_below; /* Kafka ticks of this instrument with a lower offset are already in the
                       * state (restored from a checkpoint): the engine skips them; 0 = none */
  int32_t partition;  /* input partition it was last seen on, -1 for files */
  uint8_t live;       /* 0 after symtab_remove */
  uint8_t dirty;      /* changed since the last checkpoint */
  uint8_t sym_len;
  char sym[TICK_SYM_MAX + 1];
} inst;

typedef struct symtab {
  size_t state_floats; /* floats per slot state */
  uint32_t count;      /* slots in use (including dead ones) */
  uint32_t live;       /* live instruments */
  uint32_t cap;        /* slots allocated */
  inst *inst;          /* (cap) */
  float *state;        /* (cap, state_floats); moves on growth: re-take pointers after adds */
  uint32_t *index;     /* open-addressing table of slot+1, 0 = empty */
  uint32_t index_mask; /* index size - 1 (power of two) */
} symtab;

int symtab_init(symtab *t, size_t state_floats, uint32_t initial_cap);
void symtab_free(symtab *t); /* accepts NULL and half-built */

/* Returns the slot of sym, or -1 when absent (or removed). */
int32_t symtab_find(const symtab *t, const char *sym, size_t len);

/* Returns the slot of sym, adding it (zero state, n = 0) when absent; negative TC_E* on ENOMEM.
 * Adding may move t->state and t->inst. */
int32_t symtab_add(symtab *t, const char *sym, size_t len);

/* Marks a slot removed: find no longer returns it; a later add of the same symbol gets a fresh
 * slot with zero state. */
void symtab_remove(symtab *t, int32_t slot);

static inline float *symtab_state(const symtab *t, int32_t slot) {
  return t->state + (size_t)slot * t->state_floats;
}

#endif
