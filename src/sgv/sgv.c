/* sgv: the scatter-gather vector pool.
 *
 * A vector is one allocation holding its header (struct vec, which embeds
 * the public struct sgv_vec) followed by its iovec array, plus one
 * page-aligned data block of 'capacity' bytes.  The data block is described
 * as total_ents segments of SGV_MAX_SEG bytes each (or a single segment when
 * the capacity is smaller); segment i always starts at byte i * SGV_MAX_SEG
 * of the block, which lets the data helpers find a segment by division.
 *
 * The pool keeps idle vectors on two lists at once:
 *   - a per-order recycling list, most recently freed first, so that a reuse
 *     touches memory that is still warm in the caches;
 *   - a global LRU across orders (lru_prev/lru_next in struct sgv_vec), most
 *     recently freed at the head, oldest at the tail, so that trimming
 *     releases the oldest vectors first.
 * Invariants, under the pool lock:
 *   - a vector is on both lists or on neither; it is on them exactly when it
 *     is idle (cached);
 *   - the LRU is ordered by last_used, newest first (the timestamp is taken
 *     under the lock);
 *   - cached_bytes is the sum of the capacities of the cached vectors.
 *
 * The lock covers only list and counter updates.  Allocating and freeing
 * memory, and the release callback, happen with the lock dropped: victims
 * are unlinked onto a private chain first and released afterwards.  A cache
 * hit makes no allocator call at all.
 *
 * A data block of SGV_MAP_MIN bytes or more is a mapping of its own,
 * unmapped when the vector is destroyed: malloc raises its mmap threshold
 * past every large block freed and then keeps such blocks in its heap,
 * so the memory of vectors flushed or trimmed would stay resident.
 *
 * A fixed pool (prefilled, see sgv.h) skips the allocator entirely: a miss
 * takes a larger idle vector (describe() only needs capacity >= len) or
 * waits on 'returned' for a free.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "sgv.h"
#include "sync.h"

#define NR_ORDERS (SGV_MAX_ORDER + 1)
#define DEFAULT_CACHE_LIMIT (64u * 1024 * 1024)
#define DEFAULT_IDLE_NS 1000000000ull
#define SGV_MAP_MIN (128u * 1024)

/* The pool's view of a vector.  'v' must stay first: users hold &vec->v. */
struct vec {
  struct sgv_vec v;
  struct vec *ord_prev, *ord_next;   /* per-order recycling list */
  unsigned char *data;               /* the page-aligned data block */
  struct iovec iov[];                /* total_ents entries */
};

struct sgv_pool {
  pthread_mutex_t lock;
  struct vec *order_head[NR_ORDERS]; /* idle, most recently used first */
  struct sgv_vec *lru_head, *lru_tail; /* idle, newest .. oldest */
  struct sgv_stats st;
  size_t cache_limit;
  uint64_t idle_ns;
  pthread_cond_t returned;           /* a fixed pool's waiters */
  unsigned waiters;
  bool fixed;
  int fixed_max;                     /* largest order a fixed pool holds */
  unsigned fail_every;               /* test hook: 0 = off */
  uint64_t new_attempts;             /* allocations of new memory tried */
  sgv_release_fn release;
  void *release_opaque;
};

static inline struct vec *
to_vec (const struct sgv_vec *v)
{
  return (struct vec *) v;
}

/* Smallest order whose capacity holds len bytes; len is 1 .. max. */
static int
order_of (size_t len)
{
  int o = 0;

  while (((size_t) SGV_PAGE << o) < len)
    o++;
  return o;
}

/* Point iov/nents at exactly len bytes.  Every used entry is rewritten, so a
 * user who advanced iov_base (say, after a short readv) does no harm. */
static void
describe (struct vec *x, size_t len)
{
  struct sgv_vec *v = &x->v;
  size_t seg = v->capacity < SGV_MAX_SEG ? v->capacity : SGV_MAX_SEG;
  int n = (int) ((len + seg - 1) / seg);

  for (int i = 0; i < n; i++) {
    x->iov[i].iov_base = x->data + (size_t) i * seg;
    x->iov[i].iov_len = seg;
  }
  x->iov[n - 1].iov_len = len - (size_t) (n - 1) * seg;
  v->nents = n;
  v->len = len;
}

/* Allocate a new vector of order o, outside the lock. */
static struct vec *
vec_new (int order)
{
  size_t cap = (size_t) SGV_PAGE << order;
  size_t seg = cap < SGV_MAX_SEG ? cap : SGV_MAX_SEG;
  int ents = (int) (cap / seg);
  struct vec *x;
  void *data;
  int r;

  x = malloc (sizeof *x + (size_t) ents * sizeof (struct iovec));
  if (x == NULL)
    return NULL;
  if (cap >= SGV_MAP_MIN) {
    data = mmap (NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    r = data == MAP_FAILED ? errno : 0;
  }
  else
    r = posix_memalign (&data, SGV_PAGE, cap);
  if (r != 0) {
    free (x);
    errno = r;
    return NULL;
  }
  memset (&x->v, 0, sizeof x->v);
  x->v.iov = x->iov;
  x->v.capacity = cap;
  x->v.order = order;
  x->v.total_ents = ents;
  x->v.last_seg_len = seg;
  x->ord_prev = x->ord_next = NULL;
  x->data = data;
  return x;
}

static void
vec_destroy (struct vec *x)
{
  if (x->v.capacity >= SGV_MAP_MIN)
    munmap (x->data, x->v.capacity);
  else
    free (x->data);
  free (x);
}

/* List helpers; the caller holds the lock. */
static void
link_idle (struct sgv_pool *p, struct vec *x)
{
  struct sgv_vec *v = &x->v;
  int o = v->order;

  x->ord_prev = NULL;
  x->ord_next = p->order_head[o];
  if (x->ord_next)
    x->ord_next->ord_prev = x;
  p->order_head[o] = x;

  v->lru_prev = NULL;
  v->lru_next = p->lru_head;
  if (v->lru_next)
    v->lru_next->lru_prev = v;
  else
    p->lru_tail = v;
  p->lru_head = v;

  p->st.cached++;
  p->st.cached_bytes += v->capacity;
}

static void
unlink_idle (struct sgv_pool *p, struct vec *x)
{
  struct sgv_vec *v = &x->v;

  if (x->ord_prev)
    x->ord_prev->ord_next = x->ord_next;
  else
    p->order_head[v->order] = x->ord_next;
  if (x->ord_next)
    x->ord_next->ord_prev = x->ord_prev;
  x->ord_prev = x->ord_next = NULL;

  if (v->lru_prev)
    v->lru_prev->lru_next = v->lru_next;
  else
    p->lru_head = v->lru_next;
  if (v->lru_next)
    v->lru_next->lru_prev = v->lru_prev;
  else
    p->lru_tail = v->lru_prev;
  v->lru_prev = v->lru_next = NULL;

  p->st.cached--;
  p->st.cached_bytes -= v->capacity;
}

/* Unlink the oldest idle vector onto the private chain *victims (linked
 * through lru_next); the caller holds the lock. */
static void
evict_oldest (struct sgv_pool *p, struct sgv_vec **victims)
{
  struct sgv_vec *v = p->lru_tail;

  unlink_idle (p, to_vec (v));
  p->st.allocated--;
  v->lru_next = *victims;
  *victims = v;
}

/* Release a private chain of victims, without the lock. */
static size_t
release_chain (struct sgv_pool *p, struct sgv_vec *victims)
{
  size_t n = 0;

  while (victims) {
    struct sgv_vec *v = victims;

    victims = v->lru_next;
    v->lru_next = NULL;
    if (p->release)
      p->release (v, p->release_opaque);
    vec_destroy (to_vec (v));
    n++;
  }
  return n;
}

/* Trim to the cache limit; the caller holds the lock. */
static void
enforce_limit (struct sgv_pool *p, struct sgv_vec **victims)
{
  while (p->st.cached_bytes > p->cache_limit) {
    evict_oldest (p, victims);
    p->st.trimmed++;
  }
}

struct sgv_pool *
sgv_pool_create (const struct sgv_pool_config *cfg)
{
  struct sgv_pool *p = calloc (1, sizeof *p);
  int r;

  if (p == NULL)
    return NULL;
  r = sync_mutex_init_adaptive (&p->lock);
  if (r != 0) {
    free (p);
    errno = r;
    return NULL;
  }
  pthread_cond_init (&p->returned, NULL);
  p->cache_limit = DEFAULT_CACHE_LIMIT;
  p->idle_ns = DEFAULT_IDLE_NS;
  if (cfg) {
    if (cfg->cache_limit)
      p->cache_limit = cfg->cache_limit;
    if (cfg->idle_ns)
      p->idle_ns = cfg->idle_ns;
    p->release = cfg->release;
    p->release_opaque = cfg->release_opaque;
  }
  return p;
}

int
sgv_pool_destroy (struct sgv_pool *p)
{
  uint64_t busy;

  if (p == NULL)
    return 0;
  p->fixed = false;             /* now the memory goes too */
  sgv_pool_flush (p);
  pthread_mutex_lock (&p->lock);
  busy = p->st.in_use;
  pthread_mutex_unlock (&p->lock);
  if (busy) {
    /* Freeing the pool would turn the stray vectors' sgv_free into a use
     * after free; keep it alive so the caller can free them and retry. */
    errno = EBUSY;
    return -1;
  }
  pthread_cond_destroy (&p->returned);
  pthread_mutex_destroy (&p->lock);
  free (p);
  return 0;
}

/* Should this attempt to allocate new memory fail (test hook)?  The caller
 * holds the lock.  Only sgv_pool_fail_every turns it on, and sgblkd never
 * calls that. */
static bool
inject_failure (struct sgv_pool *p)
{
  p->new_attempts++;
  return p->fail_every && p->new_attempts % p->fail_every == 0;
}

static struct sgv_vec *
alloc (struct sgv_pool *p, size_t len, bool wait)
{
  struct vec *x;
  int o;

  if (len == 0 || len > ((size_t) SGV_PAGE << SGV_MAX_ORDER)) {
    errno = EINVAL;
    return NULL;
  }
  o = order_of (len);

  pthread_mutex_lock (&p->lock);
  x = p->order_head[o];
  if (p->fixed) {
    if (o > p->fixed_max) {
      p->st.failed++;
      pthread_mutex_unlock (&p->lock);
      errno = E2BIG;
      return NULL;
    }
    /* The smallest idle vector that holds len, or wait for one. */
    for (;;) {
      for (int k = o; x == NULL && k <= p->fixed_max; k++)
        x = p->order_head[k];
      if (x)
        break;
      if (!wait) {
        pthread_mutex_unlock (&p->lock);
        errno = EAGAIN;
        return NULL;
      }
      p->st.waits++;
      p->waiters++;
      pthread_cond_wait (&p->returned, &p->lock);
      p->waiters--;
    }
  }
  if (x) {
    unlink_idle (p, x);
    p->st.in_use++;
    p->st.hits++;
    pthread_mutex_unlock (&p->lock);
    describe (x, len);
    return &x->v;
  }
  if (inject_failure (p)) {
    p->st.failed++;
    pthread_mutex_unlock (&p->lock);
    errno = ENOMEM;
    return NULL;
  }
  pthread_mutex_unlock (&p->lock);

  x = vec_new (o);

  pthread_mutex_lock (&p->lock);
  if (x == NULL) {
    p->st.failed++;
    pthread_mutex_unlock (&p->lock);
    errno = ENOMEM;
    return NULL;
  }
  p->st.misses++;
  p->st.allocated++;
  p->st.in_use++;
  pthread_mutex_unlock (&p->lock);
  describe (x, len);
  return &x->v;
}

struct sgv_vec *
sgv_alloc (struct sgv_pool *p, size_t len)
{
  return alloc (p, len, true);
}

struct sgv_vec *
sgv_try_alloc (struct sgv_pool *p, size_t len)
{
  return alloc (p, len, false);
}

void
sgv_free (struct sgv_pool *p, struct sgv_vec *v)
{
  struct sgv_vec *victims = NULL;
  struct vec *x;

  if (v == NULL)
    return;
  x = to_vec (v);
  /* Restore the full description so an idle vector covers its capacity. */
  x->iov[v->nents - 1].iov_len =
    v->capacity < SGV_MAX_SEG ? v->capacity : SGV_MAX_SEG;
  v->nents = v->total_ents;
  v->len = v->capacity;

  pthread_mutex_lock (&p->lock);
  v->last_used = sync_now_ns ();
  p->st.in_use--;
  link_idle (p, x);
  if (p->fixed) {
    if (p->waiters)
      pthread_cond_broadcast (&p->returned);
  }
  else
    enforce_limit (p, &victims);
  pthread_mutex_unlock (&p->lock);

  release_chain (p, victims);
}

/* A fixed pool keeps its memory: flush only drops what idle vectors
 * pin, running the release callback on each with the lock dropped (they
 * are off the lists meanwhile, so nobody takes one), then relinks them. */
static size_t
flush_fixed (struct sgv_pool *p)
{
  struct sgv_vec *idle = NULL;
  size_t n = 0;

  if (p->release == NULL)               /* then nothing is pinned */
    return 0;
  pthread_mutex_lock (&p->lock);
  while (p->lru_tail) {
    struct sgv_vec *v = p->lru_tail;
    unlink_idle (p, to_vec (v));
    v->lru_next = idle;
    idle = v;
    n++;
  }
  pthread_mutex_unlock (&p->lock);
  for (struct sgv_vec *v = idle; v; v = v->lru_next)
    p->release (v, p->release_opaque);
  pthread_mutex_lock (&p->lock);
  while (idle) {
    struct sgv_vec *v = idle;
    idle = v->lru_next;
    link_idle (p, to_vec (v));
    p->st.flushed++;
  }
  if (p->waiters)
    pthread_cond_broadcast (&p->returned);
  pthread_mutex_unlock (&p->lock);
  return n;
}

size_t
sgv_pool_flush (struct sgv_pool *p)
{
  struct sgv_vec *victims = NULL;
  size_t n = 0;

  if (p->fixed)
    return flush_fixed (p);
  pthread_mutex_lock (&p->lock);
  while (p->lru_tail) {
    evict_oldest (p, &victims);
    p->st.flushed++;
    n++;
  }
  pthread_mutex_unlock (&p->lock);

  release_chain (p, victims);
  return n;
}

size_t
sgv_pool_trim (struct sgv_pool *p)
{
  struct sgv_vec *victims = NULL;
  uint64_t now;

  pthread_mutex_lock (&p->lock);
  now = sync_now_ns ();
  while (!p->fixed && p->lru_tail && now - p->lru_tail->last_used >= p->idle_ns) {
    evict_oldest (p, &victims);
    p->st.trimmed++;
  }
  pthread_mutex_unlock (&p->lock);

  return release_chain (p, victims);
}

void
sgv_pool_get_stats (struct sgv_pool *p, struct sgv_stats *st)
{
  pthread_mutex_lock (&p->lock);
  *st = p->st;
  pthread_mutex_unlock (&p->lock);
}

int
sgv_pool_prefill (struct sgv_pool *p, int order, unsigned n)
{
  if (order < 0 || order > SGV_MAX_ORDER) {
    errno = EINVAL;
    return -1;
  }
  for (unsigned i = 0; i < n; i++) {
    struct vec *x;
    bool fail;

    pthread_mutex_lock (&p->lock);
    fail = inject_failure (p);
    pthread_mutex_unlock (&p->lock);
    x = fail ? NULL : vec_new (order);
    if (x == NULL) {
      errno = ENOMEM;
      return -1;
    }
    pthread_mutex_lock (&p->lock);
    x->v.last_used = sync_now_ns ();
    x->v.nents = x->v.total_ents;
    x->v.len = x->v.capacity;
    p->st.allocated++;
    p->fixed = true;
    if (order > p->fixed_max)
      p->fixed_max = order;
    link_idle (p, x);
    pthread_mutex_unlock (&p->lock);
  }
  return 0;
}

void
sgv_pool_fail_every (struct sgv_pool *p, unsigned nth)
{
  pthread_mutex_lock (&p->lock);
  p->fail_every = nth;
  p->new_attempts = 0;
  pthread_mutex_unlock (&p->lock);
}

/* Data helpers.  Segment i starts at byte i * seg of the vector, where seg
 * is SGV_MAX_SEG, or the capacity for a single-segment vector. */

static inline size_t
seg_size (const struct sgv_vec *v)
{
  return v->capacity < SGV_MAX_SEG ? v->capacity : SGV_MAX_SEG;
}

/* Call fn on each contiguous piece of [off, off+n); stop when it returns
 * false.  Returns false if a call did. */
typedef bool (*piece_fn) (unsigned char *p, size_t len, void *arg);

static bool
for_each_piece (const struct sgv_vec *v, size_t off, size_t n,
                piece_fn fn, void *arg)
{
  const struct vec *x = (const struct vec *) v;
  size_t seg = seg_size (v);
  size_t i = off / seg, o = off % seg;

  assert (off <= v->len && n <= v->len - off);
  while (n > 0) {
    size_t k = seg - o < n ? seg - o : n;

    if (!fn (x->data + i * seg + o, k, arg))
      return false;
    n -= k;
    o = 0;
    i++;
  }
  return true;
}

struct cursor { const unsigned char *src; unsigned char *dst; };

static bool
piece_in (unsigned char *p, size_t len, void *arg)
{
  struct cursor *c = arg;

  memcpy (p, c->src, len);
  c->src += len;
  return true;
}

static bool
piece_out (unsigned char *p, size_t len, void *arg)
{
  struct cursor *c = arg;

  memcpy (c->dst, p, len);
  c->dst += len;
  return true;
}

static bool
piece_zero (unsigned char *p, size_t len, void *arg)
{
  memset (p, 0, len);
  return true;
}

/* All zero: the first 16 bytes are zero and every byte equals the one 16
 * bytes further on, which memcmp checks at full vector speed. */
static bool
piece_is_zero (unsigned char *p, size_t len, void *arg)
{
  static const unsigned char zero[16];

  if (len <= 16)
    return memcmp (p, zero, len) == 0;
  return memcmp (p, zero, 16) == 0 && memcmp (p, p + 16, len - 16) == 0;
}

void
sgv_copy_from_buf (struct sgv_vec *v, size_t off, const void *buf, size_t n)
{
  struct cursor c = { .src = buf };

  for_each_piece (v, off, n, piece_in, &c);
}

void
sgv_copy_to_buf (const struct sgv_vec *v, size_t off, void *buf, size_t n)
{
  struct cursor c = { .dst = buf };

  for_each_piece (v, off, n, piece_out, &c);
}

void
sgv_zero (struct sgv_vec *v, size_t off, size_t n)
{
  for_each_piece (v, off, n, piece_zero, NULL);
}

bool
sgv_is_zero (const struct sgv_vec *v, size_t off, size_t n)
{
  return for_each_piece (v, off, n, piece_is_zero, NULL);
}

int
sgv_slice (const struct sgv_vec *v, size_t off, size_t n,
           struct iovec *out, int max)
{
  const struct vec *x = (const struct vec *) v;
  size_t seg = seg_size (v);
  size_t i = off / seg, o = off % seg;
  int count = 0;

  if (off > v->len || n > v->len - off) {
    errno = EINVAL;
    return -1;
  }
  while (n > 0) {
    size_t k = seg - o < n ? seg - o : n;

    if (count == max) {
      errno = EINVAL;
      return -1;
    }
    out[count].iov_base = x->data + i * seg + o;
    out[count].iov_len = k;
    count++;
    n -= k;
    o = 0;
    i++;
  }
  return count;
}
