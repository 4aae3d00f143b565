/* health.c: what the daemon reports about itself: the stats topic, /metrics, /healthz, /readyz
 * and the consumer lag from librdkafka's statistics. Not for the counters' rendering
 * (daemon/pipeline/stats.c) nor for the HTTP server (http.c). */
#include <string.h>

#include "daemon/loop/run_int.h"
#include "daemon/pipeline/log.h"
#include "nn/base/clock.h"

/* Copies what the loop knows (instruments, assignment, producer queue, checkpoints, model) into
 * the stats before they are rendered. */
static void stats_fill(run *r) {
  r->st.instruments = r->e.st.live;
  r->st.assigned_count = r->assigned;
  r->st.outq = rd_kafka_outq_len(r->producer);
  if (r->ck) {
    const ckpt_stats *cs = ckpt_get_stats(r->ck);
    double age = ckpt_age_s(r->ck);
    r->st.checkpoint_age_ms = age < 0 ? -1 : (int64_t)(age * 1000);
    r->st.checkpoints = cs->written;
    r->st.checkpoint_failures = cs->failures;
    r->st.checkpoint_failing = cs->consecutive_failures;
  }
  memcpy(r->st.model_id, r->model->id, sizeof r->st.model_id);
}

/* Every --stats-interval: one JSON object to the stats topic (the interval histogram restarts). */
void health_on_stats_timer(uv_timer_t *h) {
  run *r = h->data;
  stats_fill(r);
  char *js = stats_json(&r->st, tc_wall_ms(), 1);
  if (!js)
    return;
  drain_produce(r, r->t_stats, RD_KAFKA_MSG_F_FREE, js, strlen(js), r->o->group,
                strlen(r->o->group), OPQ_NONE);
  log_debug("run", "stats: in %llu, out %llu", (unsigned long long)r->st.ticks_in,
            (unsigned long long)r->st.predictions_out);
}

/* A state file deleted under the daemon is healed by the checkpoint that finds it (on the thread
 * pool, store_path_check); the loop says so here. */
static void note_state_heals(run *r) {
  uint64_t n = store_heals(r->db);
  if (n == r->st.state_file_heals)
    return;
  char msg[512];
  store_heal_message(r->db, msg, sizeof msg);
  log_warn("run", "%s", msg);
  r->st.state_file_heals = n;
}

/* Every second: ticks_in for the rates, and what the checkpoints found of the state file. */
void health_on_second(uv_timer_t *h) {
  run *r = h->data;
  stats_second(&r->st);
  note_state_heals(r);
}

/* The HTTP handler (http.h): /metrics, /healthz, /readyz. */
int health_on_http(void *ud, const char *path, char **body, size_t *len, const char **ctype) {
  run *r = ud;
  if (!strcmp(path, "/metrics")) {
    stats_fill(r);
    *body = stats_prometheus(&r->st, tc_wall_ms(), len);
    *ctype = "text/plain; version=0.0.4; charset=utf-8";
    return *body ? 200 : 500;
  }
  const char *msg;
  int status;
  if (!strcmp(path, "/healthz")) {
    status = r->stopping ? 503 : 200;
    msg = r->stopping ? "stopping\n" : "ok\n";
  } else if (!strcmp(path, "/readyz")) {
    int ready = !r->stopping && r->model && r->assigned > 0;
    status = ready ? 200 : 503;
    msg = ready         ? "ready\n"
          : r->stopping ? "not ready: stopping\n"
                        : "not ready: no partitions assigned\n";
  } else {
    status = 404;
    msg = "not found (try /metrics, /healthz, /readyz)\n";
  }
  *body = strdup(msg);
  *len = *body ? strlen(*body) : 0;
  return status;
}

/* librdkafka's statistics callback: the consumer lag per partition. */
int health_on_rdkafka_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
  (void)rk;
  run *r = opaque;
  if (stats_parse_rdkafka(&r->st, json, len, r->o->input_topic) < 0)
    log_debug("run", "librdkafka statistics did not parse");
  return 0; /* librdkafka frees json */
}
