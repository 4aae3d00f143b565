/* main.c: `tickcast` dispatches to its subcommands (daemon/cmd/cmd_*.c) after process-wide setup
 * (the daemon's heap policy). Nothing else lives here. OpenBLAS is not linked: nn/blas.c loads it
 * when a command first needs it, and sets its threads then. */
#include <stdio.h>
#include <string.h>

#include "daemon/cmd/cmds.h"
#include "daemon/cmd/heap.h"
#include "nn/blas.h"

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
    {"inspect", cmd_inspect, "show a state checkpoint or a model file"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: tickcast COMMAND [OPTIONS]   (tickcast COMMAND --help for each)\n\n");
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].what);
  fprintf(f, "\ntickcast %s; the contract is in docs/CONTRACT.md\n", TICKCAST_VERSION);
}

int main(int argc, char **argv) {
  nn_blas_pin_kernels(); /* while this is the only thread */
  /* First, since it may re-execute the program (daemon/cmd/heap.c). */
  if (argc >= 2 && !strcmp(argv[1], "run"))
    heap_daemon(argv);
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
