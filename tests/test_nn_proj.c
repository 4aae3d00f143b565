/* test_nn_proj.c: the projection kernel nn_projT (nn/proj.c) in every version this CPU can run:
 * against a double-precision reference over odd shapes (B = 1..9, 17, 33; K = 4, 31, 32, 64,
 * 128; G = 4K) with the rounding-error bound of a K-term dot product, never writing outside z;
 * a row's bits do not depend on B or its place in the batch; AVX2 and AVX-512 agree bit for bit;
 * the padded row stride nn_projT_ldw; nn_projT_ld on a block of columns of a wider z. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "nn/lstm_int.h"

typedef void (*proj_fn)(int B, int G, int K, const float *a, const float *wt, int ldw, float *z);

static uint32_t rng = 2463534242u;
static float frand(float lo, float hi) { /* xorshift32 */
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return lo + (hi - lo) * (float)(rng >> 8) / 16777216.0f;
}

/* Random inputs of one case: a (B, K) and wt (K, ldw) uniform in +-1, z0 (B, 4K) in +-2. */
static void fill_inputs(int B, int K, int ldw, float *a, float *wt, float *z0) {
  for (int i = 0; i < B * K; i++)
    a[i] = frand(-1, 1);
  for (int i = 0; i < K * ldw; i++)
    wt[i] = frand(-1, 1);
  for (int i = 0; i < B * 4 * K; i++)
    z0[i] = frand(-2, 2);
}

static const struct {
  const char *name;
  proj_fn fn;
  int level; /* the nn_projT_level() it needs */
} versions[] = {{"plain", nn_projT_plain, 0},
                {"avx2", nn_projT_avx2, 1},
                {"avx512", nn_projT_avx512, 2},
                {"nn_projT", nn_projT, 0}};
enum { NV = sizeof versions / sizeof *versions };

static const int Bs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 33}, Ks[] = {4, 31, 32, 64, 128};
enum { NB = sizeof Bs / sizeof *Bs, NK = sizeof Ks / sizeof *Ks, GUARD = 37 };

/* One case: random a (B, K), wt (K, ldw) and z0 (B, G); every version the CPU has against the
 * double reference ref = z0 + a . wt, within the worst-case bound of K fused or K + 1 rounded
 * operations, (K + 1) u (|z0| + sum_k |a wt|) with u = 2^-24; the GUARD floats after z stay
 * untouched. Returns the largest error seen in units of u (|z0| + sum |a wt|). */
static double check_case(int B, int K, int ldw) {
  const int G = 4 * K;
  float *a = malloc((size_t)B * K * sizeof *a), *wt = malloc((size_t)K * ldw * sizeof *wt),
        *z0 = malloc((size_t)B * G * sizeof *z0), *z = malloc(((size_t)B * G + GUARD) * sizeof *z);
  double *ref = malloc((size_t)B * G * sizeof *ref), *mag = malloc((size_t)B * G * sizeof *mag);
  fill_inputs(B, K, ldw, a, wt, z0);
  for (int b = 0; b < B; b++)
    for (int g = 0; g < G; g++) {
      double s = z0[b * G + g], m = fabs(s);
      for (int k = 0; k < K; k++) {
        double p = (double)a[b * K + k] * wt[(size_t)k * ldw + g];
        s += p, m += fabs(p);
      }
      ref[b * G + g] = s, mag[b * G + g] = m;
    }
  const double u = 1.0 / 16777216.0;
  double worst = 0;
  for (int v = 0; v < NV; v++) {
    if (nn_projT_level() < versions[v].level)
      continue;
    memcpy(z, z0, (size_t)B * G * sizeof *z);
    for (int i = 0; i < GUARD; i++)
      z[(size_t)B * G + i] = 12345.0f;
    versions[v].fn(B, G, K, a, wt, ldw, z);
    double e = 0;
    int at = 0, bad = 0;
    for (int i = 0; i < B * G; i++) {
      double r = fabs(z[i] - ref[i]) / (u * mag[i]);
      if (r > e)
        e = r, at = i;
    }
    for (int i = 0; i < GUARD; i++)
      bad += z[(size_t)B * G + i] != 12345.0f;
    if (e > K + 1 || bad)
      fprintf(stderr,
              "%s B=%d K=%d G=%d ldw=%d: error %.3g u (bound %d u) at row %d col %d: %.9g vs "
              "%.9g; %d guard floats written\n",
              versions[v].name, B, K, G, ldw, e, K + 1, at / G, at % G, z[at], ref[at], bad);
    CHECK(e <= K + 1);
    CHECK_INT(bad, 0);
    worst = fmax(worst, e);
  }
  free(a), free(wt), free(z0), free(z), free(ref), free(mag);
  return worst;
}

/* Beyond the worst-case bound, the error actually seen stays near the random-walk size of
 * sqrt(K) roundings: at most 2 sqrt(K) + 2 u (measured: 2.8 to 4.4 u, K = 4 to 128). */
static void test_reference(void) {
  int n = 0;
  for (int ki = 0; ki < NK; ki++) {
    const int K = Ks[ki], G = 4 * K;
    double worst = 0;
    for (int bi = 0; bi < NB; bi++) {
      /* dense, the padded stride the step uses, and an odd one that misaligns rows */
      const int lds[] = {G, nn_projT_ldw(G), G + 5};
      for (int li = 0; li < 3; li++, n++)
        worst = fmax(worst, check_case(Bs[bi], K, lds[li]));
    }
    printf("projT vs double (level %d): K=%d G=%d, %d shapes: max error %.3g u (|z0| + sum |a w|)"
           "\n",
           nn_projT_level(), K, G, NB * 3, worst);
    CHECK(worst <= 2 * sqrt(K) + 2);
  }
  CHECK_INT(n, NB * NK * 3);
}

/* Every row of a batch computed alone (B = 1) and at every place of batches of each size gives
 * the same bits, for each version; AVX2 and AVX-512 give the same bits as each other. */
static void test_invariance(void) {
  enum { BM = 33 };
  int checked = 0, differ = 0, simd_same = 1, plain_differs = 0;
  for (int ki = 0; ki < NK; ki++) {
    const int K = Ks[ki], G = 4 * K, ldw = nn_projT_ldw(G);
    float *a = malloc((size_t)BM * K * sizeof *a), *wt = malloc((size_t)K * ldw * sizeof *wt),
          *z0 = malloc((size_t)BM * G * sizeof *z0), *zb = malloc((size_t)BM * G * sizeof *zb),
          *zr = malloc((size_t)G * sizeof *zr),
          *alone = malloc((size_t)NV * BM * G * sizeof *alone);
    fill_inputs(BM, K, ldw, a, wt, z0);
    for (int v = 0; v < NV; v++) {
      if (nn_projT_level() < versions[v].level)
        continue;
      float *al = alone + (size_t)v * BM * G;
      for (int r = 0; r < BM; r++) {
        memcpy(zr, z0 + (size_t)r * G, (size_t)G * sizeof *zr);
        versions[v].fn(1, G, K, a + (size_t)r * K, wt, ldw, zr);
        memcpy(al + (size_t)r * G, zr, (size_t)G * sizeof *zr);
      }
      /* Batches of B rows starting at every offset s: row s + i sits at place i. */
      for (int bi = 0; bi < NB; bi++) {
        const int B = Bs[bi];
        for (int s = 0; s + B <= BM; s += B > 4 ? 3 : 1) {
          memcpy(zb, z0 + (size_t)s * G, (size_t)B * G * sizeof *zb);
          versions[v].fn(B, G, K, a + (size_t)s * K, wt, ldw, zb);
          checked++;
          if (memcmp(zb, al + (size_t)s * G, (size_t)B * G * sizeof *zb) != 0) {
            differ++;
            fprintf(stderr, "%s K=%d: batch of %d at row %d differs from rows alone\n",
                    versions[v].name, K, B, s);
          }
        }
      }
    }
    if (nn_projT_level() >= 2) {
      simd_same &= memcmp(alone + (size_t)1 * BM * G, alone + (size_t)2 * BM * G,
                          (size_t)BM * G * sizeof *alone) == 0;
      plain_differs |= memcmp(alone, alone + (size_t)2 * BM * G, (size_t)BM * G * sizeof *alone);
    }
    free(a), free(wt), free(z0), free(zb), free(zr), free(alone);
  }
  printf("projT B-invariance: %d batches, %d differ from the rows computed alone; avx2 == avx512 "
         "%s; plain differs from them in the last bits: %s\n",
         checked, differ, nn_projT_level() >= 2 ? (simd_same ? "yes" : "NO") : "(not run)",
         nn_projT_level() >= 2 ? (plain_differs ? "yes" : "no") : "(not run)");
  CHECK_INT(differ, 0);
  CHECK(simd_same);
}

/* The padded stride: at least G, whole 64-byte lines, an odd number of them. Degenerate
 * shapes (B = 0, K = 0) leave z alone. */
static void test_edges(void) {
  for (int G = 1; G <= 4096; G++) {
    int ldw = nn_projT_ldw(G);
    CHECK(ldw >= G && ldw % 16 == 0 && (ldw / 16) % 2 == 1 && ldw - G < 32);
  }
  CHECK_INT(nn_projT_ldw(256), 272);
  float a[4] = {1, 2, 3, 4}, wt[64] = {0}, z[16], z0[16];
  for (int i = 0; i < 16; i++)
    z[i] = z0[i] = (float)i;
  for (int v = 0; v < NV; v++) {
    if (nn_projT_level() < versions[v].level)
      continue;
    versions[v].fn(0, 16, 4, a, wt, 16, z);
    versions[v].fn(1, 16, 0, a, wt, 16, z);
    CHECK(memcmp(z, z0, sizeof z) == 0);
  }
  CHECK(nn_projT_max_b() >= 4);
  printf("projT: level %d, used by nn_lstm_step for B <= %d\n", nn_projT_level(), nn_projT_max_b());
}

/* nn_projT_ld with ldz > G (the GRU's r and z blocks inside its 3H rows): the G columns it
 * updates get the bits nn_projT gives on a dense copy, the ldz - G columns after them in every
 * row stay as they were. */
static void test_ldz(void) {
  int same = 1, untouched = 1, n = 0;
  for (int ki = 0; ki < NK; ki++)
    for (int bi = 0; bi < NB; bi++) {
      const int K = Ks[ki], B = Bs[bi], G = 2 * K, ldz = 3 * K, ldw = nn_projT_ldw(ldz);
      float *a = malloc((size_t)B * K * sizeof *a), *wt = malloc((size_t)K * ldw * sizeof *wt),
            *z0 = malloc((size_t)B * 4 * K * sizeof *z0), *z = malloc((size_t)B * ldz * sizeof *z),
            *zd = malloc((size_t)B * G * sizeof *zd);
      fill_inputs(B, K, ldw, a, wt, z0);
      memcpy(z, z0, (size_t)B * ldz * sizeof *z);
      for (int b = 0; b < B; b++)
        memcpy(zd + (size_t)b * G, z0 + (size_t)b * ldz, (size_t)G * sizeof *zd);
      nn_projT_ld(B, G, K, a, wt, ldw, z, ldz);
      nn_projT(B, G, K, a, wt, ldw, zd);
      for (int b = 0; b < B; b++) {
        same &= memcmp(z + (size_t)b * ldz, zd + (size_t)b * G, (size_t)G * sizeof *z) == 0;
        untouched &= memcmp(z + (size_t)b * ldz + G, z0 + (size_t)b * ldz + G,
                            (size_t)(ldz - G) * sizeof *z) == 0;
      }
      n++;
      free(a), free(wt), free(z0), free(z), free(zd);
    }
  printf("projT_ld: %d shapes with ldz = 1.5 G: same bits as dense %d, other columns untouched %d"
         "\n",
         n, same, untouched);
  CHECK(same && untouched);
}

int main(void) {
  test_edges();
  test_ldz();
  test_reference();
  test_invariance();
  return check_done();
}
