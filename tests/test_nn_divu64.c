/* test_nn_divu64.c: nn/base/divu64.h against the machine's / and %: every divisor below 4096 and
 * every power of two and its neighbours, with edge dividends (0, 1, d - 1, d, d + 1, multiples of
 * d and their neighbours, 2^63, 2^64 - 1) and random ones; then random divisors of every bit
 * length, including the ones that take the 65-bit multiplier. */
#include <stdint.h>

#include "check.h"
#include "nn/base/divu64.h"

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint64_t next_u64(void) { /* splitmix64 */
  uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static long bad, adds;

static void one(const nn_divu64 *v, uint64_t x) {
  uint64_t q = nn_divu64_div(v, x), r = nn_divu64_mod(v, x);
  if (q != x / v->d || r != x % v->d) {
    if (bad++ < 10)
      printf("d %llu x %llu: got %llu r %llu, want %llu r %llu\n", (unsigned long long)v->d,
             (unsigned long long)x, (unsigned long long)q, (unsigned long long)r,
             (unsigned long long)(x / v->d), (unsigned long long)(x % v->d));
  }
}

static void divisor(uint64_t d, int randoms) {
  nn_divu64 v = nn_divu64_new(d);
  adds += v.add;
  const uint64_t edges[] = {0,
                            1,
                            2,
                            d - 1,
                            d,
                            d + 1,
                            2 * d - 1,
                            2 * d,
                            UINT64_MAX / 2,
                            (uint64_t)1 << 63,
                            UINT64_MAX - 1,
                            UINT64_MAX,
                            UINT64_MAX / d * d,
                            UINT64_MAX / d * d - 1};
  for (size_t i = 0; i < sizeof edges / sizeof *edges; i++)
    one(&v, edges[i]);
  for (int i = 0; i < randoms; i++) {
    uint64_t x = next_u64();
    one(&v, x);
    one(&v, x >> (x & 63)); /* small ones too */
    uint64_t k = x / d;     /* a multiple of d and its neighbours */
    one(&v, k * d);
    if (k)
      one(&v, k * d - 1);
  }
}

int main(void) {
  for (uint64_t d = 1; d < 4096; d++)
    divisor(d, 200);
  for (int b = 0; b < 64; b++) {
    uint64_t p = (uint64_t)1 << b;
    divisor(p, 200);
    if (p > 1)
      divisor(p - 1, 200);
    divisor(p + 1, 200);
  }
  for (int i = 0; i < 200000; i++) {
    uint64_t d = next_u64() >> (next_u64() & 63);
    divisor(d ? d : 1, 20);
  }
  CHECK(bad == 0);
  CHECK(adds > 1000); /* both branches of the multiplier are exercised */
  printf("divu64: %ld divisors took the 65-bit multiplier; %ld wrong\n", adds, bad);
  return check_done();
}
