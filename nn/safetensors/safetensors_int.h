/* safetensors_int.h: what the reader (load.c) and the writer (save.c) share; not part of the
 * public API (safetensors.h). */
#ifndef NN_SAFETENSORS_INT_H
#define NN_SAFETENSORS_INT_H

#include <stddef.h>

/* Writes "model NAME: <message>" into err (control characters shown as ?) and returns code. */
int nn_st_fail(char *err, size_t errlen, const char *name, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
