/* test_ingest_reject.c: the tally of rejected inputs (ingest/reject.h): counts by reason, the
 * first locations kept per reason, the first REJECT_SHOWN inputs printed in full (to a callback
 * with the "further" suffix, or to stderr with the "further" line), quiet, and every summary
 * form (file lines, file lines naming the file, inline with "line" for one, Kafka messages). */
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

int main(void) {
  check_counts_and_callback();
  check_stderr_and_summaries();
  return check_done();
}
