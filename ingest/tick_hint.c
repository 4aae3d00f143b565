/* tick_hint.c: a tick's symbol without decoding the tick (tick.h), for spreading input over
 * threads by instrument before it is decoded. Exact where it answers: the rules below make the
 * bytes it returns the symbol the decoder would give, whenever the decoder accepts the input. */
#include <string.h>

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

int tick_json_sym_hint(const char *buf, size_t len, const char **sym, size_t *symlen) {
  /* Without a backslash no string has an escape, so every '"' delimits a string, and in valid
   * JSON a string that is exactly "sym" appears as those five bytes. Seen once, it is the
   * top-level key sym of any object the decoder accepts (a nested one alone leaves sym missing;
   * a second key or a value "sym" would be a second occurrence), and its value is the string
   * that follows, unescaped. */
  if (memchr(buf, '\\', len))
    return 0;
  const char *end = buf + len, *k = NULL;
  for (const char *p = buf; (p = memmem(p, (size_t)(end - p), "\"sym\"", 5)); p += 5) {
    if (k)
      return 0;
    k = p;
  }
  if (!k)
    return 0;
  const char *p = k + 5;
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
