/* tick.c: decodes one tick (CONTRACT §1) from a JSON object or a CSV row, plus the number and
 * timestamp parsers they share. The JSON decoder is the daemon's hot path: one pass, no
 * allocation, no NUL-terminated copies. Not for reading files or Kafka (tickfile.c, daemon/).
 *
 * Decisions (documented in tick.h and docs/TICKS.md):
 * - Input must be one complete RFC 8259 object; strings must be valid UTF-8 (overlongs, encoded
 *   surrogates and code points above U+10FFFF are rejected), \u escapes must pair surrogates.
 * - Keys are compared after unescaping ("p\u0078" is px). Duplicate keys: the last one wins.
 * - `null` for any field means absent (so "px":null is a missing field, "qty":null is qty 0).
 * - Nesting inside unknown keys is limited to TICK_JSON_DEPTH_MAX levels (the object included).
 * - A sym or RFC 3339 ts given as a string is unescaped before it is checked.
 * - qty -0 is stored as +0. */
#include "ingest/tick.h"

#include "ingest/pow10_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Reasons */

static const char *const reason_names[TICK_NREASONS] = {
    "ok",      "bad_json",  "missing_field", "bad_sym",      "bad_ts",  "bad_px",
    "bad_qty", "bad_quote", "key_mismatch",  "out_of_order", "bad_row",
};

/* Returns the stable name of a reason; "unknown" outside the table. */
const char *tick_reason_name(int reason) {
  if (reason < 0 || reason >= TICK_NREASONS)
    return "unknown";
  return reason_names[reason];
}

/* ---------------------------------------------------------------------------------------------
 * Error text helpers. Only used on rejection, so snprintf is fine here. */

/* Writes s[0..n) into out (cap >= 48) as a one-line, printable excerpt of at most 40 bytes:
 * control and non-ASCII bytes become '?', and "..." marks truncation. */
static void excerpt(char *out, const char *s, size_t n) {
  size_t k = n > 40 ? 40 : n, j = 0;
  for (size_t i = 0; i < k; i++) {
    unsigned char ch = (unsigned char)s[i];
    out[j++] = (ch >= 0x20 && ch < 0x7F) ? (char)ch : '?';
  }
  if (n > 40) {
    memcpy(out + j, "...", 3);
    j += 3;
  }
  out[j] = 0;
}

static const char *const field_names[] = {"sym", "ts", "px", "qty", "bid", "ask"};

static const char *const field_expect[] = {
    "1..32 bytes of printable ASCII without '\"', '\\' or ','",
    "integer nanoseconds or an RFC 3339 timestamp",
    "a finite number > 0",
    "a finite number >= 0",
    "a finite number > 0",
    "a finite number > 0",
};

enum { F_SYM, F_TS, F_PX, F_QTY, F_BID, F_ASK, F_N, F_OTHER = F_N };

static const int field_reason[F_N] = {TICK_BAD_SYM, TICK_BAD_TS,    TICK_BAD_PX,
                                      TICK_BAD_QTY, TICK_BAD_QUOTE, TICK_BAD_QUOTE};

/* "field px: found -3, expected a finite number > 0"; quote = 1 wraps the excerpt in quotes. */
static int bad_field(int f, const char *s, size_t n, int quote, char *err, size_t errlen) {
  if (errlen) {
    char ex[48];
    excerpt(ex, s, n);
    snprintf(err, errlen,
             quote ? "field %s: found \"%s\", expected %s" : "field %s: found %s, expected %s",
             field_names[f], ex, field_expect[f]);
  }
  return field_reason[f];
}

static int missing_field(int f, char *err, size_t errlen) {
  if (errlen)
    snprintf(err, errlen, "missing field %s", field_names[f]);
  return TICK_MISSING_FIELD;
}

/* ---------------------------------------------------------------------------------------------
 * Numbers */

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static inline int is_digit(char c) {
  return (unsigned char)(c - '0') < 10;
}

/* Eight ASCII digits at once (the SWAR trick of fast_float/simdjson): is_8digits tests a
 * little-endian load, parse_8digits returns their value. */
static inline int is_8digits(uint64_t v) {
  return ((v & 0xF0F0F0F0F0F0F0F0ULL) |
          (((v + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) == 0x3333333333333333ULL;
}
static inline uint64_t parse_8digits(uint64_t v) {
  v -= 0x3030303030303030ULL;
  v = (v * 10) + (v >> 8);
  v = (((v & 0x000000FF000000FFULL) * 0x000F424000000064ULL) +
       (((v >> 16) & 0x000000FF000000FFULL) * 0x0000271000000001ULL)) >>
      32;
  return v;
}

static const uint64_t pow10_u64[9] = {1,      10,      100,      1000,     10000,
                                      100000, 1000000, 10000000, 100000000};

/* Accumulates the digits at p into *m (wrapping past 19 digits: callers count digits and then
 * take another path). Returns the first non-digit position. Whole groups of eight go through
 * parse_8digits; a shorter run of k digits inside an 8-byte load is shifted up, padded with
 * leading '0' bytes and parsed the same way. */
static inline const char *digits_u64(const char *p, const char *end, uint64_t *m) {
  uint64_t x = *m, w;
  while (end - p >= 8) {
    memcpy(&w, p, 8);
    if (is_8digits(w)) {
      x = x * 100000000 + parse_8digits(w);
      p += 8;
      continue;
    }
    /* Non-digit bytes are non-zero in a | b (a: high nibble != 3; b: low nibble > 9). A carry
     * from a byte >= 0xFA can only spoil bytes above it, which are past the first non-digit. */
    uint64_t a = (w & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL;
    uint64_t b = ((w + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL;
    uint64_t nd = a | b;
    nd = (nd | ((nd & 0x7F7F7F7F7F7F7F7FULL) + 0x7F7F7F7F7F7F7F7FULL)) & 0x8080808080808080ULL;
    int k = __builtin_ctzll(nd) >> 3; /* leading digits, 0..7 */
    if (k) {
      uint64_t v = (w << (8 * (8 - k))) | (0x3030303030303030ULL >> (8 * k));
      x = x * pow10_u64[k] + parse_8digits(v);
      p += k;
    }
    *m = x;
    return p;
  }
  while (p < end && is_digit(*p))
    x = x * 10 + (uint64_t)(*p++ - '0');
  *m = x;
  return p;
}

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

/* ---------------------------------------------------------------------------------------------
 * RFC 3339 */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
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

/* Parses YYYY-MM-DD(T|t| )HH:MM:SS[.f{1,9}](Z|z|+hh:mm|-hh:mm) exactly, to ns since the epoch.
 * Ranges are checked (day against the month, leap years included); a leap second (:60) is
 * rejected because Unix time cannot represent it; the result must fit an int64 (1677..2262). */
int tick_parse_rfc3339(const char *s, size_t len, int64_t *ns) {
  if (len < 20)
    return -1;
  int Y = digits(s, 4), M = digits(s + 5, 2), D = digits(s + 8, 2);
  int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
  if (Y < 0 || M < 0 || D < 0 || h < 0 || mi < 0 || sec < 0)
    return -1;
  if (s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':')
    return -1;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
    return -1;
  static const unsigned char mdays[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (M < 1 || M > 12 || D < 1 || D > mdays[M])
    return -1;
  if (M == 2 && D == 29 && !((Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0))
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

/* ---------------------------------------------------------------------------------------------
 * JSON scanning */

/* Character classes: 1 = plain string byte (0x20..0x7F except '"' and '\\'). */
/* clang-format off */
static const unsigned char str_plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0), /* 0x00..0x1F: control */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x22 '"' */
    R16(1), R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x5C '\\' */
    R16(1), R16(1),
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), /* 0x80..0xFF: UTF-8 */
#undef R16
};
/* clang-format on */

typedef struct jctx {
  const char *buf, *end;
  const char *errpos; /* where the JSON went wrong */
  const char *errmsg; /* what was expected */
} jctx;

static inline const char *jfail(jctx *c, const char *p, const char *msg) {
  c->errpos = p;
  c->errmsg = msg;
  return NULL;
}

static inline const char *skip_ws(const char *p, const char *end) {
  if (p < end && (unsigned char)*p > ' ')
    return p; /* compact JSON: no whitespace at all */
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    p++;
  return p;
}

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char ch = p[i];
    int d;
    if (ch >= '0' && ch <= '9')
      d = ch - '0';
    else if (ch >= 'a' && ch <= 'f')
      d = ch - 'a' + 10;
    else if (ch >= 'A' && ch <= 'F')
      d = ch - 'A' + 10;
    else
      return -1;
    v = v * 16 + d;
  }
  return v;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0 when invalid (RFC 3629). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
  unsigned char c0 = p[0];
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c0 >= 0xC2 && c0 <= 0xDF)
    n = 2;
  else if (c0 >= 0xE0 && c0 <= 0xEF) {
    n = 3;
    if (c0 == 0xE0)
      lo = 0xA0;
    if (c0 == 0xED)
      hi = 0x9F; /* no encoded surrogates */
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    n = 4;
    if (c0 == 0xF0)
      lo = 0x90;
    if (c0 == 0xF4)
      hi = 0x8F; /* nothing above U+10FFFF */
  } else
    return 0;
  if ((size_t)(end - p) < n)
    return 0;
  if (p[1] < lo || p[1] > hi)
    return 0;
  for (size_t k = 2; k < n; k++)
    if (p[k] < 0x80 || p[k] > 0xBF)
      return 0;
  return n;
}

/* Scans a string whose opening quote is at p. Returns the position after the closing quote, or
 * NULL with the error set. *esc is set when the body holds a backslash escape. */
static const char *scan_string(jctx *c, const char *p, int *esc) {
  const char *end = c->end;
  p++;
  for (;;) {
    /* Eight bytes at a time: flag bytes < 0x20, == '"', == '\\' or >= 0x80. Borrows only
     * flag bytes above a true match, so the lowest flag is the first byte to look at. */
    while (end - p >= 8) {
      uint64_t w, q, b, m;
      memcpy(&w, p, 8);
      q = w ^ 0x2222222222222222ULL;
      b = w ^ 0x5C5C5C5C5C5C5C5CULL;
      m = ((w - 0x2020202020202020ULL) & ~w) | ((q - 0x0101010101010101ULL) & ~q) |
          ((b - 0x0101010101010101ULL) & ~b) | w;
      m &= 0x8080808080808080ULL;
      if (m) {
        p += __builtin_ctzll(m) >> 3;
        break;
      }
      p += 8;
    }
    while (p < end && str_plain[(unsigned char)*p])
      p++;
    if (p >= end)
      return jfail(c, p, "unterminated string");
    unsigned char ch = (unsigned char)*p;
    if (ch == '"')
      return p + 1;
    if (ch == '\\') {
      *esc = 1;
      if (end - p < 2)
        return jfail(c, end, "unterminated string");
      switch (p[1]) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't': p += 2; break;
      case 'u': {
        if (end - p < 6)
          return jfail(c, p, "invalid \\u escape");
        int u = hex4(p + 2);
        if (u < 0)
          return jfail(c, p, "invalid \\u escape");
        if (u >= 0xDC00 && u <= 0xDFFF)
          return jfail(c, p, "unpaired surrogate in \\u escape");
        if (u >= 0xD800 && u <= 0xDBFF) {
          if (end - p < 12 || p[6] != '\\' || p[7] != 'u')
            return jfail(c, p, "unpaired surrogate in \\u escape");
          int lo = hex4(p + 8);
          if (lo < 0xDC00 || lo > 0xDFFF)
            return jfail(c, p, "unpaired surrogate in \\u escape");
          p += 12;
        } else {
          p += 6;
        }
        break;
      }
      default: return jfail(c, p, "invalid escape in string");
      }
    } else if (ch < 0x20) {
      return jfail(c, p, "control character in string");
    } else {
      size_t n = utf8_len((const unsigned char *)p, (const unsigned char *)end);
      if (!n)
        return jfail(c, p, "invalid UTF-8 in string");
      p += n;
    }
  }
}

/* Decodes the (already validated) string body s[0..n) into out[0..cap). Returns the decoded
 * length, or cap + 1 when it does not fit. */
static size_t unescape(const char *s, size_t n, char *out, size_t cap) {
  size_t j = 0;
  for (size_t i = 0; i < n;) {
    char ch = s[i];
    if (ch != '\\') {
      if (j >= cap)
        return cap + 1;
      out[j++] = ch;
      i++;
      continue;
    }
    char e = s[i + 1];
    unsigned u;
    i += 2;
    switch (e) {
    case 'b': u = '\b'; break;
    case 'f': u = '\f'; break;
    case 'n': u = '\n'; break;
    case 'r': u = '\r'; break;
    case 't': u = '\t'; break;
    case 'u':
      u = (unsigned)hex4(s + i);
      i += 4;
      if (u >= 0xD800 && u <= 0xDBFF) {
        unsigned lo = (unsigned)hex4(s + i + 2);
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        i += 6;
      }
      break;
    default: u = (unsigned char)e; break; /* '"' '\\' '/' */
    }
    unsigned char tmp[4];
    size_t k;
    if (u < 0x80)
      tmp[0] = (unsigned char)u, k = 1;
    else if (u < 0x800)
      tmp[0] = (unsigned char)(0xC0 | (u >> 6)), tmp[1] = (unsigned char)(0x80 | (u & 0x3F)), k = 2;
    else if (u < 0x10000)
      tmp[0] = (unsigned char)(0xE0 | (u >> 12)),
      tmp[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3F)),
      tmp[2] = (unsigned char)(0x80 | (u & 0x3F)), k = 3;
    else
      tmp[0] = (unsigned char)(0xF0 | (u >> 18)),
      tmp[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3F)),
      tmp[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3F)),
      tmp[3] = (unsigned char)(0x80 | (u & 0x3F)), k = 4;
    if (j + k > cap)
      return cap + 1;
    memcpy(out + j, tmp, k);
    j += k;
  }
  return j;
}

/* Scans a JSON number's grammar at p (no conversion). Returns the end or NULL. */
static const char *scan_number(jctx *c, const char *p) {
  const char *end = c->end, *s = p;
  if (p < end && *p == '-')
    p++;
  if (p >= end || !is_digit(*p))
    return jfail(c, s, "invalid number");
  if (*p == '0')
    p++;
  else
    while (p < end && is_digit(*p))
      p++;
  if (p < end && *p == '.') {
    p++;
    if (p >= end || !is_digit(*p))
      return jfail(c, s, "invalid number");
    while (p < end && is_digit(*p))
      p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-'))
      p++;
    if (p >= end || !is_digit(*p))
      return jfail(c, s, "invalid number");
    while (p < end && is_digit(*p))
      p++;
  }
  return p;
}

static const char *scan_literal(jctx *c, const char *p, const char *lit, size_t n) {
  if ((size_t)(c->end - p) < n || memcmp(p, lit, n) != 0)
    return jfail(c, p, "expected a value");
  return p + n;
}

/* Scans (validates) any JSON value at p; depth is the nesting level of the container holding it.
 * Containers are walked iteratively with a bit stack (1 = array), so the C stack stays flat. */
static const char *skip_value(jctx *c, const char *p, int depth) {
  const char *end = c->end;
  uint64_t stack = 0;
  int d = 0;
  int esc;
  for (;;) {
    p = skip_ws(p, end);
    if (p >= end)
      return jfail(c, p, "expected a value");
    switch (*p) {
    case '"': p = scan_string(c, p, &esc); break;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9': p = scan_number(c, p); break;
    case 't': p = scan_literal(c, p, "true", 4); break;
    case 'f': p = scan_literal(c, p, "false", 5); break;
    case 'n': p = scan_literal(c, p, "null", 4); break;
    case '{':
    case '[': {
      int arr = *p == '[';
      if (depth + d + 1 > TICK_JSON_DEPTH_MAX)
        return jfail(c, p, "nesting too deep");
      stack = (stack << 1) | (uint64_t)arr;
      d++;
      p = skip_ws(p + 1, end);
      if (p < end && *p == (arr ? ']' : '}')) {
        p++;
        stack >>= 1;
        d--;
        break;
      }
      if (arr)
        continue;
      if (p >= end || *p != '"')
        return jfail(c, p, "expected a string key or '}'");
      p = scan_string(c, p, &esc);
      if (!p)
        return NULL;
      p = skip_ws(p, end);
      if (p >= end || *p != ':')
        return jfail(c, p, "expected ':'");
      p++;
      continue;
    }
    default: return jfail(c, p, "expected a value");
    }
    if (!p)
      return NULL;
    /* After a value: close containers or move to the next element. */
    for (;;) {
      if (d == 0)
        return p;
      p = skip_ws(p, end);
      if (stack & 1) {
        if (p < end && *p == ',') {
          p++;
          break;
        }
        if (p < end && *p == ']') {
          p++, stack >>= 1, d--;
          continue;
        }
        return jfail(c, p, "expected ',' or ']'");
      }
      if (p < end && *p == ',') {
        p = skip_ws(p + 1, end);
        if (p >= end || *p != '"')
          return jfail(c, p, "expected a string key");
        p = scan_string(c, p, &esc);
        if (!p)
          return NULL;
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
          return jfail(c, p, "expected ':'");
        p++;
        break;
      }
      if (p < end && *p == '}') {
        p++, stack >>= 1, d--;
        continue;
      }
      return jfail(c, p, "expected ',' or '}'");
    }
  }
}

/* Which field a key names; keys with escapes are unescaped first. */
static int key_field(const char *k, size_t n, int esc) {
  char tmp[4];
  if (esc) {
    n = unescape(k, n, tmp, 3);
    if (n > 3)
      return F_OTHER;
    k = tmp;
  }
  switch (n) {
  case 2:
    if (k[0] == 't' && k[1] == 's')
      return F_TS;
    if (k[0] == 'p' && k[1] == 'x')
      return F_PX;
    return F_OTHER;
  case 3:
    if (!memcmp(k, "sym", 3))
      return F_SYM;
    if (!memcmp(k, "qty", 3))
      return F_QTY;
    if (!memcmp(k, "bid", 3))
      return F_BID;
    if (!memcmp(k, "ask", 3))
      return F_ASK;
    return F_OTHER;
  default: return F_OTHER;
  }
}

/* The known keys written plainly, as almost every producer writes them: one 4-byte load at the
 * key's first byte decides. Returns the field, or -1 to scan the key the general way. */
static inline int key_fast(const char *k) {
  uint32_t w;
  memcpy(&w, k, 4);
#define K4(a, b, c, d)                                                                             \
  ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
  switch (w & 0xFFFFFF) {
  case K4('t', 's', '"', 0): return F_TS;
  case K4('p', 'x', '"', 0): return F_PX;
  }
  switch (w) {
  case K4('s', 'y', 'm', '"'): return F_SYM;
  case K4('q', 't', 'y', '"'): return F_QTY;
  case K4('b', 'i', 'd', '"'): return F_BID;
  case K4('a', 's', 'k', '"'): return F_ASK;
  }
#undef K4
  return -1;
}

/* What a known field held: its raw token and, for numbers of px/qty/bid/ask, the value. */
enum { V_ABSENT, V_STRING, V_NUMBER, V_INT, V_OTHER };
typedef struct jval {
  const char *s; /* raw token (strings: the body without quotes) */
  size_t n;
  int kind;
  int esc;    /* string with escapes */
  double v;   /* V_NUMBER of a numeric field */
  int64_t iv; /* V_INT: a ts that is a plain int64 integer */
} jval;

/* The common ts: an int64 integer token at p (no fraction or exponent, no leading zero, in
 * range), read in one pass. Returns 1 and fills jv, or 0 to let the general path decide. */
static inline int ts_int(const char *p, const char *end, jval *jv) {
  const char *q = p;
  int neg = *q == '-';
  q += neg;
  const char *d0 = q;
  uint64_t u = 0;
  q = digits_u64(q, end, &u);
  long nd = q - d0;
  if (nd == 0 || nd > 19 || (*d0 == '0' && nd > 1))
    return 0;
  if (q < end && (*q == '.' || *q == 'e' || *q == 'E'))
    return 0;
  if (u > (uint64_t)INT64_MAX + (uint64_t)neg)
    return 0;
  jv->kind = V_INT;
  jv->iv = neg ? (int64_t)(0 - u) : (int64_t)u;
  jv->s = p;
  jv->n = (size_t)(q - p);
  return 1;
}

/* Checks sym bytes: 1..32 of 0x21..0x7E without '"', '\\', ','. */
/* clang-format off */
static const unsigned char sym_byte[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),
    0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* ' ' '"' ',' */
    R16(1), R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* '\\' */
    R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, /* 0x7F */
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0),
#undef R16
};
/* clang-format on */

static int sym_ok(const char *s, size_t n) {
  if (n < 1 || n > TICK_SYM_MAX)
    return 0;
  unsigned ok = 1;
  for (size_t i = 0; i < n; i++)
    ok &= sym_byte[(unsigned char)s[i]];
  return (int)ok;
}

static int bad_jval(int f, const jval *v, char *err, size_t errlen) {
  if (v->kind == V_STRING)
    return bad_field(f, v->s, v->n, 1, err, errlen);
  return bad_field(f, v->s, v->n, 0, err, errlen);
}

/* Validates a numeric field: px/bid/ask finite > 0, qty finite >= 0. */
static inline int num_ok(int f, double x) {
  if (!(x - x == 0))
    return 0; /* NaN or inf */
  return f == F_QTY ? x >= 0 : x > 0;
}

/* Keeps px's number token (valid JSON and CSV, reading back to exactly t->px) so encoders can
 * echo it instead of formatting the double again; px_len = 0 when it is too long to keep. */
static inline void px_text(tick *t, const char *s, size_t n) {
  t->px_len = n <= TICK_PX_TXT_MAX ? (uint8_t)n : 0;
  if (t->px_len)
    memcpy(t->px_txt, s, n);
}

/* Applies the field rules of CONTRACT §1 to the values found and fills t. */
static int finish(tick *t, jval *v, char *err, size_t errlen) {
  for (int f = F_SYM; f <= F_PX; f++)
    if (v[f].kind == V_ABSENT)
      return missing_field(f, err, errlen);
  /* sym */
  if (v[F_SYM].kind != V_STRING)
    return bad_jval(F_SYM, &v[F_SYM], err, errlen);
  if (v[F_SYM].esc) {
    size_t n = unescape(v[F_SYM].s, v[F_SYM].n, t->sym, TICK_SYM_MAX);
    if (n > TICK_SYM_MAX || !sym_ok(t->sym, n))
      return bad_jval(F_SYM, &v[F_SYM], err, errlen);
    t->sym_len = (uint8_t)n;
  } else {
    if (!sym_ok(v[F_SYM].s, v[F_SYM].n))
      return bad_jval(F_SYM, &v[F_SYM], err, errlen);
    memcpy(t->sym, v[F_SYM].s, v[F_SYM].n);
    t->sym_len = (uint8_t)v[F_SYM].n;
  }
  t->sym[t->sym_len] = 0;
  /* ts */
  if (v[F_TS].kind == V_INT) {
    t->ts = v[F_TS].iv;
  } else if (v[F_TS].kind == V_NUMBER) {
    if (tick_parse_int64(v[F_TS].s, v[F_TS].n, &t->ts) != 0)
      return bad_jval(F_TS, &v[F_TS], err, errlen);
  } else if (v[F_TS].kind == V_STRING) {
    const char *s = v[F_TS].s;
    size_t n = v[F_TS].n;
    char tmp[40];
    if (v[F_TS].esc) {
      n = unescape(s, n, tmp, sizeof tmp);
      s = tmp;
    }
    if (n > 40 || tick_parse_rfc3339(s, n, &t->ts) != 0)
      return bad_jval(F_TS, &v[F_TS], err, errlen);
  } else {
    return bad_jval(F_TS, &v[F_TS], err, errlen);
  }
  /* px, qty, bid, ask */
  for (int f = F_PX; f <= F_ASK; f++) {
    if (v[f].kind == V_ABSENT)
      continue;
    if (v[f].kind != V_NUMBER || !num_ok(f, v[f].v))
      return bad_jval(f, &v[f], err, errlen);
  }
  t->px = v[F_PX].v;
  px_text(t, v[F_PX].s, v[F_PX].n);
  t->qty = v[F_QTY].kind == V_ABSENT ? 0.0 : v[F_QTY].v + 0.0; /* -0 becomes +0 */
  t->has_quote = 0;
  t->bid = t->ask = 0;
  if (v[F_BID].kind != V_ABSENT && v[F_ASK].kind != V_ABSENT) {
    t->bid = v[F_BID].v;
    t->ask = v[F_ASK].v;
    t->has_quote = t->bid <= t->ask;
  }
  return TICK_OK;
}

/* Decodes one JSON object tick; see tick.h for the contract and the top of this file for the
 * decisions. One pass: keys are matched as they are scanned, known values are recorded (the last
 * duplicate wins) and checked after the closing brace. */
int tick_parse_json(tick *t, const char *buf, size_t len, char *err, size_t errlen) {
  jctx c = {buf, buf + len, NULL, NULL};
  const char *end = c.end, *p = skip_ws(buf, end);
  jval v[F_N];
  for (int f = 0; f < F_N; f++)
    v[f].kind = V_ABSENT;
  if (p >= end || *p != '{') {
    jfail(&c, p, "expected '{'");
    goto bad;
  }
  p = skip_ws(p + 1, end);
  if (p < end && *p == '}') {
    p++;
  } else {
    for (;;) {
      if (p >= end || *p != '"') {
        jfail(&c, p, "expected a string key");
        goto bad;
      }
      int f = end - p >= 5 ? key_fast(p + 1) : -1;
      if (f >= 0) {
        p += f == F_TS || f == F_PX ? 4 : 5; /* the quotes and the name */
      } else {
        int esc = 0;
        const char *k = p + 1;
        p = scan_string(&c, p, &esc);
        if (!p)
          goto bad;
        f = key_field(k, (size_t)(p - 1 - k), esc);
      }
      p = skip_ws(p, end);
      if (p >= end || *p != ':') {
        jfail(&c, p, "expected ':'");
        goto bad;
      }
      p = skip_ws(p + 1, end);
      if (p >= end) {
        jfail(&c, p, "expected a value");
        goto bad;
      }
      if (f == F_OTHER) {
        p = skip_value(&c, p, 1);
        if (!p)
          goto bad;
      } else {
        jval *jv = &v[f];
        const char *s = p;
        if (*p == '"') {
          jv->esc = 0;
          p = scan_string(&c, p, &jv->esc);
          if (!p)
            goto bad;
          jv->kind = V_STRING;
          jv->s = s + 1;
          jv->n = (size_t)(p - 1 - jv->s);
        } else if (f == F_TS && (*p == '-' || is_digit(*p)) && ts_int(p, end, jv)) {
          p += jv->n;
        } else if (*p == '-' || is_digit(*p)) {
          if (f == F_SYM || f == F_TS) {
            p = scan_number(&c, p);
            if (!p)
              goto bad;
          } else {
            size_t n = tick_parse_number(p, (size_t)(end - p), &jv->v);
            if (!n) {
              jfail(&c, p, "invalid number");
              goto bad;
            }
            p += n;
          }
          jv->kind = V_NUMBER;
          jv->s = s;
          jv->n = (size_t)(p - s);
        } else if (*p == 'n') {
          p = scan_literal(&c, p, "null", 4);
          if (!p)
            goto bad;
          jv->kind = V_ABSENT; /* null means absent */
        } else {
          p = skip_value(&c, p, 1);
          if (!p)
            goto bad;
          jv->kind = V_OTHER;
          jv->s = s;
          jv->n = (size_t)(p - s);
        }
      }
      p = skip_ws(p, end);
      if (p < end && *p == ',') {
        p = skip_ws(p + 1, end);
        continue;
      }
      if (p < end && *p == '}') {
        p++;
        break;
      }
      jfail(&c, p, "expected ',' or '}'");
      goto bad;
    }
  }
  p = skip_ws(p, end);
  if (p != end) {
    jfail(&c, p, "unexpected data after the object");
    goto bad;
  }
  return finish(t, v, err, errlen);
bad:
  if (errlen) {
    size_t off = (size_t)(c.errpos - buf);
    if (c.errpos >= end)
      snprintf(err, errlen, "bad JSON at byte %zu (end of input): %s", off, c.errmsg);
    else
      snprintf(err, errlen, "bad JSON at byte %zu: %s", off, c.errmsg);
  }
  return TICK_BAD_JSON;
}

/* ---------------------------------------------------------------------------------------------
 * CSV */

/* Splits the next CSV field at p (RFC 4180): *fs and *fn get the field's raw content (quotes
 * removed; an inner "" stays doubled and sets *dq). Returns the position after the field (at a
 * ',' or end), or NULL on bad quoting. */
static const char *csv_field(const char *p, const char *end, const char **fs, size_t *fn, int *dq,
                             const char **why) {
  *dq = 0;
  if (p < end && *p == '"') {
    const char *s = ++p;
    for (;;) {
      const char *q = memchr(p, '"', (size_t)(end - p));
      if (!q) {
        *why = "unterminated quoted field";
        return NULL;
      }
      if (q + 1 < end && q[1] == '"') {
        *dq = 1;
        p = q + 2;
        continue;
      }
      *fs = s;
      *fn = (size_t)(q - s);
      p = q + 1;
      if (p < end && *p != ',') {
        *why = "text after a closing quote";
        return NULL;
      }
      return p;
    }
  }
  const char *q = p; /* fields are short: a plain loop beats a memchr call */
  while (q < end && *q != ',')
    q++;
  *fs = p;
  *fn = (size_t)(q - p);
  return q;
}

static int name_is(const char *s, size_t n, const char *name) {
  size_t k = strlen(name);
  if (n != k)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (ch >= 'A' && ch <= 'Z')
      ch = (char)(ch - 'A' + 'a');
    if (ch != name[i])
      return 0;
  }
  return 1;
}

/* Parses a header row: column names are matched case-insensitively after trimming spaces and
 * tabs; unknown columns are ignored; a known column named twice is an error. */
int tick_csv_header(tick_csv *h, const char *line, size_t len, char *err, size_t errlen) {
  const char *p = line, *end = line + len;
  if (len && end[-1] == '\r')
    end--;
  int *cols[F_N] = {&h->col_sym, &h->col_ts, &h->col_px, &h->col_qty, &h->col_bid, &h->col_ask};
  for (int f = 0; f < F_N; f++)
    *cols[f] = -1;
  h->ncols = 0;
  for (;;) {
    const char *fs, *why = NULL;
    size_t fn;
    int dq;
    p = csv_field(p, end, &fs, &fn, &dq, &why);
    if (!p) {
      if (errlen)
        snprintf(err, errlen, "bad header: %s", why);
      return -1;
    }
    while (fn && (*fs == ' ' || *fs == '\t'))
      fs++, fn--;
    while (fn && (fs[fn - 1] == ' ' || fs[fn - 1] == '\t'))
      fn--;
    for (int f = 0; f < F_N; f++) {
      if (!name_is(fs, fn, field_names[f]))
        continue;
      if (*cols[f] >= 0) {
        if (errlen)
          snprintf(err, errlen, "header names column %s twice", field_names[f]);
        return -1;
      }
      *cols[f] = h->ncols;
    }
    h->ncols++;
    if (p >= end)
      break;
    p++; /* ',' */
  }
  for (int f = F_SYM; f <= F_PX; f++) {
    if (*cols[f] >= 0)
      continue;
    if (errlen) {
      char ex[48];
      excerpt(ex, line, (size_t)(end - line));
      snprintf(err, errlen, "header lacks column %s (found %s; expected sym,ts,px[,qty,bid,ask])",
               field_names[f], ex);
    }
    return -1;
  }
  return 0;
}

/* Decodes one CSV row under header h (see tick.h). Wrong field counts and bad quoting give
 * TICK_BAD_ROW; field values follow the JSON rules, with every field a string: ts is an integer
 * or an RFC 3339 timestamp, numbers use the JSON number grammar, empty means absent. */
int tick_parse_csv(const tick_csv *h, tick *t, const char *line, size_t len, char *err,
                   size_t errlen) {
  const char *p = line, *end = line + len;
  if (len && end[-1] == '\r')
    end--;
  const char *fs[F_N] = {0};
  size_t fn[F_N] = {0};
  int fdq[F_N] = {0};
  /* The wanted columns in increasing order, so each field costs one comparison. */
  int want_col[F_N + 1], want_f[F_N], nw = 0;
  const int cols[F_N] = {h->col_sym, h->col_ts, h->col_px, h->col_qty, h->col_bid, h->col_ask};
  for (int f = 0; f < F_N; f++) {
    if (cols[f] < 0)
      continue;
    int k = nw++;
    for (; k > 0 && want_col[k - 1] > cols[f]; k--)
      want_col[k] = want_col[k - 1], want_f[k] = want_f[k - 1];
    want_col[k] = cols[f];
    want_f[k] = f;
  }
  want_col[nw] = -1;
  int n = 0, wi = 0;
  for (;;) {
    const char *s, *why = NULL;
    size_t k;
    int dq;
    p = csv_field(p, end, &s, &k, &dq, &why);
    if (!p) {
      if (errlen)
        snprintf(err, errlen, "bad CSV row: field %d: %s", n + 1, why);
      return TICK_BAD_ROW;
    }
    if (n == want_col[wi]) {
      int f = want_f[wi++];
      fs[f] = s, fn[f] = k, fdq[f] = dq;
    }
    n++;
    if (p >= end)
      break;
    p++;
  }
  if (n != h->ncols) {
    if (errlen)
      snprintf(err, errlen, "row has %d fields, header has %d", n, h->ncols);
    return TICK_BAD_ROW;
  }
  for (int f = F_SYM; f <= F_PX; f++)
    if (!fn[f])
      return missing_field(f, err, errlen);
  if (fdq[F_SYM] || !sym_ok(fs[F_SYM], fn[F_SYM]))
    return bad_field(F_SYM, fs[F_SYM], fn[F_SYM], 1, err, errlen);
  memcpy(t->sym, fs[F_SYM], fn[F_SYM]);
  t->sym_len = (uint8_t)fn[F_SYM];
  t->sym[t->sym_len] = 0;
  if (fdq[F_TS] || (tick_parse_int64(fs[F_TS], fn[F_TS], &t->ts) != 0 &&
                    tick_parse_rfc3339(fs[F_TS], fn[F_TS], &t->ts) != 0))
    return bad_field(F_TS, fs[F_TS], fn[F_TS], 1, err, errlen);
  double val[F_N] = {0};
  for (int f = F_PX; f <= F_ASK; f++) {
    if (!fn[f])
      continue;
    if (fdq[f] || tick_parse_number(fs[f], fn[f], &val[f]) != fn[f] || !num_ok(f, val[f]))
      return bad_field(f, fs[f], fn[f], 1, err, errlen);
  }
  t->px = val[F_PX];
  px_text(t, fs[F_PX], fn[F_PX]);
  t->qty = val[F_QTY] + 0.0;
  t->has_quote = 0;
  t->bid = t->ask = 0;
  if (fn[F_BID] && fn[F_ASK]) {
    t->bid = val[F_BID];
    t->ask = val[F_ASK];
    t->has_quote = t->bid <= t->ask;
  }
  return TICK_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Kafka key */

/* TICK_OK when key is NULL/empty or equals t->sym, else TICK_KEY_MISMATCH with err. */
int tick_check_key(const tick *t, const char *key, size_t keylen, char *err, size_t errlen) {
  if (!key || keylen == 0)
    return TICK_OK;
  if (keylen == t->sym_len && memcmp(key, t->sym, keylen) == 0)
    return TICK_OK;
  if (errlen) {
    char ex[48];
    excerpt(ex, key, keylen);
    snprintf(err, errlen, "message key: found \"%s\", expected the tick's sym \"%s\"", ex, t->sym);
  }
  return TICK_KEY_MISMATCH;
}
