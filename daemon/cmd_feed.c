/* cmd_feed.c: placeholder until `tickcast feed` is built; it only says so and fails. */
#include <stdio.h>
#include "cmds.h"

int cmd_feed(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "tickcast feed: not built yet\n");
  return 1;
}
