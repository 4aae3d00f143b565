/* test_ingest_reject.c: the tally of rejected inputs (ingest/reject.h): counts by reason, the
 * first locations kept per reason, the first REJECT_SHOWN inputs printed in full (to a callback
 * with the "further" suffix, or to stderr with the "further" line), quiet, and every summary
 * form (file lines, file lines naming the file, inline with "line" for one, Kafka messages), and
 * the hold that notes a chunk's rejects in input order. */
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "ingest/reject.h"

/* Collects printed lines, one per row, '|'-separated. */
typedef struct sink {
  char buf[4096];
  int n;
} sink;

static void collect(void *ud, const char *line) {
  sink *s = ud;
  size_t len = strlen(s->buf);
  snprintf(s->buf + len, sizeof s->buf - len, "%s|", line);
  s->n++;
}

/* What f holds from the start, as a string (static buffer). */
static const char *contents(FILE *f) {
  static char buf[4096];
  fflush(f);
  rewind(f);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  rewind(f);
  if (ftruncate(fileno(f), 0) != 0)
    buf[0] = 0;
  return buf;
}

static void check_counts_and_callback(void) {
  reject_tally t;
  reject_tally_init(&t);
  sink s = {{0}, 0};
  t.print = collect;
  t.print_ud = &s;
  for (int i = 1; i <= 12; i++)
    reject_tally_note(&t, i % 2 ? TICK_BAD_PX : TICK_BAD_JSON,
                      (reject_loc){"ticks", i % 3, 100 + i}, "msg");
  CHECK_INT(t.total, 12);
  CHECK_INT(t.n[TICK_BAD_PX], 6);
  CHECK_INT(t.n[TICK_BAD_JSON], 6);
  CHECK_INT(t.n[TICK_OK], 0);
  CHECK_INT(t.first[TICK_BAD_PX][0].pos, 101);
  CHECK_INT(t.first[TICK_BAD_PX][4].pos, 109);
  CHECK_INT(t.first[TICK_BAD_JSON][0].part, 2);
  CHECK_INT(s.n, REJECT_SHOWN);
  CHECK(strncmp(s.buf, "ticks/1/101: bad_px: msg|ticks/2/102: bad_json: msg|", 52) == 0);
  CHECK_CONTAINS(s.buf, "|ticks/1/110: bad_json: msg (further rejects only counted)|");
  CHECK(strstr(s.buf, "/111") == NULL);

  FILE *f = tmpfile();
  CHECK(f != NULL);
  reject_tally_summary(&t, f, "", 0);
  CHECK_STR(contents(f), "  rejected bad_json              6  (ticks/2/102, ticks/1/104, "
                         "ticks/0/106, ticks/2/108, ticks/1/110, ...)\n"
                         "  rejected bad_px                6  (ticks/1/101, ticks/0/103, "
                         "ticks/2/105, ticks/1/107, ticks/0/109, ...)\n");
  fclose(f);
}

static void check_stderr_and_summaries(void) {
  reject_tally t;
  reject_tally_init(&t);
  t.lead = "<>";
  FILE *f = tmpfile();
  CHECK(f != NULL);
  fflush(stderr);
  int saved = dup(2);
  CHECK(dup2(fileno(f), 2) == 2);
  for (int i = 1; i <= 11; i++)
    reject_tally_note(&t, i == 4 ? TICK_OUT_OF_ORDER : TICK_BAD_ROW,
                      (reject_loc){i < 6 ? "a.csv" : "b.csv", REJECT_LINE, i * 2}, "why");
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  const char *got = contents(f);
  CHECK(strncmp(got, "<>a.csv:2: bad_row: why\n<>a.csv:4: bad_row: why\n", 48) == 0);
  CHECK_CONTAINS(got, "<>a.csv:8: out_of_order: why\n");
  CHECK_CONTAINS(got, "<>b.csv:20: bad_row: why\nb.csv: further rejected lines are only counted\n");
  CHECK(strstr(got, ":22:") == NULL);

  reject_tally_summary(&t, f, "", 0);
  CHECK_STR(contents(f), "  rejected out_of_order          1  (lines 8)\n"
                         "  rejected bad_row              10  (lines 2, 4, 6, 10, 12, ...)\n");
  reject_tally_summary(&t, f, "", REJECT_SUM_FILE);
  CHECK_STR(contents(f),
            "  rejected out_of_order          1  (a.csv lines 8)\n"
            "  rejected bad_row              10  (a.csv lines 2, 4, 6, 10, 12, ...)\n");
  reject_tally_summary(&t, f, "feed: ", REJECT_SUM_INLINE);
  CHECK_STR(contents(f), "feed:   rejected out_of_order: 1 (line 8)\n"
                         "feed:   rejected bad_row: 10 (lines 2, 4, 6, 10, 12, ...)\n");
  fclose(f);

  /* Quiet: counted, nothing printed; an empty tally has no summary lines. */
  reject_tally q;
  reject_tally_init(&q);
  sink s = {{0}, 0};
  q.print = collect;
  q.print_ud = &s;
  q.quiet = 1;
  reject_tally_note(&q, TICK_BAD_TS, (reject_loc){"x", REJECT_LINE, 1}, "m");
  CHECK_INT(q.n[TICK_BAD_TS], 1);
  CHECK_INT(s.n, 0);
  reject_tally e;
  reject_tally_init(&e);
  f = tmpfile();
  reject_tally_summary(&e, f, "", 0);
  CHECK_STR(contents(f), "");
  fclose(f);

  char buf[16];
  CHECK_INT(reject_loc_format(&(reject_loc){"ticks", 3, 42}, buf, sizeof buf), 10);
  CHECK_STR(buf, "ticks/3/42");
  reject_loc_format(&(reject_loc){"a-long-file-name.csv", REJECT_LINE, 7}, buf, sizeof buf);
  CHECK_STR(buf, "a-long-file-nam"); /* truncated, terminated */
}

/* The hold: rejects found while a chunk is read are noted in input order among those found when
 * it is walked; only the first REJECT_SHOWN keep their message; flushing everything empties it. */
static void check_hold(void) {
  reject_tally t;
  reject_tally_init(&t);
  sink s = {{0}, 0};
  t.print = collect;
  t.print_ud = &s;
  reject_hold h;
  CHECK_INT(reject_hold_init(&h), 0);
  /* Read: bad lines 2 and 3 before accepted tick 0 (line 4), line 6 before tick 1 (line 7). */
  reject_hold_add(&h, &t, TICK_BAD_PX, (reject_loc){"f", REJECT_LINE, 2}, "m2", 0);
  reject_hold_add(&h, &t, TICK_BAD_TS, (reject_loc){"f", REJECT_LINE, 3}, "m3", 0);
  reject_hold_add(&h, &t, TICK_BAD_PX, (reject_loc){"f", REJECT_LINE, 6}, "m6", 1);
  CHECK_INT(t.total, 0); /* nothing noted while reading */
  /* Walk: tick 0 (line 4) accepted, tick 1 (line 7) out of order. */
  reject_hold_flush(&h, &t, 0);
  CHECK_STR(s.buf, "f:2: bad_px: m2|f:3: bad_ts: m3|");
  reject_hold_flush(&h, &t, 1);
  reject_tally_note(&t, TICK_OUT_OF_ORDER, (reject_loc){"f", REJECT_LINE, 7}, "o7");
  reject_hold_flush(&h, &t, INT_MAX);
  CHECK_STR(s.buf, "f:2: bad_px: m2|f:3: bad_ts: m3|f:6: bad_px: m6|f:7: out_of_order: o7|");
  CHECK_INT(h.n, 0);
  /* A flood: 20 held in a chunk whose tally already has 4: the first 6 keep their messages, and
   * the tally prints exactly those, in order. */
  for (int i = 0; i < 20; i++) {
    char m[8];
    snprintf(m, sizeof m, "b%d", i);
    reject_hold_add(&h, &t, TICK_BAD_ROW, (reject_loc){"f", REJECT_LINE, 10 + i}, m, 0);
  }
  CHECK_INT(h.nmsg, REJECT_SHOWN - 4);
  reject_hold_flush(&h, &t, INT_MAX);
  CHECK_INT(t.total, 24);
  CHECK_INT(t.n[TICK_BAD_ROW], 20);
  CHECK_INT(s.n, REJECT_SHOWN);
  CHECK(strstr(s.buf, "|f:15: bad_row: b5 (further rejects only counted)|") != NULL);
  CHECK(strstr(s.buf, "f:16") == NULL);
  CHECK_INT(t.first[TICK_BAD_ROW][4].pos, 14);
  /* Full at REJECT_HOLD_MAX. */
  for (int i = 0; i < REJECT_HOLD_MAX; i++) {
    CHECK(!reject_hold_full(&h));
    reject_hold_add(&h, &t, TICK_BAD_TS, (reject_loc){"f", REJECT_LINE, 100 + i}, "", i / 7);
  }
  CHECK(reject_hold_full(&h));
  reject_hold_flush(&h, &t, INT_MAX);
  CHECK_INT(t.n[TICK_BAD_TS], 1 + REJECT_HOLD_MAX);
  CHECK(!reject_hold_full(&h));
  reject_hold_free(&h);
  reject_hold_free(&h); /* twice is harmless */
}

int main(void) {
  check_counts_and_callback();
  check_stderr_and_summaries();
  check_hold();
  return check_done();
}
