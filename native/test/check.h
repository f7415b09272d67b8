/*
 * check.h — the smallest test harness: CHECK(expr) counts and reports
 * failures (file:line and the expression) and carries on; CHECK_DONE()
 * prints a summary line and yields main()'s exit status.
 */
#ifndef USERLAY_CHECK_H
#define USERLAY_CHECK_H

#include <stdio.h>

static int check_failures;
static int check_count;

#define CHECK(expr)                                                        \
  do {                                                                     \
    check_count++;                                                         \
    if (!(expr)) {                                                         \
      check_failures++;                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,     \
              #expr);                                                      \
    }                                                                      \
  } while (0)

/* CHECK(a == b) for integers, printing both values on failure. */
#define CHECK_EQ(a, b)                                                     \
  do {                                                                     \
    long long check_a_ = (long long)(a), check_b_ = (long long)(b);        \
    check_count++;                                                         \
    if (check_a_ != check_b_) {                                            \
      check_failures++;                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n",    \
              __FILE__, __LINE__, #a, #b, check_a_, check_b_);             \
    }                                                                      \
  } while (0)

#define CHECK_DONE()                                                       \
  (printf("%s: %d checks, %d failed\n", __FILE__, check_count,             \
          check_failures),                                                 \
   check_failures == 0 ? 0 : 1)

#endif /* USERLAY_CHECK_H */
