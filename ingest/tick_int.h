/* tick_int.h: what the JSON and CSV tick decoders (tick_json.c, tick_csv.c) share: the known
 * fields, their value rules and the one-line text of a rejection (defined in tick_reason.c).
 * Internal to ingest/; the public API is tick.h. */
#ifndef INGEST_TICK_INT_H
#define INGEST_TICK_INT_H

#include <stddef.h>
#include <string.h>

#include "ingest/tick.h"

/* The known fields of CONTRACT §1; F_OTHER is any other key or column. */
enum { F_SYM, F_TS, F_PX, F_QTY, F_BID, F_ASK, F_N, F_OTHER = F_N };

/* The fields' names as keys and header columns: "sym", "ts", "px", "qty", "bid", "ask". */
extern const char *const tick_field_names[F_N];

/* Writes s[0..n) into out (cap >= 48) as a one-line, printable excerpt of at most 40 bytes:
 * control and non-ASCII bytes become '?', and "..." marks truncation. */
void tick_excerpt(char *out, const char *s, size_t n);

/* Writes "field px: found -3, expected a finite number > 0" into err (quote = 1 wraps the
 * excerpt in quotes) and returns the field's reason (TICK_BAD_PX, ...). */
int tick_bad_field(int f, const char *s, size_t n, int quote, char *err, size_t errlen);

/* Writes "missing field ts" into err and returns TICK_MISSING_FIELD. */
int tick_missing_field(int f, char *err, size_t errlen);

/* 1 for the bytes a sym may hold: 0x21..0x7E without '"', '\\', ','. */
extern const unsigned char tick_sym_byte[256];

/* Checks sym bytes: 1..32 of 0x21..0x7E without '"', '\\', ','. */
static inline int sym_ok(const char *s, size_t n) {
  if (n < 1 || n > TICK_SYM_MAX)
    return 0;
  unsigned ok = 1;
  for (size_t i = 0; i < n; i++)
    ok &= tick_sym_byte[(unsigned char)s[i]];
  return (int)ok;
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

#endif
