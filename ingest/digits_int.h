/* digits_int.h: reading ASCII decimal digits fast, shared by the number parser (number.c), the
 * RFC 3339 parser (rfc3339.c) and the JSON decoder's integer timestamps (tick_json.c). Internal
 * to ingest/. */
#ifndef INGEST_DIGITS_INT_H
#define INGEST_DIGITS_INT_H

#include <stdint.h>
#include <string.h>

static inline int is_digit(char c) {
  return (unsigned char)(c - '0') < 10;
}

/* Eight ASCII digits at once (the SWAR trick of fast_float/simdjson): is_8digits tests a
 * little-endian load, parse_8digits returns their value. */
static inline int is_8digits(uint64_t v) {
  return ((v & 0xF0F0F0F0F0F0F0F0ULL) |
          (((v + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) == 0x3333333333333333ULL;
}
static inline uint64_t parse_8digits(uint64_t v) {
  v -= 0x3030303030303030ULL;
  v = (v * 10) + (v >> 8);
  v = (((v & 0x000000FF000000FFULL) * 0x000F424000000064ULL) +
       (((v >> 16) & 0x000000FF000000FFULL) * 0x0000271000000001ULL)) >>
      32;
  return v;
}

static const uint64_t pow10_u64[9] = {1,      10,      100,      1000,     10000,
                                      100000, 1000000, 10000000, 100000000};

/* Accumulates the digits at p into *m (wrapping past 19 digits: callers count digits and then
 * take another path). Returns the first non-digit position. Whole groups of eight go through
 * parse_8digits; a shorter run of k digits inside an 8-byte load is shifted up, padded with
 * leading '0' bytes and parsed the same way. */
static inline const char *digits_u64(const char *p, const char *end, uint64_t *m) {
  uint64_t x = *m, w;
  while (end - p >= 8) {
    memcpy(&w, p, 8);
    if (is_8digits(w)) {
      x = x * 100000000 + parse_8digits(w);
      p += 8;
      continue;
    }
    /* Non-digit bytes are non-zero in a | b (a: high nibble != 3; b: low nibble > 9). A carry
     * from a byte >= 0xFA can only spoil bytes above it, which are past the first non-digit. */
    uint64_t a = (w & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL;
    uint64_t b = ((w + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL;
    uint64_t nd = a | b;
    nd = (nd | ((nd & 0x7F7F7F7F7F7F7F7FULL) + 0x7F7F7F7F7F7F7F7FULL)) & 0x8080808080808080ULL;
    int k = __builtin_ctzll(nd) >> 3; /* leading digits, 0..7 */
    if (k) {
      uint64_t v = (w << (8 * (8 - k))) | (0x3030303030303030ULL >> (8 * k));
      x = x * pow10_u64[k] + parse_8digits(v);
      p += k;
    }
    *m = x;
    return p;
  }
  while (p < end && is_digit(*p))
    x = x * 10 + (uint64_t)(*p++ - '0');
  *m = x;
  return p;
}

#endif
