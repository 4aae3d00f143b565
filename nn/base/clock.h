/* clock.h: the one set of clock readers every layer uses: monotonic time for durations and
 * deadlines, wall time for timestamps in messages and logs, thread CPU time for cost figures.
 * Not for timers or sleeping (the daemon's loop has libuv's). Header-only, libc only. */
#ifndef NN_BASE_CLOCK_H
#define NN_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t tc_clock_ns_(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Monotonic nanoseconds (CLOCK_MONOTONIC): for durations and deadlines. */
static inline uint64_t tc_mono_ns(void) {
  return tc_clock_ns_(CLOCK_MONOTONIC);
}

/* Monotonic seconds, as a double: for rates and elapsed times in reports. */
static inline double tc_mono_s(void) {
  return (double)tc_mono_ns() / 1e9;
}

/* Wall-clock nanoseconds since the Unix epoch (CLOCK_REALTIME). */
static inline int64_t tc_wall_ns(void) {
  return (int64_t)tc_clock_ns_(CLOCK_REALTIME);
}

/* Wall-clock milliseconds since the Unix epoch. */
static inline int64_t tc_wall_ms(void) {
  return tc_wall_ns() / 1000000;
}

/* CPU time of the calling thread in microseconds (CLOCK_THREAD_CPUTIME_ID). */
static inline double tc_thread_cpu_us(void) {
  return (double)tc_clock_ns_(CLOCK_THREAD_CPUTIME_ID) / 1e3;
}

/* CPU time of the whole process (every thread) in microseconds (CLOCK_PROCESS_CPUTIME_ID). */
static inline double tc_process_cpu_us(void) {
  return (double)tc_clock_ns_(CLOCK_PROCESS_CPUTIME_ID) / 1e3;
}

#endif
