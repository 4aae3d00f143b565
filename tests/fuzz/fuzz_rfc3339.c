/* fuzz_rfc3339.c: differential fuzzing of tick_parse_rfc3339 against a reference built on libc's
 * calendar: field layout checked by position, the date validated by a timegm/gmtime_r round trip
 * (so day-of-month and leap years come from glibc, not from our days-from-civil), the offset
 * applied, and the int64 nanosecond range checked in 128-bit arithmetic. Accept/reject and the
 * value must agree exactly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/rfc3339.h"

static int num(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

static int ref_parse(const char *s, size_t len, int64_t *ns) {
  int Y, M, D, h, mi, sec;
  if (len < 20 || num(s, 4, &Y) || s[4] != '-' || num(s + 5, 2, &M) || s[7] != '-' ||
      num(s + 8, 2, &D) || !strchr("Tt ", s[10]) || s[10] == 0 || num(s + 11, 2, &h) ||
      s[13] != ':' || num(s + 14, 2, &mi) || s[16] != ':' || num(s + 17, 2, &sec))
    return -1;
  size_t i = 19;
  long frac = 0;
  if (s[i] == '.') {
    size_t f0 = ++i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
      i++;
    size_t nf = i - f0;
    if (nf < 1 || nf > 9)
      return -1;
    for (size_t k = 0; k < 9; k++)
      frac = frac * 10 + (k < nf ? s[f0 + k] - '0' : 0);
  }
  long off = 0;
  if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
    i++;
  } else if (i < len && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (len - i < 6 || num(s + i + 1, 2, &oh) || s[i + 3] != ':' || num(s + i + 4, 2, &om) ||
        oh > 23 || om > 59)
      return -1;
    off = (oh * 3600L + om * 60L) * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return -1;
  }
  if (i != len || h > 23 || mi > 59 || sec > 59)
    return -1;
  struct tm tm = {0}, back;
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  if (M < 1 || M > 12 || D < 1)
    return -1;
  time_t t = timegm(&tm);
  if (!gmtime_r(&t, &back) || back.tm_year != Y - 1900 || back.tm_mon != M - 1 || back.tm_mday != D)
    return -1; /* e.g. Feb 30 normalizes to March */
  __int128 v = ((__int128)t - off) * 1000000000 + frac;
  if (v > INT64_MAX || v < INT64_MIN)
    return -1;
  *ns = (int64_t)v;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  int64_t a = 0, b = 0;
  int ra = tick_parse_rfc3339(s, size, &a);
  int rb = size < 64 ? ref_parse(s, size, &b) : -1;
  if (size >= 64 && ra == 0) {
    fprintf(stderr, "fuzz_rfc3339: accepted %zu bytes\n", size);
    abort();
  }
  if (ra != rb || (ra == 0 && a != b)) {
    fprintf(stderr, "fuzz_rfc3339: %.*s: ours %d/%lld, reference %d/%lld\n", (int)size, s, ra,
            (long long)a, rb, (long long)b);
    abort();
  }
  return 0;
}
