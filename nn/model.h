/* model.h: the contract network's parameters (CONTRACT §3): one allocation holding every
 * tensor, their names and shapes, and the model's metadata. Pure: no files. Not for reading or
 * writing the safetensors file (nn/safetensors/safetensors.h) or running the network (lstm.h). */
#ifndef NN_MODEL_H
#define NN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define NN_F 4           /* input features: ret, log_qty, log_dt, spread */
#define NN_MAX_LAYERS 16 /* more layers than this is refused as a bad file */
#define NN_MAX_HIDDEN 4096
#define NN_TENSORS_MAX (NN_MAX_LAYERS * 7 + 6) /* tensors of the largest model */

/* The two metadata entries every model carries (CONTRACT §4): nn_model_init sets them, the
 * loader requires them. */
#define NN_META_FORMAT_KEY "tickcast.format"
#define NN_META_FORMAT "1"
#define NN_META_FEATURES_KEY "tickcast.features"
#define NN_META_FEATURES "ret,log_qty,log_dt,spread"

/* One model. All float parameters live in one allocation, `params`, so that a trainer can keep
 * gradients and optimizer moments in parallel arrays: the gradient of m->W_hh[k] is
 * grad + (m->W_hh[k] - m->params). */
typedef struct nn_model {
  int L;                      /* layers */
  int H;                      /* hidden size */
  int peephole;               /* 1 when w_ci/w_cf/w_co are present */
  float *params;              /* the one allocation holding every tensor below */
  size_t nparams;             /* floats in params */
  float *W_ih[NN_MAX_LAYERS]; /* (4H, D_k), D_0 = NN_F, D_k = H for k > 0 */
  float *W_hh[NN_MAX_LAYERS]; /* (4H, H) */
  float *b_ih[NN_MAX_LAYERS]; /* (4H) */
  float *b_hh[NN_MAX_LAYERS]; /* (4H) */
  float *w_ci[NN_MAX_LAYERS]; /* (H) or NULL without peepholes */
  float *w_cf[NN_MAX_LAYERS]; /* (H) or NULL */
  float *w_co[NN_MAX_LAYERS]; /* (H) or NULL */
  float *head_w;              /* (1, H) */
  float *head_b;              /* (1) */
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

/* Sets up a model of L layers and hidden size H with all weights zero, feature/target mean 0 and
 * std 1, and the two required metadata keys. Returns 0 or TC_ENOMEM/TC_EINVAL. */
int nn_model_init(nn_model *m, int L, int H, int peephole);

/* Frees what nn_model_init or a loader (nn_model_load) allocated; accepts NULL and half-built
 * models. */
void nn_model_free(nn_model *m);

/* Sets (adds or replaces) one metadata entry. */
int nn_model_set_meta(nn_model *m, const char *key, const char *val);

/* Returns the value of a metadata entry or NULL. */
const char *nn_model_get_meta(const nn_model *m, const char *key);

/* 1 when a and b have the same L, H and peephole (so per-instrument state carries over). */
int nn_model_same_shape(const nn_model *a, const nn_model *b);

/* One tensor of a model, under its name in the model file (PyTorch's state_dict names). */
typedef struct nn_tensor {
  char name[32];    /* e.g. "lstm.weight_ih_l0" */
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

/* Floats of per-instrument state: h and c for every layer, laid out (L, 2, H). */
static inline size_t nn_state_floats(const nn_model *m) {
  return (size_t)2 * m->L * m->H;
}

#endif
