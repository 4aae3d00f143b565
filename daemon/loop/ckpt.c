/* ckpt.c: snapshot on the loop thread, write on libuv's thread pool, merge after failure; model
 * binding and restore at start-up. See ckpt.h for the rule on acknowledged predictions.
 * Not for SQL (store/store.c) nor for scheduling checkpoints (ckpt_sched.c). */
#include "daemon/loop/ckpt.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/pipeline/version.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"

_Static_assert(STORE_SYM_MAX == TICK_SYM_MAX, "store and ingest agree on the longest symbol");

struct ckpt {
  uv_loop_t *loop; /* the daemon's loop */
  store *st;       /* not owned */
  int cell, L, H;  /* state shape: NN_CELL_*, layers, hidden size */
  size_t sf;       /* floats per state, nn_state_floats */
  /* The snapshot arena: parallel arrays, grown by doubling, reused across checkpoints. */
  store_inst *inst; /* (cap) rows; sym and state pointers are set on the pool thread */
  char (*sym)[STORE_SYM_MAX + 1]; /* (cap) symbols */
  int32_t *slot;                  /* (cap) symtab slot of each row, for merging after a failure */
  float *state;                   /* (cap, sf) copied states */
  size_t nrows, cap;
  store_offset *off; /* (off_cap) offsets of the snapshot */
  size_t noff, off_cap;
  char model_sha256[65]; /* new model hash to record with the snapshot, "" for none */
  int clear_instruments; /* the snapshot starts by deleting all stored instruments */
  int carry;             /* the arena holds a snapshot (failed or kept) to merge into the next */
  char pend_model[65];   /* from ckpt_model_changed, picked up by the next take */
  int pend_clear;        /* from ckpt_model_changed with reset, picked up by the next take */
  int64_t snap_wall_ns;  /* wall clock of the snapshot */
  uint64_t snap_mono_ns; /* uv_hrtime() of the snapshot */
  /* The write in flight. */
  uv_work_t work;
  uv_mutex_t mu; /* guards wstate, status, err between the pool and the loop */
  uv_cond_t cv;
  int wstate;          /* 0 idle, 1 queued or writing, 2 written but not yet completed */
  int in_flight;       /* submitted and its after-work callback not yet run */
  int status;          /* result of the last write */
  double write_us;     /* its duration */
  double write_cpu_us; /* its CPU time */
  char err[256];       /* message of the last write's failure */
  ckpt_done_fn cb;     /* called on the loop thread when the submitted write ends */
  void *ud;            /* cb's argument */
  ckpt_stats stats;    /* for ckpt_get_stats */
};

int ckpt_new(ckpt **out, uv_loop_t *loop, store *st, const nn_model *m) {
  *out = NULL;
  ckpt *ck = calloc(1, sizeof *ck);
  if (!ck)
    return TC_ENOMEM;
  ck->loop = loop;
  ck->st = st;
  ck->cell = m->cell;
  ck->L = m->L;
  ck->H = m->H;
  ck->sf = nn_state_floats(m);
  int mu_ok = uv_mutex_init(&ck->mu) == 0;
  if (!mu_ok || uv_cond_init(&ck->cv) != 0) {
    if (mu_ok)
      uv_mutex_destroy(&ck->mu);
    free(ck);
    return TC_ENOMEM;
  }
  ck->work.data = ck;
  *out = ck;
  return 0;
}

void ckpt_destroy(ckpt *ck) {
  if (!ck)
    return;
  assert(!ck->in_flight && "ckpt_destroy before the last write's completion ran");
  free(ck->inst);
  free(ck->sym);
  free(ck->slot);
  free(ck->state);
  free(ck->off);
  uv_cond_destroy(&ck->cv);
  uv_mutex_destroy(&ck->mu);
  free(ck);
}

int ckpt_reserve(ckpt *ck, size_t n) {
  if (n <= ck->cap)
    return 0;
  size_t cap = ck->cap ? ck->cap : 64;
  while (cap < n)
    cap *= 2;
  store_inst *in = realloc(ck->inst, cap * sizeof *in);
  if (!in)
    return TC_ENOMEM;
  ck->inst = in;
  char(*sym)[STORE_SYM_MAX + 1] = realloc(ck->sym, cap * sizeof *sym);
  if (!sym)
    return TC_ENOMEM;
  ck->sym = sym;
  int32_t *slot = realloc(ck->slot, cap * sizeof *slot);
  if (!slot)
    return TC_ENOMEM;
  ck->slot = slot;
  float *state = realloc(ck->state, cap * ck->sf * sizeof *state);
  if (!state)
    return TC_ENOMEM;
  /* Touch the new pages now, so the first copy into them does not pay the page faults. */
  memset(state + ck->cap * ck->sf, 0, (cap - ck->cap) * ck->sf * sizeof *state);
  memset(sym + ck->cap, 0, (cap - ck->cap) * sizeof *sym);
  ck->state = state;
  ck->cap = cap;
  return 0;
}

int ckpt_busy(const ckpt *ck) {
  return ck->in_flight;
}

const store_offset *ckpt_offsets(const ckpt *ck, size_t *n) {
  *n = ck->noff;
  return ck->off;
}

int ckpt_model_change_pending(const ckpt *ck) {
  return ck->pend_model[0] != 0;
}

size_t ckpt_snapshot_rows(const ckpt *ck) {
  return ck->nrows;
}

const char *ckpt_snapshot_model(const ckpt *ck) {
  return ck->model_sha256[0] ? ck->model_sha256 : NULL;
}

const ckpt_stats *ckpt_get_stats(const ckpt *ck) {
  return &ck->stats;
}

double ckpt_age_s(const ckpt *ck) {
  if (!ck->stats.last_ok_mono_ns)
    return -1;
  return (double)(uv_hrtime() - ck->stats.last_ok_mono_ns) / 1e9;
}

void ckpt_model_hex(const nn_model *m, char hex[65]) {
  static const char dig[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = dig[m->sha256[i] >> 4];
    hex[2 * i + 1] = dig[m->sha256[i] & 15];
  }
  hex[64] = 0;
}

void ckpt_model_changed(ckpt *ck, const nn_model *m, int reset) {
  ckpt_model_hex(m, ck->pend_model);
  if (reset)
    ck->pend_clear = 1;
}

/* Merges the offsets off[0..noff) into the snapshot's: same (topic, partition) replaced, others
 * appended. Few partitions, so a linear search is fine. */
static int offsets_merge(ckpt *ck, const store_offset *off, size_t noff) {
  for (size_t i = 0; i < noff; i++) {
    size_t j = 0;
    while (j < ck->noff && !(ck->off[j].partition == off[i].partition &&
                             strcmp(ck->off[j].topic, off[i].topic) == 0))
      j++;
    if (j == ck->noff) {
      if (ck->noff == ck->off_cap) {
        size_t cap = ck->off_cap ? 2 * ck->off_cap : 16;
        store_offset *o = realloc(ck->off, cap * sizeof *o);
        if (!o)
          return TC_ENOMEM;
        ck->off = o;
        ck->off_cap = cap;
      }
      ck->noff++;
    }
    ck->off[j] = off[i];
  }
  return 0;
}

/* The snapshot copy. With a carried (failed) snapshot in the arena, its rows whose instrument
 * changed again are dropped (a fresh copy follows) and the rest kept, so the next write covers
 * both. */
static int take(ckpt *ck, symtab *t, const store_offset *off, size_t noff) {
  uint64_t t0 = uv_hrtime();
  double c0 = tc_thread_cpu_us();
  assert(t->state_floats == ck->sf);
  size_t n = 0;
  if (ck->carry) {
    for (size_t i = 0; i < ck->nrows; i++) {
      int32_t s = ck->slot[i];
      if ((uint32_t)s < t->count && t->inst[s].live && t->inst[s].dirty)
        continue;
      if (n != i) {
        ck->inst[n] = ck->inst[i];
        memcpy(ck->sym[n], ck->sym[i], sizeof ck->sym[n]);
        ck->slot[n] = s;
        memcpy(ck->state + n * ck->sf, ck->state + i * ck->sf, ck->sf * sizeof(float));
      }
      n++;
    }
    ck->nrows = n;
  } else {
    ck->noff = 0;
    ck->model_sha256[0] = 0;
    ck->clear_instruments = 0;
  }
  /* Grow once for the worst case so the copy loop below never reallocates. */
  if (ckpt_reserve(ck, n + t->live) != 0)
    return TC_ENOMEM;
  if (offsets_merge(ck, off, noff) != 0)
    return TC_ENOMEM;
  const size_t sf = ck->sf;
  inst *tin = t->inst;
  for (uint32_t s = 0; s < t->count; s++) {
    inst *in = &tin[s];
    if (!in->dirty)
      continue;
    in->dirty = 0;
    if (!in->live)
      continue;
    store_inst *r = &ck->inst[n];
    r->sym_len = in->sym_len;
    r->partition = in->partition;
    r->n = in->n;
    r->last_ts = in->last_ts;
    r->last_px = in->last_px;
    memcpy(ck->sym[n], in->sym, sizeof ck->sym[n]);
    ck->slot[n] = (int32_t)s;
    memcpy(ck->state + n * sf, t->state + (size_t)s * sf, sf * sizeof(float));
    n++;
  }
  ck->nrows = n;
  if (ck->pend_model[0]) {
    memcpy(ck->model_sha256, ck->pend_model, sizeof ck->model_sha256);
    ck->pend_model[0] = 0;
  }
  if (ck->pend_clear) {
    ck->clear_instruments = 1;
    ck->pend_clear = 0;
  }
  ck->carry = 0;
  ck->snap_wall_ns = tc_wall_ns();
  ck->snap_mono_ns = uv_hrtime();
  double us = (double)(ck->snap_mono_ns - t0) / 1e3;
  ck->stats.last_copy_us = us;
  ck->stats.last_copy_cpu_us = tc_thread_cpu_us() - c0;
  if (us > ck->stats.max_copy_us)
    ck->stats.max_copy_us = us;
  return 0;
}

int ckpt_take(ckpt *ck, symtab *t, const store_offset *off, size_t noff) {
  if (ck->in_flight)
    return TC_EBUSY;
  return take(ck, t, off, noff);
}

/* Loop thread: gives up a taken snapshot that was not submitted (see ckpt.h). Its rows' slots
 * are marked dirty again, so the next take copies those instruments' current states; a model
 * hash or a clear it picked up goes back to pending; its offsets are dropped. */
void ckpt_untake(ckpt *ck, symtab *t) {
  assert(!ck->in_flight);
  for (size_t i = 0; i < ck->nrows; i++) {
    int32_t s = ck->slot[i];
    if ((uint32_t)s < t->count && t->inst[s].live)
      t->inst[s].dirty = 1;
  }
  if (ck->model_sha256[0] && !ck->pend_model[0])
    memcpy(ck->pend_model, ck->model_sha256, sizeof ck->pend_model);
  if (ck->clear_instruments)
    ck->pend_clear = 1;
  ck->nrows = 0;
  ck->noff = 0;
  ck->model_sha256[0] = 0;
  ck->clear_instruments = 0;
  ck->carry = 0;
}

void ckpt_carry(ckpt *ck) {
  ck->carry = 1;
}

/* Any thread: writes the snapshot in the arena. The pointers into the arena are set here rather
 * than during the copy, to keep the loop thread's part minimal. */
static int write_snapshot(ckpt *ck, char *err, size_t errlen, double *us, double *cpu) {
  uint64_t t0 = uv_hrtime();
  double c0 = tc_thread_cpu_us();
  for (size_t i = 0; i < ck->nrows; i++) {
    ck->inst[i].sym = ck->sym[i];
    ck->inst[i].state = ck->state + i * ck->sf;
  }
  store_ckpt c = {.inst = ck->inst,
                  .ninst = ck->nrows,
                  .off = ck->off,
                  .noff = ck->noff,
                  .model_sha256 = ck->model_sha256[0] ? ck->model_sha256 : NULL,
                  .clear_instruments = ck->clear_instruments,
                  .time_ns = ck->snap_wall_ns,
                  .L = ck->L,
                  .H = ck->H,
                  .cell = ck->cell};
  int rc = store_checkpoint_write(ck->st, &c, err, errlen);
  *us = (double)(uv_hrtime() - t0) / 1e3;
  *cpu = tc_thread_cpu_us() - c0;
  return rc;
}

/* Loop thread: applies the result of a write: on success the arena is free again; on failure it
 * is kept to be merged into the next snapshot. */
static void complete(ckpt *ck, int status, const char *err, double write_us, double write_cpu) {
  ck->wstate = 0;
  ck->stats.last_write_us = write_us;
  ck->stats.last_write_cpu_us = write_cpu;
  if (status == 0) {
    ck->stats.written++;
    ck->stats.consecutive_failures = 0;
    ck->stats.last_rows = ck->nrows;
    ck->stats.rows_total += ck->nrows;
    ck->stats.last_ok_mono_ns = ck->snap_mono_ns;
    ck->stats.last_ok_wall_ns = ck->snap_wall_ns;
    ck->stats.last_error[0] = 0;
    ck->carry = 0;
  } else {
    ck->stats.failures++;
    ck->stats.consecutive_failures++;
    snprintf(ck->stats.last_error, sizeof ck->stats.last_error, "%s", err);
    ck->carry = 1;
  }
}

static void work_cb(uv_work_t *w) {
  ckpt *ck = w->data;
  char err[sizeof ck->err];
  err[0] = 0;
  double us = 0, cpu = 0;
  int rc = write_snapshot(ck, err, sizeof err, &us, &cpu);
  uv_mutex_lock(&ck->mu);
  ck->status = rc;
  ck->write_us = us;
  ck->write_cpu_us = cpu;
  memcpy(ck->err, err, sizeof err);
  ck->wstate = 2;
  uv_cond_signal(&ck->cv);
  uv_mutex_unlock(&ck->mu);
}

static void after_cb(uv_work_t *w, int uvstatus) {
  ckpt *ck = w->data;
  ck->in_flight = 0;
  if (uvstatus != 0 && ck->wstate == 1) { /* cancelled before it ran */
    ck->status = TC_EAGAIN;
    snprintf(ck->err, sizeof ck->err, "checkpoint write cancelled: %s", uv_strerror(uvstatus));
    ck->wstate = 2;
  }
  if (ck->wstate == 2)
    complete(ck, ck->status, ck->err, ck->write_us, ck->write_cpu_us);
  if (ck->cb)
    ck->cb(ck, ck->status, ck->err, ck->ud);
}

int ckpt_submit(ckpt *ck, ckpt_done_fn cb, void *ud) {
  if (ck->in_flight)
    return TC_EBUSY;
  ck->cb = cb;
  ck->ud = ud;
  ck->wstate = 1;
  ck->in_flight = 1;
  ck->work.data = ck;
  int rc = uv_queue_work(ck->loop, &ck->work, work_cb, after_cb);
  if (rc != 0) {
    ck->in_flight = 0;
    snprintf(ck->err, sizeof ck->err, "checkpoint: uv_queue_work: %s", uv_strerror(rc));
    complete(ck, TC_EIO, ck->err, 0, 0);
    return TC_EIO;
  }
  return 0;
}

void ckpt_wait(ckpt *ck) {
  if (!ck->in_flight)
    return;
  /* Wait for the pool to finish with the arena and the store, then apply its result now; the
   * after-work callback still runs later and only reports it. */
  uv_mutex_lock(&ck->mu);
  while (ck->wstate == 1)
    uv_cond_wait(&ck->cv, &ck->mu);
  uv_mutex_unlock(&ck->mu);
  if (ck->wstate == 2)
    complete(ck, ck->status, ck->err, ck->write_us, ck->write_cpu_us);
}

int ckpt_flush(ckpt *ck, symtab *t, const store_offset *off, size_t noff, char *err,
               size_t errlen) {
  ckpt_wait(ck);
  int rc = take(ck, t, off, noff);
  if (rc) {
    snprintf(err, errlen, "checkpoint: out of memory for the snapshot");
    return rc;
  }
  char e[sizeof ck->err];
  e[0] = 0;
  double us = 0, cpu = 0;
  rc = write_snapshot(ck, e, sizeof e, &us, &cpu);
  complete(ck, rc, e, us, cpu);
  if (rc)
    snprintf(err, errlen, "%s", e);
  return rc;
}

/* ---- start-up ---- */

int ckpt_bind_model(store *st, const nn_model *m, int reset, char *err, size_t errlen) {
  char hex[65];
  ckpt_model_hex(m, hex);
  store_meta cur;
  int rc = store_meta_get(st, &cur, err, errlen);
  if (rc != 0 && rc != TC_ENOENT)
    return rc;
  int fresh = rc == TC_ENOENT || !cur.model_sha256[0];
  if (!fresh && !reset) {
    /* The stored states' cell, from their blobs (-1: none stored): a state is never restored
     * into a model of another cell, even under the same hash. */
    int cell = -1;
    if ((rc = store_instruments_cell(st, &cell, err, errlen)) != 0 && rc != TC_ENOENT)
      return rc;
    if (strcmp(cur.model_sha256, hex) == 0 && cur.L == m->L && cur.H == m->H &&
        (cell < 0 || cell == m->cell))
      return 0;
    /* The cells are named when they tell the two apart or the model is not an LSTM. */
    char was[32] = "", is[32] = "";
    if ((cell >= 0 && cell != m->cell) || m->cell != NN_CELL_LSTM) {
      if (cell >= 0)
        snprintf(was, sizeof was, "%s ", nn_cell_name(cell));
      snprintf(is, sizeof is, "%s ", nn_cell_name(m->cell));
    }
    snprintf(err, errlen,
             "state db %s: holds state of model %.16s (%sL=%d H=%d), but the model given is %.16s "
             "(%sL=%d H=%d); refusing to mix them: pass --reset-state to drop the stored state, or "
             "use another --state file",
             store_path(st), cur.model_sha256, was, cur.L, cur.H, hex, is, m->L, m->H);
    return TC_EMODEL;
  }
  if (reset && (rc = store_reset(st, err, errlen)) != 0)
    return rc;
  store_meta nm = {.L = m->L, .H = m->H};
  if (!fresh) { /* keep the checkpoint history */
    nm.ckpt_time_ns = cur.ckpt_time_ns;
    nm.ckpts = cur.ckpts;
  }
  memcpy(nm.model_sha256, hex, sizeof hex);
  const char *feat = nn_model_get_meta(m, "tickcast.features");
  snprintf(nm.features, sizeof nm.features, "%s", feat ? feat : "ret,log_qty,log_dt,spread");
  snprintf(nm.app, sizeof nm.app, "tickcast %s", TICKCAST_VERSION);
  return store_meta_set(st, &nm, err, errlen);
}

typedef struct restore_ctx {
  symtab *t;
  const int32_t *parts; /* (nparts) partitions to load, NULL for all */
  int nparts;
  uint64_t skipped; /* already live (partition restore only) */
  char *err;
  size_t errlen;
} restore_ctx;

static int restore_one(void *ud, const store_inst *in) {
  restore_ctx *rc = ud;
  symtab *t = rc->t;
  if (rc->parts) {
    int want = 0;
    for (int i = 0; i < rc->nparts && !want; i++)
      want = rc->parts[i] == in->partition;
    if (!want)
      return 0;
    if (symtab_find(t, in->sym, in->sym_len) >= 0) {
      rc->skipped++;
      return 0;
    }
  }
  if (symtab_find(t, in->sym, in->sym_len) >= 0) {
    snprintf(rc->err, rc->errlen, "restore: instrument %.*s is already in the table",
             (int)in->sym_len, in->sym);
    return TC_EINVAL;
  }
  int32_t s = ckpt_inst_put(t, in, 0);
  if (s < 0) {
    snprintf(rc->err, rc->errlen, "restore: cannot add instrument %.*s: %s", (int)in->sym_len,
             in->sym, tc_strerror(s));
    return s;
  }
  return 0;
}

int32_t ckpt_inst_put(symtab *t, const store_inst *in, int dirty) {
  int32_t s = symtab_find(t, in->sym, in->sym_len);
  if (s < 0)
    s = symtab_add(t, in->sym, in->sym_len);
  if (s < 0)
    return s;
  inst *ti = &t->inst[s];
  ti->n = in->n;
  ti->last_ts = in->last_ts;
  ti->last_px = in->last_px;
  ti->partition = in->partition;
  ti->dirty = (uint8_t)dirty;
  memcpy(symtab_state(t, s), in->state, t->state_floats * sizeof(float));
  return s;
}

int ckpt_restore(store *st, const nn_model *m, symtab *t, store_offset **off, size_t *noff,
                 char *err, size_t errlen) {
  *off = NULL;
  *noff = 0;
  if (t->state_floats != nn_state_floats(m)) {
    snprintf(err, errlen, "restore: table holds %zu floats per state, expected %zu",
             t->state_floats, nn_state_floats(m));
    return TC_ESHAPE;
  }
  restore_ctx rc = {.t = t, .err = err, .errlen = errlen};
  int r = store_instruments_load(st, m->cell, m->L, m->H, restore_one, &rc, err, errlen);
  if (r)
    return r;
  return store_offsets_load(st, off, noff, err, errlen);
}

int ckpt_restore_partitions(store *st, const nn_model *m, symtab *t, const char *topic,
                            const int32_t *parts, int nparts, store_offset **off, size_t *noff,
                            char *err, size_t errlen) {
  *off = NULL;
  *noff = 0;
  if (t->state_floats != nn_state_floats(m)) {
    snprintf(err, errlen, "restore: table holds %zu floats per state, expected %zu",
             t->state_floats, nn_state_floats(m));
    return TC_ESHAPE;
  }
  if (nparts <= 0)
    return 0;
  restore_ctx rc = {.t = t, .parts = parts, .nparts = nparts, .err = err, .errlen = errlen};
  int r = store_instruments_load(st, m->cell, m->L, m->H, restore_one, &rc, err, errlen);
  if (r)
    return r;
  store_offset *all = NULL;
  size_t nall = 0, k = 0;
  if ((r = store_offsets_load(st, &all, &nall, err, errlen)) != 0)
    return r;
  for (size_t i = 0; i < nall; i++) { /* keep only the asked ones, in place */
    int want = 0;
    for (int j = 0; j < nparts && !want; j++)
      want = parts[j] == all[i].partition;
    if (want && strcmp(all[i].topic, topic) == 0)
      all[k++] = all[i];
  }
  if (k == 0) {
    free(all);
    all = NULL;
  }
  *off = all;
  *noff = k;
  return 0;
}
