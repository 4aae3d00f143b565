/* model.c: the contract network's parameters (CONTRACT §3, and its GRU and RNN cells): set-up in
 * one allocation, the list of tensors with their names and shapes, metadata, and freeing. Pure:
 * no files, no JSON. Not for the safetensors file (nn/safetensors/) or running the network
 * (lstm.c, cells.c). */
#include "nn/model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/base/tc_err.h"

/* Adds one tensor to the list t[0..*n): its shape, where its shape comes from, its name, and in
 * slot[*n] the model field that points at its data. */
static void tensor_add(nn_tensor *t, float ***slot, int *n, float **field, int ndim, long long d0,
                       long long d1, const char *why, const char *fmt, ...) {
  nn_tensor *e = &t[*n];
  slot[(*n)++] = field;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->name, sizeof e->name, fmt, ap);
  va_end(ap);
  e->data = NULL;
  e->ndim = ndim;
  e->dim[0] = d0;
  e->dim[1] = d1;
  snprintf(e->why, sizeof e->why, "%s", why);
}

/* Lists the tensors of a model of the given cell, L layers and hidden size H in the order they are
 * laid out in m->params, with the field of m that points at each (slot). Names are PyTorch's
 * state_dict names under the cell's module name (lstm., gru., rnn.). Returns the count (at most
 * NN_TENSORS_MAX). */
static int model_layout(nn_model *m, int cell, int L, int H, int peephole, int gauss, nn_tensor *t,
                        float ***slot) {
  int n = 0;
  const int g = nn_cell_gates(cell);
  const char *pre = nn_cell_prefix(cell);
  char w[64], gh[8];
  if (g == 1)
    snprintf(gh, sizeof gh, "H");
  else
    snprintf(gh, sizeof gh, "%dH", g);
  for (int k = 0; k < L; k++) {
    int D = k == 0 ? NN_F : H;
    snprintf(w, sizeof w, "%s x %s with H=%d from %s.weight_hh_l0", gh, k == 0 ? "4" : "H", H, pre);
    tensor_add(t, slot, &n, &m->W_ih[k], 2, (long long)g * H, D, w, "%s.weight_ih_l%d", pre, k);
    snprintf(w, sizeof w, "%s x H with H=%d from %s.weight_hh_l0", gh, H, pre);
    tensor_add(t, slot, &n, &m->W_hh[k], 2, (long long)g * H, H, w, "%s.weight_hh_l%d", pre, k);
    snprintf(w, sizeof w, "%s with H=%d from %s.weight_hh_l0", gh, H, pre);
    tensor_add(t, slot, &n, &m->b_ih[k], 1, (long long)g * H, 0, w, "%s.bias_ih_l%d", pre, k);
    tensor_add(t, slot, &n, &m->b_hh[k], 1, (long long)g * H, 0, w, "%s.bias_hh_l%d", pre, k);
    if (peephole) {
      snprintf(w, sizeof w, "H with H=%d from lstm.weight_hh_l0", H);
      tensor_add(t, slot, &n, &m->w_ci[k], 1, H, 0, w, "lstm.weight_ci_l%d", k);
      tensor_add(t, slot, &n, &m->w_cf[k], 1, H, 0, w, "lstm.weight_cf_l%d", k);
      tensor_add(t, slot, &n, &m->w_co[k], 1, H, 0, w, "lstm.weight_co_l%d", k);
    }
  }
  snprintf(w, sizeof w, "1 x H with H=%d from %s.weight_hh_l0", H, pre);
  tensor_add(t, slot, &n, &m->head_w, 2, 1, H, w, "head.weight");
  tensor_add(t, slot, &n, &m->head_b, 1, 1, 0, "one output", "head.bias");
  if (gauss) {
    tensor_add(t, slot, &n, &m->scale_w, 2, 1, H, w, "scale_head.weight");
    tensor_add(t, slot, &n, &m->scale_b, 1, 1, 0, "one output", "scale_head.bias");
  }
  tensor_add(t, slot, &n, &m->feat_mean, 1, NN_F, 0, "one per feature", "features.mean");
  tensor_add(t, slot, &n, &m->feat_std, 1, NN_F, 0, "one per feature", "features.std");
  tensor_add(t, slot, &n, &m->tgt_mean, 1, 1, 0, "one target", "target.mean");
  tensor_add(t, slot, &n, &m->tgt_std, 1, 1, 0, "one target", "target.std");
  return n;
}

/* Sets up an LSTM (see model.h). */
int nn_model_init(nn_model *m, int L, int H, int peephole) {
  return nn_model_init_cell(m, NN_CELL_LSTM, L, H, peephole);
}

/* Sets up a model of the given cell, L layers and hidden size H with all weights zero,
 * feature/target mean 0 and std 1, the two required metadata keys and, for an RNN, its
 * nonlinearity. Returns 0, TC_EINVAL for a cell, L or H out of range or peepholes on a cell other
 * than the LSTM, or TC_ENOMEM. On failure m is left freed. */
int nn_model_init_cell(nn_model *m, int cell, int L, int H, int peephole) {
  return nn_model_init_head(m, cell, L, H, peephole, 0);
}

/* The same with the scale head when gauss != 0, laid out after head.bias. */
int nn_model_init_head(nn_model *m, int cell, int L, int H, int peephole, int gauss) {
  memset(m, 0, sizeof *m);
  if (!nn_cell_valid(cell) || L < 1 || L > NN_MAX_LAYERS || H < 1 || H > NN_MAX_HIDDEN ||
      (peephole && cell != NN_CELL_LSTM))
    return TC_EINVAL;
  nn_tensor t[NN_TENSORS_MAX];
  float **slot[NN_TENSORS_MAX];
  int n = model_layout(m, cell, L, H, peephole != 0, gauss != 0, t, slot);
  size_t total = 0;
  for (int i = 0; i < n; i++)
    total += nn_tensor_numel(&t[i]);
  m->params = calloc(total, sizeof(float));
  if (!m->params)
    return TC_ENOMEM;
  m->cell = cell;
  m->L = L;
  m->H = H;
  m->G = nn_cell_gates(cell) * H;
  m->peephole = peephole != 0;
  m->gauss = gauss != 0;
  m->nparams = total;
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    *slot[i] = m->params + off;
    off += nn_tensor_numel(&t[i]);
  }
  for (int i = 0; i < NN_F; i++)
    m->feat_std[i] = 1.0f;
  m->tgt_std[0] = 1.0f;
  const char *nl = cell == NN_CELL_RNN_RELU ? "relu" : "tanh";
  if (nn_model_set_meta(m, NN_META_FORMAT_KEY, NN_META_FORMAT) != 0 ||
      nn_model_set_meta(m, NN_META_FEATURES_KEY, NN_META_FEATURES) != 0 ||
      (nn_cell_gates(cell) == 1 && nn_model_set_meta(m, NN_META_NONLINEARITY_KEY, nl) != 0) ||
      (gauss && nn_model_set_meta(m, NN_META_HEAD_KEY, "gauss") != 0)) {
    nn_model_free(m);
    return TC_ENOMEM;
  }
  return 0;
}

/* Frees what nn_model_init or a loader allocated and zeroes m; accepts NULL and half-built
 * models (any pointer field that is NULL is skipped). */
void nn_model_free(nn_model *m) {
  if (!m)
    return;
  free(m->params);
  for (int i = 0; i < m->nmeta; i++) {
    if (m->meta_key)
      free(m->meta_key[i]);
    if (m->meta_val)
      free(m->meta_val[i]);
  }
  free(m->meta_key);
  free(m->meta_val);
  memset(m, 0, sizeof *m);
}

/* Sets (adds or replaces) one metadata entry; key and val are copied. Returns 0, TC_EINVAL for a
 * NULL argument or TC_ENOMEM. */
int nn_model_set_meta(nn_model *m, const char *key, const char *val) {
  if (!m || !key || !val)
    return TC_EINVAL;
  char *v = strdup(val);
  if (!v)
    return TC_ENOMEM;
  for (int i = 0; i < m->nmeta; i++) {
    if (strcmp(m->meta_key[i], key) == 0) {
      free(m->meta_val[i]);
      m->meta_val[i] = v;
      return 0;
    }
  }
  char *k = strdup(key);
  char **nk = realloc(m->meta_key, (size_t)(m->nmeta + 1) * sizeof *nk);
  if (nk)
    m->meta_key = nk;
  char **nv = nk ? realloc(m->meta_val, (size_t)(m->nmeta + 1) * sizeof *nv) : NULL;
  if (nv)
    m->meta_val = nv;
  if (!k || !nk || !nv) {
    free(k);
    free(v);
    return TC_ENOMEM;
  }
  m->meta_key[m->nmeta] = k;
  m->meta_val[m->nmeta] = v;
  m->nmeta++;
  return 0;
}

/* Returns the value of a metadata entry (owned by m) or NULL when absent. */
const char *nn_model_get_meta(const nn_model *m, const char *key) {
  if (!m || !key)
    return NULL;
  for (int i = 0; i < m->nmeta; i++)
    if (strcmp(m->meta_key[i], key) == 0)
      return m->meta_val[i];
  return NULL;
}

/* Removes a metadata entry, keeping the others in their order. */
int nn_model_del_meta(nn_model *m, const char *key) {
  if (!m || !key)
    return TC_EINVAL;
  for (int i = 0; i < m->nmeta; i++) {
    if (strcmp(m->meta_key[i], key) != 0)
      continue;
    free(m->meta_key[i]);
    free(m->meta_val[i]);
    memmove(m->meta_key + i, m->meta_key + i + 1, (size_t)(m->nmeta - i - 1) * sizeof *m->meta_key);
    memmove(m->meta_val + i, m->meta_val + i + 1, (size_t)(m->nmeta - i - 1) * sizeof *m->meta_val);
    m->nmeta--;
    return 0;
  }
  return TC_ENOENT;
}

/* 1 when a and b have the same cell, L, H and peephole, so per-instrument state carries over. */
int nn_model_same_shape(const nn_model *a, const nn_model *b) {
  return a && b && a->cell == b->cell && a->L == b->L && a->H == b->H && a->peephole == b->peephole;
}

/* Lists the tensors of m with their data (see model.h). */
int nn_model_tensors(const nn_model *m, nn_tensor *t) {
  float **slot[NN_TENSORS_MAX];
  /* model_layout only takes the addresses of m's pointer fields; nothing is written through them
   * here. */
  int n = model_layout((nn_model *)m, m->cell, m->L, m->H, m->peephole, m->gauss, t, slot);
  for (int i = 0; i < n; i++)
    t[i].data = *slot[i];
  return n;
}

/* The scale head over each instrument's top-layer h (see model.h). */
void nn_model_scale_out(const nn_model *m, int B, float *const *state, float *s) {
  const int H = m->H;
  const size_t top = (size_t)nn_cell_state_vectors(m->cell) * (m->L - 1) * H;
  for (int b = 0; b < B; b++) {
    const float *h = state[b] + top;
    float acc = 0.0f;
    for (int j = 0; j < H; j++)
      acc += h[j] * m->scale_w[j];
    s[b] = acc + m->scale_b[0];
  }
}
