/* blas.c: OpenBLAS through dlopen (see blas.h). */
#include "nn/blas.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/base/tc_err.h"

static struct {
  pthread_once_t once;
  atomic_int loaded; /* 1: the pointers below are set */
  char err[320];     /* why it could not be loaded */
  __typeof__(cblas_sgemm) *sgemm;
  __typeof__(cblas_sgemv) *sgemv;
  __typeof__(openblas_get_num_threads) *get_threads;
  __typeof__(openblas_set_num_threads) *set_threads;
} blas = {.once = PTHREAD_ONCE_INIT};

void nn_blas_pin_kernels(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (!getenv("OPENBLAS_CORETYPE") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma"))
    setenv("OPENBLAS_CORETYPE", "Haswell", 0);
#endif
}

static void load(void) {
  nn_blas_pin_kernels(); /* (read by OpenBLAS's constructor, in dlopen) */
  void *lib = dlopen(NN_BLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    snprintf(blas.err, sizeof blas.err,
             "cannot load OpenBLAS (%s; install Debian's libopenblas0): %s", NN_BLAS_SONAME,
             dlerror());
    return;
  }
  struct {
    void **fn;
    const char *name;
  } want[] = {{(void **)&blas.sgemm, "cblas_sgemm"},
              {(void **)&blas.sgemv, "cblas_sgemv"},
              {(void **)&blas.get_threads, "openblas_get_num_threads"},
              {(void **)&blas.set_threads, "openblas_set_num_threads"}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!(*want[i].fn = dlsym(lib, want[i].name))) {
      snprintf(blas.err, sizeof blas.err, "%s has no %s: %s", NN_BLAS_SONAME, want[i].name,
               dlerror());
      dlclose(lib);
      return;
    }
  /* OpenBLAS's own, in its threaded builds (libopenblas0-pthread, -openmp): stops its worker
   * threads; a later call that wants several starts them again. It is what OpenBLAS runs before a
   * fork. A serial build has no such symbol and no threads to stop. */
  int (*shutdown)(void) = (int (*)(void))dlsym(lib, "blas_thread_shutdown_");
  if (!getenv("OPENBLAS_NUM_THREADS")) {
    blas.set_threads(1);
    if (shutdown)
      shutdown();
  }
  atomic_store_explicit(&blas.loaded, 1, memory_order_release);
}

int nn_blas_load(char *err, size_t errlen) {
  pthread_once(&blas.once, load);
  if (atomic_load_explicit(&blas.loaded, memory_order_acquire))
    return 0;
  if (errlen)
    snprintf(err, errlen, "%s", blas.err);
  return TC_EIO;
}

int nn_blas_loaded(void) {
  return atomic_load_explicit(&blas.loaded, memory_order_acquire);
}

static void need(void) {
  if (__builtin_expect(atomic_load_explicit(&blas.loaded, memory_order_acquire), 1))
    return;
  if (nn_blas_load(NULL, 0) != 0) {
    fprintf(stderr, "tickcast: %s\n", blas.err);
    abort();
  }
}

void nn_sgemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
              float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
              int ldc) {
  need();
  blas.sgemm(o, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void nn_sgemv(CBLAS_ORDER o, CBLAS_TRANSPOSE t, int M, int N, float alpha, const float *A, int lda,
              const float *x, int incx, float beta, float *y, int incy) {
  need();
  blas.sgemv(o, t, M, N, alpha, A, lda, x, incx, beta, y, incy);
}

int nn_blas_threads(void) {
  need();
  return blas.get_threads();
}

void nn_blas_set_threads(int n) {
  need();
  blas.set_threads(n);
}
