/* cmd_inspect.c: `tickcast inspect --state DB [--json]`: shows a state checkpoint (model binding,
 * offsets per partition, instrument count, top instruments by n, checkpoint time) and checks every
 * state blob on the way. Opens the file read-only, so it is safe next to a running daemon.
 * `--model M` hands over to cmd_inspect_model.c. Not for changing a state file (see
 * `tickcast run --reset-state`). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/cmd/args.h"
#include "daemon/cmd/cmds.h"
#include "nn/base/cell.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"
#include "store/store.h"

#define TOP_MAX 1000

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: tickcast inspect --state DB [--json] [--top N]\n"
      "       tickcast inspect --model M [--json] [--top N]\n\n"
      "--model M shows a model file: sha256 and id (what predictions and stats name), cell,\n"
      "shape, features, how it was trained, its validation figures and the threshold it had\n"
      "to pass, the held-out test part's figures, each instrument's training, validation\n"
      "and test ranges (the first N), and any other metadata.\n\n"
      "--state DB:\n"
      "Shows a state checkpoint written by `tickcast run`: the model it belongs to (sha256,\n"
      "feature spec, cell, layers, hidden size), when it was written, the next offset per\n"
      "input partition, the number of instruments and the top instruments by ticks applied\n"
      "(n). Every stored state is checked (header, cell and checksum) on the way. The file is\n"
      "opened read-only; inspecting next to a running daemon is safe.\n\n"
      "  --state DB   the state database (default of `tickcast run`: tickcast.db)\n"
      "  --json       one JSON object on stdout instead of text\n"
      "  --model M    a model file (safetensors) instead of a state database\n"
      "  --top N      how many instruments to list (default 10, at most %d)\n"
      "Exit status: 0 shown, 1 runtime failure (e.g. the file is locked), 2 bad usage or a\n"
      "missing, corrupt, truncated or foreign file (or one holding states of another cell than\n"
      "its binding's).\n",
      TOP_MAX);
}

/* ns since the epoch as UTC with milliseconds, any int64 (before 1970 too: the second and the
 * fraction are floored, so -1 ns is 1969-12-31T23:59:59.999Z). */
static void fmt_time(char *buf, size_t len, int64_t ns) {
  int64_t sec = ns / 1000000000, frac = ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    sec--;
  }
  time_t s = (time_t)sec;
  struct tm tm;
  gmtime_r(&s, &tm);
  size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, len - n, ".%03dZ", (int)(frac / 1000000));
}

/* Seconds from ns to now, in double (an int64 difference of a corrupt time can overflow). */
static double secs_ago(int64_t ns) {
  return ((double)tc_wall_ns() - (double)ns) / 1e9;
}

typedef struct top_list {
  int n;
  store_inst in[TOP_MAX];
  char sym[TOP_MAX][STORE_SYM_MAX + 1];
} top_list;

static int top_cb(void *ud, const store_inst *in) {
  top_list *t = ud;
  if (t->n >= TOP_MAX)
    return 0;
  t->in[t->n] = *in;
  snprintf(t->sym[t->n], sizeof t->sym[t->n], "%.*s", (int)in->sym_len, in->sym);
  t->in[t->n].sym = t->sym[t->n];
  t->n++;
  return 0;
}

static int verify_cb(void *ud, const store_inst *in) {
  (void)in;
  ++*(uint64_t *)ud;
  return 0;
}

/* Exit status for a TC_E* code: a file that is missing or not an intact state file (a state of
 * another cell than the binding's too) is 2. */
static int exit_for(int rc) {
  return rc == TC_ENOENT || rc == TC_EFORMAT || rc == TC_ESHAPE || rc == TC_EMODEL ? 2 : 1;
}

/* What inspect shows of a state file. */
typedef struct inspect_view {
  const char *path;  /* the file */
  store_meta m;      /* its model binding and checkpoint record */
  int has_meta;      /* m was found */
  store_offset *off; /* (noff) next input offset per partition */
  size_t noff;
  uint64_t count;    /* instruments stored */
  uint64_t verified; /* states whose header and checksum were checked */
  top_list *top;     /* the top instruments by n */
} inspect_view;

static void print_json(const inspect_view *v) {
  json_t *o = json_object();
  char ts[40] = "";
  json_object_set_new(o, "state", json_string(v->path));
  json_object_set_new(o, "schema", json_integer(STORE_SCHEMA_VERSION));
  json_object_set_new(o, "model_sha256",
                      v->has_meta ? json_string(v->m.model_sha256) : json_null());
  json_object_set_new(o, "features", v->has_meta ? json_string(v->m.features) : json_null());
  json_object_set_new(o, "layers", json_integer(v->m.L));
  json_object_set_new(o, "hidden", json_integer(v->m.H));
  json_object_set_new(o, "cell", v->has_meta ? json_string(nn_cell_name(v->m.cell)) : json_null());
  json_object_set_new(o, "checkpoint_time_ns", json_integer(v->m.ckpt_time_ns));
  if (v->m.ckpt_time_ns)
    fmt_time(ts, sizeof ts, v->m.ckpt_time_ns);
  json_object_set_new(o, "checkpoint_time", v->m.ckpt_time_ns ? json_string(ts) : json_null());
  json_object_set_new(o, "checkpoint_age_s",
                      v->m.ckpt_time_ns ? json_real(secs_ago(v->m.ckpt_time_ns)) : json_null());
  json_object_set_new(o, "checkpoints", json_integer((json_int_t)v->m.ckpts));
  json_object_set_new(o, "app", json_string(v->m.app));
  json_t *oa = json_array();
  for (size_t i = 0; i < v->noff; i++) {
    json_t *e = json_object();
    json_object_set_new(e, "topic", json_string(v->off[i].topic));
    json_object_set_new(e, "partition", json_integer(v->off[i].partition));
    json_object_set_new(e, "next_offset", json_integer(v->off[i].next_offset));
    json_array_append_new(oa, e);
  }
  json_object_set_new(o, "offsets", oa);
  json_object_set_new(o, "instruments", json_integer((json_int_t)v->count));
  json_object_set_new(o, "states_verified", json_integer((json_int_t)v->verified));
  json_t *ta = json_array();
  for (int i = 0; i < v->top->n; i++) {
    const store_inst *in = &v->top->in[i];
    json_t *e = json_object();
    json_object_set_new(e, "sym", json_string(in->sym));
    json_object_set_new(e, "partition", json_integer(in->partition));
    json_object_set_new(e, "n", json_integer((json_int_t)in->n));
    json_object_set_new(e, "last_ts", json_integer(in->last_ts));
    json_object_set_new(e, "last_px", json_real(in->last_px));
    json_array_append_new(ta, e);
  }
  json_object_set_new(o, "top", ta);
  char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
  if (s)
    printf("%s\n", s);
  free(s);
  json_decref(o);
}

static void print_text(const inspect_view *v) {
  printf("state        %s (schema %d)\n", v->path, STORE_SCHEMA_VERSION);
  if (v->has_meta) {
    printf("model        sha256 %s\n", v->m.model_sha256[0] ? v->m.model_sha256 : "(none bound)");
    printf("features     %s\n", v->m.features);
    printf("shape        L=%d H=%d\n", v->m.L, v->m.H);
    printf("cell         %s\n", nn_cell_name(v->m.cell));
  } else {
    printf("model        (none bound yet)\n");
  }
  if (v->m.ckpt_time_ns) {
    char ts[40];
    fmt_time(ts, sizeof ts, v->m.ckpt_time_ns);
    printf("checkpoint   %s (%.1f s ago), %" PRIu64 " written\n", ts, secs_ago(v->m.ckpt_time_ns),
           v->m.ckpts);
  } else {
    printf("checkpoint   (none yet)\n");
  }
  if (v->m.app[0])
    printf("written by   %s\n", v->m.app);
  printf("offsets      %zu partition%s\n", v->noff, v->noff == 1 ? "" : "s");
  for (size_t i = 0; i < v->noff; i++) {
    char tp[STORE_TOPIC_MAX + 16];
    snprintf(tp, sizeof tp, "%s/%d", v->off[i].topic, (int)v->off[i].partition);
    printf("  %-24s next offset %" PRId64 "\n", tp, v->off[i].next_offset);
  }
  printf("instruments  %" PRIu64 " (%" PRIu64 " states verified)\n", v->count, v->verified);
  if (v->top->n) {
    printf("top %d by n:\n", v->top->n);
    printf("  %-32s %9s %12s %20s %s\n", "sym", "partition", "n", "last_ts", "last_px");
    for (int i = 0; i < v->top->n; i++) {
      const store_inst *in = &v->top->in[i];
      printf("  %-32s %9d %12" PRIu64 " %20" PRId64 " %.10g\n", in->sym, (int)in->partition, in->n,
             in->last_ts, in->last_px);
    }
  }
}

/* Reads v->path's model binding, offsets and instrument count, checks every stored state and
 * lists the top ntop instruments. 0 or a TC_E* code with err set. */
static int inspect_read(inspect_view *v, store *st, int ntop, char *err, size_t errlen) {
  int rc = store_meta_get(st, &v->m, err, errlen);
  v->has_meta = rc == 0;
  if (rc == TC_ENOENT)
    rc = 0;
  if (!rc && !(v->top = calloc(1, sizeof *v->top))) {
    snprintf(err, errlen, "out of memory");
    rc = TC_ENOMEM;
  }
  if (!rc)
    rc = store_offsets_load(st, &v->off, &v->noff, err, errlen);
  if (!rc)
    rc = store_instruments_count(st, &v->count, err, errlen);
  if (!rc && v->count && !(v->has_meta && v->m.L > 0 && v->m.H > 0)) {
    snprintf(err, errlen,
             "state db %s: %" PRIu64 " instruments stored but no model shape "
             "(L=%d H=%d) to check them against",
             v->path, v->count, v->m.L, v->m.H);
    rc = TC_EFORMAT;
  }
  if (!rc && v->count)
    rc =
        store_instruments_load(st, v->m.cell, v->m.L, v->m.H, verify_cb, &v->verified, err, errlen);
  if (!rc && ntop)
    rc = store_instruments_top(st, ntop, top_cb, v->top, err, errlen);
  if (rc == TC_ENOMEM)
    snprintf(err, errlen, "out of memory");
  return rc;
}

int cmd_inspect(int argc, char **argv) {
  inspect_view v;
  memset(&v, 0, sizeof v);
  int json = 0, ntop = 10;
  const char *model = NULL;
  const args_flag flags[] = {
      {"state", ARGS_STR, .dst = &v.path},
      {"model", ARGS_STR, .dst = &model},
      {"json", ARGS_SWITCH, .dst = &json},
      {"top", ARGS_INT, .dst = &ntop, .unit = "a number", .lo = 0, .hi = TOP_MAX},
  };
  const args_cmd c = {.name = "inspect",
                      .flags = flags,
                      .nflags = (int)(sizeof flags / sizeof flags[0]),
                      .usage = usage,
                      .unknown = "unknown or incomplete option"};
  int status = args_parse_cmd(&c, argc, argv);
  if (status >= 0)
    return status;
  if (!v.path == !model) {
    fprintf(stderr, "tickcast inspect: %s (see --help)\n",
            model ? "--state and --model exclude each other"
                  : "--state DB is required, or --model M");
    return 2;
  }
  if (model)
    return cmd_inspect_model(model, json, ntop);
  char err[512];
  store *st = NULL;
  int rc = store_open(v.path, STORE_SYNC_NORMAL, STORE_OPEN_READONLY, &st, err, sizeof err);
  if (!rc)
    rc = inspect_read(&v, st, ntop, err, sizeof err);
  if (rc)
    fprintf(stderr, "tickcast inspect: %s\n", err);
  else if (json)
    print_json(&v);
  else
    print_text(&v);
  free(v.off);
  free(v.top);
  store_close(st);
  return rc ? exit_for(rc) : args_stdout_done("inspect");
}
