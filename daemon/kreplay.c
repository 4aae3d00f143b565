/* kreplay.c: replay of a Kafka topic range (see kreplay.h). Under construction. */
#include <stdio.h>
#include "kreplay.h"

int kreplay_main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "tickcast replay: reading from Kafka is not built yet\n");
  return 1;
}
