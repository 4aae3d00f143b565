/* test_store_crash.c: checkpoints survive kill -9. A child process writes checkpoint after
 * checkpoint (round k sets every instrument's n to k, its state to a pattern of k, and every
 * offset to 1000 k) and reports each commit on a pipe; the parent kills it with SIGKILL at random
 * moments, 8 times, then reopens the file and checks: it opens cleanly (quick_check), every
 * instrument and offset comes from one and the same round (a checkpoint is atomic), and that
 * round is at least the last one the child saw committed (a commit is durable against a process
 * crash with synchronous=normal). Each restart continues from what it finds. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "nn/base/tc_err.h"
#include "store/store.h"

#define NI 2000 /* instruments */
#define NL 1
#define NH 16
#define NP 4 /* partitions */

static char path[128];

/* Instrument i's state in round k: exactly representable floats, distinct per (i, k, j). */
static float pattern(int i, uint64_t k, int j) {
  return (float)((int)((k * 131 + (uint64_t)i * 7 + (uint64_t)j) % 4093) - 2046) / 64.0f;
}

typedef struct check_ctx {
  uint64_t round; /* the round of the first instrument seen; all must match */
  int seen, bad;
} check_ctx;

static int check_cb(void *ud, const store_inst *in) {
  check_ctx *c = ud;
  int i = atoi(in->sym + 1);
  if (!c->seen)
    c->round = in->n;
  c->seen++;
  int ok = in->n == c->round && in->last_ts == (int64_t)in->n * 10 + i && in->partition == i % NP;
  for (int j = 0; ok && j < 2 * NL * NH; j++)
    ok = in->state[j] == pattern(i, in->n, j);
  c->bad += !ok;
  return 0;
}

/* The writer: from the round found in the file, write rounds until killed. */
static void child(int fd) {
  char err[512];
  store *st = NULL;
  if (store_open(path, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err) != 0) {
    fprintf(stderr, "child: %s\n", err);
    _exit(2);
  }
  store_set_busy_timeout(st, 2000);
  store_meta m;
  uint64_t k = store_meta_get(st, &m, err, sizeof err) == 0 ? m.ckpts : 0;
  static float states[NI][2 * NL * NH];
  static char syms[NI][8];
  static store_inst in[NI];
  for (;;) {
    k++;
    for (int i = 0; i < NI; i++) {
      snprintf(syms[i], sizeof syms[i], "S%d", i);
      for (int j = 0; j < 2 * NL * NH; j++)
        states[i][j] = pattern(i, k, j);
      in[i] = (store_inst){.sym = syms[i],
                           .sym_len = strlen(syms[i]),
                           .partition = i % NP,
                           .n = k,
                           .last_ts = (int64_t)k * 10 + i,
                           .last_px = 1.0,
                           .state = states[i]};
    }
    store_offset off[NP];
    for (int p = 0; p < NP; p++)
      off[p] = (store_offset){"ticks", p, (int64_t)k * 1000};
    store_ckpt c = {
        .inst = in, .ninst = NI, .off = off, .noff = NP, .time_ns = (int64_t)k, .L = NL, .H = NH};
    if (store_checkpoint_write(st, &c, err, sizeof err) != 0) {
      fprintf(stderr, "child: %s\n", err);
      _exit(3);
    }
    /* meta.ckpts counts checkpoints; it equals k because every round is one checkpoint. */
    if (write(fd, &k, sizeof k) != sizeof k)
      _exit(4);
  }
}

int main(void) {
  char dir[64];
  snprintf(dir, sizeof dir, "/tmp/test_store_crash_XXXXXX");
  if (!mkdtemp(dir))
    return 1;
  snprintf(path, sizeof path, "%s/crash.db", dir);
  srand((unsigned)time(NULL));
  uint64_t last_round = 0;
  int kills = 0;
  for (int run = 0; run < 8; run++) {
    int pfd[2];
    if (pipe(pfd) != 0)
      return 1;
    pid_t pid = fork();
    if (pid == 0) {
      close(pfd[0]);
      child(pfd[1]);
    }
    close(pfd[1]);
    /* Let it commit at least one round, then kill it at a random moment inside a later one. */
    uint64_t k = 0, committed = 0;
    if (read(pfd[0], &k, sizeof k) == sizeof k)
      committed = k;
    usleep(1000 * (unsigned)(rand() % 60));
    kill(pid, SIGKILL);
    while (read(pfd[0], &k, sizeof k) == sizeof k)
      committed = k; /* reported before the kill */
    close(pfd[0]);
    int ws;
    waitpid(pid, &ws, 0);
    kills += WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL;

    char err[512];
    store *st = NULL;
    CHECK_INT(store_open(path, STORE_SYNC_NORMAL, STORE_OPEN_CREATE, &st, err, sizeof err), 0);
    if (!st) {
      fprintf(stderr, "%s\n", err);
      break;
    }
    check_ctx c = {0};
    CHECK_INT(store_instruments_load(st, NN_CELL_LSTM, NL, NH, check_cb, &c, err, sizeof err), 0);
    CHECK_INT(c.seen, NI);
    CHECK_INT(c.bad, 0);
    store_offset *off = NULL;
    size_t noff = 0;
    CHECK_INT(store_offsets_load(st, &off, &noff, err, sizeof err), 0);
    CHECK_INT(noff, NP);
    for (size_t p = 0; p < noff; p++)
      CHECK_INT(off[p].next_offset, (int64_t)c.round * 1000);
    free(off);
    store_meta m;
    CHECK_INT(store_meta_get(st, &m, err, sizeof err), 0);
    CHECK_INT(m.ckpts, c.round);
    CHECK(c.round >= committed);     /* nothing the writer saw committed was lost */
    CHECK(c.round <= committed + 1); /* at most the one in progress at the kill */
    CHECK(c.round >= last_round);
    printf("run %d: killed after commit %" PRIu64 ", file holds round %" PRIu64 "\n", run,
           committed, c.round);
    last_round = c.round;
    store_close(st);
  }
  CHECK_INT(kills, 8);
  CHECK(last_round >= 8);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  return check_done();
}
