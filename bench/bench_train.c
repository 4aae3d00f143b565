/* bench_train.c: training throughput of nn/train.c in tick-steps per second (forward + backward
 * + clipping + Adam, one thread), for H=64, B=64, T=32, L=1 of the LSTM by default, next to
 * PyTorch doing the same with the same module on one thread (bench/torch_train.py, run through
 * Debian's /usr/bin/python3 when it has torch), with the ratio.
 * Usage: bench_train [H B T L SECONDS] [--cell lstm|gru|rnn_tanh|rnn_relu] [--no-torch]. */
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
  int H = 64, B = 64, T = 32, L = 1, cell = NN_CELL_LSTM, torch = 1, npos = 0;
  double seconds = 3.0;
  const char *pos[5];
  for (int a = 1; a < argc; a++) {
    if (!strcmp(argv[a], "--no-torch"))
      torch = 0;
    else if (!strcmp(argv[a], "--cell") && a + 1 < argc && nn_cell_parse(argv[a + 1]) >= 0)
      cell = nn_cell_parse(argv[++a]);
    else if (npos < 5)
      pos[npos++] = argv[a];
  }
  if (npos >= 4)
    H = atoi(pos[0]), B = atoi(pos[1]), T = atoi(pos[2]), L = atoi(pos[3]);
  if (npos >= 5)
    seconds = atof(pos[4]);
  openblas_set_num_threads(1);
  nn_model m;
  nn_train tr;
  nn_adam adam;
  nn_rng r;
  nn_rng_seed(&r, 1);
  if (nn_model_init_cell(&m, cell, L, H, 0) != 0 || nn_train_init(&tr, &m, B, T) != 0 ||
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
  printf("bench_train cell=%s H=%d B=%d T=%d L=%d: %.0f tick-steps/s (%ld steps in %.2f s, loss "
         "%.4f)\n",
         nn_cell_name(cell), H, B, T, L, ours, n, dt, loss);
  fflush(stdout);
  char cmd[512], line[512];
  snprintf(cmd, sizeof cmd,
           "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch_train.py %d %d "
           "%d %d %g %s 2>&1",
           H, B, T, L, seconds, nn_cell_name(cell));
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
    printf("bench_train cell=%s: tickcast / PyTorch = %.2fx (training tick-steps/s, one thread "
           "each)\n",
           nn_cell_name(cell), ours / theirs);
  else if (torch)
    printf("bench_train: PyTorch reference not available (needs /usr/bin/python3 with torch)\n");
  free(x), free(tgt), free(w), free(grad), free(state);
  nn_adam_free(&adam);
  nn_train_free(&tr);
  nn_model_free(&m);
  return 0;
}
