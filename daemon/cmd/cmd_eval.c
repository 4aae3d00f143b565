/* cmd_eval.c: `tickcast eval`: runs a model over a tick file exactly as replay does (the same
 * features, the inference LSTM of nn/lstm.c, one state per instrument from its first tick) and
 * scores every prediction against the realized next return and against the random walk (a zero
 * prediction): per instrument and overall, as a table, JSON (--json) and an SVG plot (--plot). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cmd/args.h"
#include "daemon/cmd/cmds.h"
#include "daemon/pipeline/dataset.h"
#include "daemon/pipeline/svg.h"
#include "ingest/number.h"
#include "ingest/rfc3339.h"
#include "ingest/tick.h"
#include "nn/base/tc_err.h"
#include "nn/features.h"
#include "nn/lstm.h"
#include "nn/model.h"
#include "nn/safetensors/safetensors.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: tickcast eval --model M --input FILE [--json] [--plot FILE.svg] [--sym SYM]\n"
          "                     [--since TS] [--val-frac F] [--quiet]\n\n"
          "Runs the model over a tick file as `tickcast replay` does and scores each prediction\n"
          "pred_ret of tick t against the realized return of the instrument's next tick:\n"
          "  n          scored ticks (ticks that have a next tick)\n"
          "  mse, mae   of pred_ret - realized (log-return scale)\n"
          "  mse_rw     MSE of the random walk, which predicts a zero return\n"
          "  skill      1 - mse / mse_rw (> 0: better than the random walk)\n"
          "  dir_acc    share of ticks with a non-zero next return whose sign was called right\n"
          "             (pred_ret > 0 calls up, anything else calls down)\n"
          "  precision, recall, f1   of the \"up\" class on those ticks (0 when undefined)\n"
          "Each instrument's state starts at zero at its first tick; --since and --val-frac only\n"
          "choose which predictions are scored (earlier ticks still warm the state up).\n\n"
          "  --model M       safetensors model file\n"
          "  --input FILE    tick file (CSV or JSON Lines, '-' = stdin)\n"
          "  --json          print the report as one JSON object instead of a table\n"
          "  --plot FILE     write an SVG: predicted vs realized returns and the cumulative\n"
          "                  return of trading the sign of the prediction\n"
          "  --sym SYM       only this instrument (table, JSON and plot)\n"
          "  --since TS      score only predictions made at ts >= TS (integer ns or RFC 3339)\n"
          "  --val-frac F    score only the last F of every instrument's ticks (the split of\n"
          "                  `tickcast train --val-frac F`)\n"
          "  --quiet         no input summary on stderr\n"
          "Exit status: 0 done, 1 runtime failure, 2 bad usage, bad model or unreadable input.\n");
}

typedef struct score {
  uint64_t n;              /* scored ticks */
  double se, ae, se_rw;    /* sums of squared error, absolute error, squared realized */
  uint64_t nz;             /* scored ticks with a non-zero realized return */
  uint64_t tp, fp, fn, tn; /* "up" class on those */
} score;

static void score_add(score *s, double pred, double real) {
  double e = pred - real;
  s->n++;
  s->se += e * e;
  s->ae += fabs(e);
  s->se_rw += real * real;
  if (real == 0)
    return;
  s->nz++;
  int up = pred > 0, real_up = real > 0;
  if (up && real_up)
    s->tp++;
  else if (up)
    s->fp++;
  else if (real_up)
    s->fn++;
  else
    s->tn++;
}

typedef struct metrics {
  double mse, mae, mse_rw, skill, dir_acc, precision, recall, f1;
  int skill_ok; /* mse_rw > 0 */
} metrics;

static metrics score_metrics(const score *s) {
  metrics m = {0};
  if (s->n) {
    m.mse = s->se / s->n;
    m.mae = s->ae / s->n;
    m.mse_rw = s->se_rw / s->n;
  }
  m.skill_ok = m.mse_rw > 0;
  m.skill = m.skill_ok ? 1 - m.mse / m.mse_rw : 0;
  if (s->nz)
    m.dir_acc = (double)(s->tp + s->tn) / s->nz;
  if (s->tp + s->fp)
    m.precision = (double)s->tp / (s->tp + s->fp);
  if (s->tp + s->fn)
    m.recall = (double)s->tp / (s->tp + s->fn);
  if (m.precision + m.recall > 0)
    m.f1 = 2 * m.precision * m.recall / (m.precision + m.recall);
  return m;
}

static void row_table(const char *name, const score *s) {
  metrics m = score_metrics(s);
  printf("%-16s %9llu %12.6g %12.6g %12.6g %+9.5f %8.4f %9.4f %7.4f %7.4f\n", name,
         (unsigned long long)s->n, m.mse, m.mae, m.mse_rw, m.skill, m.dir_acc, m.precision,
         m.recall, m.f1);
}

static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      putchar('\\');
    if ((unsigned char)*s < 0x20)
      printf("\\u%04x", *s);
    else
      putchar(*s);
  }
  putchar('"');
}

static void row_json(const score *s) {
  metrics m = score_metrics(s);
  printf("{\"n\":%llu,\"mse\":%.9g,\"mae\":%.9g,\"mse_rw\":%.9g,", (unsigned long long)s->n, m.mse,
         m.mae, m.mse_rw);
  if (m.skill_ok)
    printf("\"skill\":%.9g,", m.skill);
  else
    printf("\"skill\":null,");
  printf("\"n_nonzero\":%llu,\"dir_acc\":%.9g,\"precision\":%.9g,\"recall\":%.9g,\"f1\":%.9g,"
         "\"tp\":%llu,\"fp\":%llu,\"fn\":%llu,\"tn\":%llu}",
         (unsigned long long)s->nz, m.dir_acc, m.precision, m.recall, m.f1,
         (unsigned long long)s->tp, (unsigned long long)s->fp, (unsigned long long)s->fn,
         (unsigned long long)s->tn);
}

static int pt_cmp(const void *a, const void *b) {
  const svg_point *x = a, *y = b;
  return x->ts < y->ts ? -1 : x->ts > y->ts;
}

/* Predictions for every tick of every series, stepping all instruments in lockstep (the k-th
 * tick of each in one batched step), which equals stepping each one alone. pred[i] (n_i). */
static int predict_all(const nn_model *m, const dataset *d, double **pred) {
  int ns = d->ns, rc = TC_ENOMEM;
  size_t sf = nn_state_floats(m), maxn = 0;
  for (int i = 0; i < ns; i++)
    if (d->s[i].n > maxn)
      maxn = d->s[i].n;
  nn_work w;
  memset(&w, 0, sizeof w);
  float *state = calloc((size_t)ns * sf, sizeof(float)), *x = malloc((size_t)ns * NN_F * 4);
  float *y = malloc((size_t)ns * 4), **sp = malloc((size_t)ns * sizeof *sp);
  int *who = malloc((size_t)ns * sizeof *who);
  if (!state || !x || !y || !sp || !who || nn_work_init(&w, m, ns) != 0)
    goto done;
  for (size_t k = 0; k < maxn; k++) {
    int B = 0;
    for (int i = 0; i < ns; i++) {
      if (k >= d->s[i].n)
        continue;
      nn_features_standardize(m, d->s[i].raw + k * NN_F, x + (size_t)B * NN_F);
      sp[B] = state + (size_t)i * sf;
      who[B++] = i;
    }
    nn_step(m, &w, B, x, sp, y);
    for (int b = 0; b < B; b++)
      pred[who[b]][k] = nn_pred_ret(m, y[b]);
  }
  rc = 0;
done:
  nn_work_free(&w);
  free(state), free(x), free(y), free(sp), free(who);
  return rc;
}

/* The command line. */
typedef struct eval_opts {
  const char *model_path, *in_path, *plot_path, *sym; /* --model, --input, --plot, --sym */
  int json, quiet;                                    /* --json, --quiet */
  int has_since;                                      /* --since given */
  int64_t since;                                      /* --since, ns */
  double val_frac;                                    /* --val-frac, -1 when not given */
} eval_opts;

/* Parses the command line into o. Returns -1 to go on, or the exit status to return at once. */
static int eval_parse(eval_opts *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->val_frac = -1;
  const args_flag flags[] = {
      {"model", ARGS_STR, .dst = &o->model_path},
      {"input", ARGS_STR, .dst = &o->in_path},
      {"json", ARGS_SWITCH, .dst = &o->json},
      {"plot", ARGS_STR, .dst = &o->plot_path},
      {"sym", ARGS_STR, .dst = &o->sym},
      {"since", ARGS_FN, .dst = &o->since, .parse = args_time_ns, .given = &o->has_since,
       .unit = "integer nanoseconds or an RFC 3339 time like 2020-01-01T00:00:00Z"},
      {"val-frac", ARGS_DOUBLE, .dst = &o->val_frac, .lo = 0, .hi = 1, .open_lo = 1},
      {"quiet", ARGS_SWITCH, .dst = &o->quiet, .short_name = 'q'},
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
  return -1;
}

/* One evaluation: the ticks, the predictions and the scores. */
typedef struct eval_run {
  dataset d;      /* the input, whole */
  int only;       /* the series of --sym, or -1 for all */
  double **pred;  /* (ns) pred[i] (n_i): the prediction after each tick of series i */
  score *sc;      /* (ns) per instrument */
  score all;      /* over the instruments scored */
  svg_point *pts; /* (npts) for --plot */
  size_t npts;    /* points in pts */
} eval_run;

/* Loads the input (and its summary) and finds --sym. 0, or the exit status after printing why. */
static int eval_load(eval_run *r, const eval_opts *o) {
  char err[512];
  int rc = dataset_init(&r->d);
  if (rc == 0)
    rc = dataset_load(&r->d, o->in_path, !o->quiet, err, sizeof err);
  else
    snprintf(err, sizeof err, "out of memory");
  if (rc != 0) {
    fprintf(stderr, "tickcast eval: %s\n", err);
    return rc == TC_ENOMEM ? 1 : 2;
  }
  if (!o->quiet)
    dataset_print_summary(&r->d, "eval input");
  r->only = -1;
  if (o->sym && (r->only = symtab_find(&r->d.st, o->sym, strlen(o->sym))) < 0) {
    fprintf(stderr, "tickcast eval: --sym %s: no accepted tick of that instrument in %s\n", o->sym,
            o->in_path);
    return 2;
  }
  return 0;
}

/* Every series' predictions. 0 or TC_ENOMEM. */
static int eval_predict(eval_run *r, const nn_model *m) {
  const dataset *d = &r->d;
  r->pred = calloc(d->ns ? d->ns : 1, sizeof *r->pred);
  r->sc = calloc(d->ns ? d->ns : 1, sizeof *r->sc);
  if (!r->pred || !r->sc)
    return TC_ENOMEM;
  for (int i = 0; i < d->ns; i++)
    if (!(r->pred[i] = malloc((d->s[i].n ? d->s[i].n : 1) * sizeof **r->pred)))
      return TC_ENOMEM;
  return d->ns > 0 ? predict_all(m, d, r->pred) : 0;
}

/* Scores the predictions --sym, --val-frac and --since choose (and keeps them for --plot).
 * 0 or TC_ENOMEM. */
static int eval_score(eval_run *r, const eval_opts *o) {
  const dataset *d = &r->d;
  size_t n = 0;
  for (int i = 0; i < d->ns; i++)
    n += d->s[i].n;
  if (o->plot_path && !(r->pts = malloc((n ? n : 1) * sizeof *r->pts)))
    return TC_ENOMEM;
  for (int i = 0; i < d->ns; i++) {
    if (r->only >= 0 && i != r->only)
      continue;
    const ds_series *s = &d->s[i];
    size_t from = o->val_frac > 0 ? s->n - (size_t)floor((double)s->n * o->val_frac) : 0;
    for (size_t t = from; t + 1 < s->n; t++) {
      if (o->has_since && s->ts[t] < o->since)
        continue;
      double real = s->raw[(t + 1) * NN_F];
      score_add(&r->sc[i], r->pred[i][t], real);
      score_add(&r->all, r->pred[i][t], real);
      if (r->pts)
        r->pts[r->npts++] = (svg_point){s->ts[t], r->pred[i][t], real};
    }
  }
  return 0;
}

static void eval_report_json(const eval_run *r, const eval_opts *o, const nn_model *m) {
  printf("{\"model\":");
  json_str(o->model_path);
  printf(",\"model_id\":\"%s\",\"input\":", m->id);
  json_str(o->in_path);
  printf(",\"instruments\":[");
  int first = 1;
  for (int i = 0; i < r->d.ns; i++) {
    if (r->only >= 0 && i != r->only)
      continue;
    printf("%s{\"sym\":", first ? "" : ",");
    json_str(r->d.s[i].sym);
    printf(",\"metrics\":");
    row_json(&r->sc[i]);
    putchar('}');
    first = 0;
  }
  printf("],\"overall\":");
  row_json(&r->all);
  printf("}\n");
}

static void eval_report_table(const eval_run *r) {
  printf("%-16s %9s %12s %12s %12s %9s %8s %9s %7s %7s\n", "sym", "n", "mse", "mae", "mse_rw",
         "skill", "dir_acc", "precision", "recall", "f1");
  for (int i = 0; i < r->d.ns; i++)
    if (r->only < 0 || i == r->only)
      row_table(r->d.s[i].sym, &r->sc[i]);
  if (r->only < 0)
    row_table("ALL", &r->all);
}

/* --plot: the scored points in time order as SVG. 0, or 1 after printing why. */
static int eval_plot(eval_run *r, const eval_opts *o) {
  qsort(r->pts, r->npts, sizeof *r->pts, pt_cmp);
  char title[256], err[512];
  snprintf(title, sizeof title, "tickcast eval: %s on %s%s%s", o->model_path, o->in_path,
           o->sym ? ", " : "", o->sym ? o->sym : "");
  if (svg_eval_plot(o->plot_path, title, r->pts, r->npts, err, sizeof err) != 0) {
    fprintf(stderr, "tickcast eval: %s\n", err);
    return 1;
  }
  return 0;
}

static void eval_free(eval_run *r) {
  if (r->pred)
    for (int i = 0; i < r->d.ns; i++)
      free(r->pred[i]);
  free(r->pred), free(r->sc), free(r->pts);
  dataset_free(&r->d);
}

int cmd_eval(int argc, char **argv) {
  eval_opts o;
  int status = eval_parse(&o, argc, argv);
  if (status >= 0)
    return status;
  char err[512];
  nn_model m;
  if (nn_model_load(&m, o.model_path, err, sizeof err) != 0) {
    fprintf(stderr, "tickcast eval: %s\n", err);
    return 2;
  }
  eval_run r;
  memset(&r, 0, sizeof r);
  status = eval_load(&r, &o);
  if (status == 0 && (eval_predict(&r, &m) != 0 || eval_score(&r, &o) != 0)) {
    fprintf(stderr, "tickcast eval: out of memory\n");
    status = 1;
  }
  if (status == 0) {
    if (o.json)
      eval_report_json(&r, &o, &m);
    else
      eval_report_table(&r);
    if (fflush(stdout) != 0) {
      fprintf(stderr, "tickcast eval: cannot write the report\n");
      status = 1;
    }
  }
  if (status == 0 && o.plot_path)
    status = eval_plot(&r, &o);
  eval_free(&r);
  nn_model_free(&m);
  return status;
}
