/* changelog.c: the changelog's records, the restore accumulator, the reader and the writer (see
 * changelog.h for the format and why it restores correctly). */
#include "daemon/kafka/changelog.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "daemon/kafka/kconf.h"
#include "daemon/kafka/produce.h"
#include "daemon/pipeline/log.h"
#include "nn/base/clock.h"
#include "nn/base/le.h"
#include "nn/base/tc_err.h"

/* ---- codec ---- */

size_t cl_state_len(int cell, int L, int H) {
  return CL_STATE_FIXED + store_blob_len(cell, L, H) + 8;
}

/* The trailer: XXH64 of the value before it, seeded with the XXH64 of the key. */
static uint64_t seal_of(const void *key, size_t klen, const unsigned char *v, size_t len) {
  return XXH64(v, len, XXH64(key, klen, 0));
}

static void put_head(unsigned char *b, int kind, int32_t part, int64_t off,
                     const unsigned char sha[32], int cell) {
  memcpy(b, "TCCL", 4);
  b[4] = (unsigned char)kind;
  b[5] = (unsigned char)cell;
  b[6] = b[7] = 0;
  le_put_u32(b + 8, (uint32_t)part);
  le_put_u64(b + 12, (uint64_t)off);
  memcpy(b + 20, sha, 32);
}

size_t cl_encode_state(unsigned char *buf, int32_t part, int64_t next, const unsigned char sha[32],
                       const store_inst *in, int cell, int L, int H) {
  put_head(buf, CL_KIND_STATE, part, next, sha, cell);
  uint64_t px;
  memcpy(&px, &in->last_px, 8);
  le_put_u64(buf + CL_HEAD, in->n);
  le_put_u64(buf + CL_HEAD + 8, (uint64_t)in->last_ts);
  le_put_u64(buf + CL_HEAD + 16, px);
  size_t len = CL_STATE_FIXED + store_blob_encode(buf + CL_STATE_FIXED, cell, L, H, in->state,
                                                  in->has_track ? in->track : NULL);
  le_put_u64(buf + len, seal_of(in->sym, in->sym_len, buf, len));
  return len + 8;
}

size_t cl_marker_key(char *key, int32_t part) {
  key[0] = 0;
  return 1 + (size_t)snprintf(key + 1, CL_MARKER_KEY_MAX - 1, "ckpt/%d", (int)part);
}

size_t cl_encode_marker(unsigned char *buf, const cl_marker *m, const unsigned char sha[32],
                        int cell) {
  put_head(buf, CL_KIND_MARKER, m->part, m->next, sha, cell);
  le_put_u64(buf + CL_HEAD, (uint64_t)m->base);
  le_put_u64(buf + CL_HEAD + 8, m->since_base);
  le_put_u32(buf + CL_HEAD + 16, m->instruments);
  le_put_u32(buf + CL_HEAD + 20, m->records);
  le_put_u64(buf + CL_HEAD + 24, (uint64_t)m->time_ns);
  memset(buf + CL_HEAD + 32, 0, 4);
  char key[CL_MARKER_KEY_MAX];
  size_t kl = cl_marker_key(key, m->part);
  le_put_u64(buf + CL_MARKER_LEN - 8, seal_of(key, kl, buf, CL_MARKER_LEN - 8));
  return CL_MARKER_LEN;
}

/* ---- restore ---- */

typedef struct rpart {
  int32_t part;
  int64_t file_next; /* the state file's offset, -1 none */
  cl_marker best;    /* the latest marker of this model in log order (best.part = -1: none) */
  int64_t floor;     /* records at changelog offsets below are ignored (-1: none) */
  int usable;        /* set by cl_restore_resume: a marker is usable */
  int decided;       /* cl_restore_resume ran */
} rpart;

struct cl_restore {
  int cell, L, H;
  unsigned char sha[32];
  unsigned char earlier[CL_EARLIER_MAX][32]; /* cl_restore_accept_earlier's models */
  int n_earlier;
  symtab t;        /* the instruments: skip_below = the offset of the state held */
  int64_t *o_cl;   /* (side_cap) per slot: the largest o_A the changelog holds, -1 none */
  int64_t *o_run;  /* (side_cap) per slot: the same of the running model's records alone */
  int64_t *o_file; /* (side_cap) per slot: the state file's o_A, -1 none */
  int64_t *cl_at;  /* (side_cap) per slot: changelog offset of its latest best record, -1 none */
  uint8_t *old;    /* (side_cap) per slot: the fact held is of an earlier model */
  uint32_t side_cap;
  rpart *parts; /* (nparts) */
  int nparts;
  float *tmp; /* (store_blob_floats) a decoded state */
  cl_restore_stats st;
};

int cl_restore_new(cl_restore **out, int cell, int L, int H, const unsigned char sha[32],
                   const int32_t *parts, int nparts) {
  *out = NULL;
  cl_restore *r = calloc(1, sizeof *r);
  if (!r)
    return TC_ENOMEM;
  r->cell = cell;
  r->L = L;
  r->H = H;
  memcpy(r->sha, sha, 32);
  size_t sf = store_blob_floats(cell, L, H);
  r->parts = calloc((size_t)(nparts > 0 ? nparts : 1), sizeof *r->parts);
  r->tmp = malloc(sf * sizeof *r->tmp);
  if (!r->parts || !r->tmp || symtab_init(&r->t, sf, 1024) != 0) {
    cl_restore_free(r);
    return TC_ENOMEM;
  }
  for (int i = 0; i < nparts; i++) {
    r->parts[i].part = parts[i];
    r->parts[i].file_next = -1;
    r->parts[i].best.part = -1;
    r->parts[i].floor = -1;
  }
  r->nparts = nparts;
  *out = r;
  return 0;
}

void cl_restore_free(cl_restore *r) {
  if (!r)
    return;
  symtab_free(&r->t);
  free(r->o_cl);
  free(r->o_run);
  free(r->o_file);
  free(r->cl_at);
  free(r->old);
  free(r->parts);
  free(r->tmp);
  free(r);
}

int cl_restore_accept_earlier(cl_restore *r, const unsigned char sha[32]) {
  if (r->n_earlier >= CL_EARLIER_MAX)
    return TC_EINVAL;
  memcpy(r->earlier[r->n_earlier++], sha, 32);
  return 0;
}

static int is_earlier(const cl_restore *r, const unsigned char *sha) {
  for (int i = 0; i < r->n_earlier; i++)
    if (!memcmp(r->earlier[i], sha, 32))
      return 1;
  return 0;
}

static rpart *rpart_of(cl_restore *r, int32_t p) {
  for (int i = 0; i < r->nparts; i++)
    if (r->parts[i].part == p)
      return &r->parts[i];
  return NULL;
}

/* Keeps the side arrays as large as the table. */
static int side_reserve(cl_restore *r) {
  if (r->side_cap >= r->t.cap)
    return 0;
  int64_t *a = realloc(r->o_cl, (size_t)r->t.cap * sizeof *a);
  if (!a)
    return TC_ENOMEM;
  r->o_cl = a;
  int64_t *b = realloc(r->o_file, (size_t)r->t.cap * sizeof *b);
  if (!b)
    return TC_ENOMEM;
  r->o_file = b;
  int64_t *c = realloc(r->cl_at, (size_t)r->t.cap * sizeof *c);
  if (!c)
    return TC_ENOMEM;
  r->cl_at = c;
  int64_t *e = realloc(r->o_run, (size_t)r->t.cap * sizeof *e);
  if (!e)
    return TC_ENOMEM;
  r->o_run = e;
  uint8_t *d = realloc(r->old, r->t.cap);
  if (!d)
    return TC_ENOMEM;
  r->old = d;
  for (uint32_t i = r->side_cap; i < r->t.cap; i++) {
    r->o_cl[i] = r->o_run[i] = r->o_file[i] = r->cl_at[i] = -1;
    r->old[i] = 0;
  }
  r->side_cap = r->t.cap;
  return 0;
}

/* Offers one fact (instrument in, state st, offset next, of an earlier model or not) from the
 * changelog (from_cl, at changelog offset cl_off) or the file: it replaces what the table holds
 * when its offset is larger, or equal and the fact held is of an earlier model and this one not. */
static int offer(cl_restore *r, const store_inst *in, const float *st, int64_t next, int from_cl,
                 int64_t cl_off, int earlier) {
  int32_t s = symtab_find(&r->t, in->sym, in->sym_len);
  int fresh = s < 0;
  if (fresh && (s = symtab_add(&r->t, in->sym, in->sym_len)) < 0)
    return s;
  if (side_reserve(r) != 0)
    return TC_ENOMEM;
  if (fresh) /* the slot may be a dropped instrument's, reused: none of its offsets apply */
    r->o_cl[s] = r->o_run[s] = r->o_file[s] = r->cl_at[s] = -1;
  int64_t *mine = from_cl ? r->o_cl : r->o_file;
  if (next > mine[s])
    mine[s] = next;
  if (from_cl && !earlier && next > r->o_run[s])
    r->o_run[s] = next;
  inst *ti = &r->t.inst[s];
  if (from_cl && (fresh || next >= ti->skip_below))
    r->cl_at[s] = cl_off; /* an equal fact later in the log: the later one counts */
  if (!fresh && (next < ti->skip_below || (next == ti->skip_below && (earlier || !r->old[s]))))
    return 0;
  r->old[s] = (uint8_t)earlier;
  ti->n = in->n;
  ti->last_ts = in->last_ts;
  ti->last_px = in->last_px;
  ti->partition = in->partition;
  ti->skip_below = next;
  ti->iv_on = (uint8_t)(in->has_track && !earlier);
  memcpy(ti->iv, in->track, sizeof ti->iv);
  memcpy(symtab_state(&r->t, s), st, r->t.state_floats * sizeof(float));
  return 0;
}

void cl_restore_add(cl_restore *r, int64_t cl_off, const void *key, size_t klen, const void *val,
                    size_t len) {
  const unsigned char *v = val;
  r->st.messages++;
  r->st.bytes += len;
  if (!v || len < 5 || memcmp(v, "TCCL", 4) != 0) {
    r->st.bad++;
    return;
  }
  if (v[4] == 1 || v[4] == 2) {
    r->st.old_format++;
    return;
  }
  if ((v[4] != CL_KIND_STATE && v[4] != CL_KIND_MARKER) || len < CL_HEAD + 8 ||
      le_get_u64(v + len - 8) != seal_of(key ? key : "", key ? klen : 0, v, len - 8)) {
    r->st.bad++;
    return;
  }
  int32_t part = (int32_t)le_get_u32(v + 8);
  int64_t off = (int64_t)le_get_u64(v + 12);
  rpart *rp = rpart_of(r, part);
  if (!rp)
    return;
  int earlier = 0;
  if (v[5] != r->cell || (memcmp(v + 20, r->sha, 32) != 0 && !(earlier = is_earlier(r, v + 20)))) {
    r->st.other_model++;
    return;
  }
  if (v[4] == CL_KIND_MARKER) {
    if (len != CL_MARKER_LEN || off < 0) {
      r->st.bad++;
      return;
    }
    cl_marker m = {.part = part,
                   .next = off,
                   .base = (int64_t)le_get_u64(v + CL_HEAD),
                   .since_base = le_get_u64(v + CL_HEAD + 8),
                   .instruments = le_get_u32(v + CL_HEAD + 16),
                   .records = le_get_u32(v + CL_HEAD + 20),
                   .time_ns = (int64_t)le_get_u64(v + CL_HEAD + 24),
                   .at = cl_off};
    r->st.markers++;
    r->st.earlier += (uint64_t)earlier;
    /* The latest in log order, as compaction keeps it: with one writer at a time markers come in
     * increasing offsets, and a later lower one (a recreated input topic) must win. Every marker's
     * claim holds, so an older writer's late marker is safe too (it only resumes lower). */
    rp->best = m;
    return;
  }
  char why[160];
  store_inst in = {.sym = key, .sym_len = klen, .partition = part};
  /* The blob's own cell is checked too: a record whose header and blob disagree is damaged. The
   * fixed fields are read only once the length is known to hold them. */
  size_t sl = cl_state_len(r->cell, r->L, r->H);
  if ((len != sl && len != sl + STORE_BLOB_TRACK_LEN) || klen < 1 || klen > STORE_SYM_MAX ||
      off < 0 ||
      store_blob_decode(v + CL_STATE_FIXED, len - CL_STATE_FIXED - 8, r->cell, r->L, r->H, r->tmp,
                        in.track, &in.has_track, why, sizeof why) != 0) {
    r->st.bad++;
    return;
  }
  in.n = le_get_u64(v + CL_HEAD);
  in.last_ts = (int64_t)le_get_u64(v + CL_HEAD + 8);
  uint64_t px = le_get_u64(v + CL_HEAD + 16);
  memcpy(&in.last_px, &px, 8);
  if (cl_off < rp->floor)
    return;
  r->st.records++;
  r->st.earlier += (uint64_t)earlier;
  if (offer(r, &in, r->tmp, off, 1, cl_off, earlier) != 0)
    r->st.bad++;
}

void cl_restore_file_offset(cl_restore *r, int32_t p, int64_t next) {
  rpart *rp = rpart_of(r, p);
  if (rp)
    rp->file_next = next;
}

int cl_restore_add_file_inst(cl_restore *r, const store_inst *in, int64_t next, int earlier) {
  if (!rpart_of(r, in->partition) || next < 0)
    return 0;
  return offer(r, in, in->state, next, 0, -1, earlier != 0);
}

int64_t cl_restore_resume(cl_restore *r, int32_t p, int64_t cl_low, int *from_changelog,
                          cl_marker *m) {
  rpart *rp = rpart_of(r, p);
  *from_changelog = 0;
  m->part = -1;
  if (!rp)
    return -1;
  rp->decided = 1;
  /* base INT64_MAX: the marker relies on no record (the partition had no instrument). */
  rp->usable = rp->best.part >= 0 && (cl_low < 0 || rp->best.base >= cl_low);
  int64_t R = rp->file_next;
  if (rp->usable) {
    *m = rp->best;
    if (rp->best.next > R) {
      R = rp->best.next;
      *from_changelog = 1;
    }
  }
  return R;
}

uint32_t cl_restore_stale(const cl_restore *r, int32_t p) {
  const rpart *rp = NULL;
  for (int i = 0; i < r->nparts; i++)
    if (r->parts[i].part == p)
      rp = &r->parts[i];
  int64_t floor = rp ? cl_marker_floor(&rp->best) : -1;
  if (!rp || !rp->usable || floor <= rp->floor)
    return 0;
  uint32_t n = 0;
  for (uint32_t s = 0; s < r->t.count; s++) {
    const inst *in = &r->t.inst[s];
    n += in->live && in->partition == p && r->o_cl[s] == in->skip_below && r->cl_at[s] >= 0 &&
         r->cl_at[s] < floor;
  }
  return n;
}

void cl_restore_refloor(cl_restore *r, int32_t p, int64_t floor) {
  cl_restore_drop(r, p);
  rpart *rp = rpart_of(r, p);
  if (rp) {
    rp->floor = floor;
    rp->best.part = -1;
    rp->decided = 0;
  }
}

symtab *cl_restore_table(cl_restore *r) {
  for (uint32_t s = 0; s < r->t.count; s++) {
    inst *in = &r->t.inst[s];
    if (!in->live)
      continue;
    rpart *rp = rpart_of(r, in->partition);
    if (!rp || !rp->decided) {
      symtab_remove(&r->t, (int32_t)s);
      continue;
    }
    /* Without a usable marker the changelog's completeness is unknown: everything is rewritten
     * (a full checkpoint). */
    if (!rp->usable || r->o_run[s] < in->skip_below)
      in->dirty = 1; /* also when the changelog holds it under an earlier model only */
    else if (r->o_file[s] < in->skip_below)
      in->dirty = 2;
    else
      in->dirty = 0;
  }
  return &r->t;
}

int cl_restore_from_changelog(cl_restore *r, uint32_t s) {
  const inst *in = &r->t.inst[s];
  const rpart *rp = rpart_of(r, in->partition);
  return rp && rp->usable && r->o_cl[s] >= in->skip_below && r->o_file[s] < in->skip_below;
}

void cl_restore_drop(cl_restore *r, int32_t p) {
  for (uint32_t s = 0; s < r->t.count; s++)
    if (r->t.inst[s].live && r->t.inst[s].partition == p)
      symtab_remove(&r->t, (int32_t)s);
}

const cl_restore_stats *cl_restore_get_stats(const cl_restore *r) {
  return &r->st;
}

size_t cl_restore_mem(const cl_restore *r) {
  return (size_t)r->t.cap * (sizeof(inst) + r->t.state_floats * sizeof(float) + 16) +
         (size_t)(r->t.index_mask + 1) * sizeof(uint32_t);
}

/* ---- reading ---- */

static double mono_ms(void) {
  return (double)tc_mono_ns() / 1e6;
}

static int stopped(const int *stop) {
  return stop && __atomic_load_n(stop, __ATOMIC_RELAXED);
}

/* The wait of one request while a stop may come. With stop, a request is asked in slices, and
 * asked again when a slice ends without its answer (that answer is then dropped), so that a stop
 * ends the wait within a slice. The first slice is STOP_SLICE_MS, or twice what the last answered
 * request took when that is longer, and each next one twice the one before, up to
 * STOP_SLICE_MAX_MS, so that a broker that answers slower than a second, up to that cap, still
 * answers one (with equal slices of a second, it never did). The cap keeps a stop's wait within
 * the shutdown's bound (STOP_BOUND_MS, daemon/loop/lifecycle.c). Without stop, one request waits
 * the whole timeout. */
#define STOP_SLICE_MS 1000
#define STOP_SLICE_MAX_MS 4000

static int last_answer_ms; /* process-wide, atomic: what the last answered request took */

typedef struct slices {
  const int *stop;
  double end;   /* the request's deadline */
  double asked; /* when the current slice began */
  int next;     /* the next slice's length */
} slices;

static slices slices_of(const int *stop, int timeout_ms) {
  int last = __atomic_load_n(&last_answer_ms, __ATOMIC_RELAXED);
  int first = last > STOP_SLICE_MAX_MS / 2 ? STOP_SLICE_MAX_MS
              : last > STOP_SLICE_MS / 2   ? 2 * last
                                           : STOP_SLICE_MS;
  double now = mono_ms();
  return (slices){stop, now + timeout_ms, now, first};
}

/* The length of the next slice (the whole rest without stop), from now. */
static int slice_ms(slices *s) {
  s->asked = mono_ms();
  double left = s->end - s->asked;
  if (left < 1)
    return 1;
  int ms = s->stop && left > s->next ? s->next : (int)left;
  s->next = s->next > STOP_SLICE_MAX_MS / 2 ? STOP_SLICE_MAX_MS : 2 * s->next;
  return ms;
}

/* A request that ended with e is asked again when it timed out before the deadline; an answer
 * (e another error or none) sets what the next request's first slice is from. */
static int again(slices *s, rd_kafka_resp_err_t e) {
  if (e == RD_KAFKA_RESP_ERR__TIMED_OUT)
    return mono_ms() < s->end;
  if (e != RD_KAFKA_RESP_ERR__DESTROY)
    __atomic_store_n(&last_answer_ms, (int)(mono_ms() - s->asked), __ATOMIC_RELAXED);
  return 0;
}

/* The offset of topic/part at AT (RD_KAFKA_OFFSET_BEGINNING: the low watermark, END: the high one)
 * by one ListOffsets request within timeout_ms. rd_kafka_offsets_for_times, which honours its
 * timeout, not rd_kafka_query_watermark_offsets: in librdkafka 2.0.2 that one uses its timeout
 * only to find the leader and then waits for the answer as long as the request lives
 * (socket.timeout.ms, 60 s by default), which no stop can cut short. */
static rd_kafka_resp_err_t offset_at(rd_kafka_t *rk, const char *topic, int32_t part, int64_t at,
                                     int64_t *out, int timeout_ms) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  if (!l)
    return RD_KAFKA_RESP_ERR__FAIL;
  rd_kafka_topic_partition_list_add(l, topic, part)->offset = at;
  rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, l, timeout_ms);
  if (!e)
    e = l->elems[0].err;
  if (!e && l->elems[0].offset < 0) /* the partition was not in the answer */
    e = RD_KAFKA_RESP_ERR__BAD_MSG;
  if (!e)
    *out = l->elems[0].offset;
  rd_kafka_topic_partition_list_destroy(l);
  return e;
}

rd_kafka_resp_err_t cl_watermarks(rd_kafka_t *rk, const char *topic, int32_t part, int64_t *lo,
                                  int64_t *hi, int timeout_ms, const int *stop) {
  double end = mono_ms() + timeout_ms;
  int64_t *out[2] = {lo, hi};
  const int64_t at[2] = {RD_KAFKA_OFFSET_BEGINNING, RD_KAFKA_OFFSET_END};
  for (int k = lo ? 0 : 1; k < 2; k++) { /* each request sliced on its own, against one deadline */
    double left = end - mono_ms();
    slices s = slices_of(stop, left < 1 ? 1 : (int)left);
    rd_kafka_resp_err_t e;
    do
      e = stopped(stop) ? RD_KAFKA_RESP_ERR__DESTROY
                        : offset_at(rk, topic, part, at[k], out[k], slice_ms(&s));
    while (again(&s, e));
    if (e)
      return e;
  }
  return RD_KAFKA_RESP_ERR_NO_ERROR;
}

rd_kafka_resp_err_t cl_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                                 int timeout_ms, const int *stop) {
  slices s = slices_of(stop, timeout_ms);
  rd_kafka_resp_err_t e;
  do
    e = stopped(stop) ? RD_KAFKA_RESP_ERR__DESTROY : rd_kafka_committed(rk, parts, slice_ms(&s));
  while (again(&s, e));
  return e;
}

/* The changelog's partition count through rk's metadata: 0 when the topic does not exist, -1
 * with err when the broker did not tell (no answer, or another topic error). */
static int topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, const int *stop,
                            char *err, size_t errlen) {
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
  if (!t) {
    snprintf(err, errlen, "changelog %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
    return -1;
  }
  const struct rd_kafka_metadata *md = NULL;
  slices s = slices_of(stop, timeout_ms);
  rd_kafka_resp_err_t e;
  do
    e = stopped(stop) ? RD_KAFKA_RESP_ERR__DESTROY : rd_kafka_metadata(rk, 0, t, &md, slice_ms(&s));
  while (again(&s, e));
  rd_kafka_topic_destroy(t);
  if (e) {
    snprintf(err, errlen, "changelog %s: metadata: %s", topic, rd_kafka_err2str(e));
    return -1;
  }
  /* Only a topic the broker does not know counts as absent (empty): another topic error
   * (LEADER_NOT_AVAILABLE in a failover, TOPIC_AUTHORIZATION_FAILED) says nothing of its
   * records. */
  rd_kafka_resp_err_t te =
      md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
  int n = md->topic_cnt == 1 && !te ? md->topics[0].partition_cnt : 0;
  rd_kafka_metadata_destroy(md);
  if (te && te != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
      te != RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
    snprintf(err, errlen, "changelog %s: metadata: %s", topic, rd_kafka_err2str(te));
    return -1;
  }
  return n;
}

int cl_holds_records(rd_kafka_t *rk, const char *topic, const int32_t *parts, int n, int *held,
                     int timeout_ms, const int *stop, char *err, size_t errlen) {
  for (int i = 0; i < n; i++)
    held[i] = -1;
  int ncl = n > 0 ? topic_partitions(rk, topic, timeout_ms, stop, err, errlen) : 0;
  if (ncl < 0)
    return -1;
  for (int i = 0; i < n; i++) {
    if (ncl == 0) {
      held[i] = 0;
      continue;
    }
    int32_t q = parts[i] % ncl;
    for (int k = 0; k < i && held[i] < 0; k++)
      if (parts[k] % ncl == q)
        held[i] = held[k]; /* its changelog partition was asked already */
    if (held[i] >= 0)
      continue;
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e = cl_watermarks(rk, topic, q, &lo, &hi, timeout_ms, stop);
    if (e) { /* the rest are not asked: they stay -1 */
      snprintf(err, errlen, "changelog %s/%d: watermarks: %s", topic, q, rd_kafka_err2str(e));
      return -1;
    }
    held[i] = hi > lo;
  }
  return 0;
}

/* Assigns the changelog partitions of parts to rk from their low watermarks; fills end[] (the high
 * watermark at the start, 0 for partitions not read) and lows[]; returns how many are open. */
static int read_assign(rd_kafka_t *rk, const char *topic, const int32_t *parts, int nparts, int ncl,
                       int64_t *end, int64_t *lows, int lows_cap, int timeout_ms, const int *stop,
                       char *err, size_t errlen) {
  rd_kafka_topic_partition_list_t *asg = rd_kafka_topic_partition_list_new(nparts);
  int open = 0;
  for (int i = 0; i < nparts; i++) {
    int32_t q = parts[i] % ncl;
    if (rd_kafka_topic_partition_list_find(asg, topic, q))
      continue;
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e = cl_watermarks(rk, topic, q, &lo, &hi, timeout_ms, stop);
    if (e) {
      snprintf(err, errlen, "changelog %s/%d: watermarks: %s", topic, q, rd_kafka_err2str(e));
      rd_kafka_topic_partition_list_destroy(asg);
      return -1;
    }
    if (lows && q < lows_cap)
      lows[q] = lo;
    rd_kafka_topic_partition_list_add(asg, topic, q)->offset = lo;
    if (hi > lo) {
      end[q] = hi;
      open++;
    }
  }
  rd_kafka_resp_err_t e = open > 0 ? rd_kafka_assign(rk, asg) : 0;
  rd_kafka_topic_partition_list_destroy(asg);
  if (e) {
    snprintf(err, errlen, "changelog %s: assign: %s", topic, rd_kafka_err2str(e));
    return -1;
  }
  return open;
}

/* The reader polls for this long; an empty poll wakes the fetcher when at least WAKE_BYTES of
 * values came since the last wake (the queue had likely reached its cap), or WAKE_MS after it
 * (a fetch that waits for the network needs no wake-up requests). */
#define POLL_MS 1
#define WAKE_BYTES (256 * 1024)
#define WAKE_MS 100

/* librdkafka (2.0.2) stops fetching a partition while its queue is over
 * queued.max.messages.kbytes and decides again only when its broker thread next wakes up, up to a
 * second later, however soon the queue was drained (2.4 added fetch.queue.backoff.ms, also 1 s by
 * default): with CL_READER_CONF's 1 MiB, 38 MB of changelog took 20 s instead of 0.2 s. A request
 * through the broker thread wakes it: the high watermark of a partition still being read (the
 * leader of all of them on the embedded broker; on a cluster each stalled leader is woken in turn,
 * as the poll keeps finding nothing). */
static void wake_fetcher(rd_kafka_t *rk, const char *topic, const int64_t *end, int ncl,
                         int32_t *next, int timeout_ms) {
  for (int k = 0; k < ncl; k++) {
    int32_t q = (*next + k) % ncl;
    if (end[q] > 0) {
      int64_t hi;
      offset_at(rk, topic, q, RD_KAFKA_OFFSET_END, &hi, timeout_ms);
      *next = q + 1;
      return;
    }
  }
}

int cl_read(rd_kafka_t *rk, const char *topic, cl_restore *r, const int32_t *parts, int nparts,
            int64_t *lows, int lows_cap, int *ncl_out, int timeout_ms, const int *stop, char *err,
            size_t errlen) {
  for (int i = 0; lows && i < lows_cap; i++)
    lows[i] = -1;
  *ncl_out = 0;
  if (nparts <= 0)
    return 0;
  double t0 = mono_ms();
  int ncl = topic_partitions(rk, topic, timeout_ms, stop, err, errlen);
  if (ncl <= 0)
    return ncl; /* 0: no such topic (yet), nothing to read */
  *ncl_out = ncl;
  int64_t *end = calloc((size_t)ncl, sizeof *end);
  if (!end) {
    snprintf(err, errlen, "changelog %s: out of memory", topic);
    return -1;
  }
  int open = read_assign(rk, topic, parts, nparts, ncl, end, lows, lows_cap, timeout_ms, stop, err,
                         errlen);
  int rc = open < 0 ? -1 : 0;
  int32_t woken = 0;       /* the next partition wake_fetcher asks about */
  size_t since = 0;        /* value bytes since the last wake-up */
  double woke_at = t0;     /* its time */
  double seen = mono_ms(); /* when the last message came (or the read began) */
  while (rc == 0 && open > 0) {
    if (mono_ms() - seen > timeout_ms) {
      snprintf(err, errlen, "changelog %s: nothing read for %d ms, %d partitions not at their end",
               topic, timeout_ms, open);
      rc = -1;
      break;
    }
    if (stopped(stop)) {
      snprintf(err, errlen, "changelog %s: read given up (stopping)", topic);
      rc = -1;
      break;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, POLL_MS);
    if (!m) {
      double now = mono_ms(), left = timeout_ms - (now - seen);
      if (since >= WAKE_BYTES || now - woke_at >= WAKE_MS) {
        wake_fetcher(rk, topic, end, ncl, &woken, left < 1 ? 1 : left < 1000 ? (int)left : 1000);
        since = 0;
        woke_at = now;
      }
      continue;
    }
    since += m->len;
    seen = mono_ms();
    int32_t q = m->partition;
    int mine = q >= 0 && q < ncl && end[q] > 0;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      /* The end (the last offsets may be control records that are never delivered). */
      if (mine) {
        end[q] = 0;
        open--;
      }
    } else if (m->err) {
      snprintf(err, errlen, "changelog %s/%d: %s", topic, q, rd_kafka_message_errstr(m));
      rc = -1;
    } else if (mine) {
      cl_restore_add(r, m->offset, m->key, m->key_len, m->payload, m->len);
      if (m->offset + 1 >= end[q]) {
        end[q] = 0;
        open--;
      }
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_assign(rk, NULL);
  free(end);
  return rc;
}

/* ---- writing ---- */

struct cl_writer {
  rd_kafka_t *rk;        /* the writer's own producer */
  rd_kafka_topic_t *rkt; /* the changelog */
  char topic[STORE_TOPIC_MAX + 1];
  int ncl;      /* partitions of the changelog, 0 until known */
  uint64_t gen; /* put generation: reports of an earlier put are ignored */
  int64_t *off; /* (cap) offset of message i of this put; -1 pending, -2 failed */
  size_t cap;
  rd_kafka_resp_err_t err; /* the first delivery error of this put */
  unsigned char *buf;      /* (buf_cap) one encoded value */
  size_t buf_cap;
  int64_t cut_ms; /* CLOCK_MONOTONIC ms no wait goes past, 0: none (cl_writer_cut; atomic) */
};

#define GEN_SHIFT 40

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  cl_writer *w = opaque;
  uint64_t v = (uint64_t)(uintptr_t)m->_private;
  if (v >> GEN_SHIFT != (w->gen & ((1ull << (64 - GEN_SHIFT)) - 1)))
    return;
  uint64_t i = (v & ((1ull << GEN_SHIFT) - 1)) - 1;
  if (i >= w->cap)
    return;
  if (m->err) {
    w->off[i] = -2;
    if (!w->err)
      w->err = m->err;
  } else {
    w->off[i] = m->offset;
  }
}

void cl_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  (void)opaque;
  kconf_error_log("run", rk, err, reason);
}

int cl_writer_new(cl_writer **out, rd_kafka_conf_t *conf, const char *topic, char *err,
                  size_t errlen) {
  *out = NULL;
  cl_writer *w = calloc(1, sizeof *w);
  if (!w) {
    rd_kafka_conf_destroy(conf);
    snprintf(err, errlen, "changelog writer: out of memory");
    return TC_ENOMEM;
  }
  snprintf(w->topic, sizeof w->topic, "%s", topic);
  char kerr[512];
  if (rd_kafka_conf_set(conf, "enable.idempotence", "true", kerr, sizeof kerr) ||
      rd_kafka_conf_set(conf, "acks", "all", kerr, sizeof kerr)) {
    rd_kafka_conf_destroy(conf);
    free(w);
    snprintf(err, errlen, "changelog writer: %s", kerr);
    return TC_EKAFKA;
  }
  rd_kafka_conf_set_opaque(conf, w);
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_error_cb(conf, cl_on_error);
  if (!(w->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr))) {
    rd_kafka_conf_destroy(conf);
    free(w);
    snprintf(err, errlen, "changelog writer: %s", kerr);
    return TC_EKAFKA;
  }
  if (!(w->rkt = rd_kafka_topic_new(w->rk, topic, NULL))) {
    snprintf(err, errlen, "changelog %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
    cl_writer_destroy(w);
    return TC_EKAFKA;
  }
  *out = w;
  return 0;
}

void cl_writer_destroy(cl_writer *w) {
  if (!w)
    return;
  /* Every put waited for its records' acknowledgements: what is left belongs to a put that gave up
   * on them (the broker did not answer), so it is purged, not waited for again. */
  w->gen++;  /* reports from here on belong to no put */
  if (w->rk) /* purged and their reports served, so that librdkafka does not warn at destroy */
    kprod_close_lent(w->rk, 200);
  if (w->rkt)
    rd_kafka_topic_destroy(w->rkt);
  if (w->rk)
    rd_kafka_destroy(w->rk);
  free(w->off);
  free(w->buf);
  free(w);
}

rd_kafka_t *cl_writer_handle(cl_writer *w) {
  return w->rk;
}

int cl_writer_fatal(cl_writer *w, char *reason, size_t len) {
  char buf[256];
  rd_kafka_resp_err_t e =
      rd_kafka_fatal_error(w->rk, reason ? reason : buf, reason ? len : sizeof buf);
  return e != RD_KAFKA_RESP_ERR_NO_ERROR;
}

int cl_writer_partitions(cl_writer *w, int timeout_ms, char *err, size_t errlen) {
  int n = topic_partitions(w->rk, w->topic, timeout_ms, NULL, err, errlen);
  if (n > 0)
    w->ncl = n;
  return n;
}

int cl_writer_create(cl_writer *w, int nparts, int timeout_ms, char *err, size_t errlen) {
  char kerr[512];
  rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(w->topic, nparts, -1, kerr, sizeof kerr);
  if (!nt) {
    snprintf(err, errlen, "changelog %s: %s", w->topic, kerr);
    return TC_EKAFKA;
  }
  rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
  rd_kafka_queue_t *q = rd_kafka_queue_new(w->rk);
  rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(w->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(opt, timeout_ms, kerr, sizeof kerr);
  rd_kafka_CreateTopics(w->rk, &nt, 1, opt, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
  int rc = TC_EKAFKA;
  if (!ev) {
    snprintf(err, errlen, "changelog %s: create: no answer in %d ms", w->topic, timeout_ms);
  } else if (rd_kafka_event_error(ev)) {
    snprintf(err, errlen, "changelog %s: create: %s", w->topic, rd_kafka_event_error_string(ev));
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    rd_kafka_resp_err_t e = n == 1 ? rd_kafka_topic_result_error(res[0]) : 0;
    if (!e || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
      rc = 0;
    else
      snprintf(err, errlen, "changelog %s: create: %s", w->topic,
               rd_kafka_topic_result_error_string(res[0]));
  }
  if (ev)
    rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(opt);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  return rc;
}

/* Room for n messages' delivery offsets and one encoded state. */
static int put_reserve(cl_writer *w, size_t n, size_t vlen) {
  if (n > w->cap) {
    int64_t *o = realloc(w->off, n * sizeof *o);
    if (!o)
      return TC_ENOMEM;
    w->off = o;
    w->cap = n;
  }
  if (vlen > w->buf_cap) {
    unsigned char *b = realloc(w->buf, vlen);
    if (!b)
      return TC_ENOMEM;
    w->buf = b;
    w->buf_cap = vlen;
  }
  return 0;
}

/* Produces message number i of this put; 0 or -1 with err. */
static int put_one(cl_writer *w, size_t i, int32_t q, const void *val, size_t len, const void *key,
                   size_t klen, int timeout_ms, char *err, size_t errlen) {
  w->off[i] = -1;
  void *opq = (void *)(uintptr_t)(((w->gen & ((1ull << (64 - GEN_SHIFT)) - 1)) << GEN_SHIFT) |
                                  (uint64_t)(i + 1));
  rd_kafka_resp_err_t e = kprod_send(w->rk, w->rkt, q, RD_KAFKA_MSG_F_COPY, (void *)val, len, key,
                                     klen, opq, timeout_ms, NULL);
  if (!e)
    return 0;
  w->off[i] = -2;
  snprintf(err, errlen, "changelog %s/%d: produce: %s", w->topic, q, rd_kafka_err2str(e));
  return -1;
}

/* A put that fails drops what it still has queued (not yet sent to a broker): the checkpoint is
 * retried as a whole, and a state record that reached the changelog minutes later, after its
 * partition's next owner wrote a newer one, would be the one that compaction keeps (changelog.h:
 * one writer per partition). Requests already sent cannot be called back. */
static void put_failed(cl_writer *w, char *err, size_t errlen) {
  rd_kafka_purge(w->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_NON_BLOCKING);
  char why[256];
  if (cl_writer_fatal(w, why, sizeof why))
    snprintf(err, errlen, "changelog %s: the writer's producer failed for good: %s", w->topic, why);
}

void cl_writer_cut(cl_writer *w, int64_t mono_ms_by) {
  if (w)
    __atomic_store_n(&w->cut_ms, mono_ms_by, __ATOMIC_RELAXED);
}

/* Waits for the reports of messages [0, n) of this put, for timeout_ms or until the cut-off;
 * 0, or -1 with err. */
static int put_wait(cl_writer *w, size_t n, int timeout_ms, char *err, size_t errlen) {
  double end = mono_ms() + timeout_ms;
  for (;;) {
    int64_t cut = __atomic_load_n(&w->cut_ms, __ATOMIC_RELAXED);
    double now = mono_ms(), by = cut > 0 && (double)cut < end ? (double)cut : end;
    if (rd_kafka_outq_len(w->rk) == 0 || now >= by)
      break;
    /* In slices, so that a cut-off set meanwhile (a shutdown) is seen within 100 ms. */
    rd_kafka_flush(w->rk, by - now < 100 ? (int)(by - now) + 1 : 100);
  }
  for (size_t i = 0; i < n; i++)
    if (w->off[i] < 0) {
      snprintf(err, errlen, "changelog %s: %s", w->topic,
               w->off[i] == -1 ? "not acknowledged in time" : rd_kafka_err2str(w->err));
      return -1;
    }
  return 0;
}

static cl_part *part_of(cl_part *parts, size_t nparts, int32_t p) {
  for (size_t k = 0; k < nparts; k++)
    if (parts[k].part == p)
      return &parts[k];
  return NULL;
}

/* The records: produced, then acknowledged; the smallest offset of each partition's records goes
 * into its base when the checkpoint is full. Returns the count sent, or -1 with err. */
static long put_records(cl_writer *w, const unsigned char sha[32], int cell, int L, int H,
                        const store_inst *in, const uint8_t *send, size_t n, cl_part *parts,
                        size_t nparts, int timeout_ms, char *err, size_t errlen) {
  size_t k = 0;
  int32_t *idx = malloc((n ? n : 1) * sizeof *idx); /* message k -> row */
  if (!idx) {
    snprintf(err, errlen, "changelog %s: out of memory", w->topic);
    return -1;
  }
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    cl_part *cp = part_of(parts, nparts, in[i].partition);
    if (!cp || (send && !send[i]) || in[i].next_offset < 0)
      continue;
    size_t len =
        cl_encode_state(w->buf, in[i].partition, in[i].next_offset, sha, &in[i], cell, L, H);
    idx[k] = (int32_t)i;
    rc = put_one(w, k++, in[i].partition % w->ncl, w->buf, len, in[i].sym, in[i].sym_len,
                 timeout_ms, err, errlen);
    cp->records++;
  }
  if (rc == 0)
    rc = put_wait(w, k, timeout_ms, err, errlen);
  for (size_t j = 0; j < k && rc == 0; j++) {
    cl_part *cp = part_of(parts, nparts, in[idx[j]].partition);
    if (cp->full && (cp->base < 0 || w->off[j] < cp->base))
      cp->base = w->off[j];
  }
  free(idx);
  return rc == 0 ? (long)k : -1;
}

int cl_writer_put(cl_writer *w, const unsigned char sha[32], int cell, int L, int H,
                  const store_inst *in, const uint8_t *send, size_t n, cl_part *parts,
                  size_t nparts, int64_t time_ns, int timeout_ms, char *err, size_t errlen) {
  w->gen++;
  w->err = 0;
  if (w->ncl <= 0 && cl_writer_partitions(w, timeout_ms, err, errlen) <= 0) {
    if (w->ncl <= 0 && !err[0])
      snprintf(err, errlen, "changelog %s: the topic does not exist", w->topic);
    return TC_EKAFKA;
  }
  if (put_reserve(w, n > nparts ? n : nparts, cl_state_len(cell, L, H) + STORE_BLOB_TRACK_LEN) !=
      0) {
    snprintf(err, errlen, "changelog %s: out of memory", w->topic);
    return TC_ENOMEM;
  }
  /* Bases: a full checkpoint starts a new one (its smallest record offset, or INT64_MAX when the
   * partition has no instrument: it relies on no record). Without a base (none yet, or
   * INT64_MAX) the checkpoint must be full: the caller puts every instrument of such a partition
   * among the rows (cl_part.full). */
  int64_t *base_in = malloc((nparts ? nparts : 1) * 2 * sizeof *base_in);
  if (!base_in)
    return TC_ENOMEM;
  uint64_t *since_in = (uint64_t *)(base_in + nparts);
  for (size_t k = 0; k < nparts; k++) {
    base_in[k] = parts[k].base;
    since_in[k] = parts[k].since_base;
    parts[k].records = 0;
    if (parts[k].base < 0 || parts[k].base == INT64_MAX)
      parts[k].full = 1;
    if (parts[k].full)
      parts[k].base = -1;
  }
  long sent = put_records(w, sha, cell, L, H, in, send, n, parts, nparts, timeout_ms, err, errlen);
  if (sent < 0) {
    put_failed(w, err, errlen);
    for (size_t k = 0; k < nparts; k++)
      parts[k].base = base_in[k];
    free(base_in);
    return TC_EKAFKA;
  }
  w->gen++;
  int rc = 0;
  for (size_t k = 0; k < nparts && rc == 0; k++) {
    cl_part *cp = &parts[k];
    if (cp->full && cp->base < 0)
      cp->base = INT64_MAX; /* no instrument: relies on no record */
    cp->since_base = (cp->base == base_in[k] ? cp->since_base : 0) + cp->records + 1;
    cl_marker m = {.part = cp->part,
                   .next = cp->next,
                   .base = cp->base,
                   .since_base = cp->since_base,
                   .instruments = cp->instruments,
                   .records = cp->records,
                   .time_ns = time_ns};
    char key[CL_MARKER_KEY_MAX];
    size_t kl = cl_marker_key(key, cp->part);
    size_t len = cl_encode_marker(w->buf, &m, sha, cell);
    rc = put_one(w, k, cp->part % w->ncl, w->buf, len, key, kl, timeout_ms, err, errlen);
  }
  if (rc == 0)
    rc = put_wait(w, nparts, timeout_ms, err, errlen);
  if (rc != 0) {
    put_failed(w, err, errlen);
    for (size_t k = 0; k < nparts; k++) {
      parts[k].base = base_in[k];
      parts[k].since_base = since_in[k];
    }
    free(base_in);
    return TC_EKAFKA;
  }
  free(base_in);
  return 0;
}
