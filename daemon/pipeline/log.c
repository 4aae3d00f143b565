/* log.c: timestamped one-line log records on stderr (see log.h). */
#include "daemon/pipeline/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "nn/base/clock.h"

int log_level = LOG_INFO;

static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};

static __thread int log_thread = -1;

void log_set_thread(int k) {
  log_thread = k;
}

void log_msg(int level, const char *component, const char *fmt, ...) {
  if (level > log_level)
    return;
  int64_t ns = tc_wall_ns();
  time_t sec = (time_t)(ns / 1000000000);
  struct tm tm;
  gmtime_r(&sec, &tm);
  int lv = level < LOG_ERROR ? LOG_ERROR : level > LOG_DEBUG ? LOG_DEBUG : level;
  char line[2048], tag[16] = "";
  if (log_thread >= 0)
    snprintf(tag, sizeof tag, "[%d]", log_thread);
  int n = snprintf(line, sizeof line,
                   "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s%s: ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   (long)(ns % 1000000000 / 1000000), names[lv], component, tag);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof line)
    vsnprintf(line + n, sizeof line - n, fmt, ap);
  va_end(ap);
  /* Keep it one line whatever the message held. */
  for (char *p = line; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  fprintf(stderr, "%s\n", line);
}

void log_warn_line(void *component, const char *line) {
  log_warn((const char *)component, "%s", line);
}
