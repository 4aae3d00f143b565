/* cmd_train.c: `tickcast train`: flags, loading the tick files, the time split (a held-out test
 * part, validation, training), one training run or a random hyperparameter search (--search),
 * the test part's figures once the model is final, and writing the model with its metadata.
 * The training loop itself is fit.c; the math is nn/train.c. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/cmd/args.h"
#include "daemon/cmd/cmds.h"
#include "daemon/pipeline/dataset.h"
#include "daemon/pipeline/evalstat.h"
#include "daemon/pipeline/fit.h"
#include "daemon/pipeline/preplay.h"
#include "daemon/pipeline/score.h"
#include "ingest/tickfile.h"
#include "nn/base/tc_err.h"
#include "nn/blas.h"
#include "nn/features.h"
#include "nn/model.h"
#include "nn/safetensors/safetensors.h"
#include "nn/train.h"

#define MAX_INPUTS 256

/* How the ticks are split: the held-out test part, then validation. */
typedef struct train_split {
  double val_frac;   /* --val-frac: of what is not held out */
  double test_frac;  /* --test-frac */
  int has_test_from; /* --test-from given */
  int64_t test_from; /* --test-from, ns */
} train_split;

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: tickcast train --input FILE [--input FILE...] --output M [options]\n\n"
      "Trains the contract network (CONTRACT §2-§4) to predict each tick's next return and\n"
      "writes the best model as safetensors. With --test-frac or --test-from, the last part of\n"
      "every instrument's ticks is held out as a test part that nothing sees before the model\n"
      "is final; its figures are then written into the model and shown. Of the rest, the last\n"
      "--val-frac is the validation part (split by time, never shuffled) that chooses the\n"
      "epoch (early stopping), the output scale and whether the model beats predicting a zero\n"
      "return (the random walk) by a significant margin (Diebold-Mariano t of the gain >= 2,\n"
      "higher for --search); if not, the saved model predicts exactly zero. Feature and\n"
      "target statistics come from the training part only.\n\n"
      "  --input FILE    tick file (CSV or JSON Lines, '-' = stdin); repeat for more files\n"
      "  --output M      model file to write; checked before the input is read: its\n"
      "                  directory must exist and be writable (or M an existing writable\n"
      "                  device or FIFO), else exit 1 at once\n"
      "  --cell C        recurrent cell: lstm (default), gru, rnn (tanh) or rnn_relu,\n"
      "                  PyTorch's nn.LSTM, nn.GRU and nn.RNN\n"
      "  --test-frac F   hold out the last F of every instrument's ticks, 0 <= F <= 0.99 (default\n"
      "                  0: train on everything, for a model to deploy)\n"
      "  --test-from TS  hold out every tick at ts >= TS (integer ns or RFC 3339); with\n"
      "                  --test-frac, whichever holds out more\n"
      "  --val-frac F    validation fraction of what is not held out, 0 <= F <= 0.99 (default\n"
      "                  0.2)\n"
      "  --hidden H      hidden size (default 32)\n"
      "  --layers L      recurrent layers (default 1)\n"
      "  --peephole      add peephole weights w_ci, w_cf, w_co (LSTM only)\n"
      "  --head H        mean (default): the next return's mean; gauss: also its\n"
      "                  log-variance (the scale head), both trained by Gaussian negative\n"
      "                  log-likelihood, so that predictions carry pred_std and an interval\n"
      "  --epochs N      most epochs (default 30; for fewer than 20,000 training ticks\n"
      "                  600,000 / ticks, at most 200: small inputs take more passes)\n"
      "  --seq T         truncated-BPTT window in ticks (default 32)\n"
      "  --batch B       sequences per minibatch (default 32, fewer for small inputs so that\n"
      "                  an epoch has at least 8 steps, 32 with --head gauss)\n"
      "  --lr X          Adam learning rate (default 0.003; 0.001 with --head gauss)\n"
      "  --clip X        gradient-norm limit, 0 = none (default 1)\n"
      "  --patience N    epochs without improvement before stopping (default 5; 20 with\n"
      "                  --head gauss)\n"
      "  --seed S        seed of all randomness; same seed, same input: same model bytes\n"
      "                  (default 1)\n"
      "  --search        random search over hidden, layers, seq and lr on the validation\n"
      "                  part, the trials taking the cells in turn (lstm, gru, rnn_tanh,\n"
      "                  rnn_relu; only --cell's when given); prints a table on stdout (skill\n"
      "                  of the saved model, fit_skill of the trained one before any fallback\n"
      "                  to zero, t of its gain) and keeps the best. Each trial must reach the\n"
      "                  t that keeps the level of a single run over all the trials (Sidak):\n"
      "                  2.52 for 4, 2.76 for 8\n"
      "  --trials N      configurations tried by --search (default 8); only with --search\n"
      "  --threads N     threads (default: the online cores): the input is decoded on them,\n"
      "                  every minibatch runs as shards\n"
      "                  of at most 16 sequences and validation as shards of instruments, at\n"
      "                  once, summed in a fixed order; --search trains trials at once (threads\n"
      "                  beyond the trials go to their shards). The model, the progress and\n"
      "                  the table are the same for every N but for their timings\n"
      "  --ts-unit U     integer timestamps in the files are s, ms, us or ns (default ns,\n"
      "                  with a warning when they look like another unit)\n"
      "  --max-memory MiB  most memory for the input's ticks (default: half of this\n"
      "                  machine's; about 200 bytes a tick, an instrument at least 16\n"
      "                  ticks): past it, exit 1 naming the line\n"
      "  --quiet         only errors and warnings on stderr: no progress, input summary,\n"
      "                  rejected lines or final report\n"
      "Exit status: 0 done, 1 runtime failure (no usable ticks, past --max-memory, cannot write),\n"
      "2 bad usage or unreadable input.\n");
}

/* --cell: a cell name (nn_cell_parse) into *(int *)dst; 0 or -1. */
static int parse_cell(const char *s, void *dst) {
  int c = nn_cell_parse(s);
  if (c < 0)
    return -1;
  *(int *)dst = c;
  return 0;
}

/* --head: the output heads, by fit_opts.gauss. */
static const char *const head_names[] = {"mean", "gauss", NULL};

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* The held-out test part's figures (score_fig) of the final model, computed before saving. */
typedef struct test_figs {
  int has;     /* a test part with at least one scored prediction */
  score_fig f; /* its figures, pooled over instruments */
} test_figs;

/* Sets key to printf(fmt, ...); 0 or TC_ENOMEM. */
static int meta_printf(nn_model *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int meta_printf(nn_model *m, const char *key, const char *fmt, ...) {
  char v[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(v, sizeof v, fmt, ap);
  va_end(ap);
  return nn_model_set_meta(m, key, v) ? TC_ENOMEM : 0;
}

/* tickcast.ranges: per instrument, the ticks of each part and the time range the model saw
 * (training and validation): {"SYM":{"train":N,"val":N,"test":N,"from":TS,"val_from":TS,"to":TS}},
 * times in integer ns; from/val_from/to absent when the part is empty. eval reads it. */
static int set_ranges_meta(nn_model *m, const dataset *d) {
  json_t *o = json_object();
  for (int i = 0; o && i < d->ns; i++) {
    const ds_series *s = &d->s[i];
    json_t *e = json_object();
    json_object_set_new(e, "train", json_integer((json_int_t)s->ntrain));
    json_object_set_new(e, "val", json_integer((json_int_t)(s->nfit - s->ntrain)));
    json_object_set_new(e, "test", json_integer((json_int_t)(s->n - s->nfit)));
    if (s->nfit > 0) {
      json_object_set_new(e, "from", json_integer(s->ts[0]));
      if (s->nfit > s->ntrain)
        json_object_set_new(e, "val_from", json_integer(s->ts[s->ntrain]));
      json_object_set_new(e, "to", json_integer(s->ts[s->nfit - 1]));
    }
    json_object_set_new(o, s->sym, e);
  }
  char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  int rc = txt ? nn_model_set_meta(m, "tickcast.ranges", txt) : TC_ENOMEM;
  free(txt);
  json_decref(o);
  return rc ? TC_ENOMEM : 0;
}

/* tickcast.test_*: the held-out part's figures, or test_n 0 when nothing was held out. */
static int set_test_meta(nn_model *m, const test_figs *t) {
  const score_fig *f = &t->f;
  int rc = meta_printf(m, "tickcast.test_n", "%llu", t->has ? (unsigned long long)f->n : 0ULL);
  if (!t->has)
    return rc;
  rc |= meta_printf(m, "tickcast.test_mse", "%.9g", f->mse);
  rc |= meta_printf(m, "tickcast.test_mse_rw", "%.9g", f->mse_rw);
  rc |= meta_printf(m, "tickcast.test_skill", "%.6f", f->skill);
  if (f->has_ci)
    rc |= meta_printf(m, "tickcast.test_skill_ci", "%.6f,%.6f", f->ci.lo, f->ci.hi);
  if (f->has_dm)
    rc |= meta_printf(m, "tickcast.test_dm_p", "%.4g", f->dm.p_hln);
  if (f->dir.n > 0) { /* the zero model calls no direction */
    rc |= meta_printf(m, "tickcast.test_dir_acc", "%.6f", f->dir.acc);
    rc |= meta_printf(m, "tickcast.test_dir_base", "%.6f", f->dir.base);
  }
  return rc;
}

/* Writes the metadata that says how the model was made (no clock values: same seed, same bytes). */
static int set_train_meta(nn_model *m, const fit_opts *o, const fit_result *r,
                          const train_split *sp, int trials, const char *const *inputs,
                          int ninputs) {
  char buf[4096];
  size_t n = 0;
  buf[0] = 0;
  for (int i = 0; i < ninputs && n < sizeof buf - 1; i++)
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? "," : "", base_name(inputs[i]));
  int rc = nn_model_set_meta(m, "tickcast.trained_on", buf);
  char from[48] = "";
  if (sp->has_test_from)
    snprintf(from, sizeof from, " test_from=%lld", (long long)sp->test_from);
  /* The cell is named when it is not the LSTM and the head when it is gauss, so that LSTM models
   * with the mean head keep the bytes they had. */
  char cell[48] = "";
  if (o->cell != NN_CELL_LSTM)
    snprintf(cell, sizeof cell, " cell=%s", nn_cell_name(o->cell));
  if (o->gauss)
    snprintf(cell + strlen(cell), sizeof cell - strlen(cell), " head=gauss");
  snprintf(buf, sizeof buf,
           "hidden=%d layers=%d peephole=%d seq=%d batch=%d lr=%g clip=%g val_frac=%g "
           "test_frac=%g%s patience=%d epochs=%d seed=%llu%s",
           o->H, o->L, o->peephole, o->T, o->B, o->lr, o->clip, sp->val_frac, sp->test_frac, from,
           o->patience, o->epochs, (unsigned long long)o->seed, cell);
  rc |= nn_model_set_meta(m, "tickcast.train_args", buf);
  rc |= meta_printf(m, "tickcast.seed", "%llu", (unsigned long long)o->seed);
  rc |= meta_printf(m, "tickcast.val_mse", "%.9g", r->val_mse);
  rc |= meta_printf(m, "tickcast.val_mse_rw", "%.9g", r->val_mse_rw);
  rc |= meta_printf(m, "tickcast.val_skill", "%.6f",
                    r->val_mse_rw > 0 ? 1 - r->val_mse / r->val_mse_rw : 0.0);
  rc |= meta_printf(m, "tickcast.val_fit_skill", "%.6f",
                    r->val_mse_rw > 0 ? 1 - r->val_mse_fit / r->val_mse_rw : 0.0);
  rc |= meta_printf(m, "tickcast.val_tstat", "%.3f", r->tstat);
  rc |= meta_printf(m, "tickcast.val_t_min", "%.3f", o->min_t);
  rc |= meta_printf(m, "tickcast.trials", "%d", trials);
  rc |= meta_printf(m, "tickcast.output_scale", "%.6f", r->scale);
  rc |= meta_printf(m, "tickcast.best_epoch", "%d", r->best_epoch);
  rc |= meta_printf(m, "tickcast.epochs", "%d", r->epochs_run);
  if (o->gauss && r->nval > 0) {
    rc |= meta_printf(m, "tickcast.val_nll", "%.9g", r->val_nll);
    rc |= meta_printf(m, "tickcast.val_nll_const", "%.9g", r->val_nll_const);
    rc |= meta_printf(m, "tickcast.var_scale", "%.6f", r->var_scale);
    rc |= meta_printf(m, "tickcast.var_shift", "%.6f", r->var_shift);
  }
  return rc ? TC_ENOMEM : 0;
}

/* One trial of --search: its configuration, and once run its model, figures and log. */
typedef struct trial {
  fit_opts o;
  int i, n; /* trial i of n, from 0 */
  nn_model m;
  fit_result res;
  int rc;        /* fit_run's */
  int done;      /* under search_pool.mu */
  char err[512]; /* when rc != 0 */
  char *log;     /* what it printed (threads > 1: printed by the caller in trial order) */
  size_t loglen;
} trial;

typedef struct search_pool {
  const dataset *d;
  trial *t;
  int n;
  int next; /* the next trial to claim (under mu) */
  int stop; /* a trial failed: claim no more (under mu) */
  pthread_mutex_t mu;
  pthread_cond_t cv; /* a trial is done */
} search_pool;

static void trial_run(const dataset *d, trial *t, FILE *log) {
  if (t->o.verbose)
    fprintf(log, "search: trial %d/%d: %s, hidden %d, layers %d, seq %d, lr %g\n", t->i + 1, t->n,
            nn_cell_name(t->o.cell), t->o.H, t->o.L, t->o.T, t->o.lr);
  t->rc = fit_run(d, &t->o, &t->m, &t->res, log, t->err, sizeof t->err);
}

/* A worker: claims trials in order and runs each into its own log. */
static void *trial_worker(void *arg) {
  search_pool *p = arg;
  for (;;) {
    pthread_mutex_lock(&p->mu);
    int i = p->stop ? p->n : p->next++;
    pthread_mutex_unlock(&p->mu);
    if (i >= p->n)
      return NULL;
    trial *t = &p->t[i];
    FILE *log = open_memstream(&t->log, &t->loglen);
    if (!log) {
      t->rc = TC_ENOMEM;
      snprintf(t->err, sizeof t->err, "out of memory for trial %d's log", i + 1);
    } else {
      trial_run(p->d, t, log);
      fclose(log);
    }
    pthread_mutex_lock(&p->mu);
    t->done = 1;
    p->stop |= t->rc != 0;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
}

/* The configurations of the trials, drawn in trial order from base's seed: the same whatever
 * the number of threads. The trials take the cells in turn: all of them, or only base->cell when
 * one_cell (the draws of the other settings do not depend on it). */
static void draw_trials(trial *t, int trials, const fit_opts *base, int one_cell, int threads) {
  static const int Hs[] = {16, 32, 64}, Ls[] = {1, 2}, Ts[] = {16, 32, 64};
  static const double lrs[] = {1e-3, 3e-3, 1e-2};
  nn_rng r;
  nn_rng_seed(&r, base->seed ^ 0x5eed5eed5eedULL);
  for (int i = 0; i < trials; i++) {
    fit_opts *o = &t[i].o;
    t[i].i = i, t[i].n = trials;
    *o = *base;
    o->cell = one_cell ? base->cell : i % NN_CELL_COUNT;
    o->H = Hs[nn_rng_below(&r, 3)];
    o->L = Ls[nn_rng_below(&r, 2)];
    o->T = Ts[nn_rng_below(&r, 3)];
    o->lr = lrs[nn_rng_below(&r, 3)];
    o->seed = base->seed + (uint64_t)i;
    o->min_t = fit_min_t(trials);
    if (threads > 1 && o->verbose > 1) /* no progress bar inside a log printed later */
      o->verbose = 1;
  }
}

/* Runs the trials on threads workers (1: on this thread, its log straight to stderr); the
 * caller gets them in trial order through trial_wait. */
static void trial_wait(search_pool *p, int i) {
  pthread_mutex_lock(&p->mu);
  while (!p->t[i].done)
    pthread_cond_wait(&p->cv, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

/* --search: random configurations (seeded), each trained with early stopping, on up to threads
 * threads at once; the table goes to stdout in trial order, each trial's log to stderr before its
 * row. Every trial is the same computation whatever the thread count (its own seed, model and
 * scratch), and the best is chosen in trial order, so the model kept is the same bytes for any
 * threads. Returns 0 with the best trial's model in *best (the others are freed), or the first
 * failing trial's code with err. */
static int run_search(const dataset *d, const fit_opts *base, int one_cell, int trials, int threads,
                      nn_model *best, fit_result *best_res, fit_opts *best_opts, char *err,
                      size_t errlen) {
  /* Trials run side by side; threads left over when there are fewer trials than threads go to
   * the shards inside each trial (the same floats for any split). */
  int inner = threads > trials ? threads / trials : 1;
  if (threads > trials)
    threads = trials;
  search_pool p = {.d = d, .n = trials, .t = calloc((size_t)trials, sizeof(trial))};
  pthread_t *tid = threads > 1 ? calloc((size_t)threads, sizeof *tid) : NULL;
  if (!p.t || (threads > 1 && !tid)) {
    free(p.t), free(tid);
    snprintf(err, errlen, "out of memory for %d trials", trials);
    return TC_ENOMEM;
  }
  draw_trials(p.t, trials, base, one_cell, threads);
  for (int i = 0; i < trials; i++)
    p.t[i].o.threads = inner;
  pthread_mutex_init(&p.mu, NULL);
  pthread_cond_init(&p.cv, NULL);
  int started = 0;
  for (; threads > 1 && started < threads; started++)
    if (pthread_create(&tid[started], NULL, trial_worker, &p) != 0)
      break;
  double min_t = fit_min_t(trials);
  printf("search: %d trials; a trial keeps a non-zero model when the t of its validation gain is "
         ">= %.2f (Sidak: the level of t >= 2, %.4f, over all %d trials)\n",
         trials, min_t, 2 * evalstat_norm_sf(FIT_MIN_T), trials);
  if (base->verbose)
    fprintf(stderr, "search: %d trials on %d threads\n", trials, started ? started : 1);
  printf("%-5s %-8s %6s %6s %5s %8s %7s %10s %10s %8s %9s %6s %7s\n", "trial", "cell", "hidden",
         "layers", "seq", "lr", "epochs", "val_mse", "rw_mse", "skill", "fit_skill", "t", "sec");
  fflush(stdout);
  int best_i = -1, rc = 0;
  for (int i = 0; i < trials; i++) {
    trial *t = &p.t[i];
    if (!started) { /* one thread: run it here */
      trial_run(d, t, stderr);
      t->done = 1;
    } else {
      trial_wait(&p, i);
      if (t->log)
        fwrite(t->log, 1, t->loglen, stderr);
    }
    if ((rc = t->rc) != 0) {
      snprintf(err, errlen, "%s", t->err);
      break;
    }
    const fit_opts *o = &t->o;
    const fit_result *res = &t->res;
    double rw = res->val_mse_rw > 0 ? res->val_mse_rw : 1;
    printf("%-5d %-8s %6d %6d %5d %8g %7d %10.6f %10.6f %+8.4f %+9.4f %6.2f %7.1f\n", i + 1,
           nn_cell_name(o->cell), o->H, o->L, o->T, o->lr, res->epochs_run, res->val_mse,
           res->val_mse_rw, 1 - res->val_mse / rw, 1 - res->val_mse_fit / rw, res->tstat,
           res->seconds);
    fflush(stdout);
    if (best_i < 0 || res->val_mse < p.t[best_i].res.val_mse)
      best_i = i;
  }
  for (int k = 0; k < started; k++)
    pthread_join(tid[k], NULL);
  for (int i = 0; i < trials; i++) {
    trial *t = &p.t[i];
    if (t->done && t->rc == 0 && (rc != 0 || i != best_i))
      nn_model_free(&t->m);
    free(t->log);
  }
  if (rc == 0) {
    *best = p.t[best_i].m;
    *best_res = p.t[best_i].res;
    *best_opts = p.t[best_i].o;
    printf("best: trial %d (%s, hidden %d, layers %d, seq %d, lr %g)\n", best_i + 1,
           nn_cell_name(best_opts->cell), best_opts->H, best_opts->L, best_opts->T, best_opts->lr);
  }
  pthread_mutex_destroy(&p.mu);
  pthread_cond_destroy(&p.cv);
  free(p.t), free(tid);
  return rc;
}

/* The command line. */
typedef struct train_opts {
  const char *inputs[MAX_INPUTS]; /* --input, ninputs of them */
  int ninputs;
  const char *out_path;      /* --output */
  train_split split;         /* --val-frac, --test-frac, --test-from */
  int ts_unit;               /* --ts-unit (enum tickfile_ts_unit) */
  int max_memory;            /* --max-memory MiB for the input (0: half of the machine's) */
  int search, trials, quiet; /* --search, --trials, --quiet */
  int trials_set;            /* --trials given (only with --search) */
  int threads;               /* --threads: the shards of each step and of validation, or trials
                                of --search, at once */
  int epochs_set, batch_set; /* --epochs, --batch given (else sized to the data) */
  int patience_set, lr_set;  /* --patience, --lr given (else 5 and 0.003; 20 and 0.001 with
                                --head gauss) */
  int cell_set;              /* --cell given (--search then tries only it) */
  fit_opts fit;              /* the rest */
} train_opts;

/* Parses the command line into o. Returns -1 to go on, or the exit status to return at once. */
static int train_parse(train_opts *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->split.val_frac = 0.2;
  o->ts_unit = TICKFILE_TS_AUTO;
  o->trials = 8;
  o->threads = replay_default_threads();
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
      {"seed", ARGS_FN, .dst = &f->seed, .parse = args_u64, .unit = "an unsigned 64-bit integer"},
      {"peephole", ARGS_SWITCH, .dst = &f->peephole},
      {"head", ARGS_CHOICE, .dst = &f->gauss, .choices = head_names},
      {"seq", ARGS_INT, .dst = &f->T, .lo = 1, .hi = 4096},
      {"batch", ARGS_INT, .dst = &f->B, .lo = 1, .hi = 4096, .given = &o->batch_set},
      {"lr", ARGS_DOUBLE, .dst = &f->lr, .lo = 0, .hi = 10, .open_lo = 1, .given = &o->lr_set},
      {"clip", ARGS_DOUBLE, .dst = &f->clip, .lo = 0, .hi = 1e30},
      {"val-frac", ARGS_DOUBLE, .dst = &o->split.val_frac, .lo = 0, .hi = 0.99},
      {"test-frac", ARGS_DOUBLE, .dst = &o->split.test_frac, .lo = 0, .hi = 0.99},
      {"test-from", ARGS_FN, .dst = &o->split.test_from, .parse = args_time_ns,
       .given = &o->split.has_test_from,
       .unit = "integer nanoseconds or an RFC 3339 time like 2020-01-01T00:00:00Z"},
      {"ts-unit", ARGS_CHOICE, .dst = &o->ts_unit, .choices = tickfile_ts_unit_names},
      {"max-memory", ARGS_INT, .dst = &o->max_memory, .unit = "MiB", .lo = 1, .hi = 1 << 30},
      {"patience", ARGS_INT, .dst = &f->patience, .lo = 1, .hi = 100000, .given = &o->patience_set},
      {"search", ARGS_SWITCH, .dst = &o->search},
      {"trials", ARGS_INT, .dst = &o->trials, .lo = 1, .hi = 1000, .given = &o->trials_set},
      {"threads", ARGS_INT, .dst = &o->threads, .lo = 1, .hi = PREPLAY_MAX_THREADS},
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
  for (int i = 0; i < o->ninputs; i++)
    if (args_same_file(o->inputs[i], o->out_path)) {
      fprintf(stderr,
              "tickcast train: --output %s is the input file %s (same device and inode); "
              "refusing to write the model over the input\n",
              o->out_path, o->inputs[i]);
      return 2;
    }
  int nstdin = 0;
  for (int i = 0; i < o->ninputs; i++)
    nstdin += !strcmp(o->inputs[i], "-");
  if (nstdin > 1) {
    fprintf(stderr,
            "tickcast train: --input -: found %d times, expected at most once (standard input "
            "can be read only once)\n",
            nstdin);
    return 2;
  }
  if (f->peephole && f->cell != NN_CELL_LSTM) {
    fprintf(stderr, "tickcast train: --peephole is for the LSTM only, not --cell %s\n",
            nn_cell_name(f->cell));
    return 2;
  }
  if (o->trials_set && !o->search) {
    fprintf(stderr,
            "tickcast train: --trials %d without --search: --trials is the number of "
            "configurations --search tries, expected --search with it\n",
            o->trials);
    return 2;
  }
  o->cell_set |= f->peephole; /* peepholes: a search of LSTMs */
  /* An output that cannot be written fails now, as it would after training (exit 1). */
  char err[512];
  if (args_output_check("output", o->out_path, ARGS_OUT_RENAME, err, sizeof err) != 0) {
    fprintf(stderr, "tickcast train: %s\n", err);
    return 1;
  }
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
  d->ts_unit = o->ts_unit;
  d->max_bytes = dataset_memory_bound(o->max_memory);
  d->threads = o->threads;
  for (int i = 0; i < o->ninputs; i++) {
    int rc = dataset_load(d, o->inputs[i], !o->quiet, err, sizeof err);
    if (rc != 0) {
      fprintf(stderr, "tickcast train: %s\n", err);
      return rc == TC_ENOMEM || rc == TC_ERANGE ? 1 : 2;
    }
  }
  if (!o->quiet)
    dataset_print_summary(d, "train input");
  dataset_hold_out(d, o->split.test_frac, o->split.has_test_from, o->split.test_from);
  dataset_split(d, o->split.val_frac);
  return 0;
}

/* The figures of the final model m on the held-out test parts of d: the predictions made at
 * ticks [nfit, n - 1) of every series, as `eval --test` scores them, on threads threads (the same
 * figures for any number). 0 or TC_ENOMEM. */
static int train_test(const dataset *d, const nn_model *m, int threads, test_figs *t) {
  memset(t, 0, sizeof *t);
  size_t np = 0;
  for (int i = 0; i < d->ns; i++)
    if (d->s[i].n > d->s[i].nfit + 1)
      np += d->s[i].n - d->s[i].nfit - 1;
  if (np == 0)
    return 0;
  double **pred = calloc((size_t)d->ns, sizeof *pred);
  score_pt *pts = malloc(np * sizeof *pts);
  int rc = pred && pts ? 0 : TC_ENOMEM;
  for (int i = 0; rc == 0 && i < d->ns; i++)
    if (!(pred[i] = malloc((d->s[i].n ? d->s[i].n : 1) * sizeof **pred)))
      rc = TC_ENOMEM;
  if (rc == 0)
    rc = score_predict_threads(m, d, pred, threads);
  size_t k = 0;
  for (int i = 0; rc == 0 && i < d->ns; i++) {
    const ds_series *s = &d->s[i];
    for (size_t p = s->nfit; p + 1 < s->n; p++)
      pts[k++] = (score_pt){s->ts[p], i, pred[i][p], s->raw[(p + 1) * NN_F], 0};
  }
  if (rc == 0)
    rc = score_sort(pts, np);
  if (rc == 0)
    rc = score_figures(pts, np, d->ns, &t->f);
  t->has = rc == 0;
  for (int i = 0; pred && i < d->ns; i++)
    free(pred[i]);
  free(pred), free(pts);
  return rc;
}

/* Sizes epochs and batch to the training targets unless given (small inputs take more passes,
 * and an epoch has at least ~8 steps), and the trials of --search at once to the memory bound. 0,
 * or 1 after printing that there is nothing to train on. */
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
  /* Every trial at once holds its own training arrays: no more at once than the bound allows. */
  uint64_t n = d->accepted ? d->accepted : 1, used = d->charged * DATASET_TICK_BYTES;
  uint64_t more = d->max_bytes > used ? (d->max_bytes - used) / (n * DATASET_TRIAL_BYTES) : 0;
  if (d->max_bytes && o->search && o->threads > 1 && (uint64_t)o->threads > 1 + more) {
    if (!o->quiet)
      fprintf(stderr,
              "train: --search on %d threads instead of %d: each trial at once holds about %d "
              "bytes a tick more, and the memory bound of %llu MiB allows %d\n",
              (int)(1 + more), o->threads, DATASET_TRIAL_BYTES,
              (unsigned long long)(d->max_bytes >> 20), (int)(1 + more));
    o->threads = (int)(1 + more);
  }
  fit_opts *f = &o->fit;
  if (!o->epochs_set && ntr < 20000) /* early stopping still ends it when nothing improves */
    f->epochs = ntr > 3000 ? (int)(600000 / ntr) : 200;
  /* The scale head learns from squared returns, a far noisier signal than the mean's: it takes
   * at least 32 smaller steps an epoch and 20 epochs of patience (its validation NLL is noisy
   * too). */
  uint64_t steps = ntr / ((uint64_t)f->T * (f->gauss ? 32 : 8));
  if (!o->batch_set && steps < (uint64_t)f->B)
    f->B = steps > 1 ? (int)steps : 1;
  if (f->gauss && !o->patience_set)
    f->patience = 20;
  if (f->gauss && !o->lr_set)
    f->lr = 1e-3;
  return 0;
}

/* One training run or the search into m (*used: the options of the model kept). 0, or 1 after
 * printing why. */
static int train_fit(const dataset *d, const train_opts *o, nn_model *m, fit_result *res,
                     fit_opts *used) {
  char err[512];
  *used = o->fit;
  fit_opts one = o->fit;
  one.threads = o->threads;
  int rc = o->search ? run_search(d, &o->fit, o->cell_set, o->trials, o->threads, m, res, used, err,
                                  sizeof err)
                     : fit_run(d, &one, m, res, o->quiet ? NULL : stderr, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "tickcast train: %s\n", err);
    return 1;
  }
  return 0;
}

/* Writes m with its metadata to --output. 0, or 1 after printing why. */
static int train_save(nn_model *m, const train_opts *o, const fit_opts *used, const fit_result *res,
                      const dataset *d, const test_figs *t) {
  char err[512];
  if (set_train_meta(m, used, res, &o->split, o->search ? o->trials : 1, o->inputs, o->ninputs) !=
          0 ||
      set_ranges_meta(m, d) != 0 || set_test_meta(m, t) != 0) {
    fprintf(stderr, "tickcast train: out of memory\n");
    return 1;
  }
  if (nn_model_save(m, o->out_path, err, sizeof err) != 0) {
    fprintf(stderr, "tickcast train: %s\n", err);
    return 1;
  }
  return 0;
}

static void train_report(const train_opts *o, const fit_result *res, const test_figs *t) {
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
  const score_fig *f = &t->f;
  if (!t->has)
    fprintf(stderr, "train: no test part held out (--test-frac, --test-from): score the model "
                    "with `tickcast eval` on data it has not seen\n");
  else if (f->has_ci && f->has_dm)
    fprintf(stderr,
            "train: held-out test part (never trained, validated or chosen on): skill %+.5f, "
            "95%% interval [%+.5f, %+.5f], Diebold-Mariano p %.3g, %llu predictions\n",
            f->skill, f->ci.lo, f->ci.hi, f->dm.p_hln, (unsigned long long)f->n);
  else
    fprintf(stderr, "train: held-out test part: %llu predictions, too few for figures\n",
            (unsigned long long)f->n);
}

int cmd_train(int argc, char **argv) {
  train_opts o;
  int status = train_parse(&o, argc, argv);
  if (status >= 0)
    return status;
  /* One BLAS thread: the GEMMs are small, and the result must not depend on a thread count.
   * Loading OpenBLAS sets it unless OPENBLAS_NUM_THREADS is in the environment, and stops
   * OpenBLAS's workers (nn/blas.c): setting the count again would start them again (OpenBLAS
   * rebuilds its pool on the next call after a shutdown, as after a fork), and the new worker spun
   * for 0.1 s of CPU while the input loaded. */
  char err[320];
  if (nn_blas_load(err, sizeof err) != 0) {
    fprintf(stderr, "tickcast train: %s\n", err);
    return 1;
  }
  if (nn_blas_threads() != 1)
    nn_blas_set_threads(1);
  dataset d;
  nn_model m;
  memset(&m, 0, sizeof m);
  fit_result res;
  fit_opts used;
  test_figs tf;
  status = train_load(&d, &o);
  if (status == 0)
    status = train_size(&o, &d);
  if (status == 0) {
    dataset_stats(&d);
    status = train_fit(&d, &o, &m, &res, &used);
  }
  if (status == 0 && train_test(&d, &m, o.threads, &tf) != 0) {
    fprintf(stderr, "tickcast train: out of memory while scoring the test part\n");
    status = 1;
  }
  if (status == 0)
    status = train_save(&m, &o, &used, &res, &d, &tf);
  if (status == 0 && !o.quiet)
    train_report(&o, &res, &tf);
  if (status == 0 && o.search && args_stdout_done("train") != 0) /* the trials' table */
    status = 1;
  nn_model_free(&m);
  dataset_free(&d);
  return status;
}
