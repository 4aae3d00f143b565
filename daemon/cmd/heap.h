/* heap.h: the heap policy of the daemon process (`tickcast run`): glibc's malloc on transparent
 * huge pages, and freed memory kept for reuse instead of returned to the kernel. heap.c says why
 * and what it measured. */
#ifndef DAEMON_CMD_HEAP_H
#define DAEMON_CMD_HEAP_H

#include <stddef.h>

/* The tunable heap_daemon adds to GLIBC_TUNABLES. */
#define HEAP_THP_TUNABLE "glibc.malloc.hugetlb"

/* The GLIBC_TUNABLES value that also asks glibc's malloc for transparent huge pages: `old` (NULL
 * or empty: unset) with HEAP_THP_TUNABLE=1 appended, written to out. Returns 1 when it wrote a
 * value, 0 when `old` already sets HEAP_THP_TUNABLE (to any value: the user's choice stands, and
 * this is what ends the re-exec), -1 when out is too small. */
int heap_tunables(const char *old, char *out, size_t outlen);

/* Whether the kernel gives transparent huge pages to memory that asks for them: the text of
 * /sys/kernel/mm/transparent_hugepage/enabled (NULL: unknown) selects [always] or [madvise]. */
int heap_thp_available(const char *enabled);

/* Called by main() before `run` starts anything: when the kernel has transparent huge pages and
 * GLIBC_TUNABLES does not set HEAP_THP_TUNABLE, re-executes the same program (same argv, same pid)
 * with it set, and does not return; otherwise (or when that fails) sets the retention thresholds
 * (mallopt) and returns. */
void heap_daemon(char **argv);

#endif
