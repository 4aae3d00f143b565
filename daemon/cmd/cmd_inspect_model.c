/* cmd_inspect_model.c: `tickcast inspect --model M [--json] [--top N]`: what a model file says
 * about itself: its identity (sha256, the id predictions and stats carry), shape, cell and
 * features, how it was trained (inputs, arguments, epochs, output scale), its validation figures
 * and the threshold it had to pass, the figures of the held-out test part, and each instrument's
 * training, validation and test ranges. Reads the file through the same loader as run and eval.
 * Not for state files (cmd_inspect.c). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cmd/args.h"
#include "daemon/cmd/cmds.h"
#include "daemon/pipeline/evalstat.h"
#include "daemon/pipeline/ivcal.h"
#include "ingest/rfc3339.h"
#include "nn/model.h"
#include "nn/safetensors/safetensors.h"

/* The metadata keys shown in their own lines; the others are listed under "other metadata". */
static const char *const shown_keys[] = {
    "tickcast.format",        "tickcast.features",      "tickcast.cell",
    "tickcast.trained_on",    "tickcast.train_args",    "tickcast.seed",
    "tickcast.epochs",        "tickcast.best_epoch",    "tickcast.val_mse",
    "tickcast.val_mse_rw",    "tickcast.val_skill",     "tickcast.val_tstat",
    "tickcast.val_fit_skill", "tickcast.val_t_min",     "tickcast.trials",
    "tickcast.output_scale",  "tickcast.test_n",        "tickcast.test_mse",
    "tickcast.test_mse_rw",   "tickcast.test_skill",    "tickcast.test_skill_ci",
    "tickcast.test_dm_p",     "tickcast.test_dir_acc",  "tickcast.test_dir_base",
    "tickcast.ranges",        NN_META_NONLINEARITY_KEY, NN_META_HEAD_KEY,
    "tickcast.val_nll",       "tickcast.val_nll_const", "tickcast.var_scale",
    "tickcast.var_shift",     NN_META_INTERVAL_KEY,     NULL};

static int shown(const char *key) {
  for (int i = 0; shown_keys[i]; i++)
    if (strcmp(key, shown_keys[i]) == 0)
      return 1;
  return 0;
}

/* The recurrent cell, from the model's tensor names (and an RNN's tickcast.nonlinearity). */
static const char *model_cell(const nn_model *m) {
  return nn_cell_name(m->cell);
}

static const char *meta(const nn_model *m, const char *key) {
  const char *v = nn_model_get_meta(m, key);
  return v ? v : "-";
}

/* One instrument's parts as inspect shows them. */
typedef struct range_row {
  const char *sym;
  json_int_t train, val, test;   /* ticks */
  int has_from, has_val, has_to; /* which times are there */
  json_int_t from, val_from, to; /* ns */
} range_row;

static range_row range_of(const char *sym, json_t *e) {
  range_row r = {sym, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  r.train = json_integer_value(json_object_get(e, "train"));
  r.val = json_integer_value(json_object_get(e, "val"));
  r.test = json_integer_value(json_object_get(e, "test"));
  json_t *v;
  if ((v = json_object_get(e, "from")) && json_is_integer(v))
    r.has_from = 1, r.from = json_integer_value(v);
  if ((v = json_object_get(e, "val_from")) && json_is_integer(v))
    r.has_val = 1, r.val_from = json_integer_value(v);
  if ((v = json_object_get(e, "to")) && json_is_integer(v))
    r.has_to = 1, r.to = json_integer_value(v);
  return r;
}

/* The first `top` instruments of tickcast.ranges (an object; its keys stay valid while it lives)
 * into rows (room for top). Returns how many. */
static int ranges_rows(json_t *ranges, int top, range_row *rows) {
  const char *sym;
  json_t *e;
  int k = 0;
  json_object_foreach(ranges, sym, e) {
    if (k >= top)
      break;
    rows[k++] = range_of(sym, e);
  }
  return k;
}

static json_t *time_json(int has, json_int_t ns) {
  char b[TICK_RFC3339_MAX];
  if (!has)
    return json_null();
  tick_format_rfc3339(b, sizeof b, ns);
  return json_string(b);
}

/* A metadata value as a JSON number when it reads as one, else as a string (or null). */
static json_t *num_json(const nn_model *m, const char *key) {
  const char *v = nn_model_get_meta(m, key);
  if (!v)
    return json_null();
  char *end;
  long long i = strtoll(v, &end, 10);
  if (*v && !*end)
    return json_integer(i);
  double x = strtod(v, &end);
  return *v && !*end ? json_real(x) : json_string(v);
}

static void print_json(const nn_model *m, const char *path, const char *hex, json_t *ranges,
                       const range_row *rows, int nrows) {
  json_t *o = json_object();
  json_object_set_new(o, "model", json_string(path));
  json_object_set_new(o, "sha256", json_string(hex));
  json_object_set_new(o, "id", json_string(m->id));
  json_object_set_new(o, "cell", json_string(model_cell(m)));
  json_object_set_new(o, "layers", json_integer(m->L));
  json_object_set_new(o, "hidden", json_integer(m->H));
  json_object_set_new(o, "peephole", json_boolean(m->peephole));
  json_object_set_new(o, "head", json_string(m->gauss ? "gauss" : "mean"));
  if (m->gauss) {
    json_t *sh = json_object();
    json_object_set_new(sh, "val_nll", num_json(m, "tickcast.val_nll"));
    json_object_set_new(sh, "val_nll_const", num_json(m, "tickcast.val_nll_const"));
    json_object_set_new(sh, "var_scale", num_json(m, "tickcast.var_scale"));
    json_object_set_new(sh, "var_shift", num_json(m, "tickcast.var_shift"));
    nn_ival t;
    json_t *iv = json_null();
    if (nn_ival_get(m, &t, NULL, 0) == 0 && t.k > 0) {
      json_t *a = json_array();
      for (int i = 0; i < t.k; i++)
        json_array_append_new(a, json_pack("[f,f]", t.c[i], t.q[i]));
      iv = json_pack("{s:I,s:o}", "n", (json_int_t)t.n, "absz", a);
    }
    json_object_set_new(sh, "interval", iv);
    json_object_set_new(sh, "z90", json_real(ivcal_z(m, 0.9)));
    json_object_set_new(o, "scale_head", sh);
  }
  json_object_set_new(o, "parameters", json_integer((json_int_t)m->nparams));
  json_object_set_new(o, "features", json_string(meta(m, NN_META_FEATURES_KEY)));
  json_t *val = json_object();
  json_object_set_new(val, "mse", num_json(m, "tickcast.val_mse"));
  json_object_set_new(val, "mse_rw", num_json(m, "tickcast.val_mse_rw"));
  json_object_set_new(val, "skill", num_json(m, "tickcast.val_skill"));
  json_object_set_new(val, "fit_skill", num_json(m, "tickcast.val_fit_skill"));
  json_object_set_new(val, "tstat", num_json(m, "tickcast.val_tstat"));
  json_object_set_new(val, "t_min", num_json(m, "tickcast.val_t_min"));
  json_object_set_new(val, "trials", num_json(m, "tickcast.trials"));
  json_object_set_new(val, "output_scale", num_json(m, "tickcast.output_scale"));
  json_object_set_new(o, "validation", val);
  json_t *test = json_object();
  json_object_set_new(test, "n", num_json(m, "tickcast.test_n"));
  json_object_set_new(test, "mse", num_json(m, "tickcast.test_mse"));
  json_object_set_new(test, "mse_rw", num_json(m, "tickcast.test_mse_rw"));
  json_object_set_new(test, "skill", num_json(m, "tickcast.test_skill"));
  const char *ci = nn_model_get_meta(m, "tickcast.test_skill_ci");
  double lo, hi;
  if (ci && sscanf(ci, "%lf,%lf", &lo, &hi) == 2)
    json_object_set_new(test, "skill_ci", json_pack("[f,f]", lo, hi));
  else
    json_object_set_new(test, "skill_ci", json_null());
  json_object_set_new(test, "dm_p", num_json(m, "tickcast.test_dm_p"));
  json_object_set_new(test, "dir_acc", num_json(m, "tickcast.test_dir_acc"));
  json_object_set_new(test, "dir_base", num_json(m, "tickcast.test_dir_base"));
  json_object_set_new(o, "test", test);
  json_t *ra = json_array();
  for (int k = 0; k < nrows; k++) {
    const range_row r = rows[k];
    json_t *x = json_object();
    json_object_set_new(x, "sym", json_string(r.sym));
    json_object_set_new(x, "train", json_integer(r.train));
    json_object_set_new(x, "val", json_integer(r.val));
    json_object_set_new(x, "test", json_integer(r.test));
    json_object_set_new(x, "from", time_json(r.has_from, r.from));
    json_object_set_new(x, "val_from", time_json(r.has_val, r.val_from));
    json_object_set_new(x, "to", time_json(r.has_to, r.to));
    json_array_append_new(ra, x);
  }
  json_object_set_new(o, "instruments", json_integer((json_int_t)json_object_size(ranges)));
  json_object_set_new(o, "ranges", ra);
  json_t *md = json_object();
  for (int i = 0; i < m->nmeta; i++)
    json_object_set_new(md, m->meta_key[i], json_string(m->meta_val[i]));
  json_object_set_new(o, "metadata", md);
  char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
  if (s)
    printf("%s\n", s);
  free(s);
  json_decref(o);
}

static void print_ranges(json_t *ranges, const range_row *rows, int nrows) {
  size_t n = json_object_size(ranges);
  if (!n) {
    printf("ranges       (none recorded: not written by tickcast train, or an older one)\n");
    return;
  }
  printf("ranges       %zu instrument%s (ticks per part; the model saw from .. to)%s\n", n,
         n == 1 ? "" : "s", (size_t)nrows < n ? ", first ones:" : "");
  printf("  %-16s %9s %9s %9s  %-20s %-20s %s\n", "sym", "train", "val", "test", "from", "val_from",
         "to");
  for (int k = 0; k < nrows; k++) {
    const range_row r = rows[k];
    char a[TICK_RFC3339_MAX] = "-", b[TICK_RFC3339_MAX] = "-", c[TICK_RFC3339_MAX] = "-";
    if (r.has_from)
      tick_format_rfc3339(a, sizeof a, r.from);
    if (r.has_val)
      tick_format_rfc3339(b, sizeof b, r.val_from);
    if (r.has_to)
      tick_format_rfc3339(c, sizeof c, r.to);
    printf("  %-16s %9lld %9lld %9lld  %-20s %-20s %s\n", r.sym, (long long)r.train,
           (long long)r.val, (long long)r.test, a, b, c);
  }
}

/* The interval line of a gauss model: z at a few coverages, calibrated or normal. */
static void print_interval(const nn_model *m) {
  static const double cs[] = {0.5, 0.8, 0.9, 0.95, 0.99};
  nn_ival t;
  if (nn_ival_get(m, &t, NULL, 0) != 0 || t.k == 0) {
    printf("interval     normal quantiles (no calibration table)\n");
    return;
  }
  printf("interval     z = quantile of |z| on %llu validation residuals (normal's in brackets):",
         (unsigned long long)t.n);
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
    printf("%s %g%% %.4f (%.4f)", i ? "," : "", 100 * cs[i], ivcal_z(m, cs[i]),
           evalstat_norm_quantile(0.5 + 0.5 * cs[i]));
  printf("\n");
}

static void print_text(const nn_model *m, const char *path, const char *hex, json_t *ranges,
                       const range_row *rows, int nrows) {
  printf("model        %s\n", path);
  printf("sha256       %s (id %s)\n", hex, m->id);
  printf("cell         %s\n", model_cell(m));
  printf("shape        L=%d H=%d%s, %zu parameters\n", m->L, m->H, m->peephole ? " peephole" : "",
         m->nparams);
  if (m->gauss) {
    const char *b = meta(m, "tickcast.var_shift");
    printf("head         gauss (scale head): validation NLL %s vs %s for a constant variance; "
           "log-variance calibrated as %s s %s%s\n",
           meta(m, "tickcast.val_nll"), meta(m, "tickcast.val_nll_const"),
           meta(m, "tickcast.var_scale"), b[0] == '-' ? "" : "+", b);
    print_interval(m);
  }
  printf("features     %s\n", meta(m, NN_META_FEATURES_KEY));
  printf("trained on   %s\n", meta(m, "tickcast.trained_on"));
  printf("train args   %s\n", meta(m, "tickcast.train_args"));
  printf("training     best epoch %s of %s, output scale %s\n", meta(m, "tickcast.best_epoch"),
         meta(m, "tickcast.epochs"), meta(m, "tickcast.output_scale"));
  printf("validation   skill %s (mse %s vs random walk %s); the trained model's skill %s, gain "
         "t %s, kept when t >= %s over %s trial(s)\n",
         meta(m, "tickcast.val_skill"), meta(m, "tickcast.val_mse"), meta(m, "tickcast.val_mse_rw"),
         meta(m, "tickcast.val_fit_skill"), meta(m, "tickcast.val_tstat"),
         meta(m, "tickcast.val_t_min"), meta(m, "tickcast.trials"));
  const char *tn = nn_model_get_meta(m, "tickcast.test_n");
  if (!tn || strcmp(tn, "0") == 0)
    printf("test         none held out\n");
  else if (!nn_model_get_meta(m, "tickcast.test_dir_acc"))
    printf("test         %s predictions, skill %s, 95%% interval [%s], Diebold-Mariano p %s, "
           "no direction called\n",
           tn, meta(m, "tickcast.test_skill"), meta(m, "tickcast.test_skill_ci"),
           meta(m, "tickcast.test_dm_p"));
  else
    printf("test         %s predictions, skill %s, 95%% interval [%s], Diebold-Mariano p %s, "
           "direction %s (base rate %s)\n",
           tn, meta(m, "tickcast.test_skill"), meta(m, "tickcast.test_skill_ci"),
           meta(m, "tickcast.test_dm_p"), meta(m, "tickcast.test_dir_acc"),
           meta(m, "tickcast.test_dir_base"));
  print_ranges(ranges, rows, nrows);
  int other = 0;
  for (int i = 0; i < m->nmeta; i++)
    if (!shown(m->meta_key[i]))
      printf("%s  %s = %s\n", other++ ? "            " : "metadata  ", m->meta_key[i],
             m->meta_val[i]);
}

int cmd_inspect_model(const char *path, int json, int top) {
  char err[512];
  nn_model m;
  if (nn_model_load(&m, path, err, sizeof err) != 0) {
    fprintf(stderr, "tickcast inspect: %s\n", err);
    return 2;
  }
  char hex[65];
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", m.sha256[i]);
  const char *rt = nn_model_get_meta(&m, "tickcast.ranges");
  json_t *ranges = rt ? json_loads(rt, 0, NULL) : NULL;
  if (!json_is_object(ranges)) {
    json_decref(ranges);
    ranges = json_object();
  }
  range_row *rows = calloc(top > 0 ? (size_t)top : 1, sizeof *rows);
  int status = 1;
  if (!rows) {
    fprintf(stderr, "tickcast inspect: out of memory\n");
  } else {
    int nrows = ranges_rows(ranges, top, rows);
    if (json)
      print_json(&m, path, hex, ranges, rows, nrows);
    else
      print_text(&m, path, hex, ranges, rows, nrows);
    status = args_stdout_done("inspect");
  }
  free(rows);
  json_decref(ranges);
  nn_model_free(&m);
  return status;
}
