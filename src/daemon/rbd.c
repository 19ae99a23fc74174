/* daemon/rbd: an export's rbd: FILE opened as its store, and what went
 * wrong with it said once, with the FILE as context.  The store itself
 * (src/store/rbd.c) only names the problem; this layer logs it, and
 * says once per tick how many requests the cluster left unanswered past
 * the timeout (clients got EIO for them), so that an operator sees a
 * stalled cluster apart from other store errors.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "store.h"

struct store *
daemon_rbd_open (const struct cli_options *o)
{
  char why[512];
  struct store *s;

  unsigned flags = 0;

  if (o->read_only)
    flags |= STORE_RBD_READ_ONLY;
  /* Without the daemon's cache the unit reports a volatile cache (WCE)
   * and clients flush: librbd's cache may be what Ceph configures, as
   * for every other librbd client (qemu's default, rbd-nbd). */
  if (strcmp (o->cache_mode, "off") == 0)
    flags |= STORE_RBD_LIBRBD_CACHE;
  s = store_rbd_open (o->file, flags, o->store_timeout, why, sizeof why);
  if (s == NULL) {
    int e = errno;
    log_error ("%s: %s", o->file, why);
    errno = e;
  }
  return s;
}

void
daemon_rbd_tick (struct daemon_stack *d)
{
  uint64_t n = store_rbd_timeouts (d->file);

  if (n == d->rbd_timeouts_seen)
    return;
  log_error ("%s: %" PRIu64 " request%s not answered by the cluster within %u s, "
             "failed with EIO; they still run, and I/O resumes when the cluster answers",
             d->opt->file, n - d->rbd_timeouts_seen, n - d->rbd_timeouts_seen > 1 ? "s" : "",
             d->opt->store_timeout ? d->opt->store_timeout : STORE_RBD_TIMEOUT);
  d->rbd_timeouts_seen = n;
}
