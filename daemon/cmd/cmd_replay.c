/* cmd_replay.c: `tickcast replay`: the model over a tick file (CSV or JSON Lines, '-' = stdin),
 * predictions to a CSV or JSONL file, in input order, in constant memory. Reading a Kafka topic
 * range instead (--brokers/--topic) is cmd_kreplay.c's job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/cmd/args.h"
#include "daemon/cmd/cmds.h"
#include "daemon/pipeline/encode.h"
#include "daemon/pipeline/engine.h"
#include "ingest/reject.h"
#include "ingest/tickfile.h"
#include "nn/base/clock.h"
#include "nn/base/tc_err.h"
#include "nn/model.h"

#define CHUNK 4096 /* ticks per engine call */

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: tickcast replay --model M --input FILE [--output FILE] [--quiet]\n"
      "       tickcast replay --model M --brokers LIST --topic T [range options]   "
      "(see tickcast replay --brokers x --help)\n\n"
      "Runs the model over a tick file (CSV with a header row, or JSON Lines; '-' = stdin)\n"
      "and writes one prediction per accepted tick, in input order: CSV\n"
      "(" ENC_CSV_HEADER ") by default, JSON Lines when the output name ends in .jsonl.\n"
      "Without --output, predictions go to stdout. Rejected lines are counted and reported\n"
      "with their line numbers on stderr; they never stop the replay.\n\n"
      "  --model M      safetensors model file (CONTRACT §4)\n"
      "  --input FILE   tick file, '-' for stdin\n"
      "  --output FILE  prediction file ('-' = stdout)\n"
      "  --quiet        no progress bar and no summary\n"
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

static void summary(const reject_tally *rej, uint64_t read, const engine *e, const char *path,
                    double dt) {
  fprintf(stderr,
          "replay %s: %llu ticks read, %llu accepted, %llu rejected, %u instruments, "
          "%.3f s, %.0f ticks/s\n",
          path, (unsigned long long)read, (unsigned long long)e->accepted,
          (unsigned long long)rej->total, e->st.live, dt, dt > 0 ? read / dt : 0.0);
  reject_tally_summary(rej, stderr, "", 0);
}

int cmd_replay(int argc, char **argv) {
  const char *model_path = NULL, *in_path = NULL, *out_path = NULL;
  int quiet = 0;
  for (int a = 1; a < argc; a++) /* a topic range is kreplay's, whatever the flag order */
    if (!strncmp(argv[a], "--brokers", 9) || !strncmp(argv[a], "--topic", 7))
      return cmd_kreplay(argc, argv);
  const args_flag flags[] = {
      {"model", ARGS_STR, .dst = &model_path},
      {"input", ARGS_STR, .dst = &in_path},
      {"output", ARGS_STR, .dst = &out_path},
      {"quiet", ARGS_SWITCH, .dst = &quiet, .short_name = 'q'},
  };
  const args_cmd c = {.name = "replay",
                      .flags = flags,
                      .nflags = (int)(sizeof flags / sizeof flags[0]),
                      .usage = usage,
                      .unknown = "unknown or incomplete option"};
  char err[512];
  int status = args_parse_cmd(&c, argc, argv);
  if (status >= 0)
    return status;
  if (!model_path || !in_path) {
    fprintf(stderr, "tickcast replay: %s is required (see --help)\n",
            !model_path ? "--model" : "--input");
    return 2;
  }

  nn_model m;
  if (nn_model_load(&m, model_path, err, sizeof err) != 0) {
    fprintf(stderr, "tickcast replay: %s\n", err);
    return 2;
  }
  tickfile tf;
  if (tickfile_open(&tf, in_path, err, sizeof err) != 0) {
    fprintf(stderr, "tickcast replay: %s\n", err);
    nn_model_free(&m);
    return 2;
  }
  status = 1;
  engine e;
  eng_tick *ticks = malloc(CHUNK * sizeof *ticks);
  uint64_t *lines = malloc(CHUNK * sizeof *lines);
  char *outbuf = malloc(CHUNK * (size_t)ENC_PRED_MAX);
  uint64_t read = 0; /* ticks (non-empty lines) read */
  reject_tally rej;
  reject_tally_init(&rej);
  int bar = !quiet && isatty(2);
  rej.quiet = quiet;
  rej.lead = bar ? "\r\033[K" : "";
  FILE *out = stdout;
  int jsonl = out_path && ends_with(out_path, ".jsonl");
  if (engine_init(&e, &m, CHUNK) != 0 || !ticks || !lines || !outbuf) {
    fprintf(stderr, "tickcast replay: out of memory\n");
    goto done;
  }
  if (out_path && strcmp(out_path, "-") != 0 && !(out = fopen(out_path, "w"))) {
    fprintf(stderr, "tickcast replay: %s: cannot open for writing: %m\n", out_path);
    out = NULL;
    goto done;
  }
  if (!jsonl)
    fputs(ENC_CSV_HEADER "\n", out);
  double t0 = tc_mono_s(), last_bar = 0;
  const char *src_name = strcmp(in_path, "-") ? in_path : "stdin";
  size_t src_len = strlen(src_name);
  for (;;) {
    int N = 0, rc = 0;
    while (N < CHUNK) {
      eng_tick *t = &ticks[N];
      rc = tickfile_next(&tf, &t->t, &t->reason, err, sizeof err);
      if (rc <= 0)
        break;
      read++;
      if (t->reason != TICK_OK) { /* no output for it, so it need not go through the engine */
        reject_tally_note(&rej, t->reason, (reject_loc){src_name, REJECT_LINE, (int64_t)tf.line},
                          err);
        continue;
      }
      t->partition = -1;
      lines[N++] = tf.line;
    }
    if (rc < 0) {
      fprintf(stderr, "\ntickcast replay: %s:%llu: read error\n", src_name,
              (unsigned long long)tf.line);
      goto done;
    }
    if (engine_process(&e, ticks, N) != 0) {
      fprintf(stderr, "\ntickcast replay: out of memory\n");
      goto done;
    }
    char *p = outbuf;
    for (int i = 0; i < N; i++) {
      eng_tick *t = &ticks[i];
      if (t->reason == TICK_OUT_OF_ORDER) {
        snprintf(err, sizeof err, "field ts: found %lld, older than the last accepted tick of %s",
                 (long long)t->t.ts, t->t.sym);
        reject_tally_note(&rej, TICK_OUT_OF_ORDER,
                          (reject_loc){src_name, REJECT_LINE, (int64_t)lines[i]}, err);
      }
      if (t->reason != TICK_OK)
        continue;
      if (jsonl) {
        char src[400];
        memcpy(src, src_name, src_len > 300 ? 300 : src_len);
        size_t sl = src_len > 300 ? 300 : src_len;
        src[sl++] = ':';
        sl += snprintf(src + sl, sizeof src - sl, "%llu", (unsigned long long)lines[i]);
        p += enc_pred_json(p, t, src, sl);
      } else {
        p += enc_pred_csv(p, t);
      }
      *p++ = '\n';
    }
    if (fwrite(outbuf, 1, (size_t)(p - outbuf), out) != (size_t)(p - outbuf)) {
      fprintf(stderr, "\ntickcast replay: %s: write failed: %m\n", out_path ? out_path : "stdout");
      goto done;
    }
    if (bar && tc_mono_s() - last_bar > 0.2) {
      last_bar = tc_mono_s();
      progress(&tf, read, t0);
    }
    if (rc == 0)
      break;
  }
  if (fflush(out) != 0) {
    fprintf(stderr, "tickcast replay: %s: write failed: %m\n", out_path ? out_path : "stdout");
    goto done;
  }
  if (bar)
    fprintf(stderr, "\r\033[K");
  if (!quiet)
    summary(&rej, read, &e, src_name, tc_mono_s() - t0);
  status = 0;
done:
  if (out && out != stdout && fclose(out) != 0 && status == 0) {
    fprintf(stderr, "tickcast replay: %s: write failed: %m\n", out_path);
    status = 1;
  }
  engine_free(&e);
  free(ticks);
  free(lines);
  free(outbuf);
  tickfile_close(&tf);
  nn_model_free(&m);
  return status;
}
