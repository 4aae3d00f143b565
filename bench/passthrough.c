/* passthrough.c: the I/O ceiling for the daemon benchmark: a plain librdkafka consumer + producer
 * with no model. It subscribes to an input topic with a fresh group, drains the consumer with
 * rd_kafka_consumer_poll(rk, 0) and produces each value (same key) to an output topic, until it
 * has passed --count messages and all are delivered. Not a tickcast component: bench only.
 *
 * usage: passthrough --brokers LIST --input-topic A --output-topic B --count N [--group G]
 *                    [--timeout S] [-X key=value]...
 * Prints one JSON object on stdout: msgs, seconds (first consume to last delivery), rate (msgs/s),
 * steady_rate (msgs/s between the 10% and 90% points of --count, produce enqueue side),
 * steady_cpu_s (the process's CPU time, all threads, between those two points),
 * consume_seconds (first to last consume), latency_us (consume -> produce enqueue p50/p99/max). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "daemon/kafka/kconf.h"
#include "daemon/pipeline/log.h"
#include "nn/base/clock.h"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t delivered, failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  (void)opaque;
  if (m->err)
    failed++;
  else
    delivered++;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *in = NULL, *out = NULL, *group = NULL;
  long long count = -1;
  double timeout_s = 120;
  kconf kc;
  kconf_init(&kc);
  char err[1024], rerr[512];
  for (int i = 1; i < argc; i++) {
    int r = kconf_arg(&kc, argc, argv, &i, err, sizeof err);
    if (r < 0) {
      fprintf(stderr, "passthrough: %s\n", err);
      return 2;
    }
    if (r) {
      i--;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "passthrough: %s: missing value or unknown flag\n", argv[i]);
      return 2;
    }
    const char *a = argv[i], *v = argv[++i];
    if (!strcmp(a, "--input-topic"))
      in = v;
    else if (!strcmp(a, "--output-topic"))
      out = v;
    else if (!strcmp(a, "--group"))
      group = v;
    else if (!strcmp(a, "--count"))
      count = atoll(v);
    else if (!strcmp(a, "--timeout"))
      timeout_s = atof(v);
    else {
      fprintf(stderr, "passthrough: unknown flag %s\n", a);
      return 2;
    }
  }
  if (!kc.brokers || !in || !out || count <= 0) {
    fprintf(stderr, "usage: passthrough --brokers LIST --input-topic A --output-topic B --count N "
                    "[--group G] [--timeout S] [-X key=value]...\n");
    return 2;
  }
  char gbuf[64];
  if (!group) {
    snprintf(gbuf, sizeof gbuf, "passthrough-%lld", (long long)time(NULL));
    group = gbuf;
  }

  /* The consumer: a group like the daemon's (subscribe, earliest), with the daemon's prefetch
   * setting (daemon/loop/clients.c explains queued.min.messages). */
  const char *cdef[] = {"group.id",
                        group,
                        "auto.offset.reset",
                        "earliest",
                        "enable.auto.commit",
                        "true",
                        "queued.min.messages",
                        "1000000",
                        "client.id",
                        "passthrough",
                        NULL};
  rd_kafka_conf_t *cconf, *pconf;
  if (kconf_build(&kc, cdef, &cconf, err, sizeof err) < 0) {
    fprintf(stderr, "passthrough: %s\n", err);
    return 2;
  }
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, rerr, sizeof rerr);
  if (!c) {
    fprintf(stderr, "passthrough: consumer: %s\n", rerr);
    return 1;
  }
  rd_kafka_poll_set_consumer(c);
  /* The producer: keyed output, like the daemon's predictions. */
  const char *pdef[] = {"linger.ms", "5", "client.id", "passthrough", NULL};
  if (kconf_build(&kc, pdef, &pconf, err, sizeof err) < 0) {
    fprintf(stderr, "passthrough: %s\n", err);
    return 2;
  }
  rd_kafka_conf_set_dr_msg_cb(pconf, on_delivery);
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, rerr, sizeof rerr);
  if (!p) {
    fprintf(stderr, "passthrough: producer: %s\n", rerr);
    return 1;
  }
  rd_kafka_topic_t *ot = rd_kafka_topic_new(p, out, NULL);
  rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, in, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(c, sub);
  rd_kafka_topic_partition_list_destroy(sub);
  if (e) {
    fprintf(stderr, "passthrough: subscribe %s: %s\n", in, rd_kafka_err2str(e));
    return 1;
  }

  /* Latency samples: every 16th message, consume -> produce enqueue. */
  size_t nlat = 0, caplat = (size_t)count / 16 + 1;
  uint64_t *lat = malloc(caplat * sizeof *lat);
  long long passed = 0;
  uint64_t t_first = 0, t_last_consume = 0, t_start = now_ns(), t_p10 = 0, t_p90 = 0;
  double cpu_p10 = 0, cpu_p90 = 0;
  while (passed < count) {
    /* The drain loop: poll(0) while messages are there; when empty, serve delivery reports and
     * block briefly for the next one. */
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 0);
    if (!m) {
      rd_kafka_poll(p, 0);
      if ((now_ns() - t_start) / 1e9 > timeout_s) {
        fprintf(stderr, "passthrough: timed out after %.0f s with %lld of %lld messages\n",
                timeout_s, passed, count);
        return 1;
      }
      if (!(m = rd_kafka_consumer_poll(c, 10)))
        continue;
    }
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        fprintf(stderr, "passthrough: consume: %s\n", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    uint64_t t0 = now_ns();
    if (!t_first)
      t_first = t0;
    while (rd_kafka_produce(ot, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, m->payload, m->len,
                            m->key, m->key_len, NULL) != 0) {
      if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        fprintf(stderr, "passthrough: produce: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
        return 1;
      }
      rd_kafka_poll(p, 1);
    }
    uint64_t t1 = now_ns();
    if ((passed & 15) == 0 && nlat < caplat)
      lat[nlat++] = t1 - t0;
    t_last_consume = t1;
    passed++;
    if (passed == count / 10) {
      t_p10 = t1;
      cpu_p10 = tc_process_cpu_us();
    }
    if (passed == count - count / 10) {
      t_p90 = t1;
      cpu_p90 = tc_process_cpu_us();
    }
    rd_kafka_message_destroy(m);
    if ((passed & 1023) == 0)
      rd_kafka_poll(p, 0);
  }
  rd_kafka_flush(p, 30000);
  uint64_t t_end = now_ns();
  qsort(lat, nlat, sizeof *lat, cmp_u64);
  double secs = (t_end - t_first) / 1e9;
  /* steady_rate: the messages between 10% and 90% of the count over the time between, the
   * window bench/run_kafka.sh also takes from the daemon's stats. */
  double mid = t_p10 && t_p90 > t_p10 ? (t_p90 - t_p10) / 1e9 : 0;
  char steady_cpu[32] = "null"; /* no window below 10 messages */
  if (mid > 0)
    snprintf(steady_cpu, sizeof steady_cpu, "%.4f", (cpu_p90 - cpu_p10) / 1e6);
  printf("{\"msgs\":%lld,\"delivered\":%llu,\"failed\":%llu,\"seconds\":%.4f,\"rate\":%.0f,"
         "\"steady_rate\":%.0f,\"steady_cpu_s\":%s,"
         "\"consume_seconds\":%.4f,\"latency_us\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}}\n",
         passed, (unsigned long long)delivered, (unsigned long long)failed, secs, passed / secs,
         mid > 0 ? (double)(count - 2 * (count / 10)) / mid : 0.0, steady_cpu,
         (t_last_consume - t_first) / 1e9, nlat ? lat[nlat / 2] / 1e3 : 0.0,
         nlat ? lat[(size_t)(nlat * 0.99)] / 1e3 : 0.0, nlat ? lat[nlat - 1] / 1e3 : 0.0);
  fflush(stdout);
  free(lat);
  rd_kafka_topic_destroy(ot);
  rd_kafka_destroy(p);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  kconf_free(&kc);
  return failed ? 1 : 0;
}
