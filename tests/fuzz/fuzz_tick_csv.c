/* fuzz_tick_csv.c: fuzzes the CSV decoder. The input's first line is a header (and, when it is
 * not a valid one, the fixed header sym,ts,px,qty,bid,ask is used); every further line is a row.
 * Checks, beyond memory safety: an accepted tick obeys CONTRACT §1, and re-encoded as JSON with
 * ingest/fmt.h it decodes through tick_parse_json to the very same tick (so the CSV and JSON
 * paths agree, and fmt_double_short round-trips), and tick_csv_sym_hint, when it answers, gives
 * its sym; a rejected row has a one-line message. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/fmt.h"
#include "ingest/tick.h"

static void fail(const char *what, const char *row, size_t n, const char *detail) {
  fprintf(stderr, "fuzz_tick_csv: %s (%s) on row: %.*s\n", what, detail, (int)(n > 300 ? 300 : n),
          row);
  abort();
}

static void check_row(const tick_csv *h, const char *row, size_t n) {
  tick t, j;
  char err[256] = "";
  int r = tick_parse_csv(h, &t, row, n, err, sizeof err);
  if (r < 0 || r >= TICK_NREASONS)
    fail("reason out of range", row, n, "");
  if (r != TICK_OK) {
    if (!err[0] || strchr(err, '\n'))
      fail("bad error text", row, n, err);
    return;
  }
  if (t.sym_len < 1 || t.sym_len > TICK_SYM_MAX || strlen(t.sym) != t.sym_len)
    fail("bad sym", row, n, t.sym);
  const char *hs;
  size_t hn;
  if (tick_csv_sym_hint(h, row, n, &hs, &hn) && (hn != t.sym_len || memcmp(hs, t.sym, hn) != 0))
    fail("sym hint differs", row, n, t.sym);
  for (int i = 0; i < t.sym_len; i++) {
    unsigned char c = (unsigned char)t.sym[i];
    if (c < 0x21 || c > 0x7E || c == '"' || c == '\\' || c == ',')
      fail("bad sym byte", row, n, t.sym);
  }
  if (!(isfinite(t.px) && t.px > 0) || !(isfinite(t.qty) && t.qty >= 0) || signbit(t.qty))
    fail("px or qty out of range", row, n, "");
  if (t.has_quote && !(t.bid > 0 && t.ask >= t.bid && isfinite(t.ask)))
    fail("bad quote", row, n, "");
  char js[512], *p = js;
  p += sprintf(p, "{\"sym\":\"%s\",\"ts\":", t.sym);
  p += fmt_i64(p, t.ts);
  p += sprintf(p, ",\"px\":");
  p += fmt_double_short(p, t.px);
  p += sprintf(p, ",\"qty\":");
  p += fmt_double_short(p, t.qty);
  if (t.has_quote) {
    p += sprintf(p, ",\"bid\":");
    p += fmt_double_short(p, t.bid);
    p += sprintf(p, ",\"ask\":");
    p += fmt_double_short(p, t.ask);
  }
  *p++ = '}';
  *p = 0;
  r = tick_parse_json(&j, js, (size_t)(p - js), err, sizeof err);
  if (r != TICK_OK)
    fail("JSON re-encoding rejected", row, n, err);
  if (j.sym_len != t.sym_len || strcmp(j.sym, t.sym) || j.ts != t.ts || j.px != t.px ||
      j.qty != t.qty || j.has_quote != t.has_quote ||
      (t.has_quote && (j.bid != t.bid || j.ask != t.ask)))
    fail("JSON re-encoding differs", row, n, js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data, *end = s + size;
  const char *nl = memchr(s, '\n', size);
  const char *hend = nl ? nl : end;
  tick_csv h;
  char err[256] = "";
  if (tick_csv_header(&h, s, (size_t)(hend - s), err, sizeof err) != 0) {
    if (!err[0] || strchr(err, '\n'))
      fail("bad header error text", s, (size_t)(hend - s), err);
    tick_csv_header(&h, "sym,ts,px,qty,bid,ask", 21, err, sizeof err);
  } else if (h.col_sym < 0 || h.col_ts < 0 || h.col_px < 0 || h.col_sym >= h.ncols ||
             h.col_ts >= h.ncols || h.col_px >= h.ncols) {
    fail("header columns out of range", s, (size_t)(hend - s), "");
  }
  const char *p = nl ? nl + 1 : end;
  while (p < end) {
    const char *e = memchr(p, '\n', (size_t)(end - p));
    if (!e)
      e = end;
    check_row(&h, p, (size_t)(e - p));
    p = e + 1;
  }
  return 0;
}
