/* Request validation: what the NBD specification says a request with this
 * header on this connection gets, before anything is executed.
 *
 * A pure function of the header and what the connection negotiated: no
 * I/O, no state changed, one debug line per refusal naming its reason.
 * Each check has one reason and one errno, in the order the spec's
 * precedence implies: a write to a read-only export is EPERM whatever
 * else is wrong with it; an unknown command or flag is EINVAL; a range
 * past the end is EINVAL for reads (and for block status and cache) and
 * ENOSPC for what writes; a read longer than the maximum is EOVERFLOW
 * when the client allows no fragmentation (DF), EINVAL otherwise.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>

#include "internal.h"
#include "log.h"

static uint16_t
allowed_flags (uint16_t type)
{
  switch (type) {
  case NBD_CMD_READ:         return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_DF;
  case NBD_CMD_WRITE:        return NBD_CMD_FLAG_FUA;
  case NBD_CMD_TRIM:         return NBD_CMD_FLAG_FUA;
  case NBD_CMD_WRITE_ZEROES: return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
  case NBD_CMD_BLOCK_STATUS: return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE;
  default:                   return NBD_CMD_FLAG_FUA;
  }
}

static int
refuse (const struct nbd_conn *c, const struct nbd_request *r, int err, const char *why)
{
  log_debug ("%s: request type %u cookie 0x%" PRIx64 " offset %" PRIu64
             " length %" PRIu32 ": %s", c->peer, r->type, r->cookie, r->offset,
             r->length, why);
  return err;
}

int
nbd_validate_request (const struct nbd_conn *c, const struct nbd_request *r)
{
  const struct nbd_export *e = c->exp;
  uint64_t size = e->io->size;
  uint32_t max = nbd_export_max_payload (e);
  bool past_end = r->offset > size || r->length > size - r->offset;
  bool writes = r->type == NBD_CMD_WRITE || r->type == NBD_CMD_TRIM ||
                r->type == NBD_CMD_WRITE_ZEROES;

  if (r->type > NBD_CMD_BLOCK_STATUS || r->type == NBD_CMD_DISC)
    return refuse (c, r, EINVAL, "unknown command");
  if (writes && e->read_only)
    return refuse (c, r, EPERM, "write to a read-only export");
  if (r->flags & ~allowed_flags (r->type))
    return refuse (c, r, EINVAL, "unknown or inapplicable flag");
  switch (r->type) {
  case NBD_CMD_READ:
    if (r->length == 0)
      return refuse (c, r, EINVAL, "zero-length read");
    if (r->length > max)
      return refuse (c, r, (r->flags & NBD_CMD_FLAG_DF) ? EOVERFLOW : EINVAL,
                     "read longer than the maximum payload");
    if (past_end)
      return refuse (c, r, EINVAL, "read past the end");
    return 0;
  case NBD_CMD_WRITE:
    if (r->length == 0)
      return refuse (c, r, EINVAL, "zero-length write");
    if (r->length > max)
      return refuse (c, r, EINVAL, "write longer than the maximum payload");
    if (past_end)
      return refuse (c, r, ENOSPC, "write past the end");
    return 0;
  case NBD_CMD_TRIM:
  case NBD_CMD_WRITE_ZEROES:
    if (past_end)
      return refuse (c, r, ENOSPC, "trim or zero past the end");
    return 0;
  case NBD_CMD_BLOCK_STATUS:
    if (!c->base_allocation)
      return refuse (c, r, EINVAL, "block status without base:allocation");
    if (r->length == 0)
      return refuse (c, r, EINVAL, "zero-length block status");
    if (past_end)
      return refuse (c, r, EINVAL, "block status past the end");
    return 0;
  case NBD_CMD_CACHE:
    if (past_end)
      return refuse (c, r, EINVAL, "cache past the end");
    return 0;
  default:                              /* FLUSH */
    return 0;
  }
}
