/* test_score.c: daemon/pipeline/score.c, the plumbing between predictions and the statistics of
 * evalstat.c: MSE, skill and direction of a few predictions in closed form; the "up" class over
 * called pairs only; the strategy's gross and net returns and position changes with per-tick
 * costs, equal-weighted over instruments; losses summed per timestamp before the Diebold-Mariano
 * test and the bootstrap (same-time predictions are one observation); the stable sort; the order
 * independence of score_dm_by_time; the curves ending at the figures; score_predict of a zero
 * model. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "daemon/pipeline/dataset.h"
#include "daemon/pipeline/score.h"
#include "ingest/tickfile.h"
#include "nn/base/tc_err.h"
#include "nn/model.h"

static void check_closed_form(void) {
  /* One instrument, three predictions at distinct times, costs 0.01, 0.02, 0.03. */
  score_pt p[3] = {{10, 0, 0.1, 0.2, 0.01}, {20, 0, -0.2, 0.1, 0.02}, {30, 0, 0.0, -0.3, 0.03}};
  score_fig f;
  CHECK_INT(score_figures(p, 3, 1, &f), 0);
  CHECK_INT(f.n, 3);
  CHECK_INT(f.times, 3);
  CHECK_NEAR(f.mse, (0.01 + 0.09 + 0.09) / 3, 1e-15);
  CHECK_NEAR(f.mae, (0.1 + 0.3 + 0.3) / 3, 1e-15);
  CHECK_NEAR(f.mse_rw, (0.04 + 0.01 + 0.09) / 3, 1e-15);
  CHECK_NEAR(f.skill, 1 - 0.19 / 0.14, 1e-14);
  /* Direction: the zero prediction calls nothing; (0.1, 0.2) is a hit, (-0.2, 0.1) a miss. */
  CHECK_INT(f.dir.n, 2);
  CHECK_INT(f.dir.nocall, 1);
  CHECK_INT(f.dir.hits, 1);
  CHECK_NEAR(f.dir.acc, 0.5, 0);
  CHECK_NEAR(f.dir.base, 1.0, 0); /* both called returns went up */
  CHECK_INT(f.tp, 1);
  CHECK_INT(f.fn, 1);
  CHECK_INT(f.fp + f.tn, 0);
  CHECK_NEAR(f.precision, 1.0, 0);
  CHECK_NEAR(f.recall, 0.5, 0);
  CHECK_NEAR(f.f1, 2.0 / 3, 1e-15);
  /* Strategy: +1 (cost 1 x 0.01), -1 (2 x 0.02), 0 (1 x 0.03); gross 0.2 - 0.1 + 0. */
  CHECK_INT(f.ninst, 1);
  CHECK_INT(f.changes, 3);
  CHECK_NEAR(f.gross, 0.1, 1e-15);
  CHECK_NEAR(f.net, 0.1 - 0.08, 1e-15);
  CHECK_NEAR(f.hold, 0.0, 1e-15);
  /* DM on three observations of d = se_model - se_rw, against evalstat directly. */
  double d[3] = {0.01 - 0.04, 0.09 - 0.01, 0.09 - 0.09};
  evalstat_dm dm;
  CHECK_INT(evalstat_dm_test(d, NULL, 3, -1, &dm), 0);
  CHECK(f.has_dm && f.dm.stat == dm.stat && f.dm.p_hln == dm.p_hln);
  CHECK(f.has_ci);
  CHECK(f.ci.lo <= f.skill && f.skill <= f.ci.hi);

  /* The zero model: every figure says "nothing", and the interval is [0, 0]. */
  for (int i = 0; i < 3; i++)
    p[i].pred = 0;
  CHECK_INT(score_figures(p, 3, 1, &f), 0);
  CHECK(f.skill == 0 && f.has_ci && f.ci.lo == 0 && f.ci.hi == 0);
  CHECK(f.dm.stat == 0 && f.dm.p == 1);
  CHECK_INT(f.dir.n, 0);
  CHECK(isnan(f.dir.acc) && isnan(f.precision));
  CHECK_INT(f.changes, 0);
  CHECK(f.gross == 0 && f.net == 0);

  /* One time only: no test, no interval; nothing at all: n 0, skill NaN. */
  CHECK_INT(score_figures(p, 1, 1, &f), 0);
  CHECK(!f.has_dm && !f.has_ci);
  CHECK_INT(score_figures(p, 0, 1, &f), 0);
  CHECK(f.n == 0 && isnan(f.skill));
}

/* Two instruments at the same timestamps: the tests see per-time sums; the strategy averages. */
static void check_pooled(void) {
  enum { T = 40 };
  score_pt p[2 * T];
  double lm[T], lr[T];
  uint64_t s = 7;
  for (int t = 0; t < T; t++) {
    lm[t] = lr[t] = 0;
    for (int k = 0; k < 2; k++) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      double real = ((double)(s >> 11) / 9007199254740992.0 - 0.5) * 0.02;
      double pred = (k == 0 ? 0.3 : -0.1) * real + (t % 3 - 1) * 1e-3;
      p[2 * t + k] = (score_pt){1000 + t, k, pred, real, k == 0 ? 1e-4 : 2e-4};
      lm[t] += (pred - real) * (pred - real);
      lr[t] += real * real;
    }
  }
  score_fig f, f0, f1;
  CHECK_INT(score_figures(p, 2 * T, 2, &f), 0);
  CHECK_INT(f.n, 2 * T);
  CHECK_INT(f.times, T);
  evalstat_dm dm;
  CHECK_INT(evalstat_dm_test(lm, lr, T, -1, &dm), 0);
  CHECK(f.dm.stat == dm.stat && f.dm.lag == dm.lag && f.dm.p_hln == dm.p_hln);
  evalstat_boot b;
  CHECK_INT(evalstat_skill_boot(lm, lr, T, SCORE_LEVEL, 0, 0, SCORE_BOOT_SEED, &b), 0);
  CHECK(f.ci.lo == b.lo && f.ci.hi == b.hi);
  /* Equal weight: the pooled strategy is the mean of the instruments' own. */
  score_pt a[T], c[T];
  for (int t = 0; t < T; t++)
    a[t] = p[2 * t], c[t] = p[2 * t + 1];
  CHECK_INT(score_figures(a, T, 2, &f0), 0);
  CHECK_INT(score_figures(c, T, 2, &f1), 0);
  CHECK_INT(f.ninst, 2);
  CHECK_NEAR(f.gross, (f0.gross + f1.gross) / 2, 1e-15);
  CHECK_NEAR(f.net, (f0.net + f1.net) / 2, 1e-15);
  CHECK_NEAR(f.hold, (f0.hold + f1.hold) / 2, 1e-15);
  CHECK_INT(f.changes, f0.changes + f1.changes);
  CHECK(f0.net < f0.gross);
  /* The curves end at the figures. */
  double g[2 * T], n[2 * T], h[2 * T];
  CHECK_INT(score_curves(p, 2 * T, 2, g, n, h), 0);
  CHECK(g[2 * T - 1] == f.gross && n[2 * T - 1] == f.net && h[2 * T - 1] == f.hold);

  /* score_dm_by_time: the same statistic from the differences in any order. */
  int64_t ts[2 * T];
  double dd[2 * T];
  for (int k = 0; k < 2 * T; k++) {
    int j = (k * 37) % (2 * T); /* a permutation: 37 is prime to 80 */
    ts[k] = p[j].ts;
    dd[k] = (p[j].pred - p[j].real) * (p[j].pred - p[j].real) - p[j].real * p[j].real;
  }
  evalstat_dm dm2;
  uint64_t times;
  CHECK_INT(score_dm_by_time(ts, dd, 2 * T, &dm2, &times), 0);
  CHECK_INT(times, T);
  CHECK_NEAR(dm2.stat, dm.stat, 1e-12 * fabs(dm.stat));
  CHECK_INT(score_dm_by_time(ts, dd, 1, &dm2, &times), TC_EINVAL);
}

static void check_sort(void) {
  /* By ts, then instrument; equal (ts, instrument) pairs keep their order (the pred tags it). */
  score_pt p[7] = {{5, 1, 0, 0, 0}, {3, 0, 1, 0, 0}, {5, 0, 2, 0, 0}, {3, 0, 3, 0, 0},
                   {1, 2, 4, 0, 0}, {5, 1, 5, 0, 0}, {3, 1, 6, 0, 0}};
  CHECK_INT(score_sort(p, 7), 0);
  static const int want[7] = {4, 1, 3, 6, 2, 0, 5};
  for (int k = 0; k < 7; k++)
    CHECK_INT((int)p[k].pred, want[k]);
  CHECK_INT(score_sort(p, 0), 0);
  /* Against a stable insertion sort: series after series, each in time order with repeated
   * times (eval's layout: one run each), then the same points shuffled (runs of one or two),
   * with few distinct times and instruments so that equal keys abound. */
  srand(7);
  for (int rep = 0; rep < 200; rep++) {
    int n = rep % 3 == 2 ? rand() % 600 : rand() % 2000, ns = 1 + rand() % 40, at = 0;
    score_pt *a = malloc((size_t)(n ? n : 1) * sizeof *a),
             *b = malloc((size_t)(n ? n : 1) * sizeof *b);
    for (int sym = 0; at < n; sym = (sym + 1) % ns) {
      int len = 1 + rand() % 100;
      int64_t t = rand() % 50;
      for (int k = 0; k < len && at < n; k++, at++) {
        t += rand() % 3;                      /* 0: a repeated time */
        a[at] = (score_pt){t, sym, at, 0, 0}; /* pred: the original place */
      }
    }
    if (rep % 2)
      for (int i = n - 1; i > 0; i--) {
        int j = rand() % (i + 1);
        score_pt t = a[i];
        a[i] = a[j], a[j] = t;
      }
    memcpy(b, a, (size_t)n * sizeof *a);
    for (int i = 1; i < n; i++) { /* the reference */
      score_pt x = b[i];
      int j = i;
      for (; j > 0 && (x.ts < b[j - 1].ts || (x.ts == b[j - 1].ts && x.sym < b[j - 1].sym)); j--)
        b[j] = b[j - 1];
      b[j] = x;
    }
    CHECK_INT(score_sort(a, (size_t)n), 0);
    int bad = 0;
    for (int i = 0; i < n; i++)
      bad += a[i].ts != b[i].ts || a[i].sym != b[i].sym || a[i].pred != b[i].pred;
    CHECK_INT(bad, 0);
    free(a), free(b);
  }
}

/* A zero-head model predicts exactly 0 at every tick of every series. */
static void check_predict(void) {
  char path[64], err[256];
  snprintf(path, sizeof path, "/tmp/test_score_%d.csv", (int)getpid());
  FILE *fp = fopen(path, "w");
  fprintf(fp, "sym,ts,px\nA,1,10\nB,1,20\nA,2,10.5\nA,3,10.2\nB,4,19\n");
  fclose(fp);
  dataset d;
  CHECK_INT(dataset_init(&d), 0);
  d.ts_unit = TICKFILE_TS_NS; /* small integers on purpose */
  CHECK_INT(dataset_load(&d, path, 0, err, sizeof err), 0);
  nn_model m;
  CHECK_INT(nn_model_init(&m, 1, 4, 0), 0);
  for (size_t i = 0; i < m.nparams; i++)
    m.params[i] = 0.25f;
  for (int j = 0; j < m.H; j++)
    m.head_w[j] = 0;
  m.head_b[0] = 0;
  m.tgt_mean[0] = 0; /* statistics live in params too */
  double pa[3] = {1, 1, 1}, pb[2] = {1, 1}, *pred[2] = {pa, pb};
  CHECK_INT(score_predict(&m, &d, pred), 0);
  CHECK(pa[0] == 0 && pa[1] == 0 && pa[2] == 0 && pb[0] == 0 && pb[1] == 0);
  nn_model_free(&m);
  dataset_free(&d);
  unlink(path);
}

int main(void) {
  check_closed_form();
  check_pooled();
  check_sort();
  check_predict();
  return check_done();
}
