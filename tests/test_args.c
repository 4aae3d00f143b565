/* test_args.c: the subcommands' command-line parser (daemon/cmd/args.h): --name VALUE and
 * --name=VALUE, switches and short names, every kind's range check and its error line in both
 * styles, missing values, unknown flags and stray arguments, --help, repeatable flags, and with a
 * kconf: --brokers/-X/--config taken in between, config keys checked against the table, config
 * values for flags the command line did not give (checked the same way). */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "daemon/cmd/args.h"
#include "nn/base/tc_err.h"

static int helped;
static void usage(FILE *f) {
  (void)f;
  helped++;
}

/* What the flags of one test command write. */
typedef struct vals {
  const char *topic, *files[3];
  int nfiles, raw, quiet, chunk, mode, given_chunk;
  double rate;
  int64_t when;
} vals;

static int parse_even(const char *v, void *dst) {
  int x = atoi(v);
  if (x % 2)
    return -1;
  *(int *)dst = x;
  return 0;
}

static const char *const modes[] = {"reset", "keep", "drop", NULL};

/* Parses the NULL-terminated words after the command name into *v; err gets the message. */
static int run(vals *v, kconf *kc, int found_style, char *err, size_t errlen, const char **words) {
  memset(v, 0, sizeof *v);
  v->chunk = 8;
  const args_flag flags[] = {
      {"topic", ARGS_STR, .dst = &v->topic},
      {"input", ARGS_STRS, .dst = v->files, .max = 3, .count = &v->nfiles, .unit = "files"},
      {"raw", ARGS_SWITCH, .dst = &v->raw},
      {"quiet", ARGS_SWITCH, .dst = &v->quiet, .short_name = 'q'},
      {"chunk", ARGS_INT, .dst = &v->chunk, .unit = "messages", .lo = 1, .hi = 64,
       .given = &v->given_chunk},
      {"rate", ARGS_DOUBLE, .dst = &v->rate, .lo = 0, .hi = 10, .open_lo = 1},
      {"mode", ARGS_CHOICE, .dst = &v->mode, .choices = modes},
      {"since", ARGS_FN, .dst = &v->when, .parse = args_time_ns, .unit = "a time"},
      {"even", ARGS_FN, .dst = &v->chunk, .parse = parse_even, .unit = "an even number"},
  };
  const args_cmd c = {.name = "feed",
                      .flags = flags,
                      .nflags = (int)(sizeof flags / sizeof flags[0]),
                      .kc = kc,
                      .usage = usage,
                      .found_style = found_style};
  char *argv[32] = {"feed"};
  int argc = 1;
  while (words[argc - 1])
    argv[argc] = (char *)words[argc - 1], argc++;
  err[0] = 0;
  return args_parse(&c, argc, argv, err, errlen);
}
#define RUN(v, kc, style, ...)                                                                     \
  run(v, kc, style, err, sizeof err, (const char *[]){__VA_ARGS__, NULL})

static void check_values(void) {
  char err[256];
  vals v;
  CHECK_INT(RUN(&v, NULL, 0, "--topic", "t1", "--raw", "-q", "--chunk=16", "--rate", "2.5",
                "--mode", "keep", "--input", "a", "--input=b", "--since", "2024-01-01T00:00:00Z"),
            0);
  CHECK_STR(v.topic, "t1");
  CHECK_INT(v.raw, 1);
  CHECK_INT(v.quiet, 1);
  CHECK_INT(v.chunk, 16);
  CHECK_INT(v.given_chunk, 1);
  CHECK_NEAR(v.rate, 2.5, 0);
  CHECK_INT(v.mode, 1);
  CHECK_INT(v.nfiles, 2);
  CHECK_STR(v.files[1], "b");
  CHECK_INT(v.when, 1704067200000000000LL);
  /* The last value wins; a value may start with '-'; --name= gives the empty string. */
  CHECK_INT(RUN(&v, NULL, 0, "--topic", "a", "--topic", "-b"), 0);
  CHECK_STR(v.topic, "-b");
  CHECK_INT(v.given_chunk, 0);
  CHECK_INT(RUN(&v, NULL, 0, "--topic="), 0);
  CHECK_STR(v.topic, "");
  /* Range edges are inside; the open lower edge of rate is not. */
  CHECK_INT(RUN(&v, NULL, 0, "--chunk", "1"), 0);
  CHECK_INT(RUN(&v, NULL, 0, "--chunk", "64"), 0);
  CHECK_INT(RUN(&v, NULL, 0, "--rate", "10"), 0);
  CHECK_INT(RUN(&v, NULL, 0, "--rate", "0"), TC_EUSAGE);
  helped = 0;
  CHECK_INT(RUN(&v, NULL, 0, "--topic", "x", "-h", "--bogus"), 1);
  CHECK_INT(helped, 1);
  CHECK_INT(RUN(&v, NULL, 0, "--help"), 1);
  CHECK_INT(helped, 2);
}

static void check_errors(void) {
  char err[256];
  vals v;
  CHECK_INT(RUN(&v, NULL, 0, "--chunk", "0"), TC_EUSAGE);
  CHECK_STR(err, "--chunk 0: expected messages in 1..64");
  CHECK_INT(RUN(&v, NULL, 1, "--chunk", "65"), TC_EUSAGE);
  CHECK_STR(err, "--chunk: found '65', expected messages in [1, 64]");
  CHECK_INT(RUN(&v, NULL, 0, "--chunk", "8x"), TC_EUSAGE);
  CHECK_INT(RUN(&v, NULL, 0, "--chunk", ""), TC_EUSAGE);
  CHECK_INT(RUN(&v, NULL, 0, "--chunk", "99999999999999999999"), TC_EUSAGE);
  CHECK_INT(RUN(&v, NULL, 0, "--rate", "0"), TC_EUSAGE);
  CHECK_STR(err, "--rate 0: expected a number in (0, 10]");
  CHECK_INT(RUN(&v, NULL, 1, "--rate", "nan"), TC_EUSAGE);
  CHECK_STR(err, "--rate: found 'nan', expected a number in (0, 10]");
  CHECK_INT(RUN(&v, NULL, 0, "--mode", "maybe"), TC_EUSAGE);
  CHECK_STR(err, "--mode maybe: expected reset, keep or drop");
  CHECK_INT(RUN(&v, NULL, 0, "--since", "yesterday"), TC_EUSAGE);
  CHECK_STR(err, "--since yesterday: expected a time");
  CHECK_INT(RUN(&v, NULL, 1, "--even", "3"), TC_EUSAGE);
  CHECK_STR(err, "--even: found '3', expected an even number");
  CHECK_INT(RUN(&v, NULL, 0, "--input", "a", "--input", "b", "--input", "c", "--input", "d"),
            TC_EUSAGE);
  CHECK_STR(err, "--input: more than 3 files");
  CHECK_INT(RUN(&v, NULL, 0, "--raw", "--topic"), TC_EUSAGE);
  CHECK_STR(err, "--topic: missing value");
  CHECK_INT(RUN(&v, NULL, 0, "--bogus", "1"), TC_EUSAGE);
  CHECK_STR(err, "unknown flag '--bogus' (see tickcast feed --help)");
  CHECK_INT(RUN(&v, NULL, 0, "--top", "x"), TC_EUSAGE); /* no abbreviations */
  CHECK_STR(err, "unknown flag '--top' (see tickcast feed --help)");
  CHECK_INT(RUN(&v, NULL, 0, "--raw=1"), TC_EUSAGE); /* a switch takes no value */
  CHECK_STR(err, "unknown flag '--raw=1' (see tickcast feed --help)");
  CHECK_INT(RUN(&v, NULL, 0, "-x"), TC_EUSAGE);
  CHECK_STR(err, "unknown flag '-x' (see tickcast feed --help)");
  CHECK_INT(RUN(&v, NULL, 0, "--raw", "extra"), TC_EUSAGE);
  CHECK_STR(err, "unexpected argument 'extra' (see tickcast feed --help)");
  CHECK_INT(RUN(&v, NULL, 0, "-"), TC_EUSAGE);
  CHECK_STR(err, "unexpected argument '-' (see tickcast feed --help)");
  /* Without a kconf the Kafka flags are unknown. */
  CHECK_INT(RUN(&v, NULL, 0, "--brokers", "a:1"), TC_EUSAGE);
  CHECK_STR(err, "unknown flag '--brokers' (see tickcast feed --help)");
}

static void check_kconf(void) {
  char err[512], path[] = "/tmp/test_args_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fprintf(f, "brokers=file:1\ntopic=from-file\nchunk=32\nraw=yes\nmode=drop\n");
  fclose(f);
  vals v;
  kconf kc;
  /* Kafka flags in between; the command line beats the file; the rest comes from the file. */
  kconf_init(&kc);
  char cfg[64];
  snprintf(cfg, sizeof cfg, "--config=%s", path);
  CHECK_INT(RUN(&v, &kc, 0, "--topic", "cli", "--brokers", "cli:1", cfg, "-X", "linger.ms=1",
                "--chunk", "4"),
            0);
  CHECK_STR(v.topic, "cli");
  CHECK_STR(kc.brokers, "cli:1");
  CHECK_INT(kc.nprops, 1);
  CHECK_INT(v.chunk, 4);
  CHECK_INT(v.raw, 1);
  CHECK_INT(v.mode, 2);
  kconf_free(&kc);
  /* A config value is checked like a command-line one. */
  f = fopen(path, "w");
  fprintf(f, "chunk=0\n");
  fclose(f);
  kconf_init(&kc);
  CHECK_INT(RUN(&v, &kc, 0, "--config", path), TC_EUSAGE);
  CHECK_STR(err, "--chunk 0: expected messages in 1..64");
  kconf_free(&kc);
  f = fopen(path, "w");
  fprintf(f, "quiet=maybe\n");
  fclose(f);
  kconf_init(&kc);
  CHECK_INT(RUN(&v, &kc, 0, "--config", path), TC_EUSAGE);
  CHECK_STR(err, "quiet=maybe: expected true (or leave it out)");
  kconf_free(&kc);
  /* Config keys must be flags of the table. */
  f = fopen(path, "w");
  fprintf(f, "topic=a\ntpoic=b\n");
  fclose(f);
  kconf_init(&kc);
  CHECK_INT(RUN(&v, &kc, 0, "--config", path), TC_EUSAGE);
  CHECK_CONTAINS(err, ":2: unknown key 'tpoic' (expected one of brokers, topic, input, raw,");
  kconf_free(&kc);
  /* kconf's own errors come through. */
  kconf_init(&kc);
  CHECK_INT(RUN(&v, &kc, 0, "-X", "linger.ms"), TC_EUSAGE);
  CHECK_CONTAINS(err, "-X linger.ms: expected KEY=VALUE");
  CHECK_INT(RUN(&v, &kc, 0, "--raw", "--brokers"), TC_EUSAGE);
  CHECK_STR(err, "--brokers: missing value");
  kconf_free(&kc);
  unlink(path);
}

int main(void) {
  check_values();
  check_errors();
  check_kconf();
  return check_done();
}
