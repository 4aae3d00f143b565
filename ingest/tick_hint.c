/* tick_hint.c: a tick's symbol without decoding the tick (tick.h), for spreading input over
 * threads by instrument before it is decoded. Exact where it answers: the rules below make the
 * bytes it returns the symbol the decoder would give, whenever the decoder accepts the input. */
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "ingest/tick.h"

int tick_csv_sym_hint(const tick_csv *h, const char *line, size_t len, const char **sym,
                      size_t *symlen) {
  if (len && line[len - 1] == '\r') /* as tick_parse_csv */
    len--;
  /* Up to the end of the sym field, without a quote, every field is the plain bytes between
   * commas, as tick_parse_csv splits them; a quote there (a quoted field may hold a comma, and a
   * quoted sym loses its quotes) and the row must be decoded to know. Later fields do not
   * matter. */
  const char *p = line, *end = line + len, *f = line;
  for (int col = 0; p <= end; p++) {
    if (p < end && *p == '"')
      return 0;
    if (p < end && *p != ',')
      continue;
    if (col++ == h->col_sym) {
      *sym = f;
      *symlen = (size_t)(p - f);
      return 1;
    }
    f = p + 1;
  }
  return 0; /* too few fields: bad_row */
}

static int json_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The quote at buf[j] opens the key "sym". */
static int sym_key_at(const char *buf, size_t len, size_t j) {
  return j + 5 <= len && memcmp(buf + j + 1, "sym\"", 4) == 0;
}

int tick_json_sym_hint(const char *buf, size_t len, const char **sym, size_t *symlen) {
  /* Without a backslash no string has an escape, so every '"' delimits a string, and in valid
   * JSON a string that is exactly "sym" appears as those five bytes. Seen once, it is the
   * top-level key sym of any object the decoder accepts (a nested one alone leaves sym missing;
   * a second key or a value "sym" would be a second occurrence), and its value is the string
   * that follows, unescaped.
   * One pass finds the backslashes and the quotes, 16 bytes at a time, and checks each quote for
   * the key: the router of replay --threads N calls this for every record, and a memchr for the
   * backslash and a memmem for the key took 60 ns of a 100-byte tick (bench_replay --pipeline,
   * route_ns; docs/BENCHMARKS.md, "JSON Lines"). */
  const char *k = NULL;
  size_t i = 0;
#ifdef __SSE2__
  const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
  for (; i + 16 <= len; i += 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(v, bslash)))
      return 0;
    for (unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)); m; m &= m - 1) {
      size_t j = i + (size_t)__builtin_ctz(m);
      if (sym_key_at(buf, len, j)) {
        if (k)
          return 0;
        k = buf + j;
      }
    }
  }
#endif
  for (; i < len; i++) {
    if (buf[i] == '\\')
      return 0;
    if (buf[i] == '"' && sym_key_at(buf, len, i)) {
      if (k)
        return 0;
      k = buf + i;
    }
  }
  if (!k)
    return 0;
  const char *end = buf + len, *p = k + 5;
  while (p < end && json_ws(*p))
    p++;
  if (p == end || *p++ != ':')
    return 0;
  while (p < end && json_ws(*p))
    p++;
  if (p == end || *p++ != '"')
    return 0;
  const char *q = memchr(p, '"', (size_t)(end - p));
  if (!q)
    return 0;
  *sym = p;
  *symlen = (size_t)(q - p);
  return 1;
}
