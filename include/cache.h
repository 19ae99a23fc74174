/* cache: the lz4-compressed block map.
 *
 * One cache block is one logical page (4 KiB by default, any power of two
 * up to 64 KiB).  Each block has a small metadata entry: a handle to its
 * compressed object, the compressed size and the flags SAME (same-filled:
 * the fill word is the whole payload, nothing allocated), HUGE
 * (incompressible: stored raw), DIRTY and a reference bit for eviction.
 * Compressed objects live in size classes at most 64 bytes apart carved
 * from large mmap'd arenas, never in per-object malloc'd memory.
 *
 * The map is itself a struct store, so the layers above do not know it is
 * there.  With no backing store it *is* the in-memory disk (a userspace
 * zram): mem_limit caps it and a full map fails writes with ENOSPC.  With
 * a backing store it is a write-back (or write-through) cache in front of
 * it: dirty blocks are written back in LBA order, adjacent blocks
 * coalesced, by a flusher thread when dirty data passes a high watermark
 * and synchronously by store_flush; clean blocks are evicted when the
 * cache is full; a cache full of dirty blocks makes writers wait for the
 * flusher, it never drops data.
 *
 * Blocks not written for a while are recompressed in the background with
 * LZ4HC against a dictionary sampled from the disk itself (same lz4
 * decoder, so reads stay fast); a rewrite takes a block back to the fast
 * compressor.  With a spill file, the in-memory disk writes its coldest
 * blocks, incompressible ones first, to the file when its memory passes a
 * high watermark of mem_limit, and reads them back on demand.
 */
#ifndef SGBLK_CACHE_H
#define SGBLK_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

enum cache_mode {
  CACHE_MODE_WRITEBACK,     /* writes complete in the cache; flush writes back */
  CACHE_MODE_WRITETHROUGH,  /* writes reach the backing store before completing */
  CACHE_MODE_OFF,           /* no cache: cache_create returns the backing store */
};

#define CACHE_MIN_BLOCK 4096u
#define CACHE_MAX_BLOCK 65536u

struct cache_config {
  uint64_t size;            /* bytes; ignored (taken from backing) with a backing store */
  struct store *backing;    /* NULL: the map is the in-memory disk; owned by the cache after create */
  uint32_t block_size;      /* power of two, CACHE_MIN_BLOCK..CACHE_MAX_BLOCK; 0 = 4096 */
  uint64_t mem_limit;       /* bytes of memory for compressed data; 0 = unlimited (memory) or 256 MiB (backing) */
  enum cache_mode mode;
  unsigned dirty_high_pct;  /* flusher starts above this % of mem_limit dirty; 0 = 50 */
  unsigned recompress_idle; /* seconds without a write before LZ4HC; 0 = never;
                             * at most CACHE_MAX_RECOMPRESS_IDLE */
  const char *spill_path;   /* memory mode: the scratch spill file; NULL = none
                             * (needs mem_limit) */
  bool io_flusher;          /* background threads mark themselves I/O flushers */
  bool defer_threads;       /* start the background threads (write-back, idle
                             * pass, spiller) only with cache_start_threads:
                             * a daemon forks after building its stack, and a
                             * fork keeps no thread but the caller */
};

/* Write times are kept modulo 2^16 seconds; idleness is judged below half that. */
#define CACHE_MAX_RECOMPRESS_IDLE 32767u
/* The spiller starts above this % of mem_limit and stops below the low one. */
#define CACHE_SPILL_HIGH_PCT 90u
#define CACHE_SPILL_LOW_PCT 75u

struct cache_stats {
  uint64_t orig_bytes;      /* logical bytes held (blocks present x block size) */
  uint64_t compr_bytes;     /* sum of compressed object sizes */
  uint64_t mem_used;        /* memory used: arena bytes in use or kept resident (the
                             * reserve too) + metadata table */
  uint64_t mem_limit;
  uint64_t same_blocks;     /* same-filled blocks (no memory) */
  uint64_t huge_blocks;     /* incompressible blocks stored raw */
  uint64_t hits, misses;
  uint64_t dirty_blocks;
  uint64_t written_back;    /* blocks written to the backing store */
  uint64_t evicted;         /* clean blocks dropped to make room */
  uint64_t writer_waits;    /* writes that waited for the flusher */
  uint64_t compactions;     /* objects moved by compaction */
  uint64_t corrupt_blocks;  /* blocks whose object failed to decompress */
  uint64_t last_corrupt;    /* the last such block's number */
  uint64_t mem_used_max;    /* the most mem_used has been */
  uint64_t compacted_bytes; /* memory compaction gave back */
  uint64_t hc_blocks;       /* blocks held as LZ4HC objects (idle pass) */
  uint64_t recomp_passes;   /* idle passes run */
  uint64_t recomp_blocks;   /* blocks the idle pass made smaller */
  uint64_t recomp_tried;    /* blocks it compressed with LZ4HC (smaller or not) */
  uint64_t recomp_saved;    /* compressed bytes it saved */
  uint64_t recomp_cpu_ns;   /* its thread's CPU time */
  uint64_t spilled_blocks;  /* blocks now in the spill file */
  uint64_t bd_reads;        /* blocks read back from it */
  uint64_t bd_writes;       /* blocks written to it */
  uint64_t bd_errors;       /* failed spill file reads and writes */
  int bd_last_error;        /* errno of the last one */
  uint64_t spill_waits;     /* writes that waited for the spiller */
  uint32_t block_size;
  unsigned recompress_idle;
  bool spill;
  enum cache_mode mode;
  /* Reserve mode (cache_reserve_start); all 0 otherwise.  mem_used
   * includes the reserve. */
  uint64_t reserve_bytes;   /* locked, touched, free memory held now */
  uint64_t reserve_low, reserve_high;   /* its watermarks */
  uint64_t reserve_waits;   /* allocations that waited for the refill thread */
  uint64_t reserve_refills; /* bytes the refill thread mapped or locked again */
  uint64_t reserve_returned;  /* bytes it gave back to the kernel */
};

/* NULL with errno (EINVAL for a bad block size or size, ENOMEM).  With
 * CACHE_MODE_OFF and a backing store, returns the backing store itself. */
struct store *cache_create (const struct cache_config *cfg);
/* Start the background threads of a cache made with defer_threads (a
 * no-op for those already running, and for a store that is not a cache).
 * -1 with errno. */
int cache_start_threads (struct store *s);
/* The smallest mem_limit under which a request of 'request' bytes can
 * ever be stored, with blocks of block_size bytes: a limit below it
 * leaves the in-memory disk failing such writes with ENOSPC when empty,
 * and a cache's writers waiting for room that no write-back can make. */
uint64_t cache_min_mem_limit (uint32_t block_size, uint64_t request);
/* -1 with EINVAL if s is not a cache. */
int cache_get_stats (struct store *s, struct cache_stats *st);
/* Swap mode: from now on the map's I/O path never maps, touches new
 * pages or gives memory back.  It takes memory from a locked reserve
 * that a refill thread keeps between 'low' and 'high' bytes (filled to
 * 'high', or the memory limit if less, before this returns); a write
 * that finds the reserve dry waits for the refill.  The memory limit
 * stays a cap, past which writes get ENOSPC, not an allocation.  -1 with
 * errno: EINVAL if s is not a cache, has no memory limit, or the
 * watermarks are wrong; EBUSY if it holds data already; what the kernel
 * said if it refused memory. */
int cache_reserve_start (struct store *s, uint64_t low, uint64_t high);
/* Move objects out of sparse arena chunks; returns the bytes released. */
uint64_t cache_compact (struct store *s);
/* Run one idle pass now, over blocks not written for min_idle seconds;
 * returns the blocks made smaller.  The background thread runs the same
 * pass every half of recompress_idle. */
uint64_t cache_recompress (struct store *s, unsigned min_idle);
/* Spill blocks until memory used is at most keep bytes (as the spiller
 * does past its high watermark); returns the blocks spilled, or -1 with
 * errno (EINVAL: no spill file). */
int64_t cache_spill (struct store *s, uint64_t keep);
/* "writeback", "writethrough", "off" <-> enum; -1/EINVAL if unknown. */
int cache_mode_parse (const char *name, enum cache_mode *mode);
const char *cache_mode_name (enum cache_mode mode);

#endif
