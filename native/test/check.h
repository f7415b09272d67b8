/*
 * check.h — the smallest test harness: CHECK(expr) counts and reports
 * failures (file:line and the expression) and carries on; CHECK_DONE()
 * prints a summary line and yields main()'s exit status; CHECK_SKIP(why)
 * does the same for a part that cannot run here (see below).
 */
#ifndef USERLAY_CHECK_H
#define USERLAY_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/*
 * A part of a test that cannot run here (no root, no /dev/net/tun, no
 * unshare): print why with the summary line. Under CI (CI=true) a skip is a
 * failure, because CI runs as root and must run every part; elsewhere it is
 * not. Yields main()'s exit status like CHECK_DONE().
 */
#define CHECK_SKIP(why)                                                    \
  (getenv("CI") != NULL && strcmp(getenv("CI"), "true") == 0               \
       ? (printf("%s: %d checks, %d failed; SKIP IS A FAILURE UNDER CI: %s\n", \
                 __FILE__, check_count, check_failures, (why)),             \
          1)                                                               \
       : (printf("%s: %d checks, %d failed; skipped: %s\n", __FILE__,      \
                 check_count, check_failures, (why)),                       \
          check_failures == 0 ? 0 : 1))

#endif /* USERLAY_CHECK_H */
