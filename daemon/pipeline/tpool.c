/* tpool.c: the persistent worker pool (see tpool.h). Jobs are claimed under one mutex: a section
 * has a few jobs of a millisecond or so, so the lock is never the cost; a worker with nothing to
 * claim sleeps on a condition variable. */
#include "daemon/pipeline/tpool.h"

#include <pthread.h>
#include <stdlib.h>

#include "nn/base/tc_err.h"

struct tpool {
  int nworkers;        /* threads started */
  pthread_t *th;       /* (nworkers) */
  pthread_mutex_t mu;  /* guards everything below */
  pthread_cond_t go;   /* a section has jobs to claim, or quit */
  pthread_cond_t done; /* the last job of a section finished */
  tpool_fn fn;         /* the section's job */
  void *arg;           /* its argument */
  int n;               /* the section's jobs */
  int next;            /* the next job to claim; n: none left */
  int left;            /* jobs not finished */
  int quit;            /* tpool_destroy: workers return */
};

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
    if (--p->left == 0)
      pthread_cond_signal(&p->done);
  }
}

static void *worker_main(void *arg) {
  tpool *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->quit && p->next >= p->n)
      pthread_cond_wait(&p->go, &p->mu);
    if (p->quit)
      break;
    run_claimed(p);
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
  p->n = n, p->next = 0, p->left = n;
  if (n > 1)
    pthread_cond_broadcast(&p->go);
  run_claimed(p);
  while (p->left > 0)
    pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}
