/* model.c: the contract network's parameters and its safetensors file (CONTRACT §4): set-up,
 * metadata, a strict loader that treats every byte of the file as untrusted, and a writer whose
 * output PyTorch's safetensors.torch.load_file reads. Not for running the network (lstm.c).
 *
 * The loader checks everything CONTRACT §4 lists and never reads outside the buffer. It is
 * lenient in two harmless ways: unused bytes between or after tensors are allowed (the Rust
 * safetensors crate insists on contiguous data), and fields other than dtype, shape and
 * data_offsets in a tensor entry are ignored (as that crate does). */
#include "nn/model.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/base/tc_err.h"

#define HEADER_MAX (100u * 1024u * 1024u) /* a sane cap on the JSON header, as safetensors has */
#define SPEC_MAX (NN_MAX_LAYERS * 7 + 6)  /* tensors of the largest model */
#define META_FORMAT "1"
#define META_FEATURES "ret,log_qty,log_dt,spread"

/* One tensor the layer structure requires: its name, where its pointer lives in the model, its
 * shape, and a few words saying where that shape comes from (for error messages). */
typedef struct spec {
  char name[32];    /* e.g. "lstm.weight_ih_l0" */
  float **slot;     /* the model field that points at its data */
  int ndim;         /* 1 or 2 */
  long long dim[2]; /* expected shape */
  char why[64];     /* e.g. "4H x H with H=32 from lstm.weight_hh_l0" */
} spec;

static void spec_add(spec *s, int *n, float **slot, int ndim, long long d0, long long d1,
                     const char *why, const char *fmt, ...) {
  spec *t = &s[(*n)++];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->name, sizeof t->name, fmt, ap);
  va_end(ap);
  t->slot = slot;
  t->ndim = ndim;
  t->dim[0] = d0;
  t->dim[1] = d1;
  snprintf(t->why, sizeof t->why, "%s", why);
}

/* Lists the tensors of a model of L layers and hidden size H in the order they are laid out in
 * m->params. Returns the count (at most SPEC_MAX). */
static int model_specs(nn_model *m, int L, int H, int peephole, spec *s) {
  int n = 0;
  char w[64];
  for (int k = 0; k < L; k++) {
    int D = k == 0 ? NN_F : H;
    if (k == 0)
      snprintf(w, sizeof w, "4H x 4 with H=%d from lstm.weight_hh_l0", H);
    else
      snprintf(w, sizeof w, "4H x H with H=%d from lstm.weight_hh_l0", H);
    spec_add(s, &n, &m->W_ih[k], 2, 4LL * H, D, w, "lstm.weight_ih_l%d", k);
    snprintf(w, sizeof w, "4H x H with H=%d from lstm.weight_hh_l0", H);
    spec_add(s, &n, &m->W_hh[k], 2, 4LL * H, H, w, "lstm.weight_hh_l%d", k);
    snprintf(w, sizeof w, "4H with H=%d from lstm.weight_hh_l0", H);
    spec_add(s, &n, &m->b_ih[k], 1, 4LL * H, 0, w, "lstm.bias_ih_l%d", k);
    spec_add(s, &n, &m->b_hh[k], 1, 4LL * H, 0, w, "lstm.bias_hh_l%d", k);
    if (peephole) {
      snprintf(w, sizeof w, "H with H=%d from lstm.weight_hh_l0", H);
      spec_add(s, &n, &m->w_ci[k], 1, H, 0, w, "lstm.weight_ci_l%d", k);
      spec_add(s, &n, &m->w_cf[k], 1, H, 0, w, "lstm.weight_cf_l%d", k);
      spec_add(s, &n, &m->w_co[k], 1, H, 0, w, "lstm.weight_co_l%d", k);
    }
  }
  snprintf(w, sizeof w, "1 x H with H=%d from lstm.weight_hh_l0", H);
  spec_add(s, &n, &m->head_w, 2, 1, H, w, "head.weight");
  spec_add(s, &n, &m->head_b, 1, 1, 0, "one output", "head.bias");
  spec_add(s, &n, &m->feat_mean, 1, NN_F, 0, "one per feature", "features.mean");
  spec_add(s, &n, &m->feat_std, 1, NN_F, 0, "one per feature", "features.std");
  spec_add(s, &n, &m->tgt_mean, 1, 1, 0, "one target", "target.mean");
  spec_add(s, &n, &m->tgt_std, 1, 1, 0, "one target", "target.std");
  return n;
}

static long long spec_numel(const spec *t) {
  return t->ndim == 1 ? t->dim[0] : t->dim[0] * t->dim[1];
}

/* Sets up a model of L layers and hidden size H with all weights zero, feature/target mean 0 and
 * std 1, and the two required metadata keys. Returns 0, TC_EINVAL for L or H out of range, or
 * TC_ENOMEM. On failure m is left freed. */
int nn_model_init(nn_model *m, int L, int H, int peephole) {
  memset(m, 0, sizeof *m);
  if (L < 1 || L > NN_MAX_LAYERS || H < 1 || H > NN_MAX_HIDDEN)
    return TC_EINVAL;
  spec s[SPEC_MAX];
  int n = model_specs(m, L, H, peephole != 0, s);
  size_t total = 0;
  for (int i = 0; i < n; i++)
    total += (size_t)spec_numel(&s[i]);
  m->params = calloc(total, sizeof(float));
  if (!m->params)
    return TC_ENOMEM;
  m->L = L;
  m->H = H;
  m->peephole = peephole != 0;
  m->nparams = total;
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    *s[i].slot = m->params + off;
    off += (size_t)spec_numel(&s[i]);
  }
  for (int i = 0; i < NN_F; i++)
    m->feat_std[i] = 1.0f;
  m->tgt_std[0] = 1.0f;
  if (nn_model_set_meta(m, "tickcast.format", META_FORMAT) != 0 ||
      nn_model_set_meta(m, "tickcast.features", META_FEATURES) != 0) {
    nn_model_free(m);
    return TC_ENOMEM;
  }
  return 0;
}

/* Frees what nn_model_init or nn_model_load allocated and zeroes m; accepts NULL and half-built
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

/* 1 when a and b have the same L, H and peephole, so per-instrument state carries over. */
int nn_model_same_shape(const nn_model *a, const nn_model *b) {
  return a && b && a->L == b->L && a->H == b->H && a->peephole == b->peephole;
}

/* ---- loading ---------------------------------------------------------------------------- */

/* One tensor entry of the header after its JSON types, dtype and offsets were checked. */
typedef struct entry {
  const char *name; /* key in the header (owned by the JSON tree) */
  int ndim;
  long long dim[8];
  size_t begin, end; /* byte offsets into the data section */
  int used;          /* matched by a spec */
} entry;

/* Writes "model NAME: <message>" into err (control characters shown as ?) and returns code. */
static int fail(char *err, size_t errlen, const char *name, int code, const char *fmt, ...) {
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

/* Formats a shape like "[128,32]" into buf. */
static const char *shape_str(char *buf, size_t n, int ndim, const long long *dim) {
  size_t o = 0;
  o += (size_t)snprintf(buf + o, n - o, "[");
  for (int i = 0; i < ndim && o < n; i++)
    o += (size_t)snprintf(buf + o, n - o, i ? ",%lld" : "%lld", dim[i]);
  if (o < n)
    snprintf(buf + o, n - o, "]");
  return buf;
}

/* Names a JSON value's type for messages. */
static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a real number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  case JSON_NULL: return "null";
  }
  return "unknown";
}

/* Checks one tensor entry's JSON types, dtype, shape values and data offsets (inside the data
 * section of `datalen` bytes, length 4 * prod(shape)). Fills e. */
static int entry_parse(const char *file, const char *key, json_t *v, size_t datalen, entry *e,
                       char *err, size_t errlen) {
  e->name = key;
  e->used = 0;
  if (!json_is_object(v))
    return fail(err, errlen, file, TC_EFORMAT,
                "tensor %s is %s in the header, expected an object "
                "with dtype, shape and data_offsets",
                key, json_kind(v));
  json_t *dt = json_object_get(v, "dtype");
  json_t *sh = json_object_get(v, "shape");
  json_t *of = json_object_get(v, "data_offsets");
  if (!dt || !json_is_string(dt))
    return fail(err, errlen, file, TC_EFORMAT, "tensor %s field dtype is %s, expected a string",
                key, dt ? json_kind(dt) : "missing");
  if (strcmp(json_string_value(dt), "F32") != 0)
    return fail(err, errlen, file, TC_EFORMAT, "tensor %s has dtype %.16s, expected F32", key,
                json_string_value(dt));
  if (!sh || !json_is_array(sh))
    return fail(err, errlen, file, TC_EFORMAT, "tensor %s field shape is %s, expected an array",
                key, sh ? json_kind(sh) : "missing");
  size_t nd = json_array_size(sh);
  if (nd > 8)
    return fail(err, errlen, file, TC_ESHAPE, "tensor %s has %zu dimensions, expected 1 or 2", key,
                nd);
  unsigned long long numel = 1;
  e->ndim = (int)nd;
  for (size_t i = 0; i < nd; i++) {
    json_t *d = json_array_get(sh, i);
    if (!json_is_integer(d) || json_integer_value(d) < 0)
      return fail(err, errlen, file, TC_EFORMAT,
                  "tensor %s shape[%zu] is %s, expected an "
                  "integer >= 0",
                  key, i, json_is_integer(d) ? "negative" : json_kind(d));
    e->dim[i] = json_integer_value(d);
    /* Bounded by the data section, so the product cannot overflow before the check below. */
    if ((unsigned long long)e->dim[i] > datalen + 1ULL)
      numel = datalen + 1ULL;
    else
      numel = numel * (unsigned long long)e->dim[i];
    if (numel > datalen + 1ULL)
      numel = datalen + 1ULL;
  }
  if (!of || !json_is_array(of) || json_array_size(of) != 2)
    return fail(err, errlen, file, TC_EFORMAT,
                "tensor %s field data_offsets is %s, expected "
                "an array [begin, end]",
                key, of ? json_kind(of) : "missing");
  json_t *b = json_array_get(of, 0), *en = json_array_get(of, 1);
  if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 ||
      json_integer_value(en) < 0)
    return fail(err, errlen, file, TC_EFORMAT,
                "tensor %s data_offsets are not two integers "
                ">= 0",
                key);
  long long bo = json_integer_value(b), eo = json_integer_value(en);
  if (bo > eo)
    return fail(err, errlen, file, TC_EFORMAT,
                "tensor %s data_offsets [%lld,%lld] have begin "
                "> end",
                key, bo, eo);
  if ((unsigned long long)eo > datalen)
    return fail(err, errlen, file, TC_EFORMAT,
                "tensor %s data_offsets [%lld,%lld] end beyond "
                "the data section of %zu bytes",
                key, bo, eo, datalen);
  e->begin = (size_t)bo;
  e->end = (size_t)eo;
  if (numel > datalen / 4) {
    char sb[128];
    return fail(err, errlen, file, TC_EFORMAT,
                "tensor %s shape %s needs more than the %zu "
                "bytes of the data section",
                key, shape_str(sb, sizeof sb, e->ndim, e->dim), datalen);
  }
  if ((size_t)(eo - bo) != 4 * (size_t)numel) {
    char sb[128];
    return fail(err, errlen, file, TC_EFORMAT,
                "tensor %s data_offsets [%lld,%lld] hold %lld "
                "bytes, expected %llu (4 bytes x shape %s)",
                key, bo, eo, eo - bo, 4ULL * numel, shape_str(sb, sizeof sb, e->ndim, e->dim));
  }
  return 0;
}

/* If name is "lstm.<kind>_l<k>" with a canonical decimal k, returns the kind index (0..6, in
 * the order of kinds[] below) and stores k; else -1. */
static const char *const kinds[] = {"weight_ih", "weight_hh", "bias_ih",  "bias_hh",
                                    "weight_ci", "weight_cf", "weight_co"};
static int lstm_name(const char *name, int *k) {
  if (strncmp(name, "lstm.", 5) != 0)
    return -1;
  for (int i = 0; i < 7; i++) {
    size_t n = strlen(kinds[i]);
    if (strncmp(name + 5, kinds[i], n) != 0 || strncmp(name + 5 + n, "_l", 2) != 0)
      continue;
    const char *d = name + 5 + n + 2;
    size_t nd = strspn(d, "0123456789");
    if (nd == 0 || nd > 4 || d[nd] != '\0' || (d[0] == '0' && nd > 1))
      return -1;
    *k = atoi(d);
    return i;
  }
  return -1;
}

static int entry_cmp(const void *a, const void *b) {
  const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* Checks __metadata__ and copies its entries into m. */
static int meta_load(nn_model *m, const char *file, json_t *md, char *err, size_t errlen) {
  if (!md)
    return fail(err, errlen, file, TC_EFORMAT,
                "header has no __metadata__, expected "
                "{\"tickcast.format\": \"" META_FORMAT "\", \"tickcast.features\": \"" META_FEATURES
                "\"}");
  if (!json_is_object(md))
    return fail(err, errlen, file, TC_EFORMAT, "__metadata__ is %s, expected an object",
                json_kind(md));
  const char *key;
  json_t *v;
  json_object_foreach(md, key, v) {
    if (!json_is_string(v))
      return fail(err, errlen, file, TC_EFORMAT,
                  "__metadata__ entry \"%.64s\" is %s, expected "
                  "a string",
                  key, json_kind(v));
  }
  static const char *const req[2][2] = {{"tickcast.format", META_FORMAT},
                                        {"tickcast.features", META_FEATURES}};
  for (int i = 0; i < 2; i++) {
    json_t *r = json_object_get(md, req[i][0]);
    if (!r)
      return fail(err, errlen, file, TC_EFORMAT, "__metadata__ has no \"%s\", expected \"%s\"",
                  req[i][0], req[i][1]);
    if (strcmp(json_string_value(r), req[i][1]) != 0)
      return fail(err, errlen, file, TC_EFORMAT,
                  "__metadata__ \"%s\" is \"%.64s\", expected "
                  "\"%s\"",
                  req[i][0], json_string_value(r), req[i][1]);
  }
  json_object_foreach(md, key, v) {
    if (nn_model_set_meta(m, key, json_string_value(v)) != 0)
      return fail(err, errlen, file, TC_ENOMEM, "out of memory for metadata");
  }
  return 0;
}

/* The loader proper; on failure the caller frees m. */
static int load_mem(nn_model *m, const unsigned char *buf, size_t len, const char *file, char *err,
                    size_t errlen) {
  if (len < 8)
    return fail(err, errlen, file, TC_EFORMAT,
                "file is %zu bytes, expected at least 8 (the "
                "header length)",
                len);
  unsigned long long hl = 0;
  for (int i = 7; i >= 0; i--)
    hl = hl << 8 | buf[i];
  if (hl < 2 || hl > len - 8 || hl > HEADER_MAX)
    return fail(err, errlen, file, TC_EFORMAT,
                "header length is %llu, expected 2..%zu (file "
                "size %zu minus 8%s)",
                hl, len - 8 < HEADER_MAX ? len - 8 : (size_t)HEADER_MAX, len,
                len - 8 < HEADER_MAX ? "" : ", capped at 100 MB");
  const unsigned char *data = buf + 8 + hl;
  size_t datalen = len - 8 - (size_t)hl;

  json_error_t je;
  json_t *root = json_loadb((const char *)buf + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
  if (!root)
    return fail(err, errlen, file, TC_EFORMAT, "header is not valid JSON: %s at byte %d", je.text,
                je.position);
  int rc = 0;
  entry *es = NULL, **order = NULL;
  spec s[SPEC_MAX];
  if (!json_is_object(root)) {
    rc = fail(err, errlen, file, TC_EFORMAT, "header is %s, expected a JSON object",
              json_kind(root));
    goto out;
  }
  size_t ne = json_object_size(root);
  es = calloc(ne ? ne : 1, sizeof *es);
  order = calloc(ne ? ne : 1, sizeof *order);
  if (!es || !order) {
    rc = fail(err, errlen, file, TC_ENOMEM, "out of memory for %zu header entries", ne);
    goto out;
  }

  /* Pass 1: every tensor entry is well-formed by itself. */
  size_t n = 0;
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (strcmp(key, "__metadata__") == 0)
      continue;
    if ((rc = entry_parse(file, key, v, datalen, &es[n], err, errlen)) != 0)
      goto out;
    n++;
  }

  /* Pass 2: the layer structure. H from lstm.weight_hh_l0, L from the weight_hh count. */
  entry *hh0 = NULL;
  int hh_count = 0, hh_max = -1, peep = 0;
  const char *peep_name = NULL;
  for (size_t i = 0; i < n; i++) {
    int k, kind = lstm_name(es[i].name, &k);
    if (kind == 1) {
      if (k >= NN_MAX_LAYERS) {
        rc = fail(err, errlen, file, TC_ESHAPE,
                  "tensor %s: layer %d, expected at most %d "
                  "layers",
                  es[i].name, k, NN_MAX_LAYERS);
        goto out;
      }
      hh_count++;
      if (k > hh_max)
        hh_max = k;
      if (k == 0)
        hh0 = &es[i];
    } else if (kind >= 4 && !peep) {
      peep = 1;
      peep_name = es[i].name;
    }
  }
  if (!hh0) {
    rc = fail(err, errlen, file, TC_ENOENT,
              "missing tensor lstm.weight_hh_l0 (F32 [4H,H]; it "
              "sets the hidden size H)");
    goto out;
  }
  if (hh_max + 1 != hh_count) {
    int gap = 0;
    for (; gap < hh_max; gap++) {
      char nm[32];
      snprintf(nm, sizeof nm, "lstm.weight_hh_l%d", gap);
      if (!json_object_get(root, nm))
        break;
    }
    rc = fail(err, errlen, file, TC_ENOENT,
              "tensor lstm.weight_hh_l%d present but "
              "lstm.weight_hh_l%d missing (layers must be numbered 0..L-1 without gaps)",
              hh_max, gap);
    goto out;
  }
  if (hh0->ndim != 2 || hh0->dim[1] < 1 || hh0->dim[0] != 4 * hh0->dim[1]) {
    char sb[128];
    rc = fail(err, errlen, file, TC_ESHAPE,
              "tensor lstm.weight_hh_l0 has shape %s, expected "
              "[4H,H] for a hidden size H >= 1",
              shape_str(sb, sizeof sb, hh0->ndim, hh0->dim));
    goto out;
  }
  if (hh0->dim[1] > NN_MAX_HIDDEN) {
    rc = fail(err, errlen, file, TC_ESHAPE,
              "tensor lstm.weight_hh_l0 gives hidden size H=%lld, "
              "expected at most %d",
              hh0->dim[1], NN_MAX_HIDDEN);
    goto out;
  }
  int L = hh_count, H = (int)hh0->dim[1];
  if (peep) {
    for (int k = 0; k < L; k++)
      for (int c = 4; c < 7; c++) {
        char nm[32];
        snprintf(nm, sizeof nm, "lstm.%s_l%d", kinds[c], k);
        if (!json_object_get(root, nm)) {
          rc = fail(err, errlen, file, TC_ENOENT,
                    "missing tensor %s (found %s: peephole "
                    "tensors come all three per layer, for every layer, or not at all)",
                    nm, peep_name);
          goto out;
        }
      }
  }

  /* Pass 3: names against the specs, then shapes. */
  if ((rc = nn_model_init(m, L, H, peep)) != 0) {
    rc = fail(err, errlen, file, rc, "out of memory for L=%d H=%d", L, H);
    goto out;
  }
  int ns = model_specs(m, L, H, peep, s);
  for (size_t i = 0; i < n; i++) {
    int found = 0;
    for (int j = 0; j < ns && !found; j++)
      found = strcmp(es[i].name, s[j].name) == 0;
    if (!found) {
      rc = fail(err, errlen, file, TC_EFORMAT,
                "unknown tensor %.64s (model has L=%d layers, "
                "H=%d%s; expected lstm.*_l0..l%d, head.*, features.*, target.*)",
                es[i].name, L, H, peep ? ", peepholes" : "", L - 1);
      goto out;
    }
  }
  for (int j = 0; j < ns; j++) {
    entry *e = NULL;
    for (size_t i = 0; i < n && !e; i++)
      if (strcmp(es[i].name, s[j].name) == 0)
        e = &es[i];
    if (!e) {
      char sb[64];
      rc = fail(err, errlen, file, TC_ENOENT, "missing tensor %s (F32, shape %s: %s)", s[j].name,
                shape_str(sb, sizeof sb, s[j].ndim, s[j].dim), s[j].why);
      goto out;
    }
    if (e->ndim != s[j].ndim || e->dim[0] != s[j].dim[0] ||
        (s[j].ndim == 2 && e->dim[1] != s[j].dim[1])) {
      char sa[128], sb[64];
      rc = fail(err, errlen, file, TC_ESHAPE, "tensor %s has shape %s, expected %s (%s)", s[j].name,
                shape_str(sa, sizeof sa, e->ndim, e->dim),
                shape_str(sb, sizeof sb, s[j].ndim, s[j].dim), s[j].why);
      goto out;
    }
    e->used = 1;
  }

  /* Pass 4: no two tensors share bytes. */
  for (size_t i = 0; i < n; i++)
    order[i] = &es[i];
  qsort(order, n, sizeof *order, entry_cmp);
  for (size_t i = 1; i < n; i++) {
    if (order[i]->begin < order[i - 1]->end) {
      rc = fail(err, errlen, file, TC_EFORMAT,
                "tensors %s [%zu,%zu] and %s [%zu,%zu] overlap, "
                "expected disjoint data_offsets",
                order[i - 1]->name, order[i - 1]->begin, order[i - 1]->end, order[i]->name,
                order[i]->begin, order[i]->end);
      goto out;
    }
  }

  /* Pass 5: copy the values (little-endian F32) and check them. */
  for (int j = 0; j < ns; j++) {
    entry *e = NULL;
    for (size_t i = 0; i < n && !e; i++)
      if (strcmp(es[i].name, s[j].name) == 0)
        e = &es[i];
    float *dst = *s[j].slot;
    size_t cnt = (size_t)spec_numel(&s[j]);
    const unsigned char *p = data + e->begin;
    for (size_t i = 0; i < cnt; i++, p += 4) {
      uint32_t u =
          (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
      memcpy(&dst[i], &u, 4);
      if (!isfinite(dst[i])) {
        rc = fail(err, errlen, file, TC_ERANGE,
                  "tensor %s value [%zu] is %s, expected a "
                  "finite number",
                  s[j].name, i, isnan(dst[i]) ? "nan" : "inf");
        goto out;
      }
    }
  }
  for (int i = 0; i < NN_F; i++)
    if (!(m->feat_std[i] > 0)) {
      rc = fail(err, errlen, file, TC_ERANGE,
                "tensor features.std value [%d] is %g, expected "
                "> 0",
                i, (double)m->feat_std[i]);
      goto out;
    }
  if (!(m->tgt_std[0] > 0)) {
    rc = fail(err, errlen, file, TC_ERANGE, "tensor target.std value [0] is %g, expected > 0",
              (double)m->tgt_std[0]);
    goto out;
  }
  if ((rc = meta_load(m, file, json_object_get(root, "__metadata__"), err, errlen)) != 0)
    goto out;

  unsigned int dl = 0;
  if (EVP_Digest(buf, len, m->sha256, &dl, EVP_sha256(), NULL) != 1 || dl != 32) {
    rc = fail(err, errlen, file, TC_ENOMEM, "sha256 failed");
    goto out;
  }
  for (int i = 0; i < 8; i++)
    snprintf(m->id + 2 * i, 3, "%02x", m->sha256[i]);

out:
  free(es);
  free(order);
  json_decref(root);
  return rc;
}

/* Loads a model from memory (see model.h); `name` names the input in error messages. */
int nn_model_load_mem(nn_model *m, const unsigned char *buf, size_t len, const char *name,
                      char *err, size_t errlen) {
  memset(m, 0, sizeof *m);
  if (err && errlen)
    err[0] = '\0';
  if (!name)
    name = "(memory)";
  if (!buf && len)
    return fail(err, errlen, name, TC_EINVAL, "no buffer");
  int rc = load_mem(m, buf ? buf : (const unsigned char *)"", len, name, err, errlen);
  if (rc != 0)
    nn_model_free(m);
  return rc;
}

/* Loads a model file (see model.h): reads it whole, then checks it from memory. */
int nn_model_load(nn_model *m, const char *path, char *err, size_t errlen) {
  memset(m, 0, sizeof *m);
  FILE *f = fopen(path, "rb");
  if (!f)
    return fail(err, errlen, path, errno == ENOENT ? TC_ENOENT : TC_EIO, "cannot open: %s",
                strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return fail(err, errlen, path, TC_EIO, "not a regular file");
  }
  size_t len = (size_t)st.st_size;
  unsigned char *buf = malloc(len ? len : 1);
  if (!buf) {
    fclose(f);
    return fail(err, errlen, path, TC_ENOMEM, "out of memory for %zu bytes", len);
  }
  size_t got = len ? fread(buf, 1, len, f) : 0;
  int rerr = ferror(f);
  fclose(f);
  if (got != len || rerr) {
    free(buf);
    return fail(err, errlen, path, TC_EIO, "read %zu of %zu bytes", got, len);
  }
  int rc = nn_model_load_mem(m, buf, len, path, err, errlen);
  free(buf);
  return rc;
}

/* ---- saving ----------------------------------------------------------------------------- */

static int spec_name_cmp(const void *a, const void *b) {
  return strcmp(((const spec *)a)->name, ((const spec *)b)->name);
}

/* Writes m as a safetensors file the way safetensors.torch.save_file does: compact JSON header
 * (tensors sorted by name, contiguous offsets, __metadata__ with every entry) padded with spaces
 * to a multiple of 8, then the little-endian F32 data. Written to a temp file in the same
 * directory, then renamed over path. */
int nn_model_save(const nn_model *m, const char *path, char *err, size_t errlen) {
  if (!m || !m->params || !path)
    return fail(err, errlen, path ? path : "?", TC_EINVAL, "no model");
  spec s[SPEC_MAX];
  nn_model tmp = *m; /* model_specs records slots; we only read them */
  int ns = model_specs(&tmp, m->L, m->H, m->peephole, s);
  qsort(s, (size_t)ns, sizeof *s, spec_name_cmp);
  int rc = 0;
  char *hdr = NULL, *tpath = NULL;
  FILE *f = NULL;
  json_t *root = json_object(), *md = json_object();
  if (!root || !md)
    goto nomem;
  for (int i = 0; i < m->nmeta; i++) {
    json_t *v = json_string(m->meta_val[i]);
    if (!v || json_object_set_new(md, m->meta_key[i], v) != 0) {
      rc = fail(err, errlen, path, TC_EINVAL, "metadata entry \"%.64s\" is not valid UTF-8",
                m->meta_key[i]);
      goto out;
    }
  }
  if (json_object_set_new(root, "__metadata__", md) != 0) {
    md = NULL;
    goto nomem;
  }
  md = NULL;
  size_t off = 0;
  for (int i = 0; i < ns; i++) {
    size_t bytes = 4 * (size_t)spec_numel(&s[i]);
    json_t *shape = s[i].ndim == 1
                        ? json_pack("[I]", (json_int_t)s[i].dim[0])
                        : json_pack("[II]", (json_int_t)s[i].dim[0], (json_int_t)s[i].dim[1]);
    json_t *t = json_pack("{s:s,s:o,s:[II]}", "dtype", "F32", "shape", shape, "data_offsets",
                          (json_int_t)off, (json_int_t)(off + bytes));
    if (!t || json_object_set_new(root, s[i].name, t) != 0)
      goto nomem;
    off += bytes;
  }
  hdr = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
  if (!hdr)
    goto nomem;
  size_t hl = strlen(hdr), pad = (8 - hl % 8) % 8;
  size_t plen = strlen(path);
  tpath = malloc(plen + 16);
  if (!tpath)
    goto nomem;
  snprintf(tpath, plen + 16, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tpath);
  if (fd < 0) {
    rc = fail(err, errlen, path, TC_EIO, "cannot create %s: %s", tpath, strerror(errno));
    free(tpath);
    tpath = NULL;
    goto out;
  }
  fchmod(fd, 0644);
  f = fdopen(fd, "wb");
  if (!f) {
    close(fd);
    rc = fail(err, errlen, path, TC_EIO, "cannot write %s: %s", tpath, strerror(errno));
    goto out;
  }
  unsigned char le[8];
  unsigned long long total = hl + pad;
  for (int i = 0; i < 8; i++)
    le[i] = (unsigned char)(total >> (8 * i));
  int ok = fwrite(le, 1, 8, f) == 8 && fwrite(hdr, 1, hl, f) == hl;
  for (size_t i = 0; ok && i < pad; i++)
    ok = fputc(' ', f) != EOF;
  for (int i = 0; ok && i < ns; i++) {
    const float *src = *s[i].slot;
    size_t cnt = (size_t)spec_numel(&s[i]);
    for (size_t j = 0; ok && j < cnt; j++) {
      uint32_t u;
      memcpy(&u, &src[j], 4);
      unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                            (unsigned char)(u >> 24)};
      ok = fwrite(b, 1, 4, f) == 4;
    }
  }
  ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
  if (fclose(f) != 0)
    ok = 0;
  f = NULL;
  if (!ok || rename(tpath, path) != 0) {
    rc = fail(err, errlen, path, TC_EIO, "cannot write: %s", strerror(errno));
    unlink(tpath);
  }
  goto out;
nomem:
  rc = fail(err, errlen, path, TC_ENOMEM, "out of memory building the header");
out:
  if (f) {
    fclose(f);
    unlink(tpath);
  }
  free(tpath);
  free(hdr);
  json_decref(md);
  json_decref(root);
  return rc;
}
