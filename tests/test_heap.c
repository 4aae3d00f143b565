/* test_heap.c: the daemon's heap policy (daemon/cmd/heap.h): the GLIBC_TUNABLES value it
 * re-executes with (appended to what the user set, never over a glibc.malloc.hugetlb the user
 * chose, which is also what stops a second re-exec), the reading of the kernel's THP mode, and
 * the retention thresholds it sets (what mallinfo2 shows after a large block is freed). The
 * re-exec itself is checked end to end in tests/e2e_run_cli.sh. */
#include <malloc.h>
#include <stdlib.h>

#include "check.h"
#include "daemon/cmd/heap.h"
#include "nn/base/sanitize.h"

int main(void) {
  char out[256];
  CHECK_INT(heap_tunables(NULL, out, sizeof out), 1);
  CHECK_STR(out, "glibc.malloc.hugetlb=1");
  CHECK_INT(heap_tunables("", out, sizeof out), 1);
  CHECK_STR(out, "glibc.malloc.hugetlb=1");
  CHECK_INT(heap_tunables("glibc.malloc.arena_max=2", out, sizeof out), 1);
  CHECK_STR(out, "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1");
  /* The user's setting stands, wherever it is in the list. */
  CHECK_INT(heap_tunables("glibc.malloc.hugetlb=0", out, sizeof out), 0);
  CHECK_INT(heap_tunables("glibc.malloc.hugetlb=1", out, sizeof out), 0);
  CHECK_INT(heap_tunables("glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=2", out, sizeof out),
            0);
  /* A longer name that contains it, or the name without a value, is not it. */
  CHECK_INT(heap_tunables("x.glibc.malloc.hugetlb=0", out, sizeof out), 1);
  CHECK_STR(out, "x.glibc.malloc.hugetlb=0:glibc.malloc.hugetlb=1");
  CHECK_INT(heap_tunables("glibc.malloc.hugetlbx=0", out, sizeof out), 1);
  /* Too small a buffer: refused, nothing half-written is used. */
  CHECK_INT(heap_tunables("glibc.malloc.arena_max=2", out, 30), -1);
  CHECK_INT(heap_tunables(NULL, out, 22), -1); /* 22 chars and its NUL need 23 */
  CHECK_INT(heap_tunables(NULL, out, 23), 1);

  CHECK_INT(heap_thp_available("always [madvise] never\n"), 1);
  CHECK_INT(heap_thp_available("[always] madvise never\n"), 1);
  CHECK_INT(heap_thp_available("always madvise [never]\n"), 0);
  CHECK_INT(heap_thp_available(""), 0);
  CHECK_INT(heap_thp_available(NULL), 0);

  /* Retention: with GLIBC_TUNABLES already set (no re-exec), heap_daemon only sets the
   * thresholds. A freed 8 MiB block then stays in the heap (glibc's default: its own mapping,
   * returned at free) and the heap's top is not trimmed. */
  setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=0", 1);
  char *argv[] = {"test_heap", NULL};
  heap_daemon(argv);
#if UNDER_ASAN
  printf("retention not checked: AddressSanitizer's allocator is not glibc's\n");
  return check_done();
#endif
  struct mallinfo2 m0 = mallinfo2();
  char *p = malloc(8 << 20);
  CHECK(p != NULL);
  p[0] = p[(8 << 20) - 1] = 1;
  struct mallinfo2 m1 = mallinfo2();
  CHECK_INT(m1.hblkhd, m0.hblkhd); /* not an mmap'd block */
  free(p);
  struct mallinfo2 m2 = mallinfo2();
  CHECK(m2.arena >= m0.arena + (8 << 20)); /* the heap kept it */
  CHECK(m2.keepcost >= (8 << 20));         /* as its releasable top, not released */
  return check_done();
}
