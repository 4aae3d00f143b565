/* test_ivtrack.c: the online interval (daemon/pipeline/ivtrack.h). The tracker's long-run
 * guarantee (Angelopoulos, Candes and Tibshirani 2023, Proposition 1) checked as an invariant at
 * every step T of adversarial and random score sequences: the exact identity eta sum(err - alpha)
 * = q_{T+1} - q_1 - F_T, the bound |mean(err) - alpha| <= (B + eta) / (eta T) when no score falls
 * below eta alpha (then the floor never acts), and with the floor's term otherwise; q never
 * negative; coverage converging from a miscalibrated start on i.i.d. normal residuals; the series
 * run eval uses; and the engine: each instrument's lo_px..hi_px follows the tracker on its own
 * prices, whatever the chunking, and a model swap restarts it at the new model's z. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "daemon/pipeline/engine.h"
#include "daemon/pipeline/evalstat.h"
#include "daemon/pipeline/ivcal.h"
#include "daemon/pipeline/ivtrack.h"
#include "nn/base/tc_err.h"

static uint64_t rng = 2023;
static double urand(void) {
  uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}
static double nrand(void) { /* Box-Muller */
  double u = urand(), v = urand();
  return sqrt(-2 * log(u > 0 ? u : 1e-300)) * cos(2 * M_PI * v);
}

/* How a score is chosen at step t with the tracker at q. */
enum { SC_MAX, SC_ZERO, SC_CHASE, SC_UNIFORM, SC_NORMAL, SC_SMALL, SC_N };

static double score(int kind, double q, double B, double eta, double alpha, int t) {
  switch (kind) {
  case SC_MAX: return B;  /* every step a miss until q passes B */
  case SC_ZERO: return 0; /* never a miss: the floor holds q at 0 */
  case SC_CHASE:          /* the adversary: a miss just above q, or a hit exactly at it */
    return t % 3 ? fmin(B, q + 1e-9) : fmin(B, fmax(q, eta * alpha));
  case SC_UNIFORM: return eta * alpha + urand() * (B - eta * alpha);
  case SC_NORMAL: return fmin(B, fabs(nrand()));
  default: return urand() < 0.5 ? 0.5 * eta * alpha * urand() : B * urand(); /* SC_SMALL */
  }
}

/* Runs T steps of the tracker from q1 on scores of one kind, checking at every step the identity,
 * q >= 0 and the bound; floor_free: no score below eta alpha, so the floor must never act and
 * Proposition 1's bound holds as stated. */
static void check_bound(int kind, double q1, double B, double eta, double c, int T,
                        int floor_free) {
  double alpha = 1 - c, q = q1, sum = 0, floor_add = 0;
  long small = 0, bad_id = 0, bad_bound = 0, neg = 0;
  for (int t = 1; t <= T; t++) {
    double s = score(kind, q, B, eta, alpha, t);
    int err = s > q; /* the score form of "the price fell outside the interval at z = q" */
    double raw = q + eta * ((double)err - alpha), next = ivtrack_step(q, err, eta, c);
    floor_add += next - raw;
    small += s < eta * alpha;
    sum += (double)err - alpha;
    q = next;
    neg += q < 0;
    /* eta sum(err - alpha) = q_{T+1} - q_1 - F_T, up to the rounding of T additions. */
    if (fabs(eta * sum - (q - q1 - floor_add)) > 1e-9 * (1 + t * eta))
      bad_id++;
    double bound = (B + eta) / (eta * t) + alpha * (double)small / t;
    if (fabs(sum / t) > bound + 1e-12)
      bad_bound++;
  }
  CHECK_INT(bad_id, 0);
  CHECK_INT(bad_bound, 0);
  CHECK_INT(neg, 0);
  if (floor_free) {
    CHECK_INT(small, 0);
    CHECK_NEAR(floor_add, 0, 0);
  }
}

static void check_bounds(void) {
  const double etas[] = {0.005, 0.02, 0.05, 0.5};
  const double covs[] = {0.5, 0.9, 0.99};
  for (size_t a = 0; a < sizeof etas / sizeof *etas; a++)
    for (size_t b = 0; b < sizeof covs / sizeof *covs; b++) {
      double eta = etas[a], c = covs[b], B = 6;
      check_bound(SC_MAX, 0, B, eta, c, 5000, 1);
      check_bound(SC_MAX, B, B, eta, c, 5000, 1);
      check_bound(SC_CHASE, 1.6, B, eta, c, 20000, 1);
      check_bound(SC_UNIFORM, 0.3, B, eta, c, 20000, 1);
      check_bound(SC_NORMAL, 1.0, B, eta, c, 20000, 0);
      check_bound(SC_ZERO, 1.0, B, eta, c, 5000, 0);
      check_bound(SC_SMALL, 0.0, B, eta, c, 20000, 0);
    }
  /* The bound is tight in order: always missing from q1 = 0, the mean error after T steps is
   * (1 - alpha) while q climbs, exactly q_{T+1} / (eta T) above alpha. */
  double q = 0, eta = 0.02, c = 0.9;
  int T = 50;
  for (int t = 0; t < T; t++)
    q = ivtrack_step(q, 1, eta, c);
  CHECK_NEAR(q, T * eta * c, 1e-12);
  CHECK_NEAR((1 - (1 - c)) - q / (eta * T), 0, 1e-12);
  /* The floor: a hit below eta alpha takes q to 0, never below. */
  CHECK_NEAR(ivtrack_step(0.001, 0, 0.02, 0.9), 0, 0);
  CHECK_NEAR(ivtrack_step(0.5, 0, 0.02, 0.9), 0.498, 1e-15);
  CHECK_NEAR(ivtrack_step(0.5, 1, 0.02, 0.9), 0.518, 1e-15);
}

/* From z = 0.5 (covering ~38%) and z = 4 (~100%), on i.i.d. normal residuals: the mean miss rate
 * over the second half is within 0.004 of alpha and q averages the normal quantile. */
static void check_convergence(void) {
  const double starts[] = {0.5, 4.0};
  for (int k = 0; k < 2; k++) {
    double q = starts[k], eta = 0.02, c = 0.9, miss = 0, qs = 0, qmin = q;
    int T = 400000;
    for (int t = 0; t < T; t++) {
      int err = fabs(nrand()) > q;
      if (t >= T / 2)
        miss += err, qs += q;
      q = ivtrack_step(q, err, eta, c);
      qmin = fmin(qmin, q);
    }
    CHECK_NEAR(miss / (T / 2), 0.1, 0.004);
    CHECK_NEAR(qs / (T / 2), 1.6448536269514722, 0.03);
    CHECK(qmin >= 0);
  }
}

/* ivtrack_series is the loop eval runs: z[0] = z0, each next z from eval's own miss test. */
static void check_series(void) {
  enum { N = 2000 };
  static double ret[N], mu[N], var[N], z[N];
  for (int t = 0; t < N; t++) {
    mu[t] = 0.001 * nrand();
    var[t] = 1e-4 * (0.5 + urand());
    ret[t] = mu[t] + sqrt(var[t]) * nrand() * (t < N / 2 ? 1.5 : 0.7); /* a shift half-way */
  }
  ivtrack_series(ret, mu, var, N, 1.6, 0.02, 0.9, z);
  double q = 1.6, sum = 0;
  int bad = 0;
  for (int t = 0; t < N; t++) {
    bad += z[t] != q;
    int err = evalstat_interval_miss(ret[t], mu[t], var[t], q);
    sum += err - 0.1;
    q = ivtrack_step(q, err, 0.02, 0.9);
  }
  CHECK_INT(bad, 0);
  /* No floor here (z stays far above 0): the identity over the series. */
  CHECK_NEAR(0.02 * sum, q - 1.6, 1e-9);
  CHECK(z[N / 2 - 1] > 1.6 && z[N - 1] < z[N / 2 - 1]); /* widened, then narrowed */
  ivtrack_series(ret, mu, var, N, 1.6, 0, 0.9, z);
  CHECK(z[0] == 1.6 && z[N - 1] == 1.6);
}

/* Ticks of NS instruments, random-walk prices with a volatility that jumps. */
#define NT 20000
#define NS 5
static void make_ticks(eng_tick *t) {
  double px[NS];
  int64_t ts[NS] = {0};
  for (int k = 0; k < NS; k++)
    px[k] = 50 + 10 * k;
  for (int i = 0; i < NT; i++) {
    int k = (int)(urand() * NS);
    memset(&t[i], 0, sizeof t[i]);
    t[i].t.sym_len = (uint8_t)sprintf(t[i].t.sym, "I%d", k);
    px[k] *= exp(nrand() * (i < NT / 2 ? 0.01 : 0.02));
    ts[k] += 1000000000;
    t[i].t.ts = ts[k];
    t[i].t.px = px[k];
    t[i].t.qty = 1;
    t[i].partition = -1;
    t[i].reason = TICK_OK;
  }
}

static void gauss_model(nn_model *m) {
  CHECK_INT(nn_model_init_head(m, NN_CELL_LSTM, 1, 4, 0, 1), 0);
  for (size_t i = 0; i < m->nparams; i++)
    m->params[i] = (float)(urand() * 2 - 1) * 0.3f;
  for (int i = 0; i < NN_F; i++)
    m->feat_std[i] = 1;
  m->tgt_std[0] = 0.01f;
}

static void run_engine(const nn_model *m, const eng_tick *in, eng_tick *out, int chunk,
                       double eta) {
  engine e;
  memcpy(out, in, NT * sizeof *in);
  CHECK_INT(engine_init_exact(&e, m, chunk, chunk), 0);
  CHECK_INT(engine_set_adapt(&e, eta), 0);
  for (int i = 0; i < NT; i += chunk)
    CHECK_INT(engine_process(&e, out + i, NT - i < chunk ? NT - i : chunk), 0);
  engine_free(&e);
}

/* The engine's intervals: per instrument, z starts at the model's, then moves by the tracker on
 * whether each price fell outside the interval emitted after the tick before (recomputed here
 * from the emitted fields); chunks of 1 and 64 give the same bits; eta 0 is the static z. */
static void check_engine(void) {
  nn_model m;
  gauss_model(&m);
  static eng_tick in[NT], a[NT], b[NT], s[NT];
  make_ticks(in);
  double eta = 0.05, c = 0.9, z0 = ivcal_z(&m, c);
  run_engine(&m, in, a, 1, eta);
  run_engine(&m, in, b, 64, eta);
  run_engine(&m, in, s, 64, 0);
  int same = 1, follows = 1, stat = 1;
  double q[NS], lo[NS], hi[NS], slo[NS], shi[NS], sum[NS] = {0}, miss = 0, smiss = 0;
  int seen[NS] = {0};
  for (int i = 0; i < NT; i++) {
    same &= a[i].lo_px == b[i].lo_px && a[i].hi_px == b[i].hi_px && a[i].pred_std == b[i].pred_std;
    int k = a[i].t.sym[1] - '0';
    if (seen[k]) {
      int err = ivtrack_miss(a[i].t.px, lo[k], hi[k]);
      miss += err;
      smiss += ivtrack_miss(s[i].t.px, slo[k], shi[k]);
      sum[k] += err - (1 - c);
      q[k] = ivtrack_step(q[k], err, eta, c);
    } else {
      q[k] = z0;
    }
    seen[k] = 1;
    double l, h;
    ivtrack_bounds(a[i].t.px, a[i].pred_ret, a[i].pred_std, q[k], &l, &h);
    follows &= l == a[i].lo_px && h == a[i].hi_px;
    lo[k] = l, hi[k] = h;
    ivtrack_bounds(s[i].t.px, s[i].pred_ret, s[i].pred_std, z0, &l, &h);
    stat &= l == s[i].lo_px && h == s[i].hi_px;
    slo[k] = l, shi[k] = h;
  }
  CHECK(same);
  CHECK(follows);
  CHECK(stat);
  /* The volatility doubles half-way: the static z under-covers, the tracker recovers. */
  CHECK_NEAR(miss / (NT - NS), 1 - c, 0.03);
  CHECK(smiss / (NT - NS) > 1 - c + 0.05);
  for (int k = 0; k < NS; k++) /* the identity per instrument (no floor at these z) */
    CHECK_NEAR(eta * sum[k], q[k] - z0, 1e-9);
  /* A model swap restarts every instrument's z at the new model's: the next tick emits with z0
   * and counts no miss. */
  engine e;
  memcpy(b, in, sizeof in);
  CHECK_INT(engine_init(&e, &m, 64), 0);
  CHECK_INT(engine_set_adapt(&e, eta), 0);
  CHECK_INT(engine_process(&e, b, 64), 0);
  engine_set_model(&e, &m, 0);
  for (uint32_t k = 0; k < e.st.count; k++)
    CHECK_INT(e.st.inst[k].iv_on, 0);
  CHECK_INT(engine_process(&e, b + 64, 1), 0);
  double l, h;
  ivtrack_bounds(b[64].t.px, b[64].pred_ret, b[64].pred_std, z0, &l, &h);
  CHECK(l == b[64].lo_px && h == b[64].hi_px);
  CHECK_NEAR(e.st.inst[b[64].slot].iv[0], z0, 0);
  /* A bound that overflows (a price near DBL_MAX) is not kept: a state blob refuses non-finite
   * bounds, so the instrument's tracker restarts at its next tick instead. */
  eng_tick big[2];
  memset(big, 0, sizeof big);
  for (int i = 0; i < 2; i++) {
    big[i].t.sym_len = (uint8_t)sprintf(big[i].t.sym, "BIG");
    big[i].t.ts = 1000 + i;
    big[i].t.px = i ? 100 : DBL_MAX;
    big[i].t.qty = 1;
    big[i].partition = -1;
    big[i].reason = TICK_OK;
  }
  CHECK_INT(engine_process(&e, big, 1), 0);
  CHECK(!isfinite(big[0].hi_px));
  CHECK_INT(e.st.inst[big[0].slot].iv_on, 0);
  CHECK_INT(engine_process(&e, big + 1, 1), 0);
  CHECK(isfinite(big[1].lo_px) && isfinite(big[1].hi_px));
  CHECK_INT(e.st.inst[big[1].slot].iv_on, 1);
  CHECK_NEAR(e.st.inst[big[1].slot].iv[0], z0, 0); /* restarted, no miss counted */
  CHECK_INT(engine_set_adapt(&e, -0.1), TC_EINVAL);
  CHECK_INT(engine_set_adapt(&e, NAN), TC_EINVAL);
  CHECK_NEAR(e.eta, eta, 0);
  engine_free(&e);
  nn_model_free(&m);
}

int main(void) {
  check_bounds();
  check_convergence();
  check_series();
  check_engine();
  return check_done();
}
