/* run.c: the daemon's libuv loop (see run.h): start-up, the loop, tear-down. One loop thread
 * owns every piece of state: the consumer's queue and the producer's delivery reports wake it
 * through librdkafka's queue io events on pipes watched by uv_poll; each wake drains up to a chunk
 * of messages, steps the engine once and produces the results, then yields to timers and HTTP (a
 * uv_idle handle reschedules the rest; drain.c). Checkpoints (ckpt.h, ckpt_sched.c,
 * docs/STATE.md) are copied on this loop between chunks and written once the broker has
 * acknowledged every output they cover; with a state db, Kafka's committed offsets follow the
 * checkpoints (informational: the offsets in the db decide where a restart resumes). The other
 * files of the loop: clients.c, inflight.c, rebalance.c, handoff.c, health.c, lifecycle.c
 * (run_int.h).
 */
#include "daemon/loop/run.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/loop/run_int.h"
#include "daemon/pipeline/log.h"
#include "daemon/pipeline/version.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"

int run_main(const run_opts *o) {
  run *r = calloc(1, sizeof *r);
  if (!r)
    return 1;
  r->o = o;
  r->cpipe[0] = r->cpipe[1] = r->ppipe[0] = r->ppipe[1] = -1;
  r->chunk = o->chunk;
  char err[1024];
  int code = 1;
  uv_loop_t loop;
  int loop_ok = 0;
  stats_init(&r->st, tc_wall_ms());
  snprintf(r->st.version, sizeof r->st.version, "%s", TICKCAST_VERSION);

  r->model = calloc(1, sizeof *r->model);
  if (!r->model)
    goto out;
  if (nn_model_load(r->model, o->model_path, err, sizeof err) != 0) {
    log_error("run", "%s", err);
    code = 2;
    goto out;
  }
  if (engine_init(&r->e, r->model, r->chunk) != 0) {
    log_error("run", "engine: out of memory for chunks of %d", r->chunk);
    goto out;
  }
  r->msgs = calloc((size_t)r->chunk, sizeof *r->msgs);
  r->ticks = calloc((size_t)r->chunk, sizeof *r->ticks);
  if (!r->msgs || !r->ticks)
    goto out;
  r->in_prefix_len = strlen(o->input_topic) + 1;
  snprintf(r->src, sizeof r->src, "%s/", o->input_topic);

  const char *bootstrap = NULL;
  if (!o->kc.brokers) {
    char topics[1024];
    snprintf(topics, sizeof topics, "%s,%s,%s,%s", o->input_topic, o->output_topic, o->stats_topic,
             o->dlq_topic);
    if (mockbroker_start(&r->mb, 0, topics, err, sizeof err) != 0) {
      log_error("run", "embedded broker: %s", err);
      goto out;
    }
    bootstrap = mockbroker_bootstraps(r->mb);
    log_info("run",
             "no --brokers: started an embedded development broker at %s "
             "(publish ticks to topic %s there)",
             bootstrap, o->input_topic);
  }
  uv_loop_init(&loop);
  loop_ok = 1;
  r->loop = &loop;
  if (o->http) {
    int hr = http_start(&r->http, &loop, o->http, health_on_http, r, err, sizeof err);
    if (hr != 0) {
      log_error("run", "%s", err);
      goto out;
    }
    log_info("run", "http on %s (port %d): /metrics /healthz /readyz", o->http, http_port(r->http));
  }
  int kr = clients_make(r, bootstrap, err, sizeof err);
  if (kr != 0) {
    log_error("run", "%s", err);
    code = kr == TC_EUSAGE ? 2 : 1;
    goto out;
  }
  /* The state db opens after the client configuration was accepted (a bad -X creates no file)
   * and before the loop runs (the first assignment restores from it). */
  {
    int rc = store_open(o->state_path, o->sync_full ? STORE_SYNC_FULL : STORE_SYNC_NORMAL,
                        STORE_OPEN_CREATE, &r->db, err, sizeof err);
    if (rc == 0)
      rc = ckpt_bind_model(r->db, r->model, o->reset_state, err, sizeof err);
    if (rc != 0) {
      log_error("run", "%s", err);
      code = rc == TC_EFORMAT || rc == TC_EMODEL ? 2 : 1;
      goto out;
    }
  }
  if (ckpt_new(&r->ck, &loop, r->db, r->model) != 0)
    goto out;
  uv_poll_init(&loop, &r->cpoll, r->cpipe[0]);
  uv_poll_init(&loop, &r->ppoll, r->ppipe[0]);
  uv_idle_init(&loop, &r->idle);
  uv_timer_init(&loop, &r->t_stats_timer);
  uv_timer_init(&loop, &r->t_second);
  uv_timer_init(&loop, &r->t_ckpt);
  uv_timer_init(&loop, &r->t_stop);
  uv_timer_init(&loop, &r->t_pause);
  uv_signal_init(&loop, &r->sig_term);
  uv_signal_init(&loop, &r->sig_int);
  uv_signal_init(&loop, &r->sig_hup);
  r->cpoll.data = r->ppoll.data = r->idle.data = r->t_stats_timer.data = r->t_second.data =
      r->t_ckpt.data = r->t_stop.data = r->t_pause.data = r->sig_term.data = r->sig_int.data =
          r->sig_hup.data = r;
  uv_poll_start(&r->cpoll, UV_READABLE, drain_on_consumer_io);
  uv_poll_start(&r->ppoll, UV_READABLE, drain_on_producer_io);
  /* The queue may be non-empty already: no io event comes for that. */
  uv_idle_start(&r->idle, drain_on_idle);
  uv_timer_start(&r->t_stats_timer, health_on_stats_timer, (uint64_t)o->stats_ms,
                 (uint64_t)o->stats_ms);
  uv_timer_start(&r->t_second, health_on_second, 0, 1000);
  uv_timer_start(&r->t_ckpt, sched_ckpt_on_timer, (uint64_t)o->checkpoint_ms,
                 (uint64_t)o->checkpoint_ms);
  uv_signal_start(&r->sig_term, lifecycle_on_signal, SIGTERM);
  uv_signal_start(&r->sig_int, lifecycle_on_signal, SIGINT);
  uv_signal_start(&r->sig_hup, lifecycle_on_signal, SIGHUP);
  log_info("run", "model %s (%s: L=%d H=%d%s); consuming %s as group %s -> %s", r->model->id,
           o->model_path, r->model->L, r->model->H, r->model->peephole ? " peephole" : "",
           o->input_topic, o->group, o->output_topic);
  uv_run(&loop, UV_RUN_DEFAULT);
  code = r->exit_code;
  log_info("run",
           "stopped: %llu ticks in, %llu predictions, %llu dead letters, %llu delivery "
           "errors",
           (unsigned long long)r->st.ticks_in, (unsigned long long)r->st.predictions_out,
           (unsigned long long)r->st.dlq_out, (unsigned long long)r->st.delivery_errors);
out:
  if (loop_ok) {
    if (r->http)
      http_stop(r->http);
    uv_walk(&loop, lifecycle_close_all, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  ckpt_destroy(r->ck);
  store_close(r->db);
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
  if (r->t_cl)
    rd_kafka_topic_destroy(r->t_cl);
  if (r->cl_rk) {
    rd_kafka_consumer_close(r->cl_rk);
    rd_kafka_destroy(r->cl_rk);
  }
  if (r->consumer)
    rd_kafka_destroy(r->consumer);
  if (r->producer) {
    rd_kafka_purge(r->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(r->producer);
  }
  mockbroker_stop(r->mb);
  for (int i = 0; i < 2; i++) {
    if (r->cpipe[i] >= 0)
      close(r->cpipe[i]);
    if (r->ppipe[i] >= 0)
      close(r->ppipe[i]);
  }
  parts_free(r);
  free(r->offbuf);
  engine_free(&r->e);
  nn_model_free(r->model);
  free(r->model);
  free(r->msgs);
  free(r->ticks);
  free(r);
  return code;
}
