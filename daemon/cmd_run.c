/* cmd_run.c: placeholder until `tickcast run` is built; it only says so and fails. */
#include <stdio.h>
#include "cmds.h"

int cmd_run(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "tickcast run: not built yet\n");
  return 1;
}
