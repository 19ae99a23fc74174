/* daemon's own declarations, shared by its files. */
#ifndef SGBLK_DAEMON_INTERNAL_H
#define SGBLK_DAEMON_INTERNAL_H

#include <errno.h>

#include "log.h"

/* The daemon is the outer layer that logs: log a failure once, with its
 * context, and return -1 with errno e (the logging may have changed
 * errno). */
#define FAIL(e, ...)                                                    \
  do {                                                                  \
    int fail_errno_ = (e);                                              \
    log_error (__VA_ARGS__);                                            \
    errno = fail_errno_;                                                \
    return -1;                                                          \
  } while (0)

#endif
