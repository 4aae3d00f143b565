/* fit.c: the training loop behind `tickcast train` (see fit.h). The training part of every
 * instrument is cut into pieces that are packed into B lanes; a lane is walked window by window
 * (T steps) with its LSTM state carried across windows and zeroed where a new piece starts, so
 * each window is one batched forward/backward of (T, B). Pieces start on window boundaries, which
 * keeps the batched pass free of mid-window resets at the cost of a little padding. */
#include "daemon/pipeline/fit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/pipeline/ivcal.h"
#include "daemon/pipeline/score.h"
#include "daemon/pipeline/shard.h"
#include "daemon/pipeline/tpool.h"
#include "nn/base/bigbuf.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"
#include "nn/lstm.h"
#include "nn/train.h"

#define VAL_B 64    /* instruments per group of the validation sums' order */
#define VAL_ROWS 16 /* most instruments (lanes) in one validation shard */

void fit_opts_default(fit_opts *o) {
  memset(o, 0, sizeof *o);
  o->H = 32;
  o->L = 1;
  o->epochs = 30;
  o->T = 32;
  o->B = 32;
  o->patience = 5;
  o->lr = 3e-3;
  o->clip = 1.0;
  o->seed = 1;
  o->verbose = 1;
  o->min_t = FIT_MIN_T;
}

double fit_min_t(int K) {
  return K <= 1 ? FIT_MIN_T : evalstat_sidak_threshold(2 * evalstat_norm_sf(FIT_MIN_T), K);
}

/* The dataset as flat standardized arrays, series after series. */
typedef struct flat {
  size_t N;    /* ticks */
  size_t *off; /* (ns + 1) first flat index of each series */
  float *x;    /* (N, NN_F) standardized features */
  float *y;    /* (N) standardized target (next tick's ret), 0 where there is none */
} flat;

/* x and y are on huge pages when large (nn/base/bigbuf.h): built once, on one thread, before
 * the threads start, where 4 KiB pages cost a fault each. */
static void flat_free(flat *f) {
  free(f->off);
  tc_big_sized_free(f->x, (f->N ? f->N : 1) * NN_F * sizeof *f->x);
  tc_big_sized_free(f->y, (f->N ? f->N : 1) * sizeof *f->y);
  memset(f, 0, sizeof *f);
}

static int flat_build(flat *f, const dataset *d) {
  memset(f, 0, sizeof *f);
  f->off = malloc(((size_t)d->ns + 1) * sizeof *f->off);
  if (!f->off)
    return TC_ENOMEM;
  size_t N = 0;
  for (int i = 0; i < d->ns; i++)
    f->off[i] = N, N += d->s[i].n;
  f->off[d->ns] = N;
  f->N = N;
  f->x = tc_big_sized_alloc((N ? N : 1) * NN_F * sizeof *f->x);
  f->y = tc_big_sized_alloc((N ? N : 1) * sizeof *f->y);
  if (!f->x || !f->y) {
    flat_free(f);
    return TC_ENOMEM;
  }
  for (int i = 0; i < d->ns; i++) {
    const ds_series *s = &d->s[i];
    float *x = f->x + f->off[i] * NN_F, *y = f->y + f->off[i];
    for (size_t t = 0; t < s->n; t++) {
      for (int k = 0; k < NN_F; k++)
        x[t * NN_F + k] = (float)((s->raw[t * NN_F + k] - d->feat_mean[k]) / d->feat_std[k]);
      y[t] = t + 1 < s->n ? (float)((s->raw[(t + 1) * NN_F] - d->tgt_mean) / d->tgt_std) : 0.0f;
    }
  }
  return 0;
}

/* What validation gathers beyond the MSE: y*t and y*y (for the output scale), and, when d is
 * not NULL, the loss differential d = (y - t)^2 - t^2 against the zero prediction of every
 * validation target with the ts of its tick (for the Diebold-Mariano test of the gain). */
typedef struct vsums {
  double yt, yy;
  double *d;   /* (cap) or NULL */
  int64_t *ts; /* (cap) */
  size_t nd, cap;
  double *s, *e2; /* (cap) or NULL: the scale head's output and the squared error (y - t)^2 */
  size_t ns;
} vsums;

/* Validation targets of d: predictions at ticks [ntrain, nfit - 1) of every series. */
static size_t val_targets(const dataset *d) {
  size_t n = 0;
  for (int i = 0; i < d->ns; i++)
    if (d->s[i].nfit > d->s[i].ntrain + 1)
      n += d->s[i].nfit - d->s[i].ntrain - 1;
  return n;
}

/* Validation runs as a fixed set of shards, each a few instruments stepped together from their
 * first tick by the inference step (nn_step, what replay and eval run: no caches to keep, and its
 * kernel is fast at the few lanes of a shard); shards run at once on a tpool and write their
 * outputs at the validation positions, which are then summed on one thread in a fixed order.
 * The split depends on the dataset alone, so the sums are the same floats for any thread count. */
typedef struct vshard {
  int n;        /* lanes */
  int *inst;    /* (n) its instruments, longest first: lanes still running are a prefix */
  nn_work w;    /* inference scratch for n lanes */
  float *x;     /* (n, NN_F) one tick's inputs */
  float *y;     /* (n) outputs */
  float *s;     /* gauss: (n) scale head outputs; else NULL */
  float *state; /* (n, sf) */
  float **sp;   /* (n) each lane's state */
} vshard;

typedef struct vplan {
  const dataset *d;
  const flat *f;
  const nn_model *m; /* the model being validated */
  int K;             /* shards */
  vshard *s;         /* (K) */
  size_t *voff;      /* (ns) first index of each instrument's validation outputs */
  float *y;          /* (nv) the output at every validation position, instrument after instrument */
  float *sv;         /* gauss: (nv) the scale head's output there; else NULL */
} vplan;

/* Positions of series s that the validation forward needs: up to its last validation target
 * (predictions at [ntrain, nfit - 1)); 0 when it has none. */
static size_t val_len(const ds_series *s) {
  return s->nfit > s->ntrain + 1 ? s->nfit - 1 : 0;
}

/* Whole cache lines: a shard's buffers are written at every step, on its own thread, and must
 * not share a line with another shard's. */
static void *lines(size_t n) {
  return aligned_alloc(64, (n + 63) / 64 * 64);
}

static void vplan_free(vplan *v) {
  for (int k = 0; v->s && k < v->K; k++) {
    vshard *sh = &v->s[k];
    nn_work_free(&sh->w);
    free(sh->inst), free(sh->x), free(sh->y), free(sh->s), free(sh->state), free(sh->sp);
  }
  free(v->s), free(v->voff), free(v->y), free(v->sv);
  memset(v, 0, sizeof *v);
}

/* Deals the instruments with validation targets, longest first, in turn to K shards, where K is
 * ceil(instruments / VAL_ROWS) and at least 2 from 8 instruments on (two threads then share
 * validation; a shard of 4 or more lanes keeps the GEMMs reasonably efficient). 0 or TC_ENOMEM. */
static int vplan_init(vplan *v, const dataset *d, const flat *f, const nn_model *m) {
  memset(v, 0, sizeof *v);
  v->d = d, v->f = f, v->m = m;
  int ns = d->ns, nl = 0;
  int *ord = malloc((ns ? (size_t)ns : 1) * sizeof *ord);
  v->voff = malloc(((size_t)ns + 1) * sizeof *v->voff);
  if (!ord || !v->voff)
    goto oom;
  size_t nv = 0;
  for (int i = 0; i < ns; i++) {
    v->voff[i] = nv;
    size_t len = val_len(&d->s[i]);
    nv += len ? len - d->s[i].ntrain : 0;
    if (len)
      ord[nl++] = i;
  }
  v->voff[ns] = nv;
  for (int a = 1; a < nl; a++) { /* insertion sort, longest first, ties by index: stable */
    int i = ord[a], b = a;
    for (; b > 0 && val_len(&d->s[ord[b - 1]]) < val_len(&d->s[i]); b--)
      ord[b] = ord[b - 1];
    ord[b] = i;
  }
  v->K = (nl + VAL_ROWS - 1) / VAL_ROWS;
  if (v->K < 2 && nl >= 8)
    v->K = 2;
  v->y = malloc((nv ? nv : 1) * sizeof *v->y);
  v->sv = m->gauss ? malloc((nv ? nv : 1) * sizeof *v->sv) : NULL;
  v->s = calloc(v->K ? (size_t)v->K : 1, sizeof *v->s);
  if (!v->y || (m->gauss && !v->sv) || !v->s)
    goto oom;
  size_t sf = nn_state_floats(m);
  for (int k = 0; k < v->K; k++) {
    vshard *sh = &v->s[k];
    sh->n = (nl - k + v->K - 1) / v->K;
    sh->inst = lines((size_t)sh->n * sizeof *sh->inst);
    sh->x = lines((size_t)sh->n * NN_F * sizeof *sh->x);
    sh->y = lines((size_t)sh->n * sizeof *sh->y);
    sh->s = m->gauss ? lines((size_t)sh->n * sizeof *sh->s) : NULL;
    sh->state = lines((size_t)sh->n * sf * sizeof *sh->state);
    sh->sp = lines((size_t)sh->n * sizeof *sh->sp);
    if (!sh->inst || !sh->x || !sh->y || (m->gauss && !sh->s) || !sh->state || !sh->sp ||
        nn_work_init(&sh->w, m, sh->n) != 0)
      goto oom;
    for (int b = 0; b < sh->n; b++) {
      sh->inst[b] = ord[k + b * v->K];
      sh->sp[b] = sh->state + (size_t)b * sf;
    }
  }
  free(ord);
  return 0;
oom:
  free(ord);
  vplan_free(v);
  return TC_ENOMEM;
}

/* Shard k of a validation pass: its lanes from their first tick, tick by tick, the outputs at
 * validation positions into v->y (and v->sv). The test part (from nfit on) is never read. */
static void vplan_job(void *arg, int k) {
  vplan *v = arg;
  vshard *sh = &v->s[k];
  const dataset *d = v->d;
  const flat *f = v->f;
  size_t sf = nn_state_floats(v->m), len = val_len(&d->s[sh->inst[0]]);
  nn_work_update(&sh->w, v->m); /* the weights moved since the last pass */
  memset(sh->state, 0, (size_t)sh->n * sf * sizeof *sh->state);
  int B = sh->n;
  for (size_t p = 0; p < len; p++) {
    while (val_len(&d->s[sh->inst[B - 1]]) <= p) /* lanes that have ended drop out */
      B--;
    for (int b = 0; b < B; b++)
      memcpy(sh->x + (size_t)b * NN_F, f->x + (f->off[sh->inst[b]] + p) * NN_F,
             NN_F * sizeof *sh->x);
    nn_step(v->m, &sh->w, B, sh->x, sh->sp, sh->y);
    if (v->sv)
      nn_model_scale_out(v->m, B, sh->sp, sh->s);
    for (int b = 0; b < B; b++) {
      const ds_series *s = &d->s[sh->inst[b]];
      if (p < s->ntrain)
        continue;
      size_t q = v->voff[sh->inst[b]] + p - s->ntrain;
      v->y[q] = sh->y[b];
      if (v->sv)
        v->sv[q] = sh->s[b];
    }
  }
}

/* Validation of v->m: every series from its first tick, loss on its validation targets; the test
 * part (from nfit on) is never read. The shards run on pool (NULL: this thread); the sums run
 * here in a fixed order (groups of VAL_B instruments, position by position, instrument by
 * instrument). With vs != NULL also fills vs (whose nd is reset). */
static void validate(const vplan *v, tpool *pool, double *mse, double *mse_rw, uint64_t *count,
                     vsums *vs, double *nll) {
  const dataset *d = v->d;
  const flat *f = v->f;
  tpool_run(pool, v->K, vplan_job, (void *)v);
  double se = 0, se0 = 0, syt = 0, syy = 0, snll = 0;
  uint64_t n = 0;
  if (vs)
    vs->nd = vs->ns = 0;
  for (int g0 = 0; g0 < d->ns; g0 += VAL_B) {
    int B = d->ns - g0 < VAL_B ? d->ns - g0 : VAL_B;
    size_t len = 0;
    for (int b = 0; b < B; b++)
      if (val_len(&d->s[g0 + b]) > len)
        len = val_len(&d->s[g0 + b]);
    for (size_t p = 0; p < len; p++)
      for (int b = 0; b < B; b++) {
        const ds_series *s = &d->s[g0 + b];
        if (p < s->ntrain || p >= val_len(s))
          continue;
        size_t q = v->voff[g0 + b] + p - s->ntrain;
        double y = v->y[q], tg = f->y[f->off[g0 + b] + p], e = y - tg;
        se += e * e;
        se0 += tg * tg;
        syt += y * tg;
        syy += y * y;
        if (v->sv) {
          double var = exp((double)v->sv[q]);
          var = var > NN_GAUSS_EPS ? var : NN_GAUSS_EPS;
          snll += 0.5 * (log(var) + e * e / var);
        }
        if (vs && vs->s && v->sv && vs->ns < vs->cap) {
          vs->s[vs->ns] = v->sv[q];
          vs->e2[vs->ns++] = e * e;
        }
        if (vs && vs->d && vs->nd < vs->cap) {
          vs->d[vs->nd] = e * e - tg * tg;
          vs->ts[vs->nd++] = s->ts[p];
        }
        n++;
      }
  }
  *mse = n ? se / (double)n : 0;
  *mse_rw = n ? se0 / (double)n : 0;
  *count = n;
  if (nll)
    *nll = n ? snll / (double)n : 0;
  if (vs)
    vs->yt = syt, vs->yy = syy;
}

int fit_validate(const dataset *d, const nn_model *m, double *mse, double *mse_rw, uint64_t *n) {
  flat f;
  vplan v;
  if (flat_build(&f, d) != 0)
    return TC_ENOMEM;
  int rc = vplan_init(&v, d, &f, m);
  if (rc == 0)
    validate(&v, NULL, mse, mse_rw, n, NULL, NULL);
  vplan_free(&v);
  flat_free(&f);
  return rc;
}

/* One piece of training data: ticks [start, start + len) of the flat array, in one series. */
typedef struct piece {
  size_t start, len;
} piece;

/* The lane layout of one epoch: idx (B, W*T) flat tick index or -1, with a flag where a piece
 * starts (state reset) for each (lane, window), and the valid steps of each window. Its arrays
 * are kept from epoch to epoch (grown, never shrunk): fresh ones cost a page fault per 4 KiB at
 * every epoch, about 11 us each on this project's VMs, on the one thread that builds them. */
typedef struct lanes {
  int B, T;
  size_t W;       /* windows */
  long long *idx; /* (B, W * T) */
  uint8_t *reset; /* (B, W) */
  int *nvalid;    /* (W) */
  size_t cap_idx; /* allocated entries of idx, */
  size_t cap_w;   /* and of reset and nvalid (windows) */
} lanes;

static void lanes_free(lanes *ln) {
  free(ln->idx);
  free(ln->reset);
  free(ln->nvalid);
  memset(ln, 0, sizeof *ln);
}

/* Room for B lanes of W windows of T steps, with an eighth more when it grows (the windows of
 * an epoch vary a little with its random cut). 0 or TC_ENOMEM. */
static int lanes_reserve(lanes *ln, int B, size_t W, int T) {
  if ((size_t)B * W * T > ln->cap_idx || (size_t)B * W > ln->cap_w)
    W += W / 8;
  size_t ni = (size_t)B * W * T, nw = (size_t)B * W;
  if (ni > ln->cap_idx) {
    long long *p = realloc(ln->idx, ni * sizeof *p);
    if (!p)
      return TC_ENOMEM;
    ln->idx = p, ln->cap_idx = ni;
  }
  if (nw > ln->cap_w) {
    uint8_t *r = realloc(ln->reset, nw);
    if (r)
      ln->reset = r;
    int *v = realloc(ln->nvalid, nw * sizeof *v);
    if (v)
      ln->nvalid = v;
    if (!r || !v)
      return TC_ENOMEM;
    ln->cap_w = nw;
  }
  return 0;
}

/* Cuts every training part into pieces of P ticks, the first one of a random length below P
 * (a random phase per series, so that piece boundaries move between epochs), then shuffles them.
 * *pc (np) is the caller's to free. 0 or TC_ENOMEM. */
static int pieces_cut(const dataset *d, const flat *f, size_t P, nn_rng *r, piece **pc,
                      size_t *np) {
  size_t cap = 64;
  *np = 0;
  if (!(*pc = malloc(cap * sizeof **pc)))
    return TC_ENOMEM;
  for (int i = 0; i < d->ns; i++) {
    size_t n = d->s[i].ntrain >= 2 ? d->s[i].ntrain - 1 : 0; /* inputs with a training target */
    size_t a = 0, first = n > P ? (size_t)nn_rng_below(r, P) : 0;
    while (a < n) {
      size_t len = a == 0 && first > 0 ? first : P;
      if (len > n - a)
        len = n - a;
      if (*np == cap) {
        piece *q = realloc(*pc, 2 * cap * sizeof **pc);
        if (!q)
          return TC_ENOMEM;
        *pc = q, cap *= 2;
      }
      (*pc)[(*np)++] = (piece){f->off[i] + a, len};
      a += len;
    }
  }
  for (size_t i = *np; i > 1; i--) { /* Fisher-Yates */
    size_t j = (size_t)nn_rng_below(r, i);
    piece t = (*pc)[i - 1];
    (*pc)[i - 1] = (*pc)[j];
    (*pc)[j] = t;
  }
  return 0;
}

/* Packs pieces pc (np) into B lanes of T-step windows, each piece into the lane that is shortest
 * at the time, starting on a window boundary. 0 or TC_ENOMEM. */
static int lanes_pack(lanes *ln, const piece *pc, size_t np, int B, int T) {
  size_t *fill = calloc(B, sizeof *fill); /* windows used per lane */
  int *lane_of = malloc((np ? np : 1) * sizeof *lane_of);
  int rc = TC_ENOMEM;
  if (!fill || !lane_of)
    goto done;
  for (size_t i = 0; i < np; i++) {
    int best = 0;
    for (int b = 1; b < B; b++)
      if (fill[b] < fill[best])
        best = b;
    lane_of[i] = best;
    fill[best] += (pc[i].len + T - 1) / T;
  }
  size_t W = 0;
  for (int b = 0; b < B; b++)
    if (fill[b] > W)
      W = fill[b];
  ln->B = B, ln->T = T, ln->W = W;
  if (lanes_reserve(ln, B, W, T) != 0)
    goto done;
  for (size_t i = 0; i < (size_t)B * W * T; i++)
    ln->idx[i] = -1;
  memset(ln->reset, 0, (size_t)B * W);
  memset(ln->nvalid, 0, W * sizeof *ln->nvalid);
  memset(fill, 0, B * sizeof *fill);
  for (size_t i = 0; i < np; i++) {
    int b = lane_of[i];
    ln->reset[(size_t)b * W + fill[b]] = 1;
    long long *dst = ln->idx + (size_t)b * W * T + fill[b] * T;
    for (size_t k = 0; k < pc[i].len; k++)
      dst[k] = (long long)(pc[i].start + k);
    for (size_t k = 0; k < pc[i].len; k += T) /* whole windows, then the rest */
      ln->nvalid[fill[b] + k / T] += pc[i].len - k < (size_t)T ? (int)(pc[i].len - k) : T;
    fill[b] += (pc[i].len + T - 1) / T;
  }
  rc = 0;
done:
  free(fill), free(lane_of);
  return rc;
}

/* One epoch's lane layout: the training parts cut into pieces of about a lane's share (whole
 * windows), shuffled and packed into B lanes; in ln's arrays of the epoch before. */
static int lanes_build(lanes *ln, const dataset *d, const flat *f, int B, int T, nn_rng *r) {
  ln->W = 0;
  size_t ntr = 0;
  for (int i = 0; i < d->ns; i++)
    if (d->s[i].ntrain >= 2)
      ntr += d->s[i].ntrain - 1;
  if (ntr == 0)
    return 0;
  size_t P = (ntr + B - 1) / B;
  P = (P + T - 1) / T * T;
  piece *pc = NULL;
  size_t np = 0;
  int rc = pieces_cut(d, f, P, r, &pc, &np);
  if (rc == 0)
    rc = lanes_pack(ln, pc, np, B, T);
  free(pc);
  return rc;
}

static void bar(FILE *log, int epoch, int epochs, size_t w, size_t W, double steps, double dt) {
  int width = 30, done = W ? (int)(width * w / W) : width;
  fprintf(log, "\repoch %d/%d [%.*s%*s] %3d%% %.0f tick-steps/s", epoch, epochs, done,
          "##############################", width - done, "", W ? (int)(100 * w / W) : 100,
          dt > 0 ? steps / dt : 0.0);
  fflush(log);
}

/* One training run: the data, the trainer and its buffers, and the best model so far. */
typedef struct fit_ctx {
  const dataset *d;  /* split, with statistics */
  const fit_opts *o; /* the options */
  nn_model *m;       /* the model being trained */
  FILE *log;         /* progress, or NULL */
  nn_rng rng;        /* all randomness */
  flat f;            /* the dataset as standardized flat arrays */
  tpool *pool;       /* o->threads threads for the shards of steps and validation */
  shard_set sh;      /* forward/backward scratch of the shards of a (T, B) minibatch */
  vplan val;         /* the validation shards and outputs */
  nn_adam adam;      /* the optimizer */
  size_t sf;         /* state floats per lane */
  float *x;          /* (T, B, NN_F) a window's inputs */
  float *tg;         /* (T, B) its targets */
  float *w;          /* (T, B) its loss weights */
  float *state;      /* (B, sf) LSTM state carried across a lane's windows */
  float *grad;       /* (nparams) */
  lanes ln;          /* the epoch's lane layout */
  size_t wi;         /* the window being stepped, */
  float winv;        /* and 1 / its valid steps: the weight of each */
  float *best;       /* (nparams) the parameters of the best epoch */
  double vbest;      /* validation MSE of the best epoch (the zero model's before any) */
  double vrw;        /* validation MSE of the zero model */
  uint64_t nval;     /* validation targets */
  int best_epoch;    /* 0: no epoch beat the zero model */
  double best_train; /* training loss of the best epoch */
  double nbest;      /* gauss: validation NLL of the best epoch (+inf before any) */
} fit_ctx;

/* The model's seeded weights and the dataset's statistics, the flat data, the trainer and its
 * buffers. 0 or TC_ENOMEM. */
static int fit_setup(fit_ctx *c) {
  const fit_opts *o = c->o;
  dataset_apply_stats(c->d, c->m);
  nn_rng_seed(&c->rng, o->seed);
  nn_train_init_weights(c->m, &c->rng);
  int B = o->B, T = o->T;
  size_t np = c->m->nparams;
  c->sf = nn_state_floats(c->m);
  if (flat_build(&c->f, c->d) != 0 || shard_set_init(&c->sh, c->m, B, T) != 0 ||
      vplan_init(&c->val, c->d, &c->f, c->m) != 0 ||
      tpool_new(&c->pool, o->threads > 1 ? o->threads : 1) != 0 ||
      nn_adam_init(&c->adam, np, (float)o->lr) != 0)
    return TC_ENOMEM;
  c->x = malloc((size_t)T * B * NN_F * sizeof *c->x);
  c->tg = malloc((size_t)T * B * sizeof *c->tg);
  c->w = malloc((size_t)T * B * sizeof *c->w);
  c->state = calloc((size_t)B * c->sf, sizeof *c->state);
  c->grad = malloc(np * sizeof *c->grad);
  c->best = malloc(np * sizeof *c->best);
  return c->x && c->tg && c->w && c->state && c->grad && c->best ? 0 : TC_ENOMEM;
}

static void fit_free(fit_ctx *c) {
  flat_free(&c->f);
  tpool_destroy(c->pool);
  shard_set_free(&c->sh);
  vplan_free(&c->val);
  nn_adam_free(&c->adam);
  free(c->x), free(c->tg), free(c->w), free(c->state), free(c->grad), free(c->best);
  lanes_free(&c->ln);
}

/* Epoch 0 is the zero prediction: a trained model has to beat it on validation to be kept. */
static int fit_baseline(fit_ctx *c, fit_result *res) {
  validate(&c->val, c->pool, &c->vbest, &c->vrw, &c->nval, NULL, NULL);
  c->vbest = c->vrw;
  c->nbest = INFINITY;
  /* The zero mean with the training part's variance (1, standardized): NLL 0.5 mse_rw. */
  res->val_nll_const = 0.5 * c->vrw;
  res->val_mse_rw = c->vrw;
  res->nval = c->nval;
  memcpy(c->best, c->m->params, c->m->nparams * sizeof *c->best);
  if (c->log && c->o->verbose) {
    uint64_t ntr = 0;
    for (int i = 0; i < c->d->ns; i++)
      if (c->d->s[i].ntrain >= 2)
        ntr += c->d->s[i].ntrain - 1;
    fprintf(c->log,
            "train: %llu training targets, %llu validation targets, %d instruments; model "
            "%s L=%d H=%d%s%s, %zu parameters\n",
            (unsigned long long)ntr, (unsigned long long)c->nval, c->d->ns,
            nn_cell_name(c->o->cell), c->o->L, c->o->H, c->o->peephole ? " peephole" : "",
            c->o->gauss ? " head=gauss" : "", c->m->nparams);
  }
  return 0;
}

/* Loads lanes [b0, b0 + nb) of window c->wi into x, tg and w (zeroing the state of lanes where a
 * piece starts); each valid step weighs 1 / (the window's valid steps). The shards of the step
 * call it for their own lanes (shard_set_loader), so the window loads on every thread. */
static void fit_load_rows(void *arg, int b0, int nb) {
  fit_ctx *c = arg;
  const lanes *ln = &c->ln;
  int B = ln->B, T = ln->T;
  size_t wi = c->wi;
  for (int b = b0; b < b0 + nb; b++) {
    if (ln->reset[(size_t)b * ln->W + wi])
      memset(c->state + b * c->sf, 0, c->sf * sizeof *c->state);
    for (int t = 0; t < T; t++) {
      long long gi = ln->idx[(size_t)b * ln->W * T + wi * T + t];
      size_t r = (size_t)t * B + b;
      if (gi >= 0) {
        memcpy(c->x + r * NN_F, c->f.x + (size_t)gi * NN_F, NN_F * sizeof *c->x);
        c->tg[r] = c->f.y[gi];
        c->w[r] = c->winv;
      } else {
        memset(c->x + r * NN_F, 0, NN_F * sizeof *c->x);
        c->tg[r] = 0;
        c->w[r] = 0;
      }
    }
  }
}

/* One pass over the training data in a fresh lane layout: a forward/backward and an Adam step
 * per window. *loss: mean training loss; *steps: tick-steps; *dt: seconds. */
static int fit_epoch(fit_ctx *c, int epoch, double *loss, double *steps, double *dt) {
  const fit_opts *o = c->o;
  lanes *ln = &c->ln;
  if (lanes_build(ln, c->d, &c->f, o->B, o->T, &c->rng) != 0)
    return TC_ENOMEM;
  double t0 = tc_mono_s(), loss_sum = 0, last_bar = 0;
  *steps = 0;
  shard_set_loader(&c->sh, fit_load_rows, c);
  for (size_t wi = 0; wi < ln->W; wi++) {
    int nvalid = ln->nvalid[wi];
    if (nvalid == 0)
      continue;
    c->wi = wi;
    c->winv = 1.0f / (float)nvalid; /* the float of 1.0f /= nvalid */
    double l =
        shard_set_grad(&c->sh, c->pool, c->m, o->B, o->T, c->x, c->tg, c->w, c->state, c->grad);
    shard_set_update(&c->sh, c->pool, c->m, &c->adam, c->grad, o->clip);
    loss_sum += l * nvalid;
    *steps += nvalid;
    if (c->log && o->verbose >= 2 && tc_mono_s() - last_bar > 0.2) {
      last_bar = tc_mono_s();
      bar(c->log, epoch, o->epochs, wi + 1, ln->W, *steps, last_bar - t0);
    }
  }
  shard_set_loader(&c->sh, NULL, NULL);
  *dt = tc_mono_s() - t0;
  *loss = *steps > 0 ? loss_sum / *steps : 0;
  return 0;
}

static void fit_log_epoch(const fit_ctx *c, int epoch, double tl, double vmse, double vnll,
                          double steps, double dt, int improved) {
  const fit_opts *o = c->o;
  if (o->verbose >= 2)
    fprintf(c->log, "\r\033[K");
  if (c->nval > 0 && o->gauss)
    fprintf(c->log,
            "epoch %3d/%d  train NLL %.5f  val NLL %.5f (constant variance %.5f)  val %.5f  "
            "%.0f tick-steps/s%s\n",
            epoch, o->epochs, tl, vnll, 0.5 * c->vrw, vmse, dt > 0 ? steps / dt : 0.0,
            improved ? "  *best" : "");
  else if (c->nval > 0)
    fprintf(c->log,
            "epoch %3d/%d  train %.5f  val %.5f (random walk %.5f, skill %+.4f)  %.0f "
            "tick-steps/s%s\n",
            epoch, o->epochs, tl, vmse, c->vrw, c->vrw > 0 ? 1 - vmse / c->vrw : 0.0,
            dt > 0 ? steps / dt : 0.0, improved ? "  *best" : "");
  else
    fprintf(c->log, "epoch %3d/%d  train %.5f  (no validation ticks)  %.0f tick-steps/s\n", epoch,
            o->epochs, tl, dt > 0 ? steps / dt : 0.0);
}

/* Epochs until o->epochs or o->patience epochs without a better validation MSE (each of which
 * halves the learning rate), keeping the best parameters. With the scale head: the validation NLL,
 * and the learning rate stays. */
static int fit_epochs(fit_ctx *c, fit_result *res) {
  const fit_opts *o = c->o;
  double steps_total = 0, train_time = 0;
  int bad = 0;
  for (int epoch = 1; epoch <= o->epochs; epoch++) {
    double tl, steps, dt, vmse, vrw, vnll;
    if (fit_epoch(c, epoch, &tl, &steps, &dt) != 0)
      return TC_ENOMEM;
    train_time += dt;
    steps_total += steps;
    res->ntrain = (uint64_t)steps;
    validate(&c->val, c->pool, &vmse, &vrw, &c->nval, NULL, &vnll);
    int improved = c->nval == 0 || (o->gauss ? vnll < c->nbest : vmse < c->vbest);
    if (improved) {
      c->vbest = c->nval ? vmse : c->vbest;
      c->nbest = c->nval ? vnll : c->nbest;
      c->best_epoch = epoch;
      c->best_train = tl;
      memcpy(c->best, c->m->params, c->m->nparams * sizeof *c->best);
      bad = 0;
    } else {
      bad++;
      if (!o->gauss)        /* the scale head's validation NLL is too noisy to read plateaus from */
        c->adam.lr *= 0.5f; /* a plateau: take smaller steps from here */
    }
    res->epochs_run = epoch;
    if (c->log && o->verbose)
      fit_log_epoch(c, epoch, tl, vmse, vnll, steps, dt, improved);
    if (c->nval > 0 && bad >= o->patience)
      break;
  }
  res->steps_per_s = train_time > 0 ? steps_total / train_time : 0;
  return 0;
}

/* Predict exactly a zero return: the random walk. */
static void fit_zero_head(nn_model *m) {
  memset(m->head_w, 0, (size_t)m->H * sizeof(float));
  m->head_b[0] = 0;
}

/* The best parameters, their head shrunk by the least-squares factor on validation, or the zero
 * model when nothing beat it or the gain is noise. */
static int fit_choose(fit_ctx *c, fit_result *res) {
  nn_model *m = c->m;
  memcpy(m->params, c->best, m->nparams * sizeof *c->best);
  res->scale = 1.0;
  res->val_mse_fit = c->vbest;
  if (c->best_epoch == 0) { /* nothing beat the random walk: predict exactly a zero return */
    fit_zero_head(m);
    res->scale = 0.0;
    res->fallback = c->nval > 0;
    return 0;
  }
  if (c->nval == 0)
    return 0;
  /* Shrink the output toward zero by the least-squares factor on validation, clamped to [0, 1]:
   * where the signal is weak the model is over-confident out of sample, and a zero prediction
   * (the random walk) is the safe limit. */
  double vm, vr;
  uint64_t nv;
  vsums vs = {0};
  vs.cap = val_targets(c->d);
  vs.d = malloc((vs.cap ? vs.cap : 1) * sizeof *vs.d);
  vs.ts = malloc((vs.cap ? vs.cap : 1) * sizeof *vs.ts);
  int rc = vs.d && vs.ts ? 0 : TC_ENOMEM;
  if (rc == 0)
    validate(&c->val, c->pool, &vm, &vr, &nv, &vs, NULL);
  double a = 0;
  if (rc == 0) {
    a = vs.yy > 0 ? vs.yt / vs.yy : 0.0;
    a = a < 0 ? 0 : a > 1 ? 1 : a;
    for (int j = 0; j < m->H; j++)
      m->head_w[j] *= (float)a;
    m->head_b[0] *= (float)a;
    res->scale = a;
    validate(&c->val, c->pool, &c->vbest, &vr, &nv, &vs, NULL);
  }
  /* Is the gain over the zero prediction more than validation noise? The Diebold-Mariano test of
   * the loss differential, summed per timestamp across instruments, with a Newey-West variance
   * (squared errors of returns are serially correlated where volatility clusters) and the
   * Harvey-Leybourne-Newbold correction: heavy tails and a few lucky ticks give a large variance
   * and a small t. Below the threshold (2, raised for the trials of a search), predict zero. */
  evalstat_dm dm;
  if (rc == 0 && score_dm_by_time(vs.ts, vs.d, vs.nd, &dm, &res->val_times) == TC_ENOMEM)
    rc = TC_ENOMEM;
  free(vs.d), free(vs.ts);
  if (rc != 0)
    return rc;
  res->val_mse_fit = c->vbest;
  res->tstat = isnan(dm.stat_hln) ? 0.0 : -dm.stat_hln;
  res->pval = dm.p_hln;
  if (c->log && c->o->verbose)
    fprintf(c->log,
            "output scale %.4f (least squares on validation): val %.5f, skill %+.4f, "
            "t-stat of the gain over the random walk %.2f (Diebold-Mariano, %llu times)\n",
            a, c->vbest, vr > 0 ? 1 - c->vbest / vr : 0.0, res->tstat,
            (unsigned long long)res->val_times);
  if (!(res->tstat >= c->o->min_t)) {
    fit_zero_head(m);
    res->scale = 0.0;
    res->fallback = 1;
    c->vbest = c->vrw;
    if (c->log && c->o->verbose)
      fprintf(c->log,
              "the gain is not significant (t %.2f < %.2f): the model predicts a zero "
              "return\n",
              res->tstat, c->o->min_t);
  }
  return 0;
}

/* The floor of the calibrated variance in the standardized target's units: a validation part
 * that the mean head predicts exactly (prices that never move) would otherwise put the
 * log-variance at -inf. 1e-12 is a standard deviation of 1e-6 target standard deviations, under
 * float32's resolution of the standardized target. */
#define CALIB_VAR_MIN 1e-12

/* The validation NLL (up to constants) of the log-variances a s + b against e2 (n each), and the b
 * that minimizes it for a given a: ln of the mean of e2 exp(-a s), at least ln CALIB_VAR_MIN. */
static double calib_b(const double *s, const double *e2, size_t n, double a) {
  double acc = 0;
  for (size_t i = 0; i < n; i++)
    acc += e2[i] * exp(-a * s[i]);
  double mean = acc / (double)n;
  return log(mean > CALIB_VAR_MIN || isnan(mean) ? mean : CALIB_VAR_MIN); /* NaN stays NaN */
}

static double calib_nll(const double *s, const double *e2, size_t n, double a, double b) {
  double acc = 0;
  for (size_t i = 0; i < n; i++) {
    double u = a * s[i] + b;
    acc += 0.5 * (u + e2[i] * exp(-u));
  }
  return acc / (double)n;
}

/* Validation of the current model gathering the scale head's output and the squared error of
 * every validation target into vs (s, e2, ns; the caller frees vs->s and vs->e2 whatever the
 * result), and the NLL into *nll when not NULL. 0 or TC_ENOMEM. */
static int validate_scale(fit_ctx *c, vsums *vs, double *nll) {
  memset(vs, 0, sizeof *vs);
  vs->cap = val_targets(c->d);
  vs->s = malloc((vs->cap ? vs->cap : 1) * sizeof *vs->s);
  vs->e2 = malloc((vs->cap ? vs->cap : 1) * sizeof *vs->e2);
  double vm, vr;
  uint64_t nv;
  if (!vs->s || !vs->e2)
    return TC_ENOMEM;
  validate(&c->val, c->pool, &vm, &vr, &nv, vs, nll);
  return 0;
}

/* Calibrates the scale head on validation, as the mean head's output scale: log-variance
 * a s + b with a in [0, 1] (shrinking toward a constant variance where the forecast's swings do
 * not hold up out of sample) and b its best shift, both by the validation Gaussian NLL at the
 * saved mean. The NLL profiled over b is convex in a: golden-section search. */
static int fit_calibrate(fit_ctx *c, fit_result *res) {
  nn_model *m = c->m;
  vsums vs;
  int rc = validate_scale(c, &vs, NULL);
  if (rc == 0 && vs.ns > 1) {
    double lo = 0, hi = 1, g = 0.5 * (sqrt(5.0) - 1);
    for (int it = 0; it < 60; it++) {
      double a1 = hi - g * (hi - lo), a2 = lo + g * (hi - lo);
      double f1 = calib_nll(vs.s, vs.e2, vs.ns, a1, calib_b(vs.s, vs.e2, vs.ns, a1));
      double f2 = calib_nll(vs.s, vs.e2, vs.ns, a2, calib_b(vs.s, vs.e2, vs.ns, a2));
      if (f1 <= f2)
        hi = a2;
      else
        lo = a1;
    }
    double a = 0.5 * (lo + hi), b = calib_b(vs.s, vs.e2, vs.ns, a);
    for (int j = 0; j < m->H; j++)
      m->scale_w[j] *= (float)a;
    m->scale_b[0] = (float)(a * m->scale_b[0] + b);
    res->var_scale = a;
    res->var_shift = b;
    if (c->log && c->o->verbose)
      fprintf(c->log, "scale head calibrated on validation: log-variance %.4f s %+.4f\n", a, b);
  }
  free(vs.s), free(vs.e2);
  return rc;
}

/* The saved model's validation NLL and its interval table (NN_META_INTERVAL_KEY): the quantiles
 * of |z| = |t - y| / exp(s / 2), the standardized residuals of the final mean and variance, over
 * every validation target (never the test part). Fat tails make them smaller than the normal
 * ones in the body, so the normal interval would cover more than its level. */
static int fit_interval(fit_ctx *c, fit_result *res) {
  nn_model *m = c->m;
  vsums vs;
  int rc = validate_scale(c, &vs, &res->val_nll);
  if (rc == 0 && c->log && c->o->verbose)
    fprintf(c->log, "scale head: validation NLL %.5f vs %.5f for a constant variance\n",
            res->val_nll, res->val_nll_const);
  nn_ival t;
  for (size_t i = 0; rc == 0 && i < vs.ns; i++)
    vs.e2[i] = sqrt(vs.e2[i]) * exp(-0.5 * vs.s[i]); /* |z| in place */
  if (rc == 0 && ivcal_fit(vs.e2, vs.ns, &t) == 0) {
    rc = nn_ival_set(m, &t) == TC_ENOMEM ? TC_ENOMEM : 0;
    res->ival_n = t.n;
    res->ival_z90 = ivcal_z(m, 0.9);
    if (rc == 0 && c->log && c->o->verbose)
      fprintf(c->log,
              "interval calibrated on %llu validation residuals: the 90%% interval is "
              "pred_ret -+ %.4f pred_std (normal: 1.6449)\n",
              (unsigned long long)t.n, res->ival_z90);
  }
  free(vs.s), free(vs.e2);
  return rc;
}

int fit_run(const dataset *d, const fit_opts *o, nn_model *m, fit_result *res, FILE *log, char *err,
            size_t errlen) {
  memset(res, 0, sizeof *res);
  fit_ctx c;
  memset(&c, 0, sizeof c);
  c.d = d, c.o = o, c.m = m, c.log = log;
  int rc = nn_model_init_head(m, o->cell, o->L, o->H, o->peephole, o->gauss);
  if (rc != 0) {
    snprintf(err, errlen, "cannot set up a%s %s model with L=%d H=%d%s: %s",
             o->cell == NN_CELL_LSTM ? "n" : "", nn_cell_name(o->cell), o->L, o->H,
             o->peephole ? " and peepholes" : "", tc_strerror(rc));
    return rc;
  }
  double t_start = 0;
  rc = fit_setup(&c);
  if (rc == 0)
    rc = fit_baseline(&c, res);
  if (rc == 0) {
    t_start = tc_mono_s();
    rc = fit_epochs(&c, res);
  }
  if (rc == 0)
    rc = fit_choose(&c, res);
  res->var_scale = 1;
  if (rc == 0 && o->gauss && c.nval > 0)
    rc = fit_calibrate(&c, res);
  if (rc == 0 && o->gauss && c.nval > 0)
    rc = fit_interval(&c, res);
  if (rc == 0) {
    res->best_epoch = c.best_epoch;
    res->val_mse = c.vbest;
    res->train_mse = c.best_train;
    res->seconds = tc_mono_s() - t_start;
  } else {
    snprintf(err, errlen, "out of memory while training (L=%d H=%d B=%d T=%d)", o->L, o->H, o->B,
             o->T);
  }
  fit_free(&c);
  if (rc != 0)
    nn_model_free(m);
  return rc;
}
