/* cmd_train.c: `tickcast train`: flags, loading the tick files, the time split, one training run
 * or a random hyperparameter search (--search), and writing the best model with its metadata.
 * The training loop itself is fit.c; the math is nn/train.c. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/cmd/args.h"
#include "daemon/cmd/cmds.h"
#include "daemon/pipeline/dataset.h"
#include "daemon/pipeline/fit.h"
#include "nn/base/tc_err.h"
#include "nn/model.h"
#include "nn/safetensors/safetensors.h"
#include "nn/train.h"

#define MAX_INPUTS 256

static void usage(FILE *f) {
  fprintf(
      f, "usage: tickcast train --input FILE [--input FILE...] --output M [options]\n\n"
         "Trains the contract network (CONTRACT §2-§4) to predict each tick's next return and\n"
         "writes the best model as safetensors. The last --val-frac of every instrument's ticks\n"
         "is held out for validation (split by time, never shuffled); feature and target\n"
         "statistics come from the training part only. Training stops early when the\n"
         "validation MSE has not improved for --patience epochs. If no epoch beats predicting a\n"
         "zero return (the random walk) on validation by a significant margin (t-statistic of the\n"
         "loss difference >= 2), the saved model predicts exactly zero; otherwise its output is\n"
         "shrunk by the least-squares factor in [0, 1] on validation.\n\n"
         "  --input FILE    tick file (CSV or JSON Lines, '-' = stdin); repeat for more files\n"
         "  --output M      model file to write\n"
         "  --cell C        recurrent cell: lstm (default), gru, rnn (tanh) or rnn_relu,\n"
         "                  PyTorch's nn.LSTM, nn.GRU and nn.RNN\n"
         "  --hidden H      hidden size (default 32)\n"
         "  --layers L      recurrent layers (default 1)\n"
         "  --peephole      add peephole weights w_ci, w_cf, w_co (LSTM only)\n"
         "  --epochs N      most epochs (default 30; for fewer than 20,000 training ticks\n"
         "                  600,000 / ticks, at most 200: small inputs take more passes)\n"
         "  --seq T         truncated-BPTT window in ticks (default 32)\n"
         "  --batch B       sequences per minibatch (default 32, fewer for small inputs so that\n"
         "                  an epoch has at least 8 steps)\n"
         "  --lr X          Adam learning rate (default 0.003)\n"
         "  --clip X        gradient-norm limit, 0 = none (default 1)\n"
         "  --val-frac F    validation fraction per instrument, 0 <= F < 1 (default 0.2)\n"
         "  --patience N    epochs without improvement before stopping (default 5)\n"
         "  --seed S        seed of all randomness; same seed, same input: same model bytes\n"
         "                  (default 1)\n"
         "  --search        random search over hidden, layers, seq and lr on the validation\n"
         "                  split, the trials taking the cells in turn (lstm, gru, rnn_tanh,\n"
         "                  rnn_relu; only --cell's when given); prints a table on stdout (skill\n"
         "                  of the saved model, fit_skill of the trained one before any fallback\n"
         "                  to zero, t of its gain) and keeps the best\n"
         "  --trials N      configurations tried by --search (default 8)\n"
         "  --quiet         no progress on stderr\n"
         "Exit status: 0 done, 1 runtime failure (no usable ticks, cannot write), 2 bad usage or\n"
         "unreadable input.\n");
}

/* --seed: an unsigned 64-bit decimal into *(uint64_t *)dst; 0 or -1. */
static int parse_u64(const char *s, void *dst) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-')
    return -1;
  *(uint64_t *)dst = v;
  return 0;
}

/* --cell: a cell name (nn_cell_parse) into *(int *)dst; 0 or -1. */
static int parse_cell(const char *s, void *dst) {
  int c = nn_cell_parse(s);
  if (c < 0)
    return -1;
  *(int *)dst = c;
  return 0;
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* Writes the metadata that says how the model was made (no clock values: same seed, same bytes). */
static int set_train_meta(nn_model *m, const fit_opts *o, const fit_result *r, double val_frac,
                          const char *const *inputs, int ninputs) {
  char buf[4096], v[64];
  size_t n = 0;
  buf[0] = 0;
  for (int i = 0; i < ninputs && n < sizeof buf - 1; i++)
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? "," : "", base_name(inputs[i]));
  int rc = nn_model_set_meta(m, "tickcast.trained_on", buf);
  /* The cell is named when it is not the LSTM, so that LSTM models keep the bytes they had. */
  char cell[32] = "";
  if (o->cell != NN_CELL_LSTM)
    snprintf(cell, sizeof cell, " cell=%s", nn_cell_name(o->cell));
  snprintf(buf, sizeof buf,
           "hidden=%d layers=%d peephole=%d seq=%d batch=%d lr=%g clip=%g val_frac=%g "
           "patience=%d epochs=%d seed=%llu%s",
           o->H, o->L, o->peephole, o->T, o->B, o->lr, o->clip, val_frac, o->patience, o->epochs,
           (unsigned long long)o->seed, cell);
  rc |= nn_model_set_meta(m, "tickcast.train_args", buf);
  snprintf(v, sizeof v, "%llu", (unsigned long long)o->seed);
  rc |= nn_model_set_meta(m, "tickcast.seed", v);
  snprintf(v, sizeof v, "%.9g", r->val_mse);
  rc |= nn_model_set_meta(m, "tickcast.val_mse", v);
  snprintf(v, sizeof v, "%.9g", r->val_mse_rw);
  rc |= nn_model_set_meta(m, "tickcast.val_mse_rw", v);
  snprintf(v, sizeof v, "%.6f", r->val_mse_rw > 0 ? 1 - r->val_mse / r->val_mse_rw : 0.0);
  rc |= nn_model_set_meta(m, "tickcast.val_skill", v);
  snprintf(v, sizeof v, "%.3f", r->tstat);
  rc |= nn_model_set_meta(m, "tickcast.val_tstat", v);
  snprintf(v, sizeof v, "%.6f", r->scale);
  rc |= nn_model_set_meta(m, "tickcast.output_scale", v);
  snprintf(v, sizeof v, "%d", r->best_epoch);
  rc |= nn_model_set_meta(m, "tickcast.best_epoch", v);
  snprintf(v, sizeof v, "%d", r->epochs_run);
  rc |= nn_model_set_meta(m, "tickcast.epochs", v);
  return rc ? TC_ENOMEM : 0;
}

/* --search: random configurations (seeded), each trained with early stopping; the table goes to
 * stdout. The trials take the cells in turn: all of them, or only base->cell when one_cell (the
 * draws of the other settings do not depend on it). Returns the index of the best trial, its
 * model in *best (the others are freed). */
static int run_search(const dataset *d, const fit_opts *base, int one_cell, int trials,
                      nn_model *best, fit_result *best_res, fit_opts *best_opts, char *err,
                      size_t errlen) {
  static const int Hs[] = {16, 32, 64}, Ls[] = {1, 2}, Ts[] = {16, 32, 64};
  static const double lrs[] = {1e-3, 3e-3, 1e-2};
  nn_rng r;
  nn_rng_seed(&r, base->seed ^ 0x5eed5eed5eedULL);
  int best_i = -1;
  printf("%-5s %-8s %6s %6s %5s %8s %7s %10s %10s %8s %9s %6s %7s\n", "trial", "cell", "hidden",
         "layers", "seq", "lr", "epochs", "val_mse", "rw_mse", "skill", "fit_skill", "t", "sec");
  for (int i = 0; i < trials; i++) {
    fit_opts o = *base;
    o.cell = one_cell ? base->cell : i % NN_CELL_COUNT;
    o.H = Hs[nn_rng_below(&r, 3)];
    o.L = Ls[nn_rng_below(&r, 2)];
    o.T = Ts[nn_rng_below(&r, 3)];
    o.lr = lrs[nn_rng_below(&r, 3)];
    o.seed = base->seed + (uint64_t)i;
    if (o.verbose)
      fprintf(stderr, "search: trial %d/%d: %s, hidden %d, layers %d, seq %d, lr %g\n", i + 1,
              trials, nn_cell_name(o.cell), o.H, o.L, o.T, o.lr);
    nn_model m;
    fit_result res;
    int rc = fit_run(d, &o, &m, &res, stderr, err, errlen);
    if (rc != 0) {
      if (best_i >= 0)
        nn_model_free(best);
      return rc;
    }
    double rw = res.val_mse_rw > 0 ? res.val_mse_rw : 1;
    printf("%-5d %-8s %6d %6d %5d %8g %7d %10.6f %10.6f %+8.4f %+9.4f %6.2f %7.1f\n", i + 1,
           nn_cell_name(o.cell), o.H, o.L, o.T, o.lr, res.epochs_run, res.val_mse, res.val_mse_rw,
           1 - res.val_mse / rw, 1 - res.val_mse_fit / rw, res.tstat, res.seconds);
    fflush(stdout);
    if (best_i < 0 || res.val_mse < best_res->val_mse) {
      if (best_i >= 0)
        nn_model_free(best);
      *best = m;
      *best_res = res;
      *best_opts = o;
      best_i = i;
    } else {
      nn_model_free(&m);
    }
  }
  printf("best: trial %d (%s, hidden %d, layers %d, seq %d, lr %g)\n", best_i + 1,
         nn_cell_name(best_opts->cell), best_opts->H, best_opts->L, best_opts->T, best_opts->lr);
  return 0;
}

/* The command line. */
typedef struct train_opts {
  const char *inputs[MAX_INPUTS]; /* --input, ninputs of them */
  int ninputs;
  const char *out_path;      /* --output */
  double val_frac;           /* --val-frac */
  int search, trials, quiet; /* --search, --trials, --quiet */
  int epochs_set, batch_set; /* --epochs, --batch given (else sized to the data) */
  int cell_set;              /* --cell given (--search then tries only it) */
  fit_opts fit;              /* the rest */
} train_opts;

/* Parses the command line into o. Returns -1 to go on, or the exit status to return at once. */
static int train_parse(train_opts *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->val_frac = 0.2;
  o->trials = 8;
  fit_opts_default(&o->fit);
  fit_opts *f = &o->fit;
  const args_flag flags[] = {
      {"input", ARGS_STRS, .dst = o->inputs, .max = MAX_INPUTS, .count = &o->ninputs,
       .unit = "files"},
      {"output", ARGS_STR, .dst = &o->out_path},
      {"cell", ARGS_FN, .dst = &f->cell, .parse = parse_cell, .given = &o->cell_set,
       .unit = "lstm, gru, rnn (rnn_tanh) or rnn_relu"},
      {"hidden", ARGS_INT, .dst = &f->H, .lo = 1, .hi = 1024},
      {"layers", ARGS_INT, .dst = &f->L, .lo = 1, .hi = NN_MAX_LAYERS},
      {"epochs", ARGS_INT, .dst = &f->epochs, .lo = 0, .hi = 100000, .given = &o->epochs_set},
      {"seed", ARGS_FN, .dst = &f->seed, .parse = parse_u64, .unit = "an unsigned 64-bit integer"},
      {"peephole", ARGS_SWITCH, .dst = &f->peephole},
      {"seq", ARGS_INT, .dst = &f->T, .lo = 1, .hi = 4096},
      {"batch", ARGS_INT, .dst = &f->B, .lo = 1, .hi = 4096, .given = &o->batch_set},
      {"lr", ARGS_DOUBLE, .dst = &f->lr, .lo = 0, .hi = 10, .open_lo = 1},
      {"clip", ARGS_DOUBLE, .dst = &f->clip, .lo = 0, .hi = 1e30},
      {"val-frac", ARGS_DOUBLE, .dst = &o->val_frac, .lo = 0, .hi = 0.99},
      {"patience", ARGS_INT, .dst = &f->patience, .lo = 1, .hi = 100000},
      {"search", ARGS_SWITCH, .dst = &o->search},
      {"trials", ARGS_INT, .dst = &o->trials, .lo = 1, .hi = 1000},
      {"quiet", ARGS_SWITCH, .dst = &o->quiet, .short_name = 'q'},
  };
  const args_cmd c = {.name = "train",
                      .flags = flags,
                      .nflags = (int)(sizeof flags / sizeof flags[0]),
                      .usage = usage,
                      .unknown = "unknown or incomplete option",
                      .found_style = 1};
  int status = args_parse_cmd(&c, argc, argv);
  if (status >= 0)
    return status;
  if (!o->ninputs || !o->out_path) {
    fprintf(stderr, "tickcast train: %s is required (see --help)\n",
            !o->ninputs ? "--input" : "--output");
    return 2;
  }
  if (f->peephole && f->cell != NN_CELL_LSTM) {
    fprintf(stderr, "tickcast train: --peephole is for the LSTM only, not --cell %s\n",
            nn_cell_name(f->cell));
    return 2;
  }
  o->cell_set |= f->peephole; /* peepholes: a search of LSTMs */
  f->verbose = o->quiet ? 0 : isatty(2) ? 2 : 1;
  return -1;
}

/* Loads every input into d (initialized here), prints the summary and splits by time. 0, or the
 * exit status after printing why. */
static int train_load(dataset *d, const train_opts *o) {
  char err[512];
  if (dataset_init(d) != 0) {
    fprintf(stderr, "tickcast train: out of memory\n");
    return 1;
  }
  for (int i = 0; i < o->ninputs; i++) {
    int rc = dataset_load(d, o->inputs[i], !o->quiet, err, sizeof err);
    if (rc != 0) {
      fprintf(stderr, "tickcast train: %s\n", err);
      return rc == TC_ENOMEM ? 1 : 2;
    }
  }
  if (!o->quiet)
    dataset_print_summary(d, "train input");
  dataset_split(d, o->val_frac);
  return 0;
}

/* Sizes epochs and batch to the training targets unless given: small inputs take more passes,
 * and an epoch has at least ~8 steps. 0, or 1 after printing that there is nothing to train on. */
static int train_size(train_opts *o, const dataset *d) {
  uint64_t ntr = 0;
  for (int i = 0; i < d->ns; i++)
    if (d->s[i].ntrain >= 2)
      ntr += d->s[i].ntrain - 1;
  if (ntr == 0) {
    fprintf(stderr,
            "tickcast train: no training targets: %llu accepted ticks in %d instruments "
            "(an instrument needs at least 2 ticks in its training part)\n",
            (unsigned long long)d->accepted, d->ns);
    return 1;
  }
  fit_opts *f = &o->fit;
  if (!o->epochs_set && ntr < 20000) /* early stopping still ends it when nothing improves */
    f->epochs = ntr > 3000 ? (int)(600000 / ntr) : 200;
  uint64_t steps = ntr / ((uint64_t)f->T * 8);
  if (!o->batch_set && steps < (uint64_t)f->B)
    f->B = steps > 1 ? (int)steps : 1;
  return 0;
}

/* One training run or the search into m (*used: the options of the model kept). 0, or 1 after
 * printing why. */
static int train_fit(const dataset *d, const train_opts *o, nn_model *m, fit_result *res,
                     fit_opts *used) {
  char err[512];
  *used = o->fit;
  int rc = o->search ? run_search(d, &o->fit, o->cell_set, o->trials, m, res, used, err, sizeof err)
                     : fit_run(d, &o->fit, m, res, o->quiet ? NULL : stderr, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "tickcast train: %s\n", err);
    return 1;
  }
  return 0;
}

/* Writes m with its metadata to --output. 0, or 1 after printing why. */
static int train_save(nn_model *m, const train_opts *o, const fit_opts *used,
                      const fit_result *res) {
  char err[512];
  if (set_train_meta(m, used, res, o->val_frac, o->inputs, o->ninputs) != 0) {
    fprintf(stderr, "tickcast train: out of memory\n");
    return 1;
  }
  if (nn_model_save(m, o->out_path, err, sizeof err) != 0) {
    fprintf(stderr, "tickcast train: %s\n", err);
    return 1;
  }
  return 0;
}

static void train_report(const train_opts *o, const fit_result *res) {
  if (res->nval == 0)
    fprintf(stderr,
            "train: wrote %s: %d epochs, no validation ticks (--val-frac 0): the last "
            "epoch is kept, %.1f s, %.0f tick-steps/s\n",
            o->out_path, res->epochs_run, res->seconds, res->steps_per_s);
  else
    fprintf(stderr,
            "train: wrote %s: best epoch %d of %d, validation MSE %.6f vs random walk "
            "%.6f (skill %+.4f) on %llu targets, %.1f s, %.0f tick-steps/s%s\n",
            o->out_path, res->best_epoch, res->epochs_run, res->val_mse, res->val_mse_rw,
            res->val_mse_rw > 0 ? 1 - res->val_mse / res->val_mse_rw : 0.0,
            (unsigned long long)res->nval, res->seconds, res->steps_per_s,
            res->fallback ? "; no significant gain over the random walk, so the model "
                            "predicts a zero return"
                          : "");
}

int cmd_train(int argc, char **argv) {
  train_opts o;
  int status = train_parse(&o, argc, argv);
  if (status >= 0)
    return status;
  /* One BLAS thread: the GEMMs are small, and the result must not depend on a thread count. */
  openblas_set_num_threads(1);
  dataset d;
  nn_model m;
  memset(&m, 0, sizeof m);
  fit_result res;
  fit_opts used;
  status = train_load(&d, &o);
  if (status == 0)
    status = train_size(&o, &d);
  if (status == 0) {
    dataset_stats(&d);
    status = train_fit(&d, &o, &m, &res, &used);
  }
  if (status == 0)
    status = train_save(&m, &o, &used, &res);
  if (status == 0 && !o.quiet)
    train_report(&o, &res);
  nn_model_free(&m);
  dataset_free(&d);
  return status;
}
