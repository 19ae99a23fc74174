/* The compressed block map: a struct store over an optional backing store.
 *
 * meta[] has one 16-byte entry per cache block: the object handle (or, for
 * a SAME block, its fill word), the compressed size and the flags below.
 * An entry, and the object it points to, change only under its block's
 * stripe lock (block % NSTRIPES), so two threads never serialize on one
 * lock for blocks in other stripes, and a reader under the block lock
 * always sees a whole object.  A rewrite whose object falls in the same
 * size class reuses the object in place; otherwise it stores a new object
 * and frees the old.
 *
 * Memory mode (no backing store): absent blocks read as zeroes and a block
 * written with zeroes becomes absent, so zeroing and trimming free memory.
 * A write that would pass mem_limit fails with ENOSPC and leaves the old
 * data intact.
 *
 * Space promises (memory mode).  A present block is reported allocated,
 * which over NBD promises that rewriting it never fails for lack of
 * space.  Only a map whose limit holds every block raw ('promise': no
 * limit, or mem_limit >= size) keeps that promise: a rewrite of a
 * present block may take chunk memory past the limit (what it takes
 * there is partly used chunks, which compaction gives back, since the
 * blocks themselves fit), and a zero without STORE_MAY_TRIM leaves SAME
 * blocks of fill word 0, present, rather than holes.  Reserving each
 * block's raw size instead would make an overcommitted map hold no more
 * than its limit uncompressed, which is what compression is for; so an
 * overcommitted map promises nothing (STORE_CAP_OVERCOMMIT) and the
 * front-ends say so (blkio_extent.unreserved).
 *
 * Backing mode.  The map is the one source of truth: every write, zero and
 * trim lands in the map first, and the backing store receives data only
 * from write-back (flusher.c), which runs under wb_lock, one at a time.
 * A block's states (flags in its entry, changed under its stripe lock):
 *
 *   ABSENT     !PRESENT.  The backing store holds the block's latest data.
 *   CLEAN      PRESENT.  A copy of what the backing store holds.
 *   DIRTY      PRESENT|DIRTY.  Newer than the backing store.
 *   WRITEBACK  PRESENT|DIRTY|WB.  A write-back (wb_lock held) copied out
 *              exactly these contents and is writing them.
 *
 *   ABSENT   -> CLEAN      read miss: the backing store's data is cached
 *   any      -> DIRTY      write, zero or trim (a new entry has no WB bit,
 *                          so a block rewritten during write-back is
 *                          DIRTY again, whatever handle it got)
 *   DIRTY    -> WRITEBACK  write-back copies the block out
 *   WRITEBACK-> CLEAN      that write reached the backing store
 *   WRITEBACK-> DIRTY      that write failed (the block is kept)
 *   CLEAN    -> ABSENT     eviction (CLOCK), only ever of clean blocks
 *
 * Trims and zeroes are DIRTY SAME blocks of fill word 0, written back as
 * one zero request per run; that keeps them ordered with writes.  A FUA
 * write (and every write in writethrough mode) is a plain write followed
 * by a write-back of just its blocks, with STORE_FUA, under wb_lock: the
 * blocks carry whatever a concurrent write to another part of them put
 * there, so nothing is discarded, and the backing store never gets an
 * older copy after a newer one because write-backs never overlap.
 *
 * Why a write acknowledged before a FLUSH is durable when the FLUSH
 * replies: when the write returned, its blocks were DIRTY (or WRITEBACK,
 * or CLEAN after a write-back that finished) holding its data or newer
 * data.  FLUSH takes wb_lock, so no write-back is half done, writes back
 * every DIRTY block, then flushes the backing store (unless nothing was
 * written to it without STORE_FUA since its last flush).  A block is marked
 * CLEAN only while its WB bit is still set, i.e. only if nothing wrote it
 * after write-back copied it: no allocator handle, which LIFO reuse can
 * bring back, decides that.  'unsynced' records whether anything was
 * written back without STORE_FUA since the backing store's last flush, so
 * a FUA write flushes the backing store only when it must.
 *
 * A block whose object fails to decompress (CM_BAD, counted once) is never
 * served: a read of it fails with EIO, unless it is CLEAN, when it is
 * dropped and read again from the backing store; write-back leaves it
 * DIRTY and reports EIO, so FLUSH fails rather than write garbage.
 *
 * Lock order: wb_lock, then one stripe lock at a time.  Clean blocks are
 * evicted by a CLOCK hand (REF set on each hit, cleared on the first
 * pass); when nothing clean is left, writers wait for the flusher.
 *
 * Buffers: each store operation takes its thread's scratch (scratch.c)
 * once, before any lock, so that a thread that cannot get one fails
 * with ENOMEM having changed nothing; cache_thread_prepare maps it ahead
 * of a thread's I/O.
 */
#include <config.h>

#include <errno.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "internal.h"
#include "sync.h"

static const struct store_ops cache_ops;

static inline pthread_mutex_t *
stripe (struct cache *k, uint64_t b)
{
  return &k->stripes[b % CACHE_NSTRIPES];
}

/* Bytes of block b (the last one may be short). */
static inline uint32_t
block_len (const struct cache *k, uint64_t b)
{
  uint64_t start = b << k->shift;
  return k->s.size - start < k->bs ? (uint32_t) (k->s.size - start) : k->bs;
}

/* ---- iovec cursor ---- */

struct cursor {
  const struct iovec *iov;
  int cnt, i;
  size_t off;                    /* within iov[i] */
};

static inline void
cur_norm (struct cursor *c)
{
  while (c->i < c->cnt && c->off == c->iov[c->i].iov_len) {
    c->i++;
    c->off = 0;
  }
}

/* n bytes at the cursor if they lie in one segment, else NULL. */
static inline uint8_t *
cur_direct (struct cursor *c, size_t n)
{
  cur_norm (c);
  if (c->i < c->cnt && c->iov[c->i].iov_len - c->off >= n)
    return (uint8_t *) c->iov[c->i].iov_base + c->off;
  return NULL;
}

static void
cur_io (struct cursor *c, uint8_t *buf, size_t n, bool to_iov)
{
  while (n > 0) {
    cur_norm (c);
    size_t m = c->iov[c->i].iov_len - c->off;
    if (m > n)
      m = n;
    uint8_t *p = (uint8_t *) c->iov[c->i].iov_base + c->off;
    if (to_iov) memcpy (p, buf, m); else memcpy (buf, p, m);
    buf += m;
    c->off += m;
    n -= m;
  }
}

static inline void
cur_skip (struct cursor *c, size_t n)
{
  while (n > 0) {
    cur_norm (c);
    size_t m = c->iov[c->i].iov_len - c->off;
    if (m > n)
      m = n;
    c->off += m;
    n -= m;
  }
}

/* ---- one block ---- */

int
cache_decode (struct cache *k, uint64_t b, uint8_t *out)
{
  struct cmeta *m = &k->meta[b];
  const char *obj;
  int r;

  if (m->flags & CM_SAME) {
    for (uint32_t i = 0; i < k->bs; i += 8)
      memcpy (out + i, &m->handle, 8);
    return 0;
  }
  if (m->flags & CM_SPILLED) {
    struct cache_scratch *sc = cache_scratch_get (k->bs);
    if (sc == NULL || cache_spill_read (k, m->handle, sc->packed) == -1)
      return -1;                          /* EIO: the file failed, not the data */
    obj = (const char *) sc->packed;
  }
  else
    obj = zpool_map (k->zp, m->handle);
  if (m->flags & CM_HUGE) {
    memcpy (out, obj, k->bs);
    return 0;
  }
  if (m->flags & CM_HC)
    r = LZ4_decompress_safe_usingDict (obj, (char *) out, (int) m->csize, (int) k->bs,
                                       (const char *) k->dict, (int) k->dict_len);
  else
    r = LZ4_decompress_safe (obj, (char *) out, (int) m->csize, (int) k->bs);
  if (r != (int) k->bs) {
    if (!(m->flags & CM_BAD)) {
      m->flags |= CM_BAD;
      atomic_store (&k->st.last_corrupt, b);
      atomic_fetch_add (&k->st.corrupt_blocks, 1);
    }
    errno = EIO;
    return -1;
  }
  return 0;
}

/* Bring the shared counters from entry o to entry n.  Only the counters
 * that change are touched: every thread writes them, and a rewrite in
 * place changes none of them.  A spilled block counts as present (and
 * HC, if it is: the dictionary must outlive it) but holds no memory. */
void
cache_account (struct cache *k, const struct cmeta *o, const struct cmeta *n)
{
  int64_t present = 0, same = 0, bytes = 0, huge = 0, dirty = 0, hc = 0, spilled = 0;
  const struct cmeta *e[2] = { o, n };

  for (int i = 0; i < 2; i++) {
    int sign = i ? 1 : -1;
    uint32_t f = e[i]->flags;
    if (!(f & CM_PRESENT))
      continue;
    present += sign;
    if (f & CM_SAME)
      same += sign;
    else if (f & CM_SPILLED)
      spilled += sign;
    else {
      bytes += sign * (int64_t) e[i]->csize;
      if (f & CM_HUGE)
        huge += sign;
    }
    if (f & CM_HC)
      hc += sign;
    if (f & CM_DIRTY)
      dirty += sign;
  }
  if (present) atomic_fetch_add (&k->st.present, (uint64_t) present);
  if (same) atomic_fetch_add (&k->st.same_blocks, (uint64_t) same);
  if (bytes) atomic_fetch_add (&k->st.compr_bytes, (uint64_t) bytes);
  if (huge) atomic_fetch_add (&k->st.huge_blocks, (uint64_t) huge);
  if (dirty) atomic_fetch_add (&k->st.dirty_blocks, (uint64_t) dirty);
  if (hc) atomic_fetch_add (&k->st.hc_blocks, (uint64_t) hc);
  if (spilled) atomic_fetch_add (&k->st.spilled_blocks, (uint64_t) spilled);
}

/* Free what entry o holds that n does not: its object unless n reuses
 * it, its spill slot.  Stripe lock held. */
static void
release (struct cache *k, const struct cmeta *o, const struct cmeta *n)
{
  if (cache_has_object (o) && !(cache_has_object (n) && n->handle == o->handle))
    zpool_free (k->zp, o->handle);
  else if ((o->flags & (CM_PRESENT | CM_SPILLED)) == (CM_PRESENT | CM_SPILLED))
    cache_spill_release (k, o->handle);
}

/* The peak of memory used, kept where memory is taken. */
static void
note_peak (struct cache *k)
{
  uint64_t used = zpool_mem_used (k->zp), peak = atomic_load (&k->mem_peak);
  while (used > peak && !atomic_compare_exchange_weak (&k->mem_peak, &peak, used))
    ;
}

void
cache_drop_block (struct cache *k, uint64_t b)
{
  struct cmeta *m = &k->meta[b];
  static const struct cmeta none;

  if (!(m->flags & CM_PRESENT))
    return;
  release (k, m, &none);
  cache_account (k, m, &none);
  *m = none;
}

static bool
same_word (const uint8_t *p, uint32_t n, uint64_t *word)
{
  uint64_t w;
  memcpy (&w, p, 8);
  for (uint32_t i = 8; i < n; i += 8)
    if (memcmp (p + i, &w, 8) != 0)
      return false;
  *word = w;
  return true;
}

/* After a failed lz4 attempt a block is stored raw without trying for
 * its next CM_SKIP_AFTER_RAW writes: data that did not compress rarely
 * starts to, and each attempt costs about as much as the copy. */
#define CM_SKIP_AFTER_RAW 7u

/* Store bs bytes of data as block b, replacing what was there (zeroes as
 * a hole in memory mode, unless keep_zero: then a present SAME block).
 * Lock held.
 * An object of the same size class is rewritten in place: no allocator
 * call, no lock beyond the stripe's (compaction copies under the stripe
 * lock too).  -1/ENOSPC (or ENOMEM: no scratch) leaves the old contents
 * intact. */
int
cache_store_block (struct cache *k, uint64_t b, const uint8_t *data, bool dirty,
                   bool keep_zero)
{
  struct cmeta *o = &k->meta[b];
  struct cmeta n = {
    .flags = CM_PRESENT | (dirty ? CM_DIRTY : 0) | CM_REF |
             atomic_load_explicit (&k->now, memory_order_relaxed) << CM_AGE_SHIFT,
  };
  uint64_t word;

  if (same_word (data, k->bs, &word)) {
    if (word == 0 && k->backing == NULL && !keep_zero) {   /* a hole costs nothing */
      cache_drop_block (k, b);
      return 0;
    }
    n.flags |= CM_SAME;
    n.handle = word;
  }
  else {
    struct cache_scratch *sc = cache_scratch_get (k->bs);
    if (sc == NULL)
      return -1;
    const uint8_t *src = data;
    uint32_t skip = (o->flags & CM_PRESENT) ? CM_SKIP_OF (o->flags) : 0;
    int r = 0;

    if (skip == 0) {
      /* A block that was incompressible last time most likely still is:
       * try it with a high acceleration, which gives up on random data
       * several times faster and still finds what compresses well. */
      int accel = (o->flags & CM_HUGE) ? 16 : 1;
      r = LZ4_compress_fast_extState (sc->lz4, (const char *) data, (char *) sc->packed,
                                      (int) k->bs, (int) k->zp_threshold, accel);
    }
    if (r > 0) {
      n.csize = (uint32_t) r;
      src = sc->packed;
    }
    else {                                       /* incompressible: raw */
      n.csize = k->bs;
      n.flags |= CM_HUGE | CM_SKIP (skip ? skip - 1 : CM_SKIP_AFTER_RAW);
    }
    if (cache_has_object (o) && zpool_fits (k->zp, o->handle, n.csize))
      n.handle = o->handle;
    else {
      /* A promised rewrite may pass the limit (see the top). */
      bool past = k->promise && (o->flags & CM_PRESENT);
      n.handle = zpool_alloc (k->zp, n.csize, (uint32_t) b, past);
      if (n.handle == 0)
        return -1;
      note_peak (k);
    }
    memcpy (zpool_map (k->zp, n.handle), src, n.csize);
  }
  release (k, o, &n);
  cache_account (k, o, &n);
  *o = n;
  return 0;
}

/* Read block b from the backing store into out (bs bytes, zero-padded). */
static int
backing_read (struct cache *k, uint64_t b, uint8_t *out)
{
  uint32_t len = block_len (k, b);
  struct iovec iov = { out, len };

  if (len < k->bs)
    memset (out + len, 0, k->bs - len);
  return store_pread (k->backing, &iov, 1, b << k->shift);
}

/* A spilled block just read (its object is in the thread's packed
 * buffer) comes back to memory if there is room below the spiller's low
 * watermark; otherwise it stays in the file.  Lock held. */
static void
bring_back (struct cache *k, uint64_t b)
{
  struct cmeta *m = &k->meta[b];
  struct cache_scratch *sc = cache_scratch_get (k->bs);  /* decode's, mapped */

  if (sc == NULL || !cache_spill_room (k))
    return;
  uint64_t h = zpool_alloc (k->zp, m->csize, (uint32_t) b, false);
  if (h == 0)
    return;
  note_peak (k);
  memcpy (zpool_map (k->zp, h), sc->packed, m->csize);
  struct cmeta n = *m;
  n.handle = h;
  n.flags &= ~(uint32_t) (CM_SPILLED | CM_SPILLING);
  release (k, m, &n);
  cache_account (k, m, &n);
  *m = n;
}

/* Block b's current data into out (bs bytes), from the map or, for an
 * absent block, from the backing store (zeroes in memory mode).  *hit
 * says which.  A CLEAN block that does not decompress is dropped and read
 * again from the backing store, which has the same data.  Lock held. */
static int
fetch (struct cache *k, uint64_t b, uint8_t *out, bool *hit)
{
  struct cmeta *m = &k->meta[b];

  *hit = false;
  if (m->flags & CM_PRESENT) {
    if (cache_decode (k, b, out) == 0) {
      *hit = true;
      if (m->flags & CM_SPILLED)
        bring_back (k, b);
      return 0;
    }
    if (k->backing == NULL || (m->flags & CM_DIRTY))
      return -1;                          /* EIO: the only copy is damaged */
    cache_drop_block (k, b);
  }
  if (k->backing == NULL) {
    memset (out, 0, k->bs);
    return 0;
  }
  return backing_read (k, b, out);
}

/* ---- store operations ---- */

static int
cache_pread (struct store *s, const struct iovec *iov, int cnt, uint64_t off)
{
  struct cache *k = (struct cache *) s;
  struct cursor c = { iov, cnt, 0, 0 };
  uint64_t len = store_iov_len (iov, cnt);
  uint64_t hits = 0;                    /* counted once: the counter is shared */
  struct cache_scratch *sc = cache_scratch_get (k->bs);

  if (sc == NULL)
    return -1;
  uint8_t *bounce = sc->bounce;
  while (len > 0) {
    uint64_t b = off >> k->shift;
    uint32_t in = (uint32_t) (off & (k->bs - 1));
    uint32_t n = k->bs - in < len ? k->bs - in : (uint32_t) len;
    /* Decompress straight into the caller's pages when the whole block
     * lies in one segment. */
    uint8_t *direct = in == 0 && n == k->bs ? cur_direct (&c, n) : NULL;
    uint8_t *buf = direct ? direct : bounce;
    pthread_mutex_t *l = stripe (k, b);
    bool hit;

    pthread_mutex_lock (l);
    if (fetch (k, b, buf, &hit) == -1) {
      int e = errno;
      pthread_mutex_unlock (l);
      atomic_fetch_add_explicit (&k->st.hits, hits, memory_order_relaxed);
      errno = e;
      return -1;
    }
    if (hit) {
      if (!(k->meta[b].flags & CM_REF))
        k->meta[b].flags |= CM_REF;
      hits++;
    }
    else if (k->backing) {
      atomic_fetch_add_explicit (&k->st.misses, 1, memory_order_relaxed);
      /* Keep a clean copy, evicting older clean blocks for it, but never
       * wait for write-back just to cache a read. */
      if (cache_store_block (k, b, buf, false, false) == -1 && errno == ENOSPC) {
        uint64_t runs = atomic_load (&k->wb_runs);
        pthread_mutex_unlock (l);
        cache_evict (k);
        pthread_mutex_lock (l);
        /* Unless the block came back meanwhile, or a write-back changed
         * the backing store (buf may be older than it now). */
        if (!(k->meta[b].flags & CM_PRESENT) && runs == atomic_load (&k->wb_runs))
          cache_store_block (k, b, buf, false, false);   /* still no room: uncached */
      }
    }
    pthread_mutex_unlock (l);
    if (direct)
      cur_skip (&c, n);
    else
      cur_io (&c, bounce + in, n, true);
    off += n;
    len -= n;
  }
  if (hits)
    atomic_fetch_add_explicit (&k->st.hits, hits, memory_order_relaxed);
  return 0;
}

/* Write (from the cursor) or zero (c NULL) the range in the map: DIRTY
 * blocks in backing mode; keep_zero as for cache_store_block.  A partial
 * block is read, merged and stored under its stripe lock, never across
 * an unlock. */
static int
update (struct cache *k, struct cursor *c, uint64_t off, uint64_t len, bool keep_zero)
{
  bool dirty = k->backing != NULL;
  struct cache_scratch *sc = cache_scratch_get (k->bs);

  if (sc == NULL)
    return -1;
  uint8_t *bounce = sc->bounce;
  while (len > 0) {
    uint64_t b = off >> k->shift;
    uint32_t in = (uint32_t) (off & (k->bs - 1));
    uint32_t n = k->bs - in < len ? k->bs - in : (uint32_t) len;
    bool whole = in == 0 && (n == k->bs || n == block_len (k, b));
    pthread_mutex_t *l = stripe (k, b);
    const uint8_t *src;
    bool hit;
    int r;
    struct cursor at = c ? *c : (struct cursor) { 0 };

    pthread_mutex_lock (l);
    for (;;) {
      r = 0;
      if (c && whole && n == k->bs && (src = cur_direct (c, n)) != NULL)
        cur_skip (c, n);                  /* compress straight from the pages */
      else {
        if (!whole)
          r = fetch (k, b, bounce, &hit); /* read-modify-write */
        else
          memset (bounce + n, 0, k->bs - n);
        if (c)
          cur_io (c, bounce + in, n, false);
        else
          memset (bounce + in, 0, n);
        src = bounce;
      }
      if (r == -1)
        break;                            /* the old contents are lost */
      r = cache_store_block (k, b, src, dirty, keep_zero);
      if (r == 0 || errno != ENOSPC || (k->backing == NULL && k->spill == NULL))
        break;
      /* No room: evict, wait for write-back or for the spiller, without
       * the lock.  The block may change meanwhile, so what was merged is
       * stale: merge again from the start. */
      pthread_mutex_unlock (l);
      r = k->backing ? cache_make_room (k) : cache_spill_wait (k);
      pthread_mutex_lock (l);
      if (r == -1)
        break;
      if (c)
        *c = at;
    }
    int e = errno;
    pthread_mutex_unlock (l);
    if (r == -1) {
      errno = e;
      return -1;
    }
    off += n;
    len -= n;
  }
  return 0;
}

/* Make blocks [first, end) durable in the backing store: write back the
 * dirty ones (each run with FUA if fua), then flush the backing store if
 * any write-back, of these blocks or earlier ones, left data volatile. */
static int
sync_blocks (struct cache *k, uint64_t first, uint64_t end, bool fua)
{
  pthread_mutex_lock (&k->wb_lock);
  int r = cache_writeback (k, first, end, fua);
  if (r == 0 && k->unsynced) {
    r = store_flush (k->backing);
    if (r == 0)
      k->unsynced = false;
  }
  int e = errno;
  pthread_mutex_unlock (&k->wb_lock);
  errno = e;
  return r;
}

/* A FUA or writethrough write's own blocks. */
static int
sync_range (struct cache *k, uint64_t off, uint64_t len)
{
  return sync_blocks (k, off >> k->shift, ((off + len - 1) >> k->shift) + 1, true);
}

static int
cache_pwrite (struct store *s, const struct iovec *iov, int cnt, uint64_t off,
              unsigned flags)
{
  struct cache *k = (struct cache *) s;
  struct cursor c = { iov, cnt, 0, 0 };
  uint64_t len = store_iov_len (iov, cnt);

  if (update (k, &c, off, len, false) == -1)
    return -1;
  if (k->backing && (k->mode == CACHE_MODE_WRITETHROUGH || (flags & STORE_FUA)))
    return sync_range (k, off, len);
  cache_flusher_kick (k, false);
  cache_spill_kick (k);
  return 0;
}

static int
cache_zero (struct store *s, uint64_t off, uint64_t len, unsigned flags)
{
  struct cache *k = (struct cache *) s;

  /* A zero that may not deallocate keeps the range allocated where the
   * map can promise room for it. */
  bool keep = k->promise && !(flags & STORE_MAY_TRIM);
  if (update (k, NULL, off, len, keep) == -1)
    return -1;
  if (k->backing && k->mode == CACHE_MODE_WRITETHROUGH)
    return sync_range (k, off, len);
  return 0;
}

static int
cache_trim (struct store *s, uint64_t off, uint64_t len)
{
  return cache_zero (s, off, len, STORE_MAY_TRIM);
}

static int
cache_flush (struct store *s)
{
  struct cache *k = (struct cache *) s;

  if (k->backing == NULL)
    return 0;
  return sync_blocks (k, 0, k->nblocks, false);
}

static int
cache_extent (struct store *s, uint64_t off, uint64_t len, uint64_t *ext_len,
              bool *allocated)
{
  struct cache *k = (struct cache *) s;
  uint64_t b = off >> k->shift, end = off + len;
  uint64_t last = (end - 1) >> k->shift;

  /* Runs of blocks of one kind; entries are read without the lock, which
   * is as good as any answer about data that is changing. */
  if (k->backing == NULL) {
    bool present = k->meta[b].flags & CM_PRESENT;
    while (b < last && ((k->meta[b + 1].flags & CM_PRESENT) != 0) == present)
      b++;
    uint64_t e = (b + 1) << k->shift;
    *ext_len = (e < end ? e : end) - off;
    *allocated = present;
    return 0;
  }
  if (k->meta[b].flags & CM_DIRTY) {       /* data not yet written back */
    while (b < last && (k->meta[b + 1].flags & CM_DIRTY))
      b++;
    uint64_t e = (b + 1) << k->shift;
    *ext_len = (e < end ? e : end) - off;
    *allocated = true;
    return 0;
  }
  while (b < last && !(k->meta[b + 1].flags & CM_DIRTY))
    b++;
  uint64_t e = (b + 1) << k->shift;
  return store_extent (k->backing, off, (e < end ? e : end) - off, ext_len, allocated);
}

static void
fill_stats (struct cache *k, struct cache_stats *st)
{
  memset (st, 0, sizeof *st);
  st->orig_bytes = (uint64_t) k->st.present << k->shift;
  st->compr_bytes = k->st.compr_bytes;
  st->mem_used = zpool_mem_used (k->zp) + k->meta_bytes;
  st->mem_limit = k->mem_limit;
  st->same_blocks = k->st.same_blocks;
  st->huge_blocks = k->st.huge_blocks;
  st->hits = k->st.hits;
  st->misses = k->st.misses;
  st->dirty_blocks = k->st.dirty_blocks;
  st->written_back = k->st.written_back;
  st->evicted = k->st.evicted;
  st->writer_waits = k->st.writer_waits;
  st->corrupt_blocks = k->st.corrupt_blocks;
  st->last_corrupt = k->st.last_corrupt;
  st->compactions = zpool_moved (k->zp);
  st->mem_used_max = k->mem_peak + k->meta_bytes;
  if (st->mem_used_max < st->mem_used)
    st->mem_used_max = st->mem_used;
  st->compacted_bytes = k->st.compacted_bytes;
  st->hc_blocks = k->st.hc_blocks;
  st->recomp_passes = k->st.recomp_passes;
  st->recomp_blocks = k->st.recomp_blocks;
  st->recomp_tried = k->st.recomp_tried;
  st->recomp_saved = k->st.recomp_saved;
  st->recomp_cpu_ns = k->st.recomp_cpu_ns;
  st->spilled_blocks = k->st.spilled_blocks;
  st->bd_reads = k->st.bd_reads;
  st->bd_writes = k->st.bd_writes;
  st->bd_errors = k->st.bd_errors;
  st->bd_last_error = (int) k->st.bd_last_error;
  st->spill_waits = k->st.spill_waits;
  st->block_size = k->bs;
  st->recompress_idle = k->recomp_idle;
  st->spill = k->spill != NULL;
  st->mode = k->mode;
  struct zpool_reserve_stats rs;
  zpool_reserve_get (k->zp, &rs);
  if (rs.on) {
    st->mem_used += rs.level;
    st->reserve_bytes = rs.level;
    st->reserve_low = rs.low;
    st->reserve_high = rs.high;
    st->reserve_waits = rs.waits;
    st->reserve_refills = rs.mapped;
    st->reserve_returned = rs.returned;
  }
}

/* Map the thread's scratch now, so that its I/O maps nothing. */
static int
cache_thread_prepare (struct store *s)
{
  struct cache *k = (struct cache *) s;

  if (cache_scratch_get (k->bs) == NULL)
    return -1;
  return k->backing ? store_thread_prepare (k->backing) : 0;
}

static void
cache_store_stats (struct store *s, struct store_stats *st)
{
  struct cache *k = (struct cache *) s;
  struct cache_stats cs;

  if (k->backing)
    store_get_stats (k->backing, st);
  else
    memset (st, 0, sizeof *st);
  fill_stats (k, &cs);
  st->bytes_allocated = cs.mem_used;
}

/* Free a map and what it has, in the reverse of cache_create's order;
 * every member may be missing (a failed create). */
static void
destroy (struct cache *k)
{
  cache_idle_stop (k);
  cache_spill_close (k);
  zpool_destroy (k->zp);
  for (int i = 0; i < CACHE_NSTRIPES; i++)
    pthread_mutex_destroy (&k->stripes[i]);
  pthread_mutex_destroy (&k->wb_lock);
  free (k->dict);
  free (k->meta);
  cache_scratch_close (k->bs);
  free (k);
}

static void
cache_close (struct store *s)
{
  struct cache *k = (struct cache *) s;

  cache_idle_stop (k);                    /* before the map goes away under it */
  if (k->backing) {
    cache_flush (s);                      /* best effort: the caller flushed already */
    cache_flusher_stop (k);
    store_close (k->backing);
  }
  destroy (k);
}

static const struct store_ops cache_ops = {
  .name = "cache",
  .pread = cache_pread,
  .pwrite = cache_pwrite,
  .flush = cache_flush,
  .trim = cache_trim,
  .zero = cache_zero,
  .extent = cache_extent,
  .thread_prepare = cache_thread_prepare,
  .stats = cache_store_stats,
  .close = cache_close,
};

/* Compaction moves an object: repoint its block if we can lock it now. */
static bool
relocate (void *opaque, uint32_t owner, uint64_t old_h, uint64_t new_h)
{
  struct cache *k = opaque;
  pthread_mutex_t *l = stripe (k, owner);

  if (pthread_mutex_trylock (l) != 0)
    return false;
  struct cmeta *m = &k->meta[owner];
  bool ok = cache_has_object (m) && m->handle == old_h;
  if (ok) {
    /* Copied under the stripe lock: objects are rewritten in place. */
    memcpy (zpool_map (k->zp, new_h), zpool_map (k->zp, old_h), m->csize);
    m->handle = new_h;
  }
  pthread_mutex_unlock (l);
  return ok;
}

uint64_t
cache_min_mem_limit (uint32_t block_size, uint64_t request)
{
  return zpool_request_bytes (block_size ? block_size : CACHE_MIN_BLOCK, request);
}

struct store *
cache_create (const struct cache_config *cfg)
{
  struct cache *k;
  uint32_t bs = cfg->block_size ? cfg->block_size : CACHE_MIN_BLOCK;
  uint64_t size = cfg->backing ? cfg->backing->size : cfg->size;

  if (bs < CACHE_MIN_BLOCK || bs > CACHE_MAX_BLOCK || (bs & (bs - 1)) || size == 0 ||
      cfg->recompress_idle > CACHE_MAX_RECOMPRESS_IDLE ||
      (cfg->spill_path && (cfg->backing || cfg->mem_limit == 0))) {
    errno = EINVAL;
    return NULL;
  }
  if (cfg->backing && cfg->mode == CACHE_MODE_OFF)
    return cfg->backing;
  k = calloc (1, sizeof *k);
  if (k == NULL)
    return NULL;
  k->s.ops = &cache_ops;
  k->s.size = size;
  k->bs = bs;
  k->shift = (unsigned) __builtin_ctz (bs);
  cache_scratch_open (bs);                /* destroy closes it */
  k->nblocks = (size + bs - 1) >> k->shift;
  k->mode = cfg->backing ? cfg->mode : CACHE_MODE_WRITEBACK;
  k->mem_limit = cfg->mem_limit ? cfg->mem_limit :
                 cfg->backing ? (UINT64_C (256) << 20) : 0;
  k->dirty_high = k->mem_limit / 100 * (cfg->dirty_high_pct ? cfg->dirty_high_pct : 50);
  k->zp_threshold = CACHE_RAW_THRESHOLD (bs);
  k->recomp_idle = cfg->recompress_idle;
  k->io_flusher = cfg->io_flusher;
  k->born_ns = sync_now_ns ();
  cache_tick (k);
  k->meta_bytes = k->nblocks * sizeof *k->meta;
  for (int i = 0; i < CACHE_NSTRIPES; i++)
    pthread_mutex_init (&k->stripes[i], NULL);
  pthread_mutex_init (&k->wb_lock, NULL);
  k->meta = calloc (k->nblocks, sizeof *k->meta);
  /* The limit counts chunk memory; the table is fixed overhead.  Every
   * chunk holds an object of some block, so the disk's size bounds the
   * chunks as well as the limit does: a limit far above the disk (say
   * --cache-size 100T) must not size the pool's tables by itself. */
  k->zp = zpool_create (bs, k->mem_limit,
                        k->mem_limit && k->mem_limit < size ? k->mem_limit : size,
                        relocate, k);
  if (k->recomp_idle)
    k->dict = calloc (1, CACHE_DICT_BYTES);
  if (k->meta == NULL || k->zp == NULL || (k->recomp_idle && k->dict == NULL)) {
    destroy (k);
    errno = ENOMEM;
    return NULL;
  }
  if ((cfg->spill_path && cache_spill_open (k, cfg->spill_path) == -1) ||
      (k->recomp_idle && cache_idle_start (k) == -1)) {
    int e = errno;
    destroy (k);
    errno = e;
    return NULL;
  }
  if (cfg->backing) {
    k->backing = cfg->backing;
    k->s.caps = cfg->backing->caps & ~STORE_CAP_MEMORY;
    if (cfg->mode == CACHE_MODE_WRITEBACK)
      k->s.caps |= STORE_CAP_CACHED;
    k->unsynced = true;              /* whatever was there before us, too */
    if (cache_flusher_start (k) == -1) {
      int e = errno;
      k->backing = NULL;             /* still the caller's */
      destroy (k);
      errno = e;
      return NULL;
    }
  }
  else {
    k->s.caps = STORE_CAP_TRIM | STORE_CAP_FAST_ZERO | STORE_CAP_EXTENTS | STORE_CAP_MEMORY;
    k->promise = k->mem_limit == 0 || k->mem_limit >= k->nblocks << k->shift;
    if (!k->promise)
      k->s.caps |= STORE_CAP_OVERCOMMIT;
  }
  if (!cfg->defer_threads && cache_start_threads (&k->s) == -1) {
    int e = errno;
    cache_flusher_stop (k);
    k->backing = NULL;               /* still the caller's */
    destroy (k);
    errno = e;
    return NULL;
  }
  return &k->s;
}

int
cache_start_threads (struct store *s)
{
  if (s == NULL || s->ops != &cache_ops)
    return 0;                        /* no cache (--cache-mode off): no threads */
  struct cache *k = (struct cache *) s;
  if (cache_flusher_run (k) == -1 || cache_idle_run (k) == -1 || cache_spill_run (k) == -1)
    return -1;
  return 0;
}

int
cache_get_stats (struct store *s, struct cache_stats *st)
{
  if (s == NULL || s->ops != &cache_ops) {
    errno = EINVAL;
    return -1;
  }
  fill_stats ((struct cache *) s, st);
  return 0;
}

int
cache_reserve_start (struct store *s, uint64_t low, uint64_t high)
{
  if (s == NULL || s->ops != &cache_ops || ((struct cache *) s)->mem_limit == 0) {
    errno = EINVAL;
    return -1;
  }
  return zpool_reserve_start (((struct cache *) s)->zp, low, high);
}

uint64_t
cache_compact (struct store *s)
{
  if (s == NULL || s->ops != &cache_ops)
    return 0;
  struct cache *k = (struct cache *) s;
  uint64_t freed = zpool_compact (k->zp);
  atomic_fetch_add (&k->st.compacted_bytes, freed);
  return freed;
}

struct cache *
cache_of (struct store *s)
{
  if (s == NULL || s->ops != &cache_ops) {
    errno = EINVAL;
    return NULL;
  }
  return (struct cache *) s;
}

int
cache_mode_parse (const char *name, enum cache_mode *mode)
{
  static const char *const names[] = { "writeback", "writethrough", "off" };
  for (int i = 0; i < 3; i++)
    if (strcmp (name, names[i]) == 0) {
      *mode = (enum cache_mode) i;
      return 0;
    }
  errno = EINVAL;
  return -1;
}

const char *
cache_mode_name (enum cache_mode mode)
{
  switch (mode) {
  case CACHE_MODE_WRITEBACK:    return "writeback";
  case CACHE_MODE_WRITETHROUGH: return "writethrough";
  default:                      return "off";
  }
}
