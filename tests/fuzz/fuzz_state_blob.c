/* fuzz_state_blob.c: the state blob decoder (store_blob_decode) on arbitrary bytes: it must never
 * read outside the buffer, must explain every refusal in err, and whatever it accepts must
 * re-encode to exactly the same bytes (a version 2 or 3 blob) or, for a version 1 blob, to one
 * that decodes to the same floats. Input: byte 0 picks L (1 + b % 4) and the expected cell
 * (b / 4 % 4, nn/base/cell.h), byte 1 picks H (1..64), the rest is the blob. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  int L = 1 + data[0] % 4, cell = data[0] / 4 % NN_CELL_COUNT, H = 1 + data[1] % 64;
  const uint8_t *b = data + 2;
  size_t n = size - 2;
  float state[2 * 4 * 64], back[2 * 4 * 64];
  double tr[STORE_BLOB_TRACK];
  int ht;
  unsigned char again[STORE_BLOB_HEADER + sizeof state + STORE_BLOB_TRACK_LEN + STORE_BLOB_TRAILER];
  char err[256];
  err[0] = 0;
  if (store_blob_decode(b, n, cell, L, H, state, tr, &ht, err, sizeof err) == 0) {
    if (store_blob_cell(b, n) != cell)
      abort(); /* the cell it reports is the one it accepted */
    size_t m = store_blob_encode(again, cell, L, H, state, ht ? tr : NULL);
    int v1 = b[4] == 1 && b[5] == 0;
    if (!v1 && (m != n || memcmp(again, b, n) != 0))
      abort(); /* accepted version 2 and 3 bytes must round-trip */
    size_t nf = store_blob_floats(cell, L, H);
    if (v1 && (store_blob_decode(again, m, cell, L, H, back, tr, &ht, err, sizeof err) != 0 ||
               memcmp(back, state, nf * sizeof *state) != 0))
      abort(); /* a version 1 state survives rewriting as version 2 */
  } else if (!err[0] || !memchr(err, 0, sizeof err)) {
    abort(); /* every refusal says why */
  }
  return 0;
}
