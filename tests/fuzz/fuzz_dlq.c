/* fuzz_dlq.c: fuzzes the dead-letter encoder (dlq_encode, daemon/pipeline/dlq.h) with arbitrary
 * message bytes as payload and key: the record must be one line of valid JSON whose payload (text
 * or base64) decodes to a prefix of the input that is cut only when the input is longer than the
 * bound (and then by at most 3 bytes more, to keep UTF-8 whole), with the right len and truncated
 * flag. Small bounds (the `cut` argument) reach the cutting code often. Keys up to 508 bytes
 * reach the key's bound (DLQ_KEY_MAX): a longer key is kept as a prefix, cut at most 3 bytes
 * short of the bound, with key_truncated and key_len. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/pipeline/dlq.h"

static void fail(const char *what, const char *rec) {
  fprintf(stderr, "fuzz_dlq: %s: %s\n", what, rec);
  abort();
}

static size_t b64dec(const char *s, size_t n, unsigned char *out) {
  size_t o = 0;
  unsigned v = 0;
  int bits = 0;
  for (size_t i = 0; i < n && s[i] != '='; i++) {
    const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(t, s[i]);
    if (!p || !s[i])
      return (size_t)-1;
    v = (v << 6) | (unsigned)(p - t);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(v >> bits);
    }
  }
  return o;
}

/* Decodes field `name` (text or base64 per `enc`) into out; returns its length. */
static size_t field_bytes(json_t *o, const char *name, const char *enc, unsigned char *out,
                          const char *rec) {
  json_t *v = json_object_get(o, name);
  if (!json_is_string(v))
    fail(name, rec);
  const char *e = json_string_value(json_object_get(o, enc));
  size_t n = json_string_length(v);
  if (e && !strcmp(e, "base64")) {
    n = b64dec(json_string_value(v), n, out);
    if (n == (size_t)-1)
      fail("bad base64", rec);
    return n;
  }
  memcpy(out, json_string_value(v), n);
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  size_t cut = 1 + data[0] * 4; /* 1..1021: small bounds reach the cutting code often */
  size_t keylen = data[1] < 128 ? data[1] % 8u : (data[1] - 128u) * 4;
  data += 2;
  size -= 2;
  if (keylen > size)
    keylen = size;
  const uint8_t *key = data, *payload = data + keylen;
  size_t plen = size - keylen;
  size_t n = 0;
  char *rec = dlq_encode("bad_json", "field \xff: found junk", "ticks/1/2", keylen ? key : NULL,
                         keylen, 1, payload, plen, cut, &n);
  if (!rec)
    return 0;
  if (strlen(rec) != n || memchr(rec, '\n', n) || n > DLQ_RECORD_MAX)
    fail("not one line", rec);
  json_error_t jerr;
  json_t *o = json_loads(rec, JSON_ALLOW_NUL, &jerr);
  if (!o)
    fail("not JSON", rec);
  unsigned char *buf = malloc(plen + 16);
  size_t got = field_bytes(o, "payload", "payload_encoding", buf, rec);
  if ((size_t)json_integer_value(json_object_get(o, "len")) != plen)
    fail("len", rec);
  int trunc = json_is_true(json_object_get(o, "truncated"));
  if (got > plen || memcmp(buf, payload, got))
    fail("payload is not a prefix of the input", rec);
  if (trunc != (got < plen))
    fail("truncated flag", rec);
  if (got > cut || (plen > cut && got + 3 < cut))
    fail("cut size", rec);
  if (plen <= cut && got != plen)
    fail("cut without need", rec);
  if (keylen) {
    unsigned char kb[512];
    size_t kl = field_bytes(o, "key", "key_encoding", kb, rec);
    if (kl > keylen || memcmp(kb, key, kl) || kl != dlq_key_kept(key, keylen))
      fail("key", rec);
    if (keylen <= DLQ_KEY_MAX ? kl != keylen : kl > DLQ_KEY_MAX || kl + 3 < DLQ_KEY_MAX)
      fail("key cut", rec);
    int kt = json_is_true(json_object_get(o, "key_truncated"));
    json_t *klj = json_object_get(o, "key_len");
    if (kt != (kl < keylen) || (kt && (size_t)json_integer_value(klj) != keylen))
      fail("key_truncated or key_len", rec);
  } else if (!json_is_null(json_object_get(o, "key"))) {
    fail("key not null", rec);
  }
  free(buf);
  json_decref(o);
  free(rec);
  return 0;
}
