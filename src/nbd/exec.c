/* Executing one NBD request, and encoding its reply.
 *
 * Runs in a worker, or in the session for a read or write of up to 1 MiB
 * on a store that answers from memory.  Each NBD command is one call of the block-I/O seam
 * (blkio.h), which turns its byte range into CDBs: unaligned edges,
 * splitting of large TRIM, WRITE_ZEROES and CACHE requests (the kernel
 * discards a whole device in one), and the unit's rmw lock, shared with
 * every other front-end, are its business, not this file's.  The reply
 * is left encoded in the job for the connection's sender; nothing here
 * touches the socket.
 *
 * A plain read or write on a unit with asynchronous I/O goes to
 * nbd_job_submit instead, from the session that read it (or a worker,
 * for one queued before): it returns once the request is in flight, and
 * the store's completion encodes the reply and gives the job to the
 * sender, so that no thread waits for a remote store.
 */
#include <config.h>

#include <errno.h>

#include "internal.h"

static struct blkio *io_of (struct nbd_job *j) { return j->conn->exp->io; }

static int
do_read (struct nbd_job *j)
{
  int err;

  /* (The session takes it before it runs a read itself.) */
  if (j->vec == NULL && nbd_job_take_vec (j, j->length, true) == NULL)
    return blkio_vec_error (errno);
  err = blkio_read (io_of (j), j->cmd, j->offset, j->length, j->vec);
  if (err)
    return err;
  NSTAT_ADD (j->conn->srv, bytes_read, j->length);
  nbd_encode_data (j);
  return -1;                            /* encoded */
}

static int
do_block_status (struct nbd_job *j)
{
  struct blkio_extent ext[64];
  uint32_t pairs[2 * 64];
  unsigned max = (j->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : 64, n;
  int err;

  if (nbd_job_take_vec (j, sizeof pairs, true) == NULL)
    return blkio_vec_error (errno);
  err = blkio_extents (io_of (j), j->cmd, j->offset, j->length, ext, max, &n);
  if (err)
    return err;
  for (unsigned k = 0; k < n; k++) {
    pairs[2 * k] = (uint32_t) ext[k].len;
    /* HOLE clear promises that a write there never fails for lack of
     * space: data on an overcommitted unit is a hole whose contents are
     * not known to be zero. */
    pairs[2 * k + 1] = ext[k].hole ? NBD_STATE_HOLE | NBD_STATE_ZERO :
                       ext[k].unreserved ? NBD_STATE_HOLE : 0;
  }
  nbd_encode_block_status (j, pairs, n);
  return -1;
}

static unsigned
seam_flags (const struct nbd_job *j)
{
  unsigned f = 0;
  if (j->flags & NBD_CMD_FLAG_FUA)
    f |= BLKIO_FUA;
  if (j->type == NBD_CMD_WRITE_ZEROES && !(j->flags & NBD_CMD_FLAG_NO_HOLE))
    f |= BLKIO_MAY_TRIM;
  if (j->flags & NBD_CMD_FLAG_FAST_ZERO)
    f |= BLKIO_FAST_ZERO;
  return f;
}

/* The request's kind in the export's counters. */
static enum blkio_op
count_op (uint16_t type)
{
  switch (type) {
  case NBD_CMD_READ:         return BLKIO_OP_READ;
  case NBD_CMD_WRITE:        return BLKIO_OP_WRITE;
  case NBD_CMD_FLUSH:        return BLKIO_OP_FLUSH;
  case NBD_CMD_TRIM:         return BLKIO_OP_TRIM;
  case NBD_CMD_WRITE_ZEROES: return BLKIO_OP_ZERO;
  case NBD_CMD_CACHE:        return BLKIO_OP_CACHE;
  case NBD_CMD_BLOCK_STATUS: return BLKIO_OP_EXTENTS;
  default:                   return BLKIO_OP_OTHER;
  }
}

/* Count the request, encode its reply from err (0: success, -1: the
 * reply is already encoded). */
static void
finish (struct nbd_job *j, int err)
{
  /* Every request but NBD_CMD_DISC comes here, refused ones too. */
  blkio_count (io_of (j), count_op (j->type), j->length, err > 0 ? err : 0);
  if (err > 0)
    nbd_encode_error (j, err);
  else if (err == 0)
    nbd_encode_ok (j);
}

/* The unit's answer to a submitted read or write. */
static void
submitted (struct blkio_aio *a, int err)
{
  struct nbd_job *j = (struct nbd_job *) ((char *) a - offsetof (struct nbd_job, aio));

  if (err == 0 && j->type == NBD_CMD_READ) {
    NSTAT_ADD (j->conn->srv, bytes_read, j->length);
    nbd_encode_data (j);
    err = -1;
  }
  finish (j, err);
  nbd_send (j);
}

bool
nbd_job_submit (struct nbd_job *j)
{
  struct blkio *io = io_of (j);

  if (j->error || (j->type != NBD_CMD_READ && j->type != NBD_CMD_WRITE) ||
      !scsi_lu_async (io->lu) ||
      atomic_load_explicit (&j->conn->dead, memory_order_relaxed))
    return false;
  if (j->type == NBD_CMD_READ && j->vec == NULL &&
      nbd_job_take_vec (j, j->length, true) == NULL)
    return false;                       /* nbd_job_exec answers */
  j->aio = (struct blkio_aio) {
    .write = j->type == NBD_CMD_WRITE,
    .off = j->offset,
    .len = j->length,
    .v = j->vec,
    .flags = seam_flags (j),
    .done = submitted,
  };
  if (!blkio_submit_async (io, &j->aio))
    return false;
  blkio_submit (io, j->cmd, &j->aio);
  return true;
}

void
nbd_job_exec (struct nbd_job *j)
{
  struct nbd_conn *c = j->conn;
  struct blkio *io = io_of (j);
  int err = j->error;

  /* A request of a dead connection: writes are done (their data arrived
   * whole), anything that only produces a reply is not. */
  if (err == 0 && atomic_load_explicit (&c->dead, memory_order_relaxed) &&
      (j->type == NBD_CMD_READ || j->type == NBD_CMD_BLOCK_STATUS ||
       j->type == NBD_CMD_CACHE))
    err = ESHUTDOWN;
  if (err == 0) {
    switch (j->type) {
    case NBD_CMD_READ:         err = do_read (j); break;
    case NBD_CMD_WRITE:
      err = blkio_write (io, j->cmd, j->offset, j->length, j->vec, seam_flags (j));
      break;
    case NBD_CMD_FLUSH:        err = blkio_flush (io, j->cmd); break;
    case NBD_CMD_TRIM:
      err = blkio_trim (io, j->cmd, j->offset, j->length, seam_flags (j));
      break;
    case NBD_CMD_WRITE_ZEROES:
      err = blkio_zero (io, j->cmd, j->offset, j->length, seam_flags (j));
      break;
    case NBD_CMD_CACHE:        err = blkio_cache (io, j->cmd, j->offset, j->length); break;
    case NBD_CMD_BLOCK_STATUS: err = do_block_status (j); break;
    default:                   err = EINVAL; break;
    }
  }
  finish (j, err);
}
