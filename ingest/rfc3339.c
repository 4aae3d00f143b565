/* rfc3339.c: the RFC 3339 timestamp parser of rfc3339.h: strict layout, ranges checked against
 * the proleptic Gregorian calendar, int64 nanoseconds. Not for integer timestamps (number.c). */
#include "ingest/rfc3339.h"

#include <stdio.h>

#include "ingest/digits_int.h"

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

/* y-m-d of the day `days` after 1970-01-01 (H. Hinnant's civil_from_days). */
static void civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d) {
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const unsigned doe = (unsigned)(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!is_digit(s[i]))
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

/* Reads the full-date YYYY-MM-DD at s (10 bytes available) with its ranges checked (day against
 * the month, leap years included). Returns 0 or -1. */
static int full_date(const char *s, int *Y, int *M, int *D) {
  *Y = digits(s, 4), *M = digits(s + 5, 2), *D = digits(s + 8, 2);
  if (*Y < 0 || *M < 0 || *D < 0 || s[4] != '-' || s[7] != '-')
    return -1;
  static const unsigned char mdays[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (*M < 1 || *M > 12 || *D < 1 || *D > mdays[*M])
    return -1;
  if (*M == 2 && *D == 29 && !((*Y % 4 == 0 && *Y % 100 != 0) || *Y % 400 == 0))
    return -1;
  return 0;
}

/* Parses YYYY-MM-DD(T|t| )HH:MM:SS[.f{1,9}](Z|z|+hh:mm|-hh:mm) exactly, to ns since the epoch.
 * Ranges are checked (day against the month, leap years included); a leap second (:60) is
 * rejected because Unix time cannot represent it; the result must fit an int64 (1677..2262). */
int tick_parse_rfc3339(const char *s, size_t len, int64_t *ns) {
  if (len < 20)
    return -1;
  int Y, M, D;
  if (full_date(s, &Y, &M, &D) != 0)
    return -1;
  int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
  if (h < 0 || mi < 0 || sec < 0 || s[13] != ':' || s[16] != ':')
    return -1;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
    return -1;
  if (h > 23 || mi > 59 || sec > 59)
    return -1;
  size_t i = 19;
  int64_t frac = 0;
  if (s[i] == '.') {
    int nf = 0;
    for (i++; i < len && is_digit(s[i]); i++, nf++) {
      if (nf >= 9)
        return -1;
      frac = frac * 10 + (s[i] - '0');
    }
    if (nf == 0)
      return -1;
    for (int k = nf; k < 9; k++)
      frac *= 10;
  }
  if (i >= len)
    return -1;
  int off = 0; /* seconds east of UTC */
  if (s[i] == 'Z' || s[i] == 'z') {
    i++;
  } else if (s[i] == '+' || s[i] == '-') {
    if (len - i < 6)
      return -1;
    int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
    if (oh < 0 || om < 0 || s[i + 3] != ':' || oh > 23 || om > 59)
      return -1;
    off = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return -1;
  }
  if (i != len)
    return -1;
  int64_t secs =
      days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + mi * 60 + sec - off;
  int64_t r;
  if (secs < 0 && frac > 0)
    secs++, frac -= 1000000000; /* keeps 1677-09-21T00:12:43.145224192Z */
  if (__builtin_mul_overflow(secs, (int64_t)1000000000, &r))
    return -1;
  if (__builtin_add_overflow(r, frac, &r))
    return -1;
  *ns = r;
  return 0;
}

/* Parses exactly YYYY-MM-DD (RFC 3339's full-date) as 00:00:00 UTC of that day; the instant must
 * fit int64 nanoseconds (1677-09-22 .. 2262-04-11). */
int tick_parse_date(const char *s, size_t len, int64_t *ns) {
  int Y, M, D;
  if (len != 10 || full_date(s, &Y, &M, &D) != 0)
    return -1;
  int64_t r, secs = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400;
  if (__builtin_mul_overflow(secs, (int64_t)1000000000, &r))
    return -1;
  *ns = r;
  return 0;
}

size_t tick_format_rfc3339(char *out, size_t len, int64_t ns) {
  int64_t secs = ns / 1000000000, frac = ns % 1000000000;
  if (frac < 0)
    secs--, frac += 1000000000;
  int64_t days = secs / 86400, rem = secs % 86400;
  if (rem < 0)
    days--, rem += 86400;
  int64_t y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  char buf[TICK_RFC3339_MAX], fr[16] = "";
  if (frac) {
    int w = frac % 1000000 == 0 ? 3 : frac % 1000 == 0 ? 6 : 9;
    snprintf(fr, sizeof fr, ".%0*lld", w,
             (long long)(w == 3   ? frac / 1000000
                         : w == 6 ? frac / 1000
                                  : frac));
  }
  snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d%sZ", (long long)y, m, d,
           (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), fr);
  return (size_t)snprintf(out, len, "%s", buf);
}
