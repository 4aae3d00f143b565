/* run.h: `tickcast run`, the daemon: its options and the libuv loop that consumes ticks from Kafka,
 * steps the engine once per drained chunk and produces predictions, dead letters and stats.
 * Not for the engine itself (engine.h) nor for checkpoints (ckpt.h; the loop schedules them in
 * ckpt_sched.c).
 */
#ifndef DAEMON_RUN_H
#define DAEMON_RUN_H

#include "daemon/kafka/kconf.h"
#include <stdio.h>

#define RUN_THREADS_MAX 64 /* --threads at most */

typedef struct run_opts {
  kconf kc;                    /* --brokers, -X, --config */
  const char *group;           /* consumer group, default "tickcast" */
  const char *input_topic;     /* default "ticks" */
  const char *output_topic;    /* default "predictions" */
  const char *stats_topic;     /* default "tickcast.stats" */
  const char *dlq_topic;       /* default "tickcast.dlq" */
  const char *changelog_topic; /* default GROUP.state, NULL when --changelog-topic off */
  char changelog_buf[256];     /* the default's storage */
  const char *model_path;      /* --model, required */
  const char *http;            /* ADDR:PORT, NULL when --http off */
  int stats_ms;                /* --stats-interval, default 5000 */
  int chunk;                   /* --chunk: messages stepped together, default 8 */
  int backlog_chunk;           /* --backlog-chunk: the same while a backlog waits, default 64 */
  int max_instruments;         /* --max-instruments: live instruments at most, 0 = no bound */
  int max_future_ms;           /* --max-future: how far ahead of the wall clock a ts may be */
  int unhealthy_after_ms;      /* --unhealthy-after: /healthz bound, 0 = never unhealthy */
  int threads;                 /* --threads: stream threads, each a consumer (default 1) */
  /* Used by checkpoints (store/, daemon/loop/ckpt.h): parsed and validated here. */
  const char *state_path;   /* --state, default "tickcast.db" */
  int checkpoint_ms;        /* --checkpoint-interval, default 1000 */
  int reset_state;          /* --reset-state */
  int on_model_change_keep; /* --on-model-change keep (1) | reset (0, default) */
  int sync_full;            /* --sync full (1) | normal (0, default) */
  double interval;          /* --interval: coverage of lo_px..hi_px (scale head), default 0.9 */
  double interval_adapt;    /* --interval-adapt: the online interval's step (0: off) */
} run_opts;

/* Parses the arguments after "run" (argv[0] = "run") into o (which it initialises; free with
 * run_opts_free). Values from a --config file fill flags not given on the command line.
 * Returns 0, 1 when --help was asked (usage already printed to stdout), or TC_EUSAGE with err
 * like "--stats-interval 0: expected milliseconds in 100..86400000". */
int run_opts_parse(run_opts *o, int argc, char **argv, char *err, size_t errlen);
void run_opts_free(run_opts *o); /* accepts NULL */

void run_usage(FILE *f);

/* Runs the daemon until SIGTERM/SIGINT or a fatal error. Returns the exit status: 0 after a clean
 * shutdown, 1 on a runtime failure (port in use, broker unusable, state file in use by another
 * writer), 2 on a bad model file or a state file that is corrupt, foreign or another model's. */
int run_main(const run_opts *o);

#endif
