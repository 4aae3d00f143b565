/* run_opts.c: the command line of `tickcast run` (CONTRACT §6): flags, config-file fallbacks,
 * validation with one-line errors, and --help. Not for starting anything: see run.c. */
#include <stdlib.h>
#include <string.h>

#include "daemon/loop/run.h"
#include "daemon/pipeline/log.h"
#include "nn/base/tc_err.h"

void run_usage(FILE *f) {
  fprintf(
      f,
      "usage: tickcast run --model M [--brokers LIST] [OPTIONS]\n"
      "\n"
      "The daemon: consumes ticks (JSON, CONTRACT §1) from a Kafka topic in a consumer group,\n"
      "keeps each instrument's LSTM state, and produces one prediction per accepted tick to\n"
      "the output topic (keyed by sym), rejected messages to the dead-letter topic and a stats\n"
      "object every --stats-interval. Without --brokers it starts an embedded development\n"
      "broker in-process and logs its address.\n"
      "\n"
      "  --model M              safetensors model file (required); SIGHUP reloads it\n"
      "  --group ID             consumer group (default tickcast)\n"
      "  --input-topic T        ticks in (default ticks)\n"
      "  --output-topic T       predictions out (default predictions)\n"
      "  --stats-topic T        stats out (default tickcast.stats)\n"
      "  --dlq-topic T          dead letters out (default tickcast.dlq)\n"
      "  --changelog-topic T    state hand-off between group members (default GROUP.state;\n"
      "                         off: none); see docs/STATE.md\n"
      "  --stats-interval MS    stats period in milliseconds (default 5000)\n"
      "  --http ADDR:PORT       /metrics, /healthz, /readyz (default 127.0.0.1:9464; off)\n"
      "  --chunk N              messages decoded, stepped and produced together (default\n"
      "                         8); latency is about one chunk's processing time\n"
      "  --log-level L          error, warn, info (default) or debug\n"
      "%s"
      "State (docs/STATE.md):\n"
      "  --state DB             state database: instrument states and input offsets,\n"
      "                         checkpointed and restored (default tickcast.db; one\n"
      "                         daemon per file)\n"
      "  --checkpoint-interval MS  checkpoint period (default 1000)\n"
      "  --reset-state          start from empty state even if DB holds another model's\n"
      "  --on-model-change reset|keep  what SIGHUP to a new same-shape model does to the\n"
      "                         instruments' states (default reset)\n"
      "  --sync normal|full     SQLite synchronous mode (default normal)\n"
      "\n"
      "-X consumer.KEY=VALUE or -X producer.KEY=VALUE sets a property on one client only\n"
      "(e.g. -X producer.queue.buffering.max.messages=20000); plain -X KEY=VALUE sets both.\n"
      "Defaults: auto.offset.reset=earliest (override with -X auto.offset.reset=latest),\n"
      "a restart resumes from the offsets checkpointed in --state (Kafka's committed\n"
      "offsets follow the checkpoints); predictions after the last checkpoint may repeat\n"
      "(same src and values), none is lost.\n"
      "Signals: SIGTERM/SIGINT finish the chunk, flush, leave the group and exit 0;\n"
      "SIGHUP reloads --model (a model of another shape is refused, the old one kept).\n"
      "Exit: 0 clean stop, 1 runtime failure (incl. a state file in use), 2 bad usage,\n"
      "bad model file, or a state file that is corrupt or of another model.\n",
      KCONF_USAGE);
}

static const char *const allowed_flags[] = {
    "group",       "input-topic",     "output-topic", "stats-topic",
    "dlq-topic",   "model",           "http",         "stats-interval",
    "chunk",       "log-level",       "state",        "checkpoint-interval",
    "reset-state", "on-model-change", "sync",         "changelog-topic",
    NULL};

/* Parses a decimal int in [lo, hi] for flag `name`. */
static int parse_int(const char *name, const char *v, long lo, long hi, const char *what, int *out,
                     char *err, size_t errlen) {
  char *end;
  long x = strtol(v, &end, 10);
  if (!*v || *end || x < lo || x > hi) {
    snprintf(err, errlen, "--%s %s: expected %s in %ld..%ld", name, v, what, lo, hi);
    return TC_EUSAGE;
  }
  *out = (int)x;
  return 0;
}

/* Kafka topic names: 1..249 bytes of [A-Za-z0-9._-]. */
static int check_topic(const char *name, const char *v, char *err, size_t errlen) {
  size_t n = strlen(v);
  int ok = n >= 1 && n <= 249;
  for (size_t i = 0; ok && i < n; i++)
    ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
         (v[i] >= '0' && v[i] <= '9') || v[i] == '.' || v[i] == '_' || v[i] == '-';
  if (!ok) {
    snprintf(err, errlen, "--%s '%s': expected a Kafka topic name (1..249 of A-Za-z0-9._-)", name,
             v);
    return TC_EUSAGE;
  }
  return 0;
}

void run_opts_free(run_opts *o) {
  if (!o)
    return;
  kconf_free(&o->kc);
  memset(o, 0, sizeof *o);
}

/* The string flags, by name, and where their values go. */
typedef struct flagdef {
  const char *name;
  const char **dst;
} flagdef;

int run_opts_parse(run_opts *o, int argc, char **argv, char *err, size_t errlen) {
  memset(o, 0, sizeof *o);
  kconf_init(&o->kc);
  const char *http = NULL, *stats_ms = NULL, *chunk = NULL, *loglevel = NULL, *ckpt_ms = NULL,
             *omc = NULL, *sync = NULL, *reset = NULL;
  flagdef defs[] = {
      {"group", &o->group},
      {"input-topic", &o->input_topic},
      {"output-topic", &o->output_topic},
      {"stats-topic", &o->stats_topic},
      {"dlq-topic", &o->dlq_topic},
      {"changelog-topic", &o->changelog_topic},
      {"model", &o->model_path},
      {"http", &http},
      {"stats-interval", &stats_ms},
      {"chunk", &chunk},
      {"log-level", &loglevel},
      {"state", &o->state_path},
      {"checkpoint-interval", &ckpt_ms},
      {"on-model-change", &omc},
      {"sync", &sync},
  };
  const int ndefs = (int)(sizeof defs / sizeof defs[0]);
  for (int i = 1; i < argc; i++) {
    int r = kconf_arg(&o->kc, argc, argv, &i, err, errlen);
    if (r < 0)
      return TC_EUSAGE;
    if (r) {
      i--;
      continue;
    }
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      run_usage(stdout);
      return 1;
    }
    if (!strcmp(a, "--reset-state")) {
      reset = "1";
      continue;
    }
    if (strncmp(a, "--", 2) != 0) {
      snprintf(err, errlen, "unexpected argument '%s' (run takes only flags; see --help)", a);
      return TC_EUSAGE;
    }
    const char *eq = strchr(a, '=');
    size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    int k;
    for (k = 0; k < ndefs; k++)
      if (strlen(defs[k].name) == nl && !strncmp(a + 2, defs[k].name, nl))
        break;
    if (k == ndefs) {
      snprintf(err, errlen, "unknown flag '%s' (see tickcast run --help)", a);
      return TC_EUSAGE;
    }
    if (eq) {
      *defs[k].dst = eq + 1;
    } else {
      if (i + 1 >= argc) {
        snprintf(err, errlen, "--%s: missing value", defs[k].name);
        return TC_EUSAGE;
      }
      *defs[k].dst = argv[++i];
    }
  }
  if (kconf_check_flags(&o->kc, allowed_flags, err, errlen) != 0)
    return TC_EUSAGE;
  for (int k = 0; k < ndefs; k++)
    if (!*defs[k].dst)
      *defs[k].dst = kconf_flag(&o->kc, defs[k].name);
  if (!reset)
    reset = kconf_flag(&o->kc, "reset-state");
  if (!o->model_path || !*o->model_path) {
    snprintf(err, errlen, "--model: missing (the safetensors model file to run)");
    return TC_EUSAGE;
  }
  if (!o->group)
    o->group = "tickcast";
  if (!o->input_topic)
    o->input_topic = "ticks";
  if (!o->output_topic)
    o->output_topic = "predictions";
  if (!o->stats_topic)
    o->stats_topic = "tickcast.stats";
  if (!o->dlq_topic)
    o->dlq_topic = "tickcast.dlq";
  if (!o->state_path)
    o->state_path = "tickcast.db";
  if (!o->changelog_topic) {
    snprintf(o->changelog_buf, sizeof o->changelog_buf, "%.*s.state",
             (int)(sizeof o->changelog_buf - 7), o->group);
    o->changelog_topic = o->changelog_buf;
  }
  if (!strcmp(o->changelog_topic, "off"))
    o->changelog_topic = NULL;
  if (!*o->group) {
    snprintf(err, errlen, "--group '': expected a non-empty consumer group id");
    return TC_EUSAGE;
  }
  if (check_topic("input-topic", o->input_topic, err, errlen) ||
      check_topic("output-topic", o->output_topic, err, errlen) ||
      check_topic("stats-topic", o->stats_topic, err, errlen) ||
      check_topic("dlq-topic", o->dlq_topic, err, errlen) ||
      (o->changelog_topic && check_topic("changelog-topic", o->changelog_topic, err, errlen)))
    return TC_EUSAGE;
  if (!strcmp(o->input_topic, o->output_topic) || !strcmp(o->input_topic, o->dlq_topic)) {
    snprintf(err, errlen, "--input-topic %s: must differ from the output and dead-letter topics",
             o->input_topic);
    return TC_EUSAGE;
  }
  o->http = http ? http : "127.0.0.1:9464";
  if (!strcmp(o->http, "off"))
    o->http = NULL;
  o->stats_ms = 5000;
  o->chunk = 8;
  o->checkpoint_ms = 1000;
  if (stats_ms && parse_int("stats-interval", stats_ms, 100, 86400000, "milliseconds", &o->stats_ms,
                            err, errlen))
    return TC_EUSAGE;
  if (chunk && parse_int("chunk", chunk, 1, 65536, "messages", &o->chunk, err, errlen))
    return TC_EUSAGE;
  if (ckpt_ms && parse_int("checkpoint-interval", ckpt_ms, 10, 86400000, "milliseconds",
                           &o->checkpoint_ms, err, errlen))
    return TC_EUSAGE;
  if (loglevel) {
    int lv = log_level_parse(loglevel);
    if (lv < 0) {
      snprintf(err, errlen, "--log-level %s: expected error, warn, info or debug", loglevel);
      return TC_EUSAGE;
    }
    log_level = lv;
  }
  if (omc) {
    if (strcmp(omc, "reset") && strcmp(omc, "keep")) {
      snprintf(err, errlen, "--on-model-change %s: expected reset or keep", omc);
      return TC_EUSAGE;
    }
    o->on_model_change_keep = !strcmp(omc, "keep");
  }
  if (sync) {
    if (strcmp(sync, "normal") && strcmp(sync, "full")) {
      snprintf(err, errlen, "--sync %s: expected normal or full", sync);
      return TC_EUSAGE;
    }
    o->sync_full = !strcmp(sync, "full");
  }
  if (reset) {
    if (strcmp(reset, "1") && strcmp(reset, "true") && strcmp(reset, "yes")) {
      snprintf(err, errlen, "reset-state=%s: expected true (or leave it out)", reset);
      return TC_EUSAGE;
    }
    o->reset_state = 1;
  }
  return 0;
}
