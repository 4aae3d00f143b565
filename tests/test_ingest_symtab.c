/* test_ingest_symtab.c: the per-instrument table: growth past several rehashes, find after growth,
 * remove and re-add (fresh zero state in a reused slot), contiguous states, a random
 * add/remove/find sequence checked against a brute-force model, slot reuse across many
 * revoke-like cycles (the table stays as large as its peak), and symbols crafted to collide under
 * the unseeded XXH3, which the table's seeded hash spreads like any others. */
#include <stdlib.h>
#include <xxhash.h>

#include "check.h"
#include "ingest/symtab.h"
#include "nn/base/tc_err.h"

static int symname(char *out, int i) {
  return sprintf(out, "SYM%d", i);
}

static void test_growth(void) {
  symtab t;
  const size_t SF = 5;
  CHECK_INT(symtab_init(&t, SF, 4), 0);
  CHECK_INT(t.cap, 16);
  enum { N = 5000 }; /* 16 -> 8192 slots: 9 doublings */
  char s[40];
  int bad = 0;
  for (int i = 0; i < N; i++) {
    int n = symname(s, i);
    if (symtab_find(&t, s, (size_t)n) != -1)
      bad++;
    int32_t slot = symtab_add(&t, s, (size_t)n);
    if (slot != i)
      bad++; /* slots are handed out in order */
    float *st = symtab_state(&t, slot);
    for (size_t k = 0; k < SF; k++) {
      if (st[k] != 0)
        bad++; /* fresh states are zero */
      st[k] = (float)(i * 10 + (int)k);
    }
    t.inst[slot].n = (uint64_t)i + 1;
  }
  CHECK_INT(t.count, N);
  CHECK_INT(t.live, N);
  CHECK(t.cap >= N && (t.cap & (t.cap - 1)) == 0);
  CHECK(t.index_mask + 1 >= 2 * t.cap);
  for (int i = 0; i < N; i++) {
    int n = symname(s, i);
    int32_t slot = symtab_find(&t, s, (size_t)n);
    if (slot != i)
      bad++;
    /* Adding again returns the same slot. */
    if (symtab_add(&t, s, (size_t)n) != i)
      bad++;
    /* States survived every realloc, in one contiguous (cap, SF) array. */
    const float *st = t.state + (size_t)i * SF;
    for (size_t k = 0; k < SF; k++)
      if (st[k] != (float)(i * 10 + (int)k))
        bad++;
    if (t.inst[i].n != (uint64_t)i + 1 || strcmp(t.inst[i].sym, s) != 0 || t.inst[i].sym_len != n)
      bad++;
  }
  CHECK_INT(bad, 0);
  CHECK_INT(t.count, N);
  /* Prefixes and longer names are different symbols. */
  CHECK_INT(symtab_find(&t, "SYM1", 3), -1);
  CHECK_INT(symtab_find(&t, "SYM10x", 6), -1);
  CHECK_INT(symtab_add(&t, "", 0), TC_EINVAL);
  CHECK_INT(symtab_add(&t, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", 33), TC_EINVAL);
  symtab_free(&t);
  symtab_free(&t); /* twice is fine */
  symtab_free(NULL);
}

static void test_remove(void) {
  symtab t;
  CHECK_INT(symtab_init(&t, 3, 0), 0);
  int32_t a = symtab_add(&t, "AAA", 3), b = symtab_add(&t, "BBB", 3);
  symtab_state(&t, a)[1] = 7;
  t.inst[a].n = 9;
  t.inst[a].last_ts = 123;
  symtab_remove(&t, a);
  CHECK_INT(t.live, 1);
  CHECK_INT(t.inst[a].live, 0);
  CHECK_INT(symtab_find(&t, "AAA", 3), -1);
  CHECK_INT(symtab_find(&t, "BBB", 3), b);
  symtab_remove(&t, a); /* removing a dead slot is a no-op */
  symtab_remove(&t, 999);
  symtab_remove(&t, -1);
  CHECK_INT(t.live, 1);
  int32_t a2 = symtab_add(&t, "AAA", 3);
  CHECK_INT(a2, a); /* the dead slot is reused, with a fresh state */
  CHECK(symtab_state(&t, a2)[1] == 0);
  CHECK_INT(t.inst[a2].n, 0);
  CHECK_INT(t.inst[a2].last_ts, 0);
  CHECK_INT(t.inst[a2].partition, -1);
  CHECK_INT(t.inst[a2].live, 1);
  CHECK_INT(symtab_find(&t, "AAA", 3), a2);
  CHECK_INT(t.count, 2);
  CHECK_INT(t.live, 2);
  int32_t c = symtab_add(&t, "CCC", 3); /* no free slot left: a new one */
  CHECK_INT(c, 2);
  symtab_free(&t);
}

/* splitmix64 */
static uint64_t rng = 12345;
static uint64_t rnd(void) {
  uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Random adds, removes and finds over a small key space (so probe runs collide and removals hit
 * the middle of runs), checked after every step against a plain array model. */
static void test_random(void) {
  symtab t;
  CHECK_INT(symtab_init(&t, 1, 16), 0);
  enum { K = 300 };
  int32_t model[K]; /* live slot of key k, or -1 */
  for (int k = 0; k < K; k++)
    model[k] = -1;
  int bad = 0;
  char s[40];
  for (int step = 0; step < 200000; step++) {
    int k = (int)(rnd() % K), op = (int)(rnd() % 3);
    int n = sprintf(s, "K%d", k);
    if (op == 0) {
      int32_t slot = symtab_add(&t, s, (size_t)n);
      if (model[k] >= 0 && slot != model[k])
        bad++;
      for (int j = 0; model[k] < 0 && j < K; j++) /* a new symbol never gets a live slot */
        if (model[j] == slot)
          bad++;
      if (slot < 0 || (uint32_t)slot >= t.count || !t.inst[slot].live || t.inst[slot].n != 0 ||
          (model[k] < 0 && symtab_state(&t, slot)[0] != 0))
        bad++;
      if (model[k] < 0)
        symtab_state(&t, slot)[0] = 1; /* a reused slot must come back zeroed */
      model[k] = slot;
    } else if (op == 1) {
      if (model[k] >= 0)
        symtab_remove(&t, model[k]);
      model[k] = -1;
    } else if (symtab_find(&t, s, (size_t)n) != model[k]) {
      bad++;
    }
    if (step % 1000 == 0) {
      uint32_t live = 0;
      for (int j = 0; j < K; j++) {
        n = sprintf(s, "K%d", j);
        if (symtab_find(&t, s, (size_t)n) != model[j])
          bad++;
        live += model[j] >= 0;
      }
      if (live != t.live)
        bad++;
    }
  }
  CHECK_INT(bad, 0);
  CHECK(t.count <= K); /* slots are reused: never more than the peak of live symbols */
  symtab_free(&t);
}

/* A member that keeps 10,000 instruments while partitions are revoked and assigned again: every
 * cycle removes them all and adds 10,000 (new symbols, then the old ones again). The table must
 * not grow: 12 cycles once grew it to 130,000 slots, and its memory with it. */
static void test_reuse_cycles(void) {
  symtab t;
  enum { N = 10000 };
  CHECK_INT(symtab_init(&t, 64, 16), 0);
  char s[40];
  for (int i = 0; i < N; i++)
    symtab_add(&t, s, (size_t)symname(s, i));
  uint32_t cap = t.cap;
  int bad = 0;
  for (int cycle = 1; cycle <= 12; cycle++) {
    for (uint32_t slot = 0; slot < t.count; slot++)
      symtab_remove(&t, (int32_t)slot);
    for (int i = 0; i < N; i++) {
      int n = symname(s, (cycle & 1) * N + i);
      int32_t slot = symtab_add(&t, s, (size_t)n);
      if (slot < 0 || symtab_find(&t, s, (size_t)n) != slot || t.inst[slot].n != 0)
        bad++;
    }
  }
  CHECK_INT(bad, 0);
  CHECK_INT(t.live, N);
  CHECK_INT(t.count, N);
  CHECK_INT(t.cap, cap);
  symtab_free(&t);
}

/* Symbols crafted against the unseeded XXH3 (the table's hash before it was seeded): the low 11
 * bits of XXH3_64bits are all zero, so with linear probing in an index of up to 2048 buckets they
 * all start at bucket 0 and the k-th one probes k buckets, quadratic in their number. The seeded
 * hash must spread them like ordinary symbols: their total distance from their home buckets stays
 * near the count, as for any symbols at this load. */
static void test_crafted_symbols(void) {
  enum { N = 500 };
  char syms[N][24];
  int n = 0;
  for (uint64_t c = 0; n < N; c++) {
    int len = sprintf(syms[n], "X%llx", (unsigned long long)c);
    if ((XXH3_64bits(syms[n], (size_t)len) & 2047) == 0)
      n++;
  }
  symtab t;
  CHECK_INT(symtab_init(&t, 1, 16), 0);
  for (int i = 0; i < N; i++)
    CHECK_INT(symtab_add(&t, syms[i], strlen(syms[i])), i);
  CHECK(t.index_mask + 1 <= 2048);
  uint64_t d = symtab_displacement(&t);
  printf("crafted symbols: total displacement %llu for %d (unseeded: %d)\n", (unsigned long long)d,
         N, N * (N - 1) / 2);
  CHECK(d < 2 * N);
  for (int i = 0; i < N; i++)
    CHECK_INT(symtab_find(&t, syms[i], strlen(syms[i])), i);
  symtab_free(&t);
}

int main(void) {
  test_growth();
  test_remove();
  test_random();
  test_reuse_cycles();
  test_crafted_symbols();
  return check_done();
}
