/* clients.c: the daemon's Kafka clients: the consumer and producer (and the changelog reader)
 * configured from defaults, --config and -X, their topic handles, the subscription and the pipes
 * that wake the loop. Not for using them (drain.c, rebalance.c, restore.c, ckpt_sched.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/kafka/kconf.h"
#include "daemon/kafka/produce.h"
#include "daemon/loop/run_int.h"
#include "daemon/pipeline/log.h"
#include "nn/base/tc_err.h"

/* A non-blocking pipe for librdkafka's queue io events. */
static int make_pipe(int fds[2]) {
  return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
}

/* The -X properties for one of the two clients: "consumer.KEY" and "producer.KEY" go only to that
 * client (prefix removed), plain keys to both. kc->brokers is shared. */
static int kconf_for(kconf *out, const kconf *kc, const char *mine, const char *other) {
  kconf_init(out);
  out->brokers = kc->brokers; /* borrowed: cleared before kconf_free */
  size_t ml = strlen(mine), ol = strlen(other);
  for (int i = 0; i < kc->nprops; i++) {
    const char *k = kc->props[i].key;
    if (!strncmp(k, other, ol))
      continue;
    if (!strncmp(k, mine, ml))
      k += ml;
    if (kconf_prop_add(out, k, kc->props[i].val, kc->props[i].where) != 0)
      return TC_ENOMEM;
  }
  return 0;
}

static void kconf_for_free(kconf *k) {
  k->brokers = NULL;
  kconf_free(k);
}

/* Both clients' error callback: a fatal error stops the daemon; others are logged. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  run *r = opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512];
    rd_kafka_fatal_error(rk, buf, sizeof buf);
    kconf_error_seen();
    log_error("run", "%s: fatal: %s", rd_kafka_name(rk), buf);
    lifecycle_begin_shutdown(r, 1);
    return;
  }
  kconf_error_log("run", rk, err, reason);
}

/* One client's conf: its defaults def (key, value, ..., NULL), then --brokers, --config and the
 * -X properties for it (kconf_for). 0, TC_EUSAGE with err (a property was refused) or TC_ENOMEM
 * with err. */
static int client_conf(const kconf *kc, const char *mine, const char *other, const char *const *def,
                       rd_kafka_conf_t **conf, char *err, size_t errlen) {
  kconf k;
  int rc = kconf_for(&k, kc, mine, other);
  if (rc == 0 && kconf_build(&k, def, conf, err, errlen) != 0)
    rc = TC_EUSAGE;
  kconf_for_free(&k);
  if (rc == TC_ENOMEM)
    snprintf(err, errlen, "out of memory");
  return rc;
}

/* The consumer's conf (bootstrap, when not NULL, is the embedded broker's). */
static int consumer_conf(const run_opts *o, const char *bootstrap, rd_kafka_conf_t **cc, char *err,
                         size_t errlen) {
  /* librdkafka's statistics (the consumer lag in our stats) at most once a second: parsing that
   * JSON (50 partitions) every 250 ms took 0.8 % of the loop thread in perf, on top of
   * librdkafka building it. */
  char stats_ms[32];
  snprintf(stats_ms, sizeof stats_ms, "%d", o->stats_ms > 1000 ? o->stats_ms : 1000);
  const char *cdef[] = {"group.id", o->group, "auto.offset.reset", "earliest", "enable.auto.commit",
                        "true", "enable.auto.offset.store", "false", "auto.commit.interval.ms",
                        "1000", "statistics.interval.ms", stats_ms,
                        /* librdkafka 2.0.2 counts queued.min.messages against the one consumer
                         * queue all partitions forward to, and once it is exceeded the fetcher
                         * sleeps until its next wakeup, up to 1 s, even after the loop drained
                         * the queue (2.4 added fetch.queue.backoff.ms for this). With the default
                         * 100000, a backlog catch-up stalled for 0.3-0.7 s every ~0.25 s
                         * (bench/run_kafka.sh, 2026-11-29). The bound on prefetched memory stays
                         * queued.max.messages.kbytes (64 MiB of payload by default). */
                        "queued.min.messages", "1000000", "client.id", "tickcast-run",
                        /* The embedded broker (librdkafka's mock cluster) lives in this process,
                         * so no network can delay a heartbeat; and it sometimes leaves one of two
                         * members joining at once without an assignment until the other's session
                         * times out (12 starts of 2 stream threads: 2 waited 45 s, RUN.md "Known
                         * limits"). A 6 s session bounds that wait. */
                        bootstrap ? "bootstrap.servers" : NULL, bootstrap, "session.timeout.ms",
                        "6000", NULL};
  int rc = client_conf(&o->kc, "consumer.", "producer.", cdef, cc, err, errlen);
  /* The group also names the changelog (GROUP.state), the stats' key and the logs: a group.id
   * from -X or the config file would join another group under this one's name. */
  char v[256];
  size_t vl = sizeof v;
  if (rc == 0 && rd_kafka_conf_get(*cc, "group.id", v, &vl) == RD_KAFKA_CONF_OK &&
      strcmp(v, o->group) != 0) {
    snprintf(err, errlen,
             "-X group.id: found '%s', expected none (the consumer group is --group, now '%s', "
             "which also names the changelog and the stats)",
             v, o->group);
    rd_kafka_conf_destroy(*cc);
    *cc = NULL;
    rc = TC_EUSAGE;
  }
  /* Committed offsets follow the checkpoints (ckpt_sched.c stores them): librdkafka's own store
   * would commit the offset of every tick polled, past ticks whose state no checkpoint holds. */
  vl = sizeof v;
  if (rc == 0 && rd_kafka_conf_get(*cc, "enable.auto.offset.store", v, &vl) == RD_KAFKA_CONF_OK &&
      strcmp(v, "false") != 0) {
    snprintf(err, errlen,
             "-X enable.auto.offset.store: found '%s', expected false (the daemon stores a "
             "partition's offset once a checkpoint covers it; an automatic store would commit "
             "offsets past ticks whose state no checkpoint holds)",
             v);
    rd_kafka_conf_destroy(*cc);
    *cc = NULL;
    rc = TC_EUSAGE;
  }
  return rc;
}

/* The producer's conf. */
static int producer_conf(const run_opts *o, const char *bootstrap, rd_kafka_conf_t **pc, char *err,
                         size_t errlen) {
  const char *pdef[] = {"client.id",      "tickcast-run",
                        "linger.ms",      "5",
                        "partitioner", /* the Java client's: same partition as Kafka tools */
                        "murmur2_random", bootstrap ? "bootstrap.servers" : NULL,
                        bootstrap,        NULL};
  int rc = client_conf(&o->kc, "producer.", "consumer.", pdef, pc, err, errlen);
  /* Every output's delivery report acknowledges its input offset and takes back the lent header
   * list (inflight.c): without reports for delivered messages offsets would never advance, and
   * librdkafka would free the shared list with each message. */
  char v[16];
  size_t vl = sizeof v;
  if (rc == 0 && rd_kafka_conf_get(*pc, "delivery.report.only.error", v, &vl) == RD_KAFKA_CONF_OK &&
      strcmp(v, "true") == 0) {
    snprintf(err, errlen,
             "-X delivery.report.only.error: found true, expected false (tickcast acknowledges "
             "each input offset on its output's delivery report)");
    rd_kafka_conf_destroy(*pc);
    *pc = NULL;
    rc = TC_EUSAGE;
  }
  return rc;
}

/* Backpressure's marks from the producer's queue.buffering.max.messages (librdkafka's default
 * 100000): draining pauses above 80 % and resumes below 50 %. */
static void set_outq_marks(run *r, rd_kafka_conf_t *pc) {
  char v[64];
  size_t vl = sizeof v;
  long qmax = 100000;
  if (rd_kafka_conf_get(pc, "queue.buffering.max.messages", v, &vl) == RD_KAFKA_CONF_OK)
    qmax = strtol(v, NULL, 10);
  r->outq_high = qmax * 8 / 10;
  r->outq_low = qmax / 2;
  if (r->outq_high < 1)
    r->outq_high = 1;
}

/* Creates the consumer and the producer with the loop's callbacks; cc and pc are owned from here
 * on, also on failure. 0 or TC_EKAFKA with err. */
static int create_clients(run *r, rd_kafka_conf_t *cc, rd_kafka_conf_t *pc, char *err,
                          size_t errlen) {
  rd_kafka_conf_set_opaque(cc, r);
  rd_kafka_conf_set_opaque(pc, r);
  rd_kafka_conf_set_rebalance_cb(cc, rebalance_cb);
  rd_kafka_conf_set_stats_cb(cc, health_on_rdkafka_stats);
  rd_kafka_conf_set_error_cb(cc, on_error);
  rd_kafka_conf_set_error_cb(pc, on_error);
  rd_kafka_conf_set_dr_msg_cb(pc, parts_on_delivery);
  char kerr[512];
  r->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, kerr, sizeof kerr);
  if (!r->consumer) {
    rd_kafka_conf_destroy(cc);
    rd_kafka_conf_destroy(pc);
    snprintf(err, errlen, "consumer: %s", kerr);
    return TC_EKAFKA;
  }
  r->coop = kconf_cooperative(rd_kafka_conf(r->consumer));
  r->offset_reset = kconf_offset_reset(rd_kafka_conf(r->consumer));
  r->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, kerr, sizeof kerr);
  if (!r->producer) {
    rd_kafka_conf_destroy(pc);
    snprintf(err, errlen, "producer: %s", kerr);
    return TC_EKAFKA;
  }
  rd_kafka_poll_set_consumer(r->consumer);
  return 0;
}

/* With --changelog-topic: the changelog reader and writer. The reader is a consumer that never
 * subscribes or commits (librdkafka wants a group.id for assign), assigned to changelog partitions
 * only while a restore reads them (restore.c, on the thread pool), with a bounded prefetch
 * (CL_READER_CONF; consumer.* settings given by the user apply to it too). The writer has a
 * producer of its own (idempotent, acks=all), used only by checkpoint writes on the thread pool, so
 * waiting for its acknowledgements never holds the loop nor the outputs' delivery reports. */
static int changelog_clients(run *r, const char *bootstrap, char *err, size_t errlen) {
  const run_opts *o = r->o;
  char lgroup[300];
  snprintf(lgroup, sizeof lgroup, "%s.changelog-reader", o->group);
  const char *ldef[] = {"group.id",
                        lgroup,
                        "client.id",
                        "tickcast-run-changelog",
                        "enable.auto.commit",
                        "false",
                        "enable.auto.offset.store",
                        "false",
                        CL_READER_CONF,
                        "auto.offset.reset",
                        "earliest",
                        bootstrap ? "bootstrap.servers" : NULL,
                        bootstrap,
                        NULL};
  rd_kafka_conf_t *lc = NULL;
  int rc = client_conf(&o->kc, "consumer.", "producer.", ldef, &lc, err, errlen);
  if (rc != 0)
    return rc;
  char kerr[512];
  rd_kafka_conf_set_error_cb(lc, cl_on_error);
  if (!(r->cl_rk = rd_kafka_new(RD_KAFKA_CONSUMER, lc, kerr, sizeof kerr))) {
    rd_kafka_conf_destroy(lc);
    snprintf(err, errlen, "changelog reader: %s", kerr);
    return TC_EKAFKA;
  }
  const char *wdef[] = {"client.id",
                        "tickcast-run-changelog",
                        "linger.ms",
                        "5",
                        bootstrap ? "bootstrap.servers" : NULL,
                        bootstrap,
                        NULL};
  rd_kafka_conf_t *wc = NULL;
  if ((rc = client_conf(&o->kc, "producer.", "consumer.", wdef, &wc, err, errlen)) != 0)
    return rc;
  return cl_writer_new(&r->clw, wc, o->changelog_topic, err, errlen);
}

/* The topic handles: input (consumer side, for offset_store), output, stats, dead letters. */
static int make_topics(run *r, char *err, size_t errlen) {
  const run_opts *o = r->o;
  r->t_in = rd_kafka_topic_new(r->consumer, o->input_topic, NULL);
  r->t_out = rd_kafka_topic_new(r->producer, o->output_topic, NULL);
  r->t_stats = rd_kafka_topic_new(r->producer, o->stats_topic, NULL);
  r->t_dlq = rd_kafka_topic_new(r->producer, o->dlq_topic, NULL);
  if (!r->t_in || !r->t_out || !r->t_stats || !r->t_dlq) {
    snprintf(err, errlen, "topic handles: %s", rd_kafka_err2str(rd_kafka_last_error()));
    return TC_EKAFKA;
  }
  return 0;
}

static int subscribe_input(run *r, char *err, size_t errlen) {
  rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, r->o->input_topic, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t se = rd_kafka_subscribe(r->consumer, sub);
  rd_kafka_topic_partition_list_destroy(sub);
  if (se) {
    snprintf(err, errlen, "subscribe to %s: %s", r->o->input_topic, rd_kafka_err2str(se));
    return TC_EKAFKA;
  }
  return 0;
}

/* Wake the loop through pipes: librdkafka writes a byte when a queue becomes non-empty. */
static int enable_io_events(run *r, char *err, size_t errlen) {
  if (make_pipe(r->cpipe) || make_pipe(r->ppipe)) {
    snprintf(err, errlen, "pipe: %s", strerror(errno));
    return TC_EIO;
  }
  r->cq = rd_kafka_queue_get_consumer(r->consumer);
  r->pq = rd_kafka_queue_get_main(r->producer);
  rd_kafka_queue_io_event_enable(r->cq, r->cpipe[1], "1", 1);
  rd_kafka_queue_io_event_enable(r->pq, r->ppipe[1], "1", 1);
  return 0;
}

int clients_check(const run_opts *o, char *err, size_t errlen) {
  rd_kafka_conf_t *cc = NULL, *pc = NULL;
  int rc = consumer_conf(o, NULL, &cc, err, errlen);
  if (rc == 0)
    rc = producer_conf(o, NULL, &pc, err, errlen);
  if (cc)
    rd_kafka_conf_destroy(cc);
  if (pc)
    rd_kafka_conf_destroy(pc);
  return rc;
}

/* Stream thread K > 0 of a static member (-X group.instance.id=ID) is the member ID-K: two
 * consumers with one instance id would fence each other. 0 or TC_EUSAGE with err. */
static int instance_id(run *r, rd_kafka_conf_t *cc, char *err, size_t errlen) {
  char id[256], v[300];
  size_t len = sizeof id;
  if (r->idx == 0 || rd_kafka_conf_get(cc, "group.instance.id", id, &len) != RD_KAFKA_CONF_OK ||
      !id[0])
    return 0;
  snprintf(v, sizeof v, "%s-%d", id, r->idx);
  if (rd_kafka_conf_set(cc, "group.instance.id", v, err, errlen) != RD_KAFKA_CONF_OK)
    return TC_EUSAGE;
  return 0;
}

int clients_make(run *r, const char *bootstrap, char *err, size_t errlen) {
  rd_kafka_conf_t *cc = NULL, *pc = NULL;
  int rc = consumer_conf(r->o, bootstrap, &cc, err, errlen);
  if (rc == 0)
    rc = instance_id(r, cc, err, errlen);
  if (rc == 0)
    rc = producer_conf(r->o, bootstrap, &pc, err, errlen);
  if (rc != 0) {
    if (cc)
      rd_kafka_conf_destroy(cc);
    return rc;
  }
  set_outq_marks(r, pc);
  rc = create_clients(r, cc, pc, err, errlen);
  if (rc == 0 && r->o->changelog_topic)
    rc = changelog_clients(r, bootstrap, err, errlen);
  if (rc == 0)
    rc = make_topics(r, err, errlen);
  if (rc == 0)
    rc = enable_io_events(r, err, errlen);
  return rc;
}

int clients_subscribe(run *r, char *err, size_t errlen) {
  return subscribe_input(r, err, errlen);
}

void clients_destroy(run *r) {
  if (r->cq) {
    rd_kafka_queue_io_event_enable(r->cq, -1, NULL, 0);
    rd_kafka_queue_destroy(r->cq);
  }
  if (r->pq) {
    rd_kafka_queue_io_event_enable(r->pq, -1, NULL, 0);
    rd_kafka_queue_destroy(r->pq);
  }
  if (r->t_in)
    rd_kafka_topic_destroy(r->t_in);
  if (r->t_out)
    rd_kafka_topic_destroy(r->t_out);
  if (r->t_stats)
    rd_kafka_topic_destroy(r->t_stats);
  if (r->t_dlq)
    rd_kafka_topic_destroy(r->t_dlq);
  if (r->cl_rk) {
    rd_kafka_consumer_close(r->cl_rk);
    rd_kafka_destroy(r->cl_rk);
  }
  /* A consumer whose close did not finish at shutdown (the coordinator did not answer) is left
   * undestroyed: rd_kafka_destroy would wait for the same answers (librdkafka 2.0.2 waits for the
   * LeaveGroup and the commits a close began, flags or not), and the process is about to exit. */
  if (r->consumer && !r->consumer_open)
    rd_kafka_destroy(r->consumer);
  if (r->producer) {
    /* Purged, and the purged messages' reports served (they only take their headers back), so
     * that rd_kafka_destroy frees no lent header list. Should a message remain, the producer is
     * left undestroyed (and its lists with it): the process is about to exit. */
    r->closing = 1;
    if (kprod_close_lent(r->producer, 1000) == 0) {
      rd_kafka_destroy(r->producer);
      parts_hdrs_free(r);
    } else {
      log_warn("run", "producer: %d messages left after purging; not destroyed",
               rd_kafka_outq_len(r->producer));
    }
    r->producer = NULL;
  } else {
    parts_hdrs_free(r);
  }
  cl_writer_destroy(r->clw);
  for (int i = 0; i < 2; i++) {
    if (r->cpipe[i] >= 0)
      close(r->cpipe[i]);
    if (r->ppipe[i] >= 0)
      close(r->ppipe[i]);
  }
}
