/* health.c: what the daemon reports about itself: the stats topic, /metrics, /healthz, /readyz,
 * the lag of every assigned partition and the loop's own stalls. Not for the counters' rendering
 * (daemon/pipeline/stats.c) nor for the HTTP server (http.c).
 *
 * Lag, per assigned partition: the high watermark (librdkafka's cached one, from the last fetch
 * response) minus the next offset to process (last processed + 1; before anything was processed
 * since the assignment, the fetch position from librdkafka's statistics). A caught-up daemon
 * reports 0, whatever its checkpoint interval. What is processed but not yet covered by a
 * committed checkpoint (what a crash would process again) is a separate figure.
 *
 * Health: /healthz is 200 "ok" unless the daemon is stopping or, for longer than
 * --unhealthy-after, checkpoints have failed, or ticks were processed that no checkpoint covers
 * (a prediction that failed for good stops them), or the output has been paused by backpressure;
 * then 503 with the reason. /readyz is 200 once the model is loaded and the member has joined its
 * group (with or without partitions) and /healthz would be 200. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "daemon/kafka/kconf.h"
#include "daemon/loop/run_int.h"
#include "daemon/pipeline/log.h"
#include "nn/base/clock.h"

static int unhealthy(run *r, char *why, size_t len);

/* The offsets behind the lag of every assigned partition (see the top of this file). */
static void lag_fill(run *r) {
  stats *s = &r->st;
  for (int32_t p = 0; p < s->nparts; p++) {
    if (!s->assigned[p])
      continue;
    const part *pt = p < r->nparts ? &r->parts[p] : NULL;
    s->processed[p] = pt && pt->assigned ? pt->pnext : -1;
    int64_t lo = -1, hi = -1;
    if (s->processed[p] >= 0) {
      rd_kafka_get_watermark_offsets(r->consumer, r->o->input_topic, p, &lo, &hi);
      s->hi[p] = hi >= 0 ? hi : s->rk_hi[p];
      s->next[p] = s->processed[p];
    } else { /* nothing processed yet: the statistics' pair, from one moment */
      s->hi[p] = s->rk_hi[p];
      s->next[p] = s->rk_next[p];
    }
  }
}

/* When this process started, in seconds since the epoch, as Prometheus' process collector
 * computes it: the start in clock ticks after boot (/proc/self/stat) plus the boot time
 * (/proc/stat). -1 where /proc does not say. */
static double proc_start_s(void) {
  char buf[1024];
  FILE *f = fopen("/proc/self/stat", "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f)
    fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* the command name before it may hold anything */
  unsigned long long start = 0, btime = 0;
  /* after the name: state, then fields 4..21, then starttime (field 22) */
  if (!p || sscanf(p + 1,
                   " %*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
                   "%*s %*s %llu",
                   &start) != 1)
    return -1;
  long hz = sysconf(_SC_CLK_TCK);
  double boot = -1;
  if ((f = fopen("/proc/stat", "r"))) {
    char line[256];
    while (fgets(line, sizeof line, f) && sscanf(line, "btime %llu", &btime) != 1)
      ;
    fclose(f);
    if (btime)
      boot = (double)btime;
  }
  /* Without /proc/stat (systemd's ProcSubset=pid hides it): the boot time is the wall clock
   * less the time since boot. */
  struct timespec now, up;
  if (boot < 0 && clock_gettime(CLOCK_REALTIME, &now) == 0 &&
      clock_gettime(CLOCK_BOOTTIME, &up) == 0)
    boot = (double)(now.tv_sec - up.tv_sec) + (double)(now.tv_nsec - up.tv_nsec) / 1e9;
  return boot >= 0 && hz > 0 ? boot + (double)start / (double)hz : -1;
}

/* The process figures of the stats (see stats.h), each -1 where it cannot be read; the open
 * descriptors only with fds (for /metrics: the stats topic does not carry them, and listing
 * /proc/self/fd grows with the descriptors, about 20 us for a hundred). */
static void proc_fill(stats *s, int fds) {
  s->cpu_s = tc_process_cpu_us() / 1e6;
  s->vm_bytes = s->rss_bytes = -1;
  FILE *f = fopen("/proc/self/statm", "r");
  long long size, resident, page = sysconf(_SC_PAGESIZE);
  if (f && fscanf(f, "%lld %lld", &size, &resident) == 2 && page > 0) {
    s->vm_bytes = size * page;
    s->rss_bytes = resident * page;
  }
  if (f)
    fclose(f);
  s->open_fds = -1;
  DIR *d = fds ? opendir("/proc/self/fd") : NULL;
  if (d) {
    int64_t k = 0;
    for (struct dirent *e; (e = readdir(d));)
      k += e->d_name[0] != '.';
    s->open_fds = k - 1; /* not the directory's own descriptor */
    closedir(d);
  }
  struct rlimit rl;
  s->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                   ? (int64_t)rl.rlim_cur
                   : -1;
  if (s->proc_start_s < 0)
    s->proc_start_s = proc_start_s();
}

/* Copies what the loop knows (instruments, assignment, producer queue, checkpoints, model, lag)
 * and the process figures (the open descriptors with fds) into the stats before they are
 * rendered. */
static void stats_fill(run *r, int fds) {
  r->st.instruments = r->e.st.live;
  r->st.assigned_count = r->assigned;
  r->st.awaiting_count = 0;
  for (int32_t p = 0; p < r->nparts; p++)
    r->st.awaiting_count += r->parts[p].assigned && r->parts[p].awaiting;
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
  lag_fill(r);
  proc_fill(&r->st, fds);
  r->st.kafka_errors = kconf_errors(); /* the process's: each thread's copy is the same */
  char why[512];
  r->st.healthy = !unhealthy(r, why, sizeof why);
}

/* The figures to render: the run's own, or with stream threads (the leader) a merged copy of
 * them and the other threads' (free it with stats_done); take: the other threads' interval
 * histograms move over (a stats message). NULL on ENOMEM. */
static stats *stats_all(run *r, int take) {
  if (!r->crew)
    return &r->st;
  stats *s = malloc(sizeof *s);
  if (!s)
    return NULL;
  memcpy(s, &r->st, sizeof *s);
  crew_merge(r->crew, s, take);
  if (take) { /* the copy carries the leader's interval away too */
    hist_reset(&r->st.lat_interval);
    r->st.stall_max_ns = 0;
  }
  return s;
}

static void stats_done(run *r, stats *s) {
  if (s != &r->st)
    free(s);
}

/* Every --stats-interval: one JSON object to the stats topic (the interval histogram restarts),
 * for every stream thread of the process. */
void health_on_stats_timer(uv_timer_t *h) {
  run *r = h->data;
  stats_fill(r, 0);
  stats *s = stats_all(r, 1);
  char *js = s ? stats_json(s, tc_wall_ms(), 1) : NULL;
  if (s) {
    log_debug("run", "stats: in %llu, out %llu", (unsigned long long)s->ticks_in,
              (unsigned long long)s->predictions_out);
    stats_done(r, s);
  }
  if (!js)
    return;
  drain_produce(r, r->t_stats, RD_KAFKA_MSG_F_FREE, js, strlen(js), r->o->group,
                strlen(r->o->group), OPQ_NONE);
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

/* Every second: ticks_in for the rates, what the checkpoints found of the state file, and since
 * when checkpoints fail. */
void health_on_second(uv_timer_t *h) {
  run *r = h->data;
  stats_second(&r->st);
  note_state_heals(r);
  if (r->ck && ckpt_get_stats(r->ck)->consecutive_failures > 0) {
    if (!r->ckpt_fail_since)
      r->ckpt_fail_since = uv_now(r->loop);
  } else {
    r->ckpt_fail_since = 0;
  }
}

/* The loop's stalls: a timer due every STALL_TICK_MS measures how late the loop serves it (a
 * drain turn, a checkpoint copy, anything that holds the thread). */
#define STALL_TICK_MS 10

static void on_stall_tick(uv_timer_t *h) {
  run *r = h->data;
  uint64_t now = tc_mono_ns();
  if (r->stall_due_ns && now > r->stall_due_ns)
    stats_stall(&r->st, now - r->stall_due_ns);
  r->stall_due_ns = now + STALL_TICK_MS * 1000000ull;
}

void health_start(run *r) {
  uv_timer_init(r->loop, &r->t_stall);
  r->t_stall.data = r;
  uv_timer_start(&r->t_stall, on_stall_tick, STALL_TICK_MS, STALL_TICK_MS);
}

/* Why the daemon is not healthy, into why (see the top of this file); 0 when it is. */
static int unhealthy(run *r, char *why, size_t len) {
  if (r->stopping) {
    snprintf(why, len, "stopping");
    return 1;
  }
  uint64_t bound = (uint64_t)r->o->unhealthy_after_ms, now = uv_now(r->loop);
  if (!bound)
    return 0;
  if (r->paused && now - r->paused_since > bound) {
    snprintf(why, len, "output paused for %.1f s (%d messages in the producer queue)",
             (double)(now - r->paused_since) / 1e3, rd_kafka_outq_len(r->producer));
    return 1;
  }
  if (r->ck && r->ckpt_fail_since && now - r->ckpt_fail_since > bound) {
    const ckpt_stats *cs = ckpt_get_stats(r->ck);
    snprintf(why, len, "checkpoints failing for %.1f s (%u in a row): %s",
             (double)(now - r->ckpt_fail_since) / 1e3, cs->consecutive_failures, cs->last_error);
    return 1;
  }
  const stats *s = &r->st;
  for (int32_t p = 0; r->db && p < s->nparts; p++) {
    int64_t n = s->assigned[p] ? stats_uncheckpointed(s, p) : 0;
    if (n > 0 && now - s->ckpt_at_ms[p] > bound) {
      snprintf(why, len,
               "partition %d: %lld processed messages not covered by a checkpoint for %.1f s "
               "(a failed delivery, or checkpoints that cannot be written)",
               p, (long long)n, (double)(now - s->ckpt_at_ms[p]) / 1e3);
      return 1;
    }
  }
  return 0;
}

/* 1 once the consumer has joined its group (librdkafka knows its member id). */
static int joined(run *r) {
  char *id = rd_kafka_memberid(r->consumer);
  int ok = id && *id;
  if (id)
    rd_kafka_mem_free(r->consumer, id);
  return ok;
}

/* Why this run or, with stream threads, another one is unhealthy; 0 when none is. */
static int unhealthy_all(run *r, char *why, size_t len) {
  return unhealthy(r, why, len) || (r->crew && crew_unhealthy(r->crew, why, len));
}

/* The partitions assigned to every stream thread. */
static int assigned_all(run *r) {
  r->st.assigned_count = r->assigned;
  stats *s = stats_all(r, 0);
  int n = s ? s->assigned_count : r->assigned;
  if (s)
    stats_done(r, s);
  return n;
}

void health_on_publish_timer(uv_timer_t *h) {
  health_publish(h->data);
}

void health_publish(run *r) {
  char why[512] = "";
  stats_fill(r, 0);
  if (unhealthy(r, why, sizeof why) == 0)
    why[0] = 0;
  crew_publish(r, why, joined(r));
}

/* The HTTP handler (http.h): /metrics, /healthz, /readyz. */
int health_on_http(void *ud, const char *path, char **body, size_t *len, const char **ctype) {
  run *r = ud;
  if (!strcmp(path, "/metrics")) {
    stats_fill(r, 1);
    stats *s = stats_all(r, 0);
    *body = s ? stats_prometheus(s, tc_wall_ms(), len) : NULL;
    if (s)
      stats_done(r, s);
    *ctype = "text/plain; version=0.0.4; charset=utf-8";
    return *body ? 200 : 500;
  }
  char msg[640], why[600];
  int status = 200;
  if (!strcmp(path, "/healthz")) {
    if (unhealthy_all(r, why, sizeof why))
      status = 503, snprintf(msg, sizeof msg, "unhealthy: %s\n", why);
    else
      snprintf(msg, sizeof msg, "ok\n");
  } else if (!strcmp(path, "/readyz")) {
    if (unhealthy_all(r, why, sizeof why))
      status = 503, snprintf(msg, sizeof msg, "not ready: %s\n", why);
    else if (!r->model)
      status = 503, snprintf(msg, sizeof msg, "not ready: no model loaded\n");
    else if (!joined(r) || (r->crew && !crew_joined(r->crew)))
      status = 503,
      snprintf(msg, sizeof msg, "not ready: not a member of group %s yet\n", r->o->group);
    else
      snprintf(msg, sizeof msg, "ready (%d partitions assigned)\n", assigned_all(r));
  } else {
    status = 404;
    snprintf(msg, sizeof msg, "not found (try /metrics, /healthz, /readyz)\n");
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
