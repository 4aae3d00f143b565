/* tpool.h: a persistent pool of worker threads for short parallel sections that run many times,
 * such as the shards of every training step: tpool_run hands jobs 0..n-1 to the workers and to
 * the calling thread, and returns when every job is done. Threads are made once by tpool_new, never
 * per section. Not a task queue: one section at a time, from one caller thread. */
#ifndef DAEMON_TPOOL_H
#define DAEMON_TPOOL_H

typedef struct tpool tpool;

/* A job: fn(arg, job) for job in [0, n); jobs of one section run in any order and at once. */
typedef void (*tpool_fn)(void *arg, int job);

/* Makes a pool of threads - 1 workers (threads >= 1; 1: no thread, tpool_run runs the jobs on
 * the caller). When a worker cannot be started, the pool keeps the ones that were (the jobs still
 * all run). Returns 0, TC_ENOMEM, or TC_EINVAL for more than 32767 threads. */
int tpool_new(tpool **out, int threads);

/* Stops and joins the workers and frees the pool; accepts NULL. */
void tpool_destroy(tpool *p);

/* Threads that run jobs: the workers and the caller (1 for NULL). */
int tpool_threads(const tpool *p);

/* Runs fn(arg, j) for every j in [0, n) on the workers and the calling thread; returns when all
 * are done. p NULL, or n = 1: on the caller, in order. */
void tpool_run(tpool *p, int n, tpool_fn fn, void *arg);

#endif
