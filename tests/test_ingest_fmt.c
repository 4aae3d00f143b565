/* test_ingest_fmt.c: ingest/fmt.c against snprintf and strtod on millions of values: integers
 * exactly, fmt_double_short round trips bit for bit, fmt_double_sig within half a unit of its
 * last digit and equal to printf's digits except possibly the last, every output valid JSON. */
#include <float.h>
#include <stdlib.h>

#include "check.h"
#include "ingest/fmt.h"
#include "ingest/number.h"

static uint64_t rng = 0x243F6A8885A308D3ULL;
static uint64_t rnd(void) {
  uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* A test value: random bits (every exponent), log-uniform 1e-12..1e18, price-like decimals, the
 * neighbours of powers of ten and of the plain/exponent boundaries, and odd multiples of powers
 * of two (exact decimal halfway points at some digit count: the ties printf rounds to even). */
static double pick(uint64_t i) {
  uint64_t u = rnd();
  double d;
  switch (i % 6) {
  case 0: memcpy(&d, &u, sizeof d); return d;
  case 1:
    return (u & 1 ? -1 : 1) * pow(10.0, -12.0 + 30.0 * (double)(u >> 11) / 9007199254740992.0);
  case 2: return (double)(u % 100000000) / pow(10.0, (double)(rnd() % 9));
  case 3: {
    double p = pow(10.0, (double)((int)(u % 60) - 30));
    int k = (int)(rnd() % 7) - 3;
    for (; k > 0; k--)
      p = nextafter(p, INFINITY);
    for (; k < 0; k++)
      p = nextafter(p, 0);
    return p;
  }
  case 4: return ldexp((double)(2 * (u >> 24) + 1), -(int)(rnd() % 70));
  default: {
    static const double edges[] = {1e-5,    1e15,    9.9999999999e-6, 999999999999999.0, 0.5,
                                   DBL_MIN, DBL_MAX, DBL_TRUE_MIN,    4.8153075e-05,     24.9};
    double e = edges[u % 10];
    int k = (int)(rnd() % 5) - 2;
    for (; k > 0; k--)
      e = nextafter(e, INFINITY);
    for (; k < 0; k++)
      e = nextafter(e, 0);
    return e;
  }
  }
}

/* The significant digits and exponent of a %.{sig-1}e string: digits into d, returns e10. */
static int sci_digits(const char *s, char *d, int *nd) {
  int n = 0;
  for (; *s && *s != 'e'; s++)
    if (*s >= '0' && *s <= '9')
      d[n++] = *s;
  *nd = n;
  return atoi(s + 1);
}

/* Reads our output back as an integer mantissa of sig digits and its first-digit exponent. */
static int our_digits(const char *s, char *d, int *nd) {
  int n = 0, e10 = 0, seen = 0, before = 0, point = 0, lead = 0;
  const char *p = s;
  if (*p == '-')
    p++;
  for (; *p && *p != 'e'; p++) {
    if (*p == '.') {
      point = 1;
      continue;
    }
    if (!seen && *p == '0') {
      if (point)
        lead++;
      continue;
    }
    seen = 1;
    d[n++] = *p;
    if (!point)
      before++;
  }
  if (*p == 'e')
    e10 = atoi(p + 1) + before - 1;
  else
    e10 = before ? before - 1 : -lead - 1;
  *nd = n;
  return e10;
}

static void test_ints(void) {
  char a[32], b[32];
  static const int64_t cases[] = {0,
                                  1,
                                  -1,
                                  9,
                                  10,
                                  99,
                                  100,
                                  12345,
                                  INT64_MAX,
                                  INT64_MIN,
                                  1700000000000000000LL,
                                  -865193280000000000LL};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    size_t n = fmt_i64(a, cases[i]);
    a[n] = 0;
    snprintf(b, sizeof b, "%" PRId64, cases[i]);
    CHECK_STR(a, b);
  }
  size_t n = fmt_u64(a, UINT64_MAX);
  a[n] = 0;
  CHECK_STR(a, "18446744073709551615");
  int bad = 0;
  for (int i = 0; i < 1000000; i++) {
    uint64_t u = rnd() >> (rnd() % 64);
    n = fmt_u64(a, u);
    a[n] = 0;
    snprintf(b, sizeof b, "%" PRIu64, u);
    if (strcmp(a, b))
      bad++;
    int64_t v = (int64_t)(rnd() >> (rnd() % 64));
    n = fmt_i64(a, v);
    a[n] = 0;
    snprintf(b, sizeof b, "%" PRId64, v);
    if (strcmp(a, b))
      bad++;
  }
  CHECK_INT(bad, 0);
}

static void test_fixed(void) {
  static const struct {
    double v;
    int sig;
    const char *want;
  } cases[] = {
      {24.9, 17, "24.899999999999999"},
      {24.9, 10, "24.9"},
      {4.8153075e-05, 9, "0.000048153075"},
      {1e-5, 10, "0.00001"},
      {9.99999e-06, 10, "9.99999e-06"},
      {1e15, 10, "1e+15"},
      {999999999999999.9, 10, "1e+15"},
      {123456.0, 3, "123000"},
      {0.125, 2, "0.12"},
      {-42.42, 10, "-42.42"},
      {0.0, 10, "0"},
      {-0.0, 10, "0"},
      {NAN, 10, "null"},
      {INFINITY, 10, "null"},
      {-INFINITY, 10, "null"},
      {1e-300, 5, "1e-300"},
      {DBL_MAX, 10, "1.797693135e+308"},
      {100, 10, "100"},
      {0.1, 1, "0.1"},
      {9.5, 1, "10"}, /* ties to even, like printf, then 10 is plain */
      {0.125, 2, "0.12"},
      {0.375, 2, "0.38"},
      {1234567.5, 7, "1234568"},
      {1234568.5, 7, "1234568"},
      {1.1, 10, "1.1"},
      {1.000123456789e-10, 10, "1.000123457e-10"},
      {5e-324, 3, "4.94e-324"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char out[40];
    size_t n = fmt_double_sig(out, cases[i].v, cases[i].sig);
    out[n] = 0;
    CHECK_STR(out, cases[i].want);
  }
  static const struct {
    double v;
    const char *want;
  } shorts[] = {{24.9, "24.9"},
                {0.1, "0.1"},
                {1.0 / 3, "0.3333333333333333"},
                {1e21, "1e+21"},
                {123456789012345.6, "123456789012345.6"},
                {0.30000000000000004, "0.30000000000000004"},
                {2.5e-7, "2.5e-07"},
                {1, "1"}};
  for (size_t i = 0; i < sizeof shorts / sizeof *shorts; i++) {
    char out[40];
    size_t n = fmt_double_short(out, shorts[i].v);
    out[n] = 0;
    CHECK_STR(out, shorts[i].want);
  }
}

static void test_random_doubles(void) {
  enum { N = 2000000 };
  long bad_trip = 0, bad_len = 0, bad_json = 0, bad_err = 0, bad_digits = 0, last_digit = 0;
  long checked = 0;
  for (uint64_t i = 0; i < N; i++) {
    double v = pick(i);
    if (!isfinite(v))
      continue;
    char out[48], ref[64];
    /* Round trip. */
    size_t n = fmt_double_short(out, v);
    out[n] = 0;
    if (n > 24)
      bad_len++;
    double back = strtod(out, NULL);
    if (!(back == v))
      bad_trip++;
    double mine;
    if (tick_parse_number(out, n, &mine) != n)
      bad_json++;
    /* sig digits vs printf. */
    int sig = 1 + (int)(rnd() % 17);
    n = fmt_double_sig(out, v, sig);
    out[n] = 0;
    if (n > 32)
      bad_len++;
    if (tick_parse_number(out, n, &mine) != n || strchr(out, ','))
      bad_json++;
    if (v == 0)
      continue;
    checked++;
    /* The printed value is within half a unit of the sig-th digit (relative to |v|'s leading
     * digit, so bounded by 0.5 * 10^(1 - sig) relative). Long double, so 2e+308 does not overflow.
     */
    double rel = (double)(fabsl(strtold(out, NULL) - (long double)v) / fabsl((long double)v));
    if (rel > 0.5 * pow(10.0, 1 - sig) * (1 + 1e-9) + 4 * DBL_EPSILON) {
      if (bad_err < 5)
        fprintf(stderr, "  %.17g sig %d: %s (relative error %.3g)\n", v, sig, out, rel);
      bad_err++;
    }
    snprintf(ref, sizeof ref, "%.*e", sig - 1, v);
    char d1[24], d2[24];
    int n1, n2;
    int e1 = sci_digits(ref, d1, &n1), e2 = our_digits(out, d2, &n2);
    while (n2 < n1)
      d2[n2++] = '0';
    /* Same exponent and digits, or a difference of one unit in the last digit. */
    uint64_t m1 = 0, m2 = 0;
    for (int k = 0; k < n1; k++)
      m1 = m1 * 10 + (uint64_t)(d1[k] - '0');
    for (int k = 0; k < n2 && k < n1; k++)
      m2 = m2 * 10 + (uint64_t)(d2[k] - '0');
    if (e1 == e2 && m1 == m2)
      continue;
    if (e1 == e2 && (m1 == m2 + 1 || m2 == m1 + 1)) {
      last_digit++;
      continue;
    }
    if (bad_digits < 5)
      fprintf(stderr, "  %.17g sig %d: printf %s, fmt %s\n", v, sig, ref, out);
    bad_digits++;
  }
  printf("%ld values: %ld differ from printf in the last digit only\n", checked, last_digit);
  CHECK_INT(bad_trip, 0);
  CHECK_INT(bad_len, 0);
  CHECK_INT(bad_json, 0);
  CHECK_INT(bad_err, 0);
  CHECK_INT(bad_digits, 0);
  CHECK_INT(last_digit, 0); /* halfway cases go to printf, so even the last digit agrees */
}

int main(void) {
  test_ints();
  test_fixed();
  test_random_doubles();
  return check_done();
}
