/* bench_replay.c: replay throughput by stage (decode, features, network step, encode) and end to
 * end, in process, for H = 32, 64, 128 and 1, 16, 256, 4096 active instruments (one layer; the
 * LSTM unless --cell names another cell). With --write FILE --hidden H --instruments K --ticks N
 * [--cell C] it instead writes a synthetic tick CSV and a random model FILE.safetensors of that
 * cell, for timing the real binary against PyTorch (bench/run.sh).
 * Not a test: it asserts nothing and prints one machine-readable line per case. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/pipeline/encode.h"
#include "daemon/pipeline/engine.h"
#include "daemon/pipeline/preplay.h"
#include "ingest/reject.h"
#include "ingest/tick.h"
#include "ingest/tickfile.h"
#include "nn/lstm.h"
#include "nn/model.h"
#include "nn/safetensors/safetensors.h"

#define CHUNK 4096

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double urand(void) { /* splitmix64 -> [0, 1) */
  uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

static void random_model(nn_model *m, int cell, int H) {
  if (nn_model_init_cell(m, cell, 1, H, 0) != 0)
    exit(1);
  float a = 1.0f / sqrtf((float)H);
  for (size_t i = 0; i < m->nparams; i++)
    m->params[i] = (float)(urand() * 2 - 1) * a;
  for (int i = 0; i < NN_F; i++) {
    m->feat_mean[i] = 0.01f * i;
    m->feat_std[i] = 1.0f + i;
  }
  m->tgt_mean[0] = 0;
  m->tgt_std[0] = 0.01f;
}

/* Synthetic CSV ticks (sym,ts,px,qty,bid,ask), K instruments round robin, random walks. */
static char *make_csv(int K, int N, size_t *len) {
  size_t cap = (size_t)N * 96 + 64, n = 0;
  char *s = malloc(cap);
  double *px = malloc(K * sizeof *px);
  for (int k = 0; k < K; k++)
    px[k] = 100 + k;
  n += sprintf(s, "sym,ts,px,qty,bid,ask\n");
  int64_t ts = 1700000000000000000ll;
  for (int i = 0; i < N; i++) {
    int k = i % K;
    px[k] *= exp((urand() - 0.5) * 2e-3);
    ts += 1000 + (int64_t)(urand() * 1e6);
    double sp = px[k] * 1e-4;
    n += sprintf(s + n, "S%05d,%lld,%.6f,%d,%.6f,%.6f\n", k, (long long)ts, px[k],
                 1 + (int)(urand() * 100), px[k] - sp, px[k] + sp);
  }
  free(px);
  *len = n;
  return s;
}

static int write_case(const char *path, int cell, int H, int K, int N) {
  nn_model m;
  random_model(&m, cell, H);
  char mp[1024], err[256];
  snprintf(mp, sizeof mp, "%s.safetensors", path);
  if (nn_model_save(&m, mp, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  size_t len;
  char *csv = make_csv(K, N, &len);
  FILE *f = fopen(path, "w");
  if (!f || fwrite(csv, 1, len, f) != len || fclose(f) != 0)
    return 1;
  free(csv);
  nn_model_free(&m);
  return 0;
}

static void run_case(int cell, int H, int K, int N) {
  nn_model m;
  random_model(&m, cell, H);
  size_t len;
  char *csv = make_csv(K, N, &len);
  tick_csv hdr;
  char err[256];
  char *line = csv, *nl = strchr(line, '\n');
  tick_csv_header(&hdr, line, (size_t)(nl - line), err, sizeof err);
  line = nl + 1;
  /* malloc + memset, not calloc: the pages must be faulted in before the decode is timed (GCC
   * folds a memset after calloc away). */
  eng_tick *ticks = malloc((size_t)N * sizeof *ticks);
  memset(ticks, 0, (size_t)N * sizeof *ticks);
  char **starts = malloc((size_t)N * sizeof *starts);
  for (int i = 0; i < N; i++) {
    starts[i] = line;
    line = strchr(line, '\n') + 1;
  }
  /* decode, timed into one chunk-sized buffer as replay does (a 48 MB array written once would
   * time page faults and cache misses, not the decoder); then untimed into the full array */
  double t0 = now_s();
  for (int i = 0; i < N; i++) {
    size_t l = (size_t)(strchr(starts[i], '\n') - starts[i]);
    eng_tick *t = &ticks[i % CHUNK];
    t->reason = tick_parse_csv(&hdr, &t->t, starts[i], l, err, sizeof err);
  }
  double t_dec = now_s() - t0;
  for (int i = 0; i < N; i++) {
    size_t l = (size_t)(strchr(starts[i], '\n') - starts[i]);
    ticks[i].reason = tick_parse_csv(&hdr, &ticks[i].t, starts[i], l, err, sizeof err);
    ticks[i].partition = -1;
  }
  /* engine = features + waves + network step */
  engine e;
  engine_init(&e, &m, CHUNK);
  t0 = now_s();
  for (int i = 0; i < N; i += CHUNK)
    engine_process(&e, ticks + i, N - i < CHUNK ? N - i : CHUNK);
  double t_eng = now_s() - t0;
  /* the network step alone on the same wave sizes: B = min(K, CHUNK) instruments per step. */
  int B = K < CHUNK ? K : CHUNK;
  float *x = calloc((size_t)B * NN_F, sizeof *x), *y = malloc((size_t)B * sizeof *y);
  float **sp = malloc((size_t)B * sizeof *sp);
  for (int b = 0; b < B; b++)
    sp[b] = symtab_state(&e.st, b % (int)e.st.count);
  nn_work w;
  nn_work_init(&w, &m, B);
  t0 = now_s();
  for (int i = 0; i < N; i += B)
    nn_step(&m, &w, B, x, sp, y);
  double t_lstm = now_s() - t0;
  /* encode */
  char *out = malloc((size_t)CHUNK * ENC_PRED_MAX);
  size_t bytes = 0;
  t0 = now_s();
  for (int i = 0; i < N; i += CHUNK) {
    char *p = out;
    for (int j = i; j < N && j < i + CHUNK; j++) {
      p += enc_pred_csv(p, &ticks[j]);
      *p++ = '\n';
    }
    bytes += (size_t)(p - out);
  }
  double t_enc = now_s() - t0;
  /* end to end in process: decode + engine + encode per chunk, fresh state */
  engine e2;
  engine_init(&e2, &m, CHUNK);
  t0 = now_s();
  for (int i = 0; i < N; i += CHUNK) {
    int n = N - i < CHUNK ? N - i : CHUNK;
    for (int j = i; j < i + n; j++) {
      size_t l = (size_t)(strchr(starts[j], '\n') - starts[j]);
      ticks[j].reason = tick_parse_csv(&hdr, &ticks[j].t, starts[j], l, err, sizeof err);
    }
    engine_process(&e2, ticks + i, n);
    char *p = out;
    for (int j = i; j < i + n; j++) {
      p += enc_pred_csv(p, &ticks[j]);
      *p++ = '\n';
    }
    bytes += (size_t)(p - out);
  }
  double t_e2e = now_s() - t0;
  double t_feat = t_eng - t_lstm > 0 ? t_eng - t_lstm : 0;
  printf("replay cell=%s H=%d instruments=%d ticks=%d decode_ns=%.1f features_ns=%.1f "
         "step_ns=%.1f encode_ns=%.1f e2e_ns=%.1f e2e_ticks_per_s=%.0f\n",
         nn_cell_name(cell), H, K, N, 1e9 * t_dec / N, 1e9 * t_feat / N, 1e9 * t_lstm / N,
         1e9 * t_enc / N, 1e9 * t_e2e / N, N / t_e2e);
  fflush(stdout);
  if (bytes == 0)
    abort(); /* keeps the encoder from being optimized away */
  engine_free(&e);
  engine_free(&e2);
  nn_work_free(&w);
  free(x), free(y), free(sp), free(out), free(ticks), free(starts), free(csv);
  nn_model_free(&m);
}

/* --pipeline: the pipeline of `replay --threads` (preplay.h) in process on a tick file, its
 * predictions written to /dev/null, with the CPU time of each stage per tick. */
typedef union pipe_seen { /* a cache line each: the workers write them on every tick */
  tickfile_ts_seen s;
  char pad[64];
} pipe_seen;

typedef struct pipe_run {
  tickfile tf;
  _Alignas(64) pipe_seen seen[2 * PREPLAY_MAX_THREADS + 1];
  FILE *out;
  char buf[1 << 18];
  size_t len;
} pipe_run;

static int pipe_decode(void *ud, int worker, const char *bytes, const preplay_rec *rec, tick *t,
                       int *reason, char *err, size_t errlen) {
  pipe_run *r = ud;
  return tickfile_decode(&r->tf, (uint64_t)rec->pos, bytes + rec->off, rec->len, t, reason,
                         &r->seen[worker].s, err, errlen);
}

static int pipe_route(void *ud, const char *bytes, const preplay_rec *rec, const char **sym,
                      size_t *len) {
  pipe_run *r = ud;
  return tickfile_sym_hint(&r->tf, bytes + rec->off, rec->len, sym, len);
}

static int pipe_emit(void *ud, const preplay_rec *rec, const char *sym, size_t symlen,
                     const char *text, size_t len) {
  (void)rec, (void)sym, (void)symlen;
  pipe_run *r = ud;
  if (r->len + len > sizeof r->buf) {
    fwrite(r->buf, 1, r->len, r->out);
    r->len = 0;
  }
  memcpy(r->buf + r->len, text, len);
  r->len += len;
  return 0;
}

static int pipe_case(const char *path, const char *model, int threads, int shards) {
  static pipe_run r;
  char err[512];
  nn_model m;
  reject_tally rej;
  reject_tally_init(&rej);
  rej.quiet = 1;
  if (nn_model_load(&m, model, err, sizeof err) != 0 ||
      tickfile_open(&r.tf, path, err, sizeof err) != 0 || !(r.out = fopen("/dev/null", "w"))) {
    fprintf(stderr, "bench_replay: %s\n", err);
    return 1;
  }
  const preplay_cfg cfg = {.m = &m,
                           .threads = threads,
                           .shards = shards,
                           .src = path,
                           .src_max = 300,
                           .rej = &rej,
                           .route = pipe_route,
                           .decode = pipe_decode,
                           .emit = pipe_emit,
                           .stats = 1,
                           .ud = &r};
  preplay *p;
  if (preplay_new(&p, &cfg) != 0)
    return 1;
  double t0 = now_s(), c0 = (double)clock() / CLOCKS_PER_SEC;
  int rc = 1;
  preplay_chunk *c;
  while (rc > 0 && (c = preplay_acquire(p))) {
    rc = preplay_fill_lines(p, c, &r.tf);
    preplay_submit(p, c);
  }
  if (preplay_finish(p) != 0 || rc < 0)
    return 1;
  fwrite(r.buf, 1, r.len, r.out);
  double dt = now_s() - t0, cpu = (double)clock() / CLOCKS_PER_SEC - c0;
  preplay_stats st;
  preplay_get_stats(p, &st);
  double n = (double)preplay_read(p), k = 1e3 / n; /* us -> ns per tick */
  printf("pipeline threads=%d shards=%d ticks=%.0f wall_s=%.3f ticks_per_s=%.0f cpu_ns=%.1f "
         "read_ns=%.1f "
         "write_ns=%.1f route_ns=%.1f step_ns=%.1f worker_other_ns=%.1f wait_ns=%.1f\n",
         threads, shards, n, dt, n / dt, 1e9 * cpu / n, st.read_us * k, st.write_us * k,
         st.route_us * k, st.step_us * k, (st.worker_us - st.route_us - st.step_us) * k,
         st.wait_us * k);
  preplay_destroy(p);
  fclose(r.out);
  tickfile_close(&r.tf);
  nn_model_free(&m);
  return 0;
}

int main(int argc, char **argv) {
  int H = 64, K = 256, N = 1000000, cell = NN_CELL_LSTM, quick = 0;
  const char *write = NULL;
  if ((argc == 5 || argc == 6) && !strcmp(argv[1], "--pipeline"))
    return pipe_case(argv[2], argv[3], atoi(argv[4]), argc == 6 ? atoi(argv[5]) : 0);
  for (int a = 1; a < argc; a++) {
    const char *v = a + 1 < argc ? argv[a + 1] : NULL;
    if (!strcmp(argv[a], "--quick"))
      quick = 1;
    else if (!v)
      break;
    else if (!strcmp(argv[a], "--cell") && nn_cell_parse(v) >= 0)
      cell = nn_cell_parse(v), a++;
    else if (!strcmp(argv[a], "--write"))
      write = v, a++;
    else if (!strcmp(argv[a], "--hidden"))
      H = atoi(v), a++;
    else if (!strcmp(argv[a], "--instruments"))
      K = atoi(v), a++;
    else if (!strcmp(argv[a], "--ticks"))
      N = atoi(v), a++;
  }
  if (write)
    return write_case(write, cell, H, K, N);
  static const int Hs[] = {32, 64, 128}, Ks[] = {1, 16, 256, 4096};
  for (int h = 0; h < 3; h++)
    for (int k = 0; k < 4; k++)
      run_case(cell, Hs[h], Ks[k], quick ? 100000 : 400000);
  return 0;
}
