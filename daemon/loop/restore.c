/* restore.c: what an assignment restores, on libuv's thread pool while the loop goes on: the
 * state file's binding (cluster and input topic), its rows and offsets for the assigned
 * partitions, the changelog partitions that hold them (changelog.h: per instrument the freshest
 * state, per partition the resume offset), and the check of each resume offset against the input
 * partition's watermarks. The loop then puts the instruments into the engine (each with the offset
 * below which its ticks are already in its state) and assigns the partitions at their resume
 * offsets (rebalance_assign). A partition whose state only an unreadable changelog holds is
 * assigned paused instead and restored again later (mark_waiting, restore_on_await). Not for the
 * record format (changelog.c) nor the SQL (store.c). */
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "daemon/loop/run_int.h"
#include "daemon/pipeline/log.h"
#include "nn/base/clock.h"
#include "nn/base/sanitize.h"
#include "nn/base/tc_err.h"

/* The changelog is read in at most this long per attempt, and tried this many times before the
 * partitions are restored from the state file alone (a retry of awaiting partitions tries once). */
#define READ_MS 10000
#define READ_TRIES 3

/* A restore's requests to the broker (committed offsets, watermarks) wait at most this long; asked
 * in slices of at most 4 s (cl_watermarks), which a stop cuts short, they are answered by a broker
 * that takes up to those 4 s. */
#define ASK_MS 10000

/* A partition awaiting its state is restored again after this long, the delay doubling up to
 * AWAIT_MAX_MS while the changelog stays unreadable. */
#define AWAIT_MS 5000
#define AWAIT_MAX_MS 60000

typedef struct rpart_res {
  int32_t p;
  int64_t resume;  /* offset to assign: >= 0, or RD_KAFKA_OFFSET_INVALID (Kafka's committed) */
  int64_t pnext;   /* the offset the state is at (the first checkpoint's), -1 none */
  int from_cl;     /* the changelog's marker was ahead of the file */
  int reset;       /* the resume offset was outside the partition: state dropped */
  cl_marker mk;    /* the marker used (mk.part = -1: none) */
  int64_t file_at; /* the file's offset, -1 none */
  int64_t lo, hi;  /* the input partition's watermarks, -1 unknown */
  int refloored;   /* its changelog was read again without records of a recreated topic */
  int64_t floor;   /* ... those below this changelog offset */
  int wait;        /* its state is only in the changelog, which could not be read: it awaits */
  int64_t wait_hi; /* never committed, auto.offset.reset=latest: the high watermark when it began
                    * to wait, -1 unknown (part.wait_hi) */
  int gone;        /* (a retry) no longer assigned and awaiting as it was: its result dropped */
  uint8_t gen;     /* (a retry) its assignment's generation when the retry began */
} rpart_res;

#define LOWS_MAX 4096 /* changelog partitions whose low watermarks a restore checks */

typedef struct restore_job {
  uv_work_t work;
  run *r;
  rd_kafka_topic_partition_list_t *parts; /* the assignment (owned) */
  int coop;
  int late;       /* a retry for partitions assigned and awaiting: no assign call at its end */
  int cl_failed;  /* no read of the changelog reached its end */
  int orphan;     /* shutdown: the partitions were assigned without it; drop the result */
  int cell, L, H; /* the model's: its states are of this cell, L layers of H */
  unsigned char sha[32];
  char hex[65];   /* sha in hex, as the state file's meta names its model */
  int old_rows;   /* the state file's rows were of the model before a reload (noted once) */
  rpart_res *res; /* (np) */
  int np;
  cl_restore *rs;
  char note[2048]; /* warnings for the loop to log, one per line */
  size_t note_len;
  int resets_file; /* the state file was reset (another cluster or topic) */
  int foreign;     /* it is of another cluster or topic and the reset failed: not used */
  uint64_t file_rows;
  double secs;
  uint32_t put_at; /* the next table slot to put into the engine */
  uint64_t swaps;  /* r->model_swaps when the restore began */
  uint32_t n_put;  /* instruments put so far */
  uint32_t n_cl;   /* of which came from the changelog (the state file lacked them) */
  char cluster[STORE_CLUSTER_MAX + 1];
  /* r->earlier when the restore began: models whose facts it takes as its own. */
  unsigned char earlier[CL_EARLIER_MAX][32];
  int n_earlier;
  /* The changelog's low watermarks by partition (cl_read): the job's own, since the restores of
   * several stream threads may run on the pool at once. */
  int64_t lows[LOWS_MAX];
} restore_job;

static void note(restore_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(restore_job *j, const char *fmt, ...) {
  if (j->note_len >= sizeof j->note - 2)
    return;
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(j->note + j->note_len, sizeof j->note - j->note_len - 1, fmt, ap);
  va_end(ap);
  if (w > 0)
    j->note_len +=
        (size_t)w < sizeof j->note - j->note_len - 1 ? (size_t)w : sizeof j->note - j->note_len - 2;
  j->note[j->note_len++] = '\n';
  j->note[j->note_len] = 0;
}

/* The state file belongs to one Kafka cluster and input topic: a file of another is reset (its
 * instruments and offsets describe another stream), once, at the first assignment. cid: the
 * cluster's id, NULL when not known (under the store lock). */
static void check_binding(restore_job *j, const char *cid) {
  run *r = j->r;
  char err[512];
  if (!cid) {
    note(j,
         "state file %s: the cluster id is not known yet; its binding is checked at the next "
         "assignment",
         r->state_path);
    return;
  }
  snprintf(j->cluster, sizeof j->cluster, "%s", cid);
  store_meta m;
  int rc = store_meta_get(r->db, &m, err, sizeof err);
  if (rc == 0 && ((m.cluster_id[0] && strcmp(m.cluster_id, j->cluster) != 0) ||
                  (m.input_topic[0] && strcmp(m.input_topic, r->o->input_topic) != 0))) {
    note(j,
         "state file %s: its offsets and states are of cluster %s topic %s, not of cluster %s "
         "topic %s (a new broker or topic?): dropping them and starting from the changelog or "
         "zero state",
         r->state_path, m.cluster_id, m.input_topic, j->cluster, r->o->input_topic);
    if (store_reset(r->db, err, sizeof err) != 0) {
      /* Not bound to this stream: not read now, checked again at the next assignment. */
      note(j, "%s; the state file is not used for this assignment", err);
      j->foreign = 1;
      return;
    }
    j->resets_file = 1;
  }
  if (rc == 0 && store_binding_set(r->db, j->cluster, r->o->input_topic, err, sizeof err) != 0)
    note(j, "%s", err);
  else if (rc == 0)
    r->bound = 1; /* under the store lock, as its reader in work_cb */
}

typedef struct file_ctx {
  restore_job *j;
  int64_t at;  /* the partition's stored offset */
  int earlier; /* the file's rows are of an earlier model (--on-model-change keep) */
} file_ctx;

static int file_row(void *ud, const store_inst *in) {
  file_ctx *f = ud;
  f->j->file_rows++;
  return cl_restore_add_file_inst(f->j->rs, in, in->next_offset >= 0 ? in->next_offset : f->at,
                                  f->earlier);
}

/* The state file's offsets and rows of the assigned partitions (under the store lock). A file of
 * another model than the job's (a SIGHUP swapped a model in, and the checkpoint that rewrites the
 * file for it has not been written yet) holds the states --on-model-change reset threw away: it
 * is not used, so the partitions go on with zero state, as the instruments the reload found did,
 * from the group's committed offsets (which follow the file's checkpoints), or from a checkpoint
 * of the job's model in the changelog, whose states and offsets belong together. Under
 * --on-model-change keep the rows are the states the running model carries on, taken as an
 * earlier model's (cl_restore_accept_earlier). (At start a file of another model is refused:
 * ckpt_bind_model.) */
static void read_file(restore_job *j) {
  run *r = j->r;
  char err[512];
  store_offset *off = NULL;
  size_t noff = 0;
  if (j->foreign)
    return;
  if (store_offsets_load(r->db, &off, &noff, err, sizeof err) != 0) {
    note(j, "%s; the state file is not used for this assignment", err);
    return;
  }
  store_meta m;
  int other = store_meta_get(r->db, &m, err, sizeof err) == 0 && m.model_sha256[0] &&
              strcmp(m.model_sha256, j->hex) != 0;
  if (other && !r->o->on_model_change_keep) {
    if (!j->old_rows++)
      note(j,
           "the state file's instruments are of model %.16s, the one before the reload (no "
           "checkpoint of model %.16s yet): with --on-model-change reset they are not restored, "
           "the partitions go on from the committed offsets with zero state",
           m.model_sha256, j->hex);
    free(off);
    return;
  }
  for (int i = 0; i < j->np; i++) {
    int64_t at = -1;
    for (size_t k = 0; k < noff; k++)
      if (off[k].partition == j->res[i].p && !strcmp(off[k].topic, r->o->input_topic))
        at = off[k].next_offset;
    j->res[i].file_at = at;
    cl_restore_file_offset(j->rs, j->res[i].p, at);
    file_ctx f = {.j = j, .at = at, .earlier = other};
    if (store_instruments_load_partition(r->db, j->cell, j->L, j->H, j->res[i].p, file_row, &f, err,
                                         sizeof err) != 0)
      note(j, "%s; partition %d: state file rows not used", err, j->res[i].p);
  }
  free(off);
}

/* Pool thread: the daemon is stopping (lifecycle_begin_shutdown stores the flag atomically); the
 * restore's result will be dropped, so its remaining stages are skipped. */
static int pool_stopping(run *r) {
  return __atomic_load_n(&r->stopping, __ATOMIC_RELAXED);
}

/* The changelog topic exists with as many partitions as the input (created, compacted, when
 * missing; a broker without the Admin API auto-creates it at the first write). */
static void ensure_changelog(restore_job *j, int ncl) {
  run *r = j->r;
  char err[512] = "";
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *t = rd_kafka_topic_new(r->cl_rk, r->o->input_topic, NULL);
  int nin = 0;
  if (t && !rd_kafka_metadata(r->cl_rk, 0, t, &md, 5000) && md->topic_cnt == 1)
    nin = md->topics[0].partition_cnt;
  if (md)
    rd_kafka_metadata_destroy(md);
  if (t)
    rd_kafka_topic_destroy(t);
  if (ncl == 0 && nin > 0 && !pool_stopping(r)) {
    if (cl_writer_create(r->clw, nin, 2000, err, sizeof err) == 0)
      note(j, "changelog %s: created with %d partitions (cleanup.policy=compact)",
           r->o->changelog_topic, nin);
    else
      note(j,
           "%s; the first checkpoint's write creates it if the broker auto-creates topics (with "
           "its default partitions and policy: create it compacted, with the input's "
           "partitions, docs/STATE.md)",
           err);
  } else if (ncl > 0 && ncl < nin) {
    note(j,
         "changelog %s has %d partitions, fewer than the %d of %s: input partitions share "
         "changelog partitions, so restores read more",
         r->o->changelog_topic, ncl, nin, r->o->input_topic);
  }
}

/* The job's accumulator for partitions ps, taking the earlier models' facts too. 0 or TC_ENOMEM. */
static int new_accumulator(restore_job *j, const int32_t *ps) {
  if (cl_restore_new(&j->rs, j->cell, j->L, j->H, j->sha, ps, j->np) != 0)
    return TC_ENOMEM;
  for (int i = 0; i < j->n_earlier; i++)
    cl_restore_accept_earlier(j->rs, j->earlier[i]);
  return 0;
}

/* Drops what a failed changelog read put into the job and reads the state file again. 0, or -1
 * (out of memory: j->rs is NULL). */
static int restart_from_file(restore_job *j, const int32_t *ps) {
  cl_restore_free(j->rs);
  j->rs = NULL;
  if (new_accumulator(j, ps) != 0)
    return -1;
  for (int i = 0; i < j->np; i++)
    if (j->res[i].refloored)
      cl_restore_refloor(j->rs, j->res[i].p, j->res[i].floor);
  if (j->r->db) {
    ckpt_store_lock(j->r->ck);
    read_file(j);
    ckpt_store_unlock(j->r->ck);
  }
  return 0;
}

/* The changelog partitions of the assigned partitions, read to their end (a few tries). A read
 * that fails every try leaves the state file alone: a half-read changelog may hold a marker whose
 * records retention has dropped in part, and only a complete read gives the low watermarks that
 * tell (cl_restore_resume). */
static void read_changelog(restore_job *j, int64_t *lows, int *ncl) {
  run *r = j->r;
  char err[512];
  int32_t *ps = malloc((size_t)(j->np ? j->np : 1) * sizeof *ps);
  if (!ps)
    return;
  for (int i = 0; i < j->np; i++)
    ps[i] = j->res[i].p;
  int rc = -1, tries = j->late ? 1 : READ_TRIES;
  for (int k = 0; k < tries && rc != 0 && !pool_stopping(r); k++) {
    err[0] = 0;
    rc = cl_read(r->cl_rk, r->o->changelog_topic, j->rs, ps, j->np, lows, LOWS_MAX, ncl, READ_MS,
                 &r->stopping, err, sizeof err);
    if (pool_stopping(r)) /* the result is dropped: no more work, nor the store's lock */
      break;
    if (rc != 0 && k + 1 < tries) {
      note(j, "%s; trying again", err);
      if (restart_from_file(j, ps) != 0) /* a half-read changelog is fine, but counts twice */
        break;
    }
  }
  j->cl_failed = rc != 0;
  if (rc != 0 && !pool_stopping(r)) {
    note(j,
         "%s; restoring from the state file alone where it has the partition (every "
         "instrument is written to the changelog again at the next checkpoint)",
         err);
    *ncl = 0;
    if (j->rs)
      restart_from_file(j, ps);
  }
  /* Once: create it when missing, warn when it is small. */
  if (rc == 0 && !r->cl_checked && !pool_stopping(r)) {
    ensure_changelog(j, *ncl);
    r->cl_checked = 1;
  }
  free(ps);
}

/* Records of a recreated input topic: the marker's base excludes them (cl_restore_stale). Returns
 * 1 when a partition needs its changelog read again without them. */
static int check_stale(restore_job *j, const int64_t *lows, int ncl) {
  int again = 0;
  for (int i = 0; i < j->np; i++) {
    rpart_res *x = &j->res[i];
    int64_t low = ncl > 0 && x->p % ncl < LOWS_MAX ? lows[x->p % ncl] : -1;
    cl_restore_resume(j->rs, x->p, low, &x->from_cl, &x->mk);
    uint32_t stale = x->refloored ? 0 : cl_restore_stale(j->rs, x->p);
    if (!stale)
      continue;
    note(j,
         "%s/%d: %u changelog records lie before the base of its last checkpoint (offset %lld): "
         "states of an earlier instance of the topic; reading again without them",
         j->r->o->input_topic, x->p, stale, (long long)cl_marker_floor(&x->mk));
    x->floor = cl_marker_floor(&x->mk);
    cl_restore_refloor(j->rs, x->p, x->floor);
    x->refloored = 1;
    again = 1;
  }
  return again;
}

/* Partition p's entry of the job, NULL if none. */
static rpart_res *res_of(restore_job *j, int32_t p) {
  for (int i = 0; i < j->np; i++)
    if (j->res[i].p == p)
      return &j->res[i];
  return NULL;
}

/* Partition p of the job waits: nothing restored of it goes into the engine. */
static void set_waiting(restore_job *j, int32_t p) {
  rpart_res *x = res_of(j, p);
  if (x)
    x->wait = 1;
  cl_restore_drop(j->rs, p);
}

/* The group's committed offsets (rd_kafka_committed, on the pool) of the job's partitions that
 * pick selects; *e the request's error. NULL on ENOMEM. */
static rd_kafka_topic_partition_list_t *committed_of(restore_job *j, int (*pick)(const rpart_res *),
                                                     rd_kafka_resp_err_t *e) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(j->np ? j->np : 1);
  *e = 0;
  if (!l)
    return NULL;
  for (int i = 0; i < j->np; i++)
    if (pick(&j->res[i]))
      rd_kafka_topic_partition_list_add(l, j->r->o->input_topic, j->res[i].p);
  /* A stop (the job's result is then dropped) ends the wait within a slice (cl_committed). */
  if (l->cnt)
    *e = cl_committed(j->r->consumer, l, ASK_MS, &j->r->stopping);
  return l;
}

static int no_file_offset(const rpart_res *x) {
  return x->file_at < 0;
}

static int no_resume(const rpart_res *x) {
  return !x->wait && x->resume < 0;
}

/* Whether entry k of l (committed_of's, its request's error e) is a partition the group has
 * answered it never committed. */
static int never_committed(const rd_kafka_topic_partition_list_t *l, int k, rd_kafka_resp_err_t e) {
  return !e && !l->elems[k].err && l->elems[k].offset < 0;
}

/* For each entry k of l (committed_of's, its request's error e) that the group never committed,
 * held[k] says whether its changelog partition holds records (cl_holds_records, asked for all of
 * them at once; err its error); NULL on ENOMEM. */
static int *changelog_held(restore_job *j, const rd_kafka_topic_partition_list_t *l,
                           rd_kafka_resp_err_t e, char *err, size_t errlen) {
  int *held = calloc((size_t)l->cnt + 1, sizeof *held), n = 0;
  int32_t *ask = calloc((size_t)l->cnt + 1, sizeof *ask);
  if (!held || !ask) {
    free(held);
    free(ask);
    return NULL;
  }
  for (int k = 0; k < l->cnt; k++)
    if (never_committed(l, k, e))
      ask[n++] = l->elems[k].partition;
  if (n > 0) /* into held[0..n), then spread to their entries (the i-th asked is entry k >= i) */
    cl_holds_records(j->r->cl_rk, j->r->o->changelog_topic, ask, n, held, ASK_MS, &j->r->stopping,
                     err, errlen);
  for (int k = l->cnt - 1; k >= 0; k--)
    held[k] = never_committed(l, k, e) ? held[--n] : 0;
  free(ask);
  return held;
}

/* After a changelog read that failed every try: a partition that the state file lacks had a
 * state, and only the changelog holds it, when the group has a committed offset for it, or when
 * its changelog partition holds records (a member checkpointed it and died before the group
 * committed its offsets: its next owner would otherwise start it where auto.offset.reset says,
 * with zero state). Resumed so, its instruments would predict from the wrong state for good, so
 * it waits instead, assigned and paused, until a read of the changelog succeeds (on_put_idle,
 * restore_on_await), as a Kafka Streams task stays restoring. A partition the group never
 * committed whose changelog partition is empty starts where auto.offset.reset says with zero
 * state (docs/STATE.md, step 7); one whose changelog cannot be asked waits too. */
static void mark_waiting(restore_job *j) {
  run *r = j->r;
  rd_kafka_resp_err_t e;
  rd_kafka_topic_partition_list_t *l = committed_of(j, no_file_offset, &e);
  char err[512] = "";
  int *held = l ? changelog_held(j, l, e, err, sizeof err) : NULL;
  rd_kafka_resp_err_t hi_failed = 0; /* once a high watermark was not answered, none is asked */
  if (!held) {
    note(j, "restore: out of memory; the partitions the state file lacks wait for the changelog");
    for (int i = 0; i < j->np; i++)
      if (no_file_offset(&j->res[i]))
        set_waiting(j, j->res[i].p);
  }
  for (int k = 0; held && k < l->cnt; k++) {
    rd_kafka_topic_partition_t *t = &l->elems[k];
    rd_kafka_resp_err_t te = e ? e : t->err;
    if (never_committed(l, k, e)) {
      if (held[k] == 0)
        continue;
      set_waiting(j, t->partition);
      /* auto.offset.reset=latest: should the changelog hold no state of it, it starts where the
       * partition ended now, as at an assignment without a wait. */
      rpart_res *x = res_of(j, t->partition);
      int64_t hi;
      if (x && x->wait_hi < 0 && r->offset_reset == 1 && !hi_failed) {
        hi_failed = cl_watermarks(r->consumer, r->o->input_topic, t->partition, NULL, &hi, ASK_MS,
                                  &r->stopping);
        if (!hi_failed)
          x->wait_hi = hi;
      }
      if (held[k] > 0)
        note(j,
             "%s/%d: the state file has no checkpoint of it and the group no committed offset, "
             "but its changelog partition holds records (a member that checkpointed it may have "
             "died before committing): it waits, paused, for a read of it",
             r->o->input_topic, t->partition);
      else
        note(j,
             "%s/%d: the state file has no checkpoint of it, the group no committed offset, and "
             "%s: it waits, paused, for the changelog",
             r->o->input_topic, t->partition, err);
      continue;
    }
    set_waiting(j, t->partition);
    if (te)
      note(j,
           "%s/%d: the state file has no checkpoint of it and the group's committed offset is "
           "not known (%s): it waits, paused, for the changelog",
           r->o->input_topic, t->partition, rd_kafka_err2str(te));
    else
      note(j,
           "%s/%d: the state file has no checkpoint of it and the group committed offset %lld: "
           "its state is in the changelog alone, so it waits, paused, for a read of it",
           r->o->input_topic, t->partition, (long long)t->offset);
  }
  free(held);
  if (l)
    rd_kafka_topic_partition_list_destroy(l);
}

/* Each partition's resume offset, checked against the input partition's watermarks: outside them
 * (the topic was recreated, or retention dropped ticks no checkpoint covers) its state is dropped,
 * in the state file too, and it starts at the low watermark with zero state. */
static void decide(restore_job *j, const int64_t *lows, int ncl) {
  run *r = j->r;
  char err[512];
  uint32_t *has = calloc((size_t)(j->np ? j->np : 1), sizeof *has);
  rd_kafka_resp_err_t failed = 0; /* once a request failed, the next partitions are not asked */
  for (int i = 0; i < j->np; i++) {
    rpart_res *x = &j->res[i];
    if (x->wait) {
      x->resume = x->pnext = -1;
      continue;
    }
    int64_t low = ncl > 0 && x->p % ncl < LOWS_MAX ? lows[x->p % ncl] : -1;
    int64_t R = cl_restore_resume(j->rs, x->p, low, &x->from_cl, &x->mk);
    x->lo = x->hi = -1;
    rd_kafka_resp_err_t e = failed ? failed
                                   : cl_watermarks(r->consumer, r->o->input_topic, x->p, &x->lo,
                                                   &x->hi, ASK_MS, &r->stopping);
    failed = e;
    if (e) {
      note(j, "%s/%d: watermarks: %s (the resume offset is not checked)", r->o->input_topic, x->p,
           rd_kafka_err2str(e));
      x->lo = x->hi = -1;
    }
    if (R >= 0 && x->lo >= 0 && (R < x->lo || R > x->hi)) {
      note(j,
           "%s/%d: the stored resume offset %lld is outside the partition's offsets [%lld, %lld] "
           "(%s): dropping its state, starting at %lld with zero state",
           r->o->input_topic, x->p, (long long)R, (long long)x->lo, (long long)x->hi,
           R < x->lo ? "retention dropped ticks no checkpoint covers" : "the topic was recreated",
           (long long)x->lo);
      cl_restore_drop(j->rs, x->p);
      if (r->db) {
        ckpt_store_lock(r->ck);
        if (store_partition_reset(r->db, r->o->input_topic, x->p, err, sizeof err) != 0)
          note(j, "%s", err);
        ckpt_store_unlock(r->ck);
      }
      x->reset = 1;
      x->from_cl = 0;
      x->mk.part = -1;
      R = x->lo;
    }
    x->resume = R;
    x->pnext = R;
  }
  symtab *t = cl_restore_table(j->rs);
  for (uint32_t s = 0; s < t->count; s++) {
    if (!r->cl_rk) /* no changelog: what came from the file is in the file */
      t->inst[s].dirty = 0;
    for (int i = 0; has && t->inst[s].live && i < j->np; i++)
      has[i] += t->inst[s].partition == j->res[i].p;
  }
  for (int i = 0; i < j->np; i++) {
    rpart_res *x = &j->res[i];
    if (x->resume >= 0 || !has || !has[i])
      continue;
    /* States without a complete checkpoint (the writer died before its first marker): each is
     * right at its own offset, so the partition is read from its start with their skips. */
    x->resume = x->lo >= 0 ? x->lo : 0;
    x->pnext = x->resume;
    note(j, "%s/%d: %u states but no complete checkpoint: reading it from offset %lld",
         r->o->input_topic, x->p, has[i], (long long)x->resume);
  }
  free(has);
}

/* A retry's partitions without a resume offset (the changelog read, but holds no usable marker of
 * the current model) resume where the group committed: the late job seeks there explicitly (a
 * seek cannot name "the committed offset" in librdkafka 2.0.2), or, with none, where
 * auto.offset.reset says: the low watermark (earliest, the default), or, for latest, the high
 * watermark when the partition began to wait (or when a retry first learnt it; now's when no
 * request answered it), so that the ticks that came during the wait are processed, as they would
 * have been without one; within the partition's offsets now (retention or a recreated topic may
 * have moved them past it). Without an answer, or with auto.offset.reset=error, the partition
 * waits on. */
static void late_offsets(restore_job *j) {
  run *r = j->r;
  rd_kafka_resp_err_t e;
  rd_kafka_topic_partition_list_t *l = committed_of(j, no_resume, &e);
  for (int k = 0; l && k < l->cnt; k++) {
    rd_kafka_topic_partition_t *t = &l->elems[k];
    rpart_res *x = res_of(j, t->partition);
    if (!x)
      continue;
    rd_kafka_resp_err_t te = e ? e : t->err;
    if (!te && t->offset >= 0) {
      x->resume = t->offset;
      continue;
    }
    int pol = te ? 0 : r->offset_reset;
    int64_t at = pol == 1 ? (x->wait_hi >= 0 ? x->wait_hi : x->hi) : pol == 0 ? x->lo : -1;
    if (at >= 0 && x->lo >= 0 && (at < x->lo || at > x->hi))
      at = at < x->lo ? x->lo : x->hi;
    if (!te && at >= 0) {
      x->resume = at;
      if (pol == 1)
        note(j,
             "%s/%d: no state of it in the changelog and no committed offset: it starts at %lld "
             "(auto.offset.reset=latest: %s)",
             r->o->input_topic, x->p, (long long)at,
             x->wait_hi < 0     ? "the end of the partition now: no request during the wait "
                                  "answered it"
             : at == x->wait_hi ? "the end of the partition when the wait first asked it"
                                : "within the partition's offsets now, which moved past its end "
                                  "when the wait first asked it");
      continue;
    }
    if (!te && pol < 0) {
      note(j,
           "%s/%d: no state of it in the changelog and no committed offset, and "
           "auto.offset.reset=error: it waits on",
           r->o->input_topic, x->p);
      set_waiting(j, x->p);
      continue;
    }
    note(j, "%s/%d: its committed offset is not known (%s): it waits on", r->o->input_topic, x->p,
         rd_kafka_err2str(te ? te : RD_KAFKA_RESP_ERR__NO_OFFSET));
    set_waiting(j, x->p);
  }
  if (l)
    rd_kafka_topic_partition_list_destroy(l);
}

static void work_cb(uv_work_t *w) {
  restore_job *j = w->data;
  run *r = j->r;
  double t0 = tc_mono_s();
  int32_t *ps = malloc((size_t)(j->np ? j->np : 1) * sizeof *ps);
  for (int i = 0; ps && i < j->np; i++)
    ps[i] = j->res[i].p;
  if (!ps || new_accumulator(j, ps) != 0) {
    note(j, "restore: out of memory");
    free(ps);
    return;
  }
  free(ps);
  if (r->db) {
    /* Before the store lock, which a checkpoint may be waiting for: this may ask the broker. Only
     * restores, one at a time, set r->bound. */
    char *cid = r->bound ? NULL : rd_kafka_clusterid(r->consumer, 5000);
    ckpt_store_lock(r->ck);
    if (!r->bound)
      check_binding(j, cid);
    read_file(j);
    ckpt_store_unlock(r->ck);
    if (cid)
      rd_kafka_mem_free(r->consumer, cid);
  }
  int64_t *lows = j->lows;
  int ncl = 0;
  if (pool_stopping(r)) {
    j->secs = tc_mono_s() - t0;
    return;
  }
  if (r->cl_rk && j->rs) {
    read_changelog(j, lows, &ncl);
    if (j->rs && check_stale(j, lows, ncl)) {
      if (r->db) {
        ckpt_store_lock(r->ck);
        read_file(j); /* the refloored partitions' rows (the others': the same facts again) */
        ckpt_store_unlock(r->ck);
      }
      read_changelog(j, lows, &ncl);
    }
  }
  if (j->rs && !pool_stopping(r)) {
    if (j->cl_failed)
      mark_waiting(j);
    decide(j, lows, ncl);
    if (j->late)
      late_offsets(j);
  }
  j->secs = tc_mono_s() - t0;
}

/* Puts the next restored instruments (about budget of them) into the engine: each with its state,
 * n, last tick, the offset below which its ticks are skipped, and what the next checkpoint must
 * write of it. Returns 1 once all are in. Sliced so that a large restore never holds the loop
 * for long (its partitions are not assigned yet: nothing of them is processed meanwhile). A
 * model swapped in between two slices (SIGHUP) did to the instruments already put what it does
 * to every instrument (engine_set_model); the rest get the same here, so that none keeps the
 * old model's state under --on-model-change reset, nor its interval tracker in any case. */
static int put_instruments(run *r, restore_job *j, uint32_t budget) {
  symtab *t = cl_restore_table(j->rs);
  int swapped = r->model_swaps != j->swaps;
  int reset = swapped && !r->o->on_model_change_keep;
  uint32_t end = t->count - j->put_at > budget ? j->put_at + budget : t->count;
  for (uint32_t s = j->put_at; s < end; s++) {
    const inst *in = &t->inst[s];
    if (!in->live)
      continue;
    int32_t d = symtab_find(&r->e.st, in->sym, in->sym_len);
    if (d < 0)
      d = symtab_add(&r->e.st, in->sym, in->sym_len);
    if (d < 0) {
      log_error("run", "restore: cannot add instrument %.*s: %s", (int)in->sym_len, in->sym,
                tc_strerror(d));
      continue;
    }
    inst *di = &r->e.st.inst[d];
    di->n = in->n;
    di->last_ts = in->last_ts;
    di->last_px = in->last_px;
    di->partition = in->partition;
    di->skip_below = in->skip_below;
    di->dirty = in->dirty;
    di->iv_on = in->iv_on;
    memcpy(di->iv, in->iv, sizeof di->iv);
    memcpy(symtab_state(&r->e.st, d), symtab_state(t, (int32_t)s),
           r->e.st.state_floats * sizeof(float));
    if (swapped) { /* as engine_set_model and sched_ckpt_model_changed did to the others */
      di->iv_on = 0;
      di->dirty = 1;
    }
    if (reset) {
      memset(symtab_state(&r->e.st, d), 0, r->e.st.state_floats * sizeof(float));
      di->n = 0;
    }
    j->n_put++;
    j->n_cl += (uint32_t)cl_restore_from_changelog(j->rs, s);
  }
  j->put_at = end;
  return end == t->count;
}

/* Logs the job's notes, one warning each. */
static void report_notes(restore_job *j) {
  for (char *line = j->note, *nl; *line; line = nl + 1) {
    nl = strchr(line, '\n');
    if (!nl)
      break;
    *nl = 0;
    log_warn("run", "%s", line);
  }
  j->note_len = 0;
  j->note[0] = 0;
}

/* Logs the job's notes and its per-partition outcome (of the partitions restored: not those
 * that wait, nor those a retry found gone). */
static void report(run *r, restore_job *j, uint32_t n, uint32_t n_cl) {
  report_notes(j);
  for (int i = 0; i < j->np; i++) {
    rpart_res *x = &j->res[i];
    if (x->from_cl && !x->wait && !x->gone) {
      char at[40] = "no offset";
      if (x->file_at >= 0)
        snprintf(at, sizeof at, "offset %lld", (long long)x->file_at);
      log_info("run", "%s/%d: resuming at offset %lld from the changelog %s (state file: %s)",
               r->o->input_topic, x->p, (long long)x->resume, r->o->changelog_topic, at);
    }
  }
  const cl_restore_stats *cs = cl_restore_get_stats(j->rs);
  char list[512];
  size_t o = 0;
  list[0] = 0;
  for (int i = 0; i < j->np && o < sizeof list - 40; i++) {
    const rpart_res *x = &j->res[i];
    if (x->wait || x->gone)
      continue;
    if (x->resume >= 0) /* else where the group committed (or auto.offset.reset says) */
      o += (size_t)snprintf(list + o, sizeof list - o, "%s%d@%lld", o ? "," : "", x->p,
                            (long long)x->resume);
    else
      o += (size_t)snprintf(list + o, sizeof list - o, "%s%d@committed", o ? "," : "", x->p);
  }
  log_info("run",
           "restored %s partitions [%s] in %.3f s: %u instruments (%u from the changelog, %u "
           "from the state file), %llu changelog records of %llu messages (%.1f MB) read, "
           "about %.1f MB held",
           r->o->input_topic, list, j->secs, n, n_cl, n - n_cl, (unsigned long long)cs->records,
           (unsigned long long)cs->messages, (double)cs->bytes / 1e6,
           (double)cl_restore_mem(j->rs) / 1e6);
  if (cs->earlier)
    log_info("run",
             "changelog %s: %llu records and markers of the models swapped out with "
             "--on-model-change keep taken (their instruments restart their intervals and are "
             "written again under model %s)",
             r->o->changelog_topic, (unsigned long long)cs->earlier, r->model->id);
  if (cs->bad || cs->old_format || cs->other_model)
    log_info("run",
             "changelog %s: ignored %llu values that do not decode, %llu hand-off records of "
             "an earlier version, %llu records and markers of another model",
             r->o->changelog_topic, (unsigned long long)cs->bad, (unsigned long long)cs->old_format,
             (unsigned long long)cs->other_model);
}

static void free_job(restore_job *j) {
  cl_restore_free(j->rs);
  if (j->parts)
    rd_kafka_topic_partition_list_destroy(j->parts);
  free(j->res);
  free(j);
}

static void on_put_idle(uv_idle_t *h);
static void late_done(run *r, restore_job *j);
static void begin(run *r, rd_kafka_topic_partition_list_t *parts, int coop, int late);

/* Pool thread: frees the restored table and hands the allocator's free pages back to the system
 * (malloc_trim: 4-6 ms after a restore of 12,000 instruments, off the loop). Without it what a
 * restore freed stays resident (glibc raises its mmap threshold as large blocks are freed, so the
 * restore's table and librdkafka's fetch buffers come from the arenas' heaps, which keep them):
 * 12,000 instruments read from 37 MB of changelog left 30 MB resident, 12 MB after the trim. */
static void release_cb(uv_work_t *w) {
  restore_job *j = w->data;
  cl_restore_free(j->rs);
  j->rs = NULL;
  /* Not under AddressSanitizer: glibc's heap is then never set up, and two pool threads trimming
   * at once (a restore per stream thread) raced in its lazy set-up and crashed. */
#if !UNDER_ASAN
  malloc_trim(0);
#endif
}

static void released_cb(uv_work_t *w, int status) {
  (void)status;
  free_job(w->data);
}

/* Loop thread: the job is done; it is freed on the pool. */
static void release_job(run *r, restore_job *j) {
  if (uv_queue_work(r->loop, &j->work, release_cb, released_cb) != 0)
    free_job(j);
}

/* Loop thread: the restore is done; the partitions get their instruments (on_put_idle) and are
 * assigned. */
static void after_cb(uv_work_t *w, int status) {
  (void)status;
  restore_job *j = w->data;
  run *r = j->r;
  if (j->late) {
    late_done(r, j);
    return;
  }
  if (r->stopping && !j->orphan) { /* stopping: the partitions only need to be given back */
    r->rj = NULL;
    rebalance_assign(r, j->parts, j->coop);
    free_job(j);
    return;
  }
  if (j->orphan || !j->rs) {
    if (!j->orphan) {
      log_error("run", "restore failed: %s; stopping", j->note);
      r->rj = NULL;
      rebalance_assign(r, j->parts, j->coop);
      lifecycle_begin_shutdown(r, 1);
    }
    free_job(j);
    return;
  }
  if (r->model_swaps != j->swaps) {
    r->rj = NULL;
    /* The model changed meanwhile (SIGHUP; also when it was swapped out and back): what was read
     * was chosen for another model. */
    log_info("run", "the model changed during the restore: restoring again");
    rd_kafka_topic_partition_list_t *parts = j->parts;
    j->parts = NULL;
    int coop = j->coop;
    free_job(j);
    restore_begin(r, parts, coop);
    rd_kafka_topic_partition_list_destroy(parts);
    return;
  }
  r->restore_idle.data = r;
  uv_idle_start(&r->restore_idle, on_put_idle);
}

/* Instruments per loop turn put into the engine (a few ms at most). */
#define PUT_SLICE 1024

/* A restored partition's offsets and changelog position, and its counts in the stats. */
static void part_restored(run *r, const rpart_res *x) {
  part *pt = part_get(r, x->p);
  if (pt) {
    pt->pnext = x->pnext;
    pt->cl_base = x->mk.part >= 0 ? x->mk.base : -1;
    pt->cl_since = x->mk.part >= 0 ? x->mk.since_base : 0;
    pt->ninst = x->mk.part >= 0 ? x->mk.instruments : 0;
  }
  r->st.handoffs_in += (uint64_t)x->from_cl;
  r->st.state_resets += (uint64_t)x->reset;
}

/* A job's seconds count in restore_total_s whatever came of it; the job counts as a restore when
 * it restored (else once a retry restores its partitions). */
static void restore_counted(run *r, restore_job *j, int restored) {
  r->st.restore_total_s += j->secs;
  if (!restored)
    return;
  r->st.restores++;
  r->st.restored_instruments += j->n_put;
  r->st.restore_records += cl_restore_get_stats(j->rs)->records;
  r->st.restore_last_s = j->secs;
}

/* The job's partitions that wait, as "p,q", into list; returns how many. */
static int waiting_list(const restore_job *j, char *list, size_t cap) {
  size_t o = 0;
  int n = 0;
  list[0] = 0;
  for (int i = 0; i < j->np; i++)
    if (j->res[i].wait && !j->res[i].gone && o < cap - 16) {
      o += (size_t)snprintf(list + o, cap - o, "%s%d", n ? "," : "", j->res[i].p);
      n++;
    }
  return n;
}

/* Partitions of the job wait (mark_waiting): they stay paused, and t_await restores them again,
 * after a delay that doubles from AWAIT_MS to AWAIT_MAX_MS while they keep waiting. */
static void await_again(run *r, const restore_job *j) {
  char list[512];
  int n = waiting_list(j, list, sizeof list);
  if (!n) {
    r->await_ms = 0;
    return;
  }
  r->await_ms = r->await_ms ? r->await_ms * 2 : AWAIT_MS;
  if (r->await_ms > AWAIT_MAX_MS)
    r->await_ms = AWAIT_MAX_MS;
  log_warn("run",
           "%s partitions [%s] wait, paused, for their state in changelog %s: restoring them "
           "again in %llu s (this restore took %.3f s)",
           r->o->input_topic, list, r->o->changelog_topic, (unsigned long long)(r->await_ms / 1000),
           j->secs);
  uv_timer_start(&r->t_await, restore_on_await, r->await_ms, 0);
}

/* An assignment that came while a retry was on the pool begins now (given back unrestored when
 * stopping). */
static void assign_deferred(run *r) {
  rd_kafka_topic_partition_list_t *l = r->assign_later;
  if (!l)
    return;
  r->assign_later = NULL;
  if (r->stopping)
    rebalance_assign(r, l, r->assign_later_coop);
  else
    begin(r, l, r->assign_later_coop, 0);
  rd_kafka_topic_partition_list_destroy(l);
}

/* The restore's instruments go into the engine a slice per loop turn; then the partitions are
 * assigned, those that wait paused. */
static void on_put_idle(uv_idle_t *h) {
  run *r = h->data;
  restore_job *j = r->rj;
  if (!j) {
    uv_idle_stop(h);
    return;
  }
  if (!put_instruments(r, j, PUT_SLICE))
    return;
  uv_idle_stop(h);
  r->rj = NULL;
  rd_kafka_topic_partition_list_t *wl = rd_kafka_topic_partition_list_new(j->np ? j->np : 1);
  int restored = 0;
  for (int i = 0; i < j->np; i++) {
    rpart_res *x = &j->res[i];
    part_restored(r, x);
    for (int k = 0; k < j->parts->cnt; k++)
      if (j->parts->elems[k].partition == x->p &&
          !strcmp(j->parts->elems[k].topic, r->o->input_topic))
        j->parts->elems[k].offset = x->resume >= 0 ? x->resume : RD_KAFKA_OFFSET_INVALID;
    restored += !x->wait;
    part *wp = x->wait ? part_get(r, x->p) : NULL;
    if (wp)
      wp->wait_hi = x->wait_hi;
    if (x->wait && wl)
      rd_kafka_topic_partition_list_add(wl, r->o->input_topic, x->p);
  }
  r->st.state_resets += (uint64_t)j->resets_file;
  restore_counted(r, j, restored || !wl || !wl->cnt);
  if (restored)
    report(r, j, j->n_put, j->n_cl);
  else
    report_notes(j);
  rebalance_assign(r, j->parts, j->coop);
  if (wl && wl->cnt) { /* paused before their fetch starts (it waits for the committed offset) */
    for (int k = 0; k < wl->cnt; k++) {
      part *pt = part_get(r, wl->elems[k].partition);
      if (pt)
        pt->awaiting = 1;
    }
    rd_kafka_pause_partitions(r->consumer, wl);
    r->await_ms = 0;
    await_again(r, j);
  }
  if (wl)
    rd_kafka_topic_partition_list_destroy(wl);
  release_job(r, j);
  /* The first checkpoint stores where each partition starts (and what only one side lacks). */
  sched_ckpt_try(r);
}

/* Loop thread: a retry of awaiting partitions is done. Those still assigned and awaiting as when
 * it began get their instruments (at once: a retry is rare and its partitions few), their resume
 * offsets (a seek, which waits up to 1 s for the fetcher so that nothing fetched before it is
 * delivered; late_offsets made each one absolute) and are resumed; those that still wait are tried
 * again later. */
static void late_done(run *r, restore_job *j) {
  if (r->rj == j)
    r->rj = NULL;
  if (j->orphan || r->stopping || !j->rs || r->model_swaps != j->swaps) {
    if (!j->orphan && !r->stopping) { /* out of memory, or another model: again, soon */
      report_notes(j);
      uv_timer_start(&r->t_await, restore_on_await, 100, 0);
    }
    free_job(j);
    assign_deferred(r);
    return;
  }
  rd_kafka_topic_partition_list_t *go = rd_kafka_topic_partition_list_new(j->np ? j->np : 1);
  if (!go) {
    free_job(j);
    uv_timer_start(&r->t_await, restore_on_await, 100, 0);
    assign_deferred(r);
    return;
  }
  /* A partition whose seek fails waits on (its restored instruments are not put in). The seek
   * waits up to 1 s for the fetcher to take the offset: rd_kafka_seek_partitions of librdkafka
   * 2.0.2 waits 1000 times less than it is told (fixed in 2.0.3), rd_kafka_seek does not. */
  for (int i = 0; i < j->np; i++) {
    rpart_res *x = &j->res[i];
    part *pt = part_get(r, x->p);
    if (!pt || !pt->assigned || !pt->awaiting || pt->revoking || pt->gen != x->gen) {
      x->gone = 1;
      cl_restore_drop(j->rs, x->p);
      continue;
    }
    pt->wait_hi = x->wait_hi; /* learnt by this retry, when the first restore could not ask */
    rd_kafka_resp_err_t se = x->wait ? 0 : rd_kafka_seek(r->t_in, x->p, x->resume, 1000);
    if (se) {
      log_warn("run", "%s/%d: seek to offset %lld: %s; it waits on", r->o->input_topic, x->p,
               (long long)x->resume, rd_kafka_err2str(se));
      set_waiting(j, x->p);
    }
  }
  put_instruments(r, j, UINT32_MAX);
  int restored = 0;
  for (int i = 0; i < j->np; i++) {
    rpart_res *x = &j->res[i];
    if (x->gone || x->wait)
      continue;
    part_restored(r, x);
    part_get(r, x->p)->awaiting = 0;
    rd_kafka_topic_partition_list_add(go, r->o->input_topic, x->p);
    restored++;
  }
  if (go->cnt && !r->hard_paused)
    rd_kafka_resume_partitions(r->consumer, go);
  rd_kafka_topic_partition_list_destroy(go);
  restore_counted(r, j, restored);
  if (restored)
    report(r, j, j->n_put, j->n_cl);
  else
    report_notes(j);
  await_again(r, j);
  release_job(r, j);
  if (restored)
    sched_ckpt_try(r);
  uv_idle_start(&r->idle, drain_on_idle);
  assign_deferred(r);
}

void restore_on_await(uv_timer_t *h) {
  run *r = h->data;
  if (r->stopping)
    return;
  if (r->rj) { /* an assignment's restore, or the last retry, is under way */
    uv_timer_start(h, restore_on_await, 1000, 0);
    return;
  }
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
  if (!l)
    return;
  for (int32_t p = 0; p < r->nparts; p++)
    if (r->parts[p].assigned && r->parts[p].awaiting && !r->parts[p].revoking)
      rd_kafka_topic_partition_list_add(l, r->o->input_topic, p);
  if (l->cnt)
    begin(r, l, r->coop, 1);
  rd_kafka_topic_partition_list_destroy(l);
}

static void begin(run *r, rd_kafka_topic_partition_list_t *parts, int coop, int late) {
  if (r->rj && r->rj->late) { /* the changelog reader is busy: after the retry */
    if (!r->assign_later) {
      r->assign_later = rd_kafka_topic_partition_list_copy(parts);
      r->assign_later_coop = coop;
    } else {
      for (int i = 0; i < parts->cnt; i++)
        rd_kafka_topic_partition_list_add(r->assign_later, parts->elems[i].topic,
                                          parts->elems[i].partition);
    }
    if (!r->assign_later) {
      log_error("run", "restore: out of memory; stopping");
      rebalance_assign(r, parts, coop);
      lifecycle_begin_shutdown(r, 1);
    }
    return;
  }
  restore_job *j = calloc(1, sizeof *j);
  if (!j || !(j->parts = rd_kafka_topic_partition_list_copy(parts)) ||
      !(j->res = calloc((size_t)(parts->cnt ? parts->cnt : 1), sizeof *j->res))) {
    if (j)
      free_job(j);
    if (late) { /* the partitions wait on */
      log_error("run", "restore: out of memory; trying again in 1 s");
      uv_timer_start(&r->t_await, restore_on_await, 1000, 0);
      return;
    }
    log_error("run", "restore: out of memory; stopping");
    rebalance_assign(r, parts, coop);
    lifecycle_begin_shutdown(r, 1);
    return;
  }
  j->r = r;
  j->coop = coop;
  j->late = late;
  j->cell = r->model->cell;
  j->L = r->model->L;
  j->H = r->model->H;
  memcpy(j->sha, r->model->sha256, 32);
  ckpt_model_hex(r->model, j->hex);
  memcpy(j->earlier, r->earlier, sizeof j->earlier);
  j->n_earlier = r->n_earlier;
  j->swaps = r->model_swaps;
  for (int i = 0; i < parts->cnt; i++)
    if (!strcmp(parts->elems[i].topic, r->o->input_topic)) {
      rpart_res *x = &j->res[j->np++];
      x->p = parts->elems[i].partition;
      x->file_at = -1;
      x->mk.part = -1;
      part *pt = part_get(r, x->p);
      x->gen = pt ? pt->gen : 0;
      x->wait_hi = late && pt ? pt->wait_hi : -1;
    }
  j->work.data = j;
  r->rj = j;
  int rc = uv_queue_work(r->loop, &j->work, work_cb, after_cb);
  if (rc != 0) {
    r->rj = NULL;
    free_job(j);
    if (late) {
      log_error("run", "restore: uv_queue_work: %s; trying again in 1 s", uv_strerror(rc));
      uv_timer_start(&r->t_await, restore_on_await, 1000, 0);
      return;
    }
    log_error("run", "restore: uv_queue_work: %s; stopping", uv_strerror(rc));
    rebalance_assign(r, parts, coop);
    lifecycle_begin_shutdown(r, 1);
  }
}

void restore_begin(run *r, rd_kafka_topic_partition_list_t *parts, int coop) {
  begin(r, parts, coop, 0);
}

void restore_stop(run *r) {
  uv_timer_stop(&r->t_await);
  restore_job *j = r->rj;
  if (j && j->late) { /* its partitions are assigned already: its result is dropped */
    r->rj = NULL;
    j->orphan = 1;
    j = NULL;
  }
  assign_deferred(r); /* given back: r->stopping */
  if (!j)
    return;
  r->rj = NULL;
  rebalance_assign(r, j->parts, j->coop);
  if (uv_is_active((uv_handle_t *)&r->restore_idle)) { /* done on the pool, being put in */
    uv_idle_stop(&r->restore_idle);
    free_job(j);
    return;
  }
  j->orphan = 1;
}
