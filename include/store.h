/* store: the backing store interface, a small vtable whose wrappers
 * below check what callers promise.
 *
 * A store is a linear array of bytes of fixed size, addressed to the byte.
 * Callers (the SCSI core, the cache over its backing store) always pass
 * ranges inside [0, size) and only the flags defined below; the store does
 * not re-check them, the wrappers at the end assert them (unless NDEBUG).
 * Every operation returns 0, or -1 with errno set:
 *   ENOSPC   the store could not allocate space (memory limit, full disk)
 *   EIO      the medium failed
 *   ENOTSUP  the operation (e.g. a fast zero) is not possible
 * Operations may be called from many threads at once on disjoint or
 * overlapping ranges; overlapping concurrent writes land in some order,
 * each one whole per block.
 */
#ifndef SGBLK_STORE_H
#define SGBLK_STORE_H

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/uio.h>

struct store;

/* Flags for store_ops.pwrite. */
#define STORE_FUA        0x1u  /* durable before returning */
/* Flags for store_ops.zero. */
#define STORE_MAY_TRIM   0x1u  /* the range may be deallocated */
#define STORE_FAST_ZERO  0x2u  /* fail with ENOTSUP unless it is faster than writing */

/* Capability bits in store.caps. */
#define STORE_CAP_PERSISTENT 0x1u  /* data survives the process (file, device) */
#define STORE_CAP_TRIM       0x2u  /* trim really deallocates */
#define STORE_CAP_FAST_ZERO  0x4u  /* zero is cheaper than writing zeroes */
#define STORE_CAP_EXTENTS    0x8u  /* extent() reports real holes */
#define STORE_CAP_READ_ONLY  0x10u /* opened read-only */
#define STORE_CAP_MEMORY     0x20u /* answers from memory, never waits on I/O */
#define STORE_CAP_CACHED     0x40u /* a write-back cache: plain reads and writes
                                    * are answered from memory, waiting on I/O
                                    * only for a miss or for room */
#define STORE_CAP_OVERCOMMIT 0x80u /* may refuse a write for lack of space
                                    * anywhere, over data too: an extent()
                                    * reported allocated holds data but no
                                    * room reserved for rewriting it */

struct store_stats {
  uint64_t bytes_allocated;   /* memory or disk space in use for data */
  uint64_t reads, writes, flushes, trims, zeroes;
  /* A regular file found shorter than the store (truncated by someone
   * else): transfers refused for it with EIO, and the size last seen. */
  uint64_t short_file_errors;
  uint64_t short_file_size;
};

/* One of the disjoint writes of store_pwrite_batch. */
struct store_write {
  const void *buf;
  size_t len;
  uint64_t offset;
};
#define STORE_BATCH_MAX 64

/* An asynchronous read or write (store_ops.submit).  The submitter fills
 * every field; iov, the memory it points to and the struct itself stay
 * the submitter's to keep until done is called. */
enum store_aio_op { STORE_AIO_READ, STORE_AIO_WRITE };
struct store_aio {
  enum store_aio_op op;
  const struct iovec *iov;
  int iovcnt;
  uint64_t offset;
  /* Called exactly once, with 0 or the errno pread/pwrite would have set,
   * from any thread, possibly before submit returns; it must not call
   * into the store. */
  void (*done) (struct store_aio *a, int err);
};

struct store_ops {
  const char *name;
  int (*pread) (struct store *s, const struct iovec *iov, int iovcnt,
                uint64_t offset);
  int (*pwrite) (struct store *s, const struct iovec *iov, int iovcnt,
                 uint64_t offset, unsigned flags);
  int (*flush) (struct store *s);
  /* Optional (NULL: pwrite one after the other).  Write n (at most
   * STORE_BATCH_MAX) disjoint ranges, at once where the store can (many
   * requests in flight to a remote store); res[i] becomes 0 or the errno
   * of w[i]; with STORE_FUA every write that succeeded is durable. */
  void (*pwrite_batch) (struct store *s, const struct store_write *w, int n,
                        unsigned flags, int *res);
  /* Deallocate; afterwards the range reads as zeroes. */
  /* Optional (NULL: the store is synchronous).  Start a read or a
   * plain write (no FUA) and return at once; a->done reports it.  Many
   * may be in flight; the store bounds each by its own timeout. */
  void (*submit) (struct store *s, struct store_aio *a);
  int (*trim) (struct store *s, uint64_t offset, uint64_t len);
  int (*zero) (struct store *s, uint64_t offset, uint64_t len, unsigned flags);
  /* Describe the extent starting at offset: *ext_len (1..len bytes) of the
   * same kind, *allocated false for a hole that reads as zeroes.  A store
   * without STORE_CAP_EXTENTS reports everything allocated.  Unless the
   * store has STORE_CAP_OVERCOMMIT, a write to an allocated extent never
   * fails with ENOSPC (and zero without STORE_MAY_TRIM leaves its range
   * allocated). */
  int (*extent) (struct store *s, uint64_t offset, uint64_t len,
                 uint64_t *ext_len, bool *allocated);
  /* Optional (NULL: nothing to do).  Give the calling thread now what
   * its first I/O on this store would otherwise allocate (per-thread
   * buffers), so that from then on its I/O allocates nothing: swap mode
   * calls it in every I/O thread before serving.  Idempotent; I/O works
   * without it, only not allocation-free. */
  int (*thread_prepare) (struct store *s);
  void (*stats) (struct store *s, struct store_stats *st);
  void (*close) (struct store *s);
};

struct store {
  const struct store_ops *ops;
  uint64_t size;      /* bytes, a multiple of 512 (callers check) */
  unsigned caps;      /* STORE_CAP_* */
};

/* File or block device store. */
#define STORE_FILE_READ_ONLY 0x1u
#define STORE_FILE_CREATE    0x2u   /* create or extend to create_size */
#define STORE_FILE_DIRECT    0x4u   /* O_DIRECT */
struct store *store_file_open (const char *path, unsigned flags,
                               uint64_t create_size);

/* Ceph RBD image store (src/store/rbd.c): file is
 * rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:conf=PATH][:id=NAME][:keyring=PATH]
 * [:OPTION=VALUE]...  A writable open takes the image's exclusive lock.
 * Requests not answered within timeout seconds (0: STORE_RBD_TIMEOUT)
 * fail with EIO.  NULL with errno, and why set to a phrase naming the
 * problem (ENOTSUP: built without librbd). */
#define STORE_RBD_READ_ONLY 0x1u
/* librbd's own cache as Ceph's configuration has it (its default: on,
 * write-through until the first flush); without this flag it is off
 * unless FILE sets rbd_cache.  For a caller that has no cache of its own
 * in front and tells clients that a flush is needed (WCE). */
#define STORE_RBD_LIBRBD_CACHE 0x2u
/* A default above Ceph's osd_heartbeat_grace (20 s) plus peering: an OSD
 * that dies is marked down and its I/O moves on within it, so only a
 * cluster that cannot recover fails requests. */
#define STORE_RBD_TIMEOUT 60u
bool store_rbd_is_spec (const char *file);
struct store *store_rbd_open (const char *file, unsigned flags, unsigned timeout,
                              char *why, size_t whylen);
/* Requests that passed their deadline; 0 for a store that is no RBD store. */
uint64_t store_rbd_timeouts (struct store *s);
/* Opening waits at most twice the timeout for the cluster (ETIMEDOUT),
 * closing at most the timeout: past it, the close goes on in the
 * background and is counted here (the image's lock stays until it ends,
 * or until the process's watch expires). */
uint64_t store_rbd_closes_abandoned (void);

/* Fault store, for tests: passes calls to inner except those the rules in
 * spec fail (src/store/fault.c says how to write them, e.g.
 * "write:after=8:count=4,read:rate=0.1:errno=EROFS").  Takes inner on
 * success; NULL with EINVAL for a bad spec (inner is still the caller's). */
struct store *store_fault_open (struct store *inner, const char *spec);
/* Calls it failed so far; 0 for a store that is no fault store. */
uint64_t store_fault_injected (struct store *s);

/* The bytes an iovec array describes. */
static inline uint64_t
store_iov_len (const struct iovec *iov, int iovcnt)
{
  uint64_t n = 0;

  for (int i = 0; i < iovcnt; i++)
    n += iov[i].iov_len;
  return n;
}

/* The caller's side of the contract, for the assertions below: a well-
 * formed iovec array, a range inside the store. */
static inline bool
store_iov_ok (const struct iovec *iov, int iovcnt)
{
  if (iovcnt < 0 || (iovcnt > 0 && iov == NULL))
    return false;
  for (int i = 0; i < iovcnt; i++)
    if (iov[i].iov_base == NULL && iov[i].iov_len > 0)
      return false;
  return true;
}

static inline bool
store_range_ok (const struct store *s, uint64_t off, uint64_t len)
{
  return off <= s->size && len <= s->size - off;
}

/* Convenience wrappers: the data path calls through these.  They assert
 * the preconditions of each operation; a failed assertion is a bug in the
 * caller, never in the store. */
static inline int
store_pread (struct store *s, const struct iovec *iov, int iovcnt, uint64_t off)
{
  assert (store_iov_ok (iov, iovcnt));
  assert (store_range_ok (s, off, store_iov_len (iov, iovcnt)));
  return s->ops->pread (s, iov, iovcnt, off);
}

static inline int
store_pwrite (struct store *s, const struct iovec *iov, int iovcnt,
              uint64_t off, unsigned flags)
{
  assert (store_iov_ok (iov, iovcnt));
  assert (store_range_ok (s, off, store_iov_len (iov, iovcnt)));
  assert ((flags & ~STORE_FUA) == 0);
  return s->ops->pwrite (s, iov, iovcnt, off, flags);
}

/* 0 if every write succeeded, else -1 with the first failure's errno. */
static inline int
store_pwrite_batch (struct store *s, const struct store_write *w, int n,
                    unsigned flags, int *res)
{
  assert (n >= 0 && n <= STORE_BATCH_MAX && res != NULL);
  assert ((flags & ~STORE_FUA) == 0);
  for (int i = 0; i < n; i++)
    assert (w[i].buf != NULL && store_range_ok (s, w[i].offset, w[i].len));
  if (s->ops->pwrite_batch)
    s->ops->pwrite_batch (s, w, n, flags, res);
  else
    for (int i = 0; i < n; i++) {
      struct iovec iov = { (void *) w[i].buf, w[i].len };
      res[i] = s->ops->pwrite (s, &iov, 1, w[i].offset, flags) == -1 ? errno : 0;
    }
  for (int i = 0; i < n; i++)
    if (res[i]) {
      errno = res[i];
      return -1;
    }
  return 0;
}

/* Whether store_submit returns before the request is done. */
static inline bool
store_can_submit (const struct store *s)
{
  return s->ops->submit != NULL;
}

/* a->done is called exactly once: later, or (a synchronous store) from
 * here before this returns. */
static inline void
store_submit (struct store *s, struct store_aio *a)
{
  assert (a != NULL && a->done != NULL);
  assert (a->op == STORE_AIO_READ || a->op == STORE_AIO_WRITE);
  assert (store_iov_ok (a->iov, a->iovcnt));
  assert (store_range_ok (s, a->offset, store_iov_len (a->iov, a->iovcnt)));
  if (s->ops->submit) {
    s->ops->submit (s, a);
    return;
  }
  int r = a->op == STORE_AIO_READ ?
    s->ops->pread (s, a->iov, a->iovcnt, a->offset) :
    s->ops->pwrite (s, a->iov, a->iovcnt, a->offset, 0);
  a->done (a, r == -1 ? errno : 0);
}

static inline int
store_flush (struct store *s)
{
  return s->ops->flush (s);
}

static inline int
store_trim (struct store *s, uint64_t off, uint64_t len)
{
  assert (store_range_ok (s, off, len));
  return s->ops->trim (s, off, len);
}

static inline int
store_zero (struct store *s, uint64_t off, uint64_t len, unsigned flags)
{
  assert (store_range_ok (s, off, len));
  assert ((flags & ~(STORE_MAY_TRIM | STORE_FAST_ZERO)) == 0);
  return s->ops->zero (s, off, len, flags);
}

/* Also checks the store's side: an extent of 1..len bytes. */
static inline int
store_extent (struct store *s, uint64_t off, uint64_t len, uint64_t *ext_len,
              bool *allocated)
{
  assert (len > 0 && store_range_ok (s, off, len));
  assert (ext_len != NULL && allocated != NULL);
  int r = s->ops->extent (s, off, len, ext_len, allocated);
  assert (r == -1 || (*ext_len >= 1 && *ext_len <= len));
  return r;
}

/* 0, or -1 with errno (ENOMEM). */
static inline int
store_thread_prepare (struct store *s)
{
  assert (s != NULL && s->ops != NULL);
  return s->ops->thread_prepare ? s->ops->thread_prepare (s) : 0;
}

static inline void
store_get_stats (struct store *s, struct store_stats *st)
{
  assert (st != NULL);
  s->ops->stats (s, st);
}

static inline void
store_close (struct store *s)
{
  if (s)
    s->ops->close (s);
}

#endif
