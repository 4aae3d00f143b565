/* changelog.c: hand-off records and their reader (see changelog.h). */
#include "daemon/kafka/changelog.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "daemon/pipeline/log.h"
#include "nn/base/le.h"
#include "nn/base/tc_err.h"

size_t cl_state_len(int cell, int L, int H) {
  return CL_STATE_FIXED + store_blob_len(cell, L, H) + 8;
}

/* The trailer: XXH64 of the value before it, seeded with the XXH64 of the key. */
static uint64_t seal_of(const void *key, size_t klen, const unsigned char *v, size_t len) {
  return XXH64(v, len, XXH64(key, klen, 0));
}

static void put_head(unsigned char *b, int kind, uint64_t id, int32_t part) {
  memcpy(b, "TCCL", 4);
  b[4] = (unsigned char)kind;
  b[5] = b[6] = b[7] = 0;
  le_put_u64(b + 8, id);
  le_put_u32(b + 16, (uint32_t)part);
}

size_t cl_encode_state(unsigned char *buf, uint64_t id, int32_t part, const store_inst *in,
                       int cell, int L, int H) {
  put_head(buf, 1, id, part);
  uint64_t ts = (uint64_t)in->last_ts, px;
  memcpy(&px, &in->last_px, 8);
  le_put_u64(buf + CL_HEAD, in->n);
  le_put_u64(buf + CL_HEAD + 8, ts);
  le_put_u64(buf + CL_HEAD + 16, px);
  size_t len = CL_STATE_FIXED + store_blob_encode(buf + CL_STATE_FIXED, cell, L, H, in->state);
  le_put_u64(buf + len, seal_of(in->sym, in->sym_len, buf, len));
  return len + 8;
}

size_t cl_marker_key(char *key, int32_t part) {
  key[0] = 0;
  return 1 + (size_t)snprintf(key + 1, CL_MARKER_KEY_MAX - 1, "handoff/%d", (int)part);
}

size_t cl_encode_marker(unsigned char *buf, uint64_t id, int32_t part, uint32_t count,
                        int64_t next_offset, const char *model_sha256) {
  put_head(buf, 2, id, part);
  le_put_u32(buf + CL_HEAD, count);
  le_put_u64(buf + CL_HEAD + 4, (uint64_t)next_offset);
  memcpy(buf + CL_HEAD + 12, model_sha256, 64);
  char key[CL_MARKER_KEY_MAX];
  size_t kl = cl_marker_key(key, part);
  le_put_u64(buf + CL_MARKER_LEN - 8, seal_of(key, kl, buf, CL_MARKER_LEN - 8));
  return CL_MARKER_LEN;
}

/* One instrument of a hand-off, staged until its marker or kept as a result. */
typedef struct cl_rec {
  uint64_t id;
  int32_t part;
  char sym[STORE_SYM_MAX + 1];
  store_inst in; /* sym and state point into this record */
  float *state;
} cl_rec;

typedef struct cl_result {
  int32_t part;
  int64_t next; /* -1: none */
  cl_rec *recs;
  store_inst *insts;
  size_t n;
} cl_result;

struct cl_scan {
  int cell, L, H;
  char sha[65];
  cl_rec *staged;
  size_t nstaged, capstaged;
  cl_result *res;
  int nres;
  uint64_t bad, other_model;
};

int cl_scan_new(cl_scan **out, int cell, int L, int H, const char *model_sha256,
                const int32_t *parts, int nparts) {
  cl_scan *s = calloc(1, sizeof *s);
  if (!s || !(s->res = calloc((size_t)(nparts > 0 ? nparts : 1), sizeof *s->res))) {
    free(s);
    return TC_ENOMEM;
  }
  s->cell = cell;
  s->L = L;
  s->H = H;
  snprintf(s->sha, sizeof s->sha, "%s", model_sha256);
  for (int i = 0; i < nparts; i++) {
    s->res[i].part = parts[i];
    s->res[i].next = -1;
  }
  s->nres = nparts;
  *out = s;
  return 0;
}

static cl_result *result_for(cl_scan *s, int32_t part) {
  for (int i = 0; i < s->nres; i++)
    if (s->res[i].part == part)
      return &s->res[i];
  return NULL;
}

static void recs_free(cl_rec *r, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(r[i].state);
}

static void stage(cl_scan *s, uint64_t id, int32_t part, const unsigned char *v, size_t len,
                  const void *key, size_t klen) {
  size_t fl = store_blob_floats(s->cell, s->L, s->H);
  if (len != cl_state_len(s->cell, s->L, s->H) || klen < 1 || klen > STORE_SYM_MAX) {
    s->bad++;
    return;
  }
  float *st = malloc(fl * sizeof *st);
  char err[160];
  if (!st || store_blob_decode(v + CL_STATE_FIXED, len - CL_STATE_FIXED - 8, s->cell, s->L, s->H,
                               st, err, sizeof err) != 0) {
    free(st);
    s->bad++;
    return;
  }
  if (s->nstaged == s->capstaged) {
    size_t nc = s->capstaged ? 2 * s->capstaged : 64;
    cl_rec *nb = realloc(s->staged, nc * sizeof *nb);
    if (!nb) {
      free(st);
      s->bad++;
      return;
    }
    s->staged = nb;
    s->capstaged = nc;
  }
  cl_rec *r = &s->staged[s->nstaged++];
  memset(r, 0, sizeof *r);
  r->id = id;
  r->part = part;
  memcpy(r->sym, key, klen);
  r->in.sym_len = klen;
  r->in.partition = part;
  r->in.n = le_get_u64(v + CL_HEAD);
  r->in.last_ts = (int64_t)le_get_u64(v + CL_HEAD + 8);
  uint64_t px = le_get_u64(v + CL_HEAD + 16);
  memcpy(&r->in.last_px, &px, 8);
  r->state = st;
}

/* A marker: if every record it counts was staged (and the model is ours), they become the
 * partition's result, replacing an older one; staged records of that hand-off leave either way. */
static void close_handoff(cl_scan *s, cl_result *res, uint64_t id, int32_t part,
                          const unsigned char *v) {
  uint32_t count = le_get_u32(v + CL_HEAD);
  int64_t next = (int64_t)le_get_u64(v + CL_HEAD + 4);
  int same_model = memcmp(v + CL_HEAD + 12, s->sha, 64) == 0;
  size_t have = 0;
  for (size_t i = 0; i < s->nstaged; i++)
    have += s->staged[i].id == id && s->staged[i].part == part;
  cl_rec *mine = NULL;
  if (have == count && same_model && next >= 0)
    mine = malloc((have ? have : 1) * sizeof *mine);
  store_inst *insts = mine ? malloc((have ? have : 1) * sizeof *insts) : NULL;
  if (!insts) {
    free(mine);
    mine = NULL;
  }
  if (have == count && next >= 0 && !same_model)
    s->other_model++;
  else if (have != count || next < 0)
    s->bad++;
  size_t k = 0, w = 0;
  for (size_t i = 0; i < s->nstaged; i++) {
    cl_rec *r = &s->staged[i];
    if (r->id == id && r->part == part) {
      if (mine)
        mine[k++] = *r;
      else
        free(r->state);
    } else {
      s->staged[w++] = *r;
    }
  }
  s->nstaged = w;
  if (!mine)
    return;
  for (size_t i = 0; i < k; i++) { /* the records stay put from here on */
    insts[i] = mine[i].in;
    insts[i].sym = mine[i].sym;
    insts[i].state = mine[i].state;
  }
  recs_free(res->recs, res->n);
  free(res->recs);
  free(res->insts);
  res->recs = mine;
  res->insts = insts;
  res->n = k;
  res->next = next;
}

void cl_scan_add(cl_scan *s, const void *key, size_t klen, const void *val, size_t len) {
  const unsigned char *v = val;
  if (!v || len < CL_HEAD + 8 || memcmp(v, "TCCL", 4) || (v[4] != 1 && v[4] != 2) ||
      le_get_u64(v + len - 8) != seal_of(key ? key : "", key ? klen : 0, v, len - 8)) {
    s->bad++;
    return;
  }
  uint64_t id = le_get_u64(v + 8);
  int32_t part = (int32_t)le_get_u32(v + 16);
  cl_result *res = result_for(s, part);
  if (!res)
    return;
  if (v[4] == 1)
    stage(s, id, part, v, len, key, klen);
  else if (len != CL_MARKER_LEN)
    s->bad++;
  else
    close_handoff(s, res, id, part, v);
}

int64_t cl_scan_result(const cl_scan *s, int32_t p, const store_inst **insts, size_t *n) {
  *insts = NULL;
  *n = 0;
  for (int i = 0; i < s->nres; i++) {
    const cl_result *r = &s->res[i];
    if (r->part != p || r->next < 0)
      continue;
    *insts = r->insts;
    *n = r->n;
    return r->next;
  }
  return -1;
}

uint64_t cl_scan_bad(const cl_scan *s) {
  return s->bad;
}

uint64_t cl_scan_other_model(const cl_scan *s) {
  return s->other_model;
}

void cl_scan_free(cl_scan *s) {
  if (!s)
    return;
  recs_free(s->staged, s->nstaged);
  free(s->staged);
  for (int i = 0; i < s->nres; i++) {
    recs_free(s->res[i].recs, s->res[i].n);
    free(s->res[i].recs);
    free(s->res[i].insts);
  }
  free(s->res);
  free(s);
}

int cl_read(rd_kafka_t *rk, const char *topic, cl_scan *s, const int32_t *parts, int nparts,
            int timeout_ms, char *err, size_t errlen) {
  if (nparts <= 0)
    return 0;
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
  if (!t) {
    snprintf(err, errlen, "changelog %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
    return -1;
  }
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
  rd_kafka_topic_destroy(t);
  if (e) {
    snprintf(err, errlen, "changelog %s: metadata: %s", topic, rd_kafka_err2str(e));
    return -1;
  }
  int ncl = md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : 0;
  rd_kafka_metadata_destroy(md);
  if (ncl <= 0)
    return 0; /* no such topic (yet): no hand-off */

  /* The changelog partitions to read, each from its start to its end now. */
  rd_kafka_topic_partition_list_t *asg = rd_kafka_topic_partition_list_new(nparts);
  int64_t *end = calloc((size_t)ncl, sizeof *end);
  if (!asg || !end) {
    if (asg)
      rd_kafka_topic_partition_list_destroy(asg);
    free(end);
    snprintf(err, errlen, "changelog %s: out of memory", topic);
    return -1;
  }
  int rc = 0, open = 0;
  for (int i = 0; i < nparts && rc == 0; i++) {
    int32_t q = parts[i] % ncl;
    if (rd_kafka_topic_partition_list_find(asg, topic, q))
      continue;
    int64_t lo = 0, hi = 0;
    e = rd_kafka_query_watermark_offsets(rk, topic, q, &lo, &hi, timeout_ms);
    if (e) {
      snprintf(err, errlen, "changelog %s/%d: watermarks: %s", topic, q, rd_kafka_err2str(e));
      rc = -1;
    } else if (hi > lo) {
      rd_kafka_topic_partition_list_add(asg, topic, q)->offset = lo;
      end[q] = hi;
      open++;
    }
  }
  if (rc == 0 && open > 0 && (e = rd_kafka_assign(rk, asg)) != 0) {
    snprintf(err, errlen, "changelog %s: assign: %s", topic, rd_kafka_err2str(e));
    rc = -1;
  }
  uint64_t msgs = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (rc == 0 && open > 0) {
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms) {
      snprintf(err, errlen, "changelog %s: not read to its end within %d ms", topic, timeout_ms);
      rc = -1;
      break;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      /* The end (the last offsets may be control records that are never delivered). */
      if (m->partition >= 0 && m->partition < ncl && end[m->partition] > 0) {
        end[m->partition] = 0;
        open--;
      }
    } else if (m->err) {
      snprintf(err, errlen, "changelog %s/%d: %s", topic, m->partition, rd_kafka_message_errstr(m));
      rc = -1;
    } else if (m->partition >= 0 && m->partition < ncl && end[m->partition] > 0) {
      msgs++;
      cl_scan_add(s, m->key, m->key_len, m->payload, m->len);
      if (m->offset + 1 >= end[m->partition]) {
        end[m->partition] = 0;
        open--;
      }
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_assign(rk, NULL);
  rd_kafka_topic_partition_list_destroy(asg);
  free(end);
  log_debug("changelog", "%s: read %llu messages (%llu bad, %llu of another model)", topic,
            (unsigned long long)msgs, (unsigned long long)s->bad,
            (unsigned long long)s->other_model);
  return rc;
}
