/* test_ivcal.c: the calibrated interval of a model with the scale head (daemon/pipeline/ivcal.c
 * and nn/safetensors/ival.c): the table's conformal order statistics in closed form (exact
 * integer ranks, left-out grid points, non-finite residuals), the z rule (the table's quantile at
 * grid points, linear in between, the normal quantile outside it, without it and for a mean
 * model), the metadata's round trip and the loader's refusals, and the engine taking its z from
 * the model (also after engine_set_model). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "daemon/pipeline/engine.h"
#include "daemon/pipeline/evalstat.h"
#include "daemon/pipeline/ivcal.h"
#include "nn/base/tc_err.h"
#include "nn/safetensors/safetensors.h"

static double znorm(double c) {
  return evalstat_norm_quantile(0.5 + 0.5 * c);
}

/* |z| = 1..200 (signs and order mixed) plus two non-finite values: the k-th smallest is k. */
static void check_fit(void) {
  enum { N = 202 };
  double a[N];
  for (int i = 0; i < 200; i++) {
    int v = (i * 37) % 200 + 1; /* a permutation of 1..200: 37 is prime to 200 */
    a[i] = i % 2 ? -v : v;
  }
  a[200] = NAN, a[201] = INFINITY;
  nn_ival t;
  CHECK_INT(ivcal_fit(a, N, &t), 0);
  CHECK_INT(t.n, 200);
  /* k = ceil(201 c): 0.01 -> 3, 0.5 -> 101, 0.9 -> 181, 0.99 -> 199, 0.995 -> 200; 0.999 -> 201
   * > 200 is left out. */
  CHECK_INT(t.k, 100);
  CHECK_NEAR(t.c[0], 0.01, 0);
  CHECK_NEAR(t.q[0], 3, 0);
  CHECK_NEAR(t.c[49], 0.5, 0);
  CHECK_NEAR(t.q[49], 101, 0);
  CHECK_NEAR(t.c[89], 0.9, 0);
  CHECK_NEAR(t.q[89], 181, 0);
  CHECK_NEAR(t.c[98], 0.99, 0);
  CHECK_NEAR(t.q[98], 199, 0);
  CHECK_NEAR(t.c[99], 0.995, 0);
  CHECK_NEAR(t.q[99], 200, 0);
  for (int i = 0; i < t.k; i++) /* every point: ceil(201 c) in exact decimals */
    CHECK_NEAR(t.q[i], ceil(201 * (i < 99 ? (i + 1) : 99.5) / 100 - 1e-9), 0);
  /* (n + 1) c an integer: 100 * 0.99 = 99 exactly (in floating point 99.00000000000001, whose
   * ceiling would leave 0.99 out), so 99 residuals reach 0.99 and its quantile is the largest. */
  double b[99];
  for (int i = 0; i < 99; i++)
    b[i] = 99 - i;
  CHECK_INT(ivcal_fit(b, 99, &t), 0);
  CHECK_INT(t.k, 99);
  CHECK_NEAR(t.c[98], 0.99, 0);
  CHECK_NEAR(t.q[98], 99, 0);
  CHECK_NEAR(t.q[89], 90, 0); /* ceil(100 * 0.9) = 90 */
  CHECK_INT(ivcal_fit(b, 0, &t), TC_EINVAL);
  CHECK_INT(t.k, 0);
  double one = 2.5;
  CHECK_INT(ivcal_fit(&one, 1, &t), 0); /* ceil(2 c) <= 1 up to 0.5 */
  CHECK_INT(t.k, 50);
  CHECK_NEAR(t.q[49], 2.5, 0);
}

/* The same sample as numpy would see it: the 90% quantile of a sorted sample by the conformal
 * rule against a hand count over a sample of reals. */
static void check_fit_reals(void) {
  enum { N = 1000 };
  double a[N], s[N];
  unsigned x = 12345;
  for (int i = 0; i < N; i++) {
    x = x * 1103515245u + 12345u;
    a[i] = s[i] = ((x >> 8) & 0xffff) / 65536.0 * 3 - 1.5;
  }
  nn_ival t;
  CHECK_INT(ivcal_fit(a, N, &t), 0);
  CHECK_INT(t.k, IVCAL_GRID); /* 1000 reach 0.999: ceil(1001 * 0.999) = 1000 */
  /* The 90% quantile q is the 901st smallest |s|: 901 values are <= q and 100 of them are not
   * below it (ties aside; the sample has distinct values). */
  int le = 0, lt = 0;
  for (int i = 0; i < N; i++)
    le += fabs(s[i]) <= t.q[89], lt += fabs(s[i]) < t.q[89];
  CHECK_INT(le, 901);
  CHECK_INT(lt, 900);
}

static void check_z(void) {
  nn_model m, mean;
  CHECK_INT(nn_model_init_head(&m, NN_CELL_LSTM, 1, 2, 0, 1), 0);
  CHECK_INT(nn_model_init_head(&mean, NN_CELL_LSTM, 1, 2, 0, 0), 0);
  /* Without the table: the normal quantile. */
  CHECK_NEAR(ivcal_z(&m, 0.9), 1.6448536269514722, 1e-12);
  CHECK_NEAR(ivcal_z(&m, 0.5), znorm(0.5), 0);
  nn_ival t = {.k = 3, .n = 500, .c = {0.5, 0.8, 0.9}, .q = {0.625, 1.25, 1.5}};
  CHECK_INT(nn_ival_set(&m, &t), 0);
  CHECK_STR(nn_model_get_meta(&m, NN_META_INTERVAL_KEY),
            "{\"n\":500,\"absz\":[[0.5,0.625],[0.8,1.25],[0.9,1.5]]}");
  /* Grid points give the table's values, in between the linear interpolation. */
  CHECK_NEAR(ivcal_z(&m, 0.5), 0.625, 0);
  CHECK_NEAR(ivcal_z(&m, 0.8), 1.25, 0);
  CHECK_NEAR(ivcal_z(&m, 0.9), 1.5, 0);
  CHECK_NEAR(ivcal_z(&m, 0.85), 1.375, 1e-15);
  CHECK_NEAR(ivcal_z(&m, 0.575), 0.625 + 0.25 * 0.625, 1e-15);
  /* Outside the grid: the normal quantile, bounded by the table's ends so that z never falls
   * as c grows. Above: normal 1.96 at 0.95 is beyond the last q, 1.5. Below: normal 0.6743 at
   * 0.4999 is above the first q, 0.625, so the first q; at 0.3, normal 0.3853 is below it. */
  CHECK_NEAR(ivcal_z(&m, 0.95), znorm(0.95), 0);
  CHECK_NEAR(ivcal_z(&m, 0.4999), 0.625, 0);
  CHECK_NEAR(ivcal_z(&m, 0.3), znorm(0.3), 0);
  /* A fat-tailed table that ends at 0.99 above the normal z at 0.995 (2.807): the 0.995 and
   * 0.999 intervals are at least as wide as the 0.99 one. */
  nn_ival fat = {.k = 2, .n = 150, .c = {0.9, 0.99}, .q = {1.6, 2.9}};
  nn_model mf;
  CHECK_INT(nn_model_init_head(&mf, NN_CELL_LSTM, 1, 2, 0, 1), 0);
  CHECK_INT(nn_ival_set(&mf, &fat), 0);
  CHECK_NEAR(ivcal_z(&mf, 0.99), 2.9, 0);
  CHECK_NEAR(ivcal_z(&mf, 0.995), 2.9, 0);
  CHECK_NEAR(ivcal_z(&mf, 0.999), znorm(0.999), 0); /* 3.29 > 2.9 */
  double prev = 0;
  int falls = 0;
  for (int i = 1; i < 1000; i++) {
    double z = ivcal_z(&mf, i / 1000.0);
    falls += z < prev;
    prev = z;
  }
  CHECK_INT(falls, 0);
  nn_model_free(&mf);
  /* A mean model has no interval table (the loader refuses one): normal. */
  CHECK_INT(nn_ival_set(&mean, &t), 0);
  CHECK_NEAR(ivcal_z(&mean, 0.9), 1.6448536269514722, 1e-12);
  /* Tables nn_ival_set refuses. */
  nn_ival bad = t;
  bad.c[2] = 0.8;
  CHECK_INT(nn_ival_set(&m, &bad), TC_EINVAL);
  bad = t, bad.q[1] = 0.5;
  CHECK_INT(nn_ival_set(&m, &bad), TC_EINVAL);
  bad = t, bad.n = 0;
  CHECK_INT(nn_ival_set(&m, &bad), TC_EINVAL);
  bad = t, bad.c[0] = 1;
  CHECK_INT(nn_ival_set(&m, &bad), TC_EINVAL);
  CHECK_NEAR(ivcal_z(&m, 0.9), 1.5, 0); /* unchanged */

  /* The engine's z is the model's, for every interval and after a model swap. */
  engine e;
  CHECK_INT(engine_init(&e, &m, 8), 0);
  CHECK_NEAR(e.z, 1.5, 0); /* engine_init's 0.9 */
  CHECK_INT(engine_set_interval(&e, 0.85), 0);
  CHECK_NEAR(e.z, 1.375, 1e-15);
  nn_model plain;
  CHECK_INT(nn_model_init_head(&plain, NN_CELL_LSTM, 1, 2, 0, 1), 0);
  engine_set_model(&e, &plain, 0);
  CHECK_NEAR(e.z, znorm(0.85), 0);
  engine_set_model(&e, &m, 0);
  CHECK_NEAR(e.z, 1.375, 1e-15);
  engine_free(&e);
  nn_model_free(&plain);
  nn_model_free(&m);
  nn_model_free(&mean);
}

/* nn_ival_get's messages and the loader's refusals. */
static void check_parse(void) {
  static const char *const bad[][2] = {
      {"[1,2]", "is not a JSON object"},
      {"{\"n\":", "is not a JSON object: "},
      {"{\"absz\":[[0.5,1]]}", "has no integer \"n\" >= 1"},
      {"{\"n\":0,\"absz\":[[0.5,1]]}", "has no integer \"n\" >= 1"},
      {"{\"n\":5,\"absz\":[]}", "has no \"absz\" array of 1 to 128"},
      {"{\"n\":5,\"absz\":[[0.5]]}", "point 0 is not a [coverage, quantile] pair of numbers"},
      {"{\"n\":5,\"absz\":[[0.5,1],[0.4,2]]}",
       "point 1 has coverage 0.4 after 0.5, expected increasing coverages"},
      {"{\"n\":5,\"absz\":[[0.5,1],[0.6,0.5]]}",
       "point 1 has quantile 0.5 after 1, expected non-decreasing quantiles"},
      {"{\"n\":5,\"absz\":[[1,1]]}", "point 0 has coverage 1, expected one in (0, 1)"},
      {"{\"n\":5,\"absz\":[[0.5,-1]]}", "point 0 has quantile -1, expected a finite one >= 0"},
  };
  nn_model m;
  nn_ival t;
  char err[256];
  CHECK_INT(nn_model_init_head(&m, NN_CELL_LSTM, 1, 2, 0, 1), 0);
  CHECK_INT(nn_ival_get(&m, &t, err, sizeof err), 0);
  CHECK_INT(t.k, 0);
  char path[] = "/tmp/test_ivcal_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_INT(nn_model_set_meta(&m, NN_META_INTERVAL_KEY, bad[i][0]), 0);
    CHECK_INT(nn_ival_get(&m, &t, err, sizeof err), TC_EFORMAT);
    CHECK_CONTAINS(err, "__metadata__ \"tickcast.interval_absz\" ");
    CHECK_CONTAINS(err, bad[i][1]);
    CHECK_INT(t.k, 0);
    CHECK_NEAR(ivcal_z(&m, 0.9), 1.6448536269514722, 1e-12); /* never a bad table's */
    nn_model back;
    CHECK_INT(nn_model_save(&m, path, err, sizeof err), 0);
    CHECK_INT(nn_model_load(&back, path, err, sizeof err), TC_EFORMAT);
    CHECK_CONTAINS(err, bad[i][1]);
  }
  /* A good table loads back as written; on a model without the scale head it is refused. */
  CHECK_INT(nn_model_set_meta(&m, NN_META_INTERVAL_KEY, "{\"n\":7,\"absz\":[[0.9,1.25]]}"), 0);
  nn_model back;
  CHECK_INT(nn_model_save(&m, path, err, sizeof err), 0);
  CHECK_INT(nn_model_load(&back, path, err, sizeof err), 0);
  CHECK_INT(nn_ival_get(&back, &t, err, sizeof err), 0);
  CHECK_INT(t.k, 1);
  CHECK_INT(t.n, 7);
  CHECK_NEAR(ivcal_z(&back, 0.9), 1.25, 0);
  nn_model_free(&back);
  nn_model mean;
  CHECK_INT(nn_model_init_head(&mean, NN_CELL_LSTM, 1, 2, 0, 0), 0);
  CHECK_INT(nn_model_set_meta(&mean, NN_META_INTERVAL_KEY, "{\"n\":7,\"absz\":[[0.9,1.25]]}"), 0);
  CHECK_INT(nn_model_save(&mean, path, err, sizeof err), 0);
  CHECK_INT(nn_model_load(&back, path, err, sizeof err), TC_EFORMAT);
  CHECK_CONTAINS(err, "has \"tickcast.interval_absz\" but no scale head");
  unlink(path);
  nn_model_free(&mean);
  nn_model_free(&m);
}

int main(void) {
  check_fit();
  check_fit_reals();
  check_z();
  check_parse();
  return check_done();
}
