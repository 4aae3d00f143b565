/* kreplay.h: `tickcast replay --brokers LIST --topic T ...`: runs the model over a Kafka topic
 * range (explicit partition assignment, no consumer group, fresh state) and writes predictions to
 * a file or another topic. Not the file replay (cmd_replay.c), which calls this when the command
 * line names --brokers or --topic. */
#ifndef DAEMON_KREPLAY_H
#define DAEMON_KREPLAY_H

/* The whole command: argv[0] = "replay", then the flags (see --help). Returns the exit status:
 * 0 success (rejected ticks are counted and reported, never fatal), 1 runtime failure (Kafka
 * unreachable, topic missing, output write failed), 2 bad usage or a bad model file. */
int kreplay_main(int argc, char **argv);

#endif
