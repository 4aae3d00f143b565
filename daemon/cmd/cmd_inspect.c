/* cmd_inspect.c: `tickcast inspect --state DB [--json]`: shows a state checkpoint (model binding,
 * offsets per partition, instrument count, top instruments by n, checkpoint time) and checks every
 * state blob on the way. Opens the file read-only, so it is safe next to a running daemon.
 * Not for changing a state file (see `tickcast run --reset-state`). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/cmd/args.h"
#include "daemon/cmd/cmds.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"
#include "store/store.h"

#define TOP_MAX 1000

static void usage(FILE *f) {
  fprintf(f,
          "usage: tickcast inspect --state DB [--json] [--top N]\n\n"
          "Shows a state checkpoint written by `tickcast run`: the model it belongs to (sha256,\n"
          "feature spec, layers, hidden size), when it was written, the next offset per input\n"
          "partition, the number of instruments and the top instruments by ticks applied (n).\n"
          "Every stored state is checked (header and checksum) on the way. The file is opened\n"
          "read-only; inspecting next to a running daemon is safe.\n\n"
          "  --state DB   the state database (default of `tickcast run`: tickcast.db)\n"
          "  --json       one JSON object on stdout instead of text\n"
          "  --top N      how many instruments to list (default 10, at most %d)\n"
          "Exit status: 0 shown, 1 runtime failure (e.g. the file is locked), 2 bad usage or a\n"
          "missing, corrupt, truncated or foreign file.\n",
          TOP_MAX);
}

/* "2026-11-28T23:10:00.123Z" from ns since the epoch. */
static void fmt_time(char *buf, size_t len, int64_t ns) {
  time_t s = (time_t)(ns / 1000000000);
  struct tm tm;
  gmtime_r(&s, &tm);
  size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, len - n, ".%03dZ", (int)(ns % 1000000000 / 1000000));
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

/* Exit status for a TC_E* code: a file that is missing or not an intact state file is 2. */
static int exit_for(int rc) {
  return rc == TC_ENOENT || rc == TC_EFORMAT || rc == TC_ESHAPE ? 2 : 1;
}

static void print_json(const char *path, const store_meta *m, int has_meta, const store_offset *off,
                       size_t noff, uint64_t count, uint64_t verified, const top_list *top) {
  json_t *o = json_object();
  char ts[40] = "";
  json_object_set_new(o, "state", json_string(path));
  json_object_set_new(o, "schema", json_integer(STORE_SCHEMA_VERSION));
  json_object_set_new(o, "model_sha256", has_meta ? json_string(m->model_sha256) : json_null());
  json_object_set_new(o, "features", has_meta ? json_string(m->features) : json_null());
  json_object_set_new(o, "layers", json_integer(m->L));
  json_object_set_new(o, "hidden", json_integer(m->H));
  json_object_set_new(o, "checkpoint_time_ns", json_integer(m->ckpt_time_ns));
  if (m->ckpt_time_ns)
    fmt_time(ts, sizeof ts, m->ckpt_time_ns);
  json_object_set_new(o, "checkpoint_time", m->ckpt_time_ns ? json_string(ts) : json_null());
  json_object_set_new(o, "checkpoint_age_s",
                      m->ckpt_time_ns ? json_real((double)(tc_wall_ns() - m->ckpt_time_ns) / 1e9)
                                      : json_null());
  json_object_set_new(o, "checkpoints", json_integer((json_int_t)m->ckpts));
  json_object_set_new(o, "app", json_string(m->app));
  json_t *oa = json_array();
  for (size_t i = 0; i < noff; i++) {
    json_t *e = json_object();
    json_object_set_new(e, "topic", json_string(off[i].topic));
    json_object_set_new(e, "partition", json_integer(off[i].partition));
    json_object_set_new(e, "next_offset", json_integer(off[i].next_offset));
    json_array_append_new(oa, e);
  }
  json_object_set_new(o, "offsets", oa);
  json_object_set_new(o, "instruments", json_integer((json_int_t)count));
  json_object_set_new(o, "states_verified", json_integer((json_int_t)verified));
  json_t *ta = json_array();
  for (int i = 0; i < top->n; i++) {
    const store_inst *in = &top->in[i];
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

static void print_text(const char *path, const store_meta *m, int has_meta, const store_offset *off,
                       size_t noff, uint64_t count, uint64_t verified, const top_list *top) {
  printf("state        %s (schema %d)\n", path, STORE_SCHEMA_VERSION);
  if (has_meta) {
    printf("model        sha256 %s\n", m->model_sha256[0] ? m->model_sha256 : "(none bound)");
    printf("features     %s\n", m->features);
    printf("shape        L=%d H=%d\n", m->L, m->H);
  } else {
    printf("model        (none bound yet)\n");
  }
  if (m->ckpt_time_ns) {
    char ts[40];
    fmt_time(ts, sizeof ts, m->ckpt_time_ns);
    printf("checkpoint   %s (%.1f s ago), %" PRIu64 " written\n", ts,
           (double)(tc_wall_ns() - m->ckpt_time_ns) / 1e9, m->ckpts);
  } else {
    printf("checkpoint   (none yet)\n");
  }
  if (m->app[0])
    printf("written by   %s\n", m->app);
  printf("offsets      %zu partition%s\n", noff, noff == 1 ? "" : "s");
  for (size_t i = 0; i < noff; i++) {
    char tp[STORE_TOPIC_MAX + 16];
    snprintf(tp, sizeof tp, "%s/%d", off[i].topic, (int)off[i].partition);
    printf("  %-24s next offset %" PRId64 "\n", tp, off[i].next_offset);
  }
  printf("instruments  %" PRIu64 " (%" PRIu64 " states verified)\n", count, verified);
  if (top->n) {
    printf("top %d by n:\n", top->n);
    printf("  %-32s %9s %12s %20s %s\n", "sym", "partition", "n", "last_ts", "last_px");
    for (int i = 0; i < top->n; i++) {
      const store_inst *in = &top->in[i];
      printf("  %-32s %9d %12" PRIu64 " %20" PRId64 " %.10g\n", in->sym, (int)in->partition, in->n,
             in->last_ts, in->last_px);
    }
  }
}

int cmd_inspect(int argc, char **argv) {
  const char *path = NULL;
  int json = 0, ntop = 10;
  const args_flag flags[] = {
      {"state", ARGS_STR, .dst = &path},
      {"json", ARGS_SWITCH, .dst = &json},
      {"top", ARGS_INT, .dst = &ntop, .unit = "a number", .lo = 0, .hi = TOP_MAX},
  };
  const args_cmd c = {.name = "inspect",
                      .flags = flags,
                      .nflags = (int)(sizeof flags / sizeof flags[0]),
                      .usage = usage,
                      .unknown = "unknown or incomplete option"};
  char err[512];
  int status = args_parse_cmd(&c, argc, argv);
  if (status >= 0)
    return status;
  if (!path) {
    fprintf(stderr, "tickcast inspect: --state DB is required (see --help)\n");
    return 2;
  }
  store *st = NULL;
  int rc = store_open(path, STORE_SYNC_NORMAL, STORE_OPEN_READONLY, &st, err, sizeof err);
  if (rc) {
    fprintf(stderr, "tickcast inspect: %s\n", err);
    return exit_for(rc);
  }
  store_meta m;
  rc = store_meta_get(st, &m, err, sizeof err);
  int has_meta = rc == 0;
  if (rc == TC_ENOENT)
    rc = 0;
  store_offset *off = NULL;
  size_t noff = 0;
  uint64_t count = 0, verified = 0;
  top_list *top = calloc(1, sizeof *top);
  if (!top)
    rc = TC_ENOMEM;
  if (!rc)
    rc = store_offsets_load(st, &off, &noff, err, sizeof err);
  if (!rc)
    rc = store_instruments_count(st, &count, err, sizeof err);
  if (!rc && count && !(has_meta && m.L > 0 && m.H > 0)) {
    snprintf(err, sizeof err,
             "state db %s: %" PRIu64 " instruments stored but no model shape "
             "(L=%d H=%d) to check them against",
             path, count, m.L, m.H);
    rc = TC_EFORMAT;
  }
  if (!rc && count)
    rc = store_instruments_load(st, m.L, m.H, verify_cb, &verified, err, sizeof err);
  if (!rc && ntop)
    rc = store_instruments_top(st, ntop, top_cb, top, err, sizeof err);
  if (rc) {
    if (rc == TC_ENOMEM)
      snprintf(err, sizeof err, "out of memory");
    fprintf(stderr, "tickcast inspect: %s\n", err);
  } else if (json) {
    print_json(path, &m, has_meta, off, noff, count, verified, top);
  } else {
    print_text(path, &m, has_meta, off, noff, count, verified, top);
  }
  free(off);
  free(top);
  store_close(st);
  return rc ? exit_for(rc) : 0;
}
