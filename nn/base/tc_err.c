/* tc_err.c: the text for each TC_E* code. */
#include "nn/base/tc_err.h"

const char *tc_strerror(int code) {
  switch (code) {
  case TC_OK: return "success";
  case TC_ENOMEM: return "out of memory";
  case TC_EINVAL: return "invalid argument";
  case TC_EIO: return "input/output error";
  case TC_EFORMAT: return "malformed input";
  case TC_ESHAPE: return "shape mismatch";
  case TC_ERANGE: return "value out of range";
  case TC_ENOENT: return "not found";
  case TC_EBUSY: return "resource busy";
  case TC_EKAFKA: return "kafka error";
  case TC_ESTORE: return "state database error";
  case TC_EMODEL: return "state belongs to another model";
  case TC_EAGAIN: return "try again";
  case TC_EUSAGE: return "bad usage";
  }
  return "unknown error";
}
