/* encode.c: prediction text without snprintf (see encode.h). px is echoed as it was written in
 * the input when the decoder kept it, else in its shortest round-trip form; pred_ret and pred_px
 * have 10 significant digits (ingest/fmt.h). */
#include "daemon/pipeline/encode.h"

#include <string.h>

#include "ingest/fmt.h"

#define PUT(lit) (memcpy(p, lit, sizeof(lit) - 1), p += sizeof(lit) - 1)

static inline char *put_px(char *p, const tick *t) {
  if (t->px_len) {
    memcpy(p, t->px_txt, t->px_len);
    return p + t->px_len;
  }
  return p + fmt_double_short(p, t->px);
}

/* Copies s as the inside of a JSON string: quote, backslash and control bytes escaped; stops
 * before the escaped text would pass max bytes (never inside an escape). */
static char *put_json_str(char *p, const char *s, size_t n, size_t max) {
  static const char hex[] = "0123456789abcdef";
  const char *end = p + max;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    size_t w = c == '"' || c == '\\' ? 2 : c < 0x20 ? 6 : 1;
    if ((size_t)(end - p) < w)
      break;
    if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = (char)c;
    } else if (c < 0x20) {
      memcpy(p, "\\u00", 4);
      p[4] = hex[c >> 4];
      p[5] = hex[c & 15];
      p += 6;
    } else {
      *p++ = (char)c;
    }
  }
  return p;
}

size_t enc_pred_json(char *out, const eng_tick *t, const char *src, size_t srclen) {
  char *p = out;
  PUT("{\"sym\":\"");
  memcpy(p, t->t.sym, t->t.sym_len); /* sym is validated: no quote, backslash or control byte */
  p += t->t.sym_len;
  PUT("\",\"ts\":");
  p += fmt_i64(p, t->t.ts);
  PUT(",\"px\":");
  p = put_px(p, &t->t);
  PUT(",\"pred_ret\":");
  p += fmt_double_sig(p, t->pred_ret, 10);
  PUT(",\"pred_px\":");
  p += fmt_double_sig(p, t->pred_px, 10);
  PUT(",\"n\":");
  p += fmt_u64(p, t->n);
  PUT(",\"src\":\"");
  p = put_json_str(p, src, srclen, ENC_SRC_MAX);
  PUT("\"");
  if (t->has_std) {
    PUT(",\"pred_std\":");
    p += fmt_double_sig(p, t->pred_std, 10);
    PUT(",\"lo_px\":");
    p += fmt_double_sig(p, t->lo_px, 10);
    PUT(",\"hi_px\":");
    p += fmt_double_sig(p, t->hi_px, 10);
  }
  *p++ = '}';
  return (size_t)(p - out);
}

size_t enc_pred_csv(char *out, const eng_tick *t) {
  char *p = out;
  memcpy(p, t->t.sym, t->t.sym_len); /* sym has no comma or quote, so it needs no quoting */
  p += t->t.sym_len;
  *p++ = ',';
  p += fmt_i64(p, t->t.ts);
  *p++ = ',';
  p = put_px(p, &t->t);
  *p++ = ',';
  p += fmt_double_sig(p, t->pred_ret, 10);
  *p++ = ',';
  p += fmt_double_sig(p, t->pred_px, 10);
  *p++ = ',';
  p += fmt_u64(p, t->n);
  if (t->has_std) {
    *p++ = ',';
    p += fmt_double_sig(p, t->pred_std, 10);
    *p++ = ',';
    p += fmt_double_sig(p, t->lo_px, 10);
    *p++ = ',';
    p += fmt_double_sig(p, t->hi_px, 10);
  }
  return (size_t)(p - out);
}

const char *enc_csv_header(const nn_model *m) {
  return m && m->gauss ? ENC_CSV_HEADER_GAUSS : ENC_CSV_HEADER;
}
