/* sgv: scatter-gather vectors and their caching pool.
 *
 * A vector covers one data transfer with a list of page-aligned buffers
 * (segments of at most SGV_MAX_SEG bytes).  The pool rounds a request up to
 * an order (capacity = SGV_PAGE << order) and keeps freed vectors on
 * per-order recycling lists, most recently used first, so that the next
 * transfer of that order reuses one without touching the allocator.  Idle
 * vectors are trimmed oldest first by sgv_pool_trim (called on a timer by
 * the daemon) and whenever the cached bytes pass the pool's limit;
 * sgv_pool_flush frees every idle vector synchronously.
 *
 * A prefilled pool is fixed (swap mode): it never allocates or frees
 * again until destroyed.  A length with no idle vector of its order takes
 * the smallest larger idle one; with none, sgv_alloc waits for a free
 * (backpressure); a length larger than any vector the pool holds fails
 * with E2BIG.  Trim does nothing, and flush runs the release callback on
 * the idle vectors but keeps their memory.
 *
 * Invariant: a cached (idle) vector pins nothing.  Its priv pointer belongs
 * to the user while the vector is allocated; when the vector's memory is
 * finally released (trim, flush, destroy) the pool's release callback runs,
 * without the pool lock held, so that whatever priv held is dropped there.
 */
#ifndef SGBLK_SGV_H
#define SGBLK_SGV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define SGV_PAGE     4096u
#define SGV_MAX_SEG  (128u * 1024u)
#define SGV_MAX_ORDER 14          /* 4 KiB << 14 = 64 MiB */

struct sgv_pool;

struct sgv_vec {
  /* Public, valid between sgv_alloc and sgv_free.  iov/nents describe
   * exactly len bytes (the last segment is shortened as needed). */
  struct iovec *iov;
  int nents;
  size_t len;
  size_t capacity;   /* SGV_PAGE << order */
  void *priv;        /* the user's; see the invariant above */
  /* Private to the pool. */
  int order;
  int total_ents;    /* segments covering capacity */
  size_t last_seg_len;
  uint64_t last_used; /* monotonic ns when freed, for trimming */
  struct sgv_vec *lru_prev, *lru_next;
};

struct sgv_stats {
  uint64_t allocated;   /* vectors whose memory exists (in use + cached) */
  uint64_t in_use;      /* handed out, not yet freed */
  uint64_t cached;      /* idle on the recycling lists */
  uint64_t cached_bytes;
  uint64_t hits;        /* allocations served from the cache */
  uint64_t misses;      /* allocations that had to allocate memory */
  uint64_t flushed;     /* vectors released by sgv_pool_flush */
  uint64_t trimmed;     /* vectors released by trim or the limit */
  uint64_t failed;      /* allocations that failed */
  uint64_t waits;       /* allocations that waited for a free (fixed pool) */
};

typedef void (*sgv_release_fn) (struct sgv_vec *v, void *opaque);

struct sgv_pool_config {
  const char *name;
  size_t cache_limit;        /* max idle bytes kept; 0 = 64 MiB */
  uint64_t idle_ns;          /* trim keeps vectors idle for less than this */
  sgv_release_fn release;    /* may be NULL */
  void *release_opaque;
};

struct sgv_pool *sgv_pool_create (const struct sgv_pool_config *cfg);
/* Flushes, then frees the pool.  Vectors still in use are a bug: they are
 * counted, not freed; returns -1 with EBUSY in that case. */
int sgv_pool_destroy (struct sgv_pool *p);

/* len 1 .. SGV_PAGE << SGV_MAX_ORDER.  NULL with errno (EINVAL, ENOMEM,
 * E2BIG past a fixed pool's largest vector). */
struct sgv_vec *sgv_alloc (struct sgv_pool *p, size_t len);
/* The same, but where sgv_alloc would wait for a vector of a fixed pool
 * to come back, NULL with errno EAGAIN. */
struct sgv_vec *sgv_try_alloc (struct sgv_pool *p, size_t len);
void sgv_free (struct sgv_pool *p, struct sgv_vec *v);

/* Release every idle vector now; returns how many were released. */
size_t sgv_pool_flush (struct sgv_pool *p);
/* Release idle vectors older than the pool's idle_ns; returns the count. */
size_t sgv_pool_trim (struct sgv_pool *p);
void sgv_pool_get_stats (struct sgv_pool *p, struct sgv_stats *st);

/* Preallocate n vectors of order 'order' into the cache and fix the pool
 * (swap mode; see above).  Call it for each order before the pool is used. */
int sgv_pool_prefill (struct sgv_pool *p, int order, unsigned n);

/* Test hook: make every nth allocation of new memory fail (0 = never). */
void sgv_pool_fail_every (struct sgv_pool *p, unsigned nth);

/* Helpers on the data in a vector. */
void sgv_copy_from_buf (struct sgv_vec *v, size_t off, const void *buf, size_t n);
void sgv_copy_to_buf (const struct sgv_vec *v, size_t off, void *buf, size_t n);
void sgv_zero (struct sgv_vec *v, size_t off, size_t n);
bool sgv_is_zero (const struct sgv_vec *v, size_t off, size_t n);
/* Fill out[] with segments covering [off, off+n) of v; returns the count,
 * or -1 with EINVAL if more than max entries would be needed. */
int sgv_slice (const struct sgv_vec *v, size_t off, size_t n,
               struct iovec *out, int max);

#endif
