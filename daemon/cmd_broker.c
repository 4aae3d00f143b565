/* cmd_broker.c: placeholder until `tickcast broker` is built; it only says so and fails. */
#include <stdio.h>
#include "cmds.h"

int cmd_broker(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "tickcast broker: not built yet\n");
  return 1;
}
