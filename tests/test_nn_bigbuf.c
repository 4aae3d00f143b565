/* test_nn_bigbuf.c: large buffers on transparent huge pages (nn/base/bigbuf.h): 2 MiB alignment,
 * zeroed and writable to the last byte, and, where the kernel offers THP, the advice itself: the
 * mapping is THP-eligible in /proc/self/smaps (an ordinary mapping is not, under "madvise"); the
 * sized pair (tc_big_sized_alloc) on either side of its threshold; tc_big_populate makes a
 * buffer resident without changing a byte of it. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "check.h"
#include "nn/base/bigbuf.h"

/* The THPeligible line of the mapping that holds p in /proc/self/smaps: 1, 0, or -1 unknown. */
static int thp_eligible(const void *p) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f)
    return -1;
  char line[512], perms[8];
  int in = 0, r = -1;
  while (r < 0 && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) /* a mapping's first line */
      in = lo <= (uintptr_t)p && (uintptr_t)p < hi;
    else if (in)
      sscanf(line, "THPeligible: %d", &r);
  }
  fclose(f);
  return r;
}

/* The Rss of the mapping that holds p in /proc/self/smaps, in KiB; -1 unknown. */
static long rss_kb(const void *p) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f)
    return -1;
  char line[512], perms[8];
  int in = 0;
  long r = -1;
  while (r < 0 && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3)
      in = lo <= (uintptr_t)p && (uintptr_t)p < hi;
    else if (in)
      sscanf(line, "Rss: %ld kB", &r);
  }
  fclose(f);
  return r;
}

/* tc_big_populate on a mapping written in part and on a small malloc'd buffer: resident after it,
 * every byte as it was (the written ones, and zeros elsewhere). */
static void check_populate(void) {
  size_t n = 6u << 20;
  unsigned char *p = tc_big_alloc(n);
  CHECK(p != NULL);
  for (size_t i = 0; i < n / 3; i++)
    p[i] = (unsigned char)(i * 13 + 1);
  long before = rss_kb(p);
  int rc = tc_big_populate(p + 100, n - 200); /* any start and end inside */
  if (rc != 0) {
    printf("no MADV_POPULATE_WRITE here (Linux < 5.14): tc_big_populate does nothing\n");
  } else {
    CHECK(before >= 0 && before < (long)(n >> 10));
    CHECK_INT(rss_kb(p), (long)(n >> 10));
  }
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += p[i] != (i < n / 3 ? (unsigned char)(i * 13 + 1) : 0);
  CHECK_INT(bad, 0);
  tc_big_free(p, n);
  unsigned char *q = malloc(1000);
  for (int i = 0; i < 1000; i++)
    q[i] = (unsigned char)i;
  CHECK_INT(tc_big_populate(q + 3, 997), rc);
  bad = 0;
  for (int i = 0; i < 1000; i++)
    bad += q[i] != (unsigned char)i;
  CHECK_INT(bad, 0);
  free(q);
  CHECK_INT(tc_big_populate(NULL, 0), 0);
}

/* The kernel's THP mode: 'a' always, 'm' madvise, 0 never or unknown. */
static int thp_mode(void) {
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  char b[128] = "";
  if (!f)
    return 0;
  size_t n = fread(b, 1, sizeof b - 1, f);
  fclose(f);
  b[n] = 0;
  return strstr(b, "[always]") ? 'a' : strstr(b, "[madvise]") ? 'm' : 0;
}

int main(void) {
  size_t n = 3u << 20; /* 3 MiB: two huge pages */
  unsigned char *p = tc_big_alloc(n);
  CHECK(p != NULL);
  CHECK_INT((uintptr_t)p % TC_BIG_ALIGN, 0);
  int zero = 1;
  for (size_t i = 0; i < n; i += 4096)
    zero &= p[i] == 0;
  CHECK(zero && p[n - 1] == 0);
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)(i * 7);
  int mode = thp_mode();
  if (mode) {
    CHECK_INT(thp_eligible(p), 1);
    /* Under "madvise" an ordinary mapping is not eligible: the check above can tell. */
    if (mode == 'm') {
      void *q = mmap(NULL, 4u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      CHECK_INT(thp_eligible(q), 0);
      munmap(q, 4u << 20);
    }
  } else {
    printf("no transparent huge pages here: the advice is not checked\n");
  }
  tc_big_free(p, n);
  tc_big_free(NULL, 10);
  /* The sized pair: below half a huge page from malloc, from there on a huge-page mapping (2 MiB
   * aligned, eligible); any size, 0 included, comes back writable and goes back without error
   * (ASan's build checks the malloc side). */
  static const size_t sizes[] = {0, 1, 4096, TC_BIG_ALIGN / 2 - 1, TC_BIG_ALIGN / 2, 5u << 20};
  for (int i = 0; i < 6; i++) {
    size_t k = sizes[i];
    unsigned char *b = tc_big_sized_alloc(k);
    CHECK(b != NULL);
    if (k)
      b[0] = 1, b[k - 1] = 2;
    if (k >= TC_BIG_ALIGN / 2) {
      CHECK_INT((uintptr_t)b % TC_BIG_ALIGN, 0);
      if (mode)
        CHECK_INT(thp_eligible(b), 1);
    }
    tc_big_sized_free(b, k);
  }
  CHECK(tc_big_alloc(0) == NULL);
  CHECK(tc_big_alloc(SIZE_MAX - 100) == NULL);
  check_populate();
  return check_done();
}
