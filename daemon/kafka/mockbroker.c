/* mockbroker.c: librdkafka's mock cluster behind a small start/stop interface (see mockbroker.h).
 * Not for production use: the mock is librdkafka's experimental in-memory test broker. */
#include "daemon/kafka/mockbroker.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "daemon/kafka/kconf.h"
#include "daemon/kafka/tcprelay.h"
#include "daemon/pipeline/log.h"
#include "nn/base/tc_err.h"

struct mockbroker {
  rd_kafka_t *rk;                    /* the handle the cluster lives on (a producer, unused) */
  rd_kafka_mock_cluster_t *mcluster; /* the cluster: one broker */
  tcprelay *relay;                   /* the fixed port's relay to the mock's port, or NULL */
  char relay_addr[32];               /* "127.0.0.1:PORT" of the relay */
};

/* The decimal number s[0..len) (digits only, at least one) if it is at most max, else -1. */
static long digits(const char *s, size_t len, long max) {
  long v = len > 0 ? 0 : -1;
  for (size_t i = 0; i < len && v >= 0; i++)
    v = !isdigit((unsigned char)s[i]) ? -1 : v > max ? v : v * 10 + (s[i] - '0');
  return v <= max ? v : -1;
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
    long v = digits(colon + 1, len - nl - 1, 100000);
    if (v < 1) {
      snprintf(err, errlen, "--topics %.*s: partitions must be 1..100000, found '%.*s'", (int)len,
               s, (int)(len - nl - 1), colon + 1);
      return TC_EUSAGE;
    }
    *parts = (int)v;
  }
  return 0;
}

/* The next "name[:N]" item of the topics spec at *p (advancing *p past it): 1 with name and
 * *parts filled, 0 at the end of the spec, or TC_EUSAGE with err. */
static int topics_next(const char **p, char *name, size_t namecap, int *parts, char *err,
                       size_t errlen) {
  if (!*p || !**p)
    return 0;
  const char *e = strchr(*p, ',');
  size_t len = e ? (size_t)(e - *p) : strlen(*p);
  int rc = topic_parse(*p, len, name, namecap, parts, err, errlen);
  *p = e ? e + 1 : *p + len;
  return rc < 0 ? rc : 1;
}

/* Checks the port and the whole topics spec, before anything starts. */
static int args_check(int port, const char *topics, char *err, size_t errlen) {
  if (port < 0 || port > 65535) {
    snprintf(err, errlen, "--port %d: expected 0..65535 (0 = any free port)", port);
    return TC_EUSAGE;
  }
  char name[256];
  int parts, rc;
  while ((rc = topics_next(&topics, name, sizeof name, &parts, err, errlen)) > 0)
    ;
  return rc;
}

/* Starts the mock cluster of one broker on 127.0.0.1, port 0 (librdkafka 2.0.2's mock cannot
 * take another), on a client handle of its own. */
static int cluster_start(mockbroker *mb, char *err, size_t errlen) {
  /* The cluster's own client never connects anywhere: keep its notices (such as "no
   * bootstrap.servers configured") out of the log unless debugging. */
  const char *defaults[] = {"client.id", "tickcast-broker", "log_level",
                            log_level >= LOG_DEBUG ? "7" : "4", NULL};
  rd_kafka_conf_t *conf;
  int rc = kconf_build(NULL, defaults, &conf, err, errlen);
  if (rc < 0)
    return rc;
  char rerr[512];
  mb->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rerr, sizeof rerr);
  if (!mb->rk) {
    rd_kafka_conf_destroy(conf);
    snprintf(err, errlen, "mock broker: cannot create its client: %s", rerr);
    return TC_EKAFKA;
  }
  mb->mcluster = rd_kafka_mock_cluster_new(mb->rk, 1);
  if (!mb->mcluster) {
    snprintf(err, errlen, "mock broker: librdkafka could not start the mock cluster");
    return TC_EKAFKA;
  }
  return 0;
}

static int topics_create(mockbroker *mb, const char *topics, char *err, size_t errlen) {
  char name[256];
  int parts, rc;
  while ((rc = topics_next(&topics, name, sizeof name, &parts, err, errlen)) > 0) {
    rd_kafka_resp_err_t kerr = rd_kafka_mock_topic_create(mb->mcluster, name, parts, 1);
    if (kerr) {
      snprintf(err, errlen, "mock broker: cannot create topic %s with %d partitions: %s", name,
               parts, rd_kafka_err2str(kerr));
      return TC_EKAFKA;
    }
  }
  return rc;
}

/* A fixed port: a relay on 127.0.0.1:port to the port the mock bound. The mock's metadata
 * still names its own port, so clients bootstrap through the relay and then connect to the
 * mock directly, as Kafka clients do with any bootstrap address. */
static int relay_start(mockbroker *mb, int port, char *err, size_t errlen) {
  const char *own = rd_kafka_mock_cluster_bootstraps(mb->mcluster); /* "127.0.0.1:PORT" */
  const char *colon = strrchr(own, ':');
  char rerr[256];
  int rc = tcprelay_start(&mb->relay, port, colon ? atoi(colon + 1) : 0, rerr, sizeof rerr);
  if (rc < 0) {
    snprintf(err, errlen, "--port %d: %s", port, rerr);
    return rc;
  }
  snprintf(mb->relay_addr, sizeof mb->relay_addr, "127.0.0.1:%d", tcprelay_port(mb->relay));
  return 0;
}

int mockbroker_start(mockbroker **out, int port, const char *topics, char *err, size_t errlen) {
  *out = NULL;
  int rc = args_check(port, topics, err, errlen);
  if (rc < 0)
    return rc;
  mockbroker *mb = calloc(1, sizeof *mb);
  if (!mb) {
    snprintf(err, errlen, "mock broker: out of memory");
    return TC_ENOMEM;
  }
  if ((rc = cluster_start(mb, err, errlen)) < 0 ||
      (rc = topics_create(mb, topics, err, errlen)) < 0 ||
      (port > 0 && (rc = relay_start(mb, port, err, errlen)) < 0)) {
    mockbroker_stop(mb);
    return rc;
  }
  *out = mb;
  return 0;
}

const char *mockbroker_bootstraps(const mockbroker *mb) {
  return mb->relay ? mb->relay_addr : rd_kafka_mock_cluster_bootstraps(mb->mcluster);
}

void mockbroker_stop(mockbroker *mb) {
  if (!mb)
    return;
  tcprelay_stop(mb->relay);
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

/* Kafka protocol request names accepted by --fail-requests (Kafka's own names for the APIs). */
static const struct {
  const char *name;
  int16_t key;
} api_names[] = {{"Produce", 0},          {"Fetch", 1},        {"ListOffsets", 2},
                 {"Metadata", 3},         {"OffsetCommit", 8}, {"OffsetFetch", 9},
                 {"FindCoordinator", 10}, {"JoinGroup", 11},   {"Heartbeat", 12},
                 {"LeaveGroup", 13},      {"SyncGroup", 14},   {"ApiVersions", 18},
                 {"InitProducerId", 22}};

/* The API key of a name of api_names or a number 0..32767; -1 if neither. */
static int api_key(const char *s, size_t len) {
  for (size_t i = 0; i < sizeof api_names / sizeof api_names[0]; i++)
    if (strlen(api_names[i].name) == len && strncasecmp(api_names[i].name, s, len) == 0)
      return api_names[i].key;
  return (int)digits(s, len, 32767);
}

/* Finds librdkafka's name of a Kafka error (NOT_COORDINATOR: rd_kafka_get_err_descs, any case;
 * NO_ERROR lets a request through) or _TRANSPORT (the mock drops the connection; librdkafka's
 * other local errors, negative codes, mean nothing in a response): 0 with *code, or -1. */
static int err_code(const char *s, size_t len, rd_kafka_resp_err_t *code) {
  const struct rd_kafka_err_desc *d;
  size_t n;
  rd_kafka_get_err_descs(&d, &n);
  for (size_t i = 0; i < n; i++)
    if (d[i].name && strlen(d[i].name) == len && strncasecmp(d[i].name, s, len) == 0 &&
        (d[i].code > RD_KAFKA_RESP_ERR__END || d[i].code == RD_KAFKA_RESP_ERR__TRANSPORT)) {
      *code = d[i].code;
      return 0;
    }
  return -1;
}

/* Parses one "API:ERROR[:COUNT]" item; fills *key, *code, *count, or TC_EUSAGE with err. */
static int fail_parse(const char *s, size_t len, int *key, rd_kafka_resp_err_t *code, int *count,
                      char *err, size_t errlen) {
  const char *c1 = memchr(s, ':', len);
  const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - s)) : NULL;
  const char *end = s + len;
  if (!c1) {
    snprintf(err, errlen,
             "--fail-requests %.*s: expected API:ERROR[:COUNT], e.g. "
             "Fetch:NOT_LEADER_FOR_PARTITION:3",
             (int)len, s);
    return TC_EUSAGE;
  }
  if ((*key = api_key(s, (size_t)(c1 - s))) < 0) {
    snprintf(err, errlen,
             "--fail-requests %.*s: unknown request '%.*s' (expected a Kafka API "
             "name such as Produce, Fetch, InitProducerId, or its key 0..32767)",
             (int)len, s, (int)(c1 - s), s);
    return TC_EUSAGE;
  }
  const char *e = c1 + 1, *ee = c2 ? c2 : end;
  if (err_code(e, (size_t)(ee - e), code) < 0) {
    snprintf(err, errlen,
             "--fail-requests %.*s: unknown error '%.*s' (expected librdkafka's "
             "name of a Kafka error, such as NOT_COORDINATOR, _TRANSPORT to drop "
             "the connection, or NO_ERROR to let a request through)",
             (int)len, s, (int)(ee - e), e);
    return TC_EUSAGE;
  }
  *count = 1;
  if (c2) {
    long v = digits(c2 + 1, (size_t)(end - c2 - 1), 100000);
    if (v < 1) {
      snprintf(err, errlen, "--fail-requests %.*s: count must be 1..100000, found '%.*s'", (int)len,
               s, (int)(end - c2 - 1), c2 + 1);
      return TC_EUSAGE;
    }
    *count = (int)v;
  }
  return 0;
}

/* The next item of a ','-separated list at *p: its length, *p moved past it and its ','; -1 at
 * the end of the list. *p starts at the list; an empty list, or an empty item, has length 0. */
static long next_item(const char **p, const char **item) {
  if (!*p)
    return -1;
  const char *e = strchr(*p, ',');
  size_t len = e ? (size_t)(e - *p) : strlen(*p);
  *item = *p;
  *p = e ? e + 1 : NULL;
  return (long)len;
}

int mockbroker_clear_requests(mockbroker *mb, const char *list, char *err, size_t errlen) {
  int n = 0;
  const char *p = list, *it;
  for (long len; (len = next_item(&p, &it)) >= 0; n++) {
    if (len == 0) {
      snprintf(err, errlen,
               "clear-requests '%s': an empty item (expected Kafka API names separated by ',')",
               list);
      return TC_EUSAGE;
    }
    int key = api_key(it, (size_t)len);
    if (key < 0) {
      snprintf(err, errlen,
               "clear-requests %s: unknown request '%.*s' (expected Kafka API names such as "
               "Fetch or Produce, or their keys 0..32767, separated by ',')",
               list, (int)len, it);
      return TC_EUSAGE;
    }
    if (mb)
      rd_kafka_mock_clear_request_errors(mb->mcluster, (int16_t)key);
  }
  return n;
}

int mockbroker_fail_requests(mockbroker *mb, const char *spec, char *err, size_t errlen) {
  int fails = 0;
  const char *p = spec, *it;
  for (long len; (len = next_item(&p, &it)) >= 0;) {
    if (len == 0) {
      snprintf(err, errlen,
               "--fail-requests '%s': an empty item (expected API:ERROR[:COUNT] items separated "
               "by ',')",
               spec);
      return TC_EUSAGE;
    }
    int key, count;
    rd_kafka_resp_err_t code;
    if (fail_parse(it, (size_t)len, &key, &code, &count, err, errlen) < 0)
      return TC_EUSAGE;
    for (int i = 0; mb && i < count; i++)
      rd_kafka_mock_push_request_errors_array(mb->mcluster, (int16_t)key, 1, &code);
    fails += code != RD_KAFKA_RESP_ERR_NO_ERROR ? count : 0;
  }
  return fails;
}
