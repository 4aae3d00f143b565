/* ival.c: the scale head's calibrated interval table in a model's metadata (NN_META_INTERVAL_KEY):
 * its one reader, which the loader uses to refuse a bad table, and its one writer. Not for
 * computing the table (daemon/pipeline/ivcal.c) nor for using it. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn/base/tc_err.h"
#include "nn/safetensors/safetensors.h"

static int ival_fail(char *err, size_t errlen, const char *what) {
  if (err && errlen)
    snprintf(err, errlen, "__metadata__ \"" NN_META_INTERVAL_KEY "\" %s", what);
  return TC_EFORMAT;
}

/* Checks one grid point i (c, q) against the one before it. NULL when it is good, else what is
 * wrong, in buf. */
static const char *ival_point_check(const nn_ival *t, int i, char *buf, size_t len) {
  double c = t->c[i], q = t->q[i];
  if (!(c > 0 && c < 1))
    snprintf(buf, len, "point %d has coverage %g, expected one in (0, 1)", i, c);
  else if (i > 0 && !(c > t->c[i - 1]))
    snprintf(buf, len, "point %d has coverage %g after %g, expected increasing coverages", i, c,
             t->c[i - 1]);
  else if (!(q >= 0 && isfinite(q)))
    snprintf(buf, len, "point %d has quantile %g, expected a finite one >= 0", i, q);
  else if (i > 0 && !(q >= t->q[i - 1]))
    snprintf(buf, len, "point %d has quantile %g after %g, expected non-decreasing quantiles", i, q,
             t->q[i - 1]);
  else
    return NULL;
  return buf;
}

int nn_ival_get(const nn_model *m, nn_ival *t, char *err, size_t errlen) {
  t->k = 0;
  t->n = 0;
  const char *txt = nn_model_get_meta(m, NN_META_INTERVAL_KEY);
  if (!txt)
    return 0;
  char why[160];
  json_error_t je;
  json_t *root = json_loads(txt, 0, &je), *n = json_object_get(root, "n"),
         *a = json_object_get(root, "absz");
  int rc = 0;
  if (!json_is_object(root)) {
    snprintf(why, sizeof why,
             "is not a JSON object%s%.80s, expected {\"n\":N,\"absz\":[[c,q],...]}",
             root ? "" : ": ", root ? "" : je.text);
    rc = ival_fail(err, errlen, why);
  } else if (!json_is_integer(n) || json_integer_value(n) < 1) {
    rc = ival_fail(err, errlen, "has no integer \"n\" >= 1");
  } else if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > NN_IVAL_MAX) {
    snprintf(why, sizeof why, "has no \"absz\" array of 1 to %d [coverage, quantile] points",
             NN_IVAL_MAX);
    rc = ival_fail(err, errlen, why);
  }
  for (size_t i = 0; rc == 0 && i < json_array_size(a); i++) {
    json_t *p = json_array_get(a, i);
    if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_number(json_array_get(p, 0)) ||
        !json_is_number(json_array_get(p, 1))) {
      snprintf(why, sizeof why, "point %zu is not a [coverage, quantile] pair of numbers", i);
      rc = ival_fail(err, errlen, why);
      break;
    }
    t->c[i] = json_number_value(json_array_get(p, 0));
    t->q[i] = json_number_value(json_array_get(p, 1));
    const char *bad = ival_point_check(t, (int)i, why, sizeof why);
    if (bad)
      rc = ival_fail(err, errlen, bad);
  }
  if (rc == 0) {
    t->k = (int)json_array_size(a);
    t->n = (uint64_t)json_integer_value(n);
  } else {
    t->k = 0;
    t->n = 0;
  }
  json_decref(root);
  return rc;
}

int nn_ival_set(nn_model *m, const nn_ival *t) {
  char why[160];
  if (t->k < 1 || t->k > NN_IVAL_MAX || t->n < 1)
    return TC_EINVAL;
  for (int i = 0; i < t->k; i++)
    if (ival_point_check(t, i, why, sizeof why))
      return TC_EINVAL;
  json_t *root = json_object(), *a = json_array();
  int rc = root && a ? 0 : TC_ENOMEM;
  if (rc == 0)
    rc = json_object_set_new(root, "n", json_integer((json_int_t)t->n)) ? TC_ENOMEM : 0;
  for (int i = 0; rc == 0 && i < t->k; i++)
    rc = json_array_append_new(a, json_pack("[f,f]", t->c[i], t->q[i])) ? TC_ENOMEM : 0;
  if (rc == 0)
    rc = json_object_set(root, "absz", a) ? TC_ENOMEM : 0;
  /* 7 significant digits: the quantiles' sampling error is far larger, and coverages such as
   * 0.9 print as written. Readers use the value as written (so tickcast and a script agree). */
  char *txt = rc == 0
                  ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7))
                  : NULL;
  if (rc == 0)
    rc = txt && nn_model_set_meta(m, NN_META_INTERVAL_KEY, txt) == 0 ? 0 : TC_ENOMEM;
  free(txt);
  json_decref(a);
  json_decref(root);
  return rc;
}
