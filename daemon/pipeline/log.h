/* log.h: the one logger: one line per event on stderr, "2026-11-28T22:50:09.123Z LEVEL component:
 * message". librdkafka's log callback routes through log_msg too. Thread-safe (one fprintf per
 * line). Not for predictions or stats output. */
#ifndef DAEMON_LOG_H
#define DAEMON_LOG_H

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern int log_level; /* messages above this level are dropped; default LOG_INFO */

/* The level names by level: "error", "warn", "info", "debug", then NULL (for --log-level). */
extern const char *const log_level_names[];

void log_msg(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(comp, ...) log_msg(LOG_ERROR, comp, __VA_ARGS__)
#define log_warn(comp, ...) log_msg(LOG_WARN, comp, __VA_ARGS__)
#define log_info(comp, ...) log_msg(LOG_INFO, comp, __VA_ARGS__)
#define log_debug(comp, ...) log_msg(LOG_DEBUG, comp, __VA_ARGS__)

/* Tags the records this thread logs from now on as "component[k]" (a stream thread of run
 * --threads); -1 (the default) tags none. */
void log_set_thread(int k);

/* log_warn(component, "%s", line) as a callback for modules below this one (ingest's reject
 * tally, reject.h): component is the component name. */
void log_warn_line(void *component, const char *line);

#endif
