/* test_changelog.c: the changelog records and the restore of daemon/kafka/changelog.h. A toy
 * deterministic "model" (each instrument's state folds its ticks) runs over input partitions and
 * checkpoints to an in-memory log as the daemon does: records of the instruments changed since the
 * last checkpoint with o_A = max(O, skip), then a marker. A restore from that log (as written,
 * after the writer died between records and marker, after compaction keeps only the latest value
 * per key, with other partitions, another model, the earlier format and damaged values mixed in,
 * with a state file ahead of or behind the changelog), followed by consuming from the resume
 * offset with the per-instrument skips, must end with exactly the states of one uninterrupted run.
 * Every toy instrument also carries an online interval tracker (a version 3 blob in its records),
 * which must come back with its state. Also: encoded states come back bit for bit, damaged or
 * random values are ignored and counted, never taken, and a checkpoint of one cell is never
 * restored into a model of another. */
#include <stdlib.h>
#include <xxhash.h>

#include "check.h"
#include "daemon/kafka/changelog.h"

enum { L = 1, H = 3, SF = L * 2 * H, K = 12 /* instruments per partition */, N = 400 };
static unsigned char SHA[32], OTHER[32];

typedef struct msg {
  char key[40];
  size_t klen;
  unsigned char val[256];
  size_t len;
} msg;

static msg log_[20000];
static int nlog;

/* The ticks of partition p: offset o belongs to one of K instruments ("P<p>S<k>"), a fixed
 * pseudo-random sequence. */
static int inst_of(int p, int o) {
  uint32_t v = (uint32_t)(o * 2654435761u) ^ (uint32_t)(p * 40503u);
  return (int)((v >> 7) % K);
}

/* The toy model's state of one instrument, and one step of it. */
typedef struct toy {
  uint64_t n;
  int64_t ts;
  double px;
  float st[SF];
  double iv[3]; /* the interval tracker: z, lo_px, hi_px */
  int64_t skip; /* restored: ticks below are already in */
  int dirty;
} toy;

static void step(toy *t, int p, int o) {
  t->n++;
  t->ts = 1000 + o;
  t->px = 1.5 + o;
  for (int i = 0; i < SF; i++)
    t->st[i] = t->st[i] * 0.5f + (float)(o * (i + 1) + p);
  t->iv[0] = t->iv[0] * 0.75 + 0.001 * o + p;
  t->iv[1] = t->px - 0.25;
  t->iv[2] = t->px + 0.25;
}

/* One member's view of a partition: the instruments, what it processed. */
typedef struct member {
  int p;
  toy inst[K];
  int64_t pnext; /* next offset to process */
} member;

static void sym_of(char *buf, size_t cap, int p, int k, size_t *len) {
  *len = (size_t)snprintf(buf, cap, "P%dS%d", p, k);
}

/* Consumes offsets [pnext, to): each tick of an instrument applies unless below its skip. */
static void consume(member *m, int64_t to) {
  for (int64_t o = m->pnext; o < to; o++) {
    toy *t = &m->inst[inst_of(m->p, (int)o)];
    if (o < t->skip)
      continue;
    step(t, m->p, (int)o);
    t->dirty = 1;
  }
  m->pnext = to;
}

/* Toy instrument t of partition p, named sym, as a row of the state file or a changelog record. */
static store_inst toy_inst(const char *sym, size_t sl, int p, const toy *t) {
  return (store_inst){.sym = sym,
                      .sym_len = sl,
                      .partition = p,
                      .n = t->n,
                      .last_ts = t->ts,
                      .last_px = t->px,
                      .state = t->st,
                      .has_track = 1,
                      .track = {t->iv[0], t->iv[1], t->iv[2]}};
}

static void put_state(int p, int k, const toy *t, int64_t next, const unsigned char *sha) {
  msg *m = &log_[nlog++];
  sym_of(m->key, sizeof m->key, p, k, &m->klen);
  store_inst in = toy_inst(m->key, m->klen, p, t);
  m->len = cl_encode_state(m->val, p, next, sha, &in, NN_CELL_LSTM, L, H);
}

static void put_marker(int p, int64_t next, int64_t base) {
  msg *m = &log_[nlog++];
  m->klen = cl_marker_key(m->key, p);
  cl_marker mk = {.part = p, .next = next, .base = base, .since_base = 1, .instruments = K};
  m->len = cl_encode_marker(m->val, &mk, SHA, NN_CELL_LSTM);
}

/* A checkpoint at the member's pnext: records of the changed instruments (o_A = max(O, skip)),
 * then the marker, unless die_after >= 0 (the writer dies after that many records). */
static void checkpoint(member *m, int die_after) {
  int written = 0;
  for (int k = 0; k < K; k++) {
    toy *t = &m->inst[k];
    if (!t->dirty)
      continue;
    if (die_after >= 0 && written == die_after)
      return;
    put_state(m->p, k, t, m->pnext > t->skip ? m->pnext : t->skip, SHA);
    t->dirty = 0;
    written++;
  }
  if (die_after < 0)
    put_marker(m->p, m->pnext, 0);
}

/* Keeps only the latest message per key, in log order (what compaction leaves). */
static void compact(void) {
  int w = 0;
  for (int i = 0; i < nlog; i++) {
    int later = 0;
    for (int j = i + 1; j < nlog && !later; j++)
      later = log_[j].klen == log_[i].klen && !memcmp(log_[j].key, log_[i].key, log_[i].klen);
    if (!later)
      log_[w++] = log_[i];
  }
  nlog = w;
}

/* Restores partitions ps from the log (and the file rows of fm at offset file_next when fm is not
 * NULL) into new members, checks the resume offset, consumes to N and compares with the
 * uninterrupted run. */
static void restore_and_check(const int *ps, int np, const member *fm, int64_t file_next,
                              const int64_t *want_R, int want_from_cl) {
  int32_t parts[8];
  for (int i = 0; i < np; i++)
    parts[i] = ps[i];
  cl_restore *r = NULL;
  CHECK_INT(cl_restore_new(&r, NN_CELL_LSTM, L, H, SHA, parts, np), 0);
  if (!r)
    return;
  for (int i = 0; i < nlog; i++)
    cl_restore_add(r, i, log_[i].key, log_[i].klen, log_[i].val, log_[i].len);
  if (fm) {
    cl_restore_file_offset(r, fm->p, file_next);
    for (int k = 0; k < K; k++) {
      if (!fm->inst[k].n)
        continue;
      char sym[40];
      size_t sl;
      sym_of(sym, sizeof sym, fm->p, k, &sl);
      store_inst in = toy_inst(sym, sl, fm->p, &fm->inst[k]);
      CHECK_INT(cl_restore_add_file_inst(r, &in, file_next, 0), 0);
    }
  }
  int64_t Rs[8];
  for (int i = 0; i < np; i++) {
    int from_cl = -1;
    cl_marker mk;
    Rs[i] = cl_restore_resume(r, ps[i], 0, &from_cl, &mk);
    CHECK_INT(Rs[i], want_R[i]);
    CHECK_INT(from_cl, want_from_cl);
  }
  symtab *t = cl_restore_table(r);
  for (int i = 0; i < np; i++) {
    int64_t R = Rs[i];
    member m = {.p = ps[i], .pnext = R < 0 ? 0 : R};
    for (int k = 0; k < K; k++) {
      char sym[40];
      size_t sl;
      sym_of(sym, sizeof sym, ps[i], k, &sl);
      int32_t s = symtab_find(t, sym, sl);
      if (s < 0)
        continue;
      m.inst[k].n = t->inst[s].n;
      m.inst[k].ts = t->inst[s].last_ts;
      m.inst[k].px = t->inst[s].last_px;
      m.inst[k].skip = t->inst[s].skip_below;
      memcpy(m.inst[k].st, symtab_state(t, s), sizeof m.inst[k].st);
      CHECK_INT(t->inst[s].iv_on, 1);
      memcpy(m.inst[k].iv, t->inst[s].iv, sizeof m.inst[k].iv);
    }
    consume(&m, N);
    member one = {.p = ps[i]};
    consume(&one, N);
    int differ = 0;
    for (int k = 0; k < K; k++)
      differ += m.inst[k].n != one.inst[k].n || m.inst[k].ts != one.inst[k].ts ||
                memcmp(m.inst[k].st, one.inst[k].st, sizeof one.inst[k].st) != 0 ||
                memcmp(m.inst[k].iv, one.inst[k].iv, sizeof one.inst[k].iv) != 0;
    if (differ)
      fprintf(stderr, "partition %d resumed at %lld: %d instruments differ\n", ps[i], (long long)R,
              differ);
    CHECK_INT(differ, 0);
  }
  cl_restore_free(r);
}

/* A restore of partition p fed the whole log (changelog offset = log index + off0). */
static cl_restore *feed(int32_t p, int64_t off0) {
  cl_restore *r = NULL;
  CHECK_INT(cl_restore_new(&r, NN_CELL_LSTM, L, H, SHA, &p, 1), 0);
  for (int i = 0; r && i < nlog; i++)
    cl_restore_add(r, off0 + i, log_[i].key, log_[i].klen, log_[i].val, log_[i].len);
  return r;
}

/* A checkpoint of a GRU of 2 layers of H (as many floats per state as the LSTM's L = 1, H: the
 * records are as long) under the same model hash, for partition 7: taken by a GRU reader, bit for
 * bit, and by no reader of another cell, which counts its records and marker as another model's
 * and restores nothing (no state, no resume offset). A record whose header names the reader's
 * cell but whose state blob is the GRU's (resealed) is damaged: not taken either. */
static void test_other_cell(void) {
  enum { GL = 2, NREC = 4 };
  CHECK_INT(cl_state_len(NN_CELL_GRU, GL, H), cl_state_len(NN_CELL_LSTM, L, H));
  float st[NREC][GL * H];
  msg recs[NREC + 1];
  for (int k = 0; k < NREC; k++) {
    for (int i = 0; i < GL * H; i++)
      st[k][i] = (float)(k * 10 + i) / 8.0f - 1.0f;
    msg *m = &recs[k];
    sym_of(m->key, sizeof m->key, 7, k, &m->klen);
    store_inst in = {
        .sym = m->key, .sym_len = m->klen, .partition = 7, .n = 5 + (uint64_t)k, .state = st[k]};
    m->len = cl_encode_state(m->val, 7, 120, SHA, &in, NN_CELL_GRU, GL, H);
    CHECK_INT(m->val[5], NN_CELL_GRU);
  }
  msg *mark = &recs[NREC];
  mark->klen = cl_marker_key(mark->key, 7);
  cl_marker mk = {.part = 7,
                  .next = 120,
                  .base = 0,
                  .since_base = NREC + 1,
                  .instruments = NREC,
                  .records = NREC};
  mark->len = cl_encode_marker(mark->val, &mk, SHA, NN_CELL_GRU);
  static const struct {
    int cell, L;
  } readers[] = {
      {NN_CELL_GRU, GL}, {NN_CELL_LSTM, L}, {NN_CELL_RNN_TANH, GL}, {NN_CELL_RNN_RELU, GL}};
  for (size_t q = 0; q < sizeof readers / sizeof *readers; q++) {
    int32_t p7 = 7;
    cl_restore *r = NULL;
    CHECK_INT(cl_restore_new(&r, readers[q].cell, readers[q].L, H, SHA, &p7, 1), 0);
    if (!r)
      return;
    for (int i = 0; i <= NREC; i++)
      cl_restore_add(r, i, recs[i].key, recs[i].klen, recs[i].val, recs[i].len);
    int gru = readers[q].cell == NN_CELL_GRU, fc;
    cl_marker m;
    CHECK_INT(cl_restore_resume(r, 7, 0, &fc, &m), gru ? 120 : -1);
    const cl_restore_stats *cs = cl_restore_get_stats(r);
    CHECK_INT(cs->other_model, gru ? 0 : NREC + 1);
    CHECK_INT(cs->records, gru ? NREC : 0);
    CHECK_INT(cs->bad, 0);
    symtab *t = cl_restore_table(r);
    CHECK_INT(t->live, gru ? NREC : 0);
    for (int k = 0; gru && k < NREC; k++) {
      int32_t s = symtab_find(t, recs[k].key, recs[k].klen);
      CHECK(s >= 0 && t->inst[s].n == 5 + (uint64_t)k && t->inst[s].skip_below == 120 &&
            memcmp(symtab_state(t, s), st[k], sizeof st[k]) == 0);
    }
    cl_restore_free(r);
  }
  /* The GRU's record relabelled as an LSTM's in its header, resealed: the blob says GRU. */
  msg forged = recs[0];
  forged.val[5] = NN_CELL_LSTM;
  uint64_t seal = XXH64(forged.val, forged.len - 8, XXH64(forged.key, forged.klen, 0));
  for (int i = 0; i < 8; i++)
    forged.val[forged.len - 8 + i] = (unsigned char)(seal >> (8 * i));
  int32_t p7 = 7;
  cl_restore *r = NULL;
  CHECK_INT(cl_restore_new(&r, NN_CELL_LSTM, L, H, SHA, &p7, 1), 0);
  if (!r)
    return;
  cl_restore_add(r, 0, forged.key, forged.klen, forged.val, forged.len);
  cl_restore_add(r, 1, mark->key, mark->klen, mark->val, mark->len);
  int fc;
  cl_marker m;
  CHECK_INT(cl_restore_resume(r, 7, 0, &fc, &m), -1);
  CHECK_INT(cl_restore_get_stats(r)->bad, 1);
  CHECK_INT(cl_restore_get_stats(r)->other_model, 1); /* the GRU's marker */
  CHECK_INT(cl_restore_table(r)->live, 0);
  cl_restore_free(r);
}

/* Partition 9 checkpointed at 100 under model OTHER, then swapped to SHA with
 * --on-model-change keep: 3 ticks on, a checkpoint at 103 under SHA of the instruments they
 * changed. A reader of SHA alone resumes at 103 with those only; one that also takes OTHER
 * (cl_restore_accept_earlier) resumes there with every instrument at the uninterrupted run's
 * state, OTHER's without their interval tracker and to be written again (dirty 1), the others with
 * it (dirty 2: the file lacks them). Of OTHER's log alone it resumes at OTHER's marker. At an equal
 * offset the running model's fact wins over an earlier model's file row, in either order. */
static void test_earlier_model(void) {
  nlog = 0;
  member m = {.p = 9};
  consume(&m, 100);
  for (int k = 0; k < K; k++) {
    put_state(9, k, &m.inst[k], 100, OTHER);
    m.inst[k].dirty = 0;
  }
  msg *mm = &log_[nlog++];
  mm->klen = cl_marker_key(mm->key, 9);
  cl_marker x = {.part = 9, .next = 100, .base = 0, .since_base = K + 1, .instruments = K};
  mm->len = cl_encode_marker(mm->val, &x, OTHER, NN_CELL_LSTM);
  int old_end = nlog, nchanged = 0, changed[K];
  consume(&m, 103);
  for (int k = 0; k < K; k++)
    nchanged += changed[k] = m.inst[k].dirty;
  checkpoint(&m, -1);
  CHECK(nchanged > 0 && nchanged < K);
  for (int q = 0; q < 5; q++) {
    int32_t p9 = 9;
    cl_restore *r = NULL;
    CHECK_INT(cl_restore_new(&r, NN_CELL_LSTM, L, H, SHA, &p9, 1), 0);
    if (!r)
      return;
    int accept = q != 0, upto = q == 2 ? old_end : nlog, file_first = q == 3, file_last = q == 4;
    if (accept)
      CHECK_INT(cl_restore_accept_earlier(r, OTHER), 0);
    /* An earlier model's file rows at 103 with another n (q 3: before the log, q 4: after). */
    for (int pass = 0; pass < 2; pass++) {
      if ((pass == 0 && file_first) || (pass == 1 && file_last)) {
        cl_restore_file_offset(r, 9, 103);
        for (int k = 0; k < K; k++) {
          char sym[40];
          size_t sl;
          sym_of(sym, sizeof sym, 9, k, &sl);
          store_inst in = {.sym = sym,
                           .sym_len = sl,
                           .partition = 9,
                           .n = m.inst[k].n + 1000,
                           .state = m.inst[k].st};
          if (changed[k])
            CHECK_INT(cl_restore_add_file_inst(r, &in, 103, 1), 0);
        }
      }
      for (int i = 0; pass == 0 && i < upto; i++)
        cl_restore_add(r, i, log_[i].key, log_[i].klen, log_[i].val, log_[i].len);
    }
    int fc;
    cl_marker mk;
    CHECK_INT(cl_restore_resume(r, 9, 0, &fc, &mk), q == 2 ? 100 : 103);
    const cl_restore_stats *cs = cl_restore_get_stats(r);
    CHECK_INT(cs->other_model, accept ? 0 : K + 1);
    CHECK_INT(cs->earlier, accept ? K + 1 : 0);
    symtab *t = cl_restore_table(r);
    CHECK_INT(t->live, accept ? K : nchanged);
    member one = {.p = 9};
    consume(&one, q == 2 ? 100 : 103);
    for (int k = 0; k < K; k++) {
      char sym[40];
      size_t sl;
      sym_of(sym, sizeof sym, 9, k, &sl);
      int32_t s = symtab_find(t, sym, sl);
      if (s < 0) {
        CHECK(!accept && !changed[k]);
        continue;
      }
      int of_sha = changed[k] && q != 2;
      CHECK(t->inst[s].n == one.inst[k].n && t->inst[s].last_ts == one.inst[k].ts &&
            memcmp(symtab_state(t, s), one.inst[k].st, sizeof one.inst[k].st) == 0);
      CHECK_INT(t->inst[s].iv_on, of_sha);
      CHECK_INT(t->inst[s].dirty, of_sha ? (q >= 3 ? 0 : 2) : 1);
    }
    cl_restore_free(r);
  }
  /* The state file's rows of the running model at 100 beside OTHER's records at 100: the file's
   * win (with their trackers), and each is written again (dirty 1), since the changelog holds it
   * under OTHER only, which a process started with SHA would not take. */
  int32_t p9 = 9;
  cl_restore *r = NULL;
  CHECK_INT(cl_restore_new(&r, NN_CELL_LSTM, L, H, SHA, &p9, 1), 0);
  if (!r)
    return;
  CHECK_INT(cl_restore_accept_earlier(r, OTHER), 0);
  member at100 = {.p = 9};
  consume(&at100, 100);
  cl_restore_file_offset(r, 9, 100);
  for (int k = 0; k < K; k++) {
    char sym[40];
    size_t sl;
    sym_of(sym, sizeof sym, 9, k, &sl);
    store_inst in = toy_inst(sym, sl, 9, &at100.inst[k]);
    CHECK_INT(cl_restore_add_file_inst(r, &in, 100, 0), 0);
  }
  for (int i = 0; i < old_end; i++)
    cl_restore_add(r, i, log_[i].key, log_[i].klen, log_[i].val, log_[i].len);
  int fc;
  cl_marker mk;
  CHECK_INT(cl_restore_resume(r, 9, 0, &fc, &mk), 100);
  symtab *t = cl_restore_table(r);
  CHECK_INT(t->live, K);
  for (uint32_t s = 0; s < t->count; s++)
    if (t->inst[s].live) {
      CHECK_INT(t->inst[s].iv_on, 1);
      CHECK_INT(t->inst[s].dirty, 1);
      CHECK_INT(cl_restore_from_changelog(r, s), 0);
    }
  cl_restore_free(r);
}

/* Partition p checkpointed every 37 offsets up to `upto`, the writer dying after 3 records of the
 * checkpoint at `upto` + 37 (its ticks were processed and acknowledged: the records are facts). */
static member writer_run(int p, int upto) {
  member m = {.p = p};
  for (int o = 37; o <= upto; o += 37) {
    consume(&m, o);
    checkpoint(&m, -1);
  }
  consume(&m, m.pnext + 37);
  checkpoint(&m, 3);
  return m;
}

int main(void) {
  memset(SHA, 0x3f, 32);
  memset(OTHER, 0x9a, 32);
  char mk[CL_MARKER_KEY_MAX];
  CHECK_INT(cl_marker_key(mk, 12345), 11);
  CHECK(memcmp(mk, "\0ckpt/12345", 11) == 0);
  CHECK_INT(cl_state_len(NN_CELL_LSTM, L, H),
            CL_STATE_FIXED + STORE_BLOB_HEADER + 4 * SF + STORE_BLOB_TRAILER + 8);

  /* 1. One writer, died mid-checkpoint: resume at its last marker (37 * 6 = 222); the three
   * records of the unfinished checkpoint are ahead and their ticks are skipped. */
  nlog = 0;
  member w0 = writer_run(0, 222);
  (void)w0;
  restore_and_check((const int[]){0}, 1, NULL, -1, (const int64_t[]){222}, 1);
  /* ... the same after compaction. */
  compact();
  restore_and_check((const int[]){0}, 1, NULL, -1, (const int64_t[]){222}, 1);

  /* 2. Interleaved partitions, records of another model, old-format hand-off records, random
   * bytes: partitions 1 and 2 restored together. */
  nlog = 0;
  member a = {.p = 1}, b = {.p = 2};
  for (int o = 20; o <= 300; o += 20) {
    consume(&a, o);
    consume(&b, o + 3);
    checkpoint(&a, -1);
    checkpoint(&b, -1);
    if (o == 100) { /* a record and a marker of another model, as after a model change */
      put_state(1, 0, &a.inst[0], 900, OTHER);
      msg *m = &log_[nlog++];
      m->klen = cl_marker_key(m->key, 1);
      cl_marker x = {.part = 1, .next = 950};
      m->len = cl_encode_marker(m->val, &x, OTHER, NN_CELL_LSTM);
      m = &log_[nlog++]; /* the earlier hand-off format: kind 2 */
      memcpy(m->val, "TCCL\2\0\0\0", 8);
      m->len = 120;
      m->klen = 3;
    }
  }
  restore_and_check((const int[]){1, 2}, 2, NULL, -1, (const int64_t[]){300, 303}, 1);
  {
    int32_t ps[2] = {1, 2};
    cl_restore *r = NULL;
    cl_restore_new(&r, NN_CELL_LSTM, L, H, SHA, ps, 2);
    for (int i = 0; i < nlog; i++)
      cl_restore_add(r, i, log_[i].key, log_[i].klen, log_[i].val, log_[i].len);
    CHECK_INT(cl_restore_get_stats(r)->other_model, 2);
    CHECK_INT(cl_restore_get_stats(r)->old_format, 1);
    CHECK_INT(cl_restore_get_stats(r)->markers, 30);
    cl_restore_free(r);
  }
  compact();
  restore_and_check((const int[]){2, 1}, 2, NULL, -1, (const int64_t[]){303, 300}, 1);

  /* 3. The state file: behind the changelog (the changelog decides, its states are fresher), and
   * ahead of it (a changelog that lost its newest records: the file decides). */
  nlog = 0;
  member f = {.p = 3};
  consume(&f, 100);
  checkpoint(&f, -1);
  member file_at_100 = f;
  consume(&f, 250);
  checkpoint(&f, -1);
  restore_and_check((const int[]){3}, 1, &file_at_100, 100, (const int64_t[]){250}, 1);
  member g = {.p = 3};
  consume(&g, 80);
  nlog = 0;
  checkpoint(&g, -1); /* the changelog only has offset 80 */
  restore_and_check((const int[]){3}, 1, &file_at_100, 100, (const int64_t[]){100}, 0);

  /* 4. A marker whose base was dropped by retention is not used; a file then decides, and the
   * restore marks every instrument for rewriting (dirty 1). */
  nlog = 0;
  member h = {.p = 4};
  consume(&h, 50);
  int has = 0;
  for (int k = 0; k < K; k++)
    if (h.inst[k].dirty)
      put_state(4, k, &h.inst[k], 50, SHA), h.inst[k].dirty = 0, has++;
  put_marker(4, 50, 10);
  {
    cl_restore *r = feed(4, 10);
    int fc;
    cl_marker m;
    CHECK_INT(cl_restore_resume(r, 4, 11, &fc, &m), -1); /* base 10 < low 11: unusable */
    CHECK_INT(m.part, -1);
    symtab *t = cl_restore_table(r);
    int dirty1 = 0;
    for (uint32_t s = 0; s < t->count; s++)
      dirty1 += t->inst[s].live && t->inst[s].dirty == 1;
    CHECK_INT(dirty1, has);
    cl_restore_free(r);
    r = feed(4, 10);
    CHECK_INT(cl_restore_resume(r, 4, 10, &fc, &m), 50);
    CHECK_INT(m.base, 10);
    t = cl_restore_table(r);
    dirty1 = 0;
    int dirty2 = 0;
    for (uint32_t s = 0; s < t->count; s++)
      dirty1 += t->inst[s].live && t->inst[s].dirty == 1,
          dirty2 += t->inst[s].live && t->inst[s].dirty == 2;
    CHECK_INT(dirty1, 0);
    CHECK_INT(dirty2, has); /* no state file: it lacks them all */
    cl_restore_free(r);
  }

  /* 5. The input topic was deleted and recreated: the old stream's records (offsets up to 300)
   * stay in a changelog that is not compacted; the member that found its resume offset outside
   * the new topic reset the partition and wrote a full checkpoint of the new stream (base = its
   * first record) and markers at the new, lower offsets. The latest marker wins, the old records
   * (higher o_A, but before the base) are detected as stale, and a second reading without them
   * restores the new stream exactly. */
  nlog = 0;
  member old = {.p = 6};
  for (int o = 50; o <= 300; o += 50) {
    consume(&old, o);
    checkpoint(&old, -1);
  }
  member fresh = {.p = 6};
  consume(&fresh, 40);
  int64_t base = nlog;
  for (int k = 0; k < K; k++) /* the full checkpoint: every instrument of the new stream */
    if (fresh.inst[k].n)
      put_state(6, k, &fresh.inst[k], 40, SHA), fresh.inst[k].dirty = 0;
  put_marker(6, 40, base);
  {
    cl_restore *r = feed(6, 0);
    int fc;
    cl_marker m;
    CHECK_INT(cl_restore_resume(r, 6, 0, &fc, &m), 40); /* the latest marker, not the largest */
    CHECK_INT(m.base, base);
    uint32_t stale = cl_restore_stale(r, 6);
    CHECK(stale > 0);
    CHECK_INT(cl_marker_floor(&m), base);
    cl_restore_refloor(r, 6, cl_marker_floor(&m));
    /* A row of the file alone (the changelog never had it) takes a slot the refloor freed: the
     * offsets of the dropped instrument that held it must not make it look written there. */
    float zero[SF];
    memset(zero, 0, sizeof zero);
    store_inst fo = {.sym = "FILEONLY", .sym_len = 8, .partition = 6, .n = 3, .state = zero};
    CHECK_INT(cl_restore_add_file_inst(r, &fo, 40, 0), 0);
    for (int i = 0; i < nlog; i++) /* fed again */
      cl_restore_add(r, i, log_[i].key, log_[i].klen, log_[i].val, log_[i].len);
    CHECK_INT(cl_restore_resume(r, 6, 0, &fc, &m), 40);
    CHECK_INT(cl_restore_stale(r, 6), 0);
    symtab *t = cl_restore_table(r);
    int32_t fs = symtab_find(t, "FILEONLY", 8);
    CHECK(fs >= 0);
    if (fs >= 0)
      CHECK_INT(t->inst[fs].dirty, 1); /* the changelog lacks it: the next checkpoint writes it */
    int differ = 0, n = 0;
    for (int k = 0; k < K; k++) {
      char sym[40];
      size_t sl;
      sym_of(sym, sizeof sym, 6, k, &sl);
      int32_t s = symtab_find(t, sym, sl);
      if (!fresh.inst[k].n) {
        differ += s >= 0;
        continue;
      }
      n++;
      differ += s < 0 || t->inst[s].n != fresh.inst[k].n || t->inst[s].skip_below != 40 ||
                memcmp(symtab_state(t, s), fresh.inst[k].st, sizeof fresh.inst[k].st) != 0;
    }
    CHECK(n > 0);
    CHECK_INT(differ, 0);
    cl_restore_free(r);
  }

  /* ... and when the new stream had no instrument yet at its first checkpoint (a marker that
   * relies on no record, base INT64_MAX): everything before that marker is the old stream's. */
  nlog = 0;
  member old2 = {.p = 6};
  consume(&old2, 200);
  checkpoint(&old2, -1);
  int64_t at = nlog;
  put_marker(6, 0, INT64_MAX);
  {
    cl_restore *r = feed(6, 0);
    int fc;
    cl_marker m;
    CHECK_INT(cl_restore_resume(r, 6, 0, &fc, &m), 0);
    CHECK_INT(cl_marker_floor(&m), at);
    CHECK(cl_restore_stale(r, 6) > 0);
    cl_restore_refloor(r, 6, cl_marker_floor(&m));
    for (int i = 0; i < nlog; i++) /* fed again */
      cl_restore_add(r, i, log_[i].key, log_[i].klen, log_[i].val, log_[i].len);
    CHECK_INT(cl_restore_resume(r, 6, 0, &fc, &m), 0);
    CHECK_INT(cl_restore_table(r)->live, 0);
    cl_restore_free(r);
  }

  /* 6. Damaged values: after any truncation or any single-bit flip of a record (header, fields,
   * state or seal) or of its key, the record is not taken: the seal covers the key and every
   * byte. */
  int taken = 0, variants = 0;
  for (int cut = 0; cut <= 1; cut++) {
    nlog = 0;
    toy t = {.n = 4};
    for (int i = 0; i < SF; i++)
      t.st[i] = (float)i / 3.0f;
    put_state(5, 1, &t, 500, SHA);
    msg rec = log_[0];
    size_t lim = cut ? rec.len : (rec.len + rec.klen) * 8;
    for (size_t k = 0; k < lim; k++) {
      msg bad = rec;
      if (cut)
        bad.len = k;
      else if (k / 8 < rec.len)
        bad.val[k / 8] ^= (unsigned char)(1u << (k % 8));
      else
        bad.key[k / 8 - rec.len] ^= (char)(1u << (k % 8));
      int32_t p5 = 5;
      cl_restore *r = NULL;
      cl_restore_new(&r, NN_CELL_LSTM, L, H, SHA, &p5, 1);
      cl_restore_add(r, 0, bad.key, bad.klen, bad.val, bad.len);
      int fc;
      cl_marker m;
      cl_restore_resume(r, 5, -1, &fc, &m);
      symtab *tab = cl_restore_table(r);
      variants++;
      taken += tab->live > 0;
      cl_restore_free(r);
    }
  }
  CHECK_INT(taken, 0);
  CHECK(variants > 1000);
  /* Cut short and sealed again, in a buffer of exactly its length (so that ASan sees any read
   * beyond it): a state record of 60-67 bytes passes the seal and the header, and must be
   * refused by its length before its fixed fields are read. */
  for (size_t len = 56; len <= 72; len++) {
    msg rec = log_[0];
    unsigned char *v = malloc(len);
    if (!v)
      break;
    memcpy(v, rec.val, len - 8);
    uint64_t seal = XXH64(v, len - 8, XXH64(rec.key, rec.klen, 0));
    for (int i = 0; i < 8; i++)
      v[len - 8 + i] = (unsigned char)(seal >> (8 * i));
    int32_t p5 = 5;
    cl_restore *r = NULL;
    CHECK_INT(cl_restore_new(&r, NN_CELL_LSTM, L, H, SHA, &p5, 1), 0);
    cl_restore_add(r, 0, rec.key, rec.klen, v, len);
    CHECK_INT(cl_restore_table(r)->live, 0);
    CHECK_INT(cl_restore_get_stats(r)->bad, 1);
    cl_restore_free(r);
    free(v);
  }

  /* 7. Random bytes, with and without the magic: ignored and counted, no crash. */
  uint64_t x = 88172645463325252ull;
  int32_t p0 = 0;
  cl_restore *r = NULL;
  CHECK_INT(cl_restore_new(&r, NN_CELL_LSTM, L, H, SHA, &p0, 1), 0);
  for (int i = 0; i < 20000; i++) {
    unsigned char v[300];
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t len = x % sizeof v;
    for (size_t k = 0; k < len; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      v[k] = (unsigned char)x;
    }
    if (len >= 60 && (i & 1)) {
      memcpy(v, "TCCL", 4);
      v[4] = (unsigned char)(3 + (i & 2) / 2);
      memset(v + 8, 0, 4);
      memcpy(v + 20, SHA, 32);
    }
    cl_restore_add(r, i, v, len % 40, v, len);
  }
  int fc;
  cl_marker m;
  CHECK_INT(cl_restore_resume(r, 0, -1, &fc, &m), -1);
  CHECK_INT(cl_restore_table(r)->live, 0);
  CHECK(cl_restore_get_stats(r)->bad > 10000);
  cl_restore_free(r);
  cl_restore_free(NULL);

  /* 8. A checkpoint of another cell under the same hash. */
  test_other_cell();
  test_earlier_model();
  return check_done();
}
