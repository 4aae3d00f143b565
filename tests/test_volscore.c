/* test_volscore.c: daemon/pipeline/volscore.c, the variance forecasts of `eval`: the baselines of
 * one series in closed form (the constant and EWMA started at the fitting part's mean square,
 * GARCH fitted there, the first half when too little comes before the first scored prediction);
 * the figures of a few forecasts in closed form (QLIKE, MSE of squared returns, the DM mean of
 * the model minus a baseline, the model's interval around its mean with its own z, the baselines'
 * around zero with the normal z). */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "daemon/pipeline/volscore.h"
#include "nn/features.h"

static void check_baselines(void) {
  enum { N = 401 };
  static double raw[N * NN_F];
  ds_series s = {.n = N, .raw = raw};
  unsigned x = 7;
  for (int t = 1; t < N; t++) { /* returns of +-0.01 and +-0.02 */
    x = x * 1103515245u + 12345u;
    raw[t * NN_F] = ((x >> 16) & 1 ? 0.01 : -0.02) * ((x >> 17) & 1 ? 1 : -1);
  }
  static double hs[3][N];
  double *h[VOL_N] = {NULL, hs[0], hs[1], hs[2]};
  vol_base b;
  vol_baselines(&s, 200, &b, h); /* fitted on e_0..e_199 = the returns of ticks 1..200 */
  double ms = 0;
  for (int j = 0; j < 200; j++)
    ms += raw[(j + 1) * NN_F] * raw[(j + 1) * NN_F] / 200;
  CHECK_INT(b.nfit, 200);
  CHECK_INT(b.in_sample, 0);
  CHECK_NEAR(b.var_fit, ms, 1e-18);
  CHECK_NEAR(h[VOL_CONST][0], b.var_fit, 0);
  CHECK_NEAR(h[VOL_CONST][399], b.var_fit, 0);
  CHECK_NEAR(h[VOL_EWMA][0], b.var_fit, 0);
  double e0 = raw[NN_F], e1 = raw[2 * NN_F];
  CHECK_NEAR(h[VOL_EWMA][1], 0.94 * ms + 0.06 * e0 * e0, 1e-18);
  CHECK_NEAR(h[VOL_EWMA][2], 0.94 * (0.94 * ms + 0.06 * e0 * e0) + 0.06 * e1 * e1, 1e-18);
  CHECK(b.garch_ok);
  CHECK_NEAR(h[VOL_GARCH][0], b.g.h0, 0);
  CHECK_NEAR(h[VOL_GARCH][1], b.g.omega + b.g.alpha * e0 * e0 + b.g.beta * b.g.h0, 1e-18);
  vol_baselines(&s, 50, &b, h); /* too little before: the first half, in sample */
  CHECK_INT(b.nfit, 200);
  CHECK_INT(b.in_sample, 1);
}

static void check_figures(void) {
  /* Three forecasts at distinct times; the model's mean 0.01 at the first. */
  vol_pt p[3] = {{10, 0, 0.02, 0.01, {1e-4, 4e-4, 2e-4, 1e-4}, 0},
                 {20, 0, -0.01, 0, {4e-4, 1e-4, 2e-4, 1e-4}, 0},
                 {30, 0, 0.03, 0, {9e-4, 1e-4, 2e-4, 1e-4}, 0}};
  vol_fig f;
  CHECK_INT(vol_figures(p, 3, 0.9, 1.6448536269514722, 0, &f), 0);
  CHECK_INT(f.n, 3);
  double q0 = 0, q1 = 0, m0 = 0;
  for (int j = 0; j < 3; j++) {
    double e2 = p[j].real * p[j].real;
    q0 += (log(p[j].h[0]) + e2 / p[j].h[0]) / 3;
    q1 += (log(p[j].h[1]) + e2 / p[j].h[1]) / 3;
    m0 += (e2 - p[j].h[0]) * (e2 - p[j].h[0]) / 3;
  }
  CHECK_NEAR(f.qlike[VOL_MODEL], q0, 1e-12);
  CHECK_NEAR(f.qlike[VOL_EWMA], q1, 1e-12);
  CHECK_NEAR(f.mse[VOL_MODEL], m0, 1e-20);
  CHECK(f.has_dm);
  CHECK_NEAR(f.dm_qlike[VOL_EWMA].mean, q0 - q1, 1e-12);
  /* Interval at 90% (z = 1.6449): the model's [0.01 -+ 0.01645] holds 0.02, [-+0.0329] holds
   * -0.01, [-+0.0493] holds 0.03; the constant's +-0.01645 misses 0.02, -0.01 in, 0.03 out. */
  CHECK(f.has_iv);
  CHECK_INT(f.iv[VOL_MODEL].misses, 0);
  CHECK_INT(f.iv[VOL_CONST].misses, 2);
  CHECK_NEAR(f.iv[VOL_MODEL].width, 2 * 1.6448536269514722 * (0.01 + 0.02 + 0.03) / 3, 1e-12);
  /* A calibrated z of 0.9 for the model only: [0.01 -+ 0.009] misses 0.02, [-+0.018] holds -0.01,
   * [-+0.027] misses 0.03; the baselines keep the normal z (the constant still misses 2). */
  CHECK_INT(vol_figures(p, 3, 0.9, 0.9, 0, &f), 0);
  CHECK_INT(f.iv[VOL_MODEL].misses, 2);
  CHECK_NEAR(f.iv[VOL_MODEL].z, 0.9, 0);
  CHECK_NEAR(f.iv[VOL_CONST].z, 1.6448536269514722, 1e-12);
  CHECK_INT(f.iv[VOL_CONST].misses, 2);
  CHECK_NEAR(f.iv[VOL_MODEL].width, 2 * 0.9 * (0.01 + 0.02 + 0.03) / 3, 1e-12);
  /* Online: the model's interval takes each point's z (0.9, 3, 0.5: [0.01 -+ 0.009] misses 0.02,
   * [-+0.06] holds -0.01, [-+0.015] misses 0.03), the static one (z 0.9) sits beside it. */
  p[0].z = 0.9, p[1].z = 3, p[2].z = 0.5;
  CHECK_INT(vol_figures(p, 3, 0.9, 0.9, 1, &f), 0);
  CHECK_INT(f.iv[VOL_MODEL].misses, 2);
  CHECK_NEAR(f.iv[VOL_MODEL].z, (0.9 + 3 + 0.5) / 3, 1e-15);
  CHECK_NEAR(f.iv[VOL_MODEL].width, 2 * (0.9 * 0.01 + 3 * 0.02 + 0.5 * 0.03) / 3, 1e-15);
  CHECK_INT(f.iv_static.misses, 2);
  CHECK_NEAR(f.iv_static.width, 2 * 0.9 * (0.01 + 0.02 + 0.03) / 3, 1e-12);
  p[1].z = 0.1; /* [-+0.002] misses -0.01 too */
  CHECK_INT(vol_figures(p, 3, 0.9, 0.9, 1, &f), 0);
  CHECK_INT(f.iv[VOL_MODEL].misses, 3);
  CHECK_INT(f.iv_static.misses, 2);
  CHECK_INT(vol_figures(p, 0, 0.9, 1.6448536269514722, 0, &f), 0);
  CHECK_INT(f.n, 0);
}

int main(void) {
  check_baselines();
  check_figures();
  return check_done();
}
