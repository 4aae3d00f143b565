/* bench_lstm.c: nanoseconds per instrument-step of nn_lstm_step (L=1) for H = 32, 64, 128 and
 * B = 1, 4, 16, 20, 64, 256, 4096, as it runs on this CPU (`lstm`) and with OpenBLAS's sgemm
 * for the recurrent product instead of nn_projT (`lstm_sgemm`, B > 4: the step before the
 * kernel); and of its parts: the gates, layer 0's input projection (nn_proj4) and the recurrent
 * projection, as `projT_hh` (nn_projT, which the step uses up to nn_work.Bkern rows; `isa`
 * says which version ran) and as `gemm_hh` (OpenBLAS: sgemm, or sgemv per row for B <= 4, as
 * the step did before the kernel), plus `sgemm_hh` (sgemm alone) for B <= 4; for comparison,
 * the two-sgemm and the one-sgemm-on-[x | h] (K = 4 + H) variants. One
 * machine-readable line per case: `ns_per_step` is wall time, `cpu_ns` the thread's CPU time
 * (steadier on a shared machine). Not part of `make test`; run with OPENBLAS_NUM_THREADS=1.
 * With --cells it instead times one step (nn_step, L = 1) of every cell (LSTM, GRU, RNN tanh and
 * relu) at H = 64, 128, 256 and B = 1, 16, 256, with each cell's time against the LSTM's, then
 * PyTorch's same module stepped the same way (bench/torch_step.py, Debian's /usr/bin/python3)
 * and tickcast's speed-up over it.
 * Usage: bench_lstm [--cells] [seconds per case, default 0.2] */
#include <cblas.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/lstm.h"
#include "nn/lstm_int.h"
#include "nn/model.h"

static double clk(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now(void) {
  return clk(CLOCK_MONOTONIC);
}
static double cpu(void) {
  return clk(CLOCK_THREAD_CPUTIME_ID);
}

static uint32_t rng = 1u;
static float frand(float lo, float hi) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return lo + (hi - lo) * (float)(rng >> 8) / 16777216.0f;
}

/* Runs fn(arg) repeatedly for at least `secs` seconds (after one warm-up call) and returns the
 * mean seconds per call. */
typedef struct job {
  const nn_model *m;
  nn_work *w;
  int B, H;
  float *x, *y, *z, *c, *h, *xh, *wcat;
  float **sp;
} job;

static void run_step(job *j) {
  nn_lstm_step(j->m, j->w, j->B, j->x, j->sp, j->y);
}
static void run_any_step(job *j) {
  nn_step(j->m, j->w, j->B, j->x, j->sp, j->y);
}
static void run_step_sgemm(job *j) {
  int keep = j->w->Bkern;
  j->w->Bkern = 0;
  nn_lstm_step(j->m, j->w, j->B, j->x, j->sp, j->y);
  j->w->Bkern = keep;
}
static void run_gates(job *j) {
  nn_gates(j->B, j->H, j->z, j->c, j->h, NULL, NULL, NULL);
}
static void run_proj4(job *j) {
  nn_proj4(j->B, 4 * j->H, j->x, j->w->wx, j->w->bias, j->z);
}
static void run_projT(job *j) { /* the recurrent product as nn_lstm_step does it up to Bkern */
  nn_projT(j->B, 4 * j->H, j->H, j->h, j->w->whh, j->w->ldw, j->z);
}
static void run_sgemm(job *j) {
  int H = j->H, G = 4 * H;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->B, G, H, 1.0f, j->h, H, j->m->W_hh[0], H,
              1.0f, j->z, G);
}
static void run_hh(job *j) { /* OpenBLAS's best for the recurrent product */
  int H = j->H, G = 4 * H;
  if (j->B <= 4) {
    for (int b = 0; b < j->B; b++)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, G, H, 1.0f, j->m->W_hh[0], H, j->h + (size_t)b * H,
                  1, 1.0f, j->z + (size_t)b * G, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->B, G, H, 1.0f, j->h, H, j->m->W_hh[0],
                H, 1.0f, j->z, G);
  }
}
static void run_gemm2(job *j) {
  int H = j->H, G = 4 * H;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->B, G, NN_F, 1.0f, j->x, NN_F,
              j->m->W_ih[0], NN_F, 1.0f, j->z, G);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->B, G, H, 1.0f, j->h, H, j->m->W_hh[0], H,
              1.0f, j->z, G);
}
static void run_gemmcat(job *j) {
  int H = j->H, G = 4 * H, K = NN_F + H;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->B, G, K, 1.0f, j->xh, K, j->wcat, K, 1.0f,
              j->z, G);
}

/* Mean wall and CPU seconds per call of fn, over at least `secs` of wall time. */
static double timeit(void (*fn)(job *), job *j, double secs, double *cpu_per_call) {
  fn(j);
  long n = 0, batch = 1;
  double t0 = now(), c0 = cpu(), t;
  for (;;) {
    for (long i = 0; i < batch; i++)
      fn(j);
    n += batch;
    t = now() - t0;
    if (t >= secs)
      break;
    if (batch < (1L << 20))
      batch *= 2;
  }
  *cpu_per_call = (cpu() - c0) / (double)n;
  return t / (double)n;
}

/* One cell's step set up for --cells: model, scratch and B scattered states. */
typedef struct cell_case {
  nn_model m;
  nn_work w;
  float *state;
  job j;
} cell_case;

static int cell_case_init(cell_case *c, int cell, int H, int B) {
  if (nn_model_init_cell(&c->m, cell, 1, H, 0) != 0)
    return -1;
  for (size_t i = 0; i < c->m.nparams; i++)
    c->m.params[i] = frand(-0.3f, 0.3f);
  if (nn_work_init(&c->w, &c->m, B) != 0)
    return -1;
  size_t S = nn_state_floats(&c->m);
  c->j = (job){.m = &c->m, .w = &c->w, .B = B, .H = H};
  c->state = malloc((size_t)B * S * sizeof *c->state);
  c->j.sp = malloc((size_t)B * sizeof *c->j.sp);
  c->j.x = malloc((size_t)B * NN_F * sizeof *c->j.x);
  c->j.y = malloc((size_t)B * sizeof *c->j.y);
  for (size_t i = 0; i < (size_t)B * S; i++)
    c->state[i] = frand(-0.5f, 0.5f);
  for (int b = 0; b < B; b++)
    c->j.sp[b] = c->state + (size_t)((b * 7919L) % B) * S;
  for (int i = 0; i < B * NN_F; i++)
    c->j.x[i] = frand(-2, 2);
  return 0;
}

static void cell_case_free(cell_case *c) {
  free(c->state), free(c->j.sp), free(c->j.x), free(c->j.y);
  nn_work_free(&c->w);
  nn_model_free(&c->m);
}

/* --cells: CPU ns per instrument-step of nn_step for every cell on the H x B grid, and each
 * cell's ratio to the LSTM's at the same H and B; then PyTorch's module on the same grid. The
 * cells of one H and B take turns for ROUNDS rounds of secs / ROUNDS each and keep their best
 * round, so that a burst of other work on a shared machine does not land on one cell alone. */
static int cells_main(double secs) {
  enum { NH = 3, NB = 3, ROUNDS = 5 };
  const int Hs[NH] = {64, 128, 256}, Bs[NB] = {1, 16, 256};
  static double ours[NN_CELL_COUNT][NH][NB];
  printf("# nn_step, L=1, one thread: cpu ns per instrument-step (best of %d turns of %.2f s; "
         "wall ns of that turn alongside); vs_lstm = this cell's cpu time / the LSTM's\n",
         ROUNDS, secs / ROUNDS);
  for (int hi = 0; hi < NH; hi++)
    for (int bi = 0; bi < NB; bi++) {
      int H = Hs[hi], B = Bs[bi];
      cell_case cc[NN_CELL_COUNT];
      double best[NN_CELL_COUNT], wall[NN_CELL_COUNT];
      for (int cell = 0; cell < NN_CELL_COUNT; cell++) {
        if (cell_case_init(&cc[cell], cell, H, B) != 0)
          return 1;
        best[cell] = 1e30;
      }
      for (int r = 0; r < ROUNDS; r++)
        for (int cell = 0; cell < NN_CELL_COUNT; cell++) {
          double c, t = timeit(run_any_step, &cc[cell].j, secs / ROUNDS, &c);
          if (c < best[cell])
            best[cell] = c, wall[cell] = t;
        }
      for (int cell = 0; cell < NN_CELL_COUNT; cell++) {
        ours[cell][hi][bi] = best[cell] * 1e9 / B;
        printf("cell=%s H=%d B=%d cpu_ns=%.1f ns_per_step=%.1f vs_lstm=%.3f\n", nn_cell_name(cell),
               H, B, ours[cell][hi][bi], wall[cell] * 1e9 / B, best[cell] / best[NN_CELL_LSTM]);
        cell_case_free(&cc[cell]);
      }
      fflush(stdout);
    }
  char cmd[256], line[256];
  snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch_step.py %g 2>&1", secs);
  FILE *p = popen(cmd, "r");
  int got = 0;
  printf("# PyTorch's module, one step per call (bench/torch_step.py); speedup = its ns / "
         "tickcast's cpu ns\n");
  while (p && fgets(line, sizeof line, p)) {
    char cname[16];
    int H, B;
    double t;
    fputs(line, stdout);
    if (sscanf(line, "torch_step cell=%15s H=%d B=%d ns_per_step=%lf", cname, &H, &B, &t) != 4)
      continue;
    int cell = nn_cell_parse(cname), hi = 0, bi = 0;
    while (hi < NH - 1 && Hs[hi] != H)
      hi++;
    while (bi < NB - 1 && Bs[bi] != B)
      bi++;
    if (cell >= 0 && Hs[hi] == H && Bs[bi] == B) {
      printf("cell=%s H=%d B=%d speedup_vs_torch=%.1f\n", cname, H, B, t / ours[cell][hi][bi]);
      got++;
    }
    fflush(stdout);
  }
  if (p)
    pclose(p);
  if (!got)
    printf("# PyTorch reference not available (needs /usr/bin/python3 with torch)\n");
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--cells"))
    return cells_main(argc > 2 ? atof(argv[2]) : 0.2);
  double secs = argc > 1 ? atof(argv[1]) : 0.2;
  const int Hs[] = {32, 64, 128}, Bs[] = {1, 4, 16, 20, 64, 256, 4096}, NB = 7;
  static const char *isa[] = {"plain", "avx2+fma", "avx512f"};
  char upto[32] = "every B";
  if (nn_projT_max_b() < INT_MAX)
    snprintf(upto, sizeof upto, "B <= %d", nn_projT_max_b());
  printf("# ns per instrument-step, L=1, one thread (OPENBLAS_NUM_THREADS=%s), %.2f s per case; "
         "nn_projT: %s, used by the step for %s\n",
         getenv("OPENBLAS_NUM_THREADS") ? getenv("OPENBLAS_NUM_THREADS") : "unset", secs,
         isa[nn_projT_level()], upto);
  for (int hi = 0; hi < 3; hi++) {
    int H = Hs[hi], G = 4 * H;
    nn_model m;
    if (nn_model_init(&m, 1, H, 0) != 0)
      return 1;
    for (size_t i = 0; i < m.nparams; i++)
      m.params[i] = frand(-0.3f, 0.3f);
    for (int bi = 0; bi < NB; bi++) {
      int B = Bs[bi];
      nn_work w;
      if (nn_work_init(&w, &m, B) != 0)
        return 1;
      size_t S = nn_state_floats(&m);
      job j = {.m = &m, .w = &w, .B = B, .H = H};
      float *state = malloc((size_t)B * S * sizeof *state);
      j.sp = malloc((size_t)B * sizeof *j.sp);
      j.x = malloc((size_t)B * NN_F * sizeof *j.x);
      j.y = malloc((size_t)B * sizeof *j.y);
      j.z = malloc((size_t)B * G * sizeof *j.z);
      j.c = malloc((size_t)B * H * sizeof *j.c);
      j.h = malloc((size_t)B * H * sizeof *j.h);
      j.xh = malloc((size_t)B * (NN_F + H) * sizeof *j.xh);
      j.wcat = malloc((size_t)G * (NN_F + H) * sizeof *j.wcat);
      for (size_t i = 0; i < (size_t)B * S; i++)
        state[i] = frand(-0.5f, 0.5f);
      /* Instruments' states in a scattered order, as a hash table would hand them out. */
      for (int b = 0; b < B; b++)
        j.sp[b] = state + (size_t)((b * 7919L) % B) * S;
      for (int i = 0; i < B * NN_F; i++)
        j.x[i] = frand(-2, 2);
      for (int i = 0; i < B * G; i++)
        j.z[i] = frand(-4, 4);
      for (int i = 0; i < B * H; i++)
        j.c[i] = frand(-1, 1), j.h[i] = frand(-1, 1);
      for (int i = 0; i < B * (NN_F + H); i++)
        j.xh[i] = frand(-1, 1);
      for (int r = 0; r < G; r++) {
        memcpy(j.wcat + (size_t)r * (NN_F + H), m.W_ih[0] + (size_t)r * NN_F, NN_F * sizeof(float));
        memcpy(j.wcat + (size_t)r * (NN_F + H) + NN_F, m.W_hh[0] + (size_t)r * H,
               H * sizeof(float));
      }
      static const struct {
        const char *name;
        void (*fn)(job *);
        int flops; /* 1: print GFLOP/s of the recurrent (and input) products */
      } parts[] = {{"lstm", run_step, 0},      {"lstm_sgemm", run_step_sgemm, 0},
                   {"gates", run_gates, 0},    {"proj4", run_proj4, 0},
                   {"projT_hh", run_projT, 1}, {"gemm_hh", run_hh, 1},
                   {"sgemm_hh", run_sgemm, 1}, {"gemm2", run_gemm2, 2},
                   {"gemmcat", run_gemmcat, 2}};
      for (size_t p = 0; p < sizeof parts / sizeof *parts; p++) {
        if ((parts[p].fn == run_sgemm && B > 4) || (parts[p].fn == run_step_sgemm && B <= 4))
          continue; /* the same as gemm_hh; the step used sgemv there */
        double c, t = timeit(parts[p].fn, &j, p <= 1 ? secs : secs / 2, &c);
        t *= 1e9 / B;
        c *= 1e9 / B;
        printf("%s H=%d B=%d ns_per_step=%.1f cpu_ns=%.1f", parts[p].name, H, B, t, c);
        if (p <= 1)
          printf(" steps_per_s=%.0f", 1e9 / t);
        if (parts[p].flops)
          printf(" cpu_gflops=%.2f", 2.0 * G * (parts[p].flops == 1 ? H : NN_F + H) / c);
        if (parts[p].fn == run_projT)
          printf(" isa=%s", isa[nn_projT_level()]);
        printf("\n");
      }
      fflush(stdout);
      free(state), free(j.sp), free(j.x), free(j.y), free(j.z), free(j.c), free(j.h);
      free(j.xh), free(j.wcat);
      nn_work_free(&w);
    }
    nn_model_free(&m);
  }
  return 0;
}
