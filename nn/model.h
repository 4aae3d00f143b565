/* model.h: the contract network's parameters (CONTRACT §3, and its GRU and RNN cells): one
 * allocation holding every tensor, their names and shapes, and the model's metadata. Pure: no
 * files. Not for reading or writing the safetensors file (nn/safetensors/safetensors.h) or
 * running the network (lstm.h). */
#ifndef NN_MODEL_H
#define NN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "nn/base/cell.h"

#define NN_F 4           /* input features: ret, log_qty, log_dt, spread */
#define NN_MAX_LAYERS 16 /* more layers than this is refused as a bad file */
#define NN_MAX_HIDDEN 4096
#define NN_TENSORS_MAX (NN_MAX_LAYERS * 7 + 8) /* tensors of the largest model */

/* The two metadata entries every model carries (CONTRACT §4): nn_model_init sets them, the
 * loader requires them. */
#define NN_META_FORMAT_KEY "tickcast.format"
#define NN_META_FORMAT "1"
#define NN_META_FEATURES_KEY "tickcast.features"
#define NN_META_FEATURES "ret,log_qty,log_dt,spread"
/* An RNN's nonlinearity, "tanh" (also when absent) or "relu"; nn_model_init_cell sets it for
 * the RNN cells, the loader refuses it on other cells. */
#define NN_META_NONLINEARITY_KEY "tickcast.nonlinearity"
/* The output heads: "gauss" when the model has the scale head (scale_head.weight/.bias, the
 * log-variance of the next standardized return), set by nn_model_init_head; absent or "mean"
 * without it. The loader requires it to agree with the tensors. */
#define NN_META_HEAD_KEY "tickcast.head"
/* The scale head's calibrated interval (gauss models only, optional): the empirical quantiles of
 * |z|, z = (next return - pred_ret) / pred_std, on the validation part, as a JSON object
 * {"n":N,"absz":[[coverage,q],...]} (nn_ival in nn/safetensors/safetensors.h reads and writes
 * it). Absent: the normal quantile. */
#define NN_META_INTERVAL_KEY "tickcast.interval_absz"

/* One model. All float parameters live in one allocation, `params`, so that a trainer can keep
 * gradients and optimizer moments in parallel arrays: the gradient of m->W_hh[k] is
 * grad + (m->W_hh[k] - m->params). The cell sets the gate rows G of the weights: 4H in gate
 * order i, f, g, o (LSTM), 3H in order r, z, n (GRU) or H (RNN), PyTorch's layouts. */
typedef struct nn_model {
  int cell;                   /* NN_CELL_* (nn/base/cell.h) */
  int L;                      /* layers */
  int H;                      /* hidden size */
  int G;                      /* gate rows: nn_cell_gates(cell) * H */
  int peephole;               /* 1 when w_ci/w_cf/w_co are present (LSTM only) */
  float *params;              /* the one allocation holding every tensor below */
  size_t nparams;             /* floats in params */
  float *W_ih[NN_MAX_LAYERS]; /* (G, D_k), D_0 = NN_F, D_k = H for k > 0 */
  float *W_hh[NN_MAX_LAYERS]; /* (G, H) */
  float *b_ih[NN_MAX_LAYERS]; /* (G) */
  float *b_hh[NN_MAX_LAYERS]; /* (G) */
  float *w_ci[NN_MAX_LAYERS]; /* (H) or NULL without peepholes */
  float *w_cf[NN_MAX_LAYERS]; /* (H) or NULL */
  float *w_co[NN_MAX_LAYERS]; /* (H) or NULL */
  float *head_w;              /* (1, H) */
  float *head_b;              /* (1) */
  int gauss;                  /* 1 when the scale head below is present */
  float *scale_w;             /* (1, H) or NULL: log-variance head, scale_head.weight */
  float *scale_b;             /* (1) or NULL: scale_head.bias */
  float *feat_mean;           /* (NN_F) */
  float *feat_std;            /* (NN_F) */
  float *tgt_mean;            /* (1) */
  float *tgt_std;             /* (1) */
  int nmeta;                  /* __metadata__ entries, the two required ones included */
  char **meta_key;            /* (nmeta) malloc'd strings */
  char **meta_val;            /* (nmeta) malloc'd strings */
  unsigned char sha256[32];   /* of the file bytes when loaded; zero for a fresh model */
  char id[17];                /* first 16 hex digits of sha256, "" for a fresh model */
} nn_model;

/* Sets up an LSTM of L layers and hidden size H with all weights zero, feature/target mean 0
 * and std 1, and the two required metadata keys. Returns 0 or TC_ENOMEM/TC_EINVAL. */
int nn_model_init(nn_model *m, int L, int H, int peephole);

/* The same for any cell (NN_CELL_*); an RNN also gets NN_META_NONLINEARITY_KEY. Peepholes exist
 * only for the LSTM: peephole != 0 with another cell is TC_EINVAL. */
int nn_model_init_cell(nn_model *m, int cell, int L, int H, int peephole);

/* The same with the scale head when gauss != 0 (tensors scale_head.weight (1, H) and
 * scale_head.bias (1), zero, and metadata NN_META_HEAD_KEY = "gauss"). */
int nn_model_init_head(nn_model *m, int cell, int L, int H, int peephole, int gauss);

/* Log-variance of the next standardized return for B instruments after a step (nn_step): s[b] =
 * scale_head.weight . h[L-1] + scale_head.bias, h[L-1] read from state[b] (the layout of
 * nn_state_floats). The variance of the next log return is exp(s) * target.std^2. Only for a
 * model with the scale head. */
void nn_model_scale_out(const nn_model *m, int B, float *const *state, float *s);

/* Frees what nn_model_init or a loader (nn_model_load) allocated; accepts NULL and half-built
 * models. */
void nn_model_free(nn_model *m);

/* Sets (adds or replaces) one metadata entry. */
int nn_model_set_meta(nn_model *m, const char *key, const char *val);

/* Returns the value of a metadata entry or NULL. */
const char *nn_model_get_meta(const nn_model *m, const char *key);

/* Removes a metadata entry; 0 when it was there, TC_ENOENT when not. */
int nn_model_del_meta(nn_model *m, const char *key);

/* 1 when a and b have the same cell, L, H and peephole (so per-instrument state carries over). */
int nn_model_same_shape(const nn_model *a, const nn_model *b);

/* One tensor of a model, under its name in the model file (PyTorch's state_dict names). */
typedef struct nn_tensor {
  char name[32];    /* e.g. "lstm.weight_ih_l0", "gru.bias_hh_l1" */
  float *data;      /* (numel) its floats inside the model's params */
  int ndim;         /* 1 or 2 */
  long long dim[2]; /* shape */
  char why[64];     /* where the shape comes from, for messages: "4H x H with H=32 from
                       lstm.weight_hh_l0" */
} nn_tensor;

/* Lists the tensors of m (set up by nn_model_init) into t (room for NN_TENSORS_MAX) in the order
 * they lie in m->params. Returns the count. */
int nn_model_tensors(const nn_model *m, nn_tensor *t);

/* Floats in a tensor. */
static inline size_t nn_tensor_numel(const nn_tensor *t) {
  return (size_t)(t->ndim == 1 ? t->dim[0] : t->dim[0] * t->dim[1]);
}

/* Floats of per-instrument state: h and c for every layer of an LSTM, laid out (L, 2, H) = h0,
 * c0, h1, c1, ...; h alone for the GRU and RNN, (L, H). Everything that holds states sizes them
 * from this. */
static inline size_t nn_state_floats(const nn_model *m) {
  return (size_t)nn_cell_state_vectors(m->cell) * m->L * m->H;
}

#endif
