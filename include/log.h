/* log: the daemon's one logging interface.
 *
 * Only the outer layers (main, front-end session code) log; the data path
 * returns -1 with errno and lets its caller log once, with context.
 * Messages go to stderr in the foreground and to syslog once daemonized.
 */
#ifndef SGBLK_LOG_H
#define SGBLK_LOG_H

#include <stdbool.h>

enum log_level {
  LOG_LEVEL_ERROR,   /* something failed; the daemon or a client is affected */
  LOG_LEVEL_WARN,    /* degraded but serving */
  LOG_LEVEL_INFO,    /* life cycle: listening, connections, shutdown */
  LOG_LEVEL_DEBUG,   /* per-connection detail, only with -v */
};

/* verbosity: -1 errors only, 0 up to info, 1 and more debug too. */
void log_init (const char *ident, bool use_syslog, int verbosity);
void log_msg (enum log_level level, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

#define log_error(...) log_msg (LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg (LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg (LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg (LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
