/* cmd_train.c: placeholder until `tickcast train` is built; it only says so and fails. */
#include <stdio.h>
#include "cmds.h"

int cmd_train(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "tickcast train: not built yet\n");
  return 1;
}
