/* dlq.c: dead-letter records as JSON (see dlq.h). Rejections are the exception, so this favours
 * clarity over speed: jansson builds the object and does the escaping. */
#include "daemon/pipeline/dlq.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s[0..n), 0 when invalid (overlongs, surrogates and
 * code points above U+10FFFF are invalid, as jansson requires). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80)
    return 1;
  size_t k;
  unsigned cp;
  if (c >= 0xC2 && c <= 0xDF)
    k = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF)
    k = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4)
    k = 4, cp = c & 0x07;
  else
    return 0;
  if (n < k)
    return 0;
  for (size_t i = 1; i < k; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF)
    return 0;
  return k;
}

/* Cuts n down to at most cut bytes without splitting a UTF-8 sequence (when the text is UTF-8). */
static size_t utf8_cut(const unsigned char *s, size_t n, size_t cut) {
  if (n <= cut)
    return n;
  size_t m = cut;
  while (m > 0 && cut - m < 3 && (s[m] & 0xC0) == 0x80)
    m--;
  return m;
}

static int utf8_valid(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq(s + i, n - i);
    if (!k)
      return 0;
    i += k;
  }
  return 1;
}

static json_t *b64(const unsigned char *s, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t m = (n + 2) / 3 * 4;
  char *out = malloc(m + 1);
  if (!out)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)s[i] << 16;
    if (i + 1 < n)
      v |= (unsigned)s[i + 1] << 8;
    if (i + 2 < n)
      v |= s[i + 2];
    out[o++] = tab[(v >> 18) & 63];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? tab[v & 63] : '=';
  }
  json_t *j = json_stringn(out, o);
  free(out);
  return j;
}

/* Sets name (and name_encoding when base64 is needed) to the bytes s[0..n). */
static void set_bytes(json_t *o, const char *name, const char *encname, const unsigned char *s,
                      size_t n, int always_enc) {
  int text = utf8_valid(s, n);
  json_object_set_new(o, name, text ? json_stringn((const char *)s, n) : b64(s, n));
  if (always_enc || !text)
    json_object_set_new(o, encname, json_string(text ? "text" : "base64"));
}

size_t dlq_key_kept(const void *key, size_t keylen) {
  return key ? utf8_cut(key, keylen, DLQ_KEY_MAX) : 0;
}

/* Sets name to the text s, cut to DLQ_TEXT_MAX bytes; text that is not valid UTF-8 (error texts
 * quote input bytes) is replaced by `invalid`. */
static void set_text(json_t *o, const char *name, const char *s, const char *invalid) {
  size_t n = utf8_cut((const unsigned char *)s, strlen(s), DLQ_TEXT_MAX);
  int ok = utf8_valid((const unsigned char *)s, n);
  json_object_set_new(o, name, ok ? json_stringn(s, n) : json_string(invalid));
}

char *dlq_encode(const char *reason, const char *error, const char *src, const void *key,
                 size_t keylen, int64_t time_ms, const void *payload, size_t len, size_t cut,
                 size_t *outlen) {
  json_t *o = json_object();
  if (!o)
    return NULL;
  json_object_set_new(o, "reason", json_string(reason));
  set_text(o, "error", error, "(error text not valid UTF-8)");
  set_text(o, "src", src, "(src not valid UTF-8)");
  if (key) {
    size_t kept = dlq_key_kept(key, keylen);
    set_bytes(o, "key", "key_encoding", key, kept, 0);
    if (kept < keylen) {
      json_object_set_new(o, "key_truncated", json_true());
      json_object_set_new(o, "key_len", json_integer((json_int_t)keylen));
    }
  } else {
    json_object_set_new(o, "key", json_null());
  }
  json_object_set_new(o, "time", json_integer(time_ms));
  json_object_set_new(o, "len", json_integer((json_int_t)len));
  const unsigned char *p = payload ? payload : (const unsigned char *)"";
  size_t n = payload ? len : 0;
  size_t kept = utf8_cut(p, n, cut);
  set_bytes(o, "payload", "payload_encoding", p, kept, 1);
  json_object_set_new(o, "truncated", json_boolean(kept < n));
  char *out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (out)
    *outlen = strlen(out);
  return out;
}
