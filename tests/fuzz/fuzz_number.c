/* fuzz_number.c: differential fuzzing of tick_parse_number (Clinger fast path plus the bounded
 * strtod fallback with a sticky digit) against a plain grammar check and glibc strtod on a full
 * copy: the consumed length must be the longest JSON-number prefix and the value bit-identical. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/number.h"

static int dig(char c) {
  return c >= '0' && c <= '9';
}

/* Length of the longest prefix of s that is a JSON number, 0 when none. */
static size_t json_number_len(const char *s, size_t n) {
  size_t i = 0;
  if (i < n && s[i] == '-')
    i++;
  if (i >= n || !dig(s[i]))
    return 0;
  if (s[i] == '0')
    i++;
  else
    while (i < n && dig(s[i]))
      i++;
  size_t ok = i;
  if (i < n && s[i] == '.') {
    i++;
    if (i >= n || !dig(s[i]))
      return 0;
    while (i < n && dig(s[i]))
      i++;
    ok = i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-'))
      i++;
    if (i >= n || !dig(s[i]))
      return 0;
    while (i < n && dig(s[i]))
      i++;
    ok = i;
  }
  return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  double v = 0;
  size_t got = tick_parse_number(s, size, &v);
  size_t want = json_number_len(s, size);
  if (got != want) {
    fprintf(stderr, "fuzz_number: consumed %zu, grammar says %zu: %.*s\n", got, want,
            (int)(size > 200 ? 200 : size), s);
    abort();
  }
  if (!want)
    return 0;
  char *copy = malloc(want + 1);
  memcpy(copy, s, want);
  copy[want] = 0;
  double r = strtod(copy, NULL);
  if (memcmp(&r, &v, sizeof v) != 0) {
    fprintf(stderr, "fuzz_number: %s: ours %.17g, strtod %.17g\n", want > 200 ? "(long)" : copy, v,
            r);
    abort();
  }
  free(copy);
  return 0;
}
