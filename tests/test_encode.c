/* test_encode.c: daemon/pipeline/encode.c against jansson: the JSON prediction parses, with every
 * field equal to the tick's (px echoed as written, pred_ret and pred_px to 10 significant digits);
 * src with quotes, backslashes and control bytes comes back unchanged through a JSON parser; a src
 * that escapes to more than ENC_SRC_MAX bytes is cut to a prefix that still parses, never inside an
 * escape, and the whole object stays within ENC_PRED_MAX (a file name of 200 tabs once wrote 1344
 * bytes into 512); the CSV row, and that no row is longer than ENC_CSV_MAX (the replay on threads
 * lays out its logs by it). */
#include <jansson.h>
#include <stdlib.h>

#include "check.h"
#include "daemon/pipeline/encode.h"

#ifndef ENC_SRC_MAX /* encode.h before it had the name */
#define ENC_SRC_MAX 300
#endif

static eng_tick tick_of(const char *sym, double px) {
  eng_tick t;
  memset(&t, 0, sizeof t);
  t.t.sym_len = (uint8_t)strlen(sym);
  memcpy(t.t.sym, sym, t.t.sym_len);
  t.t.ts = 1700000000123456789LL;
  t.t.px = px;
  t.pred_ret = -3.0712345678912e-4;
  t.pred_px = px * 0.9996929;
  t.n = 173;
  return t;
}

/* Encodes t with src into a guarded buffer, parses it, and returns the parsed object. */
static json_t *encode_parse(const eng_tick *t, const char *src, size_t srclen, size_t *len) {
  static char buf[ENC_PRED_MAX + 64];
  memset(buf, 0x5a, sizeof buf);
  *len = enc_pred_json(buf, t, src, srclen);
  CHECK(*len <= ENC_PRED_MAX);
  for (size_t i = ENC_PRED_MAX; i < sizeof buf; i++) /* nothing written past the budget */
    CHECK(buf[i] == 0x5a);
  json_error_t e;
  json_t *j = json_loadb(buf, *len, 0, &e);
  if (!j)
    fprintf(stderr, "not JSON (%s): %.*s\n", e.text, (int)*len, buf);
  CHECK(j != NULL);
  return j;
}

static void fields(void) {
  eng_tick t = tick_of("USDTHB", 24.9);
  size_t len;
  json_t *j = encode_parse(&t, "ticks/3/12345", 13, &len);
  if (!j)
    return;
  CHECK(!strcmp(json_string_value(json_object_get(j, "sym")), "USDTHB"));
  CHECK_INT(json_integer_value(json_object_get(j, "ts")), 1700000000123456789LL);
  CHECK(json_real_value(json_object_get(j, "px")) == 24.9);
  CHECK(fabs(json_real_value(json_object_get(j, "pred_ret")) / t.pred_ret - 1) < 1e-9);
  CHECK(fabs(json_real_value(json_object_get(j, "pred_px")) / t.pred_px - 1) < 1e-9);
  CHECK_INT(json_integer_value(json_object_get(j, "n")), 173);
  CHECK(!strcmp(json_string_value(json_object_get(j, "src")), "ticks/3/12345"));
  json_decref(j);
}

static void escapes(void) {
  eng_tick t = tick_of("A", 1.5);
  const char src[] = "dir \"q\"\\x\t\x01\x1f/f.csv:7";
  size_t len;
  json_t *j = encode_parse(&t, src, sizeof src - 1, &len);
  if (!j)
    return;
  CHECK(!strcmp(json_string_value(json_object_get(j, "src")), src));
  json_decref(j);
}

/* Long sources of every kind of byte: cut, as escaped, to at most ENC_SRC_MAX bytes, a prefix of
 * the source. */
static void long_src(void) {
  static const char fill[] = {'\t', '"', '\\', 'a', '\x1f'};
  char src[1200];
  eng_tick t = tick_of("SYMBOL_OF_THIRTY_TWO_CHARACTERS_", 123456.789);
  for (int k = 0; k < 6; k++) {
    for (size_t i = 0; i < sizeof src; i++)
      src[i] = k < 5 ? fill[k] : fill[i % 5];
    size_t len;
    json_t *j = encode_parse(&t, src, sizeof src, &len);
    if (!j)
      continue;
    const char *s = json_string_value(json_object_get(j, "src"));
    size_t n = json_string_length(json_object_get(j, "src"));
    CHECK(n > 0 && n < sizeof src);
    CHECK(memcmp(s, src, n) == 0);
    size_t w = 0; /* its escaped width */
    for (size_t i = 0; i < n; i++)
      w += src[i] == '"' || src[i] == '\\' ? 2 : (unsigned char)src[i] < 0x20 ? 6 : 1;
    CHECK(w <= ENC_SRC_MAX && w > ENC_SRC_MAX - 6);
    json_decref(j);
  }
}

static void csv(void) {
  eng_tick t = tick_of("EURUSD", 1.0825);
  char buf[ENC_PRED_MAX];
  size_t n = enc_pred_csv(buf, &t);
  buf[n] = 0;
  CHECK(!strcmp(buf, "EURUSD,1700000000123456789,1.0825,-0.0003071234568,1.082167564,173"));
  if (strcmp(buf, "EURUSD,1700000000123456789,1.0825,-0.0003071234568,1.082167564,173"))
    fprintf(stderr, "csv: %s\n", buf);
}

/* A random double of any bit pattern: every sign, exponent, subnormal, infinity and NaN. */
static double any_double(uint64_t *x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  double d;
  memcpy(&d, x, sizeof d);
  return d;
}

/* The longest rows: a 32-byte sym, the most negative ts and n's largest, numbers of every bit
 * pattern, px as text and as a number, with and without the scale head's columns. */
static void csv_longest(void) {
  char buf[ENC_PRED_MAX + 64];
  uint64_t x = 88172645463325252ULL;
  size_t most[2] = {0, 0};
  for (int i = 0; i < 200000; i++) {
    eng_tick t = tick_of("SYMBOL_OF_THIRTY_TWO_CHARACTERS_", any_double(&x));
    t.t.ts = i & 1 ? INT64_MIN : (int64_t)x;
    t.n = i & 2 ? UINT64_MAX : x;
    t.pred_ret = i % 7 ? any_double(&x) : -1.2345678901234e-300;
    t.pred_px = i % 5 ? any_double(&x) : -9.87654321012345e-307;
    t.has_std = (uint8_t)(i & 4 ? 1 : 0);
    t.pred_std = any_double(&x), t.lo_px = any_double(&x), t.hi_px = -4.9e-324;
    if (i & 8) { /* px kept as written: at most TICK_PX_TXT_MAX bytes */
      t.t.px_len = TICK_PX_TXT_MAX;
      memset(t.t.px_txt, '9', TICK_PX_TXT_MAX);
    }
    size_t n = enc_pred_csv(buf, &t);
    if (n > most[t.has_std])
      most[t.has_std] = n;
  }
  CHECK(most[0] > 100 && most[0] <= (size_t)ENC_CSV_MAX(0));
  CHECK(most[1] > most[0] && most[1] <= (size_t)ENC_CSV_MAX(1));
  if (most[0] > (size_t)ENC_CSV_MAX(0) || most[1] > (size_t)ENC_CSV_MAX(1))
    fprintf(stderr, "csv rows of %zu and %zu bytes, bounds %d and %d\n", most[0], most[1],
            ENC_CSV_MAX(0), ENC_CSV_MAX(1));
}

int main(void) {
  fields();
  escapes();
  long_src();
  csv();
  csv_longest();
  return check_done();
}
