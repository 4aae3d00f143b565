/* args.h: the one command-line parser of the subcommands. A command describes its flags in a
 * table (name, kind, destination, range); args_parse takes --name VALUE and --name=VALUE, -h and
 * --help, and, for commands that talk to Kafka, the common flags of kconf.h (--brokers, -X,
 * --config) with config-file values for every flag of the table that the command line did not
 * give. Errors are one line naming the flag, what was found and what was expected.
 * Not for rules across flags (required, mutually exclusive): each command checks those after. */
#ifndef DAEMON_CMD_ARGS_H
#define DAEMON_CMD_ARGS_H

#include <stddef.h>
#include <stdio.h>

#include "daemon/kafka/kconf.h"
#include "daemon/pipeline/log.h"

#define ARGS_MAX_FLAGS 32 /* flags in one table */

typedef enum args_kind {
  ARGS_STR,    /* const char **dst: the value as given */
  ARGS_STRS,   /* repeatable: const char **dst, an array of `max`, *count values so far */
  ARGS_SWITCH, /* int *dst = 1; takes no value (in a config file: 1, true or yes) */
  ARGS_INT,    /* int *dst: a decimal integer in [lo, hi] */
  ARGS_DOUBLE, /* double *dst: a number in [lo, hi], or (lo, hi] with open_lo */
  ARGS_CHOICE, /* int *dst: the index of the value in choices (NULL-terminated) */
  ARGS_FN,     /* parse(value, dst) == 0, else the value is bad: "expected UNIT" */
} args_kind;

/* One flag. Zero fields that do not apply to its kind. */
typedef struct args_flag {
  const char *name;                       /* without "--" */
  args_kind kind;                         /* what the value is and where it goes */
  void *dst;                              /* destination, typed by kind */
  const char *unit;                       /* what a value is, for errors ("milliseconds") */
  double lo, hi;                          /* ARGS_INT and ARGS_DOUBLE range, inclusive */
  int open_lo;                            /* ARGS_DOUBLE: lo itself is out of range */
  int open_hi;                            /* ARGS_DOUBLE: hi itself is out of range */
  const char *const *choices;             /* ARGS_CHOICE */
  int (*parse)(const char *v, void *dst); /* ARGS_FN: 0 or -1 */
  int max;                                /* ARGS_STRS: most values */
  int *count;                             /* ARGS_STRS: values so far */
  char short_name;                        /* also -c for this flag, or 0 */
  int *given;                             /* when not NULL, set to 1 once the flag is given */
} args_flag;

/* --interval C: the coverage of a scale head's interval lo_px..hi_px, in (0, 1), into the
 * double interval. */
#define ARGS_INTERVAL                                                                              \
  {                                                                                                \
    "interval", ARGS_DOUBLE, .dst = &interval, .lo = 0, .hi = 1, .open_lo = 1, .open_hi = 1,       \
                             .unit = "a coverage"                                                  \
  }

/* --interval-adapt ETA: the online interval's step (daemon/pipeline/ivtrack.h) in z units, in
 * [0, 1] (0: the model's static z), into the double *dst. */
#define ARGS_INTERVAL_ADAPT(dst_)                                                                  \
  {                                                                                                \
    "interval-adapt", ARGS_DOUBLE, .dst = (dst_), .lo = 0, .hi = 1,                                \
                                   .unit = "a step in z units (0: off)"                            \
  }

/* --log-level L (error, warn, info or debug) into log_level, for the commands that log. */
#define ARGS_LOG_LEVEL                                                                             \
  { "log-level", ARGS_CHOICE, .dst = &log_level, .choices = log_level_names }

/* An ARGS_FN parser for times: integer nanoseconds since the epoch or RFC 3339, into
 * *(int64_t *)dst. 0 or -1. */
int args_time_ns(const char *v, void *dst);

/* An ARGS_FN parser for an unsigned 64-bit decimal integer (no sign, no fraction), into
 * *(uint64_t *)dst. 0 or -1. */
int args_u64(const char *v, void *dst);

/* A command's flags and how its errors read. */
typedef struct args_cmd {
  const char *name;       /* "run": errors end "(see tickcast run --help)" */
  const char *see;        /* that hint when it is another ("tickcast replay --brokers x --help") */
  const args_flag *flags; /* the table */
  int nflags;             /* entries in flags (at most ARGS_MAX_FLAGS) */
  kconf *kc;              /* NULL, or where --brokers, -X and --config go (config values too) */
  void (*usage)(FILE *f); /* prints the --help text */
  const char *unknown;    /* what an unknown flag is called: NULL for "unknown flag" */
  int found_style;        /* 1: bad values read "--NAME: found 'V', expected X" (train, eval);
                           * 0: "--NAME V: expected X" */
} args_cmd;

/* Parses argv[1..argc) (argv[0] is the command name) by c's table, left to right; a later value
 * of a flag replaces an earlier one. Returns 0; 1 when -h or --help came (c->usage has printed
 * the help on stdout; the command exits 0); or TC_EUSAGE with err set to one line, e.g.
 * "unknown flag '--bogus' (see tickcast run --help)", "--group: missing value",
 * "unexpected argument 'x' (see tickcast run --help)", "--chunk 0: expected messages in
 * 1..65536", or the message of kconf_arg and kconf_check_flags. With c->kc, the keys of the
 * config file must be flags of the table, and a flag the command line did not give takes the
 * file's value, checked the same way. */
int args_parse(const args_cmd *c, int argc, char **argv, char *err, size_t errlen);

/* args_parse for a command's entry point. Returns -1 when the command goes on, or the exit status
 * it returns at once: 0 after --help, 2 after printing "tickcast NAME: ERROR" on stderr. */
int args_parse_cmd(const args_cmd *c, int argc, char **argv);

/* 1 when the paths a and b name one regular file (the same path, a symlink, a hard link: the same
 * device and inode), so that writing b would destroy a; "-" and paths that do not exist are no
 * file. For the cross-flag checks of commands that write a file (an output over an input). */
int args_same_file(const char *a, const char *b);

/* How a command writes its output file, for args_output_check. */
typedef enum args_out_mode {
  ARGS_OUT_INPLACE, /* opened for writing as it is (eval --plot) */
  ARGS_OUT_RENAME,  /* a temp file next to it renamed over it; a path that exists and is not a
                     * regular file is written in place (train --output, nn_model_save) */
} args_out_mode;

/* Before any work: whether the output path, given as --FLAG, can be written later, so that a
 * command fails at once rather than after its work. A directory is refused; a path that exists
 * and is not a regular file (/dev/null, a FIFO) must be writable itself, and so must an existing
 * regular file with ARGS_OUT_INPLACE; otherwise the path's directory must exist and be writable.
 * Nothing is created, opened or truncated (nor a FIFO opened: that would wait for its reader).
 * 0, or TC_EIO (TC_ENOMEM) with err set to one line, e.g. "--output /nonexist/m.st: cannot be
 * created: directory /nonexist: No such file or directory (expected an existing, writable
 * directory)". */
int args_output_check(const char *flag, const char *path, args_out_mode mode, char *err,
                      size_t errlen);

/* At the end of a command that printed its result on stdout: flushes it and checks that every
 * write succeeded (ferror: a write that failed mid-way leaves nothing for the flush). Returns 0,
 * or 1 after printing "tickcast NAME: stdout: write failed: REASON" (the command exits 1). */
int args_stdout_done(const char *name);

/* For a Kafka command once its flags are checked: loads librdkafka (kconf_lib_load). Returns -1
 * to go on, or 1 after printing "tickcast NAME: cannot load librdkafka.so.1 (...)". */
int args_kafka_load(const char *name);

#endif
