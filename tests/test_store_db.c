/* test_store_db.c: the state database (store/store.c): bit-exact round trips of states, offsets
 * and meta; schema creation from version 0 and refusal of a newer one; refusal of corrupt,
 * truncated and foreign files; and the failure paths a running daemon meets (read-only file,
 * SQLITE_BUSY, disk full, a damaged state blob), each of which must fail without corrupting; the
 * file modes (0600 for the database and its -wal and -shm); and a state file deleted or replaced
 * under a running writer: deleted, it is healed (a complete copy at the path, then the next
 * checkpoints go there); replaced by another file, checkpoints fail with a clear error. */
#include <fcntl.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "check.h"
#include "nn/base/tc_err.h"
#include "store/store.h"

static char dir[64];
static char err[512];
static double tr[STORE_BLOB_TRACK]; /* a decoded blob's tracker */
static int ht;                      /* and whether it had one */

static const char *path_in(const char *name) {
  static char buf[4][128];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

/* xorshift, so the "random" states are reproducible and cover many bit patterns. */
static uint64_t rng = 88172645463325252ull;
static uint32_t rnd32(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 11);
}

/* A synthetic instrument set: N instruments with L x 2 x H random-bit states (finite floats plus
 * a few special patterns: -0, denormal, the largest float); every third has an interval tracker
 * (a version 3 blob), the others none (version 2). */
typedef struct fixture {
  int N, L, H;
  char (*sym)[STORE_SYM_MAX + 1];
  float *state; /* (N, L, 2, H) */
  store_inst *in;
} fixture;

static void fixture_make(fixture *f, int N, int L, int H, uint64_t n_base) {
  size_t nf = (size_t)2 * L * H;
  f->N = N, f->L = L, f->H = H;
  f->sym = calloc((size_t)N, sizeof *f->sym);
  f->state = malloc((size_t)N * nf * sizeof(float));
  f->in = calloc((size_t)N, sizeof *f->in);
  for (int i = 0; i < N; i++) {
    snprintf(f->sym[i], sizeof f->sym[i], "SYM%05d.X", i);
    for (size_t j = 0; j < nf; j++) {
      uint32_t u = rnd32();
      if ((u >> 23 & 0xff) == 0xff)
        u &= ~(1u << 30); /* keep it finite */
      memcpy(&f->state[i * nf + j], &u, 4);
    }
    if (nf >= 4) {
      uint32_t special[4] = {0x80000000u, 0x00000001u, 0x7f7fffffu, 0x00800000u};
      memcpy(&f->state[i * nf], special, sizeof special);
    }
    f->in[i] = (store_inst){.sym = f->sym[i],
                            .sym_len = strlen(f->sym[i]),
                            .partition = i % 7,
                            .n = n_base + (uint64_t)i * 3,
                            .last_ts = 1700000000000000000ll + (int64_t)i * 1000000007ll,
                            .last_px = 1.0 + i / 3.0,
                            .state = &f->state[i * nf],
                            .has_track = i % 3 == 0,
                            .track = {1.5 + i / 7.0, 0.99 + i / 3.1, 1.01 + i / 2.9}};
  }
}

static void fixture_free(fixture *f) {
  free(f->sym);
  free(f->state);
  free(f->in);
}

/* Load callback: compares each loaded instrument with the fixture, bit for bit. */
typedef struct cmp_ctx {
  const fixture *f;
  int seen, mismatched;
} cmp_ctx;

static int cmp_cb(void *ud, const store_inst *in) {
  cmp_ctx *c = ud;
  const fixture *f = c->f;
  int i = -1;
  if (in->sym_len == 10 && sscanf(in->sym, "SYM%05d", &i) == 1 && i >= 0 && i < f->N) {
    const store_inst *w = &f->in[i];
    size_t nf = (size_t)2 * f->L * f->H;
    if (in->partition != w->partition || in->n != w->n || in->last_ts != w->last_ts ||
        in->last_px != w->last_px || memcmp(in->state, w->state, nf * sizeof(float)) != 0 ||
        memcmp(in->sym, w->sym, w->sym_len) != 0 || in->has_track != w->has_track ||
        (w->has_track && memcmp(in->track, w->track, sizeof w->track) != 0))
      c->mismatched++;
  } else {
    c->mismatched++;
  }
  c->seen++;
  return 0;
}

static int count_cb(void *ud, const store_inst *in) {
  (void)in;
  ++*(int *)ud;
  return 0;
}

/* A version 1 state blob of an LSTM of L layers of H, as the encoder wrote it before the cell
 * byte (u16 version 1, u16 L); returns its length. */
static size_t blob_v1(unsigned char *buf, int L, int H, const float *state) {
  size_t n = store_blob_encode(buf, NN_CELL_LSTM, L, H, state, NULL);
  buf[4] = 1, buf[5] = 0, buf[6] = (unsigned char)L, buf[7] = 0;
  uint64_t h = XXH64(buf, n - STORE_BLOB_TRAILER, 0);
  for (int i = 0; i < 8; i++)
    buf[n - STORE_BLOB_TRAILER + i] = (unsigned char)(h >> (8 * i));
  return n;
}

static store_ckpt ckpt_of(const fixture *f, const store_offset *off, size_t noff) {
  return (store_ckpt){.inst = f->in,
                      .ninst = (size_t)f->N,
                      .off = off,
                      .noff = noff,
                      .time_ns = 1764370000123456789ll,
                      .L = f->L,
                      .H = f->H};
}

/* Opens a raw SQLite connection (the "other process" in several tests). */
static sqlite3 *raw_open(const char *p) {
  sqlite3 *db = NULL;
  if (sqlite3_open(p, &db) != SQLITE_OK) {
    fprintf(stderr, "raw open %s failed\n", p);
    exit(1);
  }
  return db;
}

static int64_t raw_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *s = NULL;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
    v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

static void test_blob(void) {
  int L = 2, H = 5;
  float st[20], back[20];
  for (int i = 0; i < 20; i++)
    st[i] = (float)(i - 7) / 3.0f;
  unsigned char buf[STORE_BLOB_HEADER + 80 + STORE_BLOB_TRAILER];
  size_t n = store_blob_encode(buf, NN_CELL_LSTM, L, H, st, NULL);
  CHECK_INT(n, sizeof buf);
  CHECK_INT(store_blob_len(NN_CELL_LSTM, L, H), sizeof buf);
  CHECK(memcmp(buf, "TCST", 4) == 0);
  CHECK(buf[4] == 2 && buf[5] == 0 && buf[6] == NN_CELL_LSTM && buf[7] == L); /* version 2 */
  /* Little-endian on the wire whatever the host: float 1/3*(0-7) = -7/3 at offset 16. */
  uint32_t u;
  memcpy(&u, &st[0], 4);
  CHECK_INT(buf[16] | buf[17] << 8 | buf[18] << 16 | (uint32_t)buf[19] << 24, u);
  CHECK_INT(store_blob_decode(buf, n, NN_CELL_LSTM, L, H, back, tr, &ht, err, sizeof err), 0);
  CHECK(memcmp(st, back, sizeof st) == 0);
  CHECK_INT(store_blob_cell(buf, n), NN_CELL_LSTM);
  /* Each kind of damage names its check. */
  CHECK_INT(store_blob_decode(buf, n, NN_CELL_LSTM, L, 6, back, tr, &ht, err, sizeof err),
            TC_EFORMAT);
  CHECK_CONTAINS(err, "has L=2 H=5, expected L=2 H=6");
  CHECK_INT(store_blob_decode(buf, n - 1, NN_CELL_LSTM, L, H, back, tr, &ht, err, sizeof err),
            TC_EFORMAT);
  CHECK_CONTAINS(err, "is 103 bytes, expected 104");
  CHECK_INT(store_blob_decode(buf, 10, NN_CELL_LSTM, L, H, back, tr, &ht, err, sizeof err),
            TC_EFORMAT);
  CHECK_CONTAINS(err, "expected at least 24");
  buf[40] ^= 0x01;
  CHECK_INT(store_blob_decode(buf, n, NN_CELL_LSTM, L, H, back, tr, &ht, err, sizeof err),
            TC_EFORMAT);
  CHECK_CONTAINS(err, "checksum");
  buf[40] ^= 0x01;
  buf[0] = 'X';
  CHECK_INT(store_blob_decode(buf, n, NN_CELL_LSTM, L, H, back, tr, &ht, err, sizeof err),
            TC_EFORMAT);
  CHECK_CONTAINS(err, "magic");
  CHECK_INT(store_blob_cell(buf, n), -1);
  buf[0] = 'T';
  buf[4] = 9;
  CHECK_INT(store_blob_decode(buf, n, NN_CELL_LSTM, L, H, back, tr, &ht, err, sizeof err),
            TC_EFORMAT);
  CHECK_CONTAINS(err, "version is 9, expected 1, 2 or 3");
  buf[4] = 2;
  buf[6] = 7;
  CHECK_INT(store_blob_decode(buf, n, NN_CELL_LSTM, L, H, back, tr, &ht, err, sizeof err),
            TC_EFORMAT);
  CHECK_CONTAINS(err, "state blob cell is 7, expected 0..3");
  buf[6] = NN_CELL_LSTM;
}

/* Version 3 blobs carry the interval tracker after the floats (three little-endian f64 before the
 * hash); a version 2 blob still loads, with none; a bad tracker is refused. */
static void test_blob_track(void) {
  int L = 1, H = 2;
  float st[4] = {0.5f, -1.25f, 3.0f, -0.0f}, back[4];
  const double t[STORE_BLOB_TRACK] = {1.6448536269514722, 99.5, 101.25};
  enum { V2 = STORE_BLOB_HEADER + 16 + STORE_BLOB_TRAILER, V3 = V2 + STORE_BLOB_TRACK_LEN };
  unsigned char b2[V2], b3[V3];
  CHECK_INT(store_blob_encode(b2, NN_CELL_LSTM, L, H, st, NULL), V2);
  CHECK_INT(store_blob_encode(b3, NN_CELL_LSTM, L, H, st, t), V3);
  CHECK(b2[4] == 2 && b3[4] == 3 && b3[5] == 0);
  CHECK(memcmp(b2 + 5, b3 + 5, V2 - 5 - STORE_BLOB_TRAILER) == 0); /* the same but the version */
  uint64_t u = 0;
  for (int i = 0; i < 8; i++)
    u |= (uint64_t)b3[STORE_BLOB_HEADER + 16 + 8 + i] << (8 * i);
  double lo;
  memcpy(&lo, &u, 8);
  CHECK_NEAR(lo, 99.5, 0); /* the second double, little-endian */
  CHECK_INT(store_blob_cell(b3, V3), NN_CELL_LSTM);
  tr[0] = -1;
  CHECK_INT(store_blob_decode(b3, V3, NN_CELL_LSTM, L, H, back, tr, &ht, err, sizeof err), 0);
  CHECK_INT(ht, 1);
  CHECK(memcmp(tr, t, sizeof t) == 0 && memcmp(back, st, sizeof st) == 0);
  /* An old blob: no tracker, and tr is left alone. */
  tr[0] = -1;
  CHECK_INT(store_blob_decode(b2, V2, NN_CELL_LSTM, L, H, back, tr, &ht, err, sizeof err), 0);
  CHECK_INT(ht, 0);
  CHECK_NEAR(tr[0], -1, 0);
  /* Lengths are per version: a version 3 header on a version 2 body, and the reverse. */
  b2[4] = 3;
  CHECK_INT(store_blob_decode(b2, V2, NN_CELL_LSTM, L, H, back, tr, &ht, err, sizeof err),
            TC_EFORMAT);
  CHECK_CONTAINS(err, "is 40 bytes, expected 64 (version 3)");
  b3[4] = 2;
  CHECK_INT(store_blob_decode(b3, V3, NN_CELL_LSTM, L, H, back, tr, &ht, err, sizeof err),
            TC_EFORMAT);
  CHECK_CONTAINS(err, "is 64 bytes, expected 40 (version 2)");
  /* A negative z or a non-finite bound is refused, checksum and all in order. */
  const double bad[2][STORE_BLOB_TRACK] = {{-0.5, 1, 2}, {1, NAN, 2}};
  for (int k = 0; k < 2; k++) {
    CHECK_INT(store_blob_encode(b3, NN_CELL_LSTM, L, H, st, bad[k]), V3);
    CHECK_INT(store_blob_decode(b3, V3, NN_CELL_LSTM, L, H, back, tr, &ht, err, sizeof err),
              TC_EFORMAT);
    CHECK_CONTAINS(err, "interval tracker");
    CHECK_INT(ht, 0);
  }
}

/* Version 1 blobs, written before the cell byte (u16 L where version 2 has the cell and L), are
 * read as an LSTM's; a blob of one cell is refused for a model of another with TC_EMODEL and a
 * message naming both; the GRU and RNN states are (L, H). */
static void test_blob_cells(void) {
  float st[40], back[40];
  for (int i = 0; i < 40; i++)
    st[i] = (float)i * 0.125f - 2.0f;
  /* A version 1 blob of L = 2, H = 5 as the old encoder wrote it. */
  unsigned char v1[STORE_BLOB_HEADER + 80 + STORE_BLOB_TRAILER];
  CHECK_INT(blob_v1(v1, 2, 5, st), sizeof v1);
  CHECK(v1[4] == 1 && v1[5] == 0 && v1[6] == 2 && v1[7] == 0);
  CHECK_INT(store_blob_cell(v1, sizeof v1), NN_CELL_LSTM);
  CHECK_INT(store_blob_decode(v1, sizeof v1, NN_CELL_LSTM, 2, 5, back, tr, &ht, err, sizeof err),
            0);
  CHECK(memcmp(back, st, 20 * sizeof *st) == 0);
  CHECK_INT(store_blob_decode(v1, sizeof v1, NN_CELL_GRU, 2, 5, back, tr, &ht, err, sizeof err),
            TC_EMODEL);
  CHECK_CONTAINS(err, "state blob holds the state of an lstm (L=2 H=5), but the model is a gru "
                      "(L=2 H=5)");
  for (int cell = NN_CELL_GRU; cell < NN_CELL_COUNT; cell++) {
    unsigned char b[STORE_BLOB_HEADER + 4 * 40 + STORE_BLOB_TRAILER];
    CHECK_INT(store_blob_floats(cell, 2, 5), 10);
    size_t n = store_blob_encode(b, cell, 2, 5, st, NULL);
    CHECK_INT(n, STORE_BLOB_HEADER + 40 + STORE_BLOB_TRAILER);
    CHECK_INT(n, store_blob_len(cell, 2, 5));
    CHECK_INT(store_blob_cell(b, n), cell);
    memset(back, 0, sizeof back);
    CHECK_INT(store_blob_decode(b, n, cell, 2, 5, back, tr, &ht, err, sizeof err), 0);
    CHECK(memcmp(back, st, 10 * sizeof *st) == 0 && back[10] == 0.0f);
    CHECK_INT(store_blob_decode(b, n, NN_CELL_LSTM, 2, 5, back, tr, &ht, err, sizeof err),
              TC_EMODEL);
    char want[120];
    snprintf(want, sizeof want, "holds the state of a %s (L=2 H=5), but the model is an lstm",
             nn_cell_name(cell));
    CHECK_CONTAINS(err, want);
  }
}

/* A state file written for one cell: meta records the cell of its binding; loading the states as
 * another cell is TC_EMODEL naming the symbol and both cells; an unknown cell is refused in meta
 * and in a checkpoint. */
static void test_cells_db(void) {
  const char *p = path_in("cells.db");
  store *st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  if (!st)
    return;
  store_meta m = {.model_sha256 =
                      "cd34000000000000000000000000000000000000000000000000000000000000",
                  .cell = NN_CELL_GRU,
                  .L = 2,
                  .H = 8};
  CHECK_INT(store_meta_set(st, &m, err, sizeof err), 0);
  memset(&m, 0, sizeof m);
  CHECK_INT(store_meta_get(st, &m, err, sizeof err), 0);
  CHECK_INT(m.cell, NN_CELL_GRU);
  m.cell = NN_CELL_COUNT;
  CHECK_INT(store_meta_set(st, &m, err, sizeof err), TC_EINVAL);
  CHECK_CONTAINS(err, "meta with cell 4");
  CHECK_INT(store_meta_get(st, &m, err, sizeof err), 0);
  CHECK_INT(m.cell, NN_CELL_GRU);
  float s0[3 * 8];
  for (int i = 0; i < 24; i++)
    s0[i] = (float)i;
  store_inst in[2] = {{.sym = "AAA", .sym_len = 3, .partition = 0, .n = 1, .state = s0},
                      {.sym = "BBB", .sym_len = 3, .partition = 1, .n = 2, .state = s0 + 8}};
  store_ckpt c = {.inst = in, .ninst = 2, .L = 2, .H = 8, .cell = NN_CELL_GRU};
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0);
  int count = 0;
  CHECK_INT(store_instruments_load(st, NN_CELL_LSTM, 2, 8, count_cb, &count, err, sizeof err),
            TC_EMODEL);
  CHECK_CONTAINS(err, ": instrument AAA: state blob holds the state of a gru (L=2 H=8), but the "
                      "model is an lstm (L=2 H=8)");
  CHECK_INT(store_instruments_load(st, NN_CELL_RNN_TANH, 2, 8, count_cb, &count, err, sizeof err),
            TC_EMODEL);
  CHECK_INT(count, 0);
  CHECK_INT(store_instruments_load(st, NN_CELL_GRU, 2, 8, count_cb, &count, err, sizeof err), 0);
  CHECK_INT(count, 2);
  count = 0;
  CHECK_INT(
      store_instruments_load_partition(st, NN_CELL_GRU, 2, 8, 1, count_cb, &count, err, sizeof err),
      0);
  CHECK_INT(count, 1);
  CHECK_INT(store_instruments_load_partition(st, NN_CELL_LSTM, 2, 8, 1, count_cb, &count, err,
                                             sizeof err),
            TC_EMODEL);
  CHECK_CONTAINS(err, ": instrument BBB: state blob holds the state of a gru");
  CHECK_INT(store_instruments_load(st, -1, 2, 8, count_cb, &count, err, sizeof err), TC_EINVAL);
  c.cell = 9;
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), TC_EINVAL);
  CHECK_CONTAINS(err, "checkpoint with cell 9");
  store_close(st);
}

static void test_round_trip(void) {
  const char *p = path_in("rt.db");
  store *st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  if (!st)
    return;
  /* A fresh file: schema at the current version, ours, no meta yet, nothing stored. */
  sqlite3 *raw = raw_open(p);
  CHECK_INT(raw_int(raw, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
  CHECK_INT(raw_int(raw, "PRAGMA application_id"), STORE_APP_ID);
  sqlite3_close(raw);
  store_meta m;
  CHECK_INT(store_meta_get(st, &m, err, sizeof err), TC_ENOENT);
  uint64_t cnt = 99;
  CHECK_INT(store_instruments_count(st, &cnt, err, sizeof err), 0);
  CHECK_INT(cnt, 0);
  store_meta w = {.model_sha256 =
                      "ab12000000000000000000000000000000000000000000000000000000000000",
                  .features = "ret,log_qty,log_dt,spread",
                  .L = 2,
                  .H = 16,
                  .app = "tickcast test"};
  CHECK_INT(store_meta_set(st, &w, err, sizeof err), 0);

  fixture f;
  fixture_make(&f, 300, 2, 16, 1);
  store_offset off[3] = {{"ticks", 0, 100}, {"ticks", 1, 2000000000000ll}, {"other", 5, 7}};
  store_ckpt c = ckpt_of(&f, off, 3);
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0);
  store_close(st);

  /* Reopen: everything back, states bit-exact. */
  st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_FULL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  if (!st)
    return;
  CHECK_INT(store_meta_get(st, &m, err, sizeof err), 0);
  CHECK_STR(m.model_sha256, "ab12000000000000000000000000000000000000000000000000000000000000");
  CHECK_STR(m.features, "ret,log_qty,log_dt,spread");
  CHECK_INT(m.L, 2);
  CHECK_INT(m.H, 16);
  CHECK_INT(m.ckpt_time_ns, 1764370000123456789ll);
  CHECK_INT(m.ckpts, 1);
  CHECK_STR(m.app, "tickcast test");
  cmp_ctx cc = {.f = &f};
  CHECK_INT(store_instruments_load(st, NN_CELL_LSTM, 2, 16, cmp_cb, &cc, err, sizeof err), 0);
  CHECK_INT(cc.seen, 300);
  CHECK_INT(cc.mismatched, 0);
  store_offset *lo = NULL;
  size_t nlo = 0;
  CHECK_INT(store_offsets_load(st, &lo, &nlo, err, sizeof err), 0);
  CHECK_INT(nlo, 3);
  if (nlo == 3) { /* ordered by topic, partition */
    CHECK_STR(lo[0].topic, "other");
    CHECK_INT(lo[0].next_offset, 7);
    CHECK_STR(lo[1].topic, "ticks");
    CHECK_INT(lo[1].partition, 0);
    CHECK_INT(lo[1].next_offset, 100);
    CHECK_INT(lo[2].next_offset, 2000000000000ll);
  }
  free(lo);

  /* A second checkpoint: changed rows replace old ones, a delete, an offset moves, a new model
   * hash, the counter and time advance. */
  float *s0 = (float *)f.in[0].state;
  s0[3] = -1.5f;
  f.in[0].n = 12345;
  f.in[0].last_px = 42.25;
  const char *del[] = {"SYM00299.X"};
  store_offset off2[1] = {{"ticks", 0, 150}};
  store_ckpt c2 = {.inst = f.in,
                   .ninst = 1,
                   .del = del,
                   .ndel = 1,
                   .off = off2,
                   .noff = 1,
                   .model_sha256 =
                       "cd34000000000000000000000000000000000000000000000000000000000000",
                   .time_ns = 5,
                   .L = 2,
                   .H = 16};
  CHECK_INT(store_checkpoint_write(st, &c2, err, sizeof err), 0);
  f.N = 299; /* the deleted one is the last */
  cc = (cmp_ctx){.f = &f};
  CHECK_INT(store_instruments_load(st, NN_CELL_LSTM, 2, 16, cmp_cb, &cc, err, sizeof err), 0);
  CHECK_INT(cc.seen, 299);
  CHECK_INT(cc.mismatched, 0);
  CHECK_INT(store_meta_get(st, &m, err, sizeof err), 0);
  CHECK_STR(m.model_sha256, "cd34000000000000000000000000000000000000000000000000000000000000");
  CHECK_STR(m.features, "ret,log_qty,log_dt,spread");
  CHECK_INT(m.ckpts, 2);
  CHECK_INT(m.ckpt_time_ns, 5);
  CHECK_INT(store_offsets_load(st, &lo, &nlo, err, sizeof err), 0);
  CHECK_INT(nlo, 3);
  if (nlo == 3)
    CHECK_INT(lo[1].next_offset, 150);
  free(lo);

  CHECK_INT(store_instruments_count(st, &cnt, err, sizeof err), 0);
  CHECK_INT(cnt, 299);

  /* A later row of the same symbol in one checkpoint wins. */
  store_inst dup[2] = {f.in[1], f.in[1]};
  dup[1].n = 777;
  store_ckpt c3 = {.inst = dup, .ninst = 2, .L = 2, .H = 16};
  CHECK_INT(store_checkpoint_write(st, &c3, err, sizeof err), 0);
  f.in[1].n = 777;
  cc = (cmp_ctx){.f = &f};
  CHECK_INT(store_instruments_load(st, NN_CELL_LSTM, 2, 16, cmp_cb, &cc, err, sizeof err), 0);
  CHECK_INT(cc.mismatched, 0);

  /* Loading with another shape is refused, naming the instrument. */
  CHECK_INT(store_instruments_load(st, NN_CELL_LSTM, 1, 16, cmp_cb, &cc, err, sizeof err),
            TC_EFORMAT);
  CHECK_CONTAINS(err, "instrument SYM");
  CHECK_CONTAINS(err, "expected L=1 H=16");

  /* A bad row is refused and nothing of its checkpoint is written. */
  store_inst bad[2] = {f.in[2], f.in[3]};
  bad[0].n = 999999;
  bad[1].sym_len = 0;
  store_ckpt c4 = {.inst = bad, .ninst = 2, .L = 2, .H = 16};
  CHECK_INT(store_checkpoint_write(st, &c4, err, sizeof err), TC_EINVAL);
  CHECK_CONTAINS(err, "expected 1..32 bytes");
  cc = (cmp_ctx){.f = &f};
  CHECK_INT(store_instruments_load(st, NN_CELL_LSTM, 2, 16, cmp_cb, &cc, err, sizeof err), 0);
  CHECK_INT(cc.mismatched, 0);

  /* clear_instruments (model reset) then the rows of the same checkpoint. */
  store_ckpt c5 = {.inst = f.in + 10, .ninst = 2, .clear_instruments = 1, .L = 2, .H = 16};
  CHECK_INT(store_checkpoint_write(st, &c5, err, sizeof err), 0);
  CHECK_INT(store_instruments_count(st, &cnt, err, sizeof err), 0);
  CHECK_INT(cnt, 2);

  /* store_reset: instruments and offsets gone, meta kept. */
  CHECK_INT(store_reset(st, err, sizeof err), 0);
  CHECK_INT(store_instruments_count(st, &cnt, err, sizeof err), 0);
  CHECK_INT(cnt, 0);
  CHECK_INT(store_offsets_load(st, &lo, &nlo, err, sizeof err), 0);
  CHECK_INT(nlo, 0);
  free(lo);
  CHECK_INT(store_meta_get(st, &m, err, sizeof err), 0);
  CHECK_STR(m.model_sha256, "cd34000000000000000000000000000000000000000000000000000000000000");
  store_close(st);
  fixture_free(&f);
}

static int top_sym_cb(void *ud, const store_inst *in) {
  char *out = ud;
  size_t used = strlen(out);
  snprintf(out + used, 256 - used, "%.*s:%" PRIu64 " ", (int)in->sym_len, in->sym, in->n);
  return 0;
}

static void test_top(void) {
  store *st = NULL;
  CHECK_INT(
      store_open(path_in("top.db"), STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  if (!st)
    return;
  fixture f;
  fixture_make(&f, 20, 1, 4, 10);
  f.in[7].n = 1000;
  f.in[3].n = 1000; /* tie: by sym */
  store_ckpt c = ckpt_of(&f, NULL, 0);
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0);
  char out[256] = "";
  CHECK_INT(store_instruments_top(st, 4, top_sym_cb, out, err, sizeof err), 0);
  CHECK_STR(out, "SYM00003.X:1000 SYM00007.X:1000 SYM00019.X:67 SYM00018.X:64 ");
  store_close(st);
  fixture_free(&f);
}

/* Version 0 files: a missing path and an empty file are created at the current version; a file
 * of ours at version 0 (application_id set, no tables) is migrated. */
static int v1_cb(void *ud, const store_inst *in) {
  int64_t *seen = ud;
  seen[0]++;
  seen[1] = in->next_offset;
  return in->n == 9 && in->state[3] == 4 ? 0 : TC_EINVAL;
}

static void test_migrations(void) {
  store *st = NULL;
  const char *p = path_in("empty.db");
  int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  close(fd);
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  store_close(st);
  sqlite3 *raw = raw_open(p);
  CHECK_INT(raw_int(raw, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
  CHECK_INT(raw_int(raw, "PRAGMA journal_mode"), 0); /* text "wal": not an integer */
  CHECK_INT(raw_int(raw, "SELECT count(*) FROM sqlite_schema WHERE name IN "
                         "('meta', 'offsets', 'instruments')"),
            3);
  sqlite3_close(raw);

  p = path_in("v0.db");
  raw = raw_open(p);
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA application_id = %d", STORE_APP_ID);
  CHECK_INT(sqlite3_exec(raw, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(raw);
  st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  store_close(st);
  raw = raw_open(p);
  CHECK_INT(raw_int(raw, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
  sqlite3_close(raw);

  /* A schema 1 file (as tickcast 0.1 wrote it) is migrated to 2 in place: its rows keep their
   * values and read back with next_offset -1 (at their partition's stored offset), the binding is
   * empty until set, its cell is the LSTM (its version 1 blobs are an LSTM's), and rows load by
   * partition. */
  p = path_in("v1.db");
  raw = raw_open(p);
  snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = 1", STORE_APP_ID);
  CHECK_INT(sqlite3_exec(raw,
                         "CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1), model_sha256 "
                         "TEXT NOT NULL DEFAULT '', features TEXT NOT NULL DEFAULT '', layers "
                         "INTEGER NOT NULL DEFAULT 0, hidden INTEGER NOT NULL DEFAULT 0, "
                         "ckpt_time_ns INTEGER NOT NULL DEFAULT 0, ckpts INTEGER NOT NULL DEFAULT "
                         "0, app TEXT NOT NULL DEFAULT '');"
                         "CREATE TABLE offsets (topic TEXT NOT NULL, partition INTEGER NOT NULL, "
                         "next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition)) WITHOUT "
                         "ROWID;"
                         "CREATE TABLE instruments (sym TEXT PRIMARY KEY NOT NULL, partition "
                         "INTEGER NOT NULL, n INTEGER NOT NULL, last_ts INTEGER NOT NULL, last_px "
                         "REAL NOT NULL, state BLOB NOT NULL);"
                         "INSERT INTO meta (id, model_sha256, layers, hidden) VALUES (1, "
                         "'ab00000000000000000000000000000000000000000000000000000000000000', 1, "
                         "2); INSERT INTO offsets VALUES ('ticks', 3, 77);",
                         NULL, NULL, NULL),
            SQLITE_OK);
  {
    unsigned char b[STORE_BLOB_HEADER + 16 + STORE_BLOB_TRAILER];
    float z[4] = {1, 2, 3, 4};
    size_t bl = blob_v1(b, 1, 2, z);
    sqlite3_stmt *ins = NULL;
    sqlite3_prepare_v2(raw, "INSERT INTO instruments VALUES ('V1', 3, 9, 10, 1.5, ?1)", -1, &ins,
                       NULL);
    sqlite3_bind_blob(ins, 1, b, (int)bl, SQLITE_STATIC);
    CHECK_INT(sqlite3_step(ins), SQLITE_DONE);
    sqlite3_finalize(ins);
  }
  CHECK_INT(sqlite3_exec(raw, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(raw);
  st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  if (st) {
    store_meta m;
    CHECK_INT(store_meta_get(st, &m, err, sizeof err), 0);
    CHECK_STR(m.model_sha256, "ab00000000000000000000000000000000000000000000000000000000000000");
    CHECK_STR(m.cluster_id, "");
    CHECK_INT(m.cell, NN_CELL_LSTM);
    CHECK_INT(store_binding_set(st, "cl-1", "ticks", err, sizeof err), 0);
    CHECK_INT(store_meta_get(st, &m, err, sizeof err), 0);
    CHECK_STR(m.cluster_id, "cl-1");
    CHECK_STR(m.input_topic, "ticks");
    m.ckpts = 5; /* meta_set keeps the binding */
    CHECK_INT(store_meta_set(st, &m, err, sizeof err), 0);
    CHECK_INT(store_meta_get(st, &m, err, sizeof err), 0);
    CHECK_STR(m.cluster_id, "cl-1");
    int64_t seen[2] = {0, 0};
    CHECK_INT(
        store_instruments_load_partition(st, NN_CELL_LSTM, 1, 2, 3, v1_cb, seen, err, sizeof err),
        0);
    CHECK_INT(seen[0], 1);
    CHECK_INT(seen[1], -1);
    seen[0] = 0;
    CHECK_INT(
        store_instruments_load_partition(st, NN_CELL_LSTM, 1, 2, 4, v1_cb, seen, err, sizeof err),
        0);
    CHECK_INT(seen[0], 0);
    store_close(st);
  }
  raw = raw_open(p);
  CHECK_INT(raw_int(raw, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
  sqlite3_close(raw);

  /* A read-only open of an empty file does not create a schema; it refuses. */
  p = path_in("empty2.db");
  fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  close(fd);
  st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_READONLY, &st, err, sizeof err),
            TC_EFORMAT);
  CHECK_CONTAINS(err, "empty file");
  struct stat sb;
  CHECK(stat(p, &sb) == 0 && sb.st_size == 0);

  /* A missing file, read-only: not found. */
  CHECK_INT(
      store_open(path_in("nope.db"), STORE_SYNC_NORMAL, STORE_OPEN_READONLY, &st, err, sizeof err),
      TC_ENOENT);
  CHECK_CONTAINS(err, "No such file");
  CHECK(st == NULL);

  /* A newer schema than ours is refused and left alone. */
  p = path_in("future.db");
  raw = raw_open(p);
  snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = 7", STORE_APP_ID);
  CHECK_INT(sqlite3_exec(raw, "CREATE TABLE instruments (x)", NULL, NULL, NULL), SQLITE_OK);
  CHECK_INT(sqlite3_exec(raw, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(raw);
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), TC_EFORMAT);
  CHECK_CONTAINS(err, "schema version 7 is newer than this tickcast supports (2)");
  raw = raw_open(p);
  CHECK_INT(raw_int(raw, "PRAGMA user_version"), 7);
  sqlite3_close(raw);
  CHECK_INT(store_sync_parse("normal"), STORE_SYNC_NORMAL);
  CHECK_INT(store_sync_parse("full"), STORE_SYNC_FULL);
  CHECK_INT(store_sync_parse("off"), -1);
  CHECK_INT(store_open(p, 0, STORE_OPEN_CREATE, &st, err, sizeof err), TC_EINVAL);
}

static void file_bytes(const char *p, unsigned char **buf, size_t *len) {
  FILE *fp = fopen(p, "rb");
  fseek(fp, 0, SEEK_END);
  *len = (size_t)ftell(fp);
  fseek(fp, 0, SEEK_SET);
  *buf = malloc(*len ? *len : 1);
  if (fread(*buf, 1, *len, fp) != *len)
    *len = 0;
  fclose(fp);
}

/* Refused files stay byte-for-byte as they were. */
static void check_refused_untouched(const char *p, const char *want) {
  unsigned char *before, *after;
  size_t nb, na;
  file_bytes(p, &before, &nb);
  store *st = NULL;
  err[0] = 0;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), TC_EFORMAT);
  CHECK(st == NULL);
  CHECK_CONTAINS(err, want);
  CHECK_CONTAINS(err, p);
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_READONLY, &st, err, sizeof err),
            TC_EFORMAT);
  CHECK_CONTAINS(err, want);
  file_bytes(p, &after, &na);
  CHECK_INT(na, nb);
  CHECK(nb == na && memcmp(before, after, nb) == 0);
  free(before);
  free(after);
}

static void test_bad_files(void) {
  /* Random bytes. */
  const char *p = path_in("random.db");
  FILE *fp = fopen(p, "wb");
  for (int i = 0; i < 8192; i++)
    fputc((int)(rnd32() & 0xff), fp);
  fclose(fp);
  check_refused_untouched(p, "not a SQLite database");

  /* Text that is no database at all. */
  p = path_in("text.db");
  fp = fopen(p, "wb");
  fputs("sym,ts,px\nEURUSD,1,1.1\n", fp);
  fclose(fp);
  check_refused_untouched(p, "not a SQLite database");

  /* A valid state file cut in half. */
  p = path_in("trunc.db");
  store *st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  fixture f;
  fixture_make(&f, 2000, 1, 64, 1);
  store_ckpt c = ckpt_of(&f, NULL, 0);
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0);
  store_close(st);
  fixture_free(&f);
  struct stat sb;
  CHECK(stat(p, &sb) == 0 && sb.st_size > 1000000);
  CHECK(access(path_in("trunc.db-wal"), F_OK) != 0); /* closed cleanly: all in the main file */
  CHECK_INT(truncate(p, sb.st_size / 2), 0);
  check_refused_untouched(p, "corrupt or truncated");

  /* A valid SQLite file of another application. */
  p = path_in("foreign.db");
  sqlite3 *raw = raw_open(p);
  CHECK_INT(sqlite3_exec(raw,
                         "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
                         "CREATE TABLE orders (id INTEGER);"
                         "INSERT INTO users VALUES (1, 'ann')",
                         NULL, NULL, NULL),
            SQLITE_OK);
  sqlite3_close(raw);
  check_refused_untouched(p, "not a tickcast state file (SQLite application_id 0x00000000, "
                             "expected 0x54434b43; tables: orders, users)");

  /* Another application's id, even with our table names. */
  p = path_in("foreign2.db");
  raw = raw_open(p);
  CHECK_INT(sqlite3_exec(raw, "PRAGMA application_id = 1234; CREATE TABLE instruments (x)", NULL,
                         NULL, NULL),
            SQLITE_OK);
  sqlite3_close(raw);
  check_refused_untouched(p, "application_id 0x000004d2");
}

/* The number of stored instruments, or -1 on error. */
static uint64_t stored_count(store *st) {
  uint64_t n = 0;
  if (store_instruments_count(st, &n, err, sizeof err) != 0)
    return (uint64_t)-1;
  return n;
}

static void test_readonly(void) {
  const char *p = path_in("ro.db");
  store *st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  fixture f;
  fixture_make(&f, 50, 1, 8, 1);
  store_ckpt c = ckpt_of(&f, NULL, 0);
  c.ninst = 10;
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0);
  store_close(st);

  /* A read-only connection (what a root-owned daemon would get on a read-only mount): the write
   * fails with TC_EIO and a clear message, and nothing changes. */
  st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_READONLY, &st, err, sizeof err), 0);
  if (!st)
    return;
  c.ninst = 50;
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), TC_EIO);
  CHECK_CONTAINS(err, "read-only");
  CHECK_INT(store_reset(st, err, sizeof err), TC_EIO);
  CHECK_INT(stored_count(st), 10);
  store_close(st);

  /* PRAGMA query_only on a read-write connection: the error comes from SQLite itself, mid-way
   * through the transaction, and is rolled back. */
  st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  CHECK_INT(sqlite3_exec(store_handle(st), "PRAGMA query_only = 1", NULL, NULL, NULL), SQLITE_OK);
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), TC_EIO);
  CHECK_CONTAINS(err, "readonly");
  CHECK_INT(stored_count(st), 10);
  CHECK_INT(sqlite3_exec(store_handle(st), "PRAGMA query_only = 0", NULL, NULL, NULL), SQLITE_OK);
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0); /* retried later: succeeds */
  CHECK_INT(stored_count(st), 50);
  store_close(st);

  /* A real chmod 0444 file as an unprivileged user (root ignores file modes, so the test drops
   * to "nobody" in a child when it runs as root). */
  c.ninst = 10;
  chmod(dir, 0777);
  chmod(p, 0444);
  pid_t pid = fork();
  if (pid == 0) {
    struct passwd *pw = getpwnam("nobody");
    if (geteuid() == 0 && (!pw || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0))
      _exit(3);
    store *s2 = NULL;
    char e2[512];
    int rc = store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &s2, e2, sizeof e2);
    if (rc == 0)
      rc = store_checkpoint_write(s2, &c, e2, sizeof e2);
    store_close(s2);
    fprintf(stderr, "  (chmod 0444 as uid %d: %s)\n", (int)getuid(), rc ? e2 : "no error");
    _exit(rc == TC_EIO ? 0 : 1);
  }
  int ws = 0;
  waitpid(pid, &ws, 0);
  if (WIFEXITED(ws) && WEXITSTATUS(ws) == 3) {
    fprintf(stderr, "  (no user nobody: chmod case skipped)\n");
  } else {
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
  }
  chmod(p, 0644);
  chmod(dir, 0700);
  st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  cmp_ctx cc = {.f = &f};
  CHECK_INT(store_instruments_load(st, NN_CELL_LSTM, 1, 8, cmp_cb, &cc, err, sizeof err), 0);
  CHECK_INT(cc.seen, 50);
  CHECK_INT(cc.mismatched, 0);
  store_close(st);
  fixture_free(&f);
}

/* One writer per file: a second read-write open is refused while the first is open; readers are
 * not; after the first closes, the second goes through. */
static void test_one_writer(void) {
  const char *p = path_in("owner.db");
  store *a = NULL, *b = NULL, *r = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &a, err, sizeof err), 0);
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &b, err, sizeof err), TC_EBUSY);
  CHECK_CONTAINS(err, "in use by another process");
  CHECK(b == NULL);
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_READONLY, &r, err, sizeof err), 0);
  store_close(r);
  store_close(a);
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &b, err, sizeof err), 0);
  store_close(b);
}

static void test_busy(void) {
  const char *p = path_in("busy.db");
  store *st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  if (!st)
    return;
  store_set_busy_timeout(st, 50);
  fixture f;
  fixture_make(&f, 100, 1, 8, 1);
  store_ckpt c = ckpt_of(&f, NULL, 0);
  /* Another connection holds the write lock. */
  sqlite3 *raw = raw_open(p);
  CHECK_INT(sqlite3_exec(raw, "BEGIN EXCLUSIVE; DELETE FROM offsets", NULL, NULL, NULL), SQLITE_OK);
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), TC_EBUSY);
  CHECK_CONTAINS(err, "locked");
  CHECK_CONTAINS(err, "retry later");
  CHECK_INT(store_reset(st, err, sizeof err), TC_EBUSY);
  CHECK_INT(stored_count(st), 0);
  CHECK_INT(sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  /* Retried after the lock is released: it goes through. */
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0);
  CHECK_INT(stored_count(st), 100);
  /* A reader holding a read transaction does not block a WAL writer (inspect while running). */
  CHECK_INT(sqlite3_exec(raw, "BEGIN; SELECT count(*) FROM instruments", NULL, NULL, NULL),
            SQLITE_OK);
  CHECK_INT(raw_int(raw, "SELECT count(*) FROM instruments"), 100);
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0);
  CHECK_INT(sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(raw);
  store_close(st);
  fixture_free(&f);
}

static void test_full(void) {
  const char *p = path_in("full.db");
  store *st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  if (!st)
    return;
  fixture f;
  fixture_make(&f, 3000, 1, 64, 1);
  store_ckpt c = ckpt_of(&f, NULL, 0);
  c.ninst = 100;
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0);
  /* The disk "fills": the file may not grow beyond a few pages. */
  sqlite3 *db = store_handle(st);
  int64_t pages = raw_int(db, "PRAGMA page_count");
  CHECK(pages > 0);
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)pages + 5);
  CHECK_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  c.ninst = 3000;
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), TC_EIO);
  CHECK_CONTAINS(err, "full");
  CHECK_INT(stored_count(st), 100); /* rolled back whole */
  /* Space frees up: the retry succeeds and everything is there. */
  CHECK_INT(sqlite3_exec(db, "PRAGMA max_page_count = 1000000000", NULL, NULL, NULL), SQLITE_OK);
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0);
  cmp_ctx cc = {.f = &f};
  CHECK_INT(store_instruments_load(st, NN_CELL_LSTM, 1, 64, cmp_cb, &cc, err, sizeof err), 0);
  CHECK_INT(cc.seen, 3000);
  CHECK_INT(cc.mismatched, 0);
  store_close(st);
  fixture_free(&f);
}

static void test_checksum(void) {
  const char *p = path_in("sum.db");
  store *st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  if (!st)
    return;
  fixture f;
  fixture_make(&f, 10, 1, 8, 1);
  store_ckpt c = ckpt_of(&f, NULL, 0);
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0);
  /* Flip one bit of one float inside a stored blob, the way a bad sector or a buggy tool would,
   * leaving the SQLite file itself valid. */
  sqlite3 *raw = raw_open(p);
  sqlite3_stmt *s = NULL;
  CHECK_INT(sqlite3_prepare_v2(raw, "SELECT state FROM instruments WHERE sym = 'SYM00004.X'", -1,
                               &s, NULL),
            SQLITE_OK);
  CHECK_INT(sqlite3_step(s), SQLITE_ROW);
  unsigned char blob[200];
  int bl = sqlite3_column_bytes(s, 0);
  CHECK_INT(bl, 16 + 64 + 8);
  memcpy(blob, sqlite3_column_blob(s, 0), (size_t)bl);
  sqlite3_finalize(s);
  blob[16 + 4 * 5 + 2] ^= 0x10;
  CHECK_INT(sqlite3_prepare_v2(raw, "UPDATE instruments SET state = ?1 WHERE sym = 'SYM00004.X'",
                               -1, &s, NULL),
            SQLITE_OK);
  sqlite3_bind_blob(s, 1, blob, bl, SQLITE_STATIC);
  CHECK_INT(sqlite3_step(s), SQLITE_DONE);
  sqlite3_finalize(s);
  sqlite3_close(raw);
  int n = 0;
  CHECK_INT(store_instruments_load(st, NN_CELL_LSTM, 1, 8, count_cb, &n, err, sizeof err),
            TC_EFORMAT);
  CHECK_CONTAINS(err, "instrument SYM00004.X: state blob checksum");
  CHECK_CONTAINS(err, "corrupted");
  store_close(st);
  fixture_free(&f);
}

static int file_mode(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 ? (int)(sb.st_mode & 0777) : -1;
}

/* The state file holds every instrument's state: only its owner may read it. A new database and
 * its -wal and -shm are created 0600 whatever the umask lets through. */
static void test_modes(void) {
  mode_t old = umask(022);
  const char *p = path_in("modes.db");
  store *st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  fixture f;
  fixture_make(&f, 5, 1, 8, 1);
  store_ckpt c = ckpt_of(&f, NULL, 0);
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0);
  char wal[160], shm[160];
  snprintf(wal, sizeof wal, "%s-wal", p);
  snprintf(shm, sizeof shm, "%s-shm", p);
  CHECK_INT(file_mode(p), 0600);
  CHECK_INT(file_mode(wal), 0600);
  CHECK_INT(file_mode(shm), 0600);
  store_close(st);
  fixture_free(&f);
  umask(old);
}

static int64_t offsets_sum(store *st) {
  store_offset *o = NULL;
  size_t n = 0;
  int64_t sum = 0;
  if (store_offsets_load(st, &o, &n, err, sizeof err) != 0)
    return -1;
  for (size_t i = 0; i < n; i++)
    sum += o[i].next_offset;
  free(o);
  return sum;
}

/* The state file is deleted (with or without its -wal and -shm) while the store is open: the
 * next check heals it with a complete copy at the path, which the next checkpoints then update,
 * and which a second writer cannot take. */
static void test_unlinked(int with_wal) {
  const char *p = path_in(with_wal ? "gone_all.db" : "gone.db");
  char wal[160], shm[160];
  snprintf(wal, sizeof wal, "%s-wal", p);
  snprintf(shm, sizeof shm, "%s-shm", p);
  store *st = NULL, *b = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  fixture f, g;
  fixture_make(&f, 200, 1, 8, 1);
  fixture_make(&g, 200, 1, 8, 1000);
  store_offset o1[2] = {{"ticks", 0, 100}, {"ticks", 1, 200}};
  store_ckpt c = ckpt_of(&f, o1, 2);
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0);
  int healed = -1;
  CHECK_INT(store_path_check(st, &healed, err, sizeof err), 0);
  CHECK_INT(healed, 0);
  CHECK_INT(unlink(p), 0);
  if (with_wal) {
    unlink(wal);
    unlink(shm);
  }
  CHECK_INT(store_path_check(st, &healed, err, sizeof err), 0);
  CHECK_INT(healed, 1);
  CHECK_CONTAINS(err, "deleted");
  CHECK_INT(file_mode(p), 0600);
  CHECK_INT(store_heals(st), 1);
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &b, err, sizeof err), TC_EBUSY);
  /* The next checkpoint goes into the file at the path, on top of the healed copy. */
  g.N = 100;
  store_offset o2[1] = {{"ticks", 1, 300}};
  store_ckpt c2 = ckpt_of(&g, o2, 1);
  CHECK_INT(store_checkpoint_write(st, &c2, err, sizeof err), 0);
  store_close(st);
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_READONLY, &st, err, sizeof err), 0);
  int n = 0;
  CHECK_INT(store_instruments_load(st, NN_CELL_LSTM, 1, 8, count_cb, &n, err, sizeof err), 0);
  CHECK_INT(n, 200);
  CHECK_INT(offsets_sum(st), 400);
  store_close(st);
  fixture_free(&f);
  fixture_free(&g);
}

/* Another file moved to the path: the store does not write into it and says why. */
static void test_replaced(void) {
  const char *p = path_in("replaced.db"), *q = path_in("other.db");
  store *st = NULL, *o = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  CHECK_INT(store_open(q, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &o, err, sizeof err), 0);
  store_close(o);
  CHECK_INT(rename(q, p), 0);
  int healed = -1;
  CHECK_INT(store_path_check(st, &healed, err, sizeof err), TC_EIO);
  CHECK_INT(healed, 0);
  CHECK_CONTAINS(err, "replaced");
  CHECK_INT(store_heals(st), 0);
  store_close(st);
}

/* Every field of a stored row is checked at load, not only the blob: a symbol of the contract's
 * alphabet (no escape bytes for inspect to print to a terminal), n >= 0, integer last_ts and
 * partition (>= -1), a finite last_px >= 0, next_offset NULL or >= 0; offsets with a partition and
 * next offset >= 0. Each bad row stops the load with TC_EFORMAT and a line naming it, its bytes
 * escaped. */
static void test_row_checks(void) {
  const char *p = path_in("rows.db");
  store *st = NULL;
  CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
  fixture f;
  fixture_make(&f, 5, 1, 8, 1);
  store_offset o[1] = {{"ticks", 0, 10}};
  store_ckpt c = ckpt_of(&f, o, 1);
  CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0);
  store_close(st);
  static const struct {
    const char *sql, *want;
  } bad[] = {
      {"UPDATE instruments SET sym = X'1B5B33316D58' WHERE sym = 'SYM00001.X'",
       "symbol \"\\x1b[31mX\" is not 1..32 bytes"},
      {"UPDATE instruments SET sym = 'A,B' WHERE sym = 'SYM00001.X'", "symbol \"A,B\""},
      {"UPDATE instruments SET n = -5 WHERE sym = 'SYM00001.X'", "n is -5"},
      {"UPDATE instruments SET last_ts = 'yesterday' WHERE sym = 'SYM00001.X'", "last_ts is text"},
      {"UPDATE instruments SET partition = -7 WHERE sym = 'SYM00001.X'", "partition is -7"},
      {"UPDATE instruments SET last_px = -1.5 WHERE sym = 'SYM00001.X'", "last_px is -1.5"},
      {"UPDATE instruments SET last_px = 'abc' WHERE sym = 'SYM00001.X'", "last_px is text"},
      {"UPDATE instruments SET next_offset = -4 WHERE sym = 'SYM00001.X'",
       "next_offset is negative"},
      {"UPDATE instruments SET next_offset = 'x' WHERE sym = 'SYM00001.X'",
       "next_offset is not an integer"},
      {"UPDATE offsets SET partition = -3", "partition -3"},
      {"UPDATE offsets SET next_offset = -1", "next offset -1"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    sqlite3 *raw = raw_open(p);
    CHECK_INT(sqlite3_exec(raw, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_exec(raw, bad[k].sql, NULL, NULL, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_READONLY, &st, err, sizeof err), 0);
    int n = 0;
    store_offset *off = NULL;
    size_t noff = 0;
    int rc = store_instruments_load(st, NN_CELL_LSTM, 1, 8, count_cb, &n, err, sizeof err);
    if (rc == 0)
      rc = store_offsets_load(st, &off, &noff, err, sizeof err);
    CHECK_INT(rc, TC_EFORMAT);
    CHECK_CONTAINS(err, bad[k].want);
    CHECK(!strchr(err, 0x1b));
    free(off);
    store_close(st);
    /* Back to the good rows. */
    st = NULL;
    CHECK_INT(store_open(p, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
    CHECK_INT(sqlite3_exec(store_handle(st), "DELETE FROM instruments", NULL, NULL, NULL),
              SQLITE_OK);
    CHECK_INT(store_checkpoint_write(st, &c, err, sizeof err), 0);
    store_close(st);
  }
  fixture_free(&f);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/test_store_XXXXXX");
  if (!mkdtemp(dir))
    return 1;
  test_blob();
  test_blob_cells();
  test_blob_track();
  test_cells_db();
  test_round_trip();
  test_top();
  test_migrations();
  test_bad_files();
  test_readonly();
  test_one_writer();
  test_busy();
  test_full();
  test_checksum();
  test_modes();
  test_unlinked(0);
  test_unlinked(1);
  test_replaced();
  test_row_checks();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  return check_done();
}
