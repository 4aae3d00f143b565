/* args.c: the subcommands' command-line parser (see args.h). Runs once at start-up. */
#include "daemon/cmd/args.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest/number.h"
#include "ingest/rfc3339.h"
#include "ingest/tick.h"
#include "nn/base/tc_err.h"

int args_time_ns(const char *v, void *dst) {
  size_t n = strlen(v);
  return tick_parse_int64(v, n, dst) == 0 || tick_parse_rfc3339(v, n, dst) == 0 ? 0 : -1;
}

int args_stdout_done(const char *name) {
  errno = 0;
  int e = fflush(stdout) != 0 ? errno : 0;
  if (!e && !ferror(stdout))
    return 0;
  fprintf(stderr, "tickcast %s: stdout: write failed%s%s\n", name, e ? ": " : "",
          e ? strerror(e) : "");
  return 1;
}

int args_same_file(const char *a, const char *b) {
  struct stat sa, sb;
  if (!a || !b || !strcmp(a, "-") || !strcmp(b, "-") || stat(a, &sa) != 0 || stat(b, &sb) != 0)
    return 0;
  return S_ISREG(sa.st_mode) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The directory a new file at path goes into: what precedes its last '/' ("/" for "/x", "." for a
 * bare name). malloc'd, or NULL. */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash)
    return strdup(".");
  return strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

int args_output_check(const char *flag, const char *path, args_out_mode mode, char *err,
                      size_t errlen) {
  struct stat st;
  if (stat(path, &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      snprintf(err, errlen, "--%s %s: is a directory, expected a file name", flag, path);
      return TC_EIO;
    }
    if (!S_ISREG(st.st_mode) || mode == ARGS_OUT_INPLACE) { /* written where it is */
      if (access(path, W_OK) == 0)
        return 0;
      snprintf(err, errlen, "--%s %s: cannot be written: %s", flag, path, strerror(errno));
      return TC_EIO;
    }
  } else if (errno != ENOENT) { /* a component that is not a directory, or not searchable */
    snprintf(err, errlen, "--%s %s: cannot be created: %s", flag, path, strerror(errno));
    return TC_EIO;
  }
  char *dir = dir_of(path);
  if (!dir) {
    snprintf(err, errlen, "out of memory");
    return TC_ENOMEM;
  }
  int bad = stat(dir, &st) != 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
  if (!bad && access(dir, W_OK | X_OK) != 0)
    bad = errno;
  if (bad)
    snprintf(err, errlen,
             "--%s %s: cannot be created: directory %s: %s (expected an existing, writable "
             "directory)",
             flag, path, dir, strerror(bad));
  free(dir);
  return bad ? TC_EIO : 0;
}

int args_u64(const char *v, void *dst) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || end == v || *end || v[0] < '0' || v[0] > '9')
    return -1;
  *(uint64_t *)dst = x;
  return 0;
}

/* "--NAME V: expected WHAT", or "--NAME: found 'V', expected WHAT" in the found style. */
static int bad_value(const args_cmd *c, const args_flag *f, const char *v, const char *what,
                     char *err, size_t errlen) {
  if (c->found_style)
    snprintf(err, errlen, "--%s: found '%s', expected %s", f->name, v, what);
  else
    snprintf(err, errlen, "--%s %s: expected %s", f->name, v, what);
  return TC_EUSAGE;
}

static int set_int(const args_cmd *c, const args_flag *f, const char *v, char *err, size_t errlen) {
  char *end, what[160];
  errno = 0;
  long x = strtol(v, &end, 10);
  if (!*v || *end || errno || x < f->lo || x > f->hi) {
    const char *unit = f->unit ? f->unit : "an integer";
    if (c->found_style)
      snprintf(what, sizeof what, "%s in [%ld, %ld]", unit, (long)f->lo, (long)f->hi);
    else
      snprintf(what, sizeof what, "%s in %ld..%ld", unit, (long)f->lo, (long)f->hi);
    return bad_value(c, f, v, what, err, errlen);
  }
  *(int *)f->dst = (int)x;
  return 0;
}

static int set_double(const args_cmd *c, const args_flag *f, const char *v, char *err,
                      size_t errlen) {
  char *end, what[160];
  errno = 0;
  double x = strtod(v, &end);
  if (!*v || *end || errno || !isfinite(x) || x < f->lo || x > f->hi ||
      (f->open_lo && x == f->lo) || (f->open_hi && x == f->hi)) {
    snprintf(what, sizeof what, "%s in %c%g, %g%c", f->unit ? f->unit : "a number",
             f->open_lo ? '(' : '[', f->lo, f->hi, f->open_hi ? ')' : ']');
    return bad_value(c, f, v, what, err, errlen);
  }
  *(double *)f->dst = x;
  return 0;
}

static int set_choice(const args_cmd *c, const args_flag *f, const char *v, char *err,
                      size_t errlen) {
  int n = 0;
  while (f->choices[n])
    n++;
  for (int k = 0; k < n; k++)
    if (!strcmp(v, f->choices[k])) {
      *(int *)f->dst = k;
      return 0;
    }
  char what[256];
  size_t len = 0;
  what[0] = 0;
  for (int k = 0; k < n && len < sizeof what; k++)
    len += (size_t)snprintf(what + len, sizeof what - len, "%s%s",
                            k == 0       ? ""
                            : k == n - 1 ? " or "
                                         : ", ",
                            f->choices[k]);
  return bad_value(c, f, v, what, err, errlen);
}

/* Stores value v of flag f; from_config: v came from the config file. */
static int set_value(const args_cmd *c, const args_flag *f, const char *v, int from_config,
                     char *err, size_t errlen) {
  int rc = 0;
  switch (f->kind) {
  case ARGS_STR: *(const char **)f->dst = v; break;
  case ARGS_STRS:
    if (*f->count >= f->max) {
      snprintf(err, errlen, "--%s: more than %d %s", f->name, f->max, f->unit ? f->unit : "values");
      return TC_EUSAGE;
    }
    ((const char **)f->dst)[(*f->count)++] = v;
    break;
  case ARGS_SWITCH:
    if (from_config && strcmp(v, "1") && strcmp(v, "true") && strcmp(v, "yes")) {
      snprintf(err, errlen, "%s=%s: expected true (or leave it out)", f->name, v);
      return TC_EUSAGE;
    }
    *(int *)f->dst = 1;
    break;
  case ARGS_INT: rc = set_int(c, f, v, err, errlen); break;
  case ARGS_DOUBLE: rc = set_double(c, f, v, err, errlen); break;
  case ARGS_CHOICE: rc = set_choice(c, f, v, err, errlen); break;
  case ARGS_FN:
    if (f->parse(v, f->dst) != 0)
      rc = bad_value(c, f, v, f->unit, err, errlen);
    break;
  }
  if (rc == 0 && f->given)
    *f->given = 1;
  return rc;
}

/* The flag argv text a names ("--name", "--name=value", or "-c" for a short name), or NULL;
 * *value = what follows '=' (NULL when there is no '='). */
static const args_flag *lookup(const args_cmd *c, const char *a, const char **value) {
  *value = NULL;
  if (a[0] != '-')
    return NULL;
  if (a[1] != '-') {
    for (int k = 0; a[1] && !a[2] && k < c->nflags; k++)
      if (c->flags[k].short_name == a[1])
        return &c->flags[k];
    return NULL;
  }
  const char *name = a + 2, *eq = strchr(name, '=');
  size_t n = eq ? (size_t)(eq - name) : strlen(name);
  for (int k = 0; k < c->nflags; k++)
    if (strlen(c->flags[k].name) == n && !strncmp(name, c->flags[k].name, n)) {
      *value = eq ? eq + 1 : NULL;
      return &c->flags[k];
    }
  return NULL;
}

/* The command line, left to right; given[k] = 1 for each flag k it set. */
static int parse_argv(const args_cmd *c, int argc, char **argv, int *given, char *err,
                      size_t errlen) {
  char see[128];
  if (c->see)
    snprintf(see, sizeof see, "%s", c->see);
  else
    snprintf(see, sizeof see, "tickcast %s --help", c->name);
  for (int i = 1; i < argc;) {
    if (c->kc) {
      int r = kconf_arg(c->kc, argc, argv, &i, err, errlen);
      if (r < 0)
        return TC_EUSAGE;
      if (r)
        continue;
    }
    const char *a = argv[i], *v;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      c->usage(stdout);
      return 1;
    }
    if (a[0] != '-' || !a[1]) {
      snprintf(err, errlen, "unexpected argument '%s' (see %s)", a, see);
      return TC_EUSAGE;
    }
    const args_flag *f = lookup(c, a, &v);
    if (!f || (v && f->kind == ARGS_SWITCH)) {
      snprintf(err, errlen, "%s '%s' (see %s)", c->unknown ? c->unknown : "unknown flag", a, see);
      return TC_EUSAGE;
    }
    i++;
    if (f->kind == ARGS_SWITCH) {
      v = "1";
    } else if (!v) {
      if (i >= argc) {
        snprintf(err, errlen, "--%s: missing value", f->name);
        return TC_EUSAGE;
      }
      v = argv[i++];
    }
    int rc = set_value(c, f, v, 0, err, errlen);
    if (rc < 0)
      return rc;
    given[f - c->flags] = 1;
  }
  return 0;
}

int args_parse(const args_cmd *c, int argc, char **argv, char *err, size_t errlen) {
  assert(c->nflags <= ARGS_MAX_FLAGS);
  int given[ARGS_MAX_FLAGS] = {0};
  int rc = parse_argv(c, argc, argv, given, err, errlen);
  if (rc != 0 || !c->kc)
    return rc;
  const char *names[ARGS_MAX_FLAGS + 1];
  for (int k = 0; k < c->nflags; k++)
    names[k] = c->flags[k].name;
  names[c->nflags] = NULL;
  if (kconf_check_flags(c->kc, names, err, errlen) != 0)
    return TC_EUSAGE;
  for (int k = 0; k < c->nflags; k++) {
    const char *v = given[k] ? NULL : kconf_flag(c->kc, c->flags[k].name);
    if (v && (rc = set_value(c, &c->flags[k], v, 1, err, errlen)) < 0)
      return rc;
  }
  return 0;
}

int args_parse_cmd(const args_cmd *c, int argc, char **argv) {
  char err[1024];
  int rc = args_parse(c, argc, argv, err, sizeof err);
  if (rc < 0)
    fprintf(stderr, "tickcast %s: %s\n", c->name, err);
  return rc < 0 ? 2 : rc == 1 ? 0 : -1;
}

int args_kafka_load(const char *name) {
  char err[512];
  if (kconf_lib_load(err, sizeof err) == 0)
    return -1;
  fprintf(stderr, "tickcast %s: %s\n", name, err);
  return 1;
}
