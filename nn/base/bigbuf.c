/* bigbuf.c: large buffers on transparent huge pages (bigbuf.h). */
#include "nn/base/bigbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t round_up(size_t n) {
  return (n + TC_BIG_ALIGN - 1) & ~(TC_BIG_ALIGN - 1);
}

void *tc_big_alloc(size_t n) {
  if (n == 0 || n > SIZE_MAX - 2 * TC_BIG_ALIGN)
    return NULL;
  size_t len = round_up(n), span = len + TC_BIG_ALIGN;
  char *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    return NULL;
  /* Keep the aligned len bytes inside the span, give back the rest. */
  char *a = (char *)(((uintptr_t)m + TC_BIG_ALIGN - 1) & ~(uintptr_t)(TC_BIG_ALIGN - 1));
  if (a > m)
    munmap(m, (size_t)(a - m));
  if (m + span > a + len)
    munmap(a + len, (size_t)(m + span - (a + len)));
  madvise(a, len, MADV_HUGEPAGE); /* EINVAL without THP: an ordinary mapping then */
  return a;
}

void tc_big_free(void *p, size_t n) {
  if (p)
    munmap(p, round_up(n));
}

void *tc_big_sized_alloc(size_t n) {
  return n >= TC_BIG_ALIGN / 2 ? tc_big_alloc(n) : malloc(n ? n : 1);
}

void tc_big_sized_free(void *p, size_t n) {
  if (n >= TC_BIG_ALIGN / 2)
    tc_big_free(p, n);
  else
    free(p);
}

int tc_big_populate(void *p, size_t n) {
  if (!p || !n)
    return 0;
#ifdef MADV_POPULATE_WRITE
  uintptr_t a = (uintptr_t)p & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);
  return madvise((void *)a, (uintptr_t)p + n - a, MADV_POPULATE_WRITE);
#else
  (void)p, (void)n;
  return -1;
#endif
}
