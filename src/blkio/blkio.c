/* The block-I/O seam: byte ranges as SCSI commands on one logical unit.
 *
 * Every call turns a byte range into CDBs for the unit.  The aligned part
 * of a range goes to the core as it is; a partial edge block is
 * read-modify-written through a scratch vector.  The rmw lock orders the
 * two: a read-modify-write holds it exclusively from its read to its
 * write, so no other write, zero or trim of the unit (each holding the
 * lock shared for its whole run) can land in between and be overwritten
 * with the stale bytes.  Reads take no lock: the cache serves each block
 * whole, before or after a write of it.
 *
 * Submitted writes (blkio_submit on a unit with asynchronous I/O) take
 * the lock shared only to be counted in aio_writes, and leave the count
 * when the store answers: a read-modify-write, once it holds the lock
 * exclusively (so the count cannot rise), waits for the count to reach
 * zero (exclusive below), and so still never overlaps a write.
 *
 * Lock order: the rmw lock, then whatever the SCSI core and the cache take
 * (their locks are never held when these functions return).
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "blkio.h"

int
blkio_init (struct blkio *io, struct scsi_lu *lu, struct sgv_pool *sgv)
{
  memset (io, 0, sizeof *io);
  io->lu = lu;
  io->sgv = sgv;
  io->bs = scsi_lu_block_size (lu);
  io->size = scsi_lu_nblocks (lu) * io->bs;
  io->overcommitted = scsi_lu_store (lu)->caps & STORE_CAP_OVERCOMMIT;
  atomic_init (&io->stopping, false);
  io->aio_writes = io->aio_reads = 0;
  pthread_mutex_init (&io->aio_lock, NULL);
  pthread_cond_init (&io->aio_idle, NULL);
  errno = pthread_rwlock_init (&io->rmw, NULL);
  return errno ? -1 : 0;
}

void
blkio_fini (struct blkio *io)
{
  pthread_mutex_lock (&io->aio_lock);
  while (io->aio_writes > 0 || io->aio_reads > 0)
    pthread_cond_wait (&io->aio_idle, &io->aio_lock);
  pthread_mutex_unlock (&io->aio_lock);
  pthread_rwlock_destroy (&io->rmw);
  pthread_mutex_destroy (&io->aio_lock);
  pthread_cond_destroy (&io->aio_idle);
}

/* The rmw lock exclusively, with no submitted write in flight. */
static void
exclusive (struct blkio *io)
{
  pthread_rwlock_wrlock (&io->rmw);
  pthread_mutex_lock (&io->aio_lock);
  while (io->aio_writes > 0)
    pthread_cond_wait (&io->aio_idle, &io->aio_lock);
  pthread_mutex_unlock (&io->aio_lock);
}

void
blkio_stop (struct blkio *io)
{
  atomic_store (&io->stopping, true);
}

int
blkio_thread_prepare (struct blkio *io)
{
  assert (io != NULL && io->lu != NULL);
  return scsi_lu_thread_prepare (io->lu);
}

void
blkio_count (struct blkio *io, enum blkio_op op, uint64_t len, int err)
{
  atomic_fetch_add_explicit (&io->ctr.requests[op], 1, memory_order_relaxed);
  if (err)
    atomic_fetch_add_explicit (&io->ctr.errors[blkio_error_kind (err)], 1,
                               memory_order_relaxed);
  else if (op == BLKIO_OP_READ)
    atomic_fetch_add_explicit (&io->ctr.bytes_read, len, memory_order_relaxed);
  else if (op == BLKIO_OP_WRITE)
    atomic_fetch_add_explicit (&io->ctr.bytes_written, len, memory_order_relaxed);
}

void
blkio_get_stats (const struct blkio *io, struct blkio_stats *st)
{
  for (unsigned i = 0; i < BLKIO_NOPS; i++)
    st->requests[i] = atomic_load_explicit (&io->ctr.requests[i], memory_order_relaxed);
  for (unsigned i = 0; i < BLKIO_NERRS; i++)
    st->errors[i] = atomic_load_explicit (&io->ctr.errors[i], memory_order_relaxed);
  st->bytes_read = atomic_load_explicit (&io->ctr.bytes_read, memory_order_relaxed);
  st->bytes_written = atomic_load_explicit (&io->ctr.bytes_written, memory_order_relaxed);
}

enum blkio_err
blkio_error_kind (int err)
{
  switch (err) {
  case EPERM: case EROFS:     return BLKIO_ERR_PERM;
  case EINVAL:                return BLKIO_ERR_INVAL;
  case ENOSPC: case EDQUOT:   return BLKIO_ERR_NOSPC;
  case EOVERFLOW:             return BLKIO_ERR_OVERFLOW;
  case ENOTSUP:               return BLKIO_ERR_NOTSUP;
  case ESHUTDOWN:             return BLKIO_ERR_SHUTDOWN;
  default:                    return BLKIO_ERR_IO;
  }
}

const char *
blkio_error_name (enum blkio_err k)
{
  static const char *const names[BLKIO_NERRS] = {
    "io", "perm", "inval", "nospc", "overflow", "notsup", "shutdown",
  };
  return k < BLKIO_NERRS ? names[k] : "io";
}

const char *
blkio_op_name (enum blkio_op op)
{
  static const char *const names[BLKIO_NOPS] = {
    "read", "write", "flush", "trim", "zero", "cache", "extents", "other",
  };
  return op < BLKIO_NOPS ? names[op] : "other";
}

void blkio_write_lock (struct blkio *io) { pthread_rwlock_rdlock (&io->rmw); }
void blkio_write_unlock (struct blkio *io) { pthread_rwlock_unlock (&io->rmw); }

struct sgv_vec *
blkio_vec_get (struct blkio *io, size_t len)
{
  struct sgv_vec *v;

  while ((v = sgv_alloc (io->sgv, len)) == NULL) {
    if (errno != ENOMEM)
      return NULL;
    if (atomic_load (&io->stopping)) {
      errno = ESHUTDOWN;
      return NULL;
    }
    struct timespec ts = { 0, 1000000 };
    nanosleep (&ts, NULL);
  }
  return v;
}

struct sgv_vec *
blkio_vec_try_get (struct blkio *io, size_t len)
{
  struct sgv_vec *v = sgv_try_alloc (io->sgv, len);

  if (v == NULL && errno == ENOMEM)
    errno = atomic_load (&io->stopping) ? ESHUTDOWN : EAGAIN;
  return v;
}

void
blkio_vec_put (struct blkio *io, struct sgv_vec *v)
{
  sgv_free (io->sgv, v);
}

int
blkio_vec_error (int err)
{
  return err == E2BIG ? EINVAL : err == ESHUTDOWN ? ESHUTDOWN : EIO;
}

/* The same, for a failure just now. */
static int
vec_error (void)
{
  return blkio_vec_error (errno);
}

static bool
in_range (const struct blkio *io, uint64_t off, uint64_t len)
{
  return off <= io->size && len <= io->size - off;
}

/* Run the CDB in c->cdb (len bytes) with buffer buf; returns an errno. */
static int
run (struct blkio *io, struct scsi_cmd *c, unsigned cdb_len,
     const struct sgv_vec *buf, size_t buf_len)
{
  c->cdb_len = cdb_len;
  c->buf = (struct sgv_vec *) buf;
  c->buf_len = (uint32_t) buf_len;
  scsi_exec (io->lu, c);
  return scsi_cmd_errno (c);
}

static int
read_blocks (struct blkio *io, struct scsi_cmd *c, struct sgv_vec *v,
             uint64_t off, uint64_t len)
{
  return run (io, c, scsi_cdb_read16 (c->cdb, off / io->bs, (uint32_t) (len / io->bs), false),
              v, len);
}

static int
write_blocks (struct blkio *io, struct scsi_cmd *c, const struct sgv_vec *v,
              uint64_t off, uint64_t len, bool fua)
{
  return run (io, c, scsi_cdb_write16 (c->cdb, off / io->bs, (uint32_t) (len / io->bs), fua),
              v, len);
}

/* Copy n bytes from src at soff into dst at doff. */
static void
copy_vec (struct sgv_vec *dst, size_t doff, const struct sgv_vec *src,
          size_t soff, size_t n)
{
  struct iovec seg[64];

  while (n > 0) {
    size_t m = n < 64 * SGV_PAGE ? n : 64 * SGV_PAGE;
    int cnt = sgv_slice (src, soff, m, seg, 64);
    assert (cnt > 0);              /* 64 segments hold at least 64 pages */
    for (int i = 0; i < cnt; i++) {
      sgv_copy_from_buf (dst, doff, seg[i].iov_base, seg[i].iov_len);
      doff += seg[i].iov_len;
    }
    soff += m;
    n -= m;
  }
}

/* Round [off, off+len) out to whole blocks: [*a, *e). */
static void
span (const struct blkio *io, uint64_t off, uint64_t len, uint64_t *a, uint64_t *e)
{
  *a = off / io->bs * io->bs;
  *e = (off + len + io->bs - 1) / io->bs * io->bs;
}

/* Unaligned ranges go through scratch vectors in pieces: a piece starts
 * where the last ended and ends at most RMW_PIECE past the block its
 * start lies in, so the blocks it touches span at most RMW_PIECE bytes
 * (one vector of a fixed pool holds them; one CDB carries them). */
#define RMW_PIECE (4u << 20)

static uint64_t
piece_end (const struct blkio *io, uint64_t p, uint64_t end)
{
  uint64_t limit = p / io->bs * io->bs + RMW_PIECE;
  return end < limit ? end : limit;
}

int
blkio_read (struct blkio *io, struct scsi_cmd *c, uint64_t off, uint64_t len,
            struct sgv_vec *v)
{
  uint64_t a, e;
  int err = 0;

  assert (in_range (io, off, len) && len > 0 && v->len >= len);
  span (io, off, len, &a, &e);
  if (a == off && e == off + len)
    return read_blocks (io, c, v, off, len);
  struct sgv_vec *t = blkio_vec_get (io, e - a < RMW_PIECE ? e - a : RMW_PIECE);
  if (t == NULL)
    return vec_error ();
  for (uint64_t p = off, q; p < off + len && err == 0; p = q) {
    q = piece_end (io, p, off + len);
    span (io, p, q - p, &a, &e);
    err = read_blocks (io, c, t, a, e - a);
    if (err == 0)
      copy_vec (v, p - off, t, p - a, q - p);
  }
  blkio_vec_put (io, t);
  return err;
}

/* Block b's bytes into t at toff, through the one-block vector x. */
static int
read_block_into (struct blkio *io, struct scsi_cmd *c, uint64_t off,
                 struct sgv_vec *t, size_t toff, struct sgv_vec *x)
{
  int err = read_blocks (io, c, x, off, io->bs);
  if (err == 0)
    copy_vec (t, toff, x, 0, io->bs);
  return err;
}

/* Write [off, off+len), whose bytes come from src at soff (zeroes with
 * src NULL), by read-modify-write of its partial edge blocks; only those
 * are read.  The rmw lock is held exclusively. */
static int
rmw (struct blkio *io, struct scsi_cmd *c, uint64_t off, uint64_t len,
     const struct sgv_vec *src, size_t soff, bool fua)
{
  uint64_t a, e;
  int err = 0;

  span (io, off, len, &a, &e);
  struct sgv_vec *t = blkio_vec_get (io, e - a < RMW_PIECE ? e - a : RMW_PIECE);
  if (t == NULL)
    return vec_error ();
  struct sgv_vec *x = blkio_vec_get (io, io->bs);
  if (x == NULL) {
    blkio_vec_put (io, t);
    return vec_error ();
  }
  for (uint64_t p = off, q; p < off + len && err == 0; p = q) {
    q = piece_end (io, p, off + len);
    span (io, p, q - p, &a, &e);
    if (p > a)                                     /* partial first block */
      err = read_block_into (io, c, a, t, 0, x);
    if (err == 0 && q < e && (e - io->bs > a || p == a))   /* partial last block */
      err = read_block_into (io, c, e - io->bs, t, e - io->bs - a, x);
    if (err)
      break;
    if (src)
      copy_vec (t, p - a, src, soff + (p - off), q - p);
    else
      sgv_zero (t, p - a, q - p);
    err = write_blocks (io, c, t, a, e - a, fua);
  }
  blkio_vec_put (io, x);
  blkio_vec_put (io, t);
  return err;
}

int
blkio_write (struct blkio *io, struct scsi_cmd *c, uint64_t off, uint64_t len,
             const struct sgv_vec *v, unsigned flags)
{
  bool fua = flags & BLKIO_FUA;
  int err;

  assert (in_range (io, off, len) && len > 0 && v->len >= len);
  if (off % io->bs == 0 && len % io->bs == 0) {
    pthread_rwlock_rdlock (&io->rmw);
    err = write_blocks (io, c, v, off, len, fua);
  }
  else {
    exclusive (io);
    err = rmw (io, c, off, len, v, 0, fua);
  }
  pthread_rwlock_unlock (&io->rmw);
  return err;
}

static int
flush_if (struct blkio *io, struct scsi_cmd *c, int err, unsigned flags)
{
  if (err == 0 && (flags & BLKIO_FUA))
    err = blkio_flush (io, c);
  return err;
}

/* The whole blocks [a, e) in CDBs of at most BLKIO_CHUNK_BYTES: WRITE
 * SAME (zero), UNMAP (trim, param a scratch vector) or PRE-FETCH. */
enum ranged_op { RANGED_ZERO, RANGED_ZERO_MAY_TRIM, RANGED_UNMAP, RANGED_PREFETCH };

static int
ranged (struct blkio *io, struct scsi_cmd *c, enum ranged_op op, uint64_t a,
        uint64_t e, struct sgv_vec *param)
{
  int err = 0;

  for (uint64_t p = a; p < e && err == 0; p += BLKIO_CHUNK_BYTES) {
    uint64_t lba = p / io->bs;
    uint32_t n = (uint32_t) ((e - p < BLKIO_CHUNK_BYTES ? e - p : BLKIO_CHUNK_BYTES) / io->bs);
    switch (op) {
    case RANGED_ZERO:
    case RANGED_ZERO_MAY_TRIM:
      err = run (io, c, scsi_cdb_write_same16 (c->cdb, lba, n, op == RANGED_ZERO_MAY_TRIM, true),
                 NULL, 0);
      break;
    case RANGED_UNMAP: {
      uint8_t p8[24];
      uint32_t plen;
      unsigned len = scsi_cdb_unmap (c->cdb, p8, &lba, &n, 1, &plen);
      sgv_copy_from_buf (param, 0, p8, plen);
      err = run (io, c, len, param, plen);
      break;
    }
    case RANGED_PREFETCH:
      err = run (io, c, scsi_cdb_prefetch16 (c->cdb, lba, n), NULL, 0);
      break;
    }
  }
  return err;
}

int
blkio_zero (struct blkio *io, struct scsi_cmd *c, uint64_t off, uint64_t len,
            unsigned flags)
{
  uint64_t end = off + len;
  uint64_t a = (off + io->bs - 1) / io->bs * io->bs, e = end / io->bs * io->bs;
  bool aligned = off % io->bs == 0 && end % io->bs == 0;
  int err = 0;

  assert (in_range (io, off, len));
  if ((flags & BLKIO_FAST_ZERO) && !(scsi_lu_store (io->lu)->caps & STORE_CAP_FAST_ZERO))
    return ENOTSUP;
  if (len == 0)
    return flush_if (io, c, 0, flags);
  if (aligned)
    pthread_rwlock_rdlock (&io->rmw);
  else
    exclusive (io);
  if (a < e)
    err = ranged (io, c, flags & BLKIO_MAY_TRIM ? RANGED_ZERO_MAY_TRIM : RANGED_ZERO,
                  a, e, NULL);
  if (err == 0 && !aligned) {
    if (a >= e)                          /* within one or two blocks */
      err = rmw (io, c, off, len, NULL, 0, false);
    else {
      if (off < a)
        err = rmw (io, c, off, a - off, NULL, 0, false);
      if (err == 0 && e < end)
        err = rmw (io, c, e, end - e, NULL, 0, false);
    }
  }
  pthread_rwlock_unlock (&io->rmw);
  return flush_if (io, c, err, flags);
}

int
blkio_trim (struct blkio *io, struct scsi_cmd *c, uint64_t off, uint64_t len,
            unsigned flags)
{
  uint64_t a = (off + io->bs - 1) / io->bs * io->bs, e = (off + len) / io->bs * io->bs;
  int err = 0;

  assert (in_range (io, off, len));
  if (a < e) {
    struct sgv_vec *param = blkio_vec_get (io, 64);
    if (param == NULL)
      return vec_error ();
    pthread_rwlock_rdlock (&io->rmw);
    err = ranged (io, c, RANGED_UNMAP, a, e, param);
    pthread_rwlock_unlock (&io->rmw);
    blkio_vec_put (io, param);
  }
  return flush_if (io, c, err, flags);
}

int
blkio_flush (struct blkio *io, struct scsi_cmd *c)
{
  return run (io, c, scsi_cdb_sync_cache16 (c->cdb, 0, 0), NULL, 0);
}

int
blkio_cache (struct blkio *io, struct scsi_cmd *c, uint64_t off, uint64_t len)
{
  uint64_t a, e;

  assert (in_range (io, off, len));
  if (len == 0)
    return 0;
  span (io, off, len, &a, &e);
  return ranged (io, c, RANGED_PREFETCH, a, e, NULL);
}

#define LBA_STATUS_MAX 64

int
blkio_extents (struct blkio *io, struct scsi_cmd *c, uint64_t off, uint64_t len,
               struct blkio_extent *ext, unsigned max, unsigned *n)
{
  const uint32_t alloc = 8 + 16 * LBA_STATUS_MAX;
  struct scsi_lba_status d[LBA_STATUS_MAX];
  uint8_t raw[8 + 16 * LBA_STATUS_MAX];
  uint64_t pos = off, end = off + len;
  unsigned k = 0;
  int err, cnt;

  assert (in_range (io, off, len) && len > 0 && max > 0);
  struct sgv_vec *v = blkio_vec_get (io, alloc);
  if (v == NULL)
    return vec_error ();
  err = run (io, c, scsi_cdb_get_lba_status (c->cdb, off / io->bs, alloc), v, alloc);
  if (err == 0) {
    sgv_copy_to_buf (v, 0, raw, c->xfer);
    cnt = scsi_decode_lba_status (raw, c->xfer, d, LBA_STATUS_MAX);
    for (int i = 0; i < cnt && pos < end; i++) {
      uint64_t s = d[i].lba * io->bs, e = s + (uint64_t) d[i].nblocks * io->bs;
      bool hole = d[i].provisioning != 0;
      if (e <= pos)
        continue;
      if (e > end)
        e = end;
      if (k > 0 && ext[k - 1].hole == hole)
        ext[k - 1].len += e - pos;
      else if (k < max)
        ext[k++] = (struct blkio_extent) { .len = e - pos, .hole = hole,
                                           .unreserved = !hole && io->overcommitted };
      else
        break;
      pos = e;
    }
    if (k == 0)
      err = EIO;                       /* the core described nothing of it */
  }
  blkio_vec_put (io, v);
  *n = k;
  return err;
}

bool
blkio_submit_async (const struct blkio *io, const struct blkio_aio *a)
{
  return scsi_lu_async (io->lu) && !(a->flags & BLKIO_FUA) && a->len > 0 &&
         a->off % io->bs == 0 && a->len % io->bs == 0 &&
         a->v->len == a->len;
}

/* The unit's answer to a submitted command. */
static void
submitted (struct scsi_cmd *c, void *arg)
{
  struct blkio_aio *a = arg;
  struct blkio *io = a->io;
  bool write = a->write;

  /* The front-end is told before the count falls (blkio_fini may free io
   * after it), and may reuse a and c at once. */
  a->done (a, scsi_cmd_errno (c));
  pthread_mutex_lock (&io->aio_lock);
  if ((write ? --io->aio_writes : --io->aio_reads) == 0)
    pthread_cond_broadcast (&io->aio_idle);
  pthread_mutex_unlock (&io->aio_lock);
}

void
blkio_submit (struct blkio *io, struct scsi_cmd *c, struct blkio_aio *a)
{
  assert (in_range (io, a->off, a->len) && a->len > 0 && a->v->len >= a->len);
  assert (a->done != NULL && (!a->write || !(a->flags & ~BLKIO_FUA)));
  a->io = io;
  if (!blkio_submit_async (io, a)) {
    a->done (a, a->write ? blkio_write (io, c, a->off, a->len, a->v, a->flags) :
                           blkio_read (io, c, a->off, a->len, a->v));
    return;
  }
  if (a->write) {
    pthread_rwlock_rdlock (&io->rmw);
    pthread_mutex_lock (&io->aio_lock);
    io->aio_writes++;
    pthread_mutex_unlock (&io->aio_lock);
    pthread_rwlock_unlock (&io->rmw);
    scsi_cdb_write16 (c->cdb, a->off / io->bs, (uint32_t) (a->len / io->bs), false);
  }
  else {
    pthread_mutex_lock (&io->aio_lock);
    io->aio_reads++;
    pthread_mutex_unlock (&io->aio_lock);
    scsi_cdb_read16 (c->cdb, a->off / io->bs, (uint32_t) (a->len / io->bs), false);
  }
  c->cdb_len = 16;
  c->buf = a->v;
  c->buf_len = (uint32_t) a->len;
  scsi_submit (io->lu, c, submitted, a);
}
