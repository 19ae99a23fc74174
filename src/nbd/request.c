/* Executing one NBD request, and sending its reply.
 *
 * Runs in a worker.  Each NBD command is one call of the block-I/O seam
 * (blkio.h), which turns its byte range into CDBs: unaligned edges,
 * splitting of large TRIM, WRITE_ZEROES and CACHE requests (the kernel
 * discards a whole device in one), and the unit's rmw lock, shared with
 * every other front-end, are its business, not this file's.
 */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

int
nbd_errno_to_wire (int err)
{
  switch (err) {
  case 0:          return 0;
  case EPERM:
  case EROFS:      return NBD_EPERM;
  case EINVAL:     return NBD_EINVAL;
  case ENOSPC:
  case EDQUOT:     return NBD_ENOSPC;
  case EOVERFLOW:  return NBD_EOVERFLOW;
  case ENOTSUP:    return NBD_ENOTSUP;
  case ESHUTDOWN:  return NBD_ESHUTDOWN;
  default:         return NBD_EIO;    /* never ENOMEM: memory waits, it does not fail */
  }
}

uint16_t
nbd_export_tflags (const struct nbd_export *e)
{
  uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
               NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
               NBD_FLAG_SEND_DF | NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE;
  if (e->read_only)
    f |= NBD_FLAG_READ_ONLY;
  if (scsi_lu_store (e->lu)->caps & STORE_CAP_FAST_ZERO)
    f |= NBD_FLAG_SEND_FAST_ZERO;
  return f;
}

/* ---- Replies ---- */

static void
send_locked (struct nbd_conn *c, struct iovec *iov, int cnt)
{
  if (nbd_writev_full (c->fd, iov, cnt) == -1) {
    atomic_store (&c->dead, true);
    shutdown (c->fd, SHUT_RDWR);        /* wake the reader: the peer is gone */
  }
}

static void
send_iov (struct nbd_job *j, struct iovec *iov, int cnt)
{
  struct nbd_conn *c = j->conn;

  if (atomic_load_explicit (&c->dead, memory_order_relaxed))
    return;
  /* A small reply of a request the reader ran waits for its fellows;
   * only the reader touches txb, so it needs no lock. */
  if (j->batch_reply && cnt == 1 && iov[0].iov_len <= sizeof c->txb) {
    if (c->txlen + iov[0].iov_len > sizeof c->txb)
      nbd_flush_replies (c);
    memcpy (c->txb + c->txlen, iov[0].iov_base, iov[0].iov_len);
    c->txlen += iov[0].iov_len;
    return;
  }
  pthread_mutex_lock (&c->send_lock);
  send_locked (c, iov, cnt);
  pthread_mutex_unlock (&c->send_lock);
}

void
nbd_flush_replies (struct nbd_conn *c)
{
  struct iovec iov = { c->txb, c->txlen };

  if (c->txlen == 0)
    return;
  if (!atomic_load_explicit (&c->dead, memory_order_relaxed)) {
    pthread_mutex_lock (&c->send_lock);
    send_locked (c, &iov, 1);
    pthread_mutex_unlock (&c->send_lock);
  }
  c->txlen = 0;
}

static void
chunk_header (uint8_t *h, uint16_t flags, uint16_t type, uint64_t cookie,
              uint32_t len)
{
  wr32 (h, NBD_STRUCTURED_REPLY_MAGIC);
  wr16 (h + 4, flags);
  wr16 (h + 6, type);
  wr64 (h + 8, cookie);
  wr32 (h + 16, len);
}

static void
reply_ok (struct nbd_job *j)
{
  uint8_t h[NBD_CHUNK_HEADER_SIZE];
  struct iovec iov = { h, sizeof h };

  if (j->conn->structured)
    chunk_header (h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, j->cookie, 0);
  else {
    wr32 (h, NBD_SIMPLE_REPLY_MAGIC);
    wr32 (h + 4, 0);
    wr64 (h + 8, j->cookie);
    iov.iov_len = NBD_SIMPLE_REPLY_SIZE;
  }
  send_iov (j, &iov, 1);
}

void
nbd_job_reply_error (struct nbd_job *j, int err)
{
  uint8_t h[NBD_CHUNK_HEADER_SIZE + 14];
  struct iovec iov = { h, 0 };

  NSTAT_INC (j->conn->srv, errors);
  if (j->conn->structured) {
    /* An offset only where one is meaningful: a read that failed while
     * executing, whose range is valid.  A request refused as invalid (a
     * zero length, a range past the end) gets a plain error chunk: its
     * offset may lie outside anything the client may be told of. */
    bool with_offset = j->type == NBD_CMD_READ && j->error == 0;
    uint32_t len = with_offset ? 14 : 6;
    chunk_header (h, NBD_REPLY_FLAG_DONE,
                  with_offset ? NBD_REPLY_TYPE_ERROR_OFFSET : NBD_REPLY_TYPE_ERROR,
                  j->cookie, len);
    wr32 (h + 20, (uint32_t) nbd_errno_to_wire (err));
    wr16 (h + 24, 0);                   /* no message */
    if (with_offset)
      wr64 (h + 26, j->offset);
    iov.iov_len = NBD_CHUNK_HEADER_SIZE + len;
  }
  else {
    wr32 (h, NBD_SIMPLE_REPLY_MAGIC);
    wr32 (h + 4, (uint32_t) nbd_errno_to_wire (err));
    wr64 (h + 8, j->cookie);
    iov.iov_len = NBD_SIMPLE_REPLY_SIZE;
  }
  send_iov (j, &iov, 1);
}

/* Data of a read: bytes [doff, doff + length) of j->vec. */
static void
reply_data (struct nbd_job *j, size_t doff)
{
  uint8_t h[NBD_CHUNK_HEADER_SIZE + 12];
  int cnt;

  j->iov[0].iov_base = h;
  if (j->conn->structured && sgv_is_zero (j->vec, doff, j->length)) {
    chunk_header (h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_HOLE, j->cookie, 12);
    wr64 (h + 20, j->offset);
    wr32 (h + 28, j->length);
    j->iov[0].iov_len = NBD_CHUNK_HEADER_SIZE + 12;
    send_iov (j, j->iov, 1);
    return;
  }
  if (j->conn->structured) {
    chunk_header (h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, j->cookie,
                  8 + j->length);
    wr64 (h + 20, j->offset);
    j->iov[0].iov_len = NBD_CHUNK_HEADER_SIZE + 8;
  }
  else {
    wr32 (h, NBD_SIMPLE_REPLY_MAGIC);
    wr32 (h + 4, 0);
    wr64 (h + 8, j->cookie);
    j->iov[0].iov_len = NBD_SIMPLE_REPLY_SIZE;
  }
  cnt = sgv_slice (j->vec, doff, j->length, j->iov + 1, NBD_MAX_REPLY_IOV - 1);
  if (cnt < 0) {
    nbd_job_reply_error (j, EIO);
    return;
  }
  send_iov (j, j->iov, cnt + 1);
}

/* ---- Execution through the block-I/O seam ---- */

static struct blkio *io_of (struct nbd_job *j) { return j->conn->exp->io; }

static int
do_read (struct nbd_job *j)
{
  int err;

  j->vec = nbd_get_vec (j->conn, j->length);
  if (j->vec == NULL)
    return errno == E2BIG ? EINVAL : ESHUTDOWN;
  err = blkio_read (io_of (j), j->cmd, j->offset, j->length, j->vec);
  if (err)
    return err;
  NSTAT_ADD (j->conn->srv, bytes_read, j->length);
  reply_data (j, 0);
  return -1;                            /* replied */
}

static int
do_block_status (struct nbd_job *j)
{
  struct blkio_extent ext[64];
  uint8_t h[NBD_CHUNK_HEADER_SIZE + 4 + 8 * 64];
  unsigned max = (j->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : 64, n;
  int err;

  err = blkio_extents (io_of (j), j->cmd, j->offset, j->length, ext, max, &n);
  if (err)
    return err;
  for (unsigned k = 0; k < n; k++) {
    uint8_t *p = h + NBD_CHUNK_HEADER_SIZE + 4 + 8 * k;
    wr32 (p, (uint32_t) ext[k].len);
    wr32 (p + 4, ext[k].hole ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0);
  }
  chunk_header (h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, j->cookie, 4 + 8 * n);
  wr32 (h + NBD_CHUNK_HEADER_SIZE, 1);   /* base:allocation's context id */
  struct iovec iov = { h, NBD_CHUNK_HEADER_SIZE + 4 + 8 * n };
  send_iov (j, &iov, 1);
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

void
nbd_job_run (struct nbd_job *j)
{
  struct nbd_conn *c = j->conn;
  struct blkio *io = io_of (j);
  int err = j->error;

  /* A request of a dead connection: writes are done (their data arrived
   * whole), anything that only produces a reply is aborted. */
  if (err == 0 && atomic_load_explicit (&c->dead, memory_order_relaxed) &&
      (j->type == NBD_CMD_READ || j->type == NBD_CMD_BLOCK_STATUS ||
       j->type == NBD_CMD_CACHE)) {
    scsi_set_sense (j->cmd, false, SCSI_SK_ABORTED_COMMAND, 0, 0);
    nbd_job_finish (j);
    return;
  }
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
  if (err > 0)
    nbd_job_reply_error (j, err);
  else if (err == 0)
    reply_ok (j);
  nbd_job_finish (j);
}
