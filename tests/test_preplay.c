/* test_preplay.c: the replay pipeline of daemon/pipeline/preplay.h, driven directly, writes the
 * same predictions and notes the same rejects, in the same order, for any number of workers,
 * shards and chunk size: one worker with one shard (the order of a sequential replay) against
 * shards that are fewer than the workers, not a multiple of them, one per record's chunk, capped
 * at PREPLAY_MAX_SHARDS, and chunks of 1 to 8192 records. The input holds 1,500 instruments (the
 * shards' symbol tables grow while swapped into the workers' engines), rejected, blank and
 * out-of-order lines; a second input has 3 instruments (fewer than the workers). The shards' logs
 * are laid out by the longest entry the output can have, so the outputs with the longest entries
 * are replayed too: JSON Lines with the syms kept and a src escaped to its 300 bytes, and CSV rows
 * of a model with the scale head (random weights: numbers of every length). A third input has
 * lines of up to 4.2 MB, which outgrow a chunk's text buffer and the logs placed after the text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "daemon/pipeline/preplay.h"
#include "ingest/tickfile.h"
#include "nn/model.h"
#include "nn/safetensors/safetensors.h"

typedef union seen_line { /* a cache line each: the workers write them */
  tickfile_ts_seen s;
  char pad[64];
} seen_line;

typedef struct run {
  tickfile tf;
  seen_line *seen; /* (2 threads + 1) */
  char *out;       /* the predictions, as emitted */
  size_t len, cap;
} run;

static int decode(void *ud, int worker, const char *bytes, const preplay_rec *rec, tick *t,
                  int *reason, char *err, size_t errlen) {
  run *r = ud;
  return tickfile_decode(&r->tf, (uint64_t)rec->pos, bytes + rec->off, rec->len, t, reason,
                         &r->seen[worker].s, err, errlen);
}

static int route(void *ud, const char *bytes, const preplay_rec *rec, const char **sym,
                 size_t *len) {
  run *r = ud;
  return tickfile_sym_hint(&r->tf, bytes + rec->off, rec->len, sym, len);
}

static int emit(void *ud, const preplay_rec *rec, const char *sym, size_t symlen, const char *text,
                size_t len) {
  (void)rec;
  run *r = ud;
  if (r->len + symlen + 1 + len > r->cap) {
    r->cap = 2 * (r->len + symlen + 1 + len);
    r->out = realloc(r->out, r->cap);
    if (!r->out)
      return 1;
  }
  if (sym) { /* kept syms go into the output too, before their prediction */
    memcpy(r->out + r->len, sym, symlen);
    r->out[r->len + symlen] = '|';
    r->len += symlen + 1;
  }
  memcpy(r->out + r->len, text, len);
  r->len += len;
  return 0;
}

/* What one replay gave. */
typedef struct result {
  char *out;
  size_t len;
  reject_tally rej;
  uint64_t read, accepted;
  uint32_t instruments;
} result;

/* How the predictions are written: CSV rows, or JSON Lines with the syms passed to emit and a src
 * of quotes and backslashes (escaped to 300 bytes). */
static int out_jsonl;
static char long_src[200];

static void replay(const char *path, const nn_model *m, int threads, int shards, int chunk,
                   result *res) {
  run r = {0};
  char err[256];
  memset(res, 0, sizeof *res);
  reject_tally_init(&res->rej);
  res->rej.quiet = 1;
  r.seen = calloc(2 * (size_t)threads + 1, sizeof *r.seen);
  CHECK(r.seen != NULL);
  CHECK_INT(tickfile_open(&r.tf, path, err, sizeof err), 0);
  const preplay_cfg cfg = {.m = m,
                           .threads = threads,
                           .shards = shards,
                           .chunk = chunk,
                           .jsonl = out_jsonl,
                           .keep_sym = out_jsonl,
                           .src = out_jsonl ? long_src : path,
                           .src_max = 300,
                           .rej = &res->rej,
                           .route = route,
                           .decode = decode,
                           .emit = emit,
                           .ud = &r};
  preplay *p;
  CHECK_INT(preplay_new(&p, &cfg), 0);
  int rc = 1;
  preplay_chunk *c;
  while (rc > 0 && (c = preplay_acquire(p))) {
    rc = preplay_fill_lines(p, c, &r.tf);
    preplay_submit(p, c);
  }
  CHECK(rc == 0);
  CHECK_INT(preplay_finish(p), 0);
  res->out = r.out;
  res->len = r.len;
  res->read = preplay_read(p);
  res->accepted = preplay_accepted(p);
  res->instruments = preplay_instruments(p);
  preplay_destroy(p);
  tickfile_close(&r.tf);
  free(r.seen);
}

/* Writes the test's input to a new temporary file named into path (char[64]): n lines of k
 * instruments with a rejected line every 97th, a blank every 89th and an out-of-order tick every
 * 211th; with wide, every 701st line is a rejected price of 0.1 to 4.2 MB (a chunk's text, and
 * its logs after the text, outgrow the room they started with). */
static void write_input(char *path, int n, int k, int wide) {
  strcpy(path, "/tmp/test_preplay.XXXXXX");
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  FILE *f = fdopen(fd, "w");
  CHECK(f != NULL);
  fprintf(f, "sym,ts,px\n");
  unsigned x = 12345;
  for (int i = 1; i <= n; i++) {
    x = x * 1103515245u + 12345u;
    int s = (int)((x >> 8) % (unsigned)k);
    long long ts = 1700000000000000000LL + 1000000000LL * i - (i % 211 == 0 ? 5000000000000LL : 0);
    if (i % 89 == 0) {
      fprintf(f, "\n");
    } else if (wide && i % 701 == 0) {
      fprintf(f, "I%d,%lld,", s, ts);
      for (unsigned j = 0, len = 100000 + (x >> 4) % 4100000; j < len; j++)
        fputc('a' + (int)(j % 7), f);
      fputc('\n', f);
    } else if (i % 97 == 0) {
      fprintf(f, "I%d,%lld,not-a-price\n", s, ts);
    } else {
      fprintf(f, "I%d,%lld,%.4f\n", s, ts, 100.0 + s + 0.01 * (double)(x % 1000));
    }
  }
  fclose(f);
}

static void compare(const result *a, const result *b, const char *what) {
  int same = a->len == b->len && memcmp(a->out, b->out, a->len) == 0;
  printf("%s: %zu bytes of predictions, %s; %llu read, %llu accepted, %u instruments, %llu "
         "rejected\n",
         what, b->len, same ? "identical" : "DIFFERENT", (unsigned long long)b->read,
         (unsigned long long)b->accepted, b->instruments, (unsigned long long)b->rej.total);
  CHECK(same);
  CHECK_INT((long long)b->read, (long long)a->read);
  CHECK_INT((long long)b->accepted, (long long)a->accepted);
  CHECK_INT(b->instruments, a->instruments);
  CHECK_INT((long long)b->rej.total, (long long)a->rej.total);
  for (int r = 0; r < TICK_NREASONS; r++) {
    CHECK_INT((long long)b->rej.n[r], (long long)a->rej.n[r]);
    for (int k = 0; k < REJECT_FIRST; k++)
      CHECK_INT((long long)b->rej.first[r][k].pos, (long long)a->rej.first[r][k].pos);
  }
}

/* A model of the fixture's shape with the scale head and random weights. */
static void gauss_model(nn_model *g) {
  CHECK_INT(nn_model_init_head(g, NN_CELL_LSTM, 2, 16, 0, 1), 0);
  unsigned x = 777;
  for (size_t i = 0; i < g->nparams; i++) {
    x = x * 1103515245u + 12345u;
    g->params[i] = (float)((x >> 8) & 0xFFFF) / 65536.0f - 0.5f;
  }
  for (int i = 0; i < NN_F; i++) /* positive, as a trained model's */
    g->feat_std[i] = 1;
  *g->tgt_std = 0.01f;
}

int main(void) {
  nn_model m, g;
  char err[256], many[64], few[64], wide[64];
  if (nn_model_load(&m, "tests/fixtures/nn_l2_h16_peep.safetensors", err, sizeof err) != 0) {
    fprintf(stderr, "test_preplay: %s\n", err);
    return 1;
  }
  gauss_model(&g);
  for (size_t i = 0; i + 1 < sizeof long_src; i++)
    long_src[i] = i % 2 ? '"' : '\\';
  write_input(many, 30000, 1500, 0);
  write_input(few, 6000, 3, 0);
  write_input(wide, 6000, 3, 1);
  /* threads, shards (0: the default), chunk (0: the default) */
  static const int cases[][3] = {{2, 0, 0},  {2, 1, 0},  {3, 5, 100},     {4, 7, 1},
                                 {8, 0, 64}, {2, 3, 37}, {5, 4096, 8192}, {16, 9999, 500}};
  /* output (0 CSV, 1 JSON Lines), model (0 the fixture, 1 with the scale head); the first two
   * outputs run every case, the others the first and the last three */
  static const int outs[][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
  const char *files[] = {many, few, wide};
  for (int o = 0; o < 4; o++)
    for (int f = 0; f < 3; f++) {
      const nn_model *mm = outs[o][1] ? &g : &m;
      out_jsonl = outs[o][0];
      result ref;
      replay(files[f], mm, 1, 1, 0, &ref);
      CHECK(ref.accepted > 0 && ref.rej.n[TICK_OUT_OF_ORDER] > 0 && ref.rej.total > 0);
      CHECK_INT(ref.instruments, f == 0 ? 1500 : 3);
      if (f == 2) /* the 8 wide lines are rejects, as every 97th line */
        CHECK_INT((long long)ref.rej.n[TICK_BAD_PX], 8 + 6000 / 97 - 6000 / (89 * 97));
      if (out_jsonl) /* the src is in every object, escaped to its 300 bytes */
        CHECK(ref.len > 300 * ref.accepted);
      for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (o >= 2 && i > 0 && i < sizeof cases / sizeof cases[0] - 3)
          continue;
        result r;
        char what[160];
        replay(files[f], mm, cases[i][0], cases[i][1], cases[i][2], &r);
        snprintf(what, sizeof what, "%s, %s%s instruments%s, threads %d, shards %d, chunk %d",
                 out_jsonl ? "JSON Lines" : "CSV", outs[o][1] ? "scale head, " : "",
                 f == 0 ? "1500" : "3", f == 2 ? " and wide lines" : "", cases[i][0], cases[i][1],
                 cases[i][2]);
        compare(&ref, &r, what);
        free(r.out);
      }
      free(ref.out);
    }
  unlink(many);
  unlink(few);
  unlink(wide);
  nn_model_free(&m);
  nn_model_free(&g);
  return check_done();
}
