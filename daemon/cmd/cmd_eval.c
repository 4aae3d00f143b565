/* cmd_eval.c: `tickcast eval`: runs a model over a tick file exactly as replay does (the same
 * features, the inference step of nn/lstm.c and nn/cells.c, one state per instrument from its first
 * tick) and judges every chosen prediction against the realized next return and the random walk (a
 * zero prediction), per instrument and pooled: skill with a bootstrap interval, a Diebold-Mariano
 * test, direction against its base rate, the sign-of-prediction strategy net of costs. It warns
 * when the predictions scored were made where the model was fitted (its recorded training
 * ranges). Output: a table, JSON (--json) and an SVG plot (--plot). The figures are score.h's. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cmd/args.h"
#include "daemon/cmd/cmds.h"
#include "daemon/pipeline/dataset.h"
#include "daemon/pipeline/ivcal.h"
#include "daemon/pipeline/ivtrack.h"
#include "daemon/pipeline/preplay.h"
#include "daemon/pipeline/score.h"
#include "daemon/pipeline/svg.h"
#include "daemon/pipeline/tpool.h"
#include "daemon/pipeline/volscore.h"
#include "ingest/rfc3339.h"
#include "ingest/tick.h"
#include "ingest/tickfile.h"
#include "nn/base/tc_err.h"
#include "nn/features.h"
#include "nn/model.h"
#include "nn/safetensors/safetensors.h"

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: tickcast eval --model M --input FILE [--test | --val-frac F | --since TS]\n"
      "                     [--json] [--plot FILE.svg] [--sym SYM] [--cost-bps X]\n"
      "                     [--interval C] [--interval-adapt ETA] [--ts-unit U]\n"
      "                     [--max-memory MiB] [--threads N] [--quiet]\n\n"
      "Runs the model over a tick file as `tickcast replay` does and scores each prediction\n"
      "pred_ret made at tick t against the realized log return of the instrument's next tick,\n"
      "per instrument and pooled (ALL):\n"
      "  n            scored predictions\n"
      "  mse, mse_rw  of the model and of the random walk (which predicts a zero return)\n"
      "  skill        1 - mse / mse_rw (> 0: better than the random walk), with its 95%%\n"
      "               circular block-bootstrap interval [lo, hi]\n"
      "  dm, p        Diebold-Mariano statistic of loss(model) - loss(random walk), Newey-West\n"
      "               variance, Harvey-Leybourne-Newbold correction (< 0: the model is\n"
      "               better), and its two-sided p-value\n"
      "  called       predictions with a direction (pred_ret != 0) and a non-zero return\n"
      "  dir_acc      share of those with the right sign; base: the share of the more\n"
      "               frequent sign among them (what always calling it scores); pt_p: the\n"
      "               Pesaran-Timmermann p-value of directional skill\n"
      "Pooled tests sum the losses of predictions made at the same time. Each instrument's\n"
      "state starts at zero at its first tick; --test, --val-frac and --since (at most one\n"
      "of them) only choose which predictions are scored (earlier ticks still warm the state\n"
      "up). eval warns when scored predictions were made inside the model's training range.\n"
      "A model with the scale head (train --head gauss) also has its variance forecast\n"
      "h = pred_std^2 scored against the next squared return, next to EWMA (RiskMetrics,\n"
      "lambda 0.94), GARCH(1,1) and the constant variance, all three fitted per instrument\n"
      "on its returns before the first scored prediction (the first half when fewer than\n"
      "100): qlike = mean of ln h + r^2 / h and mse = mean of (r^2 - h)^2 (lower is better),\n"
      "Diebold-Mariano tests of the model's loss minus each baseline's (< 0: the model is\n"
      "better), and the central --interval: coverage, mean width (of the log return) and\n"
      "Kupiec's test of the misses.\n\n"
      "  --model M       safetensors model file\n"
      "  --input FILE    tick file (CSV or JSON Lines, '-' = stdin)\n"
      "  --test          score only predictions made after each instrument's training range\n"
      "                  (the part `tickcast train --test-frac` held out)\n"
      "  --val-frac F    score only the last F of every instrument's ticks\n"
      "  --since TS      score only predictions made at ts >= TS (integer ns or RFC 3339)\n"
      "  --json          print the report as one JSON object instead of a table\n"
      "  --plot FILE     write an SVG: predicted vs realized returns, and the cumulative\n"
      "                  return of trading the sign of the prediction, equal-weighted over\n"
      "                  instruments, gross and net of costs, next to buying and holding;\n"
      "                  checked before the input is read (its directory must exist and be\n"
      "                  writable, an existing FILE be writable), else exit 1 at once\n"
      "  --sym SYM       only this instrument (table, JSON and plot)\n"
      "  --cost-bps X    cost of changing the position by one unit at a tick without a bid\n"
      "                  and ask, in basis points of the price (default 1); ticks with a\n"
      "                  quote pay half their spread\n"
      "  --interval C    coverage of the scored interval, in (0, 1) (default 0.9)\n"
      "  --interval-adapt ETA  the online interval's step, as replay emits it (default\n"
      "                  " IVTRACK_ETA_TEXT "; 0: the model's static z); with it on, the static\n"
      "                  interval's figures are shown beside\n"
      "  --ts-unit U     integer timestamps in the file are s, ms, us or ns (default ns)\n"
      "  --max-memory MiB  most memory for the input's ticks (default: half of this\n"
      "                  machine's; about 200 bytes a tick, an instrument at least 16\n"
      "                  ticks): past it, exit 1 naming the line\n"
      "  --threads N     threads for decoding the input, the predictions and the figures\n"
      "                  (default: the online cores); the report is the same for every N\n"
      "  --quiet         no input summary on stderr\n"
      "Exit status: 0 done, 1 runtime failure or nothing to score (also when --since,\n"
      "--val-frac or --sym leave no prediction), 2 bad usage, bad model, unreadable input or a\n"
      "--sym with no accepted tick in the input.\n");
}

/* The command line. */
typedef struct eval_opts {
  const char *model_path, *in_path, *plot_path, *sym; /* --model, --input, --plot, --sym */
  int json, quiet, test;                              /* --json, --quiet, --test */
  int has_since;                                      /* --since given */
  int64_t since;                                      /* --since, ns */
  double val_frac;                                    /* --val-frac, -1 when not given */
  double cost_bps;                                    /* --cost-bps */
  int ts_unit;                                        /* --ts-unit (enum tickfile_ts_unit) */
  double interval;                                    /* --interval */
  double interval_adapt;                              /* --interval-adapt */
  int max_memory; /* --max-memory MiB for the input (0: half of the machine's) */
  int threads;    /* --threads */
} eval_opts;

/* Parses the command line into o. Returns -1 to go on, or the exit status to return at once. */
static int eval_parse(eval_opts *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->val_frac = -1;
  o->cost_bps = 1;
  o->ts_unit = TICKFILE_TS_AUTO;
  o->interval = 0.9;
  o->interval_adapt = IVTRACK_ETA_DEFAULT;
  o->threads = replay_default_threads();
  const args_flag flags[] = {
      {"model", ARGS_STR, .dst = &o->model_path},
      {"input", ARGS_STR, .dst = &o->in_path},
      {"json", ARGS_SWITCH, .dst = &o->json},
      {"plot", ARGS_STR, .dst = &o->plot_path},
      {"sym", ARGS_STR, .dst = &o->sym},
      {"test", ARGS_SWITCH, .dst = &o->test},
      {"since", ARGS_FN, .dst = &o->since, .parse = args_time_ns, .given = &o->has_since,
       .unit = "integer nanoseconds or an RFC 3339 time like 2020-01-01T00:00:00Z"},
      {"val-frac", ARGS_DOUBLE, .dst = &o->val_frac, .lo = 0, .hi = 1, .open_lo = 1},
      {"cost-bps", ARGS_DOUBLE, .dst = &o->cost_bps, .lo = 0, .hi = 10000},
      {"ts-unit", ARGS_CHOICE, .dst = &o->ts_unit, .choices = tickfile_ts_unit_names},
      {"max-memory", ARGS_INT, .dst = &o->max_memory, .unit = "MiB", .lo = 1, .hi = 1 << 30},
      {"quiet", ARGS_SWITCH, .dst = &o->quiet, .short_name = 'q'},
      {"interval", ARGS_DOUBLE, .dst = &o->interval, .lo = 0, .hi = 1, .open_lo = 1, .open_hi = 1,
       .unit = "a coverage"},
      ARGS_INTERVAL_ADAPT(&o->interval_adapt),
      {"threads", ARGS_INT, .dst = &o->threads, .lo = 1, .hi = PREPLAY_MAX_THREADS},
  };
  const args_cmd c = {.name = "eval",
                      .flags = flags,
                      .nflags = (int)(sizeof flags / sizeof flags[0]),
                      .usage = usage,
                      .unknown = "unknown or incomplete option",
                      .found_style = 1};
  int status = args_parse_cmd(&c, argc, argv);
  if (status >= 0)
    return status;
  if (!o->model_path || !o->in_path) {
    fprintf(stderr, "tickcast eval: %s is required (see --help)\n",
            !o->model_path ? "--model" : "--input");
    return 2;
  }
  /* The selections are alternatives: a combination would score their intersection. */
  const char *sel[3];
  int nsel = 0;
  if (o->test)
    sel[nsel++] = "--test";
  if (o->val_frac > 0)
    sel[nsel++] = "--val-frac";
  if (o->has_since)
    sel[nsel++] = "--since";
  if (nsel > 1) {
    fprintf(stderr,
            "tickcast eval: %s with %s: found both, expected at most one of --test, --val-frac "
            "and --since (see tickcast eval --help)\n",
            sel[0], sel[1]);
    return 2;
  }
  const char *over = args_same_file(o->in_path, o->plot_path)      ? o->in_path
                     : args_same_file(o->model_path, o->plot_path) ? o->model_path
                                                                   : NULL;
  if (over) {
    fprintf(stderr,
            "tickcast eval: --plot %s is the %s file %s (same device and inode); refusing to "
            "write the plot over it\n",
            o->plot_path, over == o->in_path ? "input" : "model", over);
    return 2;
  }
  /* A plot that cannot be written fails now, as it would after the report (exit 1). */
  char err[512];
  if (o->plot_path &&
      args_output_check("plot", o->plot_path, ARGS_OUT_INPLACE, err, sizeof err) != 0) {
    fprintf(stderr, "tickcast eval: %s\n", err);
    return 1;
  }
  return -1;
}

/* What the model says it was fitted on, for one instrument (tickcast.ranges). */
typedef struct fit_range {
  int known;        /* the model's ranges name this instrument */
  int seen;         /* it has a fitted part (from, to are set) */
  int64_t from, to; /* the first and last tick the model was trained or validated on */
} fit_range;

/* One evaluation: the ticks, the predictions, the chosen predictions and their figures. */
typedef struct eval_run {
  nn_model m;       /* the model */
  int has_ranges;   /* the model records its training ranges */
  dataset d;        /* the input, whole */
  int only;         /* the series of --sym, or -1 for all */
  fit_range *rng;   /* (ns) per series */
  double **pred;    /* (ns) pred[i] (n_i): the prediction after each tick of series i */
  score_pt *pts;    /* (npts) the scored predictions, series after series, each in time order */
  size_t *off;      /* (ns + 1) where each series starts in pts */
  size_t npts;      /* scored predictions */
  score_pt *pooled; /* (npts) the same sorted by time (score_sort) */
  score_fig *fig;   /* (ns) per instrument */
  score_fig all;    /* pooled */
  uint64_t inside;  /* scored predictions made inside their instrument's training range */
  int inside_syms;  /* instruments with such predictions */
  int unseen;       /* scored instruments the model's ranges do not name */
  uint64_t quoted;  /* scored predictions at ticks with a bid and ask (costed by the spread) */
  /* A model with the scale head: its variance forecasts and the baselines'. */
  double **var;    /* (ns) var[i] (n_i): the model's variance forecast after each tick */
  double *hb;      /* (3 * max n) one series' baseline forecasts, EWMA, GARCH, const */
  vol_base *vb;    /* (ns) the baselines' fits */
  vol_pt *vpts;    /* (npts) the scored variance forecasts, like pts */
  vol_fig *vfig;   /* (ns) per instrument */
  vol_fig vall;    /* pooled */
  double interval; /* --interval */
  double adapt;    /* --interval-adapt: the online interval's step, 0: the static z */
} eval_run;

/* Reads tickcast.ranges into r->rng for the series of r->d. 0, or 2 after printing why. */
static int eval_ranges(eval_run *r, const eval_opts *o) {
  r->rng = calloc(r->d.ns ? (size_t)r->d.ns : 1, sizeof *r->rng);
  if (!r->rng) {
    fprintf(stderr, "tickcast eval: out of memory\n");
    return 1;
  }
  const char *txt = nn_model_get_meta(&r->m, "tickcast.ranges");
  if (!txt)
    return 0;
  json_error_t je;
  json_t *root = json_loads(txt, 0, &je);
  if (!json_is_object(root)) {
    fprintf(stderr, "tickcast eval: model %s: metadata tickcast.ranges is not a JSON object: %s\n",
            o->model_path, je.text);
    json_decref(root);
    return 2;
  }
  r->has_ranges = 1;
  for (int i = 0; i < r->d.ns; i++) {
    json_t *e = json_object_get(root, r->d.s[i].sym), *from, *to;
    if (!e)
      continue;
    r->rng[i].known = 1;
    from = json_object_get(e, "from"), to = json_object_get(e, "to");
    if (json_is_integer(from) && json_is_integer(to)) {
      r->rng[i].seen = 1;
      r->rng[i].from = json_integer_value(from);
      r->rng[i].to = json_integer_value(to);
    }
  }
  json_decref(root);
  return 0;
}

/* Loads the model and the input (and its summary), finds --sym and the training ranges. 0, or
 * the exit status after printing why. */
static int eval_load(eval_run *r, const eval_opts *o) {
  char err[512];
  if (nn_model_load(&r->m, o->model_path, err, sizeof err) != 0) {
    fprintf(stderr, "tickcast eval: %s\n", err);
    return 2;
  }
  int rc = dataset_init(&r->d);
  r->d.ts_unit = o->ts_unit;
  r->d.max_bytes = dataset_memory_bound(o->max_memory);
  r->d.threads = o->threads;
  if (rc == 0)
    rc = dataset_load(&r->d, o->in_path, !o->quiet, err, sizeof err);
  else
    snprintf(err, sizeof err, "out of memory");
  if (rc != 0) {
    fprintf(stderr, "tickcast eval: %s\n", err);
    return rc == TC_ENOMEM || rc == TC_ERANGE ? 1 : 2;
  }
  if (!o->quiet)
    dataset_print_summary(&r->d, "eval input");
  r->only = -1;
  if (o->sym && (r->only = symtab_find(&r->d.st, o->sym, strlen(o->sym))) < 0) {
    fprintf(stderr, "tickcast eval: --sym %s: no accepted tick of that instrument in %s\n", o->sym,
            o->in_path);
    return 2;
  }
  int status = eval_ranges(r, o);
  if (status == 0 && o->test && !r->has_ranges) {
    fprintf(stderr,
            "tickcast eval: --test: model %s records no training ranges (metadata "
            "tickcast.ranges, written by tickcast train)\n",
            o->model_path);
    status = 2;
  }
  return status;
}

/* Every series' predictions, on o->threads threads. 0 or TC_ENOMEM. */
static int eval_predict(eval_run *r, const eval_opts *o) {
  const dataset *d = &r->d;
  r->pred = calloc(d->ns ? (size_t)d->ns : 1, sizeof *r->pred);
  if (!r->pred)
    return TC_ENOMEM;
  for (int i = 0; i < d->ns; i++)
    if (!(r->pred[i] = malloc((d->s[i].n ? d->s[i].n : 1) * sizeof **r->pred)))
      return TC_ENOMEM;
  if (!r->m.gauss)
    return score_predict_threads(&r->m, d, r->pred, o->threads);
  r->var = calloc(d->ns ? (size_t)d->ns : 1, sizeof *r->var);
  if (!r->var)
    return TC_ENOMEM;
  for (int i = 0; i < d->ns; i++)
    if (!(r->var[i] = malloc((d->s[i].n ? d->s[i].n : 1) * sizeof **r->var)))
      return TC_ENOMEM;
  return score_predict_var_threads(&r->m, d, r->pred, r->var, o->threads);
}

/* Chooses the predictions --sym, --test, --val-frac and --since ask for, with their costs, and
 * counts those made inside the model's training ranges. 0 or TC_ENOMEM. */
static int eval_select(eval_run *r, const eval_opts *o) {
  const dataset *d = &r->d;
  size_t n = 0;
  for (int i = 0; i < d->ns; i++)
    n += d->s[i].n;
  r->pts = malloc((n ? n : 1) * sizeof *r->pts);
  r->off = calloc((size_t)d->ns + 1, sizeof *r->off);
  if (!r->pts || !r->off)
    return TC_ENOMEM;
  size_t maxn = 0, *tix = NULL;   /* gauss: the tick of each scored prediction */
  double *ret = NULL, *zt = NULL; /* gauss: (maxn) a series' returns, its intervals' z */
  for (int i = 0; i < d->ns; i++)
    maxn = d->s[i].n > maxn ? d->s[i].n : maxn;
  if (r->m.gauss) {
    r->vpts = malloc((n ? n : 1) * sizeof *r->vpts);
    r->vb = calloc(d->ns ? (size_t)d->ns : 1, sizeof *r->vb);
    r->hb = malloc(3 * (maxn ? maxn : 1) * sizeof *r->hb);
    tix = malloc((n ? n : 1) * sizeof *tix);
    ret = malloc((maxn ? maxn : 1) * sizeof *ret);
    zt = malloc((maxn ? maxn : 1) * sizeof *zt);
    if (!r->vpts || !r->vb || !r->hb || !tix || !ret || !zt) {
      free(tix), free(ret), free(zt);
      return TC_ENOMEM;
    }
  }
  double cost = o->cost_bps * 1e-4;
  for (int i = 0; i < d->ns; i++) {
    r->off[i] = r->npts;
    if (r->only >= 0 && i != r->only)
      continue;
    const ds_series *s = &d->s[i];
    const fit_range *g = &r->rng[i];
    size_t from = o->val_frac > 0 ? s->n - (size_t)floor((double)s->n * o->val_frac) : 0;
    uint64_t inside = 0;
    for (size_t t = from; t + 1 < s->n; t++) {
      if ((o->has_since && s->ts[t] < o->since) || (o->test && g->seen && s->ts[t] <= g->to))
        continue;
      inside += g->seen && s->ts[t] >= g->from && s->ts[t] <= g->to;
      r->quoted += s->quoted[t];
      double c = s->quoted[t] ? s->raw[t * NN_F + 3] / 2 : cost;
      if (tix)
        tix[r->npts] = t;
      r->pts[r->npts++] = (score_pt){s->ts[t], i, r->pred[i][t], s->raw[(t + 1) * NN_F], c};
    }
    if (tix) { /* the baselines, fitted on what comes before the first scored prediction */
      double *h[VOL_N] = {NULL, r->hb, r->hb + maxn, r->hb + 2 * maxn};
      vol_baselines(s, r->npts > r->off[i] ? tix[r->off[i]] : s->n, &r->vb[i], h);
      /* The interval as replay emits it: the online z runs from the series' first tick. */
      for (size_t t = 0; t < s->n; t++)
        ret[t] = t + 1 < s->n ? s->raw[(t + 1) * NN_F] : 0;
      ivtrack_series(ret, r->pred[i], r->var[i], s->n, ivcal_z(&r->m, r->interval), r->adapt,
                     r->interval, zt);
      for (size_t k = r->off[i]; k < r->npts; k++) {
        size_t t = tix[k];
        r->vpts[k] = (vol_pt){s->ts[t], i, r->pts[k].real, r->pts[k].pred, {r->var[i][t]}, zt[t]};
        for (int q = VOL_EWMA; q < VOL_N; q++)
          r->vpts[k].h[q] = h[q][t];
      }
    }
    r->inside += inside;
    r->inside_syms += inside > 0;
    r->unseen += r->has_ranges && !g->known && r->npts > r->off[i];
  }
  r->off[d->ns] = r->npts;
  free(tix), free(ret), free(zt);
  return 0;
}

/* eval_score's jobs: job 0 the pooled figures (the largest: sorted first, so the others run
 * beside it), job i + 1 the figures of series i. Each job writes only its own figures, and a
 * bootstrap's randomness is seeded per call (SCORE_BOOT_SEED), so the figures do not depend on
 * the threads. */
typedef struct score_jobs {
  eval_run *r;
  double z; /* the interval's quantile (ivcal_z), for vol_figures */
  int *rc;  /* (ns + 1) each job's result */
} score_jobs;

static void score_job(void *arg, int j) {
  score_jobs *sj = arg;
  eval_run *r = sj->r;
  int rc = 0;
  if (j == 0) {
    memcpy(r->pooled, r->pts, r->npts * sizeof *r->pts);
    rc = score_sort(r->pooled, r->npts);
    if (rc == 0)
      rc = score_figures(r->pooled, r->npts, r->d.ns, &r->all);
    if (rc == 0 && r->m.gauss)
      rc = vol_figures(r->vpts, r->npts, r->interval, sj->z, r->adapt > 0, &r->vall);
  } else if (r->only < 0 || j - 1 == r->only) {
    int i = j - 1;
    size_t at = r->off[i], n = r->off[i + 1] - r->off[i];
    rc = score_figures(r->pts + at, n, r->d.ns, &r->fig[i]);
    if (rc == 0 && r->m.gauss)
      rc = vol_figures(r->vpts + at, n, r->interval, sj->z, r->adapt > 0, &r->vfig[i]);
  }
  sj->rc[j] = rc;
}

/* The figures per instrument and pooled, on threads threads (their bootstraps take most of an
 * eval's time after the predictions). 0 or TC_ENOMEM. */
static int eval_score(eval_run *r, int threads) {
  const dataset *d = &r->d;
  size_t ns = d->ns ? (size_t)d->ns : 1;
  r->fig = calloc(ns, sizeof *r->fig);
  r->pooled = malloc((r->npts ? r->npts : 1) * sizeof *r->pooled);
  if (r->m.gauss)
    r->vfig = calloc(ns, sizeof *r->vfig);
  score_jobs sj = {r, r->m.gauss ? ivcal_z(&r->m, r->interval) : 0, calloc(ns + 1, sizeof(int))};
  tpool *pool = NULL;
  if (threads > d->ns + 1)
    threads = d->ns + 1;
  int rc = !r->fig || !r->pooled || (r->m.gauss && !r->vfig) || !sj.rc ||
                   (threads > 1 && tpool_new(&pool, threads) != 0)
               ? TC_ENOMEM
               : 0;
  if (rc == 0) {
    tpool_run(pool, d->ns + 1, score_job, &sj);
    for (int j = 0; j <= d->ns; j++)
      if (sj.rc[j] != 0)
        rc = TC_ENOMEM;
  }
  tpool_destroy(pool);
  free(sj.rc);
  return rc;
}

/* "2000-01-03" or a full timestamp when the time of day is not midnight. */
static void day_or_time(char *buf, size_t len, int64_t ns) {
  tick_format_rfc3339(buf, len, ns);
  if (strlen(buf) == 20 && strcmp(buf + 10, "T00:00:00Z") == 0)
    buf[10] = 0;
}

/* The overlap warning (stderr), or NULL into w when there is none. */
static void eval_overlap_text(const eval_run *r, char *w, size_t len) {
  w[0] = 0;
  if (!r->inside)
    return;
  int k = -1; /* an instrument to name */
  for (int i = 0; i < r->d.ns && k < 0; i++)
    if (r->rng[i].seen && r->off[i + 1] > r->off[i])
      k = i;
  char a[TICK_RFC3339_MAX], b[TICK_RFC3339_MAX];
  day_or_time(a, sizeof a, r->rng[k].from);
  day_or_time(b, sizeof b, r->rng[k].to);
  snprintf(w, len,
           "%llu of %llu scored predictions (%.1f%%, %d instrument%s) were made inside the "
           "model's training range (%s: %s to %s): those figures are in-sample, not a test; "
           "--test scores only what came after",
           (unsigned long long)r->inside, (unsigned long long)r->npts,
           100.0 * (double)r->inside / (double)r->npts, r->inside_syms,
           r->inside_syms == 1 ? "" : "s", r->d.s[k].sym, a, b);
}

/* A JSON number, or null when it is not finite. */
static json_t *jnum(double x) {
  return isfinite(x) ? json_real(x) : json_null();
}

static json_t *fig_json(const score_fig *f) {
  json_t *o = json_object();
  json_object_set_new(o, "n", json_integer((json_int_t)f->n));
  json_object_set_new(o, "mse", jnum(f->mse));
  json_object_set_new(o, "mae", jnum(f->mae));
  json_object_set_new(o, "mse_rw", jnum(f->mse_rw));
  json_object_set_new(o, "skill", jnum(f->skill));
  json_t *ci = json_null();
  if (f->has_ci) {
    ci = json_object();
    json_object_set_new(ci, "level", json_real(SCORE_LEVEL));
    json_object_set_new(ci, "lo", jnum(f->ci.lo));
    json_object_set_new(ci, "hi", jnum(f->ci.hi));
    json_object_set_new(ci, "se", jnum(f->ci.se));
    json_object_set_new(ci, "block", json_integer((json_int_t)f->ci.block));
    json_object_set_new(ci, "reps", json_integer(f->ci.reps));
  }
  json_object_set_new(o, "skill_ci", ci);
  json_t *dm = json_null();
  if (f->has_dm) {
    dm = json_object();
    json_object_set_new(dm, "times", json_integer((json_int_t)f->times));
    json_object_set_new(dm, "mean", jnum(f->dm.mean));
    json_object_set_new(dm, "lag", json_integer(f->dm.lag));
    json_object_set_new(dm, "stat", jnum(f->dm.stat));
    json_object_set_new(dm, "p", jnum(f->dm.p));
    json_object_set_new(dm, "stat_hln", jnum(f->dm.stat_hln));
    json_object_set_new(dm, "p_hln", jnum(f->dm.p_hln));
  }
  json_object_set_new(o, "dm", dm);
  json_t *dir = json_object();
  json_object_set_new(dir, "called", json_integer((json_int_t)f->dir.n));
  json_object_set_new(dir, "no_call", json_integer((json_int_t)f->dir.nocall));
  json_object_set_new(dir, "hits", json_integer((json_int_t)f->dir.hits));
  json_object_set_new(dir, "acc", jnum(f->dir.acc));
  json_object_set_new(dir, "base", jnum(f->dir.base));
  json_object_set_new(dir, "p_base", jnum(f->dir.p_base));
  json_object_set_new(dir, "pt_stat", jnum(f->dir.pt_stat));
  json_object_set_new(dir, "pt_p", jnum(f->dir.pt_p));
  json_object_set_new(dir, "precision", jnum(f->precision));
  json_object_set_new(dir, "recall", jnum(f->recall));
  json_object_set_new(dir, "f1", jnum(f->f1));
  json_object_set_new(dir, "tp", json_integer((json_int_t)f->tp));
  json_object_set_new(dir, "fp", json_integer((json_int_t)f->fp));
  json_object_set_new(dir, "fn", json_integer((json_int_t)f->fn));
  json_object_set_new(dir, "tn", json_integer((json_int_t)f->tn));
  json_object_set_new(o, "direction", dir);
  json_t *st = json_object();
  json_object_set_new(st, "instruments", json_integer(f->ninst));
  json_object_set_new(st, "gross", jnum(f->gross));
  json_object_set_new(st, "net", jnum(f->net));
  json_object_set_new(st, "hold", jnum(f->hold));
  json_object_set_new(st, "changes", json_integer((json_int_t)f->changes));
  json_object_set_new(o, "strategy", st);
  return o;
}

/* One interval's figures. */
static json_t *iv_json(const evalstat_interval *v) {
  json_t *iv = json_object();
  json_object_set_new(iv, "nominal", jnum(v->nominal));
  json_object_set_new(iv, "z", jnum(v->z));
  json_object_set_new(iv, "coverage", jnum(v->coverage));
  json_object_set_new(iv, "misses", json_integer((json_int_t)v->misses));
  json_object_set_new(iv, "width", jnum(v->width));
  json_object_set_new(iv, "kupiec_lr", jnum(v->lr));
  json_object_set_new(iv, "kupiec_p", jnum(v->p));
  return iv;
}

/* The variance figures of one set: per forecast its losses and interval (the model's as emitted,
 * and with online also its static one), per baseline the DM tests of the model against it. */
static json_t *vfig_json(const vol_fig *f, int online) {
  json_t *o = json_object();
  json_object_set_new(o, "n", json_integer((json_int_t)f->n));
  for (int k = 0; k < VOL_N; k++) {
    json_t *e = json_object();
    json_object_set_new(e, "qlike", jnum(f->qlike[k]));
    json_object_set_new(e, "mse", jnum(f->mse[k]));
    if (k > 0) {
      json_t *dq = json_null(), *dm = json_null();
      if (f->has_dm) {
        dq = json_object(), dm = json_object();
        json_object_set_new(dq, "mean", jnum(f->dm_qlike[k].mean));
        json_object_set_new(dq, "stat_hln", jnum(f->dm_qlike[k].stat_hln));
        json_object_set_new(dq, "p_hln", jnum(f->dm_qlike[k].p_hln));
        json_object_set_new(dm, "mean", jnum(f->dm_mse[k].mean));
        json_object_set_new(dm, "stat_hln", jnum(f->dm_mse[k].stat_hln));
        json_object_set_new(dm, "p_hln", jnum(f->dm_mse[k].p_hln));
      }
      json_object_set_new(e, "dm_qlike", dq);
      json_object_set_new(e, "dm_mse", dm);
    }
    json_object_set_new(e, "interval", f->has_iv ? iv_json(&f->iv[k]) : json_null());
    if (k == VOL_MODEL && online)
      json_object_set_new(e, "interval_static", f->has_iv ? iv_json(&f->iv_static) : json_null());
    json_object_set_new(o, vol_names[k], e);
  }
  return o;
}

/* The baselines' fit for one instrument. */
static json_t *vbase_json(const vol_base *b) {
  json_t *o = json_object();
  json_object_set_new(o, "fit_returns", json_integer((json_int_t)b->nfit));
  json_object_set_new(o, "in_sample", json_boolean(b->in_sample));
  json_object_set_new(o, "var_fit", jnum(b->var_fit));
  json_t *g = json_null();
  if (b->garch_ok) {
    g = json_object();
    json_object_set_new(g, "omega", jnum(b->g.omega));
    json_object_set_new(g, "alpha", jnum(b->g.alpha));
    json_object_set_new(g, "beta", jnum(b->g.beta));
  }
  json_object_set_new(o, "garch", g);
  return o;
}

static void eval_report_json(const eval_run *r, const eval_opts *o, const char *warning) {
  json_t *root = json_object();
  json_object_set_new(root, "model", json_string(o->model_path));
  json_object_set_new(root, "model_id", json_string(r->m.id));
  json_object_set_new(root, "input", json_string(o->in_path));
  json_t *sel = json_object();
  json_object_set_new(sel, "test", json_boolean(o->test));
  json_object_set_new(sel, "val_frac", o->val_frac > 0 ? json_real(o->val_frac) : json_null());
  json_object_set_new(sel, "since", o->has_since ? json_integer(o->since) : json_null());
  json_object_set_new(sel, "sym", o->sym ? json_string(o->sym) : json_null());
  json_object_set_new(root, "scored", sel);
  json_t *ov = json_object();
  json_object_set_new(ov, "checked", json_boolean(r->has_ranges));
  json_object_set_new(ov, "inside", json_integer((json_int_t)r->inside));
  json_object_set_new(ov, "instruments_inside", json_integer(r->inside_syms));
  json_object_set_new(ov, "instruments_unseen", json_integer(r->unseen));
  json_object_set_new(ov, "warning", warning[0] ? json_string(warning) : json_null());
  json_object_set_new(root, "overlap", ov);
  json_t *cost = json_object();
  json_object_set_new(cost, "quoted", json_integer((json_int_t)r->quoted));
  json_object_set_new(cost, "cost_bps", json_real(o->cost_bps));
  json_object_set_new(root, "costs", cost);
  json_t *arr = json_array();
  for (int i = 0; i < r->d.ns; i++) {
    if (r->only >= 0 && i != r->only)
      continue;
    json_t *e = json_object();
    json_object_set_new(e, "sym", json_string(r->d.s[i].sym));
    json_object_set_new(e, "metrics", fig_json(&r->fig[i]));
    if (r->m.gauss) {
      json_object_set_new(e, "variance", vfig_json(&r->vfig[i], r->adapt > 0));
      json_object_set_new(e, "baselines", vbase_json(&r->vb[i]));
    }
    json_array_append_new(arr, e);
  }
  json_object_set_new(root, "instruments", arr);
  json_object_set_new(root, "overall", fig_json(&r->all));
  if (r->m.gauss) {
    json_t *v = vfig_json(&r->vall, r->adapt > 0);
    json_object_set_new(v, "interval_adapt", json_real(r->adapt));
    json_object_set_new(root, "variance", v);
  }
  char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
  if (s)
    printf("%s\n", s);
  free(s);
  json_decref(root);
}

/* fmt of x, or "-" when not ok or not finite. */
static void cell(char *buf, size_t len, const char *fmt, double x, int ok) {
  if (ok && isfinite(x))
    snprintf(buf, len, fmt, x); /* a fmt without a conversion ("<.001") ignores x */
  else
    snprintf(buf, len, "-");
}

static void row_table(const char *name, const score_fig *f) {
  char mse[16], rw[16], sk[16], lo[16], hi[16], dm[16], p[16], acc[16], base[16], pt[16];
  cell(mse, sizeof mse, "%.4e", f->mse, 1);
  cell(rw, sizeof rw, "%.4e", f->mse_rw, 1);
  cell(sk, sizeof sk, "%+.5f", f->skill, 1);
  cell(lo, sizeof lo, "%+.5f", f->ci.lo, f->has_ci);
  cell(hi, sizeof hi, "%+.5f", f->ci.hi, f->has_ci);
  cell(dm, sizeof dm, "%+.2f", f->dm.stat_hln, f->has_dm);
  cell(p, sizeof p, f->dm.p_hln < 0.001 ? "<.001" : "%.3f", f->dm.p_hln, f->has_dm);
  cell(acc, sizeof acc, "%.4f", f->dir.acc, 1);
  cell(base, sizeof base, "%.4f", f->dir.base, 1);
  cell(pt, sizeof pt, f->dir.pt_p < 0.001 ? "<.001" : "%.3f", f->dir.pt_p, f->dir.n > 0);
  printf("%-12s %7llu %10s %10s %9s %9s %9s %6s %6s %7llu %7s %7s %6s\n", name,
         (unsigned long long)f->n, mse, rw, sk, lo, hi, dm, p, (unsigned long long)f->dir.n, acc,
         base, pt);
}

static void vrow_table(const char *name, const vol_fig *f) {
  char q[VOL_N][16], p[VOL_N][16], cov[16], w[16], kp[16];
  for (int k = 0; k < VOL_N; k++)
    cell(q[k], sizeof q[k], "%.4f", f->qlike[k], f->n > 0);
  for (int k = 1; k < VOL_N; k++)
    cell(p[k], sizeof p[k], f->dm_qlike[k].p_hln < 0.001 ? "<.001" : "%.3f", f->dm_qlike[k].p_hln,
         f->has_dm);
  cell(cov, sizeof cov, "%.4f", f->iv[VOL_MODEL].coverage, f->has_iv);
  cell(w, sizeof w, "%.3e", f->iv[VOL_MODEL].width, f->has_iv);
  cell(kp, sizeof kp, f->iv[VOL_MODEL].p < 0.001 ? "<.001" : "%.3f", f->iv[VOL_MODEL].p, f->has_iv);
  printf("%-12s %7llu %9s %9s %6s %9s %6s %9s %6s %8s %9s %8s\n", name, (unsigned long long)f->n,
         q[VOL_MODEL], q[VOL_EWMA], p[VOL_EWMA], q[VOL_GARCH], p[VOL_GARCH], q[VOL_CONST],
         p[VOL_CONST], cov, w, kp);
}

/* The variance table of a model with the scale head. */
static void eval_report_vol(const eval_run *r) {
  char zs[96];
  if (r->adapt > 0)
    snprintf(zs, sizeof zs, "z online (--interval-adapt %g, from %.4f)", r->adapt,
             ivcal_z(&r->m, r->interval));
  else
    snprintf(zs, sizeof zs, "%.4f", ivcal_z(&r->m, r->interval));
  printf("\nvariance forecasts: qlike = mean of ln h + r^2/h (lower is better); p: Diebold-Mariano "
         "p-value of qlike(model) - qlike(baseline); interval: central %g%% of the model, "
         "pred_ret -+ %s pred_std (normal: %.4f), coverage, mean width of the log return, "
         "Kupiec p\n",
         100 * r->interval, zs, evalstat_norm_quantile(0.5 + 0.5 * r->interval));
  printf("%-12s %7s %9s %9s %6s %9s %6s %9s %6s %8s %9s %8s\n", "sym", "n", "model", "ewma", "p",
         "garch", "p", "const", "p", "cover", "width", "kupiec_p");
  for (int i = 0; i < r->d.ns; i++)
    if (r->only < 0 || i == r->only)
      vrow_table(r->d.s[i].sym, &r->vfig[i]);
  if (r->only < 0)
    vrow_table("ALL", &r->vall);
  const vol_fig *f = &r->vall;
  printf("mse of squared returns: model %.4e, ewma %.4e, garch %.4e, const %.4e\n",
         f->mse[VOL_MODEL], f->mse[VOL_EWMA], f->mse[VOL_GARCH], f->mse[VOL_CONST]);
  if (r->adapt > 0 && f->has_iv)
    printf("interval: online coverage %.4f (mean z %.4f, width %.3e, Kupiec p %.3g); static z "
           "%.4f: coverage %.4f (width %.3e, Kupiec p %.3g)\n",
           f->iv[VOL_MODEL].coverage, f->iv[VOL_MODEL].z, f->iv[VOL_MODEL].width,
           f->iv[VOL_MODEL].p, f->iv_static.z, f->iv_static.coverage, f->iv_static.width,
           f->iv_static.p);
  int ins = 0;
  for (int i = 0; i < r->d.ns; i++)
    ins += (r->only < 0 || i == r->only) && r->vb[i].in_sample;
  if (ins)
    printf("note: %d instrument%s had fewer than %d returns before the first scored prediction: "
           "their baselines were fitted on the first half of the series, which is scored too\n",
           ins, ins == 1 ? "" : "s", VOL_MIN_FIT);
}

static void eval_report_table(const eval_run *r, const eval_opts *o) {
  printf("%-12s %7s %10s %10s %9s %9s %9s %6s %6s %7s %7s %7s %6s\n", "sym", "n", "mse", "mse_rw",
         "skill", "lo95", "hi95", "dm", "p", "called", "dir_acc", "base", "pt_p");
  for (int i = 0; i < r->d.ns; i++)
    if (r->only < 0 || i == r->only)
      row_table(r->d.s[i].sym, &r->fig[i]);
  if (r->only < 0)
    row_table("ALL", &r->all);
  const score_fig *f = &r->all;
  printf("strategy: sign of the prediction, equal-weighted over %d instrument%s: cumulative log "
         "return %+.4f gross, %+.4f net of costs (%llu position changes; half the spread at "
         "%llu quoted ticks, %g bp a unit elsewhere); buy and hold %+.4f\n",
         f->ninst, f->ninst == 1 ? "" : "s", f->gross, f->net, (unsigned long long)f->changes,
         (unsigned long long)r->quoted, o->cost_bps, f->hold);
  if (r->m.gauss)
    eval_report_vol(r);
}

/* The half-widths z sqrt(h) of the model's interval in the order of r->pooled (malloc'd), or NULL
 * when out of memory. pooled keeps each instrument's points in their order (score_sort is
 * stable), so a cursor per instrument into r->vpts finds each one. */
static double *eval_band(const eval_run *r) {
  double *band = malloc((r->npts ? r->npts : 1) * sizeof *band);
  size_t *cur = malloc(((size_t)r->d.ns + 1) * sizeof *cur);
  if (band && cur) {
    memcpy(cur, r->off, ((size_t)r->d.ns + 1) * sizeof *cur);
    for (size_t k = 0; k < r->npts; k++) {
      const vol_pt *v = &r->vpts[cur[r->pooled[k].sym]++];
      band[k] = v->z * sqrt(v->h[VOL_MODEL]);
    }
  } else {
    free(band);
    band = NULL;
  }
  free(cur);
  return band;
}

/* --plot: the pooled predictions in time order as SVG. 0, or 1 after printing why. */
static int eval_plot(const eval_run *r, const eval_opts *o) {
  size_t n = r->npts;
  double *g = malloc((n ? n : 1) * sizeof *g), *nt = malloc((n ? n : 1) * sizeof *nt);
  double *h = malloc((n ? n : 1) * sizeof *h), *band = NULL;
  char title[256], costs[160], err[512];
  int status = 1;
  if (!g || !nt || !h || score_curves(r->pooled, n, r->d.ns, g, nt, h) != 0) {
    fprintf(stderr, "tickcast eval: out of memory\n");
    goto done;
  }
  snprintf(title, sizeof title, "tickcast eval: %s on %s%s%s%s", o->model_path, o->in_path,
           o->sym ? ", " : "", o->sym ? o->sym : "", o->test ? " (test part)" : "");
  if (r->quoted == n)
    snprintf(costs, sizeof costs, "half the quoted spread per unit of position change");
  else if (r->quoted)
    snprintf(costs, sizeof costs, "half the quoted spread, %g bp without a quote", o->cost_bps);
  else
    snprintf(costs, sizeof costs, "%g bp per unit of position change", o->cost_bps);
  if (r->m.gauss && !(band = eval_band(r))) {
    fprintf(stderr, "tickcast eval: out of memory\n");
    goto done;
  }
  const svg_eval e = {title, r->pooled,    n,     g,    nt,
                      h,     r->all.ninst, costs, band, r->m.gauss ? r->interval : 0};
  if (svg_eval_plot(o->plot_path, &e, err, sizeof err) != 0) {
    fprintf(stderr, "tickcast eval: %s\n", err);
    goto done;
  }
  status = 0;
done:
  free(g), free(nt), free(h), free(band);
  return status;
}

static void eval_free(eval_run *r) {
  if (r->pred)
    for (int i = 0; i < r->d.ns; i++)
      free(r->pred[i]);
  if (r->var)
    for (int i = 0; i < r->d.ns; i++)
      free(r->var[i]);
  free(r->var), free(r->hb), free(r->vb), free(r->vpts), free(r->vfig);
  free(r->pred), free(r->pts), free(r->off), free(r->pooled), free(r->fig), free(r->rng);
  dataset_free(&r->d);
  nn_model_free(&r->m);
}

/* Scores and reports. 0 or the exit status. */
static int eval_report(eval_run *r, const eval_opts *o) {
  if (r->npts == 0 && o->test) {
    fprintf(stderr,
            "tickcast eval: --test: no prediction in %s was made after the model's training "
            "range (was it trained on all of it, without --test-frac?)\n",
            o->in_path);
    return 1;
  }
  if (r->npts == 0) {
    fprintf(stderr,
            "tickcast eval: %s: nothing to score: found %llu accepted ticks and no instrument with "
            "a prediction followed by its next tick, expected at least one%s\n",
            o->in_path, (unsigned long long)r->d.accepted,
            o->sym || o->has_since || o->val_frac > 0 ? " that --sym, --since or --val-frac choose"
                                                      : "");
    return 1;
  }
  if (eval_score(r, o->threads) != 0) {
    fprintf(stderr, "tickcast eval: out of memory\n");
    return 1;
  }
  char warning[512];
  eval_overlap_text(r, warning, sizeof warning);
  if (warning[0])
    fprintf(stderr, "eval: warning: %s\n", warning);
  else if (!r->has_ranges && !o->quiet)
    fprintf(stderr,
            "eval: note: model %s records no training ranges (tickcast.ranges): overlap "
            "with its training data is not checked\n",
            o->model_path);
  if (o->json)
    eval_report_json(r, o, warning);
  else
    eval_report_table(r, o);
  /* ferror too: a write that failed while the report was printed leaves nothing for fflush. */
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "tickcast eval: stdout: cannot write the report: %m\n");
    return 1;
  }
  return o->plot_path ? eval_plot(r, o) : 0;
}

int cmd_eval(int argc, char **argv) {
  eval_opts o;
  int status = eval_parse(&o, argc, argv);
  if (status >= 0)
    return status;
  eval_run r;
  memset(&r, 0, sizeof r);
  r.interval = o.interval;
  r.adapt = o.interval_adapt;
  status = eval_load(&r, &o);
  if (status == 0 && (eval_predict(&r, &o) != 0 || eval_select(&r, &o) != 0)) {
    fprintf(stderr, "tickcast eval: out of memory\n");
    status = 1;
  }
  if (status == 0)
    status = eval_report(&r, &o);
  eval_free(&r);
  return status;
}
