/* fuzz_state_blob.c: the state blob decoder (store_blob_decode) on arbitrary bytes: it must never
 * read outside the buffer, must explain every refusal in err, and whatever it accepts must
 * re-encode to exactly the same bytes. Input: byte 0 picks L (1..4), byte 1 picks H (1..64), the
 * rest is the blob. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  int L = 1 + data[0] % 4, H = 1 + data[1] % 64;
  const uint8_t *b = data + 2;
  size_t n = size - 2;
  float state[2 * 4 * 64];
  unsigned char again[STORE_BLOB_HEADER + sizeof state + STORE_BLOB_TRAILER];
  char err[256];
  err[0] = 0;
  if (store_blob_decode(b, n, L, H, state, err, sizeof err) == 0) {
    size_t m = store_blob_encode(again, L, H, state);
    if (m != n || memcmp(again, b, n) != 0)
      abort(); /* accepted bytes must round-trip */
  } else if (!err[0] || !memchr(err, 0, sizeof err)) {
    abort(); /* every refusal says why */
  }
  return 0;
}
