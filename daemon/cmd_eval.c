/* cmd_eval.c: placeholder until `tickcast eval` is built; it only says so and fails. */
#include <stdio.h>
#include "cmds.h"

int cmd_eval(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "tickcast eval: not built yet\n");
  return 1;
}
