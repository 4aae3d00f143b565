/* reject.c: the tally of rejected inputs (see reject.h). Off the hot path: a rejected input costs
 * a few stores, and only the first REJECT_SHOWN are formatted. */
#include "ingest/reject.h"

#include <assert.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "nn/base/tc_err.h"

void reject_tally_init(reject_tally *t) {
  memset(t, 0, sizeof *t);
}

int reject_loc_format(const reject_loc *loc, char *buf, size_t n) {
  if (loc->part == REJECT_LINE)
    return snprintf(buf, n, "%s:%lld", loc->src, (long long)loc->pos);
  return snprintf(buf, n, "%s/%d/%lld", loc->src, (int)loc->part, (long long)loc->pos);
}

void reject_tally_note(reject_tally *t, int reason, reject_loc loc, const char *msg) {
  assert(reason > TICK_OK && reason < TICK_NREASONS);
  uint64_t k = t->n[reason]++;
  if (k < REJECT_FIRST)
    t->first[reason][k] = loc;
  t->total++;
  if (t->quiet || t->total > REJECT_SHOWN)
    return;
  int last = t->total == REJECT_SHOWN;
  char where[512], line[1024];
  reject_loc_format(&loc, where, sizeof where);
  if (t->print) {
    snprintf(line, sizeof line, "%s: %s: %s%s", where, tick_reason_name(reason), msg,
             last ? " (further rejects only counted)" : "");
    t->print(t->print_ud, line);
    return;
  }
  fprintf(stderr, "%s%s: %s: %s\n", t->lead ? t->lead : "", where, tick_reason_name(reason), msg);
  if (last)
    fprintf(stderr, "%s: further rejected lines are only counted\n", loc.src);
}

int reject_hold_init(reject_hold *h) {
  memset(h, 0, sizeof *h);
  h->e = malloc(REJECT_HOLD_MAX * sizeof *h->e);
  return h->e ? 0 : TC_ENOMEM;
}

void reject_hold_free(reject_hold *h) {
  free(h->e);
  h->e = NULL;
}

void reject_hold_add(reject_hold *h, const reject_tally *t, int reason, reject_loc loc,
                     const char *msg, int before) {
  assert(h->n < REJECT_HOLD_MAX);
  reject_held *e = &h->e[h->n++];
  e->loc = loc;
  e->reason = reason;
  e->before = before;
  e->msg = -1;
  /* Noting is deferred for the whole chunk, so t->total is what it was when the chunk began. */
  if (!t->quiet && t->total + (uint64_t)h->nmsg < REJECT_SHOWN) {
    e->msg = h->nmsg++;
    snprintf(h->msg[e->msg], REJECT_MSG, "%s", msg);
  }
}

void reject_hold_note(reject_hold *h, reject_tally *t, int upto) {
  for (; h->next < h->n && h->e[h->next].before <= upto; h->next++) {
    const reject_held *e = &h->e[h->next];
    reject_tally_note(t, e->reason, e->loc, e->msg >= 0 ? h->msg[e->msg] : "");
  }
  if (upto == INT_MAX)
    h->n = h->next = h->nmsg = 0;
}

/* The first locations of one reason: "lines 3, 9" (or "line 3" when inline and alone), or
 * "ticks/0/17, ticks/2/5" for Kafka messages. */
static void print_locations(const reject_tally *t, int r, FILE *f, int flags) {
  uint64_t shown = t->n[r] < REJECT_FIRST ? t->n[r] : REJECT_FIRST;
  const reject_loc *l = t->first[r];
  int lines = l[0].part == REJECT_LINE;
  if (lines && (flags & REJECT_SUM_FILE))
    fprintf(f, "%s ", l[0].src);
  if (lines)
    fprintf(f, "%s ", (flags & REJECT_SUM_INLINE) && t->n[r] == 1 ? "line" : "lines");
  for (uint64_t k = 0; k < shown; k++) {
    if (lines) {
      fprintf(f, "%s%lld", k ? ", " : "", (long long)l[k].pos);
    } else {
      char where[512];
      reject_loc_format(&l[k], where, sizeof where);
      fprintf(f, "%s%s", k ? ", " : "", where);
    }
  }
  fprintf(f, "%s)\n", t->n[r] > shown ? ", ..." : "");
}

void reject_tally_summary(const reject_tally *t, FILE *f, const char *prefix, int flags) {
  for (int r = TICK_OK + 1; r < TICK_NREASONS; r++) {
    if (!t->n[r])
      continue;
    if (flags & REJECT_SUM_INLINE)
      fprintf(f, "%s  rejected %s: %llu (", prefix, tick_reason_name(r),
              (unsigned long long)t->n[r]);
    else
      fprintf(f, "%s  rejected %-14s %8llu  (", prefix, tick_reason_name(r),
              (unsigned long long)t->n[r]);
    print_locations(t, r, f, flags);
  }
}
