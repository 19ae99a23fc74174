/* Memory store: a sparse array of 4 KiB pages.
 *
 * Data structure: a two-level page table.  The top level, allocated when
 * the store is created, has one pointer per leaf; a leaf covers LEAF_PAGES
 * pages (16 MiB of data) and is installed on first use with a compare-and-
 * swap, so looking a page up never takes a lock.  Each leaf entry points to
 * a page of data or is NULL for a hole, which reads as zeroes.  Leaves stay
 * until the store is closed; pages come and go.
 *
 * Invariants:
 *   - a page pointer changes (NULL -> page on first write of non-zero data,
 *     page -> NULL on trim, zero, or a whole-page write of zeroes) only under
 *     the page's stripe lock, and page contents are read and written only
 *     under it, so a reader never sees a page freed under it and every
 *     write lands whole on each page;
 *   - 'pages' counts allocated pages; with a memory limit, 'charged' counts
 *     allocated pages plus pages reserved by writes in progress and never
 *     exceeds limit_pages.
 *
 * Writes and the memory limit: before writing, a write counts the holes it
 * will fill with non-zero data and reserves that many pages at once; if the
 * limit does not allow it, the write fails with ENOSPC before touching any
 * data.  Only if a concurrent trim turns a page into a hole after that count
 * can a write need one more page than it reserved; if that page cannot be
 * had, the write stops with ENOSPC there, and the pages before it hold the
 * new data while the rest hold the old.  Allocation failures of the C
 * library are reported as ENOSPC too: the store ran out of space.
 *
 * The stripe for page i is i % NR_STRIPES, so neighbouring pages of one
 * large transfer, and transfers from different threads, rarely contend.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define PAGE_SHIFT 12
#define PAGE_SIZE  (1u << PAGE_SHIFT)
#define LEAF_SHIFT 12
#define LEAF_PAGES (1u << LEAF_SHIFT)
#define NR_STRIPES 256
/* 2^52 bytes: a top level of 2^28 pointers (virtual; untouched parts of a
 * large calloc cost nothing). */
#define MAX_SIZE   (UINT64_C(1) << 52)

struct leaf {
  _Atomic(unsigned char *) page[LEAF_PAGES];
};

struct stripe {
  pthread_mutex_t lock;
  char pad[64 - sizeof (pthread_mutex_t) % 64];
};

struct mem_store {
  struct store s;                 /* first: the store handle points here */
  uint64_t nleaves;
  bool has_limit;
  uint64_t limit_pages;
  _Atomic(struct leaf *) *top;
  _Atomic uint64_t pages;
  _Atomic uint64_t charged;
  _Atomic uint64_t reads, writes, flushes, trims, zeroes;
  struct stripe stripes[NR_STRIPES];
};

static inline struct mem_store *
to_mem (struct store *s)
{
  return (struct mem_store *) s;
}

static inline pthread_mutex_t *
stripe_of (struct mem_store *m, uint64_t idx)
{
  return &m->stripes[idx % NR_STRIPES].lock;
}

/* The slot of page idx, or NULL if its leaf does not exist (and create is
 * false, or allocating the leaf failed). */
static _Atomic(unsigned char *) *
slot_of (struct mem_store *m, uint64_t idx, bool create)
{
  _Atomic(struct leaf *) *tp = &m->top[idx >> LEAF_SHIFT];
  struct leaf *l = atomic_load_explicit (tp, memory_order_acquire);

  if (l == NULL) {
    struct leaf *expected = NULL;

    if (!create)
      return NULL;
    l = calloc (1, sizeof *l);
    if (l == NULL)
      return NULL;
    if (!atomic_compare_exchange_strong_explicit (tp, &expected, l,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
      free (l);
      l = expected;
    }
  }
  return &l->page[idx & (LEAF_PAGES - 1)];
}

static inline unsigned char *
peek_page (struct mem_store *m, uint64_t idx)
{
  _Atomic(unsigned char *) *slot = slot_of (m, idx, false);

  return slot ? atomic_load_explicit (slot, memory_order_acquire) : NULL;
}

/* All zero: the first 16 bytes are zero and each byte equals the one 16
 * bytes on. */
static bool
buf_is_zero (const unsigned char *p, size_t n)
{
  static const unsigned char zero[16];

  if (n <= 16)
    return memcmp (p, zero, n) == 0;
  return memcmp (p, zero, 16) == 0 && memcmp (p, p + 16, n - 16) == 0;
}

/* A cursor over the caller's iovec array. */
struct iter {
  const struct iovec *iov;
  size_t off;                     /* within iov[0] */
};

static void
iter_skip (struct iter *it, size_t n)
{
  while (n > 0) {
    size_t k = it->iov->iov_len - it->off;

    if (k > n) {
      it->off += n;
      return;
    }
    n -= k;
    it->iov++;
    it->off = 0;
  }
}

/* Copy n bytes from the cursor to dst. */
static void
iter_copy_out (struct iter *it, unsigned char *dst, size_t n)
{
  while (n > 0) {
    size_t k = it->iov->iov_len - it->off;

    if (k > n)
      k = n;
    memcpy (dst, (const unsigned char *) it->iov->iov_base + it->off, k);
    dst += k;
    n -= k;
    it->off += k;
    if (it->off == it->iov->iov_len) {
      it->iov++;
      it->off = 0;
    }
  }
}

/* Copy n bytes from src (or zeroes if src is NULL) to the cursor. */
static void
iter_copy_in (struct iter *it, const unsigned char *src, size_t n)
{
  while (n > 0) {
    size_t k = it->iov->iov_len - it->off;
    unsigned char *d = (unsigned char *) it->iov->iov_base + it->off;

    if (k > n)
      k = n;
    if (src) {
      memcpy (d, src, k);
      src += k;
    }
    else
      memset (d, 0, k);
    n -= k;
    it->off += k;
    if (it->off == it->iov->iov_len) {
      it->iov++;
      it->off = 0;
    }
  }
}

/* Are the next n bytes at the cursor zero?  The cursor does not move. */
static bool
iter_is_zero (const struct iter *it, size_t n)
{
  const struct iovec *v = it->iov;
  size_t off = it->off;

  while (n > 0) {
    size_t k = v->iov_len - off;

    if (k > n)
      k = n;
    if (!buf_is_zero ((const unsigned char *) v->iov_base + off, k))
      return false;
    n -= k;
    v++;
    off = 0;
  }
  return true;
}

static size_t
iov_total (const struct iovec *iov, int iovcnt)
{
  size_t t = 0;

  for (int i = 0; i < iovcnt; i++)
    t += iov[i].iov_len;
  return t;
}

/* Reserve n pages against the limit; false if they do not fit. */
static bool
charge (struct mem_store *m, uint64_t n)
{
  uint64_t cur;

  if (!m->has_limit || n == 0)
    return true;
  cur = atomic_load_explicit (&m->charged, memory_order_relaxed);
  do {
    if (cur + n > m->limit_pages)
      return false;
  } while (!atomic_compare_exchange_weak_explicit (&m->charged, &cur, cur + n,
                                                   memory_order_relaxed,
                                                   memory_order_relaxed));
  return true;
}

static void
uncharge (struct mem_store *m, uint64_t n)
{
  if (m->has_limit && n)
    atomic_fetch_sub_explicit (&m->charged, n, memory_order_relaxed);
}

/* Drop a page that has been unlinked from its slot. */
static void
page_release (struct mem_store *m, unsigned char *page)
{
  free (page);
  atomic_fetch_sub_explicit (&m->pages, 1, memory_order_relaxed);
  uncharge (m, 1);
}

static int
mem_pread (struct store *s, const struct iovec *iov, int iovcnt,
           uint64_t offset)
{
  struct mem_store *m = to_mem (s);
  struct iter it = { iov, 0 };
  size_t total = iov_total (iov, iovcnt);

  while (total > 0) {
    uint64_t idx = offset >> PAGE_SHIFT;
    size_t po = offset & (PAGE_SIZE - 1);
    size_t n = PAGE_SIZE - po < total ? PAGE_SIZE - po : total;
    _Atomic(unsigned char *) *slot = slot_of (m, idx, false);
    unsigned char *page = NULL;

    if (slot && atomic_load_explicit (slot, memory_order_acquire)) {
      pthread_mutex_t *lk = stripe_of (m, idx);

      pthread_mutex_lock (lk);
      page = atomic_load_explicit (slot, memory_order_relaxed);
      iter_copy_in (&it, page ? page + po : NULL, n);
      pthread_mutex_unlock (lk);
    }
    else
      iter_copy_in (&it, NULL, n);
    offset += n;
    total -= n;
  }
  atomic_fetch_add_explicit (&m->reads, 1, memory_order_relaxed);
  return 0;
}

/* Pages a write of total bytes at offset would allocate now: holes that
 * get non-zero data. */
static uint64_t
pages_needed (struct mem_store *m, struct iter it, uint64_t offset,
              size_t total)
{
  uint64_t need = 0;

  while (total > 0) {
    uint64_t idx = offset >> PAGE_SHIFT;
    size_t po = offset & (PAGE_SIZE - 1);
    size_t n = PAGE_SIZE - po < total ? PAGE_SIZE - po : total;

    if (peek_page (m, idx) == NULL && !iter_is_zero (&it, n))
      need++;
    iter_skip (&it, n);
    offset += n;
    total -= n;
  }
  return need;
}

/* Write n bytes (within one page) from the cursor at page idx, offset po.
 * *reserved holds pages this write has charged but not yet used. */
static int
write_page (struct mem_store *m, uint64_t idx, size_t po, size_t n,
            struct iter *it, uint64_t *reserved)
{
  pthread_mutex_t *lk = stripe_of (m, idx);
  _Atomic(unsigned char *) *slot;
  unsigned char *page, *fresh = NULL, *victim = NULL;

  for (;;) {
    slot = slot_of (m, idx, false);
    page = slot ? atomic_load_explicit (slot, memory_order_acquire) : NULL;
    if (page != NULL) {
      pthread_mutex_lock (lk);
      page = atomic_load_explicit (slot, memory_order_relaxed);
      if (page == NULL) {         /* trimmed meanwhile: start again */
        pthread_mutex_unlock (lk);
        continue;
      }
      if (n == PAGE_SIZE && iter_is_zero (it, n)) {
        atomic_store_explicit (slot, NULL, memory_order_release);
        victim = page;
        iter_skip (it, n);
      }
      else
        iter_copy_out (it, page + po, n);
      pthread_mutex_unlock (lk);
      if (victim)
        page_release (m, victim);
      return 0;
    }

    /* A hole.  Zeroes leave it a hole. */
    if (iter_is_zero (it, n)) {
      iter_skip (it, n);
      return 0;
    }
    if (slot == NULL && (slot = slot_of (m, idx, true)) == NULL) {
      errno = ENOSPC;
      return -1;
    }
    if (*reserved > 0)
      (*reserved)--;
    else if (!charge (m, 1)) {
      errno = ENOSPC;
      return -1;
    }
    fresh = malloc (PAGE_SIZE);
    if (fresh == NULL) {
      uncharge (m, 1);
      errno = ENOSPC;
      return -1;
    }

    pthread_mutex_lock (lk);
    page = atomic_load_explicit (slot, memory_order_relaxed);
    if (page == NULL) {
      memset (fresh, 0, po);
      iter_copy_out (it, fresh + po, n);
      memset (fresh + po + n, 0, PAGE_SIZE - po - n);
      atomic_fetch_add_explicit (&m->pages, 1, memory_order_relaxed);
      atomic_store_explicit (slot, fresh, memory_order_release);
      fresh = NULL;
    }
    else                          /* another writer filled it first */
      iter_copy_out (it, page + po, n);
    pthread_mutex_unlock (lk);
    if (fresh) {
      free (fresh);
      (*reserved)++;              /* still charged; returned at the end */
    }
    return 0;
  }
}

static int
mem_pwrite (struct store *s, const struct iovec *iov, int iovcnt,
            uint64_t offset, unsigned flags)
{
  struct mem_store *m = to_mem (s);
  struct iter it = { iov, 0 };
  size_t total = iov_total (iov, iovcnt);
  uint64_t reserved = 0;
  int r = 0;

  if (m->has_limit) {
    reserved = pages_needed (m, it, offset, total);
    if (!charge (m, reserved)) {
      errno = ENOSPC;
      return -1;
    }
  }
  while (total > 0) {
    uint64_t idx = offset >> PAGE_SHIFT;
    size_t po = offset & (PAGE_SIZE - 1);
    size_t n = PAGE_SIZE - po < total ? PAGE_SIZE - po : total;

    r = write_page (m, idx, po, n, &it, &reserved);
    if (r == -1)
      break;
    offset += n;
    total -= n;
  }
  uncharge (m, reserved);
  atomic_fetch_add_explicit (&m->writes, 1, memory_order_relaxed);
  return r;
}

static int
mem_flush (struct store *s)
{
  struct mem_store *m = to_mem (s);

  atomic_fetch_add_explicit (&m->flushes, 1, memory_order_relaxed);
  return 0;
}

/* Deallocate whole pages of [offset, offset+len) and zero the covered
 * parts of partial ones (freeing those that end up all zero). */
static void
discard (struct mem_store *m, uint64_t offset, uint64_t len)
{
  while (len > 0) {
    uint64_t idx = offset >> PAGE_SHIFT;
    size_t po = offset & (PAGE_SIZE - 1);
    size_t n = PAGE_SIZE - po < len ? PAGE_SIZE - po : (size_t) len;
    _Atomic(unsigned char *) *slot = slot_of (m, idx, false);

    if (slot == NULL) {
      /* No leaf: skip to the next leaf boundary. */
      uint64_t next = ((idx >> LEAF_SHIFT) + 1) << (LEAF_SHIFT + PAGE_SHIFT);

      n = next - offset < len ? next - offset : len;
    }
    else if (atomic_load_explicit (slot, memory_order_acquire)) {
      pthread_mutex_t *lk = stripe_of (m, idx);
      unsigned char *page, *victim = NULL;

      pthread_mutex_lock (lk);
      page = atomic_load_explicit (slot, memory_order_relaxed);
      if (page) {
        if (n < PAGE_SIZE)
          memset (page + po, 0, n);
        if (n == PAGE_SIZE || buf_is_zero (page, PAGE_SIZE)) {
          atomic_store_explicit (slot, NULL, memory_order_release);
          victim = page;
        }
      }
      pthread_mutex_unlock (lk);
      if (victim)
        page_release (m, victim);
    }
    offset += n;
    len -= n;
  }
}

static int
mem_trim (struct store *s, uint64_t offset, uint64_t len)
{
  struct mem_store *m = to_mem (s);

  discard (m, offset, len);
  atomic_fetch_add_explicit (&m->trims, 1, memory_order_relaxed);
  return 0;
}

/* Zeroing always deallocates: holes read as zeroes, and dropping a page is
 * the fastest zero there is.  The memory store makes no promise that space
 * stays provisioned. */
static int
mem_zero (struct store *s, uint64_t offset, uint64_t len, unsigned flags)
{
  struct mem_store *m = to_mem (s);

  discard (m, offset, len);
  atomic_fetch_add_explicit (&m->zeroes, 1, memory_order_relaxed);
  return 0;
}

static int
mem_extent (struct store *s, uint64_t offset, uint64_t len,
            uint64_t *ext_len, bool *allocated)
{
  struct mem_store *m = to_mem (s);
  uint64_t end = offset + len;
  uint64_t idx = offset >> PAGE_SHIFT;
  bool kind = peek_page (m, idx) != NULL;
  uint64_t pos = (idx + 1) << PAGE_SHIFT;

  while (pos < end) {
    uint64_t i = pos >> PAGE_SHIFT;
    _Atomic(unsigned char *) *slot = slot_of (m, i, false);

    if (slot == NULL) {
      if (kind)
        break;
      pos = ((i >> LEAF_SHIFT) + 1) << (LEAF_SHIFT + PAGE_SHIFT);
      continue;
    }
    if ((atomic_load_explicit (slot, memory_order_acquire) != NULL) != kind)
      break;
    pos += PAGE_SIZE;
  }
  *ext_len = (pos < end ? pos : end) - offset;
  *allocated = kind;
  return 0;
}

static void
mem_stats (struct store *s, struct store_stats *st)
{
  struct mem_store *m = to_mem (s);

  st->bytes_allocated = atomic_load (&m->pages) * PAGE_SIZE;
  st->reads = atomic_load (&m->reads);
  st->writes = atomic_load (&m->writes);
  st->flushes = atomic_load (&m->flushes);
  st->trims = atomic_load (&m->trims);
  st->zeroes = atomic_load (&m->zeroes);
}

static void
mem_close (struct store *s)
{
  struct mem_store *m = to_mem (s);

  for (uint64_t i = 0; i < m->nleaves; i++) {
    struct leaf *l = atomic_load (&m->top[i]);

    if (l == NULL)
      continue;
    for (unsigned j = 0; j < LEAF_PAGES; j++)
      free (atomic_load (&l->page[j]));
    free (l);
  }
  for (int i = 0; i < NR_STRIPES; i++)
    pthread_mutex_destroy (&m->stripes[i].lock);
  free ((void *) m->top);
  free (m);
}

static const struct store_ops mem_ops = {
  .name = "memory",
  .pread = mem_pread,
  .pwrite = mem_pwrite,
  .flush = mem_flush,
  .trim = mem_trim,
  .zero = mem_zero,
  .extent = mem_extent,
  .stats = mem_stats,
  .close = mem_close,
};

struct store *
store_memory_create (uint64_t size, uint64_t mem_limit)
{
  struct mem_store *m;
  uint64_t npages;
  void *mem;
  int r;

  if (size == 0 || size > MAX_SIZE) {
    errno = EINVAL;
    return NULL;
  }
  r = posix_memalign (&mem, 64, sizeof *m);
  if (r != 0) {
    errno = r;
    return NULL;
  }
  m = mem;
  memset (m, 0, sizeof *m);
  npages = (size + PAGE_SIZE - 1) >> PAGE_SHIFT;
  m->nleaves = (npages + LEAF_PAGES - 1) >> LEAF_SHIFT;
  m->top = calloc (m->nleaves, sizeof *m->top);
  if (m->top == NULL) {
    free (m);
    errno = ENOMEM;
    return NULL;
  }
  for (int i = 0; i < NR_STRIPES; i++)
    pthread_mutex_init (&m->stripes[i].lock, NULL);
  m->has_limit = mem_limit != 0;
  m->limit_pages = mem_limit / PAGE_SIZE;
  m->s.ops = &mem_ops;
  m->s.size = size;
  m->s.caps = STORE_CAP_TRIM | STORE_CAP_FAST_ZERO | STORE_CAP_EXTENTS |
              STORE_CAP_MEMORY;
  return &m->s;
}
