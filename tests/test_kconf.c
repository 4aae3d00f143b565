/* test_kconf.c: the common Kafka flags, the config file and the conf they build (daemon/kconf.h):
 * precedence (defaults < file < -X, --brokers beats the file), error lines that quote the key, the
 * value, the file:line and librdkafka's message, and never a value that may be a secret: not that
 * of a property librdkafka does not know (sasl.pasword=... is a mistyped sasl.password), not that
 * of a password, key or token property, not a config line or -X argument without '='. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "daemon/kafka/kconf.h"
#include "nn/base/tc_err.h"

static const char *get(rd_kafka_conf_t *c, const char *k, char *buf, size_t cap) {
  size_t n = cap;
  if (rd_kafka_conf_get(c, k, buf, &n) != RD_KAFKA_CONF_OK)
    return "(unset)";
  return buf;
}

static int parse(kconf *kc, int argc, char **argv, char *err, size_t errlen) {
  for (int i = 0; i < argc;) {
    int r = kconf_arg(kc, argc, argv, &i, err, errlen);
    if (r < 0)
      return r;
    if (r == 0)
      i++;
  }
  return 0;
}

/* kconf_cooperative: the protocol of a consumer configuration's assignors. */
static int coop_of(const char *strategy) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  char e[256];
  if (strategy && rd_kafka_conf_set(c, "partition.assignment.strategy", strategy, e, sizeof e) !=
                      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(c);
    return -1;
  }
  int r = kconf_cooperative(c);
  rd_kafka_conf_destroy(c);
  return r;
}

static void test_cooperative(void) {
  CHECK_INT(coop_of(NULL), 0); /* the default: range,roundrobin */
  CHECK_INT(coop_of("range"), 0);
  CHECK_INT(coop_of("roundrobin"), 0);
  CHECK_INT(coop_of("range,roundrobin"), 0);
  CHECK_INT(coop_of("cooperative-sticky"), 1);
  CHECK_INT(coop_of(" cooperative-sticky "), 1);
  CHECK_INT(kconf_cooperative(NULL), 0);
  /* The consumer's own configuration (rd_kafka_conf), which the rebalance callback reads. */
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  char e[256];
  CHECK_INT(
      rd_kafka_conf_set(c, "partition.assignment.strategy", "cooperative-sticky", e, sizeof e),
      RD_KAFKA_CONF_OK);
  CHECK_INT(rd_kafka_conf_set(c, "group.id", "g", e, sizeof e), RD_KAFKA_CONF_OK);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof e);
  CHECK(rk != NULL);
  if (rk) {
    CHECK_INT(kconf_cooperative(rd_kafka_conf(rk)), 1);
    rd_kafka_destroy(rk);
  }
}

/* kconf_offset_reset: each of librdkafka's names of auto.offset.reset, on a plain conf and on a
 * running consumer's (rd_kafka_conf), which keeps it in its default topic conf. */
static int reset_of(const char *v, int consumer) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  char e[256];
  if ((v && rd_kafka_conf_set(c, "auto.offset.reset", v, e, sizeof e) != RD_KAFKA_CONF_OK) ||
      rd_kafka_conf_set(c, "group.id", "g", e, sizeof e) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(c);
    return -2;
  }
  if (!consumer) {
    int r = kconf_offset_reset(c);
    rd_kafka_conf_destroy(c);
    return r;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof e);
  if (!rk)
    return -3;
  int r = kconf_offset_reset(rd_kafka_conf(rk));
  rd_kafka_destroy(rk);
  return r;
}

static void test_offset_reset(void) {
  for (int consumer = 0; consumer < 2; consumer++) {
    CHECK_INT(reset_of(NULL, consumer), 1); /* librdkafka's default: largest */
    CHECK_INT(reset_of("earliest", consumer), 0);
    CHECK_INT(reset_of("smallest", consumer), 0);
    CHECK_INT(reset_of("beginning", consumer), 0);
    CHECK_INT(reset_of("latest", consumer), 1);
    CHECK_INT(reset_of("largest", consumer), 1);
    CHECK_INT(reset_of("end", consumer), 1);
    CHECK_INT(reset_of("error", consumer), -1);
  }
  CHECK_INT(kconf_offset_reset(NULL), 1);
}

int main(void) {
  test_cooperative();
  test_offset_reset();
  char err[512], buf[256];
  char path[] = "/tmp/test_kconf_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fprintf(f, "# a comment\n\n  brokers = fromfile:9092 \nkafka.linger.ms=7\n"
             "kafka.client.id = file-id\ninput-topic=ticks2\n");
  fclose(f);

  /* Precedence: file < -X for properties; --brokers on the command line beats the file's. */
  kconf kc;
  kconf_init(&kc);
  char *argv1[] = {"--brokers", "cli:1",       "--config", path,
                   "-X",        "linger.ms=9", "--other",  "-Xacks=1"};
  CHECK_INT(parse(&kc, 8, argv1, err, sizeof err), 0);
  CHECK_STR(kc.brokers, "cli:1");
  CHECK_INT(kc.nprops, 4);
  CHECK_STR(kconf_flag(&kc, "input-topic"), "ticks2");
  CHECK(kconf_flag(&kc, "group") == NULL);
  const char *defs[] = {"linger.ms", "5", "client.id", "dflt", "queue.buffering.max.ms", "3", NULL};
  rd_kafka_conf_t *c = NULL;
  CHECK_INT(kconf_build(&kc, defs, &c, err, sizeof err), 0);
  CHECK(c != NULL);
  if (c) {
    CHECK_STR(get(c, "bootstrap.servers", buf, sizeof buf), "cli:1");
    CHECK_STR(get(c, "linger.ms", buf, sizeof buf), "9");
    CHECK_STR(get(c, "client.id", buf, sizeof buf), "file-id");
    CHECK_STR(get(c, "acks", buf, sizeof buf), "1");
    rd_kafka_conf_destroy(c);
  }
  const char *allowed[] = {"group", NULL};
  CHECK_INT(kconf_check_flags(&kc, allowed, err, sizeof err), TC_EUSAGE);
  CHECK_CONTAINS(err, ":6: unknown key 'input-topic'");
  CHECK_CONTAINS(err, "brokers, group");
  const char *allowed2[] = {"group", "input-topic", NULL};
  CHECK_INT(kconf_check_flags(&kc, allowed2, err, sizeof err), 0);
  kconf_free(&kc);
  kconf_free(&kc); /* double free is safe: kconf_free zeroes */
  kconf_free(NULL);

  /* Without --brokers the file's brokers apply. */
  kconf_init(&kc);
  char *argv2[] = {"--config=x"};
  argv2[0] = malloc(strlen(path) + 10);
  sprintf(argv2[0], "--config=%s", path);
  CHECK_INT(parse(&kc, 1, argv2, err, sizeof err), 0);
  CHECK_STR(kc.brokers, "fromfile:9092");
  free(argv2[0]);
  kconf_free(&kc);

  /* A bad -X property: the error names key, value and librdkafka's reason. */
  kconf_init(&kc);
  char *argv3[] = {"-X", "no.such.prop=3"};
  CHECK_INT(parse(&kc, 2, argv3, err, sizeof err), 0);
  CHECK_INT(kconf_build(&kc, NULL, &c, err, sizeof err), TC_EUSAGE);
  CHECK(c == NULL);
  CHECK_CONTAINS(err, "-X no.such.prop (value not shown): ");
  CHECK_CONTAINS(err, "No such configuration property");
  kconf_free(&kc);

  /* Secrets stay out of error lines: a mistyped secret's name, a secret's invalid value, a config
   * line without '=', an -X argument without '=' that is not a property name. */
  kconf_init(&kc);
  char *argv8[] = {"-X", "sasl.pasword=hunter2-in-X"};
  CHECK_INT(parse(&kc, 2, argv8, err, sizeof err), 0);
  CHECK_INT(kconf_build(&kc, NULL, &c, err, sizeof err), TC_EUSAGE);
  CHECK_CONTAINS(err, "sasl.pasword");
  CHECK(strstr(err, "hunter2") == NULL);
  kconf_free(&kc);
  CHECK(kconf_secret("sasl.password") && kconf_secret("ssl.key.password") &&
        kconf_secret("ssl.key.pem") && kconf_secret("sasl.oauthbearer.client.secret") &&
        kconf_secret("sasl.jaas.config") && !kconf_secret("linger.ms"));
  char *argv10[] = {"-X", "hunter2-alone"};
  kconf_init(&kc);
  CHECK_INT(parse(&kc, 2, argv10, err, sizeof err), TC_EUSAGE);
  CHECK_CONTAINS(err, "expected KEY=VALUE");
  CHECK(strstr(err, "hunter2") == NULL);
  kconf_free(&kc);
  f = fopen(path, "w");
  fprintf(f, "brokers=a:1\nkafka.sasl.password hunter2-in-file\nkafka.sasl.pasword=hunter2-typo\n");
  fclose(f);
  kconf_init(&kc);
  CHECK_INT(kconf_load_file(&kc, path, err, sizeof err), TC_EFORMAT);
  CHECK_CONTAINS(err, ":2: expected key=value");
  CHECK(strstr(err, "hunter2") == NULL);
  kconf_free(&kc);
  f = fopen(path, "w");
  fprintf(f, "brokers=a:1\nkafka.sasl.pasword=hunter2-typo\n");
  fclose(f);
  kconf_init(&kc);
  CHECK_INT(kconf_load_file(&kc, path, err, sizeof err), 0);
  CHECK_INT(kconf_build(&kc, NULL, &c, err, sizeof err), TC_EUSAGE);
  CHECK_CONTAINS(err, ":2: kafka.sasl.pasword (value not shown): ");
  CHECK(strstr(err, "hunter2") == NULL);
  kconf_free(&kc);

  /* A bad value. */
  kconf_init(&kc);
  char *argv4[] = {"-X", "acks=seven"};
  CHECK_INT(parse(&kc, 2, argv4, err, sizeof err), 0);
  CHECK_INT(kconf_build(&kc, NULL, &c, err, sizeof err), TC_EUSAGE);
  CHECK_CONTAINS(err, "-X acks=seven: ");
  CHECK_CONTAINS(err, "acks");
  kconf_free(&kc);

  /* -X without '=' and flags without values are usage errors. */
  kconf_init(&kc);
  char *argv5[] = {"-X", "linger.ms"};
  CHECK_INT(parse(&kc, 2, argv5, err, sizeof err), TC_EUSAGE);
  CHECK_CONTAINS(err, "-X linger.ms: expected KEY=VALUE");
  char *argv6[] = {"--brokers"};
  CHECK_INT(parse(&kc, 1, argv6, err, sizeof err), TC_EUSAGE);
  CHECK_CONTAINS(err, "--brokers: missing value");
  /* --brokersX is not --brokers. */
  char *argv7[] = {"--brokersX"};
  int i = 0;
  CHECK_INT(kconf_arg(&kc, 1, argv7, &i, err, sizeof err), 0);
  CHECK_INT(i, 0);
  kconf_free(&kc);

  /* A bad property in the file: the error quotes file:line. */
  f = fopen(path, "w");
  fprintf(f, "brokers=a:1\n# x\nkafka.compression.codec=zzz\n");
  fclose(f);
  kconf_init(&kc);
  CHECK_INT(kconf_load_file(&kc, path, err, sizeof err), 0);
  CHECK_INT(kconf_build(&kc, NULL, &c, err, sizeof err), TC_EUSAGE);
  snprintf(buf, sizeof buf, "%s:3: kafka.compression.codec=zzz: ", path);
  CHECK_CONTAINS(err, buf);
  kconf_free(&kc);

  /* Malformed lines. */
  f = fopen(path, "w");
  fprintf(f, "brokers=a:1\njust words\n");
  fclose(f);
  kconf_init(&kc);
  CHECK_INT(kconf_load_file(&kc, path, err, sizeof err), TC_EFORMAT);
  snprintf(buf, sizeof buf, "%s:2: expected key=value, found a line without '='", path);
  CHECK_CONTAINS(err, buf);
  CHECK(strstr(err, "just words") == NULL);
  kconf_free(&kc);
  f = fopen(path, "w");
  fprintf(f, "--group=x\n");
  fclose(f);
  kconf_init(&kc);
  CHECK_INT(kconf_load_file(&kc, path, err, sizeof err), TC_EFORMAT);
  CHECK_CONTAINS(err, ":1: key '--group' has a leading '--'");
  kconf_free(&kc);
  unlink(path);
  kconf_init(&kc);
  CHECK_INT(kconf_load_file(&kc, path, err, sizeof err), TC_ENOENT);
  CHECK_CONTAINS(err, "cannot open: No such file");
  kconf_free(&kc);

  /* Integer lists. */
  int32_t v[4];
  CHECK_INT(kconf_parse_int_list("--partitions", "0,3,12", v, 4, err, sizeof err), 3);
  CHECK_INT(v[2], 12);
  CHECK_INT(kconf_parse_int_list("--partitions", "0,,1", v, 4, err, sizeof err), TC_EUSAGE);
  CHECK_CONTAINS(err, "--partitions 0,,1: bad item");
  CHECK_INT(kconf_parse_int_list("--partitions", "-1", v, 4, err, sizeof err), TC_EUSAGE);
  CHECK_INT(kconf_parse_int_list("--partitions", "1,2,3,4,5", v, 4, err, sizeof err), TC_EUSAGE);

  /* The produce wait bound follows the producer's message.timeout.ms. */
  const char *tmo[] = {NULL, "1500", "0"};
  const int want[] = {300000 + KCONF_QUEUE_MARGIN_MS, 1500 + KCONF_QUEUE_MARGIN_MS, INT_MAX};
  for (int k = 0; k < 3; k++) {
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    rd_kafka_conf_set(pc, "log_level", "3", err, sizeof err); /* no notice about the brokers */
    if (tmo[k])
      rd_kafka_conf_set(pc, "message.timeout.ms", tmo[k], err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
    CHECK(rk != NULL);
    if (rk) {
      CHECK_INT(kconf_queue_wait_ms(rk), want[k]);
      rd_kafka_destroy(rk);
    }
  }
  return check_done();
}
