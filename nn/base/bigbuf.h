/* bigbuf.h: large buffers on transparent huge pages. Anonymous memory mapped at a 2 MiB boundary
 * and advised with MADV_HUGEPAGE, so that where the kernel offers huge pages (THP "always" or
 * "madvise") the first touch of each 2 MiB costs one page fault instead of 512. On the VM of
 * docs/BENCHMARKS.md a 4 KiB fault costs 11-21 us and a huge one the same per 2 MiB as 0.24-0.3 us
 * per 4 KiB. For buffers that a run fills from the start and reuses (the chunk slots of
 * daemon/pipeline/preplay.c); resident memory is then counted in 2 MiB steps. Without THP the
 * memory is an ordinary mapping. */
#ifndef NN_BASE_BIGBUF_H
#define NN_BASE_BIGBUF_H

#include <stddef.h>

#define TC_BIG_ALIGN ((size_t)2 << 20)

/* n bytes (n > 0), zeroed; NULL when the mapping fails. Freed with tc_big_free(p, n). */
void *tc_big_alloc(size_t n);
void tc_big_free(void *p, size_t n);

/* n bytes (n > 0, not zeroed): from tc_big_alloc from TC_BIG_ALIGN / 2 on (a resident size at
 * most twice n), from malloc below. Freed with tc_big_sized_free(p, n), n the same. For buffers
 * sized once that a run fills whole, of any size. */
void *tc_big_sized_alloc(size_t n);
void tc_big_sized_free(void *p, size_t n);

/* Makes the pages of p[0, n) resident and writable now (MADV_POPULATE_WRITE), so that the thread
 * that writes them later does not fault; their contents are unchanged, so another thread may be
 * writing them meanwhile. For a buffer of tc_big_alloc or tc_big_sized_alloc: a thread with
 * nothing else to do pays the first touch instead of a thread on the critical path. 0, or -1
 * where the kernel lacks it (before Linux 5.14; then nothing is done). */
int tc_big_populate(void *p, size_t n);

#endif
