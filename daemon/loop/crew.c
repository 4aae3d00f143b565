/* crew.c: the stream threads of `run --threads N` (N > 1), as Kafka Streams' num.stream.threads:
 * N runs in one process, each a whole member of the consumer group on a loop thread of its own
 * (its consumer and partitions, producer, engine, state file and changelog side, as one daemon
 * has them), so that Kafka spreads the partitions over them and moves them between them through
 * the hand-offs and restores every member has. What they share is the process: run 0, the
 * leader, runs on the main thread with the HTTP endpoint, the stats message, the signals and
 * the embedded broker, and they share one model (loaded once; a SIGHUP's new model is handed to
 * each thread: crew_model_all). The others publish their figures often (crew_publish);
 * the leader merges them into its own for /metrics and the stats topic (crew_merge), and answers
 * /healthz and /readyz for all. A stop, from a signal or a thread's fatal error, stops every
 * thread (crew_stop_all). The threads never touch each other's runs: what crosses is the
 * published figures, the requests below and the model (read-only), under one mutex. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/loop/run_int.h"
#include "daemon/pipeline/log.h"

/* A shared model: the nn_model first, so that a model_new'd nn_model * is one of these. */
typedef struct model_rc {
  nn_model m;
  atomic_int refs;
} model_rc;

nn_model *model_new(void) {
  model_rc *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  atomic_init(&h->refs, 1);
  return &h->m;
}

nn_model *model_ref(nn_model *m) {
  if (m)
    atomic_fetch_add(&((model_rc *)m)->refs, 1);
  return m;
}

void model_unref(nn_model *m) {
  if (!m || atomic_fetch_sub(&((model_rc *)m)->refs, 1) != 1)
    return;
  nn_model_free(m);
  free(m);
}

struct crew {
  int n;           /* threads, the leader included */
  run **runs;      /* (n) runs[0] is the leader */
  pthread_t *tids; /* (n) tids[k] for k > 0 once started */
  uint8_t *started;
  uv_mutex_t mu;       /* guards each run's snap, snap_why, snap_joined, alive and cmd fields */
  uint64_t stop_by_ms; /* the first shutdown's bound (lifecycle.c), 0 until then; under mu */
};

crew *crew_new(run **runs, int n) {
  crew *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->n = n;
  c->runs = runs;
  c->tids = calloc((size_t)n, sizeof *c->tids);
  c->started = calloc((size_t)n, 1);
  int ok = c->tids && c->started;
  for (int k = 1; ok && k < n; k++) {
    runs[k]->snap = malloc(sizeof *runs[k]->snap);
    if (!(ok = runs[k]->snap != NULL))
      break;
    stats_init(runs[k]->snap, runs[k]->st.start_ms);
    runs[k]->snap->healthy = 1; /* until it says otherwise */
  }
  if (!ok || uv_mutex_init(&c->mu) != 0) {
    for (int k = 1; k < n; k++)
      free(runs[k]->snap), runs[k]->snap = NULL;
    free(c->tids);
    free(c->started);
    free(c);
    return NULL;
  }
  for (int k = 0; k < n; k++)
    runs[k]->crew = c, runs[k]->idx = k;
  return c;
}

void crew_free(crew *c) {
  if (!c)
    return;
  for (int k = 0; k < c->n; k++) {
    model_unref(c->runs[k]->cmd_model);
    c->runs[k]->cmd_model = NULL;
    c->runs[k]->crew = NULL;
  }
  for (int k = 1; k < c->n; k++)
    free(c->runs[k]->snap), c->runs[k]->snap = NULL;
  uv_mutex_destroy(&c->mu);
  free(c->tids);
  free(c->started);
  free(c);
}

/* A wake-up from another thread: what it asked, taken under the mutex, done on this loop. */
static void on_cmd(uv_async_t *h) {
  run *r = h->data;
  crew *c = r->crew;
  uv_mutex_lock(&c->mu);
  int stop = r->cmd_stop, code = r->cmd_code;
  nn_model *nm = r->cmd_model;
  r->cmd_stop = 0;
  r->cmd_model = NULL;
  uv_mutex_unlock(&c->mu);
  if (nm && !r->stopping && strcmp(nm->id, r->model->id))
    lifecycle_swap_model(r, nm);
  else
    model_unref(nm);
  if (stop)
    lifecycle_begin_shutdown(r, code);
}

void crew_handles(run *r) {
  uv_async_init(r->loop, &r->a_cmd, on_cmd);
  r->a_cmd.data = r;
  uv_mutex_lock(&r->crew->mu);
  r->alive = 1;
  uv_mutex_unlock(&r->crew->mu);
}

void crew_leave(run *r) {
  if (!r->crew)
    return;
  uv_mutex_lock(&r->crew->mu);
  r->alive = 0;
  uv_mutex_unlock(&r->crew->mu);
}

uint64_t crew_stop_by(run *r, uint64_t by_ms) {
  crew *c = r->crew;
  if (!c)
    return by_ms;
  uv_mutex_lock(&c->mu);
  if (!c->stop_by_ms || by_ms < c->stop_by_ms)
    c->stop_by_ms = by_ms;
  by_ms = c->stop_by_ms;
  uv_mutex_unlock(&c->mu);
  return by_ms;
}

void crew_stop_all(run *r, int code) {
  crew *c = r->crew;
  if (!c)
    return;
  uv_mutex_lock(&c->mu);
  r->stop_asked = 1;
  for (int k = 0; k < c->n; k++) {
    run *o = c->runs[k];
    if (o == r || o->stop_asked)
      continue;
    o->stop_asked = 1;
    o->cmd_stop = 1;
    o->cmd_code = code;
    if (o->alive)
      uv_async_send(&o->a_cmd);
  }
  uv_mutex_unlock(&c->mu);
}

void crew_model_all(run *r, nn_model *nm) {
  crew *c = r->crew;
  if (!c)
    return;
  uv_mutex_lock(&c->mu);
  for (int k = 0; k < c->n; k++) {
    run *o = c->runs[k];
    if (o == r || !o->alive)
      continue;
    model_unref(o->cmd_model); /* an earlier one it has not taken yet */
    o->cmd_model = model_ref(nm);
    uv_async_send(&o->a_cmd);
  }
  uv_mutex_unlock(&c->mu);
}

void crew_publish(run *r, const char *why, int joined) {
  crew *c = r->crew;
  uv_mutex_lock(&c->mu);
  stats *s = r->snap;
  /* What the leader has not taken of the interval yet stays in it. */
  hist_merge(&r->st.lat_interval, &s->lat_interval);
  if (s->stall_max_ns > r->st.stall_max_ns)
    r->st.stall_max_ns = s->stall_max_ns;
  memcpy(s, &r->st, sizeof *s);
  snprintf(r->snap_why, sizeof r->snap_why, "%s", why);
  r->snap_joined = joined;
  uv_mutex_unlock(&c->mu);
  hist_reset(&r->st.lat_interval);
  r->st.stall_max_ns = 0;
}

void crew_merge(crew *c, stats *s, int take) {
  uv_mutex_lock(&c->mu);
  for (int k = 1; k < c->n; k++) {
    stats *o = c->runs[k]->snap;
    stats_merge(s, o);
    if (take) {
      hist_reset(&o->lat_interval);
      o->stall_max_ns = 0;
    }
  }
  uv_mutex_unlock(&c->mu);
}

int crew_unhealthy(crew *c, char *why, size_t len) {
  int bad = 0;
  uv_mutex_lock(&c->mu);
  for (int k = 1; k < c->n && !bad; k++)
    if (c->runs[k]->snap_why[0]) {
      snprintf(why, len, "stream thread %d: %s", k, c->runs[k]->snap_why);
      bad = 1;
    }
  uv_mutex_unlock(&c->mu);
  return bad;
}

int crew_joined(crew *c) {
  int all = 1;
  uv_mutex_lock(&c->mu);
  for (int k = 1; k < c->n; k++)
    all &= c->runs[k]->snap_joined;
  uv_mutex_unlock(&c->mu);
  return all;
}

/* Thread K > 0: its loop until it stops, its last figures for the leader, then what it holds. */
static void *thread_main(void *arg) {
  run *r = arg;
  log_set_thread(r->idx);
  uv_run(r->loop, UV_RUN_DEFAULT);
  health_publish(r);
  run_release(r);
  return NULL;
}

int crew_start(crew *c) {
  for (int k = 1; k < c->n; k++) {
    int e = pthread_create(&c->tids[k], NULL, thread_main, c->runs[k]);
    if (e != 0) {
      log_error("run", "stream thread %d: cannot create a thread: %s", k, strerror(e));
      return 1;
    }
    c->started[k] = 1;
  }
  return 0;
}

int crew_join(crew *c) {
  int code = 0;
  for (int k = 1; k < c->n; k++) {
    if (!c->started[k])
      continue;
    pthread_join(c->tids[k], NULL);
    c->started[k] = 0;
    if (c->runs[k]->exit_code > code)
      code = c->runs[k]->exit_code;
  }
  return code;
}
