/* fuzz_fmt.c: fuzzes ingest/fmt.h with doubles taken from the input bytes (8 bytes each, any bit
 * pattern, plus a digit count): fmt_double_short must read back exactly (strtod), fmt_double_sig
 * must equal printf's %.{sig-1}e digits and exponent, and every output must be one JSON number
 * (tick_parse_number consumes all of it) of at most 32 bytes, or "null" for NaN/Inf. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/fmt.h"
#include "ingest/number.h"

static void fail(const char *what, double v, int sig, const char *out, const char *ref) {
  fprintf(stderr, "fuzz_fmt: %s: %.17g (sig %d): fmt \"%s\", reference \"%s\"\n", what, v, sig, out,
          ref);
  abort();
}

/* Value of a plain or exponent-form decimal as "d.ddd…e±X" digits: normalizes our output the way
 * %.{sig-1}e would print it, so the two compare as strings. */
static void normalize(const char *s, int sig, char *out) {
  char d[64];
  int nd = 0, before = 0, point = 0, lead = 0, seen = 0;
  const char *p = s;
  int neg = *p == '-';
  if (neg)
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
    d[nd++] = *p;
    if (!point)
      before++;
  }
  int e10 = *p == 'e' ? atoi(p + 1) + before - 1 : (before ? before - 1 : -lead - 1);
  while (nd < sig)
    d[nd++] = '0';
  char *o = out;
  if (neg)
    *o++ = '-';
  *o++ = d[0];
  if (sig > 1) {
    *o++ = '.';
    memcpy(o, d + 1, (size_t)sig - 1);
    o += sig - 1;
  }
  sprintf(o, "e%+03d", e10);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (size_t i = 0; i + 9 <= size; i += 9) {
    double v;
    memcpy(&v, data + i, 8);
    int sig = 1 + data[i + 8] % 17;
    char out[64], ref[64], norm[64];
    size_t n = fmt_double_short(out, v);
    out[n] = 0;
    if (n > 32)
      fail("too long", v, 0, out, "");
    if (!isfinite(v)) {
      if (strcmp(out, "null"))
        fail("non-finite", v, 0, out, "null");
      continue;
    }
    double back = strtod(out, NULL), mine;
    if (back != v)
      fail("round trip", v, 0, out, "");
    if (tick_parse_number(out, n, &mine) != n)
      fail("not a JSON number", v, 0, out, "");
    n = fmt_double_sig(out, v, sig);
    out[n] = 0;
    if (n > 32 || tick_parse_number(out, n, &mine) != n)
      fail("not a JSON number", v, sig, out, "");
    if (v == 0) {
      if (strcmp(out, "0"))
        fail("zero", v, sig, out, "0");
      continue;
    }
    snprintf(ref, sizeof ref, "%.*e", sig - 1, v);
    normalize(out, sig, norm);
    if (strcmp(norm, ref))
      fail("digits differ from printf", v, sig, out, ref);
  }
  return 0;
}
