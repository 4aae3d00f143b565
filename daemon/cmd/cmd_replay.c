/* cmd_replay.c: `tickcast replay`: the model over a tick file (CSV or JSON Lines, '-' = stdin),
 * predictions to a CSV or JSONL file, in input order, in constant memory. One thread reads,
 * steps and writes chunk by chunk; with --threads N > 1 the parallel pipeline of preplay.h does
 * the same work on N workers and writes the same bytes. Reading a Kafka topic range instead
 * (--brokers/--topic) is cmd_kreplay.c's job. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/cmd/args.h"
#include "daemon/cmd/cmds.h"
#include "daemon/pipeline/encode.h"
#include "daemon/pipeline/engine.h"
#include "daemon/pipeline/ivtrack.h"
#include "daemon/pipeline/preplay.h"
#include "ingest/reject.h"
#include "ingest/tickfile.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"
#include "nn/model.h"
#include "nn/safetensors/safetensors.h"

#define CHUNK 4096 /* ticks per engine call */

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: tickcast replay --model M --input FILE [--output FILE] [--interval C]\n"
      "                       [--interval-adapt ETA] [--threads N] [--ts-unit U] [--quiet]\n"
      "       tickcast replay --model M --brokers LIST --topic T [range options]   "
      "(see tickcast replay --brokers x --help)\n\n"
      "Runs the model over a tick file (CSV with a header row, or JSON Lines; '-' = stdin)\n"
      "and writes one prediction per accepted tick, in input order: CSV\n"
      "(" ENC_CSV_HEADER ") by default, JSON Lines when the output name ends in .jsonl.\n"
      "A model with the scale head (train --head gauss) adds pred_std, lo_px and hi_px.\n"
      "Without --output, predictions go to stdout. Rejected lines are counted and reported\n"
      "with their line numbers on stderr; they never stop the replay.\n\n"
      "  --model M      safetensors model file (CONTRACT §4)\n"
      "  --input FILE   tick file, '-' for stdin\n"
      "  --output FILE  prediction file ('-' = stdout)\n"
      "  --interval C   coverage of lo_px..hi_px, the central interval of the next price, in\n"
      "                 (0, 1) (default 0.9; models with the scale head)\n"
      "  --interval-adapt ETA  step of each instrument's online z (quantile tracking, in z\n"
      "                 units per tick): after every tick the interval widens by ETA (1 - C)\n"
      "                 when the price fell outside the last one and narrows by ETA C when\n"
      "                 inside; 0 keeps the model's calibrated z (default " IVTRACK_ETA_TEXT ")\n"
      "  --threads N    worker threads (default: the online cores); instruments are spread over\n"
      "                 them, a busy core taking fewer, and the output is the same bytes for\n"
      "                 every N; 1 runs on one thread\n"
      "  --ts-unit U    integer timestamps in the file are s, ms, us or ns (default ns, with a\n"
      "                 warning when they look like another unit)\n"
      "  --quiet        no progress bar and no summary\n"
      "An output that is the input file under any name (a link, /dev/stdout) is refused.\n"
      "Exit status: 0 done (even with rejected lines), 1 runtime failure, 2 bad usage, bad model\n"
      "or unreadable input.\n");
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

static void progress(const tickfile *tf, uint64_t ticks, double t0) {
  double dt = tc_mono_s() - t0;
  if (tf->size > 0) {
    double f = (double)tf->bytes / (double)tf->size;
    int w = 30, fill = (int)(f * w);
    fprintf(stderr, "\r[%.*s%*s] %5.1f%% %llu ticks, %.0f ticks/s", fill,
            "##############################", w - fill, "", 100 * f, (unsigned long long)ticks,
            dt > 0 ? ticks / dt : 0.0);
  } else {
    fprintf(stderr, "\r%llu ticks, %.0f ticks/s", (unsigned long long)ticks,
            dt > 0 ? ticks / dt : 0.0);
  }
}

static void summary(const reject_tally *rej, uint64_t read, uint64_t accepted, uint32_t live,
                    const char *path, double dt) {
  fprintf(stderr,
          "replay %s: %llu ticks read, %llu accepted, %llu rejected, %u instruments, "
          "%.3f s, %.0f ticks/s\n",
          path, (unsigned long long)read, (unsigned long long)accepted,
          (unsigned long long)rej->total, live, dt, dt > 0 ? read / dt : 0.0);
  reject_tally_summary(rej, stderr, "", 0);
}

/* A thread's timestamp notes, on a cache line of its own (the array is 64-byte aligned): the
 * workers write them on every tick. */
typedef union replay_seen {
  tickfile_ts_seen s;
  char pad[64];
} replay_seen;

/* One file replay: its files, buffers and counts. */
typedef struct replay_run {
  const char *out_path; /* --output, NULL for stdout */
  int threads;          /* --threads */
  const char *src;      /* the input's name in messages and JSONL src ("stdin" for '-') */
  int quiet;            /* --quiet */
  int bar;              /* a progress bar on stderr (a terminal, not quiet) */
  int jsonl;            /* predictions as JSON Lines */
  tickfile tf;          /* the input */
  engine e;             /* fresh state */
  eng_tick *ticks;      /* (CHUNK) the chunk's accepted ticks */
  uint64_t *lines;      /* (CHUNK) their line numbers */
  char *outbuf;         /* (CHUNK * ENC_PRED_MAX) the chunk's predictions */
  FILE *out;            /* the prediction file or stdout */
  uint64_t read;        /* ticks (non-empty lines) read */
  reject_tally rej;     /* rejected lines */
  reject_hold hold;     /* (--threads 1) the chunk's decode rejects, noted as it is walked */
  /* With --threads N > 1: */
  preplay *pp;         /* the pipeline */
  pthread_t cutter;    /* truncates the output file while the replay starts */
  int cut_fd;          /* the output's descriptor, for cutter (which does not touch out) */
  int cutting;         /* cutter runs or was not joined yet */
  int cut_errno;       /* its ftruncate's errno; 0: truncated, or nothing to truncate */
  replay_seen *seen;   /* (2N + 1) each decoder's timestamp notes; the first N count */
  size_t outlen;       /* bytes waiting in outbuf */
  double t0, last_bar; /* start, and the last progress bar */
} replay_run;

/* 1 when the output (out_path, or stdout for NULL and "-") is the input file (in_path, or stdin
 * for "-") under any name: the same path, a symlink, a hard link, /dev/stdout, a redirection.
 * Opening it for writing would truncate the input before a line of it was read. Only regular
 * files count (a terminal may well be both stdin and stdout). */
static int output_is_input(const char *in_path, const char *out_path) {
  struct stat si, so;
  int in_ok = strcmp(in_path, "-") ? stat(in_path, &si) == 0 : fstat(0, &si) == 0;
  int out_ok = out_path && strcmp(out_path, "-") ? stat(out_path, &so) == 0 : fstat(1, &so) == 0;
  return in_ok && out_ok && S_ISREG(si.st_mode) && si.st_dev == so.st_dev && si.st_ino == so.st_ino;
}

static int par_cut_start(replay_run *r);

/* A failed write of the predictions (errno set): one line, after clearing the progress bar. */
static void write_failed(const replay_run *r) {
  fprintf(stderr, "%stickcast replay: %s: write failed: %m\n", r->rej.lead,
          r->out_path ? r->out_path : "stdout");
}

/* The output file (with the CSV header). With --threads N > 1 an existing file is truncated on a
 * thread of its own (par_cut_start), else as fopen "w" does. 0, or 1 after printing why. */
static int replay_open_output(replay_run *r, const nn_model *m) {
  r->out = stdout;
  if (r->out_path && strcmp(r->out_path, "-") != 0) {
    int fd = open(r->out_path, O_WRONLY | O_CREAT | (r->threads > 1 ? 0 : O_TRUNC), 0666);
    if (fd < 0 || !(r->out = fdopen(fd, "w"))) {
      fprintf(stderr, "tickcast replay: %s: cannot open for writing: %m\n", r->out_path);
      if (fd >= 0)
        close(fd);
      return 1;
    }
    r->cut_fd = fd;
    if (r->threads > 1 && par_cut_start(r) != 0)
      return 1;
  }
  if (!r->jsonl)
    fprintf(r->out, "%s\n", enc_csv_header(m));
  return 0;
}

/* Buffers, the engine and the output file. 0, or 1 after printing why. */
static int replay_setup(replay_run *r, const nn_model *m) {
  r->ticks = malloc(CHUNK * sizeof *r->ticks);
  r->lines = malloc(CHUNK * sizeof *r->lines);
  r->outbuf = malloc(CHUNK * (size_t)ENC_PRED_MAX);
  /* Exact: the same bits as the workers of --threads N > 1, on every CPU (engine.h). */
  if (engine_init_exact(&r->e, m, CHUNK, ENGINE_WAVE) != 0 || !r->ticks || !r->lines ||
      !r->outbuf || reject_hold_init(&r->hold) != 0) {
    fprintf(stderr, "tickcast replay: out of memory\n");
    return 1;
  }
  return replay_open_output(r, m);
}

/* Reads up to CHUNK accepted ticks into the chunk (*N of them), counting rejected lines. Returns
 * tickfile_next's last result: 1 more to read, 0 end of file, negative a read error. */
static int replay_read_chunk(replay_run *r, int *N) {
  char err[512];
  int rc = 0;
  *N = 0;
  while (*N < CHUNK && !reject_hold_full(&r->hold)) {
    eng_tick *t = &r->ticks[*N];
    rc = tickfile_next(&r->tf, &t->t, &t->reason, err, sizeof err);
    if (rc <= 0)
      break;
    r->read++;
    if (t->reason != TICK_OK) { /* no output for it, so it need not go through the engine */
      reject_hold_add(&r->hold, &r->rej, t->reason,
                      (reject_loc){r->src, REJECT_LINE, (int64_t)r->tf.line}, err, *N);
      continue;
    }
    t->partition = -1;
    r->lines[(*N)++] = r->tf.line;
  }
  return rc;
}

/* Steps the chunk's N ticks through the engine and writes their predictions; JSON Lines name
 * their source FILE:LINE. 0, or 1 after printing why. */
static int replay_emit_chunk(replay_run *r, int N) {
  if (engine_process(&r->e, r->ticks, N) != 0) {
    fprintf(stderr, "%stickcast replay: out of memory\n", r->rej.lead);
    return 1;
  }
  size_t src_len = strlen(r->src) > 300 ? 300 : strlen(r->src);
  char *p = r->outbuf;
  for (int i = 0; i < N; i++) {
    eng_tick *t = &r->ticks[i];
    reject_hold_flush(&r->hold, &r->rej, i);
    if (t->reason == TICK_OUT_OF_ORDER) {
      char msg[256];
      tick_ooo_message(msg, sizeof msg, t->t.ts, t->prev_ts, t->t.sym);
      reject_tally_note(&r->rej, TICK_OUT_OF_ORDER,
                        (reject_loc){r->src, REJECT_LINE, (int64_t)r->lines[i]}, msg);
    }
    if (t->reason != TICK_OK)
      continue;
    if (r->jsonl) {
      char src[400];
      memcpy(src, r->src, src_len);
      size_t sl = src_len;
      src[sl++] = ':';
      sl += snprintf(src + sl, sizeof src - sl, "%llu", (unsigned long long)r->lines[i]);
      p += enc_pred_json(p, t, src, sl);
    } else {
      p += enc_pred_csv(p, t);
    }
    *p++ = '\n';
  }
  reject_hold_flush(&r->hold, &r->rej, INT_MAX);
  if (fwrite(r->outbuf, 1, (size_t)(p - r->outbuf), r->out) != (size_t)(p - r->outbuf)) {
    write_failed(r);
    return 1;
  }
  return 0;
}

/* The whole input, chunk by chunk, with the progress bar; then the flush and the summary.
 * 0, or 1 after printing why. */
static int replay_loop(replay_run *r) {
  double t0 = tc_mono_s(), last_bar = 0;
  for (;;) {
    int N, rc = replay_read_chunk(r, &N);
    if (rc < 0) {
      reject_hold_flush(&r->hold, &r->rej, INT_MAX);
      fprintf(stderr, "%stickcast replay: %s:%llu: read error\n", r->rej.lead, r->src,
              (unsigned long long)r->tf.line);
      return 1;
    }
    if (replay_emit_chunk(r, N) != 0)
      return 1;
    if (r->bar && tc_mono_s() - last_bar > 0.2) {
      last_bar = tc_mono_s();
      progress(&r->tf, r->read, t0);
    }
    if (rc == 0)
      break;
  }
  if (fflush(r->out) != 0) {
    write_failed(r);
    return 1;
  }
  if (r->bar)
    fprintf(stderr, "\r\033[K");
  if (!r->quiet)
    summary(&r->rej, r->read, r->e.accepted, r->e.st.live, r->src, tc_mono_s() - t0);
  return 0;
}

/* ---- --threads N > 1: the pipeline of preplay.h, writing what replay_loop writes ---- */

#define PAR_OUTBUF (256 * 1024) /* predictions gathered before a write */

/* Truncating an existing output file makes the kernel free its pages, after waiting for any
 * write-back of them: tens of milliseconds for a large file. On a thread of its own the replay
 * reads and steps meanwhile; the first write waits for it (par_cut_done). Nothing is written to
 * the file before. */
static void *par_cut_main(void *arg) {
  replay_run *r = arg;
  struct stat st;
  int fd = r->cut_fd;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && ftruncate(fd, 0) != 0)
    r->cut_errno = errno ? errno : EIO;
  return NULL;
}

/* Starts truncating the output. 0, or 1 after printing why. */
static int par_cut_start(replay_run *r) {
  if (pthread_create(&r->cutter, NULL, par_cut_main, r) != 0) {
    fprintf(stderr, "tickcast replay: cannot start a thread\n");
    return 1;
  }
  r->cutting = 1;
  return 0;
}

/* Waits for the output to be truncated: 0, or 1 after printing why it could not be. */
static int par_cut_done(replay_run *r) {
  if (!r->cutting)
    return 0;
  pthread_join(r->cutter, NULL);
  r->cutting = 0;
  if (r->cut_errno) {
    fprintf(stderr, "%stickcast replay: %s: cannot truncate: %s\n", r->rej.lead, r->out_path,
            strerror(r->cut_errno));
    return 1;
  }
  return 0;
}

/* Writes the gathered predictions. 0, or 1 after printing why. */
static int par_flush(replay_run *r) {
  if (par_cut_done(r) != 0)
    return 1;
  if (r->outlen && fwrite(r->outbuf, 1, r->outlen, r->out) != r->outlen) {
    write_failed(r);
    return 1;
  }
  r->outlen = 0;
  return 0;
}

static int par_decode(void *ud, int worker, const char *bytes, const preplay_rec *rec, tick *t,
                      int *reason, char *err, size_t errlen) {
  replay_run *r = ud;
  return tickfile_decode(&r->tf, (uint64_t)rec->pos, bytes + rec->off, rec->len, t, reason,
                         &r->seen[worker].s, err, errlen);
}

static int par_route(void *ud, const char *bytes, const preplay_rec *rec, const char **sym,
                     size_t *len) {
  const replay_run *r = ud;
  return tickfile_sym_hint(&r->tf, bytes + rec->off, rec->len, sym, len);
}

static int par_emit(void *ud, const preplay_rec *rec, const char *sym, size_t symlen,
                    const char *text, size_t len) {
  (void)rec, (void)sym, (void)symlen;
  replay_run *r = ud;
  if (r->outlen + len > PAR_OUTBUF && par_flush(r) != 0)
    return 1;
  memcpy(r->outbuf + r->outlen, text, len);
  r->outlen += len;
  return 0;
}

static int par_chunk_done(void *ud) {
  replay_run *r = ud;
  if (par_flush(r) != 0)
    return 1;
  if (r->bar && tc_mono_s() - r->last_bar > 0.2) {
    r->last_bar = tc_mono_s();
    progress(&r->tf, preplay_read(r->pp), r->t0);
  }
  return 0;
}

/* The pipeline and the output file. 0, or 1 after printing why. */
static int par_setup(replay_run *r, const nn_model *m, double interval, double adapt) {
  r->outbuf = malloc(PAR_OUTBUF);
  size_t nseen = 2 * (size_t)r->threads + 1; /* see preplay_decode_fn */
  r->seen = aligned_alloc(64, nseen * sizeof *r->seen);
  if (r->seen)
    memset(r->seen, 0, nseen * sizeof *r->seen);
  const preplay_cfg cfg = {.m = m,
                           .interval = interval,
                           .adapt = adapt,
                           .threads = r->threads,
                           .jsonl = r->jsonl,
                           .src = r->src,
                           .src_max = 300,
                           .rej = &r->rej,
                           .route = par_route,
                           .decode = par_decode,
                           .emit = par_emit,
                           .chunk_done = par_chunk_done,
                           .ud = r};
  if (!r->outbuf || !r->seen || preplay_new(&r->pp, &cfg) != 0) {
    fprintf(stderr, "tickcast replay: out of memory\n");
    return 1;
  }
  return replay_open_output(r, m);
}

/* The whole input through the pipeline; then the flush and the summary, as replay_loop. */
static int par_loop(replay_run *r) {
  r->t0 = tc_mono_s();
  int rc = 1;
  preplay_chunk *c;
  while (rc > 0 && (c = preplay_acquire(r->pp))) {
    rc = preplay_fill_lines(r->pp, c, &r->tf);
    preplay_submit(r->pp, c);
  }
  int prc = preplay_finish(r->pp);
  for (int w = 0; w < r->threads; w++)
    tickfile_ts_merge(&r->tf, &r->seen[w].s);
  if (prc == TC_ENOMEM || rc == TC_ENOMEM) {
    fprintf(stderr, "\ntickcast replay: out of memory\n");
    return 1;
  }
  if (prc != 0) /* emit or chunk_done printed why */
    return 1;
  if (rc < 0) {
    fprintf(stderr, "\ntickcast replay: %s:%llu: read error\n", r->src,
            (unsigned long long)r->tf.line);
    return 1;
  }
  if (par_flush(r) != 0) /* it said why */
    return 1;
  if (fflush(r->out) != 0) {
    write_failed(r);
    return 1;
  }
  if (r->bar)
    fprintf(stderr, "\r\033[K");
  if (!r->quiet)
    summary(&r->rej, preplay_read(r->pp), preplay_accepted(r->pp), preplay_instruments(r->pp),
            r->src, tc_mono_s() - r->t0);
  return 0;
}

/* Closes the output (a failure to is a failure of the replay) and frees r. */
static int replay_close(replay_run *r, int status) {
  if (par_cut_done(r) != 0)
    status = 1;
  if (r->out && r->out != stdout && fclose(r->out) != 0 && status == 0) {
    write_failed(r);
    status = 1;
  }
  engine_free(&r->e);
  preplay_destroy(r->pp);
  free(r->seen);
  free(r->ticks);
  free(r->lines);
  free(r->outbuf);
  reject_hold_free(&r->hold);
  tickfile_close(&r->tf);
  return status;
}

int replay_default_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > PREPLAY_MAX_THREADS ? PREPLAY_MAX_THREADS : (int)n;
}

int cmd_replay(int argc, char **argv) {
  for (int a = 1; a < argc; a++) /* a topic range is cmd_kreplay's, whatever the flag order */
    if (!strncmp(argv[a], "--brokers", 9) || !strncmp(argv[a], "--topic", 7))
      return cmd_kreplay(argc, argv);
  const char *model_path = NULL, *in_path = NULL;
  int ts_unit = TICKFILE_TS_AUTO;
  double interval = 0.9, interval_adapt = IVTRACK_ETA_DEFAULT;
  replay_run r;
  memset(&r, 0, sizeof r);
  r.threads = replay_default_threads();
  const args_flag flags[] = {
      {"ts-unit", ARGS_CHOICE, .dst = &ts_unit, .choices = tickfile_ts_unit_names},
      {"model", ARGS_STR, .dst = &model_path},
      {"input", ARGS_STR, .dst = &in_path},
      {"output", ARGS_STR, .dst = &r.out_path},
      {"threads", ARGS_INT, .dst = &r.threads, .lo = 1, .hi = PREPLAY_MAX_THREADS},
      {"quiet", ARGS_SWITCH, .dst = &r.quiet, .short_name = 'q'},
      ARGS_INTERVAL,
      ARGS_INTERVAL_ADAPT(&interval_adapt),
  };
  const args_cmd c = {.name = "replay",
                      .flags = flags,
                      .nflags = (int)(sizeof flags / sizeof flags[0]),
                      .usage = usage,
                      .unknown = "unknown or incomplete option"};
  int status = args_parse_cmd(&c, argc, argv);
  if (status >= 0)
    return status;
  if (!model_path || !in_path) {
    fprintf(stderr, "tickcast replay: %s is required (see --help)\n",
            !model_path ? "--model" : "--input");
    return 2;
  }
  if (output_is_input(in_path, r.out_path)) {
    fprintf(stderr,
            "tickcast replay: the output (%s) is the input file %s (same device and inode); "
            "refusing to write predictions over the input\n",
            r.out_path ? r.out_path : "stdout", strcmp(in_path, "-") ? in_path : "on stdin");
    return 2;
  }
  if (args_same_file(model_path, r.out_path)) {
    fprintf(stderr,
            "tickcast replay: the output (%s) is the model file %s (same device and inode); "
            "refusing to write predictions over the model\n",
            r.out_path, model_path);
    return 2;
  }
  char err[512];
  nn_model m;
  if (nn_model_load(&m, model_path, err, sizeof err) != 0) {
    fprintf(stderr, "tickcast replay: %s\n", err);
    return 2;
  }
  if (tickfile_open(&r.tf, in_path, err, sizeof err) != 0) {
    fprintf(stderr, "tickcast replay: %s\n", err);
    nn_model_free(&m);
    return 2;
  }
  tickfile_set_ts_unit(&r.tf, ts_unit);
  r.src = strcmp(in_path, "-") ? in_path : "stdin";
  r.jsonl = r.out_path && ends_with(r.out_path, ".jsonl");
  r.bar = !r.quiet && isatty(2);
  reject_tally_init(&r.rej);
  r.rej.quiet = r.quiet;
  r.rej.lead = r.bar ? "\r\033[K" : "";
  if (r.threads > 1) {
    status = par_setup(&r, &m, interval, interval_adapt);
    if (status == 0)
      status = par_loop(&r);
  } else {
    status = replay_setup(&r, &m);
    if (status == 0) {
      engine_set_interval(&r.e, interval);
      engine_set_adapt(&r.e, interval_adapt);
    }
    if (status == 0)
      status = replay_loop(&r);
  }
  if (tickfile_ts_warning(&r.tf, err, sizeof err))
    fprintf(stderr, "%s\n", err);
  status = replay_close(&r, status);
  nn_model_free(&m);
  return status;
}
