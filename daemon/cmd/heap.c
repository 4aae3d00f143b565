/* heap.c: the heap policy of the daemon process (`tickcast run`).
 *
 * Why. The daemon's heap turns over all the time: librdkafka reads every fetch response into
 * freshly allocated buffers and makes an op and a message per record, the loop thread frees them,
 * and the producer allocates one per prediction. With glibc's defaults the freed memory goes back
 * to the kernel (the top of a heap above 128 KiB is trimmed, large blocks are mmap'd and unmapped)
 * and comes back as new pages, each one a page fault. On this VM a fault on a 4 KiB page costs
 * 11-21 us (build/bench/bench_faults: the first touch of 256 MiB of fresh memory), so the
 * 0.033-0.048 faults per tick of a catch-up (bench/cpu_tick.sh, 1M ticks) were 0.5-0.9 us of
 * the 2.9-3.2 us of CPU a tick took, more than the model. In perf, 60 % of the faults were the
 * consumer's broker thread receiving into new buffers, a quarter malloc splitting fresh heap. So:
 *   - glibc.malloc.hugetlb=1: malloc advises transparent huge pages (madvise) for the memory it
 *     gets from the kernel, so new memory comes 2 MiB per fault; the same loop faulted 0.24-0.3 us
 * per 4 KiB instead. glibc reads this tunable only from the environment when a process starts,
 *     hence the re-exec.
 *   - a top pad of HEAP_PAD: glibc advises only the memory a heap gets when it is made or extended
 *     by sbrk, and an arena other than the main one (the daemon has two, run.c; librdkafka's
 *     threads allocate from them) starts at the top pad, 128 KiB by default, smaller than a huge
 *     page, then grows by mprotect without advice. With this pad an arena starts at its largest
 *     size, 64 MiB, all of it advised; the address space is reserved either way, and pages
 *     become resident when touched.
 *   - freed memory is kept: no trimming below HEAP_TRIM bytes at the top of a heap, and blocks
 *     below HEAP_MMAP bytes come from the heap instead of mappings of their own. The resident set
 *     stays at its high-water mark (bounded by the consumer's prefetch,
 *     queued.max.messages.kbytes, and the producer's queue).
 * On the pinned catch-up (bench/cpu_tick.sh, 3 alternated rounds) the faults fell to 0.002 a tick
 * and the CPU to 2.44-2.56 us a tick from 2.90-3.22; docs/BENCHMARKS.md has the daemon's ratio
 * to the passthrough with and without it, and RUN.md ("The heap") the memory it costs. Only `run`
 * does this: other commands are short, and a re-exec adds the program's start (about 15 ms).
 * GLIBC_TUNABLES that already sets glibc.malloc.hugetlb (=0 turns this off) is left alone. */
#include "daemon/cmd/heap.h"

#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEAP_TRIM (1 << 30)  /* top-of-heap bytes kept before any is returned to the kernel */
#define HEAP_MMAP (32 << 20) /* smaller blocks come from the heap: glibc's largest threshold */
#define HEAP_PAD (64 << 20)  /* a heap grows by at least this (the header says why) */

int heap_tunables(const char *old, char *out, size_t outlen) {
  if (old) /* a tunable name as a whole item: at the start or after ':', followed by '=' */
    for (const char *p = strstr(old, HEAP_THP_TUNABLE); p; p = strstr(p + 1, HEAP_THP_TUNABLE))
      if ((p == old || p[-1] == ':') && p[strlen(HEAP_THP_TUNABLE)] == '=')
        return 0;
  int n = old && *old ? snprintf(out, outlen, "%s:%s=1", old, HEAP_THP_TUNABLE)
                      : snprintf(out, outlen, "%s=1", HEAP_THP_TUNABLE);
  return n < 0 || (size_t)n >= outlen ? -1 : 1;
}

int heap_thp_available(const char *enabled) {
  return enabled && (strstr(enabled, "[always]") || strstr(enabled, "[madvise]"));
}

/* Re-executes this program with HEAP_THP_TUNABLE set; returns when it does not (and then the
 * environment is as it was). */
static void reexec_thp(char **argv) {
  char en[128] = "";
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (!f)
    return;
  size_t got = fread(en, 1, sizeof en - 1, f);
  fclose(f);
  en[got] = 0;
  if (!heap_thp_available(en))
    return;
  const char *old = getenv("GLIBC_TUNABLES");
  char val[4096], *saved = old ? strdup(old) : NULL;
  if ((old && !saved) || heap_tunables(old, val, sizeof val) != 1) {
    free(saved);
    return;
  }
  /* The program's own path, not /proc/self/exe: the process name (comm, in ps and top) is taken
   * from the path executed. A binary replaced since it started reads "... (deleted)", and then
   * the exec fails and the daemon runs on without huge pages. */
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0 && setenv("GLIBC_TUNABLES", val, 1) == 0) {
    self[n] = 0;
    execv(self, argv);
    if (saved)
      setenv("GLIBC_TUNABLES", saved, 1);
    else
      unsetenv("GLIBC_TUNABLES");
  }
  free(saved);
}

void heap_daemon(char **argv) {
  reexec_thp(argv);
  mallopt(M_TRIM_THRESHOLD, HEAP_TRIM);
  mallopt(M_MMAP_THRESHOLD, HEAP_MMAP);
  mallopt(M_TOP_PAD, HEAP_PAD); /* why: the header */
}
