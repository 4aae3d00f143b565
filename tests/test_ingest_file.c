/* test_ingest_file.c: tick files end to end through tickfile_open/next: CSV and JSON Lines, bad
 * lines with their line numbers and reasons, BOM, CRLF, blank lines, quoted fields, a last line
 * without '\n', lines longer than the read block, byte counts, and the open errors. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "ingest/tickfile.h"
#include "nn/base/tc_err.h"

static char dir[] = "/tmp/tc_test_file_XXXXXX";
static char path[512];

static const char *write_file(const char *name, const char *data, size_t n) {
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, n, f);
  fclose(f);
  return path;
}
#define WRITE(name, lit) write_file(name, lit, sizeof(lit) - 1)

typedef struct row {
  uint64_t line;
  int reason;
  char sym[40];
  int64_t ts;
  double px;
} row;

/* Reads every line of an open file into rows; returns the count, or -1 on a read error. */
static int read_all(tickfile *tf, row *rows, int max) {
  int n = 0, rc, reason;
  tick t;
  char err[256];
  while ((rc = tickfile_next(tf, &t, &reason, err, sizeof err)) == 1 && n < max) {
    rows[n].line = tf->line;
    rows[n].reason = reason;
    rows[n].sym[0] = 0;
    if (reason == TICK_OK) {
      strcpy(rows[n].sym, t.sym);
      rows[n].ts = t.ts;
      rows[n].px = t.px;
    }
    n++;
  }
  return rc < 0 ? -1 : n;
}

static void test_csv(void) {
  const char *p =
      WRITE("a.csv", "\xEF\xBB\xBF"
                     "sym,ts,px,qty,\"bid\",ask,venue\r\n"
                     "EURUSD,1700000000000000000,1.0875,1000000,1.0874,1.0876,\"EBS, London\"\r\n"
                     "\r\n"
                     "   \r\n"
                     "\"USDJPY\",2023-11-14T22:13:20.5Z,150.1,,,,x\r\n"
                     "USDJPY,1,-3,,,,x\r\n"
                     "USDJPY,1,3,,,\r\n"
                     "\n"
                     "\"GBP\"X,1,3,,,,\r\n"
                     "GBPUSD,1,1.25,,,,\"multi \"\"quoted\"\"\"\r\n"
                     "AUDUSD,1,0.65,0,,,last line without newline");
  tickfile tf;
  char err[256];
  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), 0);
  CHECK_INT(tf.jsonl, 0);
  CHECK_INT(tf.line, 1);
  CHECK_INT(tf.csv.ncols, 7);
  CHECK_INT(tf.csv.col_bid, 4);
  row r[16];
  int n = read_all(&tf, r, 16);
  CHECK_INT(n, 7);
  const struct {
    uint64_t line;
    int reason;
    const char *sym;
  } want[] = {{2, TICK_OK, "EURUSD"}, {5, TICK_OK, "USDJPY"}, {6, TICK_BAD_PX, ""},
              {7, TICK_BAD_ROW, ""},  {9, TICK_BAD_ROW, ""},  {10, TICK_OK, "GBPUSD"},
              {11, TICK_OK, "AUDUSD"}};
  for (int i = 0; i < n && i < 7; i++) {
    CHECK_INT(r[i].line, want[i].line);
    CHECK_STR(tick_reason_name(r[i].reason), tick_reason_name(want[i].reason));
    CHECK_STR(r[i].sym, want[i].sym);
  }
  CHECK_INT(r[0].ts, 1700000000000000000LL);
  CHECK(r[0].px == 1.0875);
  CHECK_INT(r[1].ts, 1700000000500000000LL);
  size_t len;
  const char *text = tickfile_text(&tf, &len);
  CHECK_INT(len, strlen("AUDUSD,1,0.65,0,,,last line without newline"));
  CHECK(len > 0 && memcmp(text, "AUDUSD,1,0.65,0,,,last", 22) == 0);
  CHECK_INT(tf.bytes, tf.size);
  CHECK(tf.size > 0);
  tick t;
  int reason;
  CHECK_INT(tickfile_next(&tf, &t, &reason, err, sizeof err), 0); /* stays at the end */
  tickfile_close(&tf);
  tickfile_close(&tf);
  tickfile_close(NULL);
}

static void test_jsonl(void) {
  const char *p = WRITE("a.jsonl", "\n\n"
                                   "{\"sym\":\"A\",\"ts\":1,\"px\":1}\r\n"
                                   "{\"sym\":\"A\",\"ts\":2,\"px\":}\n"
                                   "\n"
                                   "  {\"sym\":\"B\",\"ts\":\"1970-01-01T00:00:01Z\",\"px\":2}  \n"
                                   "not json\n"
                                   "{\"sym\":\"A\",\"ts\":3}\n");
  tickfile tf;
  char err[256];
  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), 0);
  CHECK_INT(tf.jsonl, 1);
  CHECK_INT(tf.bytes, 2); /* the blank lines before the first object */
  row r[16];
  int n = read_all(&tf, r, 16);
  CHECK_INT(n, 5);
  CHECK_INT(r[0].line, 3);
  CHECK_INT(r[0].reason, TICK_OK);
  CHECK_INT(r[1].line, 4);
  CHECK_INT(r[1].reason, TICK_BAD_JSON);
  CHECK_INT(r[2].line, 6);
  CHECK_STR(r[2].sym, "B");
  CHECK_INT(r[2].ts, 1000000000LL);
  CHECK_INT(r[3].line, 7);
  CHECK_INT(r[3].reason, TICK_BAD_JSON);
  CHECK_INT(r[4].line, 8);
  CHECK_INT(r[4].reason, TICK_MISSING_FIELD);
  CHECK_INT(tf.bytes, tf.size);
  tickfile_close(&tf);
}

/* Lines longer than the 64 KiB read block, straddling block edges, in CSV and JSON Lines. */
static void test_long_lines(void) {
  size_t cap = 1 << 20, n = 0;
  char *buf = malloc(cap);
  n += (size_t)sprintf(buf + n, "{\"sym\":\"L\",\"ts\":0,\"px\":1,\"pad\":\"");
  memset(buf + n, 'x', 200000);
  n += 200000;
  n += (size_t)sprintf(buf + n, "\"}\n");
  int lines = 1;
  while (n < 600000) {
    n += (size_t)sprintf(buf + n, "{\"sym\":\"S%d\",\"ts\":%d,\"px\":%d.5}\n", lines % 97, lines,
                         lines);
    lines++;
  }
  const char *p = write_file("long.jsonl", buf, n);
  tickfile tf;
  char err[256];
  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), 0);
  row *r = malloc(sizeof *r * 40000);
  int got = read_all(&tf, r, 40000);
  CHECK_INT(got, lines);
  int bad = 0;
  for (int i = 0; i < got; i++) {
    if (r[i].reason != TICK_OK || r[i].line != (uint64_t)i + 1 || r[i].ts != i)
      bad++;
    if (i > 0 && r[i].px != i + 0.5)
      bad++;
  }
  CHECK_INT(bad, 0);
  CHECK(tf.cap >= 200000 && tf.cap <= 1 << 19); /* grew to the longest line, no further */
  CHECK_INT(tf.bytes, n);
  tickfile_close(&tf);
  free(r);
  free(buf);
}

static void test_errors(void) {
  tickfile tf;
  char err[256];
  snprintf(path, sizeof path, "%s/nope.csv", dir);
  CHECK_INT(tickfile_open(&tf, path, err, sizeof err), TC_ENOENT);
  char want[600];
  snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
  CHECK_STR(err, want);
  tickfile_close(&tf);

  const char *p = WRITE("bad.csv", "\n\nsym,ts,price\nA,1,2\n");
  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), TC_EFORMAT);
  snprintf(want, sizeof want,
           "%s:3: header lacks column px (found sym,ts,price; expected sym,ts,px[,qty,bid,ask])",
           p);
  CHECK_STR(err, want);
  tickfile_close(&tf);

  p = WRITE("empty.csv", "\xEF\xBB\xBF\n  \n");
  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), TC_EFORMAT);
  CHECK_CONTAINS(err, "empty.csv: no header: the file is empty");

  p = WRITE("header_only.csv", "sym,ts,px");
  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), 0);
  tick t;
  int reason;
  CHECK_INT(tickfile_next(&tf, &t, &reason, err, sizeof err), 0);
  tickfile_close(&tf);

  /* A directory opens but cannot be read. */
  CHECK(tickfile_open(&tf, dir, err, sizeof err) < 0);
  CHECK_CONTAINS(err, "cannot read");
}

/* '-' reads standard input (here a pipe), and the path in messages is "stdin". */
static void test_stdin(void) {
  int fd[2];
  if (pipe(fd) != 0)
    return;
  const char data[] = "{\"sym\":\"P\",\"ts\":5,\"px\":9}\n{\"sym\":\"P\"}\n";
  CHECK_INT(write(fd[1], data, sizeof data - 1), sizeof data - 1);
  close(fd[1]);
  int saved = dup(0);
  dup2(fd[0], 0);
  close(fd[0]);
  tickfile tf;
  char err[256];
  CHECK_INT(tickfile_open(&tf, "-", err, sizeof err), 0);
  CHECK_STR(tf.path, "stdin");
  CHECK_INT(tf.size, 0);
  row r[4];
  CHECK_INT(read_all(&tf, r, 4), 2);
  CHECK_INT(r[0].ts, 5);
  CHECK_INT(r[1].reason, TICK_MISSING_FIELD);
  CHECK_INT(tf.bytes, sizeof data - 1);
  tickfile_close(&tf);
  dup2(saved, 0);
  close(saved);
}

/* --ts-unit: integers scaled to ns (time strings not), overflow rejected; without it, integers
 * that look like seconds or milliseconds are read as ns and named in one warning. */
static void test_ts_unit(void) {
  tickfile tf;
  char err[256], msg[512];
  row r[8];
  const char *p = WRITE("sec.csv", "sym,ts,px\nA,1704186000,1.1\nA,1704189600,1.2\n"
                                   "B,2024-01-02,3\nB,2024-01-02T10:00:00Z,3.1\n"
                                   "C,9300000000,1\n");
  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), 0);
  CHECK_INT(read_all(&tf, r, 8), 5);
  CHECK_INT(r[0].ts, 1704186000);
  CHECK_INT(r[2].ts, 1704153600000000000LL);
  CHECK_INT(tf.ts.ints, 3);
  CHECK_INT(tf.ts.odd, 3);
  CHECK_INT(tickfile_ts_warning(&tf, msg, sizeof msg), 1);
  char want[512];
  snprintf(want, sizeof want,
           "%s:2: warning: integer ts 1704186000 is read as nanoseconds "
           "(1970-01-01T00:00:01.704186Z) but looks like seconds (2024-01-02T09:00:00Z); 3 of 3 "
           "integer timestamps look like that: pass --ts-unit s if they are seconds, or "
           "--ts-unit ns to keep nanoseconds",
           p);
  CHECK_STR(msg, want);
  tickfile_close(&tf);

  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), 0);
  tickfile_set_ts_unit(&tf, TICKFILE_TS_S);
  CHECK_INT(read_all(&tf, r, 8), 5);
  CHECK_INT(r[0].ts, 1704186000000000000LL);
  CHECK_INT(r[1].ts, 1704189600000000000LL);
  CHECK_INT(r[2].ts, 1704153600000000000LL); /* a date: not scaled */
  CHECK_INT(r[3].ts, 1704189600000000000LL);
  CHECK_INT(r[4].reason, TICK_BAD_TS); /* 9.3e9 s is past 2262 */
  CHECK_INT(tickfile_ts_warning(&tf, msg, sizeof msg), 0);
  tickfile_close(&tf);
  tick t;
  int reason;
  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), 0);
  tickfile_set_ts_unit(&tf, TICKFILE_TS_S);
  for (int i = 0; i < 5; i++)
    CHECK_INT(tickfile_next(&tf, &t, &reason, err, sizeof err), 1);
  CHECK_STR(err, "field ts: found 9300000000, expected integer seconds (--ts-unit s) within int64 "
                 "nanoseconds (1677-09-21 to 2262-04-11)");
  tickfile_close(&tf);

  /* JSON Lines in milliseconds; a date alone stays bad_ts there (JSON is the Kafka contract). */
  p = WRITE("ms.jsonl", "{\"sym\":\"A\",\"ts\":1704186000123,\"px\":1}\n"
                        "{\"sym\":\"A\",\"ts\":\"2024-01-03\",\"px\":1}\n");
  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), 0);
  CHECK_INT(read_all(&tf, r, 8), 2);
  CHECK_INT(r[1].reason, TICK_BAD_TS);
  CHECK_INT(tickfile_ts_warning(&tf, msg, sizeof msg), 1);
  CHECK_CONTAINS(msg, "ms.jsonl:1: warning: integer ts 1704186000123 is read as nanoseconds "
                      "(1970-01-01T00:28:24.186000123Z) but looks like milliseconds "
                      "(2024-01-02T09:00:00.123Z); 1 of 1");
  tickfile_close(&tf);
  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), 0);
  tickfile_set_ts_unit(&tf, TICKFILE_TS_MS);
  CHECK_INT(read_all(&tf, r, 8), 2);
  CHECK_INT(r[0].ts, 1704186000123000000LL);
  tickfile_close(&tf);

  /* Nanoseconds of 1971 (the FX history), small counters and us-looking values in ns files. */
  p = WRITE("ns.csv", "sym,ts,px\nA,31795200000000000,1\nB,3,1\nC,1704186000123456,1\n");
  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), 0);
  CHECK_INT(read_all(&tf, r, 8), 3);
  CHECK_INT(tf.ts.odd, 1); /* only C, which looks like microseconds */
  CHECK_INT(tf.ts.odd_line, 4);
  CHECK_INT(tf.ts.odd_unit, TICKFILE_TS_US);
  tickfile_close(&tf);
  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), 0);
  tickfile_set_ts_unit(&tf, TICKFILE_TS_NS);
  CHECK_INT(read_all(&tf, r, 8), 3);
  CHECK_INT(tickfile_ts_warning(&tf, msg, sizeof msg), 0);
  tickfile_close(&tf);
}

/* The parts of tickfile_next for parallel readers: tickfile_read_raw gives the bytes after the
 * header (the JSON Lines' first line included), tickfile_decode decodes a line as tickfile_next
 * does, with its own timestamp notes, and tickfile_ts_merge keeps the lowest line of the odd ones
 * whatever the order of merging. */
static void test_raw_decode(void) {
  tickfile tf;
  char err[256], buf[256];
  const char *p =
      WRITE("raw.csv", "\xEF\xBB\xBFsym,ts,px\nA,1704186000,1\n\nB,2,x\nC,1704186001,2");
  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), 0);
  int n = 0, got;
  while ((got = tickfile_read_raw(&tf, buf + n, 5)) > 0)
    n += got;
  CHECK_INT(got, 0);
  buf[n] = 0;
  CHECK_STR(buf, "A,1704186000,1\n\nB,2,x\nC,1704186001,2");
  CHECK_INT(tf.bytes, tf.size);
  tickfile_ts_seen a = {0}, b = {0};
  tick t;
  int reason;
  CHECK_INT(tickfile_decode(&tf, 5, "C,1704186001,2", 14, &t, &reason, &b, err, sizeof err), 1);
  CHECK_INT(reason, TICK_OK);
  CHECK_INT(tickfile_decode(&tf, 3, "  \t", 3, &t, &reason, &a, err, sizeof err), 0);
  CHECK_INT(tickfile_decode(&tf, 4, "B,2,x", 5, &t, &reason, &a, err, sizeof err), 1);
  CHECK_INT(reason, TICK_BAD_PX);
  CHECK_CONTAINS(err, "field px: found \"x\"");
  CHECK_INT(tickfile_decode(&tf, 2, "A,1704186000,1", 14, &t, &reason, &a, err, sizeof err), 1);
  CHECK_INT(t.ts, 1704186000);
  tickfile_ts_merge(&tf, &b); /* line 5 first, then line 2: line 2 is named */
  tickfile_ts_merge(&tf, &a);
  CHECK_INT(tf.ts.ints, 2);
  CHECK_INT(tf.ts.odd, 2);
  CHECK_INT(tf.ts.odd_line, 2);
  CHECK_INT(tf.ts.odd_ts, 1704186000);
  tickfile_close(&tf);
  /* JSON Lines: the first line, read by open to detect the format, is in the raw bytes. */
  p = WRITE("raw.jsonl", "\n{\"sym\":\"A\",\"ts\":1,\"px\":1}\n");
  CHECK_INT(tickfile_open(&tf, p, err, sizeof err), 0);
  CHECK_INT(tf.line, 1);
  n = tickfile_read_raw(&tf, buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = 0;
  CHECK_STR(buf, "{\"sym\":\"A\",\"ts\":1,\"px\":1}\n");
  tickfile_close(&tf);
}

int main(void) {
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  test_csv();
  test_jsonl();
  test_long_lines();
  test_errors();
  test_stdin();
  test_ts_unit();
  test_raw_decode();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  return check_done();
}
