/* bench_boot.c: eval's circular block bootstrap (evalstat_skill_boot, 2000 replicates, blocks of
 * n^(1/3)) against its plain form in the same run: one draw at a time with nn_rng_below (a 64-bit
 * division) and two separate prefix-sum arrays, as evalstat.c did before. n = 3906 is an
 * instrument of the replay benchmark's file in eval (1,000,000 ticks over 256 instruments: 256
 * such bootstraps), n = 1,000,000 its pooled figures. The two must give the same bits.
 *
 * The plain form is tests/boot_ref.h's, which tests/test_evalstat.c holds to the same bits.
 *
 * usage: bench_boot [ROUNDS]   (default 5, the two alternating; medians)
 * Prints per n: wall ns per block drawn on one thread, each side, and the ratio. Not a test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/pipeline/evalstat.h"
#include "nn/base/clock.h"
#include "nn/train.h"
#include "tests/boot_ref.h"

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5;
  if (rounds < 1 || rounds > 99) {
    fprintf(stderr, "usage: bench_boot [ROUNDS]\n");
    return 2;
  }
  const size_t ns[] = {3906, 1000000};
  const int calls[] = {64, 1};
  size_t N = 1000000;
  double *sm = malloc(N * sizeof *sm), *sr = malloc(N * sizeof *sr);
  if (!sm || !sr)
    return 2;
  nn_rng g;
  nn_rng_seed(&g, 7);
  for (size_t t = 0; t < N; t++) {
    double x = nn_rng_uniform(&g) - 0.5, e = nn_rng_uniform(&g) - 0.5;
    sm[t] = e * e, sr[t] = (0.3 * x + e) * (0.3 * x + e);
  }
  int bad = 0;
  for (int a = 0; a < 2; a++) {
    size_t n = ns[a], block = (size_t)ceil(cbrt((double)n)), D = (n + block - 1) / block;
    uint64_t tp[99], te[99];
    for (int r = 0; r < rounds; r++) {
      evalstat_boot p, e;
      uint64_t t0 = tc_mono_ns();
      for (int c = 0; c < calls[a]; c++)
        if (boot_ref(sm, sr, n, 0.9, EVALSTAT_BOOT_REPS, block, 100 + (uint64_t)c, &p) != 0)
          return 1;
      uint64_t t1 = tc_mono_ns();
      for (int c = 0; c < calls[a]; c++)
        if (evalstat_skill_boot(sm, sr, n, 0.9, 0, 0, 100 + (uint64_t)c, &e) != 0)
          return 1;
      uint64_t t2 = tc_mono_ns();
      tp[r] = t1 - t0, te[r] = t2 - t1;
      bad += memcmp(&p.lo, &e.lo, sizeof p.lo) != 0 || memcmp(&p.hi, &e.hi, sizeof p.hi) != 0 ||
             memcmp(&p.se, &e.se, sizeof p.se) != 0;
    }
    qsort(tp, (size_t)rounds, sizeof *tp, cmp_u64);
    qsort(te, (size_t)rounds, sizeof *te, cmp_u64);
    double draws = (double)calls[a] * EVALSTAT_BOOT_REPS * (double)D;
    double p = (double)tp[rounds / 2] / draws, e = (double)te[rounds / 2] / draws;
    printf("boot n=%zu block=%zu draws=%.0f plain_ns=%.2f evalstat_ns=%.2f speedup=%.2fx\n", n,
           block, draws, p, e, p / e);
  }
  printf("boot: the two agree bit for bit: %s\n", bad ? "NO" : "yes");
  free(sm), free(sr);
  return bad != 0;
}
