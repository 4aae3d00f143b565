/* cmds.h: the subcommands of `tickcast`, one file each (daemon/cmd/cmd_<name>.c). Each takes the
 * arguments after the subcommand name (argv[0] = the name) and returns the process exit status:
 * 0 success, 1 runtime failure, 2 bad usage / bad model / unreadable input (CONTRACT §6). */
#ifndef DAEMON_CMDS_H
#define DAEMON_CMDS_H

#include "daemon/pipeline/version.h" /* TICKCAST_VERSION, for the front ends */

int cmd_replay(int argc, char **argv);
/* `replay` over a Kafka topic range: cmd_replay hands over when --brokers or --topic is given. */
int cmd_kreplay(int argc, char **argv);
/* The default of --threads for replay and eval: the online cores (at least 1). */
int replay_default_threads(void);
int cmd_run(int argc, char **argv);
int cmd_broker(int argc, char **argv);
int cmd_feed(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
/* `inspect --model M`: cmd_inspect hands over with the parsed --json and --top. */
int cmd_inspect_model(const char *path, int json, int top);

#endif
