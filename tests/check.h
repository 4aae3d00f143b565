/* check.h: the tiny assertion kit every tests/test_*.c uses. Each CHECK prints both values on
 * failure and counts; a test binary ends with `return check_done();`, which prints
 * "<file>: N checks, N failed" and exits non-zero on any failure. */
#ifndef TESTS_CHECK_H
#define TESTS_CHECK_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_n, check_failed;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    check_n++;                                                                                     \
    if (!(cond)) {                                                                                 \
      check_failed++;                                                                              \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                     \
    }                                                                                              \
  } while (0)

#define CHECK_INT(a, b)                                                                            \
  do {                                                                                             \
    long long a_ = (long long)(a), b_ = (long long)(b);                                            \
    check_n++;                                                                                     \
    if (a_ != b_) {                                                                                \
      check_failed++;                                                                              \
      fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, a_,    \
              b_);                                                                                 \
    }                                                                                              \
  } while (0)

#define CHECK_STR(a, b)                                                                            \
  do {                                                                                             \
    const char *a_ = (a), *b_ = (b);                                                               \
    check_n++;                                                                                     \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                       \
      check_failed++;                                                                              \
      fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b,    \
              a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                             \
    }                                                                                              \
  } while (0)

/* a contains the substring b */
#define CHECK_CONTAINS(a, b)                                                                       \
  do {                                                                                             \
    const char *a_ = (a), *b_ = (b);                                                               \
    check_n++;                                                                                     \
    if (!a_ || !b_ || !strstr(a_, b_)) {                                                           \
      check_failed++;                                                                              \
      fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__,               \
              a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                             \
    }                                                                                              \
  } while (0)

/* |a - b| <= tol */
#define CHECK_NEAR(a, b, tol)                                                                      \
  do {                                                                                             \
    double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);                                 \
    check_n++;                                                                                     \
    if (!(fabs(a_ - b_) <= t_)) {                                                                  \
      check_failed++;                                                                              \
      fprintf(stderr, "%s:%d: %s ~= %s failed: %.9g vs %.9g (diff %.3g > tol %.3g)\n", __FILE__,   \
              __LINE__, #a, #b, a_, b_, fabs(a_ - b_), t_);                                        \
    }                                                                                              \
  } while (0)

static inline int check_done_(const char *file) {
  printf("%s: %d checks, %d failed\n", file, check_n, check_failed);
  return check_failed ? 1 : 0;
}
#define check_done() check_done_(__FILE__)

#endif
