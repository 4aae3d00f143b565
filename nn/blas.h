/* blas.h: OpenBLAS, loaded with dlopen when it is first needed, not linked. Linked, it was loaded
 * at the start of every command: 4-6 ms of its own and libgfortran's relocations and of its
 * constructor's thread pool, a fifth of a small replay's time, while replay, eval and the daemon
 * never call it (their engines step batches of at most the rows nn/proj.c's kernels take:
 * engine_init_exact). Training loads it at its start (nn_blas_load), so that a missing library is
 * an error before anything runs.
 * Loading sets one OpenBLAS thread unless OPENBLAS_NUM_THREADS is in the environment, and then
 * stops the workers OpenBLAS started when it was loaded (each spins about 0.1 s before it
 * sleeps, which took a core from the replay's own threads). */
#ifndef NN_BLAS_H
#define NN_BLAS_H

#include <cblas.h>
#include <stddef.h>

#define NN_BLAS_SONAME "libopenblas.so.0"

/* OpenBLAS picks its kernels by the CPU it finds (OPENBLAS_CORETYPE overrides it), and kernels of
 * different widths sum in different orders: a model trained on an AVX-512 CPU (OpenBLAS 0.3.21's
 * SkylakeX and Cooperlake kernels) differed in its last bits from one trained on a CPU it runs
 * its Haswell or Zen kernels on. On a CPU with AVX2 and FMA, unless OPENBLAS_CORETYPE is set,
 * this sets it to Haswell, whose kernels every such CPU runs, so that training gives the same
 * model bytes on all of them. It sets an environment variable: call it before any other thread
 * starts (tickcast's main does; nn_blas_load calls it too, for programs that do not). */
void nn_blas_pin_kernels(void);

/* Loads OpenBLAS once (any thread, any number of times): 0, or TC_EIO with a one-line reason in
 * err (errlen may be 0). */
int nn_blas_load(char *err, size_t errlen);
/* 1 once OpenBLAS is loaded. */
int nn_blas_loaded(void);

/* cblas_sgemm and cblas_sgemv. Load OpenBLAS first if need be; a failure to load it then is
 * printed to stderr and aborts (nn_blas_load at the start is the way to report it). */
void nn_sgemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
              float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
              int ldc);
void nn_sgemv(CBLAS_ORDER o, CBLAS_TRANSPOSE t, int M, int N, float alpha, const float *A, int lda,
              const float *x, int incx, float beta, float *y, int incy);

/* openblas_get_num_threads and openblas_set_num_threads (they load it first, as above). */
int nn_blas_threads(void);
void nn_blas_set_threads(int n);

#endif
