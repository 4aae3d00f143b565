/* tpool.c: the persistent worker pool (see tpool.h). Jobs are claimed without a lock: one 64-bit
 * word holds the section's generation, its job count and the next job to claim, and a claim is
 * one atomic add on it. A mutex was the cost before: the caller and the workers took it at the
 * same moments (claiming, finishing), and a contended mutex sleeps in the kernel, which took
 * 3-5% of `train --threads 2` in futex calls. Waking a sleeping thread is costly too: on this
 * project's VMs a futex wake-up reaches an idle vCPU only after 100 us or more, as long as the
 * gap between two training steps. So a worker that runs out of jobs, and the caller waiting for
 * the last job, first spin for up to TPOOL_SPIN_NS, and only then sleep on a condition variable
 * (the mutex serves only that); a pool between sections costs nothing after that.
 * A pool with more threads than online cores does not spin: a spinner would take the core of a
 * thread still running the section's last job.
 *
 * Why a claim is safe without a lock: a claim (an add on ctl) returns the generation, job count
 * and index of the section current at that instant, in one word; it is valid when its index is
 * below its count. A valid claim keeps its section from finishing until its job is done, so the
 * caller cannot start the section after next, and the descriptor of the claim's section (kept
 * by generation parity) stays in place while the job runs. An invalid claim only moves the index
 * past the count; each thread makes at most one per section, and a section has at most
 * SECTION_MAX jobs, so the index never reaches the count's bits. */
#include "daemon/pipeline/tpool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "nn/base/clock.h"
#include "nn/base/tc_err.h"

#define TPOOL_SPIN_NS 300000 /* longer than the serial gap between two steps (Adam, loading) */
#define SECTION_MAX 32768    /* jobs of one section; tpool_run cuts larger n (threads <= 32767) */

#define CTL(gen, n) ((uint64_t)(gen) << 32 | (uint64_t)(n) << 16)
#define CTL_GEN(v) ((uint32_t)((v) >> 32))
#define CTL_N(v) ((int)(((v) >> 16) & 0xffff))
#define CTL_IDX(v) ((int)((v)&0xffff))

struct tpool {
  int nworkers;        /* threads started */
  uint64_t spin_ns;    /* TPOOL_SPIN_NS, or 0 when the threads outnumber the online cores */
  pthread_t *th;       /* (nworkers) */
  pthread_mutex_t mu;  /* for the condition variables only */
  pthread_cond_t go;   /* a new section, or quit */
  pthread_cond_t done; /* the last job of a section finished */
  struct {
    tpool_fn fn; /* the section's job, */
    void *arg;   /* its argument, */
    int base;    /* and the first job's number (tpool_run's cut of a large n) */
  } desc[2];     /* by the parity of the section's generation */
  uint64_t ctl;  /* generation << 32 | jobs << 16 | next claim (atomic) */
  int left;      /* jobs of the current section not finished (atomic) */
  int sleepers;  /* workers waiting on go (atomic) */
  int waiting;   /* the caller waits on done (atomic) */
  int quit;      /* tpool_destroy: workers return (atomic) */
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Claims and runs jobs until a claim finds none; returns the generation of that last claim. */
static uint32_t run_jobs(tpool *p) {
  for (;;) {
    /* Sequentially consistent like the caller's store of ctl (the same instruction on x86). */
    uint64_t v = __atomic_fetch_add(&p->ctl, 1, __ATOMIC_SEQ_CST);
    if (CTL_IDX(v) >= CTL_N(v))
      return CTL_GEN(v);
    int d = (int)(CTL_GEN(v) & 1);
    p->desc[d].fn(p->desc[d].arg, p->desc[d].base + CTL_IDX(v));
    if (__atomic_sub_fetch(&p->left, 1, __ATOMIC_SEQ_CST) == 0 &&
        __atomic_load_n(&p->waiting, __ATOMIC_SEQ_CST)) {
      pthread_mutex_lock(&p->mu);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
}

/* Returns when the generation is no longer seen, or quit: spins for the pool's spin time, then
 * sleeps on go. */
static void wait_section(tpool *p, uint32_t seen) {
  uint64_t t0 = p->spin_ns ? tc_mono_ns() : 0;
  for (int i = 0; p->spin_ns; i++) {
    if (CTL_GEN(__atomic_load_n(&p->ctl, __ATOMIC_ACQUIRE)) != seen ||
        __atomic_load_n(&p->quit, __ATOMIC_ACQUIRE))
      return;
    cpu_relax();
    if ((i & 63) == 63 && tc_mono_ns() - t0 > p->spin_ns)
      break;
  }
  pthread_mutex_lock(&p->mu);
  __atomic_add_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
  /* The caller stores ctl and then reads sleepers, this thread the other way round (both
   * sequentially consistent): one of the two sees the other, so no section is missed. */
  while (CTL_GEN(__atomic_load_n(&p->ctl, __ATOMIC_SEQ_CST)) == seen &&
         !__atomic_load_n(&p->quit, __ATOMIC_SEQ_CST))
    pthread_cond_wait(&p->go, &p->mu);
  __atomic_sub_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
  pthread_mutex_unlock(&p->mu);
}

static void *worker_main(void *arg) {
  tpool *p = arg;
  /* The generation the pool was made with (0), not the one current when this thread starts:
   * the caller may have started a section by then, and a worker that took it for one it had
   * seen left all its jobs to the caller (the first section of every new pool, on this VM). */
  uint32_t seen = 0;
  for (;;) {
    wait_section(p, seen);
    if (__atomic_load_n(&p->quit, __ATOMIC_ACQUIRE))
      break;
    seen = run_jobs(p);
  }
  return NULL;
}

int tpool_new(tpool **out, int threads) {
  *out = NULL;
  if (threads > SECTION_MAX - 1) /* each thread's last claim must stay below the count's bits */
    return TC_EINVAL;
  tpool *p = calloc(1, sizeof *p);
  if (!p)
    return TC_ENOMEM;
  int want = threads > 1 ? threads - 1 : 0;
  if (want && !(p->th = calloc((size_t)want, sizeof *p->th))) {
    free(p);
    return TC_ENOMEM;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->go, NULL);
  pthread_cond_init(&p->done, NULL);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  p->spin_ns = cores < 1 || threads <= cores ? TPOOL_SPIN_NS : 0;
  for (; p->nworkers < want; p->nworkers++)
    if (pthread_create(&p->th[p->nworkers], NULL, worker_main, p) != 0)
      break;
  *out = p;
  return 0;
}

void tpool_destroy(tpool *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  __atomic_store_n(&p->quit, 1, __ATOMIC_SEQ_CST);
  uint64_t v = __atomic_load_n(&p->ctl, __ATOMIC_ACQUIRE);
  __atomic_store_n(&p->ctl, CTL(CTL_GEN(v) + 1, 0), __ATOMIC_SEQ_CST); /* ends the spinning */
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nworkers; i++)
    pthread_join(p->th[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->go);
  pthread_cond_destroy(&p->done);
  free(p->th);
  free(p);
}

int tpool_threads(const tpool *p) {
  return p ? p->nworkers + 1 : 1;
}

/* One section of n (1..SECTION_MAX) jobs, numbered from base. */
static void run_section(tpool *p, int n, int base, tpool_fn fn, void *arg) {
  /* Only this thread changes the generation; the workers' claims only add to the index. */
  uint32_t g = CTL_GEN(__atomic_load_n(&p->ctl, __ATOMIC_ACQUIRE)) + 1;
  p->desc[g & 1].fn = fn, p->desc[g & 1].arg = arg, p->desc[g & 1].base = base;
  __atomic_store_n(&p->left, n, __ATOMIC_RELAXED); /* published by the store below */
  __atomic_store_n(&p->ctl, CTL(g, n), __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&p->sleepers, __ATOMIC_SEQ_CST) > 0) {
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
  }
  run_jobs(p);
  /* The others' jobs may still run: spin a while, then sleep. */
  uint64_t t0 = p->spin_ns ? tc_mono_ns() : 0;
  for (int i = 0; p->spin_ns && __atomic_load_n(&p->left, __ATOMIC_ACQUIRE) > 0; i++) {
    cpu_relax();
    if ((i & 63) == 63 && tc_mono_ns() - t0 > p->spin_ns)
      break;
  }
  if (__atomic_load_n(&p->left, __ATOMIC_ACQUIRE) > 0) {
    pthread_mutex_lock(&p->mu);
    __atomic_store_n(&p->waiting, 1, __ATOMIC_SEQ_CST); /* then left: see run_jobs */
    while (__atomic_load_n(&p->left, __ATOMIC_SEQ_CST) > 0)
      pthread_cond_wait(&p->done, &p->mu);
    __atomic_store_n(&p->waiting, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&p->mu);
  }
}

void tpool_run(tpool *p, int n, tpool_fn fn, void *arg) {
  if (!p || p->nworkers == 0 || n == 1) { /* one job: the caller's, with nothing to wait for */
    for (int j = 0; j < n; j++)
      fn(arg, j);
    return;
  }
  for (int base = 0; base < n; base += SECTION_MAX)
    run_section(p, n - base < SECTION_MAX ? n - base : SECTION_MAX, base, fn, arg);
}
