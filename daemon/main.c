/* main.c: `tickcast` dispatches to its subcommands (daemon/cmd/cmd_*.c) after process-wide setup
 * (the daemon's heap policy, OpenBLAS threads). Nothing else lives here. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/cmd/cmds.h"
#include "daemon/cmd/heap.h"

/* OpenBLAS's own, in its threaded builds (libopenblas0-pthread, -openmp): stops its worker
 * threads; a later call that wants several threads starts them again. It is what OpenBLAS runs
 * before a fork. Weak: a serial OpenBLAS, or another BLAS behind the libblas alternative, has no
 * such symbol and no threads to stop. */
extern int blas_thread_shutdown_(void) __attribute__((weak));

static const struct {
  const char *name;
  int (*fn)(int, char **);
  const char *what;
} cmds[] = {
    {"replay", cmd_replay, "run the model over a tick file (or a topic range)"},
    {"run", cmd_run, "the daemon: Kafka ticks in, predictions out"},
    {"broker", cmd_broker, "an embedded development Kafka broker"},
    {"feed", cmd_feed, "publish a tick file to Kafka"},
    {"train", cmd_train, "train a model on tick files"},
    {"eval", cmd_eval, "score a model against the random-walk baseline"},
    {"inspect", cmd_inspect, "show a state checkpoint"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: tickcast COMMAND [OPTIONS]   (tickcast COMMAND --help for each)\n\n");
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].what);
  fprintf(f, "\ntickcast %s; the contract is in docs/CONTRACT.md\n", TICKCAST_VERSION);
}

int main(int argc, char **argv) {
  /* First, since it may re-execute the program (daemon/cmd/heap.c). */
  if (argc >= 2 && !strcmp(argv[1], "run"))
    heap_daemon(argv);
  /* Per-step GEMMs are small: OpenBLAS's worker threads only spin (sched_yield) and slow them
   * down. One thread unless the user asks otherwise through the usual variable. OpenBLAS starts
   * its workers when it is loaded, before main, and each spins about 0.1 s before it sleeps:
   * on 2 cores that took a core from `replay --threads 2` for its first 0.1 s (0.37 -> 0.40 s
   * for a million ticks), so they are stopped here. */
  if (!getenv("OPENBLAS_NUM_THREADS")) {
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_)
      blas_thread_shutdown_();
  }
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("tickcast %s\n", TICKCAST_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    if (!strcmp(argv[1], cmds[i].name))
      return cmds[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "tickcast: unknown command '%s' (expected one of", argv[1]);
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    fprintf(stderr, "%s %s", i ? "," : "", cmds[i].name);
  fprintf(stderr, ")\n");
  return 2;
}
