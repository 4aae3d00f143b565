/* reject.h: the one tally of rejected inputs for the tools that read ticks (replay, train, eval,
 * feed and the Kafka range replay): counts by reason, the first locations of each reason, the
 * first REJECT_SHOWN rejected inputs printed in full, and the per-reason summary lines.
 * Not for the daemon, whose rejects are counters in its stats and dead letters. */
#ifndef INGEST_REJECT_H
#define INGEST_REJECT_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "ingest/tick.h"

#define REJECT_FIRST 5   /* locations kept per reason for the summary */
#define REJECT_SHOWN 10  /* rejected inputs printed in full; the rest are only counted */
#define REJECT_LINE (-1) /* reject_loc.part of a line of a file */

/* Where a rejected input was: a line of a file ("FILE:LINE") or a message of a Kafka partition
 * ("TOPIC/PARTITION/OFFSET"). */
typedef struct reject_loc {
  const char *src; /* file name ("stdin" for '-') or topic; must outlive the tally */
  int32_t part;    /* partition, or REJECT_LINE for a line of a file */
  int64_t pos;     /* line number (from 1) or offset */
} reject_loc;

/* Takes one rejected input printed in full, as one line without its '\n'. */
typedef void (*reject_print_fn)(void *ud, const char *line);

/* The tally. Caller-owned: reject_tally_init, then reject_tally_note per rejected input. */
typedef struct reject_tally {
  uint64_t n[TICK_NREASONS];                     /* rejected inputs by reason (TICK_OK unused) */
  uint64_t total;                                /* over all reasons */
  reject_loc first[TICK_NREASONS][REJECT_FIRST]; /* the first locations of each reason */
  int quiet;                                     /* 1: count only, print nothing in full */
  const char *lead;                              /* before each stderr line ("\r\033[K") */
  reject_print_fn print;                         /* NULL: stderr (see reject_tally_note) */
  void *print_ud;                                /* print's first argument */
} reject_tally;

/* Zeroes t: counting to stderr, not quiet. The caller may then set quiet, lead or print. */
void reject_tally_init(reject_tally *t);

/* Counts one rejected input of `reason` (not TICK_OK) at loc, msg being the decoder's one-line
 * message. Unless quiet, the first REJECT_SHOWN are printed as "LOC: reason: msg": with print set,
 * to print, the last one ending in " (further rejects only counted)"; without, to stderr after
 * lead, the last one followed by the line "SRC: further rejected lines are only counted". */
void reject_tally_note(reject_tally *t, int reason, reject_loc loc, const char *msg);

/* Rejects held back while a chunk is read, to be noted in input order among the chunk's
 * out_of_order rejects, which are known only once the chunk has been stepped: the tools read a
 * chunk of accepted ticks, step it through the engine, then walk it, calling
 * reject_hold_flush(h, t, i) before the chunk's i-th accepted tick and
 * reject_hold_flush(h, t, INT_MAX) at its end. Only the first REJECT_SHOWN held keep their
 * message (no later one can be printed: the tally prints the first REJECT_SHOWN it is given). */
#define REJECT_HOLD_MAX 4096 /* held at most: a tool ends its chunk early when reject_hold_full */
#define REJECT_MSG 512       /* bytes kept of a held message */
typedef struct reject_held {
  reject_loc loc;
  int reason;
  int before; /* the chunk's accepted ticks read before it */
  int msg;    /* its message in reject_hold.msg, or -1 */
} reject_held;
typedef struct reject_hold {
  reject_held *e; /* (REJECT_HOLD_MAX) */
  int n, next;    /* held; the next to note */
  int nmsg;       /* messages kept */
  char msg[REJECT_SHOWN][REJECT_MSG];
} reject_hold;

/* 0, or TC_ENOMEM. */
int reject_hold_init(reject_hold *h);
void reject_hold_free(reject_hold *h);
/* Holds one reject, found after `before` accepted ticks of the chunk. Never fails while
 * !reject_hold_full(h) (the caller checks that first). */
void reject_hold_add(reject_hold *h, const reject_tally *t, int reason, reject_loc loc,
                     const char *msg, int before);
static inline int reject_hold_full(const reject_hold *h) {
  return h->n >= REJECT_HOLD_MAX;
}
/* Notes into t, in order, the held rejects found before the chunk's accepted tick `upto`
 * (INT_MAX: all of them, and the hold is emptied for the next chunk). Called before every accepted
 * tick: a compare when nothing is due. */
void reject_hold_note(reject_hold *h, reject_tally *t, int upto);
static inline void reject_hold_flush(reject_hold *h, reject_tally *t, int upto) {
  if (upto == INT_MAX || (h->next < h->n && h->e[h->next].before <= upto))
    reject_hold_note(h, t, upto);
}

/* Writes loc as "FILE:LINE" or "TOPIC/PARTITION/OFFSET" into buf (truncated to n, always
 * terminated); returns what snprintf returns. */
int reject_loc_format(const reject_loc *loc, char *buf, size_t n);

/* How reject_tally_summary writes each reason's line. Flags, 0 for the plain form. */
enum {
  /* "  rejected bad_px: 3 (lines 3, 9, 12)", and "(line 3)" for one; default
   * "  rejected bad_px                3  (lines 3, 9, 12)". */
  REJECT_SUM_INLINE = 1,
  /* Name the file before the line numbers: "(ticks.csv lines 3, 9, 12)", the file of the first. */
  REJECT_SUM_FILE = 2,
};

/* Writes one line per reason with rejects, in reason order, each starting with prefix: the
 * count and the first REJECT_FIRST locations (", ..." when there are more). File lines are
 * listed as "lines 3, 9", Kafka messages as "ticks/0/17, ticks/2/5". */
void reject_tally_summary(const reject_tally *t, FILE *f, const char *prefix, int flags);

#endif
