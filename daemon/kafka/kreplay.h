/* kreplay.h: the model over a Kafka topic range (`tickcast replay --brokers LIST --topic T`):
 * partitions assigned explicitly (no consumer group, nothing committed), fresh state, stopping at
 * the end of the range; predictions to a file or another topic. Not the command line (cmd_kreplay.c
 * parses it) nor the file replay (cmd_replay.c). */
#ifndef DAEMON_KREPLAY_H
#define DAEMON_KREPLAY_H

#include <stdint.h>

#include "daemon/kafka/kconf.h"
#include "nn/model.h"

#define KREPLAY_MAX_PARTS 4096 /* partitions a replay may read */

/* What to replay and where the predictions go. */
typedef struct kreplay_opts {
  const char *topic;                 /* input topic */
  const int32_t *parts;              /* partitions to read (nparts), NULL: all of the topic's */
  int nparts;                        /* entries in parts */
  const char *parts_arg;             /* --partitions as given, for messages */
  int64_t start_off, end_off;        /* the same offsets in every partition; -1: not given */
  int64_t start_ms, end_ms;          /* time bounds in Kafka milliseconds; -1: not given */
  const char *start_time, *end_time; /* the time bounds as given, for messages */
  const char *output;                /* prediction file, "-" or NULL: stdout */
  const char *out_topic;             /* instead of output: produce predictions to this topic */
  int idle_ms;                       /* give up after this long without a message */
  int quiet;                         /* no summary, no rejected message logged */
  double interval;                   /* coverage of lo_px..hi_px (scale head), in (0, 1); 0: 0.9 */
  double adapt;                      /* the online interval's step (engine_set_adapt); 0: off */
  int threads;                       /* workers: 1 reads, steps and writes on this thread;
                                        more run the pipeline of preplay.h, same output */
} kreplay_opts;

/* Runs model m over the range of o with the Kafka settings of kc, writing each problem as one
 * "tickcast replay: ..." line on stderr as it happens, then (unless quiet) the summary. Returns 0
 * (rejected messages are counted and reported, never fatal); TC_EUSAGE for a bad --partitions or
 * a Kafka property librdkafka refuses (exit status 2); another negative TC_E* code for a runtime
 * failure: broker, topic, output (exit status 1). */
int kreplay_run(const kreplay_opts *o, const nn_model *m, const kconf *kc);

#endif
