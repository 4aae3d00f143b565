/* tick_reason.c: why a tick is rejected: the stable reason names, the one-line error text for a
 * bad or missing field that both decoders write, the bytes a sym may hold, and the Kafka key
 * check. Not for decoding (tick_json.c, tick_csv.c). */
#include "ingest/tick.h"

#include <stdio.h>
#include <string.h>

#include "ingest/tick_int.h"

static const char *const reason_names[TICK_NREASONS] = {
    "ok",      "bad_json",  "missing_field",    "bad_sym",      "bad_ts",
    "bad_px",  "bad_qty",   "bad_quote",        "key_mismatch", "out_of_order",
    "bad_row", "future_ts", "instrument_limit",
};

/* Returns the stable name of a reason; "unknown" outside the table. */
const char *tick_reason_name(int reason) {
  if (reason < 0 || reason >= TICK_NREASONS)
    return "unknown";
  return reason_names[reason];
}

/* The error text below is only written on rejection, so snprintf is fine here. */

/* Writes s[0..n) into out (cap >= 48) as a one-line, printable excerpt of at most 40 bytes:
 * control and non-ASCII bytes become '?', and "..." marks truncation. */
void tick_excerpt(char *out, const char *s, size_t n) {
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

const char *const tick_field_names[F_N] = {"sym", "ts", "px", "qty", "bid", "ask"};

static const char *const field_expect[] = {
    "1..32 bytes of printable ASCII without '\"', '\\' or ','",
    "integer nanoseconds or an RFC 3339 timestamp, within int64 nanoseconds (1677-09-21 to "
    "2262-04-11)",
    "a finite number > 0",
    "a finite number >= 0",
    "a finite number > 0",
    "a finite number > 0",
};

static const int field_reason[F_N] = {TICK_BAD_SYM, TICK_BAD_TS,    TICK_BAD_PX,
                                      TICK_BAD_QTY, TICK_BAD_QUOTE, TICK_BAD_QUOTE};

/* "field px: found -3, expected a finite number > 0"; quote = 1 wraps the excerpt in quotes. */
int tick_bad_field(int f, const char *s, size_t n, int quote, char *err, size_t errlen) {
  if (errlen) {
    char ex[48];
    tick_excerpt(ex, s, n);
    snprintf(err, errlen,
             quote ? "field %s: found \"%s\", expected %s" : "field %s: found %s, expected %s",
             tick_field_names[f], ex, field_expect[f]);
  }
  return field_reason[f];
}

int tick_missing_field(int f, char *err, size_t errlen) {
  if (errlen)
    snprintf(err, errlen, "missing field %s", tick_field_names[f]);
  return TICK_MISSING_FIELD;
}

/* The bytes a sym may hold (see sym_ok in tick_int.h). */
/* clang-format off */
const unsigned char tick_sym_byte[256] = {
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

/* TICK_OK when key is NULL/empty or equals t->sym, else TICK_KEY_MISMATCH with err. */
int tick_check_key(const tick *t, const char *key, size_t keylen, char *err, size_t errlen) {
  if (!key || keylen == 0)
    return TICK_OK;
  if (keylen == t->sym_len && memcmp(key, t->sym, keylen) == 0)
    return TICK_OK;
  if (errlen) {
    char ex[48];
    tick_excerpt(ex, key, keylen);
    snprintf(err, errlen, "message key: found \"%s\", expected the tick's sym \"%s\"", ex, t->sym);
  }
  return TICK_KEY_MISMATCH;
}

int tick_ooo_message(char *buf, size_t n, int64_t ts, int64_t last_ts, const char *sym) {
  return snprintf(buf, n, "field ts: found %lld, expected >= %lld (the last accepted tick of %s)",
                  (long long)ts, (long long)last_ts, sym);
}
