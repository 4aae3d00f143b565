/* symtab.c: symbol -> slot table with every slot's state in one contiguous array. Linear probing
 * on XXH3 over an index of slot+1 entries (0 = empty), kept at most half full; removal uses
 * backward-shift deletion, so there are no tombstones and find never probes past a gap, and puts
 * the slot on a free list that adds take from first.
 * The hash is seeded with 64 random bits per table: symbols ending in the same bucket under the
 * unseeded XXH3 are easy to compute (its short-input mixing is invertible), and 50,000 of them
 * cost 30 times the CPU of ordinary ones, growing with the square of their number. With a seed
 * the attacker does not know, crafted symbols spread like any others. For inputs up to 240 bytes
 * (a symbol is at most 32) XXH3 with a seed runs the same code as without.
 * Not for persistence (store/) or ordering rules (the engine). */
#include "ingest/symtab.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <xxhash.h>

#include "nn/base/clock.h"
#include "nn/base/tc_err.h"

static inline uint64_t sym_hash(const symtab *t, const char *s, size_t n) {
  return XXH3_64bits_withSeed(s, n, t->seed);
}

/* 64 random bits from the kernel; without them (getrandom unavailable or not yet seeded at early
 * boot), a mix of the clocks and this table's address, which an attacker cannot read either. */
static uint64_t random_seed(const symtab *t) {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
    seed = XXH3_64bits_withSeed(&t, sizeof t, tc_mono_ns() ^ (uint64_t)tc_wall_ns());
  return seed ? seed : 1; /* seed 0 is the unseeded hash */
}

/* Rebuilds the index at size `size` (a power of two) from the live slots. */
static int index_build(symtab *t, uint32_t size) {
  uint32_t *ix = calloc(size, sizeof *ix);
  if (!ix)
    return TC_ENOMEM;
  uint32_t mask = size - 1;
  for (uint32_t s = 0; s < t->count; s++) {
    if (!t->inst[s].live)
      continue;
    uint32_t h = (uint32_t)sym_hash(t, t->inst[s].sym, t->inst[s].sym_len) & mask;
    while (ix[h])
      h = (h + 1) & mask;
    ix[h] = s + 1;
  }
  free(t->index);
  t->index = ix;
  t->index_mask = mask;
  return 0;
}

/* Sets up an empty table for states of state_floats floats; initial_cap slots (at least 16). */
int symtab_init(symtab *t, size_t state_floats, uint32_t initial_cap) {
  memset(t, 0, sizeof *t);
  t->state_floats = state_floats;
  uint32_t cap = 16;
  while (cap < initial_cap && cap < (1u << 30))
    cap <<= 1;
  t->seed = random_seed(t);
  t->inst = calloc(cap, sizeof *t->inst);
  t->state = calloc((size_t)cap * (state_floats ? state_floats : 1), sizeof *t->state);
  t->free = malloc(cap * sizeof *t->free);
  if (!t->inst || !t->state || !t->free)
    goto fail;
  t->cap = cap;
  if (index_build(t, cap * 2) != 0)
    goto fail;
  return 0;
fail:
  symtab_free(t);
  return TC_ENOMEM;
}

/* Frees everything; accepts NULL and a half-built table. */
void symtab_free(symtab *t) {
  if (!t)
    return;
  free(t->inst);
  free(t->state);
  free(t->index);
  free(t->free);
  t->inst = NULL;
  t->state = NULL;
  t->index = NULL;
  t->free = NULL;
  t->cap = t->count = t->live = t->nfree = 0;
}

/* Returns the live slot of sym or -1. */
int32_t symtab_find(const symtab *t, const char *sym, size_t len) {
  if (!t->index)
    return -1;
  uint32_t mask = t->index_mask;
  uint32_t h = (uint32_t)sym_hash(t, sym, len) & mask;
  for (uint32_t e; (e = t->index[h]) != 0; h = (h + 1) & mask) {
    const inst *in = &t->inst[e - 1];
    if (in->sym_len == len && memcmp(in->sym, sym, len) == 0)
      return (int32_t)(e - 1);
  }
  return -1;
}

/* Doubles the slot arrays (inst, state, free) and the index. The new slots are left as they
 * are: symtab_add zeroes each one it hands out, so zeroing them here too only touched every new
 * page twice (at 100,000 instruments, H = 64: 4,700 of a replay's 21,500 page faults). */
static int symtab_grow(symtab *t) {
  if (t->cap >= (1u << 30))
    return TC_ENOMEM;
  uint32_t cap = t->cap * 2;
  size_t sf = t->state_floats ? t->state_floats : 1;
  inst *in = realloc(t->inst, (size_t)cap * sizeof *in);
  if (!in)
    return TC_ENOMEM;
  t->inst = in;
  float *st = realloc(t->state, (size_t)cap * sf * sizeof *st);
  if (!st)
    return TC_ENOMEM;
  t->state = st;
  uint32_t *fr = realloc(t->free, (size_t)cap * sizeof *fr);
  if (!fr)
    return TC_ENOMEM;
  t->free = fr;
  int rc = index_build(t, cap * 2);
  if (rc)
    return rc;
  t->cap = cap;
  return 0;
}

/* Returns the slot of sym, adding it (zero state, n = 0, partition -1) when absent: in the dead
 * slot removed last when there is one, else in a new slot. */
int32_t symtab_add(symtab *t, const char *sym, size_t len) {
  if (len < 1 || len > TICK_SYM_MAX)
    return TC_EINVAL;
  int32_t s = symtab_find(t, sym, len);
  if (s >= 0)
    return s;
  uint32_t slot;
  if (t->nfree && !t->keep_dead) {
    slot = t->free[--t->nfree];
  } else {
    if (t->count >= t->cap) {
      int rc = symtab_grow(t);
      if (rc)
        return rc;
    }
    slot = t->count++;
  }
  inst *in = &t->inst[slot];
  memset(in, 0, sizeof *in);
  in->partition = -1;
  in->live = 1;
  in->sym_len = (uint8_t)len;
  memcpy(in->sym, sym, len);
  in->sym[len] = 0;
  memset(symtab_state(t, (int32_t)slot), 0, t->state_floats * sizeof(float));
  uint32_t mask = t->index_mask;
  uint32_t h = (uint32_t)sym_hash(t, sym, len) & mask;
  while (t->index[h])
    h = (h + 1) & mask;
  t->index[h] = slot + 1;
  t->live++;
  return (int32_t)slot;
}

/* Marks slot dead, takes it out of the index with backward-shift deletion (later entries of the
 * probe run move back into the hole unless that would put them before their home bucket) and puts
 * it on the free list. */
void symtab_remove(symtab *t, int32_t slot) {
  if (slot < 0 || (uint32_t)slot >= t->count || !t->inst[slot].live)
    return;
  inst *in = &t->inst[slot];
  uint32_t mask = t->index_mask;
  uint32_t h = (uint32_t)sym_hash(t, in->sym, in->sym_len) & mask;
  while (t->index[h] != (uint32_t)slot + 1)
    h = (h + 1) & mask;
  uint32_t hole = h;
  for (uint32_t j = (hole + 1) & mask; t->index[j]; j = (j + 1) & mask) {
    const inst *o = &t->inst[t->index[j] - 1];
    uint32_t home = (uint32_t)sym_hash(t, o->sym, o->sym_len) & mask;
    /* Move j into the hole when its home is not cyclically within (hole, j]. */
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      t->index[hole] = t->index[j];
      hole = j;
    }
  }
  t->index[hole] = 0;
  in->live = 0;
  t->live--;
  t->free[t->nfree++] = (uint32_t)slot;
}

uint64_t symtab_displacement(const symtab *t) {
  uint64_t d = 0;
  for (uint32_t h = 0; t->index && h <= t->index_mask; h++) {
    uint32_t e = t->index[h];
    if (e) {
      const inst *in = &t->inst[e - 1];
      d += (h - ((uint32_t)sym_hash(t, in->sym, in->sym_len) & t->index_mask)) & t->index_mask;
    }
  }
  return d;
}
