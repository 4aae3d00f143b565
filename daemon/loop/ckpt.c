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

/* An instrument's interval tracker goes to and from its blob as is. */
_Static_assert(SYMTAB_IV == STORE_BLOB_TRACK, "the tracker's doubles: symtab.h and store.h");

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
  uint8_t *to_cl;                 /* (cap) 1: the changelog lacks the row (sent by the hook) */
  size_t nrows, cap;
  cl_part *parts; /* (parts_cap) the changelog side per partition, nparts of them */
  size_t nparts, parts_cap;
  /* A copy under way (ckpt_take_begin .. ckpt_take_step returns 1). */
  int copying;
  uint32_t cursor, count0; /* next slot to visit; slots that existed at the begin */
  uint8_t *seen;           /* (seen_cap) slots copied ahead of the cursor (copy on write) */
  uint32_t seen_cap;
  int64_t *p_next; /* (p_cap) by partition: its offset in the snapshot, -1 none */
  uint8_t *p_full; /* (p_cap) by partition: 1 = every instrument is copied */
  int32_t p_cap;
  int no_parts; /* begun without parts: rows of partitions without offset are taken */
  double copy_us, copy_cpu_us; /* loop-thread time of the copy so far */
  uint64_t copy_slices;        /* slices of it so far */
  ckpt_hook_fn hook;           /* the changelog side, NULL for none */
  void *hook_ud;
  uv_mutex_t store_mu; /* one user of the store at a time */
  store_offset *off;   /* (off_cap) offsets of the snapshot */
  size_t noff, off_cap;
  char model_sha256[65];  /* new model hash to record with the snapshot, "" for none */
  int clear_instruments;  /* the snapshot starts by deleting all stored instruments */
  int carry;              /* the arena holds a snapshot (failed or kept) to merge into the next */
  int32_t *gone;          /* (gone_cap) partitions let go while a write was in flight: dropped */
  size_t ngone, gone_cap; /* from its snapshot if that write fails (ckpt_forget) */
  char pend_model[65];    /* from ckpt_model_changed, picked up by the next take */
  int pend_clear;         /* from ckpt_model_changed with reset, picked up by the next take */
  int64_t snap_wall_ns;   /* wall clock of the snapshot */
  uint64_t snap_mono_ns;  /* uv_hrtime() of the snapshot */
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
  int smu_ok = mu_ok && uv_mutex_init(&ck->store_mu) == 0;
  if (!smu_ok || uv_cond_init(&ck->cv) != 0) {
    if (mu_ok)
      uv_mutex_destroy(&ck->mu);
    if (smu_ok)
      uv_mutex_destroy(&ck->store_mu);
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
  free(ck->to_cl);
  free(ck->off);
  free(ck->gone);
  free(ck->parts);
  free(ck->seen);
  free(ck->p_next);
  free(ck->p_full);
  uv_cond_destroy(&ck->cv);
  uv_mutex_destroy(&ck->mu);
  uv_mutex_destroy(&ck->store_mu);
  free(ck);
}

/* Grows the arena to n rows. touch = 1 writes the new state pages now (so a later copy does not
 * pay their page faults); the take path passes 0: large arrays grow by mremap without copying,
 * and a sliced copy pays the faults a slice at a time. */
static int arena_grow(ckpt *ck, size_t n, int touch) {
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
  uint8_t *tc = realloc(ck->to_cl, cap);
  if (!tc)
    return TC_ENOMEM;
  ck->to_cl = tc;
  float *state = realloc(ck->state, cap * ck->sf * sizeof *state);
  if (!state)
    return TC_ENOMEM;
  if (touch) {
    memset(state + ck->cap * ck->sf, 0, (cap - ck->cap) * ck->sf * sizeof *state);
    memset(sym + ck->cap, 0, (cap - ck->cap) * sizeof *sym);
  }
  ck->state = state;
  ck->cap = cap;
  return 0;
}

int ckpt_reserve(ckpt *ck, size_t n) {
  return arena_grow(ck, n, 1);
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

/* Room for one more element in the array *a of *cap elements of size sz holding n: doubles it
 * (16 at first) when full. 0, or TC_ENOMEM (the array as it was). */
static int grow(void **a, size_t *cap, size_t n, size_t sz) {
  if (n < *cap)
    return 0;
  size_t c = *cap ? 2 * *cap : 16;
  void *g = realloc(*a, c * sz);
  if (!g)
    return TC_ENOMEM;
  *a = g;
  *cap = c;
  return 0;
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
      if (grow((void **)&ck->off, &ck->off_cap, ck->noff, sizeof *ck->off) != 0)
        return TC_ENOMEM;
      ck->noff++;
    }
    ck->off[j] = off[i];
  }
  return 0;
}

/* Merges the partitions parts[0..n) into the snapshot's: same partition replaced (a carried full
 * partition stays full: its rows plus the fresh ones still cover every instrument), others kept. */
static int parts_merge(ckpt *ck, const cl_part *parts, size_t n) {
  if (ck->nparts + n > ck->parts_cap) {
    size_t cap = ck->parts_cap ? ck->parts_cap : 16;
    while (cap < ck->nparts + n)
      cap *= 2;
    cl_part *np = realloc(ck->parts, cap * sizeof *np);
    if (!np)
      return TC_ENOMEM;
    ck->parts = np;
    ck->parts_cap = cap;
  }
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    while (j < ck->nparts && ck->parts[j].part != parts[i].part)
      j++;
    int was_full = j < ck->nparts && ck->parts[j].full;
    if (j == ck->nparts)
      ck->nparts++;
    ck->parts[j] = parts[i];
    ck->parts[j].full |= (uint8_t)was_full;
  }
  return 0;
}

/* The by-partition lookups of the copy: offset and full flag of each partition of the snapshot. */
static int lookups_build(ckpt *ck) {
  int32_t maxp = -1;
  for (size_t k = 0; k < ck->noff; k++)
    if (ck->off[k].partition > maxp)
      maxp = ck->off[k].partition;
  for (size_t k = 0; k < ck->nparts; k++)
    if (ck->parts[k].part > maxp)
      maxp = ck->parts[k].part;
  if (maxp + 1 > ck->p_cap) {
    int32_t cap = maxp + 1 < 64 ? 64 : maxp + 1;
    int64_t *pn = realloc(ck->p_next, (size_t)cap * sizeof *pn);
    if (!pn)
      return TC_ENOMEM;
    ck->p_next = pn;
    uint8_t *pf = realloc(ck->p_full, (size_t)cap);
    if (!pf)
      return TC_ENOMEM;
    ck->p_full = pf;
    ck->p_cap = cap;
  }
  for (int32_t p = 0; p < ck->p_cap; p++) {
    ck->p_next[p] = -1;
    ck->p_full[p] = 0;
  }
  for (size_t k = 0; k < ck->noff; k++)
    if (ck->off[k].partition >= 0)
      ck->p_next[ck->off[k].partition] = ck->off[k].next_offset;
  for (size_t k = 0; k < ck->nparts; k++)
    if (ck->parts[k].part >= 0)
      ck->p_full[ck->parts[k].part] = ck->parts[k].full;
  return 0;
}

/* What the snapshot wants of a live slot: -1 nothing, else the row's offset (0..: the state holds
 * the instrument's ticks below it; -1 is encoded as -2 here: "unknown", a file-only take). */
static int64_t wants(const ckpt *ck, const inst *in) {
  int32_t p = in->partition;
  int known = p >= 0 && p < ck->p_cap && ck->p_next[p] >= 0;
  int full = known && ck->p_full[p];
  if (!in->dirty && !full)
    return -1;
  if (known)
    return ck->p_next[p] > in->skip_below ? ck->p_next[p] : in->skip_below;
  if (!ck->no_parts)
    return -1; /* a partition without an offset: the row waits for a snapshot that has one */
  return in->skip_below > 0 ? in->skip_below : -2;
}

/* Copies slot s of t into the next row (room was reserved) and clears its dirty flag. */
static void copy_row(ckpt *ck, symtab *t, uint32_t s, int64_t next) {
  inst *in = &t->inst[s];
  size_t n = ck->nrows++;
  store_inst *r = &ck->inst[n];
  int32_t p = in->partition;
  r->sym_len = in->sym_len;
  r->partition = p;
  r->n = in->n;
  r->last_ts = in->last_ts;
  r->last_px = in->last_px;
  r->has_track = in->iv_on;
  memcpy(r->track, in->iv, sizeof r->track);
  r->next_offset = next == -2 ? -1 : next;
  ck->to_cl[n] = (uint8_t)(in->dirty != 2 || (p >= 0 && p < ck->p_cap && ck->p_full[p]));
  memcpy(ck->sym[n], in->sym, sizeof ck->sym[n]);
  ck->slot[n] = (int32_t)s;
  memcpy(ck->state + n * ck->sf, t->state + (size_t)s * ck->sf, ck->sf * sizeof(float));
  in->dirty = 0;
}

/* Moves arena row i down to row n (n <= i), when the rows between are dropped. */
static void row_move(ckpt *ck, size_t n, size_t i) {
  if (n == i)
    return;
  ck->inst[n] = ck->inst[i];
  memcpy(ck->sym[n], ck->sym[i], sizeof ck->sym[n]);
  ck->slot[n] = ck->slot[i];
  ck->to_cl[n] = ck->to_cl[i];
  memcpy(ck->state + n * ck->sf, ck->state + i * ck->sf, ck->sf * sizeof(float));
}

/* With a carried (failed) snapshot in the arena, its rows whose instrument the new snapshot takes
 * again are dropped (a fresh copy follows) and the rest kept, so the next write covers both. */
static void carry_compact(ckpt *ck, symtab *t) {
  size_t n = 0;
  for (size_t i = 0; i < ck->nrows; i++) {
    int32_t s = ck->slot[i];
    if ((uint32_t)s < t->count && t->inst[s].live && wants(ck, &t->inst[s]) != -1 &&
        !strcmp(t->inst[s].sym, ck->sym[i])) /* a reused slot holds another instrument */
      continue;
    row_move(ck, n++, i);
  }
  ck->nrows = n;
}

/* ckpt_take_begin without the busy check (ckpt_flush waited for the write in flight). */
static int begin(ckpt *ck, symtab *t, const store_offset *off, size_t noff, const cl_part *parts,
                 size_t nparts) {
  uint64_t t0 = uv_hrtime();
  double c0 = tc_thread_cpu_us();
  assert(t->state_floats == ck->sf);
  if (!ck->carry) {
    ck->nrows = 0;
    ck->noff = 0;
    ck->nparts = 0;
    ck->model_sha256[0] = 0;
    ck->clear_instruments = 0;
  }
  if (offsets_merge(ck, off, noff) != 0 || parts_merge(ck, parts, nparts) != 0 ||
      lookups_build(ck) != 0)
    return TC_ENOMEM;
  ck->no_parts = parts == NULL;
  for (size_t k = 0; k < ck->nparts; k++)
    ck->parts[k].instruments = 0; /* counted by this copy */
  if (ck->carry)
    carry_compact(ck, t);
  /* Room for the worst case now, so no slice and no copy on write ever reallocates. */
  if (arena_grow(ck, ck->nrows + t->live, 0) != 0)
    return TC_ENOMEM;
  if (t->count > ck->seen_cap) {
    uint8_t *sn = realloc(ck->seen, t->count);
    if (!sn)
      return TC_ENOMEM;
    ck->seen = sn;
    ck->seen_cap = t->count;
  }
  if (t->count) /* seen is NULL until a table has instruments */
    memset(ck->seen, 0, t->count);
  ck->count0 = t->count;
  ck->cursor = 0;
  ck->copying = 1;
  t->keep_dead = 1; /* no slot below count0 changes instrument until the copy ends */
  ck->copy_slices = 0;
  ck->snap_wall_ns = tc_wall_ns();
  ck->snap_mono_ns = uv_hrtime();
  ck->copy_us = (double)(ck->snap_mono_ns - t0) / 1e3;
  ck->copy_cpu_us = tc_thread_cpu_us() - c0;
  ck->stats.max_copy_us = ck->copy_us;
  return 0;
}

int ckpt_take_begin(ckpt *ck, symtab *t, const store_offset *off, size_t noff, const cl_part *parts,
                    size_t nparts) {
  if (ck->in_flight || ck->copying)
    return TC_EBUSY;
  return begin(ck, t, off, noff, parts, nparts);
}

void ckpt_take_guard(ckpt *ck, symtab *t, int32_t slot) {
  uint32_t s = (uint32_t)slot;
  if (!ck->copying || s >= ck->count0 || s < ck->cursor || ck->seen[s])
    return;
  ck->seen[s] = 1;
  inst *in = &t->inst[s];
  int64_t next = in->live ? wants(ck, in) : -1;
  if (next != -1)
    copy_row(ck, t, s, next);
}

/* The copy is complete: the snapshot picks up a pending model change and is taken. */
static void take_done(ckpt *ck, symtab *t) {
  t->keep_dead = 0;
  if (ck->pend_model[0]) {
    memcpy(ck->model_sha256, ck->pend_model, sizeof ck->model_sha256);
    ck->pend_model[0] = 0;
  }
  if (ck->pend_clear) {
    ck->clear_instruments = 1;
    ck->pend_clear = 0;
  }
  ck->carry = 0;
  ck->copying = 0;
  ck->stats.last_copy_us = ck->copy_us;
  ck->stats.last_copy_cpu_us = ck->copy_cpu_us;
  ck->stats.copy_slices = ck->copy_slices;
}

int ckpt_take_step(ckpt *ck, symtab *t, size_t budget_bytes) {
  if (!ck->copying)
    return 1;
  uint64_t t0 = uv_hrtime();
  double c0 = tc_thread_cpu_us();
  size_t per = ck->sf * sizeof(float) + sizeof(inst);
  uint64_t budget = budget_bytes / per + 1;
  uint32_t end = ck->count0 - ck->cursor > budget ? ck->cursor + (uint32_t)budget : ck->count0;
  inst *tin = t->inst;
  for (uint32_t s = ck->cursor; s < end; s++) {
    inst *in = &tin[s];
    if (in->live) {
      int32_t p = in->partition;
      for (size_t k = 0; k < ck->nparts; k++)
        if (ck->parts[k].part == p) {
          ck->parts[k].instruments++;
          break;
        }
    }
    if (ck->seen[s])
      continue;
    if (!in->live) {
      in->dirty = 0;
      continue;
    }
    int64_t next = wants(ck, in);
    if (next != -1)
      copy_row(ck, t, s, next);
  }
  ck->cursor = end;
  ck->copy_slices++;
  double us = (double)(uv_hrtime() - t0) / 1e3;
  ck->copy_us += us;
  ck->copy_cpu_us += tc_thread_cpu_us() - c0;
  if (us > ck->stats.max_copy_us)
    ck->stats.max_copy_us = us;
  if (ck->cursor < ck->count0)
    return 0;
  take_done(ck, t);
  return 1;
}

int ckpt_copying(const ckpt *ck) {
  return ck->copying;
}

const cl_part *ckpt_parts(const ckpt *ck, size_t *n) {
  *n = ck->nparts;
  return ck->parts;
}

void ckpt_set_hook(ckpt *ck, ckpt_hook_fn fn, void *ud) {
  ck->hook = fn;
  ck->hook_ud = ud;
}

void ckpt_store_lock(ckpt *ck) {
  uv_mutex_lock(&ck->store_mu);
}

void ckpt_store_unlock(ckpt *ck) {
  uv_mutex_unlock(&ck->store_mu);
}

/* One-shot take: begin and copy everything now (the caller checked that no write is in flight,
 * or waited for it). */
static int take(ckpt *ck, symtab *t, const store_offset *off, size_t noff, const cl_part *parts,
                size_t nparts) {
  if (ck->copying)
    return TC_EBUSY;
  int rc = begin(ck, t, off, noff, parts, nparts);
  if (rc == 0 && ckpt_take_step(ck, t, SIZE_MAX / 2) != 1)
    rc = TC_ENOMEM;
  return rc;
}

int ckpt_take(ckpt *ck, symtab *t, const store_offset *off, size_t noff) {
  if (ck->in_flight)
    return TC_EBUSY;
  return take(ck, t, off, noff, NULL, 0);
}

/* Loop thread: gives up a taken snapshot that was not submitted (see ckpt.h). Its rows' slots
 * are marked dirty again, so the next take copies those instruments' current states; a model
 * hash or a clear it picked up goes back to pending; its offsets are dropped. */
void ckpt_untake(ckpt *ck, symtab *t) {
  assert(!ck->in_flight);
  for (size_t i = 0; i < ck->nrows; i++) {
    int32_t s = ck->slot[i];
    if ((uint32_t)s < t->count && t->inst[s].live) {
      inst *in = &t->inst[s];
      if (ck->to_cl[i] || !in->dirty)
        in->dirty = ck->to_cl[i] ? 1 : 2;
    }
  }
  ck->copying = 0;
  t->keep_dead = 0;
  ck->nparts = 0;
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

/* Any thread: writes the snapshot in the arena: the changelog side first (the hook), then the
 * state file, under the store lock. The pointers into the arena are set here rather than during
 * the copy, to keep the loop thread's part minimal. */
static int write_snapshot(ckpt *ck, char *err, size_t errlen, double *us, double *cpu) {
  uint64_t t0 = uv_hrtime();
  double c0 = tc_thread_cpu_us();
  for (size_t i = 0; i < ck->nrows; i++) {
    ck->inst[i].sym = ck->sym[i];
    ck->inst[i].state = ck->state + i * ck->sf;
  }
  int rc = 0;
  if (ck->hook)
    rc = ck->hook(ck->hook_ud, ck->inst, ck->to_cl, ck->nrows, ck->parts, ck->nparts,
                  ck->snap_wall_ns, err, errlen);
  if (rc == 0) {
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
    int healed;
    uv_mutex_lock(&ck->store_mu);
    rc = store_path_check(ck->st, &healed, err, errlen); /* a deleted file: healed */
    if (rc == 0)
      rc = store_checkpoint_write(ck->st, &c, err, errlen);
    uv_mutex_unlock(&ck->store_mu);
  }
  *us = (double)(uv_hrtime() - t0) / 1e3;
  *cpu = tc_thread_cpu_us() - c0;
  return rc;
}

/* Drops partition p from the snapshot in the arena: its rows, its offset and its changelog side. */
static void drop_part(ckpt *ck, int32_t p) {
  size_t n = 0;
  for (size_t i = 0; i < ck->nrows; i++) {
    if (ck->inst[i].partition == p)
      continue;
    row_move(ck, n++, i);
  }
  ck->nrows = n;
  n = 0;
  for (size_t k = 0; k < ck->noff; k++)
    if (ck->off[k].partition != p)
      ck->off[n++] = ck->off[k];
  ck->noff = n;
  n = 0;
  for (size_t k = 0; k < ck->nparts; k++)
    if (ck->parts[k].part != p)
      ck->parts[n++] = ck->parts[k];
  ck->nparts = n;
}

int ckpt_forget(ckpt *ck, int32_t p) {
  /* Not in_flight: once ckpt_wait has applied a write's result (wstate 0), a failed snapshot is
   * carried already, though the write's callback has yet to run. */
  uv_mutex_lock(&ck->mu);
  int pending = ck->wstate != 0;
  uv_mutex_unlock(&ck->mu);
  if (pending) {
    if (grow((void **)&ck->gone, &ck->gone_cap, ck->ngone, sizeof *ck->gone) != 0)
      return TC_ENOMEM;
    ck->gone[ck->ngone++] = p;
  } else if (ck->carry) {
    drop_part(ck, p);
  }
  return 0;
}

/* Loop thread: applies the result of a write: on success the arena is free again; on failure it
 * is kept to be merged into the next snapshot, without the partitions let go meanwhile. */
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
    for (size_t k = 0; k < ck->ngone; k++)
      drop_part(ck, ck->gone[k]);
  }
  ck->ngone = 0;
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

int ckpt_flush(ckpt *ck, symtab *t, const store_offset *off, size_t noff, const cl_part *parts,
               size_t nparts, char *err, size_t errlen) {
  ckpt_wait(ck);
  if (ck->copying) /* a sliced copy under way: it becomes part of this one */
    ckpt_untake(ck, t);
  int rc = take(ck, t, off, noff, parts, nparts);
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
  if (rc == TC_EFORMAT && !reset) { /* a damaged meta row: --reset-state rewrites it */
    size_t l = strlen(err);
    snprintf(err + l, errlen > l ? errlen - l : 0,
             "; --reset-state drops the stored state and writes the binding again");
    return rc;
  }
  if (rc != 0 && rc != TC_ENOENT && rc != TC_EFORMAT)
    return rc;
  int fresh = rc == TC_ENOENT || rc == TC_EFORMAT || !cur.model_sha256[0];
  if (!fresh && !reset) {
    /* The cell is part of the binding: a state is never restored into a model of another cell,
     * even under the same hash. */
    if (strcmp(cur.model_sha256, hex) == 0 && cur.cell == m->cell && cur.L == m->L && cur.H == m->H)
      return 0;
    /* The cells are named when they tell the two apart or the model is not an LSTM. */
    char was[32] = "", is[32] = "";
    if (cur.cell != m->cell || m->cell != NN_CELL_LSTM) {
      snprintf(was, sizeof was, "%s ", nn_cell_name(cur.cell));
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
  store_meta nm = {.cell = m->cell, .L = m->L, .H = m->H};
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
  char *err;
  size_t errlen;
} restore_ctx;

static int restore_one(void *ud, const store_inst *in) {
  restore_ctx *rc = ud;
  symtab *t = rc->t;
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
  ti->skip_below = in->next_offset > 0 ? in->next_offset : 0;
  ti->dirty = (uint8_t)dirty;
  ti->iv_on = (uint8_t)in->has_track;
  memcpy(ti->iv, in->track, sizeof ti->iv);
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
