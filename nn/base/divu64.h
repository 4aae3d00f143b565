/* divu64.h: x / d and x % d for a divisor d fixed in advance, by a multiply and a shift instead of
 * a division (libdivide's unsigned 64-bit algorithm: Granlund and Montgomery, "Division by
 * invariant integers using multiplication", 1994). Exact for every 64-bit x and d >= 1
 * (tests/test_nn_divu64.c compares it with / and % on edge and random operands). A 64-bit
 * division takes 10-40 cycles and does not pipeline well; the block bootstrap of eval draws a
 * block start below n 2000 * n^(2/3) times per series (daemon/pipeline/evalstat.c). */
#ifndef NN_BASE_DIVU64_H
#define NN_BASE_DIVU64_H

#include <stdint.h>

typedef struct nn_divu64 {
  uint64_t d;  /* the divisor */
  uint64_t m;  /* the magic multiplier; 0 for a power of two */
  unsigned sh; /* the final shift */
  int add;     /* the 65-bit case: the multiplier's top bit is implied */
} nn_divu64;

static inline nn_divu64 nn_divu64_new(uint64_t d) { /* d >= 1 */
  nn_divu64 r = {d, 0, (unsigned)(63 - __builtin_clzll(d)), 0};
  if ((d & (d - 1)) == 0)
    return r; /* x >> log2(d) */
  /* 2^(64 + l) / d, with 2^l < d < 2^(l + 1): in (2^63, 2^64) */
  unsigned __int128 num = (unsigned __int128)1 << (64 + r.sh);
  uint64_t m = (uint64_t)(num / d), rem = (uint64_t)(num % d);
  if (d - rem < ((uint64_t)1 << r.sh)) {
    r.m = m + 1; /* 2^(64 + l) / d rounded up is within the error that the shift forgives */
  } else {
    uint64_t twice = rem + rem; /* the 65-bit multiplier 2^(65 + l) / d, rounded up */
    m += m;
    if (twice >= d || twice < rem)
      m++;
    r.m = m + 1;
    r.add = 1;
  }
  return r;
}

static inline uint64_t nn_divu64_div(const nn_divu64 *v, uint64_t x) {
  if (!v->m)
    return x >> v->sh;
  uint64_t q = (uint64_t)(((unsigned __int128)v->m * x) >> 64);
  return v->add ? (((x - q) >> 1) + q) >> v->sh : q >> v->sh;
}

static inline uint64_t nn_divu64_mod(const nn_divu64 *v, uint64_t x) {
  return x - nn_divu64_div(v, x) * v->d;
}

#endif
