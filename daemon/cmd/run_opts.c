/* run_opts.c: the command line of `tickcast run` (CONTRACT §6): flags, config-file fallbacks,
 * validation with one-line errors, and --help. Not for starting anything: see run.c. */
#include <stdlib.h>
#include <string.h>

#include "daemon/cmd/args.h"
#include "daemon/loop/http.h"
#include "daemon/loop/run.h"
#include "daemon/pipeline/ivtrack.h"
#include "nn/base/lazylib.h"
#include "nn/base/tc_err.h"

void run_usage(FILE *f) {
  fprintf(
      f,
      "usage: tickcast run --model M [--brokers LIST] [OPTIONS]\n"
      "\n"
      "The daemon: consumes ticks (JSON, CONTRACT §1) from a Kafka topic in a consumer group,\n"
      "keeps each instrument's model state, and produces one prediction per accepted tick to\n"
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
      "  --changelog-topic T    the group's states, written at every checkpoint (default\n"
      "                         GROUP.state; off: none); see docs/STATE.md\n"
      "  --stats-interval MS    stats period in milliseconds (default 5000)\n"
      "  --http ADDR:PORT       /metrics, /healthz, /readyz (default 127.0.0.1:9464; off)\n"
      "  --chunk N              messages decoded, stepped and produced together (default\n"
      "                         8); latency is about one chunk's processing time\n"
      "  --backlog-chunk N      the same while the messages are more than 1 s old (their\n"
      "                         Kafka timestamps): a backlog, as when catching up (default\n"
      "                         64; at most --chunk: off)\n"
      "  --max-instruments N    live instruments at most (default 1000000, 0: no bound); a\n"
      "                         tick of a new one beyond it is rejected (instrument_limit)\n"
      "  --max-future MS        a tick whose ts is more than MS ahead of the wall clock is\n"
      "                         rejected (future_ts), so it cannot freeze its instrument\n"
      "                         (default 300000, 0: no bound)\n"
      "  --unhealthy-after MS   /healthz (and /readyz) answer 503 once checkpoints have\n"
      "                         failed, processed ticks have gone uncheckpointed or the\n"
      "                         output has been paused for longer (default 60000, 0: never)\n"
      "  --interval C           coverage of lo_px..hi_px, the central interval of the next\n"
      "                         price that a model with the scale head adds, in (0, 1)\n"
      "                         (default 0.9)\n"
      "  --interval-adapt ETA   step of each instrument's online z (quantile tracking, in z\n"
      "                         units per tick; kept in the checkpointed state); 0 keeps the\n"
      "                         model's calibrated z (default " IVTRACK_ETA_TEXT ")\n"
      "  --log-level L          error, warn, info (default) or debug\n"
      "  --threads N            stream threads, 1..64 (default 1): each its own consumer in\n"
      "                         the group, partitions, producer and state file; one\n"
      "                         endpoint and stats message for all (docs/RUN.md)\n"
      "%s"
      "State (docs/STATE.md):\n"
      "  --state DB             state database: instrument states and input offsets,\n"
      "                         checkpointed and restored (default tickcast.db; one\n"
      "                         daemon per file; stream thread K > 0 uses DB.K)\n"
      "  --checkpoint-interval MS  checkpoint period (default 1000)\n"
      "  --reset-state          start from empty state even if DB holds another model's\n"
      "  --on-model-change reset|keep  what SIGHUP to a new same-shape model does to the\n"
      "                         instruments' states (default reset)\n"
      "  --sync normal|full     SQLite synchronous mode (default normal)\n"
      "\n"
      "-X consumer.KEY=VALUE or -X producer.KEY=VALUE sets a property on one client only\n"
      "(e.g. -X producer.queue.buffering.max.messages=20000); plain -X KEY=VALUE sets both.\n"
      "Defaults: auto.offset.reset=earliest (override with\n"
      "-X consumer.auto.offset.reset=latest),\n"
      "a restart resumes from the offsets checkpointed in --state (Kafka's committed\n"
      "offsets follow the checkpoints); predictions after the last checkpoint may repeat\n"
      "(same src and values), none is lost.\n"
      "Signals: SIGTERM/SIGINT finish the chunk, flush, leave the group and exit 0;\n"
      "SIGHUP reloads --model (a model of another shape is refused, the old one kept).\n"
      "Exit: 0 clean stop, 1 runtime failure (incl. a state file in use), 2 bad usage,\n"
      "bad model file, or a state file that is corrupt or of another model.\n",
      KCONF_USAGE);
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

/* The libraries the tickcast program reaches through stubs (Makefile, nn/base/lazylib.h); absent
 * (weak) where they are linked. */
extern lazylib lazy_sqlite3 __attribute__((weak));
extern lazylib lazy_uv __attribute__((weak));

/* After the flags: the required model, the defaults, and the topics; then the libraries. */
static int check_opts(run_opts *o, const char *http, char *err, size_t errlen) {
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
  /* Which thread a partition lands on changes with every assignment; only the changelog carries
   * its state from one thread's file to another's. */
  if (o->threads > 1 && !o->changelog_topic) {
    snprintf(err, errlen,
             "--threads %d with --changelog-topic off: stream threads hand partitions over "
             "through the changelog; expected --threads 1, or a changelog topic",
             o->threads);
    return TC_EUSAGE;
  }
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
  /* Delivery reports tell dead letters (which never hold offsets back) by their topic. */
  if (!strcmp(o->dlq_topic, o->output_topic)) {
    snprintf(err, errlen, "--dlq-topic %s: must differ from the output topic", o->dlq_topic);
    return TC_EUSAGE;
  }
  /* The daemon's own records (stats, checkpoints) never go into a topic of ticks, predictions or
   * dead letters: read back as ticks they would come back as dead letters, and consumers of the
   * others would get messages of another kind. */
  const char *data[] = {o->input_topic, o->output_topic, o->dlq_topic};
  for (int k = 0; k < 3; k++)
    if (!strcmp(o->stats_topic, data[k]) ||
        (o->changelog_topic && !strcmp(o->changelog_topic, data[k]))) {
      int st = !strcmp(o->stats_topic, data[k]);
      snprintf(err, errlen, "--%s %s: must differ from the input, output and dead-letter topics",
               st ? "stats-topic" : "changelog-topic", data[k]);
      return TC_EUSAGE;
    }
  if (o->changelog_topic && !strcmp(o->changelog_topic, o->stats_topic)) {
    snprintf(err, errlen, "--changelog-topic %s: must differ from the stats topic",
             o->changelog_topic);
    return TC_EUSAGE;
  }
  o->http = http ? http : "127.0.0.1:9464";
  if (!strcmp(o->http, "off"))
    o->http = NULL;
  char host[HTTP_HOST_MAX];
  int port;
  if (o->http && http_addr_parse(o->http, host, &port, err, errlen) != 0)
    return TC_EUSAGE;
  if (o->http && http_lib_load(err, errlen) != 0)
    return TC_EIO;
  /* The libraries of Kafka, the state database and the loop, loaded now so that a missing one
   * is an error before anything starts. */
  if (kconf_lib_load(err, errlen) != 0)
    return TC_EKAFKA;
  if (lazylib_load(&lazy_sqlite3, err, errlen) != 0 || lazylib_load(&lazy_uv, err, errlen) != 0)
    return TC_EIO;
  return 0;
}

static const char *const model_change_names[] = {"reset", "keep",
                                                 NULL};           /* by on_model_change_keep */
static const char *const sync_names[] = {"normal", "full", NULL}; /* by sync_full */

int run_opts_parse(run_opts *o, int argc, char **argv, char *err, size_t errlen) {
  memset(o, 0, sizeof *o);
  kconf_init(&o->kc);
  o->stats_ms = 5000;
  o->chunk = 8;
  o->backlog_chunk = 64;
  o->checkpoint_ms = 1000;
  o->max_instruments = 1000000;
  o->max_future_ms = 300000;
  o->unhealthy_after_ms = 60000;
  o->threads = 1;
  double interval = 0.9;
  o->interval_adapt = IVTRACK_ETA_DEFAULT;
  const char *http = NULL;
  /* In the order kconf_check_flags lists them for an unknown config key. */
  const args_flag flags[] = {
      {"group", ARGS_STR, .dst = &o->group},
      {"input-topic", ARGS_STR, .dst = &o->input_topic},
      {"output-topic", ARGS_STR, .dst = &o->output_topic},
      {"stats-topic", ARGS_STR, .dst = &o->stats_topic},
      {"dlq-topic", ARGS_STR, .dst = &o->dlq_topic},
      {"model", ARGS_STR, .dst = &o->model_path},
      {"http", ARGS_STR, .dst = &http},
      {"stats-interval", ARGS_INT, .dst = &o->stats_ms, .unit = "milliseconds", .lo = 100,
       .hi = 86400000},
      {"chunk", ARGS_INT, .dst = &o->chunk, .unit = "messages", .lo = 1, .hi = 65536},
      {"backlog-chunk", ARGS_INT, .dst = &o->backlog_chunk, .unit = "messages", .lo = 1,
       .hi = 65536},
      {"max-instruments", ARGS_INT, .dst = &o->max_instruments, .unit = "instruments", .lo = 0,
       .hi = 1 << 30},
      {"max-future", ARGS_INT, .dst = &o->max_future_ms, .unit = "milliseconds", .lo = 0,
       .hi = 2147483647},
      {"unhealthy-after", ARGS_INT, .dst = &o->unhealthy_after_ms, .unit = "milliseconds", .lo = 0,
       .hi = 2147483647},
      ARGS_LOG_LEVEL,
      {"threads", ARGS_INT, .dst = &o->threads, .unit = "stream threads", .lo = 1,
       .hi = RUN_THREADS_MAX},
      {"state", ARGS_STR, .dst = &o->state_path},
      {"checkpoint-interval", ARGS_INT, .dst = &o->checkpoint_ms, .unit = "milliseconds", .lo = 10,
       .hi = 86400000},
      {"reset-state", ARGS_SWITCH, .dst = &o->reset_state},
      {"on-model-change", ARGS_CHOICE, .dst = &o->on_model_change_keep,
       .choices = model_change_names},
      {"sync", ARGS_CHOICE, .dst = &o->sync_full, .choices = sync_names},
      {"changelog-topic", ARGS_STR, .dst = &o->changelog_topic},
      ARGS_INTERVAL,
      ARGS_INTERVAL_ADAPT(&o->interval_adapt),
  };
  const args_cmd c = {.name = "run",
                      .flags = flags,
                      .nflags = (int)(sizeof flags / sizeof flags[0]),
                      .kc = &o->kc,
                      .usage = run_usage};
  int rc = args_parse(&c, argc, argv, err, errlen);
  if (rc != 0)
    return rc;
  o->interval = interval;
  return check_opts(o, http, err, errlen);
}
