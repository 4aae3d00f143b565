/* test_ingest_symtab.c: the per-instrument table: growth past several rehashes, find after growth,
 * remove and re-add (fresh zero state, never a dead slot), contiguous states, and a random
 * add/remove/find sequence checked against a brute-force model. */
#include <stdlib.h>

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
  CHECK(a2 != a);
  CHECK_INT(a2, 2);
  CHECK(symtab_state(&t, a2)[1] == 0);
  CHECK_INT(t.inst[a2].n, 0);
  CHECK_INT(t.inst[a2].last_ts, 0);
  CHECK_INT(t.inst[a2].partition, -1);
  CHECK_INT(t.inst[a2].live, 1);
  CHECK_INT(symtab_find(&t, "AAA", 3), a2);
  CHECK(symtab_state(&t, a)[1] == 7); /* the dead slot keeps its data; it is never reused */
  CHECK_INT(t.count, 3);
  CHECK_INT(t.live, 2);
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
      if (model[k] >= 0 ? slot != model[k] : slot != (int32_t)t.count - 1)
        bad++;
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
  CHECK(t.count > 10000); /* slots are never reused: the table grew through removals */
  symtab_free(&t);
}

int main(void) {
  test_growth();
  test_remove();
  test_random();
  return check_done();
}
