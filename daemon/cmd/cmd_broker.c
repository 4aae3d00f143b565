/* cmd_broker.c: `tickcast broker`, an embedded development Kafka broker (librdkafka's mock
 * cluster, see mockbroker.h): prints its bootstrap list as the first line of stdout and runs until
 * SIGINT or SIGTERM. Not for production data: everything lives in memory. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cmd/cmds.h"
#include "daemon/kafka/mockbroker.h"
#include "daemon/pipeline/log.h"
#include "nn/base/tc_err.h"

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: tickcast broker [--topics NAME[:PARTITIONS],...] [--port P] [--rtt MS]\n"
      "                       [--no-leader NAME,...] [--log-level L]\n"
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
      "  --log-level L     error, warn, info (default) or debug\n"
      "\n"
      "Limits of the mock: each partition keeps a bounded log (older batches are dropped), and\n"
      "offsets-for-times (ListOffsets by timestamp) is not implemented.\n",
      MOCKBROKER_AUTO_PARTITIONS);
}

/* Parses v as an integer in 0..max for flag; 0, or -1 after printing "FLAG V: expected WHAT". */
static int parse_flag_int(const char *flag, const char *v, long max, const char *what, int *out) {
  char *end;
  long x = strtol(v, &end, 10);
  if (!*v || *end || x < 0 || x > max) {
    fprintf(stderr, "tickcast broker: %s %s: expected %s\n", flag, v, what);
    return -1;
  }
  *out = (int)x;
  return 0;
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

int cmd_broker(int argc, char **argv) {
  const char *topics = NULL, *no_leader = NULL;
  int port = 0, rtt = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc || (strcmp(a, "--topics") && strcmp(a, "--port") && strcmp(a, "--rtt") &&
                          strcmp(a, "--no-leader") && strcmp(a, "--log-level"))) {
      fprintf(stderr, "tickcast broker: %s '%s' (see tickcast broker --help)\n",
              i + 1 >= argc && a[0] == '-' ? "missing value for" : "unknown argument", a);
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(a, "--topics")) {
      topics = v;
    } else if (!strcmp(a, "--port")) {
      if (parse_flag_int(a, v, 65535, "an integer 0..65535", &port))
        return 2;
    } else if (!strcmp(a, "--rtt")) {
      if (parse_flag_int(a, v, 600000, "milliseconds 0..600000", &rtt))
        return 2;
    } else if (!strcmp(a, "--no-leader")) {
      no_leader = v;
    } else {
      int lv = log_level_parse(v);
      if (lv < 0) {
        fprintf(stderr, "tickcast broker: --log-level %s: expected error, warn, info or debug\n",
                v);
        return 2;
      }
      log_level = lv;
    }
  }

  /* Block the stop signals before librdkafka starts its threads (they inherit the mask), so only
   * sigwait below sees them. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  char err[512];
  mockbroker *mb;
  int rc = mockbroker_start(&mb, port, topics, err, sizeof err);
  if (rc == 0 && rtt)
    mockbroker_set_rtt(mb, rtt);
  if (rc == 0 && no_leader && set_no_leader(mb, no_leader, err, sizeof err) < 0) {
    mockbroker_stop(mb);
    rc = TC_EUSAGE;
  }
  if (rc < 0) {
    fprintf(stderr, "tickcast broker: %s\n", err);
    return rc == TC_EUSAGE ? 2 : 1;
  }
  printf("%s\n", mockbroker_bootstraps(mb));
  fflush(stdout);
  log_info("broker", "listening on %s, topics %s", mockbroker_bootstraps(mb),
           topics && *topics ? topics : "(none; auto-created on use)");
  int sig = 0;
  sigwait(&stop, &sig);
  log_info("broker", "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  mockbroker_stop(mb);
  return 0;
}
