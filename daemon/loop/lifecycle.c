/* lifecycle.c: signals and the daemon's end: SIGHUP's model reload, and the shutdown (flush,
 * final checkpoint, commit, leave the group) with a watchdog that bounds it. Not for start-up
 * (run.c). */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/loop/run_int.h"
#include "daemon/pipeline/log.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"
#include "nn/safetensors/safetensors.h"

/* SIGHUP: loads --model again on libuv's thread pool (reading and checking a model file, on a
 * slow disk or at a path that is not a regular file, must never hold up the loop) and, back on
 * the loop, swaps it in when it has the running model's shape and another hash (states reset
 * unless --on-model-change keep); anything else keeps the running model. A SIGHUP during a reload
 * starts another one after it. With stream threads the leader loads the file once and hands the
 * model it swapped in to every other thread (crew_model_all), so that the process runs one model,
 * whatever happens to the file meanwhile. */
typedef struct reload {
  uv_work_t w;  /* on the pool */
  run *r;       /* the daemon */
  nn_model *nm; /* the model loaded (model_new) */
  int rc;       /* nn_model_load's result */
  char err[512];
} reload;

static void reload_start(run *r);

static void reload_work(uv_work_t *w) {
  reload *rl = w->data;
  rl->rc = nn_model_load(rl->nm, rl->r->o->model_path, rl->err, sizeof rl->err);
}

/* Under --on-model-change keep the outgoing model joins the earlier models whose states the
 * running one carries on (the oldest dropped past CL_EARLIER_MAX; the incoming one leaves the list
 * when it was there: a swap back). */
static void note_earlier(run *r, const nn_model *out, const nn_model *in) {
  int k = 0;
  for (int i = 0; i < r->n_earlier; i++)
    if (memcmp(r->earlier[i], in->sha256, 32) && memcmp(r->earlier[i], out->sha256, 32))
      memmove(r->earlier[k++], r->earlier[i], 32);
  r->n_earlier = k;
  if (r->n_earlier == CL_EARLIER_MAX)
    memmove(r->earlier[0], r->earlier[1], (size_t)--r->n_earlier * 32);
  memcpy(r->earlier[r->n_earlier++], out->sha256, 32);
}

void lifecycle_swap_model(run *r, nn_model *nm) {
  int reset = !r->o->on_model_change_keep;
  if (!reset)
    note_earlier(r, r->model, nm);
  engine_set_model(&r->e, nm, reset);
  /* The LSTM scratch caches the summed biases of the model it was set up with. */
  nn_work_update(&r->e.w, nm);
  log_info("run", "SIGHUP: model %s -> %s (%s instrument states)", r->model->id, nm->id,
           reset ? "reset" : "kept");
  model_unref(r->model);
  r->model = nm;
  r->model_swaps++;
  parts_hdrs_retire(r); /* the next message gets a list with the new id */
  sched_ckpt_model_changed(r);
}

/* Back on the loop: the model loaded on the pool, swapped in or refused. */
static void reload_apply(run *r, nn_model *nm, int rc, const char *err) {
  if (rc != 0) {
    r->st.model_reload_failures++;
    log_error("run", "SIGHUP: %s; keeping model %s", err, r->model->id);
    model_unref(nm);
    return;
  }
  if (!nn_model_same_shape(nm, r->model)) {
    r->st.model_reload_failures++;
    log_error("run",
              "SIGHUP: model %s has shape %s L=%d H=%d peephole=%d, expected %s L=%d H=%d "
              "peephole=%d (the running model's); refused, keeping model %s",
              r->o->model_path, nn_cell_name(nm->cell), nm->L, nm->H, nm->peephole,
              nn_cell_name(r->model->cell), r->model->L, r->model->H, r->model->peephole,
              r->model->id);
    model_unref(nm);
    return;
  }
  if (!strcmp(nm->id, r->model->id)) {
    log_info("run", "SIGHUP: model %s unchanged (%s); nothing to do", r->o->model_path, nm->id);
    model_unref(nm);
    return;
  }
  r->st.model_reloads++;
  crew_model_all(r, nm);
  lifecycle_swap_model(r, nm);
}

static void reload_done(uv_work_t *w, int status) {
  reload *rl = w->data;
  run *r = rl->r;
  r->reloading = 0;
  if (status != 0 || r->stopping) /* cancelled, or the daemon is stopping: nothing to swap */
    model_unref(rl->nm);
  else
    reload_apply(r, rl->nm, rl->rc, rl->err);
  free(rl);
  if (r->reload_again && !r->stopping) {
    r->reload_again = 0;
    reload_start(r);
  }
}

static void reload_start(run *r) {
  reload *rl = calloc(1, sizeof *rl);
  nn_model *nm = model_new();
  if (!rl || !nm) {
    free(rl);
    model_unref(nm);
    log_error("run", "SIGHUP: out of memory; keeping model %s", r->model->id);
    return;
  }
  rl->r = r;
  rl->nm = nm;
  rl->rc = TC_EAGAIN;
  rl->w.data = rl;
  if (uv_queue_work(r->loop, &rl->w, reload_work, reload_done) != 0) {
    log_error("run", "SIGHUP: cannot queue the reload; keeping model %s", r->model->id);
    model_unref(nm);
    free(rl);
    return;
  }
  r->reloading = 1;
}

static void reload_model(run *r) {
  if (r->reloading)
    r->reload_again = 1;
  else
    reload_start(r);
}

static void close_cb(uv_handle_t *h) {
  (void)h;
}

void lifecycle_close_all(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, close_cb);
}

/* Shutdown must end within 10 s even when the broker is gone. Its steps share a bound of 8.5 s
 * (STOP_BOUND_MS: each waits at most what is left of it, and one the broker does not answer gives
 * up, says so and lets the next go on; what follows the loop, freeing the clients, is left the
 * rest), and this thread ends the process with status 1 at 9.5 s should anything still wait then
 * (a SQLite lock held by another process, say). */
#define STOP_BOUND_MS 8500

static void *watchdog(void *arg) {
  (void)arg;
  struct timespec ts = {9, 500000000};
  nanosleep(&ts, NULL);
  log_error("run", "shutdown did not finish in 9.5 s (broker unreachable?); exiting without "
                   "leaving the group cleanly");
  _exit(1);
  return NULL;
}

/* The clock of cl_writer_cut's cut-off too. */
static uint64_t mono_ms(void) {
  return tc_mono_ns() / 1000000;
}

/* What is left of the shutdown's bound, in ms (0 once it is spent). */
static int stop_left(const run *r) {
  uint64_t now = mono_ms();
  return now >= r->stop_by_ms ? 0 : (int)(r->stop_by_ms - now);
}

static int imin(int a, int b) {
  return a < b ? a : b;
}

/* Commits the offsets the final checkpoint stored, waiting at most timeout_ms for the answer (a
 * synchronous rd_kafka_commit waits as long as the broker takes). */
static void final_commit(run *r, int timeout_ms) {
  rd_kafka_queue_t *q = rd_kafka_queue_new(r->consumer);
  rd_kafka_resp_err_t ce = rd_kafka_commit_queue(r->consumer, NULL, q, NULL, NULL);
  if (!ce) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms);
    ce = ev ? rd_kafka_event_error(ev) : RD_KAFKA_RESP_ERR__TIMED_OUT;
    if (ev)
      rd_kafka_event_destroy(ev);
  }
  rd_kafka_queue_destroy(q); /* an answer that comes later is dropped */
  if (ce == RD_KAFKA_RESP_ERR__TIMED_OUT)
    log_warn("run",
             "final commit: no answer in %d ms; the final checkpoint holds the offsets, and "
             "a restart resumes from it",
             timeout_ms);
  else if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
    log_warn("run", "final commit: %s", rd_kafka_err2str(ce));
}

/* Closes the consumer (the revoke, through the rebalance callback, then leaving the group), for at
 * most timeout_ms; 0 once closed. When the coordinator does not answer in time the member leaves
 * without a word: the group moves its partitions once session.timeout.ms passes. */
static int close_consumer(run *r, int timeout_ms) {
  rd_kafka_queue_t *q = rd_kafka_queue_new(r->consumer);
  rd_kafka_error_t *e = rd_kafka_consumer_close_queue(r->consumer, q);
  int failed = e != NULL;
  if (e) {
    log_warn("run", "leaving the group: %s", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  }
  uint64_t end = mono_ms() + (uint64_t)timeout_ms;
  while (!failed && !rd_kafka_consumer_closed(r->consumer)) {
    uint64_t now = mono_ms();
    if (now >= end)
      break;
    /* As events: the queue also gets what has no callback here (the close's own commit's
     * answer, which rd_kafka_queue_poll_callback would abort on), and is dropped. */
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, imin((int)(end - now), 100));
    if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
      rebalance_cb(r->consumer, rd_kafka_event_error(ev), rd_kafka_event_topic_partition_list(ev),
                   r);
    if (ev)
      rd_kafka_event_destroy(ev);
  }
  int closed = !failed && rd_kafka_consumer_closed(r->consumer);
  rd_kafka_queue_destroy(q);
  if (!closed && !failed)
    log_warn("run",
             "leaving the group: no answer in %d ms; the group moves this member's "
             "partitions once its session times out",
             timeout_ms);
  return closed ? 0 : -1;
}

/* Stops consuming, flushes the producer, takes the final checkpoint, commits, leaves the group
 * and lets the loop end, each step within what is left of STOP_BOUND_MS. Blocking inside the loop
 * is fine here: nothing else is left to serve. Runs from a timer, never from inside a librdkafka
 * callback. */
static void on_stop(uv_timer_t *h) {
  run *r = h->data;
  r->stop_by_ms = crew_stop_by(r, mono_ms() + STOP_BOUND_MS);
  log_info("run", "stopping: flushing %d queued messages", rd_kafka_outq_len(r->producer));
  uv_poll_stop(&r->cpoll);
  uv_idle_stop(&r->idle);
  pthread_t wd;
  if (pthread_create(&wd, NULL, watchdog, NULL) == 0)
    pthread_detach(wd);
  int flushed = parts_settle(r, imin(5000, stop_left(r))) == 0;
  /* Checkpoint writes, the one under way on the pool included, end 1.5 s before the bound, so that
   * the commit and the close get their turn; the final one waits for what is left until then. */
  cl_writer_cut(r->clw, (int64_t)(r->stop_by_ms - 1500));
  if (r->ck)
    ckpt_wait(r->ck);
  int ack_ms = imin(CHANGELOG_ACK_MS, stop_left(r) - 1500);
  if (flushed && ack_ms >= 500) {
    __atomic_store_n(&r->cl_ack_ms, ack_ms, __ATOMIC_RELAXED);
    r->final_ckpt = sched_ckpt_now(r, "shutdown") == 0; /* the final checkpoint */
  } else {
    log_warn("run", "shutdown: no final checkpoint, %s; a restart resumes from the last checkpoint",
             flushed ? "no time left for it" : "outputs unacknowledged");
  }
  if (r->final_ckpt && stop_left(r) >= 200)
    final_commit(r, imin(2000, stop_left(r) / 2));
  rebalance_stop(r); /* an assignment or revoke still waiting goes to librdkafka now */
  r->consumer_open = close_consumer(r, stop_left(r)) != 0;
  parts_settle(r, imin(1000, stop_left(r)));
  http_stop(r->http);
  r->http = NULL;
  crew_leave(r);
  uv_walk(r->loop, lifecycle_close_all, NULL);
}

/* Asks the loop to stop (from anywhere, librdkafka callbacks included): no more draining; the
 * shutdown itself runs on the next loop turn. */
void lifecycle_begin_shutdown(run *r, int code) {
  if (r->stopping)
    return;
  __atomic_store_n(&r->stopping, 1, __ATOMIC_RELAXED); /* read by restores on the pool */
  r->exit_code = code;
  uv_timer_start(&r->t_stop, on_stop, 0, 0);
  crew_stop_all(r, code);
}

/* SIGTERM and SIGINT stop; SIGHUP reloads the model. */
void lifecycle_on_signal(uv_signal_t *h, int sig) {
  run *r = h->data;
  if (sig == SIGHUP) {
    reload_model(r);
    return;
  }
  log_info("run", "%s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  lifecycle_begin_shutdown(r, 0);
}
