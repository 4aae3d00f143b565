/* tpool.c: the persistent worker pool (see tpool.h). Jobs are claimed under one mutex: a section
 * has a few jobs of a millisecond or so, so the lock is never the cost. Waking a sleeping thread
 * is: on this project's VMs a futex wake-up reaches an idle vCPU only after 100 us or more, as
 * long as the gap between two training steps. So a worker that runs out of jobs, and the caller
 * waiting for the last job, first spin for up to TPOOL_SPIN_NS watching the section counter, and
 * only then sleep on a condition variable; a pool between sections costs nothing after that.
 * A pool with more threads than online cores does not spin: a spinner would take the core of a
 * thread still running the section's last job. */
#include "daemon/pipeline/tpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "nn/base/clock.h"
#include "nn/base/tc_err.h"

#define TPOOL_SPIN_NS 300000 /* longer than the serial gap between two steps (Adam, loading) */

struct tpool {
  int nworkers;        /* threads started */
  uint64_t spin_ns;    /* TPOOL_SPIN_NS, or 0 when the threads outnumber the online cores */
  pthread_t *th;       /* (nworkers) */
  pthread_mutex_t mu;  /* guards everything below; gen and left are also read without it */
  pthread_cond_t go;   /* a section has jobs to claim, or quit */
  pthread_cond_t done; /* the last job of a section finished */
  tpool_fn fn;         /* the section's job */
  void *arg;           /* its argument */
  int n;               /* the section's jobs */
  int next;            /* the next job to claim; n: none left */
  int left;            /* jobs not finished (atomic stores) */
  unsigned gen;        /* sections started (atomic stores) */
  int quit;            /* tpool_destroy: workers return */
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Spins until *v differs from old or ns passed; 1 if it changed. */
static int spin_while(const unsigned *v, unsigned old, uint64_t ns) {
  if (!ns)
    return 0;
  uint64_t t0 = tc_mono_ns();
  for (int i = 0;; i++) {
    if (__atomic_load_n(v, __ATOMIC_ACQUIRE) != old)
      return 1;
    cpu_relax();
    if ((i & 63) == 63 && tc_mono_ns() - t0 > ns)
      return 0;
  }
}

/* Claims and runs jobs of the current section until none is left to claim; called and returns
 * with p->mu held. */
static void run_claimed(tpool *p) {
  while (p->next < p->n) {
    int j = p->next++;
    tpool_fn fn = p->fn;
    void *arg = p->arg;
    pthread_mutex_unlock(&p->mu);
    fn(arg, j);
    pthread_mutex_lock(&p->mu);
    __atomic_store_n(&p->left, p->left - 1, __ATOMIC_RELEASE);
    if (p->left == 0)
      pthread_cond_signal(&p->done);
  }
}

static void *worker_main(void *arg) {
  tpool *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    if (p->quit)
      break;
    if (p->next < p->n) {
      run_claimed(p);
      continue;
    }
    unsigned g = p->gen;
    pthread_mutex_unlock(&p->mu);
    spin_while(&p->gen, g, p->spin_ns);
    pthread_mutex_lock(&p->mu);
    if (p->gen == g && !p->quit && p->next >= p->n)
      pthread_cond_wait(&p->go, &p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int tpool_new(tpool **out, int threads) {
  *out = NULL;
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
  p->quit = 1;
  __atomic_store_n(&p->gen, p->gen + 1, __ATOMIC_RELEASE); /* ends the spinning too */
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

void tpool_run(tpool *p, int n, tpool_fn fn, void *arg) {
  if (!p || p->nworkers == 0) {
    for (int j = 0; j < n; j++)
      fn(arg, j);
    return;
  }
  pthread_mutex_lock(&p->mu);
  p->fn = fn, p->arg = arg;
  p->n = n, p->next = 0;
  __atomic_store_n(&p->left, n, __ATOMIC_RELEASE);
  __atomic_store_n(&p->gen, p->gen + 1, __ATOMIC_RELEASE);
  for (int i = 1; i < n && i <= p->nworkers; i++) /* the caller takes a job: wake the others */
    pthread_cond_signal(&p->go);
  run_claimed(p);
  if (p->left > 0) { /* the others' jobs are running: spin a while, then sleep */
    pthread_mutex_unlock(&p->mu);
    uint64_t t0 = tc_mono_ns();
    for (int i = 0; p->spin_ns && __atomic_load_n(&p->left, __ATOMIC_ACQUIRE) > 0; i++) {
      cpu_relax();
      if ((i & 63) == 63 && tc_mono_ns() - t0 > p->spin_ns)
        break;
    }
    pthread_mutex_lock(&p->mu);
    while (p->left > 0)
      pthread_cond_wait(&p->done, &p->mu);
  }
  pthread_mutex_unlock(&p->mu);
}
