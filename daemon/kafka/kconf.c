/* kconf.c: the common Kafka flags, the config file and the rd_kafka_conf_t they build (see
 * kconf.h). Not on any hot path: everything here runs once at start-up. */
#include "daemon/kafka/kconf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/pipeline/log.h"
#include "nn/base/lazylib.h"
#include "nn/base/tc_err.h"

void kconf_init(kconf *kc) {
  memset(kc, 0, sizeof *kc);
}

static void kv_free(kconf_kv *v, int n) {
  for (int i = 0; i < n; i++) {
    free(v[i].key);
    free(v[i].val);
    free(v[i].where);
  }
  free(v);
}

void kconf_free(kconf *kc) {
  if (!kc)
    return;
  free(kc->brokers);
  free(kc->config_path);
  kv_free(kc->props, kc->nprops);
  kv_free(kc->flags, kc->nflags);
  memset(kc, 0, sizeof *kc);
}

/* Appends key=val to *v (n entries). Growth by one is fine: a handful of entries, at start-up. */
static int kv_push(kconf_kv **v, int *n, const char *key, const char *val, const char *where) {
  kconf_kv *nv = realloc(*v, (size_t)(*n + 1) * sizeof **v);
  if (!nv)
    return TC_ENOMEM;
  *v = nv;
  kconf_kv *e = &nv[*n];
  e->key = strdup(key);
  e->val = strdup(val);
  e->where = strdup(where ? where : "-X");
  if (!e->key || !e->val || !e->where) {
    free(e->key);
    free(e->val);
    free(e->where);
    return TC_ENOMEM;
  }
  (*n)++;
  return 0;
}

int kconf_prop_add(kconf *kc, const char *key, const char *val, const char *where) {
  return kv_push(&kc->props, &kc->nprops, key, val, where);
}

static int set_str(char **dst, const char *s) {
  char *d = strdup(s);
  if (!d)
    return TC_ENOMEM;
  free(*dst);
  *dst = d;
  return 0;
}

int kconf_secret(const char *key) {
  static const char *const words[] = {"password", "secret", "pem",        "key",
                                      "jaas",     "token",  "credential", "oauthbearer.config",
                                      NULL};
  for (int i = 0; words[i]; i++)
    if (strstr(key, words[i]))
      return 1;
  return 0;
}

int kconf_cooperative(const rd_kafka_conf_t *conf) {
  char v[512];
  size_t n = sizeof v;
  if (!conf || rd_kafka_conf_get(conf, "partition.assignment.strategy", v, &n) != RD_KAFKA_CONF_OK)
    return 0;
  return strstr(v, "cooperative") != NULL;
}

int kconf_offset_reset(const rd_kafka_conf_t *conf) {
  char v[32];
  size_t n = sizeof v;
  if (!conf || rd_kafka_conf_get(conf, "auto.offset.reset", v, &n) != RD_KAFKA_CONF_OK)
    return 1;
  if (!strcmp(v, "smallest") || !strcmp(v, "earliest") || !strcmp(v, "beginning"))
    return 0;
  return strcmp(v, "error") ? 1 : -1;
}

/* 1 when s reads like a property name (lowercase letters, digits, '.', '_', '-', with a '.'), so
 * that quoting it cannot leak a secret typed where a name was expected. */
static int looks_like_name(const char *s) {
  if (!strchr(s, '.'))
    return 0;
  for (; *s; s++)
    if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && !strchr("._-", *s))
      return 0;
  return 1;
}

/* Splits "KEY=VALUE" from -X into a property. */
static int add_x(kconf *kc, const char *kv, char *err, size_t errlen) {
  const char *eq = strchr(kv, '=');
  if (!eq || eq == kv) {
    if (looks_like_name(kv))
      snprintf(err, errlen, "-X %s: expected KEY=VALUE (a librdkafka property)", kv);
    else
      snprintf(err, errlen,
               "-X: expected KEY=VALUE (a librdkafka property), found an argument without '=' "
               "(not shown: it may hold a secret)");
    return TC_EUSAGE;
  }
  char key[256];
  size_t kl = (size_t)(eq - kv);
  if (kl >= sizeof key) {
    snprintf(err, errlen, "-X %.40s...: property name longer than %zu bytes", kv, sizeof key - 1);
    return TC_EUSAGE;
  }
  memcpy(key, kv, kl);
  key[kl] = 0;
  return kconf_prop_add(kc, key, eq + 1, "-X");
}

/* Matches argv[*i] against --name VALUE / --name=VALUE; sets *val. 1 match, 0 no, <0 missing. */
static int flag_value(int argc, char **argv, int *i, const char *name, const char **val, char *err,
                      size_t errlen) {
  const char *a = argv[*i];
  size_t nl = strlen(name);
  if (strncmp(a, name, nl) != 0)
    return 0;
  if (a[nl] == '=') {
    *val = a + nl + 1;
    *i += 1;
    return 1;
  }
  if (a[nl] != 0)
    return 0;
  if (*i + 1 >= argc) {
    snprintf(err, errlen, "%s: missing value", name);
    return TC_EUSAGE;
  }
  *val = argv[*i + 1];
  *i += 2;
  return 1;
}

int kconf_arg(kconf *kc, int argc, char **argv, int *i, char *err, size_t errlen) {
  const char *a = argv[*i], *v = NULL;
  int r;
  if (!strncmp(a, "-X", 2)) {
    if (a[2]) {
      v = a + 2;
      *i += 1;
    } else if (*i + 1 < argc) {
      v = argv[*i + 1];
      *i += 2;
    } else {
      snprintf(err, errlen, "-X: missing KEY=VALUE");
      return TC_EUSAGE;
    }
    r = add_x(kc, v, err, errlen);
    return r < 0 ? r : 1;
  }
  if ((r = flag_value(argc, argv, i, "--brokers", &v, err, errlen)) != 0) {
    if (r < 0)
      return r;
    if (!*v) {
      snprintf(err, errlen, "--brokers: empty list (expected host:port[,host:port...])");
      return TC_EUSAGE;
    }
    kc->brokers_from_cli = 1;
    return set_str(&kc->brokers, v) < 0 ? TC_ENOMEM : 1;
  }
  if ((r = flag_value(argc, argv, i, "--config", &v, err, errlen)) != 0) {
    if (r < 0)
      return r;
    r = kconf_load_file(kc, v, err, errlen);
    return r < 0 ? r : 1;
  }
  return 0;
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  char *e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
    *--e = 0;
  return s;
}

int kconf_load_file(kconf *kc, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "--config %s: cannot open: %s", path, strerror(errno));
    return TC_ENOENT;
  }
  int rc = set_str(&kc->config_path, path);
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  unsigned lineno = 0;
  char where[PATH_MAX + 32];
  while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
    lineno++;
    char *s = trim(line);
    if (!*s || *s == '#')
      continue;
    snprintf(where, sizeof where, "%s:%u", path, lineno);
    char *eq = strchr(s, '=');
    if (!eq) { /* the line is not shown: it may be a secret on a line of its own */
      snprintf(err, errlen,
               "%s: expected key=value, found a line without '=' (%zu bytes, not shown)", where,
               strlen(s));
      rc = TC_EFORMAT;
      break;
    }
    *eq = 0;
    char *key = trim(s), *val = trim(eq + 1);
    if (!*key) {
      snprintf(err, errlen, "%s: empty key before '=' (expected key=value)", where);
      rc = TC_EFORMAT;
      break;
    }
    if (!strncmp(key, "kafka.", 6)) {
      if (!key[6]) {
        snprintf(err, errlen, "%s: 'kafka.' without a property name (expected kafka.KEY=VALUE)",
                 where);
        rc = TC_EFORMAT;
        break;
      }
      rc = kconf_prop_add(kc, key + 6, val, where);
    } else if (!strncmp(key, "--", 2)) {
      snprintf(err, errlen, "%s: key '%s' has a leading '--' (write flags without it: %s=...)",
               where, key, key + 2);
      rc = TC_EFORMAT;
    } else {
      if (!strcmp(key, "brokers") && !kc->brokers_from_cli)
        rc = set_str(&kc->brokers, val);
      if (rc == 0)
        rc = kv_push(&kc->flags, &kc->nflags, key, val, where);
    }
  }
  if (rc == 0 && ferror(f)) {
    snprintf(err, errlen, "--config %s: read error: %s", path, strerror(errno));
    rc = TC_EIO;
  }
  if (rc == TC_ENOMEM)
    snprintf(err, errlen, "--config %s: out of memory", path);
  free(line);
  fclose(f);
  return rc;
}

const char *kconf_flag(const kconf *kc, const char *name) {
  for (int i = kc->nflags - 1; i >= 0; i--)
    if (!strcmp(kc->flags[i].key, name))
      return kc->flags[i].val;
  return NULL;
}

int kconf_check_flags(const kconf *kc, const char *const *allowed, char *err, size_t errlen) {
  for (int i = 0; i < kc->nflags; i++) {
    const char *k = kc->flags[i].key;
    int ok = !strcmp(k, "brokers");
    for (int j = 0; !ok && allowed && allowed[j]; j++)
      ok = !strcmp(k, allowed[j]);
    if (ok)
      continue;
    char list[512];
    size_t n = (size_t)snprintf(list, sizeof list, "brokers");
    for (int j = 0; allowed && allowed[j] && n < sizeof list; j++)
      n += (size_t)snprintf(list + n, sizeof list - n, ", %s", allowed[j]);
    snprintf(err, errlen,
             "%s: unknown key '%s' (expected one of %s, or kafka.<librdkafka property>)",
             kc->flags[i].where, k, list);
    return TC_EUSAGE;
  }
  return 0;
}

/* Defined by the stubs (build/daemon/lazy_rdkafka.c) in the tickcast program only. */
extern lazylib lazy_rdkafka __attribute__((weak));

int kconf_lib_load(char *err, size_t errlen) {
  if (lazylib_load(&lazy_rdkafka, err, errlen) != 0)
    return TC_EKAFKA;
  return 0;
}

void kconf_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  /* syslog levels; <syslog.h> is not included because its LOG_INFO/LOG_DEBUG clash with log.h. */
  int lv = level <= 3 ? LOG_ERROR : level == 4 ? LOG_WARN : level <= 6 ? LOG_INFO : LOG_DEBUG;
  log_msg(lv, "rdkafka", "%s %s: %s", rk ? rd_kafka_name(rk) : "-", fac, buf);
}

static atomic_uint_fast64_t errors_seen;

void kconf_error_seen(void) {
  atomic_fetch_add_explicit(&errors_seen, 1, memory_order_relaxed);
}

uint64_t kconf_errors(void) {
  return atomic_load_explicit(&errors_seen, memory_order_relaxed);
}

void kconf_error_log(const char *tag, rd_kafka_t *rk, int err, const char *reason) {
  kconf_error_seen();
  int lv = err == RD_KAFKA_RESP_ERR__FATAL       ? LOG_ERROR
           : err == RD_KAFKA_RESP_ERR__TRANSPORT ? LOG_DEBUG
                                                 : LOG_WARN;
  log_msg(lv, tag, "%s: %s: %s", rd_kafka_name(rk), rd_kafka_err2name(err), reason);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  (void)opaque;
  kconf_error_log("rdkafka", rk, err, reason);
}

int kconf_build(const kconf *kc, const char *const *defaults, rd_kafka_conf_t **out, char *err,
                size_t errlen) {
  char rerr[512];
  *out = NULL;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (!conf) {
    snprintf(err, errlen, "kafka config: out of memory");
    return TC_ENOMEM;
  }
  for (int i = 0; defaults && defaults[i] && defaults[i + 1]; i += 2) {
    if (rd_kafka_conf_set(conf, defaults[i], defaults[i + 1], rerr, sizeof rerr) !=
        RD_KAFKA_CONF_OK) {
      /* A default is ours, not the user's: say so, it is a bug or a librdkafka mismatch. */
      snprintf(err, errlen, "built-in default %s=%s: %s", defaults[i], defaults[i + 1], rerr);
      goto fail;
    }
  }
  if (kc && kc->brokers &&
      rd_kafka_conf_set(conf, "bootstrap.servers", kc->brokers, rerr, sizeof rerr) !=
          RD_KAFKA_CONF_OK) {
    snprintf(err, errlen, "--brokers %s: %s", kc->brokers, rerr);
    goto fail;
  }
  for (int i = 0; kc && i < kc->nprops; i++) {
    const kconf_kv *p = &kc->props[i];
    rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, p->key, p->val, rerr, sizeof rerr);
    if (res != RD_KAFKA_CONF_OK) {
      /* An unknown property may be a mistyped secret (sasl.pasword=...): its value is not shown,
       * nor a secret's, whose invalid value librdkafka's message would quote. */
      int hide = res == RD_KAFKA_CONF_UNKNOWN || kconf_secret(p->key);
      const char *why = hide && res != RD_KAFKA_CONF_UNKNOWN ? "invalid value" : rerr;
      const char *lead = strcmp(p->where, "-X") ? "kafka." : "";
      char where[PATH_MAX + 40];
      snprintf(where, sizeof where, "%s%s%s", strcmp(p->where, "-X") ? p->where : "-X",
               strcmp(p->where, "-X") ? ": " : " ", lead);
      if (hide)
        snprintf(err, errlen, "%s%s (value not shown): %s", where, p->key, why);
      else
        snprintf(err, errlen, "%s%s=%s: %s", where, p->key, p->val, rerr);
      goto fail;
    }
  }
  rd_kafka_conf_set_log_cb(conf, kconf_log_cb);
  rd_kafka_conf_set_error_cb(conf, error_cb);
  *out = conf;
  return 0;
fail:
  rd_kafka_conf_destroy(conf);
  return TC_EUSAGE;
}

int kconf_queue_wait_ms(rd_kafka_t *rk) {
  char buf[32];
  size_t n = sizeof buf;
  long ms = 300000; /* librdkafka's default */
  if (rd_kafka_conf_get(rd_kafka_conf(rk), "message.timeout.ms", buf, &n) == RD_KAFKA_CONF_OK)
    ms = strtol(buf, NULL, 10);
  if (ms <= 0 || ms > INT_MAX - KCONF_QUEUE_MARGIN_MS)
    return INT_MAX;
  return (int)ms + KCONF_QUEUE_MARGIN_MS;
}

int kconf_parse_int_list(const char *what, const char *s, int32_t *out, int max, char *err,
                         size_t errlen) {
  int n = 0;
  const char *p = s;
  for (;;) {
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || !isdigit((unsigned char)*p) || errno || v > INT32_MAX ||
        (*end && *end != ',')) {
      snprintf(err, errlen, "%s %s: bad item at '%.20s' (expected comma-separated integers >= 0)",
               what, s, p);
      return TC_EUSAGE;
    }
    if (n >= max) {
      snprintf(err, errlen, "%s %s: more than %d items", what, s, max);
      return TC_EUSAGE;
    }
    out[n++] = (int32_t)v;
    if (!*end)
      break;
    p = end + 1;
  }
  return n;
}
