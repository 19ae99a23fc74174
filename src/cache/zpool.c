/* zpool: compressed objects in size classes carved from mmap'd arenas.
 *
 * Classes are 'step' bytes apart (16 for 4 KiB blocks, never more than
 * 64) from step up to the raw threshold (7/8 of a block), plus one raw
 * class of a whole block for incompressible data.  Power-of-two classes
 * would waste a quarter of memory on average; these waste at most
 * step - 1 bytes an object.
 *
 * A class owns chunks of up to eight pages more than its slot needs
 * (whichever leaves the smallest tail), each cut into equal slots: small
 * chunks keep the memory of a half-used chunk per class small.  A chunk is on its class's
 * partial list while it has a free slot, on the full list otherwise, and
 * goes back to the pool as soon as it is empty (one empty chunk a class
 * is kept as a spare).  Chunk memory is bumped out of 64 MiB arenas mapped
 * with MAP_NORESERVE, on huge pages where the kernel gives them (see
 * huge_pages); released chunk memory, kept on a stack per page count,
 * is reused before new arena space, and given back to the kernel
 * (MADV_DONTNEED) by zpool_compact, which the daemon runs every few
 * seconds: churn in between costs no page faults.
 *
 * A handle is (chunk id + 1) << 20 | slot; 0 is never a handle.  Each
 * slot records its owner (a block index) so that compaction can move the
 * objects of sparse chunks into fuller ones: the owner copies the object
 * and takes the new handle under its own lock, because an owner may
 * rewrite its object in place at any time.
 *
 * Chunk descriptors (struct zchunk with its owner array, a size fixed per
 * class) are carved from chunk memory too, in power-of-two sizes shared by
 * all classes (a page, or one descriptor's worth, at a time), and go back
 * on their size's free list when their chunk goes: the pool never calls
 * malloc after zpool_create, and descriptor memory counts in mem_used
 * like the objects it describes.
 *
 * Reserve mode (zpool_reserve_start; swap mode) keeps the allocating
 * path away from the kernel: it never maps, touches new pages or gives
 * memory back.  Chunk memory comes from the reserve: the resident
 * entries of the free_mem stacks, the rest of the current segment (the
 * bump area) and whole fresh segments, all of it locked and touched.  A
 * refill thread, owned by the pool, keeps the reserve between two
 * watermarks: below 'low' it fills it up to 'high', re-locking runs it
 * gave back (their address space is still the pool's) before mapping
 * new 2 MiB segments, each huge-page aligned and placed below the last
 * so that the kernel merges them into one mapping; above 'high' (by
 * more than a segment) it gives the longest-idle resident runs back,
 * munlock then MADV_DONTNEED (locked pages cannot be dropped), which
 * makes them non-resident.  Invariants of this mode:
 *   - the I/O path hands out only resident runs and segment memory; a
 *     non-resident run is made resident again by the refill thread alone;
 *   - a stack of k-page runs has room for mapped_pages / k + 1 entries
 *     (runs are disjoint), grown by the refill thread before it maps, so
 *     pushing a run never allocates;
 *   - segments are never unmapped before zpool_destroy, so runs given
 *     back keep their address space; as each may split a mapping in
 *     three, their number is kept within a budget (nonresident_max).
 * A request for k pages takes a resident k-page run, else the bump area,
 * else the next fresh segment (the old one's rest, less than a chunk,
 * becomes a run), else splits a larger resident run, else wakes the
 * refill thread with the number of pages it needs and waits
 * (reserve_waits counts these).  The limit is checked before, so a
 * waiting writer is entitled to what it waits for: the refill thread
 * maps it whatever the watermarks say, and the writer fails (ENOMEM)
 * only if the kernel refused that refill.
 *
 * Locks: one per class (slots, lists), then chunk_lock (ids, arenas,
 * chunk memory, descriptor lists, the reserve); never the other way
 * round.  The refill thread takes chunk_lock alone and drops it around
 * every system call.  mem_used counts chunk and descriptor bytes.
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "sync.h"

#define ARENA_BYTES (64u << 20)
#define MAX_ARENAS 16384
#define NONE UINT32_MAX
#define SLOT_BITS 20
#define PAGE 4096u
#define MAX_CHUNK_PAGES 20                /* 64 KiB raw blocks need 16 */
#define CHUNK_SPAN 8                       /* chunk sizes tried per class, in pages */
#define HUGE_PAGE (2u << 20)
#define SMALL_CHUNKS 4                     /* a class's first chunks are small ones */
#define DESC_MIN 128u                      /* descriptor sizes: 128 B .. 64 KiB */
#define DESC_SIZES 10
/* Reserve mode: the refill thread maps this much at a time (one huge
 * page), and wakes this often to give back what is above 'high'.  Its
 * stack is locked like every other, and it needs little of it. */
#define SEG_BYTES (2u << 20)
#define SEG_PAGES (SEG_BYTES / PAGE)
#define REFILL_PERIOD_MS 1000
#define REFILL_RETRY_MS 100
#define REFILL_STACK (256u << 10)

/* Linux 5.6; older headers lack them. */
#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif
#ifndef PR_GET_IO_FLUSHER
#define PR_GET_IO_FLUSHER 58
#endif

struct zchunk {
  uint8_t *base;
  uint32_t id, cls, nobj, nused, fresh;  /* fresh: slots never handed out start here */
  uint32_t free_head;
  uint32_t bytes;
  struct zchunk *prev, *next;
  uint32_t owner[];                      /* NONE for a free slot */
};

struct zclass {
  pthread_mutex_t lock;
  uint32_t size, nobj, bytes;            /* a chunk: objects, bytes */
  uint32_t small_nobj, small_bytes;      /* a chunk while the class has few */
  uint32_t nchunks;                      /* chunks it has, the spare included */
  struct zchunk *partial, *full;
  struct zchunk *spare;                  /* one empty chunk kept for reuse */
  uint32_t desc;                         /* its descriptors' size: DESC_MIN << desc */
};

/* A stack of released chunk memory of one size.  The top entries are
 * still resident, so an allocation right after a release costs no page
 * fault; zpool_compact (or in reserve mode the refill thread) gives
 * resident ones back to the kernel. */
struct freemem {
  uint8_t **p;
  uint32_t n, cap, resident;             /* entries [n - resident, n) are resident */
};

struct zpool {
  uint32_t bs, step, threshold, nclasses;
  struct zclass *cls;
  uint32_t *target;                      /* class an object size really uses */
  pthread_mutex_t chunk_lock;
  struct zchunk **table;
  uint32_t table_len, next_id, *free_ids, nfree_ids;
  struct { uint8_t *base; size_t len; bool small_pages; } arenas[MAX_ARENAS];
  uint32_t narenas;
  uint8_t *bump;                         /* the bump area: the last arena or segment */
  size_t bump_off, bump_len;
  struct freemem free_mem[MAX_CHUNK_PAGES + 1];   /* released chunk memory, by pages */
  atomic_uint_fast64_t free_resident;    /* bytes of it not yet given back */
  struct zchunk *free_desc[DESC_SIZES];  /* unused descriptors by size, linked by next */
  atomic_uint_fast64_t mem_used, moved;
  uint64_t mem_limit;
  zpool_relocate_fn relocate;
  void *opaque;

  /* Reserve mode; the fields below chunk_lock's, except where noted. */
  atomic_bool reserve;                   /* set once, before the refill thread runs */
  bool lock;                             /* mlock what the reserve takes in (else touch) */
  uint64_t low, high;
  uint64_t mapped_pages;                 /* pages of every segment */
  uint8_t **fresh;                       /* whole segments not yet bumped into */
  uint32_t nfresh, fresh_cap;
  uint32_t nonresident, nonresident_max; /* runs given back; a budget of them */
  uint8_t *seg_hint;                     /* where the next segment would adjoin the last */
  uint8_t **segs;                        /* every segment: the refill thread's alone */
  size_t nsegs, segs_cap;
  pthread_t refill;
  bool refill_running, stopping, kicked;
  pthread_cond_t refill_cond;            /* wakes the refill thread */
  pthread_cond_t reserve_cond;           /* wakes allocations waiting for it */
  uint32_t need;                         /* pages a waiting allocation needs; 0 none */
  uint64_t refill_failures;              /* refills the kernel refused ... */
  int refill_errno;                      /* ... and the last one's errno */
  atomic_uint_fast64_t waits, mapped, returned;
};

/* A class's chunks for objects of 'size' bytes ('raw': the class of
 * whole incompressible blocks, size being the block size). */
static void
class_geometry (struct zclass *c, uint32_t size, bool raw)
{
  c->size = size;
  /* The chunk size that leaves the smallest tail. */
  uint32_t best = 0, first = (c->size + PAGE - 1) / PAGE;
  for (uint32_t k = first; k < first + CHUNK_SPAN && k <= MAX_CHUNK_PAGES; k++) {
    uint32_t cb = k * PAGE;
    if (best == 0 || (uint64_t) (cb % c->size) * best < (uint64_t) (best % c->size) * cb)
      best = cb;
  }
  /* Raw blocks fill pages exactly at any chunk size: take the largest,
   * so that fewer chunks come and go when incompressible data churns. */
  if (raw && size < 8 * PAGE)
    best = 8 * PAGE;
  c->bytes = best;
  c->nobj = best / c->size;
  /* A class's first chunks are the smallest that waste at most an
   * eighth: half of its last chunk is empty on average, and on a small
   * disk, with a hundred classes in use, those halves of large chunks
   * were 4% of all memory (measured on 64 MiB of shared libraries). */
  c->small_bytes = best;
  for (uint32_t k = first; k * PAGE < best; k++)
    if ((uint64_t) (k * PAGE % c->size) * 8 <= (uint64_t) k * PAGE) {
      c->small_bytes = k * PAGE;
      break;
    }
  c->small_nobj = c->small_bytes / c->size;
  size_t dsize = sizeof (struct zchunk) + c->nobj * sizeof (uint32_t);
  while ((size_t) DESC_MIN << c->desc < dsize)
    c->desc++;
}

/* Descriptors of size DESC_MIN << d are carved this many bytes at a time. */
static inline uint32_t
desc_run (uint32_t d)
{
  return DESC_MIN << d < PAGE ? PAGE : DESC_MIN << d;
}

/* The most chunk and descriptor memory one request can need in an empty
 * pool: incompressible, so every block is a raw object of a whole block
 * (no class takes more than a block), and unaligned, so it touches one block
 * more than its length.  The first SMALL_CHUNKS chunks are small ones;
 * every chunk needs a descriptor, carved a run at a time.  Compressible
 * data takes less of its own, though partial chunks of many classes can
 * add up: this is the floor below which a request can never be stored,
 * not a promise for every mix of data. */
uint64_t
zpool_request_bytes (uint32_t bs, uint64_t request)
{
  struct zclass c = { 0 };
  class_geometry (&c, bs, true);
  uint64_t blocks = (request + bs - 1) / bs + 1;
  uint64_t nsmall = (blocks + c.small_nobj - 1) / c.small_nobj;
  if (nsmall > SMALL_CHUNKS)
    nsmall = SMALL_CHUNKS;
  uint64_t left = blocks > nsmall * c.small_nobj ? blocks - nsmall * c.small_nobj : 0;
  uint64_t nlarge = (left + c.nobj - 1) / c.nobj;
  uint64_t run = desc_run (c.desc), per_run = run / (DESC_MIN << c.desc);
  uint64_t runs = (nsmall + nlarge + per_run - 1) / per_run;
  return nsmall * c.small_bytes + nlarge * c.bytes + runs * run;
}

struct zpool *
zpool_create (uint32_t bs, uint64_t mem_limit, uint64_t max_bytes,
              zpool_relocate_fn relocate, void *opaque)
{
  struct zpool *zp = calloc (1, sizeof *zp);
  pthread_condattr_t ca;

  if (zp == NULL)
    return NULL;
  /* The refill thread's timed waits must not jump with the wall clock. */
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&zp->refill_cond, &ca);
  pthread_cond_init (&zp->reserve_cond, &ca);
  pthread_condattr_destroy (&ca);
  pthread_mutex_init (&zp->chunk_lock, NULL);
  zp->bs = bs;
  zp->step = bs / 256 < 16 ? 16 : bs / 256 > 64 ? 64 : bs / 256;
  zp->threshold = CACHE_RAW_THRESHOLD (bs) / zp->step * zp->step;
  zp->nclasses = zp->threshold / zp->step + 1;         /* + the raw class */
  zp->mem_limit = mem_limit;
  zp->relocate = relocate;
  zp->opaque = opaque;
  zp->cls = calloc (zp->nclasses, sizeof *zp->cls);
  zp->target = calloc (zp->nclasses, sizeof *zp->target);
  /* Enough chunk ids for max_bytes of raw data plus a partial chunk per
   * class, however the data compresses. */
  zp->table_len = (uint32_t) (max_bytes / PAGE) + zp->nclasses * 2 + 64;
  zp->table = calloc (zp->table_len, sizeof *zp->table);
  zp->free_ids = calloc (zp->table_len, sizeof *zp->free_ids);
  if (zp->cls == NULL || zp->target == NULL || zp->table == NULL || zp->free_ids == NULL) {
    free (zp->cls);                      /* (no class lock initialized yet) */
    zp->cls = NULL;
    zpool_destroy (zp);
    errno = ENOMEM;
    return NULL;
  }
  for (uint32_t i = 0; i < zp->nclasses; i++) {
    struct zclass *c = &zp->cls[i];
    class_geometry (c, i + 1 < zp->nclasses ? (i + 1) * zp->step : bs,
                    i + 1 == zp->nclasses);
    sync_mutex_init_adaptive (&c->lock);
  }
  /* Neighbouring classes that fit as many objects in as many pages are
   * one class in effect: objects use the largest, which leaves fewer
   * half-used chunks about (zsmalloc merges its classes the same way). */
  for (uint32_t i = zp->nclasses; i-- > 0; )
    zp->target[i] = i + 1 < zp->nclasses && zp->cls[i].nobj == zp->cls[i + 1].nobj &&
                    zp->cls[i].bytes == zp->cls[i + 1].bytes ? zp->target[i + 1] : i;
  return zp;
}

static void refill_stop (struct zpool *zp);
static void unmap_segments (struct zpool *zp);

void
zpool_destroy (struct zpool *zp)
{
  if (zp == NULL)
    return;
  refill_stop (zp);
  if (zp->cls)
    for (uint32_t i = 0; i < zp->nclasses; i++)
      pthread_mutex_destroy (&zp->cls[i].lock);
  for (uint32_t i = 0; i < zp->narenas; i++)
    munmap (zp->arenas[i].base, zp->arenas[i].len);
  unmap_segments (zp);
  free (zp->fresh);
  for (int i = 0; i <= MAX_CHUNK_PAGES; i++)
    free (zp->free_mem[i].p);
  pthread_cond_destroy (&zp->refill_cond);
  pthread_cond_destroy (&zp->reserve_cond);
  pthread_mutex_destroy (&zp->chunk_lock);
  free (zp->free_ids);
  free (zp->target);
  free (zp->table);
  free (zp->cls);
  free (zp);
}

static uint32_t
class_of (const struct zpool *zp, uint32_t size)
{
  if (size > zp->threshold)
    return zp->nclasses - 1;
  return zp->target[(size + zp->step - 1) / zp->step - 1 + (size == 0)];
}

uint32_t
zpool_class_size (const struct zpool *zp, uint32_t size)
{
  return zp->cls[class_of (zp, size)].size;
}

/* In reserve mode released memory is the reserve, reported apart
 * (zpool_reserve_get): what is used here is what holds data. */
uint64_t
zpool_mem_used (const struct zpool *zp)
{
  return zp->mem_used + (zp->reserve ? 0 : zp->free_resident);
}

uint64_t zpool_mem_in_use (const struct zpool *zp) { return zp->mem_used; }
uint64_t zpool_moved (const struct zpool *zp) { return zp->moved; }

/* Ask for transparent huge pages on arena memory.  Objects are reached
 * at random over the whole pool, and a TLB miss per 4 KiB read or write
 * cost more than the copy itself (measured: 4 KiB random reads took 12 us
 * of daemon CPU each with base pages, 8 us with huge ones).  Arenas are
 * filled from the bottom, so a huge page holds no more than 2 MiB the
 * pool was going to use anyway; a chunk given back inside one splits it.
 * Advice only: without THP the pool works the same. */
static void
huge_pages (void *p, size_t len)
{
#ifdef MADV_HUGEPAGE
  madvise (p, len, MADV_HUGEPAGE);
#else
  (void) p; (void) len;
#endif
}

/* Give chunk memory back to the kernel (not in reserve mode); chunk_lock
 * held.  Its arena stops asking for huge pages from then on: khugepaged
 * would otherwise collapse the hole back into a huge page (it does while
 * a single page of the 512 is in use), and memory given back would be
 * resident again, with nothing in it.  Arenas written densely and never
 * given back from keep their huge pages and their fast random access. */
static void
give_back (struct zpool *zp, uint8_t *mem, size_t len)
{
  madvise (mem, len, MADV_DONTNEED);
#ifdef MADV_NOHUGEPAGE
  for (uint32_t i = 0; i < zp->narenas; i++)
    if (mem >= zp->arenas[i].base && mem < zp->arenas[i].base + zp->arenas[i].len) {
      if (!zp->arenas[i].small_pages) {
        madvise (zp->arenas[i].base, zp->arenas[i].len, MADV_NOHUGEPAGE);
        zp->arenas[i].small_pages = true;
      }
      break;
    }
#endif
}

/* Remember released chunk memory of k pages, resident; chunk_lock held.
 * In reserve mode the stack has room (see the opening comment): this
 * is the I/O path, which must not allocate. */
static void
push_free (struct zpool *zp, uint8_t *mem, uint32_t k)
{
  struct freemem *f = &zp->free_mem[k];

  if (f->n == f->cap && !zp->reserve) {
    uint32_t cap = f->cap ? 2 * f->cap : 64;
    uint8_t **p = realloc (f->p, cap * sizeof *p);
    if (p) {
      f->p = p;
      f->cap = cap;
    }
  }
  if (f->n < f->cap) {
    f->p[f->n++] = mem;
    f->resident++;
    zp->free_resident += (uint64_t) k * PAGE;
  }
  else if (!zp->reserve)                 /* no room to remember it: lose the address space only */
    give_back (zp, mem, (size_t) k * PAGE);
}

static uint8_t *
pop_free (struct zpool *zp, uint32_t k)
{
  struct freemem *f = &zp->free_mem[k];

  if (f->resident) {
    f->resident--;
    zp->free_resident -= (uint64_t) k * PAGE;
  }
  return f->p[--f->n];
}

/* ---- the reserve ---- */

/* Bytes of the reserve: resident released runs, the rest of the bump
 * segment and the fresh segments.  chunk_lock held. */
static uint64_t
reserve_level (const struct zpool *zp)
{
  return zp->free_resident + (zp->bump_len - zp->bump_off) +
         (uint64_t) zp->nfresh * SEG_BYTES;
}

/* The watermarks, lowered to what the I/O path may still take under
 * the limit: filling the reserve past that would lock memory nobody can
 * use.  chunk_lock held. */
static uint64_t
mark (const struct zpool *zp, uint64_t watermark)
{
  uint64_t used = zp->mem_used;
  uint64_t room = zp->mem_limit == 0 ? UINT64_MAX :
                  zp->mem_limit > used ? zp->mem_limit - used : 0;

  return watermark < room ? watermark : room;
}

/* Bump into the next fresh segment; the old one's rest, less than a
 * chunk, becomes a resident run.  chunk_lock held. */
static void
next_bump (struct zpool *zp)
{
  size_t left = zp->bump_len - zp->bump_off;

  if (left >= PAGE)
    push_free (zp, zp->bump + zp->bump_off, (uint32_t) (left / PAGE));
  zp->bump = zp->fresh[--zp->nfresh];
  zp->bump_off = 0;
  zp->bump_len = SEG_BYTES;
}

/* k pages of reserve memory for the I/O path: locked, touched, never
 * non-resident.  Waits for the refill thread when nothing fits.
 * chunk_lock held (released while waiting).  NULL with errno if the
 * kernel refused the refill this allocation waited for. */
static uint8_t *
reserve_take (struct zpool *zp, uint32_t k)
{
  size_t bytes = (size_t) k * PAGE;
  uint64_t failures = zp->refill_failures;
  bool waited = false;

  for (;;) {
    uint8_t *p = NULL;
    if (zp->free_mem[k].resident)
      p = pop_free (zp, k);
    else if (zp->bump_len - zp->bump_off >= bytes || zp->nfresh) {
      if (zp->bump_len - zp->bump_off < bytes)
        next_bump (zp);
      p = zp->bump + zp->bump_off;
      zp->bump_off += bytes;
    }
    else
      for (uint32_t m = k + 1; m <= MAX_CHUNK_PAGES && p == NULL; m++)
        if (zp->free_mem[m].resident) {
          p = pop_free (zp, m);
          push_free (zp, p + bytes, m - k);
        }
    if (p) {
      /* Below the low watermark: one wake-up, not one per allocation. */
      if (!zp->kicked && reserve_level (zp) < mark (zp, zp->low)) {
        zp->kicked = true;
        pthread_cond_signal (&zp->refill_cond);
      }
      return p;
    }
    if (zp->refill_failures != failures) {
      errno = zp->refill_errno;
      return NULL;
    }
    if (!waited) {
      waited = true;
      atomic_fetch_add (&zp->waits, 1);
    }
    if (zp->need < k)
      zp->need = k;
    zp->kicked = true;
    pthread_cond_signal (&zp->refill_cond);
    pthread_cond_wait (&zp->reserve_cond, &zp->chunk_lock);
  }
}

/* Make len bytes at p resident and locked (the refill thread's part of
 * the bargain), or only touched if this process may not lock them. */
static int
settle (struct zpool *zp, uint8_t *p, size_t len)
{
  if (zp->lock)
    return mlock (p, len);
  /* Free memory: its contents do not matter, and a write (not a read,
   * which would map the zero page) is what allocates a page. */
  for (size_t off = 0; off < len; off += PAGE)
    ((volatile uint8_t *) p)[off] = 0;
  return 0;
}

/* Give len bytes at p back to the kernel.  -1 if they could not be
 * unlocked (too many mappings, say): then they stay locked and resident. */
static int
unsettle (struct zpool *zp, uint8_t *p, size_t len)
{
  if (zp->lock && munlock (p, len) == -1) {
    int e = errno;
    mlock (p, len);                      /* whatever part it unlocked */
    errno = e;
    return -1;
  }
  madvise (p, len, MADV_DONTNEED);
  return 0;
}

/* A new segment of SEG_BYTES aligned to SEG_BYTES, locked and touched.
 * Under mlockall (MCL_FUTURE) a mapping is populated at once, before
 * advice could make it a huge page, so it is mapped inaccessible first,
 * advised, then opened (which populates a locked mapping).  It is put
 * right below the last one where that is free, so that the kernel
 * merges them into one mapping: a process has a limited number of
 * them (vm.max_map_count). */
static uint8_t *
map_segment (struct zpool *zp)
{
  size_t len = SEG_BYTES;
  uint8_t *p = MAP_FAILED;

#ifdef MAP_FIXED_NOREPLACE
  if (zp->seg_hint) {
    p = mmap (zp->seg_hint, len, PROT_NONE,
              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != MAP_FAILED && p != zp->seg_hint) {   /* a kernel that took it as a hint */
      munmap (p, len);
      p = MAP_FAILED;
    }
  }
#endif
  if (p == MAP_FAILED) {
    /* Twice the size, trimmed to the aligned part. */
    uint8_t *r = mmap (NULL, 2 * len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED)
      return NULL;
    p = (uint8_t *) (((uintptr_t) r + len - 1) & ~(uintptr_t) (len - 1));
    if (p > r)
      munmap (r, (size_t) (p - r));
    if (p + len < r + 2 * len)
      munmap (p + len, (size_t) (r + 2 * len - (p + len)));
  }
  huge_pages (p, len);
  if (mprotect (p, len, PROT_READ | PROT_WRITE) == -1 || settle (zp, p, len) == -1) {
    int e = errno;
    munmap (p, len);
    errno = e;
    return NULL;
  }
  zp->seg_hint = (uintptr_t) p > len ? p - len : NULL;
  return p;
}

static void
unmap_segments (struct zpool *zp)
{
  for (size_t i = 0; i < zp->nsegs; i++)
    munmap (zp->segs[i], SEG_BYTES);
  free (zp->segs);
  zp->segs = NULL;
  zp->nsegs = zp->segs_cap = 0;
}

/* Room in every stack for the runs of 'pages' pages of segments, before
 * they are mapped: the I/O path pushes without allocating.  chunk_lock
 * not held; taken only to swap arrays. */
static int
grow_stacks (struct zpool *zp, uint64_t pages)
{
  /* A quarter more than needed, and never less than 16 segments more:
   * the arrays are copied under the lock, so rarely. */
  uint64_t ahead = pages + (pages / 4 > 16 * SEG_PAGES ? pages / 4 : 16 * SEG_PAGES);

  for (uint32_t k = 1; k <= MAX_CHUNK_PAGES; k++) {
    struct freemem *f = &zp->free_mem[k];
    if (f->cap >= pages / k + 1)          /* only this thread grows it */
      continue;
    uint32_t cap = (uint32_t) (ahead / k + 1);
    uint8_t **p = malloc (cap * sizeof *p), **old;
    if (p == NULL)
      return -1;
    pthread_mutex_lock (&zp->chunk_lock);
    if (f->n)
      memcpy (p, f->p, f->n * sizeof *p);
    old = f->p;
    f->p = p;
    f->cap = cap;
    pthread_mutex_unlock (&zp->chunk_lock);
    free (old);
  }
  return 0;
}

/* Take the topmost non-resident run off f: the resident entries stay on
 * top.  chunk_lock held. */
static uint8_t *
take_nonresident (struct zpool *zp, struct freemem *f)
{
  uint32_t i = f->n - f->resident - 1;
  uint8_t *p = f->p[i];

  f->p[i] = f->p[--f->n];
  zp->nonresident--;
  return p;
}

/* Put a run back as non-resident, below the resident ones.  chunk_lock
 * held; there is room, the run having been taken off. */
static void
put_nonresident (struct zpool *zp, struct freemem *f, uint8_t *p)
{
  f->p[f->n] = f->p[f->n - f->resident];
  f->p[f->n - f->resident] = p;
  f->n++;
  zp->nonresident++;
}

/* Lock a released run again (its address space is ours already): the
 * smallest that fits a waiter, else the largest.  0, 1 if there is
 * none, -1 with errno if it could not be locked (it stays released).
 * chunk_lock held, dropped around the system call. */
static int
relock_step (struct zpool *zp, uint32_t need)
{
  for (uint32_t i = 0; i < MAX_CHUNK_PAGES; i++) {
    uint32_t k = need ? need + i : MAX_CHUNK_PAGES - i;
    if (k > MAX_CHUNK_PAGES)
      break;
    struct freemem *f = &zp->free_mem[k];
    if (f->n == f->resident)
      continue;
    uint8_t *p = take_nonresident (zp, f);
    pthread_mutex_unlock (&zp->chunk_lock);
    int r = settle (zp, p, (size_t) k * PAGE), e = errno;
    pthread_mutex_lock (&zp->chunk_lock);
    if (r == -1) {
      put_nonresident (zp, f, p);
      errno = e;
      return -1;
    }
    push_free (zp, p, k);
    atomic_fetch_add (&zp->mapped, (uint64_t) k * PAGE);
    return 0;
  }
  return 1;
}

/* One step of refilling: a released run locked again, or else (or if
 * that fails: locking part of a mapping splits it) a new fresh segment.
 * With a waiter, only what fits its need.  chunk_lock held, dropped
 * around the system calls.  -1 with errno if the kernel refused. */
static int
refill_step (struct zpool *zp)
{
  if (relock_step (zp, zp->need) == 0)
    return 0;
  if (zp->nfresh == zp->fresh_cap) {     /* (only a run of waiters gets here) */
    errno = ENOMEM;
    return -1;
  }
  uint64_t pages = zp->mapped_pages + SEG_PAGES;
  pthread_mutex_unlock (&zp->chunk_lock);
  uint8_t *seg = NULL;
  int e = 0;
  if (zp->nsegs == zp->segs_cap) {
    size_t cap = zp->segs_cap ? 2 * zp->segs_cap : 64;
    uint8_t **s = realloc (zp->segs, cap * sizeof *s);
    if (s) {
      zp->segs = s;
      zp->segs_cap = cap;
    }
  }
  if (zp->nsegs == zp->segs_cap || grow_stacks (zp, pages) == -1 ||
      (seg = map_segment (zp)) == NULL)
    e = errno;
  else
    zp->segs[zp->nsegs++] = seg;
  pthread_mutex_lock (&zp->chunk_lock);
  if (seg == NULL) {
    errno = e;
    return -1;
  }
  zp->mapped_pages = pages;
  zp->fresh[zp->nfresh++] = seg;
  atomic_fetch_add (&zp->mapped, SEG_BYTES);
  return 0;
}

/* Give back one resident run of at most 'excess' bytes, from the size
 * holding the most: 1 if there is none, -1 if it could not be unlocked.
 * chunk_lock held, dropped around the system calls. */
static int
return_step (struct zpool *zp, uint64_t excess)
{
  uint32_t k = 0;
  uint64_t most = 0;

  for (uint32_t m = 1; m <= MAX_CHUNK_PAGES && (uint64_t) m * PAGE <= excess; m++)
    if ((uint64_t) zp->free_mem[m].resident * m > most) {
      most = (uint64_t) zp->free_mem[m].resident * m;
      k = m;
    }
  if (k == 0 || zp->nonresident >= zp->nonresident_max)
    return 1;
  /* The bottom resident run, the longest idle, turns non-resident where
   * it lies; the I/O path works only above it. */
  struct freemem *f = &zp->free_mem[k];
  uint8_t *p = f->p[f->n - f->resident];
  size_t bytes = (size_t) k * PAGE;
  f->resident--;
  zp->free_resident -= bytes;
  zp->nonresident++;
  pthread_mutex_unlock (&zp->chunk_lock);
  int r = unsettle (zp, p, bytes);
  pthread_mutex_lock (&zp->chunk_lock);
  if (r == -1) {                         /* still locked: resident again */
    f->resident++;
    zp->free_resident += bytes;
    zp->nonresident--;
    return -1;
  }
  atomic_fetch_add (&zp->returned, bytes);
  return 0;
}

static void
wait_ms (struct zpool *zp, pthread_cond_t *c, unsigned ms)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long) (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_cond_timedwait (c, &zp->chunk_lock, &ts);
}

/* The refill thread: fill up to high once below low (or whenever an
 * allocation waits), give back what is above high, sleep otherwise. */
static void *
refill_main (void *arg)
{
  struct zpool *zp = arg;
  bool filling = false, returning = false;

  /* Its allocations must not wait for writeback to the disk it feeds.
   * Inherited in swap mode; try otherwise (it needs CAP_SYS_RESOURCE). */
  if (prctl (PR_GET_IO_FLUSHER, 0, 0, 0, 0) != 1)
    prctl (PR_SET_IO_FLUSHER, 1, 0, 0, 0);
  pthread_setname_np (pthread_self (), "sgblk-refill");
  pthread_mutex_lock (&zp->chunk_lock);
  while (!zp->stopping) {
    uint64_t level = reserve_level (zp);
    if (level < mark (zp, zp->low))
      filling = true;
    if (zp->need || (filling && level < mark (zp, zp->high))) {
      if (refill_step (zp) == -1) {
        zp->refill_failures++;
        zp->refill_errno = errno;
        zp->need = 0;
        pthread_cond_broadcast (&zp->reserve_cond);
        wait_ms (zp, &zp->refill_cond, REFILL_RETRY_MS);
        continue;
      }
      zp->need = 0;                      /* waiters that still lack room say so again */
      pthread_cond_broadcast (&zp->reserve_cond);
      continue;
    }
    filling = false;
    /* A fill ends up to a segment above high: start giving back only
     * past that, and never go below high, or the two would take turns. */
    if (level > zp->high + SEG_BYTES)
      returning = true;
    if (returning && level > zp->high && return_step (zp, level - zp->high) == 0)
      continue;
    returning = false;
    zp->kicked = false;
    wait_ms (zp, &zp->refill_cond, REFILL_PERIOD_MS);
  }
  pthread_mutex_unlock (&zp->chunk_lock);
  return NULL;
}

static void
refill_stop (struct zpool *zp)
{
  if (!zp->refill_running)
    return;
  pthread_mutex_lock (&zp->chunk_lock);
  zp->stopping = true;
  pthread_cond_signal (&zp->refill_cond);
  pthread_mutex_unlock (&zp->chunk_lock);
  pthread_join (zp->refill, NULL);
  zp->refill_running = false;
}

/* Whether this process may lock as much as the reserve may come to:
 * CAP_IPC_LOCK (taken as root) or a large enough RLIMIT_MEMLOCK. */
static bool
may_lock (const struct zpool *zp)
{
  struct rlimit rl;

  if (geteuid () == 0)
    return true;
  if (getrlimit (RLIMIT_MEMLOCK, &rl) == -1)
    return false;
  /* (Twice: the rest of the process locks memory too.) */
  return rl.rlim_cur == RLIM_INFINITY ||
         (zp->mem_limit && rl.rlim_cur / 2 >= zp->mem_limit + zp->high);
}

/* Each run given back may cut a locked mapping in three: allow a
 * quarter as many runs as the kernel allows mappings, which leaves at
 * least half of them to everything else.  Past that, memory above high
 * stays resident until it is used again. */
static uint32_t
nonresident_budget (void)
{
  unsigned long max = 65530;              /* the kernel's default */
  FILE *f = fopen ("/proc/sys/vm/max_map_count", "re");

  if (f) {
    if (fscanf (f, "%lu", &max) != 1)
      max = 65530;
    fclose (f);
  }
  return max / 4 > UINT32_MAX ? UINT32_MAX : (uint32_t) (max / 4);
}

int
zpool_reserve_start (struct zpool *zp, uint64_t low, uint64_t high)
{
  if (high == 0 || low > high) {
    errno = EINVAL;
    return -1;
  }
  pthread_mutex_lock (&zp->chunk_lock);
  if (zp->reserve || zp->narenas || zp->mem_used) {
    pthread_mutex_unlock (&zp->chunk_lock);
    errno = EBUSY;
    return -1;
  }
  /* Fresh segments never pass high by more than one, but for waiters,
   * who come only when there are none. */
  zp->fresh_cap = (uint32_t) (high / SEG_BYTES + 2);
  zp->fresh = malloc (zp->fresh_cap * sizeof *zp->fresh);
  if (zp->fresh == NULL) {
    pthread_mutex_unlock (&zp->chunk_lock);
    errno = ENOMEM;
    return -1;
  }
  zp->reserve = true;
  zp->low = low;
  zp->high = high;
  zp->lock = may_lock (zp);
  zp->nonresident_max = nonresident_budget ();
  /* The first fill happens here, so that serving starts with a full
   * reserve and a failure fails the caller. */
  uint64_t target = mark (zp, high);
  int r = 0, e = 0;
  while (r == 0 && reserve_level (zp) < target)
    r = refill_step (zp);
  e = errno;
  pthread_mutex_unlock (&zp->chunk_lock);

  if (r == 0) {
    /* A small stack (every stack is locked), and no signals: they are
     * the main thread's. */
    pthread_attr_t attr;
    sigset_t all, old;
    sigfillset (&all);
    pthread_attr_init (&attr);
    pthread_attr_setstacksize (&attr, REFILL_STACK);
    pthread_sigmask (SIG_SETMASK, &all, &old);
    r = pthread_create (&zp->refill, &attr, refill_main, zp);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    pthread_attr_destroy (&attr);
    if (r == 0) {
      zp->refill_running = true;
      return 0;
    }
    e = r;
  }
  /* Nothing was handed out yet: undo the fill. */
  for (int k = 0; k <= MAX_CHUNK_PAGES; k++)
    zp->free_mem[k].n = zp->free_mem[k].resident = 0;
  zp->free_resident = 0;
  zp->bump = NULL;
  zp->bump_off = zp->bump_len = 0;
  free (zp->fresh);
  zp->fresh = NULL;
  zp->nfresh = zp->fresh_cap = 0;
  zp->mapped_pages = 0;
  zp->mapped = 0;
  unmap_segments (zp);
  zp->reserve = false;
  errno = e;
  return -1;
}

void
zpool_reserve_get (struct zpool *zp, struct zpool_reserve_stats *rs)
{
  pthread_mutex_lock (&zp->chunk_lock);
  *rs = (struct zpool_reserve_stats) {
    .on = zp->reserve,
    .level = zp->reserve ? reserve_level (zp) : 0,
    .low = zp->low, .high = zp->high,
    .waits = zp->waits, .mapped = zp->mapped, .returned = zp->returned,
  };
  pthread_mutex_unlock (&zp->chunk_lock);
}

/* Chunk memory of 'bytes': from the reserve (reserve mode), or reused,
 * or bumped from an arena.  chunk_lock held.  NULL with errno. */
static uint8_t *
chunk_memory (struct zpool *zp, uint32_t bytes)
{
  uint32_t k = bytes / PAGE;

  if (zp->reserve)
    return reserve_take (zp, k);
  if (zp->free_mem[k].n)
    return pop_free (zp, k);
  if (zp->bump && zp->bump_off + bytes <= zp->bump_len) {
    uint8_t *p = zp->bump + zp->bump_off;
    zp->bump_off += bytes;
    return p;
  }
  if (zp->narenas == MAX_ARENAS) {
    errno = ENOMEM;
    return NULL;
  }
  void *a = mmap (NULL, ARENA_BYTES, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (a == MAP_FAILED)
    return NULL;
  huge_pages (a, ARENA_BYTES);
  zp->arenas[zp->narenas].base = a;
  zp->arenas[zp->narenas++].len = ARENA_BYTES;
  zp->bump = a;
  zp->bump_off = bytes;
  zp->bump_len = ARENA_BYTES;
  return a;
}

/* A descriptor for a new chunk of class c.  chunk_lock held.  NULL with
 * errno (ENOSPC past the limit). */
static struct zchunk *
take_desc (struct zpool *zp, struct zclass *c)
{
  struct zchunk *d, **list = &zp->free_desc[c->desc];

  if (*list == NULL) {
    uint32_t size = DESC_MIN << c->desc, run = desc_run (c->desc);
    uint8_t *mem = chunk_memory (zp, run);
    if (mem == NULL)
      return NULL;
    atomic_fetch_add (&zp->mem_used, run);
    for (uint32_t off = 0; off + size <= run; off += size) {
      d = (struct zchunk *) (mem + off);
      d->next = *list;
      *list = d;
    }
  }
  d = *list;
  *list = d->next;
  return d;
}

/* Back on the list of size DESC_MIN << desc; chunk_lock held. */
static void
put_desc (struct zpool *zp, struct zchunk *d, uint32_t desc)
{
  d->next = zp->free_desc[desc];
  zp->free_desc[desc] = d;
}

static void release_chunk (struct zpool *zp, struct zchunk *ch);

/* A new chunk for class c; class lock held.  NULL with errno. */
static struct zchunk *
new_chunk (struct zpool *zp, uint32_t ci, bool past_limit)
{
  struct zclass *c = &zp->cls[ci];
  struct zchunk *ch;

  /* The chunk, and a run of descriptors unless one is free. */
  bool small = c->nchunks < SMALL_CHUNKS;
  uint32_t bytes = small ? c->small_bytes : c->bytes, nobj = small ? c->small_nobj : c->nobj;
  pthread_mutex_lock (&zp->chunk_lock);
  uint64_t need = bytes + (zp->free_desc[c->desc] ? 0 : desc_run (c->desc));
  pthread_mutex_unlock (&zp->chunk_lock);
  if (zp->mem_limit && zp->mem_used + need > zp->mem_limit) {
    /* Other classes' spare chunks are memory nobody uses: give them
     * back first (trylock: this class's lock is held). */
    for (uint32_t j = 0; j < zp->nclasses; j++) {
      struct zclass *o = &zp->cls[j];
      if (j == ci || o->spare == NULL || pthread_mutex_trylock (&o->lock) != 0)
        continue;
      if (o->spare) {
        release_chunk (zp, o->spare);
        o->spare = NULL;
      }
      pthread_mutex_unlock (&o->lock);
    }
    if (c->spare) {
      release_chunk (zp, c->spare);
      c->spare = NULL;
    }
  }
  if (zp->mem_limit && zp->mem_used + need > zp->mem_limit && !past_limit) {
    errno = ENOSPC;
    return NULL;
  }
  pthread_mutex_lock (&zp->chunk_lock);
  ch = take_desc (zp, c);
  if (ch == NULL) {
    int e = errno;
    pthread_mutex_unlock (&zp->chunk_lock);
    errno = e;
    return NULL;
  }
  uint32_t id = zp->nfree_ids ? zp->free_ids[--zp->nfree_ids] :
                zp->next_id < zp->table_len ? zp->next_id++ : NONE;
  uint8_t *mem = id == NONE ? NULL : chunk_memory (zp, bytes);
  if (mem == NULL) {
    int e = id == NONE ? ENOMEM : errno;
    if (id != NONE)
      zp->free_ids[zp->nfree_ids++] = id;
    put_desc (zp, ch, c->desc);
    pthread_mutex_unlock (&zp->chunk_lock);
    errno = e;
    return NULL;
  }
  zp->table[id] = ch;
  pthread_mutex_unlock (&zp->chunk_lock);
  *ch = (struct zchunk) { .base = mem, .id = id, .cls = ci, .nobj = nobj,
                          .free_head = NONE, .bytes = bytes };
  for (uint32_t i = 0; i < nobj; i++)
    ch->owner[i] = NONE;
  c->nchunks++;
  atomic_fetch_add (&zp->mem_used, bytes);
  return ch;
}

static void
unlink_chunk (struct zchunk **list, struct zchunk *ch)
{
  if (ch->prev) ch->prev->next = ch->next; else *list = ch->next;
  if (ch->next) ch->next->prev = ch->prev;
  ch->prev = ch->next = NULL;
}

static void
push_chunk (struct zchunk **list, struct zchunk *ch)
{
  ch->prev = NULL;
  ch->next = *list;
  if (*list) (*list)->prev = ch;
  *list = ch;
}

/* Give an empty chunk, off every list, back; class lock held. */
static void
release_chunk (struct zpool *zp, struct zchunk *ch)
{
  struct zclass *c = &zp->cls[ch->cls];
  uint64_t bytes = ch->bytes;       /* the descriptor is another's once put back */

  c->nchunks--;
  pthread_mutex_lock (&zp->chunk_lock);
  push_free (zp, ch->base, bytes / PAGE);
  zp->table[ch->id] = NULL;
  zp->free_ids[zp->nfree_ids++] = ch->id;
  put_desc (zp, ch, c->desc);
  pthread_mutex_unlock (&zp->chunk_lock);
  atomic_fetch_sub (&zp->mem_used, bytes);
}

/* Take a slot of ch; class lock held. */
static uint32_t
take_slot (struct zclass *c, struct zchunk *ch, uint32_t owner)
{
  uint32_t slot;

  if (ch->free_head != NONE) {
    slot = ch->free_head;
    memcpy (&ch->free_head, ch->base + (size_t) slot * c->size, sizeof slot);
  }
  else
    slot = ch->fresh++;
  ch->owner[slot] = owner;
  if (++ch->nused == ch->nobj) {
    unlink_chunk (&c->partial, ch);
    push_chunk (&c->full, ch);
  }
  return slot;
}

static void
put_slot (struct zpool *zp, struct zchunk *ch, uint32_t slot)
{
  struct zclass *c = &zp->cls[ch->cls];

  ch->owner[slot] = NONE;
  memcpy (ch->base + (size_t) slot * c->size, &ch->free_head, sizeof slot);
  ch->free_head = slot;
  if (ch->nused-- == ch->nobj) {
    unlink_chunk (&c->full, ch);
    push_chunk (&c->partial, ch);
  }
  if (ch->nused == 0) {
    /* Keep one empty chunk a class: an overwrite frees an object and
     * allocates another, and should not cost a page fault each time. */
    unlink_chunk (&c->partial, ch);
    if (c->spare == NULL)
      c->spare = ch;
    else
      release_chunk (zp, ch);
  }
}

static inline uint64_t
handle (const struct zchunk *ch, uint32_t slot)
{
  return (uint64_t) (ch->id + 1) << SLOT_BITS | slot;
}

uint64_t
zpool_alloc (struct zpool *zp, uint32_t size, uint32_t owner, bool past_limit)
{
  uint32_t ci = class_of (zp, size);
  struct zclass *c = &zp->cls[ci];
  struct zchunk *ch;
  uint64_t h;

  pthread_mutex_lock (&c->lock);
  ch = c->partial;
  if (ch == NULL && c->spare) {
    ch = c->spare;
    c->spare = NULL;
    push_chunk (&c->partial, ch);
  }
  if (ch == NULL) {
    ch = new_chunk (zp, ci, past_limit);
    if (ch == NULL) {
      int e = errno;
      pthread_mutex_unlock (&c->lock);
      errno = e;
      return 0;
    }
    push_chunk (&c->partial, ch);
  }
  h = handle (ch, take_slot (c, ch, owner));
  pthread_mutex_unlock (&c->lock);
  return h;
}

static struct zchunk *
chunk_of (const struct zpool *zp, uint64_t h)
{
  return zp->table[(h >> SLOT_BITS) - 1];
}

void
zpool_free (struct zpool *zp, uint64_t h)
{
  struct zchunk *ch = chunk_of (zp, h);
  struct zclass *c = &zp->cls[ch->cls];

  pthread_mutex_lock (&c->lock);
  put_slot (zp, ch, (uint32_t) (h & ((1u << SLOT_BITS) - 1)));
  pthread_mutex_unlock (&c->lock);
}

bool
zpool_fits (const struct zpool *zp, uint64_t h, uint32_t size)
{
  return chunk_of (zp, h)->cls == class_of (zp, size);
}

void *
zpool_map (struct zpool *zp, uint64_t h)
{
  struct zchunk *ch = chunk_of (zp, h);
  return ch->base + (size_t) (h & ((1u << SLOT_BITS) - 1)) * zp->cls[ch->cls].size;
}

/* Empty the sparsest partial chunk of class c into the others, while the
 * free slots elsewhere can hold it.  Class lock held. */
static uint64_t
compact_class (struct zpool *zp, uint32_t ci)
{
  struct zclass *c = &zp->cls[ci];
  uint64_t moved = 0;

  for (;;) {
    struct zchunk *sparse = NULL;
    uint64_t room = 0;
    for (struct zchunk *ch = c->partial; ch; ch = ch->next) {
      room += ch->nobj - ch->nused;
      if (sparse == NULL || ch->nused < sparse->nused)
        sparse = ch;
    }
    if (sparse == NULL || room - (sparse->nobj - sparse->nused) < sparse->nused)
      return moved;
    for (uint32_t slot = 0; slot < sparse->fresh && sparse->nused > 0; slot++) {
      uint32_t owner = sparse->owner[slot];
      if (owner == NONE)
        continue;
      struct zchunk *dst = c->partial == sparse ? sparse->next : c->partial;
      uint32_t ns = take_slot (c, dst, owner);
      /* relocate copies the object, under the owner's lock */
      if (!zp->relocate (zp->opaque, owner, handle (sparse, slot), handle (dst, ns))) {
        put_slot (zp, dst, ns);            /* the block is busy: try later */
        return moved;
      }
      moved++;
      atomic_fetch_add (&zp->moved, 1);
      bool last = sparse->nused == 1;
      put_slot (zp, sparse, slot);          /* releases the chunk when empty */
      if (last)
        break;
    }
  }
}

uint64_t
zpool_compact (struct zpool *zp)
{
  uint64_t before = zpool_mem_used (zp);

  for (uint32_t i = 0; i < zp->nclasses; i++) {
    struct zclass *c = &zp->cls[i];
    pthread_mutex_lock (&c->lock);
    compact_class (zp, i);
    if (c->spare) {                    /* idle memory goes back too */
      release_chunk (zp, c->spare);
      c->spare = NULL;
    }
    pthread_mutex_unlock (&c->lock);
  }
  /* Released chunks still resident go back to the kernel now; in
   * reserve mode they are the reserve, and the refill thread gives back
   * what is above its high watermark. */
  pthread_mutex_lock (&zp->chunk_lock);
  if (zp->reserve) {
    zp->kicked = true;
    pthread_cond_signal (&zp->refill_cond);
  }
  else {
    for (int k = 1; k <= MAX_CHUNK_PAGES; k++) {
      struct freemem *f = &zp->free_mem[k];
      for (uint32_t i = f->n - f->resident; i < f->n; i++)
        give_back (zp, f->p[i], (size_t) k * PAGE);
      f->resident = 0;
    }
    zp->free_resident = 0;
    /* The huge page that the bump area last faulted in is resident to
     * its end, however little of it is used: give the unused part back
     * (splitting it; the area grows on small pages to the next huge page
     * boundary).  Measured: 1.3 MiB of 35 holding 64 MiB of libraries. */
    if (zp->bump && zp->bump_off < zp->bump_len) {
      uintptr_t from = ((uintptr_t) zp->bump + zp->bump_off + PAGE - 1) & ~(uintptr_t) (PAGE - 1);
      uintptr_t to = (from + HUGE_PAGE - 1) & ~(uintptr_t) (HUGE_PAGE - 1);
      if (to > (uintptr_t) zp->bump + zp->bump_len)
        to = (uintptr_t) zp->bump + zp->bump_len;
      if (to > from)
        madvise ((void *) from, to - from, MADV_DONTNEED);
    }
  }
  pthread_mutex_unlock (&zp->chunk_lock);
  uint64_t after = zpool_mem_used (zp);
  return before > after ? before - after : 0;
}
