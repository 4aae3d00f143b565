/* bench_train.c: training throughput of nn/train.c in tick-steps per second (forward + backward
 * + clipping + Adam), for H=64, B=64, T=32, L=1 of the LSTM by default, next to PyTorch doing the
 * same with the same module and the same number of threads (bench/torch_train.py, run through
 * Debian's /usr/bin/python3 when it has torch), with the ratio. The step is the data-parallel one
 * of `tickcast train` (daemon/pipeline/shard.h: the minibatch in shards of at most SHARD_ROWS
 * sequences on a pool of --threads threads, gradients summed in shard order).
 * With --threads-list 1,2 it runs ROUNDS rounds, each measuring every thread count on both sides
 * in turn (tickcast 1, PyTorch 1, tickcast 2, PyTorch 2, ...), and prints the medians, the
 * speed-up of each side over its one-thread figure and the CPU time per step (every thread's),
 * which shows the parallel overhead whatever else the machine runs.
 * Usage: bench_train [H B T L SECONDS] [--cell lstm|gru|rnn_tanh|rnn_relu] [--no-torch]
 *                    [--threads N | --threads-list N,N,... [--rounds R]]. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/pipeline/shard.h"
#include "daemon/pipeline/tpool.h"
#include "nn/base/clock.h"
#include "nn/model.h"
#include "nn/train.h"

#define MAX_LIST 8

typedef struct bench_cfg {
  int H, B, T, L, cell, torch;
  double seconds;
} bench_cfg;

/* One measurement: tick-steps per second of wall time and CPU microseconds per step. */
typedef struct bench_fig {
  double rate, cpu_us;
} bench_fig;

/* tickcast on threads threads for c->seconds after 3 warm-up steps. 0 or 1 (out of memory). */
static int run_ours(const bench_cfg *c, int threads, bench_fig *out, double *loss) {
  nn_model m;
  shard_set sh;
  nn_adam adam;
  nn_rng r;
  tpool *pool = NULL;
  memset(&m, 0, sizeof m);
  nn_rng_seed(&r, 1);
  if (nn_model_init_cell(&m, c->cell, c->L, c->H, 0) != 0 ||
      shard_set_init(&sh, &m, c->B, c->T) != 0 || nn_adam_init(&adam, m.nparams, 1e-3f) != 0 ||
      tpool_new(&pool, threads) != 0) {
    fprintf(stderr, "bench_train: out of memory\n");
    return 1;
  }
  nn_train_init_weights(&m, &r);
  size_t TB = (size_t)c->T * c->B;
  float *x = malloc(TB * NN_F * sizeof *x), *tgt = malloc(TB * sizeof *tgt);
  float *w = malloc(TB * sizeof *w), *grad = malloc(m.nparams * sizeof *grad);
  float *state = calloc((size_t)c->B * nn_state_floats(&m), sizeof *state);
  for (size_t i = 0; i < TB * NN_F; i++)
    x[i] = (float)(2 * nn_rng_uniform(&r) - 1);
  for (size_t i = 0; i < TB; i++)
    tgt[i] = (float)(2 * nn_rng_uniform(&r) - 1), w[i] = 1.0f / TB;
  long n = 0;
  double t0 = 0, cpu0 = 0;
  for (int warm = 3;; warm--) {
    if (warm == 0)
      t0 = tc_mono_s(), cpu0 = tc_process_cpu_us();
    *loss = shard_set_grad(&sh, pool, &m, c->B, c->T, x, tgt, w, state, grad);
    shard_set_update(&sh, pool, &m, &adam, grad, 1.0); /* as train does */
    if (warm <= 0) {
      n++;
      if (tc_mono_s() - t0 >= c->seconds)
        break;
    }
  }
  double dt = tc_mono_s() - t0;
  out->rate = (double)n * TB / dt;
  out->cpu_us = (tc_process_cpu_us() - cpu0) / (double)n;
  free(x), free(tgt), free(w), free(grad), free(state);
  tpool_destroy(pool);
  nn_adam_free(&adam);
  shard_set_free(&sh);
  nn_model_free(&m);
  return 0;
}

/* PyTorch on threads threads (bench/torch_train.py); rate 0 when it is not available. */
static void run_torch(const bench_cfg *c, int threads, bench_fig *out, int echo) {
  char cmd[512], line[512];
  snprintf(cmd, sizeof cmd,
           "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=%d /usr/bin/python3 bench/torch_train.py %d %d "
           "%d %d %g %s %d 2>&1",
           threads, c->H, c->B, c->T, c->L, c->seconds, nn_cell_name(c->cell), threads);
  out->rate = out->cpu_us = 0;
  FILE *p = popen(cmd, "r");
  while (p && fgets(line, sizeof line, p)) {
    if (echo)
      fputs(line, stdout);
    char *s = strstr(line, ": "), *u = strstr(line, "cpu_us_per_step=");
    if (!strncmp(line, "torch_train", 11) && s)
      out->rate = atof(s + 2);
    if (u)
      out->cpu_us = atof(u + 16);
  }
  if (p)
    pclose(p);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* --threads-list: rounds of every thread count on both sides in turn, then the medians. */
static int run_list(const bench_cfg *c, const int *list, int nl, int rounds) {
  static double ours[MAX_LIST][2][64], theirs[MAX_LIST][2][64];
  double loss;
  printf("bench_train cell=%s H=%d B=%d T=%d L=%d: %d shards of at most %d sequences, %d rounds "
         "of %g s per side and thread count; %ld cores\n",
         nn_cell_name(c->cell), c->H, c->B, c->T, c->L, shard_count(c->B), SHARD_ROWS, rounds,
         c->seconds, sysconf(_SC_NPROCESSORS_ONLN));
  for (int r = 0; r < rounds; r++)
    for (int k = 0; k < nl; k++) {
      bench_fig f, g = {0, 0};
      if (run_ours(c, list[k], &f, &loss) != 0)
        return 1;
      if (c->torch)
        run_torch(c, list[k], &g, 0);
      printf("round %d threads %d: tickcast %.0f tick-steps/s (%.0f cpu us/step), PyTorch %.0f "
             "(%.0f cpu us/step)\n",
             r + 1, list[k], f.rate, f.cpu_us, g.rate, g.cpu_us);
      fflush(stdout);
      ours[k][0][r] = f.rate, ours[k][1][r] = f.cpu_us;
      theirs[k][0][r] = g.rate, theirs[k][1][r] = g.cpu_us;
    }
  /* efficiency per added core: (speedup - 1) / (threads - 1) */
  printf("%-7s %-12s %-8s %-8s %-12s %-12s %-8s %-12s %-10s\n", "threads", "tickcast/s", "speedup",
         "eff/core", "cpu_us/step", "PyTorch/s", "speedup", "cpu_us/step", "tc/PyTorch");
  double o1 = 0, t1 = 0;
  for (int k = 0; k < nl; k++) {
    double o = median(ours[k][0], rounds), oc = median(ours[k][1], rounds);
    double t = median(theirs[k][0], rounds), tcu = median(theirs[k][1], rounds);
    if (k == 0)
      o1 = o, t1 = t;
    char eff[16] = "";
    if (list[k] > list[0])
      snprintf(eff, sizeof eff, "%.0f%%", 100 * (o / o1 - 1) / (list[k] - list[0]));
    printf("%-7d %-12.0f %-8.2f %-8s %-12.0f %-12.0f %-8.2f %-12.0f %-10.2f\n", list[k], o, o / o1,
           eff, oc, t, t1 > 0 ? t / t1 : 0.0, tcu, t > 0 ? o / t : 0.0);
    printf("bench_train cell=%s threads=%d tickcast_tick_steps_per_s=%.0f speedup=%.2f "
           "torch_tick_steps_per_s=%.0f torch_speedup=%.2f ratio=%.2f\n",
           nn_cell_name(c->cell), list[k], o, o / o1, t, t1 > 0 ? t / t1 : 0.0,
           t > 0 ? o / t : 0.0);
  }
  return 0;
}

int main(int argc, char **argv) {
  bench_cfg c = {.H = 64, .B = 64, .T = 32, .L = 1, .cell = NN_CELL_LSTM, .torch = 1, .seconds = 3};
  int threads = 1, npos = 0, list[MAX_LIST], nl = 0, rounds = 3;
  const char *pos[5];
  for (int a = 1; a < argc; a++) {
    if (!strcmp(argv[a], "--no-torch"))
      c.torch = 0;
    else if (!strcmp(argv[a], "--cell") && a + 1 < argc && nn_cell_parse(argv[a + 1]) >= 0)
      c.cell = nn_cell_parse(argv[++a]);
    else if (!strcmp(argv[a], "--threads") && a + 1 < argc)
      threads = atoi(argv[++a]);
    else if (!strcmp(argv[a], "--rounds") && a + 1 < argc)
      rounds = atoi(argv[++a]);
    else if (!strcmp(argv[a], "--threads-list") && a + 1 < argc)
      for (char *s = argv[++a]; *s && nl < MAX_LIST; s += strcspn(s, ","), s += *s == ',')
        list[nl++] = atoi(s);
    else if (npos < 5)
      pos[npos++] = argv[a];
  }
  if (npos >= 4)
    c.H = atoi(pos[0]), c.B = atoi(pos[1]), c.T = atoi(pos[2]), c.L = atoi(pos[3]);
  if (npos >= 5)
    c.seconds = atof(pos[4]);
  if (threads < 1 || rounds < 1 || rounds > 64 || c.B < 1 || c.T < 1 || c.H < 1 || c.L < 1) {
    fprintf(stderr, "bench_train: bad arguments\n");
    return 2;
  }
  openblas_set_num_threads(1);
  for (int k = 0; k < nl; k++)
    if (list[k] < 1) {
      fprintf(stderr, "bench_train: bad --threads-list\n");
      return 2;
    }
  if (nl > 0)
    return run_list(&c, list, nl, rounds);
  bench_fig f, g;
  double loss;
  if (run_ours(&c, threads, &f, &loss) != 0)
    return 1;
  printf("bench_train cell=%s H=%d B=%d T=%d L=%d threads=%d: %.0f tick-steps/s (%.0f cpu us per "
         "step, loss %.4f)\n",
         nn_cell_name(c.cell), c.H, c.B, c.T, c.L, threads, f.rate, f.cpu_us, loss);
  fflush(stdout);
  if (!c.torch)
    return 0;
  run_torch(&c, threads, &g, 1);
  if (g.rate > 0)
    printf("bench_train cell=%s: tickcast / PyTorch = %.2fx (training tick-steps/s, %d thread%s "
           "each)\n",
           nn_cell_name(c.cell), f.rate / g.rate, threads, threads > 1 ? "s" : "");
  else
    printf("bench_train: PyTorch reference not available (needs /usr/bin/python3 with torch)\n");
  return 0;
}
