/* safetensors.h: the model file (CONTRACT §4): a safetensors file holding the tensors of
 * nn_model_tensors and the model's metadata. Loading treats the file as untrusted input and
 * names the model by the SHA-256 of its bytes; saving writes what PyTorch's
 * safetensors.torch.load_file reads. The only part of nn/ that uses jansson and OpenSSL. */
#ifndef NN_SAFETENSORS_H
#define NN_SAFETENSORS_H

#include <stddef.h>

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

#endif
