/* bench_store.c: checkpoint cost for 10,000 and 100,000 dirty instruments at H = 64 (one layer):
 * the loop-thread stall of the snapshot copy (goal < 1 ms at 10,000) and instruments written per
 * second by the pool-thread write with synchronous=normal (goal >= 200,000/s), plus a plain
 * memcpy of the same bytes as the machine's floor and synchronous=full for comparison; then the
 * start-up side: open (quick_check included) and restore of the whole file.
 * Not a test: it asserts nothing and prints one machine-readable line per case.
 * Usage: bench_store [DIR [N]] (DIR: default $TMPDIR or /tmp; the database is removed afterwards;
 * N: run only N instruments with synchronous=normal). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/loop/ckpt.h"

#define ROUNDS 5

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float rndf(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float)(rng >> 40) / 16777216.0f - 0.5f;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct done_ctx {
  int status;
  char err[256];
} done_ctx;

static void on_done(ckpt *ck, int status, const char *err, void *ud) {
  (void)ck;
  done_ctx *d = ud;
  d->status = status;
  snprintf(d->err, sizeof d->err, "%s", err);
}

/* One case: N instruments, all dirty before each of ROUNDS checkpoints. */
static int run_case(const char *dir, int N, int sync) {
  const int L = 1, H = 64;
  char path[512], err[512];
  snprintf(path, sizeof path, "%s/bench_store_%d.db", dir, (int)getpid());
  nn_model m;
  if (nn_model_init(&m, L, H, 0) != 0)
    return 1;
  memset(m.sha256, 0x42, sizeof m.sha256);
  symtab t;
  if (symtab_init(&t, nn_state_floats(&m), (uint32_t)N) != 0)
    return 1;
  for (int k = 0; k < N; k++) {
    char sym[16];
    int len = snprintf(sym, sizeof sym, "SYM%06d", k);
    int32_t s = symtab_add(&t, sym, (size_t)len);
    t.inst[s].partition = k % 8;
    t.inst[s].last_ts = 1700000000000000000ll + k;
    t.inst[s].last_px = 1.0 + k;
    float *st = symtab_state(&t, s);
    for (size_t j = 0; j < t.state_floats; j++)
      st[j] = rndf();
  }
  store *st = NULL;
  if (store_open(path, sync, STORE_OPEN_CREATE, &st, err, sizeof err) != 0 ||
      ckpt_bind_model(st, &m, 1, err, sizeof err) != 0) {
    fprintf(stderr, "bench_store: %s\n", err);
    return 1;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  ckpt *ck = NULL;
  if (ckpt_new(&ck, &loop, st, &m) != 0)
    return 1;
  const ckpt_stats *cs = ckpt_get_stats(ck);
  ckpt_reserve(ck, (size_t)N); /* as the daemon does after restore */
  store_offset off[8];
  for (int p = 0; p < 8; p++)
    off[p] = (store_offset){"ticks", p, 0};
  double copy_us[ROUNDS], write_us[ROUNDS], memcpy_us[ROUNDS], copy_cpu[ROUNDS], write_cpu[ROUNDS];
  size_t bytes = (size_t)N * t.state_floats * sizeof(float);
  float *scratch = malloc(bytes);
  memset(scratch, 1, bytes);
  for (int r = 0; r < ROUNDS; r++) {
    for (uint32_t s = 0; s < t.count; s++) { /* every instrument got a tick */
      t.inst[s].n++;
      t.inst[s].dirty = 1;
      symtab_state(&t, (int32_t)s)[0] += 1.0f;
    }
    for (int p = 0; p < 8; p++)
      off[p].next_offset += N / 8;
    /* Floor: one memcpy of the same state bytes. */
    uint64_t t0 = uv_hrtime();
    memcpy(scratch, t.state, bytes);
    memcpy_us[r] = (double)(uv_hrtime() - t0) / 1e3;
    if (ckpt_take(ck, &t, off, 8) != 0)
      return 1;
    copy_us[r] = cs->last_copy_us;
    copy_cpu[r] = cs->last_copy_cpu_us;
    done_ctx d = {-99, ""};
    ckpt_submit(ck, on_done, &d);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (d.status != 0) {
      fprintf(stderr, "bench_store: checkpoint failed: %s\n", d.err);
      return 1;
    }
    write_us[r] = cs->last_write_us;
    write_cpu[r] = cs->last_write_cpu_us;
  }
  qsort(copy_us, ROUNDS, sizeof(double), cmp_double);
  qsort(write_us, ROUNDS, sizeof(double), cmp_double);
  qsort(memcpy_us, ROUNDS, sizeof(double), cmp_double);
  qsort(copy_cpu, ROUNDS, sizeof(double), cmp_double);
  qsort(write_cpu, ROUNDS, sizeof(double), cmp_double);
  double wmed = write_us[ROUNDS / 2], wcpu = write_cpu[ROUNDS / 2];
  /* Wall time is what the loop and the checkpoint age see; CPU time is the same work without the
   * time the thread was preempted, which on a shared machine can dominate. */
  printf("store_checkpoint instruments=%d H=%d L=%d sync=%s rounds=%d stall_us_median=%.0f "
         "stall_us_max=%.0f stall_cpu_us_median=%.0f memcpy_us_median=%.0f write_ms_median=%.1f "
         "write_ms_max=%.1f write_cpu_ms_median=%.1f inst_per_s=%.0f inst_per_cpu_s=%.0f\n",
         N, H, L, sync == STORE_SYNC_FULL ? "full" : "normal", ROUNDS, copy_us[ROUNDS / 2],
         copy_us[ROUNDS - 1], copy_cpu[ROUNDS / 2], memcpy_us[ROUNDS / 2], wmed / 1e3,
         write_us[ROUNDS - 1] / 1e3, wcpu / 1e3, N / (wmed / 1e6), N / (wcpu / 1e6));
  fflush(stdout);
  free(scratch);
  ckpt_destroy(ck);
  uv_loop_close(&loop);
  store_close(st);
  /* Start-up: open (with quick_check over the whole file) and restore into a fresh table. */
  if (sync == STORE_SYNC_NORMAL) {
    uint64_t t0 = uv_hrtime();
    if (store_open(path, sync, STORE_OPEN_CREATE, &st, err, sizeof err) != 0) {
      fprintf(stderr, "bench_store: %s\n", err);
      return 1;
    }
    uint64_t t1 = uv_hrtime();
    symtab r;
    symtab_init(&r, nn_state_floats(&m), (uint32_t)N);
    store_offset *ro = NULL;
    size_t nro = 0;
    if (ckpt_restore(st, &m, &r, &ro, &nro, err, sizeof err) != 0) {
      fprintf(stderr, "bench_store: %s\n", err);
      return 1;
    }
    uint64_t t2 = uv_hrtime();
    printf("store_restore instruments=%u H=%d L=%d open_ms=%.1f restore_ms=%.1f "
           "inst_per_s=%.0f\n",
           r.live, H, L, (t1 - t0) / 1e6, (t2 - t1) / 1e6, r.live / ((t2 - t1) / 1e9));
    fflush(stdout);
    free(ro);
    symtab_free(&r);
    store_close(st);
  }
  symtab_free(&t);
  nn_model_free(&m);
  char side[600];
  unlink(path);
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
  return 0;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  int rc = 0;
  if (argc > 2)
    return run_case(dir, atoi(argv[2]), STORE_SYNC_NORMAL); /* one size only */
  rc |= run_case(dir, 10000, STORE_SYNC_NORMAL);
  rc |= run_case(dir, 100000, STORE_SYNC_NORMAL);
  rc |= run_case(dir, 10000, STORE_SYNC_FULL);
  return rc;
}
