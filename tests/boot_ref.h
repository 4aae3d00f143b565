/* boot_ref.h: the circular block bootstrap as its definition says, one draw and one block at a
 * time with nn_rng_below (a 64-bit division) and the two series' prefix sums in two arrays: the
 * plain form of evalstat_skill_boot (daemon/pipeline/evalstat.c), which draws a replicate's block
 * starts first, divides by a multiply and a shift and prefetches, and must give the same bits.
 * tests/test_evalstat.c checks that; bench/bench_boot.c times the two. Header-only. */
#ifndef TESTS_BOOT_REF_H
#define TESTS_BOOT_REF_H

#include <math.h>
#include <stdlib.h>

#include "daemon/pipeline/evalstat.h"
#include "nn/train.h"

static int boot_ref_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The q-quantile of sorted x (k >= 1), type 7. */
static double boot_ref_q7(const double *x, int k, double q) {
  double h = (k - 1) * q;
  int i = (int)floor(h);
  return i >= k - 1 ? x[k - 1] : x[i] + (h - i) * (x[i + 1] - x[i]);
}

static double boot_ref_block(const double *c, size_t n, size_t s, size_t L) {
  return s + L <= n ? c[s + L] - c[s] : (c[n] - c[s]) + c[s + L - n];
}

/* out's lo, hi, se and dropped for reps replicates of blocks of block (>= 1) over n >= 2 points;
 * 0, or -1 when out of memory. */
static int boot_ref(const double *sm, const double *sr, size_t n, double level, int reps,
                    size_t block, uint64_t seed, evalstat_boot *out) {
  double *cm = calloc(n + 1, sizeof *cm), *cr = calloc(n + 1, sizeof *cr);
  double *v = malloc((size_t)reps * sizeof *v);
  if (!cm || !cr || !v) {
    free(cm), free(cr), free(v);
    return -1;
  }
  for (size_t t = 0; t < n; t++)
    cm[t + 1] = cm[t] + sm[t], cr[t + 1] = cr[t] + sr[t];
  nn_rng rng;
  nn_rng_seed(&rng, seed);
  int k = 0;
  out->dropped = 0;
  for (int r = 0; r < reps; r++) {
    double a = 0, b = 0;
    for (size_t left = n; left > 0;) {
      size_t L = left < block ? left : block, s = (size_t)nn_rng_below(&rng, n);
      a += boot_ref_block(cm, n, s, L);
      b += boot_ref_block(cr, n, s, L);
      left -= L;
    }
    if (b > 0)
      v[k++] = 1 - a / b;
    else
      out->dropped++;
  }
  out->lo = out->hi = out->se = NAN;
  if (k > 0) {
    qsort(v, (size_t)k, sizeof *v, boot_ref_cmp);
    out->lo = boot_ref_q7(v, k, 0.5 * (1 - level));
    out->hi = boot_ref_q7(v, k, 0.5 * (1 + level));
    double m = 0, ss = 0;
    for (int i = 0; i < k; i++)
      m += v[i];
    m /= k;
    for (int i = 0; i < k; i++)
      ss += (v[i] - m) * (v[i] - m);
    out->se = k > 1 ? sqrt(ss / (k - 1)) : 0;
  }
  free(cm), free(cr), free(v);
  return 0;
}

#endif
