/* Executing one NBD request as SCSI commands, and sending its reply.
 *
 * Runs in a worker.  Each NBD command maps to one CDB, or to a few when a
 * TRIM, WRITE_ZEROES or CACHE covers more than NBD_CHUNK_BYTES (the kernel
 * discards a whole device in one request; it is split here, never
 * refused).  A request that is not aligned to the logical block size is
 * served by read-modify-write of its edge blocks under the export's rmw
 * lock held exclusively; every other write holds it shared, so an edge
 * block is never written back over a concurrent write.
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
    bool with_offset = j->type == NBD_CMD_READ;
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

/* ---- SCSI execution ---- */

static struct scsi_lu *lu_of (struct nbd_job *j) { return j->conn->exp->lu; }

/* The answer when nbd_get_vec failed: a request too large for a fixed
 * pool (an unaligned one near the maximum) is invalid; else we stop. */
static int vec_error (void) { return errno == E2BIG ? EINVAL : ESHUTDOWN; }

/* Run the CDB already in j->cmd->cdb with buffer buf; returns an errno. */
static int
run (struct nbd_job *j, unsigned cdb_len, struct sgv_vec *buf, size_t buf_len)
{
  struct scsi_cmd *cmd = j->cmd;

  cmd->cdb_len = cdb_len;
  cmd->buf = buf;
  cmd->buf_len = (uint32_t) buf_len;
  cmd->tag = j->cookie;
  scsi_exec (lu_of (j), cmd);
  return scsi_cmd_errno (cmd);
}

static int
read_blocks (struct nbd_job *j, struct sgv_vec *v, uint64_t lba, uint32_t n)
{
  return run (j, scsi_cdb_read16 (j->cmd->cdb, lba, n, false), v, v->len);
}

static int
write_blocks (struct nbd_job *j, struct sgv_vec *v, uint64_t lba, uint32_t n, bool fua)
{
  return run (j, scsi_cdb_write16 (j->cmd->cdb, lba, n, fua), v, v->len);
}

static int
sync_cache (struct nbd_job *j)
{
  return run (j, scsi_cdb_sync_cache16 (j->cmd->cdb, 0, 0), NULL, 0);
}

static void
put_vec (struct nbd_job *j, struct sgv_vec *v)
{
  sgv_free (j->conn->exp->sgv, v);
  atomic_fetch_sub (&j->conn->vecs_out, 1);
}

/* Copy all of src into dst at byte offset off. */
static void
copy_vec (struct sgv_vec *dst, size_t off, const struct sgv_vec *src)
{
  size_t pos = 0;
  for (int i = 0; i < src->nents; i++) {
    sgv_copy_from_buf (dst, off + pos, src->iov[i].iov_base, src->iov[i].iov_len);
    pos += src->iov[i].iov_len;
  }
}

/* Read-modify-write of the blocks covering [off, off+len): the bytes come
 * from src (or are zeroes with src NULL).  Caller holds the rmw lock
 * exclusively. */
static int
rmw (struct nbd_job *j, uint64_t off, uint64_t len, const struct sgv_vec *src, bool fua)
{
  uint32_t bs = scsi_lu_block_size (lu_of (j));
  uint64_t a = off / bs * bs, e = (off + len + bs - 1) / bs * bs;
  struct sgv_vec *v = nbd_get_vec (j->conn, e - a);
  int err;

  if (v == NULL)
    return vec_error ();
  err = read_blocks (j, v, a / bs, (uint32_t) ((e - a) / bs));
  if (err == 0) {
    if (src)
      copy_vec (v, off - a, src);
    else
      sgv_zero (v, off - a, len);
    err = write_blocks (j, v, a / bs, (uint32_t) ((e - a) / bs), fua);
  }
  put_vec (j, v);
  return err;
}

static int
do_read (struct nbd_job *j)
{
  uint32_t bs = scsi_lu_block_size (lu_of (j));
  uint64_t a = j->offset / bs * bs;
  uint64_t e = (j->offset + j->length + bs - 1) / bs * bs;
  int err;

  j->vec = nbd_get_vec (j->conn, e - a);
  if (j->vec == NULL)
    return vec_error ();
  err = read_blocks (j, j->vec, a / bs, (uint32_t) ((e - a) / bs));
  if (err)
    return err;
  NSTAT_ADD (j->conn->srv, bytes_read, j->length);
  reply_data (j, j->offset - a);
  return -1;                            /* replied */
}

static int
do_write (struct nbd_job *j, pthread_rwlock_t *rl)
{
  uint32_t bs = scsi_lu_block_size (lu_of (j));
  bool fua = j->flags & NBD_CMD_FLAG_FUA;
  int err;

  if (j->offset % bs == 0 && j->length % bs == 0) {
    pthread_rwlock_rdlock (rl);
    err = write_blocks (j, j->vec, j->offset / bs, j->length / bs, fua);
    pthread_rwlock_unlock (rl);
    return err;
  }
  pthread_rwlock_wrlock (rl);
  err = rmw (j, j->offset, j->length, j->vec, fua);
  pthread_rwlock_unlock (rl);
  return err;
}

/* TRIM, WRITE_ZEROES or CACHE of the aligned blocks [lba, lba+n), split
 * into chunks of at most NBD_CHUNK_BYTES. */
static int
ranged (struct nbd_job *j, uint64_t lba, uint64_t n)
{
  uint32_t bs = scsi_lu_block_size (lu_of (j));
  uint64_t step = NBD_CHUNK_BYTES / bs;
  struct sgv_vec *param = NULL;
  int err = 0;

  if (j->type == NBD_CMD_TRIM) {
    param = nbd_get_vec (j->conn, 64);
    if (param == NULL)
      return vec_error ();
  }
  for (uint64_t done = 0; done < n && err == 0; done += step) {
    uint32_t m = (uint32_t) (n - done < step ? n - done : step);
    uint8_t *cdb = j->cmd->cdb;
    switch (j->type) {
    case NBD_CMD_TRIM: {
      uint8_t p[24];
      uint64_t l = lba + done;
      uint32_t plen;
      unsigned len = scsi_cdb_unmap (cdb, p, &l, &m, 1, &plen);
      sgv_copy_from_buf (param, 0, p, plen);
      err = run (j, len, param, plen);
      break;
    }
    case NBD_CMD_WRITE_ZEROES:
      err = run (j, scsi_cdb_write_same16 (cdb, lba + done, m,
                                           !(j->flags & NBD_CMD_FLAG_NO_HOLE), true),
                 NULL, 0);
      break;
    default:
      err = run (j, scsi_cdb_prefetch16 (cdb, lba + done, m), NULL, 0);
      break;
    }
  }
  if (param)
    put_vec (j, param);
  return err;
}

static int
do_trim_or_zero (struct nbd_job *j, pthread_rwlock_t *rl)
{
  uint32_t bs = scsi_lu_block_size (lu_of (j));
  uint64_t start = j->offset, end = j->offset + j->length;
  uint64_t a = (start + bs - 1) / bs * bs, e = end / bs * bs;
  bool zero = j->type == NBD_CMD_WRITE_ZEROES;
  bool aligned = start % bs == 0 && end % bs == 0;
  int err = 0;

  if (zero && (j->flags & NBD_CMD_FLAG_FAST_ZERO) &&
      !(scsi_lu_store (lu_of (j))->caps & STORE_CAP_FAST_ZERO))
    return ENOTSUP;
  if (aligned)
    pthread_rwlock_rdlock (rl);
  else
    pthread_rwlock_wrlock (rl);
  if (a < e)
    err = ranged (j, a / bs, (e - a) / bs);
  /* Partial edge blocks: a trim is advisory, so they are left alone; a
   * write of zeroes must zero exactly the bytes asked for. */
  if (err == 0 && zero && !aligned) {
    if (a >= e)                          /* within one or two blocks */
      err = rmw (j, start, j->length, NULL, false);
    else {
      if (start < a)
        err = rmw (j, start, a - start, NULL, false);
      if (err == 0 && e < end)
        err = rmw (j, e, end - e, NULL, false);
    }
  }
  pthread_rwlock_unlock (rl);
  if (err == 0 && (j->flags & NBD_CMD_FLAG_FUA))
    err = sync_cache (j);
  return err;
}

static int
do_block_status (struct nbd_job *j)
{
  struct scsi_lu *lu = lu_of (j);
  uint32_t bs = scsi_lu_block_size (lu);
  uint64_t lba = j->offset / bs, end = j->offset + j->length;
  const unsigned max = 64;
  uint32_t alloc = 8 + 16 * max;
  struct scsi_lba_status d[64];
  uint8_t raw[8 + 16 * 64];
  uint8_t h[NBD_CHUNK_HEADER_SIZE + 4 + 8 * 64];
  int err, n;

  j->vec = nbd_get_vec (j->conn, alloc);
  if (j->vec == NULL)
    return vec_error ();
  err = run (j, scsi_cdb_get_lba_status (j->cmd->cdb, lba, alloc), j->vec, alloc);
  if (err)
    return err;
  sgv_copy_to_buf (j->vec, 0, raw, j->cmd->xfer);
  n = scsi_decode_lba_status (raw, j->cmd->xfer, d, (int) max);
  if (n <= 0)
    return EIO;
  /* Extents in bytes, clipped to the request. */
  unsigned k = 0;
  uint64_t pos = j->offset;
  for (int i = 0; i < n && pos < end; i++) {
    uint64_t s = d[i].lba * bs, e = s + (uint64_t) d[i].nblocks * bs;
    if (e <= pos)
      continue;
    if (e > end)
      e = end;
    uint32_t flags = d[i].provisioning == 0 ? 0 : NBD_STATE_HOLE | NBD_STATE_ZERO;
    if (k > 0 && rd32 (h + NBD_CHUNK_HEADER_SIZE + 4 + 8 * (k - 1) + 4) == flags) {
      uint8_t *p = h + NBD_CHUNK_HEADER_SIZE + 4 + 8 * (k - 1);
      wr32 (p, (uint32_t) (rd32 (p) + (e - pos)));
    }
    else {
      uint8_t *p = h + NBD_CHUNK_HEADER_SIZE + 4 + 8 * k;
      wr32 (p, (uint32_t) (e - pos));
      wr32 (p + 4, flags);
      k++;
    }
    pos = e;
    if ((j->flags & NBD_CMD_FLAG_REQ_ONE) && k == 1)
      break;
  }
  if (k == 0)
    return EIO;
  if (j->flags & NBD_CMD_FLAG_REQ_ONE)
    k = 1;
  chunk_header (h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, j->cookie, 4 + 8 * k);
  wr32 (h + NBD_CHUNK_HEADER_SIZE, 1);   /* base:allocation's context id */
  struct iovec iov = { h, NBD_CHUNK_HEADER_SIZE + 4 + 8 * k };
  send_iov (j, &iov, 1);
  return -1;
}

void
nbd_job_run (struct nbd_job *j)
{
  struct nbd_conn *c = j->conn;
  pthread_rwlock_t *rl = nbd_export_rmw_lock (c->srv, c->exp);
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
    case NBD_CMD_WRITE:        err = do_write (j, rl); break;
    case NBD_CMD_FLUSH:        err = sync_cache (j); break;
    case NBD_CMD_TRIM:
    case NBD_CMD_WRITE_ZEROES: err = do_trim_or_zero (j, rl); break;
    case NBD_CMD_CACHE: {
      uint32_t bs = scsi_lu_block_size (lu_of (j));
      uint64_t a = j->offset / bs, e = (j->offset + j->length + bs - 1) / bs;
      err = ranged (j, a, e - a);
      break;
    }
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
