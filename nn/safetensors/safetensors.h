/* safetensors.h: the model file (CONTRACT §4): a safetensors file holding the tensors of
 * nn_model_tensors and the model's metadata. Loading treats the file as untrusted input and
 * names the model by the SHA-256 of its bytes; saving writes what PyTorch's
 * safetensors.torch.load_file reads. The only part of nn/ that uses jansson and OpenSSL. */
#ifndef NN_SAFETENSORS_H
#define NN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "nn/model.h"

/* Loads a safetensors model file (CONTRACT §4). On failure returns a negative TC_E* code and
 * writes one line into err naming the file, the tensor or field, what was found and what was
 * expected; m is left freed. */
int nn_model_load(nn_model *m, const char *path, char *err, size_t errlen);

/* The same from memory; `name` is used in error messages. Never reads outside buf[0..len). */
int nn_model_load_mem(nn_model *m, const unsigned char *buf, size_t len, const char *name,
                      char *err, size_t errlen);

/* Writes m as a safetensors file (atomically: temp file then rename), with all metadata. */
int nn_model_save(const nn_model *m, const char *path, char *err, size_t errlen);

/* The calibrated interval table of a gauss model (metadata NN_META_INTERVAL_KEY, CONTRACT "The
 * scale head"): q[i] is the empirical quantile at coverage c[i] of |z| over n standardized
 * validation residuals. c strictly increasing in (0, 1), q finite, >= 0 and non-decreasing. */
#define NN_IVAL_MAX 128
typedef struct nn_ival {
  int k;                 /* grid points; 0: no table (the normal quantile applies) */
  uint64_t n;            /* residuals the quantiles were computed from */
  double c[NN_IVAL_MAX]; /* (k) coverages */
  double q[NN_IVAL_MAX]; /* (k) quantiles of |z| */
} nn_ival;

/* Reads m's table into t: 0 with t->k = 0 when m has no NN_META_INTERVAL_KEY, 0 with the table,
 * or TC_EFORMAT with one line in err naming the entry, what was found and what was expected. The
 * loader refuses a file whose table does not read (so a loaded model's always does). */
int nn_ival_get(const nn_model *m, nn_ival *t, char *err, size_t errlen);

/* Writes t (1 <= t->k <= NN_IVAL_MAX, as nn_ival_get would accept it) as m's
 * NN_META_INTERVAL_KEY. 0, TC_EINVAL for a table nn_ival_get would refuse, or TC_ENOMEM. */
int nn_ival_set(nn_model *m, const nn_ival *t);

#endif
