/* bench_restore.c: what a member with no state file pays to take over partitions from the
 * changelog, on the embedded broker (librdkafka's mock cluster, in this process). Per case: the
 * changelog is filled with one full checkpoint of N instruments over P partitions (the daemon's
 * writer, cl_writer_put), then
 *   1. the restore the daemon runs on its thread pool (cl_read into a cl_restore, resume offsets,
 *      the table): seconds, records, and the memory it holds (its own estimate and the process's
 *      peak RSS growth);
 *   2. the loop-thread part: putting the restored instruments into the engine's table;
 *   3. the daemon itself (`tickcast run` with an empty --state, a child process): seconds from its
 *      "assigned" log line to its "restored" one, and to the first prediction of a tick waiting in
 *      partition 0 (goal: serving a partition of 10,000 instruments within 2 s of its assignment).
 * Cases: 10,000 instruments in 1 partition at H = 32 (a 10,000-instrument partition at H = 64 is
 * 6.5 MB of changelog, more than the embedded broker keeps per partition), 10,000 over 4 partitions
 * and 100,000 over 32 partitions at H = 64. Not a test: it prints one line per measurement.
 * Usage: bench_restore [--quick] (only the first case). Needs ./tickcast (or $TICKCAST). */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/kafka/changelog.h"
#include "daemon/kafka/mockbroker.h"
#include "nn/base/clock.h"
#include "nn/model.h"
#include "nn/safetensors/safetensors.h"

extern char **environ;

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float rndf(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float)(rng >> 40) / 16777216.0f - 0.5f;
}

static long peak_rss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static void die(const char *what, const char *err) {
  fprintf(stderr, "bench_restore: %s: %s\n", what, err);
  exit(1);
}

static rd_kafka_conf_t *conf_for(const char *bootstrap, const char *group) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  char e[256];
  rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, e, sizeof e);
  rd_kafka_conf_set(c, "log_level", "3", e, sizeof e);
  if (group) { /* the daemon's changelog reader */
    static const char *const reader[] = {CL_READER_CONF, NULL};
    rd_kafka_conf_set(c, "group.id", group, e, sizeof e);
    for (int i = 0; reader[i]; i += 2)
      rd_kafka_conf_set(c, reader[i], reader[i + 1], e, sizeof e);
    rd_kafka_conf_set(c, "enable.auto.commit", "false", e, sizeof e);
    rd_kafka_conf_set(c, "auto.offset.reset", "earliest", e, sizeof e);
  }
  return c;
}

/* Two ticks in every input partition: offset 0 (in the checkpointed states) and offset 1 (new,
 * predicted once the member serves the partition, which resumes at offset 1). */
static void produce_ticks(const char *bootstrap, int P) {
  char e[256];
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf_for(bootstrap, NULL), e, sizeof e);
  if (!p)
    die("producer", e);
  for (int q = 0; q < 2 * P; q++) {
    char v[128];
    int n = snprintf(v, sizeof v, "{\"sym\":\"T%d\",\"ts\":1700000000000000000,\"px\":1.5}", q);
    rd_kafka_producev(p, RD_KAFKA_V_TOPIC("ticks"), RD_KAFKA_V_PARTITION(q % P),
                      RD_KAFKA_V_VALUE(v, (size_t)n), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                      RD_KAFKA_V_END);
  }
  rd_kafka_flush(p, 10000);
  rd_kafka_destroy(p);
}

/* The changelog: one full checkpoint of N instruments over P partitions, all at offset 1. */
static double fill_changelog(const char *bootstrap, const unsigned char sha[32], int N, int P,
                             int H) {
  char err[512];
  cl_writer *w = NULL;
  if (cl_writer_new(&w, conf_for(bootstrap, NULL), "bench.state", err, sizeof err) != 0)
    die("writer", err);
  size_t sf = store_blob_floats(NN_CELL_LSTM, 1, H);
  float *st = malloc((size_t)N * sf * sizeof *st);
  store_inst *in = calloc((size_t)N, sizeof *in);
  char(*sym)[16] = calloc((size_t)N, sizeof *sym);
  cl_part *parts = calloc((size_t)P, sizeof *parts);
  for (size_t i = 0; i < (size_t)N * sf; i++)
    st[i] = rndf();
  for (int k = 0; k < N; k++) {
    in[k].sym_len = (size_t)snprintf(sym[k], sizeof sym[k], "I%06d", k);
    in[k].sym = sym[k];
    in[k].partition = k % P;
    in[k].n = 1000 + (uint64_t)k;
    in[k].last_ts = 1700000000000000000ll + k;
    in[k].last_px = 100 + k * 0.01;
    in[k].state = st + (size_t)k * sf;
    in[k].next_offset = 1;
  }
  for (int q = 0; q < P; q++)
    parts[q] =
        (cl_part){.part = q, .next = 1, .instruments = (uint32_t)(N / P), .full = 1, .base = -1};
  double t0 = tc_mono_s();
  if (cl_writer_put(w, sha, NN_CELL_LSTM, 1, H, in, NULL, (size_t)N, parts, (size_t)P, tc_wall_ns(),
                    60000, err, sizeof err) != 0)
    die("writing the changelog", err);
  double secs = tc_mono_s() - t0;
  cl_writer_destroy(w);
  free(st);
  free(in);
  free(sym);
  free(parts);
  return secs;
}

/* The pool-thread restore and the loop-thread insertion, in process. */
static void restore_in_process(const char *bootstrap, const unsigned char sha[32], int N, int P,
                               int H) {
  char err[512];
  rd_kafka_t *rk =
      rd_kafka_new(RD_KAFKA_CONSUMER, conf_for(bootstrap, "bench-reader"), err, sizeof err);
  if (!rk)
    die("reader", err);
  int32_t *ps = malloc((size_t)P * sizeof *ps);
  for (int q = 0; q < P; q++)
    ps[q] = q;
  long rss0 = peak_rss_kb();
  double t0 = tc_mono_s();
  cl_restore *r = NULL;
  if (cl_restore_new(&r, NN_CELL_LSTM, 1, H, sha, ps, P) != 0)
    die("restore", "out of memory");
  int64_t lows[64];
  int ncl = 0;
  if (cl_read(rk, "bench.state", r, ps, P, lows, 64, &ncl, 60000, NULL, err, sizeof err) != 0)
    die("reading the changelog", err);
  int64_t resume = 0;
  for (int q = 0; q < P; q++) {
    int fc;
    cl_marker m;
    resume += cl_restore_resume(r, q, lows[q % ncl], &fc, &m);
  }
  symtab *t = cl_restore_table(r);
  double secs = tc_mono_s() - t0;
  const cl_restore_stats *cs = cl_restore_get_stats(r);
  printf("restore N=%d P=%d H=%d: %.3f s on the pool thread, %u instruments (resume offsets sum "
         "%lld), %llu records of %llu messages, %.1f MB read; holds %.1f MB (estimate), peak RSS "
         "+%.1f MB\n",
         N, P, H, secs, t->live, (long long)resume, (unsigned long long)cs->records,
         (unsigned long long)cs->messages, (double)cs->bytes / 1e6, (double)cl_restore_mem(r) / 1e6,
         (double)(peak_rss_kb() - rss0) / 1e3);
  symtab eng;
  symtab_init(&eng, (size_t)2 * H, 1024);
  t0 = tc_mono_s();
  for (uint32_t s = 0; s < t->count; s++) {
    if (!t->inst[s].live)
      continue;
    int32_t d = symtab_add(&eng, t->inst[s].sym, t->inst[s].sym_len);
    eng.inst[d].n = t->inst[s].n;
    eng.inst[d].skip_below = t->inst[s].skip_below;
    memcpy(symtab_state(&eng, d), symtab_state(t, (int32_t)s), eng.state_floats * sizeof(float));
  }
  printf("restore N=%d P=%d H=%d: loop-thread insertion into the engine %.1f ms\n", N, P, H,
         (tc_mono_s() - t0) * 1e3);
  symtab_free(&eng);
  cl_restore_free(r);
  free(ps);
  rd_kafka_destroy(rk);
}

/* Seconds of an ISO log line's time of day ("2026-12-01T01:02:03.456Z ..."). */
static double log_secs(const char *line) {
  int h, m;
  double s;
  return sscanf(line + 11, "%d:%d:%lfZ", &h, &m, &s) == 3 ? h * 3600.0 + m * 60.0 + s : -1;
}

/* The daemon with an empty state file: assignment -> restored -> first prediction. */
static void restore_daemon(const char *bootstrap, const char *model, int N, int P, int H) {
  char dir[] = "/tmp/bench_restore_XXXXXX";
  if (!mkdtemp(dir))
    die("mkdtemp", "failed");
  char db[128], logp[128];
  snprintf(db, sizeof db, "%s/empty.db", dir);
  snprintf(logp, sizeof logp, "%s/run.log", dir);
  const char *tc = getenv("TICKCAST") ? getenv("TICKCAST") : "./tickcast";
  const char *argv[] = {
      tc,        "run", "--brokers",         bootstrap,     "--group", "bench", "--model", model,
      "--state", db,    "--changelog-topic", "bench.state", "--http",  "off",   NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  if (posix_spawn(&pid, tc, &fa, NULL, (char **)argv, environ) != 0)
    die("spawn", tc);
  char err[256];
  rd_kafka_t *c =
      rd_kafka_new(RD_KAFKA_CONSUMER, conf_for(bootstrap, "bench-preds"), err, sizeof err);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(P);
  for (int q = 0; q < P; q++)
    rd_kafka_topic_partition_list_add(l, "predictions", q)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(c, l);
  rd_kafka_topic_partition_list_destroy(l);
  double first = -1, t_end = tc_mono_s() + 60;
  while (first < 0 && tc_mono_s() < t_end) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
    if (m && !m->err)
      first = (double)tc_wall_ns() / 1e9;
    if (m)
      rd_kafka_message_destroy(m);
  }
  rd_kafka_destroy(c);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  double t_asg = -1, t_rest = -1;
  char line[2048], rest[2048] = "";
  FILE *f = fopen(logp, "r");
  while (f && fgets(line, sizeof line, f)) {
    if (t_asg < 0 && strstr(line, "assigned ticks partitions"))
      t_asg = log_secs(line);
    if (t_rest < 0 && strstr(line, "restored ticks partitions")) {
      t_rest = log_secs(line);
      snprintf(rest, sizeof rest, "%s", strstr(line, "restored"));
    }
  }
  if (f)
    fclose(f);
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  double day0 = (double)now - (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
  double t_first = first > 0 ? first - day0 : -1;
  printf("daemon N=%d P=%d H=%d, no state file: restored %.3f s after its assignment, first "
         "prediction %.3f s after it (%s)\n",
         N, P, H, t_rest - t_asg, t_first - t_asg, rest[0] ? strtok(rest, "\n") : "no restore");
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
}

static void one_case(int N, int P, int H) {
  char err[512], topics[128], model[64];
  snprintf(topics, sizeof topics, "ticks:%d,predictions:%d,bench.state:%d", P, P, P);
  mockbroker *mb = NULL;
  if (mockbroker_start(&mb, 0, topics, err, sizeof err) != 0)
    die("broker", err);
  const char *bs = mockbroker_bootstraps(mb);
  nn_model m, ml;
  nn_model_init(&m, 1, H, 0);
  snprintf(model, sizeof model, "/tmp/bench_restore_%d.safetensors", (int)getpid());
  if (nn_model_save(&m, model, err, sizeof err) != 0 || nn_model_load(&ml, model, err, sizeof err))
    die("model", err);
  produce_ticks(bs, P);
  double w = fill_changelog(bs, ml.sha256, N, P, H);
  printf("changelog N=%d P=%d H=%d: one full checkpoint written and acknowledged in %.3f s\n", N, P,
         H, w);
  restore_in_process(bs, ml.sha256, N, P, H);
  restore_daemon(bs, model, N, P, H);
  unlink(model);
  nn_model_free(&m);
  nn_model_free(&ml);
  mockbroker_stop(mb);
}

int main(int argc, char **argv) {
  int quick = argc > 1 && !strcmp(argv[1], "--quick");
  one_case(10000, 1, 32);
  if (quick)
    return 0;
  one_case(10000, 4, 64);
  one_case(100000, 32, 64);
  return 0;
}
