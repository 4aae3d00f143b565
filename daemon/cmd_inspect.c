/* cmd_inspect.c: placeholder until `tickcast inspect` is built; it only says so and fails. */
#include <stdio.h>
#include "cmds.h"

int cmd_inspect(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "tickcast inspect: not built yet\n");
  return 1;
}
