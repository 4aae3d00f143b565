/* tick_csv.c: decodes one tick (CONTRACT §1) from a CSV row (RFC 4180 quoting) under a parsed
 * header row. Field values follow the JSON decoder's rules (tick_int.h). Not for JSON
 * (tick_json.c) or reading files (tickfile.c). */
#include "ingest/tick.h"

#include <stdio.h>
#include <string.h>

#include "ingest/number.h"
#include "ingest/rfc3339.h"
#include "ingest/tick_int.h"

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
      if (!name_is(fs, fn, tick_field_names[f]))
        continue;
      if (*cols[f] >= 0) {
        if (errlen)
          snprintf(err, errlen, "header names column %s twice", tick_field_names[f]);
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
      tick_excerpt(ex, line, (size_t)(end - line));
      snprintf(err, errlen, "header lacks column %s (found %s; expected sym,ts,px[,qty,bid,ask])",
               tick_field_names[f], ex);
    }
    return -1;
  }
  return 0;
}

/* Decodes one CSV row under header h (see tick.h). Wrong field counts and bad quoting give
 * TICK_BAD_ROW; field values follow the JSON rules, with every field a string: ts is an integer,
 * an RFC 3339 timestamp or a date (YYYY-MM-DD, midnight UTC), numbers use the JSON number grammar,
 * empty means absent. */
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
      return tick_missing_field(f, err, errlen);
  if (fdq[F_SYM] || !sym_ok(fs[F_SYM], fn[F_SYM]))
    return tick_bad_field(F_SYM, fs[F_SYM], fn[F_SYM], 1, err, errlen);
  memcpy(t->sym, fs[F_SYM], fn[F_SYM]);
  t->sym_len = (uint8_t)fn[F_SYM];
  t->sym[t->sym_len] = 0;
  /* ts: an integer (its unit is the reader's business: tickfile.h), an RFC 3339 timestamp, or a
   * date alone, midnight UTC (CSV is only ever a file; Kafka messages are JSON and stay strict). */
  t->ts_int = !fdq[F_TS] && tick_parse_int64(fs[F_TS], fn[F_TS], &t->ts) == 0;
  if (!t->ts_int && (fdq[F_TS] || (tick_parse_rfc3339(fs[F_TS], fn[F_TS], &t->ts) != 0 &&
                                   tick_parse_date(fs[F_TS], fn[F_TS], &t->ts) != 0)))
    return tick_bad_field(F_TS, fs[F_TS], fn[F_TS], 1, err, errlen);
  double val[F_N] = {0};
  for (int f = F_PX; f <= F_ASK; f++) {
    if (!fn[f])
      continue;
    if (fdq[f] || tick_parse_number(fs[f], fn[f], &val[f]) != fn[f] || !num_ok(f, val[f]))
      return tick_bad_field(f, fs[f], fn[f], 1, err, errlen);
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
