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
 * zpool_prealloc fixes the pool (swap mode): one mapping of the memory
 * limit, touched at once, and nothing mapped or given back after that.  A
 * chunk size with no released memory of its own then splits a larger
 * released run before giving up with ENOSPC.
 *
 * Locks: one per class (slots, lists), then chunk_lock (ids, arenas,
 * chunk memory, descriptor lists); never the other way round.  mem_used
 * counts chunk and descriptor bytes.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "sync.h"

#define ARENA_BYTES (64u << 20)
#define MAX_ARENAS 16384
#define NONE UINT32_MAX
#define SLOT_BITS 20
#define PAGE 4096u
#define MAX_CHUNK_PAGES 20                /* 64 KiB raw blocks need 16 */
#define CHUNK_SPAN 8                       /* chunk sizes tried per class, in pages */
#define DESC_MIN 128u                      /* descriptor sizes: 128 B .. 64 KiB */
#define DESC_SIZES 10

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
  uint32_t size, nobj, bytes;
  struct zchunk *partial, *full;
  struct zchunk *spare;                  /* one empty chunk kept for reuse */
  uint32_t desc;                         /* its descriptors' size: DESC_MIN << desc */
};

/* A stack of released chunk memory of one size.  The top entries are
 * still resident, so an allocation right after a release costs no page
 * fault; zpool_compact gives resident ones back to the kernel. */
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
  struct { uint8_t *base; size_t len; } arenas[MAX_ARENAS];
  uint32_t narenas;
  bool fixed;                            /* preallocated: never map or unmap */
  size_t arena_off, arena_len;
  struct freemem free_mem[MAX_CHUNK_PAGES + 1];   /* released chunk memory, by pages */
  atomic_uint_fast64_t free_resident;    /* bytes of it not yet given back */
  struct zchunk *free_desc[DESC_SIZES];  /* unused descriptors by size, linked by next */
  atomic_uint_fast64_t mem_used, moved;
  uint64_t mem_limit;
  zpool_relocate_fn relocate;
  void *opaque;
};

struct zpool *
zpool_create (uint32_t bs, uint64_t mem_limit, uint64_t max_bytes,
              zpool_relocate_fn relocate, void *opaque)
{
  struct zpool *zp = calloc (1, sizeof *zp);

  if (zp == NULL)
    return NULL;
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
    zpool_destroy (zp);
    errno = ENOMEM;
    return NULL;
  }
  for (uint32_t i = 0; i < zp->nclasses; i++) {
    struct zclass *c = &zp->cls[i];
    c->size = i + 1 < zp->nclasses ? (i + 1) * zp->step : bs;
    /* The chunk size that leaves the smallest tail. */
    uint32_t best = 0, first = (c->size + PAGE - 1) / PAGE;
    for (uint32_t k = first; k < first + CHUNK_SPAN && k <= MAX_CHUNK_PAGES; k++) {
      uint32_t cb = k * PAGE;
      if (best == 0 || (uint64_t) (cb % c->size) * best < (uint64_t) (best % c->size) * cb)
        best = cb;
    }
    /* Raw blocks fill pages exactly at any chunk size: take the largest,
     * so that fewer chunks come and go when incompressible data churns. */
    if (i + 1 == zp->nclasses && bs < 8 * PAGE)
      best = 8 * PAGE;
    c->bytes = best;
    c->nobj = best / c->size;
    size_t dsize = sizeof (struct zchunk) + c->nobj * sizeof (uint32_t);
    while ((size_t) DESC_MIN << c->desc < dsize)
      c->desc++;
    sync_mutex_init_adaptive (&c->lock);
  }
  /* Neighbouring classes that fit as many objects in as many pages are
   * one class in effect: objects use the largest, which leaves fewer
   * half-used chunks about (zsmalloc merges its classes the same way). */
  for (uint32_t i = zp->nclasses; i-- > 0; )
    zp->target[i] = i + 1 < zp->nclasses && zp->cls[i].nobj == zp->cls[i + 1].nobj &&
                    zp->cls[i].bytes == zp->cls[i + 1].bytes ? zp->target[i + 1] : i;
  pthread_mutex_init (&zp->chunk_lock, NULL);
  return zp;
}

void
zpool_destroy (struct zpool *zp)
{
  if (zp == NULL)
    return;
  if (zp->cls)
    for (uint32_t i = 0; i < zp->nclasses; i++)
      pthread_mutex_destroy (&zp->cls[i].lock);
  for (uint32_t i = 0; i < zp->narenas; i++)
    munmap (zp->arenas[i].base, zp->arenas[i].len);
  for (int i = 0; i <= MAX_CHUNK_PAGES; i++)
    free (zp->free_mem[i].p);
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

uint64_t zpool_mem_used (const struct zpool *zp) { return zp->mem_used + zp->free_resident; }
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

/* Remember released chunk memory of k pages, resident; chunk_lock held. */
static void
push_free (struct zpool *zp, uint8_t *mem, uint32_t k)
{
  struct freemem *f = &zp->free_mem[k];

  if (f->n == f->cap && !zp->fixed) {    /* a fixed pool's stacks never fill */
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
  else                                   /* no room to remember it: lose the address space only */
    madvise (mem, (size_t) k * PAGE, MADV_DONTNEED);
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

/* Chunk memory of 'bytes': reused, bumped from an arena, or (fixed pool)
 * split off a larger released run.  chunk_lock held.  NULL with errno. */
static uint8_t *
chunk_memory (struct zpool *zp, uint32_t bytes)
{
  uint32_t k = bytes / PAGE;

  if (zp->free_mem[k].n)
    return pop_free (zp, k);
  if (zp->narenas && zp->arena_off + bytes <= zp->arena_len) {
    uint8_t *p = zp->arenas[zp->narenas - 1].base + zp->arena_off;
    zp->arena_off += bytes;
    return p;
  }
  if (zp->fixed) {
    for (uint32_t m = k + 1; m <= MAX_CHUNK_PAGES; m++)
      if (zp->free_mem[m].n) {
        uint8_t *p = pop_free (zp, m);
        push_free (zp, p + bytes, m - k);
        return p;
      }
    errno = ENOSPC;
    return NULL;
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
  zp->arena_off = bytes;
  zp->arena_len = ARENA_BYTES;
  return a;
}

int
zpool_prealloc (struct zpool *zp, uint64_t bytes)
{
  size_t len = (size_t) ((bytes + PAGE - 1) / PAGE * PAGE);
  uint64_t pages = len / PAGE;

  if (len == 0 || zp->narenas == MAX_ARENAS) {
    errno = EINVAL;
    return -1;
  }
  pthread_mutex_lock (&zp->chunk_lock);
  for (uint32_t i = 0; i < zp->narenas; i++)
    pages += zp->arenas[i].len / PAGE;
  /* Released runs of k pages never outnumber pages / k. */
  for (uint32_t k = 1; k <= MAX_CHUNK_PAGES; k++) {
    struct freemem *f = &zp->free_mem[k];
    uint32_t cap = (uint32_t) (pages / k + 1);
    uint8_t **p = cap > f->cap ? realloc (f->p, cap * sizeof *p) : f->p;
    if (p == NULL) {
      pthread_mutex_unlock (&zp->chunk_lock);
      errno = ENOMEM;
      return -1;
    }
    f->p = p;
    f->cap = cap > f->cap ? cap : f->cap;
  }
  void *a = mmap (NULL, len, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED) {
    pthread_mutex_unlock (&zp->chunk_lock);
    return -1;
  }
  huge_pages (a, len);
  /* Touch every page, so that none is faulted in while serving. */
  memset (a, 0, len);
  zp->arenas[zp->narenas].base = a;
  zp->arenas[zp->narenas++].len = len;
  zp->arena_off = 0;
  zp->arena_len = len;
  zp->fixed = true;
  pthread_mutex_unlock (&zp->chunk_lock);
  return 0;
}

/* Descriptors of size DESC_MIN << d are carved this many bytes at a time. */
static inline uint32_t
desc_run (uint32_t d)
{
  return DESC_MIN << d < PAGE ? PAGE : DESC_MIN << d;
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
new_chunk (struct zpool *zp, uint32_t ci)
{
  struct zclass *c = &zp->cls[ci];
  struct zchunk *ch;

  /* The chunk, and a run of descriptors unless one is free. */
  pthread_mutex_lock (&zp->chunk_lock);
  uint64_t need = c->bytes + (zp->free_desc[c->desc] ? 0 : desc_run (c->desc));
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
  if (zp->mem_limit && zp->mem_used + need > zp->mem_limit) {
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
  uint8_t *mem = id == NONE ? NULL : chunk_memory (zp, c->bytes);
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
  *ch = (struct zchunk) { .base = mem, .id = id, .cls = ci, .nobj = c->nobj,
                          .free_head = NONE, .bytes = c->bytes };
  for (uint32_t i = 0; i < c->nobj; i++)
    ch->owner[i] = NONE;
  atomic_fetch_add (&zp->mem_used, c->bytes);
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
zpool_alloc (struct zpool *zp, uint32_t size, uint32_t owner)
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
    ch = new_chunk (zp, ci);
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
  /* Released chunks still resident go back to the kernel now, unless
   * the pool is fixed: its memory stays as preallocated. */
  pthread_mutex_lock (&zp->chunk_lock);
  for (int k = 1; k <= MAX_CHUNK_PAGES && !zp->fixed; k++) {
    struct freemem *f = &zp->free_mem[k];
    for (uint32_t i = f->n - f->resident; i < f->n; i++)
      madvise (f->p[i], (size_t) k * PAGE, MADV_DONTNEED);
    f->resident = 0;
  }
  if (!zp->fixed)
    zp->free_resident = 0;
  pthread_mutex_unlock (&zp->chunk_lock);
  uint64_t after = zpool_mem_used (zp);
  return before > after ? before - after : 0;
}
