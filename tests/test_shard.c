/* test_shard.c: the data-parallel training step (daemon/pipeline/shard.c) and its worker pool
 * (daemon/pipeline/tpool.c). The split of a minibatch covers every sequence once in at most
 * SHARD_ROWS-row shards of near-equal size; the sharded loss, gradient and carried state equal
 * the whole-batch nn_train_forward/backward's within float rounding (LSTM with peepholes, GRU,
 * RNN, with and without the scale head, 1 and 2 layers, minibatches of 1 to 3 shards and uneven
 * padding weights); on 1, 2, 3 and 8 threads they are the same bytes; the optimizer step on the
 * pool (shard_set_update) gives nn_grad_clip's and nn_adam_step's very floats on any thread count;
 * shards that load their own rows (shard_set_loader) load each once and give the same floats;
 * the pool runs every job of every section exactly once, including with more threads than jobs,
 * more jobs than one section holds, workers that fell asleep and a caller that did, and the first
 * section of a new pool. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "daemon/pipeline/shard.h"
#include "daemon/pipeline/tpool.h"
#include "nn/model.h"
#include "nn/train.h"

static void check_split(void) {
  for (int B = 1; B <= 100; B++) {
    int K = shard_count(B), next = 0, lo = B, hi = 0;
    CHECK_INT(K, (B + SHARD_ROWS - 1) / SHARD_ROWS);
    for (int k = 0; k < K; k++) {
      int b0, n;
      shard_rows(B, k, &b0, &n);
      CHECK_INT(b0, next);
      CHECK(n >= 1 && n <= SHARD_ROWS);
      lo = n < lo ? n : lo, hi = n > hi ? n : hi;
      next = b0 + n;
    }
    CHECK_INT(next, B);
    CHECK(hi - lo <= 1);
  }
}

/* Counts how often each job ran. */
typedef struct pool_arg {
  int count[64];
} pool_arg;

static void pool_job(void *arg, int j) {
  pool_arg *a = arg;
  __atomic_fetch_add(&a->count[j], 1, __ATOMIC_RELAXED);
}

static void slow_job(void *arg, int j) {
  usleep(j == 0 ? 2000 : 0); /* longer than the pool's spinning */
  pool_job(arg, j);
}

static void many_job(void *arg, int j) {
  __atomic_fetch_add(&((int *)arg)[j], 1, __ATOMIC_RELAXED);
}

/* Records the thread that ran the job. */
static void self_job(void *arg, int j) {
  (void)j;
  *(pthread_t *)arg = pthread_self();
}

static void check_pool(int threads) {
  tpool *p;
  CHECK_INT(tpool_new(&p, threads), 0);
  CHECK_INT(tpool_threads(p), threads);
  int bad = 0;
  for (int sec = 0; sec < 2000; sec++) {
    pool_arg a = {{0}};
    int n = sec % 9; /* 0 to 8 jobs: fewer and more than the threads */
    tpool_run(p, n, pool_job, &a);
    for (int j = 0; j < 64; j++)
      bad += a.count[j] != (j < n);
  }
  CHECK_INT(bad, 0);
  /* Sections after a pause longer than the spinning (the workers sleep and must be woken), and
   * sections whose jobs outlast it (the caller sleeps until the last one is done). */
  for (int sec = 0; sec < 6; sec++) {
    pool_arg a = {{0}};
    usleep(sec % 2 ? 1000 : 0);
    tpool_run(p, 5, sec % 2 ? pool_job : slow_job, &a);
    for (int j = 0; j < 64; j++)
      bad += a.count[j] != (j < 5);
  }
  CHECK_INT(bad, 0);
  /* A section of one job runs on the caller: nothing to hand out or wait for. */
  for (int sec = 0; sec < 200; sec++) {
    pthread_t who = 0;
    tpool_run(p, 1, self_job, &who);
    bad += !pthread_equal(who, pthread_self());
  }
  CHECK_INT(bad, 0);
  /* More jobs than one section holds (tpool.c cuts them at 32768). */
  int n = 70001;
  int *many = calloc((size_t)n, sizeof *many);
  tpool_run(p, n, many_job, many);
  for (int j = 0; j < n; j++)
    bad += many[j] != 1;
  CHECK_INT(bad, 0);
  free(many);
  tpool_destroy(p);
  tpool_destroy(NULL);
  CHECK_INT(tpool_threads(NULL), 1);
}

/* Two jobs that each wait (up to a second) until the other has started: they finish together
 * only when two threads run them at once. */
typedef struct meet_arg {
  int started;
  int met[2];
} meet_arg;

static void meet_job(void *arg, int j) {
  meet_arg *a = arg;
  __atomic_fetch_add(&a->started, 1, __ATOMIC_SEQ_CST);
  for (int i = 0; i < 10000 && __atomic_load_n(&a->started, __ATOMIC_SEQ_CST) < 2; i++)
    usleep(100);
  a->met[j] = __atomic_load_n(&a->started, __ATOMIC_SEQ_CST) == 2;
}

/* The first section of a new pool runs on its workers too: a worker that started after the
 * section did took it for one it had seen, and left every job of it to the caller. */
static void check_first_section(void) {
  int bad = 0;
  for (int rep = 0; rep < 20; rep++) {
    tpool *p;
    CHECK_INT(tpool_new(&p, 2), 0);
    meet_arg a = {0, {0, 0}};
    tpool_run(p, 2, meet_job, &a);
    bad += !a.met[0] || !a.met[1];
    tpool_destroy(p);
  }
  CHECK_INT(bad, 0);
}

static float urand(nn_rng *r, float a) {
  return (float)((2 * nn_rng_uniform(r) - 1) * a);
}

static double max_abs(const float *v, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++)
    m = fabs(v[i]) > m ? fabs(v[i]) : m;
  return m;
}

/* The optimizer step on the pool against nn_grad_clip + nn_adam_step, three steps, with the
 * clipping on (a small limit) and off, on 1, 2, 3 and 8 threads: the same params and moments. */
static void check_update(int H, double maxnorm) {
  nn_model m, m1;
  nn_rng r;
  memset(&m, 0, sizeof m);
  memset(&m1, 0, sizeof m1);
  CHECK_INT(nn_model_init_head(&m, NN_CELL_LSTM, 2, H, 1, 1), 0);
  CHECK_INT(nn_model_init_head(&m1, NN_CELL_LSTM, 2, H, 1, 1), 0);
  nn_rng_seed(&r, 7);
  nn_train_init_weights(&m, &r);
  size_t np = m.nparams;
  for (size_t i = 0; i < np; i++) /* features.* and target.* too: the update leaves them */
    m.params[i] = nn_param_trainable(&m, i) ? m.params[i] : urand(&r, 2);
  float *g = malloc(np * 4), *gref = malloc(np * 4), *gs = malloc(np * 4);
  float *p0 = malloc(np * 4);
  memcpy(p0, m.params, np * 4);
  nn_adam aref;
  CHECK_INT(nn_adam_init(&aref, np, 3e-3f), 0);
  shard_set sh;
  CHECK_INT(shard_set_init(&sh, &m, 16, 2), 0);
  for (int ti = 0; ti < 4; ti++) {
    static const int threads[] = {1, 2, 3, 8};
    tpool *p;
    CHECK_INT(tpool_new(&p, threads[ti]), 0);
    nn_adam a;
    CHECK_INT(nn_adam_init(&a, np, 3e-3f), 0);
    memcpy(m.params, p0, np * 4);
    if (ti == 0)
      memcpy(m1.params, p0, np * 4);
    nn_rng_seed(&r, 11);
    double norm = 0, nref = 0;
    for (int step = 0; step < 3; step++) {
      for (size_t i = 0; i < np; i++)
        g[i] = urand(&r, 0.1f);
      memcpy(gs, g, np * 4);
      norm = shard_set_update(&sh, p, &m, &a, gs, maxnorm);
      if (ti == 0) { /* the reference, once */
        memcpy(gref, g, np * 4);
        nref = nn_grad_clip(gref, np, maxnorm);
        nn_adam_step(&aref, &m1, gref);
        CHECK(norm == nref);
        CHECK_INT(memcmp(gs, gref, np * 4), 0); /* clipped in place the same way */
      }
    }
    CHECK_INT(memcmp(m.params, m1.params, np * 4), 0);
    CHECK_INT(memcmp(a.mom, aref.mom, 2 * np * 4), 0);
    CHECK(a.t == aref.t);
    CHECK(memcmp(m.params, p0, np * 4) != 0); /* it did move */
    for (size_t i = 0; i < np; i++)
      if (!nn_param_trainable(&m, i))
        CHECK(m.params[i] == p0[i]);
    nn_adam_free(&a);
    tpool_destroy(p);
  }
  if (maxnorm > 0)
    CHECK(nn_grad_clip(g, np, 0) > maxnorm); /* the limit did clip */
  printf("update L=2 H=%d (%zu parameters), clip %g: identical on 1, 2, 3 and 8 threads\n", H, np,
         maxnorm);
  shard_set_free(&sh);
  nn_adam_free(&aref);
  free(g), free(gref), free(gs), free(p0);
  nn_model_free(&m);
  nn_model_free(&m1);
}

/* A loader (shard_set_loader) that fills the rows it is given from the source arrays into
 * buffers that start as garbage, and counts the loads of each row. */
typedef struct loader {
  int B, T;
  size_t sf;
  const float *x, *tgt, *w, *s0; /* the minibatch */
  float *lx, *lt, *lw, *ls;      /* what the step reads */
  int *loads;                    /* (B) */
} loader;

static void load_rows(void *arg, int b0, int n) {
  loader *l = arg;
  for (int b = b0; b < b0 + n; b++) {
    __atomic_add_fetch(&l->loads[b], 1, __ATOMIC_RELAXED);
    memcpy(l->ls + b * l->sf, l->s0 + b * l->sf, l->sf * 4);
    for (int t = 0; t < l->T; t++) {
      size_t r = (size_t)t * l->B + b;
      memcpy(l->lx + r * NN_F, l->x + r * NN_F, NN_F * 4);
      l->lt[r] = l->tgt[r], l->lw[r] = l->w[r];
    }
  }
}

/* One shape: the whole batch against the shards on 1, 2, 3 and 8 threads, the minibatch given
 * whole and loaded by the shards themselves. */
static void check_step(int cell, int L, int H, int peephole, int gauss, int B, int T) {
  nn_model m;
  nn_rng r;
  memset(&m, 0, sizeof m);
  CHECK_INT(nn_model_init_head(&m, cell, L, H, peephole, gauss), 0);
  nn_rng_seed(&r, 42 + B);
  nn_train_init_weights(&m, &r);
  size_t TB = (size_t)T * B, sf = nn_state_floats(&m), np = m.nparams;
  float *x = malloc(TB * NN_F * 4), *tgt = malloc(TB * 4), *w = malloc(TB * 4);
  float *s0 = malloc((size_t)B * sf * 4), *sw = malloc((size_t)B * sf * 4);
  float *ss = malloc((size_t)B * sf * 4), *s1 = malloc((size_t)B * sf * 4);
  float *gw = calloc(np, 4), *gs = malloc(np * 4), *g1 = malloc(np * 4);
  int nvalid = 0;
  for (size_t i = 0; i < TB * NN_F; i++)
    x[i] = urand(&r, 1.5f);
  for (size_t i = 0; i < TB; i++) {
    tgt[i] = urand(&r, 1);
    w[i] = nn_rng_uniform(&r) < 0.8 ? 1.0f : 0.0f; /* padding here and there */
    nvalid += w[i] != 0;
  }
  for (size_t i = 0; i < TB; i++)
    w[i] /= (float)nvalid;
  for (size_t i = 0; i < (size_t)B * sf; i++)
    s0[i] = urand(&r, 0.5f);
  /* The whole batch in one nn_train. */
  nn_train tr;
  CHECK_INT(nn_train_init(&tr, &m, B, T), 0);
  memcpy(sw, s0, (size_t)B * sf * 4);
  double lw = nn_train_forward(&tr, &m, B, T, x, tgt, w, sw);
  nn_train_backward(&tr, &m, gw);
  nn_train_free(&tr);
  double gmax = max_abs(gw, np), lref = 0;
  shard_set sh;
  CHECK_INT(shard_set_init(&sh, &m, B, T), 0);
  for (int ti = 0; ti < 4; ti++) {
    static const int threads[] = {1, 2, 3, 8};
    tpool *p;
    CHECK_INT(tpool_new(&p, threads[ti]), 0);
    memcpy(ss, s0, (size_t)B * sf * 4);
    memset(gs, 0x7f, np * 4); /* set, not added to */
    double ls = 0;
    for (int rep = 0; rep < 2; rep++) { /* the second step on reused scratch: the same again */
      memcpy(ss, s0, (size_t)B * sf * 4);
      ls = shard_set_grad(&sh, p, &m, B, T, x, tgt, w, ss, gs);
    }
    /* The same step with each shard loading its own rows: the same floats, each row once. */
    loader ld = {B,
                 T,
                 sf,
                 x,
                 tgt,
                 w,
                 s0,
                 malloc(TB * NN_F * 4),
                 malloc(TB * 4),
                 malloc(TB * 4),
                 malloc((size_t)B * sf * 4),
                 calloc((size_t)B, sizeof(int))};
    memset(ld.lx, 0x7f, TB * NN_F * 4), memset(ld.lt, 0x7f, TB * 4), memset(ld.lw, 0x7f, TB * 4);
    memset(ld.ls, 0x7f, (size_t)B * sf * 4);
    float *gl = malloc(np * 4);
    shard_set_loader(&sh, load_rows, &ld);
    double ll = shard_set_grad(&sh, p, &m, B, T, ld.lx, ld.lt, ld.lw, ld.ls, gl);
    shard_set_loader(&sh, NULL, NULL);
    int once = 1;
    for (int b = 0; b < B; b++)
      once &= ld.loads[b] == 1;
    CHECK(once);
    CHECK(ll == ls);
    CHECK_INT(memcmp(gl, gs, np * 4), 0);
    CHECK_INT(memcmp(ld.ls, ss, (size_t)B * sf * 4), 0);
    free(ld.lx), free(ld.lt), free(ld.lw), free(ld.ls), free(ld.loads), free(gl);
    tpool_destroy(p);
    if (ti == 0) {
      lref = ls;
      memcpy(g1, gs, np * 4);
      memcpy(s1, ss, (size_t)B * sf * 4);
      CHECK_NEAR(ls, lw, 1e-6 * fabs(lw) + 1e-9);
      double worst = 0, wstate = 0;
      for (size_t i = 0; i < np; i++)
        worst = fabs(gs[i] - gw[i]) > worst ? fabs(gs[i] - gw[i]) : worst;
      for (size_t i = 0; i < (size_t)B * sf; i++)
        wstate = fabs(ss[i] - sw[i]) > wstate ? fabs(ss[i] - sw[i]) : wstate;
      CHECK(gmax > 0);
      CHECK_NEAR(worst / gmax, 0, 1e-5);
      CHECK_NEAR(wstate, 0, 1e-5);
      printf("%s L=%d H=%d%s%s B=%d (%d shards) T=%d: loss %.9g vs %.9g, worst grad diff %.2g of "
             "the max, state %.2g\n",
             nn_cell_name(cell), L, H, peephole ? " peephole" : "", gauss ? " gauss" : "", B,
             shard_count(B), T, ls, lw, worst / gmax, wstate);
    } else { /* other thread counts: the very same floats */
      CHECK(ls == lref);
      CHECK_INT(memcmp(gs, g1, np * 4), 0);
      CHECK_INT(memcmp(ss, s1, (size_t)B * sf * 4), 0);
    }
  }
  shard_set_free(&sh);
  free(x), free(tgt), free(w), free(s0), free(sw), free(ss), free(s1), free(gw), free(gs), free(g1);
  nn_model_free(&m);
}

int main(void) {
  check_split();
  check_pool(1);
  check_pool(2);
  check_pool(5);
  check_first_section();
  check_step(NN_CELL_LSTM, 1, 16, 0, 0, 40, 7); /* 3 shards: 13, 13, 14 */
  check_step(NN_CELL_LSTM, 2, 12, 1, 0, 33, 5);
  check_step(NN_CELL_LSTM, 1, 16, 0, 0, 16, 6); /* one shard */
  check_step(NN_CELL_LSTM, 1, 16, 0, 1, 20, 6);
  check_step(NN_CELL_GRU, 2, 16, 0, 0, 40, 7);
  check_step(NN_CELL_GRU, 1, 8, 0, 1, 17, 4);
  check_step(NN_CELL_RNN_TANH, 2, 16, 0, 0, 48, 5);
  check_step(NN_CELL_RNN_RELU, 1, 16, 0, 0, 19, 9);
  check_step(NN_CELL_LSTM, 1, 48, 0, 0, 40, 3); /* 13k parameters: the sum in several ranges */
  check_update(8, 0);                           /* one range */
  check_update(40, 0);                          /* several */
  check_update(40, 0.05);
  return check_done();
}
