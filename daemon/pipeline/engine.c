/* engine.c: the per-chunk pipeline of engine.h. Order checks and features run tick by tick in
 * input order (they depend on the previous accepted tick); the LSTM runs in waves, one batched
 * step per wave, where wave k holds the k-th accepted tick of every instrument in the chunk.
 * Within an instrument the waves run in order, so the result is the sequential one. */
#include "daemon/pipeline/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/pipeline/ivcal.h"
#include "daemon/pipeline/ivtrack.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"
#include "nn/features.h"

/* An engine whose LSTM scratch holds waves of up to wave_max instruments. */
static int engine_setup(engine *e, const nn_model *m, int chunk_max, int wave_max) {
  memset(e, 0, sizeof *e);
  if (chunk_max < 1 || wave_max < 1)
    return TC_EINVAL;
  e->m = m;
  e->chunk_max = chunk_max;
  size_t n = (size_t)chunk_max;
  if (nn_work_init(&e->w, m, wave_max < chunk_max ? wave_max : chunk_max) != 0 ||
      symtab_init(&e->st, nn_state_floats(m), 1024) != 0)
    goto fail;
  e->x = malloc(n * NN_F * sizeof *e->x);
  e->xb = malloc(n * NN_F * sizeof *e->xb);
  e->yb = malloc(n * sizeof *e->yb);
  e->sb = malloc(n * sizeof *e->sb);
  engine_set_interval(e, 0.9);
  e->sp = malloc(n * sizeof *e->sp);
  e->wave = malloc(n * sizeof *e->wave);
  e->order = malloc(n * sizeof *e->order);
  e->wstart = calloc(n + 2, sizeof *e->wstart);
  if (!e->x || !e->xb || !e->yb || !e->sb || !e->sp || !e->wave || !e->order || !e->wstart)
    goto fail;
  return 0;
fail:
  engine_free(e);
  return TC_ENOMEM;
}

int engine_init(engine *e, const nn_model *m, int chunk_max) {
  return engine_setup(e, m, chunk_max, chunk_max);
}

int engine_init_exact(engine *e, const nn_model *m, int chunk_max, int wave_max) {
  int rc = engine_setup(e, m, chunk_max, wave_max);
  if (rc == 0)
    e->exact = 1;
  return rc;
}

void engine_free(engine *e) {
  if (!e)
    return;
  nn_work_free(&e->w);
  symtab_free(&e->st);
  free(e->x);
  free(e->xb);
  free(e->yb);
  free(e->sb);
  free(e->sp);
  free(e->wave);
  free(e->order);
  free(e->wstart);
  free(e->occ);
  memset(e, 0, sizeof *e);
}

int engine_book_init(engine_book *b, const nn_model *m) {
  memset(b, 0, sizeof *b);
  return symtab_init(&b->st, nn_state_floats(m), 16); /* grows by doubling */
}

void engine_book_free(engine_book *b) {
  if (b)
    symtab_free(&b->st);
}

/* occ stays: it is zero between calls and engine_process grows it to the table in use. */
void engine_swap_book(engine *e, engine_book *b) {
  engine_book t = *b;
  b->st = e->st;
  b->accepted = e->accepted;
  b->skipped = e->skipped;
  memcpy(b->rejected, e->rejected, sizeof b->rejected);
  b->unfrozen = e->unfrozen;
  b->unfrozen_slot = e->unfrozen_slot;
  e->st = t.st;
  e->accepted = t.accepted;
  e->skipped = t.skipped;
  memcpy(e->rejected, t.rejected, sizeof e->rejected);
  e->unfrozen = t.unfrozen;
  e->unfrozen_slot = t.unfrozen_slot;
}

/* Keeps occ as large as the symbol table; growth is the only allocation on the tick path. */
static int occ_reserve(engine *e) {
  if (e->occ_cap >= e->st.cap)
    return 0;
  uint32_t *p = realloc(e->occ, (size_t)e->st.cap * sizeof *p);
  if (!p)
    return TC_ENOMEM;
  memset(p + e->occ_cap, 0, (size_t)(e->st.cap - e->occ_cap) * sizeof *p);
  e->occ = p;
  e->occ_cap = e->st.cap;
  return 0;
}

/* A tick the engine rejects: it touches nothing, and is counted. */
static inline void reject(engine *e, eng_tick *t, int reason) {
  t->reason = reason;
  e->rejected[reason]++;
}

/* lo_px and hi_px of tick t (pred_ret and pred_std set): with the online interval, first the
 * instrument's z learns from whether this price fell outside the interval emitted after its last
 * tick; then the interval of the next price. */
static void interval(engine *e, eng_tick *t) {
  double z = e->z;
  inst *in = &e->st.inst[t->slot];
  if (e->eta <= 0) {
    in->iv_on = 0; /* a tracker restored from a run with it on is dropped, not frozen */
    in = NULL;
  } else {
    z = in->iv_on ? ivtrack_step(in->iv[0], ivtrack_miss(t->t.px, in->iv[1], in->iv[2]), e->eta,
                                 e->interval)
                  : e->z;
    in->iv[0] = z;
  }
  ivtrack_bounds(t->t.px, t->pred_ret, t->pred_std, z, &t->lo_px, &t->hi_px);
  if (in) {
    /* A bound that overflowed (a px near DBL_MAX, a huge pred_std) is no interval to learn from,
     * and a state blob refuses it: the tracker restarts at the next tick instead. */
    in->iv_on = isfinite(t->lo_px) && isfinite(t->hi_px);
    in->iv[1] = t->lo_px;
    in->iv[2] = t->hi_px;
  }
}

/* Steps the B ticks order[b0 .. b0+B) (one per instrument) as one batch and fills in their
 * predictions. */
static void step_batch(engine *e, eng_tick *ticks, int b0, int B) {
  const nn_model *m = e->m;
  for (int b = 0; b < B; b++) {
    int i = e->order[b0 + b];
    memcpy(e->xb + (size_t)b * NN_F, e->x + (size_t)i * NN_F, NN_F * sizeof(float));
    e->sp[b] = symtab_state(&e->st, ticks[i].slot);
  }
  nn_step(m, &e->w, B, e->xb, e->sp, e->yb);
  if (m->gauss)
    nn_model_scale_out(m, B, e->sp, e->sb);
  for (int b = 0; b < B; b++) {
    eng_tick *t = &ticks[e->order[b0 + b]];
    t->y = e->yb[b];
    t->pred_ret = nn_pred_ret(m, t->y);
    t->pred_px = t->t.px * exp(t->pred_ret);
    t->has_std = (uint8_t)m->gauss;
    if (m->gauss) {
      t->pred_std = exp(0.5 * (double)e->sb[b]) * (double)m->tgt_std[0];
      interval(e, t);
    }
  }
}

int engine_process(engine *e, eng_tick *ticks, int N) {
  const nn_model *m = e->m;
  int nwaves = 0;
  if (N > e->chunk_max)
    return TC_EINVAL;
  /* The latest ts a tick may have: one clock read per chunk, and only with the bound. */
  int64_t ts_max = INT64_MAX;
  if (e->max_future_ns > 0) {
    int64_t now = tc_wall_ns();
    ts_max = now > INT64_MAX - e->max_future_ns ? INT64_MAX : now + e->max_future_ns;
  }
  /* Pass 1, in input order: find or add each instrument (adding can fail, so do all adds
   * before touching any state), then the order check, features and wave number. */
  for (int i = 0; i < N; i++) {
    eng_tick *t = &ticks[i];
    t->skipped = 0;
    if (t->reason != TICK_OK)
      continue;
    if (t->t.ts > ts_max) {
      reject(e, t, TICK_FUTURE_TS);
      continue;
    }
    int32_t s;
    if (e->max_instruments && e->st.live >= e->max_instruments) {
      if ((s = symtab_find(&e->st, t->t.sym, t->t.sym_len)) < 0) {
        reject(e, t, TICK_INSTRUMENT_LIMIT);
        continue;
      }
    } else if ((s = symtab_add(&e->st, t->t.sym, t->t.sym_len)) < 0) {
      return s;
    }
    t->slot = s;
  }
  if (occ_reserve(e) != 0)
    return TC_ENOMEM;
  for (int i = 0; i < N; i++) {
    eng_tick *t = &ticks[i];
    if (t->reason != TICK_OK)
      continue;
    inst *in = &e->st.inst[t->slot];
    t->skipped = t->offset >= 0 && t->offset < in->skip_below;
    if (t->skipped) {
      e->skipped++;
      continue;
    }
    int first = in->n == 0;
    if (!first && t->t.ts < in->last_ts) {
      if (in->last_ts <= ts_max) {
        t->prev_ts = in->last_ts;
        reject(e, t, TICK_OUT_OF_ORDER);
        continue;
      }
      /* Frozen by a tick beyond the bound: this is the instrument's first tick in the chunk (an
       * earlier one would have restarted it already), so no wave holds its state yet. */
      in->n = 0;
      in->iv_on = 0;
      memset(symtab_state(&e->st, t->slot), 0, e->st.state_floats * sizeof(float));
      first = 1;
      e->unfrozen++;
      e->unfrozen_slot = t->slot;
    }
    double raw[NN_F];
    nn_features_raw(raw, first, t->t.px, in->last_px, t->t.ts, in->last_ts, t->t.qty,
                    t->t.has_quote, t->t.bid, t->t.ask);
    nn_features_standardize(m, raw, e->x + (size_t)i * NN_F);
    in->last_ts = t->t.ts;
    in->last_px = t->t.px;
    in->n++;
    in->dirty = 1;
    if (t->partition >= 0) {
      if (in->partition >= 0 && in->partition != t->partition) {
        e->moved++;
        e->moved_slot = t->slot;
        e->moved_from = in->partition;
      }
      in->partition = t->partition;
    }
    t->n = in->n;
    int w = (int)e->occ[t->slot]++;
    e->wave[i] = w;
    if (w + 1 > nwaves)
      nwaves = w + 1;
    e->accepted++;
  }
  /* Counting sort of accepted ticks by wave; reset occ for the next chunk on the way. */
  memset(e->wstart, 0, (size_t)(nwaves + 2) * sizeof *e->wstart);
  for (int i = 0; i < N; i++)
    if (ticks[i].reason == TICK_OK && !ticks[i].skipped) {
      e->wstart[e->wave[i] + 2]++;
      e->occ[ticks[i].slot] = 0;
    }
  for (int w = 0; w < nwaves; w++)
    e->wstart[w + 2] += e->wstart[w + 1];
  for (int i = 0; i < N; i++)
    if (ticks[i].reason == TICK_OK && !ticks[i].skipped)
      e->order[e->wstart[e->wave[i] + 1]++] = i;
  /* Now wstart[w] .. wstart[w+1] is wave w in order[]. Step each wave as one batch, or in
   * batches of at most bmax instruments. */
  int bmax = e->w.Bmax;
  if (e->exact && e->w.Bkern < bmax)
    bmax = e->w.Bkern;
  for (int w = 0; w < nwaves; w++)
    for (int b0 = e->wstart[w]; b0 < e->wstart[w + 1]; b0 += bmax)
      step_batch(e, ticks, b0, e->wstart[w + 1] - b0 < bmax ? e->wstart[w + 1] - b0 : bmax);
  return 0;
}

int engine_set_interval(engine *e, double c) {
  if (!(c > 0 && c < 1))
    return TC_EINVAL;
  e->interval = c;
  e->z = ivcal_z(e->m, c);
  return 0;
}

int engine_set_adapt(engine *e, double eta) {
  if (!(eta >= 0 && isfinite(eta)))
    return TC_EINVAL;
  e->eta = eta;
  return 0;
}

void engine_set_model(engine *e, const nn_model *m, int reset) {
  e->m = m;
  e->z = ivcal_z(m, e->interval); /* the new model's calibration */
  nn_work_update(&e->w, m);       /* the scratch caches the summed biases and W_ih[0]^T */
  for (uint32_t s = 0; s < e->st.count; s++)
    e->st.inst[s].iv_on = 0; /* the tracker restarts at the new model's z */
  if (!reset)
    return;
  memset(e->st.state, 0, (size_t)e->st.count * e->st.state_floats * sizeof(float));
  for (uint32_t s = 0; s < e->st.count; s++) {
    e->st.inst[s].n = 0;
    e->st.inst[s].dirty = 1;
  }
}
