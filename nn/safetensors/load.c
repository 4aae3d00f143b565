/* load.c: the safetensors model reader (CONTRACT §4, with the GRU and RNN cells' names): a strict
 * loader that treats every byte of the file as untrusted, and the model id (the SHA-256 of the
 * file). Not for writing (save.c) or the parameters themselves (nn/model.c).
 *
 * The loader checks everything CONTRACT §4 lists and never reads outside the buffer. It is
 * lenient in two harmless ways: unused bytes between or after tensors are allowed (the Rust
 * safetensors crate insists on contiguous data), and fields other than dtype, shape and
 * data_offsets in a tensor entry are ignored (as that crate does). */
#include "nn/safetensors/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/base/tc_err.h"
#include "nn/safetensors/safetensors_int.h"

#define HEADER_MAX (100u * 1024u * 1024u) /* a sane cap on the JSON header, as safetensors has */

/* One tensor entry of the header after its JSON types, dtype and offsets were checked. */
typedef struct entry {
  const char *name; /* key in the header (owned by the JSON tree) */
  int ndim;
  long long dim[8];
  size_t begin, end; /* byte offsets into the data section */
  int used;          /* matched by a tensor of the model */
} entry;

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

/* An entry's shape: an array of at most 8 integers >= 0, into e->ndim and e->dim. *numel gets
 * their product, capped at datalen + 1 (more than any tensor of the data section can hold). */
static int entry_shape(const char *file, const char *key, json_t *sh, size_t datalen, entry *e,
                       unsigned long long *numel, char *err, size_t errlen) {
  if (!sh || !json_is_array(sh))
    return nn_st_fail(err, errlen, file, TC_EFORMAT,
                      "tensor %s field shape is %s, expected an array", key,
                      sh ? json_kind(sh) : "missing");
  size_t nd = json_array_size(sh);
  if (nd > 8)
    return nn_st_fail(err, errlen, file, TC_ESHAPE, "tensor %s has %zu dimensions, expected 1 or 2",
                      key, nd);
  *numel = 1;
  e->ndim = (int)nd;
  for (size_t i = 0; i < nd; i++) {
    json_t *d = json_array_get(sh, i);
    if (!json_is_integer(d) || json_integer_value(d) < 0)
      return nn_st_fail(err, errlen, file, TC_EFORMAT,
                        "tensor %s shape[%zu] is %s, expected an "
                        "integer >= 0",
                        key, i, json_is_integer(d) ? "negative" : json_kind(d));
    e->dim[i] = json_integer_value(d);
    /* Bounded by the data section, so the product cannot overflow before the check below. */
    if ((unsigned long long)e->dim[i] > datalen + 1ULL)
      *numel = datalen + 1ULL;
    else
      *numel = *numel * (unsigned long long)e->dim[i];
    if (*numel > datalen + 1ULL)
      *numel = datalen + 1ULL;
  }
  return 0;
}

/* An entry's data_offsets: [begin, end] inside the data section of datalen bytes, holding exactly
 * the 4 * numel bytes of its shape. Into e->begin and e->end. */
static int entry_offsets(const char *file, const char *key, json_t *of, size_t datalen,
                         unsigned long long numel, entry *e, char *err, size_t errlen) {
  if (!of || !json_is_array(of) || json_array_size(of) != 2)
    return nn_st_fail(err, errlen, file, TC_EFORMAT,
                      "tensor %s field data_offsets is %s, expected "
                      "an array [begin, end]",
                      key, of ? json_kind(of) : "missing");
  json_t *b = json_array_get(of, 0), *en = json_array_get(of, 1);
  if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 ||
      json_integer_value(en) < 0)
    return nn_st_fail(err, errlen, file, TC_EFORMAT,
                      "tensor %s data_offsets are not two integers "
                      ">= 0",
                      key);
  long long bo = json_integer_value(b), eo = json_integer_value(en);
  if (bo > eo)
    return nn_st_fail(err, errlen, file, TC_EFORMAT,
                      "tensor %s data_offsets [%lld,%lld] have begin "
                      "> end",
                      key, bo, eo);
  if ((unsigned long long)eo > datalen)
    return nn_st_fail(err, errlen, file, TC_EFORMAT,
                      "tensor %s data_offsets [%lld,%lld] end beyond "
                      "the data section of %zu bytes",
                      key, bo, eo, datalen);
  e->begin = (size_t)bo;
  e->end = (size_t)eo;
  if (numel > datalen / 4) {
    char sb[128];
    return nn_st_fail(err, errlen, file, TC_EFORMAT,
                      "tensor %s shape %s needs more than the %zu "
                      "bytes of the data section",
                      key, shape_str(sb, sizeof sb, e->ndim, e->dim), datalen);
  }
  if ((size_t)(eo - bo) != 4 * (size_t)numel) {
    char sb[128];
    return nn_st_fail(err, errlen, file, TC_EFORMAT,
                      "tensor %s data_offsets [%lld,%lld] hold %lld "
                      "bytes, expected %llu (4 bytes x shape %s)",
                      key, bo, eo, eo - bo, 4ULL * numel,
                      shape_str(sb, sizeof sb, e->ndim, e->dim));
  }
  return 0;
}

/* Checks one tensor entry's JSON types, dtype, shape values and data offsets (inside the data
 * section of `datalen` bytes, length 4 * prod(shape)). Fills e. */
static int entry_parse(const char *file, const char *key, json_t *v, size_t datalen, entry *e,
                       char *err, size_t errlen) {
  e->name = key;
  e->used = 0;
  if (!json_is_object(v))
    return nn_st_fail(err, errlen, file, TC_EFORMAT,
                      "tensor %s is %s in the header, expected an object "
                      "with dtype, shape and data_offsets",
                      key, json_kind(v));
  json_t *dt = json_object_get(v, "dtype");
  json_t *sh = json_object_get(v, "shape");
  json_t *of = json_object_get(v, "data_offsets");
  if (!dt || !json_is_string(dt))
    return nn_st_fail(err, errlen, file, TC_EFORMAT,
                      "tensor %s field dtype is %s, expected a string", key,
                      dt ? json_kind(dt) : "missing");
  if (strcmp(json_string_value(dt), "F32") != 0)
    return nn_st_fail(err, errlen, file, TC_EFORMAT, "tensor %s has dtype %.16s, expected F32", key,
                      json_string_value(dt));
  unsigned long long numel = 0;
  int rc = entry_shape(file, key, sh, datalen, e, &numel, err, errlen);
  if (rc != 0)
    return rc;
  return entry_offsets(file, key, of, datalen, numel, e, err, errlen);
}

/* The cells' module names in tensor names, indexed by prefix_of below. */
static const char *const prefixes[3] = {"lstm", "gru", "rnn"};

/* The index in prefixes[] of the module name that starts name ("lstm." ...), or -1. */
static int prefix_of(const char *name) {
  for (int p = 0; p < 3; p++) {
    size_t n = strlen(prefixes[p]);
    if (strncmp(name, prefixes[p], n) == 0 && name[n] == '.')
      return p;
  }
  return -1;
}

/* If name is "<module>.<kind>_l<k>" with a canonical decimal k, returns the kind index (0..6, in
 * the order of kinds[] below; the peephole kinds 4..6 only under "lstm.") and stores k; else
 * -1. */
static const char *const kinds[] = {"weight_ih", "weight_hh", "bias_ih",  "bias_hh",
                                    "weight_ci", "weight_cf", "weight_co"};
static int layer_name(const char *name, int *k) {
  int p = prefix_of(name);
  if (p < 0)
    return -1;
  const char *s = name + strlen(prefixes[p]) + 1;
  for (int i = 0; i < (p == 0 ? 7 : 4); i++) {
    size_t n = strlen(kinds[i]);
    if (strncmp(s, kinds[i], n) != 0 || strncmp(s + n, "_l", 2) != 0)
      continue;
    const char *d = s + n + 2;
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
    return nn_st_fail(err, errlen, file, TC_EFORMAT,
                      "header has no __metadata__, expected {\"" NN_META_FORMAT_KEY
                      "\": \"" NN_META_FORMAT "\", \"" NN_META_FEATURES_KEY
                      "\": \"" NN_META_FEATURES "\"}");
  if (!json_is_object(md))
    return nn_st_fail(err, errlen, file, TC_EFORMAT, "__metadata__ is %s, expected an object",
                      json_kind(md));
  const char *key;
  json_t *v;
  json_object_foreach(md, key, v) {
    if (!json_is_string(v))
      return nn_st_fail(err, errlen, file, TC_EFORMAT,
                        "__metadata__ entry \"%.64s\" is %s, expected "
                        "a string",
                        key, json_kind(v));
  }
  static const char *const req[2][2] = {{NN_META_FORMAT_KEY, NN_META_FORMAT},
                                        {NN_META_FEATURES_KEY, NN_META_FEATURES}};
  for (int i = 0; i < 2; i++) {
    json_t *r = json_object_get(md, req[i][0]);
    if (!r)
      return nn_st_fail(err, errlen, file, TC_EFORMAT,
                        "__metadata__ has no \"%s\", expected \"%s\"", req[i][0], req[i][1]);
    if (strcmp(json_string_value(r), req[i][1]) != 0)
      return nn_st_fail(err, errlen, file, TC_EFORMAT,
                        "__metadata__ \"%s\" is \"%.64s\", expected "
                        "\"%s\"",
                        req[i][0], json_string_value(r), req[i][1]);
  }
  json_object_foreach(md, key, v) {
    if (nn_model_set_meta(m, key, json_string_value(v)) != 0)
      return nn_st_fail(err, errlen, file, TC_ENOMEM, "out of memory for metadata");
  }
  return 0;
}

/* The calibrated interval table, when there is one, must read (nn_ival_get) and belongs to a
 * model with the scale head. */
static int ival_check(const nn_model *m, const char *file, char *err, size_t errlen) {
  nn_ival t;
  char why[256];
  if (nn_ival_get(m, &t, why, sizeof why) != 0)
    return nn_st_fail(err, errlen, file, TC_EFORMAT, "%s", why);
  if (t.k > 0 && !m->gauss)
    return nn_st_fail(err, errlen, file, TC_EFORMAT,
                      "__metadata__ has \"" NN_META_INTERVAL_KEY "\" but no scale head (it "
                      "calibrates the scale head's interval; expected scale_head.weight and "
                      "scale_head.bias)");
  return 0;
}

/* What the loader knows about one file while it checks it. */
typedef struct reader {
  const char *file; /* the input's name in messages */
  char *err;        /* (errlen) where the one-line message goes */
  size_t errlen;
  const unsigned char *data; /* (datalen) the data section, after the header */
  size_t datalen;
  json_t *root;  /* the header */
  entry *es;     /* (n) its tensor entries, __metadata__ excluded, in header order */
  entry **order; /* (n) scratch for sorting them by offset */
  size_t n;
} reader;

/* Header length, then the header itself: a JSON object of at most HEADER_MAX bytes inside the
 * file. Sets r->data, r->datalen and r->root. */
static int header_read(reader *r, const unsigned char *buf, size_t len) {
  /* The header length, then a header of at least "{}": a shorter file has no room for one (a
   * length check against len - 8 would read "expected 2..0"). */
  if (len < 10)
    return nn_st_fail(r->err, r->errlen, r->file, TC_EFORMAT,
                      "file is %zu bytes, expected at least 10 (an 8-byte header length, "
                      "then a header of at least 2)",
                      len);
  unsigned long long hl = 0;
  for (int i = 7; i >= 0; i--)
    hl = hl << 8 | buf[i];
  if (hl < 2 || hl > len - 8 || hl > HEADER_MAX)
    return nn_st_fail(r->err, r->errlen, r->file, TC_EFORMAT,
                      "header length is %llu, expected 2..%zu (file "
                      "size %zu minus 8%s)",
                      hl, len - 8 < HEADER_MAX ? len - 8 : (size_t)HEADER_MAX, len,
                      len - 8 < HEADER_MAX ? "" : ", capped at 100 MB");
  r->data = buf + 8 + hl;
  r->datalen = len - 8 - (size_t)hl;

  json_error_t je;
  r->root = json_loadb((const char *)buf + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
  if (!r->root)
    return nn_st_fail(r->err, r->errlen, r->file, TC_EFORMAT,
                      "header is not valid JSON: %s at byte %d", je.text, je.position);
  if (!json_is_object(r->root))
    return nn_st_fail(r->err, r->errlen, r->file, TC_EFORMAT,
                      "header is %s, expected a JSON object", json_kind(r->root));
  return 0;
}

/* Pass 1: every tensor entry is well-formed by itself. Fills r->es and r->n. */
static int entries_read(reader *r) {
  size_t ne = json_object_size(r->root);
  r->es = calloc(ne ? ne : 1, sizeof *r->es);
  r->order = calloc(ne ? ne : 1, sizeof *r->order);
  if (!r->es || !r->order)
    return nn_st_fail(r->err, r->errlen, r->file, TC_ENOMEM, "out of memory for %zu header entries",
                      ne);
  const char *key;
  json_t *v;
  json_object_foreach(r->root, key, v) {
    if (strcmp(key, "__metadata__") == 0)
      continue;
    int rc = entry_parse(r->file, key, v, r->datalen, &r->es[r->n], r->err, r->errlen);
    if (rc != 0)
      return rc;
    r->n++;
  }
  return 0;
}

/* Pass 2a: the cell. Every tensor name under a cell's module (lstm., gru., rnn.) must be under
 * the same one; none at all is taken as an LSTM (and then reported missing). An RNN's
 * nonlinearity comes from __metadata__ (its type is checked with the rest of the metadata, by
 * meta_load); another cell must not have one. */
static int cell_find(reader *r, int *cell) {
  const char *first = NULL;
  int p = -1;
  for (size_t i = 0; i < r->n; i++) {
    int q = prefix_of(r->es[i].name);
    if (q < 0)
      continue;
    if (p >= 0 && q != p)
      return nn_st_fail(r->err, r->errlen, r->file, TC_EFORMAT,
                        "tensors %.64s and %.64s name two cells, expected one (all lstm.*, all "
                        "gru.* or all rnn.*)",
                        first, r->es[i].name);
    if (p < 0)
      first = r->es[i].name;
    p = q;
  }
  *cell = p == 1 ? NN_CELL_GRU : p == 2 ? NN_CELL_RNN_TANH : NN_CELL_LSTM;
  json_t *md = json_object_get(r->root, "__metadata__");
  json_t *nl = json_is_object(md) ? json_object_get(md, NN_META_NONLINEARITY_KEY) : NULL;
  if (!nl || !json_is_string(nl))
    return 0;
  const char *v = json_string_value(nl);
  if (*cell != NN_CELL_RNN_TANH)
    return nn_st_fail(r->err, r->errlen, r->file, TC_EFORMAT,
                      "__metadata__ \"" NN_META_NONLINEARITY_KEY "\" is \"%.16s\" but the model "
                      "is a%s %s (%s.* tensors), expected it only with rnn.* tensors",
                      v, *cell == NN_CELL_LSTM ? "n" : "", nn_cell_prefix(*cell),
                      nn_cell_prefix(*cell));
  if (!strcmp(v, "relu"))
    *cell = NN_CELL_RNN_RELU;
  else if (strcmp(v, "tanh") != 0)
    return nn_st_fail(r->err, r->errlen, r->file, TC_EFORMAT,
                      "__metadata__ \"" NN_META_NONLINEARITY_KEY "\" is \"%.16s\", expected "
                      "\"tanh\" or \"relu\"",
                      v);
  return 0;
}

/* Pass 2c: the heads. The scale head is there when any scale_head.* tensor is (tensors_match then
 * requires both); __metadata__ NN_META_HEAD_KEY, when present, must agree: "gauss" with it,
 * "mean" without. */
static int head_find(reader *r, int *gauss) {
  *gauss = 0;
  for (size_t i = 0; i < r->n; i++)
    if (strncmp(r->es[i].name, "scale_head.", 11) == 0)
      *gauss = 1;
  json_t *md = json_object_get(r->root, "__metadata__");
  json_t *hd = json_is_object(md) ? json_object_get(md, NN_META_HEAD_KEY) : NULL;
  if (!hd || !json_is_string(hd))
    return 0;
  const char *v = json_string_value(hd), *want = *gauss ? "gauss" : "mean";
  if (strcmp(v, want) != 0)
    return nn_st_fail(r->err, r->errlen, r->file, TC_EFORMAT,
                      "__metadata__ \"" NN_META_HEAD_KEY "\" is \"%.16s\", expected \"%s\" (the "
                      "file has %sscale_head.* tensors)",
                      v, want, *gauss ? "" : "no ");
  return 0;
}

/* Pass 2b: the layer structure of the cell's tensors. H from <module>.weight_hh_l0 (G x H, G =
 * 4H, 3H or H by the cell), L from the weight_hh count; peepholes (LSTM) when any
 * lstm.weight_c?_l* is present, and then all of them must be. */
static int layers_find(reader *r, int cell, int *L, int *H, int *peep) {
  entry *hh0 = NULL;
  int hh_count = 0, hh_max = -1;
  const char *peep_name = NULL, *pre = nn_cell_prefix(cell);
  const int g = nn_cell_gates(cell);
  char gh[8];
  if (g == 1)
    snprintf(gh, sizeof gh, "H");
  else
    snprintf(gh, sizeof gh, "%dH", g);
  *peep = 0;
  for (size_t i = 0; i < r->n; i++) {
    int k, kind = layer_name(r->es[i].name, &k);
    if (kind == 1) {
      if (k >= NN_MAX_LAYERS)
        return nn_st_fail(r->err, r->errlen, r->file, TC_ESHAPE,
                          "tensor %s: layer %d, expected at most %d "
                          "layers",
                          r->es[i].name, k, NN_MAX_LAYERS);
      hh_count++;
      if (k > hh_max)
        hh_max = k;
      if (k == 0)
        hh0 = &r->es[i];
    } else if (kind >= 4 && !*peep) {
      *peep = 1;
      peep_name = r->es[i].name;
    }
  }
  if (!hh0)
    return nn_st_fail(r->err, r->errlen, r->file, TC_ENOENT,
                      "missing tensor %s.weight_hh_l0 (F32 [%s,H]; it sets the hidden size H)%s",
                      pre, gh,
                      hh_count || cell != NN_CELL_LSTM
                          ? ""
                          : " (a GRU has gru.weight_hh_l0 [3H,H], an RNN rnn.weight_hh_l0 [H,H])");
  if (hh_max + 1 != hh_count) {
    int gap = 0;
    for (; gap < hh_max; gap++) {
      char nm[32];
      snprintf(nm, sizeof nm, "%s.weight_hh_l%d", pre, gap);
      if (!json_object_get(r->root, nm))
        break;
    }
    return nn_st_fail(r->err, r->errlen, r->file, TC_ENOENT,
                      "tensor %s.weight_hh_l%d present but "
                      "%s.weight_hh_l%d missing (layers must be numbered 0..L-1 without gaps)",
                      pre, hh_max, pre, gap);
  }
  if (hh0->ndim != 2 || hh0->dim[1] < 1 || hh0->dim[0] != g * hh0->dim[1]) {
    char sb[128];
    return nn_st_fail(r->err, r->errlen, r->file, TC_ESHAPE,
                      "tensor %s.weight_hh_l0 has shape %s, expected "
                      "[%s,H] for a hidden size H >= 1",
                      pre, shape_str(sb, sizeof sb, hh0->ndim, hh0->dim), gh);
  }
  if (hh0->dim[1] > NN_MAX_HIDDEN)
    return nn_st_fail(r->err, r->errlen, r->file, TC_ESHAPE,
                      "tensor %s.weight_hh_l0 gives hidden size H=%lld, "
                      "expected at most %d",
                      pre, hh0->dim[1], NN_MAX_HIDDEN);
  *L = hh_count;
  *H = (int)hh0->dim[1];
  if (*peep) {
    for (int k = 0; k < *L; k++)
      for (int c = 4; c < 7; c++) {
        char nm[32];
        snprintf(nm, sizeof nm, "lstm.%s_l%d", kinds[c], k);
        if (!json_object_get(r->root, nm))
          return nn_st_fail(r->err, r->errlen, r->file, TC_ENOENT,
                            "missing tensor %s (found %s: peephole "
                            "tensors come all three per layer, for every layer, or not at all)",
                            nm, peep_name);
      }
  }
  return 0;
}

/* The header entry named like tensor t, or NULL. */
static entry *entry_find(const reader *r, const nn_tensor *t) {
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(r->es[i].name, t->name) == 0)
      return &r->es[i];
  return NULL;
}

/* Pass 3: every entry names a tensor of the model (s, ns), then every tensor is present with its
 * shape. */
static int tensors_match(reader *r, const nn_model *m, const nn_tensor *s, int ns) {
  for (size_t i = 0; i < r->n; i++) {
    int found = 0;
    for (int j = 0; j < ns && !found; j++)
      found = strcmp(r->es[i].name, s[j].name) == 0;
    if (!found)
      return nn_st_fail(
          r->err, r->errlen, r->file, TC_EFORMAT,
          "unknown tensor %.64s (model has L=%d layers, "
          "H=%d%s; expected %s.*_l0..l%d, head.*, scale_head.*, features.*, target.*)",
          r->es[i].name, m->L, m->H, m->peephole ? ", peepholes" : "", nn_cell_prefix(m->cell),
          m->L - 1);
  }
  for (int j = 0; j < ns; j++) {
    entry *e = entry_find(r, &s[j]);
    if (!e) {
      char sb[64];
      return nn_st_fail(r->err, r->errlen, r->file, TC_ENOENT,
                        "missing tensor %s (F32, shape %s: %s)", s[j].name,
                        shape_str(sb, sizeof sb, s[j].ndim, s[j].dim), s[j].why);
    }
    if (e->ndim != s[j].ndim || e->dim[0] != s[j].dim[0] ||
        (s[j].ndim == 2 && e->dim[1] != s[j].dim[1])) {
      char sa[128], sb[64];
      return nn_st_fail(r->err, r->errlen, r->file, TC_ESHAPE,
                        "tensor %s has shape %s, expected %s (%s)", s[j].name,
                        shape_str(sa, sizeof sa, e->ndim, e->dim),
                        shape_str(sb, sizeof sb, s[j].ndim, s[j].dim), s[j].why);
    }
    e->used = 1;
  }
  return 0;
}

/* Pass 4: no two tensors share bytes. */
static int tensors_disjoint(reader *r) {
  entry **order = r->order;
  for (size_t i = 0; i < r->n; i++)
    order[i] = &r->es[i];
  qsort(order, r->n, sizeof *order, entry_cmp);
  for (size_t i = 1; i < r->n; i++) {
    if (order[i]->begin < order[i - 1]->end)
      return nn_st_fail(r->err, r->errlen, r->file, TC_EFORMAT,
                        "tensors %s [%zu,%zu] and %s [%zu,%zu] overlap, "
                        "expected disjoint data_offsets",
                        order[i - 1]->name, order[i - 1]->begin, order[i - 1]->end, order[i]->name,
                        order[i]->begin, order[i]->end);
  }
  return 0;
}

/* Pass 5: copies the values (little-endian F32) into the model's tensors and checks them: all
 * finite, the standard deviations > 0. */
static int tensors_copy(reader *r, const nn_model *m, const nn_tensor *s, int ns) {
  for (int j = 0; j < ns; j++) {
    const entry *e = entry_find(r, &s[j]);
    float *dst = s[j].data;
    size_t cnt = nn_tensor_numel(&s[j]);
    const unsigned char *p = r->data + e->begin;
    for (size_t i = 0; i < cnt; i++, p += 4) {
      uint32_t u =
          (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
      memcpy(&dst[i], &u, 4);
      if (!isfinite(dst[i]))
        return nn_st_fail(r->err, r->errlen, r->file, TC_ERANGE,
                          "tensor %s value [%zu] is %s, expected a "
                          "finite number",
                          s[j].name, i, isnan(dst[i]) ? "nan" : "inf");
    }
  }
  for (int i = 0; i < NN_F; i++)
    if (!(m->feat_std[i] > 0))
      return nn_st_fail(r->err, r->errlen, r->file, TC_ERANGE,
                        "tensor features.std value [%d] is %g, expected "
                        "> 0",
                        i, (double)m->feat_std[i]);
  if (!(m->tgt_std[0] > 0))
    return nn_st_fail(r->err, r->errlen, r->file, TC_ERANGE,
                      "tensor target.std value [0] is %g, expected > 0", (double)m->tgt_std[0]);
  return 0;
}

/* The model id: the SHA-256 of the whole file, and its first 16 hex digits. The hash is
 * Nettle's: OpenSSL's libcrypto, which has one too, took 3-4 ms of every command's start to load
 * and relocate (perf stat -r 100 of a program that only links it: 6.7-8.3 ms against 2.9-4.6 ms;
 * with libnettle 3.3-5.1 ms). */
static void model_id(nn_model *m, const unsigned char *buf, size_t len) {
  struct sha256_ctx x;
  sha256_init(&x);
  sha256_update(&x, len, buf);
  sha256_digest(&x, SHA256_DIGEST_SIZE, m->sha256);
  for (int i = 0; i < 8; i++)
    snprintf(m->id + 2 * i, 3, "%02x", m->sha256[i]);
}

/* The loader proper: the passes above in order; on failure the caller frees m. */
static int load_mem(nn_model *m, const unsigned char *buf, size_t len, const char *file, char *err,
                    size_t errlen) {
  reader r = {.file = file, .err = err, .errlen = errlen};
  nn_tensor s[NN_TENSORS_MAX];
  int cell = NN_CELL_LSTM, L = 0, H = 0, peep = 0, gauss = 0, ns, rc;
  if ((rc = header_read(&r, buf, len)) != 0 || (rc = entries_read(&r)) != 0 ||
      (rc = cell_find(&r, &cell)) != 0 || (rc = head_find(&r, &gauss)) != 0 ||
      (rc = layers_find(&r, cell, &L, &H, &peep)) != 0)
    goto out;
  if ((rc = nn_model_init_head(m, cell, L, H, peep, gauss)) != 0) {
    rc = nn_st_fail(err, errlen, file, rc, "out of memory for L=%d H=%d", L, H);
    goto out;
  }
  /* The metadata is the file's: init's nonlinearity goes unless the file has it too. */
  nn_model_del_meta(m, NN_META_NONLINEARITY_KEY);
  nn_model_del_meta(m, NN_META_HEAD_KEY);
  ns = nn_model_tensors(m, s);
  if ((rc = tensors_match(&r, m, s, ns)) != 0 || (rc = tensors_disjoint(&r)) != 0 ||
      (rc = tensors_copy(&r, m, s, ns)) != 0 ||
      (rc = meta_load(m, file, json_object_get(r.root, "__metadata__"), err, errlen)) != 0 ||
      (rc = ival_check(m, file, err, errlen)) != 0)
    goto out;
  model_id(m, buf, len);
out:
  free(r.es);
  free(r.order);
  json_decref(r.root);
  return rc;
}

/* Loads a model from memory (see safetensors.h); `name` names the input in error messages. */
int nn_model_load_mem(nn_model *m, const unsigned char *buf, size_t len, const char *name,
                      char *err, size_t errlen) {
  memset(m, 0, sizeof *m);
  if (err && errlen)
    err[0] = '\0';
  if (!name)
    name = "(memory)";
  if (!buf && len)
    return nn_st_fail(err, errlen, name, TC_EINVAL, "no buffer");
  int rc = load_mem(m, buf ? buf : (const unsigned char *)"", len, name, err, errlen);
  if (rc != 0)
    nn_model_free(m);
  return rc;
}

/* Loads a model file (see safetensors.h): reads it whole, then checks it from memory. The open
 * does not block (a FIFO at the path would wait for a writer for ever): anything but a regular
 * file is refused right after it. */
int nn_model_load(nn_model *m, const char *path, char *err, size_t errlen) {
  memset(m, 0, sizeof *m);
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
  if (!f && fd >= 0) {
    int e = errno;
    close(fd);
    errno = e;
  }
  if (!f)
    return nn_st_fail(err, errlen, path, errno == ENOENT ? TC_ENOENT : TC_EIO, "cannot open: %s",
                      strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return nn_st_fail(err, errlen, path, TC_EIO, "not a regular file");
  }
  size_t len = (size_t)st.st_size;
  unsigned char *buf = malloc(len ? len : 1);
  if (!buf) {
    fclose(f);
    return nn_st_fail(err, errlen, path, TC_ENOMEM, "out of memory for %zu bytes", len);
  }
  size_t got = len ? fread(buf, 1, len, f) : 0;
  int rerr = ferror(f);
  fclose(f);
  if (got != len || rerr) {
    free(buf);
    return nn_st_fail(err, errlen, path, TC_EIO, "read %zu of %zu bytes", got, len);
  }
  int rc = nn_model_load_mem(m, buf, len, path, err, errlen);
  free(buf);
  return rc;
}
