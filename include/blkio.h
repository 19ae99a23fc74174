/* blkio: the block-I/O seam between byte-addressed front-ends (NBD, FUSE)
 * and the SCSI core.
 *
 * A front-end speaks in bytes; the SCSI core speaks in logical blocks.
 * Everything between the two is here, once, for every front-end:
 * unaligned edges (read-modify-write of the edge blocks), zeroing exactly
 * the bytes asked for, splitting ranges too large for one CDB, waiting
 * out a moment of vector shortage, and the unit's one read-modify-write
 * lock.  That lock is what makes the front-ends coherent: an unaligned
 * write or zero holds it exclusively for its read-modify-write, every
 * other write, zero and trim holds it shared, so an edge block is never
 * written back over a concurrent write, whichever front-end sent it.
 * (A front-end that hands write CDBs to the core directly takes the lock
 * shared with blkio_write_lock.)
 *
 * A read or write may also be submitted (blkio_submit): on a unit whose
 * store takes asynchronous I/O, an aligned one completes later from the
 * store's thread, so many are in flight without a thread waiting for
 * each.  Such a write holds no lock while in flight; it is counted
 * instead, and a read-modify-write waits, under the exclusive lock,
 * until no submitted write is in flight.
 *
 * Calls take the caller's SCSI command, which they reuse for every CDB
 * they run, and return 0 or a positive errno: the SCSI status mapped by
 * scsi_cmd_errno, or ESHUTDOWN once blkio_stop was called, EINVAL for a
 * request no vector of a fixed pool can hold.  Ranges are checked by the
 * caller (each protocol has its own error for them) and asserted here.
 * Scratch vectors are taken from the unit's sgv pool and returned before
 * a call returns.
 */
#ifndef SGBLK_BLKIO_H
#define SGBLK_BLKIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "scsi.h"
#include "sgv.h"

#define BLKIO_CHUNK_BYTES (1ull << 30)   /* one CDB of a zero, trim or prefetch */

/* Flags of blkio_write, blkio_zero and blkio_trim. */
#define BLKIO_FUA        0x1u   /* durable before returning */
#define BLKIO_MAY_TRIM   0x2u   /* zero: the range may be deallocated */
#define BLKIO_FAST_ZERO  0x4u   /* zero: ENOTSUP unless the store zeroes cheaply */

/* The requests a front-end answers, by kind, and the errors it answers
 * them with, by the class a client can tell apart (NBD's error values). */
enum blkio_op {
  BLKIO_OP_READ, BLKIO_OP_WRITE, BLKIO_OP_FLUSH, BLKIO_OP_TRIM,
  BLKIO_OP_ZERO, BLKIO_OP_CACHE, BLKIO_OP_EXTENTS, BLKIO_OP_OTHER,
  BLKIO_NOPS
};
enum blkio_err {
  BLKIO_ERR_IO, BLKIO_ERR_PERM, BLKIO_ERR_INVAL, BLKIO_ERR_NOSPC,
  BLKIO_ERR_OVERFLOW, BLKIO_ERR_NOTSUP, BLKIO_ERR_SHUTDOWN,
  BLKIO_NERRS
};

/* The unit's traffic as its clients saw it, whichever front-end served
 * them (blkio_count); relaxed atomics: figures, not synchronization. */
struct blkio_counters {
  atomic_uint_fast64_t requests[BLKIO_NOPS];
  atomic_uint_fast64_t errors[BLKIO_NERRS];
  atomic_uint_fast64_t bytes_read, bytes_written;
};

struct blkio_stats {
  uint64_t requests[BLKIO_NOPS];
  uint64_t errors[BLKIO_NERRS];
  uint64_t bytes_read, bytes_written;
};

struct blkio {
  struct scsi_lu *lu;
  struct sgv_pool *sgv;
  uint32_t bs;                  /* the unit's logical block size */
  uint64_t size;                /* bytes */
  bool overcommitted;           /* the store may run out of space under data
                                 * too (STORE_CAP_OVERCOMMIT) */
  pthread_rwlock_t rmw;         /* the unit's read-modify-write lock */
  /* Submitted writes in flight; raised only under rmw shared, so it only
   * falls while rmw is held exclusively.  And submitted reads, which
   * blkio_fini waits for too.  Under aio_lock. */
  unsigned aio_writes, aio_reads;
  pthread_mutex_t aio_lock;
  pthread_cond_t aio_idle;
  atomic_bool stopping;         /* vector waits give up with ESHUTDOWN */
  struct blkio_counters ctr;
};

/* An extent of blkio_extents: len bytes, allocated (data) or a hole. */
struct blkio_extent {
  uint64_t len;
  bool hole;                    /* deallocated: reads as zeroes */
  bool unreserved;              /* data, but the unit is overcommitted: a
                                 * write to it may fail for lack of space
                                 * (a protocol that ties allocation to
                                 * that promise must not call it allocated) */
};

int blkio_init (struct blkio *io, struct scsi_lu *lu, struct sgv_pool *sgv);
/* Waits for submitted requests still in flight (a connection left stuck
 * at cleanup): the store answers each within its timeout. */
void blkio_fini (struct blkio *io);
/* From now on, vector waits give up with ESHUTDOWN (the daemon stops). */
void blkio_stop (struct blkio *io);
/* Ready the calling thread for I/O on the unit: map now the per-thread
 * buffers its first request would otherwise map, so that its I/O
 * allocates nothing (swap mode).  Each thread that serves requests calls
 * it once, before its first; I/O works without it.  -1 with errno
 * (ENOMEM). */
int blkio_thread_prepare (struct blkio *io);

/* A vector of len bytes from the unit's pool, waiting out a moment of
 * memory shortage.  NULL with errno ESHUTDOWN (stopping) or E2BIG (no
 * vector of a fixed pool is that large). */
struct sgv_vec *blkio_vec_get (struct blkio *io, size_t len);
/* The same without waiting: NULL with errno EAGAIN when it would wait. */
struct sgv_vec *blkio_vec_try_get (struct blkio *io, size_t len);
void blkio_vec_put (struct blkio *io, struct sgv_vec *v);
/* A request's result after blkio_vec_get failed with errno err: EINVAL for
 * a request larger than any vector, else ESHUTDOWN (or EIO). */
int blkio_vec_error (int err);

/* len bytes at off into v (from its byte 0). */
int blkio_read (struct blkio *io, struct scsi_cmd *c, uint64_t off,
                uint64_t len, struct sgv_vec *v);
/* len bytes of v (from its byte 0) to off. */
int blkio_write (struct blkio *io, struct scsi_cmd *c, uint64_t off,
                 uint64_t len, const struct sgv_vec *v, unsigned flags);
/* Zero exactly [off, off+len); with BLKIO_MAY_TRIM whole blocks may be
 * deallocated. */
int blkio_zero (struct blkio *io, struct scsi_cmd *c, uint64_t off,
                uint64_t len, unsigned flags);
/* Deallocate the whole blocks of [off, off+len); partial edge blocks are
 * left as they are (a trim is advisory). */
int blkio_trim (struct blkio *io, struct scsi_cmd *c, uint64_t off,
                uint64_t len, unsigned flags);
int blkio_flush (struct blkio *io, struct scsi_cmd *c);
/* Bring [off, off+len) into the cache (PRE-FETCH). */
int blkio_cache (struct blkio *io, struct scsi_cmd *c, uint64_t off, uint64_t len);
/* Describe [off, off+len) from off on: up to max extents, adjacent ones
 * of one kind merged, the last one clipped to the range; *n >= 1 on
 * success. */
int blkio_extents (struct blkio *io, struct scsi_cmd *c, uint64_t off,
                   uint64_t len, struct blkio_extent *ext, unsigned max,
                   unsigned *n);

/* Count one request a front-end answered, with the errno it answered
 * (0: success; then len bytes read or written).  Called once per request
 * at the front-end's answer, so that requests it refused itself (a range
 * past the end) count with those the unit ran. */
void blkio_count (struct blkio *io, enum blkio_op op, uint64_t len, int err);
void blkio_get_stats (const struct blkio *io, struct blkio_stats *st);
/* The class of an errno as NBD tells it (EROFS is PERM, EDQUOT NOSPC,
 * anything unknown IO), and its short name ("io", "perm", ...). */
enum blkio_err blkio_error_kind (int err);
const char *blkio_error_name (enum blkio_err k);
/* "read", "write", "flush", "trim", "zero", "cache", "extents", "other". */
const char *blkio_op_name (enum blkio_op op);

/* A request of blkio_submit: the front-end fills write, off, len, v,
 * flags and done, and keeps the struct until done is called. */
struct blkio_aio {
  bool write;
  uint64_t off, len;
  struct sgv_vec *v;            /* data-in or data-out, from its byte 0 */
  unsigned flags;               /* blkio_write's */
  /* Called exactly once with blkio_read's or blkio_write's result, from
   * the store's thread or before blkio_submit returns; it must not wait
   * for I/O. */
  void (*done) (struct blkio_aio *a, int err);
  struct blkio *io;             /* blkio_submit's */
};
/* Whether blkio_submit can return before a's done. */
bool blkio_submit_async (const struct blkio *io, const struct blkio_aio *a);
/* blkio_read or blkio_write, answered by a->done.  c is in flight until
 * then. */
void blkio_submit (struct blkio *io, struct scsi_cmd *c, struct blkio_aio *a);

/* For a front-end that runs write CDBs on the unit itself. */
void blkio_write_lock (struct blkio *io);
void blkio_write_unlock (struct blkio *io);

#endif
