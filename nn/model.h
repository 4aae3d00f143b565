/* model.h: the contract network's parameters (CONTRACT §3) and its safetensors file (§4).
 * Loading treats the file as untrusted input; saving writes what PyTorch's
 * safetensors.torch.load_file reads. Not for running the network: see lstm.h. */
#ifndef NN_MODEL_H
#define NN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define NN_F 4           /* input features: ret, log_qty, log_dt, spread */
#define NN_MAX_LAYERS 16 /* more layers than this is refused as a bad file */
#define NN_MAX_HIDDEN 4096

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

/* Frees what nn_model_init or nn_model_load allocated; accepts NULL and half-built models. */
void nn_model_free(nn_model *m);

/* Loads a safetensors model file (CONTRACT §4). On failure returns a negative TC_E* code and
 * writes one line into err naming the file, the tensor or field, what was found and what was
 * expected; m is left freed. */
int nn_model_load(nn_model *m, const char *path, char *err, size_t errlen);

/* The same from memory; `name` is used in error messages. Never reads outside buf[0..len). */
int nn_model_load_mem(nn_model *m, const unsigned char *buf, size_t len, const char *name,
                      char *err, size_t errlen);

/* Writes m as a safetensors file (atomically: temp file then rename), with all metadata. */
int nn_model_save(const nn_model *m, const char *path, char *err, size_t errlen);

/* Sets (adds or replaces) one metadata entry. */
int nn_model_set_meta(nn_model *m, const char *key, const char *val);

/* Returns the value of a metadata entry or NULL. */
const char *nn_model_get_meta(const nn_model *m, const char *key);

/* 1 when a and b have the same L, H and peephole (so per-instrument state carries over). */
int nn_model_same_shape(const nn_model *a, const nn_model *b);

/* Floats of per-instrument state: h and c for every layer, laid out (L, 2, H). */
static inline size_t nn_state_floats(const nn_model *m) {
  return (size_t)2 * m->L * m->H;
}

#endif
