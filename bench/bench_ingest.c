/* bench_ingest.c: nanoseconds per call of the ingest hot paths: tick_parse_json on a typical
 * ~80-byte tick, tick_parse_csv on a typical row, the fmt.h formatters next to snprintf, the
 * symbol table (a lookup among 1,000 and 100,000 instruments, and a remove + add that reuses the
 * slot) and whole files through tickfile_next. Single thread, best of 5 runs of N calls each
 * (files: best of 3 over max(N/2, 100000) lines). Usage: build/bench/bench_ingest [N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/fmt.h"
#include "ingest/rfc3339.h"
#include "ingest/symtab.h"
#include "ingest/tick.h"
#include "ingest/tickfile.h"

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile uint64_t sink;

#define BENCH(label, N, body)                                                                      \
  do {                                                                                             \
    double best = 1e300;                                                                           \
    for (int rep = 0; rep < 5; rep++) {                                                            \
      double t0 = now_ns();                                                                        \
      for (long i = 0; i < (N); i++) {                                                             \
        body;                                                                                      \
      }                                                                                            \
      double dt = (now_ns() - t0) / (double)(N);                                                   \
      if (dt < best)                                                                               \
        best = dt;                                                                                 \
    }                                                                                              \
    printf("%-44s %8.1f ns/call\n", label, best);                                                  \
  } while (0)

int main(int argc, char **argv) {
  long N = argc > 1 ? atol(argv[1]) : 2000000;
  /* 8 distinct ticks so the branch predictor cannot learn one input. */
  char js[8][128], csv[8][128];
  size_t jn[8], cn[8];
  for (int k = 0; k < 8; k++) {
    jn[k] = (size_t)snprintf(
        js[k], sizeof js[k],
        "{\"sym\":\"EURUSD%d\",\"ts\":17000000000%08d,\"px\":1.08%d5,\"qty\":%d000,"
        "\"bid\":1.08%d4,\"ask\":1.08%d6}",
        k, 12345678 + k * 1111, k, k + 1, k, k);
    cn[k] = (size_t)snprintf(csv[k], sizeof csv[k],
                             "EURUSD%d,17000000000%08d,1.08%d5,%d000,1.08%d4,1.08%d6", k,
                             12345678 + k * 1111, k, k + 1, k, k);
  }
  printf("typical JSON tick (%zu bytes): %s\n", jn[0], js[0]);
  printf("typical CSV row (%zu bytes):   %s\n", cn[0], csv[0]);
  tick t;
  char err[256];
  for (int k = 0; k < 8; k++)
    if (tick_parse_json(&t, js[k], jn[k], err, sizeof err) != TICK_OK)
      return 1;
  BENCH("tick_parse_json", N, {
    tick_parse_json(&t, js[i & 7], jn[i & 7], err, sizeof err);
    sink += (uint64_t)t.ts;
  });
  tick_csv h;
  tick_csv_header(&h, "sym,ts,px,qty,bid,ask", 21, err, sizeof err);
  for (int k = 0; k < 8; k++)
    if (tick_parse_csv(&h, &t, csv[k], cn[k], err, sizeof err) != TICK_OK)
      return 1;
  BENCH("tick_parse_csv", N, {
    tick_parse_csv(&h, &t, csv[i & 7], cn[i & 7], err, sizeof err);
    sink += (uint64_t)t.ts;
  });
  const char *rfc = "2023-11-14T22:13:20.123456789Z";
  int64_t ns;
  BENCH("tick_parse_rfc3339", N, {
    tick_parse_rfc3339(rfc, 30, &ns);
    sink += (uint64_t)ns;
  });

  double vals[1024];
  srand(1);
  for (int k = 0; k < 1024; k++)
    vals[k] = (k & 1 ? 1.0 : 1e-4) * ((double)rand() / RAND_MAX - 0.5) * (1 + k % 100);
  char out[64];
  BENCH("fmt_double_sig(v, 10)", N, { sink += fmt_double_sig(out, vals[i & 1023], 10); });
  BENCH("snprintf(\"%.10g\")", N,
        { sink += (uint64_t)snprintf(out, sizeof out, "%.10g", vals[i & 1023]); });
  BENCH("fmt_double_short(v)", N, { sink += fmt_double_short(out, vals[i & 1023]); });
  BENCH("snprintf(\"%.17g\")", N,
        { sink += (uint64_t)snprintf(out, sizeof out, "%.17g", vals[i & 1023]); });
  double prices[1024];
  for (int k = 0; k < 1024; k++)
    prices[k] = (double)(100000 + rand() % 100000) / 10000.0;
  BENCH("fmt_double_short(price like 12.3456)", N,
        { sink += fmt_double_short(out, prices[i & 1023]); });
  BENCH("fmt_i64(ns timestamp)", N, { sink += fmt_i64(out, 1700000000123456789LL + i); });
  BENCH("snprintf(\"%lld\")", N,
        { sink += (uint64_t)snprintf(out, sizeof out, "%lld", 1700000000123456789LL + i); });
  /* The symbol table: lookups of present symbols in random order, and churn. */
  for (int size = 1000; size <= 100000; size *= 100) {
    symtab st;
    if (symtab_init(&st, 128, 16) != 0)
      return 1;
    char(*syms)[16] = malloc((size_t)size * sizeof *syms);
    uint32_t *order = malloc((size_t)size * sizeof *order);
    for (int k = 0; k < size; k++) {
      snprintf(syms[k], sizeof syms[k], "SYM%07d.X", k);
      symtab_add(&st, syms[k], 12);
      order[k] = (uint32_t)k;
    }
    for (int k = size - 1; k > 0; k--) { /* shuffled, so the cache sees what a daemon sees */
      int j = rand() % (k + 1);
      uint32_t x = order[k];
      order[k] = order[j];
      order[j] = x;
    }
    char label[64];
    snprintf(label, sizeof label, "symtab_find (%d instruments)", size);
    BENCH(label, N, { sink += (uint64_t)symtab_find(&st, syms[order[i % size]], 12); });
    snprintf(label, sizeof label, "symtab_remove + symtab_add (%d)", size);
    BENCH(label, N / 4, {
      const char *sy = syms[order[i % size]];
      symtab_remove(&st, symtab_find(&st, sy, 12));
      sink += (uint64_t)symtab_add(&st, sy, 12);
    });
    printf("%-44s %8u slots for %u live\n", "  slots after the churn", st.count, st.live);
    free(syms);
    free(order);
    symtab_free(&st);
  }
  /* Whole files through tickfile (read, split, decode): 1M lines of 256 instruments each. */
  const char *paths[2] = {"/tmp/bench_ingest.csv", "/tmp/bench_ingest.jsonl"};
  for (int fmt = 0; fmt < 2; fmt++) {
    FILE *f = fopen(paths[fmt], "w");
    if (!f)
      return 1;
    if (fmt == 0)
      fputs("sym,ts,px,qty,bid,ask\n", f);
    long lines = N / 2 > 100000 ? N / 2 : 100000;
    for (long i = 0; i < lines; i++) {
      double px = 100 + (double)(i % 977) / 1000;
      long long ts = 1700000000000000000LL + i * 1000003LL;
      if (fmt == 0)
        fprintf(f, "S%ld,%lld,%.3f,%ld,%.3f,%.3f\n", i % 256, ts, px, 1 + i % 100, px - 0.01,
                px + 0.01);
      else
        fprintf(
            f, "{\"sym\":\"S%ld\",\"ts\":%lld,\"px\":%.3f,\"qty\":%ld,\"bid\":%.3f,\"ask\":%.3f}\n",
            i % 256, ts, px, 1 + i % 100, px - 0.01, px + 0.01);
    }
    fclose(f);
    double best = 1e300;
    long n = 0;
    for (int rep = 0; rep < 3; rep++) {
      tickfile tf;
      if (tickfile_open(&tf, paths[fmt], err, sizeof err) != 0)
        return 1;
      int reason;
      n = 0;
      double t0 = now_ns();
      while (tickfile_next(&tf, &t, &reason, err, sizeof err) == 1)
        n += reason == TICK_OK;
      double dt = (now_ns() - t0) / (double)n;
      if (dt < best)
        best = dt;
      tickfile_close(&tf);
    }
    char label[64];
    snprintf(label, sizeof label, "tickfile_next (%s file, %ld lines)", fmt ? "JSONL" : "CSV", n);
    printf("%-44s %8.1f ns/line (%.2f M lines/s)\n", label, best, 1e3 / best);
    remove(paths[fmt]);
  }
  return 0;
}
