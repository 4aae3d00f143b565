/* fmt.c: number formatting for the prediction encoders without snprintf on the hot path:
 * integers with a two-digit table, doubles with one exact 128-bit integer scaling to an integer
 * mantissa (a long-double scaling for very small or large values).
 * Not a general printf: the output format is fixed (see fmt.h) and always valid JSON and CSV. */
#include "ingest/fmt.h"

#include <stdio.h>
#include <string.h>

#include "ingest/number.h"
#include "ingest/pow10_int.h"

static const char digit_pairs[201] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

/* Writes v's decimal digits; returns their count (1..20). */
size_t fmt_u64(char *out, uint64_t v) {
  char tmp[20];
  char *p = tmp + 20;
  while (v >= 100) {
    unsigned r = (unsigned)(v % 100);
    v /= 100;
    p -= 2;
    memcpy(p, digit_pairs + 2 * r, 2);
  }
  if (v >= 10) {
    p -= 2;
    memcpy(p, digit_pairs + 2 * v, 2);
  } else {
    *--p = (char)('0' + v);
  }
  size_t n = (size_t)(tmp + 20 - p);
  memcpy(out, p, n);
  return n;
}

/* Writes v in decimal with a leading '-' when negative (INT64_MIN included). */
size_t fmt_i64(char *out, int64_t v) {
  if (v < 0) {
    *out = '-';
    return 1 + fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
  }
  return fmt_u64(out, (uint64_t)v);
}

static const uint64_t pow10_u64[20] = {1ULL,
                                       10ULL,
                                       100ULL,
                                       1000ULL,
                                       10000ULL,
                                       100000ULL,
                                       1000000ULL,
                                       10000000ULL,
                                       100000000ULL,
                                       1000000000ULL,
                                       10000000000ULL,
                                       100000000000ULL,
                                       1000000000000ULL,
                                       10000000000000ULL,
                                       100000000000000ULL,
                                       1000000000000000ULL,
                                       10000000000000000ULL,
                                       100000000000000000ULL,
                                       1000000000000000000ULL,
                                       10000000000000000000ULL};

/* Lays out the decimal digits d[0..nd) (d[0] != '0', no trailing zeros) times 10^e10 (the
 * exponent of the first digit): plain decimal for -5 <= e10 < 15, else d.ddde[+-]XX. */
static size_t layout(char *out, int neg, const char *d, int nd, int e10) {
  char *p = out;
  if (neg)
    *p++ = '-';
  if (e10 >= -5 && e10 < 15) {
    if (e10 < 0) {
      *p++ = '0';
      *p++ = '.';
      for (int k = -1; k > e10; k--)
        *p++ = '0';
      memcpy(p, d, (size_t)nd);
      p += nd;
    } else if (nd <= e10 + 1) {
      memcpy(p, d, (size_t)nd);
      p += nd;
      for (int k = nd; k <= e10; k++)
        *p++ = '0';
    } else {
      memcpy(p, d, (size_t)e10 + 1);
      p += e10 + 1;
      *p++ = '.';
      memcpy(p, d + e10 + 1, (size_t)(nd - e10 - 1));
      p += nd - e10 - 1;
    }
  } else {
    *p++ = d[0];
    if (nd > 1) {
      *p++ = '.';
      memcpy(p, d + 1, (size_t)nd - 1);
      p += nd - 1;
    }
    *p++ = 'e';
    *p++ = e10 < 0 ? '-' : '+';
    unsigned ae = (unsigned)(e10 < 0 ? -e10 : e10);
    if (ae >= 100)
      *p++ = (char)('0' + ae / 100), ae %= 100;
    memcpy(p, digit_pairs + 2 * ae, 2);
    p += 2;
  }
  return (size_t)(p - out);
}

/* The digits of |v| rounded to sig significant digits, through snprintf: used off the fast
 * path's scaling range, near rounding ties, and as the exact fallback of fmt_double_short. */
static size_t sig_slow(char *out, double v, int sig) {
  char tmp[64], d[24];
  snprintf(tmp, sizeof tmp, "%.*e", sig - 1, v);
  const char *p = tmp;
  int neg = 0, nd = 0;
  if (*p == '-')
    neg = 1, p++;
  for (; *p && *p != 'e'; p++)
    if (*p >= '0' && *p <= '9')
      d[nd++] = *p;
  int e10 = 0, eneg = 0;
  if (*p == 'e')
    p++;
  if (*p == '-' || *p == '+')
    eneg = *p == '-', p++;
  for (; *p >= '0' && *p <= '9'; p++)
    e10 = e10 * 10 + (*p - '0');
  if (eneg)
    e10 = -e10;
  while (nd > 1 && d[nd - 1] == '0')
    nd--;
  return layout(out, neg, d, nd, e10);
}

/* a * 10^k rounded to the nearest integer, exactly, for 0 <= k <= 19: a = M * 2^E with M < 2^53,
 * so M * 10^k < 2^117 is one 64 x 64 -> 128-bit product, and the bits that E < 0 shifts out
 * decide the rounding. Returns 0 with *m set; 1 when a is too large for this path (E >= 0) or the
 * result would not fit 64 bits; -1 on an exact halfway case (printf decides those). */
static int scale_exact(double a, int k, uint64_t *m) {
  int e2;
  double f = __builtin_frexp(a, &e2); /* a = f * 2^e2, 0.5 <= f < 1 */
  uint64_t M = (uint64_t)(f * 0x1p53);
  int sh = 53 - e2; /* a = M * 2^-sh */
  if (sh <= 0 || sh > 117)
    return 1;
  unsigned __int128 P = (unsigned __int128)M * pow10_u64[k]; /* < 2^117 */
  if ((P >> sh) >> 63)
    return 1;
  unsigned __int128 half = (unsigned __int128)1 << (sh - 1);
  unsigned __int128 rem = P & ((half << 1) - 1);
  if (rem == half)
    return -1;
  *m = (uint64_t)(P >> sh) + (rem > half);
  return 0;
}

/* The sig-digit decimal of a = |v| > 0: *m (sig digits, first one non-zero)
 * times 10^(*e10 - sig + 1). The scaling by 10^k to a sig-digit integer is exact in 128-bit
 * integers for 0 <= k <= 19 (scale_exact: prices and returns); otherwise one long-double
 * multiply or divide by an exact power of ten (relative error <= 2^-64), where the rare values
 * that land within that error of a rounding halfway point return -1. Exact halfway points also
 * return -1, for printf to decide, so the digits always equal printf's %.*e. Also -1 when
 * rounding carries the value out of the range. */
static int sig_digits(double a, int sig, uint64_t *mo, int *e10o) {
  /* e10 estimate from the binary exponent, then fixed up by the rounded mantissa's size. */
  int e2;
  __builtin_frexp(a, &e2);
  int e10 = (int)((e2 - 1) * 0.30102999566398120) - ((e2 - 1) < 0);
  uint64_t lo = pow10_u64[sig - 1], hi = pow10_u64[sig];
  uint64_t m = 0;
  for (int tries = 0; tries < 3; tries++) {
    int k = sig - 1 - e10; /* scale by 10^k; |k| <= 22 in this range */
    if (k < -27 || k > 27)
      return -1;
    int ex = k >= 0 && k <= 19 ? scale_exact(a, k, &m) : 1;
    if (ex < 0)
      return -1;
    if (ex > 0) {
      long double s = k >= 0 ? (long double)a * pow10l_exact[k] : (long double)a / pow10l_exact[-k];
      long double half = s - __builtin_floorl(s) - 0.5L;
      if (__builtin_fabsl(half) < s * 0x1p-62L)
        return -1; /* 4x the worst rounding error */
      m = (uint64_t)__builtin_rintl(s);
    }
    if (m >= hi)
      e10++;
    else if (m < lo)
      e10--;
    else
      break;
  }
  if (m < lo || m >= hi)
    return -1;
  *mo = m;
  *e10o = e10;
  return 0;
}

/* Lays out mantissa m of sig digits with first-digit exponent e10, trailing zeros stripped. */
static size_t layout_m(char *out, int neg, uint64_t m, int sig, int e10) {
  char d[20];
  int i = sig;
  for (; i >= 2; i -= 2) { /* two digits at a time, from the last */
    memcpy(d + i - 2, digit_pairs + 2 * (m % 100), 2);
    m /= 100;
  }
  if (i)
    d[0] = (char)('0' + m);
  int nd = sig;
  while (nd > 1 && d[nd - 1] == '0')
    nd--;
  return layout(out, neg, d, nd, e10);
}

/* Writes v with sig (1..17) significant digits, rounded as printf's %.{sig-1}e rounds, trailing
 * zeros stripped: plain decimal for 1e-5 <= |v| < 1e15, else d.ddde[+-]XX; 0 and -0 as "0"; NaN
 * and +-Inf as "null". Values whose scaling to sig digits stays within 10^+-27 (for sig = 10,
 * about 1e-18 <= |v| < 1e37: small returns included) take the snprintf-free path of sig_digits. */
size_t fmt_double_sig(char *out, double v, int sig) {
  if (sig < 1)
    sig = 1;
  if (sig > 17)
    sig = 17;
  if (!(v - v == 0)) {
    memcpy(out, "null", 4);
    return 4;
  }
  if (v == 0) {
    out[0] = '0';
    return 1;
  }
  int neg = v < 0;
  double a = neg ? -v : v;
  uint64_t m;
  int e10;
  if (sig_digits(a, sig, &m, &e10) != 0) /* out of its +-27 scaling range, or near a tie */
    return sig_slow(out, v, sig);
  return layout_m(out, neg, m, sig, e10);
}

/* Writes the first of the 15, 16 and 17 digit forms that reads back as exactly v. Whether a form
 * m * 10^q reads back as v is decided without parsing: it does when it lies strictly inside v's
 * rounding interval (half an ulp on its side). The difference is computed in long double with
 * an error far below that half ulp; only a form within the error of the interval's edge is parsed
 * back with tick_parse_number. Seventeen correctly rounded digits always read back. */
size_t fmt_double_short(char *out, double v) {
  if (!(v - v == 0) || v == 0)
    return fmt_double_sig(out, v, 17);
  int neg = v < 0;
  double a = neg ? -v : v;
  if (a >= 1e-5 && a < 1e15) {
    for (int sig = 15; sig <= 17; sig++) {
      uint64_t m;
      int e10;
      if (sig_digits(a, sig, &m, &e10) != 0)
        break;
      if (sig == 17)
        return layout_m(out, neg, m, sig, e10);
      int q = e10 - sig + 1; /* in [-20, 0] */
      long double d = q < 0 ? (long double)m / pow10l_exact[-q] : (long double)m;
      long double diff = d - (long double)a;
      long double half = diff >= 0 ? (long double)(__builtin_nextafter(a, 1e308) - a) / 2
                                   : (long double)(a - __builtin_nextafter(a, 0)) / 2;
      long double err = (long double)a * 0x1p-62L, ad = __builtin_fabsl(diff);
      if (ad + err < half)
        return layout_m(out, neg, m, sig, e10);
      if (ad - err > half)
        continue;
      size_t n = layout_m(out, neg, m, sig, e10);
      double back;
      if (tick_parse_number(out, n, &back) == n && back == v)
        return n;
    }
  }
  for (int sig = 15; sig <= 17; sig++) {
    size_t n = fmt_double_sig(out, v, sig);
    double back;
    if (tick_parse_number(out, n, &back) == n && back == v)
      return n;
  }
  return sig_slow(out, v, 17);
}
