/* fuzz_model.c: libFuzzer target for the safetensors model loader (nn_model_load_mem). Every
 * input must either load into a model whose fields are consistent and that can take one step of
 * its cell, or fail with a negative code and a one-line error naming the input; never read outside
 * the buffer (ASan checks that; replay_main.c gives it an exact-size heap copy). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/lstm.h"
#include "nn/safetensors/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nn_model m;
  char err[512];
  int rc = nn_model_load_mem(&m, data, size, "fuzz", err, sizeof err);
  if (rc != 0) {
    if (rc > 0 || strncmp(err, "model fuzz: ", 12) != 0 || strchr(err, '\n'))
      abort();
    if (m.params || m.nmeta)
      abort(); /* left freed */
    return 0;
  }
  if (m.L < 1 || m.L > NN_MAX_LAYERS || m.H < 1 || m.H > NN_MAX_HIDDEN || strlen(m.id) != 16 ||
      !nn_cell_valid(m.cell) || m.G != nn_cell_gates(m.cell) * m.H ||
      (m.peephole && m.cell != NN_CELL_LSTM))
    abort();
  if (!nn_model_get_meta(&m, "tickcast.format") || m.feat_std[0] <= 0 || m.tgt_std[0] <= 0)
    abort();
  /* Every tensor pointer lies inside params: touch the last float of each. */
  volatile float sink = 0;
  for (int k = 0; k < m.L; k++) {
    int D = k ? m.H : NN_F;
    sink += m.W_ih[k][(size_t)m.G * D - 1] + m.W_hh[k][(size_t)m.G * m.H - 1];
    sink += m.b_ih[k][m.G - 1] + m.b_hh[k][m.G - 1];
    if (m.peephole)
      sink += m.w_ci[k][m.H - 1] + m.w_cf[k][m.H - 1] + m.w_co[k][m.H - 1];
    else if (m.w_ci[k])
      abort();
  }
  sink += m.head_w[m.H - 1] + m.head_b[0] + m.feat_mean[NN_F - 1] + m.tgt_mean[0];
  /* One step from zero state, two instruments. */
  nn_work w;
  if (nn_work_init(&w, &m, 2) == 0) {
    size_t S = nn_state_floats(&m);
    float *st = calloc(2 * S, sizeof *st), x[2 * NN_F] = {1, -1, 0.5f, 2, 0, 0, 0, 0}, y[2];
    float *sp[2] = {st, st + S};
    nn_step(&m, &w, 2, x, sp, y); /* huge finite weights may give inf/NaN: not checked */
    free(st);
    nn_work_free(&w);
  }
  (void)sink;
  nn_model_free(&m);
  return 0;
}
