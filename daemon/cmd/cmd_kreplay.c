/* cmd_kreplay.c: the command line of `tickcast replay --brokers LIST --topic T` (cmd_replay.c
 * hands over when it sees --brokers or --topic): flags, config-file values, the checks across
 * them, the time bounds and the model; the replay itself is daemon/kafka/kreplay.c. */
#include <stdio.h>
#include <string.h>

#include "daemon/cmd/args.h"
#include "daemon/cmd/cmds.h"
#include "daemon/kafka/kreplay.h"
#include "daemon/pipeline/encode.h"
#include "daemon/pipeline/ivtrack.h"
#include "daemon/pipeline/preplay.h"
#include "ingest/number.h"
#include "ingest/tick.h"
#include "nn/base/tc_err.h"
#include "nn/safetensors/safetensors.h"

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: tickcast replay --model M --brokers LIST --topic T [--partitions P,...]\n"
      "         [--start-offset N | --start-time T] [--end-offset N | --end-time T]\n"
      "         [--output FILE | --output-topic T] [--interval C]\n"
      "         [--interval-adapt ETA] [--idle-timeout MS]\n"
      "         [--threads N] [--quiet]\n"
      "\n"
      "Runs the model over a range of a Kafka topic, with fresh state, and stops at the end\n"
      "of the range. Partitions are assigned explicitly: no consumer group joins, nothing is\n"
      "committed. Each partition's range is [start, end): start = --start-offset, or the first\n"
      "offset whose message timestamp is >= --start-time, or the partition's first offset;\n"
      "end = --end-offset, or the first offset whose timestamp is >= --end-time, or the high\n"
      "watermark when the replay starts. Message timestamps are Kafka's (producer CreateTime\n"
      "by default), not the ticks' ts; times are RFC 3339 or integer ns since the epoch.\n"
      "Ticks keep their per-partition order. Predictions: CSV (" ENC_CSV_HEADER ") by\n"
      "default, JSON Lines (src = TOPIC/PARTITION/OFFSET) when the output name ends in .jsonl,\n"
      "stdout without --output; or --output-topic T: one JSON prediction per message, key = sym.\n"
      "A model with the scale head (train --head gauss) adds pred_std, lo_px and hi_px.\n"
      "\n"
      "  --model M            safetensors model file\n"
      "  --topic T            input topic (required)\n"
      "  --partitions LIST    partitions to read, e.g. 0,3 (default: all)\n"
      "  --start-offset N     same offset in every partition (clamped to the first offset)\n"
      "  --start-time T       via offsets-for-times (needs a real broker; the embedded one\n"
      "                       does not implement it)\n"
      "  --end-offset N       exclusive; clamped to the high watermark\n"
      "  --end-time T         exclusive, via offsets-for-times\n"
      "  --output FILE        prediction file ('-' = stdout)\n"
      "  --output-topic T     produce predictions to topic T instead\n"
      "  --interval C         coverage of lo_px..hi_px, in (0, 1) (default 0.9)\n"
      "  --interval-adapt ETA step of each instrument's online z, 0: the model's static z\n"
      "                       (default " IVTRACK_ETA_TEXT "; see tickcast replay --help)\n"
      "  --idle-timeout MS    give up when no message arrives for MS ms before the end of the\n"
      "                       range (default 10000)\n"
      "  --threads N          worker threads (default: the online cores): one reader, the\n"
      "                       instruments spread over N workers; the same output for every N\n"
      "  --quiet              no summary\n"
      "  --log-level L        error, warn, info (default) or debug\n" KCONF_USAGE
      "Exit status: 0 done (rejected messages are counted, never fatal), 1 runtime failure\n"
      "(broker, topic, output), 2 bad usage or a bad model file.\n");
}

/* --start-offset, --end-offset: an integer >= 0 into *(int64_t *)dst. 0 or -1. */
static int parse_offset(const char *v, void *dst) {
  int64_t *off = dst;
  return tick_parse_int64(v, strlen(v), off) == 0 && *off >= 0 ? 0 : -1;
}

/* A time bound (RFC 3339 or integer ns) into Kafka's milliseconds, rounded up so that
 * "timestamp >= T" keeps its meaning. 0, or -1 after printing the error. */
static int parse_time_ms(const char *flag, const char *v, int64_t *ms) {
  int64_t ns;
  if (args_time_ns(v, &ns) != 0) {
    fprintf(stderr,
            "tickcast replay: %s %s: expected RFC 3339 (2024-01-02T03:04:05Z) or integer "
            "ns since the epoch\n",
            flag, v);
    return -1;
  }
  if (ns < 0) {
    fprintf(stderr, "tickcast replay: %s %s: before 1970\n", flag, v);
    return -1;
  }
  *ms = ns / 1000000 + (ns % 1000000 != 0);
  return 0;
}

/* The command line into o, *model and kc (parts holds KREPLAY_MAX_PARTS), then librdkafka. Returns
 * -1 to go on, or the exit status to return at once (0 after --help, 2 after a usage error, 1 when
 * librdkafka would not load). */
static int kreplay_parse(kreplay_opts *o, const char **model, kconf *kc, int32_t *parts, int argc,
                         char **argv) {
  /* In the order kconf_check_flags lists them for an unknown config key. */
  const args_flag flags[] = {
      {"model", ARGS_STR, .dst = model},
      {"topic", ARGS_STR, .dst = &o->topic},
      {"partitions", ARGS_STR, .dst = &o->parts_arg},
      {"start-offset", ARGS_FN, .dst = &o->start_off, .parse = parse_offset,
       .unit = "an offset (integer >= 0)"},
      {"start-time", ARGS_STR, .dst = &o->start_time},
      {"end-offset", ARGS_FN, .dst = &o->end_off, .parse = parse_offset,
       .unit = "an offset (integer >= 0)"},
      {"end-time", ARGS_STR, .dst = &o->end_time},
      {"output", ARGS_STR, .dst = &o->output},
      {"output-topic", ARGS_STR, .dst = &o->out_topic},
      {"interval", ARGS_DOUBLE, .dst = &o->interval, .lo = 0, .hi = 1, .open_lo = 1, .open_hi = 1,
       .unit = "a coverage"},
      ARGS_INTERVAL_ADAPT(&o->adapt),
      {"idle-timeout", ARGS_INT, .dst = &o->idle_ms, .unit = "milliseconds", .lo = 1,
       .hi = 86400000},
      ARGS_LOG_LEVEL,
      {"quiet", ARGS_SWITCH, .dst = &o->quiet, .short_name = 'q'},
      {"threads", ARGS_INT, .dst = &o->threads, .lo = 1, .hi = PREPLAY_MAX_THREADS},
  };
  const args_cmd c = {.name = "replay",
                      .see = "tickcast replay --brokers x --help",
                      .flags = flags,
                      .nflags = (int)(sizeof flags / sizeof flags[0]),
                      .kc = kc,
                      .usage = usage};
  int status = args_parse_cmd(&c, argc, argv);
  if (status >= 0)
    return status;
  if (!*model || !o->topic || !kc->brokers || (o->output && o->out_topic) ||
      (o->start_off >= 0 && o->start_time) || (o->end_off >= 0 && o->end_time)) {
    fprintf(stderr, "tickcast replay: %s (see tickcast replay --brokers x --help)\n",
            !*model                     ? "--model is required"
            : !o->topic                 ? "--topic is required with --brokers"
            : !kc->brokers              ? "--brokers is required with --topic"
            : o->output && o->out_topic ? "--output and --output-topic exclude each other"
            : o->start_time             ? "--start-offset and --start-time exclude each other"
                                        : "--end-offset and --end-time exclude each other");
    return 2;
  }
  char err[512];
  if (o->parts_arg) {
    o->nparts = kconf_parse_int_list("--partitions", o->parts_arg, parts, KREPLAY_MAX_PARTS, err,
                                     sizeof err);
    if (o->nparts < 0) {
      fprintf(stderr, "tickcast replay: %s\n", err);
      return 2;
    }
    o->parts = parts;
  }
  if ((o->start_time && parse_time_ms("--start-time", o->start_time, &o->start_ms)) ||
      (o->end_time && parse_time_ms("--end-time", o->end_time, &o->end_ms)))
    return 2;
  /* A reversed range selects nothing in every partition: a typo, not a request. */
  if (o->start_off >= 0 && o->end_off >= 0 && o->start_off > o->end_off) {
    fprintf(
        stderr,
        "tickcast replay: --start-offset %lld is past --end-offset %lld (expected start <= end)\n",
        (long long)o->start_off, (long long)o->end_off);
    return 2;
  }
  if (o->start_time && o->end_time && o->start_ms > o->end_ms) {
    fprintf(stderr,
            "tickcast replay: --start-time %s is after --end-time %s (expected start <= end)\n",
            o->start_time, o->end_time);
    return 2;
  }
  return args_kafka_load("replay");
}

int cmd_kreplay(int argc, char **argv) {
  kreplay_opts o = {.start_off = -1,
                    .end_off = -1,
                    .start_ms = -1,
                    .end_ms = -1,
                    .idle_ms = 10000,
                    .adapt = IVTRACK_ETA_DEFAULT,
                    .threads = replay_default_threads()};
  const char *model = NULL;
  kconf kc;
  kconf_init(&kc);
  int32_t parts[KREPLAY_MAX_PARTS];
  int status = kreplay_parse(&o, &model, &kc, parts, argc, argv);
  if (status < 0) {
    char err[1024];
    nn_model m;
    if (nn_model_load(&m, model, err, sizeof err) != 0) {
      fprintf(stderr, "tickcast replay: %s\n", err);
      status = 2;
    } else {
      int rc = kreplay_run(&o, &m, &kc);
      status = rc == 0 ? 0 : rc == TC_EUSAGE ? 2 : 1;
      nn_model_free(&m);
    }
  }
  kconf_free(&kc);
  return status;
}
