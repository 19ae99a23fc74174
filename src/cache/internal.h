/* Private to the cache: the object pool (zpool.c) and the block map. */
#ifndef SGBLK_CACHE_INTERNAL_H
#define SGBLK_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- zpool: compressed objects in size classes carved from arenas ---- */

struct zpool;

/* Compressed objects larger than this are stored raw.  lz4 is given
 * this as its output capacity, so incompressible data aborts early; its
 * limited-output mode keeps a safety margin, and a cap of 3/4 stored raw
 * many blocks that compress to 3.1-3.5 KiB (measured: 7% more memory on
 * shared libraries than the kernel's zram, against 0.2% at 7/8). */
#define CACHE_RAW_THRESHOLD(bs) ((bs) * 7 / 8)

/* Moving an object during compaction: the pool has taken slot new_h;
 * the callback copies the object from old_h to new_h and repoints the
 * owner (block index) to new_h, both under the owner's lock (owners
 * rewrite their objects in place), and returns true; or it returns false
 * if it cannot do so now (busy block). */
typedef bool (*zpool_relocate_fn) (void *opaque, uint32_t owner,
                                   uint64_t old_h, uint64_t new_h);

struct zpool *zpool_create (uint32_t block_size, uint64_t mem_limit,
                            uint64_t max_bytes, zpool_relocate_fn relocate,
                            void *opaque);
void zpool_destroy (struct zpool *zp);
/* The memory one request of 'request' bytes needs at least in an empty
 * pool of block_size blocks (cache_min_mem_limit). */
uint64_t zpool_request_bytes (uint32_t block_size, uint64_t request);
/* Reserve mode (swap mode): from now on allocations take chunk memory
 * only from a locked, touched reserve, which a refill thread (started
 * here, stopped by zpool_destroy) keeps between 'low' and 'high' bytes,
 * and allocations that find it dry wait for it.  Fills the reserve to
 * 'high' (at most the limit) before returning.  -1 with errno: EINVAL
 * (high 0 or below low), EBUSY (a pool already in use or in reserve
 * mode), or the kernel's refusal to map or lock (the pool is unchanged). */
int zpool_reserve_start (struct zpool *zp, uint64_t low, uint64_t high);
struct zpool_reserve_stats {
  bool on;                  /* in reserve mode */
  uint64_t level, low, high;
  uint64_t waits;           /* allocations that waited for the refill thread */
  uint64_t mapped;          /* bytes the reserve took in: mapped, or locked again */
  uint64_t returned;        /* bytes it gave back to the kernel */
};
void zpool_reserve_get (struct zpool *zp, struct zpool_reserve_stats *rs);
/* An object of size bytes (1..block_size) for block 'owner'; 0 with errno
 * ENOSPC past the memory limit (unless past_limit), ENOMEM if the system
 * has none (in reserve mode: refused the refill this allocation waited
 * for).  past_limit is for a map whose limit holds all its blocks raw:
 * what it takes past the limit is partly used chunks, which compaction
 * gives back. */
uint64_t zpool_alloc (struct zpool *zp, uint32_t size, uint32_t owner, bool past_limit);
void zpool_free (struct zpool *zp, uint64_t h);
void *zpool_map (struct zpool *zp, uint64_t h);
/* The object size a request of size bytes really takes. */
uint32_t zpool_class_size (const struct zpool *zp, uint32_t size);
/* Whether an object of size bytes belongs in h's size class. */
bool zpool_fits (const struct zpool *zp, uint64_t h, uint32_t size);
/* Chunk and descriptor bytes, and released memory not yet given back
 * (not in reserve mode: the reserve is counted apart). */
uint64_t zpool_mem_used (const struct zpool *zp);
/* What counts against the memory limit: chunks and descriptors in use. */
uint64_t zpool_mem_in_use (const struct zpool *zp);
/* Move objects out of sparse chunks; returns the bytes released. */
uint64_t zpool_compact (struct zpool *zp);
uint64_t zpool_moved (const struct zpool *zp);


/* ---- the block map ---- */

#include "cache.h"
#include "store.h"

#define CACHE_NSTRIPES 1024
#define CACHE_WB_BYTES (1u << 20)       /* one write-back request at most */
/* ... of data; a run of zero blocks needs no buffer, and one long zero
 * request lets the store deallocate whole units (an RBD image's 4 MiB
 * objects) that 1 MiB pieces would only zero. */
#define CACHE_WB_ZERO_BYTES (UINT64_C (1) << 30)

/* Block flags. */
#define CM_PRESENT 0x1   /* the map holds the block */
#define CM_SAME    0x2   /* handle is the fill word; no object */
#define CM_HUGE    0x4   /* stored raw */
#define CM_DIRTY   0x8   /* newer than the backing store */
#define CM_REF     0x10  /* used since the CLOCK hand last passed */
#define CM_WB      0x20  /* with DIRTY: a write-back holds a copy of exactly
                          * this contents; any write clears it (map.c) */
#define CM_BAD     0x40  /* the object failed to decompress; counted once */
#define CM_HC      0x80  /* an LZ4HC object against the cache's dictionary
                          * (idle.c); never with HUGE */
/* With HUGE: writes left that store the block raw without an lz4 attempt. */
#define CM_SKIP_SHIFT 8
#define CM_SKIP(n) ((uint32_t) (n) << CM_SKIP_SHIFT)
#define CM_SKIP_OF(f) (((f) >> CM_SKIP_SHIFT) & 0xfu)
#define CM_SPILLED  0x1000  /* the object is in the spill file; handle is its slot */
#define CM_RECOMP   0x2000  /* the recompressor copied these contents out */
#define CM_SPILLING 0x4000  /* the spiller copied this object out */
#define CM_COLD     0x8000  /* the idle pass has seen these contents (done or
                             * not worth it) */
/* RECOMP, SPILLING and COLD are set by a background thread under the
 * stripe lock and cleared by every write (a new entry starts without
 * them), exactly as WB: a thread that finds its bit still set when it
 * comes back knows the contents are the ones it copied. */
/* Bits 16-31: the second (modulo 2^16) of the block's last write, for
 * the idle pass and the spiller. */
#define CM_AGE_SHIFT 16
#define CM_STAMP(f) ((f) >> CM_AGE_SHIFT)

struct cmeta {
  uint64_t handle;
  uint32_t csize;
  uint32_t flags;
};

struct cache {
  struct store s;                  /* first: a cache is a store */
  struct store *backing;
  uint32_t bs, zp_threshold;
  unsigned shift;
  uint64_t nblocks;
  enum cache_mode mode;
  uint64_t mem_limit, dirty_high, meta_bytes;
  bool promise;                    /* memory mode: the limit holds every block
                                    * raw, so allocated blocks keep room
                                    * (map.c, space promises) */
  struct cmeta *meta;
  struct zpool *zp;
  pthread_mutex_t stripes[CACHE_NSTRIPES];
  pthread_mutex_t wb_lock;         /* one write-back at a time, in LBA order */
  uint8_t *wbuf;                   /* CACHE_WB_BYTES, under wb_lock */
  atomic_uint_fast64_t hand;       /* CLOCK */
  atomic_uint_fast64_t wb_runs;    /* write-back requests completed so far */
  bool unsynced;                   /* under wb_lock: written back since the
                                    * backing store's last flush */

  /* Flusher thread (backing mode). */
  pthread_t flusher;
  bool flusher_ready, flusher_running;
  pthread_mutex_t flock;
  pthread_cond_t fcond;            /* wakes the flusher */
  pthread_cond_t progress;         /* wakes writers waiting for room */
  bool kicked, stopping;
  int wb_error;                    /* errno of the last pass's write-back, 0 if none */
  uint64_t passes_started, passes_done;   /* flusher passes, under flock */

  /* Background threads of the idle pass and the spiller (idle.c,
   * spill.c), each started only when configured. */
  atomic_uint_fast64_t mem_peak;   /* the most zpool memory used */
  atomic_uint now;                 /* seconds, stamped on each write (CM_STAMP) */
  uint64_t born_ns;                /* when the map was made: now's origin */
  bool io_flusher;                 /* their threads mark themselves I/O flushers */
  unsigned recomp_idle;            /* seconds without a write; 0: no idle pass */
  struct cache_idle *idle;         /* the idle pass's thread and buffers */
  struct cache_spill *spill;       /* the spill file and its thread; NULL: none */
  uint8_t *dict;                   /* CACHE_DICT_BYTES; what HC objects refer to */
  atomic_uint dict_len;            /* changed only while no HC object exists */

  struct {
    atomic_uint_fast64_t present, compr_bytes, same_blocks, huge_blocks;
    atomic_uint_fast64_t hits, misses, dirty_blocks, written_back, evicted;
    atomic_uint_fast64_t writer_waits, corrupt_blocks, last_corrupt;
    atomic_uint_fast64_t hc_blocks, spilled_blocks, compacted_bytes;
    atomic_uint_fast64_t recomp_passes, recomp_blocks, recomp_tried, recomp_saved, recomp_cpu_ns;
    atomic_uint_fast64_t bd_reads, bd_writes, bd_errors, bd_last_error, spill_waits;
  } st;
};

/* The dictionary LZ4HC objects are compressed against: pieces of the
 * disk's own blocks, sampled when the idle pass finds no HC object. */
#define CACHE_DICT_BYTES (64u << 10)

/* The map behind a store; NULL with EINVAL if s is not one. */
struct cache *cache_of (struct store *s);
int cache_store_block (struct cache *k, uint64_t b, const uint8_t *data, bool dirty,
                       bool keep_zero);
/* Bring the shared counters from entry o to entry n. */
void cache_account (struct cache *k, const struct cmeta *o, const struct cmeta *n);
static inline bool
cache_has_object (const struct cmeta *m)
{
  return (m->flags & (CM_PRESENT | CM_SAME | CM_SPILLED)) == CM_PRESENT;
}
/* Forget block b: free its object, take it out of the stats, clear its
 * entry (absent).  Stripe lock held. */
void cache_drop_block (struct cache *k, uint64_t b);
/* Block b's present data into out (bs bytes).  Stripe lock held.  -1 with
 * EIO if its object does not decompress to exactly one block (then
 * counted once and flagged CM_BAD). */
int cache_decode (struct cache *k, uint64_t b, uint8_t *out);
/* scratch.c: each thread's scratch for the map's I/O (block buffers and
 * lz4's state), mapped on first need and unmapped at the thread's exit. */
struct cache_scratch {
  uint8_t *bounce, *packed;        /* a block each, page aligned */
  void *lz4;                       /* LZ4_sizeofState () bytes */
  uint8_t *base;                   /* the mapping, 'bytes' long */
  size_t bytes;
  uint32_t bs;                     /* the largest block it holds */
};
/* This thread's scratch, for blocks of up to bs bytes; NULL with ENOMEM
 * if it could not be mapped.  Valid until the thread's next call with a
 * larger bs, or its exit. */
struct cache_scratch *cache_scratch_get (uint32_t bs);
/* A map of block size bs is open / closed: new scratch areas fit the
 * largest open one. */
void cache_scratch_open (uint32_t bs);
void cache_scratch_close (uint32_t bs);
/* flusher.c */
/* Write back the dirty blocks of [first, end): each run with STORE_FUA if
 * fua.  wb_lock held. */
int cache_writeback (struct cache *k, uint64_t first, uint64_t end, bool fua);
unsigned cache_evict (struct cache *k);         /* no lock held; blocks freed */
int cache_make_room (struct cache *k);          /* evict, or wait for write-back */
int cache_flusher_start (struct cache *k);     /* its memory; no thread yet */
int cache_flusher_run (struct cache *k);       /* its thread */
void cache_flusher_stop (struct cache *k);
void cache_flusher_kick (struct cache *k, bool urgent);
/* Start a background thread with a small stack (its stack is locked in
 * swap mode), marked an I/O flusher if k->io_flusher. */
int cache_thread_start (struct cache *k, pthread_t *t, void *(*fn) (void *), void *arg);
void cache_thread_setup (struct cache *k);     /* first thing in such a thread */
/* Bring 'now' up to date; the background threads call it every second. */
void cache_tick (struct cache *k);

/* idle.c: recompression of blocks not written for recomp_idle seconds. */
int cache_idle_start (struct cache *k);        /* its memory; no thread yet */
int cache_idle_run (struct cache *k);          /* its thread */
void cache_idle_stop (struct cache *k);

/* spill.c: the spill file of the in-memory disk. */
int cache_spill_open (struct cache *k, const char *path);   /* no thread yet */
int cache_spill_run (struct cache *k);         /* the spiller thread */
void cache_spill_close (struct cache *k);
/* Slot 'slot' into buf (block size, 4096-aligned).  -1 with errno. */
int cache_spill_read (struct cache *k, uint64_t slot, uint8_t *buf);
/* The block that held 'slot' no longer needs it; stripe lock held. */
void cache_spill_release (struct cache *k, uint64_t slot);
/* Whether memory is low enough to take a spilled block back. */
bool cache_spill_room (struct cache *k);
/* After a write: wake the spiller if memory passed the high watermark. */
void cache_spill_kick (struct cache *k);
/* A writer at the memory limit waits for the spiller; -1 with ENOSPC if
 * it could free nothing (also when the file fails: that is counted). */
int cache_spill_wait (struct cache *k);

#endif
