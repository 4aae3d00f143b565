/* tick_json.c: decodes one tick (CONTRACT §1) from a JSON object: the daemon's hot path, one
 * pass, no allocation, no NUL-terminated copies. Not for CSV rows (tick_csv.c), numbers and
 * timestamps (number.c, rfc3339.c), or reading files or Kafka (tickfile.c, daemon/).
 *
 * Decisions (documented in tick.h and docs/TICKS.md):
 * - Input must be one complete RFC 8259 object; strings must be valid UTF-8 (overlongs, encoded
 *   surrogates and code points above U+10FFFF are rejected), \u escapes must pair surrogates.
 * - Keys are compared after unescaping ("p\u0078" is px). Duplicate keys: the last one wins.
 * - `null` for any field means absent (so "px":null is a missing field, "qty":null is qty 0).
 * - Nesting inside unknown keys is limited to TICK_JSON_DEPTH_MAX levels (the object included).
 * - A sym or RFC 3339 ts given as a string is unescaped before it is checked.
 * - qty -0 is stored as +0. */
#include "ingest/tick.h"

#include <stdio.h>
#include <string.h>

#include "ingest/digits_int.h"
#include "ingest/number.h"
#include "ingest/rfc3339.h"
#include "ingest/tick_int.h"

/* Character classes: 1 = plain string byte (0x20..0x7F except '"' and '\\'). */
/* clang-format off */
static const unsigned char str_plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0), /* 0x00..0x1F: control */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x22 '"' */
    R16(1), R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x5C '\\' */
    R16(1), R16(1),
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), /* 0x80..0xFF: UTF-8 */
#undef R16
};
/* clang-format on */

typedef struct jctx {
  const char *buf, *end;
  const char *errpos; /* where the JSON went wrong */
  const char *errmsg; /* what was expected */
} jctx;

static inline const char *jfail(jctx *c, const char *p, const char *msg) {
  c->errpos = p;
  c->errmsg = msg;
  return NULL;
}

static inline const char *skip_ws(const char *p, const char *end) {
  if (p < end && (unsigned char)*p > ' ')
    return p; /* compact JSON: no whitespace at all */
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    p++;
  return p;
}

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char ch = p[i];
    int d;
    if (ch >= '0' && ch <= '9')
      d = ch - '0';
    else if (ch >= 'a' && ch <= 'f')
      d = ch - 'a' + 10;
    else if (ch >= 'A' && ch <= 'F')
      d = ch - 'A' + 10;
    else
      return -1;
    v = v * 16 + d;
  }
  return v;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0 when invalid (RFC 3629). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
  unsigned char c0 = p[0];
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c0 >= 0xC2 && c0 <= 0xDF)
    n = 2;
  else if (c0 >= 0xE0 && c0 <= 0xEF) {
    n = 3;
    if (c0 == 0xE0)
      lo = 0xA0;
    if (c0 == 0xED)
      hi = 0x9F; /* no encoded surrogates */
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    n = 4;
    if (c0 == 0xF0)
      lo = 0x90;
    if (c0 == 0xF4)
      hi = 0x8F; /* nothing above U+10FFFF */
  } else
    return 0;
  if ((size_t)(end - p) < n)
    return 0;
  if (p[1] < lo || p[1] > hi)
    return 0;
  for (size_t k = 2; k < n; k++)
    if (p[k] < 0x80 || p[k] > 0xBF)
      return 0;
  return n;
}

/* Scans a string whose opening quote is at p. Returns the position after the closing quote, or
 * NULL with the error set. *esc is set when the body holds a backslash escape. */
static const char *scan_string(jctx *c, const char *p, int *esc) {
  const char *end = c->end;
  p++;
  for (;;) {
    /* Eight bytes at a time: flag bytes < 0x20, == '"', == '\\' or >= 0x80. Borrows only
     * flag bytes above a true match, so the lowest flag is the first byte to look at. */
    while (end - p >= 8) {
      uint64_t w, q, b, m;
      memcpy(&w, p, 8);
      q = w ^ 0x2222222222222222ULL;
      b = w ^ 0x5C5C5C5C5C5C5C5CULL;
      m = ((w - 0x2020202020202020ULL) & ~w) | ((q - 0x0101010101010101ULL) & ~q) |
          ((b - 0x0101010101010101ULL) & ~b) | w;
      m &= 0x8080808080808080ULL;
      if (m) {
        p += __builtin_ctzll(m) >> 3;
        break;
      }
      p += 8;
    }
    while (p < end && str_plain[(unsigned char)*p])
      p++;
    if (p >= end)
      return jfail(c, p, "unterminated string");
    unsigned char ch = (unsigned char)*p;
    if (ch == '"')
      return p + 1;
    if (ch == '\\') {
      *esc = 1;
      if (end - p < 2)
        return jfail(c, end, "unterminated string");
      switch (p[1]) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't': p += 2; break;
      case 'u': {
        if (end - p < 6)
          return jfail(c, p, "invalid \\u escape");
        int u = hex4(p + 2);
        if (u < 0)
          return jfail(c, p, "invalid \\u escape");
        if (u >= 0xDC00 && u <= 0xDFFF)
          return jfail(c, p, "unpaired surrogate in \\u escape");
        if (u >= 0xD800 && u <= 0xDBFF) {
          if (end - p < 12 || p[6] != '\\' || p[7] != 'u')
            return jfail(c, p, "unpaired surrogate in \\u escape");
          int lo = hex4(p + 8);
          if (lo < 0xDC00 || lo > 0xDFFF)
            return jfail(c, p, "unpaired surrogate in \\u escape");
          p += 12;
        } else {
          p += 6;
        }
        break;
      }
      default: return jfail(c, p, "invalid escape in string");
      }
    } else if (ch < 0x20) {
      return jfail(c, p, "control character in string");
    } else {
      size_t n = utf8_len((const unsigned char *)p, (const unsigned char *)end);
      if (!n)
        return jfail(c, p, "invalid UTF-8 in string");
      p += n;
    }
  }
}

/* Decodes the (already validated) string body s[0..n) into out[0..cap). Returns the decoded
 * length, or cap + 1 when it does not fit. */
static size_t unescape(const char *s, size_t n, char *out, size_t cap) {
  size_t j = 0;
  for (size_t i = 0; i < n;) {
    char ch = s[i];
    if (ch != '\\') {
      if (j >= cap)
        return cap + 1;
      out[j++] = ch;
      i++;
      continue;
    }
    char e = s[i + 1];
    unsigned u;
    i += 2;
    switch (e) {
    case 'b': u = '\b'; break;
    case 'f': u = '\f'; break;
    case 'n': u = '\n'; break;
    case 'r': u = '\r'; break;
    case 't': u = '\t'; break;
    case 'u':
      u = (unsigned)hex4(s + i);
      i += 4;
      if (u >= 0xD800 && u <= 0xDBFF) {
        unsigned lo = (unsigned)hex4(s + i + 2);
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        i += 6;
      }
      break;
    default: u = (unsigned char)e; break; /* '"' '\\' '/' */
    }
    unsigned char tmp[4];
    size_t k;
    if (u < 0x80)
      tmp[0] = (unsigned char)u, k = 1;
    else if (u < 0x800)
      tmp[0] = (unsigned char)(0xC0 | (u >> 6)), tmp[1] = (unsigned char)(0x80 | (u & 0x3F)), k = 2;
    else if (u < 0x10000)
      tmp[0] = (unsigned char)(0xE0 | (u >> 12)),
      tmp[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3F)),
      tmp[2] = (unsigned char)(0x80 | (u & 0x3F)), k = 3;
    else
      tmp[0] = (unsigned char)(0xF0 | (u >> 18)),
      tmp[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3F)),
      tmp[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3F)),
      tmp[3] = (unsigned char)(0x80 | (u & 0x3F)), k = 4;
    if (j + k > cap)
      return cap + 1;
    memcpy(out + j, tmp, k);
    j += k;
  }
  return j;
}

/* Scans a JSON number's grammar at p (no conversion). Returns the end or NULL. */
static const char *scan_number(jctx *c, const char *p) {
  const char *end = c->end, *s = p;
  if (p < end && *p == '-')
    p++;
  if (p >= end || !is_digit(*p))
    return jfail(c, s, "invalid number");
  if (*p == '0')
    p++;
  else
    while (p < end && is_digit(*p))
      p++;
  if (p < end && *p == '.') {
    p++;
    if (p >= end || !is_digit(*p))
      return jfail(c, s, "invalid number");
    while (p < end && is_digit(*p))
      p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-'))
      p++;
    if (p >= end || !is_digit(*p))
      return jfail(c, s, "invalid number");
    while (p < end && is_digit(*p))
      p++;
  }
  return p;
}

static const char *scan_literal(jctx *c, const char *p, const char *lit, size_t n) {
  if ((size_t)(c->end - p) < n || memcmp(p, lit, n) != 0)
    return jfail(c, p, "expected a value");
  return p + n;
}

/* Scans a string, number or literal at p (anything but a container). Returns the end or NULL. */
static inline const char *scan_scalar(jctx *c, const char *p) {
  int esc;
  switch (*p) {
  case '"': return scan_string(c, p, &esc);
  case '-':
  case '0':
  case '1':
  case '2':
  case '3':
  case '4':
  case '5':
  case '6':
  case '7':
  case '8':
  case '9': return scan_number(c, p);
  case 't': return scan_literal(c, p, "true", 4);
  case 'f': return scan_literal(c, p, "false", 5);
  case 'n': return scan_literal(c, p, "null", 4);
  default: return jfail(c, p, "expected a value");
  }
}

/* Scans a member's key, whose opening quote is at p, and the ':' after it. Returns the position
 * after the ':', or NULL. */
static inline const char *scan_key(jctx *c, const char *p) {
  int esc;
  p = scan_string(c, p, &esc);
  if (!p)
    return NULL;
  p = skip_ws(p, c->end);
  if (p >= c->end || *p != ':')
    return jfail(c, p, "expected ':'");
  return p + 1;
}

/* After a value inside skip_value's containers (*d deep, *stack: 1 = array): closes the
 * containers that end here. Returns the position of the next element's value (after a ',', and
 * after the key in an object), or, when *d reaches 0, the end of the outermost value; NULL on an
 * error. */
static inline const char *scan_after_value(jctx *c, const char *p, uint64_t *stack, int *d) {
  const char *end = c->end;
  for (;;) {
    if (*d == 0)
      return p;
    p = skip_ws(p, end);
    if (*stack & 1) {
      if (p < end && *p == ',')
        return p + 1;
      if (p < end && *p == ']') {
        p++, *stack >>= 1, (*d)--;
        continue;
      }
      return jfail(c, p, "expected ',' or ']'");
    }
    if (p < end && *p == ',') {
      p = skip_ws(p + 1, end);
      if (p >= end || *p != '"')
        return jfail(c, p, "expected a string key");
      return scan_key(c, p);
    }
    if (p < end && *p == '}') {
      p++, *stack >>= 1, (*d)--;
      continue;
    }
    return jfail(c, p, "expected ',' or '}'");
  }
}

/* Scans (validates) any JSON value at p; depth is the nesting level of the container holding it.
 * Containers are walked iteratively with a bit stack (1 = array), so the C stack stays flat. */
static const char *skip_value(jctx *c, const char *p, int depth) {
  const char *end = c->end;
  uint64_t stack = 0;
  int d = 0;
  for (;;) {
    p = skip_ws(p, end);
    if (p >= end)
      return jfail(c, p, "expected a value");
    if (*p == '{' || *p == '[') {
      int arr = *p == '[';
      if (depth + d + 1 > TICK_JSON_DEPTH_MAX)
        return jfail(c, p, "nesting too deep");
      stack = (stack << 1) | (uint64_t)arr;
      d++;
      p = skip_ws(p + 1, end);
      if (p < end && *p == (arr ? ']' : '}')) {
        p++;
        stack >>= 1;
        d--;
      } else if (arr) {
        continue;
      } else {
        if (p >= end || *p != '"')
          return jfail(c, p, "expected a string key or '}'");
        p = scan_key(c, p);
        if (!p)
          return NULL;
        continue;
      }
    } else {
      p = scan_scalar(c, p);
      if (!p)
        return NULL;
    }
    p = scan_after_value(c, p, &stack, &d);
    if (!p || d == 0)
      return p;
  }
}

/* Which field a key names; keys with escapes are unescaped first. */
static int key_field(const char *k, size_t n, int esc) {
  char tmp[4];
  if (esc) {
    n = unescape(k, n, tmp, 3);
    if (n > 3)
      return F_OTHER;
    k = tmp;
  }
  switch (n) {
  case 2:
    if (k[0] == 't' && k[1] == 's')
      return F_TS;
    if (k[0] == 'p' && k[1] == 'x')
      return F_PX;
    return F_OTHER;
  case 3:
    if (!memcmp(k, "sym", 3))
      return F_SYM;
    if (!memcmp(k, "qty", 3))
      return F_QTY;
    if (!memcmp(k, "bid", 3))
      return F_BID;
    if (!memcmp(k, "ask", 3))
      return F_ASK;
    return F_OTHER;
  default: return F_OTHER;
  }
}

/* The known keys written plainly, as almost every producer writes them: one 4-byte load at the
 * key's first byte decides. Returns the field, or -1 to scan the key the general way. */
static inline int key_fast(const char *k) {
  uint32_t w;
  memcpy(&w, k, 4);
#define K4(a, b, c, d)                                                                             \
  ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
  switch (w & 0xFFFFFF) {
  case K4('t', 's', '"', 0): return F_TS;
  case K4('p', 'x', '"', 0): return F_PX;
  }
  switch (w) {
  case K4('s', 'y', 'm', '"'): return F_SYM;
  case K4('q', 't', 'y', '"'): return F_QTY;
  case K4('b', 'i', 'd', '"'): return F_BID;
  case K4('a', 's', 'k', '"'): return F_ASK;
  }
#undef K4
  return -1;
}

/* What a known field held: its raw token and, for numbers of px/qty/bid/ask, the value. */
enum { V_ABSENT, V_STRING, V_NUMBER, V_INT, V_OTHER };
typedef struct jval {
  const char *s; /* raw token (strings: the body without quotes) */
  size_t n;
  int kind;
  int esc;    /* string with escapes */
  double v;   /* V_NUMBER of a numeric field */
  int64_t iv; /* V_INT: a ts that is a plain int64 integer */
} jval;

/* The common ts: an int64 integer token at p (no fraction or exponent, no leading zero, in
 * range), read in one pass. Returns 1 and fills jv, or 0 to let the general path decide. */
static inline int ts_int(const char *p, const char *end, jval *jv) {
  const char *q = p;
  int neg = *q == '-';
  q += neg;
  const char *d0 = q;
  uint64_t u = 0;
  q = digits_u64(q, end, &u);
  long nd = q - d0;
  if (nd == 0 || nd > 19 || (*d0 == '0' && nd > 1))
    return 0;
  if (q < end && (*q == '.' || *q == 'e' || *q == 'E'))
    return 0;
  if (u > (uint64_t)INT64_MAX + (uint64_t)neg)
    return 0;
  jv->kind = V_INT;
  jv->iv = neg ? (int64_t)(0 - u) : (int64_t)u;
  jv->s = p;
  jv->n = (size_t)(q - p);
  return 1;
}

static int bad_jval(int f, const jval *v, char *err, size_t errlen) {
  if (v->kind == V_STRING)
    return tick_bad_field(f, v->s, v->n, 1, err, errlen);
  return tick_bad_field(f, v->s, v->n, 0, err, errlen);
}

/* Applies the field rules of CONTRACT §1 to the values found and fills t. */
static int finish(tick *t, jval *v, char *err, size_t errlen) {
  for (int f = F_SYM; f <= F_PX; f++)
    if (v[f].kind == V_ABSENT)
      return tick_missing_field(f, err, errlen);
  /* sym */
  if (v[F_SYM].kind != V_STRING)
    return bad_jval(F_SYM, &v[F_SYM], err, errlen);
  if (v[F_SYM].esc) {
    size_t n = unescape(v[F_SYM].s, v[F_SYM].n, t->sym, TICK_SYM_MAX);
    if (n > TICK_SYM_MAX || !sym_ok(t->sym, n))
      return bad_jval(F_SYM, &v[F_SYM], err, errlen);
    t->sym_len = (uint8_t)n;
  } else {
    if (!sym_ok(v[F_SYM].s, v[F_SYM].n))
      return bad_jval(F_SYM, &v[F_SYM], err, errlen);
    memcpy(t->sym, v[F_SYM].s, v[F_SYM].n);
    t->sym_len = (uint8_t)v[F_SYM].n;
  }
  t->sym[t->sym_len] = 0;
  /* ts */
  t->ts_int = v[F_TS].kind != V_STRING;
  if (v[F_TS].kind == V_INT) {
    t->ts = v[F_TS].iv;
  } else if (v[F_TS].kind == V_NUMBER) {
    if (tick_parse_int64(v[F_TS].s, v[F_TS].n, &t->ts) != 0)
      return bad_jval(F_TS, &v[F_TS], err, errlen);
  } else if (v[F_TS].kind == V_STRING) {
    const char *s = v[F_TS].s;
    size_t n = v[F_TS].n;
    char tmp[40];
    if (v[F_TS].esc) {
      n = unescape(s, n, tmp, sizeof tmp);
      s = tmp;
    }
    if (n > 40 || tick_parse_rfc3339(s, n, &t->ts) != 0)
      return bad_jval(F_TS, &v[F_TS], err, errlen);
  } else {
    return bad_jval(F_TS, &v[F_TS], err, errlen);
  }
  /* px, qty, bid, ask */
  for (int f = F_PX; f <= F_ASK; f++) {
    if (v[f].kind == V_ABSENT)
      continue;
    if (v[f].kind != V_NUMBER || !num_ok(f, v[f].v))
      return bad_jval(f, &v[f], err, errlen);
  }
  t->px = v[F_PX].v;
  px_text(t, v[F_PX].s, v[F_PX].n);
  t->qty = v[F_QTY].kind == V_ABSENT ? 0.0 : v[F_QTY].v + 0.0; /* -0 becomes +0 */
  t->has_quote = 0;
  t->bid = t->ask = 0;
  if (v[F_BID].kind != V_ABSENT && v[F_ASK].kind != V_ABSENT) {
    t->bid = v[F_BID].v;
    t->ask = v[F_ASK].v;
    t->has_quote = t->bid <= t->ask;
  }
  return TICK_OK;
}

/* The key of a member, whose opening quote is at p: *f gets the known field it names or F_OTHER.
 * Plain known keys are matched with one load (key_fast); others are scanned and unescaped.
 * Returns the position after the closing quote, or NULL. */
static inline const char *member_key(jctx *c, const char *p, int *f) {
  *f = c->end - p >= 5 ? key_fast(p + 1) : -1;
  if (*f >= 0)
    return p + (*f == F_TS || *f == F_PX ? 4 : 5); /* the quotes and the name */
  int esc = 0;
  const char *k = p + 1;
  p = scan_string(c, p, &esc);
  if (!p)
    return NULL;
  *f = key_field(k, (size_t)(p - 1 - k), esc);
  return p;
}

/* Records the value at p of the known field f in jv (a duplicate replaces it): a string or a
 * number as its token (px, qty, bid and ask also converted, a plain integer ts read at once),
 * null as absent, anything else validated and kept as V_OTHER for the error message. Returns
 * the position after the value, or NULL. */
static inline const char *field_value(jctx *c, const char *p, int f, jval *jv) {
  const char *end = c->end, *s = p;
  if (*p == '"') {
    jv->esc = 0;
    p = scan_string(c, p, &jv->esc);
    if (!p)
      return NULL;
    jv->kind = V_STRING;
    jv->s = s + 1;
    jv->n = (size_t)(p - 1 - jv->s);
  } else if (f == F_TS && (*p == '-' || is_digit(*p)) && ts_int(p, end, jv)) {
    p += jv->n;
  } else if (*p == '-' || is_digit(*p)) {
    if (f == F_SYM || f == F_TS) {
      p = scan_number(c, p);
      if (!p)
        return NULL;
    } else {
      size_t n = tick_parse_number(p, (size_t)(end - p), &jv->v);
      if (!n)
        return jfail(c, p, "invalid number");
      p += n;
    }
    jv->kind = V_NUMBER;
    jv->s = s;
    jv->n = (size_t)(p - s);
  } else if (*p == 'n') {
    p = scan_literal(c, p, "null", 4);
    if (!p)
      return NULL;
    jv->kind = V_ABSENT; /* null means absent */
  } else {
    p = skip_value(c, p, 1);
    if (!p)
      return NULL;
    jv->kind = V_OTHER;
    jv->s = s;
    jv->n = (size_t)(p - s);
  }
  return p;
}

/* The members of the object whose '{' is at p: known fields are recorded in v, other values
 * validated and skipped. Returns the position after the closing '}', or NULL. */
static inline const char *object_members(jctx *c, const char *p, jval *v) {
  const char *end = c->end;
  p = skip_ws(p + 1, end);
  if (p < end && *p == '}')
    return p + 1;
  for (;;) {
    if (p >= end || *p != '"')
      return jfail(c, p, "expected a string key");
    int f;
    p = member_key(c, p, &f);
    if (!p)
      return NULL;
    p = skip_ws(p, end);
    if (p >= end || *p != ':')
      return jfail(c, p, "expected ':'");
    p = skip_ws(p + 1, end);
    if (p >= end)
      return jfail(c, p, "expected a value");
    p = f == F_OTHER ? skip_value(c, p, 1) : field_value(c, p, f, &v[f]);
    if (!p)
      return NULL;
    p = skip_ws(p, end);
    if (p < end && *p == ',') {
      p = skip_ws(p + 1, end);
      continue;
    }
    if (p < end && *p == '}')
      return p + 1;
    return jfail(c, p, "expected ',' or '}'");
  }
}

/* Writes "bad JSON at byte N: what was expected" into err and returns TICK_BAD_JSON. */
static int bad_json(const jctx *c, char *err, size_t errlen) {
  if (errlen) {
    size_t off = (size_t)(c->errpos - c->buf);
    if (c->errpos >= c->end)
      snprintf(err, errlen, "bad JSON at byte %zu (end of input): %s", off, c->errmsg);
    else
      snprintf(err, errlen, "bad JSON at byte %zu: %s", off, c->errmsg);
  }
  return TICK_BAD_JSON;
}

/* Decodes one JSON object tick; see tick.h for the contract and the top of this file for the
 * decisions. One pass: keys are matched as they are scanned, known values are recorded (the last
 * duplicate wins) and checked after the closing brace. */
int tick_parse_json(tick *t, const char *buf, size_t len, char *err, size_t errlen) {
  jctx c = {buf, buf + len, NULL, NULL};
  jval v[F_N];
  for (int f = 0; f < F_N; f++)
    v[f].kind = V_ABSENT;
  const char *p = skip_ws(buf, c.end);
  if (p >= c.end || *p != '{') {
    jfail(&c, p, "expected '{'");
    return bad_json(&c, err, errlen);
  }
  p = object_members(&c, p, v);
  if (!p)
    return bad_json(&c, err, errlen);
  p = skip_ws(p, c.end);
  if (p != c.end) {
    jfail(&c, p, "unexpected data after the object");
    return bad_json(&c, err, errlen);
  }
  return finish(t, v, err, errlen);
}
