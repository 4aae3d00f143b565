/* test_nn_model.c: the model parameters (nn/model.c) and the safetensors model loader and writer
 * (nn/safetensors/). Malformed files of every kind are each rejected with a negative code and the
 * right one-line message; a save/load round trip keeps every value and metadata entry; the
 * PyTorch-written fixtures load; the GRU and RNN cells' files (gru.*, rnn.* and
 * tickcast.nonlinearity) load, are checked like the LSTM's and round-trip. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "nn/base/tc_err.h"
#include "nn/model.h"
#include "nn/safetensors/safetensors.h"

/* A model file under construction: tensors with their header fields, metadata JSON, and the
 * data section. The base is a valid L=1, H=2 model without peepholes. */
typedef struct tt {
  char name[40];
  char dtype[8];
  char shape[40]; /* JSON text, e.g. "[8,4]" */
  long long b, e; /* data_offsets */
  char raw[80];   /* when set, the whole JSON value of this entry instead */
} tt;

typedef struct mf {
  tt t[64];
  int n;
  char meta[256]; /* JSON text of __metadata__, or "" for none */
  float data[1024];
  size_t datalen; /* bytes */
} mf;

static void add(mf *f, const char *name, const char *shape, int numel) {
  tt *t = &f->t[f->n++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  snprintf(t->dtype, sizeof t->dtype, "F32");
  snprintf(t->shape, sizeof t->shape, "%s", shape);
  t->b = (long long)f->datalen;
  t->e = t->b + 4LL * numel;
  for (int i = 0; i < numel; i++)
    f->data[f->datalen / 4 + i] = 0.25f * (float)((i % 7) + 1);
  f->datalen += 4 * (size_t)numel;
}

static tt *find(mf *f, const char *name) {
  for (int i = 0; i < f->n; i++)
    if (strcmp(f->t[i].name, name) == 0)
      return &f->t[i];
  return NULL;
}

static void base(mf *f, int peep) {
  memset(f, 0, sizeof *f);
  snprintf(f->meta, sizeof f->meta,
           "{\"tickcast.format\":\"1\",\"tickcast.features\":\"ret,log_qty,log_dt,spread\"}");
  add(f, "lstm.weight_ih_l0", "[8,4]", 32);
  add(f, "lstm.weight_hh_l0", "[8,2]", 16);
  add(f, "lstm.bias_ih_l0", "[8]", 8);
  add(f, "lstm.bias_hh_l0", "[8]", 8);
  if (peep) {
    add(f, "lstm.weight_ci_l0", "[2]", 2);
    add(f, "lstm.weight_cf_l0", "[2]", 2);
    add(f, "lstm.weight_co_l0", "[2]", 2);
  }
  add(f, "head.weight", "[1,2]", 2);
  add(f, "head.bias", "[1]", 1);
  add(f, "features.mean", "[4]", 4);
  add(f, "features.std", "[4]", 4);
  add(f, "target.mean", "[1]", 1);
  add(f, "target.std", "[1]", 1);
}

/* Serializes f: 8-byte LE header length, header padded with spaces to 8, data. */
static unsigned char *build(const mf *f, size_t *len) {
  static char hdr[16384];
  size_t o = 0;
  o += (size_t)snprintf(hdr + o, sizeof hdr - o, "{");
  if (f->meta[0])
    o += (size_t)snprintf(hdr + o, sizeof hdr - o, "\"__metadata__\":%s", f->meta);
  for (int i = 0; i < f->n; i++) {
    const tt *t = &f->t[i];
    const char *sep = (i || f->meta[0]) ? "," : "";
    if (t->raw[0])
      o += (size_t)snprintf(hdr + o, sizeof hdr - o, "%s\"%s\":%s", sep, t->name, t->raw);
    else
      o += (size_t)snprintf(hdr + o, sizeof hdr - o,
                            "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%lld,%lld]}",
                            sep, t->name, t->dtype, t->shape, t->b, t->e);
  }
  o += (size_t)snprintf(hdr + o, sizeof hdr - o, "}");
  while (o % 8)
    hdr[o++] = ' ';
  *len = 8 + o + f->datalen;
  unsigned char *buf = malloc(*len);
  for (int i = 0; i < 8; i++)
    buf[i] = (unsigned char)((unsigned long long)o >> (8 * i));
  memcpy(buf + 8, hdr, o);
  memcpy(buf + 8 + o, f->data, f->datalen);
  return buf;
}

/* Loads buf, expects failure with code `code` (0 = any negative) and `want` in the message,
 * which must be one line naming the input. */
static void expect_bad(const char *what, const unsigned char *buf, size_t len, int code,
                       const char *want) {
  nn_model m;
  char err[512] = "";
  int rc = nn_model_load_mem(&m, buf, len, "bad.safetensors", err, sizeof err);
  CHECK(rc < 0);
  if (code)
    CHECK_INT(rc, code);
  CHECK_CONTAINS(err, want);
  CHECK(strncmp(err, "model bad.safetensors: ", 23) == 0);
  CHECK(strchr(err, '\n') == NULL);
  CHECK(m.params == NULL && m.nmeta == 0); /* left freed */
  printf("  %-28s -> %s\n", what, err);
}

static void expect_bad_mf(const char *what, const mf *f, int code, const char *want) {
  size_t len;
  unsigned char *buf = build(f, &len);
  expect_bad(what, buf, len, code, want);
  free(buf);
}

static int kinds; /* distinct malformed-file kinds tested */
#define BAD(what, f, code, want) (kinds++, expect_bad_mf(what, f, code, want))

static void test_malformed(void) {
  mf f;
  size_t len;
  unsigned char *buf;
  nn_model m;
  char err[512];

  /* The base files are valid. */
  for (int p = 0; p < 2; p++) {
    base(&f, p);
    buf = build(&f, &len);
    int rc = nn_model_load_mem(&m, buf, len, "ok", err, sizeof err);
    CHECK_INT(rc, 0);
    if (rc)
      fprintf(stderr, "%s\n", err);
    CHECK_INT(m.L, 1);
    CHECK_INT(m.H, 2);
    CHECK_INT(m.peephole, p);
    CHECK_INT(strlen(m.id), 16);
    nn_model_free(&m);
    free(buf);
  }

  printf("malformed model files:\n");
  /* Byte-level damage. */
  base(&f, 0);
  buf = build(&f, &len);
  kinds++, expect_bad("shorter than 8 bytes", buf, 5, TC_EFORMAT,
                      "file is 5 bytes, expected at least 10 (an 8-byte header length, then a "
                      "header of at least 2)");
  /* 8 or 9 bytes: a header length and no room for a header (once "expected 2..0"). */
  static const unsigned char zeros[9] = {0};
  kinds++,
      expect_bad("8 zero bytes", zeros, 8, TC_EFORMAT, "file is 8 bytes, expected at least 10");
  kinds++,
      expect_bad("header length 1 in 9 bytes", (const unsigned char[]){1, 0, 0, 0, 0, 0, 0, 0, '{'},
                 9, TC_EFORMAT, "file is 9 bytes, expected at least 10");
  unsigned char *b2 = malloc(len);
  memcpy(b2, buf, len);
  b2[0] = 1, memset(b2 + 1, 0, 7);
  kinds++, expect_bad("header length 1", b2, len, TC_EFORMAT, "header length is 1, expected 2..");
  memcpy(b2, buf, 8);
  b2[6] = 1;
  kinds++, expect_bad("header length > file", b2, len, TC_EFORMAT, "header length is 281474976711");
  kinds++,
      expect_bad("truncated in the data", buf, len - 10, TC_EFORMAT, "end beyond the data section");
  size_t hl = buf[0] | (size_t)buf[1] << 8;
  kinds++, expect_bad("truncated in the header", buf, 8 + hl / 2, TC_EFORMAT, "header length is");
  memcpy(b2, buf, len);
  b2[8] = ','; /* ",\"__metadata__\":..." */
  kinds++, expect_bad("bad JSON", b2, len, TC_EFORMAT, "header is not valid JSON");
  memcpy(b2, buf, len);
  b2[8] = '[', b2[8 + hl - 1] = ']'; /* the last header byte is padding or the closing brace */
  for (size_t i = 9; i < 8 + hl - 1; i++)
    b2[i] = ' ';
  kinds++, expect_bad("header an array", b2, len, TC_EFORMAT,
                      "header is an array, expected a JSON object");
  free(b2);
  free(buf);

  /* Structure. */
  base(&f, 0);
  find(&f, "head.bias")->name[0] = 'x';
  BAD("unknown tensor", &f, TC_EFORMAT, "unknown tensor xead.bias");
  base(&f, 0);
  f.n--; /* drop target.std */
  BAD("missing tensor", &f, TC_ENOENT, "missing tensor target.std (F32, shape [1]");
  base(&f, 0);
  snprintf(find(&f, "lstm.weight_hh_l0")->name, 40, "lstm.weight_hh_l1");
  BAD("no weight_hh_l0", &f, TC_ENOENT, "missing tensor lstm.weight_hh_l0");
  base(&f, 0);
  add(&f, "lstm.weight_hh_l2", "[8,2]", 16);
  BAD("layer gap", &f, TC_ENOENT, "lstm.weight_hh_l2 present but lstm.weight_hh_l1 missing");
  base(&f, 0);
  add(&f, "lstm.weight_hh_l1", "[8,2]", 16);
  BAD("second layer incomplete", &f, TC_ENOENT,
      "missing tensor lstm.weight_ih_l1 (F32, shape [8,2]");
  base(&f, 0);
  add(&f, "lstm.weight_hh_l16", "[8,2]", 16);
  BAD("too many layers", &f, TC_ESHAPE, "layer 16, expected at most 16 layers");
  base(&f, 0);
  add(&f, "lstm.weight_ci_l0", "[2]", 2);
  add(&f, "lstm.weight_cf_l0", "[2]", 2);
  BAD("partial peepholes", &f, TC_ENOENT,
      "missing tensor lstm.weight_co_l0 (found lstm.weight_ci_l0");
  base(&f, 0);
  add(&f, "lstm.weight_ci_l1", "[2]", 2);
  BAD("peephole beyond L", &f, TC_ENOENT, "missing tensor lstm.weight_ci_l0");
  base(&f, 0);
  snprintf(find(&f, "head.bias")->name, 40, "head.bi\\nas\\u0007");
  BAD("control chars in a name", &f, TC_EFORMAT, "unknown tensor head.bi?as? (model");
  base(&f, 0);
  add(&f, "lstm.weight_ih_l01", "[8,2]", 16);
  BAD("non-canonical layer index", &f, TC_EFORMAT, "unknown tensor lstm.weight_ih_l01");

  /* Entry types, dtype, shapes. */
  base(&f, 0);
  snprintf(find(&f, "head.weight")->dtype, 8, "F16");
  BAD("dtype F16", &f, TC_EFORMAT, "tensor head.weight has dtype F16, expected F32");
  base(&f, 0);
  snprintf(find(&f, "head.weight")->raw, 80, "[1,2]");
  BAD("entry not an object", &f, TC_EFORMAT, "tensor head.weight is an array in the header");
  base(&f, 0);
  snprintf(find(&f, "head.weight")->shape, 40, "\"1x2\"");
  BAD("shape a string", &f, TC_EFORMAT, "tensor head.weight field shape is a string");
  base(&f, 0);
  snprintf(find(&f, "head.weight")->shape, 40, "[1,-2]");
  BAD("negative dimension", &f, TC_EFORMAT, "tensor head.weight shape[1] is negative");
  base(&f, 0);
  snprintf(find(&f, "head.weight")->raw, 80, "{\"dtype\":\"F32\",\"shape\":[1,2]}");
  BAD("no data_offsets", &f, TC_EFORMAT, "tensor head.weight field data_offsets is missing");
  base(&f, 0);
  snprintf(find(&f, "head.weight")->raw, 80,
           "{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0.5,8]}");
  BAD("fractional offset", &f, TC_EFORMAT, "data_offsets are not two integers >= 0");
  base(&f, 0);
  snprintf(find(&f, "lstm.weight_hh_l0")->shape, 40, "[8,3]");
  find(&f, "lstm.weight_hh_l0")->e += 32;
  BAD("weight_hh not [4H,H]", &f, TC_ESHAPE,
      "tensor lstm.weight_hh_l0 has shape [8,3], expected [4H,H]");
  base(&f, 0);
  snprintf(find(&f, "lstm.weight_ih_l0")->shape, 40, "[8,3]");
  find(&f, "lstm.weight_ih_l0")->e -= 32;
  BAD("wrong shape", &f, TC_ESHAPE,
      "tensor lstm.weight_ih_l0 has shape [8,3], expected [8,4] (4H x 4 with H=2 from "
      "lstm.weight_hh_l0)");
  base(&f, 0);
  snprintf(find(&f, "lstm.bias_hh_l0")->shape, 40, "[12]");
  find(&f, "lstm.bias_hh_l0")->e += 16;
  f.datalen += 16;
  BAD("H inconsistent", &f, TC_ESHAPE,
      "tensor lstm.bias_hh_l0 has shape [12], expected [8] (4H with H=2");
  base(&f, 0);
  snprintf(find(&f, "features.mean")->shape, 40, "[2,2]");
  BAD("rank differs", &f, TC_ESHAPE, "tensor features.mean has shape [2,2], expected [4]");

  /* Offsets. */
  base(&f, 0);
  find(&f, "target.std")->e += 4, find(&f, "target.std")->b += 4;
  BAD("offsets outside file", &f, TC_EFORMAT, "tensor target.std data_offsets");
  base(&f, 0);
  find(&f, "head.bias")->b = find(&f, "head.weight")->b + 4;
  find(&f, "head.bias")->e = find(&f, "head.bias")->b + 4;
  BAD("overlapping tensors", &f, TC_EFORMAT, "overlap, expected disjoint data_offsets");
  base(&f, 0);
  find(&f, "features.std")->e -= 4;
  BAD("length != shape", &f, TC_EFORMAT, "hold 12 bytes, expected 16 (4 bytes x shape [4])");
  base(&f, 0);
  {
    tt *t = find(&f, "head.bias");
    long long x = t->b;
    t->b = t->e;
    t->e = x;
  }
  BAD("begin > end", &f, TC_EFORMAT, "have begin > end");
  base(&f, 0);
  snprintf(find(&f, "head.bias")->raw, 80,
           "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551615]}");
  BAD("offset overflows int64", &f, TC_EFORMAT, "header is not valid JSON");

  /* Values. */
  base(&f, 0);
  f.data[find(&f, "lstm.weight_hh_l0")->b / 4 + 5] = NAN;
  BAD("NaN weight", &f, TC_ERANGE,
      "tensor lstm.weight_hh_l0 value [5] is nan, expected a finite number");
  base(&f, 0);
  f.data[find(&f, "head.bias")->b / 4] = -INFINITY;
  BAD("Inf weight", &f, TC_ERANGE, "tensor head.bias value [0] is inf");
  base(&f, 0);
  f.data[find(&f, "features.std")->b / 4 + 1] = 0.0f;
  BAD("features.std = 0", &f, TC_ERANGE, "tensor features.std value [1] is 0, expected > 0");
  base(&f, 0);
  f.data[find(&f, "target.std")->b / 4] = -1.0f;
  BAD("target.std < 0", &f, TC_ERANGE, "tensor target.std value [0] is -1, expected > 0");

  /* Metadata. */
  base(&f, 0);
  f.meta[0] = '\0';
  BAD("no __metadata__", &f, TC_EFORMAT, "header has no __metadata__");
  base(&f, 0);
  snprintf(f.meta, sizeof f.meta,
           "{\"tickcast.format\":\"2\",\"tickcast.features\":\"ret,log_qty,log_dt,spread\"}");
  BAD("format 2", &f, TC_EFORMAT, "__metadata__ \"tickcast.format\" is \"2\", expected \"1\"");
  base(&f, 0);
  snprintf(f.meta, sizeof f.meta,
           "{\"tickcast.format\":\"1\",\"tickcast.features\":\"ret,log_qty\"}");
  BAD("other features", &f, TC_EFORMAT,
      "\"tickcast.features\" is \"ret,log_qty\", expected \"ret,log_qty,log_dt,spread\"");
  base(&f, 0);
  snprintf(f.meta, sizeof f.meta, "{\"tickcast.features\":\"ret,log_qty,log_dt,spread\"}");
  BAD("format missing", &f, TC_EFORMAT, "__metadata__ has no \"tickcast.format\"");
  base(&f, 0);
  snprintf(f.meta, sizeof f.meta,
           "{\"tickcast.format\":1,\"tickcast.features\":\"ret,log_qty,log_dt,spread\"}");
  BAD("metadata not a string", &f, TC_EFORMAT,
      "__metadata__ entry \"tickcast.format\" is an integer, expected a string");
  base(&f, 0);
  snprintf(f.meta, sizeof f.meta, "[]");
  BAD("metadata an array", &f, TC_EFORMAT, "__metadata__ is an array, expected an object");
  base(&f, 0);
  snprintf(find(&f, "head.bias")->name, 40, "head.weight");
  BAD("duplicate tensor name", &f, TC_EFORMAT, "duplicate object key");

  printf("%d kinds of malformed file\n", kinds);
  CHECK(kinds >= 15);

  /* A file that is not there, and a directory. */
  int rc = nn_model_load(&m, "/nonexistent/m.safetensors", err, sizeof err);
  CHECK_INT(rc, TC_ENOENT);
  CHECK_CONTAINS(err, "model /nonexistent/m.safetensors: cannot open");
  rc = nn_model_load(&m, "tests", err, sizeof err);
  CHECK(rc < 0);
  CHECK_CONTAINS(err, "not a regular file");
}

static uint32_t rng = 99u;
static float frand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return (float)(rng >> 8) / 16777216.0f - 0.5f;
}

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n + 1);
  *len = fread(b, 1, (size_t)n, f);
  fclose(f);
  return b;
}

static void test_roundtrip(void) {
  nn_model m, m2, m3;
  char err[512], path[64], path2[64];
  snprintf(path, sizeof path, "/tmp/test_nn_model_%d.safetensors", (int)getpid());
  snprintf(path2, sizeof path2, "/tmp/test_nn_model_%d_b.safetensors", (int)getpid());
  CHECK_INT(nn_model_init(&m, 0, 8, 0), TC_EINVAL);
  CHECK_INT(nn_model_init(&m, NN_MAX_LAYERS + 1, 8, 0), TC_EINVAL);
  CHECK_INT(nn_model_init(&m, 1, 0, 0), TC_EINVAL);
  CHECK_INT(nn_model_init(&m, 2, 5, 1), 0);
  /* Fresh model: zeros, std 1, the two required keys, no id. */
  CHECK_INT(m.nparams, (80 + 100 + 40 + 15) + (100 + 100 + 40 + 15) + 6 + 8 + 2); /* 506 */
  CHECK(m.W_hh[0][3] == 0.0f && m.feat_std[2] == 1.0f && m.tgt_std[0] == 1.0f);
  CHECK_STR(nn_model_get_meta(&m, "tickcast.format"), "1");
  CHECK_STR(nn_model_get_meta(&m, "tickcast.features"), "ret,log_qty,log_dt,spread");
  CHECK(nn_model_get_meta(&m, "nope") == NULL);
  CHECK_STR(m.id, "");
  for (size_t i = 0; i < m.nparams; i++)
    m.params[i] = frand();
  for (int i = 0; i < NN_F; i++)
    m.feat_std[i] = 0.5f + (float)i;
  m.tgt_std[0] = 1e-3f;
  CHECK_INT(nn_model_set_meta(&m, "note", "first"), 0);
  CHECK_INT(nn_model_set_meta(&m, "note", "trained on \"x\", 3 epochs"), 0); /* replaces */
  CHECK_INT(nn_model_set_meta(&m, "tickcast.train.seed", "7"), 0);
  CHECK_INT(m.nmeta, 4);
  int rc = nn_model_save(&m, path, err, sizeof err);
  CHECK_INT(rc, 0);
  rc = nn_model_load(&m2, path, err, sizeof err);
  CHECK_INT(rc, 0);
  if (rc == 0) {
    CHECK(nn_model_same_shape(&m, &m2));
    CHECK_INT(m2.nparams, m.nparams);
    int same = 1;
    for (int k = 0; k < 2; k++) {
      same &= memcmp(m.W_ih[k], m2.W_ih[k], (k ? 5 : 4) * 20 * sizeof(float)) == 0;
      same &= memcmp(m.W_hh[k], m2.W_hh[k], 100 * sizeof(float)) == 0;
      same &= memcmp(m.b_ih[k], m2.b_ih[k], 20 * sizeof(float)) == 0;
      same &= memcmp(m.b_hh[k], m2.b_hh[k], 20 * sizeof(float)) == 0;
      same &= memcmp(m.w_ci[k], m2.w_ci[k], 5 * sizeof(float)) == 0;
      same &= memcmp(m.w_cf[k], m2.w_cf[k], 5 * sizeof(float)) == 0;
      same &= memcmp(m.w_co[k], m2.w_co[k], 5 * sizeof(float)) == 0;
    }
    same &= memcmp(m.head_w, m2.head_w, 5 * sizeof(float)) == 0 && *m.head_b == *m2.head_b;
    same &= memcmp(m.feat_mean, m2.feat_mean, 4 * sizeof(float)) == 0;
    same &= memcmp(m.feat_std, m2.feat_std, 4 * sizeof(float)) == 0;
    same &= *m.tgt_mean == *m2.tgt_mean && *m.tgt_std == *m2.tgt_std;
    CHECK(same);
    CHECK_STR(nn_model_get_meta(&m2, "note"), "trained on \"x\", 3 epochs");
    CHECK_STR(nn_model_get_meta(&m2, "tickcast.train.seed"), "7");
    CHECK_INT(m2.nmeta, 4);
    CHECK_INT(strlen(m2.id), 16);
    /* Saving the loaded model again gives the same bytes, hence the same id. */
    CHECK_INT(nn_model_save(&m2, path2, err, sizeof err), 0);
    size_t la, lb;
    unsigned char *a = slurp(path, &la), *b = slurp(path2, &lb);
    CHECK(a && b && la == lb && memcmp(a, b, la) == 0);
    /* The layout is what safetensors writes: header length a multiple of 8, starting '{'. */
    if (a) {
      uint64_t h = 0;
      for (int i = 7; i >= 0; i--)
        h = h << 8 | a[i];
      CHECK_INT(h % 8, 0);
      CHECK_INT(a[8], '{');
      CHECK_INT(la, 8 + h + 4 * m.nparams);
    }
    CHECK_INT(nn_model_load(&m3, path2, err, sizeof err), 0);
    CHECK_STR(m3.id, m2.id);
    nn_model_free(&m3);
    free(a);
    free(b);
    nn_model m4;
    CHECK_INT(nn_model_init(&m4, 2, 5, 0), 0);
    CHECK(!nn_model_same_shape(&m2, &m4)); /* peephole differs */
    nn_model_free(&m4);
  }
  unlink(path);
  /* Metadata that JSON cannot carry is refused by name, and nothing is written. */
  nn_model mu;
  CHECK_INT(nn_model_init(&mu, 1, 2, 0), 0);
  CHECK_INT(nn_model_set_meta(&mu, "bad", "\xff\xfe"), 0);
  rc = nn_model_save(&mu, path, err, sizeof err);
  CHECK_INT(rc, TC_EINVAL);
  CHECK_CONTAINS(err, "metadata entry \"bad\" is not valid UTF-8");
  CHECK(access(path, F_OK) != 0);
  nn_model_free(&mu);
  /* A tensor that is not finite is refused by name and index (the loader would refuse the file),
   * and nothing is written. */
  nn_model mn;
  CHECK_INT(nn_model_init(&mn, 1, 2, 0), 0);
  nn_tensor tn[NN_TENSORS_MAX];
  int ntn = nn_model_tensors(&mn, tn);
  CHECK(ntn > 1);
  tn[1].data[1] = NAN;
  rc = nn_model_save(&mn, path, err, sizeof err);
  CHECK_INT(rc, TC_ERANGE);
  char want[96];
  snprintf(want, sizeof want, "tensor %s value [1] is nan, expected a finite number", tn[1].name);
  CHECK_CONTAINS(err, want);
  CHECK(access(path, F_OK) != 0);
  tn[1].data[1] = -INFINITY;
  CHECK_INT(nn_model_save(&mn, path, err, sizeof err), TC_ERANGE);
  CHECK_CONTAINS(err, "is inf, expected a finite number");
  CHECK(access(path, F_OK) != 0);
  nn_model_free(&mn);
  /* Saving into a missing directory fails cleanly. */
  rc = nn_model_save(&m, "/nonexistent/dir/m.safetensors", err, sizeof err);
  CHECK_INT(rc, TC_EIO);
  CHECK_CONTAINS(err, "model /nonexistent/dir/m.safetensors: cannot create");
  unlink(path);
  unlink(path2);
  nn_model_free(&m);
  nn_model_free(&m2);
  nn_model_free(&m2); /* twice is harmless */
  nn_model_free(NULL);
}

/* The files PyTorch wrote (tests/gen_fixtures.py) load, with their values and metadata. */
static void test_fixtures(void) {
  static const struct {
    const char *name;
    int L, H, peep;
  } fx[] = {{"l1_h8", 1, 8, 0},          {"l2_h16", 2, 16, 0},         {"l1_h8_peep", 1, 8, 1},
            {"l2_h16_peep", 2, 16, 1},   {"l3_h5_peep", 3, 5, 1},      {"gru_l2_h16", 2, 16, 0},
            {"rnn_tanh_l1_h8", 1, 8, 0}, {"rnn_relu_l2_h12", 2, 12, 0}};
  for (size_t i = 0; i < sizeof fx / sizeof *fx; i++) {
    char path[128], err[512];
    nn_model m;
    snprintf(path, sizeof path, "tests/fixtures/nn_%s.safetensors", fx[i].name);
    int rc = nn_model_load(&m, path, err, sizeof err);
    CHECK_INT(rc, 0);
    if (rc) {
      fprintf(stderr, "%s\n", err);
      continue;
    }
    CHECK_INT(m.L, fx[i].L);
    CHECK_INT(m.H, fx[i].H);
    CHECK_INT(m.peephole, fx[i].peep);
    CHECK_INT(m.cell, nn_cell_parse(fx[i].name[0] == 'l'   ? "lstm"
                                    : fx[i].name[0] == 'g' ? "gru"
                                    : fx[i].name[4] == 't' ? "rnn_tanh"
                                                           : "rnn_relu"));
    CHECK_STR(nn_model_get_meta(&m, "test.case"), fx[i].name);
    CHECK(m.feat_mean[1] == 2.3f && m.feat_std[3] == 1e-4f && m.tgt_std[0] == 1.7e-3f);
    nn_model_free(&m);
  }
}

/* A valid model file of one GRU or RNN layer (module "gru" or "rnn", g gate blocks) of H = 2,
 * with extra metadata (JSON members, or ""). */
static void base_cell(mf *f, const char *pre, int g, const char *meta) {
  memset(f, 0, sizeof *f);
  snprintf(f->meta, sizeof f->meta,
           "{\"tickcast.format\":\"1\",\"tickcast.features\":\"ret,log_qty,log_dt,spread\"%s%s}",
           meta[0] ? "," : "", meta);
  char name[40], shape[16];
  snprintf(shape, sizeof shape, "[%d,4]", 2 * g);
  snprintf(name, sizeof name, "%s.weight_ih_l0", pre), add(f, name, shape, 8 * g);
  snprintf(shape, sizeof shape, "[%d,2]", 2 * g);
  snprintf(name, sizeof name, "%s.weight_hh_l0", pre), add(f, name, shape, 4 * g);
  snprintf(shape, sizeof shape, "[%d]", 2 * g);
  snprintf(name, sizeof name, "%s.bias_ih_l0", pre), add(f, name, shape, 2 * g);
  snprintf(name, sizeof name, "%s.bias_hh_l0", pre), add(f, name, shape, 2 * g);
  add(f, "head.weight", "[1,2]", 2);
  add(f, "head.bias", "[1]", 1);
  add(f, "features.mean", "[4]", 4);
  add(f, "features.std", "[4]", 4);
  add(f, "target.mean", "[1]", 1);
  add(f, "target.std", "[1]", 1);
}

/* Gives tensor `name` of f the JSON shape `shape`, its data `more` bytes longer. */
static void reshape(mf *f, const char *name, const char *shape, int more) {
  tt *t = find(f, name);
  snprintf(t->shape, sizeof t->shape, "%s", shape);
  t->e += more;
  f->datalen += (size_t)more;
}

/* The cells' files: each loads as its cell with G and the metadata of the file; damaged ones are
 * refused with messages that name the cell's tensors. */
static void test_cells_files(void) {
  static const struct {
    const char *pre;
    int g;
    const char *meta;
    int cell;
    const char *nonlin; /* the loaded model's tickcast.nonlinearity, NULL when absent */
  } ok[] = {{"gru", 3, "", NN_CELL_GRU, NULL},
            {"rnn", 1, "", NN_CELL_RNN_TANH, NULL},
            {"rnn", 1, "\"tickcast.nonlinearity\":\"tanh\"", NN_CELL_RNN_TANH, "tanh"},
            {"rnn", 1, "\"tickcast.nonlinearity\":\"relu\"", NN_CELL_RNN_RELU, "relu"}};
  mf f;
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    base_cell(&f, ok[i].pre, ok[i].g, ok[i].meta);
    size_t len;
    unsigned char *buf = build(&f, &len);
    nn_model m;
    char err[512];
    int rc = nn_model_load_mem(&m, buf, len, "ok", err, sizeof err);
    CHECK_INT(rc, 0);
    if (rc)
      fprintf(stderr, "%s\n", err);
    CHECK_INT(m.cell, ok[i].cell);
    CHECK_INT(m.L, 1);
    CHECK_INT(m.H, 2);
    CHECK_INT(m.G, 2 * ok[i].g);
    CHECK_INT(m.peephole, 0);
    CHECK_INT(nn_state_floats(&m), 2);
    CHECK(m.W_hh[0][4 * ok[i].g - 1] == 0.25f * (float)((4 * ok[i].g - 1) % 7 + 1));
    if (ok[i].nonlin)
      CHECK_STR(nn_model_get_meta(&m, "tickcast.nonlinearity"), ok[i].nonlin);
    else
      CHECK(nn_model_get_meta(&m, "tickcast.nonlinearity") == NULL);
    nn_model_free(&m);
    free(buf);
  }
  printf("malformed cell files:\n");
  base_cell(&f, "gru", 3, "");
  add(&f, "lstm.weight_hh_l1", "[8,2]", 16);
  BAD("gru and lstm tensors", &f, TC_EFORMAT,
      "tensors gru.weight_ih_l0 and lstm.weight_hh_l1 name two cells, expected one");
  base_cell(&f, "gru", 3, "");
  add(&f, "rnn.weight_hh_l1", "[2,2]", 4);
  BAD("two cells", &f, TC_EFORMAT,
      "name two cells, expected one (all lstm.*, all gru.* or all rnn.*)");
  base_cell(&f, "gru", 3, "");
  reshape(&f, "gru.weight_hh_l0", "[8,2]", 16);
  BAD("gru weight_hh not [3H,H]", &f, TC_ESHAPE,
      "tensor gru.weight_hh_l0 has shape [8,2], expected [3H,H] for a hidden size H >= 1");
  base_cell(&f, "gru", 3, "");
  reshape(&f, "gru.weight_ih_l0", "[8,4]", 32);
  BAD("gru weight_ih wrong", &f, TC_ESHAPE,
      "tensor gru.weight_ih_l0 has shape [8,4], expected [6,4] (3H x 4 with H=2 from "
      "gru.weight_hh_l0)");
  base_cell(&f, "rnn", 1, "");
  reshape(&f, "rnn.bias_hh_l0", "[3]", 4);
  BAD("rnn bias wrong", &f, TC_ESHAPE,
      "tensor rnn.bias_hh_l0 has shape [3], expected [2] (H with H=2 from rnn.weight_hh_l0)");
  base_cell(&f, "gru", 3, "");
  add(&f, "gru.weight_ci_l0", "[2]", 2);
  BAD("peephole on a gru", &f, TC_EFORMAT,
      "unknown tensor gru.weight_ci_l0 (model has L=1 layers, "
      "H=2; expected gru.*_l0..l0, head.*");
  base_cell(&f, "rnn", 1, "");
  snprintf(find(&f, "rnn.weight_hh_l0")->name, 40, "rnn.weight_hh_l1");
  BAD("rnn without weight_hh_l0", &f, TC_ENOENT,
      "missing tensor rnn.weight_hh_l0 (F32 [H,H]; it sets the hidden size H)");
  base(&f, 0);
  memmove(f.t, f.t + 4, 6 * sizeof f.t[0]); /* no cell tensors at all: the LSTM's four dropped */
  f.n = 6;
  BAD("no cell", &f, TC_ENOENT,
      "missing tensor lstm.weight_hh_l0 (F32 [4H,H]; it sets the hidden size H) (a GRU has "
      "gru.weight_hh_l0 [3H,H], an RNN rnn.weight_hh_l0 [H,H])");
  base_cell(&f, "rnn", 1, "\"tickcast.nonlinearity\":\"sigmoid\"");
  BAD("rnn nonlinearity sigmoid", &f, TC_EFORMAT,
      "__metadata__ \"tickcast.nonlinearity\" is \"sigmoid\", expected \"tanh\" or \"relu\"");
  base_cell(&f, "gru", 3, "\"tickcast.nonlinearity\":\"relu\"");
  BAD("nonlinearity on a gru", &f, TC_EFORMAT,
      "__metadata__ \"tickcast.nonlinearity\" is \"relu\" but the model is a gru (gru.* "
      "tensors), expected it only with rnn.* tensors");
  base(&f, 0);
  snprintf(f.meta, sizeof f.meta,
           "{\"tickcast.format\":\"1\",\"tickcast.features\":\"ret,log_qty,log_dt,spread\","
           "\"tickcast.nonlinearity\":\"tanh\"}");
  BAD("nonlinearity on an lstm", &f, TC_EFORMAT, "but the model is an lstm (lstm.* tensors)");
  base_cell(&f, "rnn", 1, "\"tickcast.nonlinearity\":7");
  BAD("nonlinearity not a string", &f, TC_EFORMAT,
      "__metadata__ entry \"tickcast.nonlinearity\" is an integer, expected a string");
}

/* Each cell saved and loaded back: same cell, values and metadata (an RNN's nonlinearity
 * written), same bytes when saved again; nn_model_same_shape tells cells apart; del_meta. */
static void test_cells_roundtrip(void) {
  char path[64], path2[64], err[512];
  snprintf(path, sizeof path, "/tmp/test_nn_model_%d_c.safetensors", (int)getpid());
  snprintf(path2, sizeof path2, "/tmp/test_nn_model_%d_d.safetensors", (int)getpid());
  nn_model ms[NN_CELL_COUNT];
  for (int cell = 0; cell < NN_CELL_COUNT; cell++) {
    nn_model *m = &ms[cell], m2, m3;
    CHECK_INT(nn_model_init_cell(m, cell, 2, 3, 0), 0);
    int g = nn_cell_gates(cell);
    CHECK_INT(m->G, 3 * g);
    CHECK_INT(m->nparams,
              (size_t)(3 * g * 4 + 3 * g * 3 + 6 * g) + (3 * g * 3 * 2 + 6 * g) + 3 + 1 + 8 + 2);
    CHECK_INT(nn_state_floats(m), (size_t)(cell == NN_CELL_LSTM ? 12 : 6));
    const char *nl = nn_model_get_meta(m, "tickcast.nonlinearity");
    if (g == 1)
      CHECK_STR(nl, cell == NN_CELL_RNN_RELU ? "relu" : "tanh");
    else
      CHECK(nl == NULL);
    for (size_t i = 0; i < m->nparams; i++)
      m->params[i] = frand();
    m->feat_std[0] = m->tgt_std[0] = 2.0f;
    for (int i = 1; i < NN_F; i++)
      m->feat_std[i] = 1.0f;
    CHECK_INT(nn_model_save(m, path, err, sizeof err), 0);
    int rc = nn_model_load(&m2, path, err, sizeof err);
    CHECK_INT(rc, 0);
    if (rc) {
      fprintf(stderr, "%s\n", err);
      continue;
    }
    CHECK(nn_model_same_shape(m, &m2));
    CHECK_INT(m2.cell, cell);
    CHECK(m2.nparams == m->nparams && memcmp(m2.params, m->params, m->nparams * 4) == 0);
    CHECK_INT(m2.nmeta, m->nmeta);
    if (g == 1)
      CHECK_STR(nn_model_get_meta(&m2, "tickcast.nonlinearity"), nl);
    char want[40];
    snprintf(want, sizeof want, "%s.weight_hh_l1", nn_cell_prefix(cell));
    nn_tensor t[NN_TENSORS_MAX];
    int nt = nn_model_tensors(&m2, t), found = 0;
    for (int i = 0; i < nt; i++)
      found += strcmp(t[i].name, want) == 0 && t[i].dim[0] == 3 * g && t[i].dim[1] == 3;
    CHECK_INT(found, 1);
    CHECK_INT(nn_model_save(&m2, path2, err, sizeof err), 0);
    size_t la, lb;
    unsigned char *a = slurp(path, &la), *b = slurp(path2, &lb);
    CHECK(a && b && la == lb && memcmp(a, b, la) == 0);
    free(a), free(b);
    CHECK_INT(nn_model_load(&m3, path2, err, sizeof err), 0);
    CHECK_STR(m3.id, m2.id);
    nn_model_free(&m2);
    nn_model_free(&m3);
  }
  for (int a = 0; a < NN_CELL_COUNT; a++)
    for (int b = 0; b < NN_CELL_COUNT; b++)
      CHECK_INT(nn_model_same_shape(&ms[a], &ms[b]), a == b);
  CHECK_INT(nn_model_del_meta(&ms[NN_CELL_RNN_RELU], "tickcast.nonlinearity"), 0);
  CHECK(nn_model_get_meta(&ms[NN_CELL_RNN_RELU], "tickcast.nonlinearity") == NULL);
  CHECK_STR(nn_model_get_meta(&ms[NN_CELL_RNN_RELU], "tickcast.features"), NN_META_FEATURES);
  CHECK_INT(nn_model_del_meta(&ms[NN_CELL_RNN_RELU], "tickcast.nonlinearity"), TC_ENOENT);
  for (int c = 0; c < NN_CELL_COUNT; c++)
    nn_model_free(&ms[c]);
  unlink(path);
  unlink(path2);
  /* The names and codes of the cells. */
  CHECK_INT(nn_cell_parse("gru"), NN_CELL_GRU);
  CHECK_INT(nn_cell_parse("rnn"), NN_CELL_RNN_TANH);
  CHECK_INT(nn_cell_parse("rnn_relu"), NN_CELL_RNN_RELU);
  CHECK_INT(nn_cell_parse("lstm"), NN_CELL_LSTM);
  CHECK_INT(nn_cell_parse("LSTM"), -1);
  CHECK_STR(nn_cell_name(NN_CELL_RNN_TANH), "rnn_tanh");
  CHECK_STR(nn_cell_name(9), "?");
}

/* The scale head: a file with scale_head.* loads as a gauss model (metadata "tickcast.head"
 * optional, must agree), saves back to the same bytes and tensors; damaged ones are refused; a
 * model without it has no scale tensors and no head metadata. */
static void test_scale_head(void) {
  mf f;
  base(&f, 0);
  add(&f, "scale_head.weight", "[1,2]", 2);
  add(&f, "scale_head.bias", "[1]", 1);
  size_t len;
  unsigned char *buf = build(&f, &len);
  nn_model m, m2;
  char err[512], path[64];
  int rc = nn_model_load_mem(&m, buf, len, "ok", err, sizeof err);
  free(buf);
  CHECK_INT(rc, 0);
  if (rc) {
    fprintf(stderr, "%s\n", err);
    return;
  }
  CHECK_INT(m.gauss, 1);
  CHECK(m.scale_w && m.scale_b && m.scale_w[1] == 0.5f && m.scale_b[0] == 0.25f);
  CHECK(nn_model_get_meta(&m, NN_META_HEAD_KEY) == NULL); /* the file's metadata, as it was */
  nn_tensor t[NN_TENSORS_MAX];
  int nt = nn_model_tensors(&m, t);
  CHECK_STR(t[nt - 5].name, "scale_head.bias");
  CHECK_STR(t[nt - 6].name, "scale_head.weight");
  CHECK(t[nt - 6].ndim == 2 && t[nt - 6].dim[0] == 1 && t[nt - 6].dim[1] == 2);
  snprintf(path, sizeof path, "/tmp/test_nn_model_%d_g.safetensors", (int)getpid());
  CHECK_INT(nn_model_save(&m, path, err, sizeof err), 0);
  CHECK_INT(nn_model_load(&m2, path, err, sizeof err), 0);
  CHECK(m2.gauss == 1 && m2.nparams == m.nparams &&
        memcmp(m2.params, m.params, m.nparams * 4) == 0);
  nn_model_free(&m2);
  nn_model_free(&m);
  /* nn_model_init_head: the metadata and the scale head's output over the top layer's h. */
  CHECK_INT(nn_model_init_head(&m, NN_CELL_GRU, 2, 3, 0, 1), 0);
  CHECK_STR(nn_model_get_meta(&m, NN_META_HEAD_KEY), "gauss");
  for (int j = 0; j < 3; j++)
    m.scale_w[j] = (float)(j + 1);
  m.scale_b[0] = 0.5f;
  float st[6] = {9, 9, 9, 1, 2, 3}, *sp[1] = {st}, sc;
  nn_model_scale_out(&m, 1, sp, &sc);
  CHECK_NEAR(sc, 14.5, 1e-6); /* 1*1 + 2*2 + 3*3 + 0.5, from layer 1's h */
  CHECK_INT(nn_model_save(&m, path, err, sizeof err), 0);
  CHECK_INT(nn_model_load(&m2, path, err, sizeof err), 0);
  CHECK(m2.gauss == 1 && m2.cell == NN_CELL_GRU);
  CHECK_STR(nn_model_get_meta(&m2, NN_META_HEAD_KEY), "gauss");
  nn_model_free(&m2);
  nn_model_free(&m);
  unlink(path);
  CHECK_INT(nn_model_init_cell(&m, NN_CELL_LSTM, 1, 2, 0), 0);
  CHECK(m.gauss == 0 && m.scale_w == NULL && nn_model_get_meta(&m, NN_META_HEAD_KEY) == NULL);
  nn_model_free(&m);

  base(&f, 0);
  add(&f, "scale_head.weight", "[1,2]", 2);
  BAD("scale head without bias", &f, TC_ENOENT,
      "missing tensor scale_head.bias (F32, shape [1]: one output)");
  base(&f, 0);
  add(&f, "scale_head.weight", "[1,3]", 3);
  add(&f, "scale_head.bias", "[1]", 1);
  BAD("scale head wrong shape", &f, TC_ESHAPE,
      "tensor scale_head.weight has shape [1,3], expected [1,2] (1 x H with H=2 from "
      "lstm.weight_hh_l0)");
  base(&f, 0);
  snprintf(f.meta, sizeof f.meta,
           "{\"tickcast.format\":\"1\",\"tickcast.features\":\"ret,log_qty,log_dt,spread\","
           "\"tickcast.head\":\"gauss\"}");
  BAD("head gauss without tensors", &f, TC_EFORMAT,
      "__metadata__ \"tickcast.head\" is \"gauss\", expected \"mean\" (the file has no "
      "scale_head.* tensors)");
  add(&f, "scale_head.weight", "[1,2]", 2);
  add(&f, "scale_head.bias", "[1]", 1);
  snprintf(f.meta, sizeof f.meta,
           "{\"tickcast.format\":\"1\",\"tickcast.features\":\"ret,log_qty,log_dt,spread\","
           "\"tickcast.head\":\"student\"}");
  BAD("head unknown", &f, TC_EFORMAT,
      "__metadata__ \"tickcast.head\" is \"student\", expected \"gauss\"");
}

int main(void) {
  test_scale_head();
  test_malformed();
  test_roundtrip();
  test_fixtures();
  test_cells_files();
  test_cells_roundtrip();
  return check_done();
}
