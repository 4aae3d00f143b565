/* test_engine.c: the engine's wave scheduling gives the sequential result (the same ticks one
 * call each), whatever the chunking, up to float rounding where a large wave goes to OpenBLAS
 * (which picks kernels by batch size, so sums may associate differently: ~1e-7), and bit for bit
 * with engine_init_exact, also across engines that share the instruments (the replays'
 * --threads); out-of-order ticks are rejected
 * without touching state; n counts per instrument; features follow CONTRACT §2 (checked through a
 * model whose head reads one feature straight through); the daemon's bounds: a tick too far ahead
 * of the wall clock is future_ts (and a new instrument beyond the limit instrument_limit) without
 * touching state, and an instrument frozen by an earlier far-future tick restarts afresh. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "daemon/pipeline/engine.h"
#include "nn/base/clock.h"
#include "nn/features.h"
#include "nn/model.h"

static uint64_t rng = 12345;
static double urand(void) {
  uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

static void random_model(nn_model *m, int L, int H, int peep) {
  CHECK_INT(nn_model_init(m, L, H, peep), 0);
  for (size_t i = 0; i < m->nparams; i++)
    m->params[i] = (float)(urand() * 2 - 1) * 0.5f;
  for (int i = 0; i < NN_F; i++) {
    m->feat_mean[i] = (float)(urand() * 0.1);
    m->feat_std[i] = (float)(0.5 + urand());
  }
  m->tgt_mean[0] = 0.001f;
  m->tgt_std[0] = 0.02f;
}

#define NT 3000
#define NS 9

/* Random ticks over NS instruments, bursts of the same instrument, ~3% going back in time. */
static void make_ticks(eng_tick *t) {
  int64_t last[NS] = {0};
  double px[NS];
  for (int k = 0; k < NS; k++)
    px[k] = 10 + k;
  int k = 0;
  for (int i = 0; i < NT; i++) {
    if (urand() < 0.6)
      k = (int)(urand() * NS);
    memset(&t[i], 0, sizeof t[i]);
    t[i].t.sym_len = (uint8_t)sprintf(t[i].t.sym, "SYM%d", k);
    px[k] *= exp((urand() - 0.5) * 0.01);
    last[k] += (int64_t)(urand() * 5e9);
    t[i].t.ts = urand() < 0.03 ? last[k] - 1000000000 : last[k];
    t[i].t.px = px[k];
    t[i].t.qty = floor(urand() * 10);
    if (urand() < 0.5) {
      t[i].t.bid = px[k] * 0.999;
      t[i].t.ask = px[k] * 1.001;
      t[i].t.has_quote = 1;
    }
    t[i].partition = -1;
    t[i].reason = urand() < 0.02 ? TICK_BAD_PX : TICK_OK; /* decode rejects pass straight by */
  }
}

static void run_chunked(const nn_model *m, const eng_tick *in, eng_tick *out, int chunk_max,
                        int random_chunks, engine *e) {
  memcpy(out, in, NT * sizeof *in);
  CHECK_INT(engine_init(e, m, chunk_max), 0);
  for (int i = 0; i < NT;) {
    int n = random_chunks ? 1 + (int)(urand() * chunk_max) : chunk_max;
    if (n > NT - i)
      n = NT - i;
    CHECK_INT(engine_process(e, out + i, n), 0);
    i += n;
  }
}

static void compare(const nn_model *m, const char *what) {
  static eng_tick in[NT], seq[NT], big[NT], rnd[NT];
  make_ticks(in);
  engine e1, e2, e3;
  run_chunked(m, in, seq, 1, 0, &e1);
  run_chunked(m, in, big, NT, 0, &e2);
  run_chunked(m, in, rnd, 700, 1, &e3);
  int diff_reason = 0, diff_n = 0, accepted = 0, ooo = 0;
  double maxd = 0, maxd2 = 0;
  for (int i = 0; i < NT; i++) {
    diff_reason += seq[i].reason != big[i].reason || seq[i].reason != rnd[i].reason;
    if (seq[i].reason == TICK_OUT_OF_ORDER)
      ooo++;
    if (seq[i].reason != TICK_OK)
      continue;
    accepted++;
    diff_n += seq[i].n != big[i].n || seq[i].n != rnd[i].n;
    maxd = fmax(maxd, fabs((double)seq[i].y - big[i].y));
    maxd2 = fmax(maxd2, fabs((double)seq[i].y - rnd[i].y));
  }
  printf("%s: %d accepted, %d out of order, max |y_seq - y_waves| = %.3g (one chunk), %.3g "
         "(random chunks)\n",
         what, accepted, ooo, maxd, maxd2);
  CHECK_INT(diff_reason, 0);
  CHECK_INT(diff_n, 0);
  CHECK(ooo > 10);
  CHECK(accepted > NT / 2);
  CHECK_NEAR(maxd, 0, 1e-6);
  CHECK_NEAR(maxd2, 0, 1e-6);
  /* The final states agree too. */
  double maxs = 0;
  for (uint32_t s = 0; s < e1.st.count; s++) {
    int32_t s2 = symtab_find(&e2.st, e1.st.inst[s].sym, e1.st.inst[s].sym_len);
    CHECK(s2 >= 0);
    if (s2 < 0)
      continue;
    CHECK_INT(e1.st.inst[s].n, e2.st.inst[s2].n);
    for (size_t j = 0; j < e1.st.state_floats; j++) { /* relative: c can grow large */
      double a = symtab_state(&e1.st, s)[j], b = symtab_state(&e2.st, s2)[j];
      maxs = fmax(maxs, fabs(a - b) / fmax(1.0, fabs(a)));
    }
  }
  CHECK_NEAR(maxs, 0, 1e-6);
  CHECK_INT(e1.accepted, (uint64_t)accepted);
  CHECK_INT(e1.rejected[TICK_OUT_OF_ORDER], (uint64_t)ooo);
  engine_free(&e1);
  engine_free(&e2);
  engine_free(&e3);
}

/* With all weights zero, y = head.bias; pred_ret = bias * std + mean and pred_px = px e^pred_ret:
 * closed forms. Also n and the out-of-order rule with equal timestamps accepted. */
static void closed_form(void) {
  nn_model m;
  CHECK_INT(nn_model_init(&m, 1, 4, 0), 0);
  m.head_b[0] = 0.5f;
  m.tgt_mean[0] = 0.01f;
  m.tgt_std[0] = 0.1f;
  engine e;
  CHECK_INT(engine_init(&e, &m, 8), 0);
  eng_tick t[4];
  memset(t, 0, sizeof t);
  const int64_t ts[4] = {100, 100, 99, 200};
  for (int i = 0; i < 4; i++) {
    strcpy(t[i].t.sym, "A");
    t[i].t.sym_len = 1;
    t[i].t.ts = ts[i];
    t[i].t.px = 2.0;
    t[i].partition = 3;
  }
  CHECK_INT(engine_process(&e, t, 4), 0);
  CHECK_INT(t[0].reason, TICK_OK);
  CHECK_INT(t[1].reason, TICK_OK); /* equal ts is accepted */
  CHECK_INT(t[2].reason, TICK_OUT_OF_ORDER);
  CHECK_INT(t[3].reason, TICK_OK);
  CHECK_INT(t[0].n, 1);
  CHECK_INT(t[1].n, 2);
  CHECK_INT(t[3].n, 3);
  double pr = 0.5 * (double)0.1f + (double)0.01f;
  CHECK_NEAR(t[3].pred_ret, pr, 1e-12);
  CHECK_NEAR(t[3].pred_px, 2.0 * exp(pr), 1e-12);
  CHECK_INT(e.st.inst[t[0].slot].partition, 3);
  CHECK_INT(e.st.inst[t[0].slot].last_ts, 200);
  engine_free(&e);
  nn_model_free(&m);
}

/* A model swap takes effect at once, biases included (the LSTM scratch caches their sum): after
 * switching from a zero model to one with other biases, the next prediction equals that of a
 * fresh engine on the new model; with reset, n restarts at 1. */
static void swap_model(void) {
  nn_model a, b;
  CHECK_INT(nn_model_init(&a, 1, 4, 0), 0);
  random_model(&b, 1, 4, 0);
  engine e, f;
  CHECK_INT(engine_init(&e, &a, 4), 0);
  CHECK_INT(engine_init(&f, &b, 4), 0);
  eng_tick t[2];
  memset(t, 0, sizeof t);
  for (int i = 0; i < 2; i++) {
    strcpy(t[i].t.sym, "A");
    t[i].t.sym_len = 1;
    t[i].t.ts = 1000000000LL * (i + 1);
    t[i].t.px = 2.0 + i;
    t[i].partition = -1;
  }
  CHECK_INT(engine_process(&e, t, 1), 0);
  engine_set_model(&e, &b, 1);
  eng_tick u = t[1];
  CHECK_INT(engine_process(&e, &t[1], 1), 0);
  CHECK_INT(engine_process(&f, &u, 1), 0); /* fresh engine: u is its first tick */
  CHECK_INT(t[1].n, 1);
  CHECK(t[1].y == u.y);
  CHECK(u.y != 0.0f);
  engine_free(&e);
  engine_free(&f);
  nn_model_free(&a);
  nn_model_free(&b);
}

static void set_tick(eng_tick *t, const char *sym, int64_t ts) {
  memset(t, 0, sizeof *t);
  t->t.sym_len = (uint8_t)strlen(sym);
  memcpy(t->t.sym, sym, t->t.sym_len);
  t->t.ts = ts;
  t->t.px = 2.0;
  t->partition = 0;
  t->offset = -1;
}

/* --max-future and --max-instruments: a tick more than max_future_ns ahead of the wall clock is
 * future_ts and creates no instrument; ticks of history are accepted; a new instrument when
 * max_instruments are live is instrument_limit, while known ones go on; an instrument whose last
 * ts lies beyond the bound (accepted before the bound, or under a larger one) is not frozen: its
 * next tick restarts it afresh (n = 1, zero state). */
static void bounds(void) {
  nn_model m;
  random_model(&m, 1, 4, 0);
  engine e;
  CHECK_INT(engine_init(&e, &m, 8), 0);
  e.max_future_ns = 60 * 1000000000LL;
  e.max_instruments = 2;
  int64_t now = tc_wall_ns(), year2262 = 9200000000000000000LL;
  eng_tick t[6];
  set_tick(&t[0], "A", now - 3600 * 1000000000LL); /* an hour ago */
  set_tick(&t[1], "F", year2262);                  /* a new instrument, far ahead: no slot */
  set_tick(&t[2], "A", now + 3600 * 1000000000LL); /* an hour ahead */
  set_tick(&t[3], "B", now + 30 * 1000000000LL);   /* ahead, within the bound */
  set_tick(&t[4], "C", now);                       /* a third instrument: over the limit */
  set_tick(&t[5], "A", now);
  CHECK_INT(engine_process(&e, t, 6), 0);
  CHECK_INT(t[0].reason, TICK_OK);
  CHECK_INT(t[1].reason, TICK_FUTURE_TS);
  CHECK_INT(t[2].reason, TICK_FUTURE_TS);
  CHECK_INT(t[3].reason, TICK_OK);
  CHECK_INT(t[4].reason, TICK_INSTRUMENT_LIMIT);
  CHECK_INT(t[5].reason, TICK_OK);
  CHECK_INT(t[5].n, 2);
  CHECK_INT(e.st.live, 2);
  CHECK_INT(symtab_find(&e.st, "F", 1), -1);
  CHECK_INT(e.rejected[TICK_FUTURE_TS], 2);
  CHECK_INT(e.rejected[TICK_INSTRUMENT_LIMIT], 1);
  CHECK_INT(e.accepted, 3);
  /* A frozen instrument: B's last ts is in 2262 (as a state file of an older version holds). */
  int32_t b = symtab_find(&e.st, "B", 1);
  e.st.inst[b].last_ts = year2262;
  set_tick(&t[0], "B", now);
  set_tick(&t[1], "B", now + 1);
  CHECK_INT(engine_process(&e, t, 2), 0);
  CHECK_INT(t[0].reason, TICK_OK);
  CHECK_INT(t[0].n, 1);
  CHECK_INT(t[1].n, 2);
  CHECK_INT(e.unfrozen, 1);
  /* The same ticks in a fresh engine without any bound give the same prediction: afresh. */
  engine f;
  CHECK_INT(engine_init(&f, &m, 8), 0);
  eng_tick u = t[0];
  u.reason = TICK_OK;
  CHECK_INT(engine_process(&f, &u, 1), 0);
  CHECK(u.y == t[0].y);
  /* Without a bound (files, replay) nothing of this applies. */
  set_tick(&t[0], "F", year2262);
  CHECK_INT(engine_process(&f, t, 1), 0);
  CHECK_INT(t[0].reason, TICK_OK);
  engine_free(&e);
  engine_free(&f);
  nn_model_free(&m);
}

/* engine_init_exact: the same bits however the ticks are grouped, even where the projection of a
 * large batch would go to sgemm (Bkern forced to 64, as on an AVX2 CPU): one engine on chunks of
 * 4096 over 200 instruments (waves of up to 200), against two engines that share the instruments
 * by parity on chunks of random sizes, one tick per call, and three books (engine_swap_book) that
 * share them by sym mod 3, each chunk of a book stepped by either of two engines at random, as
 * preplay's shards move between workers. (The replays rely on this for --threads.) */
static void exact_grouping(void) {
  enum { XT = 20000, XS = 200 };
  static eng_tick in[XT], big[XT], split[XT], one[XT];
  nn_model m;
  random_model(&m, 2, 16, 0);
  for (int i = 0; i < XT; i++) {
    int k = (int)(urand() * XS);
    memset(&in[i], 0, sizeof in[i]);
    in[i].t.sym_len = (uint8_t)sprintf(in[i].t.sym, "X%d", k);
    in[i].t.ts = 1000000000LL * i;
    in[i].t.px = 10 + k + urand();
    in[i].partition = -1;
  }
  memcpy(big, in, sizeof in);
  memcpy(split, in, sizeof in);
  memcpy(one, in, sizeof in);
  engine e, f[2], g;
  CHECK_INT(engine_init_exact(&e, &m, 4096, 4096), 0);
  CHECK_INT(engine_init_exact(&f[0], &m, 4096, 4096), 0);
  CHECK_INT(engine_init_exact(&f[1], &m, 4096, 4096), 0);
  CHECK_INT(engine_init_exact(&g, &m, 1, 1), 0);
  e.w.Bkern = f[0].w.Bkern = f[1].w.Bkern = 64;
  for (int i = 0; i < XT; i += 4096)
    CHECK_INT(engine_process(&e, big + i, XT - i < 4096 ? XT - i : 4096), 0);
  for (int i = 0; i < XT; i++)
    CHECK_INT(engine_process(&g, one + i, 1), 0);
  static eng_tick part[XT]; /* each engine's ticks in input order, in random chunks */
  static int at[XT];
  for (int h = 0; h < 2; h++) {
    int n = 0;
    for (int i = 0; i < XT; i++)
      if (atoi(in[i].t.sym + 1) % 2 == h) {
        part[n] = in[i];
        at[n++] = i;
      }
    for (int i = 0; i < n;) {
      int c = 1 + (int)(urand() * 4096);
      c = c < n - i ? c : n - i;
      CHECK_INT(engine_process(&f[h], part + i, c), 0);
      i += c;
    }
    for (int i = 0; i < n; i++)
      split[at[i]] = part[i];
  }
  static eng_tick books[XT];
  memcpy(books, in, sizeof in);
  engine_book b[3];
  uint64_t accepted = 0, live = 0;
  for (int h = 0; h < 3; h++) {
    CHECK_INT(engine_book_init(&b[h], &m), 0);
    int n = 0;
    for (int i = 0; i < XT; i++)
      if (atoi(in[i].t.sym + 1) % 3 == h) {
        part[n] = in[i];
        at[n++] = i;
      }
    for (int i = 0; i < n;) {
      int c = 1 + (int)(urand() * 2000);
      c = c < n - i ? c : n - i;
      engine *w = &f[urand() < 0.5];
      engine_swap_book(w, &b[h]);
      CHECK_INT(engine_process(w, part + i, c), 0);
      engine_swap_book(w, &b[h]);
      i += c;
    }
    for (int i = 0; i < n; i++)
      books[at[i]] = part[i];
    accepted += b[h].accepted;
    live += b[h].st.live;
  }
  CHECK_INT((long long)accepted, XT);
  CHECK_INT((long long)live, (long long)e.st.live);
  CHECK_INT((long long)f[0].st.live + (long long)f[1].st.live, (long long)e.st.live);
  int diff = 0;
  for (int i = 0; i < XT; i++)
    diff += memcmp(&big[i].y, &split[i].y, sizeof(float)) != 0 ||
            memcmp(&big[i].y, &one[i].y, sizeof(float)) != 0 ||
            memcmp(&big[i].y, &books[i].y, sizeof(float)) != 0 || big[i].n != split[i].n ||
            big[i].n != books[i].n;
  printf("exact: %d of %d ticks differ in bits between one engine, two engines, one tick per "
         "call and three books swapped between two engines\n",
         diff, XT);
  CHECK_INT(diff, 0);
  for (int h = 0; h < 3; h++)
    engine_book_free(&b[h]);
  engine_free(&e);
  engine_free(&f[0]);
  engine_free(&f[1]);
  engine_free(&g);
  nn_model_free(&m);
}

/* A restored instrument skips its Kafka ticks below skip_below (already in its state): they change
 * nothing and are flagged; the ones from skip_below on are applied; file ticks (offset -1) and
 * other instruments are untouched by the rule; and the result equals an engine that never saw the
 * skipped ticks. */
static void skip_restored(void) {
  nn_model m;
  random_model(&m, 1, 6, 0);
  engine e, f;
  CHECK_INT(engine_init(&e, &m, 8), 0);
  CHECK_INT(engine_init(&f, &m, 8), 0);
  eng_tick t[6], u[6];
  memset(t, 0, sizeof t);
  for (int i = 0; i < 6; i++) {
    t[i].t.sym_len = (uint8_t)sprintf(t[i].t.sym, "%s", i % 2 ? "B" : "A");
    t[i].t.ts = 1000 + i;
    t[i].t.px = 10 + i;
    t[i].partition = 0;
    t[i].offset = 100 + i;
  }
  int32_t a = symtab_add(&e.st, "A", 1);
  e.st.inst[a].skip_below = 103; /* A's ticks at 100 and 102 are in its state already */
  CHECK_INT(engine_process(&e, t, 6), 0);
  CHECK_INT(t[0].skipped, 1);
  CHECK_INT(t[2].skipped, 1);
  CHECK_INT(t[4].skipped, 0);
  CHECK_INT(t[1].skipped + t[3].skipped + t[5].skipped, 0);
  CHECK_INT(e.skipped, 2);
  CHECK_INT(e.st.inst[a].n, 1);
  CHECK_INT(e.st.inst[a].last_ts, 1004);
  /* The same ticks without the skipped ones, on an engine that never had them. */
  int k = 0;
  for (int i = 0; i < 6; i++)
    if (!t[i].skipped)
      u[k] = t[i], u[k].offset = -1, u[k].reason = TICK_OK, k++;
  CHECK_INT(engine_process(&f, u, k), 0);
  int32_t fa = symtab_find(&f.st, "A", 1), fb = symtab_find(&f.st, "B", 1);
  int32_t eb = symtab_find(&e.st, "B", 1);
  CHECK(memcmp(symtab_state(&e.st, a), symtab_state(&f.st, fa), 12 * sizeof(float)) == 0);
  CHECK(memcmp(symtab_state(&e.st, eb), symtab_state(&f.st, fb), 12 * sizeof(float)) == 0);
  CHECK(t[4].pred_px == u[2].pred_px);
  engine_free(&e);
  engine_free(&f);
  nn_model_free(&m);
}

/* An instrument's tick in another partition than its previous one is taken and counted (moved,
 * the slot and the partition it came from); the instrument follows it; file ticks (partition -1)
 * and a first tick move nothing. */
static void partition_moves(void) {
  nn_model m;
  random_model(&m, 1, 6, 0);
  engine e;
  CHECK_INT(engine_init(&e, &m, 8), 0);
  eng_tick t[5];
  memset(t, 0, sizeof t);
  const int32_t parts[5] = {0, 0, -1, 1, 1}; /* A, B, A (a file tick), A, B */
  for (int i = 0; i < 5; i++) {
    t[i].t.sym_len = (uint8_t)sprintf(t[i].t.sym, "%s", i == 1 || i == 4 ? "B" : "A");
    t[i].t.ts = 1000 + i;
    t[i].t.px = 10 + i;
    t[i].partition = parts[i];
    t[i].offset = parts[i] < 0 ? -1 : i;
  }
  CHECK_INT(engine_process(&e, t, 3), 0);
  CHECK_INT(e.moved, 0);
  CHECK_INT(engine_process(&e, t + 3, 1), 0);
  int32_t a = symtab_find(&e.st, "A", 1), b = symtab_find(&e.st, "B", 1);
  CHECK_INT(e.moved, 1);
  CHECK_INT(e.moved_slot, a);
  CHECK_INT(e.moved_from, 0);
  CHECK_INT(e.st.inst[a].partition, 1);
  CHECK_INT(e.st.inst[a].n, 3);
  CHECK_INT(engine_process(&e, t + 4, 1), 0);
  CHECK_INT(e.moved, 2);
  CHECK_INT(e.moved_slot, b);
  CHECK_INT(e.st.inst[b].partition, 1);
  engine_free(&e);
  nn_model_free(&m);
}

/* log_dt at the ends of int64: ts - prev_ts of 2^64 - 2 ns does not fit int64 (signed overflow,
 * which UBSan reports and which once gave NaN); it is computed exactly as unsigned. */
static void features_extremes(void) {
  double raw[NN_F];
  nn_features_raw(raw, 0, 2.0, 1.0, INT64_MAX, INT64_MIN + 1, 0, 0, 0, 0);
  CHECK(isfinite(raw[2]));
  CHECK_NEAR(raw[2], log1p(18446744073709551614.0 / 1e9), 1e-12);
  nn_features_raw(raw, 0, 2.0, 1.0, 1700000000000000000LL, -1700000000000000000LL, 0, 0, 0, 0);
  CHECK_NEAR(raw[2], log1p(3.4e9), 1e-9);
  /* Ordinary values keep their exact bits. */
  nn_features_raw(raw, 0, 2.0, 1.0, 1700000001500000000LL, 1700000000000000000LL, 0, 0, 0, 0);
  CHECK(raw[2] == log1p((double)1500000000LL / 1e9));
  /* A price ratio past double's range either way: the finite log return, not +-inf (a model
   * trained on it had a NaN features.mean); ordinary ratios keep the quotient's bits. */
  nn_features_raw(raw, 0, 1e200, 1e-200, 1, 0, 0, 0, 0, 0);
  CHECK(isfinite(raw[0]));
  CHECK_NEAR(raw[0], 400 * log(10.0), 1e-9);
  nn_features_raw(raw, 0, 1e-200, 1e200, 1, 0, 0, 0, 0, 0);
  CHECK_NEAR(raw[0], -400 * log(10.0), 1e-9);
  nn_features_raw(raw, 0, 5e-324, 1.0, 1, 0, 0, 0, 0, 0);
  CHECK_NEAR(raw[0], log(5e-324), 1e-9);
  nn_features_raw(raw, 0, 1.25, 1.0, 1, 0, 0, 0, 0, 0);
  CHECK(raw[0] == log(1.25 / 1.0));
  nn_features_raw(raw, 0, 101.5, 99.25, 1, 0, 0, 0, 0, 0);
  CHECK(raw[0] == log(101.5 / 99.25));
  /* Quotes near DBL_MAX: ask + bid overflows; the spread is still (ask - bid) / mid. */
  nn_features_raw(raw, 0, 1.0, 1.0, 1, 0, 0, 1, 1e308, 1.5e308);
  CHECK_NEAR(raw[3], 0.5e308 / 1.25e308, 1e-12);
  nn_features_raw(raw, 0, 1.0, 1.0, 1, 0, 0, 1, 99.0, 101.0);
  CHECK(raw[3] == (101.0 - 99.0) / ((101.0 + 99.0) / 2.0));
}

int main(void) {
  closed_form();
  bounds();
  features_extremes();
  exact_grouping();
  swap_model();
  for (int L = 1; L <= 2; L++)
    for (int p = 0; p <= 1; p++) {
      nn_model m;
      random_model(&m, L, 16, p);
      char what[64];
      snprintf(what, sizeof what, "L=%d H=16 peephole=%d", L, p);
      compare(&m, what);
      nn_model_free(&m);
    }
  skip_restored();
  partition_moves();
  return check_done();
}
