/* tickfile.h: reads a tick file (CSV with header, or JSON Lines; '-' = stdin) in constant memory,
 * one line at a time, telling each line's number. Format is detected from the first non-empty
 * line: '{' means JSON Lines, anything else is a CSV header. Integer timestamps are nanoseconds
 * unless the caller names another unit (--ts-unit). Not for validation of order (the engine does
 * that, per instrument). */
#ifndef INGEST_TICKFILE_H
#define INGEST_TICKFILE_H

#include "ingest/tick.h"
#include <stdint.h>
#include <stdio.h>

/* The unit of integer timestamps in a tick file (--ts-unit); time strings are never scaled.
 * TICKFILE_TS_AUTO reads nanoseconds, as CONTRACT §1 says, and notes integers that look like
 * another unit (tickfile_ts_warning). */
enum tickfile_ts_unit {
  TICKFILE_TS_S,
  TICKFILE_TS_MS,
  TICKFILE_TS_US,
  TICKFILE_TS_NS,
  TICKFILE_TS_AUTO
};

/* "s", "ms", "us", "ns", NULL: the values of --ts-unit, indexed by enum tickfile_ts_unit. */
extern const char *const tickfile_ts_unit_names[];

/* What the integer timestamps decoded so far look like, for tickfile_ts_warning: one per tickfile,
 * or one per thread when lines are decoded in parallel (tickfile_decode), merged afterwards. */
typedef struct tickfile_ts_seen {
  uint64_t ints;     /* accepted ticks with an integer ts */
  uint64_t odd;      /* TICKFILE_TS_AUTO: of those, how many look like another unit */
  uint64_t odd_line; /* the line of the first one (the lowest line number; 0: none) */
  int64_t odd_ts;    /* its ts */
  int odd_unit;      /* the unit it looks like (TICKFILE_TS_S, _MS or _US) */
} tickfile_ts_seen;

typedef struct tickfile {
  FILE *f;             /* the open file */
  int owned;           /* 1 when we fclose it */
  int jsonl;           /* 1 for JSON Lines, 0 for CSV */
  tick_csv csv;        /* the header, for CSV */
  char *buf;           /* line buffer, grows to the longest line */
  size_t cap;          /* buf capacity */
  uint64_t line;       /* number of the line last read (1-based) */
  uint64_t bytes;      /* bytes consumed so far (for progress) */
  uint64_t size;       /* file size when known (regular file), else 0 */
  const char *path;    /* for messages ("stdin" for '-') */
  size_t beg;          /* start of the unread bytes in buf */
  size_t end;          /* end of the bytes read into buf */
  int eof;             /* the file has no more bytes to read */
  size_t lbeg, llen;   /* the last line returned, in buf (without its '\n' and '\r') */
  int ts_unit;         /* enum tickfile_ts_unit: TICKFILE_TS_AUTO after open */
  tickfile_ts_seen ts; /* the integer timestamps read by tickfile_next, and merged ones */
} tickfile;

/* Opens path ('-' = stdin) and reads the header. Returns 0, or a negative TC_E* code with err set
 * ("ticks.csv: cannot open: No such file or directory", "ticks.csv:1: header lacks column px
 * (found sym,ts,price; expected sym,ts,px[,qty,bid,ask])"). */
int tickfile_open(tickfile *tf, const char *path, char *err, size_t errlen);

/* Reads and decodes the next non-empty line (lines of only spaces, tabs and '\r' are skipped).
 * Returns 1 with *reason = TICK_OK or a reject reason (err filled with the decoder's message,
 * without the FILE:LINE prefix), 0 at end of file, negative TC_EIO on a read error (err set).
 * tf->line is the line number. */
int tickfile_next(tickfile *tf, tick *t, int *reason, char *err, size_t errlen);

/* The parts of tickfile_next, for readers that split lines themselves and decode them on several
 * threads (the parallel replay):
 * tickfile_read_raw copies up to cap bytes of the input after the header (first what open left
 * in tf's buffer, then read(2) on the file) into dst and returns how many, 0 at end of file, or
 * TC_EIO/TC_ENOMEM (errno set). Do not mix it with tickfile_next on one tickfile.
 * tickfile_decode decodes one line s[0..n) (without its "\n" or "\r\n"),
 * number `line`, as tickfile_next would, reading only tf's header and ts unit (several threads
 * may call it on one tickfile, each with its own seen): returns 0 for a blank line (no tick), 1
 * with *reason = TICK_OK or a reject reason (err filled as by tickfile_next).
 * tickfile_ts_merge adds seen's timestamps to tf's, for tickfile_ts_warning. */
int tickfile_read_raw(tickfile *tf, char *dst, size_t cap);
/* tickfile_sym_hint tells, without decoding the line, what tickfile_decode would: -1 for a blank
 * line, 1 with *sym, *len = bytes of s that are the symbol whenever the line decodes to an
 * accepted tick (tick_csv_sym_hint, tick_json_sym_hint), 0 when it cannot tell. */
int tickfile_sym_hint(const tickfile *tf, const char *s, size_t n, const char **sym, size_t *len);
int tickfile_decode(const tickfile *tf, uint64_t line, const char *s, size_t n, tick *t,
                    int *reason, tickfile_ts_seen *seen, char *err, size_t errlen);
void tickfile_ts_merge(tickfile *tf, const tickfile_ts_seen *seen);

/* Integer timestamps of tf are in `unit` (enum tickfile_ts_unit) from now on: tickfile_next
 * multiplies them to nanoseconds; one that then overflows int64 is bad_ts. */
void tickfile_set_ts_unit(tickfile *tf, int unit);

/* With TICKFILE_TS_AUTO: when an integer ts read so far looked like seconds, milliseconds or
 * microseconds (as nanoseconds it would be a time before 1973-03-04, and in that unit it is a
 * time from then to 2286), writes a one-line warning naming the first one (FILE:LINE, the value,
 * both readings, how many, the flag to pass) into msg and returns 1; else returns 0. */
int tickfile_ts_warning(const tickfile *tf, char *msg, size_t len);

/* The raw text of the line last returned by tickfile_next (without the line end), valid until the
 * next call; for dead letters and `feed`. */
static inline const char *tickfile_text(const tickfile *tf, size_t *len) {
  *len = tf->llen;
  return tf->buf + tf->lbeg;
}

void tickfile_close(tickfile *tf); /* accepts NULL and half-built */

#endif
