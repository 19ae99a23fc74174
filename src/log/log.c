/* log: stderr in the foreground, syslog once daemonized.
 *
 * One line per message; the level filter is the only state, set once at
 * start-up before any thread exists, so no locking is needed.  stderr
 * writes are single fprintf calls, which stdio locks, so lines from
 * different threads do not interleave.
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "log.h"

static bool to_syslog;
static int max_level = LOG_LEVEL_INFO;
static const char *prog = "sgblkd";

void
log_init (const char *ident, bool use_syslog, int verbosity)
{
  prog = ident;
  to_syslog = use_syslog;
  max_level = verbosity > 0 ? LOG_LEVEL_DEBUG :
              verbosity < 0 ? LOG_LEVEL_ERROR : LOG_LEVEL_INFO;
  if (to_syslog)
    openlog (ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_msg (enum log_level level, const char *fmt, ...)
{
  static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
  static const char *const name[] = { "error", "warning", "info", "debug" };
  char buf[1024];
  va_list ap;

  if ((int) level > max_level)
    return;
  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  if (to_syslog)
    syslog (prio[level], "%s", buf);
  else
    fprintf (stderr, "%s: %s: %s\n", prog, name[level], buf);
}
