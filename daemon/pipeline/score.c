/* score.c: a model's predictions over a dataset and the figures of scored predictions (see
 * score.h). */
#include "daemon/pipeline/score.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "nn/base/tc_err.h"
#include "nn/features.h"
#include "nn/lstm.h"

/* One thread's part of score_predict_threads: the series who[0..ns) and its scratch. */
typedef struct score_part {
  const nn_model *m;
  const dataset *d;
  double **pred;
  double **var; /* the scale head's variance forecasts, or NULL */
  int *who;     /* (ns) its series, in index order */
  int ns;       /* series */
  int rc;       /* 0 or TC_ENOMEM */
} score_part;

/* The k-th tick of every series of the part in lockstep, in batches of at most w.Bkern (and 1024)
 * instruments: nn_projT then gives each series the bits of stepping it alone, however the series
 * are split between threads and batches (nn/lstm.h). */
static void *score_part_run(void *arg) {
  score_part *pt = arg;
  const nn_model *m = pt->m;
  const dataset *d = pt->d;
  int ns = pt->ns, Bmax = ns < 1024 ? ns : 1024;
  size_t sf = nn_state_floats(m), maxn = 0;
  for (int j = 0; j < ns; j++)
    if (d->s[pt->who[j]].n > maxn)
      maxn = d->s[pt->who[j]].n;
  nn_work w;
  memset(&w, 0, sizeof w);
  float *state = calloc((size_t)ns * sf, sizeof(float)), *x = malloc((size_t)Bmax * NN_F * 4);
  float *y = malloc((size_t)Bmax * 4), **sp = malloc((size_t)Bmax * sizeof *sp);
  float *sv = pt->var ? malloc((size_t)Bmax * 4) : NULL;
  int *who = malloc((size_t)Bmax * sizeof *who);
  pt->rc = TC_ENOMEM;
  if (!state || !x || !y || !sp || !who || (pt->var && !sv) || nn_work_init(&w, m, Bmax) != 0)
    goto done;
  int bcap = w.Bkern < Bmax ? w.Bkern : Bmax;
  const double v0 = (double)m->tgt_std[0] * m->tgt_std[0];
  for (size_t k = 0; k < maxn; k++) {
    for (int j = 0; j < ns;) {
      int B = 0;
      for (; j < ns && B < bcap; j++) {
        int i = pt->who[j];
        if (k >= d->s[i].n)
          continue;
        nn_features_standardize(m, d->s[i].raw + k * NN_F, x + (size_t)B * NN_F);
        sp[B] = state + (size_t)j * sf;
        who[B++] = i;
      }
      if (B == 0)
        continue;
      nn_step(m, &w, B, x, sp, y);
      for (int b = 0; b < B; b++)
        pt->pred[who[b]][k] = nn_pred_ret(m, y[b]);
      if (pt->var) { /* the scale head's variance of the next log return: exp(s) target.std^2 */
        nn_model_scale_out(m, B, sp, sv);
        for (int b = 0; b < B; b++)
          pt->var[who[b]][k] = exp((double)sv[b]) * v0;
      }
    }
  }
  pt->rc = 0;
done:
  nn_work_free(&w);
  free(state), free(x), free(y), free(sp), free(who), free(sv);
  return NULL;
}

int score_predict(const nn_model *m, const dataset *d, double **pred) {
  return score_predict_var_threads(m, d, pred, NULL, 1);
}

int score_predict_var(const nn_model *m, const dataset *d, double **pred, double **var) {
  return score_predict_var_threads(m, d, pred, var, 1);
}

int score_predict_threads(const nn_model *m, const dataset *d, double **pred, int threads) {
  return score_predict_var_threads(m, d, pred, NULL, threads);
}

/* A series and its length, for dealing series out to threads. */
typedef struct score_len {
  size_t n;
  int i;
} score_len;

static int longer_first(const void *a, const void *b) { /* then by index: a total order */
  const score_len *x = a, *y = b;
  if (x->n != y->n)
    return x->n > y->n ? -1 : 1;
  return x->i - y->i;
}

int score_predict_var_threads(const nn_model *m, const dataset *d, double **pred, double **var,
                              int threads) {
  int ns = d->ns, rc = TC_ENOMEM;
  if (ns == 0)
    return 0;
  if (threads > ns)
    threads = ns;
  if (threads < 1)
    threads = 1;
  /* Series to threads, the longest first, each to the thread with the fewest ticks so far. */
  score_part *pt = calloc((size_t)threads, sizeof *pt);
  score_len *order = malloc((size_t)ns * sizeof *order);
  int *owner = malloc((size_t)ns * sizeof *owner);
  int *who = malloc((size_t)ns * sizeof *who);
  size_t *load = calloc((size_t)threads, sizeof *load);
  pthread_t *th = calloc((size_t)threads, sizeof *th);
  int started = 0;
  if (!pt || !order || !owner || !who || !load || !th)
    goto done;
  for (int i = 0; i < ns; i++)
    order[i] = (score_len){d->s[i].n, i};
  qsort(order, (size_t)ns, sizeof *order, longer_first);
  for (int i = 0; i < ns; i++) {
    int best = 0;
    for (int t = 1; t < threads; t++)
      if (load[t] < load[best])
        best = t;
    owner[order[i].i] = best;
    load[best] += order[i].n;
  }
  for (int t = 0, at = 0; t < threads; t++) {
    pt[t] = (score_part){m, d, pred, var, who + at, 0, 0};
    for (int i = 0; i < ns; i++)
      if (owner[i] == t)
        who[at + pt[t].ns++] = i;
    at += pt[t].ns;
  }
  rc = 0;
  for (int t = 1; t < threads; t++) {
    if (pthread_create(&th[t], NULL, score_part_run, &pt[t]) != 0) {
      rc = TC_ENOMEM;
      break;
    }
    started = t;
  }
  if (rc == 0)
    score_part_run(&pt[0]);
  for (int t = 1; t <= started; t++)
    pthread_join(th[t], NULL);
  for (int t = 0; rc == 0 && t < threads; t++)
    rc = pt[t].rc;
done:
  free(pt), free(order), free(owner), free(who), free(load), free(th);
  return rc;
}

static int pt_before(const score_pt *a, const score_pt *b) {
  return a->ts < b->ts || (a->ts == b->ts && a->sym < b->sym);
}

/* A natural merge sort: the runs already in order are found first and merged pairwise, left
 * before right, ties from the left. eval's points come as one run per instrument (each in time
 * order), so 256 instruments take 8 passes instead of the 20 of merging from single points: 165
 * ms -> 132 ms on 1,000,000 points, most of the rest the first touch of the scratch's pages.
 * Stable, so the result is the one any stable sort gives. */
int score_sort(score_pt *pts, size_t n) {
  if (n < 2)
    return 0;
  size_t nr = 1;
  for (size_t i = 1; i < n; i++)
    nr += pt_before(&pts[i], &pts[i - 1]);
  size_t *rs = malloc((nr + 1) * sizeof *rs); /* run r: [rs[r], rs[r + 1]) */
  score_pt *tmp = malloc(n * sizeof *tmp), *src = pts, *dst = tmp;
  if (!rs || !tmp) {
    free(rs), free(tmp);
    return TC_ENOMEM;
  }
  rs[0] = 0;
  for (size_t i = 1, r = 1; i < n; i++)
    if (pt_before(&pts[i], &pts[i - 1]))
      rs[r++] = i;
  rs[nr] = n;
  while (nr > 1) {
    size_t k = 0;
    for (size_t r = 0; r < nr; r += 2) {
      size_t lo = rs[r], mid = rs[r + 1], hi = r + 2 <= nr ? rs[r + 2] : n;
      if (r + 1 == nr) /* an odd run out: copied as it is */
        mid = hi = n;
      size_t a = lo, b = mid, at = lo;
      while (a < mid && b < hi)
        dst[at++] = pt_before(&src[b], &src[a]) ? src[b++] : src[a++];
      while (a < mid)
        dst[at++] = src[a++];
      while (b < hi)
        dst[at++] = src[b++];
      rs[k++] = lo;
    }
    rs[k] = n;
    nr = k;
    score_pt *t = src;
    src = dst, dst = t;
  }
  if (src != pts)
    memcpy(pts, src, n * sizeof *pts);
  free(tmp), free(rs);
  return 0;
}

static double sign(double x) {
  return x > 0 ? 1 : x < 0 ? -1 : 0;
}

/* The strategy over pts (n, by ts): per instrument the position sign(pred) taken at each
 * prediction, its gross log return and its costs; equal-weighted means after every point into
 * the curves (any may be NULL) and at the end into f (may be NULL). 0 or TC_ENOMEM. */
static int strategy(const score_pt *pts, size_t n, int nsym, double *cg, double *cn, double *ch,
                    score_fig *f) {
  double *pos = calloc(nsym > 0 ? (size_t)nsym : 1, sizeof *pos);
  uint8_t *seen = calloc(nsym > 0 ? (size_t)nsym : 1, 1);
  if (!pos || !seen) {
    free(pos), free(seen);
    return TC_ENOMEM;
  }
  int ninst = 0;
  for (size_t k = 0; k < n; k++)
    if (!seen[pts[k].sym])
      seen[pts[k].sym] = 1, ninst++;
  double g = 0, c = 0, h = 0, w = ninst ? 1.0 / ninst : 0;
  uint64_t changes = 0;
  for (size_t k = 0; k < n; k++) {
    const score_pt *p = &pts[k];
    double s = sign(p->pred), dpos = fabs(s - pos[p->sym]);
    if (dpos > 0)
      changes++;
    c += dpos * p->cost;
    g += s * p->real;
    h += p->real;
    pos[p->sym] = s;
    if (cg)
      cg[k] = g * w;
    if (cn)
      cn[k] = (g - c) * w;
    if (ch)
      ch[k] = h * w;
  }
  if (f) {
    f->ninst = ninst;
    f->gross = g * w;
    f->net = (g - c) * w;
    f->hold = h * w;
    f->changes = changes;
  }
  free(pos), free(seen);
  return 0;
}

int score_curves(const score_pt *pts, size_t n, int nsym, double *gross, double *net,
                 double *hold) {
  return strategy(pts, n, nsym, gross, net, hold, NULL);
}

/* Squared errors of the model and of the random walk summed per distinct ts of pts (by ts) into
 * lm, lr (n each, at most n used). Returns the number of distinct timestamps. */
static size_t losses_by_time(const score_pt *pts, size_t n, double *lm, double *lr) {
  size_t g = 0;
  for (size_t k = 0; k < n; k++) {
    double e = pts[k].pred - pts[k].real;
    if (k == 0 || pts[k].ts != pts[k - 1].ts)
      lm[g] = lr[g] = 0, g++;
    lm[g - 1] += e * e;
    lr[g - 1] += pts[k].real * pts[k].real;
  }
  return g;
}

/* Direction, and the "up" class over the same called pairs. */
static int direction(const score_pt *pts, size_t n, score_fig *f) {
  double *pred = malloc((n ? n : 1) * sizeof *pred), *real = malloc((n ? n : 1) * sizeof *real);
  if (!pred || !real) {
    free(pred), free(real);
    return TC_ENOMEM;
  }
  for (size_t k = 0; k < n; k++) {
    pred[k] = pts[k].pred, real[k] = pts[k].real;
    if (pred[k] == 0 || real[k] == 0)
      continue;
    int up = pred[k] > 0, real_up = real[k] > 0;
    f->tp += up && real_up, f->fp += up && !real_up;
    f->fn += !up && real_up, f->tn += !up && !real_up;
  }
  evalstat_direction(pred, real, n, &f->dir);
  free(pred), free(real);
  f->precision = f->tp + f->fp ? (double)f->tp / (double)(f->tp + f->fp) : NAN;
  f->recall = f->tp + f->fn ? (double)f->tp / (double)(f->tp + f->fn) : NAN;
  f->f1 = f->precision + f->recall > 0 ? 2 * f->precision * f->recall / (f->precision + f->recall)
                                       : NAN;
  return 0;
}

int score_figures(const score_pt *pts, size_t n, int nsym, score_fig *f) {
  memset(f, 0, sizeof *f);
  f->n = n;
  double se = 0, ae = 0, se_rw = 0;
  for (size_t k = 0; k < n; k++) {
    double e = pts[k].pred - pts[k].real;
    se += e * e, ae += fabs(e), se_rw += pts[k].real * pts[k].real;
  }
  f->mse = n ? se / (double)n : NAN;
  f->mae = n ? ae / (double)n : NAN;
  f->mse_rw = n ? se_rw / (double)n : NAN;
  f->skill = se_rw > 0 ? 1 - se / se_rw : NAN;
  double *lm = calloc(n ? n : 1, sizeof *lm), *lr = calloc(n ? n : 1, sizeof *lr);
  int rc = lm && lr ? 0 : TC_ENOMEM;
  if (rc == 0) {
    size_t g = losses_by_time(pts, n, lm, lr);
    f->times = g;
    f->has_dm = evalstat_dm_test(lm, lr, g, -1, &f->dm) == 0;
    rc = se_rw > 0 && g >= 2
             ? evalstat_skill_boot(lm, lr, g, SCORE_LEVEL, 0, 0, SCORE_BOOT_SEED, &f->ci)
             : TC_EINVAL;
    f->has_ci = rc == 0;
    rc = rc == TC_ENOMEM ? rc : 0;
  }
  free(lm), free(lr);
  if (rc == 0)
    rc = direction(pts, n, f);
  if (rc == 0)
    rc = strategy(pts, n, nsym, NULL, NULL, NULL, f);
  return rc;
}

/* (ts, d) pairs, ordered by ts and then by their place in the input, so that the sums per ts
 * add in input order, bit for bit the same whatever qsort does with equal keys. */
typedef struct tsd {
  int64_t ts;
  size_t k;
  double d;
} tsd;

static int tsd_cmp(const void *a, const void *b) {
  const tsd *x = a, *y = b;
  if (x->ts != y->ts)
    return x->ts < y->ts ? -1 : 1;
  return x->k < y->k ? -1 : x->k > y->k;
}

int score_dm_by_time(const int64_t *ts, const double *d, size_t n, evalstat_dm *out,
                     uint64_t *times) {
  tsd *v = malloc((n ? n : 1) * sizeof *v);
  double *sum = malloc((n ? n : 1) * sizeof *sum);
  if (!v || !sum) {
    free(v), free(sum);
    return TC_ENOMEM;
  }
  for (size_t k = 0; k < n; k++)
    v[k] = (tsd){ts[k], k, d[k]};
  qsort(v, n, sizeof *v, tsd_cmp);
  size_t g = 0;
  for (size_t k = 0; k < n; k++) {
    if (k == 0 || v[k].ts != v[k - 1].ts)
      sum[g++] = 0;
    sum[g - 1] += v[k].d;
  }
  *times = g;
  int rc = evalstat_dm_test(sum, NULL, g, -1, out);
  free(v), free(sum);
  return rc;
}
