/* bench_faults.c: what a page fault costs on this machine: the first touch of every 4 KiB page of
 * fresh anonymous memory, mapped plainly and through nn/base/bigbuf.h (2 MiB aligned, advised for
 * transparent huge pages). The figure behind daemon/cmd/heap.c and the replay ring's buffers.
 *
 * usage: bench_faults [MIB] [ROUNDS]   (default 256 MiB, 3 rounds, the two kinds alternating)
 * Prints per round and kind: microseconds per 4 KiB of first touch. Not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "nn/base/bigbuf.h"
#include "nn/base/clock.h"

static double touch_us_per_page(char *p, size_t n) {
  uint64_t t0 = tc_mono_ns();
  for (size_t i = 0; i < n; i += 4096)
    p[i] = 1;
  return (double)(tc_mono_ns() - t0) / 1e3 / (double)(n / 4096);
}

int main(int argc, char **argv) {
  size_t n = (size_t)(argc > 1 ? atol(argv[1]) : 256) << 20;
  int rounds = argc > 2 ? atoi(argv[2]) : 3;
  if (n == 0 || rounds < 1) {
    fprintf(stderr, "usage: bench_faults [MIB] [ROUNDS]\n");
    return 2;
  }
  for (int r = 1; r <= rounds; r++) {
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *h = tc_big_alloc(n);
    if (p == MAP_FAILED || !h) {
      fprintf(stderr, "bench_faults: cannot map %zu MiB\n", n >> 20);
      return 1;
    }
    double a = touch_us_per_page(p, n), b = touch_us_per_page(h, n);
    printf("round %d: %zu MiB, first touch per 4 KiB page: %.2f us with 4 KiB pages, %.2f us on "
           "huge pages (bigbuf)\n",
           r, n >> 20, a, b);
    munmap(p, n);
    tc_big_free(h, n);
  }
  return 0;
}
