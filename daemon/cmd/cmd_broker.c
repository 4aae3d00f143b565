/* cmd_broker.c: `tickcast broker`, an embedded development Kafka broker (librdkafka's mock
 * cluster, see mockbroker.h): prints its bootstrap list as the first line of stdout and runs until
 * SIGINT or SIGTERM. Not for production data: everything lives in memory. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/cmd/args.h"
#include "daemon/cmd/cmds.h"
#include "daemon/kafka/mockbroker.h"
#include "daemon/pipeline/log.h"
#include "nn/base/tc_err.h"

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: tickcast broker [--topics NAME[:PARTITIONS],...] [--port P] [--rtt MS]\n"
      "                       [--no-leader NAME,...] [--fail-requests API:ERROR[:N],...]\n"
      "                       [--commands FILE] [--log-level L]\n"
      "\n"
      "An embedded development Kafka broker (librdkafka's in-memory mock cluster, one broker\n"
      "on 127.0.0.1). Prints its bootstrap list (127.0.0.1:PORT) as the first line of stdout,\n"
      "logs to stderr, runs until SIGINT or SIGTERM, then exits 0.\n"
      "\n"
      "  --topics LIST     topics to create, e.g. ticks:8,predictions:8 (default: none; topics\n"
      "                    that clients auto-create get %d partitions)\n"
      "  --port P          listen on 127.0.0.1:P (default 0: any free port)\n"
      "  --rtt MS          delay every response by MS milliseconds (default 0), to test slow\n"
      "                    networks and delivery timeouts\n"
      "  --no-leader LIST  topics whose partitions have no leader (one partition if not in\n"
      "                    --topics): clients wait for one, so messages produced to them fail\n"
      "                    once message.timeout.ms passes; to test outputs that never get through\n"
      "  --fail-requests LIST\n"
      "                    answer the next N (default 1) requests of a Kafka API, from any\n"
      "                    client, with an error: API is the request's name (Produce, Fetch,\n"
      "                    ListOffsets, Metadata, OffsetCommit, OffsetFetch, FindCoordinator,\n"
      "                    JoinGroup, Heartbeat, LeaveGroup, SyncGroup, ApiVersions,\n"
      "                    InitProducerId) or key, ERROR librdkafka's name of a Kafka error\n"
      "                    (NOT_COORDINATOR; _TRANSPORT drops the connection; NO_ERROR lets\n"
      "                    one through, so Fetch:NO_ERROR,Fetch:UNKNOWN fails the\n"
      "                    second fetch); items apply in order; e.g.\n"
      "                    InitProducerId:CLUSTER_AUTHORIZATION_FAILED fails the first\n"
      "                    idempotent producer for good; to test clients against a broker in\n"
      "                    trouble\n"
      "  --commands FILE   read commands while running, one a line, from FILE (a FIFO, read\n"
      "                    until the broker stops, or a file; '-': standard input):\n"
      "                    'fail-requests LIST' queues failures as the flag does,\n"
      "                    'clear-requests API,...' drops those still queued for those\n"
      "                    APIs, 'rtt MS' delays responses from then on as --rtt does; a\n"
      "                    bad line is logged and skipped\n"
      "  --log-level L     error, warn, info (default) or debug\n"
      "\n"
      "Limits of the mock: each partition keeps a bounded log (older batches are dropped), and\n"
      "offsets-for-times (ListOffsets by timestamp) is not implemented.\n",
      MOCKBROKER_AUTO_PARTITIONS);
}

/* Makes every topic of the comma-separated list leader-less; 0, or -1 with err. */
static int set_no_leader(mockbroker *mb, const char *list, char *err, size_t errlen) {
  char name[256];
  for (const char *p = list; *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == 0 || len >= sizeof name) {
      snprintf(err, errlen, "--no-leader %s: expected topic names separated by ','", list);
      return -1;
    }
    memcpy(name, p, len);
    name[len] = 0;
    int n = mockbroker_set_no_leader(mb, name, err, errlen);
    if (n < 0)
      return -1;
    log_info("broker", "topic %s: %d partitions without a leader", name, n);
    p = e ? e + 1 : p + len;
  }
  return 0;
}

/* --commands: a thread reads lines from a file while the broker runs. The broker is stopped under
 * `lock` (mb set to NULL first), so a command never reaches a destroyed cluster; the thread is not
 * joined (it may be blocked in open or read), the process ends with it. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static mockbroker *cmd_mb;

/* 'rtt MS': MS is 0..600000; returns it, or -1 (err says why). */
static int parse_rtt(const char *spec, char *err, size_t errlen) {
  char *end;
  errno = 0;
  long ms = strtol(spec, &end, 10);
  if (end == spec || *end || errno || ms < 0 || ms > 600000) {
    snprintf(err, errlen, "rtt '%s': expected milliseconds 0..600000", spec);
    return -1;
  }
  return (int)ms;
}

/* One line of FILE (its number lineno): "fail-requests LIST", "clear-requests LIST", "rtt MS",
 * blank, or a '#' comment. */
static void command(const char *path, unsigned lineno, char *line) {
  size_t n = strlen(line);
  while (n > 0 &&
         (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
    line[--n] = 0;
  char *p = line + strspn(line, " \t");
  if (!*p || *p == '#')
    return;
  size_t vl = strcspn(p, " \t");
  int is_fail = vl == 13 && !strncmp(p, "fail-requests", vl);
  int is_clear = vl == 14 && !strncmp(p, "clear-requests", vl);
  int is_rtt = vl == 3 && !strncmp(p, "rtt", vl);
  if ((!is_fail && !is_clear && !is_rtt) || !p[vl]) {
    log_error("broker",
              "--commands %s:%u: '%s': unknown (expected 'fail-requests API:ERROR[:N],...', "
              "'clear-requests API,...' or 'rtt MS')",
              path, lineno, p);
    return;
  }
  const char *spec = p + vl + strspn(p + vl, " \t");
  char err[512];
  int k = -1;
  pthread_mutex_lock(&lock);
  if (is_rtt) {
    k = parse_rtt(spec, err, sizeof err);
    if (k >= 0 && cmd_mb)
      mockbroker_set_rtt(cmd_mb, k);
  } else if (is_clear) { /* checked whole before anything is cleared */
    k = cmd_mb && mockbroker_clear_requests(NULL, spec, err, sizeof err) >= 0
            ? mockbroker_clear_requests(cmd_mb, spec, err, sizeof err)
            : -1;
  } else {
    k = cmd_mb && mockbroker_fail_requests(NULL, spec, err, sizeof err) >= 0
            ? mockbroker_fail_requests(cmd_mb, spec, err, sizeof err)
            : -1;
  }
  int stopping = !cmd_mb;
  pthread_mutex_unlock(&lock);
  if (stopping)
    return;
  if (k < 0)
    log_error("broker", "--commands %s:%u: %s", path, lineno, err);
  else if (is_rtt)
    log_info("broker", "responses delayed by %d ms", k);
  else if (is_clear)
    log_info("broker", "queued failures dropped: %s", spec);
  else
    log_info("broker", "%d requests will fail: %s", k, spec);
}

static void *commands(void *arg) {
  const char *path = arg;
  struct stat st;
  int fifo = strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISFIFO(st.st_mode);
  /* A FIFO is opened for writing too: with a write end of its own open, its reads never see the
   * end of the file between two writers (a reopen there would lose a writer that came in between),
   * so it is read until the broker stops. */
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, fifo ? "r+" : "r");
  if (!f) {
    log_error("broker", "--commands %s: %s; no more commands", path, strerror(errno));
    return NULL;
  }
  char line[4096];
  unsigned lineno = 0;
  while (fgets(line, sizeof line, f))
    command(path, ++lineno, line);
  if (f != stdin)
    fclose(f);
  return NULL;
}

int cmd_broker(int argc, char **argv) {
  const char *topics = NULL, *no_leader = NULL, *fail = NULL, *cmds = NULL;
  int port = 0, rtt = 0;
  const args_flag flags[] = {
      {"topics", ARGS_STR, .dst = &topics},
      {"port", ARGS_INT, .dst = &port, .unit = "an integer", .lo = 0, .hi = 65535},
      {"rtt", ARGS_INT, .dst = &rtt, .unit = "milliseconds", .lo = 0, .hi = 600000},
      {"no-leader", ARGS_STR, .dst = &no_leader},
      {"fail-requests", ARGS_STR, .dst = &fail},
      {"commands", ARGS_STR, .dst = &cmds},
      ARGS_LOG_LEVEL,
  };
  const args_cmd c = {.name = "broker",
                      .flags = flags,
                      .nflags = (int)(sizeof flags / sizeof flags[0]),
                      .usage = usage};
  char err[512];
  int status = args_parse_cmd(&c, argc, argv);
  if (status >= 0 || (status = args_kafka_load("broker")) >= 0)
    return status;
  if (fail && mockbroker_fail_requests(NULL, fail, err, sizeof err) < 0) {
    fprintf(stderr, "tickcast broker: %s\n", err);
    return 2;
  }
  if (cmds && strcmp(cmds, "-") != 0) {
    struct stat cst;
    const char *why = stat(cmds, &cst) != 0     ? strerror(errno)
                      : S_ISDIR(cst.st_mode)    ? "is a directory"
                      : access(cmds, R_OK) != 0 ? strerror(errno)
                                                : NULL;
    if (why) {
      fprintf(stderr,
              "tickcast broker: --commands %s: %s (expected a readable FIFO or file, or -)\n", cmds,
              why);
      return 2;
    }
  }

  /* Block the stop signals before librdkafka starts its threads (they inherit the mask), so only
   * sigwait below sees them. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  mockbroker *mb;
  int rc = mockbroker_start(&mb, port, topics, err, sizeof err);
  if (rc == 0 && rtt)
    mockbroker_set_rtt(mb, rtt);
  if (rc == 0 && no_leader && set_no_leader(mb, no_leader, err, sizeof err) < 0) {
    mockbroker_stop(mb);
    rc = TC_EUSAGE;
  }
  if (rc == 0 && fail) {
    int n = mockbroker_fail_requests(mb, fail, err, sizeof err);
    log_info("broker", "%d requests will fail: %s", n, fail);
  }
  if (rc < 0) {
    fprintf(stderr, "tickcast broker: %s\n", err);
    return rc == TC_EUSAGE ? 2 : 1;
  }
  printf("%s\n", mockbroker_bootstraps(mb));
  fflush(stdout);

  log_info("broker", "listening on %s, topics %s", mockbroker_bootstraps(mb),
           topics && *topics ? topics : "(none; auto-created on use)");
  cmd_mb = mb;
  pthread_t ct;
  if (cmds && pthread_create(&ct, NULL, commands, (void *)cmds) == 0)
    pthread_detach(ct);
  int sig = 0;
  sigwait(&stop, &sig);
  log_info("broker", "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  pthread_mutex_lock(&lock);
  cmd_mb = NULL;
  pthread_mutex_unlock(&lock);
  mockbroker_stop(mb);
  return 0;
}
