/* mockbroker.c: librdkafka's mock cluster behind a small start/stop interface (see mockbroker.h).
 * Not for production use: the mock is librdkafka's experimental in-memory test broker. */
#include "daemon/kafka/mockbroker.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "daemon/kafka/kconf.h"
#include "daemon/pipeline/log.h"
#include "nn/base/tc_err.h"

struct mockbroker {
  rd_kafka_t *rk;                    /* the handle the cluster lives on (a producer, unused) */
  rd_kafka_mock_cluster_t *mcluster; /* the cluster: one broker */
};

/* A fixed port. librdkafka 2.0.2's mock broker always binds 127.0.0.1 port 0 and has no option
 * for a port, and the port it advertises in metadata is the one it bound, so a TCP relay on the
 * wanted port would not be enough. Instead this file interposes bind(): while want_port is set
 * (only inside mockbroker_start, under want_lock), the first bind of an IPv4 loopback socket to
 * port 0 is rewritten to want_port. Every other bind in the process goes straight to libc. */
static pthread_mutex_t want_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int want_port;  /* 0 = no rewrite */
static volatile int want_errno; /* errno of the rewritten bind, when it failed */

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static bind_fn real;
  if (!real)
    real = (bind_fn)dlsym(RTLD_NEXT, "bind");
  if (!real) {
    errno = ENOSYS;
    return -1;
  }
  int port = want_port;
  if (port > 0 && addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in sin;
    memcpy(&sin, addr, sizeof sin);
    if (sin.sin_port == 0 && sin.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
      want_port = 0;
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sin.sin_port = htons((uint16_t)port);
      int r = real(fd, (const struct sockaddr *)&sin, sizeof sin);
      if (r < 0)
        want_errno = errno;
      return r;
    }
  }
  return real(fd, addr, len);
}

/* Checks one "name[:N]" item of the topics spec; fills name (NUL-terminated) and *parts. */
static int topic_parse(const char *s, size_t len, char *name, size_t namecap, int *parts, char *err,
                       size_t errlen) {
  const char *colon = memchr(s, ':', len);
  size_t nl = colon ? (size_t)(colon - s) : len;
  if (nl == 0 || nl > 249 || nl >= namecap) {
    snprintf(err, errlen, "--topics %.*s: topic name must be 1..249 bytes, found %zu", (int)len, s,
             nl);
    return TC_EUSAGE;
  }
  for (size_t i = 0; i < nl; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-') {
      snprintf(err, errlen,
               "--topics %.*s: topic name has '%c' (expected letters, digits, '.', '_', '-')",
               (int)len, s, s[i]);
      return TC_EUSAGE;
    }
  memcpy(name, s, nl);
  name[nl] = 0;
  *parts = MOCKBROKER_AUTO_PARTITIONS;
  if (colon) {
    long v = 0;
    size_t i = nl + 1;
    if (i == len)
      v = -1;
    for (; i < len && v >= 0; i++)
      v = isdigit((unsigned char)s[i]) && v < 1000000 ? v * 10 + (s[i] - '0') : -1;
    if (v < 1 || v > 100000) {
      snprintf(err, errlen, "--topics %.*s: partitions must be 1..100000, found '%.*s'", (int)len,
               s, (int)(len - nl - 1), colon + 1);
      return TC_EUSAGE;
    }
    *parts = (int)v;
  }
  return 0;
}

int mockbroker_start(mockbroker **out, int port, const char *topics, char *err, size_t errlen) {
  *out = NULL;
  if (port < 0 || port > 65535) {
    snprintf(err, errlen, "--port %d: expected 0..65535 (0 = any free port)", port);
    return TC_EUSAGE;
  }
  /* Check the whole topics spec before starting anything. */
  char name[256];
  int parts;
  for (const char *p = topics; p && *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    int r = topic_parse(p, len, name, sizeof name, &parts, err, errlen);
    if (r < 0)
      return r;
    p = e ? e + 1 : p + len;
  }

  /* librdkafka 2.0.2 asserts (aborts) when the mock cannot bind, so try the port first. */
  if (port > 0) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, e = 0;
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr = {.s_addr = htonl(INADDR_LOOPBACK)}};
    if (fd < 0)
      e = errno;
    else {
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
        e = errno;
      close(fd);
    }
    if (e) {
      snprintf(err, errlen, "--port %d: cannot listen on 127.0.0.1:%d: %s", port, port,
               strerror(e));
      return e == EADDRINUSE ? TC_EBUSY : TC_EKAFKA;
    }
  }

  mockbroker *mb = calloc(1, sizeof *mb);
  if (!mb) {
    snprintf(err, errlen, "mock broker: out of memory");
    return TC_ENOMEM;
  }
  /* The cluster's own client never connects anywhere: keep its notices (such as "no
   * bootstrap.servers configured") out of the log unless debugging. */
  const char *defaults[] = {"client.id", "tickcast-broker", "log_level",
                            log_level >= LOG_DEBUG ? "7" : "4", NULL};
  rd_kafka_conf_t *conf;
  int rc = kconf_build(NULL, defaults, &conf, err, errlen);
  if (rc < 0)
    goto fail;
  char rerr[512];
  mb->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rerr, sizeof rerr);
  if (!mb->rk) {
    rd_kafka_conf_destroy(conf);
    snprintf(err, errlen, "mock broker: cannot create its client: %s", rerr);
    rc = TC_EKAFKA;
    goto fail;
  }
  pthread_mutex_lock(&want_lock);
  want_port = port;
  want_errno = 0;
  mb->mcluster = rd_kafka_mock_cluster_new(mb->rk, 1);
  int berr = want_errno;
  want_port = 0;
  pthread_mutex_unlock(&want_lock);
  if (!mb->mcluster) {
    if (berr)
      snprintf(err, errlen, "--port %d: cannot listen on 127.0.0.1:%d: %s", port, port,
               strerror(berr));
    else
      snprintf(err, errlen, "mock broker: librdkafka could not start the mock cluster");
    rc = berr == EADDRINUSE ? TC_EBUSY : TC_EKAFKA;
    goto fail;
  }
  for (const char *p = topics; p && *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    topic_parse(p, len, name, sizeof name, &parts, err, errlen);
    rd_kafka_resp_err_t kerr = rd_kafka_mock_topic_create(mb->mcluster, name, parts, 1);
    if (kerr) {
      snprintf(err, errlen, "mock broker: cannot create topic %s with %d partitions: %s", name,
               parts, rd_kafka_err2str(kerr));
      rc = TC_EKAFKA;
      goto fail;
    }
    p = e ? e + 1 : p + len;
  }
  *out = mb;
  return 0;
fail:
  mockbroker_stop(mb);
  return rc;
}

const char *mockbroker_bootstraps(const mockbroker *mb) {
  return rd_kafka_mock_cluster_bootstraps(mb->mcluster);
}

void mockbroker_stop(mockbroker *mb) {
  if (!mb)
    return;
  if (mb->mcluster)
    rd_kafka_mock_cluster_destroy(mb->mcluster);
  if (mb->rk)
    rd_kafka_destroy(mb->rk);
  free(mb);
}

void mockbroker_set_rtt(mockbroker *mb, int ms) {
  rd_kafka_mock_broker_set_rtt(mb->mcluster, 1, ms);
}

int mockbroker_set_no_leader(mockbroker *mb, const char *topic, char *err, size_t errlen) {
  char name[256];
  int parts;
  size_t len = strlen(topic);
  if (topic_parse(topic, len, name, sizeof name, &parts, err, errlen) < 0 || strchr(topic, ':')) {
    snprintf(err, errlen, "--no-leader %s: expected a topic name of [A-Za-z0-9._-]", topic);
    return -1;
  }
  /* The mock has no call that tells a topic's partition count: set partition 0, 1, ... until it
   * answers that the partition does not exist. */
  int n = 0;
  rd_kafka_resp_err_t kerr;
  while (!(kerr = rd_kafka_mock_partition_set_leader(mb->mcluster, name, n, -1)))
    n++;
  if (n == 0) {
    snprintf(err, errlen, "--no-leader %s: cannot change the topic's leader: %s", name,
             rd_kafka_err2str(kerr));
    return -1;
  }
  return n;
}
