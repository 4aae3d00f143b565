/* tick.h: one tick (CONTRACT §1) and its decoders: a JSON object (the daemon's hot path,
 * allocation-free, tick_json.c), a CSV row under a parsed header (tick_csv.c), and the reasons a
 * tick is rejected (tick_reason.c). Numbers and timestamps have their own parsers (number.h,
 * rfc3339.h). Not for files or Kafka plumbing (see tickfile.h and the daemon). */
#ifndef INGEST_TICK_H
#define INGEST_TICK_H

#include <stddef.h>
#include <stdint.h>

#define TICK_SYM_MAX 32
#define TICK_PX_TXT_MAX 24 /* px tokens up to this long are kept as text (see tick.px_txt) */

/* Deepest nesting tick_parse_json accepts, the tick object itself counting as 1; deeper values
 * (in unknown keys) make the tick bad_json. */
#define TICK_JSON_DEPTH_MAX 64

/* Why a tick was rejected. Names (tick_reason_name) are stable: they appear in stats, metrics and
 * dead letters. */
enum tick_reason {
  TICK_OK = 0,
  TICK_BAD_JSON,         /* not one valid JSON object (CSV rows use TICK_BAD_ROW) */
  TICK_MISSING_FIELD,    /* sym, ts or px absent */
  TICK_BAD_SYM,          /* not 1..32 bytes of 0x21..0x7E without " \ , (or not a string) */
  TICK_BAD_TS,           /* not an int64 ns integer nor an RFC 3339 string */
  TICK_BAD_PX,           /* not a finite number > 0 */
  TICK_BAD_QTY,          /* not a finite number >= 0 */
  TICK_BAD_QUOTE,        /* bid or ask present but not a finite number > 0 */
  TICK_KEY_MISMATCH,     /* Kafka message key present and != sym */
  TICK_OUT_OF_ORDER,     /* ts older than the instrument's last accepted tick */
  TICK_BAD_ROW,          /* a CSV row with the wrong field count or bad quoting ("bad_row") */
  TICK_FUTURE_TS,        /* ts further ahead of the wall clock than the daemon's --max-future */
  TICK_INSTRUMENT_LIMIT, /* a new instrument while --max-instruments are live (the daemon) */
  TICK_NREASONS
};

/* Returns "bad_json", "missing_field", ... ; "ok" for TICK_OK. */
const char *tick_reason_name(int reason);

/* The message of an out_of_order tick of sym at ts, the instrument's last accepted tick being at
 * last_ts: "field ts: found TS, expected >= LAST (the last accepted tick of SYM)". As snprintf. */
int tick_ooo_message(char *buf, size_t n, int64_t ts, int64_t last_ts, const char *sym);

typedef struct tick {
  int64_t ts;                   /* ns since the Unix epoch, UTC */
  double px;                    /* > 0 */
  double qty;                   /* >= 0, 0 when absent */
  double bid;                   /* valid only when has_quote */
  double ask;                   /* valid only when has_quote */
  uint8_t has_quote;            /* both present and bid <= ask: the spread feature is used */
  uint8_t ts_int;               /* ts was written as an integer (not a time string) */
  uint8_t sym_len;              /* 1..TICK_SYM_MAX */
  char sym[TICK_SYM_MAX + 1];   /* NUL-terminated */
  uint8_t px_len;               /* bytes in px_txt; 0 when the token was longer than the buffer */
  char px_txt[TICK_PX_TXT_MAX]; /* px as it was written in the input (a JSON number token, no
                                   NUL), which reads back to exactly px: echoed by encoders */
} tick;

/* Decodes one JSON object (CONTRACT §1) from buf[0..len) (not NUL-terminated). Unknown keys,
 * including nested objects and arrays, are skipped; duplicate keys: the last one wins.
 * Returns TICK_OK or a reason; on a reason, writes into err (if errlen > 0) one line naming the
 * field, what was found and what was expected, e.g. "field px: found -3, expected a finite
 * number > 0". Never allocates, never reads outside buf. */
int tick_parse_json(tick *t, const char *buf, size_t len, char *err, size_t errlen);

/* A CSV header: which column holds which field. */
typedef struct tick_csv {
  int ncols;                                              /* columns in the header */
  int col_sym, col_ts, col_px, col_qty, col_bid, col_ask; /* -1 when absent (qty/bid/ask) */
} tick_csv;

/* Parses a header row. Returns 0, or -1 with err saying which required column is missing. */
int tick_csv_header(tick_csv *h, const char *line, size_t len, char *err, size_t errlen);

/* Decodes one CSV row (no trailing newline; a trailing '\r' is ignored). Fields are plain or
 * double-quoted (RFC 4180); an empty field is absent. In CSV a ts field is an integer (ns), an
 * RFC 3339 string or a date alone (YYYY-MM-DD, midnight UTC: CSV is only read from files). Same
 * return and err convention as tick_parse_json. */
int tick_parse_csv(const tick_csv *h, tick *t, const char *line, size_t len, char *err,
                   size_t errlen);

/* The symbol of a CSV row or JSON tick without decoding it (tick_hint.c), for placing input by
 * instrument before decoding: 1 with *sym, *symlen set to bytes of line that are exactly the
 * symbol tick_parse_csv / tick_parse_json gives whenever it accepts the input; 0 when it cannot
 * tell cheaply (a CSV row with a quote, JSON with a backslash or more than one "sym"), and the
 * caller decodes. For rejected input the answer means nothing. */
int tick_csv_sym_hint(const tick_csv *h, const char *line, size_t len, const char **sym,
                      size_t *symlen);
int tick_json_sym_hint(const char *buf, size_t len, const char **sym, size_t *symlen);

/* Checks a Kafka message key against the decoded tick: TICK_OK when key is NULL/empty or equals
 * sym, else TICK_KEY_MISMATCH with err. */
int tick_check_key(const tick *t, const char *key, size_t keylen, char *err, size_t errlen);

#endif
