/* Write-back and eviction of the block map (backing mode).
 *
 * Write-back scans a range of the map in LBA order and sends each run of
 * adjacent dirty blocks as one request: a write of the decompressed
 * blocks, or one zero request for a run of zero blocks (trims and
 * zeroes; up to CACHE_WB_ZERO_BYTES).  Data runs are copied out into
 * wbuf until it is full (CACHE_WB_BYTES) or STORE_BATCH_MAX runs wait,
 * then sent together with store_pwrite_batch, so that a store with
 * requests of high latency (RBD) has many in flight; the runs of a batch
 * are disjoint, so their order does not matter.  It runs under wb_lock, so write-backs never overlap and the
 * backing store never receives an older copy of a block after a newer
 * one.  Copying a block out sets its WB bit; the block is marked clean
 * afterwards only if the bit is still set, i.e. nothing wrote the block
 * meanwhile (map.c's state machine).  A failed request leaves its blocks
 * dirty and is reported; a block that does not decompress is skipped,
 * stays dirty, and the write-back reports EIO once the rest is written.
 *
 * The flusher thread runs write-back once a second while anything is
 * dirty, at once when memory passes the high watermark, and when a writer
 * finds no clean block to evict (it then waits for the flusher's
 * progress: data is never dropped to make room).
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <time.h>


#include "internal.h"
#include "sync.h"

/* A run of dirty data blocks copied out into wbuf, waiting to be sent. */
struct wb_run {
  uint64_t b;
  uint32_t n;
};

static bool
is_zero_block (const struct cmeta *m)
{
  return (m->flags & CM_SAME) && m->handle == 0;
}

/* Clear or keep the WB bits of blocks [b, b+n) after their request:
 * written, they become clean unless rewritten meanwhile; not written, they
 * stay dirty. */
static void
finish_run (struct cache *k, uint64_t b, uint32_t n, bool written)
{
  for (uint32_t i = 0; i < n; i++) {
    pthread_mutex_t *l = &k->stripes[(b + i) % CACHE_NSTRIPES];
    struct cmeta *m = &k->meta[b + i];
    pthread_mutex_lock (l);
    if (m->flags & CM_WB) {
      m->flags &= ~(uint32_t) CM_WB;
      if (written) {
        m->flags &= ~(uint32_t) CM_DIRTY;
        atomic_fetch_sub (&k->st.dirty_blocks, 1);
      }
    }
    pthread_mutex_unlock (l);
  }
}

/* Send the data runs copied out into wbuf, all at once; then clear or
 * keep their blocks' WB bits.  0, or the errno of a failed run. */
static int
send_runs (struct cache *k, const struct wb_run *runs, int nruns, bool fua)
{
  struct store_write w[STORE_BATCH_MAX];
  int res[STORE_BATCH_MAX], err = 0;
  size_t pos = 0;

  if (nruns == 0)
    return 0;
  for (int i = 0; i < nruns; i++) {
    uint64_t off = runs[i].b << k->shift;
    uint64_t len = (uint64_t) runs[i].n << k->shift;
    if (off + len > k->s.size)
      len = k->s.size - off;
    w[i] = (struct store_write) { k->wbuf + pos, (size_t) len, off };
    pos += (size_t) runs[i].n << k->shift;
  }
  store_pwrite_batch (k->backing, w, nruns, fua ? STORE_FUA : 0, res);
  for (int i = 0; i < nruns; i++) {
    finish_run (k, runs[i].b, runs[i].n, res[i] == 0);
    if (res[i]) {
      if (!err)
        err = res[i];
      continue;
    }
    if (!fua)
      k->unsynced = true;
    atomic_fetch_add (&k->wb_runs, 1);
    atomic_fetch_add (&k->st.written_back, runs[i].n);
  }
  return err;
}

int
cache_writeback (struct cache *k, uint64_t first, uint64_t end, bool fua)
{
  uint32_t max = CACHE_WB_BYTES >> k->shift;
  uint32_t zmax = (uint32_t) (CACHE_WB_ZERO_BYTES >> k->shift);
  struct wb_run runs[STORE_BATCH_MAX] = { { 0, 0 } };  /* (sent only up to nruns) */
  int nruns = 0, r;
  uint32_t used = 0;                  /* blocks of wbuf the runs hold */
  int err = 0;

  for (uint64_t b = first; b < end; ) {
    if (!(k->meta[b].flags & CM_DIRTY)) {   /* a quick look; checked locked */
      b++;
      continue;
    }
    if (used == max || nruns == STORE_BATCH_MAX) {
      if ((r = send_runs (k, runs, nruns, fua)) != 0) {
        errno = r;
        return -1;
      }
      nruns = 0;
      used = 0;
    }
    /* Copy out a run of dirty blocks of one kind (data or zero). */
    uint32_t n = 0;
    int zero = -1;
    bool bad = false;
    while (n < (zero == 1 ? zmax : max - used) && b + n < end) {
      uint64_t x = b + n;
      pthread_mutex_t *l = &k->stripes[x % CACHE_NSTRIPES];
      struct cmeta *m = &k->meta[x];
      pthread_mutex_lock (l);
      bool ok = (m->flags & CM_DIRTY) && (zero == -1 || zero == is_zero_block (m));
      if (ok && !is_zero_block (m) &&
          cache_decode (k, x, k->wbuf + ((size_t) (used + n) << k->shift)) == -1)
        ok = false, bad = true;
      if (ok) {
        if (zero == -1)
          zero = is_zero_block (m);
        m->flags |= CM_WB;
      }
      pthread_mutex_unlock (l);
      if (!ok)
        break;
      n++;
    }
    if (n == 0) {                     /* cleaned meanwhile, or damaged */
      if (bad)
        err = EIO;
      b++;
      continue;
    }
    if (!zero) {                      /* sent with the batch */
      runs[nruns++] = (struct wb_run) { b, n };
      used += n;
      b += n;
      continue;
    }
    uint64_t off = b << k->shift;
    uint64_t len = (uint64_t) n << k->shift;
    if (off + len > k->s.size)
      len = k->s.size - off;
    if (store_zero (k->backing, off, len, STORE_MAY_TRIM) == -1) {
      int e = errno;
      finish_run (k, b, n, false);
      r = send_runs (k, runs, nruns, fua);
      errno = e;
      return -1;
    }
    k->unsynced = true;
    atomic_fetch_add (&k->wb_runs, 1);
    finish_run (k, b, n, true);
    atomic_fetch_add (&k->st.written_back, n);
    b += n;
  }
  if ((r = send_runs (k, runs, nruns, fua)) != 0) {
    errno = r;
    return -1;
  }
  if (err) {
    errno = err;
    return -1;
  }
  return 0;
}

unsigned
cache_evict (struct cache *k)
{
  unsigned freed = 0;

  for (uint64_t step = 0; step < 2 * k->nblocks && freed < 32; step++) {
    uint64_t b = atomic_fetch_add (&k->hand, 1) % k->nblocks;
    struct cmeta *m = &k->meta[b];
    if ((m->flags & (CM_PRESENT | CM_DIRTY | CM_SAME)) != CM_PRESENT)
      continue;                        /* a quick look; checked again locked */
    pthread_mutex_t *l = &k->stripes[b % CACHE_NSTRIPES];
    if (pthread_mutex_trylock (l) != 0)
      continue;
    if ((m->flags & (CM_PRESENT | CM_DIRTY | CM_SAME)) == CM_PRESENT) {
      if (m->flags & CM_REF)
        m->flags &= ~(uint32_t) CM_REF;  /* second chance */
      else {
        cache_drop_block (k, b);
        atomic_fetch_add (&k->st.evicted, 1);
        freed++;
      }
    }
    pthread_mutex_unlock (l);
  }
  return freed;
}

int
cache_make_room (struct cache *k)
{
  if (cache_evict (k) > 0)
    return 0;

  /* Everything is dirty: wait for the flusher to write some back. */
  atomic_fetch_add (&k->st.writer_waits, 1);
  pthread_mutex_lock (&k->flock);
  uint64_t before = k->st.written_back;
  uint64_t pass = k->passes_started + 1;   /* the first pass to see the kick */
  k->kicked = true;
  pthread_cond_signal (&k->fcond);
  struct timespec dl = sync_deadline_ns (1000000000u);
  while (k->st.written_back == before && k->passes_done < pass &&
         pthread_cond_timedwait (&k->progress, &k->flock, &dl) != ETIMEDOUT)
    ;
  /* A pass that wrote nothing back and failed means the backing store is
   * failing; one that failed on a damaged block but made room does not
   * fail the writer. */
  int err = k->passes_done >= pass && k->st.written_back == before ? k->wb_error : 0;
  bool none = k->passes_done >= pass && k->st.written_back == before;
  pthread_mutex_unlock (&k->flock);
  if (err) {
    errno = err;                       /* the backing store is failing */
    return -1;
  }
  /* Nothing was dirty to write back and nothing clean is left to evict:
   * the block does not fit in what the cache has, and waiting again would
   * spin for ever (and hold up shutdown), so the writer gets ENOSPC.
   * (The command line refuses caches that small; fragmentation is all
   * that is left.) */
  if (none && atomic_load (&k->st.dirty_blocks) == 0 && cache_evict (k) == 0) {
    errno = ENOSPC;
    return -1;
  }
  return 0;
}

void
cache_flusher_kick (struct cache *k, bool urgent)
{
  if (k->backing == NULL)
    return;
  if (!urgent && zpool_mem_used (k->zp) < k->dirty_high)
    return;
  pthread_mutex_lock (&k->flock);
  k->kicked = true;
  pthread_cond_signal (&k->fcond);
  pthread_mutex_unlock (&k->flock);
}

static void *
flusher (void *arg)
{
  struct cache *k = arg;

  cache_thread_setup (k);
  pthread_setname_np (pthread_self (), "sgblk-flush");
  pthread_mutex_lock (&k->flock);
  while (!k->stopping) {
    if (!k->kicked) {
      struct timespec dl = sync_deadline_ns (1000000000u);
      pthread_cond_timedwait (&k->fcond, &k->flock, &dl);
    }
    k->kicked = false;
    if (k->stopping)
      break;
    k->passes_started++;
    pthread_mutex_unlock (&k->flock);
    int err = 0;
    if (k->st.dirty_blocks > 0) {
      pthread_mutex_lock (&k->wb_lock);
      if (cache_writeback (k, 0, k->nblocks, false) == -1)
        err = errno ? errno : EIO;
      pthread_mutex_unlock (&k->wb_lock);
    }
    zpool_compact (k->zp);
    pthread_mutex_lock (&k->flock);
    k->wb_error = err;
    k->passes_done++;
    pthread_cond_broadcast (&k->progress);
  }
  pthread_mutex_unlock (&k->flock);
  return NULL;
}

int
cache_flusher_start (struct cache *k)
{
  k->wbuf = aligned_alloc (4096, CACHE_WB_BYTES);
  if (k->wbuf == NULL)
    return -1;
  pthread_mutex_init (&k->flock, NULL);
  pthread_cond_init (&k->fcond, NULL);
  pthread_cond_init (&k->progress, NULL);
  k->flusher_ready = true;
  return 0;
}

int
cache_flusher_run (struct cache *k)
{
  if (!k->flusher_ready || k->flusher_running)
    return 0;
  if (cache_thread_start (k, &k->flusher, flusher, k) == -1)
    return -1;
  k->flusher_running = true;
  return 0;
}

void
cache_flusher_stop (struct cache *k)
{
  if (!k->flusher_ready)
    return;
  if (k->flusher_running) {
    pthread_mutex_lock (&k->flock);
    k->stopping = true;
    pthread_cond_signal (&k->fcond);
    pthread_mutex_unlock (&k->flock);
    pthread_join (k->flusher, NULL);
    k->flusher_running = false;
  }
  pthread_cond_destroy (&k->fcond);
  pthread_cond_destroy (&k->progress);
  pthread_mutex_destroy (&k->flock);
  free (k->wbuf);
  k->flusher_ready = false;
}
