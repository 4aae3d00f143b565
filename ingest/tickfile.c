/* tickfile.c: reads tick files (CSV with a header row, or JSON Lines) line by line in constant
 * memory: one read buffer that grows only to hold the longest line, read(2) in 64 KiB blocks and
 * memchr for line ends. Not for ordering or state (the engine) nor for output. */
#include "ingest/tickfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest/rfc3339.h"
#include "nn/base/tc_err.h"

#define TICKFILE_BLOCK 65536

const char *const tickfile_ts_unit_names[] = {"s", "ms", "us", "ns", NULL};

/* Nanoseconds per unit, and what a unit is called in messages. */
static const int64_t unit_ns[] = {1000000000, 1000000, 1000, 1};
static const char *const unit_word[] = {"seconds", "milliseconds", "microseconds", "nanoseconds"};

/* Reads more bytes into buf, first moving the unread tail to the front and growing buf when the
 * tail already fills it. Returns 1 when bytes were added, 0 at end of file, TC_E* on failure. */
static int fill(tickfile *tf) {
  if (tf->eof)
    return 0;
  if (tf->beg > 0) {
    memmove(tf->buf, tf->buf + tf->beg, tf->end - tf->beg);
    tf->end -= tf->beg;
    tf->lbeg = tf->llen = 0;
    tf->beg = 0;
  }
  if (tf->end == tf->cap) {
    size_t cap = tf->cap ? tf->cap * 2 : TICKFILE_BLOCK;
    char *b = realloc(tf->buf, cap);
    if (!b)
      return TC_ENOMEM;
    tf->buf = b;
    tf->cap = cap;
  }
  /* read(2), not fread: on a pipe it returns what is there instead of waiting for a full block,
   * so `tail -f ticks.jsonl | tickcast replay --input -` sees each line as it comes. */
  ssize_t got;
  do
    got = read(fileno(tf->f), tf->buf + tf->end, tf->cap - tf->end);
  while (got < 0 && errno == EINTR);
  if (got < 0)
    return TC_EIO;
  if (got == 0) {
    tf->eof = 1;
    return 0;
  }
  tf->end += (size_t)got;
  return 1;
}

/* Sets *s, *n to the next line (without "\n" or "\r\n") and advances. Returns 1, 0 at end of
 * file, or TC_E*. */
static int next_line(tickfile *tf, const char **s, size_t *n) {
  for (;;) {
    char *b = tf->buf + tf->beg;
    char *nl = tf->end > tf->beg ? memchr(b, '\n', tf->end - tf->beg) : NULL;
    size_t len, used;
    if (nl) {
      len = (size_t)(nl - b);
      used = len + 1;
    } else {
      int rc = fill(tf);
      if (rc > 0)
        continue;
      if (rc < 0)
        return rc;
      if (tf->end == tf->beg)
        return 0;
      len = used = tf->end - tf->beg; /* a last line without '\n' */
      b = tf->buf + tf->beg;
    }
    if (len && b[len - 1] == '\r')
      len--;
    tf->lbeg = tf->beg;
    tf->llen = len;
    tf->beg += used;
    tf->bytes += used;
    tf->line++;
    *s = b;
    *n = len;
    return 1;
  }
}

static int blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
      return 0;
  return 1;
}

/* The unit an integer ts looks like when read as nanoseconds it is a time before 1973-03-04
 * (1e17 ns) and in that unit a time from then to 2286 (1e17 to 1e19 ns), or -1. Times in the
 * gaps (1970 in nanoseconds, like the FX history that starts in 1971) are left alone. */
static int ts_looks_like(int64_t v) {
  uint64_t a = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  if (a >= 100000000000000000ull)
    return -1;
  for (int u = TICKFILE_TS_S; u <= TICKFILE_TS_US; u++)
    if (a * (uint64_t)unit_ns[u] >= 100000000000000000ull &&
        a < 10000000000000000000ull / (uint64_t)unit_ns[u])
      return u;
  return -1;
}

/* An integer ts in tf's unit to nanoseconds (TICK_BAD_TS when that overflows), or, with
 * TICKFILE_TS_AUTO, notes one that looks like another unit in seen. Returns TICK_OK or
 * TICK_BAD_TS. */
static int ts_scale(const tickfile *tf, tickfile_ts_seen *seen, uint64_t line, tick *t, char *err,
                    size_t errlen) {
  seen->ints++;
  if (tf->ts_unit == TICKFILE_TS_AUTO) {
    int u = ts_looks_like(t->ts);
    if (u >= 0 && (!seen->odd++ || line < seen->odd_line)) {
      seen->odd_line = line;
      seen->odd_ts = t->ts;
      seen->odd_unit = u;
    }
    return TICK_OK;
  }
  int64_t ns;
  if (!__builtin_mul_overflow(t->ts, unit_ns[tf->ts_unit], &ns)) {
    t->ts = ns;
    return TICK_OK;
  }
  if (errlen)
    snprintf(err, errlen,
             "field ts: found %lld, expected integer %s (--ts-unit %s) within int64 "
             "nanoseconds (1677-09-21 to 2262-04-11)",
             (long long)t->ts, unit_word[tf->ts_unit], tickfile_ts_unit_names[tf->ts_unit]);
  return TICK_BAD_TS;
}

/* Opens the file, skips a UTF-8 byte order mark, and looks at the first non-blank line: '{'
 * starts JSON Lines (the line is left for tickfile_next), anything else is the CSV header. */
int tickfile_open(tickfile *tf, const char *path, char *err, size_t errlen) {
  memset(tf, 0, sizeof *tf);
  tf->ts_unit = TICKFILE_TS_AUTO;
  int rc;
  if (strcmp(path, "-") == 0) {
    tf->f = stdin;
    tf->path = "stdin";
  } else {
    tf->path = path;
    tf->f = fopen(path, "rb");
    if (!tf->f) {
      int e = errno;
      if (errlen)
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
      return e == ENOENT ? TC_ENOENT : TC_EIO;
    }
    tf->owned = 1;
  }
  struct stat st;
  if (fstat(fileno(tf->f), &st) == 0 && S_ISREG(st.st_mode))
    tf->size = (uint64_t)st.st_size;
  rc = fill(tf);
  if (rc < 0)
    goto io;
  if (tf->end >= 3 && memcmp(tf->buf, "\xEF\xBB\xBF", 3) == 0)
    tf->beg = 3, tf->bytes = 3;
  for (;;) {
    const char *s;
    size_t n;
    uint64_t bytes = tf->bytes;
    rc = next_line(tf, &s, &n);
    if (rc < 0)
      goto io;
    if (rc == 0) {
      if (errlen)
        snprintf(err, errlen,
                 "%s: no header: the file is empty (expected a CSV header "
                 "sym,ts,px[,qty,bid,ask] or JSON Lines)",
                 tf->path);
      tickfile_close(tf);
      return TC_EFORMAT;
    }
    if (blank(s, n))
      continue;
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
      i++;
    if (s[i] == '{') {
      /* Unread the line: it is still in buf at lbeg (fill may have moved it there). */
      tf->jsonl = 1;
      tf->beg = tf->lbeg;
      tf->bytes = bytes;
      tf->line--;
      return 0;
    }
    char msg[256];
    if (tick_csv_header(&tf->csv, s, n, msg, sizeof msg) != 0) {
      if (errlen)
        snprintf(err, errlen, "%s:%llu: %s", tf->path, (unsigned long long)tf->line, msg);
      tickfile_close(tf);
      return TC_EFORMAT;
    }
    return 0;
  }
io:
  if (errlen)
    snprintf(err, errlen, "%s: cannot read: %s", tf->path,
             rc == TC_ENOMEM ? "out of memory" : strerror(errno));
  tickfile_close(tf);
  return rc;
}

int tickfile_decode(const tickfile *tf, uint64_t line, const char *s, size_t n, tick *t,
                    int *reason, tickfile_ts_seen *seen, char *err, size_t errlen) {
  if (n == 0 || blank(s, n))
    return 0;
  *reason = tf->jsonl ? tick_parse_json(t, s, n, err, errlen)
                      : tick_parse_csv(&tf->csv, t, s, n, err, errlen);
  if (*reason == TICK_OK && t->ts_int)
    *reason = ts_scale(tf, seen, line, t, err, errlen);
  return 1;
}

/* Returns the next non-blank line decoded: 1 (with *reason), 0 at the end, TC_E* on failure. */
int tickfile_next(tickfile *tf, tick *t, int *reason, char *err, size_t errlen) {
  for (;;) {
    const char *s;
    size_t n;
    int rc = next_line(tf, &s, &n);
    if (rc < 0) {
      if (errlen)
        snprintf(err, errlen, "%s:%llu: cannot read: %s", tf->path,
                 (unsigned long long)tf->line + 1,
                 rc == TC_ENOMEM ? "out of memory" : strerror(errno));
      return rc;
    }
    if (rc == 0)
      return 0;
    if (tickfile_decode(tf, tf->line, s, n, t, reason, &tf->ts, err, errlen))
      return 1;
  }
}

int tickfile_sym_hint(const tickfile *tf, const char *s, size_t n, const char **sym, size_t *len) {
  if (n == 0 || blank(s, n))
    return -1;
  return tf->jsonl ? tick_json_sym_hint(s, n, sym, len)
                   : tick_csv_sym_hint(&tf->csv, s, n, sym, len);
}

int tickfile_read_raw(tickfile *tf, char *dst, size_t cap) {
  size_t have = tf->end - tf->beg;
  if (have) { /* what open read past the header */
    size_t k = have < cap ? have : cap;
    memcpy(dst, tf->buf + tf->beg, k);
    tf->beg += k;
    tf->bytes += k;
    return (int)k;
  }
  if (tf->eof || cap == 0)
    return 0;
  ssize_t got;
  do
    got = read(fileno(tf->f), dst, cap > (1u << 30) ? (1u << 30) : cap);
  while (got < 0 && errno == EINTR);
  if (got < 0)
    return TC_EIO;
  if (got == 0)
    tf->eof = 1;
  tf->bytes += (uint64_t)got;
  return (int)got;
}

void tickfile_ts_merge(tickfile *tf, const tickfile_ts_seen *seen) {
  tickfile_ts_seen *a = &tf->ts;
  a->ints += seen->ints;
  if (seen->odd && (!a->odd || seen->odd_line < a->odd_line)) {
    a->odd_line = seen->odd_line;
    a->odd_ts = seen->odd_ts;
    a->odd_unit = seen->odd_unit;
  }
  a->odd += seen->odd;
}

void tickfile_set_ts_unit(tickfile *tf, int unit) {
  tf->ts_unit = unit;
}

int tickfile_ts_warning(const tickfile *tf, char *msg, size_t len) {
  const tickfile_ts_seen *ts = &tf->ts;
  if (!ts->odd)
    return 0;
  char as_ns[TICK_RFC3339_MAX], as_unit[TICK_RFC3339_MAX];
  tick_format_rfc3339(as_ns, sizeof as_ns, ts->odd_ts);
  tick_format_rfc3339(as_unit, sizeof as_unit, ts->odd_ts * unit_ns[ts->odd_unit]);
  snprintf(msg, len,
           "%s:%llu: warning: integer ts %lld is read as nanoseconds (%s) but looks like %s "
           "(%s); %llu of %llu integer timestamps look like that: pass --ts-unit %s if they "
           "are %s, or --ts-unit ns to keep nanoseconds",
           tf->path, (unsigned long long)ts->odd_line, (long long)ts->odd_ts, as_ns,
           unit_word[ts->odd_unit], as_unit, (unsigned long long)ts->odd,
           (unsigned long long)ts->ints, tickfile_ts_unit_names[ts->odd_unit],
           unit_word[ts->odd_unit]);
  return 1;
}

/* Closes the file when we opened it and frees the buffer; accepts NULL and half-built. */
void tickfile_close(tickfile *tf) {
  if (!tf)
    return;
  if (tf->f && tf->owned)
    fclose(tf->f);
  free(tf->buf);
  tf->f = NULL;
  tf->buf = NULL;
  tf->cap = tf->beg = tf->end = 0;
}
