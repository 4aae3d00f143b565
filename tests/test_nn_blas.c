/* test_nn_blas.c: nn/blas.c, OpenBLAS loaded with dlopen on first use. This binary does not link
 * OpenBLAS (Makefile), as tickcast does not: it is not in the process until the first call, which
 * loads it once for every thread calling at the same time; sgemm and sgemv in each transpose give
 * the products of a plain loop in double (to float rounding); the thread count is 1 after the
 * load when OPENBLAS_NUM_THREADS is not set (OpenBLAS would start one per core). */
#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "nn/blas.h"

/* Mappings of libopenblas in this process. */
static int blas_maps(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  int n = 0;
  while (f && fgets(line, sizeof line, f))
    n += strstr(line, "libopenblas") != NULL;
  if (f)
    fclose(f);
  return n;
}

static float frand(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* C (M, N) = alpha op(A) op(B) + beta C, row-major, in double. */
static void ref_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, const float *C0, double *C) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++)
        s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) *
             (double)(tb ? B[j * ldb + k] : B[k * ldb + j]);
      C[i * N + j] = alpha * s + beta * (double)C0[i * N + j];
    }
}

static void gemm_case(int ta, int tb, int M, int N, int K, unsigned seed) {
  int lda = ta ? M : K, ldb = tb ? K : N;
  float *A = malloc(sizeof(float) * (size_t)(M * K)), *B = malloc(sizeof(float) * (size_t)(K * N)),
        *C = malloc(sizeof(float) * (size_t)(M * N)), *C0 = malloc(sizeof(float) * (size_t)(M * N));
  double *R = malloc(sizeof(double) * (size_t)(M * N));
  for (int i = 0; i < M * K; i++)
    A[i] = frand(&seed);
  for (int i = 0; i < K * N; i++)
    B[i] = frand(&seed);
  for (int i = 0; i < M * N; i++)
    C[i] = C0[i] = frand(&seed);
  nn_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
           0.5f, A, lda, B, ldb, 1.0f, C, N);
  ref_gemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C0, R);
  double worst = 0;
  for (int i = 0; i < M * N; i++) {
    double e = fabs(C[i] - R[i]) / (1 + fabs(R[i]));
    worst = e > worst ? e : worst;
  }
  CHECK(worst < 1e-5 * K);
  if (!(worst < 1e-5 * K))
    fprintf(stderr, "sgemm ta %d tb %d %dx%dx%d: error %g\n", ta, tb, M, N, K, worst);
  free(A), free(B), free(C), free(C0), free(R);
}

static void gemv_case(int t, int M, int N, unsigned seed) {
  int nx = t ? M : N, ny = t ? N : M;
  float *A = malloc(sizeof(float) * (size_t)(M * N)), x[300], y[300], y0[300];
  for (int i = 0; i < M * N; i++)
    A[i] = frand(&seed);
  for (int i = 0; i < nx; i++)
    x[i] = frand(&seed);
  for (int i = 0; i < ny; i++)
    y[i] = y0[i] = frand(&seed);
  nn_sgemv(CblasRowMajor, t ? CblasTrans : CblasNoTrans, M, N, 2.0f, A, N, x, 1, 1.0f, y, 1);
  for (int i = 0; i < ny; i++) {
    double s = 0;
    for (int k = 0; k < nx; k++)
      s += (double)(t ? A[k * N + i] : A[i * N + k]) * x[k];
    CHECK(fabs(y[i] - (2 * s + y0[i])) < 1e-4 * (1 + fabs(s)));
  }
  free(A);
}

static void *load_thread(void *arg) {
  (void)arg;
  char err[320];
  return (void *)(intptr_t)nn_blas_load(err, sizeof err);
}

int main(void) {
  unsetenv("OPENBLAS_NUM_THREADS"); /* tests/run.sh sets it; the loader's default is the case */
  CHECK_INT(nn_blas_loaded(), 0);
  CHECK_INT(blas_maps(), 0);
  pthread_t th[4]; /* the first calls, at once */
  for (int i = 0; i < 4; i++)
    pthread_create(&th[i], NULL, load_thread, NULL);
  for (int i = 0; i < 4; i++) {
    void *rc;
    pthread_join(th[i], &rc);
    CHECK_INT((intptr_t)rc, 0);
  }
  CHECK_INT(nn_blas_loaded(), 1);
  CHECK(blas_maps() > 0);
  CHECK_INT(nn_blas_threads(), 1);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      gemm_case(ta, tb, 1, 1, 1, 1);
      gemm_case(ta, tb, 7, 5, 3, 2);
      gemm_case(ta, tb, 64, 256, 64, 3);
      gemm_case(ta, tb, 300, 17, 129, 4);
    }
  gemv_case(0, 256, 64, 5);
  gemv_case(1, 256, 64, 6);
  gemv_case(1, 3, 300, 7);
  char err[320];
  CHECK_INT(nn_blas_load(err, sizeof err), 0);
  return check_done();
}
