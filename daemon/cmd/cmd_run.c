/* cmd_run.c: `tickcast run`: parses the flags (run_opts.c) and runs the daemon (run.c). Nothing
 * else lives here. */
#include <stdio.h>

#include "daemon/cmd/cmds.h"
#include "daemon/loop/run.h"
#include "nn/base/tc_err.h"

int cmd_run(int argc, char **argv) {
  run_opts o;
  char err[512];
  int r = run_opts_parse(&o, argc, argv, err, sizeof err);
  if (r == 1) {
    run_opts_free(&o);
    return 0;
  }
  if (r < 0) {
    fprintf(stderr, "tickcast run: %s\n", err);
    run_opts_free(&o);
    /* TC_EIO: libmicrohttpd, SQLite or libuv would not load; TC_EKAFKA: librdkafka */
    return r == TC_EIO || r == TC_EKAFKA ? 1 : 2;
  }
  int code = run_main(&o);
  run_opts_free(&o);
  return code;
}
