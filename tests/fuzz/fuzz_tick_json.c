/* fuzz_tick_json.c: differential fuzzing of tick_parse_json against jansson. Each input is decoded
 * by our one-pass decoder and by json_loadb plus a reference implementation of the CONTRACT §1
 * field rules written here on the jansson object; any disagreement in the reason or in a decoded
 * value (sym bytes, ts exactly, px/qty/bid/ask bit for bit, has_quote) aborts, and so does a
 * tick_json_sym_hint answer other than the decoded sym of an accepted tick.
 *
 * Intentional differences, for which the input is skipped (not compared):
 * - jansson rejects a whole document holding an integer beyond long long ("too big integer") or
 *   a real that overflows to infinity ("real number overflow"), even in an unknown key; we parse
 *   numbers only where needed and report ts/px/... as bad_ts/bad_px, or ignore them in unknown
 * keys.
 * - jansson does not support "\u0000" inside object keys; we accept it (the key is then unknown).
 * - jansson 2.14 silently drops a raw NUL byte that directly follows a number ({"a":1<NUL>} loads);
 *   a raw NUL is never valid JSON, so for any input holding one we only require bad_json.
 * Handled in the reference (so still compared):
 * - nesting: jansson allows 2048 levels, we allow TICK_JSON_DEPTH_MAX: the reference rejects
 *   deeper documents as bad_json.
 * - "\u0000" in string values: decoded with JSON_ALLOW_NUL (valid JSON; a sym holding it is
 * bad_sym).
 * - duplicate keys: jansson keeps the last, as we do. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/rfc3339.h"
#include "ingest/tick.h"

enum { SKIP = -1 };

static int depth_of(json_t *v) {
  int d = 0;
  if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
      int dx = depth_of(x);
      if (dx > d)
        d = dx;
    }
    return d + 1;
  }
  if (json_is_array(v)) {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
      int dx = depth_of(x);
      if (dx > d)
        d = dx;
    }
    return d + 1;
  }
  return 0;
}

/* null counts as absent. */
static json_t *field(json_t *o, const char *name) {
  json_t *v = json_object_get(o, name);
  return json_is_null(v) ? NULL : v;
}

static int sym_ok(const char *s, size_t n) {
  if (n < 1 || n > TICK_SYM_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x21 || c > 0x7E || c == '"' || c == '\\' || c == ',')
      return 0;
  }
  return 1;
}

static int num_field(json_t *v, double *out, int allow_zero) {
  if (!json_is_number(v))
    return 0;
  double x = json_number_value(v);
  if (!isfinite(x))
    return 0;
  *out = x;
  return allow_zero ? x >= 0 : x > 0;
}

/* The reference decoder: CONTRACT §1 applied to the jansson object. */
static int ref_decode(const uint8_t *data, size_t size, tick *t) {
  json_error_t e;
  json_t *root = json_loadb((const char *)data, size, JSON_ALLOW_NUL, &e);
  if (!root) {
    if (strstr(e.text, "too big") || strstr(e.text, "overflow") ||
        strstr(e.text, "NUL byte in object key"))
      return SKIP;
    return TICK_BAD_JSON;
  }
  int r = TICK_OK;
  if (!json_is_object(root) || depth_of(root) > TICK_JSON_DEPTH_MAX) {
    r = TICK_BAD_JSON;
    goto out;
  }
  json_t *sym = field(root, "sym"), *ts = field(root, "ts"), *px = field(root, "px");
  json_t *qty = field(root, "qty"), *bid = field(root, "bid"), *ask = field(root, "ask");
  if (!sym || !ts || !px) {
    r = TICK_MISSING_FIELD;
    goto out;
  }
  if (!json_is_string(sym) || !sym_ok(json_string_value(sym), json_string_length(sym))) {
    r = TICK_BAD_SYM;
    goto out;
  }
  t->sym_len = (uint8_t)json_string_length(sym);
  memcpy(t->sym, json_string_value(sym), t->sym_len);
  t->sym[t->sym_len] = 0;
  if (json_is_integer(ts)) {
    t->ts = (int64_t)json_integer_value(ts);
  } else if (!json_is_string(ts) ||
             tick_parse_rfc3339(json_string_value(ts), json_string_length(ts), &t->ts) != 0) {
    r = TICK_BAD_TS;
    goto out;
  }
  if (!num_field(px, &t->px, 0)) {
    r = TICK_BAD_PX;
    goto out;
  }
  t->qty = 0;
  if (qty && !num_field(qty, &t->qty, 1)) {
    r = TICK_BAD_QTY;
    goto out;
  }
  t->qty += 0.0;
  if ((bid && !num_field(bid, &t->bid, 0)) || (ask && !num_field(ask, &t->ask, 0))) {
    r = TICK_BAD_QUOTE;
    goto out;
  }
  t->has_quote = bid && ask && t->bid <= t->ask;
out:
  json_decref(root);
  return r;
}

static void fail(const char *what, const uint8_t *data, size_t size, int ours, int ref,
                 const char *err) {
  fprintf(stderr, "fuzz_tick_json: %s: ours %s (%s), jansson %s on %zu bytes: %.*s\n", what,
          tick_reason_name(ours), err, tick_reason_name(ref), size, (int)(size > 300 ? 300 : size),
          (const char *)data);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tick a, b;
  char err[256] = "";
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  int ours = tick_parse_json(&a, (const char *)data, size, err, sizeof err);
  if (ours != TICK_OK && (!err[0] || strchr(err, '\n')))
    fail("bad error text", data, size, ours, ours, err);
  if (memchr(data, 0, size)) {
    if (ours != TICK_BAD_JSON)
      fail("raw NUL accepted", data, size, ours, TICK_BAD_JSON, err);
    return 0;
  }
  int ref = ref_decode(data, size, &b);
  if (ref == SKIP)
    return 0;
  if (ours != ref)
    fail("reason differs", data, size, ours, ref, err);
  if (ours != TICK_OK)
    return 0;
  const char *hs;
  size_t hn;
  if (tick_json_sym_hint((const char *)data, size, &hs, &hn) &&
      (hn != a.sym_len || memcmp(hs, a.sym, hn) != 0))
    fail("sym hint differs", data, size, ours, ref, a.sym);
  if (a.sym_len != b.sym_len || memcmp(a.sym, b.sym, a.sym_len + 1) != 0)
    fail("sym differs", data, size, ours, ref, a.sym);
  if (a.ts != b.ts)
    fail("ts differs", data, size, ours, ref, "");
  if (memcmp(&a.px, &b.px, sizeof a.px) || memcmp(&a.qty, &b.qty, sizeof a.qty))
    fail("px or qty differs", data, size, ours, ref, "");
  if (a.has_quote != b.has_quote)
    fail("has_quote differs", data, size, ours, ref, "");
  if (a.has_quote && (memcmp(&a.bid, &b.bid, sizeof a.bid) || memcmp(&a.ask, &b.ask, sizeof a.ask)))
    fail("bid or ask differs", data, size, ours, ref, "");
  return 0;
}
