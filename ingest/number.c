/* number.c: the number parsers of number.h: a JSON-grammar number to the correctly rounded
 * double without strtod in the common cases (Clinger's fast path, then x87 extended precision,
 * then a bounded strtod), and an exact decimal int64. Not for timestamps (rfc3339.c). */
#include "ingest/number.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/digits_int.h"
#include "ingest/pow10_int.h"

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Slow path of tick_parse_number: the number s[0..n) is known to match the JSON grammar. It is
 * rewritten as "<significant digits>e<exponent>" (no decimal point, so no locale issue) in a
 * bounded stack buffer and given to strtod. Beyond 780 significant digits the rest is replaced by
 * one sticky '1' when any of it is non-zero: 767 digits decide the rounding of any double, and
 * the sticky digit keeps "above the halfway point" true, so the result stays correctly rounded. */
static double parse_number_slow(const char *s, size_t n) {
  enum { MAXDIG = 780 };
  char tmp[MAXDIG + 40];
  size_t i = 0, j = 0;
  int neg = 0, sticky = 0;
  long long dexp = 0; /* decimal exponent adjustment from the digit positions */
  if (s[i] == '-')
    neg = 1, i++;
  size_t ndig = 0;
  int seen_nonzero = 0;
  if (neg)
    tmp[j++] = '-';
  for (; i < n && is_digit(s[i]); i++) { /* integer part */
    if (!seen_nonzero && s[i] == '0')
      continue;
    seen_nonzero = 1;
    if (ndig < MAXDIG)
      tmp[j++] = s[i], ndig++;
    else {
      dexp++;
      if (s[i] != '0')
        sticky = 1;
    }
  }
  if (i < n && s[i] == '.') {
    for (i++; i < n && is_digit(s[i]); i++) {
      if (!seen_nonzero && s[i] == '0') {
        dexp--;
        continue;
      }
      seen_nonzero = 1;
      if (ndig < MAXDIG)
        tmp[j++] = s[i], ndig++, dexp--;
      else if (s[i] != '0')
        sticky = 1;
    }
  }
  long long e = 0;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    int eneg = 0;
    i++;
    if (s[i] == '+' || s[i] == '-')
      eneg = s[i] == '-', i++;
    for (; i < n && is_digit(s[i]); i++)
      if (e < 100000000)
        e = e * 10 + (s[i] - '0'); /* saturates: the result is 0 or inf anyway */
    if (eneg)
      e = -e;
  }
  if (!seen_nonzero)
    return neg ? -0.0 : 0.0;
  if (sticky)
    tmp[j++] = '1', dexp--;
  e += dexp;
  if (e > 100000)
    e = 100000;
  if (e < -100000)
    e = -100000;
  j += (size_t)snprintf(tmp + j, sizeof tmp - j, "e%lld", e);
  return strtod(tmp, NULL);
}

/* m (< 10^19) times 10^e10 for |e10| <= 27, in x87 extended precision: both operands are exact
 * there (64-bit significand; 5^27 < 2^64), so the one multiply or divide rounds once, to 64
 * bits. The second rounding, to double, drops the low 11 of those bits and is correct unless
 * the extended result lies within one unit of its last place of a double halfway point (low
 * bits 0x3FF..0x401): then it returns 0 and the caller takes the slow path. The results are in
 * the normal double range (1e-27 .. 1e46), where those 11 bits are exactly what is dropped.
 * This keeps 17-digit prices, the common case in real data, off strtod. */
static int parse_number_ld(uint64_t m, long long e10, double *out) {
#if defined(__x86_64__) && defined(__LDBL_MANT_DIG__) && __LDBL_MANT_DIG__ == 64
  if (e10 < -27 || e10 > 27)
    return 0;
  long double r =
      e10 < 0 ? (long double)m / pow10l_exact[-e10] : (long double)m * pow10l_exact[e10];
  uint64_t sig;
  memcpy(&sig, &r, sizeof sig); /* the 64-bit significand is the low 8 bytes on x86 */
  unsigned low = (unsigned)(sig & 0x7FF);
  if (low >= 0x3FF && low <= 0x401)
    return 0;
  *out = (double)r;
  return 1;
#else
  (void)m, (void)e10, (void)out;
  return 0;
#endif
}

/* The general case of tick_parse_number (more than 19 digits): counts significant digits only. */
static size_t parse_number_general(const char *s, size_t len, double *out) {
  size_t i = 0;
  int neg = 0;
  if (i < len && s[i] == '-')
    neg = 1, i++;
  if (i >= len || !is_digit(s[i]))
    return 0;
  uint64_t m = 0;
  int nd = 0;    /* significant digits accumulated in m (leading zeros not counted) */
  int trunc = 0; /* more than 19 significant digits */
  long long e10 = 0;
  if (s[i] == '0') {
    i++;
  } else {
    for (; i < len && is_digit(s[i]); i++) {
      if (nd < 19)
        m = m * 10 + (uint64_t)(s[i] - '0'), nd++;
      else
        trunc = 1, e10++;
    }
  }
  if (i < len && s[i] == '.') {
    i++;
    if (i >= len || !is_digit(s[i]))
      return 0;
    for (; i < len && is_digit(s[i]); i++) {
      if (nd == 0 && s[i] == '0') {
        e10--;
        continue;
      }
      if (nd < 19)
        m = m * 10 + (uint64_t)(s[i] - '0'), nd++, e10--;
      else
        trunc = 1;
    }
  }
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    int eneg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
      eneg = s[i] == '-', i++;
    if (i >= len || !is_digit(s[i]))
      return 0;
    long long e = 0;
    for (; i < len && is_digit(s[i]); i++)
      if (e < 100000000)
        e = e * 10 + (s[i] - '0');
    e10 += eneg ? -e : e;
  }
  double v;
  if (m == 0 && !trunc) {
    v = 0.0;
  } else if (!trunc && m <= (1ULL << 53) && e10 >= -22 && e10 <= 22) {
    v = (double)m;
    v = e10 < 0 ? v / pow10_exact[-e10] : v * pow10_exact[e10];
  } else if (!trunc && e10 > 22 && e10 <= 22 + 15 &&
             m <= (1ULL << 53) / (uint64_t)pow10_exact[e10 - 22]) {
    /* 123e30 = (123e8) * 1e22 with 123e8 still an exact integer below 2^53. */
    v = (double)(m * (uint64_t)pow10_exact[e10 - 22]) * 1e22;
  } else {
    *out = parse_number_slow(s, i);
    return i;
  }
  *out = neg ? -v : v;
  return i;
}

/* Parses a JSON number (RFC 8259 grammar) at s[0..len) to the correctly rounded double. Numbers
 * of at most 19 digits are read in one pass into a uint64 mantissa; the Clinger fast path then
 * covers mantissas up to 2^53 with |exp10| <= 22 (one exact multiply or divide), the extended
 * precision path (parse_number_ld) the rest up to |exp10| <= 27 away from halfway points;
 * everything else goes through parse_number_slow. Returns the bytes consumed, 0 when there is no
 * number at s. */
size_t tick_parse_number(const char *s, size_t len, double *out) {
  const char *p = s, *end = s + len;
  int neg = 0;
  if (p < end && *p == '-')
    neg = 1, p++;
  if (p >= end || !is_digit(*p))
    return 0;
  const char *d0 = p;
  uint64_t m = 0; /* wraps beyond 19 digits: then the general path starts over */
  if (*p == '0')
    p++;
  else
    p = digits_u64(p, end, &m);
  long nd = p - d0, nfrac = 0;
  if (p < end && *p == '.') {
    const char *f0 = ++p;
    p = digits_u64(p, end, &m);
    nfrac = p - f0;
    if (nfrac == 0)
      return 0;
  }
  long long e10 = 0;
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    int eneg = 0;
    if (p < end && (*p == '+' || *p == '-'))
      eneg = *p == '-', p++;
    if (p >= end || !is_digit(*p))
      return 0;
    while (p < end && is_digit(*p)) {
      if (e10 < 100000000)
        e10 = e10 * 10 + (*p - '0');
      p++;
    }
    if (eneg)
      e10 = -e10;
  }
  size_t n = (size_t)(p - s);
  if (nd + nfrac > 19)
    return parse_number_general(s, n, out);
  e10 -= nfrac;
  double v;
  if (m == 0) {
    v = 0.0;
  } else if (m <= (1ULL << 53) && e10 >= -22 && e10 <= 22) {
    v = (double)m;
    v = e10 < 0 ? v / pow10_exact[-e10] : v * pow10_exact[e10];
  } else if (!parse_number_ld(m, e10, &v)) {
    *out = parse_number_slow(s, n);
    return n;
  }
  *out = neg ? -v : v;
  return n;
}

/* Parses a decimal int64 exactly: optional '-', then "0" or [1-9][0-9]*; the whole of s[0..len). */
int tick_parse_int64(const char *s, size_t len, int64_t *out) {
  size_t i = 0;
  int neg = 0;
  if (len && s[0] == '-')
    neg = 1, i = 1;
  if (i >= len || !is_digit(s[i]))
    return -1;
  if (s[i] == '0' && len - i > 1)
    return -1;
  if (len - i > 19)
    return -1;
  uint64_t u = 0; /* 19 digits never wrap a uint64 */
  if (digits_u64(s + i, s + len, &u) != s + len)
    return -1;
  if (neg) {
    if (u > (uint64_t)INT64_MAX + 1)
      return -1;
    *out = (int64_t)(0 - u);
  } else {
    if (u > (uint64_t)INT64_MAX)
      return -1;
    *out = (int64_t)u;
  }
  return 0;
}
