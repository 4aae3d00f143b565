/* run.c: the daemon's libuv loop (see run.h): start-up, the loop, tear-down. One loop thread
 * owns every piece of state: the consumer's queue and the producer's delivery reports wake it
 * through librdkafka's queue io events on pipes watched by uv_poll; each wake drains up to a chunk
 * of messages, steps the engine once and produces the results, then yields to timers and HTTP (a
 * uv_idle handle reschedules the rest; drain.c). Checkpoints (ckpt.h, ckpt_sched.c,
 * docs/STATE.md) are copied on this loop between chunks and written once the broker has
 * acknowledged every output they cover; with a state db, Kafka's committed offsets follow the
 * checkpoints (informational: the offsets in the db decide where a restart resumes). The other
 * files of the loop: clients.c, inflight.c, rebalance.c, restore.c, health.c, lifecycle.c
 * (run_int.h).
 */
#include "daemon/loop/run.h"

#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/loop/run_int.h"
#include "daemon/pipeline/log.h"
#include "daemon/pipeline/version.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"
#include "nn/model.h"
#include "nn/safetensors/safetensors.h"

/* Stream thread k's run with its options, state path and stats started; NULL on ENOMEM. */
static run *run_new(const run_opts *o, int k) {
  run *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->o = o;
  r->idx = k;
  r->state_path = o->state_path;
  if (k > 0) {
    size_t n = strlen(o->state_path) + 16;
    if (!(r->state_buf = malloc(n))) {
      free(r);
      return NULL;
    }
    snprintf(r->state_buf, n, "%s.%d", o->state_path, k);
    r->state_path = r->state_buf;
  }
  r->cpipe[0] = r->cpipe[1] = r->ppipe[0] = r->ppipe[1] = -1;
  r->chunk = o->chunk;
  r->cl_ack_ms = CHANGELOG_ACK_MS;
  r->chunk_backlog = o->backlog_chunk > o->chunk ? o->backlog_chunk : o->chunk;
  stats_init(&r->st, tc_wall_ms());
  snprintf(r->st.version, sizeof r->st.version, "%s", TICKCAST_VERSION);
  char host[128] = "";
  if (gethostname(host, sizeof host - 1) != 0 || !host[0])
    snprintf(host, sizeof host, "unknown");
  snprintf(r->st.member, sizeof r->st.member, "%s:%d", host, (int)getpid());
  return r;
}

/* The phases of start-up return 0, or the exit status after logging why. */

static int load_model(run *r) {
  char err[1024];
  r->model = model_new();
  if (!r->model)
    return 1;
  if (nn_model_load(r->model, r->o->model_path, err, sizeof err) != 0) {
    log_error("run", "%s", err);
    return 2;
  }
  return 0;
}

/* The engine and the chunk buffers, and the "topic/" prefix of every src. The engine is the
 * replays' exact one (engine_init_exact): a prediction's bits do not depend on how the ticks
 * were grouped into chunks, whatever --chunk and --backlog-chunk, so stream = replay and a
 * re-run after a crash gives the same bits on every CPU. On AVX-512 that is engine_init itself;
 * on AVX2 waves of more than 64 instruments run on nn_projT instead of sgemm, as fast. */
static int setup_engine(run *r) {
  r->m_cell = r->model->cell;
  r->m_L = r->model->L;
  r->m_H = r->model->H;
  if (engine_init_exact(&r->e, r->model, r->chunk_backlog, r->chunk_backlog) != 0) {
    log_error("run", "engine: out of memory for chunks of %d", r->chunk_backlog);
    return 1;
  }
  r->e.max_instruments = (uint32_t)r->o->max_instruments;
  r->e.max_future_ns = (int64_t)r->o->max_future_ms * 1000000;
  engine_set_interval(&r->e, r->o->interval);
  engine_set_adapt(&r->e, r->o->interval_adapt);
  r->msgs = calloc((size_t)r->chunk_backlog, sizeof *r->msgs);
  r->ticks = calloc((size_t)r->chunk_backlog, sizeof *r->ticks);
  if (!r->msgs || !r->ticks)
    return 1;
  r->in_prefix_len = strlen(r->o->input_topic) + 1;
  snprintf(r->src, sizeof r->src, "%s/", r->o->input_topic);
  return 0;
}

/* Without --brokers: a development broker in the process, holding the daemon's topics. */
static int start_embedded_broker(run *r) {
  const run_opts *o = r->o;
  if (o->kc.brokers)
    return 0;
  char topics[1400], err[1024];
  snprintf(topics, sizeof topics, "%s,%s,%s,%s%s%s", o->input_topic, o->output_topic,
           o->stats_topic, o->dlq_topic, o->changelog_topic ? "," : "",
           o->changelog_topic ? o->changelog_topic : "");
  if (mockbroker_start(&r->mb, 0, topics, err, sizeof err) != 0) {
    log_error("run", "embedded broker: %s", err);
    return 1;
  }
  log_info("run",
           "no --brokers: started an embedded development broker at %s "
           "(publish ticks to topic %s there)",
           mockbroker_bootstraps(r->mb), o->input_topic);
  return 0;
}

static int start_http(run *r) {
  const run_opts *o = r->o;
  if (!o->http)
    return 0;
  char err[1024];
  if (http_start(&r->http, r->loop, o->http, health_on_http, r, err, sizeof err) != 0) {
    log_error("run", "%s", err);
    return 1;
  }
  log_info("run", "http on %s (port %d): /metrics /healthz /readyz", o->http, http_port(r->http));
  return 0;
}

/* Every -X and kafka.* property is checked by librdkafka before anything starts: a bad one exits 2
 * before the state file, the HTTP port or an embedded broker is touched. */
static int check_clients(run *r) {
  char err[1024];
  int rc = clients_check(r->o, err, sizeof err);
  if (rc != 0) {
    log_error("run", "%s", err);
    return rc == TC_EUSAGE ? 2 : 1;
  }
  return 0;
}

static int count_row(void *ud, const store_inst *in) {
  (void)in;
  ++*(uint64_t *)ud;
  return 0;
}

/* The state db opens after the client configuration was accepted (a bad -X creates no file)
 * and before the loop runs (the first assignment restores from it). Every stored instrument is
 * checked (fields, blob, checksum) before anything is written: a damaged file is refused with
 * exit 2 and left as it was, instead of failing at the first assignment. */
static int open_state(run *r) {
  const run_opts *o = r->o;
  char err[1024];
  uint64_t rows = 0;
  int rc = store_open(r->state_path, o->sync_full ? STORE_SYNC_FULL : STORE_SYNC_NORMAL,
                      STORE_OPEN_CREATE, &r->db, err, sizeof err);
  if (rc == 0)
    rc = ckpt_bind_model(r->db, r->model, o->reset_state, err, sizeof err);
  if (rc == 0)
    rc = store_instruments_load(r->db, r->model->cell, r->model->L, r->model->H, count_row, &rows,
                                err, sizeof err);
  if (rc != 0) {
    log_error("run", "%s", err);
    return rc == TC_EFORMAT || rc == TC_EMODEL ? 2 : 1;
  }
  log_info("run", "state db %s: %llu instruments stored, every one checked", r->state_path,
           (unsigned long long)rows);
  return ckpt_new(&r->ck, r->loop, r->db, r->model) == 0 ? 0 : 1;
}

/* Joins the group once the clients exist; the state db was accepted before them, so a start-up
 * refused on its state never becomes a group member (one that leaves without a LeaveGroup stalls
 * the group's next rebalance for a session timeout). */
static int join_group(run *r) {
  char err[1024];
  if (r->clw)
    ckpt_set_hook(r->ck, sched_changelog_hook, r);
  if (clients_subscribe(r, err, sizeof err) != 0) {
    log_error("run", "%s", err);
    return 1;
  }
  return 0;
}

/* The loop's handles: io events, the idle drain, timers, signals (the leader's: stats messages and
 * signals are the process's; crew.c). */
static void start_handles(run *r) {
  const run_opts *o = r->o;
  uv_loop_t *loop = r->loop;
  uv_poll_init(loop, &r->cpoll, r->cpipe[0]);
  uv_poll_init(loop, &r->ppoll, r->ppipe[0]);
  uv_idle_init(loop, &r->idle);
  uv_timer_init(loop, &r->t_stats_timer);
  uv_timer_init(loop, &r->t_second);
  uv_timer_init(loop, &r->t_ckpt);
  uv_timer_init(loop, &r->t_stop);
  uv_timer_init(loop, &r->t_pause);
  uv_timer_init(loop, &r->t_revoke);
  uv_timer_init(loop, &r->t_await);
  uv_idle_init(loop, &r->ckpt_idle);
  uv_idle_init(loop, &r->restore_idle);
  uv_signal_init(loop, &r->sig_term);
  uv_signal_init(loop, &r->sig_int);
  uv_signal_init(loop, &r->sig_hup);
  r->cpoll.data = r->ppoll.data = r->idle.data = r->t_stats_timer.data = r->t_second.data =
      r->t_ckpt.data = r->t_stop.data = r->t_pause.data = r->sig_term.data = r->sig_int.data =
          r->sig_hup.data = r->t_revoke.data = r->t_await.data = r->ckpt_idle.data =
              r->restore_idle.data = r;
  uv_poll_start(&r->cpoll, UV_READABLE, drain_on_consumer_io);
  uv_poll_start(&r->ppoll, UV_READABLE, drain_on_producer_io);
  /* The queue may be non-empty already: no io event comes for that. */
  uv_idle_start(&r->idle, drain_on_idle);
  uv_timer_start(&r->t_second, health_on_second, 0, 1000);
  uv_timer_start(&r->t_ckpt, sched_ckpt_on_timer, (uint64_t)o->checkpoint_ms,
                 (uint64_t)o->checkpoint_ms);
  if (r->idx > 0) { /* the leader's stats message and /metrics carry this thread's figures */
    uint64_t ms = o->stats_ms < 1000 ? (uint64_t)o->stats_ms : 1000;
    uv_timer_start(&r->t_stats_timer, health_on_publish_timer, ms, ms);
  } else {
    uv_timer_start(&r->t_stats_timer, health_on_stats_timer, (uint64_t)o->stats_ms,
                   (uint64_t)o->stats_ms);
    uv_signal_start(&r->sig_term, lifecycle_on_signal, SIGTERM);
    uv_signal_start(&r->sig_int, lifecycle_on_signal, SIGINT);
    uv_signal_start(&r->sig_hup, lifecycle_on_signal, SIGHUP);
  }
  if (r->crew)
    crew_handles(r);
  health_start(r);
  log_info("run", "model %s (%s: %s L=%d H=%d%s); consuming %s as group %s -> %s", r->model->id,
           o->model_path, nn_cell_name(r->model->cell), r->model->L, r->model->H,
           r->model->peephole ? " peephole" : "", o->input_topic, o->group, o->output_topic);
}

static void report(const run *r) {
  log_info("run",
           "stopped: %llu ticks in, %llu predictions, %llu dead letters, %llu delivery "
           "errors",
           (unsigned long long)r->st.ticks_in, (unsigned long long)r->st.predictions_out,
           (unsigned long long)r->st.dlq_out, (unsigned long long)r->st.delivery_errors);
}

void run_release(run *r) {
  if (r->released)
    return;
  r->released = 1;
  if (r->loop) {
    if (r->http)
      http_stop(r->http);
    r->http = NULL;
    uv_walk(r->loop, lifecycle_close_all, NULL);
    uv_run(r->loop, UV_RUN_DEFAULT);
    uv_loop_close(r->loop);
  }
  ckpt_destroy(r->ck);
  r->ck = NULL;
  store_close(r->db);
  r->db = NULL;
  clients_destroy(r);
  parts_free(r);
  free(r->offbuf);
  free(r->clparts);
  engine_free(&r->e);
  model_unref(r->model);
  r->model = NULL;
  free(r->msgs);
  free(r->ticks);
}

/* Frees everything (run_release, unless done), then the embedded broker and the run itself. */
static void tear_down(run *r) {
  run_release(r);
  mockbroker_stop(r->mb);
  free(r->state_buf);
  free(r);
}

/* At most two glibc malloc arenas (unless MALLOC_ARENA_MAX says otherwise), set before any thread
 * exists. By default every thread that allocates may get an arena of its own (up to 8 per core):
 * restores and checkpoint writes on libuv's pool and librdkafka's threads each left their
 * high-water mark resident, and `make soak`'s RSS stepped up at rebalances from 73 to 127 MB
 * over 300 s; with two arenas it stayed between 52 and 67 MB, and the loop's stalls did not grow
 * (docs/BENCHMARKS.md, "Soak"). With stream threads, one more per thread beyond the first, so
 * that the loop threads do not contend for one arena's lock. */
static void malloc_arenas(int threads) {
  if (!getenv("MALLOC_ARENA_MAX"))
    mallopt(M_ARENA_MAX, 1 + threads);
}

/* libuv's thread pool, which every loop of the process shares, has 4 workers unless
 * UV_THREADPOOL_SIZE says otherwise (read when the pool first starts); a checkpoint write holds
 * one while it waits for the changelog's acknowledgements, so stream threads get two each. */
static void pool_size(int threads) {
  if (threads > 2 && !getenv("UV_THREADPOOL_SIZE")) {
    char v[16];
    snprintf(v, sizeof v, "%d", 2 * threads);
    setenv("UV_THREADPOOL_SIZE", v, 1);
  }
}

/* Stream thread k's part of the start-up (1 < --threads: logged as "run[k]"): phase 0 its model
 * (the leader's: loaded once) and engine, 1 its state file, 2 its clients and membership. */
static int start_member(run *r, run *leader, int phase, const char *bootstraps) {
  log_set_thread(r->crew ? r->idx : -1);
  int code = 0;
  char err[1024];
  if (phase == 0) {
    if (r == leader)
      code = load_model(r);
    else
      r->model = model_ref(leader->model);
    if (code == 0)
      code = setup_engine(r);
  } else if (phase == 1) {
    code = open_state(r);
  } else {
    int rc = clients_make(r, bootstraps, err, sizeof err);
    if (rc != 0) {
      log_error("run", "%s", err);
      code = rc == TC_EUSAGE ? 2 : 1;
    }
    if (code == 0)
      code = join_group(r);
  }
  log_set_thread(r->crew ? 0 : -1);
  return code;
}

int run_main(const run_opts *o) {
  int n = o->threads > 1 ? o->threads : 1;
  malloc_arenas(n);
  pool_size(n);
  run **rs = calloc((size_t)n, sizeof *rs);
  uv_loop_t *loops = calloc((size_t)n, sizeof *loops);
  int code = rs && loops ? 0 : 1;
  for (int k = 0; code == 0 && k < n; k++)
    if (!(rs[k] = run_new(o, k)))
      code = 1;
  crew *cw = NULL;
  if (code == 0 && n > 1 && !(cw = crew_new(rs, n)))
    code = 1;
  /* What can be refused (usage, model, configuration, state file: exit 2) is checked before
   * anything starts (state file aside, which is created when absent); then the HTTP port (in
   * use: exit 1) before the embedded broker and the clients. */
  for (int k = 0; code == 0 && k < n; k++)
    code = start_member(rs[k], rs[0], 0, NULL);
  if (code == 0)
    code = check_clients(rs[0]);
  /* State files this start-up creates: removed again when it fails (an HTTP port in use, a broker
   * that cannot start), so that a refused start leaves nothing behind. */
  char **fresh = code == 0 ? calloc((size_t)n, sizeof *fresh) : NULL;
  for (int k = 0; fresh && k < n; k++)
    if (rs[k]->state_path && access(rs[k]->state_path, F_OK) != 0)
      fresh[k] = strdup(rs[k]->state_path);
  int started = 0;
  for (int k = 0; code == 0 && k < n; k++) {
    uv_loop_init(&loops[k]);
    rs[k]->loop = &loops[k];
    code = start_member(rs[k], rs[0], 1, NULL);
  }
  if (code == 0)
    code = start_http(rs[0]);
  if (code == 0)
    code = start_embedded_broker(rs[0]);
  const char *boot = code == 0 && rs[0]->mb ? mockbroker_bootstraps(rs[0]->mb) : NULL;
  for (int k = 0; code == 0 && k < n; k++)
    code = start_member(rs[k], rs[0], 2, boot);
  if (code == 0) {
    started = 1;
    for (int k = 0; k < n; k++) {
      log_set_thread(cw ? k : -1);
      start_handles(rs[k]);
    }
    log_set_thread(cw ? 0 : -1);
    if (cw && crew_start(cw) != 0)
      lifecycle_begin_shutdown(rs[0], 1);
    uv_run(&loops[0], UV_RUN_DEFAULT);
    code = rs[0]->exit_code;
    if (cw) { /* the threads release their runs themselves, meanwhile */
      run_release(rs[0]);
      int c = crew_join(cw);
      code = c > code ? c : code;
    }
    for (int k = 0; k < n; k++) {
      log_set_thread(cw ? k : -1);
      report(rs[k]);
    }
  }
  crew_free(cw);
  /* The embedded broker (the leader's) stops last. */
  for (int k = n - 1; rs && k >= 0; k--)
    if (rs[k])
      tear_down(rs[k]);
  for (int k = 0; fresh && k < n; k++) {
    if (fresh[k] && !started) {
      static const char *const side[] = {"", "-wal", "-shm"};
      for (int i = 0; i < 3; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s%s", fresh[k], side[i]);
        unlink(path);
      }
    }
    free(fresh[k]);
  }
  free(fresh);
  log_set_thread(-1);
  free(rs);
  free(loops);
  return code;
}
