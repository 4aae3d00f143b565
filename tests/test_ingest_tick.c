/* test_ingest_tick.c: the tick decoders of ingest/tick_json.c and tick_csv.c: every rejection
 * reason with its message, the accepted edge cases (timestamps, bounds, sym lengths, escapes,
 * nesting, duplicates), the number parser (number.c) against strtod and the RFC 3339 parser
 * (rfc3339.c) against hand-computed instants. */
#include <float.h>
#include <stdlib.h>

#include "check.h"
#include "ingest/number.h"
#include "ingest/rfc3339.h"
#include "ingest/tick.h"

static char err[256];
static tick t;

static int js(const char *s) {
  err[0] = 0;
  memset(&t, 0x5A, sizeof t);
  return tick_parse_json(&t, s, strlen(s), err, sizeof err);
}

/* Expects reason r and, when msg is non-NULL, exactly that err text. */
#define TS_RANGE ", within int64 nanoseconds (1677-09-21 to 2262-04-11)"

#define JSON_REJECT(s, r, msg)                                                                     \
  do {                                                                                             \
    CHECK_STR(tick_reason_name(js(s)), tick_reason_name(r));                                       \
    const char *m_ = (msg);                                                                        \
    if (m_)                                                                                        \
      CHECK_STR(err, m_);                                                                          \
  } while (0)

static void test_accept(void) {
  CHECK_INT(
      js("{\"sym\":\"USDTHB\",\"ts\":865193280000000000,\"px\":24.9,\"qty\":100,\"bid\":24.89,"
         "\"ask\":24.91}"),
      TICK_OK);
  CHECK_STR(t.sym, "USDTHB");
  CHECK_INT(t.sym_len, 6);
  CHECK_INT(t.ts, 865193280000000000LL);
  CHECK(t.px == 24.9 && t.qty == 100 && t.bid == 24.89 && t.ask == 24.91);
  CHECK_INT(t.has_quote, 1);
  /* px is kept as written, for the encoders to echo; a token past the buffer is not kept. */
  CHECK_INT(t.px_len, 4);
  CHECK(memcmp(t.px_txt, "24.9", 4) == 0);
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":1,\"px\":2.50e1}"), TICK_OK);
  CHECK(t.px_len == 6 && memcmp(t.px_txt, "2.50e1", 6) == 0 && t.px == 25.0);
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":1,\"px\":1.0000000000000000000000001}"), TICK_OK);
  CHECK_INT(t.px_len, 0);

  /* qty absent = 0, no quote; ts as RFC 3339 (the contract's example instant). */
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":\"1997-06-01T19:28:00Z\",\"px\":1}"), TICK_OK);
  CHECK_INT(t.ts, 865193280000000000LL);
  CHECK(t.qty == 0 && t.has_quote == 0);
  /* Fractions and offsets: 19:28:00.5+07:00 is 12:28:00.5Z. */
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":\"1997-06-01T19:28:00.5+07:00\",\"px\":1}"), TICK_OK);
  CHECK_INT(t.ts, 865193280000000000LL - 7 * 3600000000000LL + 500000000LL);
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":\"1997-06-01t19:28:00.123456789-01:30\",\"px\":1}"), TICK_OK);
  CHECK_INT(t.ts, 865193280000000000LL + 5400000000000LL + 123456789LL);
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":\"1997-06-01 19:28:00z\",\"px\":1}"), TICK_OK);
  CHECK_INT(t.ts, 865193280000000000LL);

  /* int64 bounds as integer ns, and the RFC 3339 instants at the edges of int64 ns. */
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":9223372036854775807,\"px\":1}"), TICK_OK);
  CHECK_INT(t.ts, INT64_MAX);
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":-9223372036854775808,\"px\":1}"), TICK_OK);
  CHECK_INT(t.ts, INT64_MIN);
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":\"2262-04-11T23:47:16.854775807Z\",\"px\":1}"), TICK_OK);
  CHECK_INT(t.ts, INT64_MAX);
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":0,\"px\":1}"), TICK_OK);
  CHECK_INT(t.ts, 0);
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":-0,\"px\":1}"), TICK_OK);
  CHECK_INT(t.ts, 0);

  /* sym lengths 1 and 32, every allowed punctuation byte. */
  CHECK_INT(js("{\"sym\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\",\"ts\":1,\"px\":1}"), TICK_OK);
  CHECK_INT(t.sym_len, 32);
  CHECK_STR(t.sym, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
  CHECK_INT(js("{\"sym\":\"!#$%&'()*+-./:;<=>?@[]^_`{|}~\",\"ts\":1,\"px\":1}"), TICK_OK);
  CHECK_STR(t.sym, "!#$%&'()*+-./:;<=>?@[]^_`{|}~");

  /* Escapes: keys are compared after unescaping; sym is unescaped before it is checked. */
  CHECK_INT(js("{\"s\\u0079m\":\"EUR\\/USD\",\"\\u0074s\":1,\"p\\u0078\":2.5}"), TICK_OK);
  CHECK_STR(t.sym, "EUR/USD");
  CHECK(t.px == 2.5);
  CHECK_INT(js("{\"sym\":\"\\u0041\\u0042\",\"ts\":\"1997-06-01T19:28:00\\u005a\",\"px\":1}"),
            TICK_OK);
  CHECK_STR(t.sym, "AB");
  CHECK_INT(t.ts, 865193280000000000LL);

  /* Unknown keys with nested values, escapes, surrogate pairs, UTF-8 and every literal. */
  CHECK_INT(
      js(" \t\r\n{ \"venue\" : {\"a\":[1,2.5e-3,{\"b\":[[],{}]}],\"c\":null} , \"sym\" :\"A\","
         "\"note\":\"caf\xC3\xA9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\b\\f\\n\\r\\t \xF0\x9F\x98\x80\","
         "\"ok\":true,\"no\":false,\"ts\":1,\"px\":1,\"x\":-0.0e+0}\n\t "),
      TICK_OK);
  CHECK_STR(t.sym, "A");

  /* Keys that start like known ones are unknown keys; field order does not matter. */
  CHECK_INT(js("{\"tsx\":\"?\",\"pxx\":-1,\"symbol\":7,\"qtyy\":-1,\"bi\":0,\"as\":0,\"px\":3,"
               "\"ts\":2,\"sym\":\"Z\"}"),
            TICK_OK);
  CHECK(t.px == 3 && t.ts == 2 && t.qty == 0 && t.has_quote == 0);
  JSON_REJECT("{\"symbol\":\"A\",\"ts\":1,\"px\":1}", TICK_MISSING_FIELD, "missing field sym");
  /* A known key within the last bytes of the input still counts (no 4-byte lookahead there). */
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"px\"", TICK_BAD_JSON,
              "bad JSON at byte 29 (end of input): expected ':'");

  /* Duplicate keys: the last one wins, also over an invalid earlier value. */
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":1,\"px\":-3,\"px\":7,\"sym\":\"B\"}"), TICK_OK);
  CHECK_STR(t.sym, "B");
  CHECK(t.px == 7);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":7,\"px\":-3}", TICK_BAD_PX, NULL);

  /* null means absent. */
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"qty\":null,\"bid\":null,\"ask\":2}"), TICK_OK);
  CHECK(t.qty == 0 && t.has_quote == 0);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":null}", TICK_MISSING_FIELD, "missing field px");

  /* Quotes: crossed (bid > ask) is accepted without the spread; equal is a valid quote. */
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"bid\":2,\"ask\":1}"), TICK_OK);
  CHECK_INT(t.has_quote, 0);
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"bid\":2,\"ask\":2}"), TICK_OK);
  CHECK_INT(t.has_quote, 1);
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"bid\":2}"), TICK_OK);
  CHECK_INT(t.has_quote, 0);

  /* qty 0 and -0 (stored as +0), tiny and huge finite values. */
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":1,\"px\":4.9e-324,\"qty\":-0}"), TICK_OK);
  CHECK(t.px == 4.9e-324 && t.qty == 0 && !signbit(t.qty));
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":1,\"px\":1.7976931348623157e308,\"qty\":0.0}"), TICK_OK);
  CHECK(t.px == DBL_MAX);
  JSON_REJECT(" \n\t", TICK_BAD_JSON, "bad JSON at byte 3 (end of input): expected '{'");
}

static void test_reject(void) {
  /* bad_json: position and expectation. */
  JSON_REJECT("{\"sym\":\"A\",\"ts\" 1}", TICK_BAD_JSON, "bad JSON at byte 16: expected ':'");
  JSON_REJECT("", TICK_BAD_JSON, "bad JSON at byte 0 (end of input): expected '{'");
  JSON_REJECT("[1]", TICK_BAD_JSON, "bad JSON at byte 0: expected '{'");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1", TICK_BAD_JSON,
              "bad JSON at byte 24 (end of input): expected ',' or '}'");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,}", TICK_BAD_JSON,
              "bad JSON at byte 25: expected a string key");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1} x", TICK_BAD_JSON,
              "bad JSON at byte 26: unexpected data after the object");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":01}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1.}", TICK_BAD_JSON,
              "bad JSON at byte 23: invalid number");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":.5}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":+1}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1e}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":NaN}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":Infinity}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":tru}", TICK_BAD_JSON,
              "bad JSON at byte 29: expected a value");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":\"a\\qb\"}", TICK_BAD_JSON,
              "bad JSON at byte 31: invalid escape in string");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":\"\\u12G4\"}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":\"\\ud800\"}", TICK_BAD_JSON,
              "bad JSON at byte 30: unpaired surrogate in \\u escape");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":\"\\udc00\\ud800\"}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":\"\\ud800\\u0041\"}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":\"a\tb\"}", TICK_BAD_JSON,
              "bad JSON at byte 31: control character in string");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":\"\xC0\x80\"}", TICK_BAD_JSON,
              "bad JSON at byte 30: invalid UTF-8 in string"); /* overlong NUL */
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":\"\xED\xA0\x80\"}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":\"\xF4\x90\x80\x80\"}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":\"\xE2\x82\"}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":\"abc", TICK_BAD_JSON,
              "bad JSON at byte 33 (end of input): unterminated string");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":[1,]}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":[1 2]}", TICK_BAD_JSON,
              "bad JSON at byte 32: expected ',' or ']'");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":{\"a\" 1}}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":{1:2}}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\"\"ts\":1}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1}{}", TICK_BAD_JSON, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":\"\\u00\"}", TICK_BAD_JSON, NULL);
  /* A NUL byte inside the buffer is just a bad byte, not the end. */
  CHECK_INT(tick_parse_json(&t, "{\"sym\":\"A\",\"ts\":1,\"px\":1}\0", 26, err, sizeof err),
            TICK_BAD_JSON);

  /* Depth: TICK_JSON_DEPTH_MAX levels counting the tick object are fine, one more is not. */
  char deep[512];
  for (int depth = TICK_JSON_DEPTH_MAX; depth <= TICK_JSON_DEPTH_MAX + 1; depth++) {
    int n = sprintf(deep, "{\"sym\":\"A\",\"ts\":1,\"px\":1,\"x\":");
    for (int k = 1; k < depth; k++)
      deep[n++] = '[';
    for (int k = 1; k < depth; k++)
      deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = 0;
    CHECK_INT(js(deep), depth == TICK_JSON_DEPTH_MAX ? TICK_OK : TICK_BAD_JSON);
  }
  CHECK_CONTAINS(err, "nesting too deep");

  /* missing_field, in the order sym, ts, px. */
  JSON_REJECT("{}", TICK_MISSING_FIELD, "missing field sym");
  JSON_REJECT("{\"sym\":\"A\",\"px\":1}", TICK_MISSING_FIELD, "missing field ts");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"qty\":3}", TICK_MISSING_FIELD, "missing field px");
  JSON_REJECT("{\"ts\":\"garbage\",\"px\":-1}", TICK_MISSING_FIELD, "missing field sym");
  JSON_REJECT("{\"SYM\":\"A\",\"ts\":1,\"px\":1}", TICK_MISSING_FIELD, "missing field sym");

  /* bad_sym */
  const char *sym_expect = "expected 1..32 bytes of printable ASCII without '\"', '\\' or ','";
  char want[256];
  snprintf(want, sizeof want, "field sym: found \"\", %s", sym_expect);
  JSON_REJECT("{\"sym\":\"\",\"ts\":1,\"px\":1}", TICK_BAD_SYM, want);
  snprintf(want, sizeof want, "field sym: found \"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\", %s",
           sym_expect);
  JSON_REJECT("{\"sym\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\",\"ts\":1,\"px\":1}", TICK_BAD_SYM,
              want);
  snprintf(want, sizeof want, "field sym: found 42, %s", sym_expect);
  JSON_REJECT("{\"sym\":42,\"ts\":1,\"px\":1}", TICK_BAD_SYM, want);
  JSON_REJECT("{\"sym\":\"A B\",\"ts\":1,\"px\":1}", TICK_BAD_SYM, NULL);
  JSON_REJECT("{\"sym\":\"A,B\",\"ts\":1,\"px\":1}", TICK_BAD_SYM, NULL);
  JSON_REJECT("{\"sym\":\"A\\\"B\",\"ts\":1,\"px\":1}", TICK_BAD_SYM, NULL);
  JSON_REJECT("{\"sym\":\"A\\\\B\",\"ts\":1,\"px\":1}", TICK_BAD_SYM, NULL);
  JSON_REJECT("{\"sym\":\"A\\u0000\",\"ts\":1,\"px\":1}", TICK_BAD_SYM, NULL);
  JSON_REJECT("{\"sym\":\"A\\u007f\",\"ts\":1,\"px\":1}", TICK_BAD_SYM, NULL);
  JSON_REJECT("{\"sym\":\"caf\xC3\xA9\",\"ts\":1,\"px\":1}", TICK_BAD_SYM,
              "field sym: found \"caf??\", expected 1..32 bytes of printable ASCII without '\"', "
              "'\\' or ','");
  JSON_REJECT("{\"sym\":[\"A\"],\"ts\":1,\"px\":1}", TICK_BAD_SYM, NULL);
  JSON_REJECT("{\"sym\":true,\"ts\":1,\"px\":1}", TICK_BAD_SYM, NULL);
  /* 32 bytes after unescaping is fine, 33 is not. */
  CHECK_INT(js("{\"sym\":\"\\u0041BCDEFGHIJKLMNOPQRSTUVWXYZ012345\",\"ts\":1,\"px\":1}"), TICK_OK);
  JSON_REJECT("{\"sym\":\"\\u0041BCDEFGHIJKLMNOPQRSTUVWXYZ0123456\",\"ts\":1,\"px\":1}",
              TICK_BAD_SYM, NULL);

  /* bad_ts */
  JSON_REJECT("{\"sym\":\"A\",\"ts\":\"2024-13-01\",\"px\":1}", TICK_BAD_TS,
              "field ts: found \"2024-13-01\", expected integer nanoseconds or an RFC 3339 "
              "timestamp" TS_RANGE);
  JSON_REJECT(
      "{\"sym\":\"A\",\"ts\":1.5,\"px\":1}", TICK_BAD_TS,
      "field ts: found 1.5, expected integer nanoseconds or an RFC 3339 timestamp" TS_RANGE);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1e18,\"px\":1}", TICK_BAD_TS, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1.0,\"px\":1}", TICK_BAD_TS, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":9223372036854775808,\"px\":1}", TICK_BAD_TS, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":-9223372036854775809,\"px\":1}", TICK_BAD_TS, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":99999999999999999999999,\"px\":1}", TICK_BAD_TS, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":\"1700000000000000000\",\"px\":1}", TICK_BAD_TS, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":true,\"px\":1}", TICK_BAD_TS, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":{},\"px\":1}", TICK_BAD_TS,
              "field ts: found {}, expected integer nanoseconds or an RFC 3339 timestamp" TS_RANGE);
  /* One ns past INT64_MAX: the message names the range the timestamp left. */
  JSON_REJECT("{\"sym\":\"A\",\"ts\":\"2262-04-11T23:47:16.854775808Z\",\"px\":1}", TICK_BAD_TS,
              "field ts: found \"2262-04-11T23:47:16.854775808Z\", expected integer nanoseconds or "
              "an RFC 3339 timestamp" TS_RANGE);
  /* Long found values are cut at 40 bytes. */
  JSON_REJECT("{\"sym\":\"A\",\"ts\":\"0123456789012345678901234567890123456789ABCDEF\",\"px\":1}",
              TICK_BAD_TS,
              "field ts: found \"0123456789012345678901234567890123456789...\", expected integer "
              "nanoseconds or an RFC 3339 timestamp" TS_RANGE);

  /* bad_px */
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":-3}", TICK_BAD_PX,
              "field px: found -3, expected a finite number > 0");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":0}", TICK_BAD_PX, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":-0.0}", TICK_BAD_PX, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1e-400}", TICK_BAD_PX, NULL); /* underflows to 0 */
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1e309}", TICK_BAD_PX,
              "field px: found 1e309, expected a finite number > 0");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":\"24.9\"}", TICK_BAD_PX,
              "field px: found \"24.9\", expected a finite number > 0");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":false}", TICK_BAD_PX, NULL);

  /* bad_qty */
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"qty\":-1}", TICK_BAD_QTY,
              "field qty: found -1, expected a finite number >= 0");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"qty\":1e999}", TICK_BAD_QTY, NULL);
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"qty\":\"5\"}", TICK_BAD_QTY, NULL);

  /* bad_quote: each side alone, zero, negative, non-number. */
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"bid\":0,\"ask\":2}", TICK_BAD_QUOTE,
              "field bid: found 0, expected a finite number > 0");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"ask\":-2}", TICK_BAD_QUOTE,
              "field ask: found -2, expected a finite number > 0");
  JSON_REJECT("{\"sym\":\"A\",\"ts\":1,\"px\":1,\"bid\":[1]}", TICK_BAD_QUOTE, NULL);

  /* Errors are cut to errlen, and errlen 0 writes nothing. */
  char small[8];
  memset(small, 'x', sizeof small);
  CHECK_INT(tick_parse_json(&t, "{}", 2, small, sizeof small), TICK_MISSING_FIELD);
  CHECK_STR(small, "missing");
  memset(small, 'x', sizeof small);
  CHECK_INT(tick_parse_json(&t, "{}", 2, small, 0), TICK_MISSING_FIELD);
  CHECK(small[0] == 'x');
}

static void test_reason_names(void) {
  static const char *names[] = {
      "ok",      "bad_json",  "missing_field",   "bad_sym",      "bad_ts",
      "bad_px",  "bad_qty",   "bad_quote",       "key_mismatch", "out_of_order",
      "bad_row", "future_ts", "instrument_limit"};
  /* Stable names and numbers: new reasons only ever come at the end. */
  CHECK_INT(TICK_NREASONS, 13);
  for (int r = 0; r < TICK_NREASONS; r++)
    CHECK_STR(tick_reason_name(r), names[r]);
  CHECK_STR(tick_reason_name(-1), "unknown");
  CHECK_STR(tick_reason_name(TICK_NREASONS), "unknown");
}

static void test_key(void) {
  CHECK_INT(js("{\"sym\":\"EURUSD\",\"ts\":1,\"px\":1}"), TICK_OK);
  CHECK_INT(tick_check_key(&t, NULL, 0, err, sizeof err), TICK_OK);
  CHECK_INT(tick_check_key(&t, "", 0, err, sizeof err), TICK_OK);
  CHECK_INT(tick_check_key(&t, "EURUSD", 6, err, sizeof err), TICK_OK);
  CHECK_INT(tick_check_key(&t, "EURUSDX", 6, err, sizeof err), TICK_OK); /* keylen counts */
  CHECK_INT(tick_check_key(&t, "EURUS", 5, err, sizeof err), TICK_KEY_MISMATCH);
  CHECK_STR(err, "message key: found \"EURUS\", expected the tick's sym \"EURUSD\"");
  CHECK_INT(tick_check_key(&t, "GBP\nUSD", 7, err, sizeof err), TICK_KEY_MISMATCH);
  CHECK_STR(err, "message key: found \"GBP?USD\", expected the tick's sym \"EURUSD\"");
}

static void test_int64(void) {
  int64_t v;
  CHECK_INT(tick_parse_int64("0", 1, &v), 0);
  CHECK_INT(v, 0);
  CHECK_INT(tick_parse_int64("-0", 2, &v), 0);
  CHECK_INT(tick_parse_int64("9223372036854775807", 19, &v), 0);
  CHECK_INT(v, INT64_MAX);
  CHECK_INT(tick_parse_int64("-9223372036854775808", 20, &v), 0);
  CHECK_INT(v, INT64_MIN);
  CHECK_INT(tick_parse_int64("9223372036854775808", 19, &v), -1);
  CHECK_INT(tick_parse_int64("-9223372036854775809", 20, &v), -1);
  CHECK_INT(tick_parse_int64("18446744073709551616", 20, &v), -1);
  CHECK_INT(tick_parse_int64("99999999999999999999", 20, &v), -1);
  CHECK_INT(tick_parse_int64("01", 2, &v), -1);
  CHECK_INT(tick_parse_int64("+1", 2, &v), -1);
  CHECK_INT(tick_parse_int64("-", 1, &v), -1);
  CHECK_INT(tick_parse_int64("", 0, &v), -1);
  CHECK_INT(tick_parse_int64("12a", 3, &v), -1);
  CHECK_INT(tick_parse_int64("1234", 2, &v), 0); /* only len bytes */
  CHECK_INT(v, 12);
}

/* Deterministic 64-bit generator (splitmix64). */
static uint64_t rng = 88172645463325252ULL;
static uint64_t next_u64(void) {
  uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static int number_agrees(const char *s) {
  double a, b = strtod(s, NULL);
  size_t n = tick_parse_number(s, strlen(s), &a);
  return n == strlen(s) && memcmp(&a, &b, sizeof a) == 0;
}

static void test_number(void) {
  static const char *cases[] = {"0",
                                "-0",
                                "0.0",
                                "1",
                                "-1",
                                "24.9",
                                "0.1",
                                "1e22",
                                "1e23",
                                "9007199254740993",
                                "9007199254740992",
                                "123456789012345678901234567890",
                                "4.9e-324",
                                "2.4703282292062327e-324",
                                "2.4703282292062328e-324",
                                "1.7976931348623157e308",
                                "1.7976931348623159e308",
                                "1e-400",
                                "1e400",
                                "2.2250738585072011e-308",
                                "2.2250738585072014e-308",
                                "0.000000000000000000001",
                                "1E+2",
                                "1e-0",
                                "123e30",
                                "9007199254740991e22",
                                "1.00000000000000011102230246251565404236316680908203125",
                                "1.00000000000000011102230246251565404236316680908203124",
                                "7.2057594037927933e16",
                                "0.30000000000000004",
                                "100000000000000000000000000000000000000e-38",
                                "1e99999999999999999999",
                                "1e-99999999999999999999",
                                "0e99999999"};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int ok = number_agrees(cases[i]);
    CHECK(ok);
    if (!ok)
      fprintf(stderr, "  number %s\n", cases[i]);
  }
  /* A halfway case past 780 significant digits: the sticky digit must decide. 2^-1074 * 1.5
   * written out exactly is exactly between the two smallest subnormals: ties-to-even gives
   * 2 * 2^-1074; one more non-zero digit far out must round up too. */
  {
    static char big[2000];
    int n = sprintf(big, "%.1100e", 4.9406564584124654e-324 * 1.5);
    (void)n;
    CHECK(number_agrees(big));
    char *e = strchr(big, 'e');
    memmove(e + 1, e, strlen(e) + 1);
    e[0] = '1';
    CHECK(number_agrees(big));
  }
  /* Long digit strings: 1 followed by 900 zeros then 1, with and without a decimal point. */
  {
    static char big[1000];
    big[0] = '1';
    memset(big + 1, '0', 900);
    strcpy(big + 901, "1e-880");
    CHECK(number_agrees(big));
    strcpy(big, "0.");
    memset(big + 2, '0', 900);
    strcpy(big + 902, "17976931348623157e1216");
    CHECK(number_agrees(big));
  }
  /* 17..19-digit mantissas with exponents in +-27: the extended-precision path, and its
   * fallback near halfway points, against strtod. Prices like 1.6087592702405062 are this case. */
  {
    int bad17 = 0;
    char buf[64];
    for (int i = 0; i < 300000; i++) {
      uint64_t m = next_u64() % 10000000000000000000ULL;
      int nd = 17 + (int)(next_u64() % 3);
      int e = (int)(next_u64() % 55) - 27;
      int n = snprintf(buf, sizeof buf, "%0*llu", nd, (unsigned long long)m);
      buf[0] = buf[0] == '0' ? '1' : buf[0];
      if (i & 1) { /* plain decimal: 1.6087592702405062 */
        int dot = 1 + (int)(next_u64() % (unsigned)(nd - 1));
        memmove(buf + dot + 1, buf + dot, (size_t)(n - dot + 1));
        buf[dot] = '.';
      } else {
        snprintf(buf + n, sizeof buf - n, "e%d", e);
      }
      if (!number_agrees(buf) && bad17++ < 5)
        fprintf(stderr, "  number %s\n", buf);
    }
    /* Exact halfway points between doubles, written with 17+ digits: ties to even. */
    static const char *halfway[] = {"9007199254740993",
                                    "9007199254740995",
                                    "18014398509481986",
                                    "18014398509481990",
                                    "1.00000000000000011102230246251565",
                                    "4503599627370496.5",
                                    "4503599627370497.5"};
    for (size_t i = 0; i < sizeof halfway / sizeof *halfway; i++)
      bad17 += !number_agrees(halfway[i]);
    CHECK_INT(bad17, 0);
  }
  /* Grammar: consumed length stops at the end of the number or is 0 when there is none. */
  double v;
  CHECK_INT(tick_parse_number("1.5,", 4, &v), 3);
  CHECK_INT(tick_parse_number("-", 1, &v), 0);
  CHECK_INT(tick_parse_number("1.", 2, &v), 0);
  CHECK_INT(tick_parse_number("1e+", 3, &v), 0);
  CHECK_INT(tick_parse_number(".5", 2, &v), 0);
  CHECK_INT(tick_parse_number("01", 2, &v), 1);
  CHECK_INT(tick_parse_number("1.5", 2, &v), 0); /* "1." within len */
  /* Random doubles printed by printf with 1..17 digits, in both exponent and plain forms. */
  int bad = 0;
  for (int i = 0; i < 200000; i++) {
    uint64_t bits = next_u64();
    double d;
    memcpy(&d, &bits, sizeof d);
    if (!isfinite(d))
      continue;
    char s[400];
    int sig = 1 + (int)(next_u64() % 17);
    snprintf(s, sizeof s, (i & 1) ? "%.*e" : "%.*g", sig, d);
    if (strchr(s, 'e') == NULL && strchr(s, '.') == NULL && (i & 1))
      continue;
    if (!number_agrees(s))
      bad++;
    double r = ldexp((double)(next_u64() >> 11), -(int)(next_u64() % 80)); /* typical prices */
    snprintf(s, sizeof s, "%.*f", (int)(next_u64() % 12), r);
    if (!number_agrees(s))
      bad++;
  }
  CHECK_INT(bad, 0);
}

static void test_rfc3339(void) {
  int64_t ns;
  struct {
    const char *s;
    int64_t want;
  } ok[] = {
      {"1970-01-01T00:00:00Z", 0},
      {"1969-12-31T23:59:59.999999999Z", -1},
      {"2000-02-29T00:00:00Z", 951782400000000000LL},
      {"2024-02-29T12:00:00+12:00", 1709164800000000000LL},
      {"2023-12-31T23:59:59.1Z", 1704067199100000000LL},
      {"1677-09-21T00:12:43.145224192Z", INT64_MIN},
      {"2262-04-11T23:47:16.854775807Z", INT64_MAX},
      {"2262-04-12T00:47:16.854775807+01:00", INT64_MAX},
      {"1970-01-01T00:00:00-23:59", 86340000000000LL},
  };
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    ns = 12345;
    CHECK_INT(tick_parse_rfc3339(ok[i].s, strlen(ok[i].s), &ns), 0);
    CHECK_INT(ns, ok[i].want);
  }
  static const char *bad[] = {"2023-02-29T00:00:00Z",
                              "1900-02-29T00:00:00Z",
                              "2023-04-31T00:00:00Z",
                              "2023-00-10T00:00:00Z",
                              "2023-01-00T00:00:00Z",
                              "2023-01-01T24:00:00Z",
                              "2023-01-01T00:60:00Z",
                              "2016-12-31T23:59:60Z",
                              "2023-01-01T00:00:00",
                              "2023-01-01T00:00:00.Z",
                              "2023-01-01T00:00:00.1234567890Z",
                              "2023-01-01T00:00:00+0100",
                              "2023-01-01T00:00:00+24:00",
                              "2023-01-01T00:00:00+01:60",
                              "2023-01-01X00:00:00Z",
                              "23-01-01T00:00:00Z",
                              "2023-1-01T00:00:00Z",
                              "2023-01-01T00:00:00Zjunk",
                              "2262-04-11T23:47:16.854775808Z",
                              "1677-09-21T00:12:43.145224191Z",
                              "9999-12-31T23:59:59Z",
                              "0000-01-01T00:00:00Z",
                              "2023-01-01T00:00:00 Z",
                              "-023-01-01T00:00:00Z",
                              ""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int rc = tick_parse_rfc3339(bad[i], strlen(bad[i]), &ns);
    CHECK_INT(rc, -1);
    if (rc != -1)
      fprintf(stderr, "  accepted %s\n", bad[i]);
  }
  /* Every day of 1600..2400 against a day counter (checks days-from-civil and leap years). */
  int64_t days = -135140; /* 1600-01-01 is 135140 days before 1970-01-01 */
  int mismatches = 0;
  for (int y = 1600; y <= 2400; y++) {
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int m = 1; m <= 12; m++) {
      int nd = md[m - 1] + (m == 2 && leap);
      for (int d = 1; d <= nd; d++, days++) {
        char s[32];
        snprintf(s, sizeof s, "%04d-%02d-%02dT00:00:00Z", y, m, d);
        int within = days >= -106751 && days <= 106751; /* int64 ns spans +-106751.99 days */
        int64_t want = within ? days * 86400 * 1000000000LL : 0;
        int rc = tick_parse_rfc3339(s, strlen(s), &ns);
        if (within ? (rc != 0 || ns != want) : rc != -1)
          mismatches++;
      }
      if (m == 2 && !leap) {
        char s[32];
        snprintf(s, sizeof s, "%04d-02-29T00:00:00Z", y);
        if (tick_parse_rfc3339(s, strlen(s), &ns) != -1)
          mismatches++;
      }
    }
  }
  CHECK_INT(mismatches, 0);
}

/* Dates alone (tick files' CSV) and the formatter that writes what the parser reads. */
static void test_date_and_format(void) {
  int64_t ns = 7;
  CHECK_INT(tick_parse_date("2024-01-02", 10, &ns), 0);
  CHECK_INT(ns, 1704153600000000000LL);
  CHECK_INT(tick_parse_date("1970-01-01", 10, &ns), 0);
  CHECK_INT(ns, 0);
  CHECK_INT(tick_parse_date("2000-02-29", 10, &ns), 0);
  CHECK_INT(ns, 951782400000000000LL);
  static const char *bad[] = {"2023-02-29",  "2024-13-01", "2024-1-02",
                              "2024-01-02T", "20240102",   "2024-01-02 ",
                              "1677-09-21",  "2262-04-12", ""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ns = 7;
    CHECK_INT(tick_parse_date(bad[i], strlen(bad[i]), &ns), -1);
    CHECK_INT(ns, 7);
  }
  CHECK_INT(tick_parse_date("1677-09-22", 10, &ns), 0);
  CHECK_INT(tick_parse_date("2262-04-11", 10, &ns), 0);

  char b[TICK_RFC3339_MAX];
  static const struct {
    int64_t ns;
    const char *s;
  } fm[] = {{0, "1970-01-01T00:00:00Z"},
            {-1, "1969-12-31T23:59:59.999999999Z"},
            {1704186000000000000LL, "2024-01-02T09:00:00Z"},
            {1704186000500000000LL, "2024-01-02T09:00:00.500Z"},
            {1704186000000250000LL, "2024-01-02T09:00:00.000250Z"},
            {1704186000000000001LL, "2024-01-02T09:00:00.000000001Z"},
            {INT64_MIN, "1677-09-21T00:12:43.145224192Z"},
            {INT64_MAX, "2262-04-11T23:47:16.854775807Z"}};
  for (size_t i = 0; i < sizeof fm / sizeof *fm; i++) {
    CHECK_INT(tick_format_rfc3339(b, sizeof b, fm[i].ns), strlen(fm[i].s));
    CHECK_STR(b, fm[i].s);
  }
  CHECK_INT(tick_format_rfc3339(b, 5, 0), 20); /* cut like snprintf */
  CHECK_STR(b, "1970");
  /* Round trips over the whole int64 range, in steps that hit every field. */
  int bad_trips = 0;
  for (int64_t v = INT64_MIN; v < INT64_MAX - 3000000000000000000LL / 997;
       v += 3000000000000000000LL / 997 + 12345) {
    int64_t back = 0;
    size_t n = tick_format_rfc3339(b, sizeof b, v);
    bad_trips += tick_parse_rfc3339(b, n, &back) != 0 || back != v;
  }
  CHECK_INT(bad_trips, 0);
}

static void test_csv(void) {
  tick_csv h;
  CHECK_INT(tick_csv_header(&h, "sym,ts,px", 9, err, sizeof err), 0);
  CHECK(h.ncols == 3 && h.col_sym == 0 && h.col_ts == 1 && h.col_px == 2 && h.col_qty == -1 &&
        h.col_bid == -1 && h.col_ask == -1);
  const char *hdr = "venue,\"ASK\", Px ,bid,qty,sym,ts,extra\r";
  CHECK_INT(tick_csv_header(&h, hdr, strlen(hdr), err, sizeof err), 0);
  CHECK(h.ncols == 8 && h.col_ask == 1 && h.col_px == 2 && h.col_bid == 3 && h.col_qty == 4 &&
        h.col_sym == 5 && h.col_ts == 6);
  CHECK_INT(tick_csv_header(&h, "sym,ts,price", 12, err, sizeof err), -1);
  CHECK_STR(err, "header lacks column px (found sym,ts,price; expected sym,ts,px[,qty,bid,ask])");
  CHECK_INT(tick_csv_header(&h, "ts,px", 5, err, sizeof err), -1);
  CHECK_STR(err, "header lacks column sym (found ts,px; expected sym,ts,px[,qty,bid,ask])");
  CHECK_INT(tick_csv_header(&h, "sym,ts,px,px", 12, err, sizeof err), -1);
  CHECK_STR(err, "header names column px twice");
  CHECK_INT(tick_csv_header(&h, "sym,\"ts,px", 10, err, sizeof err), -1);
  CHECK_STR(err, "bad header: unterminated quoted field");

  const char *full = "sym,ts,px,qty,bid,ask";
  CHECK_INT(tick_csv_header(&h, full, strlen(full), err, sizeof err), 0);
#define ROW(s) tick_parse_csv(&h, &t, s, strlen(s), err, sizeof err)
  CHECK_INT(ROW("USDTHB,865193280000000000,24.9,100,24.89,24.91"), TICK_OK);
  CHECK_STR(t.sym, "USDTHB");
  CHECK_INT(t.ts, 865193280000000000LL);
  CHECK(t.px == 24.9 && t.qty == 100 && t.bid == 24.89 && t.ask == 24.91 && t.has_quote == 1);
  CHECK_INT(ROW("\"USDTHB\",\"1997-06-01T19:28:00Z\",\"24.9\",,,\r"), TICK_OK);
  CHECK_INT(t.ts, 865193280000000000LL);
  CHECK(t.qty == 0 && t.has_quote == 0);
  CHECK_INT(ROW("A,1997-06-01 19:28:00.25+00:00,1,0,,2"), TICK_OK);
  CHECK_INT(t.ts, 865193280250000000LL);
  CHECK_INT(ROW("A,-9223372036854775808,1,,,"), TICK_OK);
  CHECK_INT(t.ts, INT64_MIN);
  CHECK_INT(ROW("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345,1,1,,,"), TICK_OK);
  CHECK_INT(ROW("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456,1,1,,,"), TICK_BAD_SYM);

  CHECK_INT(ROW("A,1,2"), TICK_BAD_ROW);
  CHECK_STR(err, "row has 3 fields, header has 6");
  CHECK_INT(ROW("A,1,2,3,4,5,6"), TICK_BAD_ROW);
  CHECK_STR(err, "row has 7 fields, header has 6");
  CHECK_INT(ROW("\"A,1,2,3,4,5"), TICK_BAD_ROW);
  CHECK_STR(err, "bad CSV row: field 1: unterminated quoted field");
  CHECK_INT(ROW("\"A\"B,1,2,3,4,5"), TICK_BAD_ROW);
  CHECK_STR(err, "bad CSV row: field 1: text after a closing quote");
  CHECK_INT(ROW(",1,2,,,"), TICK_MISSING_FIELD);
  CHECK_STR(err, "missing field sym");
  CHECK_INT(ROW("A,,2,,,"), TICK_MISSING_FIELD);
  CHECK_STR(err, "missing field ts");
  CHECK_INT(ROW("A,1,\"\",,,"), TICK_MISSING_FIELD);
  CHECK_STR(err, "missing field px");
  CHECK_INT(ROW("\"A\"\"B\",1,2,,,"), TICK_BAD_SYM);
  CHECK_STR(err, "field sym: found \"A\"\"B\", expected 1..32 bytes of printable ASCII without "
                 "'\"', '\\' or ','");
  CHECK_INT(ROW("\"A,B\",1,2,,,"), TICK_BAD_SYM);
  CHECK_INT(ROW("A B,1,2,,,"), TICK_BAD_SYM);
  /* A date alone is midnight UTC in CSV (files only); the tick says how ts was written. */
  CHECK_INT(ROW("A,2024-01-02,2,,,"), TICK_OK);
  CHECK_INT(t.ts, 1704153600000000000LL);
  CHECK_INT(t.ts_int, 0);
  CHECK_INT(ROW("A,1704186000,2,,,"), TICK_OK);
  CHECK_INT(t.ts, 1704186000);
  CHECK_INT(t.ts_int, 1);
  CHECK_INT(ROW("A,\"2024-01-02\",2,,,"), TICK_OK);
  CHECK_INT(t.ts_int, 0);
  CHECK_INT(ROW("A,2024-13-01,2,,,"), TICK_BAD_TS);
  CHECK_STR(err, "field ts: found \"2024-13-01\", expected integer nanoseconds or an RFC 3339 "
                 "timestamp" TS_RANGE);
  CHECK_INT(ROW("A,1.5,2,,,"), TICK_BAD_TS);
  CHECK_INT(ROW("A,9223372036854775808,2,,,"), TICK_BAD_TS);
  CHECK_INT(ROW("A,1,-3,,,"), TICK_BAD_PX);
  CHECK_STR(err, "field px: found \"-3\", expected a finite number > 0");
  CHECK_INT(ROW("A,1,abc,,,"), TICK_BAD_PX);
  CHECK_INT(ROW("A,1,1.5x,,,"), TICK_BAD_PX);
  CHECK_INT(ROW("A,1, 1.5,,,"), TICK_BAD_PX);
  CHECK_INT(ROW("A,1,inf,,,"), TICK_BAD_PX);
  CHECK_INT(ROW("A,1,1e400,,,"), TICK_BAD_PX);
  CHECK_INT(ROW("A,1,1,-1,,"), TICK_BAD_QTY);
  CHECK_STR(err, "field qty: found \"-1\", expected a finite number >= 0");
  CHECK_INT(ROW("A,1,1,,0,"), TICK_BAD_QUOTE);
  CHECK_STR(err, "field bid: found \"0\", expected a finite number > 0");
  CHECK_INT(ROW("A,1,1,,1,x"), TICK_BAD_QUOTE);
  CHECK_STR(err, "field ask: found \"x\", expected a finite number > 0");
  CHECK_INT(ROW("A,1,1,,2,1"), TICK_OK);
  CHECK_INT(t.has_quote, 0);
  CHECK_INT(ROW("A,1,1,-0,,"), TICK_OK);
  CHECK(t.qty == 0 && !signbit(t.qty));
#undef ROW
}

/* JSON (Kafka messages) stays strict: no date alone; ts_int says integer or string. */
static void test_json_ts_kind(void) {
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":\"2024-01-02\",\"px\":1}"), TICK_BAD_TS);
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":1704186000,\"px\":1}"), TICK_OK);
  CHECK_INT(t.ts_int, 1);
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":-0,\"px\":1}"), TICK_OK);
  CHECK_INT(t.ts_int, 1);
  CHECK_INT(js("{\"sym\":\"A\",\"ts\":\"2024-01-02T00:00:00Z\",\"px\":1}"), TICK_OK);
  CHECK_INT(t.ts_int, 0);
}

/* tick_json_sym_hint / tick_csv_sym_hint: the symbol where it is sure, 0 where it cannot tell. */
static const char *hint_json(const char *s) {
  static char out[64];
  const char *h;
  size_t n;
  if (!tick_json_sym_hint(s, strlen(s), &h, &n))
    return "-";
  snprintf(out, sizeof out, "%.*s", (int)n, h);
  return out;
}

static const char *hint_csv(const char *hdr, const char *row) {
  static char out[64];
  tick_csv h;
  char err[128];
  const char *s;
  size_t n;
  CHECK_INT(tick_csv_header(&h, hdr, strlen(hdr), err, sizeof err), 0);
  if (!tick_csv_sym_hint(&h, row, strlen(row), &s, &n))
    return "-";
  snprintf(out, sizeof out, "%.*s", (int)n, s);
  return out;
}

static void test_sym_hint(void) {
  CHECK_STR(hint_json("{\"sym\":\"EURUSD\",\"ts\":1,\"px\":1}"), "EURUSD");
  CHECK_STR(hint_json("{ \"px\":1, \"sym\" :\t\"A.B\" }"), "A.B");
  CHECK_STR(hint_json("{\"s\\u0079m\":\"A\",\"ts\":1,\"px\":1}"), "-"); /* escapes */
  CHECK_STR(hint_json("{\"sym\":\"A\\u0042\",\"ts\":1,\"px\":1}"), "-");
  CHECK_STR(hint_json("{\"sym\":\"A\",\"sym\":\"B\"}"), "-");         /* last one wins */
  CHECK_STR(hint_json("{\"m\":{\"sym\":\"B\"},\"sym\":\"A\"}"), "-"); /* nested */
  CHECK_STR(hint_json("{\"note\":\"sym\",\"sym\":\"A\"}"), "-");      /* a value "sym" */
  CHECK_STR(hint_json("{\"sym\":5}"), "-");
  CHECK_STR(hint_json("{\"px\":1}"), "-");
  CHECK_STR(hint_csv("sym,ts,px", "EURUSD,1,2"), "EURUSD");
  CHECK_STR(hint_csv("ts,px,sym", "1,2,GBP\r"), "GBP"); /* the row's '\r' is not the sym's */
  CHECK_STR(hint_csv("ts,px,sym", "1,2"), "-");
  CHECK_STR(hint_csv("ts,sym,px", "\"1,0\",A,2"), "-"); /* quoted fields: decode to know */
  CHECK_STR(hint_csv("ts,sym,px", "1,\"A\",2"), "-");   /* the decoder unquotes it */
  CHECK_STR(hint_csv("sym,ts,px", "A,1,\"2\""), "A");   /* quotes after the sym do not matter */
  CHECK_STR(hint_csv("sym,ts,px", ",1,2"), "");         /* rejected anyway: missing sym */
}

/* tick_json_sym_hint against a reference that says the same thing with memchr and memmem: no
 * backslash, exactly one "sym" (overlapping ones counted), then ws ':' ws '"' and the value up to
 * the next quote. Random strings over the bytes that matter, of 0 to 200 bytes, so that the key,
 * a backslash and the value fall on every place of the 16-byte blocks and in the tail after them;
 * then a real tick padded in front by 0 to 40 spaces. */
static int ref_json_hint(const char *buf, size_t len, const char **sym, size_t *symlen) {
  if (memchr(buf, '\\', len))
    return 0;
  const char *end = buf + len, *k = NULL;
  for (const char *p = buf; (p = memmem(p, (size_t)(end - p), "\"sym\"", 5)); p++) {
    if (k)
      return 0;
    k = p;
  }
  if (!k)
    return 0;
  const char *p = k + 5;
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    p++;
  if (p == end || *p++ != ':')
    return 0;
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
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

static void check_hint_same(const char *s, size_t n) {
  const char *a = NULL, *b = NULL;
  size_t an = 0, bn = 0;
  int ra = tick_json_sym_hint(s, n, &a, &an), rb = ref_json_hint(s, n, &b, &bn);
  CHECK_INT(ra, rb);
  if (ra && rb) {
    CHECK_INT((int)(a - s), (int)(b - s));
    CHECK_INT((int)an, (int)bn);
  }
}

static void test_sym_hint_blocks(void) {
  static const char alphabet[] = "\"\"\"sym:  \\a{}";
  char buf[256];
  int answered = 0;
  for (int trial = 0; trial < 200000; trial++) {
    size_t n = (size_t)(next_u64() % 201);
    for (size_t i = 0; i < n; i++)
      buf[i] = alphabet[next_u64() % (sizeof alphabet - 1)];
    if (n >= 8 && next_u64() % 2) { /* plant a key and a value somewhere */
      size_t at = (size_t)(next_u64() % (n - 7));
      memcpy(buf + at, "\"sym\":\"A", 8);
    }
    const char *h;
    size_t hn;
    answered += tick_json_sym_hint(buf, n, &h, &hn);
    check_hint_same(buf, n);
  }
  CHECK(answered > 1000); /* the planted keys are found, not only refused */
  const char *tick = "{\"sym\":\"EURUSD\",\"ts\":1700000000000582085,\"px\":1.0842,\"bid\":1.0841}";
  for (size_t pad = 0; pad <= 40; pad++) {
    memset(buf, ' ', pad);
    memcpy(buf + pad, tick, strlen(tick));
    const char *h = NULL;
    size_t hn = 0;
    CHECK_INT(tick_json_sym_hint(buf, pad + strlen(tick), &h, &hn), 1);
    CHECK_INT((int)hn, 6);
    CHECK(h && memcmp(h, "EURUSD", 6) == 0);
    check_hint_same(buf, pad + strlen(tick));
  }
}

int main(void) {
  test_accept();
  test_sym_hint();
  test_sym_hint_blocks();
  test_json_ts_kind();
  test_date_and_format();
  test_reject();
  test_reason_names();
  test_key();
  test_int64();
  test_number();
  test_rfc3339();
  test_csv();
  return check_done();
}
