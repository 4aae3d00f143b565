/* error.c: the one-line error text of the safetensors reader and writer ("model NAME: ..."),
 * kept printable whatever names the file holds. */
#include "nn/safetensors/safetensors_int.h"

#include <stdarg.h>
#include <stdio.h>

/* Writes "model NAME: <message>" into err (control characters shown as ?) and returns code. */
int nn_st_fail(char *err, size_t errlen, const char *name, int code, const char *fmt, ...) {
  if (err && errlen) {
    int n = snprintf(err, errlen, "model %s: ", name);
    if (n >= 0 && (size_t)n < errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
    /* Names come from the file: keep the message one printable line whatever they hold. */
    for (char *p = err; *p; p++)
      if ((unsigned char)*p < 0x20 || *p == 0x7f)
        *p = '?';
  }
  return code;
}
