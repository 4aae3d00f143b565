/* test_changelog.c: the hand-off records of daemon/changelog.h. Encoded states come back bit for
 * bit; a reader takes, per input partition, the latest hand-off whose records all arrived and
 * whose model is its own, whatever else is interleaved in the log; incomplete, foreign-model,
 * truncated, corrupted and random values are ignored and counted, never taken. */
#include <stdlib.h>

#include "check.h"
#include "daemon/kafka/changelog.h"

enum { L = 2, H = 5, SF = L * 2 * H };
static const char *SHA = "3f1c000000000000000000000000000000000000000000000000000000000abc";
static const char *OTHER = "9a0b000000000000000000000000000000000000000000000000000000000abc";

typedef struct msg {
  char key[40];
  size_t klen;
  unsigned char val[512];
  size_t len;
} msg;

static msg log_[256];
static int nlog;

static void state_of(float *st, int sym, int version) {
  for (int i = 0; i < SF; i++)
    st[i] = (float)(sym * 100 + version) + (float)i / 64.0f;
}

/* Appends the record of instrument "S<sym>" (n = version) of hand-off id on partition part. */
static void add_state(uint64_t id, int32_t part, int sym, int version) {
  float st[SF];
  state_of(st, sym, version);
  msg *m = &log_[nlog++];
  m->klen = (size_t)snprintf(m->key, sizeof m->key, "S%d", sym);
  store_inst in = {.sym = m->key,
                   .sym_len = m->klen,
                   .partition = part,
                   .n = (uint64_t)version,
                   .last_ts = 1000000000LL * version + sym,
                   .last_px = 1.25 * sym + version,
                   .state = st};
  m->len = cl_encode_state(m->val, id, part, &in, NN_CELL_LSTM, L, H);
}

static void add_marker(uint64_t id, int32_t part, uint32_t count, int64_t next, const char *sha) {
  msg *m = &log_[nlog++];
  m->klen = cl_marker_key(m->key, part);
  m->len = cl_encode_marker(m->val, id, part, count, next, sha);
}

static cl_scan *scan(const int32_t *parts, int np) {
  cl_scan *s = NULL;
  CHECK_INT(cl_scan_new(&s, NN_CELL_LSTM, L, H, SHA, parts, np), 0);
  for (int i = 0; i < nlog; i++)
    cl_scan_add(s, log_[i].key, log_[i].klen, log_[i].val, log_[i].len);
  return s;
}

/* The result of p holds exactly instruments syms[] at version ver[] (bit-exact states). */
static void check_result(cl_scan *s, int32_t p, int64_t next, const int *syms, const int *ver,
                         int n) {
  const store_inst *in;
  size_t got;
  CHECK_INT(cl_scan_result(s, p, &in, &got), next);
  CHECK_INT(got, n);
  for (int k = 0; k < n && (size_t)k < got; k++) {
    char want[40];
    snprintf(want, sizeof want, "S%d", syms[k]);
    CHECK_INT(in[k].sym_len, strlen(want));
    CHECK(memcmp(in[k].sym, want, in[k].sym_len) == 0);
    CHECK_INT(in[k].partition, p);
    CHECK_INT(in[k].n, ver[k]);
    CHECK_INT(in[k].last_ts, 1000000000LL * ver[k] + syms[k]);
    CHECK(in[k].last_px == 1.25 * syms[k] + ver[k]);
    float st[SF];
    state_of(st, syms[k], ver[k]);
    CHECK(memcmp(in[k].state, st, sizeof st) == 0);
  }
}

/* A hand-off records its states' cell: a GRU's records (L = 2, H = 10: as many floats as the
 * LSTM's L = 2, H = 5) under the same model hash are taken by a GRU reader and by no reader of
 * another cell, which counts them undecodable. */
static void test_other_cell(void) {
  enum { GH = 10 };
  float st[2 * GH];
  for (int i = 0; i < 2 * GH; i++)
    st[i] = (float)i / 8.0f;
  msg rec, mark;
  store_inst in = {.sym = "G1", .sym_len = 2, .partition = 3, .n = 7, .state = st};
  CHECK_INT(cl_state_len(NN_CELL_GRU, 2, GH), cl_state_len(NN_CELL_LSTM, L, H));
  rec.len = cl_encode_state(rec.val, 1, 3, &in, NN_CELL_GRU, 2, GH);
  mark.klen = cl_marker_key(mark.key, 3);
  mark.len = cl_encode_marker(mark.val, 1, 3, 1, 500, SHA);
  const int32_t p3[1] = {3};
  static const struct {
    int cell, L, H;
    int64_t next; /* what the reader gets for partition 3 */
  } readers[] = {
      {NN_CELL_GRU, 2, GH, 500}, {NN_CELL_LSTM, L, H, -1}, {NN_CELL_RNN_TANH, 2, GH, -1}};
  for (size_t r = 0; r < sizeof readers / sizeof *readers; r++) {
    cl_scan *s = NULL;
    CHECK_INT(cl_scan_new(&s, readers[r].cell, readers[r].L, readers[r].H, SHA, p3, 1), 0);
    cl_scan_add(s, "G1", 2, rec.val, rec.len);
    cl_scan_add(s, mark.key, mark.klen, mark.val, mark.len);
    const store_inst *got;
    size_t n;
    CHECK_INT(cl_scan_result(s, 3, &got, &n), readers[r].next);
    /* the record, and then its marker as an incomplete hand-off */
    CHECK_INT(cl_scan_bad(s), readers[r].next < 0 ? 2 : 0);
    if (readers[r].next >= 0) {
      CHECK_INT(n, 1);
      CHECK(n == 1 && got[0].n == 7 && memcmp(got[0].state, st, sizeof st) == 0);
    }
    cl_scan_free(s);
  }
}

int main(void) {
  char mk[CL_MARKER_KEY_MAX];
  CHECK_INT(cl_marker_key(mk, 12345), 14);
  CHECK(memcmp(mk, "\0handoff/12345", 14) == 0);
  CHECK_INT(cl_state_len(NN_CELL_LSTM, L, H),
            CL_STATE_FIXED + STORE_BLOB_HEADER + 4 * SF + STORE_BLOB_TRAILER + 8);

  /* Partition 0: hand-off 1 (S1, S2 at version 1, offset 100), then hand-off 3 (S1, S2, S3 at
   * version 2, offset 250) interleaved with partition 1's hand-off 2; then hand-off 4 of
   * partition 0 that lost a record (count 2, one arrived), which must not win. */
  add_state(1, 0, 1, 1);
  add_state(1, 0, 2, 1);
  add_marker(1, 0, 2, 100, SHA);
  add_state(3, 0, 1, 2);
  add_state(2, 1, 7, 5);
  add_state(3, 0, 2, 2);
  add_state(2, 1, 8, 5);
  add_state(3, 0, 3, 2);
  add_marker(2, 1, 2, 40, SHA);
  add_marker(3, 0, 3, 250, SHA);
  add_state(4, 0, 1, 3);
  add_marker(4, 0, 2, 300, SHA);
  /* Partition 2: a complete hand-off of another model only. Partition 3: records, no marker. */
  add_state(5, 2, 9, 1);
  add_marker(5, 2, 1, 10, OTHER);
  add_state(6, 3, 4, 1);

  int32_t parts[] = {0, 1, 2, 3, 5};
  cl_scan *s = scan(parts, 5);
  check_result(s, 0, 250, (const int[]){1, 2, 3}, (const int[]){2, 2, 2}, 3);
  check_result(s, 1, 40, (const int[]){7, 8}, (const int[]){5, 5}, 2);
  check_result(s, 2, -1, NULL, NULL, 0);
  check_result(s, 3, -1, NULL, NULL, 0);
  check_result(s, 5, -1, NULL, NULL, 0);
  CHECK_INT(cl_scan_bad(s), 1);         /* hand-off 4: one record of two */
  CHECK_INT(cl_scan_other_model(s), 1); /* hand-off 5 */
  cl_scan_free(s);

  /* Only partition 1 asked for: the others' messages are skipped, partition 1's result is the
   * same. */
  int32_t one[] = {1};
  s = scan(one, 1);
  check_result(s, 1, 40, (const int[]){7, 8}, (const int[]){5, 5}, 2);
  check_result(s, 0, -1, NULL, NULL, 0);
  CHECK_INT(cl_scan_bad(s), 0);
  cl_scan_free(s);

  /* A hand-off of no instruments (a partition that processed only rejected ticks) is valid. */
  nlog = 0;
  add_marker(9, 0, 0, 77, SHA);
  s = scan(parts, 1);
  check_result(s, 0, 77, NULL, NULL, 0);
  cl_scan_free(s);

  /* Damaged values: after any truncation or any single-bit flip of a record (header, fields,
   * state or seal) or of its key, the hand-off is ignored: the seal covers the key and every
   * byte. */
  int taken_wrong = 0, taken = 0, variants = 0;
  for (int cut = 0; cut <= 1; cut++) {
    msg rec, mark;
    nlog = 0;
    add_state(11, 0, 5, 4);
    add_marker(11, 0, 1, 500, SHA);
    rec = log_[0];
    mark = log_[1];
    size_t lim = cut ? rec.len : (rec.len + rec.klen) * 8;
    for (size_t k = 0; k < lim; k++) {
      msg bad = rec;
      if (cut)
        bad.len = k; /* every proper prefix */
      else if (k / 8 < rec.len)
        bad.val[k / 8] ^= (unsigned char)(1u << (k % 8));
      else
        bad.key[k / 8 - rec.len] ^= (char)(1u << (k % 8));
      cl_scan *t = NULL;
      CHECK_INT(cl_scan_new(&t, NN_CELL_LSTM, L, H, SHA, parts, 1), 0);
      cl_scan_add(t, bad.key, bad.klen, bad.val, bad.len);
      cl_scan_add(t, mark.key, mark.klen, mark.val, mark.len);
      const store_inst *in;
      size_t n;
      int64_t x = cl_scan_result(t, 0, &in, &n);
      variants++;
      if (x >= 0) {
        taken++;
        float st[SF];
        state_of(st, 5, 4);
        if (n != 1 || memcmp(in[0].state, st, sizeof st) || in[0].n != 4 || x != 500)
          taken_wrong++;
      }
      cl_scan_free(t);
    }
  }
  CHECK_INT(taken_wrong, 0);
  CHECK_INT(taken, 0);
  CHECK(variants > 1000);

  /* Random bytes, with and without the magic: ignored and counted, no crash (run under ASan by
   * make asan). */
  uint64_t x = 88172645463325252ull;
  cl_scan *t = NULL;
  CHECK_INT(cl_scan_new(&t, NN_CELL_LSTM, L, H, SHA, parts, 5), 0);
  for (int i = 0; i < 20000; i++) {
    unsigned char v[300];
    size_t len = 0;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    len = x % sizeof v;
    for (size_t k = 0; k < len; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      v[k] = (unsigned char)x;
    }
    if (len >= 5 && (i & 1)) {
      memcpy(v, "TCCL", 4);
      v[4] = (unsigned char)(1 + (i & 2) / 2);
      if (len >= 20)
        memset(v + 16, 0, 4); /* partition 0 */
    }
    cl_scan_add(t, v, len % 40, v, len);
  }
  const store_inst *in;
  size_t n;
  CHECK_INT(cl_scan_result(t, 0, &in, &n), -1);
  CHECK(cl_scan_bad(t) > 10000);
  cl_scan_free(t);
  cl_scan_free(NULL);
  test_other_cell();
  return check_done();
}
