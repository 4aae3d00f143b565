/* bench_train.c: training throughput of nn/train.c in tick-steps per second (forward + backward
 * + clipping + Adam, one thread), for H=64, B=64, T=32, L=1 by default, next to PyTorch doing the
 * same on one thread (bench/torch_train.py, run through Debian's /usr/bin/python3 when it has
 * torch), with the ratio. Usage: bench_train [H B T L SECONDS] [--no-torch]. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/model.h"
#include "nn/train.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  int H = 64, B = 64, T = 32, L = 1;
  double seconds = 3.0;
  int torch = 1;
  if (argc > 1 && !strcmp(argv[argc - 1], "--no-torch"))
    torch = 0, argc--;
  if (argc > 4)
    H = atoi(argv[1]), B = atoi(argv[2]), T = atoi(argv[3]), L = atoi(argv[4]);
  if (argc > 5)
    seconds = atof(argv[5]);
  openblas_set_num_threads(1);
  nn_model m;
  nn_train tr;
  nn_adam adam;
  nn_rng r;
  nn_rng_seed(&r, 1);
  if (nn_model_init(&m, L, H, 0) != 0 || nn_train_init(&tr, &m, B, T) != 0 ||
      nn_adam_init(&adam, m.nparams, 1e-3f) != 0) {
    fprintf(stderr, "bench_train: out of memory\n");
    return 1;
  }
  nn_train_init_weights(&m, &r);
  size_t TB = (size_t)T * B;
  float *x = malloc(TB * NN_F * sizeof *x), *tgt = malloc(TB * sizeof *tgt);
  float *w = malloc(TB * sizeof *w), *grad = malloc(m.nparams * sizeof *grad);
  float *state = calloc((size_t)B * nn_state_floats(&m), sizeof *state);
  for (size_t i = 0; i < TB * NN_F; i++)
    x[i] = (float)(2 * nn_rng_uniform(&r) - 1);
  for (size_t i = 0; i < TB; i++)
    tgt[i] = (float)(2 * nn_rng_uniform(&r) - 1), w[i] = 1.0f / TB;
  long n = 0;
  double t0 = 0, loss = 0;
  for (int warm = 3;; warm--) {
    if (warm == 0)
      t0 = now_s();
    loss = nn_train_forward(&tr, &m, B, T, x, tgt, w, state);
    memset(grad, 0, m.nparams * sizeof *grad);
    nn_train_backward(&tr, &m, grad);
    nn_grad_clip(grad, m.nparams, 1.0);
    nn_adam_step(&adam, &m, grad);
    if (warm <= 0) {
      n++;
      if (now_s() - t0 >= seconds)
        break;
    }
  }
  double dt = now_s() - t0, ours = (double)n * B * T / dt;
  printf("bench_train H=%d B=%d T=%d L=%d: %.0f tick-steps/s (%ld steps in %.2f s, loss %.4f)\n", H,
         B, T, L, ours, n, dt, loss);
  fflush(stdout);
  char cmd[512], line[512];
  snprintf(cmd, sizeof cmd,
           "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch_train.py %d %d "
           "%d %d %g 2>&1",
           H, B, T, L, seconds);
  FILE *p = torch ? popen(cmd, "r") : NULL;
  double theirs = 0;
  while (p && fgets(line, sizeof line, p)) {
    fputs(line, stdout);
    char *s = strstr(line, ": ");
    if (!strncmp(line, "torch_train", 11) && s)
      theirs = atof(s + 2);
  }
  if (p)
    pclose(p);
  if (theirs > 0)
    printf("bench_train: tickcast / PyTorch = %.2fx (training tick-steps/s, one thread each)\n",
           ours / theirs);
  else if (torch)
    printf("bench_train: PyTorch reference not available (needs /usr/bin/python3 with torch)\n");
  free(x), free(tgt), free(w), free(grad), free(state);
  nn_adam_free(&adam);
  nn_train_free(&tr);
  nn_model_free(&m);
  return 0;
}
