/* kconf.h: Kafka client configuration shared by `run`, `feed` and `replay`: the common flags
 * (--brokers, -X key=value, --config FILE), the config file, and the rd_kafka_conf_t built from
 * defaults + file + -X, with librdkafka's logs routed through daemon/pipeline/log.h.
 * Not for the commands' own flags (daemon/cmd/args.h parses those) nor for creating rd_kafka_t. */
#ifndef DAEMON_KCONF_H
#define DAEMON_KCONF_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* One key=value setting and where it came from, for error messages. */
typedef struct kconf_kv {
  char *key;   /* librdkafka property (without "kafka.") or tickcast flag name (without "--") */
  char *val;   /* the value, verbatim (surrounding blanks trimmed in files) */
  char *where; /* "-X" for the command line, "FILE:LINE" for the config file */
} kconf_kv;

/* The Kafka-related settings of one command line. Caller-owned: kconf_init / kconf_free. */
typedef struct kconf {
  char *brokers;        /* --brokers (or "brokers" from the config file); NULL when not given */
  char *config_path;    /* --config FILE, NULL when not given */
  kconf_kv *props;      /* librdkafka properties in the order they apply: file, then -X */
  int nprops;           /* entries in props */
  kconf_kv *flags;      /* tickcast flags from the config file ("input-topic=ticks"), file order */
  int nflags;           /* entries in flags */
  int brokers_from_cli; /* 1 when --brokers was on the command line (it beats the file) */
} kconf;

/* The help text for the common flags, for each command's --help (two-space indented lines). */
#define KCONF_USAGE                                                                                \
  "  --brokers LIST         Kafka bootstrap servers (host:port,...)\n"                             \
  "  -X KEY=VALUE           any librdkafka property, passed through (repeatable)\n"                \
  "  --config FILE          config file: key=value lines, '#' comments; tickcast flags without\n"  \
  "                         '--' (brokers=..., input-topic=...), librdkafka keys as kafka.KEY\n"

/* Loads librdkafka where the program reaches it through stubs (nn/base/lazylib.h: the tickcast
 * program; elsewhere it is linked and this does nothing). For the Kafka commands' flag check, so
 * that a missing library is one error before anything starts. 0, or TC_EKAFKA with err like
 * "cannot load librdkafka.so.1 (install Debian's librdkafka1): ...". */
int kconf_lib_load(char *err, size_t errlen);

/* 1 when the value of librdkafka property `key` must never be printed: passwords, secrets, keys,
 * tokens and the configs that hold them (by name: sasl.password, ssl.key.password, ssl.key.pem,
 * sasl.oauthbearer.client.secret, ...). Error lines also never print the value of a property
 * librdkafka does not know (a mistyped secret), nor a config line or -X argument without '='. */
int kconf_secret(const char *key);

/* 1 when the consumer configuration conf rebalances by the cooperative protocol: its
 * partition.assignment.strategy names cooperative-sticky (librdkafka's one cooperative assignor;
 * it refuses a list that mixes the two protocols), 0 for the eager one (range, roundrobin, the
 * default). The rebalance callback asks this of the consumer's own configuration instead of
 * rd_kafka_rebalance_protocol(), which waits for librdkafka's main thread and, called from the
 * callback that rd_kafka_consumer_close() serves, can wait forever (librdkafka issue #4041; a
 * daemon stopped while its group rebalanced hung until the shutdown watchdog ended it). */
int kconf_cooperative(const rd_kafka_conf_t *conf);

/* The consumer conf's auto.offset.reset: 1 for the end (latest, largest, end; also when conf does
 * not say, librdkafka's default), 0 for the start (earliest, smallest, beginning), -1 for error. */
int kconf_offset_reset(const rd_kafka_conf_t *conf);

/* Zeroes kc. Never fails. */
void kconf_init(kconf *kc);

/* Frees everything kc owns and zeroes it. Accepts NULL and half-built. */
void kconf_free(kconf *kc);

/* The shared argv helper. Looks at argv[*i]: when it is one of the common flags (--brokers LIST,
 * --brokers=LIST, -X KEY=VALUE, -XKEY=VALUE, --config FILE, --config=FILE) it consumes it (and its
 * value), advances *i past it and returns 1; when it is not one of them it returns 0 and leaves *i.
 * --config loads the file at once (kconf_load_file). Returns a negative TC_E* code with err set on
 * a missing value, a -X without '=', or a bad config file (TC_EUSAGE or the loader's code).
 * Typical loop: for (i = 1; i < argc; i++) { r = kconf_arg(&kc, argc, argv, &i, err, sizeof err);
 * if (r < 0) fail; if (r) { i--; continue; } ...own flags... } -- *i points past the flag, hence
 * the i-- when the loop itself increments. */
int kconf_arg(kconf *kc, int argc, char **argv, int *i, char *err, size_t errlen);

/* Reads a config file: one key=value per line, blank lines and lines starting with '#' ignored
 * (after leading blanks), blanks around key and value trimmed. "kafka.KEY=VALUE" is a librdkafka
 * property (applied before any -X, so -X wins); "brokers=LIST" sets the brokers unless --brokers
 * was given on the command line; any other key is a tickcast flag stored in kc->flags for the
 * command to look up (kconf_flag) and check (kconf_check_flags). Returns 0, TC_ENOENT when the file
 * cannot be opened, TC_EFORMAT with err quoting FILE:LINE and the line when a line has no '=' or an
 * empty key, TC_ENOMEM. */
int kconf_load_file(kconf *kc, const char *path, char *err, size_t errlen);

/* Adds one librdkafka property as if given with -X (where = "-X" when NULL). 0 or TC_ENOMEM. */
int kconf_prop_add(kconf *kc, const char *key, const char *val, const char *where);

/* Returns the value of the tickcast flag `name` (without "--") from the config file, the last one
 * when repeated, or NULL. Commands use it for flags not given on the command line. */
const char *kconf_flag(const kconf *kc, const char *name);

/* Checks that every flag from the config file is in `allowed` (a NULL-terminated list of names
 * without "--"; "brokers" is always allowed). Returns 0, or TC_EUSAGE with err like
 * "tickcast.conf:4: unknown key 'inptu-topic' (expected one of brokers, group, input-topic, ...,
 * or kafka.<librdkafka property>)". */
int kconf_check_flags(const kconf *kc, const char *const *allowed, char *err, size_t errlen);

/* Builds a new rd_kafka_conf_t: first `defaults` (NULL or a NULL-terminated list of key, value,
 * key, value, ..., which any later setting overrides), then bootstrap.servers = kc->brokers when
 * set, then kc->props in order. Installs the log callback (kconf_log_cb) and an error callback
 * that logs each error event once with kconf_error_log (a client may set its own after). On
 * success returns 0 and *out owns the conf (pass it to rd_kafka_new, or rd_kafka_conf_destroy
 * it). On a rejected property returns TC_EUSAGE, *out = NULL, err like "-X foo=bar: No such
 * configuration property: \"foo\"" or "tickcast.conf:3: kafka.compression.codec=zzz: Invalid
 * value \"zzz\" for configuration property \"compression.codec\"". kc may be NULL (defaults
 * only). */
int kconf_build(const kconf *kc, const char *const *defaults, rd_kafka_conf_t **out, char *err,
                size_t errlen);

/* The librdkafka log callback installed by kconf_build: maps syslog levels (0-3 error, 4 warn,
 * 5-6 info, 7 debug) onto log_msg with component "rdkafka" and the message as
 * "<client name> <facility>: <text>". It runs on librdkafka's threads (no log queue is set);
 * log_msg writes each line with one fprintf, which is safe there. */
void kconf_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* Logs a client's error event (an error callback's arguments) under component tag as
 * "<client name>: <error name>: <reason>": a fatal error as an error, a transport error at debug
 * (librdkafka's own log line says it already), others as warnings. Without an error callback
 * librdkafka logs every error event at level ERROR, a broker's restart included, after the log
 * line that said it. Thread-safe. */
void kconf_error_log(const char *tag, rd_kafka_t *rk, int err, const char *reason);

/* Error events of the process's Kafka clients so far: every kconf_error_log call and every
 * kconf_error_seen (an error callback that logs in its own way). Thread-safe. */
uint64_t kconf_errors(void);
void kconf_error_seen(void);

/* How long a produce may wait for room in producer rk's full queue (kprod_send's wait_ms): rk's
 * message.timeout.ms, within which every queued message is delivered or fails and so frees its
 * place, plus KCONF_QUEUE_MARGIN_MS for serving the delivery reports. A queue still full after
 * that is stuck. INT_MAX when message.timeout.ms is 0 (librdkafka's "no limit"). */
#define KCONF_QUEUE_MARGIN_MS 5000
int kconf_queue_wait_ms(rd_kafka_t *rk);

/* Parses a comma-separated list of non-negative int32 ("0,1,5") into out[0..max). Returns the
 * count, or TC_EUSAGE with err naming the flag (`what`) and the bad item. */
int kconf_parse_int_list(const char *what, const char *s, int32_t *out, int max, char *err,
                         size_t errlen);

#endif
