/* reject.h: the one tally of rejected inputs for the tools that read ticks (replay, train, eval,
 * feed and the Kafka range replay): counts by reason, the first locations of each reason, the
 * first REJECT_SHOWN rejected inputs printed in full, and the per-reason summary lines.
 * Not for the daemon, whose rejects are counters in its stats and dead letters. */
#ifndef INGEST_REJECT_H
#define INGEST_REJECT_H

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
